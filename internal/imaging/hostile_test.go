package imaging_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	stdimage "image"
	"image/color"
	"image/gif"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestManyScansTooComplex: a progressive JPEG with thousands of valid scans
// stops at the scan limit, on both JPEG paths.
func TestManyScansTooComplex(t *testing.T) {
	flat := testenv.Canvas(1600, 1200, 255)
	for _, tt := range []struct {
		name  string
		scans int
		want  error
	}{
		{"OK", 20, nil},
		{"AtTheLimit", sniff.MaxJPEGScans, nil},
		{"ErrTooComplex", sniff.MaxJPEGScans + 1, image.ErrTooComplex},
		{"ErrTooComplexThousands", 2000, image.ErrTooComplex},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := testenv.ManyScansJPEG(t, flat, tt.scans)
			for _, out := range []string{"auto", "webp"} { // planes path, RGB path
				cfg := imaging.NewDefaultConfig()
				cfg.OutputFormat = out
				_, err := imaging.New(cfg).Resize(context.Background(), src, specs)
				if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("%d scans, output %s: Resize = %v, want %v", tt.scans, out, err, tt.want)
				}
			}
		})
	}
}

// TestResizeStopsWhenCancelled: a decode stops when its task's context
// ends, on every path, rather than running on after asynq gave its slot to
// another task. Each source here takes seconds to decode; the context ends
// after 100 ms.
func TestResizeStopsWhenCancelled(t *testing.T) {
	cfg := imaging.NewDefaultConfig()
	cfg.MaxScans = 1 << 30 // let the scans run: only the context stops them
	r := imaging.New(cfg)
	for _, tt := range []struct {
		name string
		src  func() []byte
	}{
		{"JPEGPlanes", func() []byte { return testenv.ManyScansJPEG(t, testenv.Canvas(3000, 2000, 255), 6000) }},
		{"PNGStreamed", func() []byte { return testenv.VipsNoise(t, 6000, 4000, "png", "[compression=1]") }},
		{"WebPThumbnail", func() []byte { return testenv.VipsNoise(t, 6000, 4000, "webp", "[Q=50,effort=0]") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src()
			// Resize checks its context before and after the decode too:
			// only the decode itself says "decode stopped". On a loaded
			// machine the deadline may pass before the decode starts; a
			// longer one then lands inside it (a decode that cannot be
			// stopped fails every round, ending after it).
			var err error
			for _, d := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond} {
				ctx, cancel := context.WithTimeout(context.Background(), d)
				_, err = r.Resize(ctx, src, specs)
				cancel()
				if err == nil || strings.Contains(err.Error(), "decode stopped") {
					break
				}
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "decode stopped") {
				t.Errorf("Resize after its context ended = %v, want its decode stopped with context.DeadlineExceeded", err)
			}
		})
	}
}

// TestBrokenSourcesFail: truncated and corrupt files of every kind fail as
// undecodable on whatever path they take, libvips' included, rather than
// coming out with grey or repeated bands.
func TestBrokenSourcesFail(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	photo := testenv.PhotoJPEG(1600, 1200)
	progressive := testenv.VipsSave(t, photo, "jpg", "[interlace]")
	cmyk := testenv.ViaVips(t, photo, "colourspace", "cmyk")
	png := testenv.PNG(t, 1600, 1200, 255)
	profiledPNG := testenv.VipsSave(t, testenv.ViaVips(t, photo, "icc_transform", "p3"), "png", "")
	webp := testenv.VipsSave(t, photo, "webp", "")
	anim := animatedGIF(t, 400, 300)
	for _, tt := range []struct {
		name string
		src  []byte
	}{
		{"JPEGCutAtAThird", photo[:len(photo)/3]},
		{"ProgressiveJPEGCutInHalf", progressive[:len(progressive)/2]},
		{"CMYKJPEGCutInHalf", cmyk[:len(cmyk)/2]}, // libvips' loader
		{"JPEGBadHuffmanData", markerInScan(t, photo)},
		{"PNGCutInHalf", png[:len(png)/2]},
		{"PNGWithProfileCutInHalf", profiledPNG[:len(profiledPNG)/2]}, // vips_thumbnail
		{"PNGBadCRC", badIDATCRC(t, png)},
		{"GIFCutInItsFirstFrame", anim[:len(anim)/6]},
		{"WebPCutInHalf", webp[:len(webp)/2]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := r.Resize(context.Background(), tt.src, specs)
			if !errors.Is(err, image.ErrUndecodable) {
				t.Errorf("Resize = %d variants, %v; want ErrUndecodable", len(out), err)
			}
		})
	}
}

// TestPixelLimitOnLibvipsHeader: a GIF whose 1x1 screen holds a 65535x65535
// frame is refused on the size libvips reads, before anything is decoded
// (decoding it asks for 17 GB, and GLib aborts the process).
func TestPixelLimitOnLibvipsHeader(t *testing.T) {
	_, err := imaging.New(imaging.NewDefaultConfig()).Resize(context.Background(), testenv.GIFBomb(), specs)
	if !errors.Is(err, image.ErrTooManyPixels) {
		t.Errorf("Resize = %v, want ErrTooManyPixels", err)
	}
}

func animatedGIF(t *testing.T, w, h int) []byte {
	t.Helper()
	pal := color.Palette{}
	for i := range 256 {
		pal = append(pal, color.RGBA{uint8(i), uint8(255 - i), uint8(i * 7), 255})
	}
	g := &gif.GIF{}
	for f := range 3 {
		fr := stdimage.NewPaletted(stdimage.Rect(0, 0, w, h), pal)
		for i := range fr.Pix {
			fr.Pix[i] = uint8((i*31 + f*17 + i/w*13) % 256)
		}
		g.Image, g.Delay = append(g.Image, fr), append(g.Delay, 10)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// markerInScan returns jpg with a restart marker where none belongs, a
// third into its entropy-coded data: libjpeg warns of corrupt data
// ("premature end of data segment") and decodes on, filling in grey.
func markerInScan(t *testing.T, jpg []byte) []byte {
	t.Helper()
	bad := bytes.Clone(jpg)
	sos := bytes.Index(bad, []byte{0xFF, 0xDA})
	if sos < 0 {
		t.Fatal("no scan in test JPEG")
	}
	i := sos + len(bad[sos:])/3
	for bad[i-1] == 0xFF || bad[i] == 0xFF {
		i++
	}
	bad[i], bad[i+1] = 0xFF, 0xD3
	return bad
}

// badIDATCRC returns png with the CRC of its first IDAT chunk wrong.
func badIDATCRC(t *testing.T, png []byte) []byte {
	t.Helper()
	bad := bytes.Clone(png)
	i := bytes.Index(bad, []byte("IDAT"))
	if i < 4 {
		t.Fatal("no IDAT in test PNG")
	}
	n := int(binary.BigEndian.Uint32(bad[i-4:]))
	bad[i+4+n] ^= 0xFF
	return bad
}
