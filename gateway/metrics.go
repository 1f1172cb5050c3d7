package gateway

import (
	"context"
	"time"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/metrics"
)

// measured wraps a pipeline handler so that each request of op is counted
// by outcome and timed. The time is the handler's own, from the start of
// its work to its answer; waiting in the room's queue before is not in it.
func (c *chat) measured(op natter.Op, handle func(ctx context.Context, room, user string, data []byte) any) func(ctx context.Context, room, user string, data []byte) any {
	if c.metrics == nil {
		return handle
	}
	return func(ctx context.Context, room, user string, data []byte) any {
		start := time.Now()
		resp := handle(ctx, room, user, data)
		c.observe(op, time.Since(start), resp)
		return resp
	}
}

// observe records one pipeline request of op that took took and answered
// resp.
func (c *chat) observe(op natter.Op, took time.Duration, resp any) {
	code := ""
	if e := errorOf(resp); e != nil {
		code = e.Code
	}
	c.metrics.Request(string(op), code, took)
}

// watchMetrics registers the gauges read at each scrape. They read the
// views this process keeps anyway and the connection's own state: a scrape
// costs no NATS round trip.
func (g *Gateway) watchMetrics() error {
	if g.cfg.Metrics == nil {
		return nil
	}
	return g.cfg.Metrics.WatchGateway(metrics.Gauges{
		RoomsOpen:      g.chat.roomView.len,
		MembersOnline:  g.chat.presenceView.len,
		NATSConnected:  g.nc.IsConnected,
		NATSReconnects: func() uint64 { return g.nc.Stats().Reconnects },
	})
}

// len is how many keys the view holds.
func (v *view) len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.entries)
}
