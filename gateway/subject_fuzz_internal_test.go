package gateway

import (
	"slices"
	"testing"

	"github.com/natterchat/natter"
)

// FuzzParseUserSubject checks the pipeline's reading of the subjects
// requests arrive on: whatever it accepts names a valid room and a user
// key, and is exactly the subject natter builds for them; every subject
// natter builds for a valid room is read back.
func FuzzParseUserSubject(f *testing.F) {
	const user = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
	for _, s := range []string{
		natter.UserSubject("lobby", natter.OpSend, user),
		natter.UserSubject("neon-k7f3qz2a", natter.OpHistory, user),
		"chat.lobby.send." + user + ".x", "chat.lobby.send", "chat.*.send.*", "chat.>.send." + user,
		"chat.a.b.send." + user, "chat..send." + user, "chat.Lobby.send." + user, "chat.lobby.send.UABC",
		"", ".", "....",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		room, usr, ok := parseUserSubject(subject)
		if !ok {
			return
		}
		if !natter.ValidRoomID(room) || !natter.ValidUserKey(usr) {
			t.Fatalf("%q read as room %q user %q", subject, room, usr)
		}
		var built []string
		for _, op := range natter.ClientOps {
			built = append(built, natter.UserSubject(room, op, usr))
		}
		if !slices.Contains(built, subject) {
			t.Fatalf("%q read as room %q user %q, which do not build it", subject, room, usr)
		}
		for _, s := range built {
			if r, u, ok := parseUserSubject(s); !ok || r != room || u != usr {
				t.Fatalf("built %q, read back %q %q %v", s, r, u, ok)
			}
		}
	})
}
