package gateway_test

import (
	"sync"
	"testing"
	"time"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

func newAccount(username, display string) natter.Account {
	return natter.Account{ID: natter.NewUserID(), Username: username, DisplayName: display, CreatedAt: time.Now().UTC()}
}

func TestUsersStore(t *testing.T) {
	users := gatewaytest.RunGateway(t).Users()
	ctx := t.Context()
	ada := newAccount("ada", "Ada Lovelace")
	if err := users.CreateUser(ctx, ada); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		acct natter.Account
		code string
	}{
		{"same username", newAccount("ada", "Someone"), natter.EUsernameTaken},
		{"same display name, folded", newAccount("ada2", "  ADA \t lovelace"), natter.ENameTaken},
		{"Kelvin sign folds to k", newAccount("kay", "\u212Aay"), ""},
		{"and k is then taken", newAccount("kay2", "kAY"), natter.ENameTaken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := users.CreateUser(ctx, tc.acct)
			if natter.ErrorCode(err) != tc.code && !(tc.code == "" && err == nil) {
				t.Fatalf("got %v, want %q", err, tc.code)
			}
			if tc.code != "" {
				// A refused account leaves no trace: its username is free.
				if _, err := users.UserByName(ctx, tc.acct.Username); tc.acct.Username != "ada" && natter.ErrorCode(err) != natter.ENotFound {
					t.Fatalf("username %s: %v", tc.acct.Username, err)
				}
			}
		})
	}

	// Concurrent updates all land: compare-and-set with retries.
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := users.UpdateUser(ctx, ada.ID, func(a *natter.Account) error { a.SessionVersion++; return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := users.UserByID(ctx, ada.ID)
	if err != nil || got.SessionVersion != n {
		t.Fatalf("after %d concurrent updates: %+v %v", n, got, err)
	}

	// A rename moves the reservation.
	if _, err := users.UpdateUser(ctx, ada.ID, func(a *natter.Account) error { a.DisplayName = "Countess"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, taken, _ := users.DisplayNameOwner(ctx, "ada lovelace"); taken {
		t.Fatal("old display name still reserved")
	}
	if owner, taken, _ := users.DisplayNameOwner(ctx, "COUNTESS"); !taken || owner != ada.ID {
		t.Fatalf("new display name: %q %v", owner, taken)
	}

	// Keys, and deletion freeing everything.
	key := gatewaytest.NewUser(t).ID
	if err := users.BindKey(ctx, key, natter.KeyBinding{UserID: ada.ID, DisplayName: "Countess"}); err != nil {
		t.Fatal(err)
	}
	if a, ok, err := users.AccountOfKey(ctx, key); err != nil || !ok || a.ID != ada.ID {
		t.Fatalf("key: %+v %v %v", a, ok, err)
	}
	if err := users.DeleteUser(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := users.AccountOfKey(ctx, key); err != nil || ok {
		t.Fatalf("key after delete: %v %v", ok, err)
	}
	if _, taken, _ := users.DisplayNameOwner(ctx, "Countess"); taken {
		t.Fatal("display name still reserved after delete")
	}
	if err := users.CreateUser(ctx, newAccount("ada", "Countess")); err != nil {
		t.Fatalf("username and display name after delete: %v", err)
	}
}
