package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserImages: two people in a room share an image in real
// browsers. A attaches a PNG through the file input and sends it with a
// caption, watching the upload's progress; both see the thumbnail laid
// out with the image's aspect ratio and its bytes loaded, B opens it full
// size and closes it with Esc. An HTML page named .png is refused with
// the reason, and a file over 5 MiB is stopped before it is sent.
func TestBrowserImages(t *testing.T) {
	chromium(t)
	m := runMain(t, testConfig(t))
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	b := newBrowser(t, s, m.baseURL(), "B")
	dir := t.TempDir()
	// 300x150: twice as wide as high, so a square box would show. Noise,
	// so the PNG does not compress and the upload takes a while when slowed.
	wide := filepath.Join(dir, "wide.png")
	writeNoisePNG(t, wide, 300, 150)
	fake := filepath.Join(dir, "page.png")
	if err := os.WriteFile(fake, []byte("<!doctype html><title>not an image</title><script>alert(1)</script>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.png")
	if err := os.WriteFile(huge, make([]byte, 5<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	const caption = "The view from here"
	var room, aName string

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"A uploads an image with progress", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			aName = a.signIn()
			room = a.createRoom("Photos")
			bName := b.signIn()
			b.open("/r/" + room)
			b.waitInRoom()
			a.waitMember(bName)
			b.waitMember(aName)

			// Every value the progress bar takes, however briefly it is shown.
			mustEval[chromedp.Void](a, `(() => { window.__progress = [];
				new MutationObserver(() => {
					const p = document.querySelector('`+tid("upload-progress")+`');
					if (p && window.__progress[window.__progress.length - 1] !== p.value) window.__progress.push(p.value);
				}).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['value']}); })()`)
			a.attachFile(wide)
			a.waitVisible("attachment")
			if got := a.text("attachment"); !strings.Contains(got, "wide.png") {
				a.fail("attachment %q, want the file's name", got)
			}
			a.screenshot("image attached")
			// About 135 kB at 40 kB/s: the upload takes seconds, long enough
			// to see the bar move.
			a.throttleUploads(40_000)
			a.send(caption)
			a.waitVisible("upload-progress")
			a.waitJS("the progress bar moving", `window.__progress.some(v => v > 0 && v < 1)`)
			a.screenshot("uploading")
			a.throttleUploads(-1)
			a.waitImage(caption, 300, 150)
			a.screenshot("image sent")
			if p := mustEval[[]float64](a, `window.__progress`); len(p) < 2 {
				a.fail("progress went through %v, want several values", p)
			}
			if e := mustEval[int](a, `document.querySelectorAll('`+tid("message-list")+` [data-status]').length`); e != 0 {
				a.fail("%d of A's messages still pending after the image arrived", e)
			}
		}},
		{"B sees it with its aspect ratio and opens it", func(t *testing.T) {
			b := b.in(t)
			b.waitImage(caption, 300, 150)
			b.screenshot("image received")
			if got := b.attr("entry-image", "data-width") + "x" + b.attr("entry-image", "data-height"); got != "300x150" {
				b.fail("entry-image dimensions %s, want 300x150 from the upload", got)
			}
			b.click("entry-image-open")
			b.waitJS("the lightbox open", `document.querySelector('`+tid("lightbox")+`')?.open &&
				document.querySelector('`+tid("lightbox")+` img')?.naturalWidth === 300`)
			b.screenshot("full size")
			// The signed link opens the image in a tab of its own, without a token.
			b.waitJS("a signed link to the original", `document.querySelector('`+tid("lightbox-original")+`')?.href.includes('sig=')`)
			ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector('`+tid("lightbox-original")+`').href,
				{credentials: 'omit'}).then(r => r.status + ' ' + r.headers.get('Content-Type'))`, chromedp.EvalAwaitPromise))
			cancel()
			if err != nil || got != "200 image/png" {
				b.fail("the signed link answers %q (%v), want 200 image/png", got, err)
			}
			b.must("press Escape", chromedp.KeyEvent(kb.Escape))
			b.waitJS("the lightbox closed", `!document.querySelector('`+tid("lightbox")+`')?.open`)
			b.waitJS("focus back on the thumbnail", `document.activeElement?.dataset.testid === 'entry-image-open'`)
			// From the keyboard alone: Enter on the focused thumbnail opens it again.
			b.must("press Enter", chromedp.KeyEvent(kb.Enter))
			b.waitJS("the lightbox open from the keyboard", `document.querySelector('`+tid("lightbox")+`')?.open`)
			b.must("press Escape", chromedp.KeyEvent(kb.Escape))
			b.waitJS("the lightbox closed again", `!document.querySelector('`+tid("lightbox")+`')?.open`)
		}},
		{"an HTML page named .png is refused", func(t *testing.T) {
			a := a.in(t)
			a.attachFile(fake)
			a.waitVisible("attachment")
			a.click("send-button")
			a.waitJS("the refusal", `document.querySelector('`+tid("entry")+`[data-status="failed"][data-error-code="unsupported_type"] `+tid("entry-error")+`')`)
			msg := mustEval[string](a, `document.querySelector('`+tid("entry")+`[data-status="failed"] `+tid("entry-error")+`').textContent`)
			if !strings.Contains(msg, "Not an image") || !strings.Contains(msg, "PNG, JPEG, GIF or WebP") {
				a.fail("refusal %q, want why: not an image type natter takes", msg)
			}
			a.screenshot("refused")
			b := b.in(t)
			if n := mustEval[int](b, `document.querySelectorAll('`+tid("entry")+`[data-type="image"]').length`); n != 1 {
				b.fail("B shows %d images, want only the first PNG", n)
			}
		}},
		{"a pasted or dropped image is attached", func(t *testing.T) {
			a, b := a.in(t), b.in(t)
			// An image made in the page, as a screenshot on the clipboard
			// or a file dragged from the desktop would be.
			const makeFile = `new Promise(resolve => { const c = document.createElement('canvas');
				c.width = 120; c.height = 160; const g = c.getContext('2d');
				g.fillStyle = '#2c6fd1'; g.fillRect(0, 0, 120, 160); g.fillStyle = '#fff'; g.fillRect(20, 20, 80, 40);
				c.toBlob(blob => resolve(new File([blob], 'tall.png', {type: 'image/png'})), 'image/png'); })`
			mustEval[chromedp.Void](a, `(async () => { const dt = new DataTransfer(); dt.items.add(await `+makeFile+`);
				document.querySelector('`+tid("composer")+`').dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true})); })()`)
			a.waitVisible("attachment")
			if got := a.text("attachment"); !strings.Contains(got, "tall.png") {
				a.fail("attachment %q after a paste, want tall.png", got)
			}
			a.click("attachment-remove")
			a.waitJS("no attachment", `!document.querySelector('`+tid("attachment")+`')`)
			mustEval[chromedp.Void](a, `(async () => { const dt = new DataTransfer(); dt.items.add(await `+makeFile+`);
				const chat = document.querySelector('`+tid("conversation")+`');
				chat.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true, cancelable: true}));
				chat.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true})); })()`)
			a.waitJS("the drop hint", `document.querySelector('.drop-overlay')`)
			a.screenshot("dragging an image")
			mustEval[chromedp.Void](a, `(async () => { const dt = new DataTransfer(); dt.items.add(await `+makeFile+`);
				document.querySelector('`+tid("conversation")+`').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); })()`)
			a.waitVisible("attachment")
			a.waitJS("no drop hint", `!document.querySelector('.drop-overlay')`)
			a.click("send-button")
			b.waitImage("", 120, 160)
			b.screenshot("dropped image received")
		}},
		{"a file over 5 MiB is stopped before sending", func(t *testing.T) {
			a := a.in(t)
			a.attachFile(huge)
			a.waitVisible("composer-error")
			if msg := a.text("composer-error"); !strings.Contains(msg, "larger than 5 MiB") {
				a.fail("composer-error %q, want that it is larger than 5 MiB", msg)
			}
			if n := mustEval[int](a, `document.querySelectorAll('`+tid("attachment")+`').length`); n != 0 {
				a.fail("the file over 5 MiB was attached")
			}
			a.screenshot("too large")
		}},
		{"on a phone", func(t *testing.T) {
			b := b.in(t)
			b.must("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
			b.waitImage(caption, 300, 150)
			b.screenshot("phone")
			b.colorScheme("dark")
			b.screenshot("phone dark")
			b.colorScheme("light")
		}},
		{"nothing broke the page's policy", func(t *testing.T) {
			for _, p := range []*browser{a.in(t), b.in(t)} {
				if v := mustEval[[]string](p, `window.__cspViolations`); len(v) > 0 {
					p.fail("Content-Security-Policy violations: %q", v)
				}
				if ex := p.uncaught(); len(ex) > 0 {
					p.fail("uncaught exceptions: %q", ex)
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

// writeNoisePNG writes a w×h PNG of random colours to path.
func writeNoisePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(r.IntN(256)), uint8(x * 255 / w), uint8(r.IntN(256)), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// attachFile chooses path in the composer's file input, as the attach
// button's file picker does.
func (b *browser) attachFile(path string) {
	b.t.Helper()
	b.must("choose "+filepath.Base(path), chromedp.SetUploadFiles(chromedp.CSS(tid("attach-input")), []string{path}))
}

// throttleUploads limits the page's uploads to bytesPerSecond; -1 lifts it.
func (b *browser) throttleUploads(bytesPerSecond float64) {
	b.t.Helper()
	b.must("throttle uploads", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{
				URLPattern:         b.base + "/api/v1/rooms/*/uploads",
				DownloadThroughput: -1,
				UploadThroughput:   bytesPerSecond,
			}},
		})
		return err
	}))
}

// waitImage waits for the image entry with caption, signed, its bytes
// loaded (w×h) in a box with the image's aspect ratio.
func (b *browser) waitImage(caption string, w, h int) {
	b.t.Helper()
	sel := tid("message-list") + ` ` + tid("entry") + `[data-type="image"]`
	b.waitJS("the image loaded", `(() => {
		const e = Array.from(document.querySelectorAll('`+sel+`')).find(e => e.querySelector('`+tid("entry-text")+`')?.textContent === '`+caption+`');
		return e?.querySelector('`+tid("entry-image")+` img')?.naturalWidth === `+strconv.Itoa(w)+`;
	})()`)
	type shape struct {
		Verified string  `json:"verified"`
		W        float64 `json:"w"`
		H        float64 `json:"h"`
		NW       float64 `json:"nw"`
		NH       float64 `json:"nh"`
	}
	got := mustEval[shape](b, `(() => {
		const e = Array.from(document.querySelectorAll('`+sel+`')).find(e => e.querySelector('`+tid("entry-text")+`')?.textContent === '`+caption+`');
		const box = e.querySelector('`+tid("entry-image")+`').getBoundingClientRect();
		const img = e.querySelector('`+tid("entry-image")+` img');
		return {verified: e.dataset.verified, w: box.width, h: box.height, nw: img.naturalWidth, nh: img.naturalHeight};
	})()`)
	if got.Verified != "true" {
		b.fail("image entry data-verified=%q, want true", got.Verified)
	}
	if got.NW != float64(w) || got.NH != float64(h) {
		b.fail("image %vx%v, want %dx%d", got.NW, got.NH, w, h)
	}
	if want := float64(w) / float64(h); got.H == 0 || math.Abs(got.W/got.H-want) > 0.03 {
		b.fail("thumbnail box %.1fx%.1f, want the image's %dx%d", got.W, got.H, w, h)
	}
}

// TestBrowserImageRateLimit: past NATTER_UPLOAD_RATE uploads a minute, an
// image is refused with how long to wait, and can be tried again.
func TestBrowserImageRateLimit(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	cfg.UploadRate = 1
	m := runMain(t, cfg)
	s := newShots(t)
	a := newBrowser(t, s, m.baseURL(), "A")
	img := filepath.Join(t.TempDir(), "small.png")
	writeNoisePNG(t, img, 40, 20)
	a.signIn()
	a.createRoom("")
	a.attachFile(img)
	a.waitVisible("attachment")
	a.send("first")
	a.waitImage("first", 40, 20)
	a.attachFile(img)
	a.waitVisible("attachment")
	a.send("second")
	a.waitJS("the refusal", `document.querySelector('`+tid("entry")+`[data-status="failed"][data-error-code="rate_limited"]')`)
	msg := mustEval[string](a, `document.querySelector('`+tid("entry")+`[data-status="failed"] `+tid("entry-error")+`').textContent`)
	if !strings.HasPrefix(msg, "Too many uploads. Try again in ") || !strings.Contains(msg, "second") && !strings.Contains(msg, "minute") {
		a.fail("refusal %q, want too many uploads and how long to wait", msg)
	}
	if !mustEval[bool](a, `Array.from(document.querySelectorAll('`+tid("entry")+`[data-status="failed"] button')).some(b => b.textContent === 'Retry')`) {
		a.fail("no Retry on a refusal that waiting cures")
	}
	a.screenshot("too many uploads")
}
