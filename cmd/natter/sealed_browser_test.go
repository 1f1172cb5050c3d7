package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/sealed"
)

// TestBrowserSealedRoom: A creates a sealed room, B opens its full link,
// and they chat, each reading the other's texts in the page. Meanwhile an
// operator with admin creds, subscribed to everything of the room on the
// bus, and a read of the history bucket see only ciphertext: none of the
// typed texts is in any byte they get; a Go client with the key sends
// and reads in the same room. C opens the link without its
// fragment and gets the sealed screen, then with a wrong key, and every
// message says it could not be decrypted.
func TestBrowserSealedRoom(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	m := runMain(t, cfg)
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	b := newBrowser(t, s, m.baseURL(), "B")
	c := newBrowser(t, s, m.baseURL(), "C")

	// Texts that could not turn up by chance in base64url or JSON.
	texts := []string{
		"the otter swims at midnight 7Q",
		"Grüß dich — the key is under the mat ✓",
		"zebra crossing at noon, bring 3 lemons",
	}
	const goText = "sent from Go: the parrot knows 42 words"
	secrets := append(append([]string{}, texts...), goText)

	aName := a.signIn()
	a.waitVisible("create-room-sealed")
	a.must("tick sealed", chromedp.Click(chromedp.CSS(tid("create-room-sealed"))))
	a.screenshot("sealed ticked")
	a.must("type the room name", chromedp.Focus(chromedp.CSS(tid("create-room-name"))), insertText("Secrets"))
	a.click("create-room-button")
	a.waitJS("the new room's page", `location.pathname.startsWith('/r/')`)
	room := strings.TrimPrefix(a.path(), "/r/")
	fragment := mustEval[string](a, `location.hash`)
	if !regexp.MustCompile(`^#k=[A-Za-z0-9_-]{43}$`).MatchString(fragment) {
		t.Fatalf("a sealed room's page has fragment %q, want #k= and 32 bytes of base64url", fragment)
	}
	key := strings.TrimPrefix(fragment, "#k=")

	// The operator's view, from before the first message: every subject of
	// the room, the browsers' send requests included.
	credsFile := adminCreds(t, cfg.DataDir)
	admin, err := nats.Connect(m.Gateway.ClientURL(), nats.UserCredentials(credsFile))
	if err != nil {
		t.Fatalf("connect with admin creds: %v", err)
	}
	t.Cleanup(admin.Close)
	var busMu sync.Mutex
	var bus []*nats.Msg
	sub, err := admin.Subscribe("chat."+room+".>", func(msg *nats.Msg) {
		busMu.Lock()
		bus = append(bus, msg)
		busMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}

	a.waitInRoom()
	if n := mustEval[int](a, `document.querySelectorAll('`+tid("room-title")+` `+tid("sealed-mark")+`').length`); n != 1 {
		a.fail("the room's header has %d lock marks, want 1", n)
	}
	if got := mustEval[string](a, `sessionStorage.getItem('natter.sealed.`+room+`') ?? ''`); got != key {
		a.fail("sessionStorage holds %q for the room, want the fragment's key", got)
	}
	if n := mustEval[int](a, `Object.keys(localStorage).filter(k => (localStorage.getItem(k) ?? '').includes('`+key+`')).length`); n != 0 {
		a.fail("the room key is in %d localStorage items, want none", n)
	}
	if !mustEval[bool](a, `document.querySelector('`+tid("attach-button")+`').disabled`) {
		a.fail("the attach button is enabled in a sealed room")
	}
	a.allowClipboard()
	a.click("copy-link")
	if got, want := a.clipboard(), m.baseURL()+"/r/"+room+fragment; got != want {
		a.fail("Copy link copied %q, want %q", got, want)
	}

	// The room list marks it sealed.
	bName := b.signIn()
	b.waitJS("the sealed room in the list with its lock", `document.querySelector('`+tid("room-item")+`[data-room-id="`+room+`"] `+tid("sealed-mark")+`')`)
	b.screenshot("lobby with a sealed room")
	b.open("/r/" + room + fragment)
	b.waitInRoom()
	a.waitMember(bName)
	b.waitMember(aName)

	a.send(texts[0])
	b.send(texts[1])
	a.send(texts[2])
	for _, br := range []*browser{a, b} {
		for _, text := range texts {
			br.waitJS("the text "+text+" in clear, verified", `[...document.querySelectorAll('`+tid("entry")+`[data-type="message"][data-verified="true"]:not([data-seq=""]) `+tid("entry-text")+`')]
				.some(e => e.textContent === `+jsString(text)+`)`)
		}
		if n := mustEval[int](br, `document.querySelectorAll('`+tid("entry-undecryptable")+`').length`); n != 0 {
			br.fail("%d entries could not be decrypted with the right key", n)
		}
	}
	// A Go client with the key shares the room: the browsers read its
	// text, and it reads theirs.
	roomKey, err := sealed.ParseKey(key)
	if err != nil {
		t.Fatalf("the fragment's key does not parse in Go: %v", err)
	}
	grace := newPeer(t, m, room)
	grace.joinAndSend()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := grace.conn.SendSealed(ctx, room, roomKey, goText); err != nil {
		t.Fatalf("send sealed from Go: %v", err)
	}
	for _, br := range []*browser{a, b} {
		br.waitJS("the Go client's text in clear, verified", `[...document.querySelectorAll('`+tid("entry")+`[data-type="message"][data-verified="true"] `+tid("entry-text")+`')]
			.some(e => e.textContent === `+jsString(goText)+`)`)
	}
	var opened []string
	for _, e := range grace.history() {
		if e.Type != natter.TypeMessage {
			continue
		}
		text, err := client.OpenSealed(roomKey, e)
		if err != nil {
			t.Errorf("the Go client cannot open entry %d: %v", e.Seq, err)
		}
		opened = append(opened, text)
	}
	// The browsers' sends race each other: compare without their order.
	slices.Sort(opened)
	if want := slices.Sorted(slices.Values(secrets)); !slices.Equal(opened, want) {
		t.Errorf("the Go client opens %q, want %q", opened, want)
	}

	b.typeInComposer("typing…")
	a.waitJS("B typing", `document.querySelector('`+tid("typing")+`')?.textContent.includes(`+jsString(bName)+`)`)
	a.screenshot("chatting")
	b.screenshot("chatting")

	// Without the fragment, C gets the sealed screen and nothing of the room.
	c.signIn()
	c.open("/r/" + room)
	c.waitVisible("sealed-locked")
	if got := c.text("sealed-locked"); !strings.Contains(got, "This room is sealed: ask for the full link") {
		c.fail("sealed screen says %q", got)
	}
	for _, id := range []string{"message-list", "composer", "send-button"} {
		if mustEval[bool](c, `!!document.querySelector('`+tid(id)+`')`) {
			c.fail("the sealed screen shows %s", id)
		}
	}
	c.screenshot("no key")
	// Not even joined: nobody sees C in the room.
	time.Sleep(time.Second)
	if got := len(a.members()); got != 3 {
		a.fail("A sees %d members with C on the sealed screen, want 3 (A, B and the Go client)", got)
	}

	// With a wrong key, C joins and sees every message as undecryptable.
	wrong := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if wrong == key {
		t.Fatal("the room key is all zeros")
	}
	// The fragment pasted over the keyless link: a change of fragment only,
	// no page load.
	mustEval[chromedp.Void](c, `location.hash = 'k=`+wrong+`'`)
	c.waitInRoom()
	c.waitJS("four undecryptable messages", `document.querySelectorAll('`+tid("entry")+`[data-type="message"] `+tid("entry-undecryptable")+`').length === 4`)
	page := mustEval[string](c, `document.body.innerText`)
	for _, text := range secrets {
		if strings.Contains(page, text) {
			c.fail("C shows %q with the wrong key", text)
		}
	}
	if strings.Contains(page, "AAECAwQF") {
		c.fail("C shows something like ciphertext")
	}
	c.screenshot("wrong key")
	c.colorScheme("dark")
	c.screenshot("wrong key, dark")

	// Back in the lobby and into the room from the list, a link without
	// the fragment: the key kept in the tab still reads the room.
	a.click("back-to-rooms")
	a.click("room-item")
	a.waitInRoom()
	if got := mustEval[string](a, `location.hash`); got != "" {
		a.fail("entered from the list with fragment %q, want none", got)
	}
	a.waitJS("the texts again, with the key kept in the tab", `[...document.querySelectorAll('`+tid("entry-text")+`')]
		.filter(e => `+jsArray(texts)+`.includes(e.textContent)).length === 3`)

	// What the operator saw on the bus: the entries, the send requests,
	// joins and typing, and never a text.
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	busMu.Lock()
	var withCT int
	for _, msg := range bus {
		for _, text := range secrets {
			if bytes.Contains(msg.Data, []byte(text)) || strings.Contains(msg.Subject, text) || headerContains(msg, text) {
				t.Errorf("the bus carried %q in clear on %s: %s", text, msg.Subject, msg.Data)
			}
		}
		if bytes.Contains(msg.Data, []byte(`"ct":"`)) {
			withCT++
		}
		if bytes.Contains(msg.Data, []byte(key)) {
			t.Errorf("the bus carried the room key on %s", msg.Subject)
		}
	}
	// Each text went out as a send request and came back as an entry.
	if withCT < 2*len(texts) {
		t.Errorf("the bus carried %d messages with ct, want at least %d (the sends and their entries)", withCT, 2*len(texts))
	}
	busMu.Unlock()

	// What the history bucket holds.
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, natter.BucketHistory)
	if err != nil {
		t.Fatalf("history bucket: %v", err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatalf("history keys: %v", err)
	}
	var stored, storedCT int
	for _, k := range keys {
		if !strings.HasPrefix(k, room+".") {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatalf("history %s: %v", k, err)
		}
		stored++
		for _, text := range secrets {
			if bytes.Contains(e.Value(), []byte(text)) {
				t.Errorf("the history bucket holds %q in clear under %s: %s", text, k, e.Value())
			}
		}
		if bytes.Contains(e.Value(), []byte(key)) {
			t.Errorf("the history bucket holds the room key under %s", k)
		}
		if bytes.Contains(e.Value(), []byte(`"ct":"`)) {
			storedCT++
		}
	}
	if storedCT != len(secrets) {
		t.Errorf("the history bucket holds %d entries with ct among %d of the room, want %d", storedCT, stored, len(secrets))
	}
}

// adminCreds writes the admin creds of natter in dataDir to a file, as
// `natter creds admin -o` does, and returns its path.
func adminCreds(t *testing.T, dataDir string) string {
	t.Helper()
	path := t.TempDir() + "/admin.creds"
	var out bytes.Buffer
	if err := run(t.Context(), []string{"creds", "admin", "-data-dir", dataDir, "-o", path}, &out, &out); err != nil {
		t.Fatalf("creds admin: %v\n%s", err, out.String())
	}
	return path
}

// jsArray is a JavaScript array literal of strings.
func jsArray(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = jsString(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// headerContains reports whether any header value of msg contains s.
func headerContains(msg *nats.Msg, s string) bool {
	for _, vs := range msg.Header {
		for _, v := range vs {
			if strings.Contains(v, s) {
				return true
			}
		}
	}
	return false
}
