package sniff_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	stdimage "image"
	"image/color"
	"image/gif"
	"testing"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

func animatedGIF(t testing.TB, w, h, frames int) []byte {
	g := &gif.GIF{}
	for i := range frames {
		fr := stdimage.NewPaletted(stdimage.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
		fr.SetColorIndex(i%w, 0, 1)
		g.Image, g.Delay = append(g.Image, fr), append(g.Delay, 5)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// apng inserts an acTL chunk claiming frames frames after the IHDR of a PNG.
func apng(t testing.TB, frames uint32) []byte {
	p := testenv.PNG(t, 40, 30, 255)
	ihdrEnd := 8 + 8 + 13 + 4
	chunk := make([]byte, 8+8+4)
	binary.BigEndian.PutUint32(chunk[0:], 8)
	copy(chunk[4:], "acTL")
	binary.BigEndian.PutUint32(chunk[8:], frames)
	out := append([]byte{}, p[:ihdrEnd]...)
	out = append(out, chunk...) // the CRC is not checked by a header reader
	return append(out, p[ihdrEnd:]...)
}

// animatedWebP builds an extended WebP with n ANMF frame chunks.
func animatedWebP(w, h, n int) []byte {
	var body bytes.Buffer
	body.WriteString("WEBP")
	vp8x := make([]byte, 10)
	vp8x[0] = 0x02 // animation
	putUint24 := func(b []byte, v int) { b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16) }
	putUint24(vp8x[4:], w-1)
	putUint24(vp8x[7:], h-1)
	chunk := func(typ string, data []byte) {
		body.WriteString(typ)
		binary.Write(&body, binary.LittleEndian, uint32(len(data)))
		body.Write(data)
		if len(data)%2 == 1 {
			body.WriteByte(0)
		}
	}
	chunk("VP8X", vp8x)
	chunk("ANIM", make([]byte, 6))
	for range n {
		chunk("ANMF", make([]byte, 17))
	}
	var out bytes.Buffer
	out.WriteString("RIFF")
	binary.Write(&out, binary.LittleEndian, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

func TestFrames(t *testing.T) {
	for _, tt := range []struct {
		name   string
		data   []byte
		frames int
	}{
		{"StillPNG", testenv.PNG(t, 10, 10, 255), 1},
		{"StillJPEG", testenv.JPEG(t, 10, 10, 1), 1},
		{"AnimatedGIF", animatedGIF(t, 20, 10, 7), 7},
		{"APNG", apng(t, 12), 12},
		{"AnimatedWebP", animatedWebP(64, 32, 5), 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := sniff.Sniff(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if h.Frames != tt.frames {
				t.Errorf("Sniff(%s).Frames = %d, want %d", tt.name, h.Frames, tt.frames)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	accepted := sniff.DefaultAcceptedTypes
	t.Run("OK", func(t *testing.T) {
		if _, err := sniff.Inspect(bytes.NewReader(animatedGIF(t, 100, 100, 3)), accepted, 30_000); err != nil {
			t.Errorf("3 frames of 100x100 under 30000 pixels: %v", err)
		}
	})
	t.Run("ErrTooManyPixelsOverAllFrames", func(t *testing.T) {
		_, err := sniff.Inspect(bytes.NewReader(animatedGIF(t, 100, 100, 4)), accepted, 30_000)
		if failure.CodeOf(err) != "too_many_pixels" {
			t.Errorf("4 frames of 100x100 with a limit of 30000: %v, want too_many_pixels", err)
		}
	})
	t.Run("ErrTIFFNotAccepted", func(t *testing.T) {
		tiff := []byte("II*\x00\x08\x00\x00\x00\x00\x00")
		if _, err := sniff.Inspect(bytes.NewReader(tiff), accepted, 1e9); !errors.Is(err, sniff.ErrUnsupported) {
			t.Errorf("a TIFF while TIFF is not accepted: %v, want ErrUnsupported", err)
		}
	})
	t.Run("SaturatingPixels", func(t *testing.T) {
		h := sniff.Header{Width: 1 << 31, Height: 1 << 31, Frames: 1 << 20}
		if h.Pixels() <= 0 {
			t.Errorf("Pixels overflowed to %d", h.Pixels())
		}
	})
}

// FuzzInspect: whatever the bytes, Inspect does not panic, and what it
// accepts is an accepted type within the pixel limit.
func FuzzInspect(f *testing.F) {
	for _, seed := range [][]byte{
		testenv.JPEG(f, 16, 16, 6), testenv.PNG(f, 8, 8, 100), testenv.PNGHeaderOnly(30000, 30000),
		animatedGIF(f, 8, 8, 3), apng(f, 3), animatedWebP(8, 8, 2), webpVP8L(64, 64), avifHeader(100, 100),
		[]byte("GIF89a\x10\x00\x08\x00\x80\x00\x00"), []byte("RIFF\x00\x00\x00\x00WEBPANMF"),
		gifFile(1, 1, gifFrame{0, 0, 65535, 65535}), gifFile(10, 10, gifFrame{5, 5, 10, 10}, gifFrame{0, 0, 0, 3}),
		cjpeg(f, noisePGM(24, 16), "-progressive", "-restart", "1"),
		vipsSave(f, testenv.PNG(f, 40, 30, 255), "avif"), vipsSave(f, testenv.PNG(f, 33, 21, 255), "heic"),
		heicWith([][]byte{hvcCProp(spsNAL(spsOpts{w: 64, h: 48, subLayers: 1, subProfile: []bool{true}, subLevel: []bool{true}})), ispeProp(64, 48), clapProp(63, 1, 47, 1), irotProp(90)}),
		avifWith([][]byte{av1CProp(), ispeProp(64, 48)}, temporalDelimiter, seqHeaderOBU(seqOpts{timing: true, decoderModel: true, delayBits: 5, ops: []seqOp{{level: 8, decoderModel: true}}, wBits: 8, hBits: 8, w: 64, h: 48})),
		heifBytes(heifFile{brand: "heic", primary: 1, props: [][]byte{ispeProp(64, 48)}, iloc: ilocLayout{2, 8, 8, 4, 4}, items: []testItem{
			{id: 1, typ: "grid", props: []int{1}, data: [][]byte{{0, 0, 0, 0, 0, 64, 0, 48}}, inIdat: true}, {id: 2, typ: "iovl", props: []int{1}, data: [][]byte{make([]byte, 16)}}}}),
	} {
		f.Add(seed)
	}
	const limit = 1_000_000
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := sniff.Inspect(bytes.NewReader(data), sniff.DefaultAcceptedTypes, limit)
		if err != nil {
			return
		}
		if h.Width <= 0 || h.Height <= 0 || h.Frames < 1 || h.Pixels() > limit {
			t.Fatalf("accepted %+v over the limit of %d or empty", h, limit)
		}
		if h.Format == sniff.TIFF {
			t.Fatalf("accepted a TIFF while it is not accepted")
		}
	})
}
