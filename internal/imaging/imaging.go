// Package imaging makes variants with libvips. It is the only package that
// uses cgo.
//
// The pipeline decodes the source once: one libvips thumbnail call shrinks
// it to the largest variant (with shrink-on-load where the format allows),
// turns it upright after the shrink and converts it to sRGB through its ICC
// profile, into an uncompressed TIFF intermediate; bimg derives every
// encoded variant from that. Three independent resizes would decode the
// source three times, which is the cost to avoid. bimg alone cannot apply an
// embedded ICC profile (a CMYK or Display P3 photo would come out with wrong
// colours) and rotates before it shrinks, so the intermediate step calls
// libvips directly (vips.go); the encoding stays with bimg.
package imaging

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/image"
)

// Config holds the output settings.
type Config struct {
	// OutputFormat is auto (JPEG for opaque sources, PNG for sources with
	// alpha), jpeg (alpha flattened on white), webp or avif (alpha kept).
	OutputFormat string
	// JPEGQuality is the quality of JPEG, WebP and AVIF variants.
	JPEGQuality int
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config { return Config{OutputFormat: "auto", JPEGQuality: 82} }

// Validate reports every invalid setting at once, including an output
// format the libvips of this machine cannot write.
func (c Config) Validate() error {
	var errs []error
	switch c.OutputFormat {
	case "auto", "jpeg":
	case "webp", "avif":
		t := map[string]bimg.ImageType{"webp": bimg.WEBP, "avif": bimg.AVIF}[c.OutputFormat]
		if !bimg.IsTypeSupportedSave(t) {
			errs = append(errs, fmt.Errorf("OUTPUT_FORMAT %s: the libvips here cannot write it", c.OutputFormat))
		}
	default:
		errs = append(errs, fmt.Errorf("OUTPUT_FORMAT must be auto, jpeg, webp or avif"))
	}
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		errs = append(errs, fmt.Errorf("JPEG_QUALITY must be between 1 and 100"))
	}
	return errors.Join(errs...)
}

// output returns the encoding of the variants of a source.
func (c Config) output(alpha bool) (t bimg.ImageType, contentType, ext string) {
	switch {
	case c.OutputFormat == "webp":
		return bimg.WEBP, "image/webp", "webp"
	case c.OutputFormat == "avif":
		return bimg.AVIF, "image/avif", "avif"
	case alpha && c.OutputFormat == "auto":
		return bimg.PNG, "image/png", "png"
	}
	return bimg.JPEG, "image/jpeg", "jpg"
}

// Resizer implements image.Resizer.
type Resizer struct {
	cfg Config
}

var _ image.Resizer = (*Resizer)(nil)

var initOnce sync.Once

// New returns a Resizer. It starts libvips once per process and turns off
// its operation cache, which only grows memory for a service that never
// sees the same input twice.
func New(cfg Config) *Resizer {
	initOnce.Do(func() {
		limitArenas()
		bimg.Initialize()
		bimg.VipsCacheSetMax(0)
		bimg.VipsCacheSetMaxMem(0)
		blockUntrusted()
	})
	return &Resizer{cfg: cfg}
}

// pngCompression is the zlib level of PNG variants.
const pngCompression = 2

// VipsVersion is the libvips version in use.
func VipsVersion() string { return bimg.VipsVersion }

// Resize implements image.Resizer.
func (r *Resizer) Resize(_ context.Context, src []byte, specs []image.Spec) ([]image.Rendition, error) {
	meta, err := bimg.NewImage(src).Metadata()
	if err != nil {
		return nil, undecodable(err)
	}
	if meta.Size.Width < 1 || meta.Size.Height < 1 {
		return nil, undecodable(fmt.Errorf("empty image %dx%d", meta.Size.Width, meta.Size.Height))
	}
	largest := specs[0]
	for _, s := range specs[1:] {
		if s.Width*s.Height > largest.Width*largest.Height {
			largest = s
		}
	}
	// One decode: the source shrunk to the largest variant, upright, sRGB.
	inter, err := shrinkToTIFF(src, largest.Width, largest.Height, meta.Profile || meta.Space == "cmyk")
	if err != nil {
		return nil, undecodable(err)
	}
	isize, err := bimg.NewImage(inter).Size()
	if err != nil {
		return nil, fmt.Errorf("intermediate size: %w", err)
	}

	outType, contentType, ext := r.cfg.output(meta.Alpha)
	out := make([]image.Rendition, 0, len(specs))
	for _, s := range specs {
		vw, vh := s.Fit(isize.Width, isize.Height)
		opts := scaleTo(isize.Width, isize.Height, vw, vh)
		opts.Type, opts.Quality, opts.StripMetadata = outType, r.cfg.JPEGQuality, true
		// zlib level 6 (bimg's default) made the variants of a 12 MP RGBA
		// PNG cost 2.0 CPU-s, nine decodes' worth; level 2 costs 0.9 for
		// files 13% larger (measured with make bench, see the README).
		opts.Compression = pngCompression
		if outType == bimg.JPEG && meta.Alpha {
			opts.Background = bimg.Color{R: 255, G: 255, B: 255} // flatten on white, not black
		}
		opts.NoAutoRotate, opts.Interpretation = true, bimg.InterpretationSRGB
		start := time.Now()
		data, err := bimg.Resize(inter, opts)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", s.Name, err)
		}
		out = append(out, image.Rendition{
			Name: s.Name, Width: vw, Height: vh, ContentType: contentType, Ext: ext, Data: data,
			EncodeTime: time.Since(start),
		})
	}
	return out, nil
}

// scaleTo returns the options that scale a w x h image to exactly ow x oh
// (a size that Spec.Fit computed, so the aspect ratio is kept; bimg's own
// fitting would stretch with both sides set). The empty options when the
// size does not change.
//
// bimg first shrinks both axes by the same integer factor, which collapses
// the short side of a thin strip (2x3000 to 1x300) to nothing; zooming the
// strip up first by that factor keeps it at least one pixel wide.
func scaleTo(w, h, ow, oh int) bimg.Options {
	if ow == w && oh == h {
		return bimg.Options{}
	}
	o := bimg.Options{Width: ow, Height: oh, Force: true}
	factor := max(float64(w)/float64(ow), float64(h)/float64(oh))
	if factor >= 2 && float64(min(w, h)) < factor {
		o.Zoom = int(math.Ceil(factor))
	}
	return o
}

func undecodable(err error) error {
	return fmt.Errorf("%w: %v", image.ErrUndecodable, err)
}
