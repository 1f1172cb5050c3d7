// Package tvm is natter's token vending machine: an echo HTTP service that
// turns a browser's own nkey public key into a short-lived NATS user JWT,
// scoped to the rooms it asked for, and serves the room API: create, list,
// look up rooms and read the service's stats.
package tvm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/metrics"
)

// Config is what the TVM needs from the rest of natter.
type Config struct {
	// Account is the chat account's public key and SigningKey its scoped
	// signing key: every JWT is signed with it and carries only room tags.
	Account    string
	SigningKey nkeys.KeyPair
	TokenTTL   time.Duration

	// Rooms creates, finds and lists rooms; the token endpoint vends tokens
	// only for rooms it knows. Required.
	Rooms RoomService

	// Servers are the NATS WebSocket URLs handed to clients. When empty they
	// are derived from the host the client reached the TVM on and WSPort.
	Servers []string
	WSPort  int
	WSTLS   bool // the WebSocket listener serves TLS: derived URLs are wss://

	// AllowedOrigins, when set, turns on CORS for those origins so the web app
	// can be hosted apart from the TVM.
	AllowedOrigins []string

	// Rate and Burst limit requests per client address.
	Rate  rate.Limit
	Burst int

	// KeyRate and KeyBurst limit token requests per public key, whatever
	// address they come from; a zero KeyRate turns that limit off.
	KeyRate  rate.Limit
	KeyBurst int

	// Users keeps registered accounts. When nil the TVM serves no account
	// routes and vends anonymous tokens only.
	Users UserStore
	// PasswordParams are the argon2id parameters of new password hashes;
	// zero: DefaultPasswordParams.
	PasswordParams PasswordParams
	// LoginLimits bound failed logins per username and per address.
	LoginLimits LoginLimits

	// Uploads keeps uploaded images. When nil the TVM serves no upload
	// routes. UploadMaxBytes bounds an image's file (0:
	// DefaultUploadMaxBytes) and UploadRate the uploads of one user key a
	// minute (0: DefaultUploadRate).
	Uploads        UploadStore
	UploadMaxBytes int64
	UploadRate     int

	// Ready reports whether NATS and JetStream are usable, for /readyz.
	Ready func(context.Context) error

	// App, when set, serves the web app on every path outside the API.
	App http.Handler

	// Metrics counts tokens issued and refused; nil counts nothing.
	Metrics *metrics.Metrics

	Logger *slog.Logger
}

// MaxBodyBytes is the largest request body the TVM reads.
const MaxBodyBytes = 16 << 10

// Server is the TVM's HTTP server.
type Server struct {
	cfg    Config
	signer string // public key of cfg.SigningKey: the issuer of every token vended
	perKey *keyLimiter
	log    *slog.Logger

	// Accounts, when cfg.Users is set.
	sessionKey []byte
	hasher     *hasher
	logins     *loginLimiter

	// Uploads, when cfg.Uploads is set.
	linkKey []byte
	uploads *keyLimiter

	echo *echo.Echo
	http *http.Server
	ln   net.Listener
}

// New builds the TVM and its routes. It panics without cfg.Rooms: a TVM
// that cannot tell which rooms exist must not vend tokens for any.
func New(cfg Config) *Server {
	if cfg.Rooms == nil {
		panic("tvm: Config.Rooms is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	s := &Server{cfg: cfg, log: cfg.Logger, perKey: newKeyLimiter(cfg.KeyRate, cfg.KeyBurst)}
	if cfg.Users != nil {
		if cfg.SigningKey == nil {
			panic("tvm: Config.Users needs Config.SigningKey")
		}
		key, err := sessionKey(cfg.SigningKey)
		if err != nil {
			panic("tvm: " + err.Error())
		}
		if cfg.PasswordParams == (PasswordParams{}) {
			cfg.PasswordParams = DefaultPasswordParams
		}
		s.sessionKey = key
		s.hasher = newHasher(cfg.PasswordParams, runtime.GOMAXPROCS(0))
		s.logins = newLoginLimiter(cfg.LoginLimits)
		s.cfg = cfg
	}
	if cfg.Uploads != nil {
		if cfg.SigningKey == nil {
			panic("tvm: Config.Uploads needs Config.SigningKey")
		}
		key, err := uploadLinkKey(cfg.SigningKey)
		if err != nil {
			panic("tvm: " + err.Error())
		}
		s.linkKey = key
		if s.cfg.UploadMaxBytes <= 0 {
			s.cfg.UploadMaxBytes = DefaultUploadMaxBytes
		}
		if s.cfg.UploadRate <= 0 {
			s.cfg.UploadRate = DefaultUploadRate
		}
		s.uploads = newKeyLimiter(rate.Every(time.Minute/time.Duration(s.cfg.UploadRate)), s.cfg.UploadRate)
		s.uploads.what = "uploads"
	}
	if cfg.SigningKey != nil {
		if signer, err := NewSigner(cfg.SigningKey); err == nil {
			s.cfg.SigningKey = signer
		}
		s.signer, _ = s.cfg.SigningKey.PublicKey()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The rate limiter keys on the client address; trusting X-Forwarded-For
	// by default would let anyone pick a fresh address per request.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = errorHandler(s.log)
	e.Use(middleware.Recover(), s.accessLog)
	if len(cfg.AllowedOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: cfg.AllowedOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders: []string{echo.HeaderContentType, echo.HeaderAuthorization},
		}))
	}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	// Middleware per route rather than on a group: an echo group with
	// middleware answers every unknown method with 404 instead of 405. The
	// routes share one rate limiter, so an address has one allowance for
	// the whole API.
	api := []echo.MiddlewareFunc{limitBody(MaxBodyBytes)}
	if cfg.Rate > 0 {
		api = append(api, s.rateLimit())
	}
	e.POST("/api/v1/token", s.token, append([]echo.MiddlewareFunc{s.countTokens}, api...)...)
	e.POST("/api/v1/rooms", s.createRoom, api...)
	e.GET("/api/v1/rooms", s.listRooms, api...)
	e.GET("/api/v1/rooms/:id", s.getRoom, api...)
	e.GET("/api/v1/stats", s.stats, api...)
	if cfg.Users != nil {
		s.accountRoutes(e, api)
	}
	if cfg.Uploads != nil {
		s.uploadRoutes(e)
	}
	if cfg.App != nil {
		serve := echo.WrapHandler(cfg.App)
		app := func(c echo.Context) error {
			// Unknown API paths stay JSON errors, whatever serves the rest.
			if strings.HasPrefix(c.Request().URL.Path, "/api/") {
				return echo.ErrNotFound
			}
			return serve(c)
		}
		e.GET("/*", app)
		e.HEAD("/*", app)
	}
	s.echo = e
	return s
}

// Handler is the TVM's HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Listen binds addr now, so a bad or busy address is an error here and not in
// a goroutine.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", addr, err)
	}
	s.ListenOn(ln)
	return nil
}

// ListenOn is Listen on a listener bound by the caller, such as one wrapped
// in TLS.
func (s *Server) ListenOn(ln net.Listener) {
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Addr is the bound address after Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves on the listener from Listen until Shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(c.Request().Context()); err != nil {
			return &natter.Error{Code: natter.EUnavailable, Message: "NATS or JetStream is not available", Err: err}
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.log.Debug("http", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", c.Response().Status, "dur", time.Since(start), "ip", c.RealIP())
		return nil
	}
}

func (s *Server) rateLimit() echo.MiddlewareFunc {
	store := middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
		Rate: s.cfg.Rate, Burst: s.cfg.Burst, ExpiresIn: 3 * time.Minute,
	})
	retry := strconv.Itoa(max(1, int(1/float64(s.cfg.Rate))))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: store,
		IdentifierExtractor: func(c echo.Context) (string, error) {
			return c.RealIP(), nil
		},
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", retry)
			return natter.Errorf(natter.ERateLimited, "too many requests from this address; retry in %ss", retry)
		},
	})
}

// limitBody refuses bodies over n bytes: at once when Content-Length says so,
// otherwise when the handler reads past n.
func limitBody(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				return tooLarge(n)
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, n)
			return next(c)
		}
	}
}

func tooLarge(n int64) error {
	return natter.Errorf(natter.ETooLarge, "request body is larger than %d bytes", n)
}
