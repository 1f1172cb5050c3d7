// Package memory hands memory the Go heap no longer uses back to the
// operating system once a burst is over.
//
// A chat server spends most of its life holding idle connections, and its
// memory comes in bursts: thousands of handshakes at once after a restart or
// a token expiry, each allocating far more than the connection keeps. Once
// the burst is over an idle process allocates too little to start another
// collection, so the burst's garbage is never found and its pages stay in
// the process; Go's scavenger returns free memory only above a heap goal
// that the burst raised. The goroutine stacks that grew during the
// handshakes stay large too, since only a collection shrinks them.
package memory

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// minGrowth is the least heap growth worth a forced collection: below it
// the collection costs more than the memory is worth.
const minGrowth = 64 << 20

const (
	cyclesMetric  = "/gc/cycles/total:gc-cycles"
	freeMetric    = "/memory/classes/heap/free:bytes"    // free, not yet returned
	objectsMetric = "/memory/classes/heap/objects:bytes" // live and not yet swept
)

// Release checks every interval until ctx ends, and once the heap has
// grown by 64 MiB or more and then stayed calm (no collection) for an
// interval, forces a collection and returns the free memory to the OS.
// A busy process collects by itself and is left alone.
func Release(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var r Releaser
	r.Check()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if before, after, ok := r.Check(); ok {
				log.Debug("memory returned to the OS", "heap_before", before, "heap_after", after)
			}
		}
	}
}

// Releaser remembers what the heap was at its last check.
type Releaser struct {
	cycles uint64 // collections so far
	kept   uint64 // the smallest heap seen since the last release
	seen   bool
}

// Check returns free memory to the OS when no collection ran since the
// last check and the heap (objects and free spans) has grown by at least
// 64 MiB over the smallest seen since the last release. It tells the heap
// before and after, and whether it did.
func (r *Releaser) Check() (before, after uint64, released bool) {
	cycles, heap := read()
	calm := r.seen && cycles == r.cycles
	if !r.seen || heap < r.kept {
		r.kept = heap
	}
	r.seen, r.cycles = true, cycles
	if !calm || heap < r.kept+minGrowth {
		return heap, heap, false
	}
	debug.FreeOSMemory()
	r.cycles, after = read()
	r.kept = after
	return heap, after, true
}

func read() (cycles, heap uint64) {
	s := []metrics.Sample{{Name: cyclesMetric}, {Name: freeMetric}, {Name: objectsMetric}}
	metrics.Read(s)
	return value(s[0]), value(s[1]) + value(s[2])
}

func value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
