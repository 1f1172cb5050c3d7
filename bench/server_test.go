package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseProcessMetrics(t *testing.T) {
	const collector = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.5056e+07
go_goroutines 42
`
	cases := []struct {
		name    string
		text    string
		want    Usage
		wantErr string
	}{
		{"process collector", collector, Usage{CPU: 12340 * time.Millisecond, RSS: 45056000}, ""},
		{"labels and a timestamp", "process_cpu_seconds_total{job=\"natter\"} 1.5 1700000000000\nprocess_resident_memory_bytes{job=\"natter\"} 1024\n", Usage{CPU: 1500 * time.Millisecond, RSS: 1024}, ""},
		{"a longer name is another metric", "process_cpu_seconds_total_x 9\nprocess_cpu_seconds_total 1\nprocess_resident_memory_bytes 2\n", Usage{CPU: time.Second, RSS: 2}, ""},
		{"no process collector", "go_goroutines 42\n", Usage{}, "process collector"},
		{"no RSS", "process_cpu_seconds_total 1\n", Usage{}, "process collector"},
		{"no value", "process_cpu_seconds_total\n", Usage{}, "no value"},
		{"not a number", "process_resident_memory_bytes lots\n", Usage{}, "process_resident_memory_bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcessMetrics(strings.NewReader(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestRemoteUsage(t *testing.T) {
	cpu := 1.0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "process_cpu_seconds_total %g\nprocess_resident_memory_bytes 1048576\n", cpu)
		cpu += 0.25
	}))
	defer srv.Close()
	r := &Remote{BaseURL: "http://127.0.0.1:1", MetricsURL: srv.URL + "/metrics"}
	m := startMeter(context.Background(), r)
	d, ok := m.cpu(context.Background())
	if !ok || d != 250*time.Millisecond {
		t.Fatalf("cpu = %v, %v; want 250ms", d, ok)
	}
	u, err := r.Usage(context.Background())
	if err != nil || u.RSS != 1<<20 {
		t.Fatalf("usage = %+v, %v", u, err)
	}
	if _, err := (&Remote{BaseURL: "http://127.0.0.1:1"}).Usage(context.Background()); !errors.Is(err, ErrNoUsage) {
		t.Fatalf("without a metrics URL: %v, want ErrNoUsage", err)
	}
}

func TestProcessUsageOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	u0, err := processUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has counted some CPU time, at most 5 s.
	var u Usage
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		for i := 0; i < 1e6; i++ {
			_ = strings.Repeat("x", i%7)
		}
		if u, err = processUsage(os.Getpid()); err != nil || u.CPU > u0.CPU {
			break
		}
	}
	if err != nil || u.CPU <= u0.CPU || u.RSS < 1<<20 {
		t.Fatalf("usage %+v then %+v, %v: want CPU time counted and an RSS of a MiB at least", u0, u, err)
	}
	limit, open, err := openFiles(os.Getpid())
	if err != nil || limit <= 0 || open <= 0 || open > limit {
		t.Fatalf("open files: limit %d, open %d, %v", limit, open, err)
	}
}
