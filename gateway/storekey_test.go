package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckStoreKey(t *testing.T) {
	const key = "correct horse battery staple"
	dir := t.TempDir()
	if _, err := checkStoreKey(dir, ""); err != nil {
		t.Fatalf("no key, empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StoreKeyCheckFile)); err == nil {
		t.Fatal("check file written without a key")
	}
	if _, err := checkStoreKey(dir, key); err != nil {
		t.Fatalf("first key: %v", err)
	}
	path := filepath.Join(dir, StoreKeyCheckFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), key) {
		t.Fatal("the check file holds the key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("check file mode %#o", fi.Mode().Perm())
	}
	if _, err := checkStoreKey(dir, key); err != nil {
		t.Fatalf("same key again: %v", err)
	}
	if _, err := checkStoreKey(dir, key+"!"); !errors.Is(err, ErrWrongStoreKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := checkStoreKey(dir, ""); err == nil || !strings.Contains(err.Error(), "set NATTER_STORE_KEY") {
		t.Fatalf("no key on an encrypted store: %v", err)
	}
	if err := os.WriteFile(path, []byte("natter store key check v1\nzz zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkStoreKey(dir, key); err == nil || !strings.Contains(err.Error(), "not a natter store key check file") {
		t.Fatalf("damaged check file: %v", err)
	}
}
