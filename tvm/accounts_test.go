package tvm_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
	"github.com/natterchat/natter/tvm"
)

// fastHashes keep argon2id cheap in the tests that are not about its cost.
var fastHashes = tvm.PasswordParams{Memory: 1024, Time: 1, Threads: 1}

// noLoginLimits are limits no test but the limit's own reaches.
var noLoginLimits = tvm.LoginLimits{PerUsername: 1000, PerAddress: 1000}

// accounts is a TVM with accounts in front of a real gateway.
type accounts struct {
	url string
	gw  *gateway.Gateway
}

func newAccounts(t *testing.T, chat gateway.ChatConfig, mod func(*tvm.Config)) accounts {
	t.Helper()
	gcfg := gatewaytest.Config(t.TempDir())
	gcfg.Chat = chat
	gw := gatewaytest.RunGatewayWith(t, gcfg)
	cfg := tvm.Config{
		Account: gw.Account(), SigningKey: gw.SigningKey(), Rooms: gw, Users: gw.Users(),
		TokenTTL: time.Hour, WSPort: gw.WebSocketPort(),
		PasswordParams: fastHashes, LoginLimits: noLoginLimits,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv := httptest.NewServer(tvm.New(cfg).Handler())
	t.Cleanup(srv.Close)
	return accounts{url: srv.URL, gw: gw}
}

// answer is an HTTP answer of the TVM.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var e struct{ Error natter.ErrorBody }
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

func (a answer) message() string {
	var e struct{ Error natter.ErrorBody }
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Message
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

// call sends body (JSON unless empty) with the bearer token, if any.
func (f accounts) call(t *testing.T, method, path, bearer, body string) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, f.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

// must is call that fails the test unless the status is want.
func (f accounts) must(t *testing.T, want int, method, path, bearer, body string) answer {
	t.Helper()
	a := f.call(t, method, path, bearer, body)
	if a.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, a.status, want, a.body)
	}
	return a
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const goodPassword = "correct horse battery"

func (f accounts) signup(t *testing.T, username, display string) natter.Profile {
	t.Helper()
	var p natter.Profile
	f.must(t, http.StatusCreated, "POST", "/api/v1/users", "", jsonOf(map[string]string{
		"username": username, "password": goodPassword, "display_name": display,
	})).decode(t, &p)
	return p
}

func (f accounts) login(t *testing.T, username, password string) tvm.SessionResponse {
	t.Helper()
	var s tvm.SessionResponse
	f.must(t, http.StatusOK, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{
		"username": username, "password": password,
	})).decode(t, &s)
	return s
}

// exists reports whether an account holds username.
func (f accounts) exists(t *testing.T, username string) bool {
	t.Helper()
	_, err := f.gw.Users().UserByName(t.Context(), username)
	if err != nil && natter.ErrorCode(err) != natter.ENotFound {
		t.Fatal(err)
	}
	return err == nil
}

func TestSignupRefusesBadInput(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	f.signup(t, "taken", "Taken Name")
	long := strings.Repeat("a", 33)
	cases := []struct {
		name, contentType, body string
		status                  int
		code, msg               string
		username                string // must not exist afterwards
	}{
		{"not json", "application/json", `{"username":`, 400, natter.EMalformed, "JSON ends early", ""},
		{"unknown field", "application/json", `{"username":"ada_x","password":"` + goodPassword + `","display_name":"Ada","admin":true}`, 400, natter.EMalformed, "unknown field", "ada_x"},
		{"text body", "text/plain", `{"username":"ada_x"}`, 415, natter.EUnsupportedType, "application/json", "ada_x"},
		{"no username", "application/json", `{"password":"` + goodPassword + `","display_name":"Ada"}`, 400, natter.EInvalidUsername, "3-32 of a-z", ""},
		{"upper case username", "application/json", `{"username":"Ada","password":"` + goodPassword + `","display_name":"Ada"}`, 400, natter.EInvalidUsername, `"Ada"`, "ada"},
		{"short username", "application/json", `{"username":"ab","password":"` + goodPassword + `","display_name":"Ada"}`, 400, natter.EInvalidUsername, "3-32", "ab"},
		{"long username", "application/json", `{"username":"` + long + `","password":"` + goodPassword + `","display_name":"Ada"}`, 400, natter.EInvalidUsername, "3-32", ""},
		{"dash in username", "application/json", `{"username":"ada-l","password":"` + goodPassword + `","display_name":"Ada"}`, 400, natter.EInvalidUsername, "a-z, 0-9 and _", ""},
		{"short password", "application/json", `{"username":"ada_x","password":"short1234","display_name":"Ada"}`, 400, natter.EWeakPassword, "at least 10 characters", "ada_x"},
		{"no password", "application/json", `{"username":"ada_x","display_name":"Ada"}`, 400, natter.EWeakPassword, "at least 10 characters", "ada_x"},
		{"common password", "application/json", `{"username":"ada_x","password":"Password123","display_name":"Ada"}`, 400, natter.EWeakPassword, "common passwords", "ada_x"},
		{"common password upper case", "application/json", `{"username":"ada_x","password":"QWERTYUIOP","display_name":"Ada"}`, 400, natter.EWeakPassword, "common passwords", "ada_x"},
		{"long password", "application/json", `{"username":"ada_x","password":"` + strings.Repeat("x", 257) + `","display_name":"Ada"}`, 400, natter.EWeakPassword, "at most 256", "ada_x"},
		{"no display name", "application/json", `{"username":"ada_x","password":"` + goodPassword + `"}`, 400, natter.EInvalidName, "display_name: name is empty", "ada_x"},
		{"long display name", "application/json", `{"username":"ada_x","password":"` + goodPassword + `","display_name":"` + long + `"}`, 400, natter.EInvalidName, "longer than 32", "ada_x"},
		{"control in display name", "application/json", `{"username":"ada_x","password":"` + goodPassword + `","display_name":"Ada\u0007"}`, 400, natter.EInvalidName, "control characters", "ada_x"},
		{"taken username", "application/json", `{"username":"taken","password":"` + goodPassword + `","display_name":"Other"}`, 409, natter.EUsernameTaken, "taken", ""},
		{"taken display name, folded", "application/json", `{"username":"ada_x","password":"` + goodPassword + `","display_name":"  TAKEN   name "}`, 409, natter.ENameTaken, "registered user", "ada_x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", f.url+"/api/v1/users", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{status: resp.StatusCode, body: data}
			if a.status != tc.status || a.code() != tc.code || !strings.Contains(a.message(), tc.msg) {
				t.Fatalf("got %d %s, want %d %s with %q", a.status, data, tc.status, tc.code, tc.msg)
			}
			if tc.username != "" && f.exists(t, tc.username) {
				t.Fatalf("account %s was created", tc.username)
			}
		})
	}
	// The taken display name is still the first account's only.
	if owner, ok, err := f.gw.Users().DisplayNameOwner(t.Context(), "taken name"); err != nil || !ok {
		t.Fatalf("display name reservation: %q %v %v", owner, ok, err)
	}
}

func TestConcurrentSignupsForOneUsernameOneWins(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	const n = 8
	statuses := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i] = f.call(t, "POST", "/api/v1/users", "", jsonOf(map[string]string{
				"username": "grace", "password": goodPassword, "display_name": "Grace " + strconv.Itoa(i),
			}))
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for _, a := range statuses {
		switch {
		case a.status == http.StatusCreated:
			created++
		case a.status == http.StatusConflict && a.code() == natter.EUsernameTaken:
		default:
			t.Errorf("status %d %s", a.status, a.body)
		}
	}
	if created != 1 {
		t.Fatalf("%d signups won, want exactly 1", created)
	}
	// The losers' display names were not kept.
	for i := range n {
		owner, ok, err := f.gw.Users().DisplayNameOwner(t.Context(), "Grace "+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.gw.Users().UserByName(t.Context(), "grace")
		if ok != (a.DisplayName == "Grace "+strconv.Itoa(i)) || ok && owner != a.ID {
			t.Errorf("display name Grace %d reserved %v by %q; the account is %s %q", i, ok, owner, a.ID, a.DisplayName)
		}
	}
}

func TestAccountLifecycle(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	p := f.signup(t, "ada", "Ada Lovelace")
	if !natter.IsUserID(p.ID) || p.Username != "ada" || p.DisplayName != "Ada Lovelace" || p.CreatedAt.IsZero() || p.TOTP.Enabled {
		t.Fatalf("profile %+v", p)
	}
	// The password is stored only as an argon2id hash with its parameters.
	stored, err := f.gw.Users().UserByID(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=1024,t=1,p=1$") || strings.Contains(stored.PasswordHash, goodPassword) {
		t.Fatalf("stored hash %q", stored.PasswordHash)
	}

	s := f.login(t, "ada", goodPassword)
	if s.User.ID != p.ID || time.Until(s.ExpiresAt) > tvm.SessionTTL || time.Until(s.ExpiresAt) < tvm.SessionTTL-time.Minute {
		t.Fatalf("session %+v", s)
	}
	var me natter.Profile
	f.must(t, 200, "GET", "/api/v1/users/me", s.Session, "").decode(t, &me)
	if me != p {
		t.Fatalf("me %+v, want %+v", me, p)
	}
	if strings.Contains(string(f.must(t, 200, "GET", "/api/v1/users/me", s.Session, "").body), "argon2") {
		t.Fatal("the hash left natter")
	}

	// The public profile: id, display name, registered since; nothing else.
	var public map[string]any
	f.must(t, 200, "GET", "/api/v1/users/"+p.ID, "", "").decode(t, &public)
	if len(public) != 3 || public["id"] != p.ID || public["display_name"] != "Ada Lovelace" || public["created_at"] == nil {
		t.Fatalf("public profile %v", public)
	}
	f.must(t, 404, "GET", "/api/v1/users/"+natter.NewUserID(), "", "")
	f.must(t, 404, "GET", "/api/v1/users/ada", "", "")
	if a := f.call(t, "GET", "/api/v1/users", "", ""); a.status/100 == 2 {
		t.Fatalf("a list of users: %d %s", a.status, a.body)
	}

	// Refresh: a new session, the old one still good until it expires.
	var r tvm.SessionResponse
	f.must(t, 200, "POST", "/api/v1/sessions/refresh", s.Session, "").decode(t, &r)
	if r.Session == "" || r.User.ID != p.ID {
		t.Fatalf("refresh %+v", r)
	}
	f.must(t, 200, "GET", "/api/v1/users/me", r.Session, "")

	// A new display name frees the old one.
	f.must(t, 200, "PATCH", "/api/v1/users/me", r.Session, `{"display_name":"Countess"}`).decode(t, &me)
	if me.DisplayName != "Countess" {
		t.Fatalf("patched %+v", me)
	}
	f.signup(t, "imposter", "ada lovelace")

	// A new password needs the old one, and ends every session.
	if a := f.call(t, "PATCH", "/api/v1/users/me", r.Session, `{"password":"a brand new secret","old_password":"not my password"}`); a.status != 401 || a.code() != natter.EInvalidCredentials {
		t.Fatalf("wrong old password: %d %s", a.status, a.body)
	}
	f.must(t, 200, "PATCH", "/api/v1/users/me", r.Session, `{"password":"a brand new secret","old_password":"`+goodPassword+`"}`)
	if a := f.call(t, "GET", "/api/v1/users/me", r.Session, ""); a.status != 401 || a.code() != natter.EUnauthorized {
		t.Fatalf("session after a password change: %d %s", a.status, a.body)
	}
	if a := f.call(t, "POST", "/api/v1/sessions", "", `{"username":"ada","password":"`+goodPassword+`"}`); a.code() != natter.EInvalidCredentials {
		t.Fatalf("old password: %d %s", a.status, a.body)
	}
	s = f.login(t, "ada", "a brand new secret")

	// Logout ends every session.
	s2 := f.login(t, "ada", "a brand new secret")
	f.must(t, 204, "DELETE", "/api/v1/sessions", s.Session, "")
	for _, tok := range []string{s.Session, s2.Session} {
		if a := f.call(t, "POST", "/api/v1/sessions/refresh", tok, ""); a.status != 401 {
			t.Fatalf("refresh after logout: %d %s", a.status, a.body)
		}
	}

	// Deleting needs the password, and frees the username and display name.
	s = f.login(t, "ada", "a brand new secret")
	if a := f.call(t, "DELETE", "/api/v1/users/me", s.Session, `{"password":"`+goodPassword+`"}`); a.status != 401 || a.code() != natter.EInvalidCredentials {
		t.Fatalf("delete with a wrong password: %d %s", a.status, a.body)
	}
	if !f.exists(t, "ada") {
		t.Fatal("deleted with a wrong password")
	}
	f.must(t, 204, "DELETE", "/api/v1/users/me", s.Session, `{"password":"a brand new secret"}`)
	if f.exists(t, "ada") {
		t.Fatal("account still there")
	}
	f.must(t, 404, "GET", "/api/v1/users/"+p.ID, "", "")
	if a := f.call(t, "GET", "/api/v1/users/me", s.Session, ""); a.status != 401 {
		t.Fatalf("session of a deleted account: %d %s", a.status, a.body)
	}
	again := f.signup(t, "ada", "Countess")
	if again.ID == p.ID {
		t.Fatal("a new account got the old id")
	}
}

func TestAccountRoutesRefuseBadInput(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	p := f.signup(t, "ada", "Ada")
	f.signup(t, "bob", "Bob")
	s := f.login(t, "ada", goodPassword).Session

	// An expired session, signed with the right key.
	seed, _ := f.gw.SigningKey().Seed()
	key, _ := hkdf.Key(sha256.New, seed, nil, "natter session v1", 32)
	sign := func(claims string) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		m := hmac.New(sha256.New, key)
		m.Write([]byte(h))
		return h + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	expired := sign(`{"sub":"` + p.ID + `","iat":1,"exp":2,"sv":0}`)
	if a := f.call(t, "GET", "/api/v1/users/me", sign(`{"sub":"`+p.ID+`","iat":1,"exp":4000000000,"sv":0}`), ""); a.status != 200 {
		t.Fatalf("a session signed with the derived key: %d %s", a.status, a.body)
	}
	natsToken := gatewaytest.NewUser(t).MustToken(t, f.url).JWT
	parts := strings.Split(s, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+p.ID+`","iat":1,"exp":4000000000,"sv":7}`)) + "." + parts[2]
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	cases := []struct {
		name, method, path, bearer, body string
		status                           int
		code, msg                        string
	}{
		{"me without a session", "GET", "/api/v1/users/me", "", "", 401, natter.EUnauthorized, "Bearer <session>"},
		{"me with garbage", "GET", "/api/v1/users/me", "garbage", "", 401, natter.EUnauthorized, "not a valid session"},
		{"me with a natter token", "GET", "/api/v1/users/me", natsToken, "", 401, natter.EUnauthorized, "not a valid session"},
		{"me with a tampered session", "GET", "/api/v1/users/me", tampered, "", 401, natter.EUnauthorized, "not a valid session"},
		{"me with alg none", "GET", "/api/v1/users/me", noneAlg, "", 401, natter.EUnauthorized, "not a valid session"},
		{"me with an expired session", "GET", "/api/v1/users/me", expired, "", 401, natter.EUnauthorized, "expired"},
		{"refresh an expired session", "POST", "/api/v1/sessions/refresh", expired, "", 401, natter.EUnauthorized, "expired"},
		{"logout without a session", "DELETE", "/api/v1/sessions", "", "", 401, natter.EUnauthorized, "Bearer"},
		{"login without username", "POST", "/api/v1/sessions", "", `{"password":"x"}`, 400, natter.EMalformed, "username is required"},
		{"login without password", "POST", "/api/v1/sessions", "", `{"username":"ada"}`, 400, natter.EMalformed, "password is required"},
		{"login with unknown field", "POST", "/api/v1/sessions", "", `{"username":"ada","password":"x","remember":true}`, 400, natter.EMalformed, "unknown field"},
		{"login wrong password", "POST", "/api/v1/sessions", "", `{"username":"ada","password":"wrong password"}`, 401, natter.EInvalidCredentials, "wrong username, password or code"},
		{"login unknown user", "POST", "/api/v1/sessions", "", `{"username":"nobody","password":"wrong password"}`, 401, natter.EInvalidCredentials, "wrong username, password or code"},
		{"login invalid username", "POST", "/api/v1/sessions", "", `{"username":"No Body","password":"wrong password"}`, 401, natter.EInvalidCredentials, "wrong username, password or code"},
		{"login passwordless not chosen", "POST", "/api/v1/sessions", "", `{"username":"ada","totp":"123456"}`, 401, natter.EInvalidCredentials, "wrong username, password or code"},
		{"patch nothing", "PATCH", "/api/v1/users/me", s, `{}`, 400, natter.EMalformed, "nothing to change"},
		{"patch password without old", "PATCH", "/api/v1/users/me", s, `{"password":"a brand new secret"}`, 400, natter.EMalformed, "old_password is required"},
		{"patch old password alone", "PATCH", "/api/v1/users/me", s, `{"old_password":"` + goodPassword + `"}`, 400, natter.EMalformed, "old_password goes with"},
		{"patch weak password", "PATCH", "/api/v1/users/me", s, `{"password":"short","old_password":"` + goodPassword + `"}`, 400, natter.EWeakPassword, "at least 10"},
		{"patch common password", "PATCH", "/api/v1/users/me", s, `{"password":"1234567890","old_password":"` + goodPassword + `"}`, 400, natter.EWeakPassword, "common"},
		{"patch empty display name", "PATCH", "/api/v1/users/me", s, `{"display_name":"  "}`, 400, natter.EInvalidName, "empty"},
		{"patch taken display name", "PATCH", "/api/v1/users/me", s, `{"display_name":"BOB"}`, 409, natter.ENameTaken, "registered user"},
		{"patch username", "PATCH", "/api/v1/users/me", s, `{"username":"ada2"}`, 400, natter.EMalformed, "unknown field"},
		{"patch without a session", "PATCH", "/api/v1/users/me", "", `{"display_name":"X"}`, 401, natter.EUnauthorized, "Bearer"},
		{"delete without body", "DELETE", "/api/v1/users/me", s, ``, 400, natter.EMalformed, "empty"},
		{"delete without password", "DELETE", "/api/v1/users/me", s, `{}`, 400, natter.EMalformed, "password is required"},
		{"delete with totp only", "DELETE", "/api/v1/users/me", s, `{"totp":"123456"}`, 400, natter.EMalformed, "password is required"},
		{"delete wrong password", "DELETE", "/api/v1/users/me", s, `{"password":"wrong password"}`, 401, natter.EInvalidCredentials, "wrong"},
		{"enrol without a session", "POST", "/api/v1/users/me/totp", "", ``, 401, natter.EUnauthorized, "Bearer"},
		{"enrol with unknown field", "POST", "/api/v1/users/me/totp", s, `{"digits":8}`, 400, natter.EMalformed, "unknown field"},
		{"confirm without enrolment", "POST", "/api/v1/users/me/totp/confirm", s, `{"code":"123456"}`, 400, natter.EInvalidCode, "no enrolment"},
		{"confirm without code", "POST", "/api/v1/users/me/totp/confirm", s, `{}`, 400, natter.EMalformed, "code is required"},
		{"disable when off", "DELETE", "/api/v1/users/me/totp", s, `{"code":"123456"}`, 400, natter.EInvalidCode, "not on"},
		{"public profile of a bad id", "GET", "/api/v1/users/" + strings.Repeat("x", 40), "", "", 404, natter.ENotFound, "no user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.gw.Users().UserByID(t.Context(), p.ID)
			a := f.call(t, tc.method, tc.path, tc.bearer, tc.body)
			if a.status != tc.status || a.code() != tc.code || !strings.Contains(a.message(), tc.msg) {
				t.Fatalf("got %d %s, want %d %s with %q", a.status, a.body, tc.status, tc.code, tc.msg)
			}
			after, err := f.gw.Users().UserByID(t.Context(), p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(before.Keys, after.Keys) || before.DisplayName != after.DisplayName ||
				before.PasswordHash != after.PasswordHash || before.SessionVersion != after.SessionVersion || before.TOTP != after.TOTP {
				t.Fatalf("the account changed: %+v → %+v", before, after)
			}
		})
	}
}

// totpAt is the code of secret at now + steps × 30 s.
func totpAt(t *testing.T, secret string, steps int) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(steps)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// awayFromStepEnd waits, if needed, until the current 30-second step has
// at least 8 s left, so that codes computed from now stay within the
// server's window for the rest of the test.
func awayFromStepEnd(t *testing.T) {
	t.Helper()
	gatewaytest.WaitFor(t, 15*time.Second, func() error {
		if time.Now().Unix()%30 >= 22 {
			return errors.New("too close to the end of a time step")
		}
		return nil
	})
}

func (f accounts) enrol(t *testing.T, session string, passwordless bool) tvm.TOTPEnrolment {
	t.Helper()
	var e tvm.TOTPEnrolment
	f.must(t, 200, "POST", "/api/v1/users/me/totp", session, jsonOf(map[string]bool{"passwordless": passwordless})).decode(t, &e)
	return e
}

func TestTOTP(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	f.signup(t, "ada", "Ada")
	s := f.login(t, "ada", goodPassword).Session
	awayFromStepEnd(t)

	e := f.enrol(t, s, false)
	if !strings.HasPrefix(e.OtpauthURI, "otpauth://totp/natter:ada?") || !strings.Contains(e.OtpauthURI, "secret="+e.Secret) {
		t.Fatalf("otpauth URI %q", e.OtpauthURI)
	}
	raw, err := base64.StdEncoding.DecodeString(e.QRPNG)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() != 256 {
		t.Fatalf("QR code: %v", err)
	}
	// Unconfirmed, it changes nothing: a password alone still logs in.
	f.login(t, "ada", goodPassword)

	if a := f.call(t, "POST", "/api/v1/users/me/totp/confirm", s, `{"code":"000000"}`); a.status != 400 || a.code() != natter.EInvalidCode {
		t.Fatalf("wrong code: %d %s", a.status, a.body)
	}
	var me natter.Profile
	f.must(t, 200, "POST", "/api/v1/users/me/totp/confirm", s, jsonOf(map[string]string{"code": totpAt(t, e.Secret, -1)})).decode(t, &me)
	if !me.TOTP.Enabled || me.TOTP.Passwordless {
		t.Fatalf("after confirm %+v", me)
	}
	if a := f.call(t, "GET", "/api/v1/users/me", s, ""); a.status != 401 {
		t.Fatalf("session after turning two-factor on: %d %s", a.status, a.body)
	}

	login := func(body map[string]string) answer {
		return f.call(t, "POST", "/api/v1/sessions", "", jsonOf(body))
	}
	if a := login(map[string]string{"username": "ada", "password": goodPassword}); a.status != 401 || a.code() != natter.ETOTPRequired {
		t.Fatalf("no code: %d %s", a.status, a.body)
	}
	if a := login(map[string]string{"username": "ada", "password": "wrong password"}); a.code() != natter.EInvalidCredentials {
		t.Fatalf("wrong password, no code: %d %s", a.status, a.body)
	}
	if a := login(map[string]string{"username": "ada", "password": goodPassword, "totp": "000000"}); a.status != 401 || a.code() != natter.EInvalidCredentials {
		t.Fatalf("wrong code: %d %s", a.status, a.body)
	}
	if a := login(map[string]string{"username": "ada", "password": "wrong password", "totp": totpAt(t, e.Secret, 0)}); a.code() != natter.EInvalidCredentials {
		t.Fatalf("wrong password, right code: %d %s", a.status, a.body)
	}
	code := totpAt(t, e.Secret, 0)
	var sess tvm.SessionResponse
	if a := login(map[string]string{"username": "ada", "password": goodPassword, "totp": code}); a.status != 200 {
		t.Fatalf("right code: %d %s", a.status, a.body)
	} else {
		a.decode(t, &sess)
	}
	if a := login(map[string]string{"username": "ada", "password": goodPassword, "totp": code}); a.status != 401 || a.code() != natter.EInvalidCredentials {
		t.Fatalf("replayed code: %d %s", a.status, a.body)
	}
	// The code of the step before the last one used is no good either.
	if a := login(map[string]string{"username": "ada", "password": goodPassword, "totp": totpAt(t, e.Secret, -1)}); a.code() != natter.EInvalidCredentials {
		t.Fatalf("older code: %d %s", a.status, a.body)
	}
	// Not chosen at enrolment: a code alone does not log in.
	if a := login(map[string]string{"username": "ada", "totp": totpAt(t, e.Secret, 1)}); a.code() != natter.EInvalidCredentials {
		t.Fatalf("passwordless not chosen: %d %s", a.status, a.body)
	}
	if a := f.call(t, "POST", "/api/v1/users/me/totp", sess.Session, ""); a.status != 400 || a.code() != natter.EInvalidCode {
		t.Fatalf("enrol while on: %d %s", a.status, a.body)
	}
	// Turning it off takes a fresh code too.
	if a := f.call(t, "DELETE", "/api/v1/users/me/totp", sess.Session, jsonOf(map[string]string{"code": code})); a.status != 400 || a.code() != natter.EInvalidCode {
		t.Fatalf("disable with a used code: %d %s", a.status, a.body)
	}
	f.must(t, 200, "DELETE", "/api/v1/users/me/totp", sess.Session, jsonOf(map[string]string{"code": totpAt(t, e.Secret, 1)})).decode(t, &me)
	if me.TOTP.Enabled {
		t.Fatalf("after disable %+v", me)
	}
	f.login(t, "ada", goodPassword)
}

func TestPasswordlessLogin(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	f.signup(t, "ada", "Ada")
	s := f.login(t, "ada", goodPassword).Session
	awayFromStepEnd(t)
	e := f.enrol(t, s, true)
	var me natter.Profile
	f.must(t, 200, "POST", "/api/v1/users/me/totp/confirm", s, jsonOf(map[string]string{"code": totpAt(t, e.Secret, -1)})).decode(t, &me)
	if !me.TOTP.Enabled || !me.TOTP.Passwordless {
		t.Fatalf("after confirm %+v", me)
	}
	code := totpAt(t, e.Secret, 0)
	var sess tvm.SessionResponse
	f.must(t, 200, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{"username": "ada", "totp": code})).decode(t, &sess)
	if a := f.call(t, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{"username": "ada", "totp": code})); a.status != 401 || a.code() != natter.EInvalidCredentials {
		t.Fatalf("replayed code: %d %s", a.status, a.body)
	}
	if a := f.call(t, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{"username": "nobody", "totp": code})); a.code() != natter.EInvalidCredentials {
		t.Fatalf("unknown user: %d %s", a.status, a.body)
	}
	// A passwordless account is deleted with a code.
	if a := f.call(t, "DELETE", "/api/v1/users/me", sess.Session, jsonOf(map[string]string{"totp": code})); a.status != 401 || a.code() != natter.EInvalidCredentials {
		t.Fatalf("delete with a used code: %d %s", a.status, a.body)
	}
	f.must(t, 204, "DELETE", "/api/v1/users/me", sess.Session, jsonOf(map[string]string{"totp": totpAt(t, e.Secret, 1)}))
	if f.exists(t, "ada") {
		t.Fatal("not deleted")
	}
}

// TestLoginFailureTimingHidesUsernames compares the time of failed logins
// for an existing and an unknown username, with natter's real argon2id
// parameters: the medians must be within a factor of two.
func TestLoginFailureTimingHidesUsernames(t *testing.T) {
	if testing.Short() {
		t.Skip("argon2id at full cost")
	}
	f := newAccounts(t, gateway.ChatConfig{}, func(c *tvm.Config) { c.PasswordParams = tvm.PasswordParams{} })
	f.signup(t, "ada", "Ada")
	timeOf := func(username string) time.Duration {
		start := time.Now()
		if a := f.call(t, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{"username": username, "password": "wrong password"})); a.code() != natter.EInvalidCredentials {
			t.Fatalf("%s: %d %s", username, a.status, a.body)
		}
		return time.Since(start)
	}
	timeOf("ada") // warm up, and wait for the dummy hash
	timeOf("nobody")
	var known, unknown []time.Duration
	for range 10 {
		known = append(known, timeOf("ada"))
		unknown = append(unknown, timeOf("nobody"))
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	mk, mu := median(known), median(unknown)
	ratio := float64(mk) / float64(mu)
	t.Logf("median failed login: existing %s, unknown %s (ratio %.2f)", mk, mu, ratio)
	if ratio < 0.5 || ratio > 2 {
		t.Fatalf("existing %s against unknown %s: ratio %.2f tells them apart", mk, mu, ratio)
	}
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, func(c *tvm.Config) { c.LoginLimits = tvm.LoginLimits{} })
	f.signup(t, "ada", "Ada")
	bad := jsonOf(map[string]string{"username": "ada", "password": "wrong password"})
	for i := range 5 {
		if a := f.call(t, "POST", "/api/v1/sessions", "", bad); a.code() != natter.EInvalidCredentials {
			t.Fatalf("failure %d: %d %s", i+1, a.status, a.body)
		}
	}
	for _, body := range []string{bad, jsonOf(map[string]string{"username": "ada", "password": goodPassword})} {
		a := f.call(t, "POST", "/api/v1/sessions", "", body)
		if a.status != 429 || a.code() != natter.ERateLimited || a.header.Get("Retry-After") == "" {
			t.Fatalf("after 5 failures: %d %s (Retry-After %q)", a.status, a.body, a.header.Get("Retry-After"))
		}
		if secs, _ := strconv.Atoi(a.header.Get("Retry-After")); secs < 1 || secs > 15*60 {
			t.Fatalf("Retry-After %q", a.header.Get("Retry-After"))
		}
	}
	// Unknown usernames count alike, and the address has 20 failures.
	for i := range 15 {
		u := "nobody" + strconv.Itoa(i)
		if a := f.call(t, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{"username": u, "password": "wrong password"})); a.code() != natter.EInvalidCredentials {
			t.Fatalf("failure %d of the address: %d %s", 6+i, a.status, a.body)
		}
	}
	f.signup(t, "bob", "Bob")
	if a := f.call(t, "POST", "/api/v1/sessions", "", jsonOf(map[string]string{"username": "bob", "password": goodPassword})); a.status != 429 || a.code() != natter.ERateLimited {
		t.Fatalf("after 20 failures from the address: %d %s", a.status, a.body)
	}
}
