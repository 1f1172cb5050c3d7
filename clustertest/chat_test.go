//go:build cluster

package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
)

// Chatter is one user in one room, connected over WebSocket to one node
// first, following the room and sending to it.
type Chatter struct {
	N    int
	Room string
	Node int // the node it connected to first
	User *client.Identity
	Tok  *client.Token
	Conn *client.Conn
	Feed *client.Room // the room followed from seq 0

	mu          sync.Mutex
	acks        map[string]natter.Ack // message id → its ack
	ackedAt     map[string]time.Time
	texts       map[string]string
	attempts    map[string][]time.Time // message id → when each send of it began
	errKinds    map[string]int
	lastErr     error
	pending     string // a message that was never acked before the sender gave up
	followed    []natter.Envelope
	disconnects []time.Time
	reconnects  []time.Time
}

// Chat is a set of rooms with their chatters.
type Chat struct {
	Rooms    []string
	Chatters []*Chatter

	stop, quit chan struct{}
	wg         sync.WaitGroup
	stopOnce   sync.Once
}

// ChatSetup says how to build a Chat.
type ChatSetup struct {
	Rooms, Chatters int
	// TVMs are the natter processes' base URLs: chatter i takes its token
	// from TVMs[i % len].
	TVMs []string
}

// StartChat creates the rooms, then connects every chatter to one node
// (chatter i to node i % 3: the token's server list starts there and is not
// shuffled, so a reconnect goes on to the next node), joins it to its room
// (chatter i to room i % rooms) and follows the room from seq 0.
func StartChat(t *testing.T, c *Cluster, s ChatSetup) *Chat {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch := &Chat{stop: make(chan struct{}), quit: make(chan struct{})}
	owner := newIdentity(t)
	api := &client.API{BaseURL: s.TVMs[0]}
	tok, err := api.Token(ctx, owner, "Owner")
	if err != nil {
		t.Fatalf("token for the rooms' owner: %v", err)
	}
	for i := range s.Rooms {
		room, err := api.CreateRoom(ctx, tok, fmt.Sprintf("Failover %d", i))
		if err != nil {
			t.Fatalf("create room %d: %v", i, err)
		}
		ch.Rooms = append(ch.Rooms, room.ID)
	}
	for i := range s.Chatters {
		u := newIdentity(t)
		room := ch.Rooms[i%s.Rooms]
		api := &client.API{BaseURL: s.TVMs[i%len(s.TVMs)]}
		tok, err := api.Token(ctx, u, fmt.Sprintf("Chatter %d", i), room)
		if err != nil {
			t.Fatalf("token for chatter %d: %v", i, err)
		}
		if !slices.Equal(tok.Servers, c.Files.WSURLs) {
			t.Fatalf("token servers = %q, want every node's WebSocket URL %q", tok.Servers, c.Files.WSURLs)
		}
		node := i % len(c.Nodes)
		ct := &Chatter{N: i, Room: room, Node: node, User: u, Tok: tok,
			acks: map[string]natter.Ack{}, ackedAt: map[string]time.Time{}, texts: map[string]string{},
			attempts: map[string][]time.Time{}, errKinds: map[string]int{}}
		pinned := *tok
		pinned.Servers = append(slices.Clone(tok.Servers[node:]), tok.Servers[:node]...)
		conn, err := client.Dial(u, &pinned,
			nats.Name(fmt.Sprintf("chatter %d", i)),
			asyncErrors(t, fmt.Sprintf("chatter %d", i)),
			nats.DontRandomize(),
			nats.DisconnectErrHandler(func(*nats.Conn, error) {
				ct.mu.Lock()
				ct.disconnects = append(ct.disconnects, time.Now())
				ct.mu.Unlock()
			}))
		if err != nil {
			t.Fatalf("chatter %d: connect to %s: %v", i, pinned.Servers[0], err)
		}
		t.Cleanup(conn.Close)
		ct.Conn = conn
		if got := conn.ConnectedUrl(); got != c.Nodes[node].WSURL {
			t.Fatalf("chatter %d connected to %s, want node %d at %s", i, got, node, c.Nodes[node].WSURL)
		}
		conn.OnReconnect(func() {
			ct.mu.Lock()
			ct.reconnects = append(ct.reconnects, time.Now())
			ct.mu.Unlock()
		})
		if _, err := conn.Join(ctx, room, fmt.Sprintf("Chatter %d", i)); err != nil {
			t.Fatalf("chatter %d: join %s: %v", i, room, err)
		}
		ct.Feed, err = conn.Follow(ctx, room, 0, func(e natter.Envelope) {
			ct.mu.Lock()
			ct.followed = append(ct.followed, e)
			ct.mu.Unlock()
		})
		if err != nil {
			t.Fatalf("chatter %d: follow %s: %v", i, room, err)
		}
		t.Cleanup(ct.Feed.Stop)
		ch.Chatters = append(ch.Chatters, ct)
	}
	// A test that ends early leaves no sender retrying until its deadline.
	t.Cleanup(ch.Abandon)
	return ch
}

func newIdentity(t *testing.T) *client.Identity {
	t.Helper()
	u, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Load says how the chatters send.
type Load struct {
	Max     int           // messages per chatter at most
	Timeout time.Duration // of one send attempt
	Pause   time.Duration // between two messages of a chatter
	For     time.Duration // no send is attempted after this long
}

// Start makes every chatter send up to l.Max messages in a loop, each with
// its own id. A failed send is sent again with the same id, as the web app
// does, until it is acked; the chatter starts no new message once Stop is
// called.
func (ch *Chat) Start(l Load) {
	deadline := time.Now().Add(l.For)
	for _, ct := range ch.Chatters {
		ch.wg.Add(1)
		go func() {
			defer ch.wg.Done()
			ct.send(l, ch.stop, ch.quit, deadline)
		}()
	}
}

// Stop lets every chatter finish the message it is sending and waits.
func (ch *Chat) Stop() {
	ch.stopOnce.Do(func() { close(ch.stop) })
	ch.wg.Wait()
}

// Wait waits until every chatter has sent its messages (or the load's
// time is up).
func (ch *Chat) Wait() { ch.wg.Wait() }

// Abandon makes every chatter give up at once, acked or not.
func (ch *Chat) Abandon() {
	ch.stopOnce.Do(func() { close(ch.stop) })
	select {
	case <-ch.quit:
	default:
		close(ch.quit)
	}
	ch.wg.Wait()
}

func (ct *Chatter) send(l Load, stop, quit <-chan struct{}, deadline time.Time) {
	for i := range l.Max {
		if i > 0 {
			select {
			case <-stop:
				return
			case <-time.After(l.Pause):
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("c%02d-m%05d", ct.N, i)
		text := fmt.Sprintf("message %d of chatter %d", i, ct.N)
		for {
			_, err := ct.Send(id, text, l.Timeout)
			now := time.Now()
			if err == nil {
				break
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-quit:
				now = deadline
			}
			if !now.Before(deadline) {
				ct.mu.Lock()
				ct.pending = id
				ct.mu.Unlock()
				return
			}
		}
	}
}

// Send sends text under id once, with a timeout, and records the attempt
// and its outcome.
func (ct *Chatter) Send(id, text string, timeout time.Duration) (natter.Ack, error) {
	ct.mu.Lock()
	ct.texts[id] = text
	ct.attempts[id] = append(ct.attempts[id], time.Now())
	ct.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ack, err := ct.Conn.SendID(ctx, ct.Room, id, text)
	cancel()
	if err == nil && (!ack.OK || ack.Seq == 0) {
		err = fmt.Errorf("ack %+v without ok or seq", ack)
	}
	ct.mu.Lock()
	if err == nil {
		ct.acks[id], ct.ackedAt[id] = ack, time.Now()
	} else {
		ct.errKinds[errorKind(err)]++
		ct.lastErr = err
	}
	ct.mu.Unlock()
	return ack, err
}

// Acked counts the chatter's acked messages, all or since a time.
func (ct *Chatter) Acked(since time.Time) int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	n := 0
	for _, at := range ct.ackedAt {
		if !at.Before(since) {
			n++
		}
	}
	return n
}

// Acked counts every chatter's acked messages since a time.
func (ch *Chat) Acked(since time.Time) int {
	n := 0
	for _, ct := range ch.Chatters {
		n += ct.Acked(since)
	}
	return n
}

// WaitAcked waits until the chatters have n messages acked since a time.
func (ch *Chat) WaitAcked(t *testing.T, n int, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, timeout, fmt.Sprintf("%d messages acked", n), func() error {
		if got := ch.Acked(since); got < n {
			return fmt.Errorf("%d acked", got)
		}
		return nil
	})
}

// WaitEachAcked waits until every chatter has n messages acked since a
// time: all of them are served.
func (ch *Chat) WaitEachAcked(t *testing.T, n int, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, timeout, fmt.Sprintf("every chatter has %d messages acked since %s", n, since.Format("15:04:05.000")), func() error {
		var behind []string
		for _, ct := range ch.Chatters {
			if got := ct.Acked(since); got < n {
				behind = append(behind, fmt.Sprintf("chatter %d: %d (%v)", ct.N, got, ct.lastError()))
			}
		}
		if len(behind) > 0 {
			return fmt.Errorf("%d chatters behind: %s", len(behind), strings.Join(behind, "; "))
		}
		return nil
	})
}

func (ct *Chatter) lastError() error {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.lastErr
}

// ReconnectedAfter is the first reconnect at or after a time, if any.
func (ct *Chatter) ReconnectedAfter(at time.Time) (time.Time, bool) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for _, r := range ct.reconnects {
		if !r.Before(at) {
			return r, true
		}
	}
	return time.Time{}, false
}

// ErrorKinds sums the kinds of failed sends over every chatter.
func (ch *Chat) ErrorKinds() map[string]int {
	kinds := map[string]int{}
	for _, ct := range ch.Chatters {
		ct.mu.Lock()
		for k, n := range ct.errKinds {
			kinds[k] += n
		}
		ct.mu.Unlock()
	}
	return kinds
}

// MaxAttempts is the most send attempts one message took, among those
// whose first attempt began at or after a time, and the message.
func (ch *Chat) MaxAttempts(since time.Time) (int, string) {
	most, which := 0, ""
	for _, ct := range ch.Chatters {
		ct.mu.Lock()
		for id, at := range ct.attempts {
			if !at[0].Before(since) && len(at) > most {
				most, which = len(at), fmt.Sprintf("chatter %d's %s", ct.N, id)
			}
		}
		ct.mu.Unlock()
	}
	return most, which
}

// Verify reads every room's whole history and checks what the failover
// tests promise: seqs are 1..N with no gap and no duplicate; every acked
// message is stored exactly once (by sender and id), at the seq its ack
// named, with its text; every message stored was acked (each send was
// retried until acked); and every chatter's feed, through whatever
// happened, delivered exactly the history, in order.
func (ch *Chat) Verify(t *testing.T) (entries, messages int) {
	t.Helper()
	for _, ct := range ch.Chatters {
		ct.mu.Lock()
		if ct.pending != "" {
			t.Errorf("chatter %d gave up on message %s, never acked: %v", ct.N, ct.pending, ct.lastErr)
		}
		ct.mu.Unlock()
	}
	type key struct{ from, id string }
	for _, room := range ch.Rooms {
		var members []*Chatter
		for _, ct := range ch.Chatters {
			if ct.Room == room {
				members = append(members, ct)
			}
		}
		history := readHistory(t, members[0].Conn, room)
		entries += len(history)
		for i, e := range history {
			if e.Seq != uint64(i+1) {
				t.Fatalf("room %s: entry %d of the history has seq %d, want %d: seqs are not 1..N without gaps", room, i, e.Seq, i+1)
			}
		}
		stored := map[key]natter.Envelope{}
		for _, e := range history {
			if e.Type != natter.TypeMessage {
				continue
			}
			k := key{e.From.ID, e.ID}
			if prev, dup := stored[k]; dup {
				t.Errorf("room %s: message %s of %s stored twice, at seqs %d and %d; want once", room, e.ID, e.From.Name, prev.Seq, e.Seq)
			}
			stored[k] = e
		}
		messages += len(stored)
		acked := 0
		for _, ct := range members {
			ct.mu.Lock()
			for id, ack := range ct.acks {
				acked++
				e, ok := stored[key{ct.User.ID, id}]
				switch {
				case !ok:
					t.Errorf("room %s: chatter %d's message %s was acked with seq %d but is not in the history", room, ct.N, id, ack.Seq)
				case e.Seq != ack.Seq:
					t.Errorf("room %s: chatter %d's message %s was acked with seq %d but is stored at seq %d", room, ct.N, id, ack.Seq, e.Seq)
				case e.Text != ct.texts[id]:
					t.Errorf("room %s: chatter %d's message %s is stored with text %q, want %q", room, ct.N, id, e.Text, ct.texts[id])
				}
			}
			ct.mu.Unlock()
		}
		if len(stored) != acked {
			t.Errorf("room %s: %d messages stored, %d acked; every send was retried until acked, so they must match", room, len(stored), acked)
		}
		last := uint64(len(history))
		for _, ct := range members {
			waitFor(t, 30*time.Second, fmt.Sprintf("chatter %d's feed of %s delivers up to seq %d", ct.N, room, last), func() error {
				if d := ct.Feed.Delivered(); d < last {
					return fmt.Errorf("delivered up to %d", d)
				}
				return nil
			})
			ct.mu.Lock()
			feed := slices.Clone(ct.followed)
			ct.mu.Unlock()
			if len(feed) != len(history) {
				t.Errorf("chatter %d's feed of %s has %d entries, the history %d; want the same", ct.N, room, len(feed), len(history))
			}
			for i := range min(len(feed), len(history)) {
				f, h := feed[i], history[i]
				if f.Seq != h.Seq || f.ID != h.ID || f.From.ID != h.From.ID || f.Type != h.Type {
					t.Errorf("chatter %d's feed of %s: entry %d is seq %d %s %q, the history's is seq %d %s %q; want the same",
						ct.N, room, i, f.Seq, f.Type, f.ID, h.Seq, h.Type, h.ID)
					break
				}
			}
		}
	}
	return entries, messages
}

// readHistory reads a room's whole history through the gateway, page by
// page, retrying a failed page for up to 30 s.
func readHistory(t *testing.T, conn *client.Conn, room string) []natter.Envelope {
	t.Helper()
	var history []natter.Envelope
	for {
		var h natter.HistoryReply
		after := uint64(0)
		if len(history) > 0 {
			after = history[len(history)-1].Seq
		}
		retry(t, fmt.Sprintf("history of %s after seq %d", room, after), 30*time.Second, func(ctx context.Context) (err error) {
			h, err = conn.History(ctx, room, after, 0)
			return err
		})
		history = append(history, h.Messages...)
		if len(h.Messages) == 0 || history[len(history)-1].Seq >= h.LastSeq {
			if n := len(history); n > 0 && history[n-1].Seq != h.LastSeq {
				t.Fatalf("room %s: the history ends at seq %d, its last seq is %d", room, history[n-1].Seq, h.LastSeq)
			}
			return history
		}
	}
}

// retry runs f with a 10 s deadline until it succeeds, for at most
// budget: a check after a failover must not fail on a machine that is
// merely slow.
func retry(t *testing.T, what string, budget time.Duration, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, budget, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// errorKind names a send error without the subject and user in it.
func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, nats.ErrNoResponders):
		return "no responders"
	case errors.Is(err, nats.ErrConnectionClosed):
		return "closed"
	}
	if ne, ok := errors.AsType[*natter.Error](err); ok {
		return ne.Code
	}
	msg := err.Error()
	return msg[strings.LastIndex(msg, ": ")+1:]
}

// LastAckedSeq is the highest seq acked to any chatter in room.
func (ch *Chat) LastAckedSeq(room string) uint64 {
	var last uint64
	for _, ct := range ch.Chatters {
		if ct.Room != room {
			continue
		}
		ct.mu.Lock()
		for _, a := range ct.acks {
			last = max(last, a.Seq)
		}
		ct.mu.Unlock()
	}
	return last
}

// KeepOpen renews one chatter's presence in each room every second until
// the test ends, so that no room closes as idle while it is checked.
func (ch *Chat) KeepOpen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, room := range ch.Rooms {
				for _, ct := range ch.Chatters {
					if ct.Room == room {
						// A failure is tried again at the next tick.
						hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
						ct.Conn.Here(hctx, room)
						hcancel()
						break
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// idleWatch is a room that nobody joins or writes to, and a connection
// that counts its room_closed events.
type idleWatch struct {
	room    string
	created time.Time
	conn    *client.Conn

	mu     sync.Mutex
	closed []time.Time
}

// watchIdleRoom creates a room through the TVM at base and subscribes to
// its member events with a token from the same TVM.
func watchIdleRoom(t *testing.T, base, name string) *idleWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api := &client.API{BaseURL: base}
	u := newIdentity(t)
	tok, err := api.Token(ctx, u, "Watcher")
	if err != nil {
		t.Fatalf("token from %s: %v", base, err)
	}
	room, err := api.CreateRoom(ctx, tok, name)
	if err != nil {
		t.Fatalf("create room %q through %s: %v", name, base, err)
	}
	w := &idleWatch{room: room.ID, created: time.Now()}
	if tok, err = api.Token(ctx, u, "Watcher", room.ID); err != nil {
		t.Fatalf("token for %s from %s: %v", room.ID, base, err)
	}
	if w.conn, err = client.Dial(u, tok, asyncErrors(t, "the watcher of "+room.ID)); err != nil {
		t.Fatalf("connect the watcher of %s: %v", room.ID, err)
	}
	t.Cleanup(w.conn.Close)
	_, err = w.conn.Subscribe(natter.RoomSubject(room.ID, natter.TopicMembers), func(m *nats.Msg) {
		var ev natter.MemberEvent
		if json.Unmarshal(m.Data, &ev) == nil && ev.Type == natter.EventRoomClosed && ev.Room == room.ID {
			w.mu.Lock()
			w.closed = append(w.closed, time.Now())
			w.mu.Unlock()
		}
	})
	if err == nil {
		err = w.conn.FlushWithContext(ctx)
	}
	if err != nil {
		t.Fatalf("watch the members of %s: %v", room.ID, err)
	}
	return w
}

func (w *idleWatch) closedEvents() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.closed)
}

// waitClosed waits for the room's room_closed event and returns how long
// after its creation it came.
func (w *idleWatch) waitClosed(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	waitFor(t, timeout-time.Since(w.created), fmt.Sprintf("room %s, left idle, is announced closed", w.room), func() error {
		if w.closedEvents() == 0 {
			return errors.New("no room_closed event")
		}
		return nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed[0].Sub(w.created)
}

// checkClosedOnce checks that the room's closing happened exactly once:
// one room_closed event, one "room closed" line in all the natter logs,
// the room gone from the rooms bucket and answered 410 room_closed, and
// nothing of the expiry consumer's left to redeliver or redelivered.
func (w *idleWatch) checkClosedOnce(t *testing.T, c *Cluster, base string, natters ...*Natter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := c.JetStream().Consumer(ctx, "KV_"+natter.BucketRooms, "natter-room-expiry")
	if err != nil {
		t.Fatalf("room expiry consumer: %v", err)
	}
	waitFor(t, 10*time.Second, "the room expiry consumer has every marker acked", func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("%d markers pending, %d delivered but not acked", info.NumPending, info.NumAckPending)
		}
		if info.NumRedelivered != 0 {
			t.Fatalf("the room expiry consumer redelivered %d markers; want each handled once", info.NumRedelivered)
		}
		return nil
	})
	// A second announcement would be on its way by now.
	time.Sleep(500 * time.Millisecond)
	if n := w.closedEvents(); n != 1 {
		t.Errorf("room %s: %d room_closed events, want exactly 1", w.room, n)
	}
	var lines []string
	for _, n := range natters {
		lines = append(lines, n.LogLines(`msg="room closed"`, "room="+w.room)...)
	}
	if len(lines) != 1 {
		t.Errorf("room %s: %d \"room closed\" lines in the natter logs, want exactly 1:\n%s", w.room, len(lines), strings.Join(lines, "\n"))
	}
	kv, err := c.JetStream().KeyValue(ctx, natter.BucketRooms)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, w.room); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("room %s in the rooms bucket after closing: %v, %v; want %v", w.room, e, err, jetstream.ErrKeyNotFound)
	}
	var room natter.Room
	err = client.DoJSON(ctx, nil, http.MethodGet, base+"/api/v1/rooms/"+w.room, "", nil, &room)
	if ae, ok := errors.AsType[*client.APIError](err); !ok || ae.Status != http.StatusGone || ae.Code != natter.ERoomClosed {
		t.Errorf("GET /api/v1/rooms/%s after closing: %+v, %v; want 410 %s", w.room, room, err, natter.ERoomClosed)
	}
}
