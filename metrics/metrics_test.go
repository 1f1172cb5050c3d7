package metrics_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/natterchat/natter/metrics"
)

// value is the value of the series name with exactly labels (name=value
// pairs), and whether it exists. Histograms give their sample count.
func value(t *testing.T, m *metrics.Metrics, name string, labels ...string) (float64, bool) {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			if len(s.GetLabel())*2 != len(labels) {
				continue
			}
			for i, l := range s.GetLabel() {
				if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
					continue series
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return s.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return s.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(s.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

type series struct {
	name   string
	labels []string
	want   float64
}

func TestRecording(t *testing.T) {
	cases := []struct {
		name   string
		record func(m *metrics.Metrics)
		want   []series
		absent []series // must not exist at all
	}{
		{
			name:   "token issued",
			record: func(m *metrics.Metrics) { m.TokenIssued(); m.TokenIssued() },
			want:   []series{{"natter_tokens_issued_total", nil, 2}},
			absent: []series{{name: "natter_tokens_refused_total"}},
		},
		{
			name: "token refused by code",
			record: func(m *metrics.Metrics) {
				m.TokenRefused("rate_limited")
				m.TokenRefused("invalid_key")
				m.TokenRefused("rate_limited")
			},
			want: []series{
				{"natter_tokens_refused_total", []string{"code", "rate_limited"}, 2},
				{"natter_tokens_refused_total", []string{"code", "invalid_key"}, 1},
				{"natter_tokens_issued_total", nil, 0},
			},
		},
		{
			name:   "send accepted",
			record: func(m *metrics.Metrics) { m.Request("send", "", 3*time.Millisecond) },
			want: []series{
				{"natter_messages_accepted_total", nil, 1},
				{"natter_pipeline_requests_total", []string{"op", "send", "outcome", "ok"}, 1},
				{"natter_pipeline_request_duration_seconds", []string{"op", "send"}, 1},
			},
			absent: []series{{name: "natter_messages_refused_total"}},
		},
		{
			name:   "send refused",
			record: func(m *metrics.Metrics) { m.Request("send", "too_long", time.Millisecond) },
			want: []series{
				{"natter_messages_accepted_total", nil, 0},
				{"natter_messages_refused_total", []string{"code", "too_long"}, 1},
				{"natter_pipeline_requests_total", []string{"op", "send", "outcome", "too_long"}, 1},
				{"natter_pipeline_request_duration_seconds", []string{"op", "send"}, 1},
			},
		},
		{
			name: "other ops are no messages",
			record: func(m *metrics.Metrics) {
				m.Request("join", "", time.Millisecond)
				m.Request("history", "not_joined", time.Millisecond)
			},
			want: []series{
				{"natter_messages_accepted_total", nil, 0},
				{"natter_pipeline_requests_total", []string{"op", "join", "outcome", "ok"}, 1},
				{"natter_pipeline_requests_total", []string{"op", "history", "outcome", "not_joined"}, 1},
				{"natter_pipeline_request_duration_seconds", []string{"op", "history"}, 1},
			},
			absent: []series{{name: "natter_messages_refused_total"}},
		},
		{
			name: "gateway gauges",
			record: func(m *metrics.Metrics) {
				err := m.WatchGateway(metrics.Gauges{
					RoomsOpen:      func() int { return 3 },
					MembersOnline:  func() int { return 7 },
					NATSConnected:  func() bool { return true },
					NATSReconnects: func() uint64 { return 2 },
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			want: []series{
				{"natter_rooms_open", nil, 3},
				{"natter_members_online", nil, 7},
				{"natter_nats_connected", nil, 1},
				{"natter_nats_reconnects_total", nil, 2},
			},
		},
		{
			name: "disconnected, gauges left out",
			record: func(m *metrics.Metrics) {
				if err := m.WatchGateway(metrics.Gauges{NATSConnected: func() bool { return false }}); err != nil {
					t.Fatal(err)
				}
			},
			want:   []series{{"natter_nats_connected", nil, 0}},
			absent: []series{{name: "natter_rooms_open"}, {name: "natter_nats_reconnects_total"}},
		},
		{
			name:   "fresh",
			record: func(*metrics.Metrics) {},
			want:   []series{{"natter_tokens_issued_total", nil, 0}, {"natter_messages_accepted_total", nil, 0}},
			absent: []series{{name: "natter_pipeline_requests_total"}, {name: "natter_rooms_open"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			tc.record(m)
			for _, s := range tc.want {
				got, ok := value(t, m, s.name, s.labels...)
				if !ok || got != s.want {
					t.Errorf("%s%v = %v (present %v), want %v", s.name, s.labels, got, ok, s.want)
				}
			}
			for _, s := range tc.absent {
				if got, ok := value(t, m, s.name, s.labels...); ok {
					t.Errorf("%s%v = %v, want no such series", s.name, s.labels, got)
				}
			}
			// The benchmark reads these two beside natter's own.
			for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines"} {
				if _, ok := value(t, m, name); !ok && runtime.GOOS == "linux" {
					t.Errorf("%s missing", name)
				}
			}
		})
	}
}

func TestNilRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	m.TokenIssued()
	m.TokenRefused("invalid_key")
	m.Request("send", "", time.Millisecond)
	if err := m.WatchGateway(metrics.Gauges{RoomsOpen: func() int { return 1 }}); err != nil {
		t.Fatal(err)
	}
	if m.Registry() != nil {
		t.Fatal("a nil Metrics has a registry")
	}
}

func TestWatchGatewayTwice(t *testing.T) {
	m := metrics.New()
	g := metrics.Gauges{RoomsOpen: func() int { return 1 }}
	if err := m.WatchGateway(g); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchGateway(g); err == nil {
		t.Fatal("a second gateway registered over the first")
	}
}

// TestServer serves the listener on a random loopback port: /metrics
// always, the profiles only when asked, the command line never.
func TestServer(t *testing.T) {
	cases := []struct {
		name  string
		pprof bool
		want  map[string]int
	}{
		{"pprof off", false, map[string]int{
			"/metrics":            http.StatusOK,
			"/debug/pprof/":       http.StatusNotFound,
			"/debug/pprof/heap":   http.StatusNotFound,
			"/debug/pprof/symbol": http.StatusNotFound,
			"/":                   http.StatusNotFound,
		}},
		{"pprof on", true, map[string]int{
			"/metrics":             http.StatusOK,
			"/debug/pprof/":        http.StatusOK,
			"/debug/pprof/heap":    http.StatusOK,
			"/debug/pprof/symbol":  http.StatusOK,
			"/debug/pprof/cmdline": http.StatusNotFound,
			"/":                    http.StatusNotFound,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			m.TokenIssued()
			srv, err := m.Listen("127.0.0.1:0", metrics.ServerConfig{PProf: tc.pprof})
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve() }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := srv.Shutdown(ctx); err != nil {
					t.Error(err)
				}
				if err := <-served; err != nil {
					t.Error(err)
				}
			})
			base := "http://" + srv.Addr().String()
			for path, want := range tc.want {
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
				}
				if path == "/metrics" && !strings.Contains(string(body), "natter_tokens_issued_total 1\n") {
					t.Errorf("/metrics lacks natter_tokens_issued_total 1:\n%s", body)
				}
			}
		})
	}
}

func TestListenBusyAddress(t *testing.T) {
	m := metrics.New()
	srv, err := m.Listen("127.0.0.1:0", metrics.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if _, err := metrics.New().Listen(srv.Addr().String(), metrics.ServerConfig{}); err == nil || !strings.Contains(err.Error(), srv.Addr().String()) {
		t.Fatalf("second listener on %s: %v, want an error naming the address", srv.Addr(), err)
	}
}

// TestDependencies keeps the package a leaf: the TVM and the gateway use it,
// so it must use neither, nor echo or the NATS server.
func TestDependencies(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range []string{"github.com/natterchat/natter/tvm", "github.com/natterchat/natter/gateway", "github.com/labstack/echo", "github.com/nats-io/nats-server", "github.com/nats-io/nats.go"} {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("metrics imports %s", dep)
			}
		}
	}
}
