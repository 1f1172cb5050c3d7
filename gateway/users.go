package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
)

// Users stores registered accounts in the users bucket and the keys of
// their tokens in the keys bucket. Every write that must be unique is a
// compare-and-set in JetStream, so it holds across natter processes.
//
// Keys of the users bucket: id.<id> holds the account, name.<username> and
// display.<sha256 of the folded display name> hold the id of the account
// that owns the username or the display name.
type Users struct {
	users, keys jetstream.KeyValue
	log         *slog.Logger
}

// Users is the account store, for the TVM.
func (g *Gateway) Users() *Users { return g.chat.accounts }

// staleReservation is how old a name or display reservation must be, with
// no account behind it, to be taken over: a signup that stopped between
// reserving and storing the account must not hold a name for ever, and a
// signup in progress must not lose its own.
const staleReservation = time.Minute

// maxAccountKeys bounds the keys an account remembers. Older keys entries
// expire on their own, and the gateway checks the account behind a key, so
// a forgotten one cannot outlive the account.
const maxAccountKeys = 256

func idKey(id string) string         { return "id." + id }
func nameKey(username string) string { return "name." + username }

// CreateUser stores a new account: username_taken when the username is
// someone else's, name_taken when the display name is. Of two signups for
// one username exactly one wins, whichever process serves them.
func (u *Users) CreateUser(ctx context.Context, a natter.Account) error {
	ok, err := u.reserve(ctx, nameKey(a.Username), a.ID)
	if err != nil {
		return err
	}
	if !ok {
		return natter.Errorf(natter.EUsernameTaken, "username %s is taken", a.Username)
	}
	display := natter.DisplayKey(a.DisplayName)
	if ok, err = u.reserve(ctx, display, a.ID); err != nil || !ok {
		u.release(ctx, nameKey(a.Username), a.ID)
		if err != nil {
			return err
		}
		return nameTaken(a.DisplayName)
	}
	data, err := json.Marshal(a)
	if err == nil {
		_, err = u.users.Create(ctx, idKey(a.ID), data)
	}
	if err != nil {
		u.release(ctx, display, a.ID)
		u.release(ctx, nameKey(a.Username), a.ID)
		return unavailable("store account", err)
	}
	return nil
}

func nameTaken(name string) error {
	return natter.Errorf(natter.ENameTaken, "the name %q belongs to a registered user", name)
}

// reserve makes key hold id unless another account holds it. A reservation
// older than staleReservation whose account does not exist is taken over.
func (u *Users) reserve(ctx context.Context, key, id string) (bool, error) {
	for range 3 {
		_, err := u.users.Create(ctx, key, []byte(id))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, unavailable("reserve "+key, err)
		}
		e, err := u.users.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // freed meanwhile
		} else if err != nil {
			return false, unavailable("read "+key, err)
		}
		owner := string(e.Value())
		if owner == id {
			return true, nil
		}
		if time.Since(e.Created()) < staleReservation {
			return false, nil
		}
		if _, err := u.users.Get(ctx, idKey(owner)); err == nil {
			return false, nil
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, unavailable("read account", err)
		}
		_, err = u.users.Update(ctx, key, []byte(id), e.Revision())
		if err == nil {
			return true, nil
		} else if !isWrongLastSeq(err) {
			return false, unavailable("take over "+key, err)
		}
	}
	return false, nil
}

// release frees key if id still holds it. It runs on cleanup paths, so it
// outlives a cancelled request and only logs what fails: a reservation left
// behind is taken over once stale.
func (u *Users) release(ctx context.Context, key, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	e, err := u.users.Get(ctx, key)
	if err != nil || string(e.Value()) != id {
		return
	}
	if err := u.users.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !isWrongLastSeq(err) {
		u.log.Warn("release reservation", "key", key, "err", err)
	}
}

// UserByID returns the account id, or not_found.
func (u *Users) UserByID(ctx context.Context, id string) (natter.Account, error) {
	a, _, err := u.get(ctx, id)
	return a, err
}

func (u *Users) get(ctx context.Context, id string) (natter.Account, uint64, error) {
	if !natter.IsUserID(id) {
		return natter.Account{}, 0, natter.Errorf(natter.ENotFound, "no such user")
	}
	e, err := u.users.Get(ctx, idKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return natter.Account{}, 0, natter.Errorf(natter.ENotFound, "no such user")
	case err != nil:
		return natter.Account{}, 0, unavailable("read account", err)
	}
	var a natter.Account
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return natter.Account{}, 0, &natter.Error{Code: natter.EInternal, Message: "unreadable account", Err: fmt.Errorf("account %s: %w", id, err)}
	}
	return a, e.Revision(), nil
}

// UserByName returns the account of username, or not_found.
func (u *Users) UserByName(ctx context.Context, username string) (natter.Account, error) {
	if !natter.ValidUsername(username) {
		return natter.Account{}, natter.Errorf(natter.ENotFound, "no such user")
	}
	e, err := u.users.Get(ctx, nameKey(username))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return natter.Account{}, natter.Errorf(natter.ENotFound, "no such user")
	case err != nil:
		return natter.Account{}, unavailable("read username", err)
	}
	return u.UserByID(ctx, string(e.Value()))
}

// maxUpdateTries bounds the compare-and-set retries of UpdateUser.
const maxUpdateTries = 10

// UpdateUser applies change to the account id and stores it if nobody
// wrote it meanwhile, trying again with the fresh account otherwise; change
// may run more than once and its error is returned as it is. A new display
// name is reserved first (name_taken when it is someone else's) and the old
// one freed after.
func (u *Users) UpdateUser(ctx context.Context, id string, change func(*natter.Account) error) (natter.Account, error) {
	for range maxUpdateTries {
		a, rev, err := u.get(ctx, id)
		if err != nil {
			return natter.Account{}, err
		}
		old := a
		a.Keys = append([]string(nil), old.Keys...)
		if err := change(&a); err != nil {
			return natter.Account{}, err
		}
		if a.SessionVersion > old.SessionVersion {
			// Ending the sessions (log out, a new password or two-factor
			// setting) also ends what the tokens vended with them carry:
			// their keys join rooms as anonymous from now on, and the
			// gateway refuses their sends as a registered member. Before
			// the account is written, so that a failure leaves it
			// unchanged and the client tries again.
			if err := u.unbind(ctx, old.Keys); err != nil {
				return natter.Account{}, err
			}
			a.Keys = nil
		}
		newDisplay := natter.FoldName(a.DisplayName) != natter.FoldName(old.DisplayName)
		if newDisplay {
			ok, err := u.reserve(ctx, natter.DisplayKey(a.DisplayName), id)
			if err != nil {
				return natter.Account{}, err
			}
			if !ok {
				return natter.Account{}, nameTaken(a.DisplayName)
			}
		}
		data, err := json.Marshal(a)
		if err == nil {
			_, err = u.users.Update(ctx, idKey(id), data, rev)
		}
		if err != nil {
			if newDisplay {
				u.release(ctx, natter.DisplayKey(a.DisplayName), id)
			}
			if isWrongLastSeq(err) {
				continue
			}
			return natter.Account{}, unavailable("update account", err)
		}
		if newDisplay {
			u.release(ctx, natter.DisplayKey(old.DisplayName), id)
		}
		return a, nil
	}
	return natter.Account{}, natter.Errorf(natter.EUnavailable, "the account changed too often meanwhile; try again")
}

// unbind removes the keys entries of keys.
func (u *Users) unbind(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := u.keys.Purge(ctx, k); err != nil {
			return unavailable("remove a token key", err)
		}
	}
	return nil
}

// KeyBound tells whether key holds a token vended to a registered account
// whose sessions have not ended since.
func (u *Users) KeyBound(ctx context.Context, key string) (bool, error) {
	_, err := u.keys.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, unavailable("read token key", err)
	}
	return true, nil
}

// DeleteUser removes the account id, the keys entries of its tokens, and
// frees its username and display name. The account goes before the names,
// so that a failure half way leaves names that become stale, never an
// account without them.
func (u *Users) DeleteUser(ctx context.Context, id string) error {
	a, _, err := u.get(ctx, id)
	if err != nil {
		return err
	}
	if err := u.unbind(ctx, a.Keys); err != nil {
		return err
	}
	if err := u.users.Purge(ctx, idKey(id)); err != nil {
		return unavailable("delete account", err)
	}
	u.release(ctx, natter.DisplayKey(a.DisplayName), id)
	u.release(ctx, nameKey(a.Username), id)
	return nil
}

// BindKey records that the token key was vended to the account of b: the
// gateway marks its joins and messages verified. The entry lives as long as
// the keys bucket's TTL, the token lifetime.
func (u *Users) BindKey(ctx context.Context, key string, b natter.KeyBinding) error {
	data, _ := json.Marshal(b)
	if _, err := u.keys.Put(ctx, key, data); err != nil {
		return unavailable("store token key", err)
	}
	_, err := u.UpdateUser(ctx, b.UserID, func(a *natter.Account) error {
		a.Keys = appendKey(a.Keys, key)
		return nil
	})
	return err
}

func appendKey(keys []string, key string) []string {
	for i, k := range keys {
		if k == key {
			keys = append(keys[:i], keys[i+1:]...)
			break
		}
	}
	keys = append(keys, key)
	if len(keys) > maxAccountKeys {
		keys = keys[len(keys)-maxAccountKeys:]
	}
	return keys
}

// AccountOfKey returns the account a token key was vended to, if it was
// vended to one that still exists.
func (u *Users) AccountOfKey(ctx context.Context, key string) (natter.Account, bool, error) {
	e, err := u.keys.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return natter.Account{}, false, nil
	case err != nil:
		return natter.Account{}, false, unavailable("read token key", err)
	}
	var b natter.KeyBinding
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		return natter.Account{}, false, &natter.Error{Code: natter.EInternal, Message: "unreadable token key", Err: err}
	}
	// The account, not the binding, is the truth: it may have been renamed
	// or deleted since the token was vended.
	a, err := u.UserByID(ctx, b.UserID)
	if natter.ErrorCode(err) == natter.ENotFound {
		return natter.Account{}, false, nil
	} else if err != nil {
		return natter.Account{}, false, err
	}
	return a, true, nil
}

// DisplayNameOwner returns the id of the account whose display name folds
// to the same as name, if any.
func (u *Users) DisplayNameOwner(ctx context.Context, name string) (string, bool, error) {
	e, err := u.users.Get(ctx, natter.DisplayKey(name))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return "", false, nil
	case err != nil:
		return "", false, unavailable("read display name", err)
	}
	return string(e.Value()), true, nil
}
