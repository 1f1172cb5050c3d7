package memory

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

func TestWorth(t *testing.T) {
	cases := []struct {
		name        string
		free, inUse uint64
		want        bool
	}{
		{"nothing free", 0, 100 << 20, false},
		{"little free, small heap", 10 << 20, 1 << 20, false},
		{"64 MiB free, half the heap", 64 << 20, 128 << 20, true},
		{"64 MiB free, less than half", 64 << 20, 129 << 20, false},
		{"a burst's garbage", 500 << 20, 300 << 20, true},
		{"just under 64 MiB", 64<<20 - 1, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := worth(tc.free, tc.inUse); got != tc.want {
				t.Fatalf("worth(%d, %d) = %v, want %v", tc.free, tc.inUse, got, tc.want)
			}
		})
	}
}

var sink [][]byte

// TestReleaseOnceReturnsABurst allocates a burst of 256 MiB, drops it and
// collects: the memory is free but still the process's. ReleaseOnce must
// return it to the OS, which the runtime counts as released.
func TestReleaseOnceReturnsABurst(t *testing.T) {
	for range 256 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	runtime.GC()
	free, _ := read()
	if free < minFree {
		t.Skipf("the runtime already returned the burst (%d bytes free)", free)
	}
	before := released()
	got, ok := ReleaseOnce()
	if !ok {
		t.Fatalf("not released with %d bytes free", got)
	}
	if after := released(); after-before < minFree {
		t.Fatalf("released %d bytes of %d free", after-before, free)
	}
	if free, _ := read(); free >= minFree {
		t.Fatalf("%d bytes still free after the release", free)
	}
	if _, ok := ReleaseOnce(); ok {
		t.Fatal("released again with nothing free")
	}
}

func released() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
