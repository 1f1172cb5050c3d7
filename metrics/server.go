package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ServerConfig says what the metrics listener serves besides /metrics.
type ServerConfig struct {
	// PProf serves the Go profiles under /debug/pprof/. Off, those paths
	// are 404 like any other.
	PProf  bool
	Logger *slog.Logger
}

// Server serves /metrics, and /debug/pprof/ when asked, on a listener of
// its own: apart from the public HTTP port, so that it can stay on a
// private address.
type Server struct {
	ln   net.Listener
	http *http.Server
}

// Listen binds addr now, so a bad or busy address is an error here and not
// in a goroutine. Call Serve to serve.
func (m *Metrics) Listen(addr string, cfg ServerConfig) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	return &Server{ln: ln, http: &http.Server{
		Handler:           m.mux(cfg.PProf),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: /debug/pprof/profile and /trace answer after
		// the seconds they are asked to record.
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}}, nil
}

func (m *Metrics) mux(withPProf bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if withPProf {
		// Index also serves the named profiles: /debug/pprof/heap,
		// goroutine, allocs… /debug/pprof/cmdline is left out on purpose:
		// the command line may carry -store-key.
		mux.HandleFunc("GET /debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/debug/pprof/cmdline" {
				http.NotFound(w, r)
				return
			}
			pprof.Index(w, r)
		})
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
// It also closes the listener when Serve never ran.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}
