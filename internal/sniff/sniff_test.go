package sniff_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

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
		format sniff.Format
		w, h   int
	}{
		{"JPEG", testenv.JPEG(t, 64, 48, 1), sniff.JPEG, 64, 48},
		{"JPEGWithEXIF", testenv.JPEG(t, 64, 48, 6), sniff.JPEG, 64, 48},
		{"PNG", testenv.PNG(t, 33, 17, 128), sniff.PNG, 33, 17},
		{"PNGBomb", testenv.PNGHeaderOnly(30000, 30000), sniff.PNG, 30000, 30000},
		{"WebP", webpVP8L(4096, 4096), sniff.WebP, 4096, 4096},
		{"GIF", gifFile(16, 8, gifFrame{0, 0, 16, 8}), sniff.GIF, 16, 8},
		{"AVIF", avifHeader(4032, 3024), sniff.AVIF, 4032, 3024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := sniff.Sniff(bytes.NewReader(tt.data))
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
			if _, err := sniff.Sniff(bytes.NewReader(data)); !errors.Is(err, sniff.ErrUnsupported) {
				t.Errorf("Sniff = %v, want ErrUnsupported", err)
			}
		})
	}
}
