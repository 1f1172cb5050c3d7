package gateway

import (
	"hash/maphash"
	"sync"
)

// workers run the pipeline's requests off the NATS subscriptions, which
// deliver one message at a time: without them a process handles one request
// per endpoint at a time, and every send waits for the one before it to be
// stored. Requests are queued by room, so one room's requests keep their
// order and rooms proceed side by side.
type workers struct {
	seed   maphash.Seed
	queues []chan func()
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

// Sizes of the pool. Most of a request's time is a JetStream round trip,
// not CPU, so there are many more queues than cores.
const (
	workerQueues   = 64
	workerQueueLen = 64
)

func newWorkers() *workers {
	w := &workers{seed: maphash.MakeSeed(), queues: make([]chan func(), workerQueues)}
	for i := range w.queues {
		q := make(chan func(), workerQueueLen)
		w.queues[i] = q
		w.wg.Go(func() {
			for f := range q {
				f()
			}
		})
	}
	return w
}

// do queues f behind the earlier work of key. A full queue blocks the
// caller, which holds back the subscription: NATS then buffers, and past
// its limits tells the slow consumer. It reports false once closed.
func (w *workers) do(key string, f func()) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	w.queues[maphash.String(w.seed, key)%uint64(len(w.queues))] <- f
	return true
}

// close finishes the queued work and stops the workers.
func (w *workers) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, q := range w.queues {
			close(q)
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
}
