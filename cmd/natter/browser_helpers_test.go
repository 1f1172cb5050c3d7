package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
)

// The browser tests drive Debian's Chromium (never a downloaded browser)
// through the DevTools protocol against a real natter serving the embedded
// app. They find elements only by the app's data-testid contract.

const (
	// waitTimeout bounds every wait for the page to reach a state.
	waitTimeout = 30 * time.Second
	// actionTimeout bounds one DevTools round trip (a click, an eval).
	actionTimeout = 30 * time.Second
	// browserLifetime bounds a whole browser, whatever the test does.
	browserLifetime = 5 * time.Minute
)

// chromium returns the path of the Chromium binary. Without one the test
// skips, except under CI, where a missing browser is a broken setup.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "Chromium is not installed (apt-get install -y chromium); the browser tests need /usr/bin/chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// tid is the CSS selector of the app's element with data-testid id.
func tid(id string) string { return `[data-testid="` + id + `"]` }

// shots saves the screenshots of one top-level test into its own folder of
// the screenshots directory, numbered in the order they were taken.
type shots struct {
	dir string
	mu  sync.Mutex
	n   int
}

// screenshotRoot is $NATTER_SCREENSHOTS, or .artifacts/screenshots at the
// repository root.
func screenshotRoot(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("NATTER_SCREENSHOTS"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".artifacts", "screenshots")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// newShots empties the folder of the top-level test t, so that it only
// holds the screenshots of this run.
func newShots(t *testing.T) *shots {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	dir := filepath.Join(screenshotRoot(t), top)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &shots{dir: dir}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (s *shots) path(parts ...string) string {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	name := unsafeName.ReplaceAllString(strings.Join(kept, "-"), "_")
	return filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", n, name))
}

// browser is one person: a Chromium of its own with a fresh profile, so
// its identity (kept in localStorage) is its own. Its methods fail t.
type browser struct {
	t *testing.T
	*chrome
}

// chrome is a running Chromium, shared by a test and its subtests.
type chrome struct {
	name  string
	base  string
	ctx   context.Context
	shots *shots

	mu         sync.Mutex
	logs       []string // console messages and uncaught exceptions of the page
	exceptions []string // uncaught exceptions of the page
}

// in is b for the (sub)test t, which its failures then fail.
func (b *browser) in(t *testing.T) *browser { return &browser{t: t, chrome: b.chrome} }

// newBrowser starts Chromium for the person called name (only used in
// logs and file names) against the natter at base. It stops when the test
// ends, after which its profile directory is removed.
func newBrowser(t *testing.T, s *shots, base, name string) *browser {
	t.Helper()
	exe := chromium(t)
	out := &syncBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The app refreshes tokens on timers: no browser may throttle them.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(out),
	)
	b := &browser{t: t, chrome: &chrome{name: name, base: base, shots: s}}
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithErrorf(b.logf), chromedp.WithLogf(b.logf))
	// Everything this browser does ends by browserLifetime at the latest.
	ctx, cancelLife := context.WithTimeout(ctx, browserLifetime)
	b.ctx = ctx
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		chromedp.Cancel(cctx)
		ccancel()
		cancelLife()
		cancel()
		cancelAlloc() // waits for the browser process to exit
		if t.Failed() {
			b.mu.Lock()
			for _, l := range b.logs {
				t.Logf("[%s console] %s", name, l)
			}
			b.mu.Unlock()
			if o := chromiumOutput(out.String()); o != "" {
				t.Logf("[%s chromium output]\n%s", name, lastLines(o, 30))
			}
		}
	})
	// The first action starts the browser; it must run on the browser's
	// own context, not on one with a shorter deadline. Every screenshot of
	// a desktop is 1280x800.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium for %s: %v", name, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			b.logf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.logf("uncaught: %s", msg)
			b.mu.Lock()
			b.exceptions = append(b.exceptions, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// In every page, record what the Content-Security-Policy blocks and
	// each state the connection indicator goes through.
	_, err = chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__cspViolations = [];
			document.addEventListener('securitypolicyviolation', e =>
				window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')));
			window.__connStates = [];
			new MutationObserver(() => {
				const s = document.querySelector('[data-testid="conn-state"]')?.getAttribute('data-state');
				if (s && window.__connStates[window.__connStates.length - 1] !== s) window.__connStates.push(s);
			}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
			window.__longTasks = [];
			new PerformanceObserver(l => {
				for (const e of l.getEntries()) window.__longTasks.push({start: Math.round(e.startTime), ms: Math.round(e.duration)});
			}).observe({type: 'longtask', buffered: true});`,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// uncaught is the page's uncaught exceptions so far.
func (b *browser) uncaught() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.exceptions)
}

func (b *chrome) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.logs = append(b.logs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// chromiumOutput drops the lines Chromium always prints in a container
// without a system bus.
func chromiumOutput(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "dbus") && !strings.Contains(l, "unexpected operator") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// do runs actions, each call bounded by actionTimeout.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// must runs actions and fails the test if one fails.
func (b *browser) must(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.do(actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in b's page and decodes its value.
func eval[T any](b *browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// mustEval is eval that fails the test on an error.
func mustEval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := eval[T](b, js)
	if err != nil {
		b.fail("evaluate %s: %v", js, err)
	}
	return v
}

// fail takes a screenshot of the page as it is, then fails the test with a
// summary of what the page shows.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	b.screenshot("FAILED")
	b.t.Fatalf("%s: %s\npage: %s", b.name, fmt.Sprintf(format, args...), b.describe())
}

// describe summarises the page for a failure message.
func (b *browser) describe() string {
	type summary struct {
		URL       string  `json:"url"`
		ConnState string  `json:"conn_state"`
		Me        string  `json:"me"`
		Closed    bool    `json:"closed"`
		Body      string  `json:"body"`
		Entries   []entry `json:"entries"`
	}
	s, err := eval[summary](b, `({
		url: location.href,
		conn_state: document.querySelector('[data-testid="conn-state"]')?.getAttribute('data-state') ?? '(no conn-state)',
		me: document.querySelector('[data-testid="me-name"]')?.textContent ?? '(no me-name)',
		closed: !!document.querySelector('[data-testid="room-closed"]'),
		body: (document.body?.innerText ?? '').slice(0, 600),
		entries: `+entriesJS+`,
	})`)
	if err != nil {
		return fmt.Sprintf("(cannot read the page: %v)", err)
	}
	return fmt.Sprintf("url=%s conn-state=%s me-name=%q room-closed=%v\nentries:\n%s\ntext: %q",
		s.URL, s.ConnState, s.Me, s.Closed, formatEntries(s.Entries), s.Body)
}

// screenshot saves what the page shows now and logs where.
func (b *browser) screenshot(step string) {
	b.t.Helper()
	if b.shots == nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s of %s: %v", step, b.name, err)
		return
	}
	sub := ""
	if _, rest, ok := strings.Cut(b.t.Name(), "/"); ok {
		sub = rest
	}
	p := b.shots.path(sub, b.name, step)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot: %s", p)
}

// waitFor polls check until it returns nil; after timeout the test fails
// with check's last error and a screenshot.
func (b *browser) waitFor(what string, timeout time.Duration, check func() error) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.fail("waited %s for %s: %v", timeout, what, err)
		}
		select {
		case <-tick.C:
		case <-b.ctx.Done():
			b.fail("waiting for %s: browser gone: %v (last: %v)", what, b.ctx.Err(), err)
		}
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (b *browser) waitJS(what, js string) {
	b.t.Helper()
	b.waitFor(what, waitTimeout, func() error {
		ok, err := eval[bool](b, "!!("+js+")")
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not yet")
		}
		return nil
	})
}

// visible is a JavaScript test that the element with test id is shown.
func visibleJS(id string) string {
	return `(() => { const e = document.querySelector('` + tid(id) + `');
		return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; })()`
}

// waitVisible waits until the element with test id is shown.
func (b *browser) waitVisible(id string) {
	b.t.Helper()
	b.waitJS(id+" visible", visibleJS(id))
}

// open loads path of the natter app.
func (b *browser) open(path string) {
	b.t.Helper()
	b.must("open "+path, chromedp.Navigate(b.base+path))
}

// click clicks the element with test id once it is visible.
func (b *browser) click(id string) {
	b.t.Helper()
	b.waitVisible(id)
	b.must("click "+id, chromedp.Click(chromedp.CSS(tid(id))))
}

// text is the text content of the first element with test id.
func (b *browser) text(id string) string {
	b.t.Helper()
	return mustEval[string](b, `document.querySelector('`+tid(id)+`')?.textContent ?? ''`)
}

// attr is an attribute of the first element with test id, "" if absent.
func (b *browser) attr(id, name string) string {
	b.t.Helper()
	return mustEval[string](b, `document.querySelector('`+tid(id)+`')?.getAttribute('`+name+`') ?? ''`)
}

// path is the page's location path.
func (b *browser) path() string {
	b.t.Helper()
	return mustEval[string](b, `location.pathname`)
}

// signIn opens the lobby and waits until the app has a name and a
// connection, and returns the name.
func (b *browser) signIn() string {
	b.t.Helper()
	b.open("/")
	b.waitVisible("room-list")
	b.waitConnected()
	b.waitJS("a display name", `document.querySelector('`+tid("me-name")+`')?.textContent.trim()`)
	return strings.TrimSpace(b.text("me-name"))
}

// waitConnected waits until the connection state says connected.
func (b *browser) waitConnected() {
	b.t.Helper()
	b.waitJS("conn-state connected", `document.querySelector('`+tid("conn-state")+`')?.getAttribute('data-state') === 'connected'`)
}

// createRoom creates a room named name from the lobby and returns its id
// once the browser is in it.
func (b *browser) createRoom(name string) string {
	b.t.Helper()
	b.waitVisible("create-room-name")
	if name != "" {
		b.must("type the room name", chromedp.Focus(chromedp.CSS(tid("create-room-name"))), insertText(name))
	}
	b.click("create-room-button")
	b.waitJS("the new room's page", `location.pathname.startsWith('/r/')`)
	id := strings.TrimPrefix(b.path(), "/r/")
	b.waitInRoom()
	return id
}

// waitInRoom waits until the room page shows the room, connected, with the
// person's own join in the history.
func (b *browser) waitInRoom() {
	b.t.Helper()
	b.waitVisible("room-title")
	b.waitVisible("composer")
	b.waitConnected()
	b.waitJS("own join entry", `document.querySelector('`+tid("message-list")+` `+tid("entry")+`[data-type="join"][data-own="true"]')`)
}

// insertText types text at the focus as one input event, as an IME or a
// paste does; much faster than a key event per character.
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// typeInComposer types text into the composer with real key events.
func (b *browser) typeInComposer(text string) {
	b.t.Helper()
	b.waitVisible("composer")
	b.must("type in the composer", chromedp.SendKeys(chromedp.CSS(tid("composer")), text))
}

// pasteInComposer puts text into the composer as one input event.
func (b *browser) pasteInComposer(text string) {
	b.t.Helper()
	b.waitVisible("composer")
	b.must("paste in the composer", chromedp.Focus(chromedp.CSS(tid("composer"))), insertText(text))
}

// pressEnter presses Enter in the composer.
func (b *browser) pressEnter() {
	b.t.Helper()
	b.must("press Enter", chromedp.Focus(chromedp.CSS(tid("composer"))), chromedp.KeyEvent(kb.Enter))
}

// send types text into the composer and presses Enter.
func (b *browser) send(text string) {
	b.t.Helper()
	b.pasteInComposer(text)
	b.pressEnter()
}

// clearInput empties the input or textarea with test id the way React
// notices: through the native value setter and an input event.
func (b *browser) clearInput(id string) {
	b.t.Helper()
	mustEval[chromedp.Void](b, `(() => { const el = document.querySelector('`+tid(id)+`');
		Object.getOwnPropertyDescriptor(Object.getPrototypeOf(el), 'value').set.call(el, '');
		el.dispatchEvent(new Event('input', {bubbles: true})); })()`)
}

// colorScheme makes the page see prefers-color-scheme: scheme (dark or
// light).
func (b *browser) colorScheme(scheme string) {
	b.t.Helper()
	b.must("emulate "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// entry is one history entry as the page shows it.
type entry struct {
	Seq      string `json:"seq"`
	Type     string `json:"type"`
	Own      string `json:"own"`
	Verified string `json:"verified"`
	Status   string `json:"status"`
	Author   string `json:"author"`
	Text     string `json:"text"`
	Time     string `json:"time"`
	Error    string `json:"error"`
}

func (e entry) String() string {
	s := fmt.Sprintf("seq=%s %s own=%s verified=%s author=%q text=%q", e.Seq, e.Type, e.Own, e.Verified, e.Author, truncate(e.Text, 60))
	if e.Status != "" || e.Error != "" {
		s += fmt.Sprintf(" status=%s error=%q", e.Status, e.Error)
	}
	return s
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func formatEntries(es []entry) string {
	if len(es) == 0 {
		return "  (none)"
	}
	var lines []string
	for _, e := range es {
		lines = append(lines, "  "+e.String())
	}
	return strings.Join(lines, "\n")
}

const entriesJS = `Array.from(document.querySelectorAll('[data-testid="message-list"] [data-testid="entry"]')).map(e => {
	const part = id => e.querySelector('[data-testid="' + id + '"]')?.textContent ?? '';
	return {
		seq: e.getAttribute('data-seq') ?? '',
		type: e.getAttribute('data-type') ?? '',
		own: e.getAttribute('data-own') ?? '',
		verified: e.getAttribute('data-verified') ?? '',
		status: e.getAttribute('data-status') ?? '',
		author: part('entry-author'),
		text: part('entry-text'),
		time: part('entry-time'),
		error: part('entry-error'),
	};
})`

// members is the texts of the member list's items.
func (b *browser) members() []string {
	b.t.Helper()
	return mustEval[[]string](b, `Array.from(document.querySelectorAll('`+tid("member-list")+` `+tid("member")+`')).map(e => e.textContent.trim())`)
}

// waitMember waits until the member list names name.
func (b *browser) waitMember(name string) {
	b.t.Helper()
	b.waitFor("member "+name, waitTimeout, func() error {
		ms := b.members()
		for _, m := range ms {
			if strings.Contains(m, name) {
				return nil
			}
		}
		return fmt.Errorf("members %q", ms)
	})
}

// allowClipboard lets the app write and the test read the clipboard.
func (b *browser) allowClipboard() {
	b.t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     b.base,
		})
		cancel()
		if err != nil {
			b.t.Fatalf("grant %s: %v", name, err)
		}
	}
}

// clipboard reads the clipboard's text.
func (b *browser) clipboard() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("read the clipboard: %v", err)
	}
	return s
}

// entries reads the message list.
func (b *browser) entries() []entry {
	b.t.Helper()
	return mustEval[[]entry](b, entriesJS)
}

// stored is the entries that carry a seq (acknowledged or received).
func stored(es []entry) []entry {
	var out []entry
	for _, e := range es {
		if e.Seq != "" {
			out = append(out, e)
		}
	}
	return out
}

// checkSeqOrder returns an error unless the stored entries' seqs are unique
// and increasing.
func checkSeqOrder(es []entry) error {
	var prev int
	seen := map[string]bool{}
	for _, e := range stored(es) {
		if seen[e.Seq] {
			return fmt.Errorf("seq %s shown twice", e.Seq)
		}
		seen[e.Seq] = true
		var n int
		if _, err := fmt.Sscan(e.Seq, &n); err != nil {
			return fmt.Errorf("data-seq %q is not a number", e.Seq)
		}
		if n <= prev {
			return fmt.Errorf("seq %d shown after %d", n, prev)
		}
		prev = n
	}
	return nil
}

// messages is the texts of the stored message entries, in page order.
func messages(es []entry) []string {
	var out []string
	for _, e := range stored(es) {
		if e.Type == natter.TypeMessage {
			out = append(out, e.Text)
		}
	}
	return out
}

// sameHistory returns an error unless two pages show the same stored
// entries: the same seqs with the same types and texts, in the same order.
func sameHistory(a, b []entry) error {
	key := func(es []entry) []string {
		var out []string
		for _, e := range stored(es) {
			out = append(out, e.Seq+" "+e.Type+" "+e.Text)
		}
		return out
	}
	ka, kb := key(a), key(b)
	if strings.Join(ka, "\n") != strings.Join(kb, "\n") {
		return fmt.Errorf("histories differ:\n%s\nvs\n%s", formatEntries(stored(a)), formatEntries(stored(b)))
	}
	return nil
}

// peer is a person taking part from Go, with the client package: to read
// the stored history or to send as someone else than the browsers.
type peer struct {
	t    *testing.T
	api  *client.API
	id   *client.Identity
	conn *client.Conn
	room string
}

// newPeer connects a new user to room (without joining it).
func newPeer(t *testing.T, m *Main, room string) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api := &client.API{BaseURL: m.baseURL()}
	id, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.Token(ctx, id, "Grace", room)
	if err != nil {
		t.Fatalf("token for %s: %v", room, err)
	}
	c, err := client.Dial(id, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &peer{t: t, api: api, id: id, conn: c, room: room}
}

// history reads every stored entry of the room.
func (p *peer) history() []natter.Envelope {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []natter.Envelope
	var after uint64
	for {
		r, err := p.conn.History(ctx, p.room, after, 0)
		if err != nil {
			p.t.Fatalf("history of %s: %v", p.room, err)
		}
		out = append(out, r.Messages...)
		if len(r.Messages) == 0 || r.Messages[len(r.Messages)-1].Seq >= r.LastSeq {
			return out
		}
		after = r.Messages[len(r.Messages)-1].Seq
	}
}

// storedMessages is the texts of the room's stored messages, in seq order.
func (p *peer) storedMessages() []string {
	p.t.Helper()
	var out []string
	for _, e := range p.history() {
		if e.Type == natter.TypeMessage {
			out = append(out, e.Text)
		}
	}
	return out
}

// join enters the room and sends texts, each acknowledged.
func (p *peer) joinAndSend(texts ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.conn.Join(ctx, p.room, "Grace"); err != nil {
		p.t.Fatalf("join %s: %v", p.room, err)
	}
	for _, s := range texts {
		if _, err := p.conn.Send(ctx, p.room, s); err != nil {
			p.t.Fatalf("send %q: %v", s, err)
		}
	}
}
