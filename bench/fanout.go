package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
)

// FanoutOptions are the parameters of the fanout scenario.
type FanoutOptions struct {
	Rooms    int           // rooms (50)
	Members  int           // members per room, each its own connection (20)
	Senders  int           // senders per room, among the members (1)
	Rate     float64       // total messages per second of the fixed-rate phases (1000)
	Duration time.Duration // length of each of the four phases (5 s)
	Size     int           // bytes of each message's text (100)
	Window   int           // sends in flight per sender in the "natter max" phase (8)
	Max      int           // messages per sender per phase at most (1 000 000)
}

func (o FanoutOptions) withDefaults() FanoutOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Rooms, 50)
	def(&o.Members, 20)
	def(&o.Senders, 1)
	def(&o.Size, 100)
	def(&o.Max, 1_000_000)
	def(&o.Window, 8)
	o.Senders = min(o.Senders, o.Members)
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	return o
}

// drainTimeout bounds the wait for deliveries after a phase's last send.
const drainTimeout = 10 * time.Second

// sink collects one subscription's deliveries of the current phase.
type sink struct {
	mu  sync.Mutex
	lat latencies
}

// fanout is the state shared by the members' subscriptions.
type fanout struct {
	base      time.Time // payloads carry their send time as time since base
	phase     atomic.Int64
	delivered atomic.Int64
	last      atomic.Int64 // time since base of the last delivery
	sinks     []*sink
}

// payload is "<phase> <ns since base> xxx…", size bytes at least.
func (f *fanout) payload(size int) string {
	s := strconv.FormatInt(f.phase.Load(), 10) + " " + strconv.FormatInt(int64(time.Since(f.base)), 10) + " "
	if n := size - len(s); n > 0 {
		s += strings.Repeat("x", n)
	}
	return s
}

func (f *fanout) deliver(sk *sink, text string) {
	now := time.Since(f.base)
	ph, rest, ok := strings.Cut(text, " ")
	if !ok || ph != strconv.FormatInt(f.phase.Load(), 10) {
		return
	}
	sent, _, _ := strings.Cut(rest, " ")
	ns, err := strconv.ParseInt(sent, 10, 64)
	if err != nil {
		return
	}
	sk.mu.Lock()
	sk.lat.add(now - time.Duration(ns))
	sk.mu.Unlock()
	f.delivered.Add(1)
	f.last.Store(int64(now))
}

// runFanout: R rooms of M members; P senders per room send signed messages
// through the gateway at a fixed total rate, then as fast as their acks
// allow with a window of sends in flight; then the same connections publish plain core-NATS messages (on
// their typing subjects, the only ones a member may publish to the whole
// room) in the same two ways. Every member counts every delivery. The
// server's CPU time and the benchmark process's (the clients') are taken
// over each phase.
func runFanout(ctx context.Context, srv Server, o FanoutOptions) (*Scenario, error) {
	s := &Scenario{Name: "fanout"}
	s.param("rooms", o.Rooms)
	s.param("members", o.Members)
	s.param("senders/room", o.Senders)
	s.param("rate", o.Rate)
	s.param("duration/phase", o.Duration)
	s.param("size", o.Size)
	s.param("window", o.Window)

	api := newAPI(srv.URL())
	f := &fanout{base: time.Now()}
	f.phase.Store(-1)
	type sender struct {
		room string
		m    *member
	}
	var senders []sender
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	setup, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Rooms are set up side by side, the members of one room one by one.
	var mu sync.Mutex
	err := parallel(setup, o.Rooms, setupWorkers, func(r int) error {
		room, err := newRoom(setup, api, fmt.Sprintf("bench fanout %d", r))
		if err != nil {
			return err
		}
		for i := range o.Members {
			m, err := joinRoom(setup, api, room, fmt.Sprintf("member %d", i))
			if err != nil {
				return fmt.Errorf("room %d member %d: %w", r, i, err)
			}
			msgs, typing := &sink{}, &sink{}
			mu.Lock()
			conns = append(conns, m.conn.Conn)
			f.sinks = append(f.sinks, msgs, typing)
			if i < o.Senders {
				senders = append(senders, sender{room, m})
			}
			mu.Unlock()
			if _, err := m.conn.Subscribe(natter.RoomSubject(room, natter.TopicMsgs), func(msg *nats.Msg) {
				var e natter.Envelope
				if json.Unmarshal(msg.Data, &e) == nil && e.Type == natter.TypeMessage {
					f.deliver(msgs, e.Text)
				}
			}); err != nil {
				return err
			}
			if _, err := m.conn.Subscribe(natter.TypingSubjects(room), func(msg *nats.Msg) {
				f.deliver(typing, string(msg.Data))
			}); err != nil {
				return err
			}
			if err := m.conn.FlushWithContext(setup); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s, err
	}

	var results [4]phaseResult
	phases := []struct {
		name string
		raw  bool
		rate float64
	}{
		{"natter fixed", false, o.Rate},
		{"natter max", false, 0},
		{"raw fixed", true, o.Rate},
		{"raw max", true, 0},
	}
	for i, ph := range phases {
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		f.phase.Store(int64(i))
		f.delivered.Store(0)
		for _, sk := range f.sinks {
			sk.mu.Lock()
			sk.lat = latencies{}
			sk.mu.Unlock()
		}
		var (
			sent, accepted, refused, failed atomic.Int64
			firstErr                        atomic.Value
			wg                              sync.WaitGroup
		)
		interval := time.Duration(0)
		if ph.rate > 0 {
			interval = time.Duration(float64(len(senders)) / ph.rate * float64(time.Second))
		}
		m := startMeter(ctx, srv)
		start, cpu0 := time.Now(), cpuTime()
		deadline := start.Add(o.Duration)
		// At the fixed rate each sender sends one message after the other;
		// as fast as acks allow, it keeps Window sends in flight.
		workers := 1
		if !ph.raw && interval == 0 {
			workers = o.Window
		}
		for k, sd := range senders {
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := sd.m.conn
					subject := natter.UserSubject(sd.room, natter.OpTyping, sd.m.u.ID)
					// Spread the senders' ticks over one interval.
					next := start.Add(interval * time.Duration(k) / time.Duration(len(senders)))
					for n := 0; n < o.Max/workers+1 && ctx.Err() == nil; n++ {
						if interval > 0 {
							time.Sleep(time.Until(next))
							next = next.Add(interval)
						}
						if !time.Now().Before(deadline) {
							break
						}
						sent.Add(1)
						text := f.payload(o.Size)
						if ph.raw {
							if err := c.Publish(subject, []byte(text)); err != nil {
								failed.Add(1)
								firstErr.CompareAndSwap(nil, err.Error())
								continue
							}
							accepted.Add(1)
							// A flush is the raw client's acknowledgement.
							if interval == 0 && n%64 == 63 {
								c.Flush()
							}
							continue
						}
						sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
						_, err := c.Send(sctx, sd.room, text)
						cancel()
						var ne *natter.Error
						switch {
						case err == nil:
							accepted.Add(1)
						case errors.As(err, &ne):
							// Refusals are figures (a natter with its
							// limits on refuses), not failures.
							refused.Add(1)
						default:
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
					}
					if ph.raw {
						c.Flush()
					}
				}()
			}
		}
		wg.Wait()
		sendTime := time.Since(start)
		want := accepted.Load() * int64(o.Members)
		for drain := time.Now(); f.delivered.Load() < want && time.Since(drain) < drainTimeout && ctx.Err() == nil; {
			time.Sleep(10 * time.Millisecond)
		}
		f.phase.Store(-1) // late deliveries no longer count
		cpu := cpuTime() - cpu0
		srvCPU, measured := m.cpu(ctx)
		var lat latencies
		for _, sk := range f.sinks {
			sk.mu.Lock()
			lat.merge(&sk.lat)
			sk.mu.Unlock()
		}
		until := time.Duration(f.last.Load()) - start.Sub(f.base)
		res := phaseResult{
			sent: sent.Load(), accepted: accepted.Load(), refused: refused.Load(), failed: failed.Load(),
			delivered: f.delivered.Load(), sendTime: sendTime, deliverTime: max(until, sendTime), cpu: cpu, lat: &lat,
			serverCPU: srvCPU, measured: measured,
		}
		if e := firstErr.Load(); e != nil {
			res.firstErr = e.(string)
		}
		results[i] = res
		res.figures(s, ph.name, !ph.raw)
	}
	nMax, rMax := results[1].deliveredRate(), results[3].deliveredRate()
	s.fig("natter/raw delivered/s at max", ratio(nMax, rMax), "")
	s.fig("natter/raw p99 at fixed rate", ratio(results[0].lat.quantile(0.99), results[2].lat.quantile(0.99)), "")
	if results[0].measured && results[2].measured {
		s.fig("natter/raw delivered/server CPU-s at fixed rate", ratio(results[0].perServerCPU(), results[2].perServerCPU()), "")
	}
	if results[1].measured && results[3].measured {
		s.fig("natter/raw delivered/server CPU-s at max", ratio(results[1].perServerCPU(), results[3].perServerCPU()), "")
	}
	for i, r := range results {
		if r.firstErr != "" {
			return s, fmt.Errorf("%s: %d failed, the first: %s", phases[i].name, r.failed, r.firstErr)
		}
	}
	return s, nil
}

type phaseResult struct {
	sent, accepted, refused, failed, delivered int64
	sendTime, deliverTime, cpu, serverCPU      time.Duration
	measured                                   bool // serverCPU is
	lat                                        *latencies
	firstErr                                   string
}

func (r phaseResult) deliveredRate() float64 { return per(int(r.delivered), r.deliverTime) }

func (r phaseResult) perServerCPU() float64 {
	return ratio(float64(r.delivered), r.serverCPU.Seconds())
}

func (r phaseResult) figures(s *Scenario, name string, acked bool) {
	s.fig(name+": sent", float64(r.sent), "")
	s.fig(name+": accepted", float64(r.accepted), "")
	if acked {
		s.fig(name+": refused", float64(r.refused), "")
	}
	s.fig(name+": failed", float64(r.failed), "")
	s.fig(name+": delivered", float64(r.delivered), "")
	s.fig(name+": accepted/s", per(int(r.accepted), r.sendTime), "/s")
	s.fig(name+": delivered/s", r.deliveredRate(), "/s")
	// The benchmark process: the clients, sending and counting.
	s.fig(name+": client CPU", r.cpu.Seconds(), "s")
	s.fig(name+": delivered/client CPU-s", ratio(float64(r.delivered), r.cpu.Seconds()), "")
	s.serverCPU(name+": ", r.serverCPU, r.measured, "delivered", float64(r.delivered))
	s.fig(name+": latency p50", r.lat.quantile(0.50), "ms")
	s.fig(name+": latency p99", r.lat.quantile(0.99), "ms")
	s.fig(name+": latency max", ms(r.lat.max), "ms")
}
