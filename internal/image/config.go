package image

import (
	"errors"
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
	// Quality is the quality of JPEG, WebP and AVIF variants (1-100).
	Quality int
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
		Quality:      82,
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
