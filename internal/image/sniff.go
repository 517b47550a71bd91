package image

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

// Header is what Sniff learns from the first bytes of a file, before any
// pixel is decoded.
type Header struct {
	Format Format
	Width  int
	Height int
	// Frames is the number of frames of an animation (GIF, APNG, WebP),
	// 1 for a still image.
	Frames int
}

// Pixels is the number of pixels of every frame together: what a decoder
// reading the whole file would produce.
// It saturates rather than overflows on absurd headers.
func (h Header) Pixels() int64 {
	wh := int64(h.Width) * int64(h.Height) // each side is below 2^32
	frames := int64(max(h.Frames, 1))
	if wh > math.MaxInt64/frames {
		return math.MaxInt64
	}
	return wh * frames
}

// headerLimit bounds how much of a file Sniff reads. JPEG headers can carry
// large EXIF and ICC segments before the frame header, so it is generous.
const headerLimit = 4 << 20

// Sniff detects the format of r from its magic bytes and reads the
// dimensions from the header without decoding pixels. It returns
// ErrUnsupported for anything that is not a known image format or whose
// header is broken.
func Sniff(r io.Reader) (Header, error) {
	buf := make([]byte, 32)
	n, _ := io.ReadFull(r, buf)
	buf = buf[:n]
	f, ok := magic(buf)
	if !ok {
		return Header{}, ErrUnsupported
	}
	rest := io.MultiReader(bytes.NewReader(buf), io.LimitReader(r, headerLimit))
	var w, h int
	switch f {
	case HEIF, AVIF:
		data, err := io.ReadAll(rest)
		if err != nil {
			return Header{}, err
		}
		w, h, ok = isobmffSize(data)
		if !ok {
			return Header{}, ErrUnsupported
		}
	default:
		cfg, _, err := stdimage.DecodeConfig(rest)
		if err != nil {
			return Header{}, ErrUnsupported
		}
		w, h = cfg.Width, cfg.Height
	}
	if w <= 0 || h <= 0 {
		return Header{}, ErrUnsupported
	}
	hdr := Header{Format: f, Width: w, Height: h, Frames: 1}
	// Animations: count the frames without decoding any, when the file can
	// be read again from the start.
	if rs, ok := r.(io.ReadSeeker); ok && (f == GIF || f == WebP || f == PNG) {
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return Header{}, err
		}
		n, err := countFrames(f, bufio.NewReader(rs))
		if err != nil {
			return Header{}, ErrUnsupported
		}
		hdr.Frames = max(n, 1)
	}
	return hdr, nil
}

// countFrames walks the container of an animation and counts its frames.
func countFrames(f Format, r *bufio.Reader) (int, error) {
	switch f {
	case GIF:
		return gifFrames(r)
	case WebP:
		return webpFrames(r)
	case PNG:
		return apngFrames(r)
	}
	return 1, nil
}

// gifFrames counts the image descriptors of a GIF, skipping every data
// sub-block.
func gifFrames(r *bufio.Reader) (int, error) {
	hdr := make([]byte, 13)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, err
	}
	if hdr[10]&0x80 != 0 { // global colour table
		if _, err := r.Discard(3 << (hdr[10]&7 + 1)); err != nil {
			return 0, err
		}
	}
	frames := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return frames, nil // a truncated trailer still counts what was seen
		}
		switch b {
		case 0x3B: // trailer
			return frames, nil
		case 0x21: // extension: label, then sub-blocks
			if _, err := r.ReadByte(); err != nil {
				return frames, nil
			}
			if err := skipSubBlocks(r); err != nil {
				return frames, nil
			}
		case 0x2C: // image descriptor
			frames++
			desc := make([]byte, 9)
			if _, err := io.ReadFull(r, desc); err != nil {
				return frames, nil
			}
			if desc[8]&0x80 != 0 { // local colour table
				if _, err := r.Discard(3 << (desc[8]&7 + 1)); err != nil {
					return frames, nil
				}
			}
			if _, err := r.ReadByte(); err != nil { // LZW minimum code size
				return frames, nil
			}
			if err := skipSubBlocks(r); err != nil {
				return frames, nil
			}
		default:
			return frames, errors.New("malformed GIF block")
		}
	}
}

func skipSubBlocks(r *bufio.Reader) error {
	for {
		n, err := r.ReadByte()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if _, err := r.Discard(int(n)); err != nil {
			return err
		}
	}
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

// Inspect reads the header of an upload and checks it: a format in
// accepted, and no more than maxPixels pixels over all frames. Nothing is
// decoded.
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
		if hdr.Frames > 1 {
			msg = fmt.Sprintf("the animation is %d frames of %dx%d, over the limit of %d pixels in all", hdr.Frames, hdr.Width, hdr.Height, maxPixels)
		}
		return Header{}, failure.New(failure.Unprocessable, ErrTooManyPixels.Code, msg)
	}
	return hdr, nil
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

// isobmffBrand tells AVIF from HEIF by the ftyp brands in the first bytes.
func isobmffBrand(b []byte) (Format, bool) {
	size := int(binary.BigEndian.Uint32(b[0:4]))
	end := min(size, len(b))
	brands := []string{string(b[8:12])}
	for i := 16; i+4 <= end; i += 4 {
		brands = append(brands, string(b[i:i+4]))
	}
	heif := false
	for _, br := range brands {
		switch br {
		case "avif", "avis":
			return AVIF, true
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1":
			heif = true
		}
	}
	return HEIF, heif
}

// isobmffSize returns the largest image spatial extent ("ispe") declared in
// the meta box of a HEIF or AVIF file. The largest one is the primary image
// (the others are thumbnails or grid tiles), and an upper bound is what the
// pixel limit needs.
func isobmffSize(data []byte) (int, int, bool) {
	meta, ok := findBox(data, "meta")
	if !ok || len(meta) < 4 {
		return 0, 0, false
	}
	iprp, ok := findBox(meta[4:], "iprp") // meta is a full box: skip version and flags
	if !ok {
		return 0, 0, false
	}
	ipco, ok := findBox(iprp, "ipco")
	if !ok {
		return 0, 0, false
	}
	bw, bh := 0, 0
	for _, b := range boxes(ipco) {
		if b.typ != "ispe" || len(b.body) < 12 {
			continue
		}
		w := int(binary.BigEndian.Uint32(b.body[4:8]))
		h := int(binary.BigEndian.Uint32(b.body[8:12]))
		if int64(w)*int64(h) > int64(bw)*int64(bh) {
			bw, bh = w, h
		}
	}
	return bw, bh, bw > 0 && bh > 0
}

type box struct {
	typ  string
	body []byte
}

// boxes splits data into ISOBMFF boxes, stopping at the first malformed one.
func boxes(data []byte) []box {
	var out []box
	for len(data) >= 8 {
		size := uint64(binary.BigEndian.Uint32(data[0:4]))
		typ := string(data[4:8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(data))
		case 1:
			if len(data) < 16 {
				return out
			}
			size = binary.BigEndian.Uint64(data[8:16])
			hdr = 16
		}
		if size < hdr || size > uint64(len(data)) {
			return out
		}
		out = append(out, box{typ: typ, body: data[hdr:size]})
		data = data[size:]
	}
	return out
}

func findBox(data []byte, typ string) ([]byte, bool) {
	for _, b := range boxes(data) {
		if b.typ == typ {
			return b.body, true
		}
	}
	return nil, false
}
