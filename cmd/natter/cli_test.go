package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// cliTimeout bounds every nats CLI invocation and every wait on one.
const cliTimeout = 20 * time.Second

// TestNatsCLIRecipes runs the README's nats CLI recipes with the stock nats
// CLI against a running natter: admin creds from `natter creds admin`, then
// sub, kv ls and kv watch, and a refusal without creds.
func TestNatsCLIRecipes(t *testing.T) {
	bin := natsCLIPath(t)
	cfg := testConfig(t)
	m := runMain(t, cfg)
	url := m.Gateway.ClientURL()

	// natter creds admin -data-dir DIR -o admin.creds
	creds := filepath.Join(t.TempDir(), "admin.creds")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"creds", "admin", "-data-dir", cfg.DataDir, "-o", creds}, &stdout, &stderr); err != nil {
		t.Fatalf("natter creds admin: %v (stderr: %s)", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("natter creds admin -o wrote to stdout: %q", stdout.String())
	}
	fi, err := os.Stat(creds)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin creds have mode %#o, want 0600", perm)
	}

	admin := newNatsCLI(t, bin, "--creds", creds, "-s", url)
	room := gatewaytest.NewUser(t).MustNewRooms(t, m.baseURL(), "CLI recipes")[0]

	t.Run("sub", func(t *testing.T) {
		// nats sub 'chat.<room>.>' --count 1
		sub := admin.start(t, "sub", natter.RoomWildcard(room), "--count", "1")
		sub.waitOutput(t, "Subscribing on "+natter.RoomWildcard(room))

		u := gatewaytest.NewUser(t)
		c := u.Connect(t, u.MustToken(t, m.baseURL(), room))
		subject := natter.UserSubject(room, natter.OpTyping, u.ID)
		// The CLI prints "Subscribing" just before it subscribes, and a typing
		// hint is fire-and-forget, so keep sending until the CLI has one.
		gatewaytest.WaitFor(t, cliTimeout, func() error {
			if sub.exited() {
				return nil
			}
			if err := c.Publish(subject, []byte("hello")); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
			return errors.New("nats sub has not received the typing hint")
		})
		if err := sub.wait(t); err != nil {
			t.Fatalf("nats sub: %v\n%s", err, sub.output())
		}
		out := sub.output()
		for _, want := range []string{subject, "hello"} {
			if !strings.Contains(out, want) {
				t.Errorf("nats sub output lacks %q:\n%s", want, out)
			}
		}
		if errs := c.Errors(); len(errs) > 0 {
			t.Errorf("chat user saw errors: %v", errs)
		}
	})

	t.Run("kv ls", func(t *testing.T) {
		// nats kv ls
		out, err := admin.run(t, "kv", "ls")
		if err != nil {
			t.Fatalf("nats kv ls: %v\n%s", err, out)
		}
		for _, b := range []string{natter.BucketRooms, natter.BucketHistory, natter.BucketPresence} {
			// The bucket name is the first cell of a table row.
			if !regexp.MustCompile(`(?m)^\S\s+` + regexp.QuoteMeta(b) + `\s`).MatchString(out) {
				t.Errorf("nats kv ls does not list bucket %q:\n%s", b, out)
			}
		}
	})

	t.Run("micro", func(t *testing.T) {
		// nats micro ls; nats micro stats natter
		out, err := admin.run(t, "micro", "ls")
		if err != nil {
			t.Fatalf("nats micro ls: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`(?m)^\S\s+` + gateway.ServiceName + `\s`).MatchString(out) {
			t.Errorf("nats micro ls does not list the %s service:\n%s", gateway.ServiceName, out)
		}
		out, err = admin.run(t, "micro", "stats", gateway.ServiceName)
		if err != nil {
			t.Fatalf("nats micro stats: %v\n%s", err, out)
		}
		for _, ep := range []natter.Op{natter.OpSend, natter.OpHistory, natter.OpJoin} {
			if !strings.Contains(out, string(ep)) {
				t.Errorf("nats micro stats lacks endpoint %s:\n%s", ep, out)
			}
		}
	})

	t.Run("kv watch", func(t *testing.T) {
		nc, err := nats.Connect(url, nats.UserCredentials(creds), nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatalf("connect with admin creds: %v", err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
		defer cancel()
		kv, err := js.KeyValue(ctx, natter.BucketHistory)
		if err != nil {
			t.Fatalf("history bucket: %v", err)
		}
		put := func(key, value string) {
			t.Helper()
			if _, err := kv.Put(ctx, key, []byte(value)); err != nil {
				t.Fatalf("put %s: %v", key, err)
			}
		}

		// nats kv watch history '<room>.>'
		w := admin.start(t, "kv", "watch", natter.BucketHistory, room+".>")
		put(room+".1", "first")
		w.waitOutput(t, natter.BucketHistory+" > "+room+".1: first")
		// Now the watch is surely live: a later put in another room must not
		// show, one in this room must.
		put("other-room.1", "elsewhere")
		put(room+".2", "second")
		w.waitOutput(t, natter.BucketHistory+" > "+room+".2: second")
		if out := w.output(); strings.Contains(out, "other-room") {
			t.Errorf("nats kv watch with a key filter printed another room's key:\n%s", out)
		}
		w.stop()
	})

	t.Run("no creds", func(t *testing.T) {
		anon := newNatsCLI(t, bin, "-s", url)
		out, err := anon.run(t, "kv", "ls")
		if err == nil {
			t.Fatalf("nats kv ls without creds succeeded:\n%s", out)
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("nats kv ls without creds: %v", err)
		}
		if !strings.Contains(strings.ToLower(out), "authorization violation") {
			t.Errorf("nats kv ls without creds failed without naming the authorization violation:\n%s", out)
		}
	})
}

// natsCLIPath finds the nats CLI on PATH. Without it the test is skipped,
// except in CI, which builds it (see .ci/run).
func natsCLIPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nats")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("nats CLI not found on PATH (%v); CI must build it, see .ci/run", err)
	}
	t.Skipf("nats CLI not found on PATH (%v): build it with `task nats-cli` and add .ci/bin to PATH to run this test", err)
	return ""
}

// natsCLI runs the nats CLI with fixed global flags, never reading the
// invoking user's saved contexts or NATS_* variables.
type natsCLI struct {
	bin   string
	flags []string
	env   []string
}

func newNatsCLI(t *testing.T, bin string, flags ...string) *natsCLI {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "NATS_") || name == "HOME" || name == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "NO_COLOR=1")
	return &natsCLI{bin: bin, flags: append([]string{"--no-context"}, flags...), env: env}
}

func (c *natsCLI) command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, append(append([]string(nil), c.flags...), args...)...)
	cmd.Env = c.env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs the CLI to completion and returns its combined output.
func (c *natsCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	out, err := c.command(ctx, args).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("nats %s did not finish within %s:\n%s", strings.Join(args, " "), cliTimeout, out)
	}
	return string(out), err
}

// start runs the CLI in the background; it is killed when the test ends.
func (c *natsCLI) start(t *testing.T, args ...string) *cliProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	p := &cliProc{name: "nats " + strings.Join(args, " "), cancel: cancel, done: make(chan struct{})}
	cmd := c.command(ctx, args)
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// cliProc is a nats CLI running in the background.
type cliProc struct {
	name   string
	out    syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set when done is closed
}

func (p *cliProc) output() string { return p.out.String() }

func (p *cliProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOutput waits until the process has printed want.
func (p *cliProc) waitOutput(t *testing.T, want string) {
	t.Helper()
	gatewaytest.WaitFor(t, cliTimeout, func() error {
		if strings.Contains(p.output(), want) {
			return nil
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) without printing %q:\n%s", p.name, p.err, want, p.output())
		}
		return fmt.Errorf("%s has not printed %q; output so far:\n%s", p.name, want, p.output())
	})
}

// wait waits for the process to exit by itself and returns its error.
func (p *cliProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(cliTimeout):
		t.Fatalf("%s still running after %s:\n%s", p.name, cliTimeout, p.output())
		return nil
	}
}

// stop kills the process if it still runs and waits for it.
func (p *cliProc) stop() {
	p.cancel()
	<-p.done
}
