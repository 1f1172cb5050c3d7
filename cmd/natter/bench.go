package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/natterchat/natter/bench"
)

// benchSendRate is the per-sender message rate of the natter the benchmark
// starts: high enough that the pipeline, not the limit, is measured.
const benchSendRate = 1_000_000

// benchCmd runs `natter bench`: against a natter it starts itself, as a
// child process per scenario (this executable's serve) on loopback random
// ports with the rate limits lifted, or against a running one on a
// loopback address given with -url.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("natter bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	target := fs.String("url", "", "TVM URL of a running natter on a loopback address (default: start one per scenario)")
	metricsURL := fs.String("metrics-url", "", "with -url: that natter's metrics URL on a loopback address, from which its CPU time and RSS are read (process_cpu_seconds_total, process_resident_memory_bytes)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	scenarios := fs.String("scenarios", strings.Join(bench.Names, ","), "comma-separated scenarios to run")
	fs.IntVar(&o.Tokens.Clients, "token-clients", 8, "tokens: concurrent HTTP clients")
	fs.DurationVar(&o.Tokens.Duration, "token-duration", 10e9, "tokens: how long they ask, and how long the in-process signing runs")
	fs.IntVar(&o.Join.History, "join-history", 500, "join: messages in the room's history beforehand")
	fs.IntVar(&o.Join.Joins, "joins", 200, "join: joins measured")
	fs.IntVar(&o.Fanout.Rooms, "rooms", 50, "fanout: rooms")
	fs.IntVar(&o.Fanout.Members, "members", 20, "fanout: members per room, each its own connection")
	fs.IntVar(&o.Fanout.Senders, "senders", 1, "fanout: senders per room")
	fs.Float64Var(&o.Fanout.Rate, "rate", 1000, "fanout: total messages per second of the fixed-rate phases")
	fs.DurationVar(&o.Fanout.Duration, "fanout-duration", 5e9, "fanout: length of each of the four phases")
	fs.IntVar(&o.Fanout.Size, "size", 100, "fanout: bytes per message")
	fs.IntVar(&o.Fanout.Window, "window", 8, "fanout: sends in flight per sender when sending as fast as acks allow")
	fs.IntVar(&o.Connections.Clients, "conn-clients", 10_000, "connections: idle clients, each its own key, token and connection")
	fs.IntVar(&o.Connections.RoomSize, "conn-room-size", 20, "connections: clients per room")
	fs.IntVar(&o.Connections.Concurrency, "conn-concurrency", 32, "connections: connects in flight at once")
	fs.DurationVar(&o.Connections.TokenTTL, "conn-token-ttl", time.Minute, "connections: life the clients ask for their first tokens (expires_in, whole seconds); the storm begins when they expire, and the renewed tokens live natter's full lifetime")
	fs.Float64Var(&o.Connections.StormRate, "storm-rate", 200, "connections: messages per second the senders send around the reconnect storm, in all")
	fs.DurationVar(&o.Connections.StormWait, "storm-wait", 3*time.Minute, "connections: longest wait for the tokens to expire after connecting; beyond it, no storm")
	dataDir := fs.String("data-dir", "", "directory for the data of the natters the benchmark starts, a subdirectory per scenario (default: a temporary one, removed after)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	report := bench.NewReport(append([]string{"natter", "bench"}, args...))
	switch {
	case *target != "":
		if err := bench.CheckLoopback(*target); err != nil {
			return err
		}
		if *metricsURL != "" {
			if err := bench.CheckLoopback(*metricsURL); err != nil {
				return err
			}
		}
		srv := &bench.Remote{BaseURL: *target, MetricsURL: *metricsURL}
		o.Start = func(context.Context, string) (bench.Server, error) { return srv, nil }
		report.Target = *target
		report.Notes = append(report.Notes, "running natter at "+*target+": its rate limits apply (per address, per key, per sender), refusals count as such, and its token lifetime bounds what a scenario may ask")
	case *metricsURL != "":
		return errors.New("-metrics-url goes with -url: the natter the benchmark starts is measured from /proc")
	default:
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		root := *dataDir
		if root == "" {
			tmp, err := os.MkdirTemp("", "natter-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			root = tmp
		}
		o.Start = func(ctx context.Context, scenario string) (bench.Server, error) {
			dir := filepath.Join(root, scenario)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			return bench.StartProcess(ctx, bench.ProcessConfig{
				Path: exe,
				Args: append([]string{"serve"}, benchArgs(filepath.Join(dir, "data"))...),
				Env:  benchEnv(os.Environ()),
				Dir:  dir,
				Log:  stderr,
			})
		}
		report.Target = exe + " serve, a child process per scenario"
		report.Notes = append(report.Notes, fmt.Sprintf(
			"natter started by the benchmark as a child process per scenario, on loopback random ports: token limits per address and per key off, send rate raised to %d/s per sender, rooms per hour raised; the server's CPU time and RSS are read from /proc/<pid>, the clients' are not in them",
			benchSendRate))
	}
	runErr := bench.Run(ctx, o, report)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else if err := report.WriteTable(stdout); err != nil {
		return err
	}
	var errs []error
	for _, s := range report.Scenarios {
		if s.Err != "" {
			errs = append(errs, fmt.Errorf("%s: %s", s.Name, s.Err))
		}
	}
	return errors.Join(append([]error{runErr}, errs...)...)
}

// benchArgs are the flags of a natter on random loopback ports with its
// data in dir, with the limits that would measure themselves instead of
// natter lifted. It logs at level info: its "http listening" line tells
// its URL.
func benchArgs(dir string) []string {
	rate := strconv.Itoa(benchSendRate)
	return []string{
		"-http-addr", "127.0.0.1:0",
		"-ws-addr", "127.0.0.1:0",
		"-nats-addr", "127.0.0.1:0",
		"-data-dir", dir,
		"-replicas", "1",
		"-log-level", "info",
		"-token-rate", "0",
		"-token-key-rate", "0",
		"-max-connections", "100000",
		"-rooms-per-hour", "1000000",
		"-send-rate", rate,
		"-send-burst", rate,
	}
}

// benchEnv is env without NATTER_* variables, so that only benchArgs
// configure the natter the benchmark starts.
func benchEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NATTER_") {
			out = append(out, kv)
		}
	}
	return out
}
