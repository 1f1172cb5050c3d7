package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

var (
	seedShape = regexp.MustCompile(`S[OAU][A-Z2-7]{56}`)
	jwtShape  = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.`)
)

// secrets collects what must never appear in a log line.
type secrets struct {
	mu   sync.Mutex
	list map[string]string // secret → what it is
}

func (s *secrets) add(what, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.list == nil {
		s.list = map[string]string{}
	}
	if secret = strings.TrimSpace(secret); secret != "" {
		s.list[secret] = what
	}
}

// addJWT adds a JWT whole and its claims and signature parts: a log that
// printed only a part would still give the token away. The header is the
// same for every natter JWT and no secret.
func (s *secrets) addJWT(what, tok string) {
	s.add(what, tok)
	parts := strings.Split(tok, ".")
	if len(parts) == 3 {
		s.add(what+" (claims)", parts[1])
		s.add(what+" (signature)", parts[2])
	}
}

// addSeed adds a seed and the private key it encodes.
func (s *secrets) addSeed(what string, kp nkeys.KeyPair) {
	seed, err := kp.Seed()
	if err != nil {
		return
	}
	s.add(what, string(seed))
	if pk, err := kp.PrivateKey(); err == nil {
		s.add(what+" (private key)", string(pk))
	}
}

func (s *secrets) check(t *testing.T, logs string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for secret, what := range s.list {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %s", what)
		}
	}
	if m := seedShape.FindString(logs); m != "" {
		t.Errorf("the log contains something shaped like an nkey seed: %.6s…", m)
	}
	if m := jwtShape.FindString(logs); m != "" {
		t.Errorf("the log contains something shaped like a JWT: %.20s…", m)
	}
}

// TestNoSecretsInLogs captures natter's log at debug level, nats-server's
// own debug lines included, through a whole chat session: tokens, a room,
// joins, messages, history, a leave, a token sent where a public key
// belongs, a bearer token that was tampered with, clients with a tampered
// JWT and with one natter does not trust, a connection whose token expires
// and comes back with a fresh one, an expired token, and an operator with
// admin creds, all on an encrypted store. No JWT vended, no seed of the data
// dir or of a client, no admin creds, not the store key, and nothing shaped
// like a seed or a JWT may appear in it.
func TestNoSecretsInLogs(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig(t)
	cfg.LogLevel = "debug"
	cfg.TokenTTL = 6 * time.Second // long enough for the chat, short enough to see an expiry
	cfg.StoreKey = "store-key-that-must-never-be-logged-7f3a9c"
	m := &Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			m.Close()
		}
	})
	var s secrets
	s.add("NATTER_STORE_KEY", cfg.StoreKey)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api := &client.API{BaseURL: m.baseURL()}
	token := func(u *client.Identity, name string, rooms ...string) *client.Token {
		t.Helper()
		tok, err := api.Token(ctx, u, name, rooms...)
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		s.addJWT("a vended JWT", tok.JWT)
		return tok
	}
	identity := func(name string) *client.Identity {
		u, err := client.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		s.addSeed(name+"'s seed", u.Key)
		return u
	}

	// Ada creates a room, and stays connected: each time her token expires
	// she gets a fresh one, as the browser does.
	ada, bob := identity("Ada"), identity("Bob")
	room, err := api.CreateRoom(ctx, token(ada, "Ada"), "Lobby")
	if err != nil {
		t.Fatal(err)
	}
	var expired, reconnected atomic.Int32
	var adaConn *client.Conn
	adaConn, err = client.Dial(ada, token(ada, "Ada", room.ID),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrAuthExpired) {
				expired.Add(1)
			}
		}),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			if tok, err := api.Token(context.Background(), ada, "Ada", room.ID); err == nil {
				s.addJWT("a vended JWT", tok.JWT)
				adaConn.SetToken(tok)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected.Add(1) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer adaConn.Close()
	var seen atomic.Int32
	if _, err := adaConn.Join(ctx, room.ID, "Ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := adaConn.Follow(ctx, room.ID, 0, func(natter.Envelope) { seen.Add(1) }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ack, err := adaConn.Send(ctx, room.ID, fmt.Sprintf("hello %d", i)); err != nil || !ack.OK {
			t.Fatalf("send: %+v %v", ack, err)
		}
	}

	// Bob joins, talks, reads the history and leaves.
	bobConn, err := client.Dial(bob, token(bob, "Bob", room.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bobConn.Join(ctx, room.ID, "Bob"); err != nil {
		t.Fatal(err)
	}
	if ack, err := bobConn.Send(ctx, room.ID, "hi Ada"); err != nil || !ack.OK {
		t.Fatalf("send: %+v %v", ack, err)
	}
	if _, err := bobConn.History(ctx, room.ID, 0, 50); err != nil {
		t.Fatal(err)
	}
	if err := bobConn.Leave(ctx, room.ID); err != nil {
		t.Fatal(err)
	}
	bobConn.Close()

	// A seed where the public key belongs, and a tampered bearer token.
	seed, _ := bob.Key.Seed()
	if err := gatewaytest.PostJSON(m.baseURL()+"/api/v1/token", fmt.Appendf(nil, `{"public_key":%q}`, seed), nil); err == nil {
		t.Fatal("a seed as public key was accepted")
	}
	good := token(bob, "Bob")
	tampered := *good
	tampered.JWT = good.JWT[:len(good.JWT)-4] + "AAAA"
	s.addJWT("a tampered JWT", tampered.JWT)
	if _, err := api.CreateRoom(ctx, &tampered, "Nope"); err == nil {
		t.Fatal("a tampered bearer token created a room")
	}

	// Clients that must not get in: a tampered JWT, a JWT signed by a key
	// natter does not trust, an expired one.
	ws := fmt.Sprintf("ws://127.0.0.1:%d", m.Gateway.WebSocketPort())
	stranger, _ := nkeys.CreateAccount()
	s.addSeed("an untrusted account's seed", stranger)
	uc := jwt.NewUserClaims(bob.ID)
	uc.Tags.Add("room:" + room.ID)
	forged, err := uc.Encode(stranger)
	if err != nil {
		t.Fatal(err)
	}
	s.addJWT("a forged JWT", forged)
	old := token(bob, "Bob", room.ID)
	for what, tok := range map[string]string{"tampered": tampered.JWT, "forged": forged} {
		if nc, err := dialJWT(ws, bob, tok); err == nil {
			nc.Close()
			t.Fatalf("a %s JWT connected", what)
		}
	}

	// Ada's connection outlives her token: the server drops it, she comes
	// back with a fresh one and keeps chatting.
	gatewaytest.WaitFor(t, 15*time.Second, func() error {
		if expired.Load() == 0 || reconnected.Load() == 0 || !adaConn.IsConnected() {
			return fmt.Errorf("expired %d, reconnected %d, %v", expired.Load(), reconnected.Load(), adaConn.Status())
		}
		return nil
	})
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		ack, err := adaConn.Send(ctx, room.ID, "back again")
		if err == nil && !ack.OK {
			err = fmt.Errorf("%+v", ack)
		}
		return err
	})
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		if time.Now().Before(old.ExpiresAt.Add(time.Second)) {
			return errors.New("not expired yet")
		}
		return nil
	})
	if nc, err := dialJWT(ws, bob, old.JWT); err == nil {
		nc.Close()
		t.Fatal("an expired JWT connected")
	}

	// An operator with admin creds, on the NATS client port.
	credsFile := adminCreds(t, cfg.DataDir)
	creds, err := os.ReadFile(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	adminJWT, _ := jwt.ParseDecoratedJWT(creds)
	s.addJWT("the admin creds' JWT", adminJWT)
	if kp, err := jwt.ParseDecoratedNKey(creds); err == nil {
		s.addSeed("the admin creds' seed", kp)
	}
	admin, err := nats.Connect(m.Gateway.ClientURL(), nats.UserCredentials(credsFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Request(natter.RoomSubject(room.ID, "nope"), nil, 200*time.Millisecond); err == nil {
		t.Log("request to nothing answered")
	}
	admin.Close()

	adaConn.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true

	entries, err := os.ReadDir(filepath.Join(cfg.DataDir, "keys"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("no keys in the data dir: %v", err)
	}
	for _, e := range entries {
		kp, err := natterSeed(filepath.Join(cfg.DataDir, "keys", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s.addSeed("the seed of "+e.Name(), kp)
	}

	text := logs.String()
	for _, want := range []string{"component=nats-server", "level=DEBUG", "Authenticated JWT", "expired"} {
		if !strings.Contains(text, want) {
			t.Errorf("the log lacks %q: the session did not log what it should have", want)
		}
	}
	s.check(t, text)
	if t.Failed() || os.Getenv("NATTER_TEST_LOG") != "" {
		t.Logf("natter log:\n%s", text)
	}
}

// dialJWT connects to url over WebSocket as u with tok, once.
func dialJWT(url string, u *client.Identity, tok string) (*nats.Conn, error) {
	return nats.Connect(url, nats.NoReconnect(), nats.Timeout(2*time.Second),
		nats.UserJWT(func() (string, error) { return tok, nil }, func(nonce []byte) ([]byte, error) { return u.Key.Sign(nonce) }))
}

// natterSeed reads a seed file of the data dir.
func natterSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return nkeys.FromSeed(bytes.TrimSpace(b))
}

// TestKeyFilesMustBePrivate: natter refuses to start when one of its key
// files can be read by its group or by others, and says which file and how
// to fix it.
func TestKeyFilesMustBePrivate(t *testing.T) {
	cfg := testConfig(t)
	m := runMainOnce(t, cfg)
	m.Close()
	keys := filepath.Join(cfg.DataDir, "keys")
	assertSecretFiles(t, keys, "operator.nk", "system.nk", "chat.nk", "tvm.nk")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		for _, name := range []string{"operator.nk", "chat.nk", "tvm.nk"} {
			path := filepath.Join(keys, name)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			m := &Main{Config: cfg}
			err := m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("%s with mode %#o: %v, want a refusal naming the file and chmod 600", name, mode, err)
			}
			os.Chmod(path, 0o600)
		}
	}
	m = runMainOnce(t, cfg)
	if code := getStatus(t, m.baseURL()+"/readyz"); code != http.StatusOK {
		t.Fatalf("after chmod 600: /readyz %d", code)
	}
	m.Close()
}

// runMainOnce runs natter with cfg; the caller closes it.
func runMainOnce(t *testing.T, cfg Config) *Main {
	t.Helper()
	m := &Main{Config: cfg}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m
}

// TestAdminCredsOnlyOnRequest reads natter's source: admin creds are made
// only by the creds command, and the creds command runs only when asked for
// by name. The server, the TVM and the gateway never mint them.
func TestAdminCredsOnlyOnRequest(t *testing.T) {
	root := filepath.Join("..", "..")
	type call struct{ file, fn string }
	var mints, credsCalls []call
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// gatewaytest is a test helper: the natter binary never links it.
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "gatewaytest" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				ce, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name := ""
				switch f := ce.Fun.(type) {
				case *ast.Ident:
					name = f.Name
				case *ast.SelectorExpr:
					name = f.Sel.Name
				}
				c := call{filepath.ToSlash(path), fn.Name.Name}
				if name == "UserCreds" && len(ce.Args) > 0 {
					if lit, ok := ce.Args[0].(*ast.BasicLit); !ok || lit.Value != `"natter"` {
						mints = append(mints, c) // anything but natter's own service user
					}
				}
				if name == "credsCmd" {
					credsCalls = append(credsCalls, c)
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []call{{"../../cmd/natter/main.go", "credsCmd"}}; fmt.Sprint(mints) != fmt.Sprint(want) {
		t.Errorf("creds other than natter's own are made in %v, want only %v", mints, want)
	}
	if want := []call{{"../../cmd/natter/main.go", "run"}}; fmt.Sprint(credsCalls) != fmt.Sprint(want) {
		t.Errorf("credsCmd is called from %v, want only %v", credsCalls, want)
	}
	// And run calls it only for the creds command.
	src, err := os.ReadFile(filepath.Join(root, "cmd", "natter", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`case "creds":\s*return credsCmd\(`).Match(src) {
		t.Error(`run does not call credsCmd only under case "creds"`)
	}
}
