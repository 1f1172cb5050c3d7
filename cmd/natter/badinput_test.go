package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// serviceState is what a refused client must leave as it was: the open
// rooms with their members, and who is online.
func serviceState(t *testing.T, m *Main) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rooms, err := m.Gateway.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Gateway.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, r := range rooms {
		parts = append(parts, fmt.Sprintf("%s:%d", r.ID, r.Members))
	}
	slices.Sort(parts)
	return fmt.Sprintf("rooms %v, online %d, messages %d", parts, st.OnlineUsers, st.MessagesLastHour)
}

// TestBadCredentialsChangeNothing connects with credentials natter must
// refuse: each is refused with an authorization error, and the rooms,
// their members and the stats are as before.
func TestBadCredentialsChangeNothing(t *testing.T) {
	m := runMain(t, testConfig(t))
	u := gatewaytest.NewUser(t)
	room := u.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	tok := u.MustToken(t, m.baseURL(), room)
	member, err := client.Dial(u.Identity, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := member.Join(ctx, room, "Ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := member.Send(ctx, room, "hello"); err != nil {
		t.Fatal(err)
	}
	// The message count is updated after the ack; wait for it.
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		st, err := m.Gateway.Stats(ctx)
		if err != nil || st.MessagesLastHour != 1 {
			return fmt.Errorf("stats %+v %v", st, err)
		}
		return nil
	})
	before := serviceState(t, m)

	// userJWT is a token for room as natter vends it, for a fresh key,
	// changed by mod and signed by key.
	userJWT := func(key nkeys.KeyPair, mod func(*jwt.UserClaims)) (string, nkeys.KeyPair) {
		ukp, _ := nkeys.CreateUser()
		pub, _ := ukp.PublicKey()
		uc := jwt.NewUserClaims(pub)
		uc.IssuerAccount = m.Gateway.Account()
		uc.Expires = time.Now().Add(time.Hour).Unix()
		uc.Tags.Add(natter.RoomTag(room))
		uc.SetScoped(true)
		if mod != nil {
			mod(uc)
		}
		s, err := uc.Encode(key)
		if err != nil {
			t.Fatal(err)
		}
		return s, ukp
	}
	// The same JWT, well made, connects: each case below fails for its
	// one defect.
	good, goodKey := userJWT(m.Gateway.SigningKey(), nil)
	nc, err := nats.Connect(tok.Servers[0], nats.UserJWT(func() (string, error) { return good, nil }, func(n []byte) ([]byte, error) { return goodKey.Sign(n) }))
	if err != nil {
		t.Fatalf("a well-made JWT: %v", err)
	}
	nc.Close()

	untrusted, _ := nkeys.CreateAccount()
	expired, expiredKey := userJWT(m.Gateway.SigningKey(), func(uc *jwt.UserClaims) {
		uc.Expires = time.Now().Add(-time.Minute).Unix()
	})
	foreignSigner, foreignSignerKey := userJWT(untrusted, nil)
	foreignAccount, foreignAccountKey := userJWT(untrusted, func(uc *jwt.UserClaims) { uc.IssuerAccount = "" })
	stranger := gatewaytest.NewUser(t)

	cases := []struct {
		name string
		jwt  string
		sign nkeys.KeyPair // signs the server's nonce
	}{
		{"expired JWT", expired, expiredKey},
		{"JWT signed by a key natter does not trust, for natter's account", foreignSigner, foreignSignerKey},
		{"JWT of an account natter does not trust", foreignAccount, foreignAccountKey},
		{"JWT whose key the client cannot sign for", tok.JWT, stranger.Key},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			auth := nats.UserJWT(func() (string, error) { return tc.jwt, nil }, func(n []byte) ([]byte, error) { return tc.sign.Sign(n) })
			gatewaytest.AssertRefused(t, func() (*nats.Conn, error) {
				return nats.Connect(tok.Servers[0], auth, nats.NoReconnect(), nats.Timeout(5*time.Second))
			}, gatewaytest.IsAuthorization)
			if after := serviceState(t, m); after != before {
				t.Fatalf("state changed: %s → %s", before, after)
			}
		})
	}
	// The member that was there all along is still served.
	if _, err := member.Send(ctx, room, "still here"); err != nil {
		t.Fatal(err)
	}
}
