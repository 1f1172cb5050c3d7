package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestTokenInspect(t *testing.T) {
	cfg := testConfig(t)
	m := runMain(t, cfg)
	u := gatewaytest.NewUser(t)
	rooms := u.MustNewRooms(t, m.baseURL(), "Lobby", "Neon")
	roomA, roomB := rooms[0], rooms[1]
	tok, err := u.RequestToken(m.baseURL(), "Ada", roomA, roomB)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "token", "inspect", "-data-dir", cfg.DataDir, tok.JWT)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Ada (" + u.ID + ")",
		"natter's token signing key",
		"Rooms:      " + roomA + ", " + roomB,
		"over WebSocket only",
		"Expires:    " + tok.ExpiresAt.UTC().Format(time.RFC3339) + ", in ",
		natter.UserSubject(roomB, natter.OpSend, u.ID) + " ",
		natter.RoomSubject(roomA, natter.TopicMsgs) + " ",
		natter.InboxPrefix(u.ID) + ".>",
		"Everything else is denied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	t.Run("foreign signer", func(t *testing.T) {
		acc, _ := nkeys.CreateAccount()
		uc := jwt.NewUserClaims(u.ID)
		uc.Name = "Mallory"
		uc.Expires = time.Now().Add(-time.Minute).Unix()
		uc.Tags.Add(natter.RoomTag(roomA))
		uc.IssuerAccount, _ = acc.PublicKey()
		uc.SetScoped(true)
		forged, err := uc.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		out, err := runCmd(t, "token", "inspect", "-data-dir", cfg.DataDir, forged)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"NOT this natter's token signing key", "EXPIRED"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("not a jwt", func(t *testing.T) {
		if _, err := runCmd(t, "token", "inspect", "hello"); err == nil || !strings.Contains(err.Error(), "not a valid NATS user JWT") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCredsAdmin(t *testing.T) {
	cfg := testConfig(t)
	m := runMain(t, cfg)
	out, err := runCmd(t, "creds", "admin", "-data-dir", cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tokStr, err := jwt.ParseDecoratedJWT([]byte(out))
	if err != nil {
		t.Fatalf("creds printed to stdout do not parse: %v", err)
	}
	uc, err := jwt.DecodeUserClaims(tokStr)
	if err != nil {
		t.Fatal(err)
	}
	p := uc.Permissions
	if uc.Issuer != m.Gateway.Account() || len(p.Pub.Allow)+len(p.Pub.Deny)+len(p.Sub.Allow)+len(p.Sub.Deny) > 0 {
		t.Fatalf("admin creds issued by %s with permissions %+v; want the chat account, unrestricted", uc.Issuer, uc.Permissions)
	}
	if ttl := time.Until(time.Unix(uc.Expires, 0)); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("admin creds expire in %s, want 24h", ttl)
	}
	if _, err := runCmd(t, "creds", "user"); err == nil {
		t.Fatal("creds user accepted")
	}
}
