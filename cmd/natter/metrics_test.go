package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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

// TestPProf: the profiles are on the metrics listener only when asked for,
// and asking for them without a metrics listener is an error.
func TestPProf(t *testing.T) {
	cases := []struct {
		name  string
		pprof bool
		want  map[string]int
	}{
		{"off", false, map[string]int{
			"/metrics":          http.StatusOK,
			"/debug/pprof/":     http.StatusNotFound,
			"/debug/pprof/heap": http.StatusNotFound,
		}},
		{"on", true, map[string]int{
			"/metrics":                       http.StatusOK,
			"/debug/pprof/":                  http.StatusOK,
			"/debug/pprof/heap":              http.StatusOK,
			"/debug/pprof/goroutine":         http.StatusOK,
			"/debug/pprof/cmdline":           http.StatusNotFound, // the command line may hold -store-key
			"/debug/pprof/profile?seconds=1": http.StatusOK,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MetricsAddr, cfg.PProf = "127.0.0.1:0", tc.pprof
			m := runMain(t, cfg)
			for path, want := range tc.want {
				if got := getStatus(t, "http://"+m.MetricsAddr().String()+path); got != want {
					t.Errorf("GET %s = %d, want %d", path, got, want)
				}
			}
			// Never on the public HTTP port, where every other path is the
			// web app.
			for _, path := range []string{"/metrics", "/debug/pprof/heap"} {
				resp, err := http.Get(m.baseURL() + path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("GET %s on the TVM's port: %d %s, want the web app", path, resp.StatusCode, ct)
				}
			}
		})
	}

	t.Run("without a metrics listener", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.PProf = true
		m := &Main{Config: cfg, Logger: testLogger()}
		err := m.Run(context.Background())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), "NATTER_METRICS_ADDR") {
			t.Fatalf("pprof without a metrics address: %v, want an error naming NATTER_METRICS_ADDR", err)
		}
	})
}

func TestMetricsOffByDefault(t *testing.T) {
	m := runMain(t, testConfig(t))
	if a := m.MetricsAddr(); a != nil {
		t.Fatalf("a metrics listener on %s without NATTER_METRICS_ADDR", a)
	}
	if a := m.Gateway.MonitorAddr(); a != nil {
		t.Fatalf("nats monitoring on %s without NATTER_NATS_MONITOR_ADDR", a)
	}
}

// TestNATSMonitor: the embedded server's monitoring answers where it was
// asked to listen; with an external NATS the setting is refused.
func TestNATSMonitor(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.NATSMonitorAddr = "127.0.0.1:0"
		m := runMain(t, cfg)
		addr := m.Gateway.MonitorAddr()
		if addr == nil {
			t.Fatal("no monitoring address")
		}
		if host, _, _ := net.SplitHostPort(addr.String()); host != "127.0.0.1" {
			t.Errorf("monitoring on %s, want 127.0.0.1", addr)
		}
		var varz struct {
			ServerName string `json:"server_name"`
			JetStream  any    `json:"jetstream"`
		}
		resp, err := http.Get("http://" + addr.String() + "/varz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/varz: %d %v", resp.StatusCode, err)
		}
		if varz.ServerName != "natter" {
			t.Errorf("/varz server_name = %q, want natter", varz.ServerName)
		}
		for _, path := range []string{"/connz", "/jsz", "/healthz"} {
			if got := getStatus(t, "http://"+addr.String()+path); got != http.StatusOK {
				t.Errorf("GET %s = %d, want 200", path, got)
			}
		}
	})

	t.Run("external NATS", func(t *testing.T) {
		cfg := testConfig(t)
		// Refused before any connection is tried: nothing listens here.
		cfg.NATSURL, cfg.NATSCreds, cfg.SigningKey = "nats://127.0.0.1:1", "natter.creds", "tvm.nk"
		cfg.NATSMonitorAddr = "127.0.0.1:0"
		m := &Main{Config: cfg, Logger: testLogger()}
		err := m.Run(context.Background())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), "NATTER_NATS_MONITOR_ADDR") || !strings.Contains(err.Error(), "external NATS") {
			t.Fatalf("external NATS with monitoring: %v, want an error naming NATTER_NATS_MONITOR_ADDR and the external NATS", err)
		}
	})
}

func TestLoadConfigObservability(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		metrics string
		pprof   bool
		monitor string
		wantErr bool
	}{
		{name: "off by default"},
		{name: "from the environment", env: map[string]string{"NATTER_METRICS_ADDR": "127.0.0.1:9090", "NATTER_PPROF": "true", "NATTER_NATS_MONITOR_ADDR": "127.0.0.1:8222"},
			metrics: "127.0.0.1:9090", pprof: true, monitor: "127.0.0.1:8222"},
		{name: "flags", args: []string{"-metrics-addr", ":9090", "-pprof", "-nats-monitor-addr", ":8222"}, metrics: ":9090", pprof: true, monitor: ":8222"},
		{name: "flag turns pprof off", env: map[string]string{"NATTER_PPROF": "1"}, args: []string{"-pprof=false"}},
		{name: "pprof not a boolean", env: map[string]string{"NATTER_PPROF": "yes please"}, wantErr: true},
		{name: "pprof flag not a boolean", args: []string{"-pprof=maybe"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, err := LoadConfig(fs, tc.args, func(k string) string { return tc.env[k] }, "")
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MetricsAddr != tc.metrics || cfg.PProf != tc.pprof || cfg.NATSMonitorAddr != tc.monitor {
				t.Fatalf("metrics %q pprof %v monitor %q, want %q %v %q", cfg.MetricsAddr, cfg.PProf, cfg.NATSMonitorAddr, tc.metrics, tc.pprof, tc.monitor)
			}
		})
	}
}
