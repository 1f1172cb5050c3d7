package tvm

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
)

// fakeRooms knows a few open rooms and one closed one, without NATS, so the
// fuzzer spends its time in the handler.
type fakeRooms struct{}

var fuzzOpenRooms = []string{"lobby", "neon-k7f3qz2a"}

func (fakeRooms) Room(_ context.Context, id string) (natter.Room, error) {
	switch {
	case slices.Contains(fuzzOpenRooms, id):
		return natter.Room{ID: id, Name: id}, nil
	case id == "gone":
		return natter.Room{}, natter.Errorf(natter.ERoomClosed, "room %s is closed", id)
	}
	return natter.Room{}, natter.Errorf(natter.EUnknownRoom, "no room %s", id)
}

func (fakeRooms) CreateRoom(context.Context, string, string, string, bool) (natter.Room, error) {
	return natter.Room{}, natter.Errorf(natter.EUnavailable, "not in this test")
}
func (fakeRooms) Rooms(context.Context) ([]natter.Room, error) { return nil, nil }
func (fakeRooms) Stats(context.Context) (natter.Stats, error)  { return natter.Stats{}, nil }

func fixedKey(tb testing.TB, prefix nkeys.PrefixByte, seed string) nkeys.KeyPair {
	var raw [32]byte
	copy(raw[:], seed)
	kp, err := nkeys.FromRawSeed(prefix, raw[:])
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

// FuzzTokenRequest posts arbitrary bodies to the real token handler: it
// never answers 5xx, every refusal is {"error": {"code", "message"}} with
// the status that belongs to the code, and a 200 vends a token only for a
// valid user key and open, valid rooms.
func FuzzTokenRequest(f *testing.F) {
	user := fixedKey(f, nkeys.PrefixByteUser, "natter fuzz token user")
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	acc := fixedKey(f, nkeys.PrefixByteAccount, "natter fuzz account")
	accPub, _ := acc.PublicKey()
	signer := fixedKey(f, nkeys.PrefixByteAccount, "natter fuzz signer")
	signerPub, _ := signer.PublicKey()

	many := make([]string, 40)
	for i := range many {
		many[i] = `"lobby"`
	}
	key := `"public_key":"` + userPub + `"`
	for _, s := range []struct{ body, ct string }{
		{`{` + key + `}`, "application/json"},
		{`{` + key + `,"name":"Ada","rooms":["lobby","neon-k7f3qz2a","lobby"]}`, "application/json"},
		{`{` + key + `,"rooms":["gone"]}`, "application/json"},
		{`{` + key + `,"rooms":["nope"]}`, "application/json"},
		{`{` + key + `,"rooms":["a.b","*",">"," ","café"]}`, "application/json"},
		{`{` + key + `,"rooms":[` + strings.Join(many, ",") + `]}`, "application/json"},
		{`{` + key + `,"name":"a\u202eb"}`, "application/json"},
		{`{` + key + `,"name":"` + strings.Repeat("é", 33) + `"}`, "application/json; charset=utf-8"},
		{`{"public_key":"` + string(userSeed) + `"}`, "application/json"},
		{`{"public_key":"` + accPub + `"}`, "application/json"},
		{`{"public_key":42}`, "application/json"},
		{`{` + key + `,"rooms":"lobby"}`, "application/json"},
		{`{` + key + `,"admin":true}`, "application/json"},
		{`{` + key + `} {}`, ""},
		{`{` + key + `}`, "text/plain"},
		{`{` + key + `}`, "application/json; ="},
		{``, "application/json"}, {`[]`, ""}, {`null`, ""}, {`{`, ""}, {"\xff", ""},
	} {
		f.Add([]byte(s.body), s.ct)
	}

	h := New(Config{Account: accPub, SigningKey: signer, Rooms: fakeRooms{}, TokenTTL: time.Hour, WSPort: 8081}).Handler()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/token", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("answer of type %q", ct)
		}
		if rec.Code != http.StatusOK {
			var e struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			dec := json.NewDecoder(rec.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Message == "" {
				t.Fatalf("status %d with body %q is not the error shape (%v)", rec.Code, rec.Body, err)
			}
			if want, ok := statusOf[e.Error.Code]; !ok || want != rec.Code {
				t.Fatalf("code %q with status %d", e.Error.Code, rec.Code)
			}
			return
		}
		// A 200: what was asked must have been a valid request.
		var asked struct {
			PublicKey string   `json:"public_key"`
			Name      string   `json:"name"`
			Rooms     []string `json:"rooms"`
		}
		if err := json.Unmarshal(body, &asked); err != nil {
			t.Fatalf("vended a token for a body that is not JSON: %q", body)
		}
		var resp natter.TokenResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		uc, err := jwt.DecodeUserClaims(resp.JWT)
		if err != nil {
			t.Fatalf("vended an undecodable token: %v", err)
		}
		if !natter.ValidUserKey(uc.Subject) || uc.Subject != asked.PublicKey || resp.User.ID != uc.Subject {
			t.Fatalf("token for %q, asked for %q", uc.Subject, asked.PublicKey)
		}
		if uc.Issuer != signerPub || uc.IssuerAccount != accPub || !uc.HasEmptyPermissions() {
			t.Fatalf("token issued by %s for %s with permissions %+v", uc.Issuer, uc.IssuerAccount, uc.Permissions)
		}
		rooms := natter.RoomsFromTags(uc.Tags)
		if len(uc.Tags) != len(rooms) || len(rooms) > natter.MaxRoomsPerToken {
			t.Fatalf("tags %v", uc.Tags)
		}
		for _, r := range rooms {
			if !natter.ValidRoomID(r) || !slices.Contains(fuzzOpenRooms, r) || !slices.Contains(asked.Rooms, r) {
				t.Fatalf("token for room %q (asked %q)", r, asked.Rooms)
			}
		}
		for _, r := range asked.Rooms {
			if !slices.Contains(rooms, r) {
				t.Fatalf("asked for %q, token has %v", r, rooms)
			}
		}
		if name, err := natter.CleanName(resp.User.Name); err != nil || name != resp.User.Name || uc.Name != name {
			t.Fatalf("vended name %q (%v)", resp.User.Name, err)
		}
	})
}
