package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// TestAccountsWired runs natter as main builds it: signup, login, a token
// for the account, and the registered room allowance of
// NATTER_ROOMS_PER_HOUR_REGISTERED.
func TestAccountsWired(t *testing.T) {
	cfg := testConfig(t)
	cfg.RoomsPerHour, cfg.RoomsPerHourRegistered = 1, 2
	m := runMain(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	do := func(method, path, bearer, body string, out any) error {
		var data []byte
		if body != "" {
			data = []byte(body)
		}
		return client.DoJSON(ctx, nil, method, m.baseURL()+path, bearer, data, out)
	}
	var me natter.Profile
	if err := do("POST", "/api/v1/users", "", `{"username":"ada","password":"correct horse battery","display_name":"Ada"}`, &me); err != nil {
		t.Fatal(err)
	}
	var sess struct{ Session string }
	if err := do("POST", "/api/v1/sessions", "", `{"username":"ada","password":"correct horse battery"}`, &sess); err != nil {
		t.Fatal(err)
	}
	u := gatewaytest.NewUser(t)
	var tok client.Token
	if err := do("POST", "/api/v1/token", sess.Session, `{"public_key":"`+u.ID+`","rooms":[]}`, &tok); err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(tok.JWT)
	if err != nil || uc.Name != "Ada" || !uc.Tags.Contains(natter.UserTag(me.ID)) {
		t.Fatalf("token claims %+v (%v)", uc, err)
	}
	for i := range 3 {
		_, err := u.CreateRoom(m.baseURL(), &tok, "")
		e, limited := errors.AsType[*gatewaytest.APIError](err)
		switch {
		case i < 2 && err != nil:
			t.Fatalf("room %d: %v", i+1, err)
		case i == 2 && (!limited || e.Status != http.StatusTooManyRequests || e.Code != natter.ERoomLimit):
			t.Fatalf("third room with NATTER_ROOMS_PER_HOUR_REGISTERED=2: %v", err)
		}
	}
}
