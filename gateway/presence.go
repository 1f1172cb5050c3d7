package gateway

import (
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

// presenceRecord is the value of <room>.<user> in the presence bucket. Its
// TTL is the presence TTL, renewed by every heartbeat.
type presenceRecord struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Verified bool      `json:"verified,omitempty"`
	JoinedAt time.Time `json:"joined_at"`
}

func (p presenceRecord) member() natter.Member {
	return natter.Member{ID: p.ID, Name: p.Name, Verified: p.Verified}
}

func presenceKey(room, user string) string { return room + "." + user }

// member returns user as present in room, or not_joined.
func (c *chat) member(ctx context.Context, room, user string) (natter.Member, error) {
	data, ok := c.presenceView.get(presenceKey(room, user))
	if !ok {
		e, err := c.presence.Get(ctx, presenceKey(room, user))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return natter.Member{}, natter.Errorf(natter.ENotJoined, "join room %s first", room)
		case err != nil:
			return natter.Member{}, unavailable("read presence", err)
		}
		data = e.Value()
	}
	var p presenceRecord
	if err := json.Unmarshal(data, &p); err != nil {
		return natter.Member{}, &natter.Error{Code: natter.EInternal, Message: "unreadable presence", Err: err}
	}
	return p.member(), nil
}

// members lists who is in room, by name.
func (c *chat) members(room string) []natter.Member {
	var out []natter.Member
	for _, v := range c.presenceView.snapshot(func(k string) bool { return strings.HasPrefix(k, room+".") }) {
		var p presenceRecord
		if json.Unmarshal(v, &p) == nil {
			out = append(out, p.member())
		}
	}
	slices.SortFunc(out, func(a, b natter.Member) int { return strings.Compare(a.Name, b.Name) })
	if out == nil {
		out = []natter.Member{}
	}
	return out
}

// uniqueName is name, or "name (2)", "name (3)"… if another member has it.
func uniqueName(name string, taken map[string]bool) string {
	if !taken[name] {
		return name
	}
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s (%d)", name, i); !taken[n] {
			return n
		}
	}
}

func (c *chat) join(ctx context.Context, room, user string, data []byte) any {
	var req natter.JoinRequest
	if err := decodeStrict(data, &req); err != nil {
		return natter.JoinReply{Error: body(err)}
	}
	name, err := natter.CleanName(req.Name)
	if err != nil {
		return natter.JoinReply{Error: body(err)}
	}
	// Joins and leaves are stored in the history too: they share the
	// sender's rate.
	if !c.limits.allow(room + "." + user) {
		return natter.JoinReply{Error: body(natter.Errorf(natter.ERateLimited, "too many requests; slow down"))}
	}
	rec, err := c.openRoom(ctx, room)
	if err != nil {
		return natter.JoinReply{Error: body(err)}
	}
	name, verified, err := c.memberName(ctx, user, name)
	if err != nil {
		return natter.JoinReply{Error: body(err)}
	}
	unlock := c.roomLocks.lock("presence." + room)
	taken := map[string]bool{}
	for _, m := range c.members(room) {
		if m.ID != user {
			taken[m.Name] = true
		}
	}
	p := presenceRecord{ID: user, Name: uniqueName(name, taken), Verified: verified, JoinedAt: time.Now().UTC()}
	key := presenceKey(room, user)
	val, _ := json.Marshal(p)
	_, err = c.presence.Create(ctx, key, val, jetstream.KeyTTL(c.cfg.PresenceTTL))
	isNew := err == nil
	var prevName string
	if errors.Is(err, jetstream.ErrKeyExists) {
		// Already present (a reconnect or a new name): renew, no new join.
		if prev, perr := c.member(ctx, room, user); perr == nil {
			if prevName = prev.Name; prev.Name == name {
				p.Name = name
				val, _ = json.Marshal(p)
			}
		}
		_, err = c.js.Publish(ctx, kvSubject(natter.BucketPresence, key), val, jetstream.WithMsgTTL(c.cfg.PresenceTTL))
	}
	if err != nil {
		unlock()
		return natter.JoinReply{Error: body(unavailable("store presence", err))}
	}
	c.presenceView.set(key, val)
	unlock()

	me := p.member()
	if isNew {
		c.announce(ctx, rec, natter.TypeJoin, me)
	} else if prevName != "" && prevName != me.Name {
		c.event(natter.MemberEvent{Type: natter.EventRename, Room: room, Member: &me})
	}
	c.touch(ctx, rec)
	last, err := c.freshLastSeq(ctx, room)
	if err != nil {
		return natter.JoinReply{Error: body(err)}
	}
	return natter.JoinReply{OK: true, Name: p.Name, Members: fitMembers(c.members(room), me, c.maxReply), LastSeq: last}
}

// memberName is the name user joins under: the display name of the
// registered account its token was vended to, marked verified; otherwise
// the name it asked for, unless that is a registered display name.
func (c *chat) memberName(ctx context.Context, user, asked string) (string, bool, error) {
	acct, registered, err := c.accounts.AccountOfKey(ctx, user)
	if err != nil {
		return "", false, err
	}
	if registered {
		return acct.DisplayName, true, nil
	}
	if _, taken, err := c.accounts.DisplayNameOwner(ctx, asked); err != nil {
		return "", false, err
	} else if taken {
		return "", false, nameTaken(asked)
	}
	return asked, false, nil
}

// announce stores a join or leave entry in the history and tells the room.
func (c *chat) announce(ctx context.Context, rec roomRecord, typ string, m natter.Member) {
	env, data, _, err := c.appendHistory(ctx, rec, "", func(seq uint64, now time.Time) natter.Envelope {
		return natter.Envelope{Room: rec.ID, Seq: seq, Type: typ, From: m, SentAt: now}
	})
	if err != nil {
		c.log.Warn("store presence entry", "room", rec.ID, "type", typ, "err", err)
		return
	}
	c.broadcast(rec.ID, data)
	c.event(natter.MemberEvent{Type: typ, Room: rec.ID, Member: &m, Seq: env.Seq})
}

func (c *chat) event(ev natter.MemberEvent) {
	data, _ := json.Marshal(ev)
	if err := c.nc.Publish(natter.RoomSubject(ev.Room, natter.TopicMembers), data); err != nil {
		c.log.Warn("member event", "room", ev.Room, "err", err)
	}
}

func (c *chat) here(ctx context.Context, room, user string, _ []byte) any {
	rec, err := c.openRoom(ctx, room)
	if err != nil {
		return natter.Reply{Error: body(err)}
	}
	key := presenceKey(room, user)
	e, err := c.presence.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return natter.Reply{Error: body(natter.Errorf(natter.ENotJoined, "not in room %s: join again", room))}
	case err != nil:
		return natter.Reply{Error: body(unavailable("read presence", err))}
	}
	// Renew only the value that is there: a member who left meanwhile stays
	// gone.
	_, err = c.js.Publish(ctx, kvSubject(natter.BucketPresence, key), e.Value(),
		jetstream.WithMsgTTL(c.cfg.PresenceTTL), jetstream.WithExpectLastSequencePerSubject(e.Revision()))
	if isWrongLastSeq(err) {
		return natter.Reply{Error: body(natter.Errorf(natter.ENotJoined, "not in room %s: join again", room))}
	} else if err != nil {
		return natter.Reply{Error: body(unavailable("renew presence", err))}
	}
	c.touch(ctx, rec)
	return natter.Reply{OK: true}
}

func (c *chat) leave(ctx context.Context, room, user string, _ []byte) any {
	if !c.limits.allow(room + "." + user) {
		return natter.Reply{Error: body(natter.Errorf(natter.ERateLimited, "too many requests; slow down"))}
	}
	key := presenceKey(room, user)
	// Only a member can leave: purging an absent key still writes a marker,
	// and the expiry consumer would store and announce a leave for it.
	if _, err := c.presence.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return natter.Reply{Error: body(natter.Errorf(natter.ENotJoined, "not in room %s", room))}
	} else if err != nil {
		return natter.Reply{Error: body(unavailable("read presence", err))}
	}
	// A purge whose marker itself expires: nothing stays behind. The
	// presence expiry consumer announces the leave, as for a timeout.
	err := c.presence.Purge(ctx, key, jetstream.PurgeTTL(time.Minute))
	if err != nil {
		return natter.Reply{Error: body(unavailable("leave", err))}
	}
	return natter.Reply{OK: true}
}

// fitMembers keeps the joiner and as many others as fit in budget bytes;
// a client learns of the rest from the members events.
func fitMembers(members []natter.Member, me natter.Member, budget int) []natter.Member {
	out := []natter.Member{me}
	size := 256
	for _, m := range members {
		if m.ID == me.ID {
			continue
		}
		b, _ := json.Marshal(m)
		if size += len(b) + 1; size > budget {
			break
		}
		out = append(out, m)
	}
	return out
}
