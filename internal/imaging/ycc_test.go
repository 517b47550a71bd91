package imaging

import (
	"fmt"
	stdimage "image"
	"math"
	"runtime"
	"testing"

	"github.com/h2non/bimg"

	imagedomain "github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// waves is a photo whose red and blue follow waves period pixels long
// across it, both ways: chroma put half a pixel off its luma differs by
// levels, while the two paths' chroma filters, which differ on edges and
// near the Nyquist limit, agree on them. The colours stay inside the gamut
// so that neither path clips (clipping in YCbCr and in RGB differ).
func waves(w, h int, period float64) *stdimage.NRGBA {
	img := testenv.Photo(w, h, false)
	for y := range h {
		for x := range w {
			c := img.NRGBAAt(x, y)
			fx, fy := float64(x), float64(y)
			c.R = uint8(128 + 70*math.Sin(2*math.Pi*(fx+fy/2)/period))
			c.B = uint8(128 + 70*math.Cos(2*math.Pi*(fy-fx/3)/(period*0.8)))
			c.G = 64 + c.G/2
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// decodeTurbo decodes a variant back to RGB with libjpeg-turbo (Go's
// decoder upsamples chroma by repeating samples, which would be a
// difference of its own).
func decodeTurbo(t *testing.T, data []byte, w, h int) picture {
	t.Helper()
	p, ok := loadJPEGTurbo(data, w, h, 1, nil)
	if !ok {
		t.Fatal("the variant does not decode")
	}
	return p
}

// TestPlanesMatchRGBPath: the YCbCr planes path gives what the RGB path
// gives (libjpeg's upsampling and colour conversion, the RGB resampler,
// libjpeg's encoder), for every chroma sampling a camera writes, every DCT
// scale, every orientation, odd sizes, and both output samplings; and the
// variants derived from its intermediate match theirs too. The waves make
// chroma placed off its luma by half a pixel fail (checked by moving it).
func TestPlanesMatchRGBPath(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// Boxes that decode at full size as it is, at full size and resampled,
	// and at DCT scales 1/2, 1/4 and 1/8.
	for _, box := range []int{2048, 701, 480, 200, 120} {
		// Waves 48 pixels long in the intermediate, 16 in the variant
		// derived from it.
		pic := waves(1001, 667, 48*max(1, 1001/float64(box)))
		for _, sampling := range []string{"2x2", "2x1", "1x2", "1x1"} {
			src := testenv.CJPEG(t, pic, sampling, 95)
			for o := 1; o <= 8; o++ {
				for _, sub := range []int{1, 2} {
					t.Run(fmt.Sprintf("%s/box%d/orientation%d/sub%d", sampling, box, o, sub), func(t *testing.T) {
						w, h := 1001, 667
						if o >= 5 {
							w, h = h, w
						}
						tw, th := imagedomain.Spec{Width: box, Height: box}.Fit(w, h)
						yp, ok := loadJPEGPlanes(src, tw, th, o, sub, nil)
						if !ok {
							t.Fatal("the planes path declined the source")
						}
						defer yp.free()
						rp, ok := loadJPEGTurbo(src, tw, th, o, nil)
						if !ok {
							t.Fatal("the RGB path declined the source")
						}
						defer rp.free()
						q := map[int]int{1: 95, 2: 82}[sub] // 4:4:4 and 4:2:0 from both encoders
						compare := func(what string, a, b picture, limit float64) {
							da, err := a.encode(outJPEG, q, 0)
							if err != nil {
								t.Fatal(err)
							}
							db, err := b.encode(outJPEG, q, 0)
							if err != nil {
								t.Fatal(err)
							}
							if a.width() != b.width() || a.height() != b.height() {
								t.Fatalf("%s: planes give %dx%d, RGB %dx%d", what, a.width(), a.height(), b.width(), b.height())
							}
							ia, ib := decodeTurbo(t, da, a.width(), a.height()), decodeTurbo(t, db, a.width(), a.height())
							defer ia.free()
							defer ib.free()
							if d := meanAbsDiff(t, ia, ib); d > limit {
								t.Errorf("%s %dx%d: mean absolute difference %.2f from the RGB path, want at most %.1f", what, a.width(), a.height(), d, limit)
							}
						}
						compare("intermediate", yp, rp, 1.5)
						if tw > 40 && th > 40 {
							dw, dh := imagedomain.Spec{Width: tw / 3, Height: th / 3}.Fit(tw, th)
							yd, err := yp.resize(dw, dh)
							if err != nil {
								t.Fatal(err)
							}
							defer yd.free()
							rd, err := rp.resize(dw, dh)
							if err != nil {
								t.Fatal(err)
							}
							defer rd.free()
							// At a third of the size, the waves are 16 pixels long: the
							// 4:2:0 encoders' chroma filters (lanczos3 on the planes,
							// libjpeg's 2x2 average) part by up to 2.6 there.
							compare("derived", yd, rd, map[int]float64{1: 1.5, 2: 3}[sub])
						}
					})
				}
			}
		}
	}
}

// TestPlanesTakeSRGBOnly: a JPEG with an sRGB profile takes the planes path
// (its transform to sRGB moves nothing) and gives what libvips gives
// converting it; one with a Display P3 profile is declined (its colours
// need converting, in RGB).
func TestPlanesTakeSRGBOnly(t *testing.T) {
	New(NewDefaultConfig())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	photo := testenv.PhotoJPEG(900, 600)
	srgb := testenv.ViaVips(t, photo, "icc_transform", "srgb")
	p3 := testenv.ViaVips(t, photo, "icc_transform", "p3")
	for name, src := range map[string][]byte{"sRGB": srgb, "P3": p3} {
		if m, err := bimg.NewImage(src).Metadata(); err != nil || !m.Profile {
			t.Fatalf("the %s source has no ICC profile (%v): the test would prove nothing", name, err)
		}
	}
	if p, ok := loadJPEGPlanes(p3, 600, 400, 1, 1, nil); ok {
		p.free()
		t.Error("the planes path took a Display P3 source")
	}
	got, ok := loadJPEGPlanes(srgb, 600, 400, 1, 1, nil)
	if !ok {
		t.Fatal("the planes path declined an sRGB source")
	}
	defer got.free()
	data, err := got.encode(outJPEG, 95, 0)
	if err != nil {
		t.Fatal(err)
	}
	dec := decodeTurbo(t, data, 600, 400)
	defer dec.free()
	want, err := loadThumbnail(srgb, 600, 600, true, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer want.free()
	if d := meanAbsDiff(t, dec, want); d > 2.5 {
		t.Errorf("mean difference from libvips converting the profile %.2f/255, want at most 2.5", d)
	}
}
