package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// events records what arrives on a room's members subject, seen with
// natter's own connection.
type events struct {
	mu  sync.Mutex
	all []natter.MemberEvent
}

func watchMembers(t *testing.T, nc *nats.Conn, room string) *events {
	t.Helper()
	ev := &events{}
	sub, err := nc.Subscribe(natter.RoomSubject(room, natter.TopicMembers), func(m *nats.Msg) {
		var e natter.MemberEvent
		if json.Unmarshal(m.Data, &e) == nil {
			ev.mu.Lock()
			ev.all = append(ev.all, e)
			ev.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	nc.Flush()
	return ev
}

func (ev *events) count(typ string) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, e := range ev.all {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func (ev *events) waitFor(t *testing.T, typ string, timeout time.Duration) natter.MemberEvent {
	t.Helper()
	var found natter.MemberEvent
	gatewaytest.WaitFor(t, timeout, func() error {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		for _, e := range ev.all {
			if e.Type == typ {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event among %+v", typ, ev.all)
	})
	return found
}

func historyKeys(t *testing.T, gw *gateway.Gateway, bucket, room string) []string {
	t.Helper()
	js, _ := jetstream.New(gw.Conn())
	kv, err := js.KeyValue(ctx(t), bucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeysFiltered(ctx(t), room+".*")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys
}

// consumersIdle waits until both expiry consumers have nothing pending: every
// marker written so far has been handled and acknowledged.
func consumersIdle(t *testing.T, gw *gateway.Gateway) {
	t.Helper()
	js, _ := jetstream.New(gw.Conn())
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		for stream, durable := range map[string]string{"KV_rooms": "natter-room-expiry", "KV_presence": "natter-presence-expiry"} {
			c, err := js.Consumer(ctx(t), stream, durable)
			if err != nil {
				return err
			}
			info, err := c.Info(ctx(t))
			if err != nil {
				return err
			}
			if info.NumPending > 0 || info.NumAckPending > 0 {
				return fmt.Errorf("%s: %d pending, %d unacknowledged", durable, info.NumPending, info.NumAckPending)
			}
		}
		return nil
	})
}

// TestIdleRoomClosesExactlyOnceWithTwoGateways lets a room go idle while
// two gateways run: it closes once, its history and presence are purged,
// and its members hear room_closed once.
func TestIdleRoomClosesExactlyOnceWithTwoGateways(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{RoomIdleTTL: 2 * time.Second, PresenceTTL: time.Hour})
	s.RunPeer(t)
	room := s.MustRoom(t, "Quiet").ID
	ev := watchMembers(t, s.GW.Conn(), room)
	c := s.MustJoin(t, room, "Lonely")
	if _, err := c.Send(ctx(t), room, "anyone?"); err != nil {
		t.Fatal(err)
	}
	if err := c.Leave(ctx(t), room); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, natter.EventLeave, 10*time.Second)
	if len(historyKeys(t, s.GW, natter.BucketHistory, room)) == 0 {
		t.Fatal("no history before the room closed")
	}

	ev.waitFor(t, natter.EventRoomClosed, 20*time.Second)
	consumersIdle(t, s.GW)
	if n := ev.count(natter.EventRoomClosed); n != 1 {
		t.Fatalf("room_closed announced %d times", n)
	}
	if keys := historyKeys(t, s.GW, natter.BucketHistory, room); len(keys) != 0 {
		t.Fatalf("history left after closing: %v", keys)
	}
	if _, err := s.GW.Room(ctx(t), room); natter.ErrorCode(err) != natter.ERoomClosed {
		t.Fatalf("closed room: %v", err)
	}
	if _, err := c.Send(ctx(t), room, "hello?"); natter.ErrorCode(err) != natter.ERoomClosed {
		t.Fatalf("send to a closed room: %v", err)
	}
	rooms, _ := s.GW.Rooms(ctx(t))
	if slices.ContainsFunc(rooms, func(r natter.Room) bool { return r.ID == room }) {
		t.Fatal("closed room still listed")
	}
}

// TestActiveRoomStaysOpenUntilMaxTTL keeps a member present and talking:
// the room outlives its idle TTL and closes at its maximum life.
func TestActiveRoomStaysOpenUntilMaxTTL(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{RoomIdleTTL: 2 * time.Second, RoomMaxTTL: 6 * time.Second, PresenceTTL: time.Hour})
	created := time.Now()
	room := s.MustRoom(t, "Busy").ID
	ev := watchMembers(t, s.GW.Conn(), room)
	c := s.MustJoin(t, room, "Chatty")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			c.Here(ctx(t), room)
		}
	}()
	ev.waitFor(t, natter.EventRoomClosed, 20*time.Second)
	close(stop)
	<-done
	if lived := time.Since(created); lived < 5500*time.Millisecond {
		t.Fatalf("room closed after %s although active; max TTL is 6s", lived)
	}
}

func TestPresenceJoinLeaveTimeout(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{PresenceTTL: 2 * time.Second})
	room := s.MustRoom(t, "").ID
	ev := watchMembers(t, s.GW.Conn(), room)
	alice := s.MustJoin(t, room, "Alice")
	alice2 := s.MustJoin(t, room, "Alice")
	if alice.Name != "Alice" || alice2.Name != "Alice (2)" {
		t.Fatalf("names %q and %q", alice.Name, alice2.Name)
	}
	gatewaytest.WaitFor(t, 5*time.Second, func() error {
		if n := ev.count(natter.EventJoin); n != 2 {
			return fmt.Errorf("%d join events", n)
		}
		return nil
	})
	j, err := alice.Join(ctx(t), room, "Alice") // a rejoin is no new join
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Members) != 2 || j.Name != "Alice" {
		t.Fatalf("rejoin: %+v", j)
	}
	// A rejoin under a new name is a rename, told to the room, not stored.
	if j, err = alice2.Join(ctx(t), room, "Ali"); err != nil || j.Name != "Ali" {
		t.Fatalf("rename: %+v %v", j, err)
	}
	rename := ev.waitFor(t, natter.EventRename, 5*time.Second)
	if rename.Member == nil || rename.Member.ID != alice2.User.ID || rename.Member.Name != "Ali" {
		t.Fatalf("rename event %+v", rename)
	}
	alice2.Name = "Ali"

	// Alice leaves; the second Alice stops sending heartbeats and times out.
	if err := alice.Leave(ctx(t), room); err != nil {
		t.Fatal(err)
	}
	gatewaytest.WaitFor(t, 15*time.Second, func() error {
		if n := ev.count(natter.EventLeave); n != 2 {
			return fmt.Errorf("%d leave events", n)
		}
		return nil
	})
	if n := ev.count(natter.EventJoin); n != 2 {
		t.Fatalf("%d join events after a rejoin", n)
	}
	r, err := s.GW.Room(ctx(t), room)
	if err != nil {
		t.Fatal(err)
	}
	if r.Members != 0 {
		t.Fatalf("%d members left", r.Members)
	}
	if err := alice2.Here(ctx(t), room); natter.ErrorCode(err) != natter.ENotJoined {
		t.Fatalf("heartbeat after timing out: %v", err)
	}
	h, err := alice.History(ctx(t), room, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range h.Messages {
		kinds = append(kinds, e.Type+" "+e.From.Name)
	}
	want := []string{"join Alice", "join Alice (2)", "leave Alice", "leave Ali"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("history %v, want %v", kinds, want)
	}
}

// TestRoomExpiryDeletesUploads: a room that closes takes its uploads with
// it, out of the object store; another room's stay.
func TestRoomExpiryDeletesUploads(t *testing.T) {
	s := gatewaytest.RunServer(t, gateway.ChatConfig{RoomIdleTTL: 2 * time.Second, PresenceTTL: time.Hour})
	quiet := s.MustRoom(t, "Quiet").ID
	busy := s.MustRoom(t, "Busy").ID
	gone := []natter.Upload{mustUpload(t, s.GW, quiet, 4, 4), mustUpload(t, s.GW, quiet, 5, 5)}
	kept := mustUpload(t, s.GW, busy, 6, 6)
	ev := watchMembers(t, s.GW.Conn(), quiet)
	c := s.MustJoin(t, busy, "Stays")
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			c.Here(ctx(t), busy)
		}
	}()
	ev.waitFor(t, natter.EventRoomClosed, 20*time.Second)
	consumersIdle(t, s.GW)
	close(stop)
	<-done

	js, _ := jetstream.New(s.GW.Conn())
	obs, err := js.ObjectStore(ctx(t), natter.BucketUploads)
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range gone {
		if _, err := obs.GetInfo(ctx(t), up.ID); !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Fatalf("upload %s of the closed room: %v", up.ID, err)
		}
		if _, err := s.GW.Uploads().Upload(ctx(t), up.ID); natter.ErrorCode(err) != natter.ENotFound {
			t.Fatalf("upload %s of the closed room: %v", up.ID, err)
		}
	}
	if _, err := obs.GetInfo(ctx(t), kept.ID); err != nil {
		t.Fatalf("upload of the open room: %v", err)
	}
	if st, err := obs.Status(ctx(t)); err != nil || st.TTL() != gateway.DefaultChatConfig.RoomMaxTTL {
		t.Fatalf("bucket TTL: %v %v", st, err)
	}
}
