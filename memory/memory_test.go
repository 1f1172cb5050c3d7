package memory

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

var sink [][]byte

// burst allocates n MiB and drops it.
func burst(n int) {
	for range n {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
}

// TestCheckReturnsABurst: after a burst of 256 MiB of garbage and a calm
// interval, Check returns the memory to the OS (the runtime counts it as
// released); while collections run, or without growth, it does nothing.
func TestCheckReturnsABurst(t *testing.T) {
	var r Releaser
	if _, _, ok := r.Check(); ok {
		t.Fatal("released at the first check, with nothing to compare")
	}
	burst(256)
	if _, _, ok := r.Check(); ok {
		t.Fatal("released while the burst's collections ran")
	}
	before := released()
	heap, after, ok := r.Check()
	if !ok {
		t.Fatalf("not released after a calm interval, heap %d bytes", heap)
	}
	if got := released() - before; got < minGrowth {
		t.Fatalf("released %d bytes, heap %d → %d", got, heap, after)
	}
	if heap-after < minGrowth {
		t.Fatalf("heap %d → %d bytes", heap, after)
	}
	if _, _, ok := r.Check(); ok {
		t.Fatal("released again without growth")
	}
	runtime.GC()
	if _, _, ok := r.Check(); ok {
		t.Fatal("released after a collection")
	}
}

func released() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
