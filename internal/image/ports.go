package image

import (
	"context"
	"errors"
	"io"
	"time"
)

// Catalog stores image rows for the API side: create, read, list, delete.
type Catalog interface {
	CreateImage(ctx context.Context, img *Image) error
	// Image returns the image with its variants, or ErrNotFound.
	Image(ctx context.Context, id string) (*Image, error)
	// ListImages returns up to limit images of a user, newest first, strictly
	// after the cursor position (the zero Cursor means from the start).
	ListImages(ctx context.Context, userID string, after Cursor, limit int) ([]*Image, error)
	// DeleteImage removes the row and its variant rows; ErrNotFound if absent.
	DeleteImage(ctx context.Context, id string) error
}

// Ledger records the processing of images for the worker side. Every update
// is fenced by the attempt number that ClaimImage handed out.
type Ledger interface {
	// ClaimImage moves a queued or processing image to processing, bumps its
	// attempt and sets its lease. It returns ErrNotClaimable when the image is
	// gone or already done or failed.
	ClaimImage(ctx context.Context, id string, leaseUntil time.Time) (*Image, error)
	// CompleteImage writes the variants and marks the image done, in one
	// transaction, if attempt is still the current one; else ErrLeaseLost.
	CompleteImage(ctx context.Context, id string, attempt int, variants []Variant) error
	// FailImage marks a queued or processing image failed; attempt 0 means
	// unfenced (used when retries are exhausted).
	FailImage(ctx context.Context, id string, attempt int, code, message string) error
	// StaleImages lists images queued before queuedBefore, or processing
	// with a lease that ended before now.
	StaleImages(ctx context.Context, queuedBefore, now time.Time, limit int) ([]string, error)
}

// Errors a Ledger returns.
var (
	ErrNotClaimable = errors.New("image not claimable")
	ErrLeaseLost    = errors.New("lease lost to a newer attempt")
)

// Blobs is object storage for originals and variants.
type Blobs interface {
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error
	Get(ctx context.Context, key string) ([]byte, error)
	// DeletePrefix deletes every object whose key starts with prefix.
	DeletePrefix(ctx context.Context, prefix string) error
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// Queue hands images to the workers.
type Queue interface {
	// EnqueueProcess schedules processing of an image. Enqueueing an image
	// that is already queued is not an error.
	EnqueueProcess(ctx context.Context, imageID string) error
}

// Rendition is one encoded variant produced by a Resizer.
type Rendition struct {
	Name        string
	Width       int
	Height      int
	ContentType string
	Ext         string
	Data        []byte
}

// Resizer turns a source image into one rendition per spec. It returns an
// error wrapping ErrUndecodable when the source cannot be decoded.
type Resizer interface {
	Resize(ctx context.Context, src []byte, specs []Spec) ([]Rendition, error)
}
