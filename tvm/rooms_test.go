package tvm_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
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

// do sends a request with an optional Authorization header and returns the
// status, headers and body.
func do(t *testing.T, method, url, auth, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
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

// vend gets a token for rooms from the TVM, as a browser does.
func (f fixture) vend(t *testing.T, rooms ...string) (jwtString, user string) {
	t.Helper()
	_, pub := userKey(t)
	if rooms == nil {
		rooms = []string{}
	}
	body, _ := json.Marshal(map[string]any{"public_key": pub, "rooms": rooms})
	status, _, b := post(t, f.url+"/api/v1/token", "application/json", string(body))
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, b)
	}
	var resp struct{ JWT string }
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.JWT, pub
}

// sign makes a user JWT for a fresh user, signed by key for account, as
// natter would vend it unless mod changes it.
func sign(t *testing.T, key nkeys.KeyPair, account string, mod func(*jwt.UserClaims)) string {
	t.Helper()
	_, pub := userKey(t)
	uc := jwt.NewUserClaims(pub)
	uc.IssuerAccount = account
	uc.Expires = time.Now().Add(time.Hour).Unix()
	uc.SetScoped(true)
	if mod != nil {
		mod(uc)
	}
	tok, err := uc.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// createRoom creates a room with the bearer token tok and body.
func (f fixture) createRoom(t *testing.T, tok, body string) (natter.Room, http.Header) {
	t.Helper()
	status, h, b := do(t, http.MethodPost, f.url+"/api/v1/rooms", "Bearer "+tok, "application/json", body)
	if status != http.StatusCreated {
		t.Fatalf("create room with %s: %d %s", body, status, b)
	}
	var room natter.Room
	if err := json.Unmarshal(b, &room); err != nil {
		t.Fatal(err)
	}
	return room, h
}

func (f fixture) listRooms(t *testing.T) []natter.Room {
	t.Helper()
	var list struct{ Rooms []natter.Room }
	if err := gatewaytest.GetJSON(f.url+"/api/v1/rooms", &list); err != nil {
		t.Fatal(err)
	}
	return list.Rooms
}

func TestCreateRoomErrors(t *testing.T) {
	f := newTVM(t, nil)
	tok, _ := f.vend(t)
	bearer := "Bearer " + tok
	foreignAccount, _ := nkeys.CreateAccount()
	foreignPub, _ := foreignAccount.PublicKey()
	tampered := func() string {
		// Another user's claims under this token's signature.
		parts := strings.Split(tok, ".")
		other := strings.Split(sign(t, foreignAccount, f.account, nil), ".")
		return parts[0] + "." + other[1] + "." + parts[2]
	}()
	cases := []struct {
		name        string
		auth        string
		contentType string
		body        string
		status      int
		code        string
		message     string // a part of the message
	}{
		{"no authorization", "", "application/json", `{}`, 401, natter.EUnauthorized, "Bearer <token> is required"},
		{"basic scheme", "Basic YWRtaW46YWRtaW4=", "application/json", `{}`, 401, natter.EUnauthorized, "Bearer scheme"},
		{"bearer without token", "Bearer ", "application/json", `{}`, 401, natter.EUnauthorized, "no token"},
		{"garbage bearer", "Bearer hello", "application/json", `{}`, 401, natter.EUnauthorized, "not a valid natter token"},
		{"tampered claims", "Bearer " + tampered, "application/json", `{}`, 401, natter.EUnauthorized, "not a valid natter token"},
		{"account jwt", "Bearer " + accountJWT(t, foreignAccount), "application/json", `{}`, 401, natter.EUnauthorized, "not a valid natter token"},
		{"signed by another key", "Bearer " + sign(t, foreignAccount, f.account, nil), "application/json", `{}`, 401, natter.EUnauthorized, "not signed by this natter"},
		{"signed for another account", "Bearer " + sign(t, f.gw.SigningKey(), foreignPub, nil), "application/json", `{}`, 401, natter.EUnauthorized, "another account"},
		{"expired", "Bearer " + sign(t, f.gw.SigningKey(), f.account, func(uc *jwt.UserClaims) {
			uc.Expires = time.Now().Add(-time.Minute).Unix()
		}), "application/json", `{}`, 401, natter.EUnauthorized, "expired at"},
		{"no expiry", "Bearer " + sign(t, f.gw.SigningKey(), f.account, func(uc *jwt.UserClaims) { uc.Expires = 0 }), "application/json", `{}`, 401, natter.EUnauthorized, "no expiry"},
		{"not yet valid", "Bearer " + sign(t, f.gw.SigningKey(), f.account, func(uc *jwt.UserClaims) {
			uc.NotBefore = time.Now().Add(time.Hour).Unix()
		}), "application/json", `{}`, 401, natter.EUnauthorized, "not valid yet"},
		{"not json", bearer, "application/json", `hello`, 400, natter.EMalformed, "invalid JSON"},
		{"truncated json", bearer, "application/json", `{"name":`, 400, natter.EMalformed, "ends early"},
		{"name of wrong type", bearer, "application/json", `{"name":42}`, 400, natter.EMalformed, `"name" must be a string`},
		{"unknown field", bearer, "application/json", `{"name":"x","topic":"y"}`, 400, natter.EMalformed, `unknown field "topic"`},
		{"trailing data", bearer, "application/json", `{} {}`, 400, natter.EMalformed, "after the JSON"},
		{"form content type", bearer, "application/x-www-form-urlencoded", `name=x`, 415, natter.EUnsupportedType, "application/json"},
		{"name only spaces", bearer, "application/json", `{"name":"   "}`, 400, natter.EInvalidName, "empty"},
		{"name too long", bearer, "application/json", `{"name":"` + strings.Repeat("é", natter.MaxRoomNameLen+1) + `"}`, 400, natter.EInvalidName, "longer than 48"},
		{"name with control", bearer, "application/json", `{"name":"a\u0007b"}`, 400, natter.EInvalidName, "control"},
		{"name with newline", bearer, "application/json", `{"name":"a\nb"}`, 400, natter.EInvalidName, "control"},
		{"name with markup", bearer, "application/json", `{"name":"<b>hi</b>"}`, 400, natter.EInvalidName, "markup"},
		{"name with gt", bearer, "application/json", `{"name":"a > b"}`, 400, natter.EInvalidName, "markup"},
		{"body over 16 KiB", bearer, "application/json", `{"name":"` + strings.Repeat("a", 17<<10) + `"}`, 413, natter.ETooLarge, "16384"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := do(t, http.MethodPost, f.url+"/api/v1/rooms", tc.auth, tc.contentType, tc.body)
			assertError(t, status, body, tc.status, tc.code, tc.message)
			if got := h.Get("WWW-Authenticate"); (status == 401) != (got != "") {
				t.Errorf("status %d with WWW-Authenticate %q", status, got)
			} else if status == 401 && !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q does not name the Bearer scheme", got)
			}
		})
	}
	if rooms := f.listRooms(t); len(rooms) != 0 {
		t.Fatalf("refused requests made rooms: %+v", rooms)
	}
}

// accountJWT is a validly signed JWT that is not a user's.
func accountJWT(t *testing.T, acc nkeys.KeyPair) string {
	t.Helper()
	pub, _ := acc.PublicKey()
	tok, err := jwt.NewAccountClaims(pub).Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var roomIDRE = regexp.MustCompile(`^([a-z0-9-]+)-[a-z2-7]{8}$`)

func TestCreateRoom(t *testing.T) {
	// One user makes all the rooms here; the limit has a test of its own.
	f := newTVMWith(t, gateway.ChatConfig{RoomsPerHour: 100}, nil)
	tok, _ := f.vend(t)
	cases := []struct {
		name     string
		body     string
		wantName string // "" for an element's name
		wantSlug string // "" for the slug of an element's name
	}{
		{"empty body", ``, "", ""},
		{"empty object", `{}`, "", ""},
		{"empty name", `{"name":""}`, "", ""},
		{"null", `null`, "", ""},
		{"name trimmed", `{"name":"  Café Noir  "}`, "Café Noir", "caf-noir"},
		{"only symbols", `{"name":"🎉🎉"}`, "🎉🎉", "room"},
		{"48 four-byte characters", `{"name":"` + strings.Repeat("🎉", natter.MaxRoomNameLen) + `"}`, strings.Repeat("🎉", natter.MaxRoomNameLen), "room"},
	}
	created := map[string]natter.Room{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			room, h := f.createRoom(t, tok, tc.body)
			after := time.Now()
			wantName, wantSlug := tc.wantName, tc.wantSlug
			if wantName == "" {
				wantName = room.Name
				if !tvm.IsElement(room.Name) {
					t.Errorf("default name %q is not an element", room.Name)
				}
				wantSlug = strings.ToLower(room.Name)
			}
			m := roomIDRE.FindStringSubmatch(room.ID)
			checks := []struct {
				name      string
				got, want any
			}{
				{"name", room.Name, wantName},
				{"id shape", m != nil, true},
				{"id is a room id", natter.ValidRoomID(room.ID), true},
				{"members", room.Members, 0},
				{"created now", !room.CreatedAt.Before(before.Truncate(time.Second)) && !room.CreatedAt.After(after), true},
				{"expires after the max TTL", room.ExpiresAt.Sub(room.CreatedAt), gateway.DefaultChatConfig.RoomMaxTTL},
				{"location", h.Get("Location"), "/api/v1/rooms/" + room.ID},
			}
			if m != nil {
				checks = append(checks, struct {
					name      string
					got, want any
				}{"slug", m[1], wantSlug})
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %v, want %v (room %+v)", c.name, c.got, c.want, room)
				}
			}
			var got natter.Room
			if err := gatewaytest.GetJSON(f.url+"/api/v1/rooms/"+room.ID, &got); err != nil {
				t.Fatal(err)
			}
			if !got.CreatedAt.Equal(room.CreatedAt) || got.ID != room.ID || got.Name != room.Name || !got.ExpiresAt.Equal(room.ExpiresAt) {
				t.Errorf("GET answers %+v, POST answered %+v", got, room)
			}
			created[room.ID] = room
		})
	}

	t.Run("list", func(t *testing.T) {
		listed := map[string]bool{}
		for _, r := range f.listRooms(t) {
			listed[r.ID] = true
		}
		for id := range created {
			if !listed[id] {
				t.Errorf("room %s not listed", id)
			}
		}
	})
	t.Run("stats", func(t *testing.T) {
		status, _, b := do(t, http.MethodGet, f.url+"/api/v1/stats", "", "", "")
		var st map[string]int
		if err := json.Unmarshal(b, &st); status != 200 || err != nil {
			t.Fatalf("stats: %d %s", status, b)
		}
		want := map[string]int{"online_users": 0, "rooms": len(created), "messages_last_hour": 0}
		if fmt.Sprint(st) != fmt.Sprint(want) {
			t.Fatalf("stats %v, want %v", st, want)
		}
	})
}

func TestRoomListEmpty(t *testing.T) {
	f := newTVM(t, nil)
	status, _, b := do(t, http.MethodGet, f.url+"/api/v1/rooms", "", "", "")
	if status != 200 || string(b) != `{"rooms":[]}`+"\n" {
		t.Fatalf("got %d %q, want an empty list", status, b)
	}
}

func TestGetRoomErrors(t *testing.T) {
	f := newTVM(t, nil)
	cases := []struct {
		name    string
		method  string
		path    string
		status  int
		code    string
		message string
	}{
		{"unknown room", http.MethodGet, "/api/v1/rooms/neon-k7f3qz2a", 404, natter.EUnknownRoom, "neon-k7f3qz2a"},
		{"upper case id", http.MethodGet, "/api/v1/rooms/Lobby", 400, natter.EInvalidRoom, `"Lobby" is not a room id`},
		{"id with dot", http.MethodGet, "/api/v1/rooms/a.b", 400, natter.EInvalidRoom, "not a room id"},
		{"id with star", http.MethodGet, "/api/v1/rooms/%2A", 400, natter.EInvalidRoom, "not a room id"},
		{"id with leading dash", http.MethodGet, "/api/v1/rooms/-a", 400, natter.EInvalidRoom, "not a room id"},
		{"id of 65 chars", http.MethodGet, "/api/v1/rooms/" + strings.Repeat("a", 65), 400, natter.EInvalidRoom, "not a room id"},
		{"delete the list", http.MethodDelete, "/api/v1/rooms", 405, natter.EMethod, "not allowed"},
		{"post to a room", http.MethodPost, "/api/v1/rooms/lobby", 405, natter.EMethod, "not allowed"},
		{"post stats", http.MethodPost, "/api/v1/stats", 405, natter.EMethod, "not allowed"},
		// echo hands the rest of the path to the last parameter.
		{"below a room", http.MethodGet, "/api/v1/rooms/lobby/members", 400, natter.EInvalidRoom, `"lobby/members" is not a room id`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, tc.method, f.url+tc.path, "", "", "")
			assertError(t, status, body, tc.status, tc.code, tc.message)
		})
	}
}

// TestClosedRoom lets a room reach its maximum life: it answers 410, drops
// out of the list, and no token is vended for it.
func TestClosedRoom(t *testing.T) {
	f := newTVMWith(t, gateway.ChatConfig{RoomMaxTTL: time.Second}, nil)
	tok, _ := f.vend(t)
	room, _ := f.createRoom(t, tok, `{"name":"Brief"}`)
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if status, _, b := do(t, http.MethodGet, f.url+"/api/v1/rooms/"+room.ID, "", "", ""); status != http.StatusGone {
			return fmt.Errorf("room %s still answers %d %s", room.ID, status, b)
		}
		return nil
	})
	status, _, b := do(t, http.MethodGet, f.url+"/api/v1/rooms/"+room.ID, "", "", "")
	assertError(t, status, b, 410, natter.ERoomClosed, room.ID)
	if slices.ContainsFunc(f.listRooms(t), func(r natter.Room) bool { return r.ID == room.ID }) {
		t.Error("closed room still listed")
	}
	_, pub := userKey(t)
	status, _, b = post(t, f.url+"/api/v1/token", "application/json", `{"public_key":"`+pub+`","rooms":["`+room.ID+`"]}`)
	assertError(t, status, b, 410, natter.ERoomClosed, `rooms[0] "`+room.ID+`" is closed`)
}

// TestRoomLimit: the sixth room within the hour is refused to its creator,
// not to others.
func TestRoomLimit(t *testing.T) {
	f := newTVM(t, nil)
	tok, _ := f.vend(t)
	for i := range gateway.DefaultChatConfig.RoomsPerHour {
		f.createRoom(t, tok, fmt.Sprintf(`{"name":"Room %d"}`, i))
	}
	status, _, b := do(t, http.MethodPost, f.url+"/api/v1/rooms", "Bearer "+tok, "application/json", `{}`)
	assertError(t, status, b, 429, natter.ERoomLimit, "at most 5 rooms an hour")

	// The limit is the user's, not the token's: a fresh token for the same
	// key is refused too.
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	again := sign(t, f.gw.SigningKey(), f.account, func(c *jwt.UserClaims) { c.Subject = uc.Subject })
	status, _, b = do(t, http.MethodPost, f.url+"/api/v1/rooms", "Bearer "+again, "application/json", `{}`)
	assertError(t, status, b, 429, natter.ERoomLimit, "rooms an hour")

	other, _ := f.vend(t)
	f.createRoom(t, other, `{}`)
	if n := len(f.listRooms(t)); n != gateway.DefaultChatConfig.RoomsPerHour+1 {
		t.Fatalf("%d rooms listed, want %d", n, gateway.DefaultChatConfig.RoomsPerHour+1)
	}
}

// TestTokenOnlyForExistingRooms: a token is vended for rooms that exist and
// refused, naming the room, for any that does not.
func TestTokenOnlyForExistingRooms(t *testing.T) {
	f := newTVM(t, nil)
	creatorTok, _ := f.vend(t)
	room, _ := f.createRoom(t, creatorTok, `{"name":"Lobby"}`)
	_, pub := userKey(t)
	cases := []struct {
		name    string
		rooms   string
		status  int
		code    string
		message string
	}{
		{"unknown room", `["nope"]`, 404, natter.EUnknownRoom, `rooms[0] "nope" does not exist`},
		{"unknown after a known one", `["` + room.ID + `","neon-k7f3qz2a"]`, 404, natter.EUnknownRoom, `rooms[1] "neon-k7f3qz2a"`},
		{"invalid before unknown", `["nope","a.b"]`, 400, natter.EInvalidRoom, "rooms[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b := post(t, f.url+"/api/v1/token", "application/json", `{"public_key":"`+pub+`","rooms":`+tc.rooms+`}`)
			assertError(t, status, b, tc.status, tc.code, tc.message)
		})
	}
	t.Run("created room", func(t *testing.T) {
		tok, _ := f.vend(t, room.ID)
		uc, err := jwt.DecodeUserClaims(tok)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(natter.RoomsFromTags(uc.Tags), []string{room.ID}) {
			t.Fatalf("token rooms %v, want [%s]", natter.RoomsFromTags(uc.Tags), room.ID)
		}
	})
}

// TestRateLimitCoversTheRoomAPI: all /api/v1 routes draw on one allowance
// per address.
func TestRateLimitCoversTheRoomAPI(t *testing.T) {
	f := newTVM(t, func(c *tvm.Config) { c.Rate, c.Burst = rate.Limit(0.01), 3 })
	tok, _ := f.vend(t) // the first request
	for _, path := range []string{"/api/v1/stats", "/api/v1/rooms"} {
		if status, _, b := do(t, http.MethodGet, f.url+path, "", "", ""); status != 200 {
			t.Fatalf("GET %s within the burst: %d %s", path, status, b)
		}
	}
	cases := []struct {
		name, method, path, auth, body string
	}{
		{"create room", http.MethodPost, "/api/v1/rooms", "Bearer " + tok, `{}`},
		{"list rooms", http.MethodGet, "/api/v1/rooms", "", ""},
		{"get room", http.MethodGet, "/api/v1/rooms/lobby", "", ""},
		{"stats", http.MethodGet, "/api/v1/stats", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, b := do(t, tc.method, f.url+tc.path, tc.auth, "application/json", tc.body)
			assertError(t, status, b, 429, natter.ERateLimited, "too many requests")
			if h.Get("Retry-After") == "" {
				t.Error("no Retry-After header")
			}
		})
	}
}
