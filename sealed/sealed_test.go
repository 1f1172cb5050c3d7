package sealed_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natterchat/natter/sealed"
)

// update rewrites the shared test vectors instead of checking them:
// go test ./sealed -run TestVectors -update
var update = flag.Bool("update", false, "rewrite "+vectorsFile)

// vectorsFile is read by the web app's tests too, so both sides of a
// sealed room encrypt and decrypt the same bytes.
const vectorsFile = "../frontend/src/testdata/sealed.json"

const (
	room   = "neon-q3x7mz4b"
	sender = "UBGQ5Q5A2A76774TVG6M4KREWQDNI32EV37R654H3LW3CPFK7JACYEW2"
	id     = "k7Hq2Xb9"
)

// fill is n bytes counting up from first: fixed keys and nonces that are
// not all alike.
func fill(n int, first byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

func key(first byte) sealed.Key { return sealed.Key(fill(sealed.KeySize, first)) }

func TestSealOpenRoundTrip(t *testing.T) {
	k := sealed.NewKey()
	for _, text := range []string{"hello", "héllo 👋 世界", "line\nline\ttab", strings.Repeat("🦦", 1000)} {
		ct, err := sealed.Seal(k, room, sender, id, text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sealed.Open(k, room, sender, id, ct)
		if err != nil || got != text {
			t.Fatalf("Open = %q, %v; want %q", got, err, text)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(ct)
		if len(raw) != sealed.Overhead+len(text) {
			t.Errorf("ct of %d bytes for a text of %d, want %d more", len(raw), len(text), sealed.Overhead)
		}
	}
}

func TestSealUsesAFreshNonce(t *testing.T) {
	k := sealed.NewKey()
	a, _ := sealed.Seal(k, room, sender, id, "same")
	b, _ := sealed.Seal(k, room, sender, id, "same")
	if a == b {
		t.Fatal("two seals of one text are equal: the nonce was reused")
	}
}

func TestOpenRefuses(t *testing.T) {
	k := key(1)
	ct, err := sealed.SealWithNonce(k, fill(sealed.NonceSize, 100), room, sender, id, "secret")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(ct)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := []struct {
		name                 string
		key                  sealed.Key
		room, sender, id, ct string
		decrypt              bool // fails as ErrOpen, not as a format error
	}{
		{"wrong key", key(2), room, sender, id, ct, true},
		{"tampered nonce", k, room, sender, id, flip(0), true},
		{"tampered ciphertext", k, room, sender, id, flip(sealed.NonceSize), true},
		{"tampered tag", k, room, sender, id, flip(len(raw) - 1), true},
		{"truncated", k, room, sender, id, base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), true},
		{"another room", k, "lobby-k7f3qz2a", sender, id, ct, true},
		{"another sender", k, room, "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", id, ct, true},
		{"another id", k, room, sender, "k7Hq2Xb8", ct, true},
		{"padded", k, room, sender, id, base64.URLEncoding.EncodeToString(raw), false},
		{"standard base64", k, room, sender, id, base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 40)), false},
		{"line break", k, room, sender, id, ct[:10] + "\n" + ct[10:], false},
		{"not base64", k, room, sender, id, "not base64!", false},
		{"empty", k, room, sender, id, "", false},
		{"too short", k, room, sender, id, base64.RawURLEncoding.EncodeToString(raw[:sealed.Overhead-1]), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sealed.Open(tc.key, tc.room, tc.sender, tc.id, tc.ct)
			if err == nil {
				t.Fatalf("Open = %q, want an error", got)
			}
			if errors.Is(err, sealed.ErrOpen) != tc.decrypt {
				t.Fatalf("Open: %v; ErrOpen: want %v", err, tc.decrypt)
			}
			if got != "" {
				t.Fatalf("Open returned %q with its error", got)
			}
		})
	}
}

func TestKeyFormat(t *testing.T) {
	k := key(7)
	s := sealed.FormatKey(k)
	if len(s) != 43 || strings.ContainsAny(s, "=+/") {
		t.Fatalf("FormatKey = %q, want 43 characters of base64url", s)
	}
	got, err := sealed.ParseKey(s)
	if err != nil || got != k {
		t.Fatalf("ParseKey(%q) = %x, %v", s, got, err)
	}
	for _, bad := range []string{"", s + "=", s[:42], base64.RawURLEncoding.EncodeToString(fill(31, 0)), base64.RawURLEncoding.EncodeToString(fill(33, 0)), strings.Repeat("!", 43)} {
		if _, err := sealed.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) took it", bad)
		}
	}
}

func TestSealWithNonceRefusesAnotherNonceSize(t *testing.T) {
	for _, n := range []int{0, 8, 16} {
		if _, err := sealed.SealWithNonce(key(1), fill(n, 0), room, sender, id, "x"); err == nil {
			t.Errorf("a nonce of %d bytes was taken", n)
		}
	}
}

// vector is one entry of the shared file; the web app's tests read these
// names. key and nonce are base64url without padding, like ct.
type vector struct {
	Key    string `json:"key"`
	Room   string `json:"room"`
	Sender string `json:"sender"`
	ID     string `json:"id"`
	Nonce  string `json:"nonce"`
	Text   string `json:"text"`
	CT     string `json:"ct"`
}

type vectorFile struct {
	Vectors []vector `json:"vectors"`
}

func makeVectors(t *testing.T) []byte {
	t.Helper()
	inputs := []struct {
		key          sealed.Key
		nonce        byte
		room, sender string
		id, text     string
	}{
		{key(0), 0, room, sender, id, "hello 👋"},
		{key(1), 12, "book-club-k7f3qz2a", sender, "a_b-C", "line one\nline two\ttab <img src=x onerror=alert(1)>"},
		{key(2), 24, room, "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", "m-1", "Ça va ? Grüß dich, こんにちは, مرحبا, שלום"},
		{key(3), 36, "caf-noir-2m4xq7ba", sender, strings.Repeat("x", 64), "x"},
		// The longest text allowed: 1000 code points, of one, two, three
		// and four bytes in UTF-8.
		{key(4), 48, room, sender, "long", strings.Repeat("aé€🦦", 250)},
	}
	var f vectorFile
	for _, in := range inputs {
		nonce := fill(sealed.NonceSize, in.nonce)
		ct, err := sealed.SealWithNonce(in.key, nonce, in.room, in.sender, in.id, in.text)
		if err != nil {
			t.Fatal(err)
		}
		f.Vectors = append(f.Vectors, vector{
			Key: sealed.FormatKey(in.key), Room: in.room, Sender: in.sender, ID: in.id,
			Nonce: base64.RawURLEncoding.EncodeToString(nonce), Text: in.text, CT: ct,
		})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the file is read by tests, not by a page
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestVectors keeps the shared vectors true: the committed file must be
// what this implementation writes, and every vector must open.
func TestVectors(t *testing.T) {
	want := makeVectors(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (write it with go test ./sealed -run TestVectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the Go implementation writes; rewrite it with go test ./sealed -run TestVectors -update", vectorsFile)
	}
	var f vectorFile
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	long := false
	for _, v := range f.Vectors {
		k, err := sealed.ParseKey(v.Key)
		if err != nil {
			t.Fatal(err)
		}
		text, err := sealed.Open(k, v.Room, v.Sender, v.ID, v.CT)
		if err != nil || text != v.Text {
			t.Fatalf("vector %s: Open = %q, %v", v.ID, text, err)
		}
		long = long || len([]rune(v.Text)) == 1000
	}
	if !long {
		t.Fatal("no vector has a text of 1000 code points")
	}
}

// FuzzOpen: whatever ct comes in, Open does not panic, and what opens is
// exactly what sealing the text again under the same nonce gives.
func FuzzOpen(f *testing.F) {
	k := key(5)
	for _, text := range []string{"hello", "", "é👋"} {
		ct, err := sealed.SealWithNonce(k, fill(sealed.NonceSize, 3), room, sender, id, text)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct)
	}
	f.Add("")
	f.Add("AAAA")
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, ct string) {
		text, err := sealed.Open(k, room, sender, id, ct)
		if err != nil {
			return
		}
		raw, _ := sealed.Decode(ct)
		again, err := sealed.SealWithNonce(k, raw[:sealed.NonceSize], room, sender, id, text)
		if err != nil || again != ct {
			t.Fatalf("opened %q to %q, which seals to %q", ct, text, again)
		}
	})
}
