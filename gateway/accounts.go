package gateway

import (
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
)

// UserLimits are what every chat user connection is held to. They live in the
// chat account's scoped signing key, not in the user JWTs; MaxConns lives in
// the chat account itself.
type UserLimits struct {
	MaxPayload int64 // bytes per message
	MaxSubs    int64 // subscriptions per connection
	// MaxConns bounds the connections of the whole chat account at once:
	// every user's, and natter's own and admins' too. One more is refused
	// with "maximum account active connections exceeded".
	MaxConns int64
}

// DefaultUserLimits fit a chat client: a message of 1000 four-byte characters
// plus its envelope, and a few subscriptions per room.
var DefaultUserLimits = UserLimits{MaxPayload: 8 << 10, MaxSubs: 100, MaxConns: 100_000}

// withDefaults fills each zero limit from DefaultUserLimits.
func (l UserLimits) withDefaults() UserLimits {
	d := DefaultUserLimits
	if l.MaxPayload <= 0 {
		l.MaxPayload = d.MaxPayload
	}
	if l.MaxSubs <= 0 {
		l.MaxSubs = d.MaxSubs
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

const chatUserRole = "chat-user"

// Claims holds the JWTs derived from Keys. They are recomputed at every start,
// so a change of limits takes effect on restart; tokens stay valid because
// the keys that sign them are kept.
type Claims struct {
	Operator string
	System   string
	Chat     string
}

// Claims signs the operator and both account JWTs.
func (k *Keys) Claims(lim UserLimits) (*Claims, error) {
	lim = lim.withDefaults()
	sysPub, chatPub := publicKey(k.System), publicKey(k.Chat)

	oc := jwt.NewOperatorClaims(publicKey(k.Operator))
	oc.Name = "natter"
	oc.SystemAccount = sysPub
	op, err := oc.Encode(k.Operator)
	if err != nil {
		return nil, fmt.Errorf("encode operator: %w", err)
	}

	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sys, err := sc.Encode(k.Operator)
	if err != nil {
		return nil, fmt.Errorf("encode system account: %w", err)
	}

	cc := jwt.NewAccountClaims(chatPub)
	cc.Name = "chat"
	cc.Limits.Conn = lim.MaxConns
	cc.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1,
		MemoryMaxStreamBytes: -1, DiskMaxStreamBytes: -1,
	}
	scope := jwt.NewUserScope()
	scope.Key = publicKey(k.TVM)
	scope.Role = chatUserRole
	scope.Description = "anonymous chat users vended by the natter TVM"
	perms := natter.PermissionTemplate()
	scope.Template = jwt.UserPermissionLimits{
		Permissions: jwt.Permissions{
			Pub: jwt.Permission{Allow: perms.Pub},
			Sub: jwt.Permission{Allow: perms.Sub},
		},
		Limits: jwt.Limits{
			UserLimits: jwt.UserLimits{},
			NatsLimits: jwt.NatsLimits{Subs: lim.MaxSubs, Data: -1, Payload: lim.MaxPayload},
		},
		// Browsers and the nats CLI both speak ws://; a vended token cannot be
		// used on the plain TCP port that operators use.
		AllowedConnectionTypes: jwt.StringList{jwt.ConnectionTypeWebsocket},
	}
	cc.SigningKeys.AddScopedSigner(scope)
	chat, err := cc.Encode(k.Operator)
	if err != nil {
		return nil, fmt.Errorf("encode chat account: %w", err)
	}
	return &Claims{Operator: op, System: sys, Chat: chat}, nil
}

// ChatAccount is the chat account's public key, the issuer_account of every
// user JWT.
func (k *Keys) ChatAccount() string { return publicKey(k.Chat) }

// UserCreds returns a creds file (JWT and seed) for a new user of the chat
// account with full permissions, signed by the account's own key rather than
// the scoped TVM key. Operators' admin creds are made this way. A zero ttl
// means no expiry.
func (k *Keys) UserCreds(name string, ttl time.Duration) ([]byte, error) {
	tok, ukp, err := k.chatUser(name, ttl)
	if err != nil {
		return nil, err
	}
	seed, err := ukp.Seed()
	if err != nil {
		return nil, fmt.Errorf("user seed: %w", err)
	}
	return jwt.FormatUserConfig(tok, seed)
}

// chatUser signs a JWT for a new, unrestricted user of the chat account.
func (k *Keys) chatUser(name string, ttl time.Duration) (string, nkeys.KeyPair, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, fmt.Errorf("create user key: %w", err)
	}
	uc := jwt.NewUserClaims(publicKey(ukp))
	uc.Name = name
	if ttl > 0 {
		uc.Expires = time.Now().Add(ttl).Unix()
	}
	tok, err := uc.Encode(k.Chat)
	if err != nil {
		return "", nil, fmt.Errorf("encode user %s: %w", name, err)
	}
	return tok, ukp, nil
}
