// Package bench drives a running natter with real clients (the client
// package: own nkeys, vended tokens, NATS over WebSocket) and measures it
// against its limits in the same run: signing JWTs in process for the TVM,
// plain core-NATS messages for the message pipeline. It only talks to
// loopback addresses, and every loop is bounded in count and in time.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Options selects the scenarios and their parameters.
type Options struct {
	// Start gives the natter a scenario runs against: a fresh one it
	// starts, or one already running (whose Close leaves it be), on a
	// loopback address.
	Start       func(ctx context.Context, scenario string) (Server, error)
	Scenarios   []string // tokens, join, fanout, connections; empty for all
	Tokens      TokensOptions
	Join        JoinOptions
	Fanout      FanoutOptions
	Connections ConnectionsOptions
}

// Report is the whole result: where it ran, on what, and the figures.
type Report struct {
	Machine   Machine     `json:"machine"`
	Commit    string      `json:"commit"`
	Command   string      `json:"command"`
	Target    string      `json:"target"`
	Notes     []string    `json:"notes,omitempty"`
	Scenarios []*Scenario `json:"scenarios"`
}

// Machine describes the host the benchmark ran on.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	OS         string `json:"os"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, GOMAXPROCS %d, %s %s", m.CPU, m.Cores, m.GOMAXPROCS, m.Go, m.OS)
}

// Scenario is one scenario's parameters and figures, in the order measured.
type Scenario struct {
	Name    string   `json:"name"`
	Server  string   `json:"server,omitempty"` // the natter measured
	Params  []Param  `json:"params"`
	Notes   []string `json:"notes,omitempty"`
	Figures []Figure `json:"figures"`
	Err     string   `json:"error,omitempty"`
}

// Param is a scenario parameter.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Figure is a measured value.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

func (s *Scenario) param(name string, v any) { s.Params = append(s.Params, Param{name, fmt.Sprint(v)}) }

func (s *Scenario) note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

func (s *Scenario) fig(name string, v float64, unit string) {
	s.Figures = append(s.Figures, Figure{name, v, unit})
}

// Figure returns the value of the named figure and whether it exists.
func (s *Scenario) Figure(name string) (float64, bool) {
	for _, f := range s.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// Scenario returns the named scenario of r, or nil.
func (r *Report) Scenario(name string) *Scenario {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Names of the scenarios, in the order they run.
var Names = []string{"tokens", "join", "fanout", "connections"}

// CheckLoopback refuses a URL whose host is not a loopback address.
func CheckLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return fmt.Errorf("%s: want an http(s) or ws(s) URL", rawURL)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: the benchmark only targets loopback addresses (localhost, 127.0.0.0/8, ::1)", rawURL)
}

// Run runs the selected scenarios, each against the natter o.Start gives
// it. A scenario that fails is reported with its error; the others still
// run.
func Run(ctx context.Context, o Options, r *Report) error {
	sel := o.Scenarios
	if len(sel) == 0 {
		sel = Names
	}
	for _, n := range sel {
		if !slices.Contains(Names, n) {
			return fmt.Errorf("unknown scenario %q: want %s", n, strings.Join(Names, ", "))
		}
	}
	noUsage := false
	for _, n := range Names {
		if !slices.Contains(sel, n) || ctx.Err() != nil {
			continue
		}
		srv, err := o.Start(ctx, n)
		if err != nil {
			r.Scenarios = append(r.Scenarios, &Scenario{Name: n, Err: "start natter: " + err.Error()})
			continue
		}
		if err := CheckLoopback(srv.URL()); err != nil {
			srv.Close()
			return err
		}
		if _, err := srv.Usage(ctx); err != nil && !noUsage {
			noUsage = true
			r.Notes = append(r.Notes, "no server CPU or memory figures: "+err.Error())
		}
		var s *Scenario
		switch n {
		case "tokens":
			s, err = runTokens(ctx, srv, o.Tokens.withDefaults())
		case "join":
			s, err = runJoin(ctx, srv, o.Join.withDefaults())
		case "fanout":
			s, err = runFanout(ctx, srv, o.Fanout.withDefaults())
		case "connections":
			s, err = runConnections(ctx, srv, o.Connections.withDefaults())
		}
		if s == nil {
			s = &Scenario{Name: n}
		}
		s.Server = srv.String()
		if cerr := srv.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stop natter: %w", cerr))
		}
		if err != nil {
			s.Err = err.Error()
		}
		r.Scenarios = append(r.Scenarios, s)
	}
	return ctx.Err()
}

// setupWorkers is how many rooms or clients are set up side by side.
const setupWorkers = 8

// parallel calls f(i) for each i in [0, n) on at most workers goroutines.
// It starts no more calls after the first error, which it returns, or
// once ctx ends.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= n || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, ok := take(); ok; i, ok = take() {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// NewReport describes this machine and this build of natter.
func NewReport(args []string) *Report {
	return &Report{Machine: ThisMachine(), Commit: Commit(), Command: strings.Join(args, " ")}
}

// ThisMachine reads the CPU model from /proc/cpuinfo (Linux).
func ThisMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Commit is the natter revision: stamped by go build, else that of the git
// checkout in the working directory, else "unknown".
func Commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += " (modified)"
			}
			return rev
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += " (modified)"
	}
	return rev
}

// WriteTable prints r for people.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "machine:  %s\n", r.Machine)
	fmt.Fprintf(&b, "commit:   %s\n", r.Commit)
	fmt.Fprintf(&b, "command:  %s\n", r.Command)
	fmt.Fprintf(&b, "target:   %s\n", r.Target)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note:     %s\n", n)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		var ps []string
		for _, p := range s.Params {
			ps = append(ps, p.Name+"="+p.Value)
		}
		fmt.Fprintf(w, "\n%s (%s)\n", s.Name, strings.Join(ps, " "))
		if s.Server != "" {
			fmt.Fprintf(w, "  server: %s\n", s.Server)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		if s.Err != "" {
			fmt.Fprintf(w, "  error: %s\n", s.Err)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, f := range s.Figures {
			fmt.Fprintf(tw, "  %s\t%s\t %s\t\n", f.Name, formatValue(f.Value), f.Unit)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// latencies collects durations, at most max of them (the rest are counted
// into Max only).
type latencies struct {
	d   []time.Duration
	max time.Duration
	n   int
}

const maxSamples = 4 << 20

func (l *latencies) add(d time.Duration) {
	l.n++
	if d > l.max {
		l.max = d
	}
	if len(l.d) < maxSamples {
		l.d = append(l.d, d)
	}
}

func (l *latencies) merge(o *latencies) {
	l.n += o.n
	l.max = max(l.max, o.max)
	room := maxSamples - len(l.d)
	l.d = append(l.d, o.d[:min(room, len(o.d))]...)
}

// quantile in milliseconds (0 when empty: JSON has no NaN).
func (l *latencies) quantile(q float64) float64 {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return ms(s[max(0, min(i, len(s)-1))])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func per(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
