package images_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"testing"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/images"
)

func picture(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), 128, 255})
		}
	}
	return m
}

// PNG, JPEG and GIF encode an image of w×h pixels.
func PNG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, picture(w, h)); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func JPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, picture(w, h), nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func GIF(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, picture(w, h), nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func truncate(b []byte) []byte { return b[:len(b)/2] }

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// withExif puts an APP1 Exif segment, an XMP segment, an APP13 segment
// and a comment carrying marker right after a JPEG's SOI.
func withExif(jpg []byte, marker string) []byte {
	seg := func(m byte, body string) []byte {
		s := []byte{0xFF, m, 0, 0}
		binary.BigEndian.PutUint16(s[2:], uint16(len(body)+2))
		return append(s, body...)
	}
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg(0xE1, "Exif\x00\x00MM\x00*"+marker)...)
	out = append(out, seg(0xE1, "http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>"+marker+"</x:xmpmeta>")...)
	out = append(out, seg(0xED, "Photoshop 3.0\x00"+marker)...)
	out = append(out, seg(0xFE, marker)...)
	return append(out, jpg[2:]...)
}

// pngHeader is a PNG signature and an IHDR claiming w×h pixels, with a
// right CRC, and nothing else.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 6 // 8-bit RGBA
	out := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
	out = append(out, ihdr...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(ihdr))
}

func TestCheck(t *testing.T) {
	jpg := JPEG(t, 40, 30)
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
		{name: "png", data: PNG(t, 40, 30), typ: images.PNG, w: 40, h: 30, sameBytes: true},
		{name: "jpeg", data: jpg, typ: images.JPEG, w: 40, h: 30, sameBytes: true},
		{name: "gif", data: GIF(t, 40, 30), typ: images.GIF, w: 40, h: 30, sameBytes: true},
		{name: "webp lossless", data: readFile(t, "testdata/lossless.webp"), typ: images.WebP, w: 1, h: 1, sameBytes: true},
		{name: "webp lossy", data: readFile(t, "testdata/lossy.webp"), typ: images.WebP, w: 1, h: 1, sameBytes: true},
		{name: "jpeg with exif loses it", data: withExif(jpg, gps), typ: images.JPEG, w: 40, h: 30, notContain: gps},
		{name: "html", data: []byte("<!doctype html><script>alert(1)</script>"), code: natter.EUnsupportedType},
		{name: "svg", data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), code: natter.EUnsupportedType},
		{name: "empty", data: nil, code: natter.EUnsupportedType},
		{name: "truncated png", data: truncate(PNG(t, 40, 30)), code: natter.ECorruptImage},
		{name: "truncated jpeg", data: jpg[:len(jpg)/2], code: natter.ECorruptImage},
		{name: "truncated gif", data: GIF(t, 40, 30)[:100], code: natter.ECorruptImage},
		{name: "truncated webp", data: readFile(t, "testdata/lossy.webp")[:30], code: natter.ECorruptImage},
		{name: "png with html after it", data: append(PNG(t, 4, 4), "<html><script>alert(1)</script>"...), code: natter.ECorruptImage},
		{name: "jpeg with a zip after it", data: append(JPEG(t, 4, 4), "PK\x03\x04polyglot"...), code: natter.ECorruptImage},
		{name: "gif with script after it", data: append(GIF(t, 4, 4), "*/alert(1)"...), code: natter.ECorruptImage},
		{name: "webp with data after it", data: append(readFile(t, "testdata/lossy.webp"), "<html>"...), code: natter.ECorruptImage},
		{name: "png header only", data: pngHeader(10, 10), code: natter.ECorruptImage},
		{name: "png bomb", data: pngHeader(100_000, 100_000), code: natter.ETooLarge},
		{name: "png just over 40 MP", data: pngHeader(8000, 5001), code: natter.ETooLarge},
		{name: "gif bomb", data: gifHeader(65535, 65535), code: natter.ETooLarge},
		{name: "png of no pixels", data: pngHeader(0, 10), code: natter.ECorruptImage},
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
				if _, err := jpeg.Decode(bytes.NewReader(out)); err != nil {
					t.Fatalf("stripped JPEG does not decode: %v", err)
				}
			}
		})
	}
}

// TestStripKeepsPixels: stripping removes the metadata segments and
// nothing else.
func TestStripKeepsPixels(t *testing.T) {
	jpg := JPEG(t, 16, 16)
	stripped, err := images.StripJPEG(withExif(jpg, "GPS"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stripped, jpg) {
		t.Fatalf("stripping the added segments should give back the original %d bytes, got %d", len(jpg), len(stripped))
	}
}

// gifHeader is a GIF header claiming a w×h screen and one frame as large.
func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	b = append(b, 0x80, 0, 0, 0, 0, 0, 255, 255, 255) // a global table of two colours
	b = append(b, 0x2C, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	b = append(b, 0, 2, 2, 0x4C, 0x01, 0, 0x3B)
	return b
}

// TestBombNotAllocated: a header claiming 100 000 × 100 000 pixels is
// refused from the header, without allocating anything near its pixels.
func TestBombNotAllocated(t *testing.T) {
	for _, bomb := range [][]byte{pngHeader(100_000, 100_000), gifHeader(65535, 65535)} {
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
