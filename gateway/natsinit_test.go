package gateway_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
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

// TestInitClusterWritesConfigsTheServerAccepts parses every node's
// configuration with nats-server's own parser: each node has its own name,
// listeners and store, and routes to every node of one cluster.
func TestInitClusterWritesConfigsTheServerAccepts(t *testing.T) {
	dir := t.TempDir()
	cfg := gateway.ClusterConfig{
		Dir:            dir,
		ClientAddrs:    []string{"127.0.0.1:14222", "127.0.0.1:14223", "127.0.0.1:14224"},
		ClusterAddrs:   []string{"127.0.0.1:16222", "127.0.0.1:16223", "127.0.0.1:16224"},
		WSAddrs:        []string{"127.0.0.1:18443", "127.0.0.1:18444", "127.0.0.1:18445"},
		AllowedOrigins: []string{"https://chat.example"},
	}
	files, err := gateway.InitCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantRoutes := []string{"nats-route://127.0.0.1:16222", "nats-route://127.0.0.1:16223", "nats-route://127.0.0.1:16224"}
	for i, conf := range files.ServerConfs {
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats-server refuses node %d's config: %v", i, err)
		}
		var routes []string
		for _, u := range opts.Routes {
			routes = append(routes, u.String())
		}
		checks := []struct {
			name      string
			got, want any
		}{
			{"server name", opts.ServerName, "natter-nats-" + strconv.Itoa(i)},
			{"listen port", opts.Port, 14222 + i},
			{"cluster name", opts.Cluster.Name, "natter"},
			{"cluster port", opts.Cluster.Port, 16222 + i},
			{"routes", strings.Join(routes, " "), strings.Join(wantRoutes, " ")},
			{"websocket port", opts.Websocket.Port, 18443 + i},
			{"origins", slices.Equal(opts.Websocket.AllowedOrigins, cfg.AllowedOrigins), true},
			{"jetstream", opts.JetStream, true},
			{"store dir", opts.StoreDir, files.StoreDirs[i]},
			{"store dir in the folder", filepath.Dir(opts.StoreDir), dir},
			{"one trusted operator", len(opts.TrustedOperators), 1},
			{"no users", len(opts.Users) + len(opts.Nkeys), 0},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("node %d: %s: got %v, want %v", i, c.name, c.got, c.want)
			}
		}
	}
	if want := []string{"nats://127.0.0.1:14222", "nats://127.0.0.1:14223", "nats://127.0.0.1:14224"}; !slices.Equal(files.NATSURLs, want) {
		t.Errorf("NATSURLs = %q, want %q", files.NATSURLs, want)
	}
	if want := []string{"ws://127.0.0.1:18443", "ws://127.0.0.1:18444", "ws://127.0.0.1:18445"}; !slices.Equal(files.WSURLs, want) {
		t.Errorf("WSURLs = %q, want %q", files.WSURLs, want)
	}
	env, err := os.ReadFile(files.Env)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"NATTER_NATS_URL=" + strings.Join(files.NATSURLs, ","),
		"NATTER_WS_URLS=" + strings.Join(files.WSURLs, ","),
		"NATTER_NATS_CREDS=" + files.Creds,
		"NATTER_SIGNING_KEY=" + files.SigningKey,
		"NATTER_REPLICAS=3",
	} {
		if !slices.Contains(strings.Split(string(env), "\n"), line) {
			t.Errorf("natter.env lacks %q:\n%s", line, env)
		}
	}
	for _, f := range append([]string{files.Env, files.Creds, files.SigningKey}, files.ServerConfs...) {
		if fi, err := os.Stat(f); err != nil {
			t.Error(err)
		} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", f, fi.Mode().Perm())
		}
	}
}

// TestInitClusterOnThreeHosts: nodes on machines of their own may listen on
// the same ports, on every interface, as long as each is reached at its own
// URL.
func TestInitClusterOnThreeHosts(t *testing.T) {
	files, err := gateway.InitCluster(gateway.ClusterConfig{
		Dir:          t.TempDir(),
		ClientAddrs:  []string{"10.0.0.1:4222", "10.0.0.2:4222", "10.0.0.3:4222"},
		ClusterAddrs: []string{"10.0.0.1:6222", "10.0.0.2:6222", "10.0.0.3:6222"},
		WSAddrs:      []string{"0.0.0.0:8081", "0.0.0.0:8081", "0.0.0.0:8081"},
		WSURLs:       []string{"wss://ws0.chat.example", "wss://ws1.chat.example", "wss://ws2.chat.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://10.0.0.3:4222"}; !slices.Equal(files.NATSURLs, want) {
		t.Errorf("NATSURLs = %q, want %q", files.NATSURLs, want)
	}
	if want := []string{"wss://ws0.chat.example", "wss://ws1.chat.example", "wss://ws2.chat.example"}; !slices.Equal(files.WSURLs, want) {
		t.Errorf("WSURLs = %q, want %q", files.WSURLs, want)
	}
}

// TestInitClusterRefuses: a configuration that could not form a cluster,
// or whose files could not agree on the ports, writes nothing.
func TestInitClusterRefuses(t *testing.T) {
	three := func(format string, first int) []string {
		return []string{fmt.Sprintf(format, first), fmt.Sprintf(format, first+1), fmt.Sprintf(format, first+2)}
	}
	good := func() gateway.ClusterConfig {
		return gateway.ClusterConfig{
			ClientAddrs:  three("127.0.0.1:%d", 14222),
			ClusterAddrs: three("127.0.0.1:%d", 16222),
			WSAddrs:      three("127.0.0.1:%d", 18443),
		}
	}
	tests := []struct {
		name   string
		change func(*gateway.ClusterConfig)
		want   string
	}{
		{"no nodes", func(c *gateway.ClusterConfig) { *c = gateway.ClusterConfig{} }, "at least 3 nodes"},
		{"two nodes", func(c *gateway.ClusterConfig) {
			c.ClientAddrs, c.ClusterAddrs, c.WSAddrs = c.ClientAddrs[:2], c.ClusterAddrs[:2], c.WSAddrs[:2]
		}, "at least 3 nodes"},
		{"fewer route addresses", func(c *gateway.ClusterConfig) { c.ClusterAddrs = c.ClusterAddrs[:2] }, "2 cluster (route) addresses"},
		{"more websocket addresses", func(c *gateway.ClusterConfig) { c.WSAddrs = append(c.WSAddrs, "127.0.0.1:18446") }, "4 websocket addresses"},
		{"fewer websocket urls", func(c *gateway.ClusterConfig) { c.WSURLs = []string{"wss://a.example", "wss://b.example"} }, "2 websocket URLs"},
		{"random client port", func(c *gateway.ClusterConfig) { c.ClientAddrs[1] = "127.0.0.1:0" }, "node 1: nats address"},
		{"random route port", func(c *gateway.ClusterConfig) { c.ClusterAddrs[2] = "127.0.0.1:0" }, "node 2: cluster address"},
		{"random websocket port", func(c *gateway.ClusterConfig) { c.WSAddrs[0] = "127.0.0.1:0" }, "node 0: websocket address"},
		{"no port", func(c *gateway.ClusterConfig) { c.ClientAddrs[0] = "127.0.0.1" }, "node 0: nats address"},
		{"one client port twice", func(c *gateway.ClusterConfig) { c.ClientAddrs[2] = c.ClientAddrs[0] }, "both reached at nats://127.0.0.1:14222"},
		{"a route port taken by another node's client port", func(c *gateway.ClusterConfig) { c.ClusterAddrs[1] = "127.0.0.1:14222" }, "take the same port"},
		{"a websocket port taken by the node's route port", func(c *gateway.ClusterConfig) { c.WSAddrs[2] = "0.0.0.0:16224" }, "take the same port"},
		{"one listener on every interface twice", func(c *gateway.ClusterConfig) {
			c.WSAddrs = []string{"0.0.0.0:18443", "0.0.0.0:18443", "0.0.0.0:18443"}
		}, "both reached at ws://localhost:18443"},
		{"one websocket url twice", func(c *gateway.ClusterConfig) {
			c.WSURLs = []string{"wss://chat.example", "wss://chat.example", "wss://other.example"}
		}, "both reached at wss://chat.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			cfg.Dir = filepath.Join(t.TempDir(), "nats")
			tt.change(&cfg)
			if cfg.Dir == "" {
				cfg.Dir = filepath.Join(t.TempDir(), "nats")
			}
			files, err := gateway.InitCluster(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("InitCluster = %v, %v; want an error with %q", files, err, tt.want)
			}
			if _, err := os.Stat(cfg.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was written (stat: %v)", cfg.Dir, err)
			}
		})
	}
}
