package gateway_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natterchat/natter/gateway"
)

// TestInitExternalWritesAConfigTheServerAccepts parses the written
// configuration with nats-server's own parser.
func TestInitExternalWritesAConfigTheServerAccepts(t *testing.T) {
	dir := t.TempDir()
	files, err := gateway.InitExternal(gateway.ExternalConfig{
		Dir:            dir,
		ClientAddr:     "127.0.0.1:14222",
		WSAddr:         "127.0.0.1:18081",
		AllowedOrigins: []string{"https://chat.example", "https://other.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(files.ServerConf)
	if err != nil {
		t.Fatalf("nats-server refuses the config: %v", err)
	}
	keys, err := gateway.LoadOrCreateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	sysPub, _ := keys.System.PublicKey()
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen host", opts.Host, "127.0.0.1"},
		{"listen port", opts.Port, 14222},
		{"websocket port", opts.Websocket.Port, 18081},
		{"websocket without tls", opts.Websocket.NoTLS, true},
		{"origins", slices.Equal(opts.Websocket.AllowedOrigins, []string{"https://chat.example", "https://other.example"}), true},
		{"jetstream", opts.JetStream, true},
		{"store dir", opts.StoreDir, dir},
		{"one trusted operator", len(opts.TrustedOperators), 1},
		{"system account", opts.SystemAccount, sysPub},
		{"no anonymous user", opts.NoAuthUser, ""},
		{"no users", len(opts.Users) + len(opts.Nkeys), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}
