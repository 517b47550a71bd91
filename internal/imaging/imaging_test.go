package imaging_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdimage "image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

var specs = []image.Spec{{Name: "small", Width: 300, Height: 300}, {Name: "medium", Width: 1024, Height: 1024}, {Name: "large", Width: 2048, Height: 2048}}

func decode(t *testing.T, data []byte) (stdimage.Image, string) {
	t.Helper()
	img, format, err := stdimage.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode variant: %v", err)
	}
	return img, format
}

func isMarker(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 > 200 && g>>8 < 80 && b>>8 < 80
}

func TestResizeSizes(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	tests := []struct {
		name   string
		src    []byte
		want   [3][2]int
		format string
		ctype  string
	}{
		{"Landscape", testenv.JPEG(t, 2400, 1800, 1), [3][2]int{{300, 225}, {1024, 768}, {2048, 1536}}, "jpeg", "image/jpeg"},
		{"SmallNeverEnlarged", testenv.JPEG(t, 800, 600, 1), [3][2]int{{300, 225}, {800, 600}, {800, 600}}, "jpeg", "image/jpeg"},
		{"Strip", testenv.JPEG(t, 2, 3000, 1), [3][2]int{{1, 300}, {1, 1024}, {1, 2048}}, "jpeg", "image/jpeg"},
		{"StripTall", testenv.JPEG(t, 1, 5000, 1), [3][2]int{{1, 300}, {1, 1024}, {1, 2048}}, "jpeg", "image/jpeg"},
		{"StripWide", testenv.PNG(t, 5000, 1, 255), [3][2]int{{300, 1}, {1024, 1}, {2048, 1}}, "jpeg", "image/jpeg"},
		{"AlphaGivesPNG", testenv.PNG(t, 1200, 900, 100), [3][2]int{{300, 225}, {1024, 768}, {1200, 900}}, "png", "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := r.Resize(context.Background(), tt.src, specs)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 3 {
				t.Fatalf("got %d renditions, want 3", len(out))
			}
			for i, rd := range out {
				img, format := decode(t, rd.Data)
				b := img.Bounds()
				if rd.Width != tt.want[i][0] || rd.Height != tt.want[i][1] || b.Dx() != rd.Width || b.Dy() != rd.Height {
					t.Errorf("%s: reported %dx%d, decoded %dx%d, want %dx%d", rd.Name, rd.Width, rd.Height, b.Dx(), b.Dy(), tt.want[i][0], tt.want[i][1])
				}
				if format != tt.format || rd.ContentType != tt.ctype {
					t.Errorf("%s: format %s (%s), want %s (%s)", rd.Name, format, rd.ContentType, tt.format, tt.ctype)
				}
				if tt.format == "png" {
					if _, _, _, a := img.At(b.Dx()-1, b.Dy()-1).RGBA(); a>>8 > 200 {
						t.Errorf("%s: alpha %d in a translucent corner, want it kept", rd.Name, a>>8)
					}
				}
			}
		})
	}
}

// TestResizeOrientation checks every EXIF orientation comes out upright:
// the red block that is top-left in the upright picture must be top-left in
// every variant.
func TestResizeOrientation(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	// stored is the pixel layout of an upright 1200x800 picture with the red
	// block top-left, once transformed the way a camera would store it for
	// each orientation. Rather than transform pixels in the test, we store
	// the upright canvas and check that each orientation moves the block
	// where the EXIF rule says.
	for o := 1; o <= 8; o++ {
		t.Run(fmt.Sprintf("Orientation%d", o), func(t *testing.T) {
			src := testenv.JPEG(t, 1200, 800, o)
			out, err := r.Resize(context.Background(), src, specs[:1])
			if err != nil {
				t.Fatal(err)
			}
			img, _ := decode(t, out[0].Data)
			b := img.Bounds()
			wantW, wantH := 300, 200
			if o >= 5 {
				wantW, wantH = 200, 300
			}
			if b.Dx() != wantW || b.Dy() != wantH {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
			}
			// Where the stored top-left block lands once the orientation is
			// applied (EXIF 2.3, tag 0x0112).
			corners := map[string][2]int{
				"top-left": {5, 5}, "top-right": {b.Dx() - 6, 5},
				"bottom-left": {5, b.Dy() - 6}, "bottom-right": {b.Dx() - 6, b.Dy() - 6},
			}
			want := map[int]string{1: "top-left", 2: "top-right", 3: "bottom-right", 4: "bottom-left",
				5: "top-left", 6: "top-right", 7: "bottom-right", 8: "bottom-left"}[o]
			for name, p := range corners {
				got := isMarker(img.At(p[0], p[1]))
				if got != (name == want) {
					t.Errorf("orientation %d: marker at %s = %v, want the marker only at %s", o, name, got, want)
				}
			}
		})
	}
}

func TestResizeUndecodable(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	for name, src := range map[string][]byte{
		"CorruptJPEG": testenv.CorruptJPEG(t, 640, 480),
		"Garbage":     []byte("not an image"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.Resize(context.Background(), src, specs)
			if !errors.Is(err, image.ErrUndecodable) {
				t.Errorf("Resize = %v, want ErrUndecodable", err)
			}
		})
	}
}

func TestOutputFormats(t *testing.T) {
	rgba := testenv.PNG(t, 800, 600, 100)
	opaque := testenv.JPEG(t, 800, 600, 1)
	for _, tt := range []struct {
		format, ctype string
		src           []byte
		alpha         bool
	}{
		{"auto", "image/png", rgba, true},
		{"auto", "image/jpeg", opaque, false},
		{"jpeg", "image/jpeg", rgba, false},
		{"webp", "image/webp", rgba, true},
		{"avif", "image/avif", rgba, true},
	} {
		t.Run(tt.format+"_"+tt.ctype, func(t *testing.T) {
			cfg := imaging.NewDefaultConfig()
			cfg.OutputFormat = tt.format
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			out, err := imaging.New(cfg).Resize(context.Background(), tt.src, specs[:1])
			if err != nil {
				t.Fatal(err)
			}
			m, err := bimg.NewImage(out[0].Data).Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if out[0].ContentType != tt.ctype || "image/"+m.Type != strings.Replace(tt.ctype, "avif", "heif", 1) && "image/"+m.Type != tt.ctype {
				t.Errorf("content type %s, file %s; want %s", out[0].ContentType, m.Type, tt.ctype)
			}
			if m.Alpha != tt.alpha || m.Size.Width != 300 || m.Size.Height != 225 {
				t.Errorf("alpha %v, size %dx%d; want alpha %v, 300x225", m.Alpha, m.Size.Width, m.Size.Height, tt.alpha)
			}
		})
	}
	if err := (imaging.Config{OutputFormat: "gif", JPEGQuality: 82}).Validate(); err == nil {
		t.Error("OUTPUT_FORMAT=gif accepted")
	}
}

// TestResizeDamagedJPEGs feeds JPEGs with flipped bytes and cut short
// through the whole pipeline (libjpeg-turbo path first, libvips when it
// declines): each must give variants or ErrUndecodable, never a crash or
// another error.
func TestResizeDamagedJPEGs(t *testing.T) {
	r := imaging.New(imaging.NewDefaultConfig())
	src := testenv.JPEG(t, 640, 480, 6)
	rng := rand.New(rand.NewPCG(6, 7))
	var ok, refused int
	for i := range 150 {
		bad := bytes.Clone(src)
		if i%3 == 0 {
			bad = bad[:rng.IntN(len(bad))]
		} else {
			for range 1 + rng.IntN(8) {
				bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
			}
		}
		out, err := r.Resize(context.Background(), bad, specs)
		switch {
		case err == nil && len(out) == 3:
			ok++
		case errors.Is(err, image.ErrUndecodable), errors.Is(err, image.ErrTooManyPixels):
			refused++
		default:
			t.Fatalf("case %d: %d variants, error %v", i, len(out), err)
		}
	}
	t.Logf("%d decoded, %d refused as undecodable", ok, refused)
	if refused == 0 {
		t.Error("no damaged JPEG was refused: the damage did not reach the decoder")
	}
}
