package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
)

// roomRecord is the value of a key in the rooms bucket.
type roomRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by"`
	Sealed    bool      `json:"sealed,omitempty"`
}

func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// CreateRoom stores a new room named name with id, sealed (end-to-end
// encrypted, docs/sealed.md) or not, created by creator: a
// user's key, or the id of a registered account (natter.IsUserID), whose
// allowance of rooms an hour is RoomsPerHourRegistered. The
// room key's TTL is its idle time (or what is left of its maximum life), and
// every message and every present member renews it: the key expiring is the
// room closing.
func (g *Gateway) CreateRoom(ctx context.Context, id, name, creator string, sealed bool) (natter.Room, error) {
	c := g.chat
	quota, allowed := subjectQuota, c.cfg.RoomsPerHour
	if natter.IsUserID(creator) {
		quota, allowed = subjectRegisteredQuota, c.cfg.RoomsPerHourRegistered
	}
	if _, err := c.js.Publish(ctx, quota+"."+creator, nil); err != nil {
		// The quota stream refuses the publish once the user's subject
		// holds its allowance of entries younger than an hour.
		if strings.Contains(err.Error(), "maximum messages per subject exceeded") {
			return natter.Room{}, natter.Errorf(natter.ERoomLimit, "you may create at most %d rooms an hour", allowed)
		}
		return natter.Room{}, unavailable("count rooms created", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := roomRecord{ID: id, Name: name, CreatedAt: now, ExpiresAt: now.Add(c.cfg.RoomMaxTTL), CreatedBy: creator, Sealed: sealed}
	data, _ := json.Marshal(rec)
	_, err := c.js.Publish(ctx, kvSubject(natter.BucketRooms, id), data,
		jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgTTL(c.roomTTL(rec, now)))
	if isWrongLastSeq(err) {
		return natter.Room{}, &natter.Error{Code: natter.EInternal, Message: "room id collision, try again", Err: err}
	} else if err != nil {
		return natter.Room{}, unavailable("store room", err)
	}
	c.roomView.set(id, data)
	c.touched.Store(id, now)
	return rec.room(0), nil
}

// roomTTL is how long the room key lives from now: its idle time, or what is
// left of its maximum life if that is shorter.
func (c *chat) roomTTL(rec roomRecord, now time.Time) time.Duration {
	return min(c.cfg.RoomIdleTTL, rec.ExpiresAt.Sub(now))
}

func (r roomRecord) room(members int) natter.Room {
	return natter.Room{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, Members: members, Sealed: r.Sealed}
}

// Room returns one open room.
func (g *Gateway) Room(ctx context.Context, id string) (natter.Room, error) {
	rec, err := g.chat.openRoom(ctx, id)
	if err != nil {
		return natter.Room{}, err
	}
	return rec.room(g.chat.memberCount(id)), nil
}

// Rooms lists the open rooms, the busiest first.
func (g *Gateway) Rooms(ctx context.Context) ([]natter.Room, error) {
	c := g.chat
	now := time.Now()
	entries := c.roomView.snapshot(func(string) bool { return true })
	counts := c.memberCounts()
	rooms := make([]natter.Room, 0, len(entries))
	for _, v := range entries {
		var rec roomRecord
		if json.Unmarshal(v, &rec) != nil || !rec.ExpiresAt.After(now) {
			continue
		}
		rooms = append(rooms, rec.room(counts[rec.ID]))
	}
	slices.SortFunc(rooms, func(a, b natter.Room) int {
		return cmp.Or(cmp.Compare(b.Members, a.Members), b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return rooms, nil
}

// Stats counts users present, open rooms and messages of the last hour.
func (g *Gateway) Stats(ctx context.Context) (natter.Stats, error) {
	c := g.chat
	rooms, err := g.Rooms(ctx)
	if err != nil {
		return natter.Stats{}, err
	}
	users := map[string]bool{}
	for k := range c.presenceView.snapshot(func(string) bool { return true }) {
		if _, user, ok := strings.Cut(k, "."); ok {
			users[user] = true
		}
	}
	info, err := c.msgLog.Info(ctx)
	if err != nil {
		return natter.Stats{}, unavailable("message log", err)
	}
	return natter.Stats{OnlineUsers: len(users), Rooms: len(rooms), MessagesLastHour: int(info.State.Msgs)}, nil
}

// openRoom returns the room's record, or unknown_room / room_closed. The
// view answers most calls; a room made a moment ago by another process is
// read from the bucket.
func (c *chat) openRoom(ctx context.Context, id string) (roomRecord, error) {
	var rec roomRecord
	data, ok := c.roomView.get(id)
	if !ok {
		e, err := c.rooms.Get(ctx, id)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return rec, c.closedOrUnknown(ctx, id)
		case err != nil:
			return rec, unavailable("read room", err)
		}
		data = e.Value()
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, &natter.Error{Code: natter.EInternal, Message: "unreadable room", Err: err}
	}
	if !rec.ExpiresAt.After(time.Now()) {
		return rec, natter.Errorf(natter.ERoomClosed, "room %s is closed", id)
	}
	return rec, nil
}

// closedOrUnknown tells a room that closed recently (its key's marker is
// still there) from one that never existed.
func (c *chat) closedOrUnknown(ctx context.Context, id string) error {
	if _, err := c.roomsStream.GetLastMsgForSubject(ctx, kvSubject(natter.BucketRooms, id)); err == nil {
		return natter.Errorf(natter.ERoomClosed, "room %s is closed", id)
	}
	return natter.Errorf(natter.EUnknownRoom, "no room %s", id)
}

// touch renews the room's idle TTL after activity, at most every tenth of
// the idle time per process; a renewal never brings back a room that
// closed meanwhile.
func (c *chat) touch(ctx context.Context, rec roomRecord) {
	now := time.Now()
	every := max(c.cfg.RoomIdleTTL/10, time.Second)
	if last, ok := c.touched.Load(rec.ID); ok && now.Sub(last.(time.Time)) < every {
		return
	}
	c.touched.Store(rec.ID, now)
	e, err := c.rooms.Get(ctx, rec.ID)
	if err != nil {
		return // closed, or NATS is down: either way nothing to renew
	}
	ttl := c.roomTTL(rec, now)
	if ttl < time.Second {
		return
	}
	_, err = c.js.Publish(ctx, kvSubject(natter.BucketRooms, rec.ID), e.Value(),
		jetstream.WithExpectLastSequencePerSubject(e.Revision()), jetstream.WithMsgTTL(ttl))
	if err != nil && !isWrongLastSeq(err) {
		c.log.Warn("renew room", "room", rec.ID, "err", err)
	}
}

func (c *chat) memberCount(room string) int {
	return len(c.presenceView.snapshot(func(k string) bool { return strings.HasPrefix(k, room+".") }))
}

func (c *chat) memberCounts() map[string]int {
	counts := map[string]int{}
	for k := range c.presenceView.snapshot(func(string) bool { return true }) {
		if room, _, ok := strings.Cut(k, "."); ok {
			counts[room]++
		}
	}
	return counts
}

// isWrongLastSeq reports a failed compare-and-set: someone wrote first.
func isWrongLastSeq(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	return ok && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func unavailable(what string, err error) error {
	return &natter.Error{Code: natter.EUnavailable, Message: "storage is unavailable, try again", Err: fmt.Errorf("%s: %w", what, err)}
}
