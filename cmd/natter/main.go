// Command natter runs the natter chat server: an embedded NATS (or a
// connection to an external one), the token vending machine and the gateway.
//
//	natter [flags]                 run the server
//	natter creds admin [-o FILE]   admin creds for the chat account (nats CLI)
//	natter token inspect JWT       explain a vended token
//	natter nats init [-dir DIR]    key material and config for an external NATS
//	                               (-cluster 3: for a cluster of three nodes)
//	natter bench [flags]           measure natter against its limits
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/natterchat/natter/frontend"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/memory"
	"github.com/natterchat/natter/metrics"
	"github.com/natterchat/natter/tvm"
)

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "natter:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "", "serve":
		return serve(ctx, args, stderr)
	case "creds":
		return credsCmd(args, stdout, stderr)
	case "token":
		return tokenCmd(args, stdout, stderr)
	case "nats":
		return natsCmd(args, stdout, stderr)
	case "bench":
		return benchCmd(ctx, args, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q: want serve, creds, token, nats or bench", cmd)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("natter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := LoadConfig(fs, args, os.Getenv, ".env")
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	m := &Main{Config: cfg, Logger: newLogger(stderr, cfg.LogLevel)}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	return m.Close()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// Main is a running natter: the gateway and the TVM, and the metrics
// listener when configured. Tests build one with a Config on port 0 and a
// temp data dir.
type Main struct {
	Config Config
	Logger *slog.Logger

	Gateway *gateway.Gateway
	TVM     *tvm.Server
	Metrics *metrics.Server // nil without NATTER_METRICS_ADDR
	served  chan error
	metered chan error
	release context.CancelFunc // stops returning memory to the OS
}

// releaseEvery is how often natter looks for free memory to return to the
// OS after a burst (package memory).
const releaseEvery = 15 * time.Second

// Run starts everything and returns once all listeners are bound and
// JetStream is ready. Call Close to stop.
func (m *Main) Run(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	c := m.Config
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return err
	}
	if c.PProf && c.MetricsAddr == "" {
		return errors.New("NATTER_PPROF serves profiles on the metrics listener: set NATTER_METRICS_ADDR too")
	}
	var mx *metrics.Metrics
	if c.MetricsAddr != "" {
		mx = metrics.New()
		if m.Metrics, err = mx.Listen(c.MetricsAddr, metrics.ServerConfig{PProf: c.PProf, Logger: m.Logger}); err != nil {
			return err
		}
		m.metered = make(chan error, 1)
		go func() { m.metered <- m.Metrics.Serve() }()
	}
	// The HTTP listener is bound first: its port is part of the WebSocket
	// origins allowed by default.
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", c.HTTPAddr, err)
	}
	httpPort := ln.Addr().(*net.TCPAddr).Port
	wsOrigins := c.wsOrigins(httpPort, tlsConfig != nil)
	var wsTLS *tls.Config
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		wsTLS = tlsConfig.Clone()
	}
	gw, err := gateway.Open(ctx, gateway.Config{
		DataDir:        c.DataDir,
		ClientAddr:     c.NATSAddr,
		WSAddr:         c.WSAddr,
		AllowedOrigins: wsOrigins,
		TLS:            wsTLS,
		URL:            c.NATSURL,
		CredsFile:      c.NATSCreds,
		SigningKeyFile: c.SigningKey,
		StoreKey:       c.StoreKey,
		MonitorAddr:    c.NATSMonitorAddr,
		Replicas:       c.replicas(),
		Limits:         gateway.UserLimits{MaxConns: int64(c.MaxConnections)},
		Chat:           c.chatConfig(),
		Metrics:        mx,
		Logger:         m.Logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	m.Gateway = gw
	m.TVM = tvm.New(tvm.Config{
		Account:        gw.Account(),
		SigningKey:     gw.SigningKey(),
		TokenTTL:       c.TokenTTL,
		Rooms:          gw,
		Users:          gw.Users(),
		Uploads:        gw.Uploads(),
		UploadMaxBytes: int64(c.UploadMaxBytes),
		UploadRate:     c.UploadRate,
		Servers:        c.WSURLs,
		WSPort:         gw.WebSocketPort(),
		WSTLS:          tlsConfig != nil,
		AllowedOrigins: c.AllowedOrigins,
		Rate:           rate.Limit(c.TokenRate),
		Burst:          c.TokenBurst,
		KeyRate:        rate.Limit(c.TokenKeyRate),
		KeyBurst:       c.TokenKeyBurst,
		Ready:          gw.Ready,
		App:            frontend.Handler(),
		Metrics:        mx,
		Logger:         m.Logger,
	})
	m.TVM.ListenOn(ln)
	m.served = make(chan error, 1)
	go func() { m.served <- m.TVM.Serve() }()
	rctx, release := context.WithCancel(context.Background())
	m.release = release
	go memory.Release(rctx, releaseEvery, m.Logger)

	ws, web := "ws", "http"
	if tlsConfig != nil {
		ws, web = "wss", "https"
	}
	if u := gw.ClientURL(); u != "" {
		m.Logger.Info("nats listening (operators, nats CLI)", "url", u, "creds", "natter creds admin -o admin.creds")
		m.Logger.Info("nats websocket listening (browsers)", "url", listenURL(ws, c.WSAddr, gw.WebSocketPort()), "origins", strings.Join(wsOrigins, ","))
	} else {
		m.Logger.Info("connected to external nats", "url", c.NATSURL, "connected", gw.Conn().ConnectedUrlRedacted(), "replicas", c.replicas())
	}
	m.Logger.Info("http listening (TVM API)", "url", listenURL(web, c.HTTPAddr, httpPort))
	if a := gw.MonitorAddr(); a != nil {
		m.Logger.Info("nats monitoring listening (/varz, /connz, /jsz)", "url", listenURL("http", c.NATSMonitorAddr, a.(*net.TCPAddr).Port))
	}
	if m.Metrics != nil {
		u := listenURL("http", c.MetricsAddr, m.Metrics.Addr().(*net.TCPAddr).Port)
		m.Logger.Info("metrics listening (Prometheus)", "url", u+"/metrics")
		if c.PProf {
			m.Logger.Info("pprof on", "url", u+"/debug/pprof/")
		}
	}
	if strings.HasPrefix(c.PublicURL, "https:") && tlsConfig == nil && len(c.WSURLs) == 0 {
		m.Logger.Warn("NATTER_PUBLIC_URL is https but tokens hand out ws:// URLs, which a page served over https may not open: set NATTER_WS_URLS=wss://…")
	}
	return nil
}

// listenURL is a URL a person can open for a listener configured as addr
// and bound to port: a wildcard host becomes localhost.
func listenURL(scheme, addr string, port int) string {
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// HTTPAddr is the TVM's bound address.
func (m *Main) HTTPAddr() net.Addr { return m.TVM.Addr() }

// MetricsAddr is the metrics listener's bound address, or nil when off.
func (m *Main) MetricsAddr() net.Addr {
	if m.Metrics == nil {
		return nil
	}
	return m.Metrics.Addr()
}

// Close stops accepting HTTP, waits for requests in flight, drains NATS and
// stops the embedded server, then the metrics listener (last, so a scrape
// sees the shutdown), all within shutdownTimeout.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if m.release != nil {
		m.release()
	}
	if m.TVM != nil {
		errs = append(errs, m.TVM.Shutdown(ctx))
		if m.served != nil {
			errs = append(errs, <-m.served)
		}
	}
	if m.Gateway != nil {
		errs = append(errs, m.Gateway.Close(ctx))
	}
	if m.Metrics != nil {
		errs = append(errs, m.Metrics.Shutdown(ctx))
		if m.metered != nil {
			errs = append(errs, <-m.metered)
		}
	}
	return errors.Join(errs...)
}

func credsCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: natter creds admin [-o FILE] [-ttl DURATION] [-data-dir DIR]"
	if len(args) == 0 || args[0] != "admin" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("natter creds admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the creds to FILE (mode 0600) instead of standard output")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the admin user; 0 for none")
	cfg, err := LoadConfig(fs, args[1:], os.Getenv, ".env")
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New(usage)
	}
	keys, err := gateway.LoadOrCreateKeys(filepath.Join(cfg.DataDir, "keys"))
	if err != nil {
		return err
	}
	creds, err := keys.UserCreds("admin", *ttl)
	if err != nil {
		return err
	}
	if *out == "" || *out == "-" {
		_, err = stdout.Write(creds)
		return err
	}
	if err := gateway.WriteSecret(*out, creds); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (mode 0600); use it with: nats --creds %s -s <natter's NATS URL, e.g. nats://%s> ...\n", *out, *out, cfg.NATSAddr)
	return nil
}

func tokenCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: natter token inspect [-data-dir DIR] JWT"
	if len(args) == 0 || args[0] != "inspect" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("natter token inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := LoadConfig(fs, args[1:], os.Getenv, ".env")
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(usage)
	}
	in := tvm.Inspection{MaxPayload: gateway.DefaultUserLimits.MaxPayload, MaxSubs: gateway.DefaultUserLimits.MaxSubs}
	// Only read keys that exist: inspecting must never create key material.
	if kp, err := gateway.ReadSeedFile(filepath.Join(cfg.DataDir, "keys", "tvm.nk")); err == nil {
		in.SigningKey, _ = kp.PublicKey()
	}
	return tvm.Explain(stdout, fs.Arg(0), in)
}

func natsCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: natter nats init [-dir DIR] [-cluster N [-cluster-listen HOST:PORT]] [-listen HOST:PORT] [-ws HOST:PORT] [-ws-url URL] [-allowed-origins LIST]"
	if len(args) == 0 || args[0] != "init" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("natter nats init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg           gateway.ExternalConfig
		nodes         int
		clusterListen string
	)
	fs.StringVar(&cfg.Dir, "dir", "nats", "folder to write into")
	fs.IntVar(&nodes, "cluster", 0, "write a configuration for each of N nodes of a NATS cluster (at least 3) instead of one server")
	fs.StringVar(&cfg.ClientAddr, "listen", "127.0.0.1:4222", "NATS client listen address of the server; with -cluster the first node's, the next nodes on the following ports, or a comma-separated address per node")
	fs.StringVar(&clusterListen, "cluster-listen", "127.0.0.1:6222", "with -cluster: route listen address of the first node, the next nodes on the following ports, or a comma-separated address per node")
	fs.StringVar(&cfg.WSAddr, "ws", "0.0.0.0:8081", "WebSocket listen address of the server; with -cluster as -listen")
	fs.StringVar(&cfg.WSURL, "ws-url", "", "WebSocket URL handed to browsers (default derived from -ws); with -cluster a comma-separated URL per node")
	fs.Func("allowed-origins", "comma-separated web origins the WebSocket listener accepts (default any)", func(v string) error {
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, splitList(v)...)
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New(usage)
	}
	// The hints are commands to paste into a shell: quote paths it would split.
	sh := func(s string) string {
		if !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
			return s
		}
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["cluster"] {
		if set["cluster-listen"] {
			return errors.New("-cluster-listen configures the routes of a cluster: give -cluster N too")
		}
		files, err := gateway.InitExternal(cfg)
		if err != nil {
			return err
		}
		dir := filepath.Dir(files.ServerConf)
		fmt.Fprintf(stdout, "wrote %s\n\nstart the server:  nats-server -c %s\nthen natter with:  set -a; . %s; set +a; natter\nadmin creds:       natter creds admin -data-dir %s -o admin.creds\n",
			dir, sh(files.ServerConf), sh(files.Env), sh(dir))
		return nil
	}
	if nodes < gateway.MinClusterNodes {
		return fmt.Errorf("-cluster %d: a cluster needs at least %d nodes", nodes, gateway.MinClusterNodes)
	}
	ccfg := gateway.ClusterConfig{Dir: cfg.Dir, AllowedOrigins: cfg.AllowedOrigins, Limits: cfg.Limits}
	for _, a := range []struct {
		flag, value string
		to          *[]string
	}{
		{"listen", cfg.ClientAddr, &ccfg.ClientAddrs},
		{"cluster-listen", clusterListen, &ccfg.ClusterAddrs},
		{"ws", cfg.WSAddr, &ccfg.WSAddrs},
	} {
		addrs, err := nodeAddrs(a.value, nodes)
		if err != nil {
			return fmt.Errorf("-%s: %w", a.flag, err)
		}
		*a.to = addrs
	}
	if cfg.WSURL != "" {
		if ccfg.WSURLs = splitList(cfg.WSURL); len(ccfg.WSURLs) != nodes {
			return fmt.Errorf("-ws-url: %d URLs for %d nodes: give one per node, comma-separated", len(ccfg.WSURLs), nodes)
		}
	}
	files, err := gateway.InitCluster(ccfg)
	if err != nil {
		return err
	}
	dir := filepath.Dir(files.Env)
	fmt.Fprintf(stdout, "wrote %s for a cluster of %d nodes\n\nstart each node, on its own host or all on this one:\n", dir, nodes)
	for i, conf := range files.ServerConfs {
		fmt.Fprintf(stdout, "  node %d:  nats-server -c %s    (clients %s, websocket %s)\n", i, sh(conf), files.NATSURLs[i], files.WSURLs[i])
	}
	fmt.Fprintf(stdout, "then natter, as many as you like behind a load balancer, each with its own -http-addr:\n  set -a; . %s; set +a; natter\nadmin creds:  natter creds admin -data-dir %s -o admin.creds\nnats CLI:     nats --creds admin.creds -s %s ...\n",
		sh(files.Env), sh(dir), strings.Join(files.NATSURLs, ","))
	return nil
}

// nodeAddrs gives each of n nodes its listen address from a flag's value:
// either a comma-separated address per node, or the first node's address,
// the next nodes on the same host and the following ports.
func nodeAddrs(v string, n int) ([]string, error) {
	if addrs := splitList(v); len(addrs) > 1 {
		if len(addrs) != n {
			return nil, fmt.Errorf("%d addresses for %d nodes: give one per node, or the first node's", len(addrs), n)
		}
		return addrs, nil
	}
	host, p, err := net.SplitHostPort(v)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port+n-1 > 65535 {
		return nil, fmt.Errorf("%q needs a fixed port between 1 and %d for %d nodes on successive ports", v, 65535-n+1, n)
	}
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = net.JoinHostPort(host, strconv.Itoa(port+i))
	}
	return addrs, nil
}
