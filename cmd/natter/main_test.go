package main

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/natterchat/natter/gateway/gatewaytest"
)

// testConfig is a natter configuration on random loopback ports in a temp
// data dir, with the per-address rate limit off so tests may hammer it.
func testConfig(t testing.TB) Config {
	t.Helper()
	return Config{
		HTTPAddr:  "127.0.0.1:0",
		WSAddr:    "127.0.0.1:0",
		NATSAddr:  "127.0.0.1:0",
		DataDir:   t.TempDir(),
		TokenTTL:  time.Hour,
		Replicas:  1,
		LogLevel:  "warn",
		TokenRate: 0,
	}
}

// runMain runs natter with cfg until the test ends and returns it.
func runMain(t testing.TB, cfg Config) *Main {
	t.Helper()
	m := &Main{Config: cfg, Logger: testLogger()}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("run natter: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close natter: %v", err)
		}
	})
	return m
}

// testLogger is quiet unless NATTER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("NATTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// baseURL is the TVM's URL.
func (m *Main) baseURL() string { return "http://" + m.HTTPAddr().String() }

var _ = gatewaytest.WaitFor
