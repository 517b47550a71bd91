package image

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imagesvc/imagesvc/internal/sniff"
)

// Config holds the settings of the image services.
type Config struct {
	MaxUploadBytes int64
	MaxPixels      int64
	AcceptedTypes  []sniff.Format
	Variants       []Spec
	// URLExpiry is the lifetime of presigned variant URLs.
	URLExpiry time.Duration
	// Lease is how long a worker owns an image it claimed before another
	// may take it over. It must exceed the task timeout.
	Lease time.Duration
	// StaleAfter is how long an image may stay queued before the reconciler
	// enqueues it again.
	StaleAfter time.Duration
	// MaxCrashes is how many attempts at an image may end without a word
	// (the worker killed, or stuck past its lease) before the image fails
	// with processing_crashed: an input that kills its worker must not be
	// handed from worker to worker for ever.
	MaxCrashes int
	// TempDir is where uploads are spooled before they go to S3.
	TempDir string
	// OutputFormat is how variants are encoded: auto (JPEG for opaque
	// sources, PNG for sources with alpha), jpeg (alpha flattened on
	// white), webp or avif (alpha kept).
	OutputFormat string
	// Formats are the formats every variant is made in (VARIANT_FORMATS);
	// FormatJPEG is the base, which OutputFormat decides.
	Formats []Format
	// Quality is the quality of JPEG variants (1-100).
	Quality int
	// WebPQuality and AVIFQuality are the qualities of WebP and AVIF
	// variants (1-100): their scales are not JPEG's, so each default gives
	// about the PSNR JPEG has at Quality's (see the README's measurements).
	WebPQuality int
	AVIFQuality int
	// WebPEffort (libwebp's method, 0-6) and AVIFEffort (libvips' effort,
	// 0-9) trade CPU for smaller files.
	WebPEffort int
	AVIFEffort int
	// DeliveryKeys sign the stable delivery URLs; the first signs, all
	// verify.
	DeliveryKeys []DeliveryKey
	// DeliveryLifetime bounds how long a delivery URL works; 0 means as
	// long as the image exists.
	DeliveryLifetime time.Duration
	// PublicURL is the API's address as clients reach it, which delivery
	// URLs start with; empty makes them paths (the API makes those
	// absolute with each request's origin).
	PublicURL string
	// DeliveryBaseURL, when set, is where the delivery URLs redirect to,
	// followed by the object key (a CDN or a public bucket); else they
	// redirect to a presigned URL.
	DeliveryBaseURL string
	// DecodeMemory bounds the memory the decodes of one worker hold at
	// once (see imaging.Config).
	DecodeMemory int64
	// UploadExpiry is how long a direct or tus upload may stay unfinished
	// before it is removed.
	UploadExpiry time.Duration
	// PartSize is the size of a multipart upload's parts; an upload up to
	// it is one presigned PUT (S3's parts are 5 MiB at least).
	PartSize int64
	// Deduplicate makes an upload of a file the same user stored already
	// (the same SHA-256) return that image instead of a second one.
	Deduplicate bool
	// QuotaImages and QuotaBytes bound what one user stores (originals);
	// 0 is no bound.
	QuotaImages int64
	QuotaBytes  int64
}

// NewDefaultConfig returns the defaults the README's Configuration table
// lists.
func NewDefaultConfig() Config {
	return Config{
		MaxUploadBytes: 25 << 20,
		MaxPixels:      50_000_000,
		AcceptedTypes:  sniff.DefaultAcceptedTypes,
		Variants: []Spec{
			{Name: "small", Width: 300, Height: 300},
			{Name: "medium", Width: 1024, Height: 1024},
			{Name: "large", Width: 2048, Height: 2048},
		},
		URLExpiry:    15 * time.Minute,
		Lease:        10 * time.Minute,
		StaleAfter:   2 * time.Minute,
		MaxCrashes:   3,
		UploadExpiry: 24 * time.Hour,
		PartSize:     8 << 20,
		OutputFormat: "auto",
		Formats:      DefaultFormats,
		Quality:      82,
		WebPQuality:  78,
		AVIFQuality:  60,
		WebPEffort:   0,
		AVIFEffort:   0,
		DecodeMemory: 512 << 20,
	}
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxUploadBytes < 1 {
		errs = append(errs, errors.New("MAX_UPLOAD_BYTES must be positive"))
	}
	if c.MaxPixels < 1 {
		errs = append(errs, errors.New("MAX_PIXELS must be positive"))
	}
	if len(c.AcceptedTypes) == 0 {
		errs = append(errs, errors.New("ACCEPTED_TYPES must list at least one type"))
	}
	if len(c.Variants) == 0 {
		errs = append(errs, errors.New("VARIANTS must list at least one variant"))
	}
	if c.URLExpiry < time.Second || c.URLExpiry > 7*24*time.Hour {
		errs = append(errs, errors.New("URL expiry must be between 1s and 7 days"))
	}
	if c.Lease <= 0 || c.StaleAfter <= 0 {
		errs = append(errs, errors.New("lease and stale threshold must be positive"))
	}
	if c.MaxCrashes < 1 {
		errs = append(errs, errors.New("PROCESSING_MAX_CRASHES must be at least 1"))
	}
	switch c.OutputFormat {
	case "auto", "jpeg", "webp", "avif":
	default:
		errs = append(errs, errors.New("OUTPUT_FORMAT must be auto, jpeg, webp or avif"))
	}
	if c.Quality < 1 || c.Quality > 100 {
		errs = append(errs, errors.New("JPEG_QUALITY must be between 1 and 100"))
	}
	if c.WebPQuality < 1 || c.WebPQuality > 100 {
		errs = append(errs, errors.New("WEBP_QUALITY must be between 1 and 100"))
	}
	if c.AVIFQuality < 1 || c.AVIFQuality > 100 {
		errs = append(errs, errors.New("AVIF_QUALITY must be between 1 and 100"))
	}
	if c.WebPEffort < 0 || c.WebPEffort > 6 {
		errs = append(errs, errors.New("WEBP_EFFORT must be between 0 and 6"))
	}
	if c.AVIFEffort < 0 || c.AVIFEffort > 9 {
		errs = append(errs, errors.New("AVIF_EFFORT must be between 0 and 9"))
	}
	if !slices.Contains(c.Formats, FormatJPEG) {
		errs = append(errs, errors.New("VARIANT_FORMATS must list jpeg"))
	}
	if c.DeliveryLifetime < 0 || (c.DeliveryLifetime > 0 && c.DeliveryLifetime < time.Minute) {
		errs = append(errs, errors.New("DELIVERY_URL_LIFETIME must be 0 (no expiry) or at least 1m"))
	}
	for name, u := range map[string]string{"PUBLIC_URL": c.PublicURL, "DELIVERY_BASE_URL": c.DeliveryBaseURL} {
		if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			errs = append(errs, fmt.Errorf("%s must be an http:// or https:// URL", name))
		}
	}
	if c.UploadExpiry < time.Minute {
		errs = append(errs, errors.New("UPLOAD_EXPIRY must be at least a minute"))
	}
	if c.PartSize < 5<<20 || c.PartSize > 5<<30 {
		errs = append(errs, errors.New("UPLOAD_PART_SIZE must be between 5 MiB and 5 GiB"))
	}
	if c.QuotaImages < 0 || c.QuotaBytes < 0 {
		errs = append(errs, errors.New("USER_QUOTA_IMAGES and USER_QUOTA_BYTES must not be negative"))
	}
	if c.DecodeMemory < 64<<20 {
		errs = append(errs, errors.New("WORKER_DECODE_MEMORY_MB must be at least 64"))
	}
	return errors.Join(errs...)
}
