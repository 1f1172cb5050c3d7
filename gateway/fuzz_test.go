package gateway_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/sealed"
)

const (
	fuzzRoom     = "lobby"
	fuzzMaxChars = 1000
)

// fuzzKey is a fixed user key, so that signed seeds and saved crashers stay
// valid from run to run.
var fuzzKey = func() nkeys.KeyPair {
	var raw [32]byte
	copy(raw[:], "natter fuzz user, not a secret!!")
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, raw[:])
	if err != nil {
		panic(err)
	}
	return kp
}()

func fuzzSign(t testing.TB, room, id, text string) string {
	sig, err := fuzzKey.Sign(natter.SignedPayload(room, id, text))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sig)
}

func fuzzRequest(t testing.TB, id, text, sig string) []byte {
	b, err := json.Marshal(natter.SendRequest{ID: id, Text: text, Sig: sig})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fuzzCT is a ct of n bytes: the gateway checks only its form and size.
func fuzzCT(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{9}, n)) }

// sealedRequest is a sealed room's send of ct, signed by the fuzz key.
func sealedRequest(t testing.TB, id, ct string) []byte {
	b, err := json.Marshal(natter.SendRequest{ID: id, CT: ct, Sig: fuzzSign(t, fuzzRoom, id, ct)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCheckSend feeds arbitrary send payloads to the pipeline's validator:
// it never panics, and what it accepts is a valid message id, a valid text
// and a signature by the sender over exactly this room, id and text, in
// its canonical encoding (the one every client decodes).
func FuzzCheckSend(f *testing.F) {
	user, _ := fuzzKey.PublicKey()
	signed := func(id, text string) []byte { return fuzzRequest(f, id, text, fuzzSign(f, fuzzRoom, id, text)) }
	for _, seed := range [][]byte{
		signed("m1", "hello"),
		signed("m2", "a\n\tb"),
		signed("m3", strings.Repeat("𝄞", fuzzMaxChars)),
		signed("m4", strings.Repeat("𝄞", fuzzMaxChars+1)),
		signed("m5", "a\x00b"),
		signed("m6", " \n "),
		signed("m.7", "dot in id"),
		signed(strings.Repeat("i", 64), "long id"),
		fuzzRequest(f, "m8", "wrong sig", fuzzSign(f, "other", "m8", "wrong sig")),
		fuzzRequest(f, "m9", "padded", fuzzSign(f, fuzzRoom, "m9", "padded")+"=="),
		[]byte(`{"id":"m1","text":"hi","sig":"x","admin":true}`),
		[]byte(`{"id":"m1","text":"hi","sig":"x"} {}`),
		[]byte("{\"id\":\"m1\",\"text\":\"\xff\",\"sig\":\"x\"}"),
		[]byte(`{"id":"m1","text":"\ud800","sig":"x"}`),
		[]byte(`{"ID":"m1","TEXT":"hi","SIG":"x"}`),
		[]byte(`null`), []byte(`[]`), []byte(`"x"`), []byte(``), []byte(`{`),
		sealedRequest(f, "s1", fuzzCT(sealed.Overhead+1)),
		sealedRequest(f, "s2", fuzzCT(sealed.Overhead+4*fuzzMaxChars)),
		sealedRequest(f, "s3", fuzzCT(sealed.Overhead+4*fuzzMaxChars+1)),
		sealedRequest(f, "s4", fuzzCT(sealed.Overhead)),
		sealedRequest(f, "s5", fuzzCT(40)+"="),
		[]byte(`{"id":"s6","ct":"AAAA","text":"hi","sig":"x"}`),
	} {
		f.Add(seed)
	}
	pub := rawPublicKey(f, user)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := gateway.CheckSend(data, fuzzRoom, user, fuzzMaxChars)
		if err != nil {
			if natter.ErrorCode(err) == natter.EInternal || natter.ErrorMessage(err) == "" {
				t.Fatalf("refused without a code and a message: %v", err)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted a payload that is not UTF-8: %q", data)
		}
		if !natter.ValidMessageID(req.ID) {
			t.Fatalf("accepted id %q", req.ID)
		}
		signedText := req.Text
		if req.CT != "" {
			// A sealed message: its ct is signed in place of the text, and
			// there is no text beside it.
			if req.Text != "" || req.Upload != "" || gateway.CheckCT(req.CT, fuzzMaxChars) != nil {
				t.Fatalf("accepted sealed message %+v", req)
			}
			signedText = req.CT
		} else {
			checkAcceptedText(t, req.Text)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(req.Sig)
		if err != nil || base64.RawURLEncoding.EncodeToString(raw) != req.Sig {
			t.Fatalf("accepted signature %q is not canonical base64url: %v", req.Sig, err)
		}
		if !ed25519.Verify(pub, natter.SignedPayload(fuzzRoom, req.ID, signedText), raw) {
			t.Fatalf("accepted a signature that does not verify: %+v", req)
		}
	})
}

// FuzzCheckSendSigned signs whatever id and text the fuzzer makes, as an
// honest client would: CheckSend accepts exactly the valid ones.
func FuzzCheckSendSigned(f *testing.F) {
	user, _ := fuzzKey.PublicKey()
	for _, s := range []struct{ id, text string }{
		{"m1", "hello"}, {"m2", "a\n\tb"}, {"m3", "a\x00b"}, {"m4", "\u0085"}, {"m5", " \u00a0\u3000 "},
		{"", "no id"}, {"a.b", "dot"}, {strings.Repeat("x", 65), "long id"}, {"m6", "\xff"},
		{"m7", "\u202Eright to left"}, {"m8", "\u2028line separator"}, {"m9", strings.Repeat("é", fuzzMaxChars+1)},
	} {
		f.Add(s.id, s.text)
	}
	f.Fuzz(func(t *testing.T, id, text string) {
		data := fuzzRequest(t, id, text, fuzzSign(t, fuzzRoom, id, text))
		req, err := gateway.CheckSend(data, fuzzRoom, user, fuzzMaxChars)
		// json.Marshal turns invalid UTF-8 into U+FFFD: the request carries
		// that text, signed over the original bytes, so it must not verify.
		valid := natter.ValidMessageID(id) && utf8.ValidString(text) && validText(text)
		switch {
		case valid && err != nil:
			t.Fatalf("refused a valid message %q %q: %v", id, text, err)
		case !valid && err == nil:
			t.Fatalf("accepted %q %q as %+v", id, text, req)
		case err == nil && (req.ID != id || req.Text != text):
			t.Fatalf("accepted %q %q but returned %+v", id, text, req)
		}
	})
}

// validText is CheckText's rule, spelled out again.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.TrimSpace(s) != "" && utf8.RuneCountInString(s) <= fuzzMaxChars &&
		!strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' })
}

func checkAcceptedText(t *testing.T, s string) {
	t.Helper()
	if !validText(s) {
		t.Fatalf("accepted text %q", s)
	}
}

func rawPublicKey(tb testing.TB, user string) ed25519.PublicKey {
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(user))
	if err != nil {
		tb.Fatal(err)
	}
	return ed25519.PublicKey(raw)
}
