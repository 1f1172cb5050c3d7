package tvm_test

import (
	"bytes"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter/tvm"
)

func TestSignerSignsLikeTheKeyPair(t *testing.T) {
	kp, _ := nkeys.CreateAccount()
	s, err := tvm.NewSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(upub)
	tok, err := uc.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jwt.DecodeUserClaims(tok) // verifies the signature
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := kp.PublicKey(); got.Issuer != want {
		t.Fatalf("issuer %s, want %s", got.Issuer, want)
	}
	for _, data := range [][]byte{nil, []byte("natter"), make([]byte, 1000)} {
		sig, _ := s.Sign(data)
		want, _ := kp.Sign(data)
		if !bytes.Equal(sig, want) {
			t.Fatalf("signature of %d bytes differs from the key pair's", len(data))
		}
		if err := kp.Verify(data, sig); err != nil {
			t.Fatalf("the key pair does not verify the signer's signature: %v", err)
		}
	}

	pubOnly, _ := nkeys.FromPublicKey(upub)
	if _, err := tvm.NewSigner(pubOnly); err == nil {
		t.Fatal("a key without a seed was taken as a signer")
	}
}
