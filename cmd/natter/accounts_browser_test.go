package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// TestBrowserAccounts: in a real browser against a real natter, a person
// registers a name, logs out and in, turns two-factor on with the secret
// the page shows, logs in with password and code, and chats: their
// messages and their entry in the member list carry the registered mark,
// for them and for an anonymous person in the same room, whose own do not.
func TestBrowserAccounts(t *testing.T) {
	chromium(t)
	m := runMain(t, testConfig(t))
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	b := newBrowser(t, s, m.baseURL(), "B") // stays anonymous
	const (
		username = "ada_lovelace"
		password = "analytical engine of 1843"
		display  = "Ada Lovelace"
		hello    = "Hello from a registered name"
		bye      = "Logged out, anonymous again"
	)
	var anonName string

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"sign up", func(t *testing.T) {
			a := a.in(t)
			anonName = a.signIn()
			if a.attr("account-button", "data-signed-in") != "false" {
				a.fail("a new visitor is signed in; anonymous must stay the default")
			}
			a.click("account-button")
			a.click("show-signup")
			a.waitVisible("signup-form")
			// A username the server refuses shows its error next to the field.
			fill(a, "signup-username", "Ada")
			fill(a, "signup-display-name", display)
			fill(a, "signup-password", password)
			a.click("signup-submit")
			a.waitVisible("signup-username-error")
			if msg := a.text("signup-username-error"); !strings.Contains(msg, "lower-case") {
				a.fail("signup-username-error %q, want the username rule", msg)
			}
			if a.attr("signup-username", "aria-invalid") != "true" {
				a.fail("the refused username is not marked aria-invalid")
			}
			a.screenshot("username refused")
			a.clearInput("signup-username")
			fill(a, "signup-username", username)
			a.click("signup-submit")
			waitSignedIn(a, display)
			a.screenshot("signed up")
		}},

		{"log out and in", func(t *testing.T) {
			a := a.in(t)
			a.click("account-button")
			a.waitJS("the account's username", `document.querySelector('`+tid("account-username")+`')?.textContent === '`+username+`'`)
			a.screenshot("account")
			a.click("logout-button")
			waitSignedOut(a)
			// Back to the anonymous name of before.
			a.waitJS("the anonymous name", `document.querySelector('`+tid("me-name")+`')?.textContent.trim() === `+jsString(anonName))

			a.click("account-button")
			a.waitVisible("signin-form")
			fill(a, "signin-username", username)
			fill(a, "signin-password", "not the password")
			a.click("signin-submit")
			a.waitVisible("signin-error")
			if msg := a.text("signin-error"); !strings.Contains(msg, "Wrong username, password or code") {
				a.fail("signin-error %q after a wrong password", msg)
			}
			a.clearInput("signin-password")
			fill(a, "signin-password", password)
			a.click("signin-submit")
			waitSignedIn(a, display)
		}},

		{"enable two-factor", func(t *testing.T) {
			a := a.in(t)
			a.click("account-button")
			a.click("totp-start")
			a.waitVisible("totp-secret")
			a.waitJS("the QR code drawn", `(() => { const i = document.querySelector('`+tid("totp-qr")+`');
				return i && i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png;base64,'); })()`)
			secret := strings.TrimSpace(a.text("totp-secret"))
			if secret == "" {
				a.fail("no secret shown for manual entry")
			}
			a.screenshot("two-factor enrolment")
			fill(a, "totp-code", totpCode(t, secret, time.Now()))
			a.click("totp-confirm")
			// Turning two-factor on ends every session: the page asks to sign in again.
			waitSignedOut(a)
			a.waitVisible("signin-form")
			if got := mustEval[string](a, `document.querySelector('`+tid("signin-username")+`').value`); got != username {
				a.fail("signin-username %q after two-factor went on, want %q filled in", got, username)
			}
			a.screenshot("two-factor on, sign in again")

			// Password first: the server asks for the code.
			fill(a, "signin-password", password)
			a.click("signin-submit")
			a.waitVisible("signin-code")
			a.screenshot("code asked for")
			// A code is good once, and the one that confirmed two-factor was
			// of this step: the next step's is accepted (one step of drift).
			fill(a, "signin-code", totpCode(t, secret, time.Now().Add(30*time.Second)))
			a.click("signin-submit")
			waitSignedIn(a, display)
		}},

		{"chat with the registered mark", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			room := a.createRoom("Difference Engine")
			bName := b.signIn()
			b.must("open the room", chromedp.Navigate(m.baseURL()+"/r/"+room))
			b.waitInRoom()
			a.waitMember(bName)
			a.send(hello)
			for _, br := range []*browser{a, b} {
				br.waitFor("the registered mark on A's message", waitTimeout, func() error {
					for _, e := range stored(br.entries()) {
						if e.Type == "message" && e.Text == hello {
							reg := mustEval[string](br, `document.querySelector('`+tid("entry")+`[data-seq="`+e.Seq+`"]').getAttribute('data-registered')`)
							mark := mustEval[bool](br, `!!document.querySelector('`+tid("entry")+`[data-seq="`+e.Seq+`"] `+tid("registered-mark")+`[title="Registered name"]')`)
							if reg != "true" || !mark || e.Verified != "true" || e.Author != display {
								return fmt.Errorf("%s data-registered=%s mark=%v; want registered, signed and by %q", e, reg, mark, display)
							}
							return nil
						}
					}
					return errors.New("not shown")
				})
				br.waitJS("A registered in the member list", `Array.from(document.querySelectorAll('`+tid("member-list")+` `+tid("member")+`')).some(e =>
					e.textContent.trim() === `+jsString(display)+` && e.getAttribute('data-registered') === 'true' &&
					e.parentElement.querySelector('`+tid("registered-mark")+`'))`)
			}
			// B is anonymous: no mark on B's join, nor next to B's name.
			b.waitJS("B unregistered in the member list", `Array.from(document.querySelectorAll('`+tid("member-list")+` `+tid("member")+`')).some(e =>
				e.textContent.trim() === `+jsString(bName)+` && e.getAttribute('data-registered') === 'false')`)
			if n := mustEval[int](b, `document.querySelectorAll('`+tid("entry")+`[data-own="true"][data-registered="true"]').length`); n != 0 {
				b.fail("%d of the anonymous B's entries carry the registered mark", n)
			}
			a.screenshot("chat, registered")
			b.screenshot("chat, seen by an anonymous person")
			for _, br := range []*browser{a, b} {
				if v := mustEval[[]string](br, `window.__cspViolations`); len(v) > 0 {
					br.fail("Content-Security-Policy violations: %q", v)
				}
				if ex := br.uncaught(); len(ex) > 0 {
					br.fail("uncaught exceptions: %q", ex)
				}
			}
		}},

		{"logging out in the room drops the mark", func(t *testing.T) {
			// The key that held the account's token stays bound to the
			// account for the token's life: the page must chat on with a
			// key of its own, under the anonymous name and with no mark.
			a, b := a.in(t), b.in(t)
			a.click("account-button")
			a.click("logout-button")
			waitSignedOut(a)
			a.waitJS("the anonymous name", `document.querySelector('`+tid("me-name")+`')?.textContent.trim() === `+jsString(anonName))
			a.waitInRoom()
			a.send(bye)
			b.waitFor("A's message after logging out", waitTimeout, func() error {
				for _, e := range stored(b.entries()) {
					if e.Type == "message" && e.Text == bye {
						reg := mustEval[string](b, `document.querySelector('`+tid("entry")+`[data-seq="`+e.Seq+`"]').getAttribute('data-registered')`)
						if reg != "false" || e.Author != anonName || e.Verified != "true" {
							return fmt.Errorf("%s data-registered=%s; want unregistered, signed, by %q", e, reg, anonName)
						}
						return nil
					}
				}
				return errors.New("not shown")
			})
			b.waitJS("A anonymous in the member list, the registered name gone", `(() => {
				const ms = Array.from(document.querySelectorAll('`+tid("member-list")+` `+tid("member")+`'));
				return ms.some(e => e.textContent.trim() === `+jsString(anonName)+` && e.getAttribute('data-registered') === 'false') &&
					!ms.some(e => e.textContent.trim() === `+jsString(display)+`);
			})()`)
			b.screenshot("A logged out")
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			return
		}
	}
}

// fill types text into the input with test id, as one input event.
func fill(b *browser, id, text string) {
	b.t.Helper()
	b.waitVisible(id)
	b.must("type into "+id, chromedp.Focus(chromedp.CSS(tid(id))), insertText(text))
}

// waitSignedIn waits until the header shows the account signed in under
// display, with the registered mark, and the dialog closed.
func waitSignedIn(b *browser, display string) {
	b.t.Helper()
	b.waitJS("signed in as "+display, `document.querySelector('`+tid("account-button")+`')?.getAttribute('data-signed-in') === 'true' &&
		document.querySelector('`+tid("me-name")+`')?.textContent.trim() === `+jsString(display)+` &&
		!!document.querySelector('.me `+tid("registered-mark")+`') &&
		!document.querySelector('`+tid("account-dialog")+`').open`)
	b.waitConnected()
}

// waitSignedOut waits until the header shows no account.
func waitSignedOut(b *browser) {
	b.t.Helper()
	b.waitJS("signed out", `document.querySelector('`+tid("account-button")+`')?.getAttribute('data-signed-in') === 'false' &&
		!document.querySelector('.me `+tid("registered-mark")+`')`)
}

// totpCode is the two-factor code of secret at time at.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatalf("totp code: %v", err)
	}
	return code
}
