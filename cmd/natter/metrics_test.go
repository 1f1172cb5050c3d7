package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// scrape GETs /metrics from m and returns every sample by its series as
// written: `name` or `name{label="value",…}`.
func scrape(t *testing.T, m *Main) (map[string]float64, string) {
	t.Helper()
	resp, err := http.Get("http://" + m.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, string(body)
}

// TestMetrics runs natter with metrics on, does what users do — tokens,
// a refused token, a room, a join, a message and a refused one — and reads
// each in /metrics.
func TestMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.StoreKey = "metrics-test-store-key-0123456789"
	var log syncBuffer
	m := &Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("run natter: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close natter: %v", err)
		}
	})
	if want := "url=http://" + m.MetricsAddr().String() + "/metrics"; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not name the metrics listener (%s):\n%s", want, log.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := gatewaytest.NewUser(t)
	room := u.MustNewRooms(t, m.baseURL(), "Lobby")[0] // a token for no room, then the room
	tok := u.MustToken(t, m.baseURL(), room)
	err := gatewaytest.PostJSON(m.baseURL()+"/api/v1/token", []byte(`{"public_key":"not-a-key"}`), new(gatewaytest.Token))
	if apiErr, ok := errors.AsType[*gatewaytest.APIError](err); !ok || apiErr.Code != natter.EInvalidKey {
		t.Fatalf("token for a bad key: %v, want %s", err, natter.EInvalidKey)
	}
	c := u.Connect(t, tok)
	if _, err := c.Join(ctx, room, "Ada"); err != nil {
		t.Fatalf("join: %v", err)
	}
	if _, err := c.Send(ctx, room, "hello"); err != nil {
		t.Fatalf("send: %v", err)
	}
	_, err = c.Send(ctx, room, strings.Repeat("a", gateway.DefaultChatConfig.MessageMaxChars+1))
	if natter.ErrorCode(err) != natter.ETooLong {
		t.Fatalf("a message one character too long: %v, want %s", err, natter.ETooLong)
	}

	// Exact counts: the registry is this natter's own, and nothing else
	// talks to it.
	exact := map[string]float64{
		`natter_tokens_issued_total`:                                   2,
		`natter_tokens_refused_total{code="invalid_key"}`:              1,
		`natter_messages_accepted_total`:                               1,
		`natter_messages_refused_total{code="too_long"}`:               1,
		`natter_pipeline_requests_total{op="send",outcome="ok"}`:       1,
		`natter_pipeline_requests_total{op="send",outcome="too_long"}`: 1,
		`natter_pipeline_requests_total{op="join",outcome="ok"}`:       1,
		`natter_pipeline_request_duration_seconds_count{op="send"}`:    2,
		`natter_pipeline_request_duration_seconds_count{op="join"}`:    1,
		`natter_nats_connected`:                                        1,
		`natter_nats_reconnects_total`:                                 0,
	}
	atLeast := map[string]float64{
		`natter_rooms_open`:             1,
		`natter_members_online`:         1,
		`process_cpu_seconds_total`:     0,
		`process_resident_memory_bytes`: 1,
		`go_goroutines`:                 1,
	}
	var body string
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		var samples map[string]float64
		samples, body = scrape(t, m)
		var errs []error
		for k, want := range exact {
			if got, ok := samples[k]; !ok || got != want {
				errs = append(errs, fmt.Errorf("%s = %v (present %v), want %v", k, got, ok, want))
			}
		}
		for k, want := range atLeast {
			if got, ok := samples[k]; !ok || got < want {
				errs = append(errs, fmt.Errorf("%s = %v (present %v), want at least %v", k, got, ok, want))
			}
		}
		return errors.Join(errs...)
	})

	// Nothing a client sent or holds, nor the store key, is in the metrics.
	for what, secret := range map[string]string{
		"the token": tok.JWT, "the user key": u.ID, "the room id": room, "the store key": cfg.StoreKey, "a name": "Ada",
	} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics shows %s", what)
		}
	}
}

func TestMetricsOffByDefault(t *testing.T) {
	m := runMain(t, testConfig(t))
	if a := m.MetricsAddr(); a != nil {
		t.Fatalf("a metrics listener on %s without NATTER_METRICS_ADDR", a)
	}
}
