package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/metrics"
)

// ChatConfig are the rules of rooms, messages and presence.
type ChatConfig struct {
	RoomIdleTTL  time.Duration // a room with no message and no member for this long is deleted
	RoomMaxTTL   time.Duration // and any room this long after creation
	RoomsPerHour int           // rooms one user may create per hour
	// RoomsPerHourRegistered is RoomsPerHour for a registered account.
	RoomsPerHourRegistered int
	// TokenTTL is the lifetime of vended tokens: how long the keys bucket
	// remembers the account a token's key was vended to.
	TokenTTL        time.Duration
	HistoryMax      int           // messages kept per room
	MessageMaxChars int           // code points per message
	PresenceTTL     time.Duration // a member silent for this long is gone
	SendRate        float64       // messages per second per sender per room
	SendBurst       int
	DedupeWindow    time.Duration // how long a resent message id is recognised
}

// DefaultChatConfig is what natter runs with unless told otherwise.
var DefaultChatConfig = ChatConfig{
	RoomIdleTTL:            5 * time.Minute,
	RoomMaxTTL:             12 * time.Hour,
	RoomsPerHour:           5,
	RoomsPerHourRegistered: 20,
	TokenTTL:               time.Hour,
	HistoryMax:             500,
	MessageMaxChars:        1000,
	PresenceTTL:            60 * time.Second,
	SendRate:               10,
	SendBurst:              20,
	DedupeWindow:           10 * time.Minute,
}

func (c *ChatConfig) defaults() {
	d := DefaultChatConfig
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.RoomIdleTTL, d.RoomIdleTTL)
	set(&c.RoomMaxTTL, d.RoomMaxTTL)
	set(&c.PresenceTTL, d.PresenceTTL)
	set(&c.DedupeWindow, d.DedupeWindow)
	set(&c.TokenTTL, d.TokenTTL)
	seti(&c.RoomsPerHourRegistered, d.RoomsPerHourRegistered)
	seti(&c.RoomsPerHour, d.RoomsPerHour)
	seti(&c.HistoryMax, d.HistoryMax)
	seti(&c.MessageMaxChars, d.MessageMaxChars)
	seti(&c.SendBurst, d.SendBurst)
	if c.SendRate <= 0 {
		c.SendRate = d.SendRate
	}
}

// Names of the streams natter keeps beside its buckets.
const (
	streamMsgLog    = "NATTER_MSGLOG"     // one entry per accepted message, kept an hour: messages_last_hour
	subjectMsgLog   = "natter.msglog"     //
	streamRoomQuota = "NATTER_ROOM_QUOTA" // one entry per created room, per user, kept an hour
	subjectQuota    = "natter.quota.rooms"
	// The same for registered accounts, whose allowance is larger.
	streamRegisteredQuota  = "NATTER_ROOM_QUOTA_REGISTERED"
	subjectRegisteredQuota = "natter.quota.registered"
)

// chat is the state behind rooms, messages and presence. Everything that
// must hold across natter processes lives in NATS; what is here is caches
// and views that any process can rebuild.
type chat struct {
	cfg ChatConfig
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	rooms, history, presence   jetstream.KeyValue
	accounts                   *Users
	uploads                    *Uploads
	roomsStream, historyStream jetstream.Stream
	presenceStream, msgLog     jetstream.Stream
	roomView, presenceView     *view
	svc                        micro.Service
	work                       *workers
	consumers                  []jetstream.ConsumeContext
	ctx                        context.Context
	cancel                     context.CancelFunc
	droppedReplies             atomic.Int64
	limits                     limiters
	seqMu                      sync.Mutex
	lastSeq                    map[string]uint64
	roomLocks                  keyedMutex
	touched                    sync.Map // room id → time of this process's last touch
	// maxReply bounds a reply's size: the server does not deliver a message
	// larger than the user's max payload.
	maxReply int

	metrics *metrics.Metrics // nil: none
}

// replyHeadroom is left below the user's max payload for the headers the
// server and the micro service add.
const replyHeadroom = 512

func startChat(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg ChatConfig, replicas, maxPayload int, log *slog.Logger, m *metrics.Metrics) (*chat, error) {
	cfg.defaults()
	c := &chat{cfg: cfg, log: log, nc: nc, js: js, lastSeq: map[string]uint64{}, maxReply: maxPayload - replyHeadroom, metrics: m}
	c.limits.rate, c.limits.burst = cfg.SendRate, cfg.SendBurst
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.provision(ctx, replicas); err != nil {
		c.stop()
		return nil, err
	}
	var err error
	// Presence first: a closing room clears its members from it.
	if c.presenceView, err = watchBucket(ctx, c.ctx, c.presence, nil); err == nil {
		c.roomView, err = watchBucket(ctx, c.ctx, c.rooms, func(room string) {
			c.presenceView.removePrefix(room + ".")
			c.forgetRoom(room)
		})
	}
	if err == nil {
		err = c.startExpiry(ctx)
	}
	if err == nil {
		err = c.startService()
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *chat) provision(ctx context.Context, replicas int) error {
	buckets := []struct {
		kv         *jetstream.KeyValue
		stream     *jetstream.Stream
		name, desc string
		markerTTL  time.Duration
	}{
		// A closed room's marker lingers an hour so senders learn it closed
		// rather than that it never existed.
		{&c.rooms, &c.roomsStream, natter.BucketRooms, "open rooms, key <room>", time.Hour},
		{&c.history, &c.historyStream, natter.BucketHistory, "messages, key <room>.<seq>", time.Minute},
		{&c.presence, &c.presenceStream, natter.BucketPresence, "members present, key <room>.<user>", time.Minute},
	}
	for _, b := range buckets {
		kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      b.name,
			Description: b.desc,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			// Setting it turns on per-key TTLs, on which room, history and
			// presence expiry rest, and makes an expired key leave a marker
			// that the expiry consumers see.
			LimitMarkerTTL: b.markerTTL,
		})
		if err != nil {
			return fmt.Errorf("provision bucket %s: %w", b.name, err)
		}
		*b.kv = kv
		if *b.stream, err = c.js.Stream(ctx, "KV_"+b.name); err != nil {
			return fmt.Errorf("stream of bucket %s: %w", b.name, err)
		}
	}
	users, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      natter.BucketUsers,
		Description: "registered accounts: id.<id>, name.<username>, display.<sha256 of the folded display name>",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("provision bucket %s: %w", natter.BucketUsers, err)
	}
	keys, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      natter.BucketKeys,
		Description: "the account behind the key of a token vended with a session, key <nkey>",
		History:     1,
		TTL:         c.cfg.TokenTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("provision bucket %s: %w", natter.BucketKeys, err)
	}
	c.accounts = &Users{users: users, keys: keys, log: c.log}
	if err := c.provisionUploads(ctx, replicas); err != nil {
		return err
	}

	// Resending a message id within the window returns the first ack:
	// JetStream deduplicates on Nats-Msg-Id.
	hcfg := c.historyStream.CachedInfo().Config
	if hcfg.Duplicates != c.cfg.DedupeWindow {
		hcfg.Duplicates = c.cfg.DedupeWindow
		s, err := c.js.UpdateStream(ctx, hcfg)
		if err != nil {
			return fmt.Errorf("set history dedupe window: %w", err)
		}
		c.historyStream = s
	}

	c.msgLog, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamMsgLog,
		Description: "one entry per accepted message, for messages_last_hour",
		Subjects:    []string{subjectMsgLog},
		MaxAge:      time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("provision stream %s: %w", streamMsgLog, err)
	}
	// The server itself refuses a user's sixth room within the hour, the same
	// for every natter process; registered accounts have a quota of their own.
	quotas := []struct {
		name, desc, subject string
		perHour             int
	}{
		{streamRoomQuota, "rooms created per user in the last hour", subjectQuota, c.cfg.RoomsPerHour},
		{streamRegisteredQuota, "rooms created per registered account in the last hour", subjectRegisteredQuota, c.cfg.RoomsPerHourRegistered},
	}
	for _, q := range quotas {
		_, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:                 q.name,
			Description:          q.desc,
			Subjects:             []string{q.subject + ".*"},
			MaxAge:               time.Hour,
			MaxMsgsPerSubject:    int64(q.perHour),
			Discard:              jetstream.DiscardNew,
			DiscardNewPerSubject: true,
			Storage:              jetstream.FileStorage,
			Replicas:             replicas,
		})
		if err != nil {
			return fmt.Errorf("provision stream %s: %w", q.name, err)
		}
	}
	return nil
}

func (c *chat) stop() {
	if c.svc != nil {
		c.svc.Stop()
	}
	if c.work != nil {
		c.work.close() // the requests taken finish and are answered
	}
	for _, cc := range c.consumers {
		cc.Stop()
	}
	c.roomView.stop()
	c.presenceView.stop()
	c.cancel()
}

// keyedMutex serialises work per key (a room) within this process.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
