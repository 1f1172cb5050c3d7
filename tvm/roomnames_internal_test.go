package tvm

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/natterchat/natter"
)

func TestSlug(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"element", "Neon", "neon"},
		{"words", "Book Club", "book-club"},
		{"runs collapse", "a  --  b", "a-b"},
		{"ends trimmed", "  -- Hello! --  ", "hello"},
		{"digits kept", "Room 101", "room-101"},
		{"accents dropped", "Café Noir", "caf-noir"},
		{"only symbols", "🎉 !!", "room"},
		{"empty", "", "room"},
		{"dots and wildcards", "a.b*c>d", "a-b-c-d"},
		{"upper case", "HELLO World", "hello-world"},
		{"cut to 40", strings.Repeat("a", 50), strings.Repeat("a", 40)},
		{"no dash left at the cut", strings.Repeat("a", 39) + " b", strings.Repeat("a", 39)},
		{"non-ascii letters", "Ωmega Ünïcode", "mega-n-code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := slug(tc.in); got != tc.want {
				t.Fatalf("slug(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNewRoomID(t *testing.T) {
	shape := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[a-z2-7]{8}$`)
	names := []string{"Neon", "", "---", strings.Repeat("🎉", natter.MaxRoomNameLen), strings.Repeat("ab-", 30), "9"}
	seen := map[string]bool{}
	for _, name := range names {
		for range 200 {
			id := newRoomID(name)
			if !natter.ValidRoomID(id) || !shape.MatchString(id) || len(id) > maxSlugLen+9 {
				t.Fatalf("newRoomID(%q) = %q: not a room id of the expected shape", name, id)
			}
			if seen[id] {
				t.Fatalf("newRoomID(%q) repeated %q", name, id)
			}
			seen[id] = true
		}
	}
}

func TestRandomSuffixUsesTheWholeAlphabet(t *testing.T) {
	used := map[rune]bool{}
	for range 1000 {
		s := randomSuffix()
		if len(s) != 8 {
			t.Fatalf("suffix %q is not 8 characters", s)
		}
		for _, r := range s {
			used[r] = true
		}
	}
	// 8000 draws from 32 symbols leave none out unless the encoding is off.
	if len(used) != 32 {
		t.Fatalf("suffixes used %d symbols, want the 32 of a-z2-7", len(used))
	}
	for r := range used {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz234567", r) {
			t.Fatalf("suffix symbol %q outside a-z2-7", r)
		}
	}
}

func TestElements(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range elements {
		if seen[e] {
			t.Errorf("%s listed twice", e)
		}
		seen[e] = true
		if _, err := natter.CleanRoomName(e); err != nil {
			t.Errorf("%s is not a valid room name: %v", e, err)
		}
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"count", len(elements), 118},
		{"first", elements[0], "Hydrogen"},
		{"neon is 10", elements[9], "Neon"},
		{"gold is 79", elements[78], "Gold"},
		{"last", elements[117], "Oganesson"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	for range 100 {
		if e := elementName(); !seen[e] {
			t.Fatalf("elementName() = %q, not an element", e)
		}
	}
}

func TestCleanRoomName(t *testing.T) {
	cases := []struct {
		name, in, want, err string
	}{
		{"trimmed", "  Book Club \t", "Book Club", ""},
		{"unicode", "Café 🎉", "Café 🎉", ""},
		{"48 code points", strings.Repeat("🎉", 48), strings.Repeat("🎉", 48), ""},
		{"49 code points", strings.Repeat("é", 49), "", "longer than 48"},
		{"empty after trim", "   ", "", "empty"},
		{"invalid utf-8", "a\xffb", "", "UTF-8"},
		{"bell", "a\ab", "", "control"},
		{"tab inside", "a\tb", "", "control"},
		{"DEL", "a\x7fb", "", "control"},
		{"C1 control", "a\u0085b", "", "control"},
		{"tag", "<script>", "", "markup"},
		{"lone lt", "a < b", "", "markup"},
		{"entity allowed", "Tom &amp; Jerry", "Tom &amp; Jerry", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := natter.CleanRoomName(tc.in)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("natter.CleanRoomName(%q): %v", tc.in, err)
			case tc.err != "" && (err == nil || natter.ErrorCode(err) != natter.EInvalidName || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("natter.CleanRoomName(%q) = %q, %v; want invalid_name mentioning %q", tc.in, got, err, tc.err)
			case got != tc.want:
				t.Fatalf("natter.CleanRoomName(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if err == nil && (!utf8.ValidString(got) || utf8.RuneCountInString(got) > natter.MaxRoomNameLen) {
				t.Fatalf("accepted %q", got)
			}
		})
	}
}
