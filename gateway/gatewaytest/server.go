package gatewaytest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/tvm"
)

// Server is a gateway with a TVM in front of it, as natter runs them.
type Server struct {
	GW  *gateway.Gateway
	API *client.API

	dataDir string
	chat    gateway.ChatConfig
}

// RunServer starts an embedded gateway with chat rules cfg and a TVM on a
// random port, both stopped when the test ends.
func RunServer(tb testing.TB, chat gateway.ChatConfig) *Server {
	tb.Helper()
	gcfg := Config(tb.TempDir())
	gcfg.Chat = chat
	return RunServerWith(tb, gcfg)
}

// RunServerWith is RunServer with a whole gateway configuration, such as
// Config(dir) with limits or a logger of the test's.
func RunServerWith(tb testing.TB, gcfg gateway.Config) *Server {
	tb.Helper()
	dir, chat := gcfg.DataDir, gcfg.Chat
	gw := RunGatewayWith(tb, gcfg)
	srv := httptest.NewServer(tvm.New(tvm.Config{
		Account:    gw.Account(),
		SigningKey: gw.SigningKey(),
		TokenTTL:   time.Hour,
		WSPort:     gw.WebSocketPort(),
		Rooms:      gw,
		Uploads:    gw.Uploads(),
		Ready:      gw.Ready,
	}).Handler())
	tb.Cleanup(srv.Close)
	return &Server{GW: gw, API: &client.API{BaseURL: srv.URL}, dataDir: dir, chat: chat}
}

// RunPeer starts a second gateway on the same NATS, as a second natter
// process on a cluster is: both serve the pipeline in one queue group and
// share all state through JetStream.
func (s *Server) RunPeer(tb testing.TB) *gateway.Gateway {
	tb.Helper()
	keys, err := gateway.LoadOrCreateKeys(filepath.Join(s.dataDir, "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	creds, err := keys.UserCreds("natter-peer", 0)
	if err != nil {
		tb.Fatal(err)
	}
	credsFile := filepath.Join(tb.TempDir(), "peer.creds")
	if err := gateway.WriteSecret(credsFile, creds); err != nil {
		tb.Fatal(err)
	}
	return RunGatewayWith(tb, gateway.Config{
		URL:            s.GW.ClientURL(),
		CredsFile:      credsFile,
		SigningKeyFile: filepath.Join(s.dataDir, "keys", "tvm.nk"),
		Chat:           s.chat,
	})
}

// Chatter is a user connected to a room it joined.
type Chatter struct {
	*client.Conn
	Token *client.Token
	Name  string // the name the room gave
}

// MustRoom creates a room as a fresh user and returns it.
func (s *Server) MustRoom(tb testing.TB, name string) natter.Room {
	tb.Helper()
	return s.mustRoom(tb, name, false)
}

// MustSealedRoom creates a sealed room as a fresh user and returns it.
func (s *Server) MustSealedRoom(tb testing.TB, name string) natter.Room {
	tb.Helper()
	return s.mustRoom(tb, name, true)
}

// AdminConn connects to the gateway's NATS with full rights in the chat
// account, as an operator does with `natter creds admin`.
func (s *Server) AdminConn(tb testing.TB) *nats.Conn {
	tb.Helper()
	keys, err := gateway.LoadOrCreateKeys(filepath.Join(s.dataDir, "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	creds, err := keys.UserCreds("test-admin", 0)
	if err != nil {
		tb.Fatal(err)
	}
	credsFile := filepath.Join(tb.TempDir(), "admin.creds")
	if err := gateway.WriteSecret(credsFile, creds); err != nil {
		tb.Fatal(err)
	}
	nc, err := nats.Connect(s.GW.ClientURL(), nats.UserCredentials(credsFile))
	if err != nil {
		tb.Fatalf("connect with admin creds: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

func (s *Server) mustRoom(tb testing.TB, name string, sealed bool) natter.Room {
	tb.Helper()
	ctx := context.Background()
	u, err := client.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := s.API.Token(ctx, u, "")
	if err != nil {
		tb.Fatalf("token: %v", err)
	}
	create := s.API.CreateRoom
	if sealed {
		create = s.API.CreateSealedRoom
	}
	room, err := create(ctx, tok, name)
	if err != nil {
		tb.Fatalf("create room: %v", err)
	}
	return room
}

// MustJoin makes a new user named name, connects it with a token for room
// and joins the room.
func (s *Server) MustJoin(tb testing.TB, room, name string) *Chatter {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := client.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := s.API.Token(ctx, u, name, room)
	if err != nil {
		tb.Fatalf("token for %s: %v", room, err)
	}
	c, err := client.Dial(u, tok)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(c.Close)
	j, err := c.Join(ctx, room, name)
	if err != nil {
		tb.Fatalf("join %s: %v", room, err)
	}
	return &Chatter{Conn: c, Token: tok, Name: j.Name}
}

// LastSeq reads the room's last seq through c's history request.
func (s *Server) LastSeq(tb testing.TB, c *Chatter, room string) uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := c.History(ctx, room, 0, 1)
	if err != nil {
		tb.Fatalf("history: %v", err)
	}
	return h.LastSeq
}
