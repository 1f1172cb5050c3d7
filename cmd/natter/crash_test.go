package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// natterProc is the natter binary running as a child process.
type natterProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// startNatter starts the binary in dir with env (NATTER_* only; the test's
// own NATTER_* variables are not inherited) and kills it when the test ends.
func startNatter(t *testing.T, bin, dir string, env []string) *natterProc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATTER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &natterProc{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("natter (pid %d) log:\n%s", cmd.Process.Pid, p.logs.String())
		}
	})
	return p
}

// kill9 kills the process with SIGKILL and waits until it is gone.
func (p *natterProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("natter still running 10s after SIGKILL")
	}
}

// freeAddr is a loopback address with a port free right now, so a process
// can be started (and restarted) on it.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls base/readyz until it answers 200 or the process exits.
func waitReady(t *testing.T, p *natterProc, base string, timeout time.Duration) {
	t.Helper()
	gatewaytest.WaitFor(t, timeout, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("natter exited during start: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d", resp.StatusCode)
		}
		return nil
	})
}

// crashSender is one user sending to the room in a loop.
type crashSender struct {
	n    int
	user *gatewaytest.User
	tok  *client.Token
	conn *client.Conn

	mu         sync.Mutex
	acks       map[string]natter.Ack // message id → its ack
	ackedAt    map[string]time.Time
	texts      map[string]string
	retried    map[string]bool // ids sent more than once
	pending    string          // an id sent but not acked when the sender gave up
	failures   int             // sends answered with an error (and retried)
	lastError  error
	errorKinds []string
}

func (s *crashSender) text(id string) string {
	return fmt.Sprintf("crash test message %s from sender %d", id, s.n)
}

// run sends up to max messages, each with its own id. A send that fails is
// retried with the same id (idempotency makes that safe) until acked, the
// deadline passes or quit is closed. It starts no new message once stop is
// closed.
func (s *crashSender) run(room string, max int, stop, quit <-chan struct{}, deadline time.Time) {
	for i := range max {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("s%02d-m%04d", s.n, i)
		text := s.text(id)
		s.mu.Lock()
		s.texts[id] = text
		s.mu.Unlock()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ack, err := s.conn.SendID(ctx, room, id, text)
			cancel()
			if err == nil && !ack.OK {
				err = errors.New("ack without ok")
			}
			now := time.Now()
			s.mu.Lock()
			if err == nil {
				s.acks[id], s.ackedAt[id] = ack, now
			} else {
				s.failures++
				s.retried[id] = true
				s.lastError = err
				s.errorKinds = append(s.errorKinds, errorKind(err))
			}
			s.mu.Unlock()
			if err == nil {
				break
			}
			// The server is away or restarting: retry soon, same id.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-quit:
				now = deadline
			}
			if !now.Before(deadline) {
				s.mu.Lock()
				s.pending = id
				s.mu.Unlock()
				return
			}
		}
	}
}

func (s *crashSender) ackedSince(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.ackedAt {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

func (s *crashSender) ackCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks)
}

// TestCrashLosesNoAcknowledgedMessage runs the real binary, has 20 users
// send to one room, kills the process with SIGKILL in the middle and
// starts it again on the same data dir and ports. Every acknowledged message
// must be in the history exactly once, at the seq its ack named, with seqs
// 1..N and no gaps; the clients reconnect by themselves and go on sending;
// tokens from before the crash still work.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it")
	}
	const (
		senders      = 20
		maxPerSender = 300
		killAfter    = 1000 // acked messages before the kill
		afterRestart = 10   // acked messages per sender after the restart
	)
	testDeadline := time.Now().Add(2 * time.Minute)
	bin := buildBinary(t, "natter", ".")
	work := t.TempDir()
	httpAddr := freeAddr(t)
	env := []string{
		"NATTER_HTTP_ADDR=" + httpAddr,
		"NATTER_WS_ADDR=" + freeAddr(t),
		"NATTER_NATS_ADDR=" + freeAddr(t),
		"NATTER_DATA_DIR=" + work + "/data",
		"NATTER_TOKEN_RATE=0",
		"NATTER_SEND_RATE=10000",
		"NATTER_SEND_BURST=10000",
		"NATTER_HISTORY_MAX=100000",
		"NATTER_PRESENCE_TTL=10m",
		"NATTER_LOG_LEVEL=info",
	}
	base := "http://" + httpAddr
	first := startNatter(t, bin, work, env)
	waitReady(t, first, base, 30*time.Second)

	owner := gatewaytest.NewUser(t)
	room := owner.MustNewRooms(t, base, "Crash")[0]

	// A follower that watches the whole room through the crash.
	var (
		followMu sync.Mutex
		followed []natter.Envelope
	)
	watcher := gatewaytest.NewUser(t)
	wconn := watcher.Connect(t, watcher.MustToken(t, base, room))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	follow, err := wconn.Follow(ctx, room, 0, func(e natter.Envelope) {
		followMu.Lock()
		followed = append(followed, e)
		followMu.Unlock()
	})
	cancel()
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	defer follow.Stop()

	ss := make([]*crashSender, senders)
	for i := range ss {
		u := gatewaytest.NewUser(t)
		tok := u.MustToken(t, base, room)
		s := &crashSender{n: i, user: u, tok: tok, conn: u.Connect(t, tok).Conn,
			acks: map[string]natter.Ack{}, ackedAt: map[string]time.Time{}, texts: map[string]string{}, retried: map[string]bool{}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.conn.Join(ctx, room, fmt.Sprintf("Sender %d", i))
		cancel()
		if err != nil {
			t.Fatalf("join sender %d: %v", i, err)
		}
		ss[i] = s
	}

	stop, quit := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	sendStart := time.Now()
	sendDeadline := sendStart.Add(90 * time.Second)
	for _, s := range ss {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(room, maxPerSender, stop, quit, sendDeadline) }()
	}
	stopSenders := sync.OnceFunc(func() { close(stop); wg.Wait() })
	// A failing test gives up on messages in flight at once.
	defer stopSenders()
	defer close(quit)
	total := func() int {
		n := 0
		for _, s := range ss {
			n += s.ackCount()
		}
		return n
	}

	gatewaytest.WaitFor(t, 60*time.Second, func() error {
		if n := total(); n < killAfter {
			return fmt.Errorf("%d messages acked", n)
		}
		return nil
	})
	killedAt := time.Now()
	first.kill9(t)
	ackedBeforeKill := total()
	t.Logf("SIGKILL after %d acked messages", ackedBeforeKill)

	restartAt := time.Now()
	second := startNatter(t, bin, work, env)
	waitReady(t, second, base, 30*time.Second)
	readyAfter, downFor := time.Since(restartAt), time.Since(killedAt)

	// Every sender reconnects by itself and gets messages acked again.
	var firstAckAfter, allAckAfter time.Duration
	gatewaytest.WaitFor(t, time.Until(testDeadline.Add(-30*time.Second)), func() error {
		behind := 0
		for _, s := range ss {
			n := s.ackedSince(restartAt)
			if n > 0 && firstAckAfter == 0 {
				firstAckAfter = time.Since(restartAt)
			}
			if n < afterRestart && s.ackCount() < maxPerSender {
				behind++
			}
		}
		if behind > 0 {
			return fmt.Errorf("%d senders have fewer than %d acks since the restart", behind, afterRestart)
		}
		allAckAfter = time.Since(restartAt)
		return nil
	})
	stopSenders()

	acked := 0
	for _, s := range ss {
		s.mu.Lock()
		acked += len(s.acks)
		if s.pending != "" {
			t.Errorf("sender %d gave up on %s: %v", s.n, s.pending, s.lastError)
		}
		s.mu.Unlock()
		if n := s.ackedSince(restartAt); n == 0 {
			t.Errorf("sender %d: no message acked after the restart", s.n)
		}
		if r := s.conn.Stats().Reconnects; r < 1 {
			t.Errorf("sender %d: %d reconnects, want at least 1", s.n, r)
		}
	}

	// Whatever the kill interrupted, every id acked by the first process is
	// still known to the second: sending it again returns the first ack and
	// stores nothing (the history checks below see no doubles).
	resent := 0
	for _, s := range ss {
		for id, at := range s.ackedAt {
			if at.After(killedAt) {
				continue
			}
			var ack natter.Ack
			retry(t, fmt.Sprintf("sender %d: resend %s after the restart", s.n, id), func(ctx context.Context) (err error) {
				ack, err = s.conn.SendID(ctx, room, id, s.texts[id])
				return err
			})
			resent++
			if ack.Seq != s.acks[id].Seq {
				t.Errorf("sender %d: resent %s acked with seq %d, first acked with %d", s.n, id, ack.Seq, s.acks[id].Seq)
			}
		}
	}

	// A fresh connection with a token issued before the crash.
	old := ss[0]
	fresh, err := old.user.Dial(old.tok)
	if err != nil {
		t.Fatalf("dial with a token from before the crash: %v", err)
	}
	defer fresh.Close()
	var history []natter.Envelope
	var lastSeq uint64
	readStart, pages := time.Now(), 0
	for {
		pages++
		var h natter.HistoryReply
		retry(t, fmt.Sprintf("history after %d", len(history)), func(ctx context.Context) (err error) {
			h, err = fresh.History(ctx, room, uint64(len(history)), 0)
			return err
		})
		history = append(history, h.Messages...)
		lastSeq = h.LastSeq
		if len(h.Messages) == 0 || uint64(len(history)) >= lastSeq {
			break
		}
		if got := history[len(history)-1].Seq; got != uint64(len(history)) {
			t.Fatalf("history page ends at seq %d after %d entries: a gap or a duplicate", got, len(history))
		}
	}

	t.Logf("read the history, %d entries, in %d pages in %s", len(history), pages, time.Since(readStart).Round(time.Millisecond))

	// Seqs 1..N, no gap, no duplicate.
	if uint64(len(history)) != lastSeq {
		t.Errorf("history has %d entries, last seq %d", len(history), lastSeq)
	}
	for i, e := range history {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: seqs are not 1..N", i, e.Seq)
		}
	}

	// Every message stored once; every acked one at its acked seq.
	type key struct{ from, id string }
	stored := map[key]natter.Envelope{}
	for _, e := range history {
		if e.Type != natter.TypeMessage {
			continue
		}
		k := key{e.From.ID, e.ID}
		if prev, dup := stored[k]; dup {
			t.Errorf("message %s of %s stored twice: seqs %d and %d", e.ID, e.From.ID, prev.Seq, e.Seq)
		}
		stored[k] = e
	}
	for _, s := range ss {
		for id, ack := range s.acks {
			e, ok := stored[key{s.user.ID, id}]
			switch {
			case !ok:
				t.Errorf("sender %d: acked message %s (seq %d) is not in the history", s.n, id, ack.Seq)
			case e.Seq != ack.Seq:
				t.Errorf("sender %d: message %s acked with seq %d, stored at %d", s.n, id, ack.Seq, e.Seq)
			case e.Text != s.texts[id]:
				t.Errorf("sender %d: message %s stored with text %q", s.n, id, e.Text)
			}
		}
	}
	if len(stored) != acked {
		t.Errorf("%d messages stored, %d acked: every send ended acked, so they must match", len(stored), acked)
	}

	// The follower got the same entries, in the same order, through the crash.
	gatewaytest.WaitFor(t, 60*time.Second, func() error {
		if d := follow.Delivered(); d < lastSeq {
			return fmt.Errorf("follower delivered up to %d of %d", d, lastSeq)
		}
		return nil
	})
	followMu.Lock()
	for i, e := range followed {
		if i >= len(history) || e.Seq != history[i].Seq || e.ID != history[i].ID || e.From.ID != history[i].From.ID {
			t.Errorf("follower entry %d (seq %d, %s) differs from the history", i, e.Seq, e.ID)
			break
		}
	}
	followMu.Unlock()

	// Messages the first process stored but whose ack the crash took: a
	// resend with the same id found them (JetStream's deduplication,
	// rebuilt from the store at restart) instead of storing them again.
	resentStored, retried := 0, 0
	failures := 0
	kinds := map[string]int{}
	for _, s := range ss {
		failures += s.failures
		for _, k := range s.errorKinds {
			kinds[k]++
		}
		retried += len(s.retried)
		for id := range s.retried {
			if stored[key{s.user.ID, id}].SentAt.Before(killedAt) {
				resentStored++
			}
		}
	}
	t.Logf("acked %d messages (%d before the kill, at %.0f/s; %d after), %d stored, last seq %d",
		acked, ackedBeforeKill, float64(ackedBeforeKill)/killedAt.Sub(sendStart).Seconds(), acked-ackedBeforeKill, len(stored), lastSeq)
	t.Logf("%d failed sends retried with the same id (%v); %d of %d messages sent again had been stored before the kill and were answered with their first ack; %d messages acked before the kill sent again after the restart, all answered with their first ack",
		failures, kinds, resentStored, retried, resent)
	t.Logf("recovery: ready %s after the restart (%s after the kill), first ack %s after the restart, every sender acked %d again %s after it",
		readyAfter.Round(time.Millisecond), downFor.Round(time.Millisecond),
		firstAckAfter.Round(time.Millisecond), afterRestart, allAckAfter.Round(time.Millisecond))
}

// retry runs f with a 10 s deadline until it succeeds, for at most 30 s:
// the checks after the crash must not fail on a machine that is merely slow.
func retry(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v; again", what, err)
	}
}

// errorKind names a send error without the subject and user in it.
func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, nats.ErrNoResponders):
		return "no responders"
	}
	var ne *natter.Error
	if errors.As(err, &ne) {
		return ne.Code
	}
	msg := err.Error()
	return msg[strings.LastIndex(msg, ": ")+1:]
}
