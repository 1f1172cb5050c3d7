package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// TestClusterNATS runs natter on three stock nats-servers configured by
// "natter nats init -cluster 3", the way an operator would: each node from
// its config file, natter from the env file init wrote. The buckets are
// replicated on all three nodes, tokens name every node's WebSocket, and a
// message sent through one node reaches a member on another.
func TestClusterNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three nats-server processes")
	}
	bin := buildBinary(t, "nats-server", "github.com/nats-io/nats-server/v2")

	const nodes = 3
	dir := filepath.Join(t.TempDir(), "nats")
	addrs := func() string {
		var a []string
		for range nodes {
			a = append(a, "127.0.0.1:"+strconv.Itoa(extFreePort(t)))
		}
		return strings.Join(a, ",")
	}
	clientAddrs, routeAddrs, wsAddrs := addrs(), addrs(), addrs()
	extInit(t, "nats", "init", "--cluster", strconv.Itoa(nodes), "-dir", dir,
		"-listen", clientAddrs, "-cluster-listen", routeAddrs, "-ws", wsAddrs)
	var confs, natsURLs, wsURLs []string
	for i := range nodes {
		confs = append(confs, fmt.Sprintf("nats-server-%d.conf", i))
		natsURLs = append(natsURLs, "nats://"+strings.Split(clientAddrs, ",")[i])
		wsURLs = append(wsURLs, "ws://"+strings.Split(wsAddrs, ",")[i])
	}
	assertSecretFiles(t, dir, append(confs, "natter.creds", "natter.env", "keys/operator.nk", "keys/system.nk", "keys/chat.nk", "keys/tvm.nk")...)

	// natter's NATS settings come from natter.env alone.
	envFile := filepath.Join(dir, "natter.env")
	fileCfg, err := LoadConfig(flag.NewFlagSet("natter", flag.ContinueOnError), nil,
		func(string) string { return "" }, envFile)
	if err != nil {
		t.Fatalf("load %s: %v", envFile, err)
	}
	if got := splitList(fileCfg.NATSURL); !slices.Equal(got, natsURLs) {
		t.Errorf("NATTER_NATS_URL = %q, want %q", got, natsURLs)
	}
	if !slices.Equal(fileCfg.WSURLs, wsURLs) {
		t.Errorf("NATTER_WS_URLS = %q, want %q", fileCfg.WSURLs, wsURLs)
	}
	if fileCfg.Replicas != 3 {
		t.Errorf("NATTER_REPLICAS = %d, want 3", fileCfg.Replicas)
	}
	if fileCfg.Replicas = 0; fileCfg.replicas() != 3 {
		t.Errorf("without NATTER_REPLICAS, %d URLs make %d replicas, want 3", len(natsURLs), fileCfg.replicas())
	}

	// All nodes at once: alone, a node has no JetStream quorum.
	var servers []*extServer
	for i, conf := range confs {
		servers = append(servers, newExtServer(t, bin, filepath.Join(dir, conf), strings.TrimPrefix(natsURLs[i], "nats://")))
	}
	for _, s := range servers {
		s.launch(t)
	}
	for _, s := range servers {
		s.waitListening(t)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect(fileCfg.NATSURL, nats.UserCredentials(fileCfg.NATSCreds), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect to the cluster with natter's creds: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster has formed once JetStream answers: it has a meta leader.
	gatewaytest.WaitFor(t, 30*time.Second, func() error {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		defer acancel()
		_, err := js.AccountInfo(actx)
		return err
	})

	cfg := testConfig(t)
	cfg.NATSURL = fileCfg.NATSURL
	cfg.NATSCreds = fileCfg.NATSCreds
	cfg.SigningKey = fileCfg.SigningKey
	cfg.WSURLs = fileCfg.WSURLs
	cfg.Replicas = 0 // natter chooses, from the three URLs
	m := runMain(t, cfg)
	if m.Gateway.ClientURL() != "" {
		t.Fatalf("natter started an embedded server (%s) instead of using the cluster", m.Gateway.ClientURL())
	}

	t.Run("buckets on three nodes", func(t *testing.T) {
		for _, b := range []string{natter.BucketRooms, natter.BucketHistory, natter.BucketPresence} {
			gatewaytest.WaitFor(t, 20*time.Second, func() error {
				s, err := js.Stream(ctx, "KV_"+b)
				if err != nil {
					return fmt.Errorf("bucket %s: %w", b, err)
				}
				info, err := s.Info(ctx)
				if err != nil {
					return fmt.Errorf("bucket %s: %w", b, err)
				}
				if info.Config.Replicas != 3 {
					return fmt.Errorf("bucket %s has %d replicas, want 3", b, info.Config.Replicas)
				}
				ci := info.Cluster
				if ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
					return fmt.Errorf("bucket %s: cluster %+v, want a leader and 2 other replicas", b, ci)
				}
				for _, r := range ci.Replicas {
					if !r.Current || r.Offline {
						return fmt.Errorf("bucket %s: replica %s is not current", b, r.Name)
					}
				}
				return nil
			})
		}
	})

	alice, bob := gatewaytest.NewUser(t), gatewaytest.NewUser(t)
	room := alice.MustNewRooms(t, m.baseURL(), "Lobby")[0]
	aliceTok := alice.MustToken(t, m.baseURL(), room)
	bobTok := bob.MustToken(t, m.baseURL(), room)
	if !slices.Equal(aliceTok.Servers, wsURLs) {
		t.Fatalf("token servers = %q, want every node's %q", aliceTok.Servers, wsURLs)
	}

	t.Run("message across nodes", func(t *testing.T) {
		// Each on a node of its own: a token naming one node only.
		on := func(u *gatewaytest.User, tok *gatewaytest.Token, node int) *client.Conn {
			one := *tok
			one.Servers = []string{wsURLs[node]}
			c := u.Connect(t, &one)
			if got := c.ConnectedUrl(); got != wsURLs[node] {
				t.Fatalf("connected to %s, want node %d's %s", got, node, wsURLs[node])
			}
			if _, err := c.Join(ctx, room, "member"); err != nil {
				t.Fatalf("join on node %d: %v", node, err)
			}
			return c.Conn
		}
		a, b := on(alice, aliceTok, 0), on(bob, bobTok, 1)
		got := make(chan natter.Envelope, 16)
		follow, err := a.Follow(ctx, room, 0, func(e natter.Envelope) { got <- e })
		if err != nil {
			t.Fatal(err)
		}
		defer follow.Stop()
		ack, err := b.Send(ctx, room, "hello from node 1")
		if err != nil {
			t.Fatalf("send on node 1: %v", err)
		}
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e := <-got:
				if e.Seq == ack.Seq {
					if e.Text != "hello from node 1" {
						t.Fatalf("alice on node 0 received %q, want the message bob sent on node 1", e.Text)
					}
					return
				}
			case <-timeout:
				t.Fatalf("alice on node 0 did not receive seq %d, sent by bob on node 1", ack.Seq)
			}
		}
	})

	// natter's own connection moves to another node when its node stops,
	// and natter is ready again on the two left.
	t.Run("failover", func(t *testing.T) {
		from := m.Gateway.Conn().ConnectedUrl()
		node := slices.Index(natsURLs, from)
		if node < 0 {
			t.Fatalf("natter is connected to %q, none of %q", from, natsURLs)
		}
		servers[node].stop(t)
		gatewaytest.WaitFor(t, 30*time.Second, func() error {
			nc := m.Gateway.Conn()
			if !nc.IsConnected() || nc.ConnectedUrl() == from {
				return fmt.Errorf("natter's connection: %s, %s, want another node than %s", nc.Status(), nc.ConnectedUrl(), from)
			}
			if code := getStatus(t, m.baseURL()+"/readyz"); code != 200 {
				return fmt.Errorf("/readyz = %d", code)
			}
			return nil
		})
		carol := gatewaytest.NewUser(t)
		tok := carol.MustToken(t, m.baseURL(), room)
		c := carol.Connect(t, tok)
		if got := c.ConnectedUrl(); got == wsURLs[node] {
			t.Fatalf("carol connected to the stopped node's %s", got)
		}
		// Until the buckets' leaders on the stopped node are replaced, a
		// send may be refused as unavailable.
		gatewaytest.WaitFor(t, 30*time.Second, func() error {
			if _, err := c.Join(ctx, room, "carol"); err != nil {
				return err
			}
			_, err := c.Send(ctx, room, "hello from two nodes")
			return err
		})
	})
}
