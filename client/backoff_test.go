package client_test

import (
	"testing"
	"time"

	"github.com/natterchat/natter/client"
)

func TestBackoffGrowsWithFullJitterUpToTheCap(t *testing.T) {
	wait, jitter := time.Second, time.Second
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, wait, wait + jitter},
		{2, wait, 4 * time.Second},
		{3, wait, 8 * time.Second},
		{5, wait, 30 * time.Second},
		{50, wait, client.MaxBackoff},
	} {
		var hi time.Duration
		for range 2000 {
			d := client.Backoff(tc.n, wait, jitter)
			if d < tc.min || d > tc.max {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", tc.n, d, tc.min, tc.max)
			}
			hi = max(hi, d)
		}
		// Full jitter: the waits spread over the range, not only its start.
		if want := tc.min + (tc.max-tc.min)*3/4; hi < want {
			t.Errorf("attempt %d: longest of 2000 waits %v, want above %v", tc.n, hi, want)
		}
	}
	if d := client.Backoff(3, 0, 0); d != 0 {
		t.Errorf("no wait asked, got %v", d)
	}
}
