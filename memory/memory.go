// Package memory hands memory the Go heap no longer uses back to the
// operating system once a burst is over.
//
// A chat server spends most of its life holding idle connections, and its
// memory comes in bursts: thousands of handshakes at once after a restart or
// a token expiry, each allocating far more than the connection keeps. Go's
// scavenger returns free memory only above the heap goal, which such a burst
// doubles; without another collection the freed pages stay in the process,
// and so do the goroutine stacks that grew during the handshakes (the
// collector shrinks them). With 10 000 idle clients that was a third of
// natter's RSS.
package memory

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// minFree is the least free heap worth a forced collection: below it the
// collection costs more than the memory is worth.
const minFree = 64 << 20

const (
	freeMetric    = "/memory/classes/heap/free:bytes"    // free, not yet returned
	objectsMetric = "/memory/classes/heap/objects:bytes" // live and not yet swept
)

// Release checks every interval until ctx ends, and returns free heap
// memory to the OS when there is a lot of it: at least 64 MiB and half the
// heap in use. Each release is one forced collection.
func Release(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if freed, ok := ReleaseOnce(); ok {
				log.Debug("memory returned to the OS", "free_before", freed)
			}
		}
	}
}

// ReleaseOnce returns free heap memory to the OS when worth it, and tells
// how much was free and whether it did.
func ReleaseOnce() (free uint64, released bool) {
	free, inUse := read()
	if !worth(free, inUse) {
		return free, false
	}
	debug.FreeOSMemory()
	return free, true
}

// worth tells whether free bytes of heap are worth a forced collection with
// inUse bytes of objects.
func worth(free, inUse uint64) bool {
	return free >= minFree && free >= inUse/2
}

func read() (free, inUse uint64) {
	s := []metrics.Sample{{Name: freeMetric}, {Name: objectsMetric}}
	metrics.Read(s)
	return value(s[0]), value(s[1])
}

func value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
