// Package sniff reads what an image file is, and what decoding it would
// cost, from its bytes without decoding a pixel: the type from the magic
// bytes, the size from the header, and the costs that hide further in (the
// frames of an animation and the canvas they make, the scans of a JPEG,
// the coded size of a HEIF or AVIF). Inspect holds a file to the limits an
// upload must keep; the API calls it on every upload, and the worker again
// on every original it is about to decode.
//
// It is pure Go and imports nothing of the project but its error type.
package sniff

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/imagesvc/imagesvc/internal/failure"

	stdimage "image"
	_ "image/gif"  // registers the GIF header reader
	_ "image/jpeg" // registers the JPEG header reader
	_ "image/png"  // registers the PNG header reader

	_ "golang.org/x/image/tiff" // registers the TIFF header reader
	_ "golang.org/x/image/webp" // registers the WebP header reader
)

// Errors of the checks. The messages of the errors Inspect returns carry
// the numbers; errors.Is matches them with these.
var (
	ErrUnsupported   = failure.New(failure.Unsupported, "unsupported_type", "the file is not an image of an accepted type")
	ErrTooManyPixels = failure.New(failure.Unprocessable, "too_many_pixels", "the image has more pixels than allowed")
	// ErrTooComplex is a source that would cost far more to decode than
	// its size suggests: a progressive JPEG with more than MaxJPEGScans
	// scans.
	ErrTooComplex = failure.New(failure.Unprocessable, "too_complex", "the image is too complex to decode (a JPEG with too many scans)")
)

// MaxJPEGScans is the most scans a progressive JPEG may have. Cameras and
// encoders write about 10 (mozjpeg up to about 20); each scan costs a pass
// over every block, and thousands of empty ones are valid JPEG.
const MaxJPEGScans = 100

// Format is an image file type detected from its bytes.
type Format string

// The formats the service knows. Which of them are accepted is configuration.
const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
	WebP Format = "webp"
	GIF  Format = "gif"
	HEIF Format = "heif"
	AVIF Format = "avif"
	TIFF Format = "tiff"
)

// ContentType is the MIME type of the format.
func (f Format) ContentType() string { return "image/" + string(f) }

// KnownFormats lists every format Sniff recognises.
var KnownFormats = []Format{JPEG, PNG, WebP, GIF, HEIF, AVIF, TIFF}

// DefaultAcceptedTypes is the ACCEPTED_TYPES default: TIFF is left out because
// its loader has the worst security record of the lot.
var DefaultAcceptedTypes = []Format{JPEG, PNG, WebP, GIF, HEIF, AVIF}

// ParseFormats parses a comma-separated list such as "jpeg,png,webp".
func ParseFormats(s string) ([]Format, error) {
	var out []Format
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if name == "jpg" {
			name = "jpeg"
		}
		f := Format(name)
		found := false
		for _, k := range KnownFormats {
			found = found || k == f
		}
		if !found {
			return nil, errors.New("unknown image type " + name)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("no image types")
	}
	return out, nil
}

// Header is what Sniff learns from a file without decoding its pixels.
type Header struct {
	Format Format
	// Width and Height are the size of the image as a viewer shows it: for
	// a GIF the canvas its frames make, for a HEIF or AVIF the primary image
	// after its clean-aperture crop and rotation.
	Width  int
	Height int
	// DecodedWidth and DecodedHeight are the largest picture a decoder makes
	// on the way when that is not Width x Height: for a HEIF or AVIF the
	// largest of every item's declared, coded and canvas size, before any
	// crop. Zero for the other formats.
	DecodedWidth  int
	DecodedHeight int
	// Frames is the number of frames of an animation (GIF, APNG, WebP),
	// 1 for a still image.
	Frames int
	// Scans is the number of scans of a JPEG up to its end-of-image marker:
	// 1 for a baseline JPEG, about 10 for a progressive one. Counting stops
	// at MaxJPEGScans+1. Zero for the other formats.
	Scans int
}

// Pixels is the number of pixels of every frame together: what a decoder
// reading the whole file would produce.
// It saturates rather than overflows on absurd headers.
func (h Header) Pixels() int64 {
	wh := max(int64(h.Width)*int64(h.Height), int64(h.DecodedWidth)*int64(h.DecodedHeight)) // each side is below 2^32
	frames := int64(max(h.Frames, 1))
	if wh > math.MaxInt64/frames {
		return math.MaxInt64
	}
	return wh * frames
}

// headerLimit bounds how much of a file Sniff holds in memory. JPEG headers
// can carry large EXIF and ICC segments before the frame header, so it is
// generous.
const headerLimit = 4 << 20

// Sniff detects the format of r from its magic bytes and reads what the
// limits need without decoding pixels: the size from the header, and where
// the cost of decoding hides further in, the rest of the file as a stream
// (the frames of an animation, the scans of a JPEG, the coded size of a
// HEIF or AVIF). It holds at most headerLimit bytes in memory.
//
// When r is also an io.ReaderAt and io.Seeker (a spooled upload, a
// bytes.Reader), a HEIF or AVIF is read at the offsets its boxes give,
// counted from r's position on entry; otherwise only its first headerLimit
// bytes are seen. Sniff leaves r at no particular position.
//
// It returns ErrUnsupported for anything that is not a known image format
// or whose header is broken.
func Sniff(r io.Reader) (Header, error) {
	start := int64(-1)
	if s, ok := r.(io.Seeker); ok {
		if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
			start = pos
		}
	}
	buf := make([]byte, 32)
	n, _ := io.ReadFull(r, buf)
	buf = buf[:n]
	f, ok := magic(buf)
	if !ok {
		return Header{}, ErrUnsupported
	}
	var hdr Header
	var err error
	switch f {
	case GIF:
		hdr, err = sniffGIF(bufio.NewReader(io.MultiReader(bytes.NewReader(buf), r)))
	case HEIF, AVIF:
		hdr, err = sniffISOBMFF(f, buf, r, start)
	default:
		hdr, err = sniffStandard(f, buf, r)
	}
	if err != nil {
		return Header{}, err
	}
	if hdr.Width <= 0 || hdr.Height <= 0 {
		return Header{}, ErrUnsupported
	}
	return hdr, nil
}

// sniffStandard reads the header with the standard library's decoders, then
// walks the rest of the file for what hides after the header: the frames
// of an animated PNG or WebP, the scans of a JPEG.
func sniffStandard(f Format, buf []byte, r io.Reader) (Header, error) {
	// The header reader buffers past the header; what it took is kept (at
	// most headerLimit and a buffer) so that the walk starts from the first
	// byte again without seeking, whatever r is.
	var seen bytes.Buffer
	head := io.MultiReader(bytes.NewReader(buf), io.LimitReader(r, headerLimit))
	cfg, _, err := stdimage.DecodeConfig(io.TeeReader(head, &seen))
	if err != nil {
		return Header{}, ErrUnsupported
	}
	hdr := Header{Format: f, Width: cfg.Width, Height: cfg.Height, Frames: 1}
	whole := bufio.NewReader(io.MultiReader(&seen, r))
	switch f {
	case JPEG:
		if hdr.Scans, err = jpegScans(whole); err != nil {
			return Header{}, fmt.Errorf("count jpeg scans: %w", err)
		}
	case PNG:
		if hdr.Frames, err = apngFrames(whole); err != nil {
			return Header{}, ErrUnsupported
		}
	case WebP:
		if hdr.Frames, err = webpFrames(whole); err != nil {
			return Header{}, ErrUnsupported
		}
	}
	hdr.Frames = max(hdr.Frames, 1)
	return hdr, nil
}

// webpFrames counts the ANMF chunks of an animated WebP (1 for a still).
func webpFrames(r *bufio.Reader) (int, error) {
	if _, err := r.Discard(12); err != nil { // RIFF, size, WEBP
		return 0, err
	}
	frames := 0
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return max(frames, 1), nil
		}
		size := int(binary.LittleEndian.Uint32(hdr[4:]))
		if string(hdr[:4]) == "ANMF" {
			frames++
		}
		if _, err := r.Discard(size + size&1); err != nil {
			return max(frames, 1), nil
		}
	}
}

// apngFrames reads num_frames from the acTL chunk of an animated PNG (1 for
// a still), which comes before the image data.
func apngFrames(r *bufio.Reader) (int, error) {
	if _, err := r.Discard(8); err != nil {
		return 0, err
	}
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return 1, nil
		}
		size := int(binary.BigEndian.Uint32(hdr[:4]))
		switch string(hdr[4:]) {
		case "acTL":
			body := make([]byte, 4)
			if _, err := io.ReadFull(r, body); err != nil {
				return 1, nil
			}
			return int(min(binary.BigEndian.Uint32(body), 1<<20)), nil
		case "IDAT", "IEND":
			return 1, nil
		}
		if size < 0 || size > 1<<30 {
			return 1, nil
		}
		if _, err := r.Discard(size + 4); err != nil {
			return 1, nil
		}
	}
}

// Inspect reads an upload and checks it: a format in accepted, no more
// than maxPixels pixels over all frames (and in the largest picture a HEIF
// or AVIF decoder makes), and for a JPEG no more than MaxJPEGScans scans.
// Nothing is decoded; the whole file is read, as a stream.
//
// The errors are ErrUnsupported, or errors that match ErrTooManyPixels or
// ErrTooComplex under errors.Is and say the numbers in their message.
func Inspect(r io.Reader, accepted []Format, maxPixels int64) (Header, error) {
	hdr, err := Sniff(r)
	if err != nil {
		return Header{}, err
	}
	ok := false
	for _, a := range accepted {
		ok = ok || a == hdr.Format
	}
	if !ok {
		return Header{}, ErrUnsupported
	}
	if hdr.Pixels() > maxPixels {
		msg := fmt.Sprintf("the image is %dx%d, over the limit of %d pixels", hdr.Width, hdr.Height, maxPixels)
		switch {
		case hdr.Frames > 1:
			msg = fmt.Sprintf("the animation is %d frames of %dx%d, over the limit of %d pixels in all", hdr.Frames, hdr.Width, hdr.Height, maxPixels)
		case int64(hdr.DecodedWidth)*int64(hdr.DecodedHeight) > int64(hdr.Width)*int64(hdr.Height):
			msg = fmt.Sprintf("the image decodes to %dx%d, over the limit of %d pixels", hdr.DecodedWidth, hdr.DecodedHeight, maxPixels)
		}
		return Header{}, failure.New(ErrTooManyPixels.Kind, ErrTooManyPixels.Code, msg)
	}
	if hdr.Scans > MaxJPEGScans {
		msg := fmt.Sprintf("the JPEG has more than %d scans, too many to decode in reasonable time", MaxJPEGScans)
		return Header{}, failure.New(ErrTooComplex.Kind, ErrTooComplex.Code, msg)
	}
	return hdr, nil
}

// InspectBytes is Inspect on a file held in memory. The worker calls it on
// the original it fetched before decoding, so that an original stored
// before a limit existed, or by another path than Upload, meets the same
// limits.
func InspectBytes(data []byte, accepted []Format, maxPixels int64) (Header, error) {
	return Inspect(bytes.NewReader(data), accepted, maxPixels)
}

func magic(b []byte) (Format, bool) {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, true
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, true
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return GIF, true
	case len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return WebP, true
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return TIFF, true
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		return isobmffBrand(b)
	}
	return "", false
}
