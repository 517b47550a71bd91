package main

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// hostileRun puts the largest and most expensive sources an upload can
// carry through a worker's checks and pipeline, two at once as a worker at
// concurrency 2 would, and prints per case the result, the CPU and wall
// time, and the process's peak RSS during the case (the peak is reset
// before each case through /proc/self/clear_refs). The goal is a peak
// under 600 MB for every case and no case costing more than a few
// CPU-seconds.
func hostileRun() error {
	cfg := image.NewDefaultConfig()
	side := 7070 // 7070 x 7070: about the most pixels MAX_PIXELS (50 MP) lets through (HEVC wants even sides)
	tb := &benchTB{}
	defer func() {
		if tb.tempDir != "" {
			os.RemoveAll(tb.tempDir)
		}
	}()
	// Sources within MAX_UPLOAD_BYTES (25 MiB): a photograph's detail does
	// not fit 50 MP into that as PNG or GIF, so those are flat, which
	// costs the decoder the same memory.
	photoJPEG := func() []byte { return jpegOf(testenv.Photo(side, side, false)) }
	cases := []struct {
		name string
		data func() []byte
	}{
		{"JPEG 50 MP", photoJPEG},
		{"JPEG 50 MP progressive", func() []byte { return testenv.VipsSave(tb, photoJPEG(), "jpg", "[interlace,Q=75]") }},
		{"JPEG 50 MP grey, 100 scans (the limit)", func() []byte { return testenv.ManyScansJPEG(tb, flat(side), sniff.MaxJPEGScans) }},
		{"JPEG 50 MP grey, 6000 empty scans", func() []byte { return testenv.ManyScansJPEG(tb, flat(side), 6000) }},
		{"PNG 50 MP RGBA", func() []byte { return pngOf(testenv.Canvas(side, side, 200)) }},
		{"PNG 50 MP RGBA 16-bit", func() []byte { return png16Of(testenv.Canvas(side, side, 200)) }},
		{"WebP 50 MP", func() []byte { return testenv.VipsSave(tb, photoJPEG(), "webp", "[Q=75,effort=0]") }},
		{"GIF 50 MP, one frame", func() []byte { return gifOf(side) }},
		{"GIF bomb: 1x1 screen, 65535x65535 frame", testenv.GIFBomb},
		{"AVIF 50 MP", func() []byte { return testenv.VipsSave(tb, photoJPEG(), "avif", "[Q=50,effort=0]") }},
		{"HEIC 50 MP", func() []byte { return testenv.VipsSave(tb, photoJPEG(), "heic", "[Q=50,effort=0]") }},
	}
	// Made first and kept in files, so that the measured process holds only
	// the source, as a worker holds a fetched original.
	files := make([]string, len(cases))
	for i, c := range cases {
		files[i] = fmt.Sprintf("%s/hostile-%d", tb.TempDir(), i)
		if err := os.WriteFile(files[i], c.data(), 0o600); err != nil {
			return err
		}
		runtime.GC()
	}

	fmt.Printf("\nhostile sources at MAX_PIXELS %d and MAX_UPLOAD_BYTES %d, two at once (a worker at concurrency 2)\n",
		cfg.MaxPixels, cfg.MaxUploadBytes)
	fmt.Printf("%-44s %10s %-16s %7s %7s %8s\n", "source", "bytes", "result", "cpu s", "wall s", "peak MB")
	resizer := imaging.New(imaging.NewDefaultConfig())
	for i, c := range cases {
		src, err := os.ReadFile(files[i])
		if err != nil {
			return err
		}
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		cpu0, start := cpuTime(), time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k := range 2 {
			wg.Go(func() {
				// What a worker does with a fetched original: the upload's
				// checks again, then the pipeline.
				if _, err := sniff.InspectBytes(src, cfg.AcceptedTypes, cfg.MaxPixels); err != nil {
					errs[k] = err
					return
				}
				_, errs[k] = resizer.Resize(context.Background(), src, specs)
			})
		}
		wg.Wait()
		result := "done"
		if errs[0] != nil {
			if result = failure.CodeOf(errs[0]); result == "" {
				result = "error: " + errs[0].Error()
			}
		}
		if int64(len(src)) > cfg.MaxUploadBytes {
			result += " (too large to upload)"
		}
		fmt.Printf("%-44s %10d %-16s %7.2f %7.2f %8d\n", c.name, len(src), result,
			cpuTime()-cpu0, time.Since(start).Seconds(), peakRSS()>>20)
	}
	return nil
}

// resetPeakRSS starts the kernel's peak RSS count (VmHWM) again from the
// current RSS.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM from /proc/self/status.
func peakRSS() int64 { return statusKB("VmHWM:") }

func flat(side int) *stdimage.NRGBA {
	return testenv.Canvas(side, side, 255)
}

func jpegOf(img *stdimage.NRGBA) []byte {
	return testenv.CJPEG(&benchTB{}, img, "2x2", 90) // cjpeg: Go's encoder takes longer
}

func pngOf(img stdimage.Image) []byte {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func png16Of(img *stdimage.NRGBA) []byte {
	b := img.Bounds()
	deep := stdimage.NewNRGBA64(b)
	for i := 0; i < len(img.Pix); i += 4 {
		for k := range 4 {
			v := uint16(img.Pix[i+k])<<8 | uint16(img.Pix[i+k])
			deep.Pix[2*(i+k)], deep.Pix[2*(i+k)+1] = byte(v>>8), byte(v)
		}
	}
	return pngOf(deep)
}

func gifOf(side int) []byte {
	pal := make(color.Palette, 256)
	for i := range pal {
		pal[i] = color.RGBA{uint8(i), uint8(255 - i), uint8(i * 7), 255}
	}
	fr := stdimage.NewPaletted(stdimage.Rect(0, 0, side, side), pal)
	for i := range fr.Pix {
		fr.Pix[i] = uint8((i*31 + i/side*13) % 256)
	}
	var buf bytes.Buffer
	if err := gif.Encode(&buf, fr, nil); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// benchTB lets testenv's image makers run outside a test: a failure to
// make a source ends the benchmark with its message.
type benchTB struct {
	testing.TB // nil: only the methods below are called
	tempDir    string
}

func (b *benchTB) Helper()                           {}
func (b *benchTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (b *benchTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (b *benchTB) TempDir() string {
	if b.tempDir == "" {
		var err error
		if b.tempDir, err = os.MkdirTemp("", "imagebench"); err != nil {
			panic(err)
		}
	}
	return b.tempDir
}
