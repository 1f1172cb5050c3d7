package gateway

import (
	"crypto/ed25519"
	"math/big"
	"testing"

	"github.com/nats-io/nkeys"
)

// groupOrder is the order L of the ed25519 base point.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994778857142526158553271542210004486848327667", 10)

// FuzzVerifyAgreesWithStdlib checks verifyUser against crypto/ed25519 on
// signatures made by real user keys, flipped bit by bit or with s moved by
// the group order: both must take and refuse the same.
func FuzzVerifyAgreesWithStdlib(f *testing.F) {
	f.Add([]byte("seed"), []byte("natter/v1\nroom\nid\ntext"), uint16(0), uint8(0))
	f.Add([]byte("seed"), []byte("hello"), uint16(3), uint8(1))
	f.Add([]byte("another"), []byte(""), uint16(40), uint8(0x80))
	f.Add([]byte("s+L"), []byte("x"), uint16(0xffff), uint8(0))
	f.Fuzz(func(t *testing.T, seed, msg []byte, pos uint16, flip uint8) {
		var raw [ed25519.SeedSize]byte
		copy(raw[:], seed)
		priv := ed25519.NewKeyFromSeed(raw[:])
		pub := priv.Public().(ed25519.PublicKey)
		user, err := nkeys.Encode(nkeys.PrefixByteUser, pub)
		if err != nil {
			t.Fatal(err)
		}
		sig := ed25519.Sign(priv, msg)
		if pos == 0xffff {
			// s + L: the same point, a non-canonical scalar.
			s := new(big.Int).SetBytes(reverse(sig[32:]))
			s.Add(s, groupOrder)
			b := make([]byte, 32)
			s.FillBytes(b)
			copy(sig[32:], reverse(b))
		} else {
			sig[int(pos)%len(sig)] ^= flip
		}
		want := ed25519.Verify(pub, msg, sig)
		got, err := verifyUser(string(user), msg, sig)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("verifyUser %v, crypto/ed25519 %v (pos %d flip %#x)", got, want, pos, flip)
		}
	})
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

func TestVerifyUserRefusesOtherKeys(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	user, _ := kp.PublicKey()
	msg := []byte("natter/v1\nroom\nid\nhi")
	sig, _ := kp.Sign(msg)
	if ok, err := verifyUser(user, msg, sig); !ok || err != nil {
		t.Fatalf("a good signature: %v %v", ok, err)
	}
	other, _ := nkeys.CreateUser()
	otherKey, _ := other.PublicKey()
	if ok, _ := verifyUser(otherKey, msg, sig); ok {
		t.Fatal("another user's key verified the signature")
	}
	acct, _ := nkeys.CreateAccount()
	acctKey, _ := acct.PublicKey()
	if _, err := verifyUser(acctKey, msg, sig); err == nil {
		t.Fatal("an account key was taken as a user key")
	}
	// The all-zero point encoding is of small order: refused, although
	// crypto/ed25519 would run the check.
	zero, _ := nkeys.Encode(nkeys.PrefixByteUser, make([]byte, 32))
	if ok, _ := verifyUser(string(zero), msg, make([]byte, 64)); ok {
		t.Fatal("a small-order key verified")
	}
}
