package gateway_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
	"github.com/natterchat/natter/sealed"
)

// wiretap keeps everything an admin subscriber receives.
type wiretap struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (w *wiretap) add(m *nats.Msg) {
	w.mu.Lock()
	w.msgs = append(w.msgs, m)
	w.mu.Unlock()
}

// bytes is every subject, header and payload received, one after another.
func (w *wiretap) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b bytes.Buffer
	for _, m := range w.msgs {
		b.WriteString(m.Subject + "\n")
		for k, vs := range m.Header {
			b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		b.Write(m.Data)
		b.WriteString("\n")
	}
	return b.Bytes()
}

// TestSealedRoomCarriesOnlyCiphertext: two members chat in a sealed room
// and read each other; an operator with full rights in the chat account,
// on the room's subjects and in the history bucket, sees only ciphertext.
func TestSealedRoomCarriesOnlyCiphertext(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustSealedRoom(t, "Secret Garden")
	if !room.Sealed {
		t.Fatalf("created room %+v is not sealed", room)
	}
	if got, err := s.GW.Room(ctx(t), room.ID); err != nil || !got.Sealed {
		t.Fatalf("Room = %+v, %v; want sealed", got, err)
	}
	if rooms, err := s.API.Rooms(ctx(t)); err != nil || len(rooms) != 1 || !rooms[0].Sealed {
		t.Fatalf("Rooms = %+v, %v; want the sealed room", rooms, err)
	}

	admin := s.AdminConn(t)
	var tap wiretap
	sub, err := admin.Subscribe(natter.RoomWildcard(room.ID), tap.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}

	key := sealed.NewKey()
	alice := s.MustJoin(t, room.ID, "Alice")
	bob := s.MustJoin(t, room.ID, "Bob")
	var seenByAlice, seenByBob collector
	if _, err := alice.Follow(ctx(t), room.ID, 0, seenByAlice.add); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Follow(ctx(t), room.ID, 0, seenByBob.add); err != nil {
		t.Fatal(err)
	}
	said := []struct {
		c    *gatewaytest.Chatter
		text string
	}{
		{alice, "the heron flies at midnight 🪶"},
		{bob, "bring the blue umbrella, Ålesund"},
		{alice, strings.Repeat("q", 1000)},
	}
	for i, m := range said {
		ack, err := m.c.SendSealed(ctx(t), room.ID, key, m.text)
		if err != nil || !ack.OK {
			t.Fatalf("sealed send %d: %+v %v", i, ack, err)
		}
	}

	// Two joins, three messages.
	for name, c := range map[string]*collector{"alice": &seenByAlice, "bob": &seenByBob} {
		got := waitEntries(t, c, 5)
		assertGapless(t, got, 1)
		for i, m := range said {
			e := got[2+i]
			if e.Type != natter.TypeMessage || e.Text != "" || e.CT == "" || e.From.ID != m.c.User.ID {
				t.Fatalf("%s's entry %d: %+v, want a sealed message from %s", name, e.Seq, e, m.c.Name)
			}
			text, err := client.OpenSealed(key, e)
			if err != nil || text != m.text {
				t.Fatalf("%s opens entry %d: %q, %v; want %q", name, e.Seq, text, err, m.text)
			}
			if _, err := client.OpenSealed(sealed.NewKey(), e); err == nil {
				t.Fatalf("%s opened entry %d with another key", name, e.Seq)
			}
		}
	}

	// What the operator can read: the live subjects and the history bucket.
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx(t), natter.BucketHistory)
	if err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	for seq := uint64(1); seq <= 5; seq++ {
		e, err := kv.Get(ctx(t), fmt.Sprintf("%s.%d", room.ID, seq))
		if err != nil {
			t.Fatalf("history %d: %v", seq, err)
		}
		stored.Write(e.Value())
	}
	last := seenByAlice.get()[4]
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		// The send request and the broadcast of the last message.
		if n := bytes.Count(tap.bytes(), []byte(last.CT)); n < 2 {
			return fmt.Errorf("the operator saw the last ct %d times, want the request and the broadcast", n)
		}
		return nil
	})
	for what, seen := range map[string][]byte{"the subscriber": tap.bytes(), "the history bucket": stored.Bytes()} {
		for _, m := range said {
			for _, secret := range []string{m.text, m.text[:12], base64.StdEncoding.EncodeToString([]byte(m.text))[:16]} {
				if bytes.Contains(seen, []byte(secret)) {
					t.Errorf("%s saw %q of a sealed text", what, secret)
				}
			}
		}
		for _, c := range []*collector{&seenByAlice} {
			for _, e := range c.get()[2:] {
				if !bytes.Contains(seen, []byte(e.CT)) {
					t.Errorf("%s did not see the ct of entry %d: the test looked in the wrong place", what, e.Seq)
				}
			}
		}
	}
}

// TestSealedRefusals: what does not fit a room is refused with its code,
// and nothing is stored.
func TestSealedRefusals(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	sealedRoom := s.MustSealedRoom(t, "Vault").ID
	plainRoom := s.MustRoom(t, "Plaza").ID
	inSealed := s.MustJoin(t, sealedRoom, "Ada")
	inPlain := s.MustJoin(t, plainRoom, "Ada")
	key := sealed.NewKey()
	max := gateway.DefaultChatConfig.MessageMaxChars

	// signedCT is a request with ct of n bytes (or the ct given), signed.
	signed := func(c *gatewaytest.Chatter, room, id, ct string) natter.SendRequest {
		sig, err := c.User.Sign(room, id, ct)
		if err != nil {
			t.Fatal(err)
		}
		return natter.SendRequest{ID: id, CT: ct, Sig: sig}
	}
	ctOf := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	good, err := sealed.Seal(key, sealedRoom, inSealed.User.ID, "m1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	textSig, _ := inSealed.User.Sign(sealedRoom, "t1", "hello")
	imgSig, _ := inSealed.User.SignImage(sealedRoom, "i1", "upl_aaaaaaaaaaaaaaaaaaaa", "")
	imgCTSig, _ := inSealed.User.Sign(sealedRoom, "i2", good)
	badSig := signed(inSealed, sealedRoom, "m2", good)
	badSig.ID = "m3" // signed for another id
	withText := signed(inSealed, sealedRoom, "m4", good)
	withText.Text = "hello"

	cases := []struct {
		name string
		c    *gatewaytest.Chatter
		room string
		req  natter.SendRequest
		code string
	}{
		{"text in a sealed room", inSealed, sealedRoom, natter.SendRequest{ID: "t1", Text: "hello", Sig: textSig}, natter.ESealedRoom},
		{"ct in an ordinary room", inPlain, plainRoom, signed(inPlain, plainRoom, "c1", good), natter.ESealedRoom},
		{"image in a sealed room", inSealed, sealedRoom, natter.SendRequest{ID: "i1", Type: natter.TypeImage, Upload: "upl_aaaaaaaaaaaaaaaaaaaa", Sig: imgSig}, natter.ESealedRoom},
		{"image with ct", inSealed, sealedRoom, natter.SendRequest{ID: "i2", Type: natter.TypeImage, Upload: "upl_aaaaaaaaaaaaaaaaaaaa", CT: good, Sig: imgCTSig}, natter.ESealedRoom},
		{"ct and text", inSealed, sealedRoom, withText, natter.EMalformed},
		{"too short", inSealed, sealedRoom, signed(inSealed, sealedRoom, "s1", ctOf(sealed.Overhead)), natter.EMalformed},
		{"too long", inSealed, sealedRoom, signed(inSealed, sealedRoom, "l1", ctOf(sealed.Overhead+4*max+1)), natter.ETooLong},
		{"bad base64", inSealed, sealedRoom, signed(inSealed, sealedRoom, "b1", "not*base64"), natter.EMalformed},
		{"padded base64", inSealed, sealedRoom, signed(inSealed, sealedRoom, "b2", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 40))), natter.EMalformed},
		{"standard base64", inSealed, sealedRoom, signed(inSealed, sealedRoom, "b3", base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 40))), natter.EMalformed},
		{"bad signature", inSealed, sealedRoom, badSig, natter.EBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ack, err := tc.c.SendRaw(ctx(t), tc.room, tc.req)
			if err == nil || ack.OK || ack.Error == nil || ack.Error.Code != tc.code {
				t.Fatalf("ack %+v, err %v; want %s", ack, err, tc.code)
			}
			if tc.code == natter.ESealedRoom && !strings.Contains(ack.Error.Message, "sealed") {
				t.Fatalf("message %q does not say why", ack.Error.Message)
			}
		})
	}
	// Only the joins are stored.
	if last := s.LastSeq(t, inSealed, sealedRoom); last != 1 {
		t.Errorf("sealed room's last seq %d, want 1 (the join)", last)
	}
	if last := s.LastSeq(t, inPlain, plainRoom); last != 1 {
		t.Errorf("ordinary room's last seq %d, want 1 (the join)", last)
	}
	// The longest ct allowed, and an ordinary text in an ordinary room, pass.
	if ack, err := inSealed.SendRaw(ctx(t), sealedRoom, signed(inSealed, sealedRoom, "x1", ctOf(sealed.Overhead+4*max))); err != nil || !ack.OK {
		t.Fatalf("the longest ct: %+v %v", ack, err)
	}
	if ack, err := inPlain.Send(ctx(t), plainRoom, "hello"); err != nil || !ack.OK {
		t.Fatalf("a text in an ordinary room: %+v %v", ack, err)
	}
}

func TestCheckCT(t *testing.T) {
	ctOf := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, n)) }
	for _, tc := range []struct {
		name string
		ct   string
		code string
	}{
		{"shortest", ctOf(sealed.Overhead + 1), ""},
		{"longest", ctOf(sealed.Overhead + 40), ""},
		{"only nonce and tag", ctOf(sealed.Overhead), natter.EMalformed},
		{"one byte too long", ctOf(sealed.Overhead + 41), natter.ETooLong},
		{"line break", ctOf(30)[:8] + "\n" + ctOf(30)[8:], natter.EMalformed},
		{"empty", "", natter.EMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := gateway.CheckCT(tc.ct, 10)
			if tc.code == "" && err != nil || tc.code != "" && natter.ErrorCode(err) != tc.code {
				t.Fatalf("CheckCT: %v, want %q", err, tc.code)
			}
		})
	}
}
