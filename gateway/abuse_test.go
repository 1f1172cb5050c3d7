package gateway_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// state is what a refused input must leave as it was: the rooms with their
// member counts, and a room's last seq.
type state struct {
	rooms   []string
	lastSeq uint64
}

func snapshot(t *testing.T, s *gatewaytest.Server, c *gatewaytest.Chatter, room string) state {
	t.Helper()
	rooms, err := s.GW.Rooms(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var st state
	for _, r := range rooms {
		st.rooms = append(st.rooms, fmt.Sprintf("%s:%d", r.ID, r.Members))
	}
	slices.Sort(st.rooms)
	st.lastSeq = s.LastSeq(t, c, room)
	return st
}

func assertUnchanged(t *testing.T, before, after state) {
	t.Helper()
	if !slices.Equal(before.rooms, after.rooms) || before.lastSeq != after.lastSeq {
		t.Fatalf("state changed: rooms %v → %v, last seq %d → %d", before.rooms, after.rooms, before.lastSeq, after.lastSeq)
	}
}

// newMember is a user with a token for room, connected but not joined, so
// that it has no subscription yet.
func newMember(t *testing.T, s *gatewaytest.Server, room string) (*gatewaytest.User, *gatewaytest.Token, *gatewaytest.Conn) {
	t.Helper()
	u := gatewaytest.NewUser(t)
	tok, err := s.API.Token(ctx(t), u.Identity, "", room)
	if err != nil {
		t.Fatal(err)
	}
	return u, tok, u.Connect(t, tok)
}

// TestSubscriptionsCappedByTheJWT: the chat user template allows 100
// subscriptions per connection; the 101st is refused by the server, the
// connection and the first 100 keep working.
func TestSubscriptionsCappedByTheJWT(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	_, _, c := newMember(t, s, room)
	subj := natter.RoomSubject(room, natter.TopicMsgs)
	var subs []*nats.Subscription
	for range gateway.DefaultUserLimits.MaxSubs {
		sub, err := c.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if errs := c.Errors(); len(errs) > 0 {
		t.Fatalf("%d subscriptions: %v", len(subs), errs)
	}
	extra, err := c.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	c.WaitError(t, "maximum subscriptions exceeded")
	if !slices.ContainsFunc(c.Errors(), func(err error) bool { return errors.Is(err, nats.ErrMaxSubscriptionsExceeded) }) {
		t.Fatalf("errors %v, want %v", c.Errors(), nats.ErrMaxSubscriptionsExceeded)
	}

	// Still connected; the first 100 receive, the refused one does not.
	svc := s.GW.Conn()
	if err := svc.Publish(subj, []byte("after")); err != nil {
		t.Fatal(err)
	}
	svc.Flush()
	if _, err := subs[0].NextMsg(5 * time.Second); err != nil {
		t.Fatalf("first subscription after the refusal: %v", err)
	}
	if err := c.Flush(); err != nil { // every MSG before the PONG is in
		t.Fatal(err)
	}
	for i, sub := range subs[1:] {
		if n, _, _ := sub.Pending(); n != 1 {
			t.Fatalf("subscription %d has %d messages pending, want 1", i+2, n)
		}
	}
	if n, _, _ := extra.Pending(); n != 0 {
		t.Fatalf("the refused subscription received %d messages", n)
	}
	if !c.IsConnected() || c.Stats().Reconnects != 0 {
		t.Fatalf("connection %v, %d reconnects", c.Status(), c.Stats().Reconnects)
	}
}

// TestPayloadCappedByTheJWT: a publish over the template's 8 KiB is refused.
// nats.go learns the limit from the server and refuses it itself
// (nats.ErrMaxPayload); a client that sends it anyway is disconnected by
// the server. Neither reaches the gateway, whose history stays as it was.
func TestPayloadCappedByTheJWT(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	ada := s.MustJoin(t, room, "Ada")
	limit := gateway.DefaultUserLimits.MaxPayload
	if err := ada.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := ada.MaxPayload(); got != limit {
		t.Fatalf("the server told the client a max payload of %d, want %d", got, limit)
	}
	// A valid, signed request, padded with JSON whitespace past the limit:
	// the gateway would take it, so only NATS can be refusing it.
	sig, _ := ada.User.Sign(room, "big", "hello")
	req, _ := json.Marshal(natter.SendRequest{ID: "big", Text: "hello", Sig: sig})
	big := append(req, bytes.Repeat([]byte(" "), int(limit)+1-len(req))...)
	if _, err := gateway.CheckSend(big, room, ada.User.ID, 1000); err != nil {
		t.Fatalf("the padded request is not valid: %v", err)
	}
	send := natter.UserSubject(room, natter.OpSend, ada.User.ID)
	before := snapshot(t, s, ada, room)

	t.Run("nats.go refuses", func(t *testing.T) {
		if _, err := ada.RequestWithContext(ctx(t), send, big); !errors.Is(err, nats.ErrMaxPayload) {
			t.Fatalf("request of %d bytes: %v, want %v", len(big), err, nats.ErrMaxPayload)
		}
		if !ada.IsConnected() {
			t.Fatal("the refusal closed the connection")
		}
		assertUnchanged(t, before, snapshot(t, s, ada, room))
	})

	t.Run("the server refuses", func(t *testing.T) {
		u, tok, raw := dialRaw(t, s, room)
		mine := natter.UserSubject(room, natter.OpSend, u.ID)
		if err := raw.Send(fmt.Sprintf("PUB %s %s.x %d\r\n%s\r\n", mine, tok.InboxPrefix, len(big), big)); err != nil {
			t.Fatal(err)
		}
		got, err := raw.ReadUntil("-ERR", 5*time.Second)
		if err != nil || !strings.Contains(got, "-ERR") {
			t.Fatalf("no -ERR: %q %v", got, err)
		}
		rest, _ := raw.ReadUntil("\r\n", 5*time.Second)
		if !strings.Contains(rest, "Maximum Payload Violation") {
			t.Fatalf("-ERR%s, want Maximum Payload Violation", rest)
		}
		if why, err := raw.Drain(5 * time.Second); err != nil {
			t.Fatalf("the server kept the connection: %v", err)
		} else {
			t.Logf("closed: %s", why)
		}
		assertUnchanged(t, before, snapshot(t, s, ada, room))
		// Everyone else goes on.
		if _, err := ada.Send(ctx(t), room, "still here"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAccountConnectionCap: the chat account JWT caps its connections. With
// a cap of 3 (natter's own connection and two users) a third user is
// refused with "maximum account active connections exceeded", the two keep
// chatting, and once one leaves the third gets in.
func TestAccountConnectionCap(t *testing.T) {
	cfg := gatewaytest.Config(t.TempDir())
	cfg.Limits.MaxConns = 3
	s := gatewaytest.RunServerWith(t, cfg)
	room := s.MustRoom(t, "").ID
	ada := s.MustJoin(t, room, "Ada")
	bob := s.MustJoin(t, room, "Bob")
	before := snapshot(t, s, ada, room)

	carol := gatewaytest.NewUser(t)
	tok, err := s.API.Token(ctx(t), carol.Identity, "Carol", room)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.AssertRefused(t, func() (*gatewaytest.Conn, error) { return carol.Dial(tok, nats.NoReconnect()) }, gatewaytest.IsAccountFull)
	assertUnchanged(t, before, snapshot(t, s, ada, room))

	for _, c := range []*gatewaytest.Chatter{ada, bob} {
		if _, err := c.Send(ctx(t), room, "still chatting"); err != nil || !c.IsConnected() {
			t.Fatalf("%s after the refusal: %v (%v)", c.Name, err, c.Status())
		}
	}

	bob.Close()
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		c, err := carol.Dial(tok, nats.NoReconnect())
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
}

// logBuffer collects log lines for the test to search.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSlowConsumerIsDropped: a member that subscribes to a room and then
// stops reading is disconnected by the server as a slow consumer while the
// gateway floods the room; a member that reads gets every message, on the
// same connection. The embedded server runs with 1 MiB of pending bytes
// per connection rather than its default 64 MiB, so that the test floods
// megabytes rather than a hundred of them.
func TestSlowConsumerIsDropped(t *testing.T) {
	var logs logBuffer
	cfg := gatewaytest.Config(t.TempDir())
	cfg.MaxPending = 1 << 20
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := gatewaytest.RunServerWith(t, cfg)
	room := s.MustRoom(t, "").ID
	subj := natter.RoomSubject(room, natter.TopicMsgs)

	reader := s.MustJoin(t, room, "Reader")
	var got atomic.Int64
	var order atomic.Bool // set when a seq arrives out of order
	if _, err := reader.Subscribe(subj, func(m *nats.Msg) {
		var e natter.Envelope
		if json.Unmarshal(m.Data, &e) != nil || e.Seq != uint64(got.Load())+1 {
			order.Store(true)
		}
		got.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	if err := reader.Flush(); err != nil {
		t.Fatal(err)
	}

	_, _, slow := dialRaw(t, s, room)
	if err := slow.Send("SUB " + subj + " 1\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := slow.ReadUntil("PONG\r\n", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// From here on the slow member reads nothing.
	slowAddr := slow.LocalAddr().String()
	dropped := func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "Slow Consumer Detected") && strings.Contains(line, slowAddr) {
				return true
			}
		}
		return false
	}

	svc := s.GW.Conn()
	var sent int64
	text := strings.Repeat("flood ", 680) // about 4 KiB a message
	flood := func(n int) {
		t.Helper()
		for range n {
			sent++
			data, _ := json.Marshal(natter.Envelope{Room: room, Seq: uint64(sent), ID: fmt.Sprint("f", sent), Type: natter.TypeMessage, Text: text})
			if err := svc.Publish(subj, data); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		// The reader keeps up: what is pending for it stays far below the
		// limit, whatever the slow member's backlog.
		gatewaytest.WaitFor(t, 10*time.Second, func() error {
			if n := got.Load(); n != sent {
				return fmt.Errorf("reader has %d of %d", n, sent)
			}
			return nil
		})
	}
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	for !dropped() {
		if sent*4<<10 > 256<<20 {
			t.Fatalf("sent %d messages (%d MiB) and the slow member is still connected", sent, sent*4>>10)
		}
		flood(32)
	}
	t.Logf("slow member dropped after %d messages (%d MiB)", sent, sent*4>>10)
	flood(100) // and the room goes on

	if order.Load() {
		t.Fatal("the reader saw a gap or a message out of order")
	}
	if !reader.IsConnected() || reader.Stats().Reconnects != 0 {
		t.Fatalf("reader: %v, %d reconnects", reader.Status(), reader.Stats().Reconnects)
	}
	// The server has closed the socket: reading what is left ends in EOF.
	if _, err := slow.Drain(10 * time.Second); err != nil {
		t.Fatalf("slow member: %v", err)
	}
	// The reader's connection still does more than receive.
	if _, err := reader.Send(ctx(t), room, "still here"); err != nil {
		t.Fatal(err)
	}
}

// TestGoClientTakesBursts: the server sends a burst of a room's messages to
// a Go client as WebSocket frames it accepts. nats.go drops the connection
// on a frame over 8 times the max payload (64 KiB here), and the server
// frames all that is pending for a non-browser client as one, so without
// the client's browser-like User-Agent a burst like this one disconnects it.
func TestGoClientTakesBursts(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Reader")
	var got atomic.Int64
	if _, err := c.Subscribe(natter.RoomSubject(room, natter.TopicMsgs), func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 2000 // 8 MiB at once: more than the server writes before the next message is queued
	payload := bytes.Repeat([]byte("x"), 4<<10)
	svc := s.GW.Conn()
	for range n {
		svc.Publish(natter.RoomSubject(room, natter.TopicMsgs), payload)
	}
	svc.Flush()
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if g := got.Load(); g != n {
			return fmt.Errorf("%d of %d", g, n)
		}
		return nil
	})
	if st := c.Stats(); !c.IsConnected() || st.Reconnects != 0 {
		t.Fatalf("connection %v with %d reconnects", c.Status(), st.Reconnects)
	}
}

// TestRateLimitedSenderKeepsChatting: a sender over the message rate is
// refused with rate_limited on the same connection, which stays subscribed
// and sends again once the bucket refills.
func TestRateLimitedSenderKeepsChatting(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{SendRate: 1, SendBurst: 2})
	room := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Speedy")
	var seen atomic.Int64
	if _, err := c.Subscribe(natter.RoomSubject(room, natter.TopicMsgs), func(*nats.Msg) { seen.Add(1) }); err != nil {
		t.Fatal(err)
	}
	var acked, limited int64
	for i := range 5 {
		_, err := c.Send(ctx(t), room, fmt.Sprint("m", i))
		switch code := natter.ErrorCode(err); {
		case err == nil:
			acked++
		case code == natter.ERateLimited:
			limited++
			if !strings.Contains(natter.ErrorMessage(err), "too many messages") {
				t.Fatalf("rate_limited without a message: %v", err)
			}
		default:
			t.Fatal(err)
		}
	}
	if limited == 0 {
		t.Fatal("five messages at once with a burst of two: none refused")
	}
	time.Sleep(1100 * time.Millisecond) // a token a second
	if _, err := c.Send(ctx(t), room, "after"); err != nil {
		t.Fatalf("after the bucket refilled: %v", err)
	}
	acked++
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		if n := seen.Load(); n != acked {
			return fmt.Errorf("%d broadcasts for %d acked messages", n, acked)
		}
		return nil
	})
	if st := c.Stats(); !c.IsConnected() || st.Reconnects != 0 {
		t.Fatalf("connection %v with %d reconnects", c.Status(), st.Reconnects)
	}
}

// TestNoEarlyServerPing: the server's first PING to a client comes after
// the usual interval, not 2 s after its CONNECT. When a flood of handshakes
// makes the server slower than 2 s to answer a client's PING, an early
// server PING arrives first and nats.go fails the handshake ("expected
// 'PONG', got 'PING'"), dropping a connection the server already paid for.
// The server starts that timer when it reads the CONNECT; 3 s after the
// answer, a short first ping (2 s, plus up to 20%) would have come.
func TestNoEarlyServerPing(t *testing.T) {
	t.Parallel()
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	_, _, raw := dialRaw(t, s, s.MustRoom(t, "").ID)
	got, err := raw.ReadUntil("PING", 3*time.Second)
	if err == nil {
		t.Fatalf("the server sent %q within 3 s of the handshake", got)
	}
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("the connection ended: %q %v", got, err)
	}
}

// dialRaw connects a new user with a token for room over a hand-written
// NATS connection, closed when the test ends.
func dialRaw(t *testing.T, s *gatewaytest.Server, room string) (*gatewaytest.User, *gatewaytest.Token, *gatewaytest.RawConn) {
	t.Helper()
	u := gatewaytest.NewUser(t)
	tok, err := s.API.Token(ctx(t), u.Identity, "", room)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gatewaytest.DialRaw(tok.Servers[0], tok.JWT, u.Key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return u, tok, raw
}
