package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
	"github.com/natterchat/natter/images/imagestest"
)

// mustUpload stores a PNG of w×h as an upload of room, straight through
// the gateway.
func mustUpload(t *testing.T, gw *gateway.Gateway, room string, w, h int) natter.Upload {
	t.Helper()
	up, err := gw.Uploads().PutUpload(ctx(t), natter.Upload{
		ID: natter.NewUploadID(), Room: room, Uploader: "test", Type: "image/png", Width: w, Height: h,
	}, imagestest.PNG(t, w, h))
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// TestImageMessages: an image message with an upload of its room is
// stored and broadcast with the upload's facts; one with another room's
// upload, or none, is refused; text messages are as they were.
func TestImageMessages(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{})
	room := s.MustRoom(t, "Gallery").ID
	other := s.MustRoom(t, "Elsewhere").ID
	ada := s.MustJoin(t, room, "Ada")
	bob := s.MustJoin(t, room, "Bob")
	mine := mustUpload(t, s.GW, room, 120, 80)
	theirs := mustUpload(t, s.GW, other, 10, 10)

	var mu sync.Mutex
	var live []json.RawMessage
	sub, err := bob.Subscribe(natter.RoomSubject(room, natter.TopicMsgs), func(m *nats.Msg) {
		mu.Lock()
		live = append(live, m.Data)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	bob.Flush()

	ack, err := ada.SendImage(ctx(t), room, mine.ID, "the view")
	if err != nil || !ack.OK {
		t.Fatalf("image message: %+v %v", ack, err)
	}
	if ack, err := ada.SendImage(ctx(t), room, mine.ID, ""); err != nil || !ack.OK {
		t.Fatalf("image message without a caption: %+v %v", ack, err)
	}
	if ack, err := ada.Send(ctx(t), room, "and some text"); err != nil || !ack.OK {
		t.Fatalf("text message: %+v %v", ack, err)
	}

	h, err := bob.History(ctx(t), room, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var images, texts int
	for _, e := range h.Messages {
		switch e.Type {
		case natter.TypeImage:
			images++
			want := natter.Image{ID: mine.ID, Type: "image/png", Width: 120, Height: 80, Size: mine.Size}
			if e.Image == nil || *e.Image != want || e.From.Name != "Ada" {
				t.Fatalf("stored image entry %+v (image %+v)", e, e.Image)
			}
			raw, _ := base64.RawURLEncoding.DecodeString(e.Sig)
			pub, _ := nkeys.FromPublicKey(e.From.ID)
			if err := pub.Verify(natter.SignedImagePayload(room, e.ID, e.Image.ID, e.Text), raw); err != nil {
				t.Fatalf("stored image entry's signature: %v", err)
			}
		case natter.TypeMessage:
			texts++
			if e.Image != nil || e.Text != "and some text" {
				t.Fatalf("text entry %+v", e)
			}
			if err := gateway.VerifySignature(e.From.ID, room, e.ID, e.Text, e.Sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	if images != 2 || texts != 1 {
		t.Fatalf("%d image and %d text entries in %+v", images, texts, h.Messages)
	}
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		var imgs, txts int
		for _, d := range live {
			switch {
			case strings.Contains(string(d), `"type":"image"`) && strings.Contains(string(d), `"image":{"id":"`+mine.ID+`"`):
				imgs++
			case strings.Contains(string(d), `"type":"message"`):
				if strings.Contains(string(d), `"image"`) {
					return fmt.Errorf("a text entry with an image: %s", d)
				}
				txts++
			}
		}
		if imgs != 2 || txts != 1 {
			return fmt.Errorf("broadcast %d image and %d text entries", imgs, txts)
		}
		return nil
	})

	sign := func(id, upload, text string) string {
		sig, err := ada.User.SignImage(room, id, upload, text)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	textSig, _ := ada.User.Sign(room, "t1", mine.ID)
	for _, tc := range []struct {
		name string
		req  natter.SendRequest
		code string
	}{
		{"another room's upload", natter.SendRequest{ID: "i1", Type: "image", Upload: theirs.ID, Sig: sign("i1", theirs.ID, "")}, natter.EUnknownUpload},
		{"no such upload", func() natter.SendRequest {
			id := natter.NewUploadID()
			return natter.SendRequest{ID: "i2", Type: "image", Upload: id, Sig: sign("i2", id, "")}
		}(), natter.EUnknownUpload},
		{"not an upload id", natter.SendRequest{ID: "i3", Type: "image", Upload: "../etc", Sig: sign("i3", "../etc", "")}, natter.EMalformed},
		{"no upload", natter.SendRequest{ID: "i4", Type: "image", Sig: sign("i4", "", "")}, natter.EMalformed},
		{"a text message with an upload", natter.SendRequest{ID: "i5", Type: "message", Upload: mine.ID, Text: "x", Sig: sign("i5", mine.ID, "x")}, natter.EMalformed},
		{"an unknown type", natter.SendRequest{ID: "i6", Type: "video", Upload: mine.ID, Sig: sign("i6", mine.ID, "")}, natter.EMalformed},
		{"a text message's signature", natter.SendRequest{ID: "t1", Type: "image", Upload: mine.ID, Sig: textSig}, natter.EBadSignature},
		{"signed for another upload", natter.SendRequest{ID: "i7", Type: "image", Upload: mine.ID, Sig: sign("i7", theirs.ID, "")}, natter.EBadSignature},
		{"signed for another caption", natter.SendRequest{ID: "i8", Type: "image", Upload: mine.ID, Text: "a", Sig: sign("i8", mine.ID, "b")}, natter.EBadSignature},
		{"a caption of whitespace", natter.SendRequest{ID: "i9", Type: "image", Upload: mine.ID, Text: "  ", Sig: sign("i9", mine.ID, "  ")}, natter.EEmpty},
		{"a caption too long", natter.SendRequest{ID: "i10", Type: "image", Upload: mine.ID, Text: strings.Repeat("a", 1001), Sig: sign("i10", mine.ID, strings.Repeat("a", 1001))}, natter.ETooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.LastSeq(t, ada, room)
			ack, err := ada.SendRaw(ctx(t), room, tc.req)
			if natter.ErrorCode(err) != tc.code || ack.OK {
				t.Fatalf("got %+v %v, want %s", ack, err, tc.code)
			}
			if after := s.LastSeq(t, ada, room); after != before {
				t.Fatalf("a refused message changed the history: seq %d → %d", before, after)
			}
		})
	}
}
