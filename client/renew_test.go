package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
	"github.com/natterchat/natter/tvm"
)

// TestRenewWithReconnectsWithAFreshToken gives tokens a 2 s life: the
// server drops the connection when the token expires, and the reconnect
// asks RenewWith's function for a new token instead of offering the
// expired one.
func TestRenewWithReconnectsWithAFreshToken(t *testing.T) {
	gw := gatewaytest.RunGateway(t)
	srv := httptest.NewServer(tvm.New(tvm.Config{
		Account:    gw.Account(),
		SigningKey: gw.SigningKey(),
		TokenTTL:   2 * time.Second,
		WSPort:     gw.WebSocketPort(),
		Rooms:      gw,
		Ready:      gw.Ready,
	}).Handler())
	t.Cleanup(srv.Close)
	api := &client.API{BaseURL: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	u, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.Token(ctx, u, "ada")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(u, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var renewals, reconnects atomic.Int32
	c.RenewWith(func(ctx context.Context) (*client.Token, error) {
		renewals.Add(1)
		return api.Token(ctx, u, "ada")
	})
	c.OnReconnect(func() { reconnects.Add(1) })
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if reconnects.Load() == 0 || !c.IsConnected() {
			return fmt.Errorf("renewals=%d reconnects=%d status=%v", renewals.Load(), reconnects.Load(), c.Status())
		}
		return nil
	})
	if renewals.Load() == 0 {
		t.Fatal("reconnected without renewing the expired token")
	}
	if err := c.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush after the reconnect: %v", err)
	}
}
