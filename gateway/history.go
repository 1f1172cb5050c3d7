package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
)

func historyKey(room string, seq uint64) string { return room + "." + strconv.FormatUint(seq, 10) }

// appendHistory stores the entry that build makes for the room's next seq.
//
// The seq is claimed by the write itself: the key <room>.<seq> is written
// only if it has never been written (expected last subject sequence 0). A
// writer that loses the race to another process moves on to the next seq, so
// seqs have no gaps and no duplicates however many processes write, and a
// crash between two steps cannot leave a hole. With msgID set, JetStream's
// deduplication returns the first write of that id instead of a new one; dup
// is then true and the entry is the stored one. data is the entry as
// stored, ready to broadcast.
func (c *chat) appendHistory(ctx context.Context, rec roomRecord, msgID string, build func(seq uint64, now time.Time) natter.Envelope) (env natter.Envelope, data []byte, dup bool, err error) {
	unlock := c.roomLocks.lock(rec.ID)
	defer unlock()
	last, err := c.cachedLastSeq(ctx, rec.ID)
	if err != nil {
		return env, nil, false, err
	}
	for range 1000 {
		now := time.Now().UTC()
		ttl := rec.ExpiresAt.Sub(now) // no message outlives its room
		if ttl < time.Second {
			return env, nil, false, natter.Errorf(natter.ERoomClosed, "room %s is closed", rec.ID)
		}
		seq := last + 1
		env = build(seq, now)
		data, _ = json.Marshal(env)
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgTTL(ttl)}
		if msgID != "" {
			opts = append(opts, jetstream.WithMsgID(msgID))
		}
		ack, err := c.js.Publish(ctx, kvSubject(natter.BucketHistory, historyKey(rec.ID, seq)), data, opts...)
		if isWrongLastSeq(err) {
			last = seq
			continue
		}
		if err != nil {
			return env, nil, false, unavailable("store message", err)
		}
		if ack.Duplicate {
			raw, err := c.historyStream.GetMsg(ctx, ack.Sequence)
			if err != nil {
				return env, nil, true, unavailable("read first copy", err)
			}
			var first natter.Envelope
			if err := json.Unmarshal(raw.Data, &first); err != nil {
				return env, nil, true, &natter.Error{Code: natter.EInternal, Message: "unreadable stored message", Err: err}
			}
			return first, raw.Data, true, nil
		}
		c.setLastSeq(rec.ID, seq)
		if keep := uint64(c.cfg.HistoryMax); seq > keep && seq%trimEvery(keep) == 0 {
			// Dropping what fell off the cap, a batch at a time: a purge is
			// a JetStream API request, too dear for every message, and
			// readers never return more than the cap anyway. A purge leaves
			// no marker behind.
			err := c.historyStream.Purge(ctx, jetstream.WithPurgeSubject(kvSubject(natter.BucketHistory, rec.ID+".*")), jetstream.WithPurgeKeep(keep))
			if err != nil {
				c.log.Warn("trim history", "room", rec.ID, "err", err)
			}
		}
		return env, data, false, nil
	}
	return env, nil, false, &natter.Error{Code: natter.EUnavailable, Message: "the room is too busy, try again"}
}

// trimEvery is how many messages a room takes between two trims of its
// history: a tenth of the cap, so storage holds at most 10% more.
func trimEvery(keep uint64) uint64 { return max(1, keep/10) }

func (c *chat) cachedLastSeq(ctx context.Context, room string) (uint64, error) {
	c.seqMu.Lock()
	last, ok := c.lastSeq[room]
	c.seqMu.Unlock()
	if ok {
		return last, nil
	}
	return c.freshLastSeq(ctx, room)
}

// freshLastSeq reads the room's last seq from the history stream: entries
// are written in seq order, so the last one on the room's subjects has it.
func (c *chat) freshLastSeq(ctx context.Context, room string) (uint64, error) {
	raw, err := c.historyStream.GetLastMsgForSubject(ctx, kvSubject(natter.BucketHistory, room+".*"))
	var seq uint64
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return 0, unavailable("read last seq", err)
	default:
		seq, _ = strconv.ParseUint(raw.Subject[strings.LastIndexByte(raw.Subject, '.')+1:], 10, 64)
	}
	c.setLastSeq(room, seq)
	return seq, nil
}

func (c *chat) setLastSeq(room string, seq uint64) {
	c.seqMu.Lock()
	if seq > c.lastSeq[room] {
		c.lastSeq[room] = seq
	}
	c.seqMu.Unlock()
}

func (c *chat) forgetRoom(room string) {
	c.seqMu.Lock()
	delete(c.lastSeq, room)
	c.seqMu.Unlock()
	c.touched.Delete(room)
}

// readHistory returns the entries after afterSeq in seq order, at most
// limit of them and no more than fit in a reply of budget bytes (at least
// one), and the room's last seq.
//
// It reads the keys <room>.<seq> one by one from the first wanted seq, so
// a page costs what it returns, not the size of the room. Seqs below the
// history cap were purged and are skipped.
func (c *chat) readHistory(ctx context.Context, room string, afterSeq uint64, limit, budget int) ([]natter.Envelope, uint64, error) {
	last, err := c.freshLastSeq(ctx, room)
	if err != nil {
		return nil, 0, err
	}
	seq := afterSeq + 1
	if kept := uint64(c.cfg.HistoryMax); last > kept {
		seq = max(seq, last-kept+1)
	}
	entries := []natter.Envelope{}
	size := replyOverhead
	for ; seq <= last && len(entries) < limit; seq++ {
		e, err := c.history.Get(ctx, historyKey(room, seq))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // purged: fell off the cap, or the cap was lower once
		}
		if err != nil {
			return nil, 0, unavailable("read history", err)
		}
		if size += len(e.Value()) + 1; size > budget && len(entries) > 0 {
			break
		}
		var env natter.Envelope
		if err := json.Unmarshal(e.Value(), &env); err != nil {
			return nil, 0, &natter.Error{Code: natter.EInternal, Message: "unreadable stored message", Err: err}
		}
		entries = append(entries, env)
	}
	return entries, last, nil
}

// replyOverhead is the size of a history reply without its entries:
// {"ok":true,"messages":[],"last_seq":…}.
const replyOverhead = 64
