//go:build cluster

package clustertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natterchat/natter"
)

// The shape of every test's traffic: 20 chatters in 5 rooms.
const (
	rooms    = 5
	chatters = 20
	pause    = 20 * time.Millisecond // between two messages of a chatter
)

// TestNodeKilled kills -9 the node that leads the history stream while 20
// chatters send: every acked message is stored once, seqs stay 1..N, the
// chatters that were on the node reconnect to another within 5 s and catch
// up; the node, started again, catches up and the cluster is healthy.
func TestNodeKilled(t *testing.T) {
	c := StartCluster(t)
	n := c.StartNatter(t)
	ch := StartChat(t, c, ChatSetup{Rooms: rooms, Chatters: chatters, TVMs: []string{n.Base}})

	start := time.Now()
	ch.Start(Load{Max: 2000, Timeout: 2 * time.Second, Pause: pause, For: 2 * time.Minute})
	ch.WaitAcked(t, 500, start, 60*time.Second)

	// The leader of the stream every send writes to: killing it makes the
	// hottest stream elect a new leader under load.
	victim := c.NodeNamed(t, c.StreamLeader(t, "KV_history"))
	before := ch.Acked(start)
	killedAt := time.Now()
	victim.Kill9(t)
	t.Logf("node %d (leader of KV_history) killed after %d acked messages, %s of traffic", victim.N, before, killedAt.Sub(start).Round(time.Millisecond))

	// The chatters that were on it reconnect to another node within 5 s.
	var moved []*Chatter
	for _, ct := range ch.Chatters {
		if ct.Node == victim.N {
			moved = append(moved, ct)
		}
	}
	var slowest time.Duration
	waitFor(t, 15*time.Second, fmt.Sprintf("the %d chatters on node %d reconnect", len(moved), victim.N), func() error {
		for _, ct := range moved {
			if _, ok := ct.ReconnectedAfter(killedAt); !ok {
				return fmt.Errorf("chatter %d has not reconnected", ct.N)
			}
		}
		return nil
	})
	for _, ct := range moved {
		at, _ := ct.ReconnectedAfter(killedAt)
		took := at.Sub(killedAt)
		slowest = max(slowest, took)
		if took > 5*time.Second {
			t.Errorf("chatter %d reconnected %s after the kill, want within 5s", ct.N, took.Round(time.Millisecond))
		}
		if url := ct.Conn.ConnectedUrl(); c.NodeOf(url) == victim.N || c.NodeOf(url) < 0 {
			t.Errorf("chatter %d is connected to %q, want another node than the killed %d", ct.N, url, victim.N)
		}
	}
	t.Logf("%d chatters on node %d reconnected elsewhere, the slowest %s after the kill", len(moved), victim.N, slowest.Round(time.Millisecond))

	// Everyone is served again, and the moved chatters' feeds catch up
	// with what was acked in their rooms meanwhile.
	ch.WaitEachAcked(t, 10, killedAt, 60*time.Second)
	t.Logf("every chatter had 10 messages acked %s after the kill (send errors so far: %v)", time.Since(killedAt).Round(time.Millisecond), ch.ErrorKinds())
	for _, ct := range moved {
		want := ch.LastAckedSeq(ct.Room)
		waitFor(t, 15*time.Second, fmt.Sprintf("chatter %d's feed of %s catches up to seq %d", ct.N, ct.Room, want), func() error {
			if d := ct.Feed.Delivered(); d < want {
				return fmt.Errorf("delivered up to %d", d)
			}
			return nil
		})
	}

	// Started again on its store, the node catches up under load.
	restartedAt := time.Now()
	victim.Start(t)
	c.WaitHealthy(t, 90*time.Second)
	t.Logf("node %d started again; every replica current %s later, under load", victim.N, time.Since(restartedAt).Round(time.Millisecond))
	ch.WaitEachAcked(t, 5, time.Now(), 30*time.Second)
	ch.Stop()
	c.WaitHealthy(t, 30*time.Second)

	entries, messages := ch.Verify(t)
	t.Logf("%d entries in %d rooms, %d messages, all acked and stored once; %d acked in %s; send errors retried: %v",
		entries, rooms, messages, ch.Acked(start), time.Since(start).Round(time.Millisecond), ch.ErrorKinds())
}

// TestNatterKilled runs two natter processes and kills -9 one of them
// while 20 chatters send: the other goes on vending tokens and serving
// every send, each acked after at most one retry; a room left idle is
// closed exactly once, before the kill (two processes share the expiry
// consumer) and after it (the survivor alone).
func TestNatterKilled(t *testing.T) {
	const idleTTL = 6 * time.Second
	c := StartCluster(t)
	a := c.StartNatter(t, "NATTER_ROOM_IDLE_TTL="+idleTTL.String())
	b := c.StartNatter(t, "NATTER_ROOM_IDLE_TTL="+idleTTL.String())
	ch := StartChat(t, c, ChatSetup{Rooms: rooms, Chatters: chatters, TVMs: []string{a.Base, b.Base}})
	ch.KeepOpen(t)

	// A room that nobody joins, made through the process to be killed,
	// closes while both run.
	idleBefore := watchIdleRoom(t, a.Base, "Idle before")
	start := time.Now()
	ch.Start(Load{Max: 2000, Timeout: 3 * time.Second, Pause: pause, For: 2 * time.Minute})
	took := idleBefore.waitClosed(t, idleTTL+20*time.Second)
	t.Logf("room %s closed %s after its creation, under load from both processes", idleBefore.room, took.Round(time.Millisecond))
	ch.WaitAcked(t, 300, start, 60*time.Second)

	before := ch.Acked(start)
	killedAt := time.Now()
	a.Kill9()
	t.Logf("natter %s killed after %d acked messages", a.Base, before)

	// The survivor vends a token to a newcomer, makes a room, and closes
	// it when idle, alone.
	idleAfter := watchIdleRoom(t, b.Base, "Idle after")
	ch.WaitEachAcked(t, 10, killedAt, 60*time.Second)
	t.Logf("every chatter had 10 messages acked %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	took = idleAfter.waitClosed(t, idleTTL+20*time.Second)
	t.Logf("room %s closed %s after its creation, by the surviving process", idleAfter.room, took.Round(time.Millisecond))
	ch.Stop()

	if most, which := ch.MaxAttempts(time.Time{}); most > 2 {
		t.Errorf("%s took %d attempts; want every send acked after at most one retry", which, most)
	}
	for _, w := range []*idleWatch{idleBefore, idleAfter} {
		w.checkClosedOnce(t, c, b.Base, a, b)
	}
	entries, messages := ch.Verify(t)
	t.Logf("%d entries in %d rooms, %d messages, all acked and stored once; send errors retried: %v", entries, rooms, messages, ch.ErrorKinds())
}

// TestRollingRestart stops each node in turn with SIGTERM, starts it again
// and waits until the cluster is healthy before the next, while 20
// chatters send: no acked message is lost or stored twice, seqs stay 1..N.
func TestRollingRestart(t *testing.T) {
	c := StartCluster(t)
	n := c.StartNatter(t)
	ch := StartChat(t, c, ChatSetup{Rooms: rooms, Chatters: chatters, TVMs: []string{n.Base}})
	start := time.Now()
	ch.Start(Load{Max: 2000, Timeout: 2 * time.Second, Pause: pause, For: 3 * time.Minute})
	ch.WaitAcked(t, 300, start, 60*time.Second)
	for _, node := range c.Nodes {
		stopped := node.Stop(t, syscall.SIGTERM)
		node.Start(t)
		healthy := c.WaitHealthy(t, 90*time.Second)
		served := ch.WaitEachAcked(t, 3, time.Now(), 60*time.Second)
		t.Logf("node %d: stopped %s after SIGTERM, started, cluster healthy %s later, every chatter acked 3 more within %s",
			node.N, stopped.Round(time.Millisecond), healthy.Round(time.Millisecond), served.Round(time.Millisecond))
	}
	ch.Stop()
	entries, messages := ch.Verify(t)
	t.Logf("%d entries in %d rooms, %d messages, all acked and stored once; %d acked in %s; send errors retried: %v",
		entries, rooms, messages, ch.Acked(start), time.Since(start).Round(time.Millisecond), ch.ErrorKinds())
}

// clientTimeout is how long the web app waits for a request's answer
// (REQUEST_TIMEOUT_MS in frontend/src/nats.ts).
const clientTimeout = 10 * time.Second

// TestQuorumLoss stops 2 of the 3 nodes: JetStream has no quorum, and a
// send must fail with the code unavailable before the web app's request
// timeout, not time out; once one node is back, the same messages, sent
// again, are acked within a bounded time, and nothing acked before the
// loss is lost.
func TestQuorumLoss(t *testing.T) {
	c := StartCluster(t)
	n := c.StartNatter(t)
	ch := StartChat(t, c, ChatSetup{Rooms: rooms, Chatters: chatters, TVMs: []string{n.Base}})

	start := time.Now()
	ch.Start(Load{Max: 40, Timeout: 2 * time.Second, Pause: pause, For: time.Minute})
	ch.Wait()
	before := ch.Acked(start)
	if before != chatters*40 {
		t.Fatalf("%d messages acked before the loss, want all %d", before, chatters*40)
	}

	for _, i := range []int{1, 2} {
		took := c.Nodes[i].Stop(t, syscall.SIGTERM)
		t.Logf("node %d stopped %s after SIGTERM", i, took.Round(time.Millisecond))
	}
	lostAt := time.Now()

	// Everyone is on the last node, natter too: it answers a request that
	// needs no storage.
	waitFor(t, 15*time.Second, "every chatter is connected to node 0", func() error {
		for _, ct := range ch.Chatters {
			if !ct.Conn.IsConnected() || c.NodeOf(ct.Conn.ConnectedUrl()) != 0 {
				return fmt.Errorf("chatter %d: %s, at %s", ct.N, ct.Conn.Status(), ct.Conn.ConnectedUrl())
			}
		}
		return nil
	})
	waitFor(t, 15*time.Second, "natter answers through node 0", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := ch.Chatters[0].Conn.SendRaw(ctx, ch.Chatters[0].Room, struct{}{})
		if ne, ok := errors.AsType[*natter.Error](err); ok && ne.Code == natter.EMalformed {
			return nil
		}
		return fmt.Errorf("an empty send: %v, want the code %s", err, natter.EMalformed)
	})
	t.Logf("quorum lost: every chatter and natter on node 0 %s after the second stop", time.Since(lostAt).Round(time.Millisecond))

	// Every chatter sends at once, four to a room: each send is answered
	// unavailable while its sender still waits.
	type outcome struct {
		took time.Duration
		err  error
	}
	probes := make([]outcome, len(ch.Chatters))
	var wg sync.WaitGroup
	for i, ct := range ch.Chatters {
		wg.Go(func() {
			s := time.Now()
			_, err := ct.Send(probeID(ct), "sent while the cluster has no quorum", clientTimeout)
			probes[i] = outcome{time.Since(s), err}
		})
	}
	wg.Wait()
	var slowest time.Duration
	for i, p := range probes {
		slowest = max(slowest, p.took)
		ne, ok := errors.AsType[*natter.Error](p.err)
		if !ok || ne.Code != natter.EUnavailable {
			t.Errorf("chatter %d: a send without quorum ended after %s with %v (%T), want a *natter.Error with code %s within %s",
				i, p.took.Round(time.Millisecond), p.err, p.err, natter.EUnavailable, clientTimeout)
		}
	}
	t.Logf("without quorum, %d sends answered in at most %s", len(probes), slowest.Round(time.Millisecond))

	// One node back: the same messages, sent again, are acked.
	backAt := time.Now()
	c.Nodes[1].Start(t)
	var recovered time.Duration
	for _, ct := range ch.Chatters {
		wg.Go(func() {
			for time.Since(backAt) < 90*time.Second {
				if _, err := ct.Send(probeID(ct), "sent while the cluster has no quorum", clientTimeout); err == nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	recovered = time.Since(backAt)
	for _, ct := range ch.Chatters {
		if ct.Acked(backAt) != 1 {
			t.Errorf("chatter %d: its message was not acked within 90s of node 1 starting again: %v", ct.N, ct.lastError())
		}
	}
	if recovered > 60*time.Second {
		t.Errorf("sends succeeded again %s after node 1 started, want within 60s", recovered.Round(time.Millisecond))
	}
	t.Logf("node 1 back: every chatter's message acked %s after it started", recovered.Round(time.Millisecond))

	c.Nodes[2].Start(t)
	c.WaitHealthy(t, 90*time.Second)
	entries, messages := ch.Verify(t)
	t.Logf("%d entries in %d rooms, %d messages, all acked and stored once; send errors: %v", entries, rooms, messages, ch.ErrorKinds())
}

func probeID(ct *Chatter) string { return fmt.Sprintf("c%02d-probe", ct.N) }
