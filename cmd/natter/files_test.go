package main

import (
	"os"
	"path/filepath"
	"testing"
)

// assertSecretFiles fails unless each named file in dir exists with mode 0600.
func assertSecretFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", n, fi.Mode().Perm())
		}
	}
}
