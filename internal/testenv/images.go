package testenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Marker is the colour of the block that test images carry in their
// top-left corner, so a test can tell where that corner went.
var Marker = color.RGBA{R: 255, A: 255}

// Canvas returns a w x h grey image with a red block in the top-left corner
// (a quarter of each side).
func Canvas(w, h int, alpha uint8) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{R: 90, G: 110, B: 130, A: alpha}
			if x < w/4 && y < h/4 {
				c = color.NRGBA{R: 255, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// PaddedJPEG is a small test JPEG grown to exactly size bytes with bytes
// after its end marker, which decoders ignore: a large file that decodes at
// once, for multipart and resumable uploads.
func PaddedJPEG(tb testing.TB, size int) []byte {
	tb.Helper()
	src := JPEG(tb, 64, 48, 1)
	if size < len(src) {
		tb.Fatalf("PaddedJPEG(%d): smaller than the JPEG itself (%d bytes)", size, len(src))
	}
	out := make([]byte, size)
	copy(out, src)
	r := rand.New(rand.NewPCG(uint64(size), 3))
	for i := len(src); i < size; i++ {
		out[i] = byte('a' + r.IntN(26))
	}
	return out
}

// JPEG encodes a w x h test canvas as JPEG. With orientation 2 to 8 it adds
// an EXIF APP1 segment carrying that orientation.
func JPEG(tb testing.TB, w, h, orientation int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, Canvas(w, h, 255), &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	if orientation <= 1 {
		return buf.Bytes()
	}
	return WithOrientation(buf.Bytes(), orientation)
}

// WithOrientation inserts an EXIF segment with the given orientation right
// after the SOI marker of a JPEG.
func WithOrientation(jpg []byte, orientation int) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8)) // offset of IFD0
	binary.Write(&tiff, binary.BigEndian, uint16(1)) // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112))
	binary.Write(&tiff, binary.BigEndian, uint16(3)) // SHORT
	binary.Write(&tiff, binary.BigEndian, uint32(1))
	binary.Write(&tiff, binary.BigEndian, uint16(orientation))
	binary.Write(&tiff, binary.BigEndian, uint16(0))
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// PNG encodes a w x h test canvas as PNG; alpha below 255 makes the
// background translucent.
func PNG(tb testing.TB, w, h int, alpha uint8) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, Canvas(w, h, alpha)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// PNGHeaderOnly returns a tiny PNG whose header claims w x h pixels: a
// decompression bomb that must be refused before anything decodes it.
func PNGHeaderOnly(w, h int) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk(&buf, "IHDR", ihdr)
	chunk(&buf, "IEND", nil)
	return buf.Bytes()
}

func chunk(buf *bytes.Buffer, typ string, data []byte) {
	binary.Write(buf, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	buf.WriteString(typ)
	buf.Write(data)
	binary.Write(buf, binary.BigEndian, crc.Sum32())
}

// CorruptJPEG returns a JPEG whose frame header is valid but whose Huffman
// tables are garbage: the upload sniffer (which reads only the header)
// accepts it, and libjpeg refuses to decode it.
func CorruptJPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	jpg := JPEG(tb, w, h, 1)
	found := false
	for i := 2; i+4 < len(jpg); {
		if jpg[i] != 0xFF {
			tb.Fatal("malformed test JPEG")
		}
		marker := jpg[i+1]
		if marker == 0xDA { // start of scan: entropy-coded data follows
			break
		}
		n := int(binary.BigEndian.Uint16(jpg[i+2:]))
		if marker == 0xC4 { // DHT: 0xFF symbol counts add up to far over 256
			for j := i + 4; j < i+2+n; j++ {
				jpg[j] = 0xFF
			}
			found = true
		}
		i += 2 + n
	}
	if !found {
		tb.Fatal("no DHT in test JPEG")
	}
	return jpg
}

// Photo draws a w x h picture with the statistics of a photograph (smooth
// gradients, edges, fine texture and sensor-like noise), with a varying
// alpha if asked: flat synthetic images compress and decode far faster than
// photos and would flatter any pipeline measured on them. The same w and h
// give the same picture.
func Photo(w, h int, alpha bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	clamp := func(v float64) uint8 { return uint8(math.Max(0, math.Min(255, v))) }
	for y := 0; y < h; y++ {
		fy := float64(y) / float64(h)
		for x := 0; x < w; x++ {
			fx := float64(x) / float64(w)
			tex := 20 * math.Sin(fx*90+math.Sin(fy*40)*3) * math.Cos(fy*70)
			n := rng.NormFloat64() * 6
			edge := 0.0
			if (x/240+y/180)%2 == 0 {
				edge = 25
			}
			a := uint8(255)
			if alpha {
				a = clamp(200 + 55*math.Sin(fx*6))
			}
			img.SetNRGBA(x, y, color.NRGBA{clamp(120 + 80*fx + tex + n + edge), clamp(100 + 60*fy - tex/2 + n),
				clamp(140 - 50*fx*fy + tex/3 + n - edge), a})
		}
	}
	return img
}

// PhotoJPEG is Photo encoded as a quality 90 JPEG.
func PhotoJPEG(w, h int) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, Photo(w, h, false), &jpeg.Options{Quality: 90}); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return buf.Bytes()
}

// ViaVips returns src after `vips op in out arg` and `vips jpegsave` at
// quality 95: a source Go cannot write, such as a CMYK JPEG (op
// colourspace, arg cmyk) or one with a Display P3 profile (op
// icc_transform, arg p3). It needs the vips command (Debian package
// libvips-tools), which `make test` installs.
func ViaVips(tb testing.TB, src []byte, op, arg string) []byte {
	tb.Helper()
	return vips(tb, src, "out.jpg", []string{op, "IN", "mid.v", arg}, []string{"jpegsave", "mid.v", "OUT", "--Q", "95"})
}

// VipsSave returns src saved by `vips copy` as the format of ext ("webp",
// "gif", "png", …), with options as vips takes them after the file name
// ("[Q=90]"): a source Go cannot write. It needs the vips command.
func VipsSave(tb testing.TB, src []byte, ext, options string) []byte {
	tb.Helper()
	return vips(tb, src, "out."+ext, []string{"copy", "IN", "OUT" + options})
}

// VipsNoise returns a w x h picture of Gaussian noise made by the vips
// command and saved as ext with options ("[Q=90]"): large, slow-to-decode
// sources made in C, quickly even under the race detector.
func VipsNoise(tb testing.TB, w, h int, ext, options string) []byte {
	tb.Helper()
	return vips(tb, nil, "out."+ext,
		[]string{"gaussnoise", "noise.v", fmt.Sprint(w), fmt.Sprint(h), "--mean", "128", "--sigma", "40"},
		[]string{"cast", "noise.v", "noise8.v", "uchar"},
		[]string{"bandjoin", "noise8.v noise8.v noise8.v", "OUT" + options})
}

// vips runs vips commands in a temporary directory, where src (if any) is
// the file IN, and returns the file out, which the commands name OUT.
func vips(tb testing.TB, src []byte, out string, commands ...[]string) []byte {
	tb.Helper()
	if _, err := exec.LookPath("vips"); err != nil {
		tb.Fatal("the vips command (Debian package libvips-tools) is needed; `make test` installs it")
	}
	dir := tb.TempDir()
	if src != nil {
		if err := os.WriteFile(filepath.Join(dir, "IN"), src, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	for _, args := range commands {
		args = slices.Clone(args)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "OUT", out)
		}
		cmd := exec.Command("vips", args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("vips %v: %v\n%s", args, err, b)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, out))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// CJPEG returns img (alpha ignored) encoded by libjpeg-turbo's cjpeg with
// the given chroma sampling of the luma ("2x2" is 4:2:0, "2x1" 4:2:2,
// "1x2" 4:4:0, "1x1" 4:4:4), which Go's encoder (always 4:2:0) cannot
// write. It needs the cjpeg command (Debian package libjpeg-turbo-progs),
// which `make test` installs.
func CJPEG(tb testing.TB, img *image.NRGBA, sample string, quality int) []byte {
	tb.Helper()
	if _, err := exec.LookPath("cjpeg"); err != nil {
		tb.Fatal("the cjpeg command (Debian package libjpeg-turbo-progs) is needed; `make test` installs it")
	}
	b := img.Bounds()
	ppm := fmt.Appendf(nil, "P6\n%d %d\n255\n", b.Dx(), b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			p := img.PixOffset(x, y)
			ppm = append(ppm, img.Pix[p], img.Pix[p+1], img.Pix[p+2])
		}
	}
	cmd := exec.Command("cjpeg", "-sample", sample, "-quality", fmt.Sprint(quality))
	cmd.Stdin = bytes.NewReader(ppm)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("cjpeg -sample %s: %v", sample, err)
	}
	return out
}

// ManyScansJPEG returns img's luminance as a progressive greyscale JPEG
// of scans scans: the DC coefficients, then one AC scan repeated. A
// repeated first AC scan is legal and libjpeg decodes it without a
// warning (it expects the bits a coefficient already has, none), yet
// every scan costs the decoder a pass over every block: the file an
// attacker sends to burn a worker's CPU.
func ManyScansJPEG(tb testing.TB, img *image.NRGBA, scans int) []byte {
	tb.Helper()
	if _, err := exec.LookPath("cjpeg"); err != nil {
		tb.Fatal("the cjpeg command (Debian package libjpeg-turbo-progs) is needed; `make test` installs it")
	}
	if scans < 2 {
		tb.Fatalf("ManyScansJPEG: %d scans, want 2 or more", scans)
	}
	script := filepath.Join(tb.TempDir(), "scans.txt")
	if err := os.WriteFile(script, []byte("0: 0 0 0 0;\n0: 1 63 0 0;\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	b := img.Bounds()
	pgm := fmt.Appendf(nil, "P5\n%d %d\n255\n", b.Dx(), b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			p := img.PixOffset(x, y)
			pgm = append(pgm, byte((299*int(img.Pix[p])+587*int(img.Pix[p+1])+114*int(img.Pix[p+2]))/1000))
		}
	}
	cmd := exec.Command("cjpeg", "-grayscale", "-scans", script)
	cmd.Stdin = bytes.NewReader(pgm)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	two, err := cmd.Output()
	if err != nil {
		tb.Fatalf("cjpeg -scans: %v\n%s", err, stderr.Bytes())
	}
	// The AC scan, with the Huffman table cjpeg writes just before it, runs
	// from that table to the end of image.
	segs := jpegSegments(two)
	start, end := -1, -1
	sos := 0
	for i, sg := range segs {
		switch sg.marker {
		case 0xDA:
			if sos++; sos == 2 {
				start = sg.start
				if i > 0 && segs[i-1].marker == 0xC4 {
					start = segs[i-1].start
				}
			}
		case 0xD9:
			end = sg.start
		}
	}
	if start < 0 || end < start {
		tb.Fatalf("cjpeg wrote no second scan (%d segments)", len(segs))
	}
	out := append([]byte{}, two[:end]...)
	for range scans - 2 {
		out = append(out, two[start:end]...)
	}
	return append(out, two[end:]...)
}

type jpegSegment struct {
	marker     byte
	start, end int // the segment's bytes, a scan's entropy-coded data included
}

// jpegSegments splits a well-formed JPEG into its marker segments.
func jpegSegments(b []byte) []jpegSegment {
	var out []jpegSegment
	for i := 2; i+2 <= len(b) && b[i] == 0xFF; {
		m := b[i+1]
		if m == 0xD9 || i+4 > len(b) {
			return append(out, jpegSegment{m, i, i + 2})
		}
		end := i + 2 + (int(b[i+2])<<8 | int(b[i+3]))
		if m == 0xDA {
			for end+1 < len(b) && (b[end] != 0xFF || b[end+1] == 0 || b[end+1] >= 0xD0 && b[end+1] <= 0xD7) {
				end++
			}
		}
		out = append(out, jpegSegment{m, i, end})
		i = end
	}
	return out
}

// GIFBomb is 35 bytes: a GIF whose 1x1 screen holds one 65535x65535 frame.
// A decoder that grows its canvas to the frame asks for 17 GB.
func GIFBomb() []byte {
	var g bytes.Buffer
	g.WriteString("GIF89a")
	binary.Write(&g, binary.LittleEndian, []uint16{1, 1})
	g.Write([]byte{0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x2C})
	binary.Write(&g, binary.LittleEndian, []uint16{0, 0, 0xFFFF, 0xFFFF})
	g.Write([]byte{0, 2, 2, 0x4C, 1, 0, 0x3B})
	return g.Bytes()
}
