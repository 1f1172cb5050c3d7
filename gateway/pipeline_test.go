package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// collector gathers what a followed room delivers.
type collector struct {
	mu      sync.Mutex
	entries []natter.Envelope
}

func (c *collector) add(e natter.Envelope) {
	c.mu.Lock()
	c.entries = append(c.entries, e)
	c.mu.Unlock()
}

func (c *collector) get() []natter.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.entries)
}

func texts(es []natter.Envelope) []string {
	var out []string
	for _, e := range es {
		if e.Type == natter.TypeMessage {
			out = append(out, e.From.Name+": "+e.Text)
		}
	}
	return out
}

func assertGapless(t *testing.T, es []natter.Envelope, first uint64) {
	t.Helper()
	for i, e := range es {
		if e.Seq != first+uint64(i) {
			t.Fatalf("entry %d has seq %d, want %d (seqs %v)", i, e.Seq, first+uint64(i), seqsOf(es))
		}
	}
}

func seqsOf(es []natter.Envelope) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func waitEntries(t *testing.T, c *collector, n int) []natter.Envelope {
	t.Helper()
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if got := len(c.get()); got < n {
			return fmt.Errorf("%d entries, want %d", got, n)
		}
		return nil
	})
	return c.get()
}

func TestTwoChatAndALateJoinerGetsTheHistory(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "Tea Room").ID
	alice := s.MustJoin(t, room, "Alice")
	bob := s.MustJoin(t, room, "Bob")

	var seenByBob collector
	if _, err := bob.Follow(ctx(t), room, 0, seenByBob.add); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*gatewaytest.Chatter{alice, bob, alice, bob} {
		ack, err := c.Send(ctx(t), room, fmt.Sprintf("hello %d", i))
		if err != nil || !ack.OK || ack.SentAt == nil {
			t.Fatalf("send %d: %+v %v", i, ack, err)
		}
	}
	want := []string{"Alice: hello 0", "Bob: hello 1", "Alice: hello 2", "Bob: hello 3"}
	// Alice joined, Bob joined, four messages: six entries.
	got := waitEntries(t, &seenByBob, 6)
	if !slices.Equal(texts(got), want) {
		t.Fatalf("bob saw %v", texts(got))
	}
	assertGapless(t, got, 1)
	if got[0].Type != natter.TypeJoin || got[0].From.Name != "Alice" || got[1].Type != natter.TypeJoin || got[1].From.Name != "Bob" {
		t.Fatalf("first entries %+v %+v, want the joins", got[0], got[1])
	}

	carol := s.MustJoin(t, room, "Carol")
	var seenByCarol collector
	if _, err := carol.Follow(ctx(t), room, 0, seenByCarol.add); err != nil {
		t.Fatal(err)
	}
	late := seenByCarol.get() // the history was delivered before Follow returned
	if len(late) != 7 || !slices.Equal(texts(late), want) || late[6].Type != natter.TypeJoin {
		t.Fatalf("carol's history: %+v", late)
	}
	assertGapless(t, late, 1)

	for _, e := range late {
		if e.Type == natter.TypeMessage {
			if err := gateway.VerifySignature(e.From.ID, room, e.ID, e.Text, e.Sig); err != nil {
				t.Errorf("stored message %d does not verify: %v", e.Seq, err)
			}
		}
	}
}

func TestSendValidation(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	other := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Ada")
	sign := func(room, id, text string) string {
		sig, err := c.User.Sign(room, id, text)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	valid := func(text string) natter.SendRequest {
		return natter.SendRequest{ID: "m1", Text: text, Sig: sign(room, "m1", text)}
	}
	fourByte := strings.Repeat("𝄞", 1000)
	cases := []struct {
		name string
		raw  []byte // sent as is when set
		req  any
		code string // "" for accepted
	}{
		{"1000 four-byte characters", nil, natter.SendRequest{ID: "long-ok", Text: fourByte, Sig: sign(room, "long-ok", fourByte)}, ""},
		{"1001 characters", nil, valid(fourByte + "a"), natter.ETooLong},
		{"not json", []byte("hello"), nil, natter.EMalformed},
		{"text of wrong type", []byte(`{"id":"m1","text":5,"sig":"x"}`), nil, natter.EMalformed},
		{"unknown field", []byte(`{"id":"m1","text":"hi","sig":"x","admin":true}`), nil, natter.EMalformed},
		{"missing id", nil, natter.SendRequest{Text: "hi", Sig: sign(room, "", "hi")}, natter.EMalformed},
		{"id with dot", nil, natter.SendRequest{ID: "a.b", Text: "hi", Sig: sign(room, "a.b", "hi")}, natter.EMalformed},
		{"id of 65", nil, natter.SendRequest{ID: strings.Repeat("a", 65), Text: "hi"}, natter.EMalformed},
		{"invalid utf-8", []byte("{\"id\":\"m1\",\"text\":\"\xff\",\"sig\":\"x\"}"), nil, natter.EInvalidUTF8},
		{"empty", nil, valid(""), natter.EEmpty},
		{"only whitespace", nil, valid(" \n\t "), natter.EEmpty},
		{"nul", nil, valid("a\x00b"), natter.EControlChars},
		{"bell", nil, valid("a\x07b"), natter.EControlChars},
		{"newline and tab are fine", nil, natter.SendRequest{ID: "nl", Text: "a\n\tb", Sig: sign(room, "nl", "a\n\tb")}, ""},
		{"no signature", nil, natter.SendRequest{ID: "m1", Text: "hi"}, natter.EBadSignature},
		{"signature not base64", nil, natter.SendRequest{ID: "m1", Text: "hi", Sig: "***"}, natter.EBadSignature},
		{"signature too short", nil, natter.SendRequest{ID: "m1", Text: "hi", Sig: "AAAA"}, natter.EBadSignature},
		{"signature for another room", nil, natter.SendRequest{ID: "m1", Text: "hi", Sig: sign(other, "m1", "hi")}, natter.EBadSignature},
		{"signature for another text", nil, natter.SendRequest{ID: "m1", Text: "hi", Sig: sign(room, "m1", "bye")}, natter.EBadSignature},
		{"signature for another id", nil, natter.SendRequest{ID: "m1", Text: "hi", Sig: sign(room, "m2", "hi")}, natter.EBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.LastSeq(t, c, room)
			var ack natter.Ack
			var err error
			if tc.raw != nil {
				var msg *nats.Msg
				msg, err = c.RequestWithContext(ctx(t), natter.UserSubject(room, natter.OpSend, c.User.ID), tc.raw)
				if err == nil {
					if jerr := json.Unmarshal(msg.Data, &ack); jerr != nil {
						t.Fatal(jerr)
					}
					if ack.Error != nil {
						err = &natter.Error{Code: ack.Error.Code, Message: ack.Error.Message}
					}
				}
			} else {
				ack, err = c.SendRaw(ctx(t), room, tc.req)
			}
			after := s.LastSeq(t, c, room)
			if tc.code == "" {
				if err != nil || !ack.OK || after != before+1 {
					t.Fatalf("refused: %v (seq %d → %d)", err, before, after)
				}
				return
			}
			if natter.ErrorCode(err) != tc.code || ack.OK {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if e, ok := errors.AsType[*natter.Error](err); !ok || e.Message == "" {
				t.Fatalf("no message with the error: %v", err)
			}
			if after != before {
				t.Fatalf("a refused message changed the history: seq %d → %d", before, after)
			}
		})
	}

	t.Run("not joined", func(t *testing.T) {
		u, _ := client.NewIdentity()
		tok, err := s.API.Token(ctx(t), u, "", room)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := client.Dial(u, tok)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Send(ctx(t), room, "hi"); natter.ErrorCode(err) != natter.ENotJoined {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRateLimitKeepsTheConnection(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{SendRate: 1, SendBurst: 3})
	room := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Speedy")
	var limited int
	for i := range 6 {
		_, err := c.Send(ctx(t), room, fmt.Sprintf("m%d", i))
		if natter.ErrorCode(err) == natter.ERateLimited {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited == 0 {
		t.Fatal("six messages at once with a burst of three: none refused")
	}
	if !c.IsConnected() {
		t.Fatal("rate limiting closed the connection")
	}
}

func TestIdempotentResend(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Retry")
	first, err := c.SendID(ctx(t), room, "same-id", "once")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.SendID(ctx(t), room, "same-id", "once")
	if err != nil {
		t.Fatal(err)
	}
	if first.Seq != again.Seq || !first.SentAt.Equal(*again.SentAt) {
		t.Fatalf("resend acked %+v, first %+v", again, first)
	}
	h, err := c.History(ctx(t), room, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(h.Messages); !slices.Equal(got, []string{"Retry: once"}) {
		t.Fatalf("history %v", got)
	}
}

// TestReplySubjectMustBeOwnInbox sends a request whose reply subject is
// another room's msgs: the gateway must not publish there.
func TestReplySubjectMustBeOwnInbox(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	victim := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Mallory")

	spied := make(chan *nats.Msg, 10)
	sub, err := s.GW.Conn().ChanSubscribe(natter.RoomSubject(victim, natter.TopicMsgs), spied)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	s.GW.Conn().Flush()

	sig, _ := c.User.Sign(room, "x1", "hi")
	data, _ := json.Marshal(natter.SendRequest{ID: "x1", Text: "hi", Sig: sig})
	for _, op := range []natter.Op{natter.OpSend, natter.OpHistory, natter.OpJoin} {
		payload := data
		if op == natter.OpJoin {
			payload = []byte(`{"name":"Mallory"}`)
		}
		if err := c.PublishRequest(natter.UserSubject(room, op, c.User.ID), natter.RoomSubject(victim, natter.TopicMsgs), payload); err != nil {
			t.Fatal(err)
		}
	}
	// The drops are counted; once all three are, nothing can still arrive.
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if n := droppedReplies(s.GW); n < 3 {
			return fmt.Errorf("%d requests dropped", n)
		}
		return nil
	})
	select {
	case m := <-spied:
		t.Fatalf("the gateway published into %s: %s", m.Subject, m.Data)
	default:
	}
	if h, _ := c.History(ctx(t), room, 0, 0); len(texts(h.Messages)) != 0 {
		t.Fatalf("a request with a foreign reply subject was stored: %v", texts(h.Messages))
	}
}

func droppedReplies(gw *gateway.Gateway) int64 {
	for _, ep := range gw.ServiceStats().Endpoints {
		var m map[string]int64
		if json.Unmarshal(ep.Data, &m) == nil {
			return m["dropped_replies"]
		}
	}
	return 0
}

// TestGaplessSeqsWithTwoGateways has 20 clients send at once through two
// gateway processes sharing one JetStream.
func TestGaplessSeqsWithTwoGateways(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{SendRate: 1000, SendBurst: 1000})
	peer := s.RunPeer(t)
	room := s.MustRoom(t, "").ID
	const clients, each = 20, 10
	var chatters []*gatewaytest.Chatter
	for i := range clients {
		chatters = append(chatters, s.MustJoin(t, room, fmt.Sprintf("C%d", i)))
	}
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for i, c := range chatters {
		wg.Go(func() {
			for j := range each {
				text := fmt.Sprintf("c%d-m%d", i, j)
				ack, err := c.Send(ctx(t), room, text)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, dup := acked[ack.Seq]; dup {
					errs <- fmt.Errorf("seq %d acked twice: %s and %s", ack.Seq, prev, text)
				}
				acked[ack.Seq] = text
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A late reader pages through the history (replies are bounded by the
	// max payload): 20 joins and 200 messages, seqs 1…220, none missing or
	// doubled.
	var all collector
	if _, err := s.MustJoin(t, room, "Reader").Follow(ctx(t), room, 0, all.add); err != nil {
		t.Fatal(err)
	}
	got := all.get()
	assertGapless(t, got, 1)
	if len(got) != clients+clients*each+1 {
		t.Fatalf("%d entries", len(got))
	}
	for _, e := range got {
		if e.Type == natter.TypeMessage && acked[e.Seq] != e.Text {
			t.Fatalf("seq %d stored %q, acked for %q", e.Seq, e.Text, acked[e.Seq])
		}
	}
	// Both gateways did part of the work.
	for name, gw := range map[string]*gateway.Gateway{"first": s.GW, "peer": peer} {
		if n := sends(gw); n == 0 {
			t.Errorf("the %s gateway handled no sends", name)
		}
	}
}

func sends(gw *gateway.Gateway) int {
	for _, ep := range gw.ServiceStats().Endpoints {
		if ep.Name == string(natter.OpSend) {
			return ep.NumRequests
		}
	}
	return 0
}

func TestHistoryCap(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{HistoryMax: 5})
	room := s.MustRoom(t, "").ID
	c := s.MustJoin(t, room, "Cap") // seq 1
	for i := range 8 {
		if _, err := c.Send(ctx(t), room, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := c.History(ctx(t), room, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(h.Messages); !slices.Equal(got, []uint64{5, 6, 7, 8, 9}) || h.LastSeq != 9 {
		t.Fatalf("kept seqs %v, last %d; want the last five", got, h.LastSeq)
	}
	// Paging: after_seq and limit.
	h, err = c.History(ctx(t), room, 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(h.Messages); !slices.Equal(got, []uint64{7, 8}) || h.LastSeq != 9 {
		t.Fatalf("page after 6 limit 2: %v last %d", got, h.LastSeq)
	}
}

func TestStatsCountPeopleRoomsAndMessages(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	s.MustRoom(t, "")
	a := s.MustJoin(t, room, "A")
	s.MustJoin(t, room, "B")
	for i := range 3 {
		if _, err := a.Send(ctx(t), room, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	a.SendID(ctx(t), room, "dup", "x")
	a.SendID(ctx(t), room, "dup", "x") // a resend is not a new message
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		st, err := s.GW.Stats(ctx(t))
		if err != nil {
			return err
		}
		if want := (natter.Stats{OnlineUsers: 2, Rooms: 2, MessagesLastHour: 4}); st != want {
			return fmt.Errorf("stats %+v, want %+v", st, want)
		}
		return nil
	})
}
