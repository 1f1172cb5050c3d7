package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/natterchat/natter/bench"
)

// TestBenchTiny runs every scenario of natter bench at a tiny scale so that
// the benchmark cannot rot: the real binary, which starts itself as the
// natter of each scenario. It checks the report's shape, that its counts
// agree with each other and that the server's CPU time was measured where
// it worked, never any timing.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs natter bench for half a minute")
	}
	bin := buildBinary(t, "natter", ".")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"bench", "-json",
		"-token-clients", "2", "-token-duration", "1s",
		"-join-history", "20", "-joins", "5",
		"-rooms", "2", "-members", "3", "-senders", "2", "-rate", "50", "-fanout-duration", "300ms",
		"-conn-clients", "20", "-conn-room-size", "5", "-conn-token-ttl", "5s", "-storm-rate", "50"}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = benchEnv(os.Environ())
	var out bytes.Buffer
	var errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("natter bench: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var r bench.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("decode the report: %v\n%s", err, out.String())
	}
	if r.Machine.Cores <= 0 || r.Machine.GOMAXPROCS <= 0 || !strings.HasPrefix(r.Machine.Go, "go") || r.Machine.CPU == "" {
		t.Errorf("machine = %+v", r.Machine)
	}
	if r.Commit == "" || !strings.HasPrefix(r.Command, "natter bench -json") || !strings.Contains(r.Target, "child process") {
		t.Errorf("commit %q, command %q, target %q", r.Commit, r.Command, r.Target)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "send rate raised") || !strings.Contains(r.Notes[0], "/proc") {
		t.Errorf("notes = %q, want only the lifted limits and where the server's figures come from", r.Notes)
	}
	if len(r.Scenarios) != 4 {
		t.Fatalf("%d scenarios, want 4", len(r.Scenarios))
	}
	pids := map[string]bool{}
	for _, s := range r.Scenarios {
		if !strings.HasPrefix(s.Server, "http://127.0.0.1:") || !strings.Contains(s.Server, "(pid ") || pids[s.Server] {
			t.Errorf("%s ran against %q, want a natter of its own on loopback", s.Name, s.Server)
		}
		pids[s.Server] = true
	}
	fig := func(s *bench.Scenario, name string) float64 {
		t.Helper()
		v, ok := s.Figure(name)
		if !ok {
			t.Fatalf("%s: no figure %q", s.Name, name)
		}
		return v
	}
	// positive is for the server's CPU time where it surely worked: the
	// kernel counts it in 10 ms ticks.
	positive := func(s *bench.Scenario, names ...string) {
		t.Helper()
		for _, n := range names {
			if v := fig(s, n); !(v > 0) {
				t.Errorf("%s: %s = %v, want > 0", s.Name, n, v)
			}
		}
	}

	tok := r.Scenario("tokens")
	if tok == nil || tok.Err != "" {
		t.Fatalf("tokens = %+v", tok)
	}
	positive(tok, "tokens", "tokens/s", "in-process signing", "http / signing", "server CPU", "tokens/server CPU-s")
	if fig(tok, "errors") != 0 || fig(tok, "rate limited") != 0 {
		t.Errorf("token errors: %+v", tok.Figures)
	}

	join := r.Scenario("join")
	if join == nil || join.Err != "" {
		t.Fatalf("join = %+v", join)
	}
	if fig(join, "joins") != 5 || fig(join, "failed") != 0 {
		t.Errorf("join figures = %+v", join.Figures)
	}
	if n := fig(join, "history entries (fewest)"); n < 20 {
		t.Errorf("a join got %v history entries, want the 20 messages at least", n)
	}
	if fig(join, "history p99") > fig(join, "total p99") {
		t.Errorf("history part longer than the whole: %+v", join.Figures)
	}
	positive(join, "server CPU", "joins/server CPU-s")

	fan := r.Scenario("fanout")
	if fan == nil || fan.Err != "" {
		t.Fatalf("fanout = %+v", fan)
	}
	const members = 3
	for _, ph := range []string{"natter fixed", "natter max", "raw fixed", "raw max"} {
		sent, accepted, delivered := fig(fan, ph+": sent"), fig(fan, ph+": accepted"), fig(fan, ph+": delivered")
		refused := 0.0
		if strings.HasPrefix(ph, "natter") {
			refused = fig(fan, ph+": refused")
		}
		if sent <= 0 || accepted > sent {
			t.Errorf("%s: sent %v, accepted %v", ph, sent, accepted)
		}
		if refused != 0 {
			t.Errorf("%s: %v refused by the benchmark's own natter, whose limits are lifted", ph, refused)
		}
		if refused == 0 && fig(fan, ph+": failed") == 0 && delivered != accepted*members {
			t.Errorf("%s: delivered %v, want accepted %v × %d members", ph, delivered, accepted, members)
		}
		// A fixed-rate phase of 300 ms may take less than a tick.
		if v := fig(fan, ph+": server CPU"); v < 0 || fig(fan, ph+": delivered/server CPU-s") < 0 {
			t.Errorf("%s: server CPU %v", ph, v)
		}
	}
	positive(fan, "natter/raw delivered/s at max", "natter max: server CPU", "raw max: server CPU",
		"natter max: delivered/server CPU-s", "natter/raw delivered/server CPU-s at max")
	fig(fan, "natter/raw delivered/server CPU-s at fixed rate")

	conn := r.Scenario("connections")
	if conn == nil || conn.Err != "" {
		t.Fatalf("connections = %+v", conn)
	}
	if fig(conn, "connected") != 20 || fig(conn, "connect failed") != 0 {
		t.Errorf("connections figures = %+v", conn.Figures)
	}
	positive(conn, "connects/s", "connect p50", "connect p99", "connect: server CPU", "connect: connects/server CPU-s",
		"server RSS before", "server RSS after", "storm: all back and caught up after", "storm: server CPU", "storm: acked during")
	fig(conn, "server RSS per connection")
	for _, f := range []string{"storm: disconnected", "storm: reconnected", "storm: tokens renewed"} {
		if v := fig(conn, f); v < 20 {
			t.Errorf("%s = %v, want every one of the 20 clients", f, v)
		}
	}
	if lost := fig(conn, "storm: lost"); lost != 0 {
		t.Errorf("%v acknowledged messages lost in the storm", lost)
	}
	if during, all := fig(conn, "storm: acked during"), fig(conn, "storm: acked in all"); during > all {
		t.Errorf("acked during the storm %v, more than in all %v", during, all)
	}
}

// TestBenchArgsAreAConfig parses the flags of the natter the benchmark
// starts as serve does, ignoring the environment: they must give the
// lifted limits, loopback random ports and the default token lifetime.
func TestBenchArgsAreAConfig(t *testing.T) {
	fs := flag.NewFlagSet("natter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := LoadConfig(fs, benchArgs("/tmp/d"), func(string) string { return "" }, "")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{HTTPAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", DataDir: "/tmp/d", TokenTTL: time.Hour,
		LogLevel: "info", TokenRate: 0, TokenKeyRate: 0, MaxConnections: 100000, RoomsPerHour: 1_000_000, SendRate: benchSendRate, SendBurst: benchSendRate}
	got := Config{HTTPAddr: cfg.HTTPAddr, WSAddr: cfg.WSAddr, NATSAddr: cfg.NATSAddr, DataDir: cfg.DataDir, TokenTTL: cfg.TokenTTL,
		LogLevel: cfg.LogLevel, TokenRate: cfg.TokenRate, TokenKeyRate: cfg.TokenKeyRate, MaxConnections: cfg.MaxConnections, RoomsPerHour: cfg.RoomsPerHour, SendRate: cfg.SendRate, SendBurst: cfg.SendBurst}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config\n got %+v\nwant %+v", got, want)
	}
	if cfg.NATSURL != "" {
		t.Errorf("NATSURL = %q, want the embedded server", cfg.NATSURL)
	}
	if env := benchEnv([]string{"PATH=/bin", "NATTER_NATS_URL=nats://elsewhere:4222", "HOME=/h"}); !reflect.DeepEqual(env, []string{"PATH=/bin", "HOME=/h"}) {
		t.Errorf("benchEnv kept %q", env)
	}
}

func TestBenchRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://example.com:8080", "http://10.0.0.1:8080", "ftp://127.0.0.1"} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"bench", "-url", u}, &out, &errOut)
		if err == nil {
			t.Errorf("natter bench -url %s: no error", u)
		}
	}
	for _, args := range [][]string{
		{"bench", "-url", "http://127.0.0.1:1", "-metrics-url", "http://example.com/metrics"},
		{"bench", "-metrics-url", "http://127.0.0.1:1/metrics"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("natter %s: no error", strings.Join(args, " "))
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080", "ws://127.0.0.1:8081"} {
		if err := bench.CheckLoopback(u); err != nil {
			t.Errorf("CheckLoopback(%s): %v", u, err)
		}
	}
	// The NATS servers a token names are checked too.
	if err := bench.CheckLoopback("wss://chat.example.com"); err == nil {
		t.Error("CheckLoopback accepted a WebSocket URL that is not on loopback")
	}
}
