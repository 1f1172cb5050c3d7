package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
)

// JoinOptions are the parameters of the join scenario.
type JoinOptions struct {
	History int           // messages in the room's history beforehand (500)
	Joins   int           // joins measured (200)
	Timeout time.Duration // bound of the whole scenario (2 min)
}

func (o JoinOptions) withDefaults() JoinOptions {
	if o.History <= 0 {
		o.History = 500
	}
	if o.Joins <= 0 {
		o.Joins = 200
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	return o
}

// member is a user connected to a room and present in it.
type member struct {
	u    *client.Identity
	tok  *client.Token
	conn *client.Conn
}

// newRoom creates a room with a fresh creator.
func newRoom(ctx context.Context, api *client.API, name string) (string, error) {
	u, err := client.NewIdentity()
	if err != nil {
		return "", err
	}
	tok, err := tokenRetrying(ctx, api, u, "creator")
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	r, err := api.CreateRoom(ctx, tok, name)
	for isRateLimited(err) && ctx.Err() == nil {
		sleep(ctx, 500*time.Millisecond)
		r, err = api.CreateRoom(ctx, tok, name)
	}
	if err != nil {
		return "", fmt.Errorf("create room: %w", err)
	}
	return r.ID, nil
}

// joinRoom: a new user gets a token for room, connects and joins.
func joinRoom(ctx context.Context, api *client.API, room, name string) (*member, error) {
	u, err := client.NewIdentity()
	if err != nil {
		return nil, err
	}
	tok, err := tokenRetrying(ctx, api, u, name, room)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	// The TVM names the NATS servers: they must be on loopback too.
	for _, s := range tok.Servers {
		if err := CheckLoopback(s); err != nil {
			return nil, err
		}
	}
	c, err := client.Dial(u, tok)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if _, err := c.Join(ctx, room, name); err != nil {
		c.Close()
		return nil, fmt.Errorf("join: %w", err)
	}
	return &member{u: u, tok: tok, conn: c}, nil
}

// isRateLimited tells a refusal for a rate limit, of the TVM or the gateway.
func isRateLimited(err error) bool {
	var ae *client.APIError
	var ne *natter.Error
	return errors.As(err, &ae) && ae.Code == natter.ERateLimited || errors.As(err, &ne) && ne.Code == natter.ERateLimited
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// tokenRetrying asks for a token, waiting out rate limits (a natter started
// by someone else keeps its limits) until ctx ends.
func tokenRetrying(ctx context.Context, api *client.API, u *client.Identity, name string, rooms ...string) (*client.Token, error) {
	return requestRetrying(ctx, api, natter.TokenRequest{PublicKey: u.ID, Name: name, Rooms: rooms})
}

// requestRetrying is tokenRetrying for any token request.
func requestRetrying(ctx context.Context, api *client.API, req natter.TokenRequest) (*client.Token, error) {
	for {
		tok, err := api.RequestToken(ctx, req)
		if !isRateLimited(err) || ctx.Err() != nil {
			return tok, err
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// sendRetrying sends text, waiting out rate limits (a natter started by
// someone else keeps its per-sender limit).
func sendRetrying(ctx context.Context, c *client.Conn, room, text string) error {
	for {
		_, err := c.Send(ctx, room, text)
		if !isRateLimited(err) || ctx.Err() != nil {
			return err
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// runJoin fills a room's history with H messages from one user, then
// measures J joins one after another: token request, dial, join, and
// following the room from seq 0 until the history is delivered.
func runJoin(ctx context.Context, srv Server, o JoinOptions) (*Scenario, error) {
	s := &Scenario{Name: "join"}
	s.param("history", o.History)
	s.param("joins", o.Joins)
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	api := newAPI(srv.URL())
	room, err := newRoom(ctx, api, "bench join")
	if err != nil {
		return s, err
	}
	w, err := joinRoom(ctx, api, room, "writer")
	if err != nil {
		return s, err
	}
	defer w.conn.Close()
	for i := range o.History {
		if err := sendRetrying(ctx, w.conn, room, fmt.Sprintf("history message %d of the join benchmark", i)); err != nil {
			return s, fmt.Errorf("filling the history: %w", err)
		}
	}

	var whole, hist latencies
	var entries, failed int
	var firstErr error
	m := startMeter(ctx, srv)
	start := time.Now()
	for i := 0; i < o.Joins && ctx.Err() == nil; i++ {
		t0 := time.Now()
		m, err := joinRoom(ctx, api, room, fmt.Sprintf("joiner %d", i))
		if err != nil {
			failed++
			firstErr = cmpErr(firstErr, err)
			continue
		}
		t1 := time.Now()
		var n atomic.Int64
		r, err := m.conn.Follow(ctx, room, 0, func(natter.Envelope) { n.Add(1) })
		if err != nil {
			m.conn.Close()
			failed++
			firstErr = cmpErr(firstErr, fmt.Errorf("follow: %w", err))
			continue
		}
		t2 := time.Now()
		whole.add(t2.Sub(t0))
		hist.add(t2.Sub(t1))
		r.Stop()
		m.conn.Close()
		if got := int(n.Load()); i == 0 || got < entries {
			entries = got
		}
	}
	elapsed := time.Since(start)
	cpu, measured := m.cpu(ctx)
	s.fig("joins", float64(whole.n), "")
	s.fig("failed", float64(failed), "")
	s.fig("history entries (fewest)", float64(entries), "")
	s.fig("joins/s", per(whole.n, elapsed), "/s")
	s.fig("total p50", whole.quantile(0.50), "ms")
	s.fig("total p99", whole.quantile(0.99), "ms")
	s.fig("history p50", hist.quantile(0.50), "ms")
	s.fig("history p99", hist.quantile(0.99), "ms")
	s.serverCPU("", cpu, measured, "joins", float64(whole.n))
	if firstErr != nil {
		return s, fmt.Errorf("%d joins failed, the first: %w", failed, firstErr)
	}
	return s, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// newAPI is the TVM's API with an HTTP client that gives up after 10 s.
func newAPI(baseURL string) *client.API {
	return &client.API{BaseURL: baseURL, HTTP: &http.Client{Timeout: 10 * time.Second}}
}
