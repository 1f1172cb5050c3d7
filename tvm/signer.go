package tvm

import (
	"fmt"

	"github.com/nats-io/nkeys"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Signer is an nkeys.KeyPair that decodes its seed once. nkeys keeps only
// the encoded seed and decodes it, and derives the ed25519 key, on every
// Sign and PublicKey: more than the signing itself when a JWT is signed.
//
// It signs with curve25519-voi, in about 55% of crypto/ed25519's time here;
// ed25519 signatures are deterministic, so the bytes are the same.
type Signer struct {
	nkeys.KeyPair
	pub  string
	priv voi.PrivateKey
}

// NewSigner wraps kp, which must hold a seed.
func NewSigner(kp nkeys.KeyPair) (*Signer, error) {
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &Signer{KeyPair: kp, pub: pub, priv: voi.NewKeyFromSeed(raw)}, nil
}

// PublicKey returns the encoded public key.
func (s *Signer) PublicKey() (string, error) { return s.pub, nil }

// Sign signs input with the decoded key.
func (s *Signer) Sign(input []byte) ([]byte, error) { return voi.Sign(s.priv, input), nil }
