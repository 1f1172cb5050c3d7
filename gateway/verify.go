package gateway

import (
	"github.com/nats-io/nkeys"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// verifyOptions are the Go standard library's ed25519 semantics, which
// browsers' verifiers share (cofactorless, s below the group order), made
// stricter on the public key: no small-order or non-canonical keys, which no
// honest key is. So everything the gateway takes, every reader verifies.
//
// curve25519-voi rather than crypto/ed25519: checking the signature is the
// largest single cost of a send, and voi's vectorised verification takes
// about two thirds of the standard library's time on amd64.
var verifyOptions = &voi.Options{Verify: &voi.VerifyOptions{AllowSmallOrderR: true, CofactorlessVerify: true}}

// verifyUser reports whether sig is user's ed25519 signature of msg; user
// is an nkeys user public key.
func verifyUser(user string, msg, sig []byte) (bool, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(user))
	if err != nil {
		return false, err
	}
	return voi.VerifyWithOptions(voi.PublicKey(raw), msg, sig, verifyOptions), nil
}
