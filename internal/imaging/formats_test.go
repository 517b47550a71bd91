package imaging_test

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/draw"
	"image/png"
	"math"
	"testing"

	"github.com/bbrks/go-blurhash"
	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// decodeAny decodes any format libvips reads (Go reads no lossy WebP with
// alpha, nor AVIF) into NRGBA.
func decodeAny(t *testing.T, data []byte) *stdimage.NRGBA {
	t.Helper()
	p, err := bimg.NewImage(data).Convert(bimg.PNG)
	if err != nil {
		t.Fatalf("libvips cannot read the variant: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	out := stdimage.NewNRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out
}

// meanAbsDiff is the mean absolute difference of the colour samples of two
// pictures of one size, and of their means per channel.
func meanAbsDiff(t *testing.T, a, b *stdimage.NRGBA) (sample float64, mean [3]float64) {
	t.Helper()
	if a.Bounds() != b.Bounds() {
		t.Fatalf("sizes differ: %v and %v", a.Bounds(), b.Bounds())
	}
	var sum float64
	var sa, sb [3]float64
	for i := 0; i < len(a.Pix); i += 4 {
		for c := range 3 {
			sum += math.Abs(float64(a.Pix[i+c]) - float64(b.Pix[i+c]))
			sa[c] += float64(a.Pix[i+c])
			sb[c] += float64(b.Pix[i+c])
		}
	}
	n := float64(len(a.Pix) / 4)
	for c := range 3 {
		mean[c] = math.Abs(sa[c]-sb[c]) / n
	}
	return sum / (3 * n), mean
}

func withFormats(formats ...image.Format) imaging.Config {
	cfg := imaging.NewDefaultConfig()
	cfg.Formats = formats
	return cfg
}

// TestRenderFormats: every variant in every format, base first, each the
// same picture: a WebP or AVIF made from a JPEG's planes (range mapped to
// WebP's video range, or converted to RGB) decodes to the JPEG variant's
// colours, and so does one made from RGB (a PNG source, an ICC profile).
func TestRenderFormats(t *testing.T) {
	photo := testenv.PhotoJPEG(800, 600)
	all := imaging.New(withFormats(image.FormatJPEG, image.FormatWebP, image.FormatAVIF))
	// AVIF's encoder is slow: it runs on one source of each path (planes,
	// RGB with alpha); the rest take WebP alone.
	webp := imaging.New(withFormats(image.FormatJPEG, image.FormatWebP))
	for _, tc := range []struct {
		name string
		src  []byte
		base string
		r    *imaging.Resizer
	}{
		{"JPEGPlanes", photo, "image/jpeg", all},
		{"PNGAlpha", testenv.PNG(t, 700, 500, 120), "image/png", all},
		{"JPEG444", testenv.CJPEG(t, testenv.Photo(600, 450, false), "1x1", 92), "image/jpeg", webp},
		{"JPEGRotated", testenv.WithOrientation(photo, 6), "image/jpeg", webp},
		{"DisplayP3", testenv.ViaVips(t, photo, "icc_transform", "p3"), "image/jpeg", webp},
		{"Grey", testenv.ViaVips(t, photo, "colourspace", "b-w"), "image/jpeg", webp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.r.Render(context.Background(), tc.src, specs)
			if err != nil {
				t.Fatal(err)
			}
			formats := []string{tc.base, "image/webp", "image/avif"}
			if tc.r == webp {
				formats = formats[:2]
			}
			n := len(formats)
			if len(res.Renditions) != 3*n {
				t.Fatalf("%d renditions, want 3 variants in %d formats", len(res.Renditions), n)
			}
			for i, rd := range res.Renditions {
				want := formats[i%n]
				if rd.Name != specs[i/n].Name || rd.ContentType != want || rd.Format != image.FormatOf(want) {
					t.Fatalf("rendition %d: %s %s, want %s %s (base first)", i, rd.Name, rd.ContentType, specs[i/n].Name, want)
				}
				got := decodeAny(t, rd.Data)
				if got.Bounds().Dx() != rd.Width || got.Bounds().Dy() != rd.Height {
					t.Errorf("%s %s: decodes to %v, reported %dx%d", rd.Name, rd.ContentType, got.Bounds(), rd.Width, rd.Height)
				}
				if i%n == 0 || rd.Width < 64 {
					continue
				}
				base := decodeAny(t, res.Renditions[i-i%n].Data)
				// Both lossy (JPEG 82, WebP 78, AVIF 60): the samples differ
				// by the two encoders' noise, the means by a shift of colour
				// (full against video range would be several levels); swapped
				// channels or a shifted picture would differ by tens.
				sample, mean := meanAbsDiff(t, base, got)
				if sample > 10 || mean[0] > 1.5 || mean[1] > 1.5 || mean[2] > 1.5 {
					t.Errorf("%s %s against the %s: samples differ by %.2f on average, channel means by %.2f", rd.Name, rd.ContentType, tc.base, sample, mean)
				}
			}
			if res.Placeholder == "" || len(res.DominantColor) != 7 {
				t.Errorf("placeholder %q, dominant colour %q", res.Placeholder, res.DominantColor)
			}
		})
	}
	t.Run("ResizeIsBaseAlone", func(t *testing.T) {
		out, err := all.Resize(context.Background(), photo, specs)
		if err != nil || len(out) != 3 || out[0].ContentType != "image/jpeg" {
			t.Fatalf("Resize = %d renditions (%v), want the 3 JPEGs", len(out), err)
		}
	})
}

// TestPlaceholderColours: the placeholder is the picture's, the dominant
// colour the one most of it has, a translucent source counting as on
// white.
func TestPlaceholderColours(t *testing.T) {
	r := imaging.New(withFormats(image.FormatJPEG))
	for _, tc := range []struct {
		name string
		src  []byte
		// dominant is the canvas colour; a quarter of each side is red.
		dominant [3]int
	}{
		{"JPEG", testenv.JPEG(t, 1200, 900, 1), [3]int{90, 110, 130}},
		{"Portrait", testenv.JPEG(t, 600, 1200, 1), [3]int{90, 110, 130}},
		// alpha 100 of 255 over white: 255 - (255-v)*100/255.
		{"Translucent", testenv.PNG(t, 800, 600, 100), [3]int{190, 198, 206}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := r.Render(context.Background(), tc.src, specs)
			if err != nil {
				t.Fatal(err)
			}
			var dr, dg, db int
			if _, err := fmt.Sscanf(res.DominantColor, "#%02x%02x%02x", &dr, &dg, &db); err != nil {
				t.Fatalf("dominant colour %q: %v", res.DominantColor, err)
			}
			for c, v := range [3]int{dr, dg, db} {
				if math.Abs(float64(v-tc.dominant[c])) > 6 {
					t.Errorf("dominant colour %s, want about %v", res.DominantColor, tc.dominant)
				}
			}
			x, y, err := blurhash.Components(res.Placeholder)
			small := res.Renditions[0]
			if err != nil || (small.Width >= small.Height) != (x > y) {
				t.Errorf("placeholder %q has %dx%d components (%v) for a %dx%d picture", res.Placeholder, x, y, err, small.Width, small.Height)
			}
			decoded, err := blurhash.Decode(res.Placeholder, 40, 30, 1)
			if err != nil {
				t.Fatal(err)
			}
			// The top-left of the picture is red, its bottom-right the canvas.
			tl, br := decoded.At(2, 2), decoded.At(37, 27)
			r0, g0, _, _ := tl.RGBA()
			r1, _, _, _ := br.RGBA()
			if r0>>8 <= g0>>8 || r0>>8 <= r1>>8 {
				t.Errorf("placeholder top-left %v, bottom-right %v: want the red corner redder", tl, br)
			}
		})
	}
}
