package main

import (
	"errors"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

func TestLoadConfigAbuseLimits(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err := LoadConfig(fs, nil, func(string) string { return "" }, filepath.Join(t.TempDir(), "missing.env"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TokenKeyRate != 0.5 || cfg.TokenKeyBurst != 10 || int64(cfg.MaxConnections) != gateway.DefaultUserLimits.MaxConns {
		t.Fatalf("defaults: key rate %g burst %d, max connections %d", cfg.TokenKeyRate, cfg.TokenKeyBurst, cfg.MaxConnections)
	}
	env := map[string]string{"NATTER_TOKEN_KEY_RATE": "0.1", "NATTER_MAX_CONNECTIONS": "500"}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err = LoadConfig(fs, []string{"-token-key-burst", "3"}, func(k string) string { return env[k] }, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TokenKeyRate != 0.1 || cfg.TokenKeyBurst != 3 || cfg.MaxConnections != 500 {
		t.Fatalf("set: key rate %g burst %d, max connections %d", cfg.TokenKeyRate, cfg.TokenKeyBurst, cfg.MaxConnections)
	}
	for _, bad := range []map[string]string{
		{"NATTER_MAX_CONNECTIONS": "0"},
		{"NATTER_MAX_CONNECTIONS": "many"},
		{"NATTER_TOKEN_KEY_RATE": "fast"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if _, err := LoadConfig(fs, nil, func(k string) string { return bad[k] }, ""); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestAbuseLimitsReachNatter runs natter with tiny limits: the per-key
// token limit answers 429 with Retry-After, and the account takes natter's
// own connection and one user, refusing a second.
func TestAbuseLimitsReachNatter(t *testing.T) {
	cfg := testConfig(t)
	cfg.TokenKeyRate, cfg.TokenKeyBurst = 0.01, 2
	cfg.MaxConnections = 2
	m := runMain(t, cfg)
	u := gatewaytest.NewUser(t)
	room := u.MustNewRooms(t, m.baseURL(), "Lobby")[0] // one token
	tok := u.MustToken(t, m.baseURL(), room)           // two
	_, err := u.RequestToken(m.baseURL(), "", room)
	if e, ok := errors.AsType[*gatewaytest.APIError](err); !ok || e.Status != http.StatusTooManyRequests || e.Code != natter.ERateLimited {
		t.Fatalf("third token for one key with a burst of 2: %v, want 429 %s", err, natter.ERateLimited)
	}
	resp, err := http.Post(m.baseURL()+"/api/v1/token", "application/json", strings.NewReader(`{"public_key":"`+u.ID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "100" {
		t.Fatalf("status %d, Retry-After %q; want 429 and 100", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	c := u.Connect(t, tok)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	other := gatewaytest.NewUser(t)
	otherTok := other.MustToken(t, m.baseURL(), room)
	gatewaytest.AssertRefused(t, func() (*gatewaytest.Conn, error) { return other.Dial(otherTok, nats.NoReconnect()) }, gatewaytest.IsAccountFull)
	if err := c.Flush(); err != nil || !c.IsConnected() {
		t.Fatalf("the connection already in: %v (%v)", err, c.Status())
	}
}
