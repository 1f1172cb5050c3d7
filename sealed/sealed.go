// Package sealed encrypts and decrypts the messages of sealed rooms
// (docs/sealed.md): AES-256-GCM under a room key that only the room's
// members hold, with the room, the sender and the message id as associated
// data, so that a ciphertext cannot be moved to another room, sender or
// message. The layout is WebCrypto's, so browsers and Go clients share a
// room: a 96-bit nonce, then the ciphertext with its 128-bit tag at the end,
// all base64url without padding.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// Sizes of the parts of a sealed message.
const (
	KeySize   = 32 // AES-256
	NonceSize = 12 // GCM's standard 96-bit nonce, what WebCrypto users pass
	TagSize   = 16 // GCM's full tag, WebCrypto's default
	// Overhead is what sealing adds to a text: the nonce and the tag.
	Overhead = NonceSize + TagSize
)

// adPrefix starts the associated data; the version lets the format change
// without old ciphertexts opening under new rules.
const adPrefix = "natter/v1/sealed"

// Key is a room key.
type Key [KeySize]byte

// ErrOpen is returned, wrapped, for a ciphertext that does not decrypt: a
// wrong key, a tampered ciphertext, or one made for another room, sender
// or message id. They are not told apart: GCM cannot, and a reader need not.
var ErrOpen = errors.New("sealed: message does not decrypt")

// NewKey makes a random room key.
func NewKey() Key {
	var k Key
	rand.Read(k[:]) // never fails: crypto/rand.Read panics rather than return an error
	return k
}

// FormatKey is the key as it travels in a room link's fragment: base64url
// of its 32 bytes, without padding.
func FormatKey(k Key) string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// ParseKey reads a key written by FormatKey (or by a browser's export of a
// raw AES-256 key, encoded the same way).
func ParseKey(s string) (Key, error) {
	var k Key
	raw, err := decode(s)
	if err != nil {
		return k, fmt.Errorf("sealed: key: %w", err)
	}
	if len(raw) != KeySize {
		return k, fmt.Errorf("sealed: key has %d bytes, want %d", len(raw), KeySize)
	}
	copy(k[:], raw)
	return k, nil
}

// AdditionalData is what binds a ciphertext to its room, sender and
// message id: the UTF-8 bytes of "natter/v1/sealed\n<room>\n<sender>\n<id>".
func AdditionalData(room, sender, id string) []byte {
	return []byte(adPrefix + "\n" + room + "\n" + sender + "\n" + id)
}

// Seal encrypts text for message id of sender in room under a fresh
// random nonce and returns the base64url ct of a sealed send.
func Seal(key Key, room, sender, id, text string) (string, error) {
	var nonce [NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("sealed: nonce: %w", err)
	}
	return SealWithNonce(key, nonce[:], room, sender, id, text)
}

// SealWithNonce is Seal with a given nonce, for test vectors. A nonce must
// never be used twice with one key: GCM then leaks the texts and the key's
// authentication, so anything but tests calls Seal.
func SealWithNonce(key Key, nonce []byte, room, sender, id, text string) (string, error) {
	if len(nonce) != NonceSize {
		return "", fmt.Errorf("sealed: nonce has %d bytes, want %d", len(nonce), NonceSize)
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", err
	}
	out := make([]byte, 0, NonceSize+len(text)+TagSize)
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, []byte(text), AdditionalData(room, sender, id))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts ct, made by Seal for message id of sender in room. The
// text is returned as it was sealed; a receiver still checks it with the
// rules of a text message, since any holder of the key can seal anything.
func Open(key Key, room, sender, id, ct string) (string, error) {
	raw, err := decode(ct)
	if err != nil {
		return "", fmt.Errorf("sealed: ct: %w", err)
	}
	if len(raw) < Overhead {
		return "", fmt.Errorf("sealed: ct has %d bytes, at least %d are needed", len(raw), Overhead)
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", err
	}
	text, err := aead.Open(nil, raw[:NonceSize], raw[NonceSize:], AdditionalData(room, sender, id))
	if err != nil {
		return "", fmt.Errorf("%w in room %s from %s, id %s", ErrOpen, room, sender, id)
	}
	return string(text), nil
}

// Decode reads a ct as the gateway checks it: base64url without padding, in
// its one canonical form. It returns the bytes of nonce, ciphertext and tag.
func Decode(ct string) ([]byte, error) { return decode(ct) }

// decode takes only canonical base64url without padding: Go's decoder
// also skips line breaks, which other decoders may not, and one string
// must mean the same bytes to every reader.
func decode(s string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url without padding")
	}
	if base64.RawURLEncoding.EncodeToString(raw) != s {
		return nil, errors.New("not canonical base64url without padding")
	}
	return raw, nil
}

func newGCM(key Key) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("sealed: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: gcm: %w", err)
	}
	return aead, nil
}
