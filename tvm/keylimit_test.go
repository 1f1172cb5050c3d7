package tvm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/natterchat/natter"
)

// TestTokenRateLimitPerKey asks for tokens for one public key from ever new
// client addresses: the per-address limit never trips, the per-key one
// does, with 429 rate_limited and Retry-After; other keys are not affected.
func TestTokenRateLimitPerKey(t *testing.T) {
	signer := fixedKey(t, nkeys.PrefixByteAccount, "natter key limit signer")
	acc := fixedKey(t, nkeys.PrefixByteAccount, "natter key limit account")
	accPub, _ := acc.PublicKey()
	h := New(Config{
		Account: accPub, SigningKey: signer, Rooms: fakeRooms{}, TokenTTL: time.Hour, WSPort: 8081,
		Rate: 1, Burst: 2, // per address: two requests, then one a second
		KeyRate: rate.Limit(0.01), KeyBurst: 3,
	}).Handler()
	addr := 0
	ask := func(key string) *httptest.ResponseRecorder {
		addr++
		req := httptest.NewRequest(http.MethodPost, "/api/v1/token", strings.NewReader(`{"public_key":"`+key+`","rooms":["lobby"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = fmt.Sprintf("198.51.100.%d:40000", addr)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	pub := func() string {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := kp.PublicKey()
		return p
	}
	key, other := pub(), pub()
	for i := range 3 {
		if rec := ask(key); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the key's burst: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := ask(key)
	var e struct{ Error natter.ErrorBody }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != http.StatusTooManyRequests || e.Error.Code != natter.ERateLimited || !strings.Contains(e.Error.Message, "public key") {
		t.Fatalf("fourth request for one key from a fourth address: %d %s, want 429 %s", rec.Code, rec.Body, natter.ERateLimited)
	}
	if got := rec.Header().Get("Retry-After"); got != "100" {
		t.Errorf("Retry-After %q, want 100 (one token every 100 s)", got)
	}
	if rec := ask(other); rec.Code != http.StatusOK {
		t.Fatalf("another key after the first was limited: %d %s", rec.Code, rec.Body)
	}
	// A malformed key is refused as such and spends nobody's allowance.
	for range 5 {
		if rec := ask("not-a-key"); rec.Code != http.StatusBadRequest {
			t.Fatalf("bad key: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := ask(other); rec.Code != http.StatusOK {
		t.Fatalf("another key after bad ones: %d %s", rec.Code, rec.Body)
	}
}

// TestTokenRateLimitPerKeyOff: a zero KeyRate sets no per-key limit.
func TestTokenRateLimitPerKeyOff(t *testing.T) {
	signer := fixedKey(t, nkeys.PrefixByteAccount, "natter key limit signer")
	h := New(Config{Account: "A", SigningKey: signer, Rooms: fakeRooms{}, TokenTTL: time.Hour}).Handler()
	kp, _ := nkeys.CreateUser()
	key, _ := kp.PublicKey()
	for i := range 50 {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/token", strings.NewReader(`{"public_key":"`+key+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
}
