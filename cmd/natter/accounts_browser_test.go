package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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

// TestBrowserAccountSettings: a registered person manages the account in
// the browser: a new display name (which nobody else can then take), a new
// password, passwordless two-factor and signing in with a code alone,
// two-factor off, and deleting the account, which frees the name.
func TestBrowserAccountSettings(t *testing.T) {
	chromium(t)
	m := runMain(t, testConfig(t))
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	b := newBrowser(t, s, m.baseURL(), "B") // stays anonymous
	const (
		username = "grace_hopper"
		password = "cobol compiler 1959"
		newPass  = "the first compiler bug"
		display  = "Grace Hopper"
		renamed  = "Admiral Grace"
	)
	var (
		secret string
		codes  totpSteps
	)

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a new display name", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			a.signIn()
			a.click("account-button")
			a.click("show-signup")
			fill(a, "signup-username", username)
			fill(a, "signup-display-name", display)
			fill(a, "signup-password", password)
			a.click("signup-submit")
			waitSignedIn(a, display)
			room := a.createRoom("Compilers")
			a.waitJS("A registered in the member list", memberJS(display, true))

			a.click("account-button")
			a.clearInput("account-name-input")
			fill(a, "account-name-input", renamed)
			a.click("account-name-save")
			a.waitVisible("account-name-done")
			a.screenshot("renamed")
			a.must("close the dialog", chromedp.KeyEvent(kb.Escape))
			waitSignedIn(a, renamed)
			a.waitJS("the new name in the member list, registered", memberJS(renamed, true))

			// The registered name is nobody else's, in any case.
			b.signIn()
			b.must("open the room", chromedp.Navigate(m.baseURL()+"/r/"+room))
			b.waitInRoom()
			b.waitJS("A's new name, registered", memberJS(renamed, true))
			b.click("rename-button")
			b.clearInput("rename-input")
			b.must("type a registered name", chromedp.Focus(chromedp.CSS(tid("rename-input"))), insertText("admiral  GRACE"), chromedp.KeyEvent(kb.Enter))
			b.waitJS("the name refused", `document.querySelector('#rename-error')?.textContent.includes('registered')`)
			b.screenshot("a registered name refused")
			b.must("cancel", chromedp.Focus(chromedp.CSS(tid("rename-input"))), chromedp.KeyEvent(kb.Escape))
			b.waitVisible("rename-button")
		}},

		{"a new password", func(t *testing.T) {
			a := a.in(t)
			a.click("account-button")
			fill(a, "old-password", "not my password")
			fill(a, "new-password", newPass)
			a.click("password-save")
			a.waitVisible("old-password-error")
			a.clearInput("old-password")
			fill(a, "old-password", password)
			a.click("password-save")
			// Every session ends with a new password; without two-factor
			// the page signs in again with it by itself.
			a.waitVisible("password-done")
			if a.attr("account-button", "data-signed-in") != "true" {
				a.fail("signed out after changing the password")
			}
			a.screenshot("password changed")
		}},

		{"passwordless two-factor", func(t *testing.T) {
			a := a.in(t)
			a.must("tick passwordless", chromedp.Click(chromedp.CSS(tid("totp-passwordless"))))
			a.click("totp-start")
			a.waitVisible("totp-secret")
			secret = strings.TrimSpace(a.text("totp-secret"))
			fill(a, "totp-code", codes.next(t, secret))
			a.click("totp-confirm")
			waitSignedOut(a)
			a.waitVisible("signin-form")
			a.must("sign in with a code", chromedp.Click(chromedp.CSS(tid("signin-code-only"))))
			if mustEval[bool](a, `!!document.querySelector('`+tid("signin-password")+`')`) {
				a.fail("the password field is still there for a code-only sign-in")
			}
			fill(a, "signin-code", codes.next(t, secret))
			a.screenshot("passwordless sign-in")
			a.click("signin-submit")
			waitSignedIn(a, renamed)
		}},

		{"two-factor off", func(t *testing.T) {
			a := a.in(t)
			a.click("account-button")
			a.waitJS("two-factor on", `document.querySelector('`+tid("totp-section")+`')?.getAttribute('data-enabled') === 'true'`)
			fill(a, "totp-disable-code", "000000")
			a.click("totp-disable")
			a.waitVisible("totp-disable-code-error")
			a.clearInput("totp-disable-code")
			fill(a, "totp-disable-code", codes.next(t, secret))
			a.click("totp-disable")
			waitSignedOut(a)
			fill(a, "signin-password", newPass)
			a.click("signin-submit")
			waitSignedIn(a, renamed)
		}},

		{"delete the account", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			a.click("account-button")
			fill(a, "delete-proof", newPass)
			a.click("delete-button")
			a.waitVisible("delete-error") // not confirmed yet
			a.must("confirm", chromedp.Click(chromedp.CSS(tid("delete-confirm"))))
			a.clearInput("delete-proof")
			fill(a, "delete-proof", "wrong password")
			a.click("delete-button")
			a.waitVisible("delete-proof-error")
			a.screenshot("wrong password")
			a.clearInput("delete-proof")
			fill(a, "delete-proof", newPass)
			a.click("delete-button")
			waitSignedOut(a)
			a.waitVisible("account-notice")
			a.screenshot("deleted")
			// Closed, the dialog leaves the notice in the header until dismissed.
			a.must("close the dialog", chromedp.KeyEvent(kb.Escape))
			a.waitJS("the notice in the header", `!document.querySelector('`+tid("account-dialog")+`').open &&
				document.querySelector('.topbar `+tid("account-notice")+`')?.textContent.includes('deleted')`)
			a.screenshot("notice in the header")
			// The name is free again.
			b.click("rename-button")
			b.clearInput("rename-input")
			b.must("take the freed name", chromedp.Focus(chromedp.CSS(tid("rename-input"))), insertText(renamed), chromedp.KeyEvent(kb.Enter))
			b.waitJS("B under the freed name", `document.querySelector('`+tid("me-name")+`')?.textContent.trim() === `+jsString(renamed))
			b.waitJS("B unregistered in the member list", memberJS(renamed, false))
			for _, br := range []*browser{a, b} {
				if ex := br.uncaught(); len(ex) > 0 {
					br.fail("uncaught exceptions: %q", ex)
				}
			}
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			return
		}
	}
}

// memberJS is a JavaScript test that the member list holds name, with
// data-registered as registered.
func memberJS(name string, registered bool) string {
	return `Array.from(document.querySelectorAll('` + tid("member-list") + ` ` + tid("member") + `')).some(e =>
		e.textContent.trim() === ` + jsString(name) + ` && e.getAttribute('data-registered') === '` + fmt.Sprint(registered) + `')`
}

// totpSteps hands out two-factor codes the way a person's app would, each
// of a later time step than the last: the server takes a code once, and
// only within a step of its clock.
type totpSteps struct{ last int64 }

func (s *totpSteps) next(t *testing.T, secret string) string {
	t.Helper()
	for {
		now := time.Now().Unix() / 30
		step := max(s.last+1, now)
		if step <= now+1 {
			s.last = step
			return totpCode(t, secret, time.Unix(step*30, 0))
		}
		time.Sleep(time.Until(time.Unix((now+1)*30, 0)) + 50*time.Millisecond)
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
