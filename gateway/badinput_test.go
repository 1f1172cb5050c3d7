package gateway_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// TestReplayedIDKeepsTheFirstMessage sends a second, validly signed text
// under a message id already used: it is not stored, the first ack comes
// back, and only the first text is ever broadcast. Ids are per sender:
// another member's message with the same id is a message of its own.
func TestReplayedIDKeepsTheFirstMessage(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	ada := s.MustJoin(t, room, "Ada")
	bob := s.MustJoin(t, room, "Bob")
	var mu sync.Mutex
	var live []natter.Envelope
	if _, err := bob.Subscribe(natter.RoomSubject(room, natter.TopicMsgs), func(m *nats.Msg) {
		var e natter.Envelope
		if json.Unmarshal(m.Data, &e) == nil {
			mu.Lock()
			live = append(live, e)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	bob.Flush()

	first, err := ada.SendID(ctx(t), room, "same-id", "first")
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s, ada, room)
	again, err := ada.SendID(ctx(t), room, "same-id", "second")
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if again.Seq != first.Seq || !again.SentAt.Equal(*first.SentAt) {
		t.Fatalf("replay acked %+v, first %+v", again, first)
	}
	assertUnchanged(t, before, snapshot(t, s, ada, room))

	// The replay broadcasts the stored entry again (clients drop it by seq).
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range live {
			if e.Seq == first.Seq {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("seq %d broadcast %d times", first.Seq, n)
		}
		return nil
	})
	mu.Lock()
	for _, e := range live {
		if e.Text == "second" {
			t.Errorf("the replayed text was broadcast: %+v", e)
		}
	}
	mu.Unlock()

	theirs, err := bob.SendID(ctx(t), room, "same-id", "bob's own")
	if err != nil || theirs.Seq != first.Seq+1 {
		t.Fatalf("another sender's message with the same id: %+v %v", theirs, err)
	}
	h, err := ada.History(ctx(t), room, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h.Messages {
		if e.ID == "same-id" {
			got = append(got, e.From.Name+": "+e.Text)
		}
	}
	if want := []string{"Ada: first", "Bob: bob's own"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history under the id: %q, want %q", got, want)
	}
}

// TestSignatureStoredCanonically: a signature that Go's decoder takes but a
// strict one refuses (padding, a line break) is stored in the one form
// every client decodes.
func TestSignatureStoredCanonically(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "").ID
	ada := s.MustJoin(t, room, "Ada")
	for i, mangle := range []func(string) string{
		func(sig string) string { return sig + "==" },
		func(sig string) string { return sig[:10] + "\n" + sig[10:] },
	} {
		id, text := fmt.Sprint("m", i), fmt.Sprint("text ", i)
		sig, _ := ada.User.Sign(room, id, text)
		ack, err := ada.SendRaw(ctx(t), room, natter.SendRequest{ID: id, Text: text, Sig: mangle(sig)})
		if err != nil {
			t.Fatalf("%q: %v", mangle(sig), err)
		}
		h, err := ada.History(ctx(t), room, ack.Seq-1, 1)
		if err != nil || len(h.Messages) != 1 {
			t.Fatalf("history: %+v %v", h, err)
		}
		if got := h.Messages[0].Sig; got != sig {
			t.Fatalf("stored %q, want %q", got, sig)
		}
	}
}
