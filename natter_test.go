package natter_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/natterchat/natter"
)

func TestValidRoomID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		ok   bool
	}{
		{"simple", "lobby", true},
		{"slug with suffix", "neon-k7f3qz2", true},
		{"digit first", "1a", true},
		{"one char", "a", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"65 chars", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"leading dash", "-a", false},
		{"dot", "a.b", false},
		{"star", "*", false},
		{"gt", ">", false},
		{"space", "a b", false},
		{"upper", "A", false},
		{"unicode", "ñ", false},
		{"underscore", "a_b", false},
		{"newline", "a\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := natter.ValidRoomID(tc.id); got != tc.ok {
				t.Fatalf("ValidRoomID(%q) = %v", tc.id, got)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	cases := []struct {
		name, in, want, code string
	}{
		{"plain", "Ada", "Ada", ""},
		{"trimmed", "  Ada Lovelace \t", "Ada Lovelace", ""},
		{"32 code points", strings.Repeat("é", 32), strings.Repeat("é", 32), ""},
		{"emoji", "🦦 Otter", "🦦 Otter", ""},
		{"33 code points", strings.Repeat("é", 33), "", natter.EInvalidName},
		{"empty", "", "", natter.EInvalidName},
		{"spaces", "   ", "", natter.EInvalidName},
		{"control", "a\x00b", "", natter.EInvalidName},
		{"newline inside", "a\nb", "", natter.EInvalidName},
		{"invalid utf-8", "a\xffb", "", natter.EInvalidName},
		{"right-to-left override", "evil\u202Eexe.txt", "", natter.EInvalidName},
		{"only a zero-width space", "\u200B", "", natter.EInvalidName},
		{"zero-width joiner in an emoji", "👩\u200D💻 Dev", "👩\u200D💻 Dev", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := natter.CleanName(tc.in)
			if tc.code != "" {
				if natter.ErrorCode(err) != tc.code {
					t.Fatalf("CleanName(%q) error %v, want code %s", tc.in, err, tc.code)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CleanName(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

func TestPermissionTemplateMatchesExpansion(t *testing.T) {
	tmpl := natter.PermissionTemplate()
	const room, user = "lobby", "UUSER"
	expand := func(list []string) []string {
		var out []string
		for _, s := range list {
			s = strings.ReplaceAll(s, natter.RoomTemplate, room)
			out = append(out, strings.ReplaceAll(s, natter.UserTemplate, user))
		}
		return out
	}
	got := natter.UserPermissions([]string{room}, user)
	if !slices.Equal(expand(tmpl.Pub), got.Pub) || !slices.Equal(expand(tmpl.Sub), got.Sub) {
		t.Fatalf("template %+v does not expand to %+v", tmpl, got)
	}
	for _, s := range append(got.Pub, got.Sub...) {
		if s == ">" || strings.HasPrefix(s, "$") || strings.HasPrefix(s, "_INBOX.") || strings.Contains(s, ">") && !strings.HasPrefix(s, natter.InboxPrefix(user)+".") {
			t.Errorf("grant %q is wider than a member needs", s)
		}
	}
}

func TestErrorsHideCauses(t *testing.T) {
	e := &natter.Error{Code: natter.EUnavailable, Message: "try later", Err: errTest("dial tcp 10.0.0.1: refused")}
	if natter.ErrorMessage(e) != "try later" || natter.ErrorCode(e) != natter.EUnavailable {
		t.Fatal(natter.ErrorMessage(e))
	}
	if natter.ErrorMessage(errTest("secret")) != "internal error" || natter.ErrorCode(errTest("x")) != natter.EInternal {
		t.Fatal("plain errors must map to internal")
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
