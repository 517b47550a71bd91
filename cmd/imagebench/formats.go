package main

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// formatSets are the VARIANT_FORMATS the formats table compares, each
// against the JPEG-only pipeline.
var formatSets = [][]image.Format{
	{image.FormatJPEG},
	{image.FormatJPEG, image.FormatWebP},
	{image.FormatJPEG, image.FormatWebP, image.FormatAVIF},
}

// formatsRun prints, per source and format set, the CPU seconds of the
// whole pipeline (decode, resize, every encode, the placeholder) against
// JPEG alone, and the bytes of each format's three variants with the PSNR
// of its 2048 variant. The sets are measured in turns, so that the
// machine's other load falls on all of them alike. webpQualities add rows
// of jpeg,webp at other WebP qualities than the default. Photos are the
// sources when photoDir has JPEGs of 8 MP or more (a real phone photo
// compresses unlike a generated one); the generated 12 MP JPEG is always
// measured.
func formatsRun(iters int, photoDir string, webpQualities []int) error {
	base := image.NewDefaultConfig()
	fmt.Printf("\nformats: CPU s per image for every variant in every format of a set, against jpeg alone (median of %d, in turns; "+
		"WEBP_EFFORT %d, AVIF_EFFORT %d, JPEG_QUALITY %d, WEBP_QUALITY %d, AVIF_QUALITY %d)\n",
		iters, base.WebPEffort, base.AVIFEffort, base.Quality, base.WebPQuality, base.AVIFQuality)
	sources := []source{{"JPEG 12 MP generated", testenv.PhotoJPEG(4000, 3000)}}
	if photoDir != "" {
		paths, _ := filepath.Glob(filepath.Join(photoDir, "*.jpg"))
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			size, err := bimg.NewImage(data).Size()
			if err != nil || size.Width*size.Height < 8_000_000 {
				continue
			}
			sources = append(sources, source{fmt.Sprintf("%s %dx%d", filepath.Base(p), size.Width, size.Height), data})
		}
	}
	type row struct {
		name string
		cfg  image.Config
	}
	var rows []row
	for _, set := range formatSets {
		cfg := base
		cfg.Formats = set
		rows = append(rows, row{formatNames(set), cfg})
	}
	for _, q := range webpQualities {
		cfg := base
		cfg.Formats, cfg.WebPQuality = []image.Format{image.FormatJPEG, image.FormatWebP}, q
		rows = append(rows, row{fmt.Sprintf("jpeg,webp q%d", q), cfg})
	}
	fmt.Printf("%-44s %-16s %8s %7s  %s\n", "source", "formats", "P cpu s", "x jpeg", "bytes of the three variants (PSNR dB of the 2048 one)")
	for _, src := range sources {
		// The reference the PSNR is measured against: the 2048 variant as
		// a JPEG at quality 100 without chroma subsampling (about 50 dB
		// from the pixels before encoding).
		refCfg := base
		refCfg.Formats, refCfg.Quality = []image.Format{image.FormatJPEG}, 100
		refs, err := imaging.New(imaging.FromImage(refCfg)).Resize(context.Background(), src.data, specs)
		if err != nil {
			return err
		}
		ref := decodeRGB(refs[2].Data)
		results := make([]image.Rendering, len(rows))
		fns := make([]func() error, len(rows))
		for i, r := range rows {
			resizer := imaging.New(imaging.FromImage(r.cfg))
			fns[i] = func() error {
				var err error
				results[i], err = resizer.Render(context.Background(), src.data, specs)
				return err
			}
		}
		rs := measure(iters, fns)
		for i, r := range rows {
			if rs[i].err != nil {
				return fmt.Errorf("%s %s: %w", src.name, r.name, rs[i].err)
			}
			fmt.Printf("%-44s %-16s %8.3f %7.2f  %s\n", src.name, r.name, rs[i].cpu, rs[i].cpu/rs[0].cpu, sizes(results[i], ref))
		}
	}
	return nil
}

func formatNames(set []image.Format) string {
	names := make([]string, len(set))
	for i, f := range set {
		names[i] = string(f)
	}
	return strings.Join(names, ",")
}

// sizes sums each format's bytes over the variants and gives the PSNR of
// its largest variant against ref.
func sizes(res image.Rendering, ref *stdimage.NRGBA) string {
	total := map[image.Format]int{}
	var order []image.Format
	largest := map[image.Format][]byte{}
	for _, r := range res.Renditions {
		if _, ok := total[r.Format]; !ok {
			order = append(order, r.Format)
		}
		total[r.Format] += len(r.Data)
		if r.Name == "large" {
			largest[r.Format] = r.Data
		}
	}
	var parts []string
	for _, f := range order {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f)", f, total[f], psnr(ref, decodeRGB(largest[f]))))
	}
	return strings.Join(parts, ", ")
}

// decodeRGB decodes an encoded image through libvips (Go reads neither
// WebP lossy with alpha nor AVIF) into NRGBA; nil when it cannot.
func decodeRGB(enc []byte) *stdimage.NRGBA {
	b, err := bimg.NewImage(enc).Convert(bimg.PNG)
	if err != nil {
		return nil
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out := stdimage.NewNRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out
}

// psnr is the peak signal-to-noise ratio of b against a over the colour
// samples, in dB.
func psnr(a, b *stdimage.NRGBA) float64 {
	if a == nil || b == nil || a.Bounds() != b.Bounds() {
		return math.NaN()
	}
	var sum float64
	n := 0
	for i := 0; i < len(a.Pix); i += 4 {
		for c := range 3 {
			d := float64(a.Pix[i+c]) - float64(b.Pix[i+c])
			sum += d * d
			n++
		}
	}
	if sum == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(sum/float64(n)))
}
