package natter_test

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/natterchat/natter"
)

// fuzzUser is a well-formed user public key for building subjects.
const fuzzUser = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

// FuzzValidRoomID checks that an accepted room id is one subject token that
// cannot widen a subject, and that every subject and tag built from it
// parses back to it.
func FuzzValidRoomID(f *testing.F) {
	for _, s := range []string{
		"lobby", "neon-k7f3qz2a", "a", "1", strings.Repeat("a", 64), strings.Repeat("a", 65),
		"", "-a", "a.b", "*", ">", "a b", "a\tb", "Lobby", "café", "a_b", "a\n", "a\x00", "ａ", "a-", "--",
		"room:lobby", "{{tag(room)}}", "$KV", "_INBOX",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !natter.ValidRoomID(id) {
			return
		}
		if id == "" || len(id) > 64 || id[0] == '-' {
			t.Fatalf("accepted %q: empty, longer than 64 or starting with '-'", id)
		}
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("accepted %q with %q", id, r)
			}
		}
		if strings.ContainsAny(id, ".*> \t\r\n") || strings.ContainsFunc(id, unicode.IsSpace) {
			t.Fatalf("accepted %q, which can split or widen a subject", id)
		}
		// Every subject built from it has the id as its second token.
		perms := natter.UserPermissions([]string{id}, fuzzUser)
		subjects := slices.Concat(perms.Pub, perms.Sub, []string{
			natter.RoomSubject(id, natter.TopicMsgs), natter.RoomSubject(id, natter.TopicMembers),
			natter.TypingSubjects(id), natter.RoomWildcard(id),
		})
		for _, subj := range subjects {
			if strings.HasPrefix(subj, natter.InboxPrefix(fuzzUser)) {
				continue
			}
			tokens := strings.Split(subj, ".")
			if len(tokens) < 3 || tokens[0] != "chat" || tokens[1] != id {
				t.Fatalf("subject %q does not parse back to room %q", subj, id)
			}
			if strings.ContainsAny(strings.Join(tokens[1:len(tokens)-1], "."), "*>") {
				t.Fatalf("subject %q has a wildcard before its last token", subj)
			}
		}
		for _, op := range natter.ClientOps {
			want := []string{"chat", id, string(op), fuzzUser}
			if got := strings.Split(natter.UserSubject(id, op, fuzzUser), "."); !slices.Equal(got, want) {
				t.Fatalf("user subject tokens %q, want %q", got, want)
			}
		}
		if got := natter.RoomsFromTags([]string{natter.RoomTag(id)}); !slices.Equal(got, []string{id}) {
			t.Fatalf("tag %q gives rooms %q", natter.RoomTag(id), got)
		}
	})
}

// FuzzCleanName checks display names: what is accepted is trimmed,
// bounded and free of control and bidirectional control characters, cleaning
// it again changes nothing, and whatever has those properties is accepted.
func FuzzCleanName(f *testing.F) {
	seedNames(f)
	f.Fuzz(func(t *testing.T, in string) {
		checkLabel(t, in, natter.MaxNameLen, false, natter.CleanName)
	})
}

// FuzzCleanRoomName is FuzzCleanName for room names, which also refuse
// markup.
func FuzzCleanRoomName(f *testing.F) {
	seedNames(f)
	f.Add("<script>alert(1)</script>")
	f.Add("a < b")
	f.Fuzz(func(t *testing.T, in string) {
		checkLabel(t, in, natter.MaxRoomNameLen, true, natter.CleanRoomName)
	})
}

func seedNames(f *testing.F) {
	for _, s := range []string{
		"Ada", "  Ada Lovelace \t", strings.Repeat("é", 32), strings.Repeat("é", 33), strings.Repeat("é", 48),
		strings.Repeat("é", 49), "🦦 Otter", "", "   ", "a\x00b", "a\nb", "a\xffb", "evil\u202Eexe.txt",
		"\u200Fname", "a\u2066b", "\u0085a\u0085", "\u00a0a\u00a0", "\u3000名前\u3000", "a\u200bb", "Zoë",
	} {
		f.Add(s)
	}
}

func checkLabel(t *testing.T, in string, maxLen int, noMarkup bool, clean func(string) (string, error)) {
	t.Helper()
	out, err := clean(in)
	trimmed := strings.TrimSpace(in)
	ok := utf8.ValidString(trimmed) && trimmed != "" && utf8.RuneCountInString(trimmed) <= maxLen &&
		!strings.ContainsFunc(trimmed, unicode.IsControl) &&
		!strings.ContainsFunc(trimmed, func(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }) &&
		!(noMarkup && strings.ContainsAny(trimmed, "<>"))
	if err != nil {
		if ok {
			t.Fatalf("refused %q, which has every property of a name: %v", in, err)
		}
		if natter.ErrorCode(err) != natter.EInvalidName || natter.ErrorMessage(err) == "" {
			t.Fatalf("refused %q without invalid_name and a message: %v", in, err)
		}
		if out != "" {
			t.Fatalf("refused %q but returned %q", in, out)
		}
		return
	}
	if !ok {
		t.Fatalf("accepted %q as %q", in, out)
	}
	if out != trimmed || strings.TrimSpace(out) != out {
		t.Fatalf("accepted %q as %q, not trimmed", in, out)
	}
	if again, err := clean(out); err != nil || again != out {
		t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
	}
}
