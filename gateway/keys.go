package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// Keys is natter's key material: the operator that the NATS server trusts, the
// system account, the chat account every user lives in, and the chat account's
// scoped signing key that the token vending machine signs user JWTs with.
type Keys struct {
	Operator nkeys.KeyPair
	System   nkeys.KeyPair
	Chat     nkeys.KeyPair
	// TVM is a signing key of the chat account restricted by a scope: a user
	// JWT it signs gets the chat user template and nothing else, so even a
	// leaked TVM key cannot mint an admin.
	TVM nkeys.KeyPair
}

// keyFiles names the seed files in the keys directory, in the order Keys
// lists them.
var keyFiles = []struct {
	name   string
	create func() (nkeys.KeyPair, error)
	field  func(*Keys) *nkeys.KeyPair
}{
	{"operator.nk", nkeys.CreateOperator, func(k *Keys) *nkeys.KeyPair { return &k.Operator }},
	{"system.nk", nkeys.CreateAccount, func(k *Keys) *nkeys.KeyPair { return &k.System }},
	{"chat.nk", nkeys.CreateAccount, func(k *Keys) *nkeys.KeyPair { return &k.Chat }},
	{"tvm.nk", nkeys.CreateAccount, func(k *Keys) *nkeys.KeyPair { return &k.TVM }},
}

// LoadOrCreateKeys reads the seeds in dir, creating whichever are missing.
// The directory is 0700 and every seed file 0600; a seed file that others can
// read is refused rather than silently used.
func LoadOrCreateKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create keys dir: %w", err)
	}
	var k Keys
	for _, f := range keyFiles {
		path := filepath.Join(dir, f.name)
		kp, err := ReadSeedFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			if kp, err = f.create(); err == nil {
				err = WriteSeedFile(path, kp)
			}
		}
		if err != nil {
			return nil, err
		}
		*f.field(&k) = kp
	}
	return &k, nil
}

// ReadSeedFile reads an nkey seed from path, refusing a file that group or
// others may read.
func ReadSeedFile(path string) (nkeys.KeyPair, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %#o: it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse key file %s: %w", path, err)
	}
	return kp, nil
}

// WriteSeedFile writes the seed of kp to path with mode 0600.
func WriteSeedFile(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("seed for %s: %w", path, err)
	}
	return WriteSecret(path, append(seed, '\n'))
}

// WriteSecret writes b to path, readable by its owner only. It writes to a
// temporary file first so a crash never leaves a half-written key behind.
func WriteSecret(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(b)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func publicKey(kp nkeys.KeyPair) string {
	// A KeyPair made from a seed always has a public key; an error here would
	// mean memory corruption.
	pub, err := kp.PublicKey()
	if err != nil {
		panic(err)
	}
	return pub
}
