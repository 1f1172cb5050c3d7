// Package imagestest makes images for tests: encoded by Go's own encoders,
// or crafted headers that claim what a test needs.
package imagestest

import (
	"bytes"
	"embed"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

//go:embed testdata/*.webp
var webps embed.FS

func picture(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), 128, 255})
		}
	}
	return m
}

// PNG encodes a w×h image.
func PNG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, picture(w, h)); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// JPEG encodes a w×h image.
func JPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, picture(w, h), nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// GIF encodes a w×h image.
func GIF(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, picture(w, h), nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// WebP is a 1×1 WebP image, lossless (VP8L) or lossy (VP8).
func WebP(tb testing.TB, lossless bool) []byte {
	tb.Helper()
	name := "testdata/lossy.webp"
	if lossless {
		name = "testdata/lossless.webp"
	}
	b, err := webps.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// WithExif puts an APP1 Exif segment, an XMP segment, an APP13 segment and
// a comment, each carrying marker, right after a JPEG's start marker.
func WithExif(jpg []byte, marker string) []byte {
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

// PNGWithExif puts an eXIf chunk and a tEXt chunk, each carrying marker,
// right after a PNG's IHDR chunk.
func PNGWithExif(p []byte, marker string) []byte {
	chunk := func(typ, body string) []byte {
		c := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		c = append(c, typ+body...)
		return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE([]byte(typ+body)))
	}
	const ihdrEnd = 8 + 12 + 13
	out := append([]byte{}, p[:ihdrEnd]...)
	out = append(out, chunk("eXIf", "MM\x00*"+marker)...)
	out = append(out, chunk("tEXt", "Comment\x00"+marker)...)
	return append(out, p[ihdrEnd:]...)
}

// WebPWithExif is the lossless 1×1 WebP in the extended format (VP8X),
// with an EXIF and an XMP chunk carrying marker, and their flags set.
func WebPWithExif(tb testing.TB, marker string) []byte {
	tb.Helper()
	simple := WebP(tb, true)
	chunk := func(fourcc string, body []byte) []byte {
		c := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
		c = append(c, body...)
		if len(body)%2 == 1 {
			c = append(c, 0)
		}
		return c
	}
	// Flags EXIF and XMP, a 1×1 canvas (stored minus one).
	body := chunk("VP8X", []byte{0x08 | 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	body = append(body, simple[12:]...) // the VP8L chunk
	body = append(body, chunk("EXIF", []byte("MM\x00*"+marker))...)
	body = append(body, chunk("XMP ", []byte("<x:xmpmeta>"+marker+"</x:xmpmeta>"))...)
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)))...)
	out = append(out, "WEBP"...)
	return append(out, body...)
}

// PNGHeader is a PNG signature and an IHDR claiming w×h pixels, with a
// right CRC, and nothing else: a decompression bomb's header.
func PNGHeader(w, h uint32) []byte {
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 6 // 8-bit RGBA
	out := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
	out = append(out, ihdr...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(ihdr))
}

// GIFHeader is a GIF claiming a w×h screen and one frame as large, with
// next to no pixel data.
func GIFHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	b = append(b, 0x80, 0, 0, 0, 0, 0, 255, 255, 255) // a global table of two colours
	b = append(b, 0x2C, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 2, 2, 0x4C, 0x01, 0, 0x3B)
}

// HTML is a web page, for files that claim to be images.
const HTML = "<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
