package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// StoreKeyCheckFile is the file in the JetStream store dir by which natter
// recognises the key the store is encrypted with.
const StoreKeyCheckFile = "store-key.check"

// MinStoreKeyLen is the shortest store key natter accepts: the key is all
// that protects the stored messages, so it must not be guessable.
const MinStoreKeyLen = 16

// ErrWrongStoreKey is the answer to a store key that is not the one the
// stored data was encrypted with.
var ErrWrongStoreKey = errors.New("cannot decrypt the stored data: wrong NATTER_STORE_KEY?")

const storeKeyCheckHeader = "natter store key check v1"

// checkStoreKey makes sure the embedded server will be able to read the
// store in dir with key (empty: no encryption) before it starts, and
// touches nothing when it will not. It returns how many unencrypted streams
// the server is about to encrypt, when a key is set on an existing store.
//
// nats-server itself does not refuse a wrong key: it skips every stream it
// cannot decrypt, and natter would then create its buckets anew over the old
// data. So the first start with a key writes a check file: a random salt
// and HMAC-SHA256(key, salt). It tells a wrong key, and a missing one, from
// the right one without holding anything that decrypts the data.
func checkStoreKey(dir, key string) (plain int, err error) {
	path := filepath.Join(dir, StoreKeyCheckFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && encryptedStreams(dir):
		return 0, fmt.Errorf("the stored data in %s is encrypted but %s is missing, so natter cannot tell whether NATTER_STORE_KEY is the right key: restore that file from a backup", dir, StoreKeyCheckFile)
	case errors.Is(err, fs.ErrNotExist) && key == "":
		return 0, nil
	case errors.Is(err, fs.ErrNotExist):
		if len(key) < MinStoreKeyLen {
			return 0, fmt.Errorf("NATTER_STORE_KEY is %d characters long, at least %d are needed (e.g. openssl rand -hex 32)", len(key), MinStoreKeyLen)
		}
		// Before the server writes anything with the key, so that no data
		// is ever encrypted without a check file beside it.
		if err := writeStoreKeyCheck(dir, path, key); err != nil {
			return 0, err
		}
		return dropPlainStreamState(dir)
	case err != nil:
		return 0, fmt.Errorf("read %s: %w", path, err)
	case key == "":
		return 0, fmt.Errorf("the stored data in %s is encrypted (%s exists): set NATTER_STORE_KEY to the key it was encrypted with", dir, StoreKeyCheckFile)
	}
	header, rest, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	saltHex, sumHex, _ := strings.Cut(rest, " ")
	salt, err1 := hex.DecodeString(saltHex)
	sum, err2 := hex.DecodeString(sumHex)
	if header != storeKeyCheckHeader || err1 != nil || err2 != nil || len(salt) == 0 {
		return 0, fmt.Errorf("%s is not a natter store key check file; it must not be edited", path)
	}
	if !hmac.Equal(sum, storeKeyMAC(key, salt)) {
		return 0, fmt.Errorf("%w (the key does not match %s)", ErrWrongStoreKey, path)
	}
	return 0, nil
}

// dropPlainStreamState prepares unencrypted streams for the server to
// encrypt. The server encrypts their messages and metadata in place, but
// leaves the snapshot of a stream's state (msgs/index.db, which holds its
// subjects: room ids) as it was, in the clear, until the state next
// changes. The snapshot is only a cache: without it the server rebuilds the
// state from the messages, as after a crash, and writes it encrypted.
func dropPlainStreamState(dir string) (int, error) {
	metas, _ := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "*", server.JetStreamMetaFile))
	n := 0
	for _, meta := range metas {
		sdir := filepath.Dir(meta)
		if _, err := os.Stat(filepath.Join(sdir, server.JetStreamMetaFileKey)); err == nil {
			continue
		}
		n++
		if err := os.Remove(filepath.Join(sdir, "msgs", "index.db")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("prepare stream %s for encryption: %w", filepath.Base(sdir), err)
		}
	}
	return n, nil
}

// encryptedStreams reports whether any JetStream stream in dir is
// encrypted: the server keeps an encrypted stream's key in meta.key.
func encryptedStreams(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "*", server.JetStreamMetaFileKey))
	return len(m) > 0
}

func storeKeyMAC(key string, salt []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(storeKeyCheckHeader + "\n"))
	m.Write(salt)
	return m.Sum(nil)
}

func writeStoreKeyCheck(dir, path, key string) error {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create store dir: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%x %x\n", storeKeyCheckHeader, salt, storeKeyMAC(key, salt))
	return WriteSecret(path, b.Bytes())
}
