package image_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

func TestSpecFit(t *testing.T) {
	tests := []struct {
		w, h, bw, bh int
		ww, wh       int
	}{
		{4000, 3000, 300, 300, 300, 225},
		{3000, 4000, 300, 300, 225, 300},
		{4000, 3000, 2048, 2048, 2048, 1536},
		{800, 600, 1024, 1024, 800, 600}, // never enlarged
		{800, 600, 2048, 2048, 800, 600}, // never enlarged
		{1024, 1024, 1024, 1024, 1024, 1024},
		{1, 5000, 300, 300, 1, 300}, // thin strip keeps a pixel
		{5000, 1, 300, 300, 300, 1},
		{1000, 500, 300, 200, 300, 150},     // non-square box, width decides
		{500, 1000, 300, 200, 100, 200},     // height decides
		{6000, 4000, 1024, 1024, 1024, 683}, // 682.67 rounds to 683
	}
	for _, tt := range tests {
		s := image.Spec{Name: "x", Width: tt.bw, Height: tt.bh}
		gw, gh := s.Fit(tt.w, tt.h)
		if gw != tt.ww || gh != tt.wh {
			t.Errorf("Fit(%dx%d, %dx%d) = %dx%d, want %dx%d", tt.w, tt.h, tt.bw, tt.bh, gw, gh, tt.ww, tt.wh)
		}
	}
}

func TestParseSpecs(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		specs, err := image.ParseSpecs("small:300x300, medium:1024x1024,large:2048x2048")
		if err != nil {
			t.Fatal(err)
		}
		want := []image.Spec{{"small", 300, 300}, {"medium", 1024, 1024}, {"large", 2048, 2048}}
		if len(specs) != len(want) {
			t.Fatalf("ParseSpecs gave %v, want %v", specs, want)
		}
		for i := range want {
			if specs[i] != want[i] {
				t.Errorf("spec %d = %v, want %v", i, specs[i], want[i])
			}
		}
	})
	for _, bad := range []string{"", "small", "small:300", "small:0x10", "Small:10x10", "a:10x10,a:20x20", "x:10x99999", "../x:10x10"} {
		t.Run("Err_"+bad, func(t *testing.T) {
			if _, err := image.ParseSpecs(bad); err == nil {
				t.Errorf("ParseSpecs(%q) = nil error, want one", bad)
			}
		})
	}
}

// webpVP8L returns a minimal lossless WebP header of w x h.
func webpVP8L(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+5))
	b.WriteString("WEBPVP8L")
	binary.Write(&b, binary.LittleEndian, uint32(5))
	b.WriteByte(0x2f)
	bits := uint32(w-1) | uint32(h-1)<<14
	binary.Write(&b, binary.LittleEndian, bits)
	return b.Bytes()
}

// avifHeader returns the boxes of an AVIF file down to its ispe property.
func avifHeader(w, h int) []byte {
	box := func(typ string, body []byte) []byte {
		out := make([]byte, 8, 8+len(body))
		binary.BigEndian.PutUint32(out, uint32(8+len(body)))
		copy(out[4:], typ)
		return append(out, body...)
	}
	ispe := make([]byte, 12)
	binary.BigEndian.PutUint32(ispe[4:], uint32(w))
	binary.BigEndian.PutUint32(ispe[8:], uint32(h))
	thumb := make([]byte, 12)
	binary.BigEndian.PutUint32(thumb[4:], 160)
	binary.BigEndian.PutUint32(thumb[8:], 120)
	ipco := box("ipco", append(box("ispe", thumb), box("ispe", ispe)...))
	meta := box("meta", append([]byte{0, 0, 0, 0}, box("iprp", ipco)...))
	ftyp := box("ftyp", []byte("avif\x00\x00\x00\x00mif1miaf"))
	return append(ftyp, meta...)
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		format image.Format
		w, h   int
	}{
		{"JPEG", testenv.JPEG(t, 64, 48, 1), image.JPEG, 64, 48},
		{"JPEGWithEXIF", testenv.JPEG(t, 64, 48, 6), image.JPEG, 64, 48},
		{"PNG", testenv.PNG(t, 33, 17, 128), image.PNG, 33, 17},
		{"PNGBomb", testenv.PNGHeaderOnly(30000, 30000), image.PNG, 30000, 30000},
		{"WebP", webpVP8L(4096, 4096), image.WebP, 4096, 4096},
		{"GIF", gifFile(16, 8, gifFrame{0, 0, 16, 8}), image.GIF, 16, 8},
		{"AVIF", avifHeader(4032, 3024), image.AVIF, 4032, 3024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := image.Sniff(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatalf("Sniff: %v", err)
			}
			if h.Format != tt.format || h.Width != tt.w || h.Height != tt.h {
				t.Errorf("Sniff = %s %dx%d, want %s %dx%d", h.Format, h.Width, h.Height, tt.format, tt.w, tt.h)
			}
		})
	}
	for name, data := range map[string][]byte{
		"Text":         []byte("hello, this is not an image at all"),
		"SVG":          []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`),
		"PDF":          []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
		"Empty":        nil,
		"TruncatedPNG": testenv.PNG(t, 10, 10, 255)[:20],
	} {
		t.Run("ErrUnsupported_"+name, func(t *testing.T) {
			if _, err := image.Sniff(bytes.NewReader(data)); !errors.Is(err, image.ErrUnsupported) {
				t.Errorf("Sniff = %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := image.Cursor{CreatedAt: time.Date(2026, 11, 27, 4, 5, 6, 123456000, time.UTC), ID: "0196a3f0-0000-7000-8000-000000000001"}
	got, err := image.DecodeCursor(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(c.CreatedAt) || got.ID != c.ID {
		t.Errorf("DecodeCursor(Encode(%v)) = %v", c, got)
	}
	// Positions in year 10000 and before year 1: a tampered cursor.
	year10000 := image.Cursor{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ID: c.ID}.Encode()
	year0 := image.Cursor{CreatedAt: time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), ID: c.ID}.Encode()
	for _, bad := range []string{"!!!", "bm90LWEtY3Vyc29y", "MTIzLm5vdC1hLXV1aWQ", year10000, year0} {
		if _, err := image.DecodeCursor(bad); !errors.Is(err, image.ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	tests := map[string]string{
		"cat.jpg":                   "cat.jpg",
		"../../etc/passwd":          "passwd",
		`C:\Users\me\photo.png`:     "photo.png",
		"a\x00b\nc.jpg":             "abc.jpg",
		"":                          "",
		strings.Repeat("é", 200):    strings.Repeat("é", 127),
		"invoice\u202Egpj.exe":      "invoicegpj.exe", // right-to-left override: shows as "invoiceexe.jpg"
		"a\u2066b\u2069\u200Fc.png": "abc.png",
		"👩\u200D💻.png":              "👩\u200D💻.png", // a zero-width joiner is no bidi control
	}
	for in, want := range tests {
		if got := image.CleanFilename(in); got != want {
			t.Errorf("CleanFilename(%q) = %q, want %q", in, got, want)
		}
	}
}
