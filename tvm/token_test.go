package tvm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
	"github.com/natterchat/natter/tvm"
)

// fixture is a TVM in front of a real gateway, which keeps its rooms.
type fixture struct {
	url     string
	account string
	signer  string
	gw      *gateway.Gateway
}

func newTVM(t *testing.T, mod func(*tvm.Config)) fixture {
	t.Helper()
	return newTVMWith(t, gateway.ChatConfig{}, mod)
}

// newTVMWith runs a gateway with the chat rules chat and a TVM on it,
// configured further by mod.
func newTVMWith(t *testing.T, chat gateway.ChatConfig, mod func(*tvm.Config)) fixture {
	t.Helper()
	gcfg := gatewaytest.Config(t.TempDir())
	gcfg.Chat = chat
	gw := gatewaytest.RunGatewayWith(t, gcfg)
	cfg := tvm.Config{Account: gw.Account(), SigningKey: gw.SigningKey(), Rooms: gw, TokenTTL: time.Hour, WSPort: 8081}
	if mod != nil {
		mod(&cfg)
	}
	srv := httptest.NewServer(tvm.New(cfg).Handler())
	t.Cleanup(srv.Close)
	signer, _ := gw.SigningKey().PublicKey()
	return fixture{url: srv.URL, account: gw.Account(), signer: signer, gw: gw}
}

// mustRoom stores a room with a fixed id straight through the gateway, for
// tests about tokens rather than about making rooms.
func (f fixture) mustRoom(t *testing.T, id string) {
	t.Helper()
	_, creator := userKey(t)
	if _, err := f.gw.CreateRoom(t.Context(), id, id, creator, false); err != nil {
		t.Fatalf("create room %s: %v", id, err)
	}
}

func userKey(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return kp, pub
}

func post(t *testing.T, url, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestTokenIssuesScopedUserJWT(t *testing.T) {
	f := newTVM(t, nil)
	f.mustRoom(t, "lobby")
	f.mustRoom(t, "neon-k7f3qz2")
	_, pub := userKey(t)
	code, _, body := post(t, f.url+"/api/v1/token", "application/json",
		`{"public_key":"`+pub+`","name":"  Ada  ","rooms":["lobby","neon-k7f3qz2","lobby"]}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var resp struct {
		JWT       string    `json:"jwt"`
		ExpiresAt time.Time `json:"expires_at"`
		User      struct{ ID, Name string }
		Servers   []string `json:"servers"`
		Inbox     string   `json:"inbox_prefix"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(resp.JWT)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"subject", uc.Subject, pub},
		{"user id", resp.User.ID, pub},
		{"name trimmed", resp.User.Name, "Ada"},
		{"jwt name", uc.Name, "Ada"},
		{"signed by the scoped key", uc.Issuer, f.signer},
		{"issuer account", uc.IssuerAccount, f.account},
		{"rooms as tags, deduplicated", []string(uc.Tags), []string{"room:lobby", "room:neon-k7f3qz2"}},
		{"no permissions of its own", uc.HasEmptyPermissions(), true},
		{"expires_at matches exp", resp.ExpiresAt.Unix(), uc.Expires},
		{"inbox prefix", resp.Inbox, natter.InboxPrefix(pub)},
		{"servers from request host", resp.Servers, []string{"ws://127.0.0.1:8081"}},
		{"not a bearer token", uc.BearerToken, false},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if ttl := time.Until(resp.ExpiresAt); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("expires in %s, want about 1h", ttl)
	}
}

// TestTokenShorterLife asks for tokens that expire sooner than the
// server's lifetime: the JWT's exp says so, to the second.
func TestTokenShorterLife(t *testing.T) {
	f := newTVM(t, nil)
	_, pub := userKey(t)
	for _, secs := range []int64{1, 60, 3600} {
		before := time.Now().Truncate(time.Second)
		code, _, body := post(t, f.url+"/api/v1/token", "application/json",
			fmt.Sprintf(`{"public_key":%q,"expires_in":%d}`, pub, secs))
		after := time.Now()
		if code != http.StatusOK {
			t.Fatalf("expires_in %d: status %d: %s", secs, code, body)
		}
		var resp natter.TokenResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		uc, err := jwt.DecodeUserClaims(resp.JWT)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Unix(uc.Expires, 0)
		if lo, hi := before.Add(time.Duration(secs)*time.Second), after.Add(time.Duration(secs)*time.Second); exp.Before(lo) || exp.After(hi) {
			t.Errorf("expires_in %d: exp %s, want within [%s, %s]", secs, exp, lo, hi)
		}
		if !resp.ExpiresAt.Equal(exp) {
			t.Errorf("expires_in %d: expires_at %s, exp %s", secs, resp.ExpiresAt, exp)
		}
	}
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestTokenRandomName(t *testing.T) {
	f := newTVM(t, nil)
	_, pub := userKey(t)
	_, _, body := post(t, f.url+"/api/v1/token", "application/json", `{"public_key":"`+pub+`"}`)
	var resp struct{ User struct{ Name string } }
	json.Unmarshal(body, &resp)
	if words := strings.Fields(resp.User.Name); len(words) != 2 {
		t.Fatalf("want a two-word friendly name, got %q (%s)", resp.User.Name, body)
	}
}

func TestTokenErrors(t *testing.T) {
	f := newTVM(t, nil)
	seedKP, pub := userKey(t)
	seed, _ := seedKP.Seed()
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	manyRooms := make([]string, natter.MaxRoomsPerToken+1)
	for i := range manyRooms {
		manyRooms[i] = `"r` + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + `"`
	}
	key := `"public_key":"` + pub + `"`
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		message     string // a part of the message
	}{
		{"empty body", "application/json", ``, 400, natter.EMalformed, "empty"},
		{"not json", "application/json", `hello`, 400, natter.EMalformed, "invalid JSON"},
		{"truncated json", "application/json", `{"public_key":`, 400, natter.EMalformed, "ends early"},
		{"array instead of object", "application/json", `[]`, 400, natter.EMalformed, "must be"},
		{"key of wrong type", "application/json", `{"public_key":42}`, 400, natter.EMalformed, `"public_key" must be a string`},
		{"rooms of wrong type", "application/json", `{` + key + `,"rooms":"lobby"}`, 400, natter.EMalformed, `"rooms" must be an array`},
		{"room of wrong type", "application/json", `{` + key + `,"rooms":[1]}`, 400, natter.EMalformed, `must be a string`},
		{"unknown field", "application/json", `{` + key + `,"admin":true}`, 400, natter.EMalformed, `unknown field "admin"`},
		{"trailing data", "application/json", `{` + key + `} {}`, 400, natter.EMalformed, "after the JSON"},
		{"form content type", "application/x-www-form-urlencoded", `{` + key + `}`, 415, natter.EUnsupportedType, "application/json"},
		{"text/plain, as a page elsewhere may send", "text/plain", `{` + key + `}`, 415, natter.EUnsupportedType, "application/json"},
		{"no content type", "", `{` + key + `}`, 415, natter.EUnsupportedType, "application/json"},
		{"missing key", "application/json", `{"rooms":["lobby"]}`, 400, natter.EInvalidKey, "required"},
		{"garbage key", "application/json", `{"public_key":"hello"}`, 400, natter.EInvalidKey, "not a valid"},
		{"bad checksum", "application/json", `{"public_key":"` + pub[:len(pub)-1] + flip(pub[len(pub)-1]) + `"}`, 400, natter.EInvalidKey, "not a valid"},
		{"seed instead of key", "application/json", `{"public_key":"` + string(seed) + `"}`, 400, natter.EInvalidKey, "seed"},
		{"account key", "application/json", `{"public_key":"` + accPub + `"}`, 400, natter.EInvalidKey, "not a user key"},
		{"room with dot", "application/json", `{` + key + `,"rooms":["a.b"]}`, 400, natter.EInvalidRoom, `"a.b"`},
		{"room with star", "application/json", `{` + key + `,"rooms":["*"]}`, 400, natter.EInvalidRoom, "rooms[0]"},
		{"room with gt", "application/json", `{` + key + `,"rooms":["lobby",">"]}`, 400, natter.EInvalidRoom, "rooms[1]"},
		{"room with space", "application/json", `{` + key + `,"rooms":["a b"]}`, 400, natter.EInvalidRoom, "not a room id"},
		{"room upper case", "application/json", `{` + key + `,"rooms":["Lobby"]}`, 400, natter.EInvalidRoom, "not a room id"},
		{"room unicode", "application/json", `{` + key + `,"rooms":["café"]}`, 400, natter.EInvalidRoom, "not a room id"},
		{"room empty", "application/json", `{` + key + `,"rooms":[""]}`, 400, natter.EInvalidRoom, "not a room id"},
		{"room leading dash", "application/json", `{` + key + `,"rooms":["-a"]}`, 400, natter.EInvalidRoom, "not a room id"},
		{"room 65 chars", "application/json", `{` + key + `,"rooms":["` + strings.Repeat("a", 65) + `"]}`, 400, natter.EInvalidRoom, "not a room id"},
		{"too many rooms", "application/json", `{` + key + `,"rooms":[` + strings.Join(manyRooms, ",") + `]}`, 400, natter.ETooManyRooms, "at most"},
		{"name only spaces", "application/json", `{` + key + `,"name":"   "}`, 400, natter.EInvalidName, "empty"},
		{"name too long", "application/json", `{` + key + `,"name":"` + strings.Repeat("é", 33) + `"}`, 400, natter.EInvalidName, "longer than 32"},
		{"name with control", "application/json", `{` + key + `,"name":"a\u0007b"}`, 400, natter.EInvalidName, "control"},
		{"name with newline", "application/json", `{` + key + `,"name":"a\nb"}`, 400, natter.EInvalidName, "control"},
		{"expires_in zero", "application/json", `{` + key + `,"expires_in":0}`, 400, natter.EInvalidExpiry, "from 1 to 3600"},
		{"expires_in negative", "application/json", `{` + key + `,"expires_in":-5}`, 400, natter.EInvalidExpiry, "got -5"},
		{"expires_in past the lifetime", "application/json", `{` + key + `,"expires_in":3601}`, 400, natter.EInvalidExpiry, "from 1 to 3600"},
		{"expires_in fractional", "application/json", `{` + key + `,"expires_in":1.5}`, 400, natter.EMalformed, "expires_in"},
		{"expires_in a string", "application/json", `{` + key + `,"expires_in":"60"}`, 400, natter.EMalformed, "expires_in"},
		{"body over 16 KiB", "application/json", `{` + key + `,"name":"` + strings.Repeat("a", 17<<10) + `"}`, 413, natter.ETooLarge, "16384"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := post(t, f.url+"/api/v1/token", tc.contentType, tc.body)
			assertError(t, status, body, tc.status, tc.code, tc.message)
		})
	}

	t.Run("chunked body over 16 KiB", func(t *testing.T) {
		// Without a Content-Length the limit trips while reading.
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(`{` + key + `,"name":"`))
			pw.Write([]byte(strings.Repeat("a", 20<<10)))
			pw.Write([]byte(`"}`))
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, f.url+"/api/v1/token", pr)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assertError(t, resp.StatusCode, b, 413, natter.ETooLarge, "larger than")
	})

	t.Run("unknown endpoint", func(t *testing.T) {
		status, _, body := post(t, f.url+"/api/v1/nope", "application/json", `{}`)
		assertError(t, status, body, 404, natter.ENotFound, "no such endpoint")
	})
	t.Run("wrong method", func(t *testing.T) {
		resp, err := http.Get(f.url + "/api/v1/token")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assertError(t, resp.StatusCode, b, 405, natter.EMethod, "not allowed")
	})
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func assertError(t *testing.T, status int, body []byte, wantStatus int, wantCode, wantMsg string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d, body not an error object: %q", status, body)
	}
	if status != wantStatus || e.Error.Code != wantCode || !strings.Contains(e.Error.Message, wantMsg) {
		t.Fatalf("got %d %s %q, want %d %s containing %q", status, e.Error.Code, e.Error.Message, wantStatus, wantCode, wantMsg)
	}
}

func TestTokenRateLimitPerAddress(t *testing.T) {
	f := newTVM(t, func(c *tvm.Config) { c.Rate, c.Burst = rate.Limit(0.01), 3 })
	_, pub := userKey(t)
	body := `{"public_key":"` + pub + `"}`
	for i := range 3 {
		if status, _, b := post(t, f.url+"/api/v1/token", "application/json", body); status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, status, b)
		}
	}
	status, h, b := post(t, f.url+"/api/v1/token", "application/json", body)
	assertError(t, status, b, 429, natter.ERateLimited, "too many requests")
	if h.Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
	// A spoofed X-Forwarded-For does not buy a fresh allowance.
	req, _ := http.NewRequest(http.MethodPost, f.url+"/api/v1/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 {
		t.Fatalf("X-Forwarded-For bypassed the limit: %d", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	f := newTVM(t, func(c *tvm.Config) { c.AllowedOrigins = []string{"https://chat.example"} })
	for _, tc := range []struct {
		name, path, origin, want string
	}{
		{"token from the app", "/api/v1/token", "https://chat.example", "https://chat.example"},
		{"token from elsewhere", "/api/v1/token", "https://evil.example", ""},
		{"rooms from the app", "/api/v1/rooms", "https://chat.example", "https://chat.example"},
		{"rooms from elsewhere", "/api/v1/rooms", "https://evil.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, f.url+tc.path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			// Creating a room sends the token in Authorization.
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
			if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); tc.want != "" && !strings.Contains(got, "authorization") {
				t.Errorf("Access-Control-Allow-Headers %q lacks Authorization", got)
			}
		})
	}
}

func TestReadyzReportsUnavailable(t *testing.T) {
	f := newTVM(t, func(c *tvm.Config) {
		c.Ready = func(ctx context.Context) error { return errors.New("nats: connection closed") }
	})
	resp, err := http.Get(f.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assertError(t, resp.StatusCode, b, 503, natter.EUnavailable, "not available")
	if strings.Contains(string(b), "connection closed") {
		t.Errorf("internal cause leaked: %s", b)
	}
}

func TestAppServedOutsideTheAPI(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app:" + r.URL.Path)) })
	f := newTVM(t, func(c *tvm.Config) { c.App = app })
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodGet, "/", 200, "app:/"},
		{http.MethodGet, "/r/neon-k7f3qz2a", 200, "app:/r/neon-k7f3qz2a"},
		{http.MethodGet, "/api/v1/nope", 404, `"not_found"`},
		{http.MethodGet, "/api/", 404, `"not_found"`},
		{http.MethodDelete, "/api/v1/token", 405, `"method_not_allowed"`},
		{http.MethodGet, "/healthz", 200, `"ok"`},
	} {
		req, _ := http.NewRequest(tc.method, f.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: %d %s, want %d with %s", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
	}
}
