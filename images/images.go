// Package images checks uploaded images by their bytes: which type they
// are (PNG, JPEG, GIF or WebP, whatever the file is named), that their
// dimensions are within bounds before anything is decoded, and that they
// decode whole. JPEG and PNG files lose their metadata on the way.
package images

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"runtime"
	"slices"

	"golang.org/x/image/webp"

	"github.com/natterchat/natter"
)

// The media types of the accepted images.
const (
	PNG  = "image/png"
	JPEG = "image/jpeg"
	GIF  = "image/gif"
	WebP = "image/webp"
)

// MaxPixels bounds width × height: a 40-megapixel RGBA image decodes into
// 160 MB, and a few kilobytes of file may claim far more.
const MaxPixels = 40_000_000

// maxGIFFramePixels bounds the pixels of all frames of a GIF together: Go
// keeps every frame while it decodes an animation (one byte a pixel), so
// this is as much memory as one RGBA image of MaxPixels.
const maxGIFFramePixels = 4 * MaxPixels

// Info is what Check learns of an image.
type Info struct {
	Type   string // one of PNG, JPEG, GIF, WebP
	Width  int
	Height int
}

// decoding bounds the full decodes running at once: each may hold up to
// 160 MB, and they are CPU work.
var decoding = make(chan struct{}, runtime.GOMAXPROCS(0))

// Check decides the type of data from its bytes, checks its dimensions
// from its header alone, strips a JPEG's or a PNG's metadata and decodes
// the result whole. It returns the bytes to store (data itself unless it
// had metadata) or an error with a natter code: unsupported_type,
// too_large or corrupt_image.
func Check(ctx context.Context, data []byte) (Info, []byte, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if errors.Is(err, image.ErrFormat) {
		return Info{}, nil, natter.Errorf(natter.EUnsupportedType, "the file is not a PNG, JPEG, GIF or WebP image")
	} else if err != nil {
		return Info{}, nil, corrupt(format, err)
	}
	info := Info{Width: cfg.Width, Height: cfg.Height}
	switch format {
	case "png":
		info.Type = PNG
	case "jpeg":
		info.Type = JPEG
	case "gif":
		info.Type = GIF
	case "webp":
		info.Type = WebP
	default:
		return Info{}, nil, natter.Errorf(natter.EUnsupportedType, "the file is not a PNG, JPEG, GIF or WebP image")
	}
	if info.Width <= 0 || info.Height <= 0 {
		return Info{}, nil, natter.Errorf(natter.ECorruptImage, "the image has no pixels")
	}
	if int64(info.Width)*int64(info.Height) > MaxPixels {
		return Info{}, nil, natter.Errorf(natter.ETooLarge, "the image is %d×%d pixels; at most %d megapixels are allowed", info.Width, info.Height, MaxPixels/1_000_000)
	}
	// A file must end where its image ends: anything after it could be
	// another file (a polyglot) that some reader takes for what it is.
	switch info.Type {
	case PNG:
		if data, err = StripPNG(data); err != nil {
			return Info{}, nil, corrupt(format, err)
		}
	case JPEG:
		if data, err = StripJPEG(data); err != nil {
			return Info{}, nil, corrupt(format, err)
		}
	case GIF:
		pixels, err := gifFramePixels(data)
		if err != nil {
			return Info{}, nil, corrupt(format, err)
		}
		if pixels > maxGIFFramePixels {
			return Info{}, nil, natter.Errorf(natter.ETooLarge, "the animation has %d pixels in all its frames; at most %d megapixels are allowed", pixels, maxGIFFramePixels/1_000_000)
		}
	case WebP:
		if data, err = StripWebP(data); err != nil {
			return Info{}, nil, corrupt(format, err)
		}
	}
	if err := decode(ctx, info.Type, data); err != nil {
		if natter.ErrorCode(err) != natter.EInternal {
			return Info{}, nil, err
		}
		return Info{}, nil, corrupt(format, err)
	}
	return info, data, nil
}

func corrupt(format string, err error) error {
	return &natter.Error{Code: natter.ECorruptImage, Message: "the image is truncated or broken", Err: fmt.Errorf("%s: %w", format, err)}
}

// decode decodes data whole, one decode per CPU at a time.
func decode(ctx context.Context, typ string, data []byte) error {
	select {
	case decoding <- struct{}{}:
	case <-ctx.Done():
		return &natter.Error{Code: natter.EUnavailable, Message: "too busy to check the image, try again", Err: ctx.Err()}
	}
	defer func() { <-decoding }()
	r := bytes.NewReader(data)
	var err error
	switch typ {
	case PNG:
		_, err = png.Decode(r) // StripPNG checked the end
	case JPEG:
		_, err = jpeg.Decode(r) // StripJPEG checked the end
	case GIF:
		_, err = gif.DecodeAll(r) // every frame; gifFramePixels checked the end
	case WebP:
		_, err = webp.Decode(r)
	}
	return err
}

// StripJPEG returns data without its APP1 (Exif, XMP), APP13 (Photoshop,
// IPTC) and COM segments, which may hold where and when a photo was taken,
// and the camera. Everything else is copied as is, the pixels are not
// re-encoded. It fails on a file that does not end with its EOI marker,
// or has anything after it.
func StripJPEG(data []byte) ([]byte, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, errors.New("no JPEG start marker")
	}
	out := make([]byte, 0, len(data))
	out = append(out, 0xFF, 0xD8)
	i := 2
	for {
		if i >= len(data) || data[i] != 0xFF {
			return nil, fmt.Errorf("no marker at offset %d", i)
		}
		// Any number of 0xFF may pad before a marker.
		for i < len(data) && data[i] == 0xFF {
			i++
		}
		if i >= len(data) {
			return nil, errors.New("truncated before a marker")
		}
		m := data[i]
		i++
		switch {
		case m == 0xD9: // EOI
			if i != len(data) {
				return nil, fmt.Errorf("%d bytes after the end of the image", len(data)-i)
			}
			return append(out, 0xFF, 0xD9), nil
		case m >= 0xD0 && m <= 0xD7 || m == 0x01: // markers without a length
			out = append(out, 0xFF, m)
			continue
		case m == 0x00 || m == 0xD8:
			return nil, fmt.Errorf("unexpected marker %#x at offset %d", m, i-1)
		}
		if i+2 > len(data) {
			return nil, errors.New("truncated segment length")
		}
		n := int(binary.BigEndian.Uint16(data[i:]))
		if n < 2 || i+n > len(data) {
			return nil, fmt.Errorf("segment %#x of %d bytes runs past the end", m, n)
		}
		seg := data[i : i+n]
		i += n
		if m != 0xE1 && m != 0xED && m != 0xFE {
			out = append(append(out, 0xFF, m), seg...)
		}
		if m != 0xDA { // SOS: entropy-coded data follows
			continue
		}
		start := i
		for {
			if i+1 >= len(data) {
				return nil, errors.New("truncated scan data")
			}
			// In a scan, 0xFF is followed by 0x00 (a stuffed byte) or a
			// restart marker; anything else is the next marker.
			if data[i] == 0xFF && data[i+1] != 0x00 && !(data[i+1] >= 0xD0 && data[i+1] <= 0xD7) {
				break
			}
			i++
		}
		out = append(out, data[start:i]...)
	}
}

// pngMetadata are the PNG chunks StripPNG drops: Exif (which may hold a
// location), text of any kind and the time of the last change. All are
// ancillary: no decoder needs them.
var pngMetadata = []string{"eXIf", "tEXt", "zTXt", "iTXt", "tIME"}

// StripPNG returns data without its metadata chunks, every other chunk
// copied as is. It fails on a file whose chunks do not add up, or that does
// not end with its IEND chunk.
func StripPNG(data []byte) ([]byte, error) {
	const sig = "\x89PNG\r\n\x1a\n"
	if len(data) < len(sig) || string(data[:len(sig)]) != sig {
		return nil, errors.New("no PNG signature")
	}
	out := make([]byte, 0, len(data))
	out = append(out, sig...)
	for i := len(sig); ; {
		if len(data)-i < 12 {
			return nil, errors.New("truncated chunk")
		}
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		end := int64(i) + 12 + n
		if end > int64(len(data)) {
			return nil, fmt.Errorf("chunk %q of %d bytes runs past the end", typ, n)
		}
		if !slices.Contains(pngMetadata, typ) {
			out = append(out, data[i:end]...)
		}
		i = int(end)
		if typ == "IEND" {
			if i != len(data) {
				return nil, fmt.Errorf("%d bytes after the end of the image", len(data)-i)
			}
			return out, nil
		}
	}
}

// gifFramePixels walks the blocks of a GIF and returns the pixels of all
// its frames together. It fails on a file that does not end with the
// trailer, or has anything after it.
func gifFramePixels(data []byte) (int64, error) {
	if len(data) < 13 {
		return 0, errors.New("truncated header")
	}
	i := 13
	if flags := data[10]; flags&0x80 != 0 {
		i += 3 << ((flags & 7) + 1)
	}
	subBlocks := func() error {
		for {
			if i >= len(data) {
				return errors.New("truncated data sub-blocks")
			}
			n := int(data[i])
			i += 1 + n
			if n == 0 {
				return nil
			}
		}
	}
	var pixels int64
	for {
		if i >= len(data) {
			return 0, errors.New("no trailer")
		}
		b := data[i]
		i++
		switch b {
		case 0x3B: // trailer
			if i != len(data) {
				return 0, fmt.Errorf("%d bytes after the end of the image", len(data)-i)
			}
			return pixels, nil
		case 0x21: // extension: a label, then sub-blocks
			i++
			if err := subBlocks(); err != nil {
				return 0, err
			}
		case 0x2C: // image descriptor
			if i+9 > len(data) {
				return 0, errors.New("truncated image descriptor")
			}
			w, h := binary.LittleEndian.Uint16(data[i+4:]), binary.LittleEndian.Uint16(data[i+6:])
			pixels += int64(w) * int64(h)
			flags := data[i+8]
			i += 9
			if flags&0x80 != 0 {
				i += 3 << ((flags & 7) + 1)
			}
			i++ // LZW minimum code size
			if err := subBlocks(); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("unknown block %#x at offset %d", b, i-1)
		}
	}
}

// StripWebP returns data without its EXIF and XMP chunks, and with their
// flags cleared in the VP8X chunk; every other chunk is copied as is. It
// fails on a file whose chunks do not add up to its RIFF length, or that
// is longer than that.
func StripWebP(data []byte) ([]byte, error) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil, errors.New("no RIFF WEBP header")
	}
	if n := int64(binary.LittleEndian.Uint32(data[4:])) + 8; n != int64(len(data)) {
		return nil, fmt.Errorf("RIFF says %d bytes, the file has %d", n, len(data))
	}
	out := make([]byte, 0, len(data))
	out = append(out, data[:12]...)
	vp8x := -1
	for i := 12; i < len(data); {
		if len(data)-i < 8 {
			return nil, errors.New("truncated chunk header")
		}
		fourcc := string(data[i : i+4])
		size := int64(binary.LittleEndian.Uint32(data[i+4:]))
		end := int64(i) + 8 + size + size%2 // chunks are padded to an even size
		if end > int64(len(data)) {
			return nil, fmt.Errorf("chunk %q of %d bytes runs past the end", fourcc, size)
		}
		switch fourcc {
		case "EXIF", "XMP ":
		case "VP8X":
			vp8x = len(out)
			fallthrough
		default:
			out = append(out, data[i:end]...)
		}
		i = int(end)
	}
	const exifFlag, xmpFlag = 0x08, 0x04
	if vp8x >= 0 && vp8x+8 < len(out) {
		out[vp8x+8] &^= exifFlag | xmpFlag
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out, nil
}
