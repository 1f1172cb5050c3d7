package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/natterchat/natter/bench"
)

// benchSendRate is the per-sender message rate of the natter the benchmark
// starts: high enough that the pipeline, not the limit, is measured.
const benchSendRate = 1_000_000

// benchCmd runs `natter bench`: against a natter it starts itself on
// loopback random ports with the rate limits lifted, or against a running
// one on a loopback address given with -url.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("natter bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	target := fs.String("url", "", "TVM URL of a running natter on a loopback address (default: start one)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	scenarios := fs.String("scenarios", strings.Join(bench.Names, ","), "comma-separated scenarios to run")
	fs.IntVar(&o.Tokens.Clients, "token-clients", 8, "tokens: concurrent HTTP clients")
	fs.DurationVar(&o.Tokens.Duration, "token-duration", 10e9, "tokens: how long they ask, and how long the in-process signing runs")
	fs.IntVar(&o.Join.History, "join-history", 500, "join: messages in the room's history beforehand")
	fs.IntVar(&o.Join.Joins, "joins", 200, "join: joins measured")
	fs.IntVar(&o.Fanout.Rooms, "rooms", 5, "fanout: rooms")
	fs.IntVar(&o.Fanout.Members, "members", 10, "fanout: members per room, each its own connection")
	fs.IntVar(&o.Fanout.Senders, "senders", 2, "fanout: senders per room")
	fs.Float64Var(&o.Fanout.Rate, "rate", 200, "fanout: total messages per second of the fixed-rate phases")
	fs.DurationVar(&o.Fanout.Duration, "fanout-duration", 5e9, "fanout: length of each of the four phases")
	fs.IntVar(&o.Fanout.Size, "size", 100, "fanout: bytes per message")
	fs.IntVar(&o.Fanout.Window, "window", 8, "fanout: sends in flight per sender when sending as fast as acks allow")
	dataDir := fs.String("data-dir", "", "data directory of the natter the benchmark starts (default: a temporary one, removed after)")
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
	if *target != "" {
		if err := bench.CheckLoopback(*target); err != nil {
			return err
		}
		o.BaseURL = *target
		report.Notes = append(report.Notes, "running natter at "+*target+": its rate limits apply (per address, per key, per sender), refusals count as such")
	} else {
		dir := *dataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "natter-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		m := &Main{Config: benchConfig(dir), Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		if err := m.Run(ctx); err != nil {
			m.Close()
			return err
		}
		defer m.Close()
		o.BaseURL = "http://" + m.HTTPAddr().String()
		report.Notes = append(report.Notes,
			"natter started by the benchmark (embedded NATS, one process with the clients): token limits per address and per key off, send rate raised to 1000000/s per sender, rooms per hour raised")
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

// benchConfig is a natter on random loopback ports in dir, with the limits
// that would measure themselves instead of natter lifted.
func benchConfig(dir string) Config {
	return Config{
		HTTPAddr:       "127.0.0.1:0",
		WSAddr:         "127.0.0.1:0",
		NATSAddr:       "127.0.0.1:0",
		DataDir:        dir,
		TokenTTL:       3600e9,
		Replicas:       1,
		LogLevel:       "warn",
		TokenRate:      0,
		TokenKeyRate:   0,
		MaxConnections: 100000,
		RoomsPerHour:   1_000_000,
		SendRate:       benchSendRate,
		SendBurst:      benchSendRate,
	}
}
