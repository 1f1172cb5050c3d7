package bench

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/tvm"
)

// TokensOptions are the parameters of the tokens scenario.
type TokensOptions struct {
	Clients  int           // concurrent HTTP clients (8)
	Duration time.Duration // how long they ask (10 s)
	Max      int           // requests per client at most (1 000 000)
}

func (o TokensOptions) withDefaults() TokensOptions {
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Max <= 0 {
		o.Max = 1_000_000
	}
	return o
}

// runTokens: C clients, each with its own key, ask the TVM for tokens for
// D; then GOMAXPROCS goroutines sign the same user JWT in process for D.
func runTokens(ctx context.Context, srv Server, o TokensOptions) (*Scenario, error) {
	s := &Scenario{Name: "tokens"}
	s.param("clients", o.Clients)
	s.param("duration", o.Duration)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients, MaxConnsPerHost: o.Clients}}
	defer hc.CloseIdleConnections()
	api := &client.API{BaseURL: srv.URL(), HTTP: hc}

	var (
		mu      sync.Mutex
		all     latencies
		ok, bad atomic.Int64
		limited atomic.Int64
		firstEr atomic.Value
		wg      sync.WaitGroup
	)
	m := startMeter(ctx, srv)
	start := time.Now()
	deadline := start.Add(o.Duration)
	for range o.Clients {
		u, err := client.NewIdentity()
		if err != nil {
			return s, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l latencies
			for i := 0; i < o.Max && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				_, err := api.Token(ctx, u, "bench")
				if isRateLimited(err) {
					// A natter with its limits on: count it and back off.
					limited.Add(1)
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				if err != nil {
					bad.Add(1)
					firstEr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.add(time.Since(t0))
				ok.Add(1)
			}
			mu.Lock()
			all.merge(&l)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, measured := m.cpu(ctx)
	httpRate := per(int(ok.Load()), elapsed)
	s.fig("tokens", float64(ok.Load()), "")
	s.fig("rate limited", float64(limited.Load()), "")
	s.fig("errors", float64(bad.Load()), "")
	s.fig("tokens/s", httpRate, "/s")
	s.fig("latency p50", all.quantile(0.50), "ms")
	s.fig("latency p99", all.quantile(0.99), "ms")
	s.serverCPU("", cpu, measured, "tokens", float64(ok.Load()))

	signRate, err := signRate(ctx, o.Duration, o.Max)
	if err != nil {
		return s, err
	}
	s.fig("in-process signing", signRate, "/s")
	s.fig("http / signing", ratio(httpRate, signRate), "")
	if e := firstEr.Load(); e != nil {
		return s, fmt.Errorf("%d token requests failed, the first: %s", bad.Load(), e)
	}
	return s, nil
}

// signRate signs the user JWT the TVM issues (a scoped key of an account,
// a room tag) with jwt/v2 Encode and the TVM's own signer on GOMAXPROCS
// goroutines for d: the most tokens the machine could sign.
func signRate(ctx context.Context, d time.Duration, maxPer int) (float64, error) {
	acct, err := nkeys.CreateAccount()
	if err != nil {
		return 0, err
	}
	acctPub, _ := acct.PublicKey()
	key, err := nkeys.CreateAccount()
	if err != nil {
		return 0, err
	}
	signer, err := tvm.NewSigner(key)
	if err != nil {
		return 0, err
	}
	u, err := client.NewIdentity()
	if err != nil {
		return 0, err
	}
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxPer && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				uc := jwt.NewUserClaims(u.ID)
				uc.Name = "bench"
				uc.IssuerAccount = acctPub
				uc.Expires = time.Now().Add(time.Hour).Unix()
				uc.Tags.Add(natter.RoomTag("bench-room"))
				uc.SetScoped(true)
				if _, err := uc.Encode(signer); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return per(int(n.Load()), time.Since(start)), nil
}
