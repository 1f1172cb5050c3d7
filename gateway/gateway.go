// Package gateway is natter's NATS side: the embedded nats-server or the
// connection to an external cluster, the key material, the JetStream buckets,
// and (later) the message pipeline. It never imports the HTTP layer.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter/metrics"
)

// Config says where natter's NATS lives. With URL empty natter runs its own
// embedded server; otherwise it connects to URL with CredsFile and signs user
// JWTs with the scoped key in SigningKeyFile.
type Config struct {
	DataDir string

	// Embedded server.
	ClientAddr     string      // host:port of the NATS client listener (keep it on loopback)
	WSAddr         string      // host:port of the WebSocket listener browsers use
	AllowedOrigins []string    // WebSocket origins allowed; empty allows any
	TLS            *tls.Config // serve the WebSocket listener over TLS (wss); nil: plain ws
	StoreDir       string      // JetStream store; defaults to DataDir
	// StoreKey turns on the server's encryption of everything JetStream
	// stores (AES-GCM); empty: none. A store encrypted once needs the same
	// key at every start: natter refuses a wrong or missing one.
	StoreKey string
	// MaxPending is how many bytes the embedded server holds for a
	// connection that does not read before it drops it as a slow consumer;
	// 0 keeps the server's default (64 MiB; a write stuck for 10 s drops
	// it too).
	MaxPending int64
	// MonitorAddr is host:port of the server's HTTP monitoring (/varz,
	// /connz, /jsz…); empty: off. It tells anyone who reaches it about
	// every connection: keep it on loopback or a private network.
	MonitorAddr string
	// External cluster.
	URL            string
	CredsFile      string
	SigningKeyFile string

	Replicas int // bucket replicas; 0 means 1
	Limits   UserLimits
	Chat     ChatConfig
	Metrics  *metrics.Metrics // pipeline requests, rooms, members, connection; nil: none
	Logger   *slog.Logger
}

// Gateway is a running connection to natter's NATS, embedded or external.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	srv     *server.Server // nil when external
	nc      *nats.Conn
	js      jetstream.JetStream
	account string
	signer  nkeys.KeyPair
	closed  chan struct{}

	// The chat state, set up by startChat.
	chat *chat
}

// Open starts the embedded server (or connects to the external one),
// provisions the buckets and returns when JetStream is ready.
func Open(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, closed: make(chan struct{})}
	var err error
	if cfg.URL == "" {
		err = g.startEmbedded()
	} else {
		err = g.connectExternal()
	}
	if err == nil {
		g.chat, err = g.startChat(ctx)
	}
	if err == nil {
		err = g.watchMetrics()
	}
	if err != nil {
		g.Close(context.Background())
		return nil, err
	}
	return g, nil
}

// externalStartWait bounds how long natter tries to provision its buckets
// on an external NATS at start. A cluster started together with natter
// elects its JetStream leader and meets its peers within seconds; until
// then it refuses, or has too few peers for the replicas asked for.
const externalStartWait = 60 * time.Second

// startChat provisions the buckets and starts the chat, trying again for up
// to externalStartWait on an external NATS.
//
// Two natter processes that create the same stream at the same moment on a
// cluster may both wait for an answer that never comes, until the request
// times out, though the stream is made. So the wait before trying again is
// random: one of them then provisions the rest alone, and the other finds
// it done.
func (g *Gateway) startChat(ctx context.Context) (*chat, error) {
	deadline := time.Now()
	if g.srv == nil {
		deadline = deadline.Add(externalStartWait)
	}
	for {
		c, err := startChat(ctx, g.nc, g.js, g.cfg.Chat, g.cfg.Replicas, int(g.cfg.Limits.MaxPayload), g.log, g.cfg.Metrics)
		if err == nil || !time.Now().Before(deadline) {
			return c, err
		}
		g.log.Warn("jetstream not ready for natter's buckets yet; trying again", "replicas", g.cfg.Replicas, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500*time.Millisecond + rand.N(2*time.Second)):
		}
	}
}

func (g *Gateway) startEmbedded() error {
	// First, so that a wrong key touches nothing.
	plain, err := checkStoreKey(storeDirOf(g.cfg), g.cfg.StoreKey)
	if err != nil {
		return err
	}
	if plain > 0 {
		g.log.Warn("encrypting the existing unencrypted store with NATTER_STORE_KEY", "streams", plain)
	}
	if g.cfg.StoreKey != "" {
		g.log.Info("jetstream store encrypted", "cipher", "AES-GCM", "dir", storeDirOf(g.cfg))
	}
	keys, err := LoadOrCreateKeys(filepath.Join(g.cfg.DataDir, "keys"))
	if err != nil {
		return err
	}
	claims, err := keys.Claims(g.cfg.Limits)
	if err != nil {
		return err
	}
	opts, err := embeddedOptions(g.cfg, keys, claims)
	if err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded nats-server: %w", err)
	}
	// The server's debug lines follow natter's log level. Its trace never
	// does: nats-server traces a client's CONNECT with its JWT in it.
	debug := g.log.Enabled(context.Background(), slog.LevelDebug)
	srv.SetLoggerV2(serverLogger{g.log.With("component", "nats-server")}, debug, false, false)
	srv.Start()
	g.srv = srv
	if !srv.ReadyForConnections(5 * time.Second) {
		addrs := g.cfg.ClientAddr + " and " + g.cfg.WSAddr
		if g.cfg.MonitorAddr != "" {
			addrs = g.cfg.ClientAddr + ", " + g.cfg.WSAddr + " and " + g.cfg.MonitorAddr + " (monitoring)"
		}
		return fmt.Errorf("embedded nats-server is not listening on %s after 5s: is a port taken? (see the log above)", addrs)
	}
	g.account, g.signer = keys.ChatAccount(), keys.TVM

	// natter's own user lives only in memory, a new one at every start.
	tok, ukp, err := keys.chatUser("natter", 0)
	if err != nil {
		return err
	}
	return g.connect(srv.ClientURL(), nats.InProcessServer(srv), nats.UserJWT(
		func() (string, error) { return tok, nil },
		func(nonce []byte) ([]byte, error) { return ukp.Sign(nonce) },
	))
}

func embeddedOptions(cfg Config, keys *Keys, claims *Claims) (*server.Options, error) {
	host, port, err := splitAddr(cfg.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("nats address: %w", err)
	}
	wsHost, wsPort, err := splitAddr(cfg.WSAddr)
	if err != nil {
		return nil, fmt.Errorf("websocket address: %w", err)
	}
	op, err := jwt.DecodeOperatorClaims(claims.Operator)
	if err != nil {
		return nil, fmt.Errorf("decode operator: %w", err)
	}
	resolver := &server.MemAccResolver{}
	for pub, tok := range map[string]string{publicKey(keys.System): claims.System, keys.ChatAccount(): claims.Chat} {
		if err := resolver.Store(pub, tok); err != nil {
			return nil, fmt.Errorf("preload account %s: %w", pub, err)
		}
	}
	var monHost string
	var monPort int
	if cfg.MonitorAddr != "" {
		if monHost, monPort, err = splitAddr(cfg.MonitorAddr); err != nil {
			return nil, fmt.Errorf("nats monitoring address: %w", err)
		}
	}
	storeDir := storeDirOf(cfg)
	return &server.Options{
		ServerName:             "natter",
		Host:                   host,
		Port:                   port,
		NoSigs:                 true, // natter handles signals and shuts the server down itself
		HTTPHost:               monHost,
		HTTPPort:               monPort, // 0: no monitoring
		JetStream:              true,
		StoreDir:               storeDir,
		DisableJetStreamBanner: true,
		JetStreamKey:           cfg.StoreKey,
		JetStreamCipher:        server.AES,
		MaxPending:             cfg.MaxPending,
		// The server's first PING to a client comes 2 s after its CONNECT
		// unless this is set. When a flood of handshakes makes the server
		// slower than that to answer the client's own PING, that PING
		// arrives first, nats.go (v1.55) fails the handshake ("expected
		// PONG, got PING") and the client drops a connection it had
		// already paid for, and retries: in a reconnect storm most of the
		// work was wasted this way. The first PING now comes after the
		// usual interval (2 min).
		DisableShortFirstPing: true,
		TrustedOperators:      []*jwt.OperatorClaims{op},
		SystemAccount:         publicKey(keys.System),
		AccountResolver:       resolver,
		Websocket: server.WebsocketOpts{
			Host:           wsHost,
			Port:           wsPort,
			NoTLS:          cfg.TLS == nil, // without a certificate, TLS belongs to a reverse proxy in front
			TLSConfig:      cfg.TLS,
			AllowedOrigins: cfg.AllowedOrigins,
			Compression:    true,
		},
	}, nil
}

// storeDirOf is the JetStream store dir of the embedded server.
func storeDirOf(cfg Config) string {
	if cfg.StoreDir != "" {
		return cfg.StoreDir
	}
	return cfg.DataDir
}

// splitAddr parses host:port; port 0 asks for a free port.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func (g *Gateway) connectExternal() error {
	if g.cfg.StoreKey != "" {
		return errors.New("NATTER_STORE_KEY encrypts the embedded NATS's store; an external NATS encrypts its own (jetstream { cipher: aes, key: ... } in its configuration)")
	}
	if g.cfg.MonitorAddr != "" {
		return errors.New("NATTER_NATS_MONITOR_ADDR turns on the embedded NATS's monitoring; an external NATS serves its own (http_port in its configuration, or nats-server -m)")
	}
	if g.cfg.CredsFile == "" || g.cfg.SigningKeyFile == "" {
		return errors.New("an external NATS needs both a creds file and the TVM signing key file")
	}
	creds, err := os.ReadFile(g.cfg.CredsFile)
	if err != nil {
		return fmt.Errorf("read creds: %w", err)
	}
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return fmt.Errorf("parse creds %s: %w", g.cfg.CredsFile, err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return fmt.Errorf("decode creds %s: %w", g.cfg.CredsFile, err)
	}
	// natter's service user is signed by the chat account itself (or one of
	// its keys), which tells us the account the vended users belong to.
	g.account = uc.Issuer
	if uc.IssuerAccount != "" {
		g.account = uc.IssuerAccount
	}
	if g.signer, err = ReadSeedFile(g.cfg.SigningKeyFile); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	return g.connect(g.cfg.URL, nats.UserCredentials(g.cfg.CredsFile))
}

func (g *Gateway) connect(url string, opts ...nats.Option) error {
	opts = append(opts,
		nats.Name("natter"),
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(g.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				g.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { g.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { g.log.Error("nats async error", "err", err) }),
	)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", url, err)
	}
	g.nc = nc
	if g.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// Ready reports whether NATS is connected and JetStream answers.
func (g *Gateway) Ready(ctx context.Context) error {
	if !g.nc.IsConnected() {
		return fmt.Errorf("nats: %s", g.nc.Status())
	}
	if _, err := g.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// Account is the chat account's public key.
func (g *Gateway) Account() string { return g.account }

// SigningKey is the chat account's scoped signing key for user JWTs.
func (g *Gateway) SigningKey() nkeys.KeyPair { return g.signer }

// Conn is natter's own connection, with full rights in the chat account.
func (g *Gateway) Conn() *nats.Conn { return g.nc }

// ClientURL is the NATS client listener of the embedded server, or "".
func (g *Gateway) ClientURL() string {
	if g.srv == nil {
		return ""
	}
	return g.srv.ClientURL()
}

// MonitorAddr is the bound address of the embedded server's HTTP
// monitoring, or nil when it is off.
func (g *Gateway) MonitorAddr() net.Addr {
	if g.srv == nil {
		return nil
	}
	if a := g.srv.MonitorAddr(); a != nil {
		return a
	}
	return nil
}

// WebSocketPort is the bound WebSocket port of the embedded server, or 0.
func (g *Gateway) WebSocketPort() int {
	if g.srv == nil {
		return 0
	}
	u, err := url.Parse(g.srv.WebsocketURL())
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// Close drains natter's connection, so in-flight work finishes, then stops
// the embedded server. It returns when both are done or ctx ends.
func (g *Gateway) Close(ctx context.Context) error {
	var err error
	if g.chat != nil {
		g.chat.stop()
	}
	if g.nc != nil && !g.nc.IsClosed() {
		if err = g.nc.Drain(); err == nil {
			select {
			case <-g.closed:
			case <-ctx.Done():
				err = fmt.Errorf("drain nats: %w", ctx.Err())
				g.nc.Close()
			}
		}
	}
	if g.srv != nil {
		g.srv.Shutdown()
		g.srv.WaitForShutdown()
	}
	return err
}

// ServiceStats are this process's counters of the pipeline service.
func (g *Gateway) ServiceStats() micro.Stats { return g.chat.svc.Stats() }
