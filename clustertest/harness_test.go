//go:build cluster

package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter/gateway"
)

// The binaries every test runs, built once by TestMain.
var bins struct {
	natsServer, natter string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natter-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.natsServer = filepath.Join(dir, "nats-server")
	bins.natter = filepath.Join(dir, "natter")
	for _, b := range []struct{ out, pkg string }{
		{bins.natsServer, "github.com/nats-io/nats-server/v2"},
		{bins.natter, "github.com/natterchat/natter/cmd/natter"},
	} {
		if err := build(b.out, b.pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles pkg into out. -mod=readonly: the binaries are built from
// go.mod and go.sum as they are.
func build(out, pkg string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	if b, err := exec.Command(goBin, "build", "-mod=readonly", "-o", out, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago. The listeners are all open at once, so no two are the same.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// waitFor polls check every 50 ms until it returns nil, failing the test
// with what was expected and the last error once timeout has passed.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not so after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// asyncErrors collects a connection's asynchronous errors, which nats.go
// would otherwise print to stderr, and logs them when the test ends.
func asyncErrors(t *testing.T, who string) nats.Option {
	var (
		mu   sync.Mutex
		errs []string
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			t.Logf("%s: %d asynchronous errors: %s", who, len(errs), strings.Join(errs[:min(5, len(errs))], "; "))
		}
	})
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			err = fmt.Errorf("%w (subscription on %s)", err, sub.Subject)
		}
		mu.Lock()
		errs = append(errs, err.Error())
		mu.Unlock()
	})
}

// syncBuffer collects a process's output for the test log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[… %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// proc is a child process whose output is kept. A process is killed when
// its test ends, and dies with the test binary (see deathSignal).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed once it has exited
}

func startProc(t *testing.T, name string, out *syncBuffer, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = deathSignal()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	fmt.Fprintf(out, "=== test: started %s, pid %d\n", name, cmd.Process.Pid)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// signal sends sig and waits up to timeout for the process to exit; past
// it the process is killed and the test fails.
func (p *proc) signal(t *testing.T, sig os.Signal, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
	select {
	case <-p.done:
		return time.Since(start)
	case <-time.After(timeout):
		p.kill()
		t.Fatalf("%s still running %s after %s; killed it", p.name, timeout, sig)
		return 0
	}
}

// Cluster is three nats-server processes configured by
// gateway.InitCluster, with natter's buckets replicated on all three.
type Cluster struct {
	Files *gateway.ClusterFiles
	Nodes []*Node

	admin *nats.Conn // natter's service user: full rights in the chat account
	js    jetstream.JetStream
}

// Node is one nats-server of the cluster. It keeps its ports and store
// across restarts.
type Node struct {
	N           int
	conf        string // the generated configuration with a monitoring listener added
	ClientAddr  string
	WSURL       string
	MonitorAddr string
	logs        syncBuffer // every run's output
	proc        *proc
}

// StartCluster writes a three-node configuration on free loopback ports
// with gateway.InitCluster, starts the nodes and waits until JetStream has
// a meta leader and every node is healthy.
func StartCluster(t *testing.T) *Cluster {
	t.Helper()
	const n = 3
	addrs := freeAddrs(t, 4*n)
	cfg := gateway.ClusterConfig{
		Dir:          filepath.Join(t.TempDir(), "nats"),
		ClientAddrs:  addrs[0:n],
		ClusterAddrs: addrs[n : 2*n],
		WSAddrs:      addrs[2*n : 3*n],
	}
	files, err := gateway.InitCluster(cfg)
	if err != nil {
		t.Fatalf("InitCluster: %v", err)
	}
	if len(files.ServerConfs) != n || len(files.NATSURLs) != n || len(files.WSURLs) != n {
		t.Fatalf("InitCluster wrote %d configurations, %d NATS URLs and %d WebSocket URLs, want %d of each",
			len(files.ServerConfs), len(files.NATSURLs), len(files.WSURLs), n)
	}
	c := &Cluster{Files: files}
	for i := range n {
		node := &Node{N: i, ClientAddr: cfg.ClientAddrs[i], WSURL: files.WSURLs[i], MonitorAddr: addrs[3*n+i]}
		// The generated file, included as it is, and a monitoring listener
		// for /healthz. An include is relative to the including file.
		node.conf = strings.TrimSuffix(files.ServerConfs[i], ".conf") + "-test.conf"
		conf := fmt.Sprintf("include %q\nhttp: %q\n", filepath.Base(files.ServerConfs[i]), node.MonitorAddr)
		if err := os.WriteFile(node.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	t.Cleanup(func() {
		if c.admin != nil {
			c.admin.Close()
		}
		for _, node := range c.Nodes {
			if node.proc != nil {
				node.proc.kill()
			}
			if t.Failed() {
				t.Logf("nats-server node %d output:\n%s", node.N, tail(node.logs.String(), 60))
			}
		}
	})
	// All at once: a node alone has no JetStream quorum to wait for.
	for _, node := range c.Nodes {
		node.launch(t)
	}
	for _, node := range c.Nodes {
		node.waitListening(t)
	}
	admin, err := nats.Connect(strings.Join(files.NATSURLs, ","), nats.UserCredentials(files.Creds),
		nats.Name("clustertest admin"), asyncErrors(t, "the admin connection"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("connect to the cluster with natter's creds: %v", err)
	}
	c.admin = admin
	if c.js, err = jetstream.New(admin); err != nil {
		t.Fatal(err)
	}
	c.WaitHealthy(t, 60*time.Second)
	return c
}

func (n *Node) launch(t *testing.T) {
	t.Helper()
	n.proc = startProc(t, fmt.Sprintf("nats-server node %d", n.N), &n.logs, filepath.Dir(n.conf), os.Environ(), bins.natsServer, "-c", n.conf)
}

// waitListening waits until the node accepts client connections.
func (n *Node) waitListening(t *testing.T) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("nats-server node %d accepts connections on %s", n.N, n.ClientAddr), func() error {
		if n.proc.exited() {
			t.Fatalf("nats-server node %d exited during start (%v):\n%s", n.N, n.proc.cmd.ProcessState, tail(n.logs.String(), 40))
		}
		c, err := net.DialTimeout("tcp", n.ClientAddr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Running reports whether the node's process is up.
func (n *Node) Running() bool { return n.proc != nil && !n.proc.exited() }

// Kill9 kills the node with SIGKILL.
func (n *Node) Kill9(t *testing.T) {
	t.Helper()
	n.proc.kill()
}

// Stop asks the node to shut down with sig (SIGTERM or SIGINT) and waits
// until it has, at most 30 s.
func (n *Node) Stop(t *testing.T, sig os.Signal) time.Duration {
	t.Helper()
	return n.proc.signal(t, sig, 30*time.Second)
}

// Start starts a stopped node again, on the same ports and store.
func (n *Node) Start(t *testing.T) {
	t.Helper()
	if n.Running() {
		t.Fatalf("node %d is running already", n.N)
	}
	n.launch(t)
	n.waitListening(t)
}

// NodeOf is the node whose WebSocket URL is url, or -1.
func (c *Cluster) NodeOf(url string) int {
	for _, n := range c.Nodes {
		if n.WSURL == url {
			return n.N
		}
	}
	return -1
}

// WaitHealthy waits until every node is up and healthy (/healthz: current
// with the meta group and with every stream and consumer it holds),
// JetStream has a meta leader, and every stream and consumer of the chat
// account has a leader and all its replicas current.
func (c *Cluster) WaitHealthy(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, timeout, "every node healthy and every replica current", c.health)
}

func (c *Cluster) health() error {
	hc := http.Client{Timeout: 2 * time.Second}
	for _, n := range c.Nodes {
		if !n.Running() {
			return fmt.Errorf("node %d is not running", n.N)
		}
		resp, err := hc.Get("http://" + n.MonitorAddr + "/healthz")
		if err != nil {
			return fmt.Errorf("node %d /healthz: %w", n.N, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("node %d /healthz: %d %s", n.N, resp.StatusCode, bytes.TrimSpace(body))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream account info (needs a meta leader): %w", err)
	}
	streams := c.js.ListStreams(ctx)
	for info := range streams.Info() {
		if err := replicasCurrent("stream "+info.Config.Name, info.Config.Replicas, info.Cluster); err != nil {
			return err
		}
		s, err := c.js.Stream(ctx, info.Config.Name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", info.Config.Name, err)
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			replicas := ci.Config.Replicas
			if replicas == 0 {
				replicas = info.Config.Replicas
			}
			if err := replicasCurrent(fmt.Sprintf("consumer %s of %s", ci.Name, info.Config.Name), replicas, ci.Cluster); err != nil {
				return err
			}
		}
		if err := consumers.Err(); err != nil {
			return fmt.Errorf("consumers of %s: %w", info.Config.Name, err)
		}
	}
	return streams.Err()
}

// replicasCurrent checks that an asset has a leader and that each of its
// other replicas is online and current.
func replicasCurrent(what string, replicas int, ci *jetstream.ClusterInfo) error {
	switch {
	case ci == nil:
		return fmt.Errorf("%s: no cluster info", what)
	case ci.Leader == "":
		return fmt.Errorf("%s has no leader", what)
	case len(ci.Replicas) != replicas-1:
		return fmt.Errorf("%s: leader %s and %d other replicas, want %d in all", what, ci.Leader, len(ci.Replicas), replicas)
	}
	for _, r := range ci.Replicas {
		if r.Offline || !r.Current {
			return fmt.Errorf("%s: replica %s offline=%t current=%t lag=%d", what, r.Name, r.Offline, r.Current, r.Lag)
		}
	}
	return nil
}

// StreamLeader is the server name of the stream's leader.
func (c *Cluster) StreamLeader(t *testing.T, stream string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.Cluster.Leader
}

// NodeNamed is the node whose server_name is name ("natter-nats-<i>").
func (c *Cluster) NodeNamed(t *testing.T, name string) *Node {
	t.Helper()
	for _, n := range c.Nodes {
		if name == "natter-nats-"+strconv.Itoa(n.N) {
			return n
		}
	}
	t.Fatalf("no node named %q", name)
	return nil
}

// JetStream is a JetStream context with natter's service user.
func (c *Cluster) JetStream() jetstream.JetStream { return c.js }

// Natter is a natter process connected to the cluster.
type Natter struct {
	Base string // http://host:port of its TVM
	logs syncBuffer
	proc *proc
}

// StartNatter runs the natter binary against the cluster the way an
// operator would: the env file InitCluster wrote as its .env, with the
// process's own HTTP address, data dir and the given NATTER_* settings on
// top (the environment wins over .env). The test's own NATTER_* variables
// are not inherited. It returns once /readyz answers 200.
func (c *Cluster) StartNatter(t *testing.T, extra ...string) *Natter {
	t.Helper()
	work := t.TempDir()
	env, err := os.ReadFile(c.Files.Env)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, ".env"), env, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NATTER_REPLICAS=3", "NATTER_WS_URLS="} {
		if !bytes.Contains(env, []byte(want)) {
			t.Fatalf("%s lacks %s:\n%s", c.Files.Env, want, env)
		}
	}
	httpAddr := freeAddrs(t, 1)[0]
	var vars []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATTER_") {
			vars = append(vars, kv)
		}
	}
	vars = append(vars,
		"NATTER_HTTP_ADDR="+httpAddr,
		"NATTER_DATA_DIR="+filepath.Join(work, "data"),
		"NATTER_LOG_LEVEL=info",
		// The load comes from one address and a few keys.
		"NATTER_TOKEN_RATE=0",
		"NATTER_TOKEN_KEY_RATE=0",
		"NATTER_ROOMS_PER_HOUR=100",
		// Every sender sends as fast as the pipeline answers.
		"NATTER_SEND_RATE=10000",
		"NATTER_SEND_BURST=10000",
		// Keep every entry, and every member: the checks read it all.
		"NATTER_HISTORY_MAX=100000",
		"NATTER_PRESENCE_TTL=10m",
	)
	vars = append(vars, extra...)
	n := &Natter{Base: "http://" + httpAddr}
	n.proc = startProc(t, "natter "+httpAddr, &n.logs, work, vars, bins.natter)
	t.Cleanup(func() {
		n.proc.kill()
		if t.Failed() {
			t.Logf("natter %s log:\n%s", n.Base, tail(n.logs.String(), 60))
		}
	})
	hc := http.Client{Timeout: 2 * time.Second}
	waitFor(t, 30*time.Second, "natter "+n.Base+" /readyz answers 200", func() error {
		if n.proc.exited() {
			t.Fatalf("natter exited during start (%v):\n%s", n.proc.cmd.ProcessState, tail(n.logs.String(), 40))
		}
		resp, err := hc.Get(n.Base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d", resp.StatusCode)
		}
		return nil
	})
	return n
}

// Kill9 kills the natter process with SIGKILL.
func (n *Natter) Kill9() { n.proc.kill() }

// LogLines are the lines of natter's log that contain every one of parts.
func (n *Natter) LogLines(parts ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(n.logs.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
next:
	for sc.Scan() {
		for _, p := range parts {
			if !strings.Contains(sc.Text(), p) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}
