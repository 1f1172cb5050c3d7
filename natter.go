// Package natter defines the wire contract shared by the token vending machine
// and the gateway: the subject scheme, the permissions a chat user is granted,
// the identifiers that appear in subjects, and the error codes clients see.
//
// Neither tvm nor gateway spells a subject string of its own; both derive every
// subject from the functions here, so the permissions the TVM vends and the
// subjects the gateway serves cannot drift apart.
package natter

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// Op is a per-user operation a client publishes on: chat.<room>.<op>.<user>.
type Op string

// The operations a room member may publish, each under its own user token so
// that the NATS server itself vouches for the sender.
const (
	OpSend    Op = "send"    // request: post a message
	OpHistory Op = "history" // request: read stored messages
	OpTyping  Op = "typing"  // ephemeral typing hint, broadcast to the room
	OpJoin    Op = "join"    // request: enter the room's presence
	OpHere    Op = "here"    // presence heartbeat
	OpLeave   Op = "leave"   // leave the room's presence
)

// ClientOps lists every operation a member may publish for its rooms.
var ClientOps = []Op{OpSend, OpHistory, OpTyping, OpJoin, OpHere, OpLeave}

// Topic is a room-wide subject the gateway publishes on: chat.<room>.<topic>.
type Topic string

const (
	TopicMsgs    Topic = "msgs"    // stored messages, broadcast live
	TopicMembers Topic = "members" // membership changes
)

// Bucket names of the JetStream key-value stores natter keeps its state in.
const (
	BucketRooms    = "rooms"    // key <room>
	BucketHistory  = "history"  // key <room>.<seq>
	BucketPresence = "presence" // key <room>.<user>
	BucketUsers    = "users"    // keys id.<user id>, name.<username>, display.<sha256 of the folded display name>
	BucketKeys     = "keys"     // key <nkey public key> of a token vended to a registered user
)

const (
	subjectRoot = "chat"
	inboxRoot   = "_INBOX_"
	roomTagKey  = "room"

	// RoomTemplate and UserTemplate are the nats-server permission template
	// expressions that stand for a token's rooms (one per room tag) and for the
	// user's own public key. The account's scoped signing key carries subjects
	// built from them; the server expands them per connection.
	RoomTemplate = "{{tag(" + roomTagKey + ")}}"
	UserTemplate = "{{subject()}}"
)

// UserSubject is the subject on which user publishes op in room.
func UserSubject(room string, op Op, user string) string {
	return subjectRoot + "." + room + "." + string(op) + "." + user
}

// RoomSubject is the subject of a room-wide topic.
func RoomSubject(room string, topic Topic) string {
	return subjectRoot + "." + room + "." + string(topic)
}

// TypingSubjects matches every member's typing hints in room.
func TypingSubjects(room string) string {
	return subjectRoot + "." + room + "." + string(OpTyping) + ".*"
}

// AllUsers matches op from every user of every room; the gateway subscribes to
// these.
func AllUsers(op Op) string { return UserSubject("*", op, "*") }

// RoomWildcard matches everything that happens in room, for operators.
func RoomWildcard(room string) string { return subjectRoot + "." + room + ".>" }

// InboxPrefix is the private inbox prefix of user. Clients set it as their
// request inbox prefix; a shared _INBOX.> would let anyone read others' replies.
func InboxPrefix(user string) string { return inboxRoot + user }

// Permissions are the publish and subscribe allow lists of a chat user.
// Everything not listed is denied.
type Permissions struct {
	Pub []string
	Sub []string
}

// UserPermissions returns what a member of rooms with public key user may do.
// Called with RoomTemplate and UserTemplate it yields the template the account's
// scoped signing key carries; with real values it yields what the server
// enforces for one token.
func UserPermissions(rooms []string, user string) Permissions {
	var p Permissions
	for _, room := range rooms {
		for _, op := range ClientOps {
			p.Pub = append(p.Pub, UserSubject(room, op, user))
		}
		p.Sub = append(p.Sub,
			RoomSubject(room, TopicMsgs),
			RoomSubject(room, TopicMembers),
			TypingSubjects(room),
		)
	}
	p.Sub = append(p.Sub, InboxPrefix(user)+".>")
	return p
}

// PermissionTemplate is UserPermissions in template form.
func PermissionTemplate() Permissions {
	return UserPermissions([]string{RoomTemplate}, UserTemplate)
}

// RoomTag is the JWT tag that grants a token the room id.
func RoomTag(id string) string { return roomTagKey + ":" + id }

// RoomsFromTags returns the room ids granted by a token's tags.
func RoomsFromTags(tags []string) []string {
	var rooms []string
	for _, t := range tags {
		if id, ok := strings.CutPrefix(t, roomTagKey+":"); ok {
			rooms = append(rooms, id)
		}
	}
	return rooms
}

// MaxRoomsPerToken bounds how many rooms one token may name. Each room adds
// nine subjects to the connection's permissions, and the JWT travels with
// every connect.
const MaxRoomsPerToken = 32

var roomIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// ValidRoomID reports whether id may be used as a room id: a single subject
// token of lower-case letters, digits and dashes, so it can never widen a
// subject with '.', '*' or '>'.
func ValidRoomID(id string) bool { return roomIDRE.MatchString(id) }

// ValidUserKey reports whether key is an nkey user public key (U…). Seeds,
// account keys and anything else are refused.
func ValidUserKey(key string) bool { return nkeys.IsValidPublicUserKey(key) }

// MaxNameLen is the longest display name, in code points.
const MaxNameLen = 32

// CleanName trims a display name and checks it: 1–MaxNameLen code points
// of valid UTF-8 without control characters.
func CleanName(name string) (string, error) { return cleanLabel(name, "name", MaxNameLen) }

// CleanRoomName trims a room name and checks it like a display name, with
// up to MaxRoomNameLen code points and no markup.
func CleanRoomName(name string) (string, error) {
	name, err := cleanLabel(name, "room name", MaxRoomNameLen)
	if err == nil && strings.ContainsAny(name, "<>") {
		// Every client should escape names, but one that forgets must not
		// find markup in a name that everyone in the room list sees.
		return "", Errorf(EInvalidName, "room name contains < or >: markup is not allowed")
	}
	return name, err
}

func cleanLabel(name, what string, maxLen int) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case !utf8.ValidString(name):
		return "", Errorf(EInvalidName, "%s is not valid UTF-8", what)
	case !strings.ContainsFunc(name, isVisible):
		return "", Errorf(EInvalidName, "%s is empty", what)
	case utf8.RuneCountInString(name) > maxLen:
		return "", Errorf(EInvalidName, "%s is longer than %d characters", what, maxLen)
	case strings.ContainsFunc(name, unicode.IsControl):
		return "", Errorf(EInvalidName, "%s contains control characters", what)
	case strings.ContainsFunc(name, isBidiControl):
		// Right-to-left overrides can make a name read as another one.
		return "", Errorf(EInvalidName, "%s contains bidirectional control characters", what)
	}
	return name, nil
}

func isBidiControl(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }

// isVisible reports a character that shows: not a space and not a format
// character such as a zero-width space.
func isVisible(r rune) bool {
	return unicode.IsGraphic(r) && !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r)
}
