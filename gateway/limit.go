package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters are token buckets per key (sender and room), forgotten once idle.
// They live in each process: with several natter processes a sender's
// allowance is per process it happens to reach.
type limiters struct {
	rate  float64
	burst int

	mu      sync.Mutex
	buckets map[string]*limiterEntry
	swept   time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func (l *limiters) allow(key string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*limiterEntry{}
	}
	// An idle bucket is full again after burst/rate; dropping it then
	// changes nothing a sender could notice.
	idle := time.Duration(float64(l.burst)/l.rate*float64(time.Second)) + time.Second
	if now.Sub(l.swept) > idle {
		for k, e := range l.buckets {
			if now.Sub(e.seen) > idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	e := l.buckets[key]
	if e == nil {
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(l.rate), l.burst)}
		l.buckets[key] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}
