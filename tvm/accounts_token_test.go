package tvm_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
)

// tokenWithSession asks for a token for rooms with a session.
func (f accounts) tokenWithSession(t *testing.T, session string, u *client.Identity, name string, rooms ...string) *client.Token {
	t.Helper()
	var tok client.Token
	body := jsonOf(natter.TokenRequest{PublicKey: u.ID, Name: name, Rooms: append([]string{}, rooms...)})
	f.must(t, 200, "POST", "/api/v1/token", session, body).decode(t, &tok)
	return &tok
}

func TestTokenWithSessionIsVerified(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	p := f.signup(t, "ada", "Ada Lovelace")
	s := f.login(t, "ada", goodPassword).Session
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	api := &client.API{BaseURL: f.url}

	ada, _ := client.NewIdentity()
	tok := f.tokenWithSession(t, s, ada, "")
	uc, err := jwt.DecodeUserClaims(tok.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Name != "Ada Lovelace" || !uc.Tags.Contains(natter.UserTag(p.ID)) || tok.User.Name != "Ada Lovelace" {
		t.Fatalf("token name %q tags %v user %+v", uc.Name, uc.Tags, tok.User)
	}
	// The name may repeat the display name, folded, and nothing else.
	f.tokenWithSession(t, s, ada, "ada  LOVELACE")
	if a := f.call(t, "POST", "/api/v1/token", s, jsonOf(natter.TokenRequest{PublicKey: ada.ID, Name: "Somebody", Rooms: []string{}})); a.status != 400 || a.code() != natter.EInvalidName || !strings.Contains(a.message(), "Ada Lovelace") {
		t.Fatalf("another name: %d %s", a.status, a.body)
	}
	if a := f.call(t, "POST", "/api/v1/token", "not-a-session", jsonOf(natter.TokenRequest{PublicKey: ada.ID, Rooms: []string{}})); a.status != 401 || a.code() != natter.EUnauthorized {
		t.Fatalf("a bad session: %d %s", a.status, a.body)
	}

	// Anonymous use of the registered name: refused at the TVM and at join.
	anon, _ := client.NewIdentity()
	for _, name := range []string{"Ada Lovelace", " ADA   lovelace "} {
		if _, err := api.Token(ctx, anon, name); !isAPIError(err, 409, natter.ENameTaken) {
			t.Fatalf("anonymous token named %q: %v", name, err)
		}
	}

	room, err := api.CreateRoom(ctx, tok, "Salon")
	if err != nil {
		t.Fatal(err)
	}
	tok = f.tokenWithSession(t, s, ada, "", room.ID)
	c, err := client.Dial(ada, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// The name asked at join does not matter: the account's is used.
	j, err := c.Join(ctx, room.ID, "Whatever")
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != "Ada Lovelace" || !j.Members[0].Verified {
		t.Fatalf("join %+v", j)
	}
	if _, err := c.Send(ctx, room.ID, "hello"); err != nil {
		t.Fatal(err)
	}

	anonTok, err := api.Token(ctx, anon, "Guest", room.ID)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := client.Dial(anon, anonTok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ac.Close)
	if _, err := ac.Join(ctx, room.ID, "ada lovelace"); err == nil || !strings.Contains(err.Error(), natter.ENameTaken) {
		t.Fatalf("anonymous join as a registered name: %v", err)
	}
	j, err = ac.Join(ctx, room.ID, "Guest")
	if err != nil {
		t.Fatal(err)
	}
	if j.Members[0].Verified {
		t.Fatalf("anonymous member verified: %+v", j.Members[0])
	}
	if _, err := ac.Send(ctx, room.ID, "hi"); err != nil {
		t.Fatal(err)
	}
	h, err := ac.History(ctx, room.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range h.Messages {
		seen = append(seen, e.Type+" "+e.From.Name+" "+strconv.FormatBool(e.From.Verified))
	}
	want := []string{"join Ada Lovelace true", "message Ada Lovelace true", "join Guest false", "message Guest false"}
	if !slices.Equal(seen, want) {
		t.Fatalf("history %q, want %q", seen, want)
	}

	// Deleting the account frees the name; messages keep theirs.
	f.must(t, 204, "DELETE", "/api/v1/users/me", s, jsonOf(map[string]string{"password": goodPassword}))
	if _, err := api.Token(ctx, anon, "Ada Lovelace"); err != nil {
		t.Fatalf("anonymous token after the account's deletion: %v", err)
	}
	if _, err := ac.Join(ctx, room.ID, "Ada Lovelace"); err != nil {
		t.Fatalf("anonymous join after the account's deletion: %v", err)
	}
	if _, ok, _ := f.gw.Users().AccountOfKey(t.Context(), ada.ID); ok {
		t.Fatal("the deleted account's key is still registered")
	}
	h, _ = ac.History(ctx, room.ID, 0, 2)
	if h.Messages[1].From.Name != "Ada Lovelace" || !h.Messages[1].From.Verified {
		t.Fatalf("an old message changed: %+v", h.Messages[1])
	}
}

func isAPIError(err error, status int, code string) bool {
	e, ok := errors.AsType[*client.APIError](err)
	return ok && e.Status == status && e.Code == code
}

func TestRegisteredUsersMayCreateMoreRooms(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{RoomsPerHour: 1, RoomsPerHourRegistered: 3}, nil)
	ctx := t.Context()
	api := &client.API{BaseURL: f.url}
	anon, _ := client.NewIdentity()
	anonTok, err := api.Token(ctx, anon, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateRoom(ctx, anonTok, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateRoom(ctx, anonTok, ""); !isAPIError(err, 429, natter.ERoomLimit) {
		t.Fatalf("anonymous second room: %v", err)
	}
	f.signup(t, "ada", "Ada")
	s := f.login(t, "ada", goodPassword).Session
	// The allowance is the account's, whichever key asks.
	for i := range 4 {
		u, _ := client.NewIdentity()
		_, err := api.CreateRoom(ctx, f.tokenWithSession(t, s, u, ""), "")
		if i < 3 && err != nil {
			t.Fatalf("room %d: %v", i+1, err)
		}
		if i == 3 && (!isAPIError(err, 429, natter.ERoomLimit) || !strings.Contains(err.Error(), "at most 3 rooms")) {
			t.Fatalf("fourth room: %v", err)
		}
	}
}

// TestLogoutEndsTheRegisteredIdentity: once an account logs out (and so
// for every change that ends its sessions), the keys of its tokens are no
// longer registered: an already joined member's sends are refused as
// not_joined, a new join is anonymous and may not take the account's name.
// The NATS token itself lives on until it expires; only the mark and the
// name it carried end.
func TestLogoutEndsTheRegisteredIdentity(t *testing.T) {
	f := newAccounts(t, gateway.ChatConfig{}, nil)
	f.signup(t, "grace", "Grace Hopper")
	s := f.login(t, "grace", goodPassword).Session
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	api := &client.API{BaseURL: f.url}

	grace, _ := client.NewIdentity()
	room, err := api.CreateRoom(ctx, f.tokenWithSession(t, s, grace, ""), "Navy")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(grace, f.tokenWithSession(t, s, grace, "", room.ID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if j, err := c.Join(ctx, room.ID, "Grace"); err != nil || !j.Members[0].Verified {
		t.Fatalf("join: %+v %v", j, err)
	}
	if _, err := c.Send(ctx, room.ID, "before"); err != nil {
		t.Fatal(err)
	}

	f.must(t, 204, "DELETE", "/api/v1/sessions", s, "")
	if _, ok, _ := f.gw.Users().AccountOfKey(ctx, grace.ID); ok {
		t.Fatal("the key is still registered after logging out")
	}
	if _, err := c.Send(ctx, room.ID, "after"); natter.ErrorCode(err) != natter.ENotJoined {
		t.Fatalf("send after logging out: %v, want %s", err, natter.ENotJoined)
	}
	if _, err := c.Join(ctx, room.ID, "Grace Hopper"); natter.ErrorCode(err) != natter.ENameTaken {
		t.Fatalf("join under the account's name after logging out: %v, want %s", err, natter.ENameTaken)
	}
	j, err := c.Join(ctx, room.ID, "Someone")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range j.Members {
		if m.Verified {
			t.Fatalf("a member is still verified: %+v", j.Members)
		}
	}
	if _, err := c.Send(ctx, room.ID, "anonymous now"); err != nil {
		t.Fatal(err)
	}
	h, err := c.History(ctx, room.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range h.Messages {
		if e.Type == natter.TypeMessage {
			msgs = append(msgs, e.Text+" "+e.From.Name+" "+strconv.FormatBool(e.From.Verified))
		}
	}
	if want := []string{"before Grace Hopper true", "anonymous now Someone false"}; !slices.Equal(msgs, want) {
		t.Fatalf("messages %q, want %q", msgs, want)
	}
}
