package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// binDir holds the binaries the tests build, removed when they end.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natter-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var builds struct {
	mu   sync.Mutex
	done map[string]error
}

// buildBinary builds pkg into binDir/name once per test run. -mod=readonly:
// a build must take its modules from go.mod and go.sum as they are.
func buildBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	path := filepath.Join(binDir, name)
	builds.mu.Lock()
	defer builds.mu.Unlock()
	err, ok := builds.done[name]
	if !ok {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goBin); serr != nil {
			goBin = "go"
		}
		out, berr := exec.Command(goBin, "build", "-mod=readonly", "-o", path, pkg).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", pkg, berr, out)
		}
		if builds.done == nil {
			builds.done = map[string]error{}
		}
		builds.done[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// getStatus GETs url and returns the status code.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

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
