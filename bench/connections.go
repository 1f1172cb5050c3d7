package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
)

// ConnectionsOptions are the parameters of the connections scenario.
type ConnectionsOptions struct {
	Clients     int           // idle clients, each its own key, token and connection (10 000)
	RoomSize    int           // clients per room (20)
	Concurrency int           // connects in flight at once (32)
	TokenTTL    time.Duration // life the clients ask for their first tokens, whole seconds (60 s)
	StormRate   float64       // messages per second the senders send around the storm, in all (200)
	StormWait   time.Duration // longest wait for the tokens to expire; beyond it, no storm (3 min)
	Timeout     time.Duration // bound of the whole scenario (15 min)
}

func (o ConnectionsOptions) withDefaults() ConnectionsOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Clients, 10_000)
	def(&o.RoomSize, 20)
	def(&o.Concurrency, 32)
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Minute
	}
	if o.StormRate <= 0 {
		o.StormRate = 200
	}
	if o.StormWait <= 0 {
		o.StormWait = 3 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	return o
}

const (
	// defaultLocalPorts is Linux's default ephemeral port range, 32768-60999.
	defaultLocalPorts = 60999 - 32768 + 1
	// fdReserve is the files kept, in this process and in natter, for all
	// but the clients' sockets: HTTP connections, the senders, the
	// runtime, natter's listeners, store and own connections.
	fdReserve = 200
	// httpConns bounds the HTTP connections to the TVM, in every phase.
	httpConns = 32
	// stormTimeout bounds the wait for every client to be back and caught
	// up after the last token expired, and for the last messages after.
	stormTimeout = 2 * time.Minute
	// maxGaps is how many skipped seq ranges a client keeps.
	maxGaps = 16
	// stormLead is how long before the first expiry the senders start.
	stormLead = 2 * time.Second
	// idleLead is how long before the first expiry the idle RSS is read,
	// leaving time to start the senders.
	idleLead = 7 * time.Second
	// stopGrace is how long a sender still tries to have a message
	// acknowledged once told to stop.
	stopGrace = 30 * time.Second
)

// idle is one client of the connections scenario.
type idle struct {
	u      *client.Identity
	tok    *client.Token
	room   int
	conn   *client.Conn
	follow *client.Room

	last     atomic.Uint64 // seq of the last entry handled
	mu       sync.Mutex
	gaps     [][2]uint64  // seqs skipped, first and last
	down, up atomic.Int64 // since base: the first disconnect, the reconnect after it
	online   atomic.Bool  // connected, as the connection's handlers tell
}

// handle sees every entry of the room once, in seq order (client.Room's
// promise); a seq that jumps is a gap, which a loss would show as.
func (c *idle) handle(e natter.Envelope) {
	if last := c.last.Load(); e.Seq != last+1 {
		c.mu.Lock()
		if len(c.gaps) < maxGaps {
			c.gaps = append(c.gaps, [2]uint64{last + 1, e.Seq - 1})
		}
		c.mu.Unlock()
	}
	c.last.Store(e.Seq)
}

// has tells whether the client handled seq.
func (c *idle) has(seq uint64) bool {
	if c.last.Load() < seq {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.gaps {
		if seq >= g[0] && seq <= g[1] {
			return false
		}
	}
	// More gaps than kept: count nothing as had.
	return len(c.gaps) < maxGaps
}

// runConnections connects N idle clients, each with its own key and token,
// to rooms of RoomSize, following their room; it measures the connect rate
// and latency and the server's CPU and RSS for it. Then the reconnect
// storm: the clients' tokens expire together, natter drops them, each gets
// a new token and reconnects and reads what it missed from the history,
// while a few senders keep sending; every acknowledged message must reach
// every client of its room.
func runConnections(ctx context.Context, srv Server, o ConnectionsOptions) (*Scenario, error) {
	s := &Scenario{Name: "connections"}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	n := fitClients(s, srv, o.Clients)
	if n <= 0 {
		return s, errors.New("no room for a single client within the open file limits")
	}
	rooms := (n + o.RoomSize - 1) / o.RoomSize
	s.param("clients", n)
	s.param("room size", o.RoomSize)
	s.param("concurrency", o.Concurrency)
	s.param("storm rate", o.StormRate)

	// No timeout of its own: in the storm, renewals wait for one of the
	// connections, within the time their context gives them.
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: httpConns, MaxIdleConnsPerHost: httpConns}}
	defer hc.CloseIdleConnections()
	api := &client.API{BaseURL: srv.URL(), HTTP: hc}
	base := time.Now()
	since := func() int64 { return int64(time.Since(base)) }

	roomIDs := make([]string, rooms)
	if err := parallel(ctx, rooms, setupWorkers, func(r int) error {
		id, err := newRoom(ctx, newAPI(srv.URL()), fmt.Sprintf("bench connections %d", r))
		roomIDs[r] = id
		return err
	}); err != nil {
		return s, fmt.Errorf("create rooms: %w", err)
	}

	// Every token is asked for before any connect, as fast as the TVM
	// gives them and with the same short life, so that they expire as
	// close together as natter's whole-second expiry allows. The tokens
	// renewed in the storm live natter's full lifetime, as they would.
	life := int64(o.TokenTTL / time.Second)
	if life < 1 || o.TokenTTL%time.Second != 0 {
		return s, fmt.Errorf("the first tokens' life must be whole seconds, not %s", o.TokenTTL)
	}
	clients := make([]*idle, n)
	t0 := time.Now()
	if err := parallel(ctx, n, httpConns, func(i int) error {
		u, err := client.NewIdentity()
		if err != nil {
			return err
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tok, err := requestRetrying(tctx, api, natter.TokenRequest{PublicKey: u.ID, Name: "idle", Rooms: roomIDs[i/o.RoomSize : i/o.RoomSize+1], ExpiresIn: life})
		cancel()
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		for _, s := range tok.Servers {
			if err := CheckLoopback(s); err != nil {
				return err
			}
		}
		clients[i] = &idle{u: u, tok: tok, room: i / o.RoomSize}
		return nil
	}); err != nil {
		return s, err
	}
	s.fig("token requests", float64(n), "")
	s.fig("token requests time", time.Since(t0).Seconds(), "s")
	first, last := clients[0].tok.ExpiresAt, clients[0].tok.ExpiresAt
	for _, c := range clients {
		first, last = minTime(first, c.tok.ExpiresAt), maxTime(last, c.tok.ExpiresAt)
	}
	s.param("token lifetime", first.Sub(t0).Round(time.Second))

	dialers, err := sourceDialers(s, clients[0].tok.Servers, n)
	if err != nil {
		return s, err
	}
	s.param("source addresses", max(1, len(dialers)))

	// The connect phase.
	var (
		asyncErrs atomic.Int64
		tries     atomic.Int64    // reconnect attempts
		renewals  [2]atomic.Int64 // renewed, failed
		renewErr  atomic.Value    // the first failure's message
		mu        sync.Mutex
		lat       latencies
		failed    int
		firstErr  error
	)
	before, beforeErr := srv.Usage(ctx)
	m := startMeter(ctx, srv)
	start, clientCPU := time.Now(), cpuTime()
	defer func() {
		parallel(context.Background(), n, setupWorkers*4, func(i int) error {
			if c := clients[i]; c.conn != nil {
				if c.follow != nil {
					c.follow.Stop()
				}
				c.conn.Close()
			}
			return nil
		})
	}()
	parallel(ctx, n, o.Concurrency, func(i int) error {
		c := clients[i]
		room := roomIDs[c.room]
		opts := []nats.Option{
			// Counted, not printed: every client hears its token expire.
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { asyncErrs.Add(1) }),
			nats.DisconnectErrHandler(func(*nats.Conn, error) {
				c.online.Store(false)
				c.down.CompareAndSwap(0, since())
			}),
			// A refused reconnect is tried again, not the end.
			nats.IgnoreAuthErrorAbort(),
			// As the web app: the first reconnect 1 to 2 s after a
			// disconnect, then exponential backoff with full jitter; a
			// connect given 10 s. Every attempt is counted.
			nats.CustomReconnectDelay(func(n int) time.Duration {
				tries.Add(1)
				return client.Backoff(n, time.Second, time.Second)
			}),
			nats.Timeout(10 * time.Second),
		}
		if len(dialers) > 0 {
			opts = append(opts, nats.SetCustomDialer(dialers[i%len(dialers)]))
		}
		t := time.Now()
		conn, err := client.Dial(c.u, c.tok, opts...)
		if err == nil {
			conn.RenewWith(func(ctx context.Context) (*client.Token, error) {
				tok, err := tokenRetrying(ctx, api, c.u, "idle", room)
				if err != nil {
					renewals[1].Add(1)
					renewErr.CompareAndSwap(nil, err.Error())
				} else {
					renewals[0].Add(1)
				}
				return tok, err
			})
			conn.OnReconnect(func() {
				if c.down.Load() != 0 {
					c.up.CompareAndSwap(0, since())
				}
				c.online.Store(true)
			})
			c.online.Store(true)
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c.follow, err = conn.Follow(fctx, room, 0, c.handle)
			cancel()
			c.conn = conn
			if err != nil {
				err = fmt.Errorf("follow: %w", err)
			}
		}
		d := time.Since(t)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			firstErr = cmpErr(firstErr, err)
			return nil
		}
		lat.add(d)
		return nil
	})
	connectTime := time.Since(start)
	clientCPU = cpuTime() - clientCPU
	cpu, measured := m.cpu(ctx)
	after, afterErr := srv.Usage(ctx)
	connected := lat.n
	s.fig("connected", float64(connected), "")
	s.fig("connect failed", float64(failed), "")
	s.fig("connect time", connectTime.Seconds(), "s")
	s.fig("connects/s", per(connected, connectTime), "/s")
	s.fig("connect p50", lat.quantile(0.50), "ms")
	s.fig("connect p99", lat.quantile(0.99), "ms")
	s.serverCPU("connect: ", cpu, measured, "connects", float64(connected))
	// The clients share the machine's cores with natter.
	s.fig("connect: client CPU", clientCPU.Seconds(), "s")
	if beforeErr == nil && afterErr == nil {
		s.fig("server RSS before", float64(before.RSS)/(1<<20), "MiB")
		s.fig("server RSS after", float64(after.RSS)/(1<<20), "MiB")
		s.fig("server RSS per connection", ratio(float64(after.RSS-before.RSS)/1024, float64(connected)), "KiB")
	}
	if firstErr != nil {
		return s, fmt.Errorf("%d of %d clients did not connect, the first: %w", failed, n, firstErr)
	}
	if ctx.Err() != nil {
		return s, ctx.Err()
	}

	// The reconnect storm.
	wait := time.Until(first)
	switch {
	case wait > o.StormWait:
		s.note("no reconnect storm: the tokens expire in %s, later than the %s it may wait; ask for a shorter life (-conn-token-ttl)", wait.Round(time.Second), o.StormWait)
		return s, nil
	case wait < stormLead:
		return s, fmt.Errorf("the tokens expire %s after the connect phase, too soon to start the senders (%s): ask for a longer life (-conn-token-ttl)", wait.Round(time.Millisecond), stormLead)
	}
	// What idle connections hold once the connects are over: natter
	// returns the garbage of a burst to the OS (package memory) once it
	// has been calm for 15 s, within 30 s of the last connect.
	if idleAt := first.Add(-idleLead); beforeErr == nil && time.Until(idleAt) > 0 {
		sleepUntil(ctx, idleAt)
		if idle, err := srv.Usage(ctx); err == nil {
			s.fig("server RSS idle", float64(idle.RSS)/(1<<20), "MiB")
			s.fig("server RSS per idle connection", ratio(float64(idle.RSS-before.RSS)/1024, float64(connected)), "KiB")
			s.fig("idle for", time.Since(start.Add(connectTime)).Seconds(), "s")
		}
	}
	st := &storm{clients: clients, rooms: roomIDs, base: base}
	if n := st.countDown(); n > 0 {
		s.note("%d clients were disconnected before their token expired", n)
	}
	for _, c := range clients {
		c.down.Store(0)
		c.up.Store(0)
	}
	tries.Store(0)
	err = st.run(ctx, s, srv, api, first, last, o.StormRate, &renewals, &tries)
	if e, ok := renewErr.Load().(string); ok {
		s.note("%d token renewals failed, the first: %s", renewals[1].Load(), e)
	}
	return s, err
}

// storm is the reconnect storm of the connections scenario.
type storm struct {
	clients []*idle
	rooms   []string
	base    time.Time

	mu     sync.Mutex
	acked  [][]uint64 // per room, the seqs acknowledged to the senders
	ackAt  []int64    // since base, when each acknowledgement came
	maxAck []uint64   // per room

	retries, rejoins, refused, unacked atomic.Int64
	firstErr                           atomic.Value
}

func (st *storm) ack(room int, seq uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.acked[room] = append(st.acked[room], seq)
	st.ackAt = append(st.ackAt, int64(time.Since(st.base)))
	st.maxAck[room] = max(st.maxAck[room], seq)
}

// isBack tells whether c reconnected after the storm's disconnect and is
// connected. (Not nats.Conn.IsConnected: its lock is held for a whole
// reconnect attempt.)
func (c *idle) isBack() bool {
	return c.up.Load() != 0 && c.online.Load()
}

// back counts the clients that reconnected after the storm's disconnect
// and have every message acknowledged so far.
func (st *storm) back() (reconnected, caughtUp int) {
	st.mu.Lock()
	maxAck := slices.Clone(st.maxAck)
	st.mu.Unlock()
	for _, c := range st.clients {
		if !c.isBack() {
			continue
		}
		reconnected++
		if c.last.Load() >= maxAck[c.room] {
			caughtUp++
		}
	}
	return reconnected, caughtUp
}

func (st *storm) run(ctx context.Context, s *Scenario, srv Server, api *client.API, first, last time.Time, rate float64, renewals *[2]atomic.Int64, tries *atomic.Int64) error {
	n := len(st.clients)
	st.acked = make([][]uint64, len(st.rooms))
	st.maxAck = make([]uint64, len(st.rooms))
	s.fig("storm: token expiry spread", last.Sub(first).Seconds(), "s")

	// A few senders, each in at most natter.MaxRoomsPerToken rooms, so
	// that every room gets messages.
	nSenders := max((len(st.rooms)+natter.MaxRoomsPerToken-1)/natter.MaxRoomsPerToken, min(4, len(st.rooms)))
	senders := make([]*stormSender, nSenders)
	defer func() {
		for _, sd := range senders {
			if sd != nil && sd.conn != nil {
				sd.conn.Close()
			}
		}
	}()
	if err := parallel(ctx, nSenders, setupWorkers, func(k int) error {
		sd := &stormSender{k: k}
		for r := k; r < len(st.rooms); r += nSenders {
			sd.rooms = append(sd.rooms, r)
		}
		var err error
		sd.u, err = client.NewIdentity()
		if err != nil {
			return err
		}
		ids := make([]string, len(sd.rooms))
		for i, r := range sd.rooms {
			ids[i] = st.rooms[r]
		}
		name := fmt.Sprintf("sender %d", k)
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tok, err := tokenRetrying(tctx, api, sd.u, name, ids...)
		cancel()
		if err != nil {
			return fmt.Errorf("sender token: %w", err)
		}
		sd.conn, err = client.Dial(sd.u, tok, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}), nats.IgnoreAuthErrorAbort())
		if err != nil {
			return fmt.Errorf("sender dial: %w", err)
		}
		sd.conn.RenewWith(func(ctx context.Context) (*client.Token, error) { return tokenRetrying(ctx, api, sd.u, name, ids...) })
		senders[k] = sd
		for _, id := range ids {
			jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := sd.conn.Join(jctx, id, name)
			cancel()
			if err != nil {
				return fmt.Errorf("sender join: %w", err)
			}
		}
		sd.joined = time.Now()
		return nil
	}); err != nil {
		return err
	}
	if late := time.Since(first.Add(-stormLead)); late > 0 {
		s.note("the senders were ready %s after they should have started, %s before the first expiry", late.Round(time.Millisecond), stormLead)
	}

	// The senders start shortly before the first expiry and stop once
	// every client is back and caught up, or at the deadline.
	sleepUntil(ctx, first.Add(-stormLead))
	deadline := last.Add(stormTimeout)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopSenders := func() { stopOnce.Do(func() { close(stop) }) }
	defer stopSenders()
	var wg sync.WaitGroup
	interval := time.Duration(float64(nSenders) / rate * float64(time.Second))
	sendStart := time.Now()
	for _, sd := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sd.run(ctx, st, sendStart.Add(interval*time.Duration(sd.k)/time.Duration(nSenders)), interval, stop, deadline.Add(stormTimeout))
		}()
	}

	// The meter starts just before the first expiry.
	sleepUntil(ctx, first.Add(-200*time.Millisecond))
	m := startMeter(ctx, srv)
	clientCPU := cpuTime()
	for ctx.Err() == nil && time.Now().Before(deadline) && st.countDown() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	var allBack time.Time
	reconnected, caughtUp := 0, 0
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if reconnected, caughtUp = st.back(); caughtUp == n {
			allBack = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cpu, measured := m.cpu(ctx)
	clientCPU = cpuTime() - clientCPU
	afterStorm, usageErr := srv.Usage(ctx)
	stopSenders()
	wg.Wait()

	// Every message acknowledged must reach every client of its room that
	// is back; the last ones may still be on their way.
	for end := time.Now().Add(stormTimeout); ctx.Err() == nil && time.Now().Before(end) && st.lost() > 0; {
		time.Sleep(20 * time.Millisecond)
	}
	lost := st.lost()

	var reconnect latencies
	disconnected, firstDown := 0, int64(math.MaxInt64)
	for _, c := range st.clients {
		d, u := c.down.Load(), c.up.Load()
		if d != 0 {
			disconnected++
			firstDown = min(firstDown, d)
		}
		if d != 0 && u > d {
			reconnect.add(time.Duration(u - d))
		}
	}
	ackedDuring, ackedAll := 0, 0
	st.mu.Lock()
	ackedAll = len(st.ackAt)
	for _, at := range st.ackAt {
		if at >= firstDown && (allBack.IsZero() || at <= int64(allBack.Sub(st.base))) {
			ackedDuring++
		}
	}
	st.mu.Unlock()

	s.fig("storm: disconnected", float64(disconnected), "")
	s.fig("storm: reconnected", float64(reconnected), "")
	s.fig("storm: not back", float64(n-reconnected), "")
	s.fig("storm: reconnect attempts", float64(tries.Load()), "")
	s.fig("storm: tokens renewed", float64(renewals[0].Load()), "")
	s.fig("storm: renewals failed", float64(renewals[1].Load()), "")
	if r := renewals[0].Load(); r > int64(n) {
		s.note("%d token renewals for %d clients: the storm outlasted the tokens' lifetime, and the tokens renewed together expired together again", r, n)
	}
	if !allBack.IsZero() && firstDown != math.MaxInt64 {
		s.fig("storm: all back and caught up after", allBack.Sub(st.base.Add(time.Duration(firstDown))).Seconds(), "s")
	}
	s.fig("storm: reconnect p50", reconnect.quantile(0.50), "ms")
	s.fig("storm: reconnect p99", reconnect.quantile(0.99), "ms")
	s.serverCPU("storm: ", cpu, measured, "reconnects", float64(reconnect.n))
	s.fig("storm: client CPU", clientCPU.Seconds(), "s")
	if usageErr == nil {
		s.fig("storm: server RSS after", float64(afterStorm.RSS)/(1<<20), "MiB")
	}
	s.fig("storm: acked during", float64(ackedDuring), "")
	s.fig("storm: acked in all", float64(ackedAll), "")
	s.fig("storm: send retries", float64(st.retries.Load()), "")
	s.fig("storm: sender rejoins", float64(st.rejoins.Load()), "")
	s.fig("storm: lost", float64(lost), "")

	var errs []error
	if allBack.IsZero() {
		errs = append(errs, fmt.Errorf("after the storm %d of %d clients reconnected and %d caught up within %s of the last expiry", reconnected, n, caughtUp, stormTimeout))
	}
	if lost > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged messages did not reach every client of their room", lost))
	}
	if u := st.unacked.Load() + st.refused.Load(); u > 0 {
		e, _ := st.firstErr.Load().(string)
		errs = append(errs, fmt.Errorf("%d storm messages refused or never acknowledged, the first: %s", u, e))
	}
	if ackedDuring == 0 && ctx.Err() == nil {
		errs = append(errs, errors.New("no message was acknowledged during the storm"))
	}
	return errors.Join(append(errs, ctx.Err())...)
}

// countDown counts the clients disconnected since the last reset.
func (st *storm) countDown() int {
	n := 0
	for _, c := range st.clients {
		if c.down.Load() != 0 {
			n++
		}
	}
	return n
}

// lost counts the acknowledged messages that some client of their room
// lacks, of the clients that are back.
func (st *storm) lost() int {
	st.mu.Lock()
	acked := make([][]uint64, len(st.acked))
	for r, seqs := range st.acked {
		acked[r] = slices.Clone(seqs)
	}
	st.mu.Unlock()
	missing := map[[2]uint64]bool{}
	for _, c := range st.clients {
		if !c.isBack() {
			continue
		}
		for _, seq := range acked[c.room] {
			if !c.has(seq) {
				missing[[2]uint64{uint64(c.room), seq}] = true
			}
		}
	}
	return len(missing)
}

// stormSender sends to its rooms in turn at a fixed rate.
type stormSender struct {
	k      int
	u      *client.Identity
	rooms  []int
	conn   *client.Conn
	joined time.Time
}

// run sends one message per interval from start until stop, each until
// it is acknowledged (resending the same id, which natter stores once) or
// until giveUp, or stopGrace after stop.
func (sd *stormSender) run(ctx context.Context, st *storm, start time.Time, interval time.Duration, stop <-chan struct{}, giveUp time.Time) {
	const maxMessages = 1_000_000
	next := start
	lastHere := sd.joined
	for i := 0; i < maxMessages && ctx.Err() == nil; i++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(interval)
		r := sd.rooms[i%len(sd.rooms)]
		room := st.rooms[r]
		if time.Since(lastHere) > 20*time.Second && !closed(stop) {
			// Presence lapses without a heartbeat, and a sender must be
			// present to send.
			for _, rr := range sd.rooms {
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				sd.conn.Here(hctx, st.rooms[rr])
				cancel()
			}
			lastHere = time.Now()
		}
		id := nuid.Next()
		text := fmt.Sprintf("storm message %d of sender %d", i, sd.k)
		for ctx.Err() == nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ack, err := sd.conn.SendID(sctx, room, id, text)
			cancel()
			if err == nil {
				st.ack(r, ack.Seq)
				break
			}
			if closed(stop) {
				giveUp = minTime(giveUp, time.Now().Add(stopGrace))
			}
			if time.Now().After(giveUp) {
				st.unacked.Add(1)
				st.firstErr.CompareAndSwap(nil, err.Error())
				break
			}
			var ne *natter.Error
			if errors.As(err, &ne) && ne.Code == natter.ENotJoined {
				// Presence lapses when the heartbeats fail for a while,
				// as they may in the storm: join again, send again.
				st.rejoins.Add(1)
				jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				sd.conn.Join(jctx, room, fmt.Sprintf("sender %d", sd.k))
				cancel()
				continue
			}
			if errors.As(err, &ne) && ne.Code != natter.ERateLimited {
				st.refused.Add(1)
				st.firstErr.CompareAndSwap(nil, err.Error())
				break
			}
			// Disconnected, timed out or rate limited: the same id again.
			st.retries.Add(1)
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

// fitClients is n, or fewer when n clients' sockets would not fit in the
// open file limits of this process or of natter (each client takes one in
// each), said in a note with the numbers.
func fitClients(s *Scenario, srv Server, n int) int {
	fit := n
	limit, open, err := openFiles(os.Getpid())
	if err != nil {
		s.note("open file limits not checked: %v", err)
		return n
	}
	why := fmt.Sprintf("this process may have %d files open (ulimit -n) and has %d", limit, open)
	fit = min(fit, limit-open-fdReserve)
	if p, ok := srv.(*Process); ok {
		if limit, open, err := openFiles(p.Pid()); err == nil {
			why += fmt.Sprintf(", natter (pid %d) may have %d and has %d", p.Pid(), limit, open)
			fit = min(fit, limit-open-fdReserve)
		}
	} else {
		why += "; natter's own limit is not known here"
	}
	if fit < n {
		s.note("%d clients asked, %d run: each takes a socket here and one in natter; %s; %d are kept for the rest", n, max(fit, 0), why, fdReserve)
	}
	return max(fit, 0)
}

// sourceDialers spread n clients, and as many reconnects, over enough
// loopback source addresses for the ephemeral ports of each; nil when one
// address is enough.
func sourceDialers(s *Scenario, servers []string, n int) ([]nats.CustomDialer, error) {
	ports := localPorts()
	addrs := (2*n + ports - 1) / ports
	if addrs <= 1 || len(servers) == 0 {
		return nil, nil
	}
	u, err := url.Parse(servers[0])
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(u.Hostname()).To4()
	if ip == nil || !ip.IsLoopback() {
		s.note("%d connections and as many reconnects need %d source addresses of %d ephemeral ports, but the WebSocket URL %s is not on 127.0.0.0/8: one address is used", n, addrs, ports, servers[0])
		return nil, nil
	}
	var ds []nats.CustomDialer
	for i := range addrs {
		local := net.IPv4(127, 0, 0, byte(1+i))
		ds = append(ds, &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: local}})
	}
	s.note("connections spread over %d source addresses, 127.0.0.1 to 127.0.0.%d: %d ephemeral ports each", addrs, addrs, ports)
	return ds, nil
}

// closed tells whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	if d := time.Until(t); d > 0 {
		sleep(ctx, d)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
