package tvm

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/natterchat/natter"
)

// PasswordParams are the argon2id parameters of new password hashes. Every
// hash carries its own, so hashes made with other parameters still verify.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultPasswordParams are natter's argon2id parameters: 64 MiB, two
// passes, one thread.
var DefaultPasswordParams = PasswordParams{Memory: 64 << 10, Time: 2, Threads: 1}

// Password rules.
const (
	MinPasswordLen = 10
	// MaxPasswordLen bounds the work one request can ask of argon2id's
	// input hashing; nobody types more.
	MaxPasswordLen = 256
)

const (
	argonSaltLen = 16
	argonKeyLen  = 32
)

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is the list of passwords refused for being common, lower
// case.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			m[strings.ToLower(line)] = true
		}
	}
	return m
}()

// checkPassword applies the password rules; the error says which failed.
func checkPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return natter.Errorf(natter.EWeakPassword, "password is not valid UTF-8")
	case n < MinPasswordLen:
		return natter.Errorf(natter.EWeakPassword, "password must be at least %d characters, got %d", MinPasswordLen, n)
	case n > MaxPasswordLen:
		return natter.Errorf(natter.EWeakPassword, "password must be at most %d characters, got %d", MaxPasswordLen, n)
	case commonPasswords[strings.ToLower(pw)]:
		return natter.Errorf(natter.EWeakPassword, "password is on the list of common passwords; choose another")
	}
	return nil
}

// hasher hashes and verifies passwords with argon2id, at most a few at a
// time: each hash takes Memory KiB, and an unbounded number at once would
// let a burst of logins exhaust the process's memory.
type hasher struct {
	params PasswordParams
	slots  chan struct{}
	// dummy is a hash of a random password, for unknown usernames. Made
	// once, in the background from the start, so that a TVM that never sees
	// a login never pays for it.
	dummy func() string
}

func newHasher(p PasswordParams, concurrent int) *hasher {
	h := &hasher{params: p, slots: make(chan struct{}, max(1, concurrent))}
	// Checking an unknown username against a hash made with the same
	// parameters takes as long as checking a known one: the time of a
	// failure does not tell whether the username exists.
	h.dummy = sync.OnceValue(func() string { return h.hashUnbounded(rand.Text()) })
	go h.dummy()
	return h
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &natter.Error{Code: natter.EUnavailable, Message: "too busy, try again", Err: ctx.Err()}
	}
}

func (h *hasher) release() { <-h.slots }

// hash returns the PHC string of pw: $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func (h *hasher) hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hashUnbounded(pw), nil
}

func (h *hasher) hashUnbounded(pw string) string {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt) // never fails (crypto/rand)
	p := h.params
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

// verify reports whether pw matches the PHC string phc; an empty phc is
// checked against the dummy hash and never matches. The comparison takes
// the same time wherever the hashes differ.
func (h *hasher) verify(ctx context.Context, pw, phc string) (bool, error) {
	known := phc != ""
	if !known {
		phc = h.dummy()
	}
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, &natter.Error{Code: natter.EInternal, Message: "unreadable password hash", Err: err}
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	return subtle.ConstantTimeCompare(got, want) == 1 && known, nil
}

// parsePHC reads $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func parsePHC(phc string) (PasswordParams, []byte, []byte, error) {
	var p PasswordParams
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2 parameters %q: %w", parts[3], err)
	}
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return p, nil, nil, fmt.Errorf("argon2 parameters %q", parts[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return p, nil, nil, fmt.Errorf("hash: %v", err)
	}
	return p, salt, key, nil
}
