// Package imaging makes variants with libvips. It is the only package that
// uses cgo.
//
// The pipeline decodes the source once into an intermediate held in
// libvips' memory: the source shrunk to the largest variant, upright, sRGB,
// 8 bits. Each variant is then resized from the smallest image already made
// that covers it (300 from 1024, 1024 from 2048) and encoded. Three
// independent resizes would decode the source three times, which is the
// cost to avoid. Each variant is encoded in every configured format from
// the same picture: WebP by libwebp directly (webp.c; a JPEG's planes as
// they are), AVIF by libvips; the smallest picture made gives the
// placeholder (placeholder.go).
//
// The intermediate of a JPEG (YCbCr or greyscale, 8-bit) comes from
// libjpeg-turbo directly (turbo.c), at the smallest DCT scale that covers
// the largest variant; an sRGB YCbCr JPEG (no ICC profile, or an sRGB one)
// whose variants are JPEGs never goes through RGB: its planes are decoded,
// resampled and encoded as they are stored (ycc.c), which halves the
// resampling and skips four conversions. A PNG without a profile or
// orientation is decoded row by row into the same resampler (resample.c,
// through vipsload_streamed). Everything else comes from one
// vips_thumbnail call (vipsload.c). Embedded ICC profiles go through lcms2
// (icc.c); images in memory are rendered, resized and encoded in
// picture.c, whose header says the conventions every C file keeps. Every
// decode runs under a guard (guard.h): the scan limit, and cancellation
// when the task's context ends.
//
// bimg still reads the header (type, size, orientation, profile) and starts
// libvips; its resize pipeline is not used: it cannot apply an embedded ICC
// profile (a CMYK or Display P3 photo would come out with wrong colours),
// rotates before it shrinks, and takes an encoded buffer, so deriving
// variants from one decode through it meant writing and decoding an
// intermediate file per variant. The measurements are in the README's
// Performance section.
package imaging

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/h2non/bimg"
	"golang.org/x/sync/semaphore"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// Config holds the output settings.
type Config struct {
	// OutputFormat is auto (JPEG for opaque sources, PNG for sources with
	// alpha), jpeg (alpha flattened on white), webp or avif (alpha kept).
	OutputFormat string
	// Formats are the formats of every variant: FormatJPEG is the base,
	// which OutputFormat decides; WebP and AVIF are made besides it.
	Formats []image.Format
	// JPEGQuality, WebPQuality and AVIFQuality are the qualities of the
	// variants in each format.
	JPEGQuality int
	WebPQuality int
	AVIFQuality int
	// WebPEffort is libwebp's method (0 fastest, 6 smallest), AVIFEffort
	// libvips' AVIF effort (0 fastest, 9 smallest).
	WebPEffort int
	AVIFEffort int
	// MaxPixels is the largest source (width x height of the frame
	// decoded) the worker decodes, checked on the header libvips reads:
	// the upload checked it too, but on its own reading of the header.
	MaxPixels int64
	// MaxScans is the most scans a progressive JPEG may have.
	MaxScans int
	// DecodeMemory bounds the memory the decodes of one process may hold
	// at once, by the estimate decodeMemory makes for each source: two
	// 50 MP AVIFs at once took a worker to 770 MB. A source estimated
	// above it runs alone.
	DecodeMemory int64
}

// NewDefaultConfig returns the defaults, those of image.NewDefaultConfig.
func NewDefaultConfig() Config { return FromImage(image.NewDefaultConfig()) }

// FromImage returns the settings of the variants and limits of the domain's
// configuration.
func FromImage(c image.Config) Config {
	return Config{OutputFormat: c.OutputFormat, Formats: c.Formats, JPEGQuality: c.Quality, WebPQuality: c.WebPQuality, AVIFQuality: c.AVIFQuality,
		WebPEffort: c.WebPEffort, AVIFEffort: c.AVIFEffort, MaxPixels: c.MaxPixels,
		MaxScans: sniff.MaxJPEGScans, DecodeMemory: c.DecodeMemory}
}

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
	for _, f := range c.Formats {
		t := map[image.Format]bimg.ImageType{image.FormatWebP: bimg.WEBP, image.FormatAVIF: bimg.AVIF}[f]
		if t != bimg.UNKNOWN && !bimg.IsTypeSupportedSave(t) {
			errs = append(errs, fmt.Errorf("VARIANT_FORMATS %s: the libvips here cannot write it", f))
		}
	}
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		errs = append(errs, fmt.Errorf("JPEG_QUALITY must be between 1 and 100"))
	}
	if c.AVIFQuality < 1 || c.AVIFQuality > 100 || c.WebPQuality < 1 || c.WebPQuality > 100 {
		errs = append(errs, fmt.Errorf("WEBP_QUALITY and AVIF_QUALITY must be between 1 and 100"))
	}
	if c.WebPEffort < 0 || c.WebPEffort > 6 || c.AVIFEffort < 0 || c.AVIFEffort > 9 {
		errs = append(errs, fmt.Errorf("WEBP_EFFORT must be between 0 and 6, AVIF_EFFORT between 0 and 9"))
	}
	if c.MaxPixels < 1 || c.MaxScans < 1 {
		errs = append(errs, fmt.Errorf("the pixel and scan limits must be positive"))
	}
	if c.DecodeMemory < 64<<20 {
		errs = append(errs, fmt.Errorf("WORKER_DECODE_MEMORY_MB must be at least 64"))
	}
	return errors.Join(errs...)
}

// output returns the base encoding of the variants of a source.
func (c Config) output(alpha bool) encoding {
	switch {
	case c.OutputFormat == "webp":
		return c.encoding(image.FormatWebP)
	case c.OutputFormat == "avif":
		return c.encoding(image.FormatAVIF)
	case alpha && c.OutputFormat == "auto":
		return c.encoding(image.FormatPNG)
	}
	return c.encoding(image.FormatJPEG)
}

// outputs returns the encodings of the variants of a source: the base,
// then each other format configured.
func (c Config) outputs(alpha bool) []encoding {
	base := c.output(alpha)
	out := []encoding{base}
	for _, f := range c.Formats {
		if f != image.FormatJPEG && f != base.format {
			out = append(out, c.encoding(f))
		}
	}
	return out
}

// encoding is how variants are encoded in one format.
type encoding struct {
	format  image.Format
	out     int // outJPEG…
	quality int
	effort  int
}

func (c Config) encoding(f image.Format) encoding {
	switch f {
	case image.FormatWebP:
		return encoding{f, outWebP, c.WebPQuality, c.WebPEffort}
	case image.FormatAVIF:
		return encoding{f, outAVIF, c.AVIFQuality, c.AVIFEffort}
	case image.FormatPNG:
		return encoding{f, outPNG, 0, 0}
	}
	return encoding{image.FormatJPEG, outJPEG, c.JPEGQuality, 0}
}

// Resizer implements image.Resizer.
type Resizer struct {
	cfg    Config
	memory *semaphore.Weighted // Config.DecodeMemory, in bytes
}

var _ image.Resizer = (*Resizer)(nil)

var initOnce sync.Once

// New returns a Resizer. It starts libvips once per process and turns off
// its operation cache, which only grows memory for a service that never
// sees the same input twice.
func New(cfg Config) *Resizer {
	initOnce.Do(func() {
		tuneMalloc()
		bimg.Initialize()
		bimg.VipsCacheSetMax(0)
		bimg.VipsCacheSetMaxMem(0)
		blockUntrusted()
	})
	return &Resizer{cfg: cfg, memory: semaphore.NewWeighted(cfg.DecodeMemory)}
}

// decodeMemory estimates the most memory the pipeline holds for a source,
// from the peaks make bench -hostile measured on 50 MP sources: JPEGs
// stream, but a progressive one keeps its coefficients (3 bytes a pixel);
// PNGs stream (1); libwebp decodes at the shrunk size (2); a GIF frame is
// composed on a full RGBA canvas (5); libheif decodes HEIF and AVIF whole,
// to YCbCr and then RGB (8). Others (TIFF) are taken as 4.
func decodeMemory(meta bimg.ImageMetadata) int64 {
	perPixel := map[string]int64{"jpeg": 3, "png": 1, "webp": 2, "gif": 5, "heif": 8, "avif": 8}[meta.Type]
	if perPixel == 0 {
		perPixel = 4
	}
	return int64(meta.Size.Width) * int64(meta.Size.Height) * perPixel
}

// pngCompression is the zlib level of PNG variants. Level 6 (libvips'
// default) made the variants of a 12 MP RGBA PNG cost 2.0 CPU-s, nine
// decodes' worth; level 2 cost 0.9 for files 13% larger (make bench, see
// the README).
const pngCompression = 2

// VipsVersion is the libvips version in use.
func VipsVersion() string { return bimg.VipsVersion }

// Render implements image.Resizer: every variant in every configured
// format, from one decode, and the placeholder. A source that is corrupt,
// over the pixel limit or a JPEG with too many scans fails for good (an
// error wrapping image.ErrUndecodable, ErrTooManyPixels or ErrTooComplex);
// when ctx ends, the decode stops within a few rows and Render returns
// ctx's error.
func (r *Resizer) Render(ctx context.Context, src []byte, specs []image.Spec) (image.Rendering, error) {
	return r.render(ctx, src, specs, true)
}

// Resize returns the variants in their base format alone, without a
// placeholder: what the pipeline made before formats, which its tests
// and benchmark measure.
func (r *Resizer) Resize(ctx context.Context, src []byte, specs []image.Spec) ([]image.Rendition, error) {
	res, err := r.render(ctx, src, specs, false)
	return res.Renditions, err
}

// render makes the variants: in every format and with the placeholder when
// all, else in the base format alone.
func (r *Resizer) render(ctx context.Context, src []byte, specs []image.Spec, all bool) (res image.Rendering, _ error) {
	meta, err := bimg.NewImage(src).Metadata()
	if err != nil {
		return res, undecodable(err)
	}
	if meta.Size.Width < 1 || meta.Size.Height < 1 {
		return res, undecodable(fmt.Errorf("empty image %dx%d", meta.Size.Width, meta.Size.Height))
	}
	if px := int64(meta.Size.Width) * int64(meta.Size.Height); px > r.cfg.MaxPixels {
		return res, fmt.Errorf("%w: libvips reads %dx%d", image.ErrTooManyPixels, meta.Size.Width, meta.Size.Height)
	}
	largest := specs[0]
	for _, s := range specs[1:] {
		if s.Width*s.Height > largest.Width*largest.Height {
			largest = s
		}
	}

	// Wait for the memory this decode needs: a source alone over the
	// budget takes all of it.
	need := min(max(decodeMemory(meta), 1), r.cfg.DecodeMemory)
	if err := r.memory.Acquire(ctx, need); err != nil {
		return res, err
	}
	defer r.memory.Release(need)

	// vips_thread_shutdown at the end frees libvips' state of the thread
	// the work ran on: keep the goroutine on one thread until then.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer threadShutdown()

	g := newGuard(ctx, r.cfg.MaxScans)
	defer g.release()
	encodings := r.cfg.outputs(meta.Alpha)
	if !all {
		encodings = encodings[:1]
	}
	inter, err := r.intermediate(ctx, src, meta, largest, encodings[0].out, g)
	if err != nil {
		return res, err
	}
	// made holds the images rendered so far, largest first; each variant is
	// resized from the smallest one that still covers it.
	made := []picture{inter}
	defer func() {
		for _, p := range made {
			p.free()
		}
	}()
	order := make([]int, len(specs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return specs[order[a]].Width*specs[order[a]].Height > specs[order[b]].Width*specs[order[b]].Height
	})

	out := make([][]image.Rendition, len(specs))
	for _, i := range order {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		s := specs[i]
		start := time.Now()
		vw, vh := s.Fit(inter.width(), inter.height())
		from := inter
		for _, p := range made {
			if p.width() >= vw && p.height() >= vh {
				from = p
			}
		}
		pic := from
		if from.width() != vw || from.height() != vh {
			if pic, err = from.resize(vw, vh); err != nil {
				return res, fmt.Errorf("resize %s: %w", s.Name, err)
			}
			made = append(made, pic)
		}
		for _, e := range encodings {
			data, err := pic.encodeWith(e.out, e.quality, pngCompression, e.effort)
			if err != nil {
				return res, fmt.Errorf("encode %s as %s: %w", s.Name, e.format, err)
			}
			out[i] = append(out[i], image.Rendition{
				Name: s.Name, Format: e.format, Width: vw, Height: vh, ContentType: e.format.ContentType(),
				Ext: e.format.Ext(), Data: data, EncodeTime: time.Since(start),
			})
			start = time.Now()
		}
	}
	for _, rs := range out {
		res.Renditions = append(res.Renditions, rs...)
	}
	if all {
		// The smallest image made, the last one, holds the most of the
		// picture per pixel read.
		var err error
		if res.Placeholder, res.DominantColor, err = placeholder(made[len(made)-1]); err != nil {
			return image.Rendering{}, fmt.Errorf("placeholder: %w", err)
		}
	}
	return res, nil
}

// intermediate decodes src once into the largest variant: upright, sRGB,
// 8 bits. A JPEG whose variants are JPEGs too stays in YCbCr planes when
// it can (ycc.c); other JPEGs take the libjpeg-turbo RGB path when it
// applies; a PNG without a profile or orientation is decoded row by row
// into resample.c; everything else, and whatever those decline, goes
// through vips_thumbnail. A path that stops on the guard's account (corrupt
// data, too many scans, cancelled) ends it: no other path tries again.
func (r *Resizer) intermediate(ctx context.Context, src []byte, meta bimg.ImageMetadata, largest image.Spec, format int, g *guard) (picture, error) {
	if meta.Type == "jpeg" {
		w, h := meta.Size.Width, meta.Size.Height
		if meta.Orientation >= 5 && meta.Orientation <= 8 {
			w, h = h, w
		}
		tw, th := largest.Fit(w, h)
		if format == outJPEG {
			if p, ok := loadJPEGPlanes(src, tw, th, meta.Orientation, chromaSubsampling(r.cfg.JPEGQuality), g); ok {
				return p, nil
			}
			if err := g.err(ctx); err != nil {
				return picture{}, err
			}
		}
		if p, ok := loadJPEGTurbo(src, tw, th, meta.Orientation, g); ok {
			return p, nil
		}
		if err := g.err(ctx); err != nil {
			return picture{}, err
		}
	}
	if meta.Type == "png" && !meta.Profile && meta.Orientation <= 1 {
		tw, th := largest.Fit(meta.Size.Width, meta.Size.Height)
		p, err := loadStreamed(src, tw, th, g)
		if err == nil {
			return p, nil
		}
		if gerr := g.err(ctx); gerr != nil {
			return picture{}, gerr
		}
		// A PNG that does not decode here goes through vips_thumbnail,
		// whose checks decide.
	}
	p, err := loadThumbnail(src, largest.Width, largest.Height, meta.Profile || meta.Space == "cmyk", loaderOptions(meta.Type), g)
	if gerr := g.err(ctx); gerr != nil {
		if err == nil {
			p.free()
		}
		return picture{}, gerr
	}
	if err != nil {
		return picture{}, undecodable(err)
	}
	return p, nil
}

// loaderOptions are the options of libvips' loader for a source type: stop
// on any error, truncation included, rather than fill what is missing with
// grey. A JPEG stops on warnings too, as the libjpeg-turbo paths do (a
// corrupt JPEG is a libjpeg warning); PNG and GIF warnings are mostly about
// metadata and stay allowed.
func loaderOptions(typ string) string {
	if typ == "jpeg" {
		return "fail_on=warning"
	}
	return "fail_on=error"
}

// chromaSubsampling is how many times JPEG variants subsample chroma in
// each direction: 4:2:0 below quality 90, none from 90 up, as libvips'
// jpegsave does.
func chromaSubsampling(quality int) int {
	if quality >= 90 {
		return 1
	}
	return 2
}

func undecodable(err error) error {
	return fmt.Errorf("%w: %v", image.ErrUndecodable, err)
}
