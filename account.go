package natter

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"
	"unicode"
)

// Account is a registered user, stored in the users bucket under
// id.<id>. It never leaves natter as it is: clients see a Profile or a
// PublicProfile.
type Account struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
	// PasswordHash is argon2id in the PHC string format, parameters
	// included.
	PasswordHash string `json:"password_hash"`
	TOTP         TOTP   `json:"totp"`
	// SessionVersion is in every session; raising it ends them all.
	SessionVersion uint64 `json:"session_version"`
	// Keys are the nkeys of tokens vended to the account, most recent
	// last, so that deleting the account can delete their keys entries.
	Keys []string `json:"keys,omitempty"`
}

// TOTP is an account's two-factor state. Secret is set from enrolment on;
// Enabled once a code confirmed it.
type TOTP struct {
	Secret       string `json:"secret,omitempty"`
	Enabled      bool   `json:"enabled"`
	Passwordless bool   `json:"passwordless"`
	// LastStep is the time step of the last code used: a code is good once.
	LastStep int64 `json:"last_step,omitempty"`
}

// TOTPStatus is the part of TOTP an account's owner sees.
type TOTPStatus struct {
	Enabled      bool `json:"enabled"`
	Passwordless bool `json:"passwordless"`
}

// Profile is an account as its owner sees it.
type Profile struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	CreatedAt   time.Time  `json:"created_at"`
	TOTP        TOTPStatus `json:"totp"`
}

// PublicProfile is an account as anyone sees it.
type PublicProfile struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
}

// Profile is the account as its owner sees it.
func (a Account) Profile() Profile {
	return Profile{
		ID: a.ID, Username: a.Username, DisplayName: a.DisplayName, CreatedAt: a.CreatedAt,
		TOTP: TOTPStatus{Enabled: a.TOTP.Enabled, Passwordless: a.TOTP.Enabled && a.TOTP.Passwordless},
	}
}

// Public is the account as anyone sees it.
func (a Account) Public() PublicProfile {
	return PublicProfile{ID: a.ID, DisplayName: a.DisplayName, CreatedAt: a.CreatedAt}
}

// KeyBinding is the value of a key in the keys bucket: the account a token's
// key was vended to.
type KeyBinding struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name"`
}

// UserIDPrefix starts every account id; nkey user keys start with U, so
// the two never meet.
const UserIDPrefix = "usr_"

const userIDChars = 20

// Lower case: NATS lowercases JWT tags, and the id travels in one.
var userIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewUserID returns a fresh random account id: usr_ and 20 base32
// characters (100 bits).
func NewUserID() string {
	b := make([]byte, userIDChars*5/8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return UserIDPrefix + userIDEncoding.EncodeToString(b)
}

// IsUserID reports whether s has the form of an account id.
func IsUserID(s string) bool {
	rest, ok := strings.CutPrefix(s, UserIDPrefix)
	if !ok || len(rest) != userIDChars {
		return false
	}
	return !strings.ContainsFunc(rest, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') })
}

const userTagKey = "user"

// UserTag is the JWT tag of a token vended to the account id.
func UserTag(id string) string { return userTagKey + ":" + id }

// UserOfTags returns the account id in a token's tags, if it has one.
func UserOfTags(tags []string) (string, bool) {
	for _, t := range tags {
		if id, ok := strings.CutPrefix(t, userTagKey+":"); ok && IsUserID(id) {
			return id, true
		}
	}
	return "", false
}

// Username limits.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
)

// ValidUsername reports whether s is 3–32 of a-z, 0-9 and _. Upper case is
// refused rather than lowered, so that a username is what its owner typed.
func ValidUsername(s string) bool {
	if len(s) < MinUsernameLen || len(s) > MaxUsernameLen {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') })
}

// FoldName is the form of a display name that makes two names the same:
// trimmed, inner runs of white space made one space, and each character
// simply case-folded (to the lower case of its folding orbit's
// representative, so that "K", "k" and the Kelvin sign are one).
func FoldName(name string) string {
	name = strings.Join(strings.Fields(name), " ")
	return strings.Map(func(r rune) rune {
		lowest := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			lowest = min(lowest, f)
		}
		return unicode.ToLower(lowest)
	}, name)
}

// DisplayKey is the users bucket key that reserves a display name:
// display.<sha256 hex of its folded form>, a valid key whatever the name.
func DisplayKey(name string) string {
	sum := sha256.Sum256([]byte(FoldName(name)))
	return "display." + hex.EncodeToString(sum[:])
}
