package natter

import (
	"strings"
	"time"
)

// Pipeline error codes, answered on the requests' reply subjects as
// {"ok": false, "error": {"code", "message"}}.
const (
	EInvalidUTF8  = "invalid_utf8"  // the payload or text is not valid UTF-8
	EEmpty        = "empty"         // the text is only whitespace
	ETooLong      = "too_long"      // more code points than the limit
	EControlChars = "control_chars" // control characters other than newline and tab
	EBadSignature = "bad_signature" // missing, malformed or not verifying
	ERoomClosed   = "room_closed"   // the room expired or was deleted
	ENotJoined    = "not_joined"    // the user is not (or no longer) in the room
	ERoomLimit    = "room_limit"    // a user created too many rooms
)

// Entry types of the history and of the live broadcast.
const (
	TypeMessage = "message"
	TypeJoin    = "join"
	TypeLeave   = "leave"
)

// Member events on chat.<room>.members.
const (
	EventJoin       = "join"
	EventLeave      = "leave"
	EventRoomClosed = "room_closed"
	EventRename     = "rename" // a member present took a new name; not stored
)

// SignaturePrefix starts every signed message payload; the version lets the
// format change without old signatures verifying under new rules.
const SignaturePrefix = "natter/v1"

// SignedPayload is what the sender signs with its nkey: the room and the
// message id bind the signature to one message in one room.
func SignedPayload(room, id, text string) []byte {
	return []byte(SignaturePrefix + "\n" + room + "\n" + id + "\n" + text)
}

// TokenRequest is the body of POST /api/v1/token.
type TokenRequest struct {
	PublicKey string   `json:"public_key"`
	Name      string   `json:"name,omitempty"`
	Rooms     []string `json:"rooms"`
	// ExpiresIn asks for a shorter life than the server's token lifetime,
	// in whole seconds; absent (0 here) means the server's.
	ExpiresIn int64 `json:"expires_in,omitempty"`
}

// TokenResponse is the answer of POST /api/v1/token.
type TokenResponse struct {
	JWT         string    `json:"jwt"`
	ExpiresAt   time.Time `json:"expires_at"`
	User        Member    `json:"user"`
	Servers     []string  `json:"servers"`
	InboxPrefix string    `json:"inbox_prefix"`
}

// SendRequest is the payload of chat.<room>.send.<user>.
type SendRequest struct {
	ID   string `json:"id"`   // client message id, unique per sender
	Text string `json:"text"` // the message, or an image's caption (may be empty)
	Sig  string `json:"sig"`  // base64url (no padding) ed25519 signature of SignedPayload or SignedImagePayload
	// Type is absent (or "message") for a text message, "image" for an
	// image message, whose Upload is the id of an upload of the room.
	Type   string `json:"type,omitempty"`
	Upload string `json:"upload,omitempty"`
	// CT is the sealed text of a message in a sealed room, in place of
	// Text: base64url of nonce, ciphertext and tag (docs/sealed.md); Sig
	// then signs SignedPayload(room, id, ct).
	CT string `json:"ct,omitempty"`
}

// Member is a user as the room knows it.
type Member struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Verified marks a registered account's display name: the gateway sets
	// it from the account behind the key, never from what a client says.
	Verified bool `json:"verified,omitempty"`
}

// Envelope is a stored history entry, also what chat.<room>.msgs carries.
// Join and leave entries have no id, text or sig.
type Envelope struct {
	Room string `json:"room"`
	Seq  uint64 `json:"seq"`
	ID   string `json:"id,omitempty"`
	Type string `json:"type"`
	From Member `json:"from"`
	Text string `json:"text,omitempty"`
	// CT is a sealed room's message, which natter cannot read: there is
	// then no Text.
	CT     string    `json:"ct,omitempty"`
	Sig    string    `json:"sig,omitempty"`
	SentAt time.Time `json:"sent_at"`
	// Image is the upload of an image entry, from its stored metadata.
	Image *Image `json:"image,omitempty"`
}

// ErrorBody is the error part of a pipeline reply and of an HTTP error.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Ack is the reply to a send.
type Ack struct {
	OK     bool       `json:"ok"`
	Seq    uint64     `json:"seq,omitempty"`
	SentAt *time.Time `json:"sent_at,omitempty"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// HistoryRequest is the payload of chat.<room>.history.<user>.
type HistoryRequest struct {
	AfterSeq uint64 `json:"after_seq"`
	Limit    int    `json:"limit"`
}

// HistoryReply answers a history request: entries with seq > after_seq in
// seq order, at most limit of them, and the room's last seq. When the last
// entry's seq is below last_seq, ask again after it.
type HistoryReply struct {
	OK       bool       `json:"ok"`
	Messages []Envelope `json:"messages"`
	LastSeq  uint64     `json:"last_seq"`
	Error    *ErrorBody `json:"error,omitempty"`
}

// JoinRequest is the payload of chat.<room>.join.<user>.
type JoinRequest struct {
	Name string `json:"name"`
}

// JoinReply answers a join: the name the member got (made unique in the
// room), who is there, and the room's last seq.
type JoinReply struct {
	OK      bool       `json:"ok"`
	Name    string     `json:"name,omitempty"`
	Members []Member   `json:"members"`
	LastSeq uint64     `json:"last_seq"`
	Error   *ErrorBody `json:"error,omitempty"`
}

// Reply is the answer to here and leave when they carry a reply subject.
type Reply struct {
	OK    bool       `json:"ok"`
	Error *ErrorBody `json:"error,omitempty"`
}

// MemberEvent is published on chat.<room>.members.
type MemberEvent struct {
	Type   string  `json:"type"` // join, leave, rename, room_closed
	Room   string  `json:"room"`
	Member *Member `json:"member,omitempty"`
	Seq    uint64  `json:"seq,omitempty"` // the history entry of a join or leave
}

// Room is an open room.
type Room struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Members   int       `json:"members"`
	// Sealed rooms are end-to-end encrypted (docs/sealed.md): their
	// messages carry ct, never text. Fixed when the room is made.
	Sealed bool `json:"sealed,omitempty"`
}

// Stats summarises the service.
type Stats struct {
	OnlineUsers      int `json:"online_users"`
	Rooms            int `json:"rooms"`
	MessagesLastHour int `json:"messages_last_hour"`
}

// MaxMessageIDLen bounds client message ids.
const MaxMessageIDLen = 64

// ValidMessageID reports whether id is 1–64 of A–Z, a–z, 0–9, '_' and '-'.
func ValidMessageID(id string) bool {
	if id == "" || len(id) > MaxMessageIDLen {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}

// MaxRoomNameLen is the longest room name, in code points.
const MaxRoomNameLen = 48
