package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
)

// storeKeyA and storeKeyB are two good store keys; the tests use one for
// the data and the other as the wrong one.
const (
	storeKeyA = "3b1f0c6e9a7d4e2f8c5b1a0d9e8f7c6b"
	storeKeyB = "a0d9e8f7c6b3b1f0c6e9a7d4e2f8c5b1"
)

// storedSecrets are distinctive strings natter stores: a room's name and
// id, a member's name and public key, and a message text.
type storedSecrets struct {
	room     natter.Room
	member   string
	user     string
	text     string
	messages int
}

func (s storedSecrets) strings() []string {
	return []string{s.room.Name, s.room.ID, s.member, s.user, s.text}
}

// startNatterIn runs natter in-process with cfg, logging into logs; the
// caller stops it.
func startNatterIn(cfg Config, logs *syncBuffer) (*Main, error) {
	m := &Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// storeSecrets creates a room, joins it and sends a message, each with a
// text found nowhere else, and returns them once stored.
func storeSecrets(t *testing.T, m *Main) storedSecrets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tag := strings.ToLower(nuid.Next()[:10])
	s := storedSecrets{member: "Pangolin " + tag, text: "the walrus sings at midnight " + tag}
	api := &client.API{BaseURL: m.baseURL()}
	me, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	s.user = me.ID
	tok, err := api.Token(ctx, me, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.room, err = api.CreateRoom(ctx, tok, "Quokka meadow "+tag); err != nil {
		t.Fatal(err)
	}
	if tok, err = api.Token(ctx, me, "", s.room.ID); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(me, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Join(ctx, s.room.ID, s.member); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, s.room.ID, s.text); err != nil {
		t.Fatal(err)
	}
	s.messages = 1
	return s
}

// readBack reads the room's history with a new user and fails unless the
// message is there.
func readBack(t *testing.T, m *Main, s storedSecrets) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	api := &client.API{BaseURL: m.baseURL()}
	me, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.Token(ctx, me, "", s.room.ID)
	if err != nil {
		t.Fatalf("token for the stored room: %v", err)
	}
	c, err := client.Dial(me, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.History(ctx, s.room.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Messages {
		if e.Type == natter.TypeMessage && e.Text == s.text && e.From.Name == s.member {
			return
		}
	}
	t.Fatalf("the stored message is not in the history after a restart: %+v", h.Messages)
}

// grepDir returns, for each of needles, the files under dir containing it.
func grepDir(t *testing.T, dir string, needles ...string) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				rel, _ := filepath.Rel(dir, path)
				found[n] = append(found[n], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// hashDir is every file and directory under dir with its mode, and for
// files the SHA-256 of the contents.
func hashDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out[rel] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%s %x %s", fi.Mode(), sha256.Sum256(b), fi.ModTime().UTC().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffHashes(before, after map[string]string) []string {
	var diffs []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			diffs = append(diffs, "removed "+k)
		} else if w != v {
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "added "+k)
		}
	}
	return diffs
}

// TestStoreKeyEncryptsEverythingStored stores a room, a member and a
// message, stops natter and searches every file in the data dir for their
// texts: without NATTER_STORE_KEY they are there (so the search works),
// with it none is. With the key the data reads back after a restart, and
// the key appears in no log line.
func TestStoreKeyEncryptsEverythingStored(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
	}{{"no key", ""}, {"key", storeKeyA}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.StoreKey = tc.key
			var logs syncBuffer
			m, err := startNatterIn(cfg, &logs)
			if err != nil {
				t.Fatal(err)
			}
			s := storeSecrets(t, m)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			found := grepDir(t, cfg.DataDir, s.strings()...)
			if tc.key == "" {
				// The search finds what is stored in the clear.
				for _, n := range []string{s.room.Name, s.member, s.user, s.text} {
					if len(found[n]) == 0 {
						t.Errorf("%q is nowhere in the unencrypted data dir: the search does not work", n)
					}
				}
				if _, err := os.Stat(filepath.Join(cfg.DataDir, gateway.StoreKeyCheckFile)); err == nil {
					t.Errorf("%s written without a key", gateway.StoreKeyCheckFile)
				}
				return
			}
			for n, files := range found {
				t.Errorf("%q stored in the clear in %v", n, files)
			}
			assertSecretFiles(t, cfg.DataDir, gateway.StoreKeyCheckFile)

			m, err = startNatterIn(cfg, &logs)
			if err != nil {
				t.Fatalf("restart with the same key: %v", err)
			}
			readBack(t, m, s)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs.String(), tc.key) {
				t.Error("the store key appears in the log")
			}
			if !strings.Contains(logs.String(), "store encrypted") {
				t.Error("the log does not say the store is encrypted")
			}
		})
	}
}

// TestStoreKeyEncryptsAnExistingStore turns the key on for a data dir
// written without one: the server encrypts what is there.
func TestStoreKeyEncryptsAnExistingStore(t *testing.T) {
	cfg := testConfig(t)
	var logs syncBuffer
	m, err := startNatterIn(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	s := storeSecrets(t, m)
	m.Close()
	if found := grepDir(t, cfg.DataDir, s.text); len(found[s.text]) == 0 {
		t.Fatal("the message is not in the clear before the key is set")
	}

	cfg.StoreKey = storeKeyA
	if m, err = startNatterIn(cfg, &logs); err != nil {
		t.Fatalf("start with a key on a plain store: %v", err)
	}
	readBack(t, m, s)
	m.Close()
	for n, files := range grepDir(t, cfg.DataDir, s.strings()...) {
		t.Errorf("%q still in the clear in %v after encrypting the store", n, files)
	}
}

// TestStoreKeyWrongKeyTouchesNothing encrypts a store with one key, then
// starts natter with another and with none: each start fails with an error
// saying what is wrong, and no file in the data dir changes. The right key
// then still reads the data.
func TestStoreKeyWrongKeyTouchesNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.StoreKey = storeKeyA
	var logs syncBuffer
	m, err := startNatterIn(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	s := storeSecrets(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	before := hashDir(t, cfg.DataDir)

	for _, tc := range []struct {
		name, key, want string
	}{
		{"wrong key", storeKeyB, "cannot decrypt the stored data: wrong NATTER_STORE_KEY?"},
		{"wrong short key", "nope", "cannot decrypt the stored data: wrong NATTER_STORE_KEY?"},
		{"no key", "", "is encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := cfg
			bad.StoreKey = tc.key
			m, err := startNatterIn(bad, &logs)
			if err == nil {
				m.Close()
				t.Fatal("natter started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.key != "" && !errors.Is(err, gateway.ErrWrongStoreKey) {
				t.Errorf("error %v is not ErrWrongStoreKey", err)
			}
			if tc.key != "" && strings.Contains(err.Error()+logs.String(), tc.key) {
				t.Error("the key appears in the error or the log")
			}
			if diffs := diffHashes(before, hashDir(t, cfg.DataDir)); len(diffs) > 0 {
				t.Errorf("the failed start changed the data dir: %v", diffs)
			}
		})
	}

	t.Run("binary", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the binary")
		}
		bin := buildBinary(t, "natter", ".")
		cmd := exec.Command(bin)
		cmd.Dir = t.TempDir()
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "NATTER_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "NATTER_DATA_DIR="+cfg.DataDir, "NATTER_STORE_KEY="+storeKeyB,
			"NATTER_HTTP_ADDR=127.0.0.1:0", "NATTER_WS_ADDR=127.0.0.1:0", "NATTER_NATS_ADDR=127.0.0.1:0")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("natter with a wrong key: %v, want exit status 1; output:\n%s", err, out)
		}
		if !strings.Contains(string(out), "natter: cannot decrypt the stored data: wrong NATTER_STORE_KEY?") {
			t.Errorf("output does not say the key is wrong:\n%s", out)
		}
		if strings.Contains(string(out), storeKeyB) {
			t.Error("the key appears in the output")
		}
		if diffs := diffHashes(before, hashDir(t, cfg.DataDir)); len(diffs) > 0 {
			t.Errorf("the failed start changed the data dir: %v", diffs)
		}
	})

	if m, err = startNatterIn(cfg, &logs); err != nil {
		t.Fatalf("start with the right key after the failed ones: %v", err)
	}
	readBack(t, m, s)
	m.Close()
}

// TestStoreKeyRefusedWithoutCheckFile: a store with encrypted streams but no
// key check file cannot be verified, so natter refuses it rather than risk
// the server skipping the streams and natter creating empty ones over them.
func TestStoreKeyRefusedWithoutCheckFile(t *testing.T) {
	cfg := testConfig(t)
	cfg.StoreKey = storeKeyA
	var logs syncBuffer
	m, err := startNatterIn(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	storeSecrets(t, m)
	m.Close()
	if err := os.Remove(filepath.Join(cfg.DataDir, gateway.StoreKeyCheckFile)); err != nil {
		t.Fatal(err)
	}
	before := hashDir(t, cfg.DataDir)
	for _, key := range []string{storeKeyA, storeKeyB, ""} {
		bad := cfg
		bad.StoreKey = key
		m, err := startNatterIn(bad, &logs)
		if err == nil {
			m.Close()
			t.Fatalf("natter started with key %d chars long and no check file", len(key))
		}
		if !strings.Contains(err.Error(), "is missing") {
			t.Errorf("error %q does not say the check file is missing", err)
		}
	}
	if diffs := diffHashes(before, hashDir(t, cfg.DataDir)); len(diffs) > 0 {
		t.Errorf("the failed starts changed the data dir: %v", diffs)
	}
}

// TestStoreKeyTooShort refuses a new store key that could be guessed.
func TestStoreKeyTooShort(t *testing.T) {
	cfg := testConfig(t)
	cfg.StoreKey = "hunter2"
	var logs syncBuffer
	m, err := startNatterIn(cfg, &logs)
	if err == nil {
		m.Close()
		t.Fatal("natter started with a 7-character store key")
	}
	if !strings.Contains(err.Error(), "at least 16") || strings.Contains(err.Error(), cfg.StoreKey) {
		t.Errorf("error %q", err)
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
		t.Errorf("the refused start wrote %v", entries)
	}
}
