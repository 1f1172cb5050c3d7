package main

import (
	"bufio"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natterchat/natter/gateway/gatewaytest"
)

var httpURLRE = regexp.MustCompile(`http listening.*url=(http://\S+)`)

// TestProcessStartsAndStopsGracefully runs the real binary with no flags
// and no .env (only NATTER_* ports, so it never collides), checks the TVM
// answers, then interrupts it as Ctrl-C does: it must exit cleanly within
// 5 s, and nothing secret may appear in its log.
func TestProcessStartsAndStopsGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t, "natter", ".")
	work := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"NATTER_HTTP_ADDR=127.0.0.1:0", "NATTER_WS_ADDR=127.0.0.1:0", "NATTER_NATS_ADDR=127.0.0.1:0")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("natter log:\n%s", logs.String())
		}
	})

	var base string
	gatewaytest.WaitFor(t, 30*time.Second, func() error {
		if m := httpURLRE.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
			return nil
		}
		return errors.New("no http listening line yet")
	})
	for _, want := range []string{"nats listening", "nats websocket listening", "Server is ready"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	u := gatewaytest.NewUser(t)
	roomA := u.MustNewRooms(t, base, "Lobby")[0]
	tok := u.MustToken(t, base, roomA)
	u.Connect(t, tok) // a live client that shutdown must drain around

	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz %d", resp.StatusCode)
	}

	keys := filepath.Join(work, "data", "keys")
	assertSecretFiles(t, keys, "operator.nk", "system.nk", "chat.nk", "tvm.nk")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v", err)
		}
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatalf("still running %s after SIGINT", time.Since(start))
	}
	took := time.Since(start)
	t.Logf("stopped %s after SIGINT", took)
	if took > shutdownTimeout {
		t.Errorf("shutdown took %s, more than %s", took, shutdownTimeout)
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Error("no shutdown line in the log")
	}
	assertNoSeedsIn(t, logs.String(), keys)
}

// assertNoSeedsIn fails if any seed stored in keysDir appears in text.
func assertNoSeedsIn(t *testing.T, text, keysDir string) {
	t.Helper()
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(keysDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if seed = strings.TrimSpace(seed); seed == "" || strings.Contains(text, seed) {
			t.Errorf("seed of %s is empty or appears in the log", e.Name())
		}
	}
	if regexp.MustCompile(`\bS[OAU][A-Z2-7]{56}\b`).MatchString(text) {
		t.Error("something shaped like an nkey seed appears in the log")
	}
}
