package imaging

import (
	"bytes"
	"fmt"
	stdimage "image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/h2non/bimg"
	"golang.org/x/sys/cpu"

	imagedomain "github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// meanAbsDiff is the mean absolute difference per sample, 0 to 255, of two
// pictures of the same size and bands.
func meanAbsDiff(t *testing.T, a, b picture) float64 {
	t.Helper()
	if a.bands() != b.bands() {
		t.Fatalf("%d bands against %d", a.bands(), b.bands())
	}
	pa, pb := a.samples(), b.samples()
	var sum int
	for i := range min(len(pa), len(pb)) {
		d := int(pa[i]) - int(pb[i])
		sum += max(d, -d)
	}
	return float64(sum) / float64(len(pa))
}

// bothResized returns src scaled to w x h by resize (resample.c where it
// applies) and by vips_resize, the reference; both are freed when the test
// ends.
func bothResized(t *testing.T, src picture, w, h int) (got, want picture) {
	t.Helper()
	got, err := src.resize(w, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(got.free)
	want, err = src.resizeWithLibvips(w, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(want.free)
	return got, want
}

// TestTurboPathMatchesLibvips: the libjpeg-turbo path takes the JPEGs it is
// meant for (baseline, progressive, greyscale, rotated, with an ICC
// profile) and gives what vips_thumbnail gives for them, size for size and
// within a small mean difference (the two shrink differently: the turbo
// path uses DCT scaling wherever it covers the size); it declines CMYK and
// broken files, which then go through libvips and its checks.
func TestTurboPathMatchesLibvips(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	photo := testenv.PhotoJPEG(1400, 1000)
	progressive, err := bimg.Resize(photo, bimg.Options{Type: bimg.JPEG, Interlace: true, Quality: 90})
	if err != nil {
		t.Fatal(err)
	}
	gray := stdimage.NewGray(stdimage.Rect(0, 0, 1500, 1000))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i%1500/6) + uint8(rng.IntN(16))
	}
	var grayJPEG bytes.Buffer
	if err := jpeg.Encode(&grayJPEG, gray, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	truncated := photo[:len(photo)*2/3]

	for _, tt := range []struct {
		name  string
		src   []byte
		turbo bool
	}{
		{"Baseline", photo, true},
		{"Orientation6", testenv.WithOrientation(photo, 6), true},
		{"Orientation3", testenv.WithOrientation(photo, 3), true},
		{"Progressive", progressive, true},
		{"Greyscale", grayJPEG.Bytes(), true},
		{"DisplayP3Profile", testenv.ViaVips(t, photo, "icc_transform", "p3"), true},
		{"SRGBProfile", testenv.ViaVips(t, photo, "icc_transform", "srgb"), true},
		{"CMYK", testenv.ViaVips(t, photo, "colourspace", "cmyk"), false},
		{"Truncated", truncated, false},
		{"CorruptHuffman", testenv.CorruptJPEG(t, 640, 480), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			meta, err := bimg.NewImage(tt.src).Metadata()
			if err != nil {
				// Too broken for a header: check it is declined all the same.
				if _, ok := loadJPEGTurbo(tt.src, 300, 300, 1, nil); ok || tt.turbo {
					t.Fatalf("header: %v; turbo path taken = %v, want %v", err, ok, tt.turbo)
				}
				return
			}
			for _, box := range []int{2048, 600, 300} {
				w, h := meta.Size.Width, meta.Size.Height
				if meta.Orientation >= 5 {
					w, h = h, w
				}
				tw, th := imagedomain.Spec{Width: box, Height: box}.Fit(w, h)
				got, ok := loadJPEGTurbo(tt.src, tw, th, meta.Orientation, nil)
				if ok != tt.turbo {
					t.Fatalf("box %d: turbo path taken = %v, want %v", box, ok, tt.turbo)
				}
				if !ok {
					return
				}
				defer got.free()
				want, err := loadThumbnail(tt.src, box, box, meta.Profile, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer want.free()
				if got.width() != tw || got.height() != th || want.width() != tw || want.height() != th {
					t.Fatalf("box %d: turbo %dx%d, libvips %dx%d, want %dx%d", box, got.width(), got.height(), want.width(), want.height(), tw, th)
				}
				d := meanAbsDiff(t, got, want)
				t.Logf("box %d: MAD %.2f", box, d)
				if d > 2.5 {
					t.Errorf("box %d: mean difference from libvips %.2f/255, want at most 2.5", box, d)
				}
			}
		})
	}
}

// TestResampleMatchesLibvips holds the lanczos3 resampler of resample.c to
// vips_resize with its default kernel (the same lanczos3): the two differ
// only in rounding, whatever the shape.
func TestResampleMatchesLibvips(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	photo := testenv.PhotoJPEG(1600, 1200)
	gray := testenv.JPEG(t, 1001, 999, 1)
	for _, tt := range []struct {
		name   string
		src    []byte
		w, h   int
		tw, th int
	}{
		{"Halve", photo, 1600, 1200, 800, 600},
		{"Odd", photo, 1600, 1200, 1141, 856},
		{"Third", photo, 1600, 1200, 533, 400},
		{"Small", photo, 1600, 1200, 300, 225},
		{"Anamorphic", photo, 1600, 1200, 700, 1100},
		{"OddSource", gray, 1001, 999, 333, 332},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, ok := loadJPEGTurbo(tt.src, tt.w, tt.h, 1, nil)
			if !ok {
				t.Fatal("turbo path declined the source")
			}
			defer src.free()
			got, want := bothResized(t, src, tt.tw, tt.th)
			if got.width() != tt.tw || got.height() != tt.th {
				t.Fatalf("size %dx%d, want %dx%d", got.width(), got.height(), tt.tw, tt.th)
			}
			d := meanAbsDiff(t, got, want)
			t.Logf("mean difference %.3f/255", d)
			if d > 0.5 {
				t.Errorf("mean difference from vips_resize %.2f/255, want at most 0.5", d)
			}
		})
	}
}

// TestResampleNarrow: strips narrower than the resampler's block of 32
// rows, to heights that leave a partial last block, colour and grey, stay
// close to vips_resize (the horizontal pass's sums once outgrew a buffer
// sized for the width; make test also runs this package under
// AddressSanitizer, which is what catches such an overflow). On strips this
// narrow every pixel is near an edge, where the two resamplers differ by
// design (vips_resize repeats the edge pixel, resample.c renormalises the
// weights inside the image), hence a looser bound than for whole pictures.
func TestResampleNarrow(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, w := range []int{1, 2, 3, 5, 15, 16, 17, 31, 33} {
		for _, grey := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx500Grey%v", w, grey), func(t *testing.T) {
				var src []byte
				if grey {
					img := stdimage.NewGray(stdimage.Rect(0, 0, w, 500))
					draw.Draw(img, img.Rect, testenv.Photo(w, 500, false), stdimage.Point{}, draw.Src)
					var buf bytes.Buffer
					if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
						t.Fatal(err)
					}
					src = buf.Bytes()
				} else {
					src = testenv.PhotoJPEG(w, 500)
				}
				in, ok := loadJPEGTurbo(src, w, 500, 1, nil)
				if !ok {
					t.Fatal("turbo path declined the source")
				}
				defer in.free()
				for _, h := range []int{75, 43, 1} {
					got, want := bothResized(t, in, max(1, w/2), h)
					d := meanAbsDiff(t, got, want)
					t.Logf("to %dx%d: mean difference %.2f/255", max(1, w/2), h, d)
					if d > 3 {
						t.Errorf("to %dx%d: mean difference from vips_resize %.2f/255, want at most 3", max(1, w/2), h, d)
					}
				}
			})
		}
	}
}

// TestResampleAVX2MatchesPortable: the AVX2 filter gives the same bytes as
// the portable loop, on RGB and on planes.
func TestResampleAVX2MatchesPortable(t *testing.T) {
	if !cpu.X86.HasAVX2 {
		t.Skip("this CPU has no AVX2: the portable loop is the only one")
	}
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	src := testenv.PhotoJPEG(1500, 1001)
	run := func(portable bool) (rgb, planes []byte) {
		setPortableResample(portable)
		defer setPortableResample(false)
		p, ok := loadJPEGTurbo(src, 1023, 682, 6, nil)
		if !ok {
			t.Fatal("the RGB path declined the source")
		}
		defer p.free()
		small, err := p.resize(301, 201)
		if err != nil {
			t.Fatal(err)
		}
		defer small.free()
		y, ok := loadJPEGPlanes(src, 1023, 682, 6, 2, nil)
		if !ok {
			t.Fatal("the planes path declined the source")
		}
		defer y.free()
		if planes, err = y.encode(outJPEG, 90, 0); err != nil {
			t.Fatal(err)
		}
		return append(p.samples(), small.samples()...), planes
	}
	rgbSIMD, planesSIMD := run(false)
	rgbPortable, planesPortable := run(true)
	if !bytes.Equal(rgbSIMD, rgbPortable) {
		t.Error("RGB: the AVX2 filter and the portable loop give different bytes")
	}
	if !bytes.Equal(planesSIMD, planesPortable) {
		t.Error("planes: the AVX2 filter and the portable loop give different bytes")
	}
}

// alphaMAD compares two pictures of the same size whose last band is alpha
// in what a viewer sees: the mean absolute difference of colour times alpha,
// and of alpha, 0 to 255. (The colours of nearly transparent pixels can
// differ a lot and show nowhere.)
func alphaMAD(a, b picture) (colour, alpha float64) {
	bands := a.bands()
	pa, pb := a.samples(), b.samples()
	for i := 0; i+bands <= len(pa) && i+bands <= len(pb); i += bands {
		aa, ab := float64(pa[i+bands-1]), float64(pb[i+bands-1])
		alpha += math.Abs(aa - ab)
		for c := range bands - 1 {
			colour += math.Abs(float64(pa[i+c])*aa-float64(pb[i+c])*ab) / 255
		}
	}
	px := float64(len(pa) / bands)
	return colour / (px * float64(bands-1)), alpha / px
}

// TestResampleAlphaMatchesLibvips holds the 8-bit premultiplied resample of
// grey + alpha and RGBA variants to vips_resize's floating-point one, in
// what a viewer sees (colour times alpha) and in alpha, on a photo whose
// alpha runs from 0 to 255 across it, with fully transparent squares of
// pure green: a resample that did not premultiply would bleed the green
// into their edges.
func TestResampleAlphaMatchesLibvips(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	img := testenv.Photo(1200, 900, false)
	for y := range 900 {
		for x := range 1200 {
			p := img.PixOffset(x, y)
			img.Pix[p+3] = uint8(x * 255 / 1199)
			if (x/40+y/40)%2 == 0 {
				copy(img.Pix[p:p+4], []uint8{0, 255, 0, 0})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	rgba := buf.Bytes()
	for _, tt := range []struct {
		name   string
		grey   bool
		tw, th int
	}{
		{"RGBAHalve", false, 600, 450},
		{"RGBAOdd", false, 457, 343},
		{"RGBASmall", false, 300, 225},
		{"GreyAlphaThird", true, 400, 300},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := loadThumbnail(rgba, 1200, 1200, false, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(src.free)
			if tt.grey {
				if src, err = src.toGreyAlpha(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(src.free)
			}
			got, want := bothResized(t, src, tt.tw, tt.th)
			if got.width() != tt.tw || got.height() != tt.th || got.bands() != src.bands() || !got.hasAlpha() {
				t.Fatalf("%dx%d, %d bands (alpha %v), want %dx%d, %d bands with alpha", got.width(), got.height(), got.bands(), got.hasAlpha(), tt.tw, tt.th, src.bands())
			}
			seen, alpha := alphaMAD(got, want)
			t.Logf("premultiplied colour %.3f/255, alpha %.3f/255", seen, alpha)
			// Alpha is not premultiplied; it differs by vips_resize's box
			// shrink before its lanczos3 at large factors (0.66 at 4x).
			if seen > 0.6 || alpha > 1 {
				t.Errorf("mean difference from vips_resize: premultiplied colour %.2f/255, alpha %.2f/255; want at most 0.6 and 1", seen, alpha)
			}
		})
	}
}

// TestStreamedPNGMatchesLibvips: PNGs without a profile or orientation
// (RGB, RGBA, grey, grey + alpha, 16-bit, palette) decoded row by row into
// the resampler give what vips_thumbnail gives, size for size and within a
// small mean difference, at a shrink and at their own size; a truncated
// PNG is refused, so that vips_thumbnail's checks decide.
func TestStreamedPNGMatchesLibvips(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// Fully transparent squares of pure green: a resample that did not
	// premultiply would bleed the green into their edges.
	rgba := testenv.Photo(1500, 1000, true)
	for y := range 1000 {
		for x := range 1500 {
			if (x/50+y/50)%2 == 0 {
				p := rgba.PixOffset(x, y)
				copy(rgba.Pix[p:p+4], []uint8{0, 255, 0, 0})
			}
		}
	}
	rgb := testenv.Photo(1500, 1000, false)
	grey := stdimage.NewGray(rgb.Bounds())
	deep := stdimage.NewNRGBA64(rgb.Bounds())
	pal := stdimage.NewPaletted(rgb.Bounds(), palette.WebSafe)
	for y := range 1000 {
		for x := range 1500 {
			c := rgb.NRGBAAt(x, y)
			grey.SetGray(x, y, color.Gray{Y: uint8((int(c.R) + int(c.G) + int(c.B)) / 3)})
			deep.SetNRGBA64(x, y, color.NRGBA64{R: uint16(c.R) * 257, G: uint16(c.G) * 257, B: uint16(c.B) * 257, A: 0xffff})
			pal.Set(x, y, c)
		}
	}
	encode := func(img stdimage.Image) []byte {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	rgbaPNG := encode(rgba)
	full, err := loadThumbnail(rgbaPNG, 1500, 1500, false, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ga, err := full.toGreyAlpha()
	full.free()
	if err != nil {
		t.Fatal(err)
	}
	gaPNG, err := ga.encode(outPNG, 0, 2)
	ga.free()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		src  []byte
	}{
		{"RGBA", rgbaPNG},
		{"RGB", encode(rgb)},
		{"Grey", encode(grey)},
		{"GreyAlpha", gaPNG},
		{"Deep", encode(deep)},
		{"Palette", encode(pal)},
	} {
		for _, box := range []int{2048, 700, 300} {
			t.Run(fmt.Sprintf("%s/box%d", tt.name, box), func(t *testing.T) {
				tw, th := imagedomain.Spec{Width: box, Height: box}.Fit(1500, 1000)
				got, err := loadStreamed(tt.src, tw, th, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer got.free()
				want, err := loadThumbnail(tt.src, box, box, false, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer want.free()
				if got.width() != tw || got.height() != th || want.width() != tw || want.height() != th || got.bands() != want.bands() {
					t.Fatalf("streamed %dx%dx%d, libvips %dx%dx%d, want %dx%d", got.width(), got.height(), got.bands(), want.width(), want.height(), want.bands(), tw, th)
				}
				if got.hasAlpha() {
					colour, alpha := alphaMAD(got, want)
					t.Logf("premultiplied colour %.3f/255, alpha %.3f/255", colour, alpha)
					// vips_thumbnail truncates where it could round (half a
					// level) and shrinks by boxes before its lanczos3.
					if colour > 1.5 || alpha > 1.5 {
						t.Errorf("mean difference from vips_thumbnail: premultiplied colour %.2f/255, alpha %.2f/255; want at most 1.5 each", colour, alpha)
					}
					return
				}
				d := meanAbsDiff(t, got, want)
				t.Logf("MAD %.3f", d)
				if d > 1.5 {
					t.Errorf("mean difference from vips_thumbnail %.2f/255, want at most 1.5", d)
				}
			})
		}
	}
	if p, err := loadStreamed(rgbaPNG[:len(rgbaPNG)/2], 700, 467, nil); err == nil {
		p.free()
		t.Error("a truncated PNG was decoded")
	}
}
