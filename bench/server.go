package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the natter a scenario runs against.
type Server interface {
	// URL is the TVM's base URL.
	URL() string
	// Usage is what the server's process has used so far; an error that
	// wraps ErrNoUsage when it is not measured.
	Usage(ctx context.Context) (Usage, error)
	// Close stops a natter the benchmark started and leaves others be.
	Close() error
	// String names the server in the report.
	String() string
}

// Usage is what a process has used so far.
type Usage struct {
	CPU time.Duration // user and system CPU time
	RSS int64         // resident set size, bytes
}

// ErrNoUsage says that the server's CPU and memory are not measured.
var ErrNoUsage = errors.New("the server's CPU and memory are not measured")

// Remote is a natter the benchmark did not start. Its usage is read from
// MetricsURL, which serves the standard process collector's
// process_cpu_seconds_total and process_resident_memory_bytes in the
// Prometheus text format; without it, usage is not measured.
type Remote struct {
	BaseURL    string
	MetricsURL string
}

func (r *Remote) URL() string    { return r.BaseURL }
func (r *Remote) Close() error   { return nil }
func (r *Remote) String() string { return r.BaseURL }

// Usage reads the server's metrics.
func (r *Remote) Usage(ctx context.Context) (Usage, error) {
	if r.MetricsURL == "" {
		return Usage{}, fmt.Errorf("%w: no metrics URL of the running natter given", ErrNoUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.MetricsURL, nil)
	if err != nil {
		return Usage{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Usage{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Usage{}, fmt.Errorf("GET %s: status %d", r.MetricsURL, resp.StatusCode)
	}
	u, err := parseProcessMetrics(resp.Body)
	if err != nil {
		return Usage{}, fmt.Errorf("%s: %w", r.MetricsURL, err)
	}
	return u, nil
}

// parseProcessMetrics reads process_cpu_seconds_total and
// process_resident_memory_bytes from the Prometheus text format: lines of
// a name, optional {labels}, a value and an optional timestamp.
func parseProcessMetrics(r io.Reader) (Usage, error) {
	var u Usage
	var haveCPU, haveRSS bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				rest = line[j+1:]
			}
		}
		if name != "process_cpu_seconds_total" && name != "process_resident_memory_bytes" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return u, fmt.Errorf("%s has no value", name)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return u, fmt.Errorf("%s: %w", name, err)
		}
		if name == "process_cpu_seconds_total" {
			u.CPU, haveCPU = time.Duration(v*float64(time.Second)), true
		} else {
			u.RSS, haveRSS = int64(v), true
		}
	}
	if err := sc.Err(); err != nil {
		return u, err
	}
	if !haveCPU || !haveRSS {
		return u, errors.New("no process_cpu_seconds_total or process_resident_memory_bytes: is the process collector registered?")
	}
	return u, nil
}

// ProcessConfig says how to start natter as a child process.
type ProcessConfig struct {
	Path string    // the natter executable
	Args []string  // its arguments, e.g. serve -http-addr 127.0.0.1:0 …
	Env  []string  // its whole environment
	Dir  string    // its working directory
	Log  io.Writer // receives the child's warnings and errors
}

// Process is natter running as a child process of the benchmark.
type Process struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed once the process has exited
	err  error         // Wait's, once done is closed
	tail *tail
}

// processStartTimeout bounds the wait for a child natter's TVM to listen.
const processStartTimeout = 60 * time.Second

// processStopTimeout bounds a child natter's graceful stop: its own
// shutdown takes 5 s at most, closing many connections adds some.
const processStopTimeout = 20 * time.Second

// maxLogLines is how many of a child natter's warnings and errors are
// shown.
const maxLogLines = 20

// httpListeningRE matches natter's log line once the TVM serves: by then
// the gateway and JetStream are ready.
var httpListeningRE = regexp.MustCompile(`msg="http listening \(TVM API\)".*\burl=(\S+)`)

// StartProcess starts natter and returns once its TVM serves, learning its
// URL from its log (which must be at level info at least).
func StartProcess(ctx context.Context, c ProcessConfig) (*Process, error) {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), tail: &tail{max: 30}}
	found := make(chan string, 1)
	logw := c.Log
	if logw == nil {
		logw = io.Discard
	}
	go func() {
		pid := cmd.Process.Pid
		shown, hidden := 0, 0
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.tail.add(line)
			if m := httpListeningRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			// On loopback, WebSockets without TLS are what is meant.
			if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") || strings.Contains(line, "Websocket not configured with TLS") {
				continue
			}
			// Under load nats-server may warn about every connection:
			// the first few tell what happens.
			if shown < maxLogLines {
				shown++
				fmt.Fprintf(logw, "natter[%d]: %s\n", pid, line)
			} else {
				hidden++
			}
		}
		// Drain what a too long line left, so the child never blocks.
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		if hidden > 0 {
			fmt.Fprintf(logw, "natter[%d]: %d more warnings and errors not shown\n", pid, hidden)
		}
		close(p.done)
	}()
	timer := time.NewTimer(processStartTimeout)
	defer timer.Stop()
	select {
	case p.url = <-found:
		if err := CheckLoopback(p.url); err != nil {
			p.Close()
			return nil, err
		}
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("natter exited before serving: %v; its last lines:\n%s", p.err, p.tail)
	case <-timer.C:
		p.Close()
		return nil, fmt.Errorf("natter did not serve within %s; its last lines:\n%s", processStartTimeout, p.tail)
	case <-ctx.Done():
		p.Close()
		return nil, ctx.Err()
	}
}

func (p *Process) URL() string    { return p.url }
func (p *Process) Pid() int       { return p.cmd.Process.Pid }
func (p *Process) String() string { return fmt.Sprintf("%s (pid %d)", p.url, p.Pid()) }

// Usage reads the child's CPU time and RSS from the operating system.
func (p *Process) Usage(ctx context.Context) (Usage, error) {
	select {
	case <-p.done:
		return Usage{}, fmt.Errorf("natter (pid %d) has exited: %v", p.Pid(), p.err)
	default:
	}
	return processUsage(p.Pid())
}

// Close interrupts natter as Ctrl-C does and waits for it to exit, killing
// it after processStopTimeout. An exit other than a clean one is an error.
func (p *Process) Close() error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("natter (pid %d) exited before it was stopped: %v; its last lines:\n%s", p.Pid(), p.err, p.tail)
		}
		return fmt.Errorf("natter (pid %d) exited before it was stopped; its last lines:\n%s", p.Pid(), p.tail)
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		// No interrupt on this system (Windows): kill.
		p.cmd.Process.Kill()
		<-p.done
		return nil
	}
	timer := time.NewTimer(processStopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("natter (pid %d) after an interrupt: %v; its last lines:\n%s", p.Pid(), p.err, p.tail)
		}
		return nil
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("natter (pid %d) still running %s after an interrupt: killed", p.Pid(), processStopTimeout)
	}
}

// tail keeps the last lines of a log.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// meter measures a server's CPU time over a span of a scenario.
type meter struct {
	srv Server
	u0  Usage
	ok  bool
}

func startMeter(ctx context.Context, srv Server) *meter {
	u, err := srv.Usage(ctx)
	return &meter{srv: srv, u0: u, ok: err == nil}
}

// cpu is the server's CPU time since startMeter; ok is false when it is
// not measured.
func (m *meter) cpu(ctx context.Context) (d time.Duration, ok bool) {
	if !m.ok {
		return 0, false
	}
	u, err := m.srv.Usage(ctx)
	if err != nil {
		return 0, false
	}
	return u.CPU - m.u0.CPU, true
}

// serverCPU adds the figures "<prefix>server CPU" and, for work done in
// that time, "<prefix><what>/server CPU-s", when the CPU time is measured.
func (s *Scenario) serverCPU(prefix string, cpu time.Duration, ok bool, what string, work float64) {
	if !ok {
		return
	}
	s.fig(prefix+"server CPU", cpu.Seconds(), "s")
	s.fig(prefix+what+"/server CPU-s", ratio(work, cpu.Seconds()), "")
}
