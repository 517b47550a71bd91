package image_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
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
