// Package imaging makes variants with libvips through bimg. It is the only
// package that uses cgo.
//
// The pipeline decodes the source once: it shrinks it to the largest
// variant (with shrink-on-load where the format allows) into an uncompressed
// TIFF intermediate, applies the EXIF orientation to that small image, and
// derives every encoded variant from it. Three independent resizes would
// decode the source three times, which is the cost to avoid.
package imaging

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/image"
)

// Config holds the output settings.
type Config struct {
	JPEGQuality int
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config { return Config{JPEGQuality: 82} }

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
		bimg.Initialize()
		bimg.VipsCacheSetMax(0)
		bimg.VipsCacheSetMaxMem(0)
	})
	return &Resizer{cfg: cfg}
}

// VipsVersion is the libvips version in use.
func VipsVersion() string { return bimg.VipsVersion }

// Resize implements image.Resizer.
func (r *Resizer) Resize(_ context.Context, src []byte, specs []image.Spec) ([]image.Rendition, error) {
	meta, err := bimg.NewImage(src).Metadata()
	if err != nil {
		return nil, undecodable(err)
	}
	w, h := meta.Size.Width, meta.Size.Height
	if w < 1 || h < 1 {
		return nil, undecodable(fmt.Errorf("empty image %dx%d", w, h))
	}
	orient := meta.Orientation
	if orient < 1 || orient > 8 {
		orient = 1
	}
	// Orientations 5 to 8 swap the axes: the upright image is h x w.
	uw, uh := w, h
	if orient >= 5 {
		uw, uh = h, w
	}

	largest := specs[0]
	for _, s := range specs[1:] {
		if s.Width*s.Height > largest.Width*largest.Height {
			largest = s
		}
	}
	fw, fh := largest.Fit(uw, uh)
	if orient >= 5 {
		fw, fh = fh, fw // back to the stored (unrotated) axes
	}

	// One decode: the source shrunk to the largest variant, lossless.
	shrink := scaleTo(w, h, fw, fh)
	shrink.NoAutoRotate, shrink.Type = true, bimg.TIFF
	inter, err := bimg.Resize(src, shrink)
	if err != nil {
		return nil, undecodable(err)
	}
	// Rotate the small intermediate, not the full-size source.
	if rot, flip := orientation(orient); rot != bimg.D0 || flip {
		inter, err = bimg.Resize(inter, bimg.Options{Rotate: rot, Flip: flip, NoAutoRotate: true, Type: bimg.TIFF})
		if err != nil {
			return nil, fmt.Errorf("orient: %w", err)
		}
	}
	isize, err := bimg.NewImage(inter).Size()
	if err != nil {
		return nil, fmt.Errorf("intermediate size: %w", err)
	}

	outType, contentType, ext := bimg.JPEG, "image/jpeg", "jpg"
	if meta.Alpha {
		outType, contentType, ext = bimg.PNG, "image/png", "png"
	}
	out := make([]image.Rendition, 0, len(specs))
	for _, s := range specs {
		vw, vh := s.Fit(isize.Width, isize.Height)
		opts := scaleTo(isize.Width, isize.Height, vw, vh)
		opts.Type, opts.Quality, opts.StripMetadata = outType, r.cfg.JPEGQuality, true
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

// orientation maps an EXIF orientation to the clockwise rotation and the
// horizontal mirror (applied after it) that make the image upright.
func orientation(o int) (bimg.Angle, bool) {
	switch o {
	case 2:
		return bimg.D0, true
	case 3:
		return bimg.D180, false
	case 4:
		return bimg.D180, true
	case 5:
		return bimg.D90, true
	case 6:
		return bimg.D90, false
	case 7:
		return bimg.D270, true
	case 8:
		return bimg.D270, false
	}
	return bimg.D0, false
}

func undecodable(err error) error {
	return fmt.Errorf("%w: %v", image.ErrUndecodable, err)
}
