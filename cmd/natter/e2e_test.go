package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// otherRoom is a well-formed id of a room the tests' users are not in.
// Whether it exists does not matter: permissions are about subjects.
const otherRoom = "neon-k7f3qz2"

// spy subscribes natter's own full-rights connection to subject and collects
// what arrives, to prove a publish went through or did not.
type spy struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func newSpy(t *testing.T, nc *nats.Conn, subject string) *spy {
	t.Helper()
	s := &spy{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { s.mu.Lock(); s.msgs = append(s.msgs, m); s.mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return s
}

func (s *spy) subjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		out = append(out, m.Subject)
	}
	return out
}

func (s *spy) has(subject string) bool { return slices.Contains(s.subjects(), subject) }

// TestTokenAllowsExactlyItsRooms connects a user over WebSocket with a
// vended token for room A and proves each grant works.
func TestTokenAllowsExactlyItsRooms(t *testing.T) {
	m := runMain(t, testConfig(t))
	svc := m.Gateway.Conn()
	u := gatewaytest.NewUser(t)
	roomA := u.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	tok := u.MustToken(t, m.baseURL(), roomA)
	c := u.Connect(t, tok)

	t.Run("publish own subjects", func(t *testing.T) {
		s := newSpy(t, svc, "chat.>")
		for _, op := range natter.ClientOps {
			if err := c.Publish(natter.UserSubject(roomA, op, u.ID), []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		gatewaytest.WaitFor(t, 5*time.Second, func() error {
			for _, op := range natter.ClientOps {
				if subj := natter.UserSubject(roomA, op, u.ID); !s.has(subj) {
					return fmt.Errorf("%s not delivered; got %v", subj, s.subjects())
				}
			}
			return nil
		})
	})

	t.Run("subscribe room topics", func(t *testing.T) {
		other := gatewaytest.NewUser(t)
		for _, subj := range []string{
			natter.RoomSubject(roomA, natter.TopicMsgs),
			natter.RoomSubject(roomA, natter.TopicMembers),
			natter.TypingSubjects(roomA),
		} {
			sub, err := c.SubscribeSync(subj)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			pub := strings.Replace(subj, "*", other.ID, 1)
			if err := svc.Publish(pub, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			msg, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("%s: %v", subj, err)
			}
			if msg.Subject != pub || string(msg.Data) != "hi" {
				t.Fatalf("got %s %q", msg.Subject, msg.Data)
			}
			sub.Unsubscribe()
		}
	})

	t.Run("request answered in private inbox", func(t *testing.T) {
		// The gateway answers a history request on the reply subject under
		// the user's own prefix.
		inbox := newSpy(t, svc, tok.InboxPrefix+".>")
		resp, err := c.Request(natter.UserSubject(roomA, natter.OpHistory, u.ID), []byte(`{}`), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply natter.HistoryReply
		if err := json.Unmarshal(resp.Data, &reply); err != nil || !reply.OK || reply.Error != nil {
			t.Fatalf("reply %s (%v)", resp.Data, err)
		}
		gatewaytest.WaitFor(t, 5*time.Second, func() error {
			if subs := inbox.subjects(); len(subs) != 1 || !strings.HasPrefix(subs[0], tok.InboxPrefix+".") {
				return fmt.Errorf("replies seen in the inbox: %v", subs)
			}
			return nil
		})
	})

	if errs := c.Errors(); len(errs) > 0 {
		t.Fatalf("allowed operations raised errors: %v", errs)
	}
}

// TestTokenRefusesEverythingElse lists what a member of room A must not do;
// each is refused by the server with a permissions violation and, for
// publishes, never delivered.
func TestTokenRefusesEverythingElse(t *testing.T) {
	m := runMain(t, testConfig(t))
	svc := m.Gateway.Conn()
	u, other := gatewaytest.NewUser(t), gatewaytest.NewUser(t)
	roomA := u.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	s := newSpy(t, svc, ">")

	pubs := []struct{ name, subject string }{
		{"room msgs", natter.RoomSubject(roomA, natter.TopicMsgs)},
		{"room members", natter.RoomSubject(roomA, natter.TopicMembers)},
		{"unknown op", "chat." + roomA + ".admin." + u.ID},
		{"jetstream api", "$JS.API.INFO"},
		{"jetstream stream create", "$JS.API.STREAM.CREATE.X"},
		{"jetstream flow control", "$JS.FC.KV_history.x.y"},
		{"kv put", "$KV.history." + roomA + ".1"},
		{"shared inbox", "_INBOX.abc"},
		{"other user's inbox", natter.InboxPrefix(other.ID) + ".abc"},
		{"own inbox", natter.InboxPrefix(u.ID) + ".abc"},
		{"system", "$SYS.REQ.SERVER.PING"},
	}
	// Just outside each publish grant: the same operation in another room,
	// and as another user in the token's own room.
	for _, op := range natter.ClientOps {
		pubs = append(pubs,
			struct{ name, subject string }{string(op) + " in another room", natter.UserSubject(otherRoom, op, u.ID)},
			struct{ name, subject string }{string(op) + " as another user", natter.UserSubject(roomA, op, other.ID)},
		)
	}
	subs := []struct{ name, subject string }{
		{"another room's msgs", natter.RoomSubject(otherRoom, natter.TopicMsgs)},
		{"another room's members", natter.RoomSubject(otherRoom, natter.TopicMembers)},
		{"another room's typing", natter.TypingSubjects(otherRoom)},
		{"all chat", "chat.>"},
		{"whole room", natter.RoomWildcard(roomA)},
		{"room sends", natter.AllUsers(natter.OpSend)},
		{"own room sends", "chat." + roomA + ".send.*"},
		{"own send subject", natter.UserSubject(roomA, natter.OpSend, u.ID)},
		{"own history subject", natter.UserSubject(roomA, natter.OpHistory, u.ID)},
		{"jetstream api", "$JS.API.>"},
		{"jetstream flow control", "$JS.FC.>"},
		{"kv", "$KV.>"},
		{"kv history", "$KV.history.>"},
		{"shared inbox", "_INBOX.>"},
		{"other user's inbox", natter.InboxPrefix(other.ID) + ".>"},
		{"every inbox", "_INBOX_*.>"},
		{"everything", ">"},
		{"system", "$SYS.>"},
	}

	c := u.Connect(t, u.MustToken(t, m.baseURL(), roomA))
	for _, tc := range pubs {
		t.Run("publish "+tc.name, func(t *testing.T) {
			if err := c.Publish(tc.subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
			c.WaitError(t, fmt.Sprintf("publish to %q", tc.subject))
			if s.has(tc.subject) {
				t.Fatalf("%s was delivered", tc.subject)
			}
		})
	}
	for _, tc := range subs {
		t.Run("subscribe "+tc.name, func(t *testing.T) {
			if _, err := c.SubscribeSync(tc.subject); err != nil {
				t.Fatal(err)
			}
			c.WaitError(t, fmt.Sprintf("subscription to %q", tc.subject))
		})
	}

	t.Run("token without rooms", func(t *testing.T) {
		c := u.Connect(t, u.MustToken(t, m.baseURL()))
		subj := natter.UserSubject(roomA, natter.OpSend, u.ID)
		c.Publish(subj, []byte("x"))
		c.WaitError(t, fmt.Sprintf("publish to %q", subj))
	})
}

// TestNoAnonymousOrPasswordClients proves operator mode: no listener takes
// a client without a JWT, and a vended token cannot use the plain TCP port.
func TestNoAnonymousOrPasswordClients(t *testing.T) {
	m := runMain(t, testConfig(t))
	u := gatewaytest.NewUser(t)
	roomA := u.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	tok := u.MustToken(t, m.baseURL(), roomA)
	// What a leaked TVM key could try: a user JWT with permissions of its
	// own, or a bearer token that needs no nonce signature.
	leaked := func(mod func(*jwt.UserClaims)) nats.Option {
		uc := jwt.NewUserClaims(u.ID)
		uc.IssuerAccount = m.Gateway.Account()
		uc.Expires = time.Now().Add(time.Hour).Unix()
		mod(uc)
		tok, err := uc.Encode(m.Gateway.SigningKey())
		if err != nil {
			t.Fatal(err)
		}
		return nats.UserJWT(func() (string, error) { return tok, nil }, func(n []byte) ([]byte, error) { return u.Key.Sign(n) })
	}
	cases := []struct {
		name string
		url  string
		opts []nats.Option
	}{
		{"TVM key minting wide permissions", tok.Servers[0], []nats.Option{leaked(func(uc *jwt.UserClaims) {
			uc.Permissions.Pub.Allow.Add(">")
			uc.Permissions.Sub.Allow.Add(">")
		})}},
		{"TVM key minting a bearer token", tok.Servers[0], []nats.Option{leaked(func(uc *jwt.UserClaims) {
			uc.SetScoped(true)
			uc.BearerToken = true
		})}},
		{"TVM key minting a tcp user", m.Gateway.ClientURL(), []nats.Option{leaked(func(uc *jwt.UserClaims) {
			uc.SetScoped(true)
		})}},
		{"tcp anonymous", m.Gateway.ClientURL(), nil},
		{"tcp user/password", m.Gateway.ClientURL(), []nats.Option{nats.UserInfo("admin", "admin")}},
		{"tcp token", m.Gateway.ClientURL(), []nats.Option{nats.Token("secret")}},
		{"websocket anonymous", tok.Servers[0], nil},
		{"websocket user/password", tok.Servers[0], []nats.Option{nats.UserInfo("admin", "admin")}},
		{"vended token on tcp", m.Gateway.ClientURL(), []nats.Option{nats.UserJWT(
			func() (string, error) { return tok.JWT, nil }, func(n []byte) ([]byte, error) { return u.Key.Sign(n) })}},
		{"vended token signed by another key", tok.Servers[0], []nats.Option{nats.UserJWT(
			func() (string, error) { return tok.JWT, nil }, func(n []byte) ([]byte, error) { return gatewaytest.NewUser(t).Key.Sign(n) })}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gatewaytest.AssertRefused(t, func() (*nats.Conn, error) {
				return nats.Connect(tc.url, append(tc.opts, nats.NoReconnect(), nats.Timeout(5*time.Second))...)
			}, gatewaytest.IsAuthorization)
		})
	}
}

// TestTokenExpiryDisconnectsAndRefreshReconnects gives tokens a 2 s life:
// the server drops the connection at expiry, and the client reconnects with
// a fresh token, as the browser does.
func TestTokenExpiryDisconnectsAndRefreshReconnects(t *testing.T) {
	cfg := testConfig(t)
	cfg.TokenTTL = 2 * time.Second
	m := runMain(t, cfg)
	u := gatewaytest.NewUser(t)
	roomA := u.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	tok := u.MustToken(t, m.baseURL(), roomA)

	var disconnects, reconnects atomic.Int32
	var c *gatewaytest.Conn
	var refreshErr atomic.Value
	c = u.Connect(t, tok,
		nats.ReconnectWait(50*time.Millisecond),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			disconnects.Add(1)
			fresh, terr := u.RequestToken(m.baseURL(), "", roomA)
			if terr != nil {
				refreshErr.Store(terr)
				return
			}
			c.SetToken(fresh)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }),
	)
	sub, err := c.SubscribeSync(natter.RoomSubject(roomA, natter.TopicMsgs))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitError(t, "authentication expired")
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if reconnects.Load() == 0 || !c.IsConnected() {
			return fmt.Errorf("disconnects=%d reconnects=%d status=%v", disconnects.Load(), reconnects.Load(), c.Status())
		}
		return nil
	})
	if e := refreshErr.Load(); e != nil {
		t.Fatalf("refresh token: %v", e)
	}
	// The subscription is restored on the new connection.
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	m.Gateway.Conn().Publish(natter.RoomSubject(roomA, natter.TopicMsgs), []byte("after"))
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no message after reconnect: %v", err)
	}
	if string(msg.Data) != "after" {
		t.Fatalf("got %q", msg.Data)
	}

	t.Run("expired token cannot connect", func(t *testing.T) {
		old := u.MustToken(t, m.baseURL(), roomA)
		gatewaytest.WaitFor(t, 5*time.Second, func() error {
			if time.Now().Before(old.ExpiresAt.Add(time.Second)) {
				return errors.New("not expired yet")
			}
			return nil
		})
		if _, err := u.Dial(old, nats.NoReconnect()); err == nil {
			t.Fatal("connected with an expired token")
		}
	})
}

// TestTokensSurviveRestart restarts natter on the same data dir: a token
// vended before still connects, and the keys on disk are 0600.
func TestTokensSurviveRestart(t *testing.T) {
	cfg := testConfig(t)
	first := &Main{Config: cfg, Logger: testLogger()}
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	u := gatewaytest.NewUser(t)
	roomA := u.MustNewRooms(t, first.baseURL(), "Lobby")[0]
	tok := u.MustToken(t, first.baseURL(), roomA)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := runMain(t, cfg)
	tok.Servers = []string{fmt.Sprintf("ws://127.0.0.1:%d", second.Gateway.WebSocketPort())}
	c := u.Connect(t, tok)
	sub, err := c.SubscribeSync(natter.RoomSubject(roomA, natter.TopicMsgs))
	if err != nil {
		t.Fatal(err)
	}
	c.Flush()
	second.Gateway.Conn().Publish(natter.RoomSubject(roomA, natter.TopicMsgs), []byte("still here"))
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("old token after restart: %v", err)
	}
	assertSecretFiles(t, cfg.DataDir+"/keys", "operator.nk", "system.nk", "chat.nk", "tvm.nk")
}

// TestHealthAndReadiness checks /healthz and /readyz against the real
// gateway, including readiness going away when NATS does.
func TestHealthAndReadiness(t *testing.T) {
	m := runMain(t, testConfig(t))
	for _, p := range []string{"/healthz", "/readyz"} {
		if code := getStatus(t, m.baseURL()+p); code != http.StatusOK {
			t.Fatalf("%s: %d", p, code)
		}
	}
	m.Gateway.Conn().Close()
	if code := getStatus(t, m.baseURL()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with NATS closed: %d", code)
	}
	if code := getStatus(t, m.baseURL()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with NATS closed: %d", code)
	}
}

// TestAllowedOriginsGuardWebSocket: the NATS WebSocket listener refuses (403)
// a browser's handshake from an origin that is not allowed. By default only
// natter's own HTTP origin (and NATTER_PUBLIC_URL) is allowed; with
// NATTER_ALLOWED_ORIGINS set, exactly those (and NATTER_PUBLIC_URL). A
// handshake without an Origin, which only a non-browser client makes, is
// accepted: such a client could claim any origin anyway.
func TestAllowedOriginsGuardWebSocket(t *testing.T) {
	t.Run("default: the HTTP origin", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.PublicURL = "https://chat.example"
		m := runMain(t, cfg)
		httpPort := m.HTTPAddr().(*net.TCPAddr).Port
		ws := m.Gateway.WebSocketPort()
		assertHandshakes(t, ws, map[string]int{
			fmt.Sprintf("http://127.0.0.1:%d", httpPort):  101,
			fmt.Sprintf("http://localhost:%d", httpPort):  101,
			fmt.Sprintf("http://[::1]:%d", httpPort):      101,
			"https://chat.example":                        101,
			"":                                            101,
			fmt.Sprintf("https://127.0.0.1:%d", httpPort): 403, // another scheme
			fmt.Sprintf("http://127.0.0.1:%d", ws):        403, // another port
			"http://127.0.0.1":                            403,
			"https://evil.example":                        403,
			"https://chat.example.evil.example":           403,
			"null":                                        403,
		})
	})
	t.Run("NATTER_ALLOWED_ORIGINS", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.AllowedOrigins = []string{"https://chat.example"}
		m := runMain(t, cfg)
		httpPort := m.HTTPAddr().(*net.TCPAddr).Port
		assertHandshakes(t, m.Gateway.WebSocketPort(), map[string]int{
			"https://chat.example":                       101,
			"https://evil.example":                       403,
			fmt.Sprintf("http://127.0.0.1:%d", httpPort): 403, // the list replaces the default
		})
	})
}

// assertHandshakes makes a raw WebSocket handshake with each Origin ("" for
// none) to the NATS WebSocket listener on 127.0.0.1:port and checks the
// status.
func assertHandshakes(t *testing.T, port int, want map[string]int) {
	t.Helper()
	for origin, status := range want {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("origin %q: status %d, want %d", origin, resp.StatusCode, status)
		}
	}
}

// TestRoomAPI runs the room API against natter as configured: the chat
// settings reach the gateway, and a token is vended only for rooms that
// exist.
func TestRoomAPI(t *testing.T) {
	cfg := testConfig(t)
	cfg.RoomsPerHour, cfg.RoomMaxTTL = 1, 2*time.Hour
	m := runMain(t, cfg)
	u := gatewaytest.NewUser(t)
	tok := u.MustToken(t, m.baseURL())
	room := u.MustCreateRoom(t, m.baseURL(), tok, "Book Club")
	if !strings.HasPrefix(room.ID, "book-club-") || room.ExpiresAt.Sub(room.CreatedAt) != 2*time.Hour {
		t.Fatalf("created %+v, want an id book-club-… expiring after NATTER_ROOM_MAX_TTL", room)
	}

	_, err := u.CreateRoom(m.baseURL(), tok, "")
	if e, ok := errors.AsType[*gatewaytest.APIError](err); !ok || e.Status != http.StatusTooManyRequests || e.Code != natter.ERoomLimit {
		t.Fatalf("second room with NATTER_ROOMS_PER_HOUR=1: %v, want 429 %s", err, natter.ERoomLimit)
	}

	var list struct{ Rooms []natter.Room }
	if err := gatewaytest.GetJSON(m.baseURL()+"/api/v1/rooms", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Rooms) != 1 || list.Rooms[0].ID != room.ID {
		t.Fatalf("rooms %+v, want just %s", list.Rooms, room.ID)
	}
	var stats natter.Stats
	if err := gatewaytest.GetJSON(m.baseURL()+"/api/v1/stats", &stats); err != nil || stats.Rooms != 1 {
		t.Fatalf("stats %+v (%v), want 1 room", stats, err)
	}

	_, err = u.RequestToken(m.baseURL(), "", room.ID, otherRoom)
	if e, ok := errors.AsType[*gatewaytest.APIError](err); !ok || e.Status != http.StatusNotFound || e.Code != natter.EUnknownRoom || !strings.Contains(e.Message, otherRoom) {
		t.Fatalf("token for a room that does not exist: %v, want 404 %s naming it", err, natter.EUnknownRoom)
	}
	if err := u.Connect(t, u.MustToken(t, m.baseURL(), room.ID)).Flush(); err != nil {
		t.Fatal(err)
	}
}
