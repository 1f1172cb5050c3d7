package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/natterchat/natter/client"
)

// TestAppServedWithSPAFallback: natter serves the embedded app's index.html
// at / and at every client-side route, with a Content-Security-Policy,
// while unknown API paths stay JSON errors.
func TestAppServedWithSPAFallback(t *testing.T) {
	m := runMain(t, testConfig(t))
	index, err := os.ReadFile(filepath.Join("..", "..", "frontend", "dist", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(m.baseURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	for _, path := range []string{"/", "/r/anything", "/r/neon-k7f3qz2a"} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusOK || body != string(index) {
			t.Errorf("GET %s: %d, %d bytes; want 200 and frontend/dist/index.html", path, resp.StatusCode, len(body))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want one allowing only the app's own scripts", path, csp)
		}
	}
	resp, body := get("/api/v1/nope")
	var e struct{ Error struct{ Code string } }
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "not_found" {
		t.Errorf("GET /api/v1/nope: %d %s %q, want a JSON 404 not_found", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// TestBrowserSmoke loads the lobby in Chromium: the app starts, signs in,
// and nothing breaks the Content-Security-Policy or throws.
func TestBrowserSmoke(t *testing.T) {
	chromium(t)
	m := runMain(t, testConfig(t))
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	a.open("/")
	a.screenshot("first paint")
	a.signIn()
	a.screenshot("lobby")
	if v := mustEval[[]string](a, `window.__cspViolations`); len(v) > 0 {
		a.fail("Content-Security-Policy violations: %q", v)
	}
	if ex := a.uncaught(); len(ex) > 0 {
		a.fail("uncaught exceptions: %q", ex)
	}
}

// TestBrowserChat: people chat in real browsers, each with an identity of
// its own, against one natter: two chat, a third comes later and reads the
// history, a reload keeps the identity, markup in messages stays text, and
// a message over 1000 characters is stopped.
func TestBrowserChat(t *testing.T) {
	chromium(t)
	m := runMain(t, testConfig(t))
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	b := newBrowser(t, s, m.baseURL(), "B")
	c := newBrowser(t, s, m.baseURL(), "C") // comes later
	var room, link, aName, bName string
	const (
		hello   = "Hello from A 👋"
		replyL1 = "Hi A, B here."
		replyL2 = "Second line."
	)

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"two people chat", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			aName = a.signIn()
			a.screenshot("lobby")
			room = a.createRoom("Book Club")
			if title := a.text("room-title"); !strings.Contains(title, "Book Club") {
				a.fail("room-title %q, want the room's name", title)
			}
			a.allowClipboard()
			a.click("copy-link")
			a.waitFor("the room link on the clipboard", waitTimeout, func() error {
				if link = a.clipboard(); !strings.HasSuffix(link, "/r/"+room) {
					return fmt.Errorf("clipboard %q, want a link to /r/%s", link, room)
				}
				return nil
			})
			a.screenshot("in the new room")

			bName = b.signIn()
			if bName == aName {
				t.Fatalf("both browsers are called %q: do they share an identity?", aName)
			}
			// The lobby lists the room with A in it.
			b.waitJS("the room in the lobby with 1 member", `(() => {
				const r = document.querySelector('`+tid("room-item")+`[data-room-id="`+room+`"]');
				return r && r.querySelector('`+tid("room-name")+`')?.textContent.includes('Book Club') &&
					r.querySelector('`+tid("room-members")+`')?.textContent.trim() === '1';
			})()`)
			b.screenshot("lobby lists the room")
			b.must("open the room link", chromedp.Navigate(link))
			b.waitInRoom()
			a.waitMember(bName)
			b.waitMember(aName)
			b.screenshot("joined by link")

			a.send(hello)
			b.waitFor("A's message", waitTimeout, func() error {
				for _, e := range stored(b.entries()) {
					if e.Type == "message" && e.Text == hello {
						if e.Own != "false" || e.Verified != "true" || !strings.Contains(e.Author, aName) || e.Time == "" {
							return fmt.Errorf("A's message in B: %s (time %q); want own=false verified=true author %q and a time", e, e.Time, aName)
						}
						return nil
					}
				}
				return errors.New("not shown")
			})
			b.waitJS("A's message announced to screen readers", `(() => {
				const r = document.querySelector('`+tid("live-region")+`');
				return r && /polite|assertive/.test(r.getAttribute('aria-live') ?? '') && r.textContent.includes(`+jsString(hello)+`);
			})()`)
			a.waitFor("A's own message acknowledged", waitTimeout, func() error {
				for _, e := range a.entries() {
					if e.Text == hello {
						if e.Seq == "" || e.Own != "true" || e.Verified != "true" {
							return fmt.Errorf("own message in A: %s", e)
						}
						return nil
					}
				}
				return errors.New("not shown")
			})

			// B replies on two lines (Shift+Enter) while A sees B typing.
			b.typeInComposer(replyL1)
			a.waitJS("B typing in A", visibleJS("typing")+` && document.querySelector('`+tid("typing")+`').textContent.includes(`+jsString(bName)+`)`)
			a.screenshot("B is typing")
			b.must("Shift+Enter", chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)))
			b.typeInComposer(replyL2)
			if v := mustEval[string](b, `document.querySelector('`+tid("composer")+`').value`); v != replyL1+"\n"+replyL2 {
				b.fail("composer holds %q after Shift+Enter, want two lines", v)
			}
			b.pressEnter()
			waitSameHistory(t, []string{hello, replyL1 + "\n" + replyL2}, a, b)
			a.waitJS("the typing hint to go away", `!(`+visibleJS("typing")+` && document.querySelector('`+tid("typing")+`').textContent.trim())`)
			for _, e := range stored(a.entries()) {
				if e.Type == "message" && e.Verified != "true" {
					a.fail("entry not verified: %s", e)
				}
			}
			if got := newPeer(t, m, room).storedMessages(); !slices.Equal(got, []string{hello, replyL1 + "\n" + replyL2}) {
				t.Fatalf("stored messages %q", got)
			}
			a.screenshot("conversation")
			b.screenshot("conversation")
		}},

		{"a late joiner reads the history", func(t *testing.T) {
			c := c.in(t)
			c.signIn()
			c.must("open the room link", chromedp.Navigate(link))
			c.waitInRoom()
			waitSameHistory(t, []string{hello, replyL1 + "\n" + replyL2}, a.in(t), b.in(t), c)
			for _, e := range stored(c.entries()) {
				if e.Type == "message" && (e.Own != "false" || e.Verified != "true") {
					c.fail("history entry %s, want own=false verified=true", e)
				}
			}
			c.screenshot("history")
		}},

		{"a reload keeps the identity and the history", func(t *testing.T) {
			b := b.in(t)
			b.must("reload", chromedp.Reload())
			b.waitInRoom()
			if got := strings.TrimSpace(b.text("me-name")); got != bName {
				b.fail("me-name %q after a reload, want %q", got, bName)
			}
			waitSameHistory(t, []string{hello, replyL1 + "\n" + replyL2}, a.in(t), b, c.in(t))
			for _, e := range stored(b.entries()) {
				if e.Type == "message" && e.Own != strconv.FormatBool(strings.HasPrefix(e.Text, replyL1)) {
					b.fail("after the reload: %s; B's own message must stay its own, A's not", e)
				}
			}
			b.screenshot("after reload")
		}},

		{"markup in messages stays text", func(t *testing.T) {
			a, b, c := a.in(t), b.in(t), c.in(t)
			payloads := []string{
				`<img src=x onerror="window.__xss=1">`,
				`<script>window.__xss=2</script>`,
				`<a href="javascript:window.__xss=3">click</a> and https://example.com/page?q=<b>1</b>`,
			}
			for _, p := range payloads {
				a.send(p)
			}
			want := append([]string{hello, replyL1 + "\n" + replyL2}, payloads...)
			waitSameHistory(t, want, a, b, c)
			for _, br := range []*browser{a, b, c} {
				got := messages(br.entries())
				for i, p := range payloads {
					if got[2+i] != p {
						br.fail("entry-text %q, want the payload as text %q", got[2+i], p)
					}
				}
				type dom struct {
					XSS     string   `json:"xss"`
					Tags    int      `json:"tags"`
					Links   []string `json:"links"`
					Escaped bool     `json:"escaped"`
				}
				d := mustEval[dom](br, `(() => {
					const list = document.querySelector('`+tid("message-list")+`');
					return {
						xss: typeof window.__xss,
						tags: list.querySelectorAll('img, script, iframe, object, embed, b').length,
						links: Array.from(list.querySelectorAll('a')).map(a => a.getAttribute('href') + ' rel=' + a.getAttribute('rel')),
						escaped: list.innerHTML.includes('&lt;img src=x'),
					};
				})()`)
				if d.XSS != "undefined" || d.Tags != 0 || !d.Escaped {
					br.fail("window.__xss is %s, %d markup elements in the message list, escaped=%v", d.XSS, d.Tags, d.Escaped)
				}
				for _, l := range d.Links {
					href, rel, _ := strings.Cut(l, " rel=")
					if !strings.HasPrefix(href, "https://") && !strings.HasPrefix(href, "http://") ||
						!strings.Contains(rel, "noopener") || !strings.Contains(rel, "noreferrer") {
						br.fail("link %q in a message: want http(s) only, with rel noopener noreferrer", l)
					}
				}
			}
			b.screenshot("payloads as text")
		}},

		{"a message over 1000 characters is stopped", func(t *testing.T) {
			a := a.in(t)
			if n := strings.TrimSpace(a.text("char-counter")); n != "1000" {
				a.fail("char-counter %q on an empty composer, want 1000", n)
			}
			a.pasteInComposer(strings.Repeat("x", 1001))
			a.waitJS("char-counter -1", `document.querySelector('`+tid("char-counter")+`')?.textContent.trim() === '-1'`)
			a.pressEnter()
			a.click("send-button")
			a.waitVisible("composer-error")
			if msg := strings.TrimSpace(a.text("composer-error")); msg == "" {
				a.fail("composer-error is empty")
			}
			a.screenshot("1001 characters refused")
			for _, e := range a.entries() {
				if len(e.Text) > 1000 {
					a.fail("the long message is in the list: %s", e)
				}
			}
			before := newPeer(t, m, room).storedMessages()
			if len(before) != 5 {
				t.Fatalf("stored messages %q: the long message must not be sent", before)
			}
			// One character less is a message like any other, counted in
			// code points: 999 ASCII letters and one emoji.
			a.clearInput("composer")
			exact := strings.Repeat("y", 999) + "🙂"
			a.pasteInComposer(exact)
			a.waitJS("char-counter 0", `document.querySelector('`+tid("char-counter")+`')?.textContent.trim() === '0'`)
			a.waitJS("composer-error gone", `!(`+visibleJS("composer-error")+` && document.querySelector('`+tid("composer-error")+`').textContent.trim())`)
			a.pressEnter()
			waitSameHistory(t, append(before, exact), a, b.in(t))
		}},

		{"a new name sticks", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			const newName = "Ada Lovelace"
			a.click("rename-button")
			a.waitVisible("rename-input")
			a.clearInput("rename-input")
			a.must("type the new name", chromedp.Focus(chromedp.CSS(tid("rename-input"))), insertText(newName), chromedp.KeyEvent(kb.Enter))
			a.waitJS("me-name "+newName, `document.querySelector('`+tid("me-name")+`')?.textContent.trim() === `+jsString(newName))
			a.screenshot("renamed")
			a.send("Call me Ada")
			b.waitFor("the message under the new name", waitTimeout, func() error {
				for _, e := range stored(b.entries()) {
					if e.Text == "Call me Ada" {
						if !strings.Contains(e.Author, newName) || e.Verified != "true" {
							return fmt.Errorf("shown as %s", e)
						}
						return nil
					}
				}
				return errors.New("not shown")
			})
			b.waitMember(newName)
			a.must("reload", chromedp.Reload())
			a.waitInRoom()
			if got := strings.TrimSpace(a.text("me-name")); got != newName {
				a.fail("me-name %q after a reload, want the new name %q", got, newName)
			}
			b.screenshot("renamed member")
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			return // the next steps build on this one
		}
	}
}

// waitSameHistory waits until every browser shows the stored messages
// want, in that order, and the same stored entries as the others, each seq
// once and in order, with nothing pending or failed.
func waitSameHistory(t *testing.T, want []string, bs ...*browser) {
	t.Helper()
	waitHistory(t, func(got []string) error {
		if !slices.Equal(got, want) {
			return fmt.Errorf("messages %q, want %q", got, want)
		}
		return nil
	}, bs...)
}

// waitHistory waits until the stored messages of every browser pass
// check, and every browser shows the same stored entries as the others,
// each seq once and in order, with nothing pending or failed.
func waitHistory(t *testing.T, check func(messages []string) error, bs ...*browser) {
	t.Helper()
	var first []entry
	for i, br := range bs {
		br.waitFor("the history", waitTimeout, func() error {
			es := br.entries()
			if err := checkSeqOrder(es); err != nil {
				return err
			}
			for _, e := range es {
				if e.Seq == "" {
					return fmt.Errorf("an entry without seq: %s", e)
				}
			}
			if err := check(messages(es)); err != nil {
				return err
			}
			if i > 0 {
				// Joins and leaves may still be arriving in either.
				if err := sameHistory(first, es); err != nil {
					first = bs[0].entries()
					return err
				}
			} else {
				first = es
			}
			return nil
		})
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserTokenRefresh: with tokens that live 5 s, NATS drops each
// connection every few seconds; two people chat on for 20 s and both see
// every message once, in seq order.
func TestBrowserTokenRefresh(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	cfg.TokenTTL = 5 * time.Second
	m := runMain(t, cfg)
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	b := newBrowser(t, s, m.baseURL(), "B")
	a.signIn()
	room := a.createRoom("")
	b.signIn()
	b.open("/r/" + room)
	b.waitInRoom()

	// Each message should be acknowledged about as fast as a reconnect
	// takes (the app waits 1-2 s between attempts), never only after its
	// request timed out (10 s).
	const maxAckDelay = 8 * time.Second
	var sent []string
	sentAt := map[string]time.Time{}
	ackedAfter := map[string]time.Duration{}
	checkAcks := func() {
		for _, br := range []*browser{a, b} {
			for _, e := range stored(br.entries()) {
				if at, ok := sentAt[e.Text]; ok && e.Own == "true" {
					if _, done := ackedAfter[e.Text]; !done {
						ackedAfter[e.Text] = time.Since(at)
					}
				}
			}
		}
	}
	states := map[string]int{}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for i := range 10 {
		from := []*browser{a, b}[i%2]
		text := fmt.Sprintf("message %d from %s", i+1, from.name)
		from.send(text)
		sent = append(sent, text)
		sentAt[text] = time.Now()
		for _, br := range []*browser{a, b} {
			states[br.name+":"+br.attr("conn-state", "data-state")]++
		}
		if i == 4 {
			a.screenshot("halfway")
		}
		for waiting := true; waiting; {
			select {
			case <-tick.C:
				waiting = false
			case <-poll.C:
				checkAcks()
			}
		}
	}
	a.waitFor("every message acknowledged", waitTimeout, func() error {
		checkAcks()
		if len(ackedAfter) < len(sent) {
			return fmt.Errorf("%d of %d acknowledged", len(ackedAfter), len(sent))
		}
		return nil
	})
	t.Logf("conn-state seen at each send: %v", states)
	for _, br := range []*browser{a, b} {
		t.Logf("%s went through conn-states %q", br.name, mustEval[[]string](br, `window.__connStates`))
		t.Logf("%s long tasks: %s", br.name, mustEval[string](br, `JSON.stringify(window.__longTasks)`))
	}
	var slow []string
	for _, text := range sent {
		t.Logf("%q acknowledged after %s", text, ackedAfter[text].Round(10*time.Millisecond))
		if ackedAfter[text] > maxAckDelay {
			slow = append(slow, fmt.Sprintf("%q after %s", text, ackedAfter[text].Round(100*time.Millisecond)))
		}
	}
	// A message that waits for a reconnect may be stored after one sent
	// later by the other person: the room's order is the seq order.
	waitHistory(t, func(got []string) error {
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(sent))) {
			return fmt.Errorf("messages %q, want each of %q once", got, sent)
		}
		return nil
	}, a, b)
	for _, br := range []*browser{a, b} {
		br.waitConnected()
	}
	if got, shown := newPeer(t, m, room).storedMessages(), messages(a.entries()); !slices.Equal(got, shown) {
		t.Fatalf("stored messages %q, the browsers show %q", got, shown)
	}
	if len(slow) > 0 {
		a.fail("messages acknowledged only after more than %s, across a token expiry: %s", maxAckDelay, strings.Join(slow, ", "))
	}
	a.screenshot("after 20 s")
	b.screenshot("after 20 s")
}

// TestBrowserRateLimited: a message the gateway refuses stays in the list,
// marked failed, with the reason next to it.
func TestBrowserRateLimited(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	cfg.SendRate, cfg.SendBurst = 1, 1
	m := runMain(t, cfg)
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	a.signIn()
	room := a.createRoom("")
	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		a.send(text)
	}
	var failed entry
	a.waitFor("every send answered, one refused", waitTimeout, func() error {
		es := a.entries()
		var answered int
		failed = entry{}
		for _, e := range es {
			if !slices.Contains(texts, e.Text) {
				continue
			}
			switch {
			case e.Seq != "":
				answered++
			case e.Status == "failed":
				answered++
				failed = e
			}
		}
		if answered != len(texts) || failed.Text == "" {
			return fmt.Errorf("entries:\n%s", formatEntries(es))
		}
		return nil
	})
	if !strings.Contains(strings.ToLower(failed.Error), "too many") && !strings.Contains(strings.ToLower(failed.Error), "rate") {
		a.fail("failed entry %s: entry-error should say the rate limit refused it", failed)
	}
	a.screenshot("refused by the rate limit")
	// What the page shows as sent is exactly what the room stored.
	var shown []string
	for _, e := range stored(a.entries()) {
		if e.Type == "message" {
			shown = append(shown, e.Text)
		}
	}
	if got := newPeer(t, m, room).storedMessages(); !slices.Equal(got, shown) {
		t.Fatalf("stored %q, the page shows %q as sent", got, shown)
	}
}

// TestBrowserRoomClosed: a link to a room that does not exist, and a room
// that reaches its maximum life while someone is in it, both show the
// closed-room screen with a way back to the lobby.
func TestBrowserRoomClosed(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	cfg.RoomMaxTTL = 4 * time.Second
	m := runMain(t, cfg)
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	a.signIn()

	backToLobby := func(a *browser) {
		a.t.Helper()
		a.must("back to rooms", chromedp.Click(chromedp.CSS(tid("room-closed")+" "+tid("back-to-rooms"))))
		a.waitJS("the lobby", `location.pathname === '/'`)
		a.waitVisible("room-list")
	}

	t.Run("unknown room", func(t *testing.T) {
		a := a.in(t)
		a.open("/r/nope-aaaaaaaa")
		a.waitVisible("room-closed")
		a.screenshot("unknown room")
		backToLobby(a)
	})

	t.Run("room reaches its max TTL", func(t *testing.T) {
		a := a.in(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		api := &client.API{BaseURL: m.baseURL()}
		u, err := client.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := api.Token(ctx, u, "Grace")
		if err != nil {
			t.Fatal(err)
		}
		room, err := api.CreateRoom(ctx, tok, "Short lived")
		if err != nil {
			t.Fatal(err)
		}
		a.open("/r/" + room.ID)
		a.waitInRoom()
		if time.Now().After(room.ExpiresAt) {
			t.Fatalf("the room expired at %s before the browser was in it; raise RoomMaxTTL", room.ExpiresAt)
		}
		a.screenshot("in the room")
		a.waitFor("room-closed", cfg.RoomMaxTTL+waitTimeout, func() error {
			if ok, err := eval[bool](a, visibleJS("room-closed")); err != nil || !ok {
				return fmt.Errorf("not shown (%v)", err)
			}
			return nil
		})
		a.screenshot("room closed")
		backToLobby(a)
		a.waitJS("the closed room gone from the lobby", `!document.querySelector('`+tid("room-item")+`[data-room-id="`+room.ID+`"]')`)
		a.screenshot("back in the lobby")
	})
}

// TestBrowserPhoneAndDarkMode looks at a room with messages on a phone
// sized screen and in dark mode: the layout fits the width, the composer
// is on screen, and the colours follow prefers-color-scheme.
func TestBrowserPhoneAndDarkMode(t *testing.T) {
	chromium(t)
	m := runMain(t, testConfig(t))
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	a.must("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	a.colorScheme("light")
	a.signIn()
	a.screenshot("phone lobby")
	room := a.createRoom("Phone")
	other := newPeer(t, m, room)
	other.joinAndSend(
		"Hi! This is a longer message to see how the text wraps on a narrow screen, with a link: https://example.com/some/long/path?with=query",
		"👍",
	)
	a.send("A reply from the phone\non two lines")
	a.waitFor("three messages", waitTimeout, func() error {
		if n := len(messages(a.entries())); n != 3 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	type layout struct {
		ScrollWidth   int     `json:"scrollWidth"`
		Width         int     `json:"width"`
		Height        int     `json:"height"`
		ComposerTop   float64 `json:"composerTop"`
		ComposerBot   float64 `json:"composerBottom"`
		Background    string  `json:"background"`
		ColorSchemeOK bool    `json:"dark"`
	}
	read := func() layout {
		return mustEval[layout](a, `(() => {
			const c = document.querySelector('`+tid("composer")+`').getBoundingClientRect();
			return {scrollWidth: document.documentElement.scrollWidth, width: innerWidth, height: innerHeight,
				composerTop: c.top, composerBottom: c.bottom,
				background: getComputedStyle(document.body).backgroundColor,
				dark: matchMedia('(prefers-color-scheme: dark)').matches};
		})()`)
	}
	light := read()
	if light.Width != 390 || light.ScrollWidth > light.Width {
		a.fail("on a 390 px wide screen the page is %d px wide (viewport %d)", light.ScrollWidth, light.Width)
	}
	if light.ComposerTop < 0 || light.ComposerBot > float64(light.Height) {
		a.fail("composer at %v–%v, outside the %d px high screen", light.ComposerTop, light.ComposerBot, light.Height)
	}
	a.screenshot("phone room light")

	a.colorScheme("dark")
	dark := read()
	if !dark.ColorSchemeOK || dark.Background == light.Background {
		a.fail("background %s in dark mode, %s in light: the app does not follow prefers-color-scheme", dark.Background, light.Background)
	}
	a.screenshot("phone room dark")
	a.must("desktop viewport", chromedp.EmulateViewport(1280, 800))
	a.screenshot("desktop room dark")
	a.colorScheme("light")
	a.screenshot("desktop room light")
}
