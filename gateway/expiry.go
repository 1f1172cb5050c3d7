package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
)

// Expiry rests on JetStream: a room key or a presence key whose TTL runs
// out leaves a marker in its bucket's stream, and a durable consumer shared
// by all natter processes hands each marker to exactly one of them. The
// consumer's position lives in NATS, so markers written while no natter ran
// are handled after a restart.
func (c *chat) startExpiry(ctx context.Context) error {
	for _, x := range []struct {
		stream  jetstream.Stream
		durable string
		bucket  string
		handle  func(ctx context.Context, key string)
	}{
		{c.roomsStream, "natter-room-expiry", natter.BucketRooms, c.roomGone},
		{c.presenceStream, "natter-presence-expiry", natter.BucketPresence, c.memberGone},
	} {
		prefix := kvSubject(x.bucket, "")
		cons, err := x.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       x.durable,
			Description:   "natter: acts on keys that were removed or expired",
			DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			FilterSubject: prefix + ">",
		})
		if err != nil {
			return fmt.Errorf("consumer %s: %w", x.durable, err)
		}
		handle := x.handle
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if removal(m.Headers()) {
				ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
				handle(ctx, strings.TrimPrefix(m.Subject(), prefix))
				cancel()
			}
			m.Ack()
		})
		if err != nil {
			return fmt.Errorf("consume %s: %w", x.durable, err)
		}
		c.consumers = append(c.consumers, cc)
	}
	return nil
}

// removal reports a delete, a purge, or an expiry marker.
func removal(h map[string][]string) bool {
	if len(h["Nats-Marker-Reason"]) > 0 {
		return true
	}
	op := ""
	if v := h["KV-Operation"]; len(v) > 0 {
		op = v[0]
	}
	return op == "DEL" || op == "PURGE"
}

// roomGone clears a closed room: its history and presence are purged and
// its members told.
func (c *chat) roomGone(ctx context.Context, room string) {
	if !natter.ValidRoomID(room) {
		return
	}
	for _, s := range []struct {
		stream jetstream.Stream
		bucket string
	}{{c.historyStream, natter.BucketHistory}, {c.presenceStream, natter.BucketPresence}} {
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(kvSubject(s.bucket, room+".>"))); err != nil {
			c.log.Warn("purge closed room", "room", room, "bucket", s.bucket, "err", err)
		}
	}
	c.roomUploadsGone(ctx, room)
	c.forgetRoom(room)
	c.event(natter.MemberEvent{Type: natter.EventRoomClosed, Room: room})
	c.log.Info("room closed", "room", room)
}

// memberGone announces that a member left or timed out.
func (c *chat) memberGone(ctx context.Context, key string) {
	room, user, ok := strings.Cut(key, ".")
	if !ok {
		return
	}
	rec, err := c.openRoom(ctx, room)
	if err != nil {
		return // the room closed: everyone is gone and was told so
	}
	m := natter.Member{ID: user, Name: "a member"}
	if data, ok := c.presenceView.lastValue(key); ok {
		var p presenceRecord
		if json.Unmarshal(data, &p) == nil {
			m.Name, m.Verified = p.Name, p.Verified
		}
	}
	c.announce(ctx, rec, natter.TypeLeave, m)
}
