package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// The files "natter nats init" writes that hold secrets, relative to its
// folder. Each must be readable by its owner only.
var extSecrets = []string{
	"keys/operator.nk", "keys/system.nk", "keys/chat.nk", "keys/tvm.nk",
	"nats-server.conf", "natter.creds", "natter.env",
}

// TestExternalNATSInit runs "natter nats init" twice on one folder: the
// second run keeps every seed, so tokens signed before stay valid, and every
// secret it writes is mode 0600 in a 0700 keys folder.
func TestExternalNATSInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	args := []string{"nats", "init", "-dir", dir, "-listen", "127.0.0.1:14222", "-ws", "127.0.0.1:18081"}
	extInit(t, args...)
	seeds := extSeeds(t, dir)
	extCheckModes(t, dir)

	extInit(t, args...)
	if again := extSeeds(t, dir); !maps.Equal(seeds, again) {
		t.Errorf("a second init changed the key seeds")
	}
	extCheckModes(t, dir)

	vars, err := readDotEnv(filepath.Join(dir, "natter.env"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"NATTER_NATS_URL":    "nats://127.0.0.1:14222",
		"NATTER_NATS_CREDS":  filepath.Join(dir, "natter.creds"),
		"NATTER_SIGNING_KEY": filepath.Join(dir, "keys", "tvm.nk"),
		"NATTER_WS_URLS":     "ws://127.0.0.1:18081",
	}
	if !maps.Equal(vars, want) {
		t.Errorf("natter.env = %v, want %v", vars, want)
	}
}

// TestExternalNATSInitRefusesRandomPorts: the server config and natter.env
// must agree on the ports, which a port of 0 would leave to chance.
func TestExternalNATSInitRefusesRandomPorts(t *testing.T) {
	for _, flags := range [][]string{
		{"-listen", "127.0.0.1:0", "-ws", "127.0.0.1:18081"},
		{"-listen", "127.0.0.1:14222", "-ws", "127.0.0.1:0"},
		{"-listen", "127.0.0.1", "-ws", "127.0.0.1:18081"},
	} {
		dir := filepath.Join(t.TempDir(), "nats")
		args := append([]string{"nats", "init", "-dir", dir}, flags...)
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("natter %s succeeded, want an error", strings.Join(args, " "))
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("natter %s left %s behind (stat: %v)", strings.Join(args, " "), dir, err)
		}
	}
}

// TestExternalNATSInitQuotesPaths: a folder whose path the shell would split
// is quoted in natter.env, so both natter's .env reader and a shell that
// sources the file read the path back whole.
func TestExternalNATSInitQuotesPaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my nats")
	extInit(t, "nats", "init", "-dir", dir, "-listen", "127.0.0.1:14222", "-ws", "127.0.0.1:18081")
	envFile := filepath.Join(dir, "natter.env")
	want := filepath.Join(dir, "natter.creds")
	vars, err := readDotEnv(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := vars["NATTER_NATS_CREDS"]; got != want {
		t.Errorf(".env reader: NATTER_NATS_CREDS = %q, want %q", got, want)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to source natter.env with")
	}
	out, err := exec.Command(sh, "-c", `set -a; . "$1"; set +a; printf %s "$NATTER_NATS_CREDS"`, "sh", envFile).CombinedOutput()
	if err != nil {
		t.Fatalf("sh sourcing %s: %v\n%s", envFile, err, out)
	}
	if got := string(out); got != want {
		t.Errorf("sh: NATTER_NATS_CREDS = %q, want %q", got, want)
	}
}

// TestExternalNATS runs natter against a stock nats-server configured by
// "natter nats init", the way an operator would: the server from its config
// file, natter from the env file init wrote.
func TestExternalNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a nats-server binary")
	}
	bin := buildBinary(t, "nats-server", "github.com/nats-io/nats-server/v2")

	dir := filepath.Join(t.TempDir(), "nats")
	natsPort, wsPort := extFreePort(t), extFreePort(t)
	natsAddr := "127.0.0.1:" + strconv.Itoa(natsPort)
	wsURL := "ws://127.0.0.1:" + strconv.Itoa(wsPort)
	initArgs := []string{"nats", "init", "-dir", dir, "-listen", natsAddr, "-ws", "127.0.0.1:" + strconv.Itoa(wsPort)}
	extInit(t, initArgs...)
	extCheckModes(t, dir)
	seeds := extSeeds(t, dir)

	conf := filepath.Join(dir, "nats-server.conf")
	srv := startExtServer(t, bin, conf, natsAddr)

	// natter's NATS settings come from natter.env alone, read the way natter
	// reads a .env file; the environment of the test must not leak in.
	envFile := filepath.Join(dir, "natter.env")
	fileCfg, err := LoadConfig(flag.NewFlagSet("natter", flag.ContinueOnError), nil,
		func(string) string { return "" }, envFile)
	if err != nil {
		t.Fatalf("load %s: %v", envFile, err)
	}
	vars, err := readDotEnv(envFile)
	if err != nil {
		t.Fatal(err)
	}
	for k := range vars {
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.env == k }) {
			t.Errorf("natter.env sets %s, which natter does not know", k)
		}
	}
	if fileCfg.NATSURL != "nats://"+natsAddr {
		t.Errorf("NATTER_NATS_URL = %q, want nats://%s", fileCfg.NATSURL, natsAddr)
	}
	if !slices.Equal(fileCfg.WSURLs, []string{wsURL}) {
		t.Errorf("NATTER_WS_URLS = %q, want %q", fileCfg.WSURLs, wsURL)
	}
	cfg := testConfig(t)
	cfg.NATSURL = fileCfg.NATSURL
	cfg.NATSCreds = fileCfg.NATSCreds
	cfg.SigningKey = fileCfg.SigningKey
	cfg.WSURLs = fileCfg.WSURLs
	m := runMain(t, cfg)
	if m.Gateway.ClientURL() != "" {
		t.Fatalf("natter started an embedded server (%s) instead of using the external one", m.Gateway.ClientURL())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("readyz", func(t *testing.T) {
		if code := getStatus(t, m.baseURL()+"/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz = %d, want 200", code)
		}
	})

	t.Run("buckets", func(t *testing.T) {
		js, err := jetstream.New(m.Gateway.Conn())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{natter.BucketRooms, natter.BucketHistory, natter.BucketPresence} {
			if _, err := js.KeyValue(ctx, b); err != nil {
				t.Errorf("bucket %s on the external server: %v", b, err)
			}
		}
	})

	t.Run("bad key", func(t *testing.T) {
		body := []byte(`{"public_key":"not-a-key","rooms":["lobby"]}`)
		err := gatewaytest.PostJSON(m.baseURL()+"/api/v1/token", body, new(gatewaytest.Token))
		apiErr, ok := errors.AsType[*gatewaytest.APIError](err)
		if !ok || apiErr.Status != http.StatusBadRequest || apiErr.Code != natter.EInvalidKey {
			t.Fatalf("token with a bad key: %v, want 400 %s", err, natter.EInvalidKey)
		}
	})

	// otherRoom need not exist: permissions are about subjects.
	const otherRoom = "elsewhere"
	alice, bob := gatewaytest.NewUser(t), gatewaytest.NewUser(t)
	room := alice.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	aliceTok := alice.MustToken(t, m.baseURL(), room)
	bobTok := bob.MustToken(t, m.baseURL(), room)
	if !slices.Equal(aliceTok.Servers, []string{wsURL}) {
		t.Fatalf("token servers = %q, want the external server's %q", aliceTok.Servers, wsURL)
	}

	t.Run("websocket user", func(t *testing.T) {
		a := alice.Connect(t, aliceTok)
		b := bob.Connect(t, bobTok)
		if got := a.ConnectedUrl(); got != wsURL {
			t.Fatalf("alice connected to %s, want %s", got, wsURL)
		}

		// Room messages that natter publishes reach a member.
		msgs, err := a.SubscribeSync(natter.RoomSubject(room, natter.TopicMsgs))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := m.Gateway.Conn().Publish(natter.RoomSubject(room, natter.TopicMsgs), []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if msg, err := msgs.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("alice did not receive the room message: %v", err)
		} else if string(msg.Data) != "hello" {
			t.Fatalf("alice received %q, want hello", msg.Data)
		}

		// A member's typing hint reaches another member.
		typing, err := b.SubscribeSync(natter.TypingSubjects(room))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(natter.UserSubject(room, natter.OpTyping, alice.ID), []byte("1")); err != nil {
			t.Fatal(err)
		}
		if msg, err := typing.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("bob did not receive alice's typing hint: %v", err)
		} else if want := natter.UserSubject(room, natter.OpTyping, alice.ID); msg.Subject != want {
			t.Fatalf("bob received %s, want %s", msg.Subject, want)
		}

		// Another room is out of reach.
		if _, err := a.SubscribeSync(natter.RoomSubject(otherRoom, natter.TopicMsgs)); err != nil {
			t.Fatal(err)
		}
		a.WaitError(t, gatewaytest.ErrPermission.Error())
		a.WaitError(t, natter.RoomSubject(otherRoom, natter.TopicMsgs))

		// So is speaking for another user: the server fills the token's own
		// key into the template, whatever the client claims.
		if err := a.Publish(natter.UserSubject(room, natter.OpTyping, bob.ID), []byte("1")); err != nil {
			t.Fatal(err)
		}
		a.WaitError(t, natter.UserSubject(room, natter.OpTyping, bob.ID))
		if msg, err := typing.NextMsg(200 * time.Millisecond); err == nil {
			t.Fatalf("bob received %s, published by alice as him", msg.Subject)
		}
		if err := a.Flush(); err != nil {
			t.Fatalf("alice's connection did not survive the refused subscription: %v", err)
		}
	})

	t.Run("no credentials on tcp", func(t *testing.T) {
		nc, err := nats.Connect("nats://"+natsAddr, nats.Timeout(5*time.Second))
		if err == nil {
			nc.Close()
			t.Fatal("a client without credentials connected")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("connect without credentials: %v, want %v", err, nats.ErrAuthorization)
		}
	})

	// The scoped signing key allows vended tokens on WebSocket only. The
	// token alice connected with over WebSocket above is refused here.
	t.Run("vended token on tcp", func(t *testing.T) {
		nc, err := nats.Connect("nats://"+natsAddr, nats.Timeout(5*time.Second), nats.UserJWT(
			func() (string, error) { return aliceTok.JWT, nil },
			func(nonce []byte) ([]byte, error) { return alice.Key.Sign(nonce) },
		))
		if err == nil {
			nc.Close()
			t.Fatal("a vended token connected on the plain TCP port")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("vended token on tcp: %v, want %v", err, nats.ErrAuthorization)
		}
	})

	// Running init again and restarting the server with the configuration
	// it rewrote keeps the keys: the token vended before still connects, and
	// natter, whose creds file was rewritten, finds its way back.
	extInit(t, initArgs...)
	extCheckModes(t, dir)
	if again := extSeeds(t, dir); !maps.Equal(seeds, again) {
		t.Fatal("a second init changed the key seeds")
	}
	srv.restart(t)
	if err := alice.Connect(t, aliceTok).Flush(); err != nil {
		t.Fatalf("the token vended before the second init: %v", err)
	}
	gatewaytest.WaitFor(t, 15*time.Second, func() error {
		if code := getStatus(t, m.baseURL()+"/readyz"); code != http.StatusOK {
			return errors.New("/readyz = " + strconv.Itoa(code) + " after the server restarted")
		}
		return nil
	})
	carol := gatewaytest.NewUser(t)
	if err := carol.Connect(t, carol.MustToken(t, m.baseURL(), room)).Flush(); err != nil {
		t.Fatalf("a token vended after the restart: %v", err)
	}
}

// extInit runs "natter nats init" with args (starting with "nats", "init").
func extInit(t *testing.T, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("natter %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
}

// extSeeds returns the seed files of an init folder by name.
func extSeeds(t *testing.T, dir string) map[string]string {
	t.Helper()
	seeds := map[string]string{}
	for _, name := range []string{"operator.nk", "system.nk", "chat.nk", "tvm.nk"} {
		b, err := os.ReadFile(filepath.Join(dir, "keys", name))
		if err != nil {
			t.Fatal(err)
		}
		seeds[name] = string(b)
	}
	return seeds
}

// extCheckModes checks that every secret in an init folder is 0600, the
// keys folder 0700, and that no temporary file was left behind.
func extCheckModes(t *testing.T, dir string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return // no Unix modes
	}
	for _, name := range extSecrets {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", name, perm)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "keys")); err != nil {
		t.Error(err)
	} else if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("keys has mode %#o, want 0700", perm)
	}
	for _, sub := range []string{dir, filepath.Join(dir, "keys")} {
		tmp, _ := filepath.Glob(filepath.Join(sub, ".tmp-*"))
		if len(tmp) > 0 {
			t.Errorf("temporary files left behind: %v", tmp)
		}
	}
}

// extFreePort returns a loopback TCP port that was free a moment ago.
func extFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// extServer runs nats-server -c conf as a child process, listening for
// clients on addr.
type extServer struct {
	bin, conf, addr string
	out             syncBuffer // output of every run, for the test log

	cmd    *exec.Cmd
	exited chan struct{}
}

// startExtServer starts nats-server and waits until it accepts connections.
// It is stopped when the test ends, and its output is logged if the test
// failed.
func startExtServer(t *testing.T, bin, conf, addr string) *extServer {
	t.Helper()
	s := newExtServer(t, bin, conf, addr)
	s.start(t)
	return s
}

// newExtServer is startExtServer that leaves the starting to the caller:
// the nodes of a cluster start together, as none is ready alone.
func newExtServer(t *testing.T, bin, conf, addr string) *extServer {
	t.Helper()
	s := &extServer{bin: bin, conf: conf, addr: addr}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("nats-server -c %s output:\n%s", conf, s.out.String())
		}
	})
	return s
}

func (s *extServer) start(t *testing.T) {
	t.Helper()
	s.launch(t)
	s.waitListening(t)
}

// launch starts the process without waiting for it.
func (s *extServer) launch(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "-c", s.conf)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	cmd, exited := s.cmd, make(chan struct{})
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()
}

// waitListening waits until the launched server accepts connections.
func (s *extServer) waitListening(t *testing.T) {
	t.Helper()
	cmd, exited := s.cmd, s.exited
	const timeout = 15 * time.Second
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("nats-server exited before accepting connections (%v):\n%s", cmd.ProcessState, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server does not accept connections on %s after %s: %v", s.addr, timeout, err)
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// restart stops the server and starts it again with the same config file,
// which it then reads anew.
func (s *extServer) restart(t *testing.T) {
	t.Helper()
	s.stop(t)
	s.start(t)
}

// stop asks the server to shut down and kills it if it has not within a few
// seconds. Stopping a stopped server does nothing.
func (s *extServer) stop(t *testing.T) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		cmd.Process.Kill()
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("nats-server did not stop within 10s; killing it")
		cmd.Process.Kill()
		<-exited
	}
}
