package client

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
)

// Room follows one room: every entry after a given seq reaches the handler
// once, in seq order, whether it came live or from the history.
//
// The rule (docs/protocol.md): subscribe to chat.<room>.msgs first, then
// read the history, and merge both by seq. A seq that jumps, or a
// reconnect, makes the client read the history after the last seq it has.
type Room struct {
	ID string

	c      *Conn
	handle func(natter.Envelope)
	sub    *nats.Subscription

	mu     sync.Mutex
	merger *Merger

	fetch  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// Follow starts following room after afterSeq (0 for everything kept) and
// returns once the history up to now has been handed to handle.
func (c *Conn) Follow(ctx context.Context, room string, afterSeq uint64, handle func(natter.Envelope)) (*Room, error) {
	r := &Room{ID: room, c: c, handle: handle, merger: NewMerger(afterSeq), fetch: make(chan struct{}, 1), done: make(chan struct{})}
	sub, err := c.Subscribe(natter.RoomSubject(room, natter.TopicMsgs), func(m *nats.Msg) {
		var e natter.Envelope
		if json.Unmarshal(m.Data, &e) != nil || e.Room != room {
			return
		}
		r.add(e)
	})
	if err != nil {
		return nil, err
	}
	r.sub = sub
	if err := c.FlushWithContext(ctx); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	if err := r.catchUp(ctx); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	c.OnReconnect(r.needFetch)
	go r.fetchLoop(bg)
	return r, nil
}

// Delivered is the seq of the last entry handed to the handler.
func (r *Room) Delivered() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.merger.Delivered()
}

// Stop stops following.
func (r *Room) Stop() {
	r.sub.Unsubscribe()
	r.cancel()
	<-r.done
}

func (r *Room) add(entries ...natter.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.merger.Add(entries...) {
		r.handle(e)
	}
	if r.merger.Gap() {
		r.needFetch()
	}
}

func (r *Room) needFetch() {
	select {
	case r.fetch <- struct{}{}:
	default:
	}
}

func (r *Room) fetchLoop(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.fetch:
		}
		// A failed read (reconnecting, say) is retried; the next signal
		// or the retry brings what is missing.
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.catchUp(rctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// catchUp reads the history after the last delivered seq until it has
// everything up to the room's last seq.
func (r *Room) catchUp(ctx context.Context) error {
	for {
		after := r.Delivered()
		h, err := r.c.History(ctx, r.ID, after, 0)
		if err != nil {
			return err
		}
		r.mu.Lock()
		if len(h.Messages) > 0 && h.Messages[0].Seq > after+1 {
			// What is missing fell off the history cap: move past it.
			for _, e := range r.merger.SkipTo(h.Messages[0].Seq) {
				r.handle(e)
			}
		}
		for _, e := range r.merger.Add(h.Messages...) {
			r.handle(e)
		}
		caughtUp := len(h.Messages) == 0 || r.merger.Delivered() >= h.LastSeq
		r.mu.Unlock()
		if caughtUp {
			return nil
		}
	}
}
