package gateway_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

func TestKeysPersistWithOwnerOnlyMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first, err := gateway.LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := gateway.LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]interface{ PublicKey() (string, error) }{
		"operator": {first.Operator, second.Operator},
		"system":   {first.System, second.System},
		"chat":     {first.Chat, second.Chat},
		"tvm":      {first.TVM, second.TVM},
	} {
		a, _ := pair[0].PublicKey()
		b, _ := pair[1].PublicKey()
		if a != b {
			t.Errorf("%s key changed on reload", name)
		}
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("keys dir mode %#o", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Fatalf("want 4 key files, got %d", len(entries))
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %#o", e.Name(), fi.Mode().Perm())
		}
	}

	t.Run("refuses a key others can read", func(t *testing.T) {
		os.Chmod(filepath.Join(dir, "tvm.nk"), 0o644)
		_, err := gateway.LoadOrCreateKeys(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("refuses a corrupt key", func(t *testing.T) {
		os.WriteFile(filepath.Join(dir, "tvm.nk"), []byte("SAnotaseed\n"), 0o600)
		if _, err := gateway.LoadOrCreateKeys(dir); err == nil {
			t.Fatal("corrupt seed accepted")
		}
	})
}

func TestChatAccountCarriesTheUserTemplate(t *testing.T) {
	keys, err := gateway.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	claims, err := keys.Claims(gateway.DefaultUserLimits)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(claims.Chat)
	if err != nil {
		t.Fatal(err)
	}
	opPub, _ := keys.Operator.PublicKey()
	tvmPub, _ := keys.TVM.PublicKey()
	if ac.Issuer != opPub {
		t.Fatalf("chat account issued by %s", ac.Issuer)
	}
	if !ac.Limits.JetStreamLimits.IsUnlimited() && ac.Limits.JetStreamLimits.DiskStorage == 0 {
		t.Fatal("JetStream not enabled for the chat account")
	}
	scope, ok := ac.SigningKeys.GetScope(tvmPub)
	if !ok || scope == nil {
		t.Fatal("TVM key is not a scoped signing key of the chat account")
	}
	us := scope.(*jwt.UserScope)
	want := natter.PermissionTemplate()
	tmpl := us.Template
	if !slices.Equal(tmpl.Pub.Allow, want.Pub) || !slices.Equal(tmpl.Sub.Allow, want.Sub) {
		t.Errorf("template pub %v sub %v, want %+v", tmpl.Pub.Allow, tmpl.Sub.Allow, want)
	}
	if len(tmpl.Pub.Deny)+len(tmpl.Sub.Deny) > 0 || tmpl.Resp != nil || tmpl.BearerToken {
		t.Errorf("template has extra grants: %+v", tmpl)
	}
	if !slices.Equal(tmpl.AllowedConnectionTypes, jwt.StringList{jwt.ConnectionTypeWebsocket}) {
		t.Errorf("connection types %v", tmpl.AllowedConnectionTypes)
	}
	if tmpl.Payload != gateway.DefaultUserLimits.MaxPayload || tmpl.Subs != gateway.DefaultUserLimits.MaxSubs {
		t.Errorf("limits payload %d subs %d", tmpl.Payload, tmpl.Subs)
	}
}

func TestOpenProvisionsBucketsWithKeyTTLs(t *testing.T) {
	gw := gatewaytest.RunGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(gw.Conn())
	for _, b := range []string{natter.BucketRooms, natter.BucketHistory, natter.BucketPresence} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
		// A per-key TTL is accepted only when the bucket allows it.
		if _, err := kv.Create(ctx, "probe", []byte("x"), jetstream.KeyTTL(time.Second)); err != nil {
			t.Errorf("bucket %s refuses per-key TTLs: %v", b, err)
		}
		gatewaytest.WaitFor(t, 10*time.Second, func() error {
			if _, err := kv.Get(ctx, "probe"); err == nil {
				return errFn("probe key still there")
			}
			return nil
		})
	}
}

func TestOpenFailsOnTakenPort(t *testing.T) {
	gw := gatewaytest.RunGateway(t)
	cfg := gatewaytest.Config(t.TempDir())
	cfg.ClientAddr = strings.TrimPrefix(gw.ClientURL(), "nats://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := gateway.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "port taken") {
		t.Fatalf("second gateway on a taken port: %v", err)
	}
}

type errFn string

func (e errFn) Error() string { return string(e) }
