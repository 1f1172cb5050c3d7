package tvm

import (
	"math"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/natterchat/natter"
)

// keyLimiter is a token bucket per user public key for the token endpoint.
// The per-address limit cannot stop one key from asking through many
// addresses; this one can. A nil keyLimiter allows everything.
type keyLimiter struct {
	store *middleware.RateLimiterMemoryStore
	retry string // seconds until the next token is in the bucket, rounded up
	what  string // what is limited, for the error message
}

func newKeyLimiter(r rate.Limit, burst int) *keyLimiter {
	if r <= 0 {
		return nil
	}
	burst = max(1, burst)
	// A bucket is forgotten once idle for as long as it takes to fill up
	// again, so forgetting it gives nobody more than they would have had.
	refill := time.Duration(float64(burst) / float64(r) * float64(time.Second))
	return &keyLimiter{
		store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: r, Burst: burst, ExpiresIn: max(3*time.Minute, refill),
		}),
		retry: strconv.Itoa(max(1, int(math.Ceil(1/float64(r))))),
		what:  "token requests",
	}
}

// allow takes a token from key's bucket, or answers 429 rate_limited with
// Retry-After.
func (l *keyLimiter) allow(c echo.Context, key string) error {
	if l == nil {
		return nil
	}
	if ok, _ := l.store.Allow(key); ok {
		return nil
	}
	c.Response().Header().Set("Retry-After", l.retry)
	return natter.Errorf(natter.ERateLimited, "too many %s for this public key; retry in %ss", l.what, l.retry)
}
