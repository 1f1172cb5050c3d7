package images_test

import (
	"bytes"
	"context"
	"image"
	"runtime"
	"testing"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/images"
	"github.com/natterchat/natter/images/imagestest"
)

func truncate(b []byte) []byte { return b[:len(b)/2] }

func TestCheck(t *testing.T) {
	jpg := imagestest.JPEG(t, 40, 30)
	const gps = "GPS 48.8584N 2.2945E"
	cases := []struct {
		name       string
		data       []byte
		code       string // "" for accepted
		typ        string
		w, h       int
		sameBytes  bool
		notContain string
	}{
		{name: "png", data: imagestest.PNG(t, 40, 30), typ: images.PNG, w: 40, h: 30, sameBytes: true},
		{name: "jpeg", data: jpg, typ: images.JPEG, w: 40, h: 30, sameBytes: true},
		{name: "gif", data: imagestest.GIF(t, 40, 30), typ: images.GIF, w: 40, h: 30, sameBytes: true},
		{name: "webp lossless", data: imagestest.WebP(t, true), typ: images.WebP, w: 1, h: 1, sameBytes: true},
		{name: "webp lossy", data: imagestest.WebP(t, false), typ: images.WebP, w: 1, h: 1, sameBytes: true},
		{name: "jpeg with exif loses it", data: imagestest.WithExif(jpg, gps), typ: images.JPEG, w: 40, h: 30, notContain: gps},
		{name: "png with exif loses it", data: imagestest.PNGWithExif(imagestest.PNG(t, 40, 30), gps), typ: images.PNG, w: 40, h: 30, notContain: gps},
		{name: "webp with exif loses it", data: imagestest.WebPWithExif(t, gps), typ: images.WebP, w: 1, h: 1, notContain: gps},
		{name: "html", data: []byte(imagestest.HTML), code: natter.EUnsupportedType},
		{name: "svg", data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), code: natter.EUnsupportedType},
		{name: "empty", data: nil, code: natter.EUnsupportedType},
		{name: "truncated png", data: truncate(imagestest.PNG(t, 40, 30)), code: natter.ECorruptImage},
		{name: "truncated jpeg", data: truncate(jpg), code: natter.ECorruptImage},
		{name: "truncated gif", data: truncate(imagestest.GIF(t, 40, 30)), code: natter.ECorruptImage},
		{name: "truncated webp", data: imagestest.WebP(t, false)[:30], code: natter.ECorruptImage},
		{name: "png with html after it", data: append(imagestest.PNG(t, 4, 4), imagestest.HTML...), code: natter.ECorruptImage},
		{name: "jpeg with a zip after it", data: append(imagestest.JPEG(t, 4, 4), "PK\x03\x04polyglot"...), code: natter.ECorruptImage},
		{name: "gif with script after it", data: append(imagestest.GIF(t, 4, 4), "*/alert(1)"...), code: natter.ECorruptImage},
		{name: "webp with html after it", data: append(imagestest.WebP(t, false), imagestest.HTML...), code: natter.ECorruptImage},
		{name: "png header only", data: imagestest.PNGHeader(10, 10), code: natter.ECorruptImage},
		{name: "png bomb", data: imagestest.PNGHeader(100_000, 100_000), code: natter.ETooLarge},
		{name: "png just over 40 MP", data: imagestest.PNGHeader(8000, 5001), code: natter.ETooLarge},
		{name: "gif bomb", data: imagestest.GIFHeader(65535, 65535), code: natter.ETooLarge},
		{name: "png of no pixels", data: imagestest.PNGHeader(0, 10), code: natter.ECorruptImage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, out, err := images.Check(context.Background(), tc.data)
			if tc.code != "" {
				if got := natter.ErrorCode(err); got != tc.code {
					t.Fatalf("code %q (%v), want %q", got, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != tc.typ || info.Width != tc.w || info.Height != tc.h {
				t.Fatalf("info %+v, want %s %d×%d", info, tc.typ, tc.w, tc.h)
			}
			if tc.sameBytes && !bytes.Equal(out, tc.data) {
				t.Fatalf("the bytes changed: %d in, %d out", len(tc.data), len(out))
			}
			if tc.notContain != "" {
				if bytes.Contains(out, []byte(tc.notContain)) {
					t.Fatalf("output still contains %q", tc.notContain)
				}
				if _, _, err := image.Decode(bytes.NewReader(out)); err != nil {
					t.Fatalf("stripped image does not decode: %v", err)
				}
			}
		})
	}
}

// TestStripKeepsPixels: stripping removes the metadata and nothing else.
func TestStripKeepsPixels(t *testing.T) {
	jpg := imagestest.JPEG(t, 16, 16)
	stripped, err := images.StripJPEG(imagestest.WithExif(jpg, "GPS"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stripped, jpg) {
		t.Fatalf("stripping the added segments should give back the original %d bytes, got %d", len(jpg), len(stripped))
	}
	png := imagestest.PNG(t, 16, 16)
	if stripped, err = images.StripPNG(imagestest.PNGWithExif(png, "GPS")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stripped, png) {
		t.Fatalf("stripping the added chunks should give back the original %d bytes, got %d", len(png), len(stripped))
	}
	webp := imagestest.WebPWithExif(t, "GPS")
	if stripped, err = images.StripWebP(webp); err != nil {
		t.Fatal(err)
	}
	// The EXIF chunk is 8 + 7 bytes and a pad, the XMP chunk 8 + 26; the
	// flags are the first byte of the VP8X chunk's body, at 20.
	if want := len(webp) - 16 - 34; len(stripped) != want || stripped[20]&0x0C != 0 ||
		int(stripped[4])|int(stripped[5])<<8 != len(stripped)-8 {
		t.Fatalf("stripped WebP of %d bytes (want %d), flags %#x, RIFF size %d", len(stripped), want, stripped[20], int(stripped[4])|int(stripped[5])<<8)
	}
}

// TestBombNotAllocated: a header claiming 100 000 × 100 000 pixels (or a
// GIF's 65 535²) is refused from the header, without allocating anything
// near its pixels.
func TestBombNotAllocated(t *testing.T) {
	for _, bomb := range [][]byte{imagestest.PNGHeader(100_000, 100_000), imagestest.GIFHeader(65535, 65535)} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, _, err := images.Check(context.Background(), bomb); natter.ErrorCode(err) != natter.ETooLarge {
				t.Fatalf("bomb: %v", err)
			}
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Fatalf("checking 10 bombs allocated %d bytes", n)
		}
	}
}
