package sniff_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// gifFrame is the position and size an image descriptor declares.
type gifFrame struct{ left, top, w, h int }

// gifFile builds a GIF89a with a two-colour global table, a w x h logical
// screen and one image descriptor per frame, each followed by one byte of
// LZW data: enough for any header reader, which is what is under test.
func gifFile(w, h int, frames ...gifFrame) []byte {
	u16 := func(b []byte, v int) []byte { return binary.LittleEndian.AppendUint16(b, uint16(v)) }
	b := []byte("GIF89a")
	b = u16(u16(b, w), h)
	b = append(b, 0x80, 0, 0)             // global colour table of 2 entries, background, aspect
	b = append(b, 0, 0, 0, 255, 255, 255) // black, white
	for _, f := range frames {
		b = append(b, 0x2C)
		b = u16(u16(u16(u16(b, f.left), f.top), f.w), f.h)
		b = append(b, 0)             // no local colour table
		b = append(b, 2, 1, 0x44, 0) // LZW minimum code size, one sub-block of one byte, terminator
	}
	return append(b, 0x3B)
}

func TestSniffGIF(t *testing.T) {
	tests := []struct {
		name         string
		data         []byte
		w, h, frames int
	}{
		{"FramesInsideScreen", gifFile(100, 80, gifFrame{5, 5, 20, 10}, gifFrame{0, 0, 100, 80}), 100, 80, 2},
		{"FrameAtOffsetGrowsCanvas", gifFile(100, 80, gifFrame{0, 0, 100, 80}, gifFrame{90, 70, 20, 30}), 110, 100, 2},
		{"FrameLargerThanScreen", gifFile(1, 1, gifFrame{0, 0, 300, 200}), 300, 200, 1},
		{"ZeroScreen", gifFile(0, 0, gifFrame{0, 0, 30, 20}), 30, 20, 1},
		{"TruncatedAfterFirstFrame", gifFile(50, 40, gifFrame{0, 0, 50, 40}, gifFrame{0, 0, 60, 40})[:13+6+10+4+5], 50, 40, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := sniff.Sniff(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatalf("Sniff: %v", err)
			}
			if h.Width != tt.w || h.Height != tt.h || h.Frames != tt.frames {
				t.Errorf("Sniff = %dx%d x %d frames, want %dx%d x %d", h.Width, h.Height, h.Frames, tt.w, tt.h, tt.frames)
			}
		})
	}
	for name, data := range map[string][]byte{
		"ZeroWidthFrame":  gifFile(10, 10, gifFrame{0, 0, 10, 10}, gifFrame{0, 0, 0, 10}),
		"ZeroHeightFrame": gifFile(10, 10, gifFrame{0, 0, 10, 0}),
		"NoFrame":         gifFile(16, 8),
		"CutInDescriptor": gifFile(16, 8, gifFrame{0, 0, 16, 8})[:13+6+5],
		"BadBlock":        append(gifFile(16, 8, gifFrame{0, 0, 16, 8})[:13+6+10+4], 0x99),
	} {
		t.Run("ErrUnsupported_"+name, func(t *testing.T) {
			if h, err := sniff.Sniff(bytes.NewReader(data)); !errors.Is(err, sniff.ErrUnsupported) {
				t.Errorf("Sniff = %+v, %v, want ErrUnsupported", h, err)
			}
		})
	}
}

func TestInspectGIFBomb(t *testing.T) {
	// 34 bytes: a 1x1 screen and one 65535x65535 frame. Go's DecodeConfig
	// reports 1x1; libvips grows its canvas to the frame.
	bomb := gifFile(1, 1, gifFrame{0, 0, 65535, 65535})
	if len(bomb) != 34 {
		t.Fatalf("the bomb is %d bytes, want 34", len(bomb))
	}
	_, err := sniff.Inspect(bytes.NewReader(bomb), sniff.DefaultAcceptedTypes, 40_000_000)
	if !errors.Is(err, sniff.ErrTooManyPixels) || failure.KindOf(err) != failure.Unprocessable {
		t.Errorf("Inspect(1x1 screen, 65535x65535 frame) = %v, want ErrTooManyPixels", err)
	}
	t.Run("CanvasTimesFrames", func(t *testing.T) {
		// Two frames of a 110x100 canvas: 22000 pixels. The screen alone
		// (100x80, 16000) would pass a limit of 20000.
		g := gifFile(100, 80, gifFrame{0, 0, 100, 80}, gifFrame{90, 70, 20, 30})
		if _, err := sniff.Inspect(bytes.NewReader(g), sniff.DefaultAcceptedTypes, 20_000); !errors.Is(err, sniff.ErrTooManyPixels) {
			t.Errorf("Inspect(2 frames on a 110x100 canvas, limit 20000) = %v, want ErrTooManyPixels", err)
		}
		if _, err := sniff.Inspect(bytes.NewReader(g), sniff.DefaultAcceptedTypes, 22_000); err != nil {
			t.Errorf("Inspect(2 frames on a 110x100 canvas, limit 22000) = %v, want nil", err)
		}
	})
}
