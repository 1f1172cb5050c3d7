package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/natterchat/natter/bench"
)

// TestBenchTiny runs every scenario of natter bench at a tiny scale so that
// the benchmark cannot rot. It checks the report's shape and that its
// counts agree with each other, never any timing.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs natter bench for several seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args := []string{"bench", "-json",
		"-token-clients", "2", "-token-duration", "1s",
		"-join-history", "20", "-joins", "5",
		"-rooms", "2", "-members", "3", "-senders", "2", "-rate", "50", "-fanout-duration", "300ms"}
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("natter bench: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var r bench.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("decode the report: %v\n%s", err, out.String())
	}
	if r.Machine.Cores <= 0 || r.Machine.GOMAXPROCS <= 0 || !strings.HasPrefix(r.Machine.Go, "go") || r.Machine.CPU == "" {
		t.Errorf("machine = %+v", r.Machine)
	}
	if r.Commit == "" || !strings.HasPrefix(r.Command, "natter bench -json") || !strings.HasPrefix(r.Target, "http://127.0.0.1:") {
		t.Errorf("commit %q, command %q, target %q", r.Commit, r.Command, r.Target)
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "send rate raised") {
		t.Errorf("notes = %q, want the lifted limits said", r.Notes)
	}
	if len(r.Scenarios) != 3 {
		t.Fatalf("%d scenarios, want 3", len(r.Scenarios))
	}
	fig := func(s *bench.Scenario, name string) float64 {
		t.Helper()
		v, ok := s.Figure(name)
		if !ok {
			t.Fatalf("%s: no figure %q", s.Name, name)
		}
		return v
	}

	tok := r.Scenario("tokens")
	if tok == nil || tok.Err != "" {
		t.Fatalf("tokens = %+v", tok)
	}
	if fig(tok, "tokens") <= 0 || fig(tok, "tokens/s") <= 0 || fig(tok, "in-process signing") <= 0 || fig(tok, "http / signing") <= 0 {
		t.Errorf("tokens figures = %+v", tok.Figures)
	}
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
	}
	if fig(fan, "natter/raw delivered/s at max") <= 0 {
		t.Errorf("fanout figures = %+v", fan.Figures)
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
