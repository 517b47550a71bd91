package imaging_test

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// upright is the picture as a person should see it: smooth gradients and a
// few blocks, so that any wrong rotation or mirror shows and resampling
// kernels agree.
func upright(w, h int) *stdimage.NRGBA {
	img := stdimage.NewNRGBA(stdimage.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{uint8(255 * x / w), uint8(255 * y / h), 128, 255}
			if x < w/3 && y < h/4 {
				c = color.NRGBA{250, 20, 20, 255}
			}
			if x > w*3/4 && y > h/2 {
				c = color.NRGBA{20, 20, 230, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// display applies EXIF orientation o to a stored image: what a viewer
// shows (EXIF 2.32, tag 0x0112).
func display(s *stdimage.NRGBA, o int) *stdimage.NRGBA {
	w, h := s.Bounds().Dx(), s.Bounds().Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	d := stdimage.NewNRGBA(stdimage.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			var sx, sy int
			switch o {
			case 1:
				sx, sy = x, y
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			d.SetNRGBA(x, y, s.NRGBAAt(sx, sy))
		}
	}
	return d
}

// stored returns what a camera stores for upright picture u with
// orientation o: the inverse transform (6 and 8 undo each other, the rest
// undo themselves).
func stored(u *stdimage.NRGBA, o int) *stdimage.NRGBA {
	inv := map[int]int{6: 8, 8: 6}[o]
	if inv == 0 {
		inv = o
	}
	return display(u, inv)
}

// boxDown scales img to w x h by averaging.
func boxDown(img *stdimage.NRGBA, w, h int) *stdimage.NRGBA {
	b := img.Bounds()
	out := stdimage.NewNRGBA(stdimage.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			x0, x1 := x*b.Dx()/w, max((x+1)*b.Dx()/w, x*b.Dx()/w+1)
			y0, y1 := y*b.Dy()/h, max((y+1)*b.Dy()/h, y*b.Dy()/h+1)
			var r, g, bl, n int
			for yy := y0; yy < y1; yy++ {
				for xx := x0; xx < x1; xx++ {
					p := img.Pix[img.PixOffset(b.Min.X+xx, b.Min.Y+yy):]
					r, g, bl, n = r+int(p[0]), g+int(p[1]), bl+int(p[2]), n+1
				}
			}
			out.SetNRGBA(x, y, color.NRGBA{uint8(r / n), uint8(g / n), uint8(bl / n), 255})
		}
	}
	return out
}

// nrgba returns img as an NRGBA image at the origin.
func nrgba(img stdimage.Image) *stdimage.NRGBA {
	if n, ok := img.(*stdimage.NRGBA); ok && n.Rect.Min == (stdimage.Point{}) {
		return n
	}
	out := stdimage.NewNRGBA(stdimage.Rect(0, 0, img.Bounds().Dx(), img.Bounds().Dy()))
	draw.Draw(out, out.Rect, img, img.Bounds().Min, draw.Src)
	return out
}

// mad is the mean absolute difference per colour channel, 0 to 255, of two
// opaque images of the same size.
func mad(a, b stdimage.Image) float64 {
	pa, pb := nrgba(a).Pix, nrgba(b).Pix
	var sum int
	for i := 0; i+3 < len(pa) && i+3 < len(pb); i += 4 {
		for c := range 3 {
			d := int(pa[i+c]) - int(pb[i+c])
			sum += max(d, -d)
		}
	}
	return float64(sum) / float64(3*len(pa)/4)
}

// TestGoldenOrientation compares each variant of each orientation with the
// upright picture scaled in Go: mean absolute difference under 6 of 255.
// The small source fits the largest variant, so libvips turns the
// intermediate upright; the large one is resampled to it, turned upright
// by the resampler's last pass.
func TestGoldenOrientation(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	for _, size := range [][2]int{{900, 600}, {2100, 700}} {
		u := upright(size[0], size[1])
		wants := map[stdimage.Point]*stdimage.NRGBA{} // the reference at each variant size
		for o := 1; o <= 8; o++ {
			t.Run(fmt.Sprintf("%dx%d/Orientation%d", size[0], size[1], o), func(t *testing.T) {
				var buf bytes.Buffer
				jpeg.Encode(&buf, stored(u, o), &jpeg.Options{Quality: 95})
				src := testenv.WithOrientation(buf.Bytes(), o)
				out, err := r.Resize(context.Background(), src, specs)
				if err != nil {
					t.Fatal(err)
				}
				for _, rd := range out {
					got, _ := decode(t, rd.Data)
					size := got.Bounds().Size()
					if wants[size] == nil {
						wants[size] = boxDown(u, size.X, size.Y)
					}
					want := wants[size]
					if got.Bounds().Dx() > got.Bounds().Dy() != (u.Bounds().Dx() > u.Bounds().Dy()) {
						t.Fatalf("%s is %v, not landscape like the upright picture", rd.Name, got.Bounds())
					}
					if d := mad(got, want); d > 6 {
						t.Errorf("%s: mean absolute difference %.1f from the upright reference, want under 6", rd.Name, d)
					}
					if m, err := bimg.NewImage(rd.Data).Metadata(); err != nil || m.EXIF.Orientation > 1 || m.Orientation > 1 {
						t.Errorf("%s: variant keeps an orientation tag (%d): metadata not stripped", rd.Name, m.Orientation)
					}
				}
			})
		}
	}
}

func encodePNG(t *testing.T, img stdimage.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSourceKinds runs the pipeline on the kinds of file users upload.
func TestSourceKinds(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	u := upright(1200, 800)

	gray := stdimage.NewGray(u.Bounds())
	deep := stdimage.NewNRGBA64(u.Bounds())
	pal := stdimage.NewPaletted(u.Bounds(), palette.WebSafe)
	for y := 0; y < 800; y++ {
		for x := 0; x < 1200; x++ {
			c := u.NRGBAAt(x, y)
			gray.SetGray(x, y, color.Gray{uint8((int(c.R) + int(c.G) + int(c.B)) / 3)})
			deep.SetNRGBA64(x, y, color.NRGBA64{uint16(c.R) * 257, uint16(c.G) * 257, uint16(c.B) * 257, 0xffff})
			pal.Set(x, y, c)
		}
	}
	var grayJPEG, prog bytes.Buffer
	jpeg.Encode(&grayJPEG, gray, nil)
	base := testenv.JPEG(t, 1200, 800, 1)
	progressive, err := bimg.Resize(base, bimg.Options{Type: bimg.JPEG, Interlace: true, Quality: 90})
	if err != nil {
		t.Fatal(err)
	}
	prog.Write(progressive)
	webp, err := bimg.Resize(base, bimg.Options{Type: bimg.WEBP, Quality: 85})
	if err != nil {
		t.Fatal(err)
	}
	// Animated GIF: the first frame is red, the second blue.
	anim := &gif.GIF{}
	for _, c := range []color.Color{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}} {
		fr := stdimage.NewPaletted(stdimage.Rect(0, 0, 600, 400), color.Palette{c, color.White})
		anim.Image, anim.Delay = append(anim.Image, fr), append(anim.Delay, 10)
	}
	var animBuf bytes.Buffer
	gif.EncodeAll(&animBuf, anim)

	for _, tt := range []struct {
		name  string
		src   []byte
		large [2]int
	}{
		{"GreyscalePNG", encodePNG(t, gray), [2]int{1200, 800}},
		{"GreyscaleJPEG", grayJPEG.Bytes(), [2]int{1200, 800}},
		{"Sixteen-bitPNG", encodePNG(t, deep), [2]int{1200, 800}},
		{"PalettePNG", encodePNG(t, pal), [2]int{1200, 800}},
		{"ProgressiveJPEG", prog.Bytes(), [2]int{1200, 800}},
		{"WebP", webp, [2]int{1200, 800}},
		{"AnimatedGIFFirstFrame", animBuf.Bytes(), [2]int{600, 400}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := r.Resize(context.Background(), tt.src, specs)
			if err != nil {
				t.Fatal(err)
			}
			large := out[2]
			img, format := decode(t, large.Data)
			if b := img.Bounds(); b.Dx() != tt.large[0] || b.Dy() != tt.large[1] || large.Width != b.Dx() {
				t.Errorf("large is %v (reported %dx%d), want %v", b, large.Width, large.Height, tt.large)
			}
			if format != "jpeg" && format != "png" {
				t.Errorf("format %s", format)
			}
			if tt.name == "AnimatedGIFFirstFrame" {
				if r, _, b, _ := img.At(10, 10).RGBA(); r>>8 < 200 || b>>8 > 60 {
					t.Errorf("the variant is not the first (red) frame: %v", img.At(10, 10))
				}
			}
		})
	}
}

// TestCMYKBecomesSRGB: a CMYK JPEG (made by libvips' own CLI, as print
// workflows do) gives 3-band sRGB variants with colours close to the
// original.
func TestCMYKBecomesSRGB(t *testing.T) {
	u := upright(600, 400)
	src := testenv.ViaVips(t, encodePNG(t, u), "colourspace", "cmyk")
	if m, err := bimg.NewImage(src).Metadata(); err != nil || m.Space != "cmyk" {
		t.Fatalf("test source is not CMYK: %+v %v", m, err)
	}
	r := imaging.New(imaging.NewDefaultConfig())
	rs, err := r.Resize(context.Background(), src, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rd := range rs {
		m, err := bimg.NewImage(rd.Data).Metadata()
		if err != nil || m.Space != "srgb" || m.Channels != 3 {
			t.Errorf("%s: space %s with %d channels, want srgb with 3", rd.Name, m.Space, m.Channels)
		}
		got, _ := decode(t, rd.Data)
		if d := mad(got, boxDown(u, got.Bounds().Dx(), got.Bounds().Dy())); d > 25 {
			t.Errorf("%s: colours off the original by %.1f of 255 on average, want under 25", rd.Name, d)
		}
	}
}
