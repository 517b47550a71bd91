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
	// ImageBySHA256 returns the newest image of a user whose original has
	// this SHA-256, or ErrNotFound.
	ImageBySHA256(ctx context.Context, userID, sha256 string) (*Image, error)
	// Usage counts a user's images and their originals' bytes.
	Usage(ctx context.Context, userID string) (Usage, error)
}

// Usage is what a user stores.
type Usage struct {
	Images int64
	Bytes  int64
}

// Ledger records the processing of images for the worker side. Every update
// is fenced by the attempt number that ClaimImage handed out.
type Ledger interface {
	// ClaimImage moves a queued or processing image to processing, bumps its
	// attempt and sets its lease; claiming one still processing counts a
	// crash of the attempt before. It returns ErrNotClaimable when the image
	// is gone or already done or failed.
	ClaimImage(ctx context.Context, id string, leaseUntil time.Time) (*Image, error)
	// ReleaseImage puts an image whose attempt ended in an error that will
	// be retried back to queued, if attempt is still the current one; else
	// ErrLeaseLost.
	ReleaseImage(ctx context.Context, id string, attempt int) error
	// CompleteImage writes the variants and marks the image done, in one
	// transaction, if attempt is still the current one; else ErrLeaseLost
	// (ErrNotFound when the image is gone). It returns the object keys of
	// the variants it replaced that the new set does not use.
	CompleteImage(ctx context.Context, id string, attempt int, c Completion) (replaced []string, err error)
	// ReplaceVariants writes a new variant set of an image that stays done
	// (the backfill), in one transaction, if the image is still done at
	// attempt; else ErrLeaseLost (ErrNotFound when it is gone). It returns
	// the object keys of the replaced set that the new one does not use.
	ReplaceVariants(ctx context.Context, id string, attempt int, c Completion) (replaced []string, err error)
	// FailImage marks a queued or processing image failed; attempt 0 means
	// unfenced (used when retries are exhausted).
	FailImage(ctx context.Context, id string, attempt int, code, message string) error
	// StaleImages lists images queued before queuedBefore, or processing
	// with a lease that ended before now.
	StaleImages(ctx context.Context, queuedBefore, now time.Time, limit int) ([]string, error)
	// RequeueImage puts an image back to queued, clearing its error, lease
	// and crashes; ErrNotFound if absent.
	RequeueImage(ctx context.Context, id string) error
	// CompleteImage and FailImage leave the image's notification pending;
	// MarkNotified clears it once the notifier has the change of that
	// attempt (a later attempt's stays pending).
	MarkNotified(ctx context.Context, id string, attempt int) error
	// UnnotifiedImages lists images done or failed before finishedBefore
	// whose notification is still pending.
	UnnotifiedImages(ctx context.Context, finishedBefore time.Time, limit int) ([]string, error)
}

// Inventory answers operators' questions across all users.
type Inventory interface {
	// ListAllImages lists images of every user, newest first, optionally of
	// one status ("" for all).
	ListAllImages(ctx context.Context, status Status, after Cursor, limit int) ([]*Image, error)
	CountByStatus(ctx context.Context) (map[Status]int64, error)
	// OutdatedImages lists, by id, up to limit done images after afterID
	// whose variants were made with a profile other than profile.
	OutdatedImages(ctx context.Context, profile, afterID string, limit int) ([]string, error)
	// CountOutdated counts the done images of another profile than profile.
	CountOutdated(ctx context.Context, profile string) (int64, error)
}

// Completion is what processing records of an image: its variants, its
// placeholder and the profile they were made with.
type Completion struct {
	Variants      []Variant
	Placeholder   string
	DominantColor string
	Profile       string
}

// QueueDepth is the number of tasks of a queue in each state.
type QueueDepth struct {
	Pending, Active, Scheduled, Retry, Archived int
}

// QueueStats reports the depth of every queue.
type QueueStats interface {
	Depths(ctx context.Context) (map[string]QueueDepth, error)
}

// Errors a Ledger returns.
var (
	ErrNotClaimable = errors.New("image not claimable")
	ErrLeaseLost    = errors.New("lease lost to a newer attempt")
)

// Blobs is object storage for originals and variants.
type Blobs interface {
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error
	// PutVariant stores a variant object with its content type and
	// Cache-Control VariantCacheControl.
	PutVariant(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error
	Get(ctx context.Context, key string) ([]byte, error)
	// Delete deletes the objects of keys; a missing one is not an error.
	Delete(ctx context.Context, keys []string) error
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

// Backfills queues the backfill: images whose variants were made with an
// older profile are made again, at a lower priority than new uploads.
type Backfills interface {
	// EnqueueBackfillScan schedules the listing of outdated images after
	// afterID ("" from the start), which enqueues each for profile.
	EnqueueBackfillScan(ctx context.Context, profile, afterID string) error
	// EnqueueBackfill schedules the backfill of one image to profile.
	// Enqueueing one already queued is not an error.
	EnqueueBackfill(ctx context.Context, imageID, profile string) error
}

// Rendition is one variant in one format produced by a Resizer.
type Rendition struct {
	Name        string
	Format      Format
	Width       int
	Height      int
	ContentType string
	Ext         string
	Data        []byte
	// EncodeTime is the time spent deriving and encoding this rendition
	// from the shared intermediate.
	EncodeTime time.Duration
}

// Rendering is what a Resizer makes of a source: every variant in every
// format, and the placeholder.
type Rendering struct {
	// Renditions hold, spec by spec in the order given, the variant in its
	// base format and then in each other format.
	Renditions []Rendition
	// Placeholder is a BlurHash of the smallest variant.
	Placeholder string
	// DominantColor is the most common colour of the smallest variant,
	// #rrggbb.
	DominantColor string
}

// Resizer turns a source image into one rendition per spec and format. It
// returns an error wrapping ErrUndecodable when the source cannot be
// decoded.
type Resizer interface {
	Render(ctx context.Context, src []byte, specs []Spec) (Rendering, error)
}

// Observer receives the measurements of processing: the metrics adapter
// implements it.
type Observer interface {
	// Stage records the time one stage of processing took: fetch,
	// decode_resize, encode, upload or database.
	Stage(stage string, d time.Duration)
	// Finished records the end of one processing attempt with its result
	// (done, failed, retry or skipped) and, when known, the source's pixels.
	Finished(result string, sourcePixels int64)
	// DependencyError records a failed call to s3 or the database.
	DependencyError(dependency string)
	// InFlight adds delta to the number of images being processed.
	InFlight(delta int)
}

// Processing results and stages, as the Observer receives them.
const (
	ResultDone    = "done"
	ResultFailed  = "failed"
	ResultRetry   = "retry"
	ResultSkipped = "skipped"

	StageFetch        = "fetch"
	StageDecodeResize = "decode_resize"
	StageEncode       = "encode"
	StageUpload       = "upload"
	StageDatabase     = "database"
)

type nopObserver struct{}

func (nopObserver) Stage(string, time.Duration) {}
func (nopObserver) Finished(string, int64)      {}
func (nopObserver) DependencyError(string)      {}
func (nopObserver) InFlight(int)                {}

// Notifier is told when an image reaches done or failed (the webhook
// subscriptions). It is called at least once per state change, so it must be
// idempotent: the image's attempt number identifies the change.
type Notifier interface {
	ImageFinished(ctx context.Context, img *Image) error
}

// PendingUpload is an upload that goes straight to object storage (a
// presigned PUT or a multipart upload) or through tus, until it becomes
// an image (its ID becomes the image's) or expires.
type PendingUpload struct {
	ID          string
	UserID      string
	Kind        string // UploadPut, UploadMultipart or UploadTus
	State       string // UploadPending, UploadCompleting, UploadCompleted, UploadAborted, UploadExpired
	Filename    string
	ContentType string
	// Bytes is the size the client declared.
	Bytes    int64
	PartSize int64
	// Key is where the bytes land: the image's original key.
	Key string
	// S3UploadID names a direct multipart upload (a tus upload's is the
	// tus store's).
	S3UploadID string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// Kinds and states of a PendingUpload.
const (
	UploadPut       = "put"
	UploadMultipart = "multipart"
	UploadTus       = "tus"

	UploadPending    = "pending"
	UploadCompleting = "completing"
	UploadCompleted  = "completed"
	UploadAborted    = "aborted"
	UploadExpired    = "expired"
)

// Uploads stores pending uploads.
type Uploads interface {
	CreateUpload(ctx context.Context, u *PendingUpload) error
	// Upload returns one, or ErrUploadNotFound.
	Upload(ctx context.Context, id string) (*PendingUpload, error)
	// MoveUpload changes an upload's state from one to another, and
	// reports false when it was not in from.
	MoveUpload(ctx context.Context, id, from, to string) (bool, error)
	// StaleUploads lists uploads pending or completing whose time ran out
	// before t.
	StaleUploads(ctx context.Context, before time.Time, limit int) ([]*PendingUpload, error)
	// PendingUploads counts a user's uploads pending or completing.
	PendingUploads(ctx context.Context, userID string) (int, error)
	// ForgetUploads deletes the records of uploads completed, aborted or
	// expired whose time ran out before t.
	ForgetUploads(ctx context.Context, before time.Time) (int64, error)
}

// Part is one part of a multipart upload.
type Part struct {
	Number int32
	ETag   string
	Size   int64
}

// Staging is object storage as uploads straight to it need it.
type Staging interface {
	// PresignPut returns a URL a client PUTs exactly size bytes of
	// contentType to, under key.
	PresignPut(ctx context.Context, key string, size int64, contentType string, expiry time.Duration) (string, error)
	CreateMultipart(ctx context.Context, key, contentType string) (uploadID string, err error)
	// PresignPart returns a URL a client PUTs exactly size bytes of a
	// part to.
	PresignPart(ctx context.Context, key, uploadID string, part int32, size int64, expiry time.Duration) (string, error)
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// CompleteMultipart puts the parts together; parts the server refuses
	// are an error wrapping ErrBadParts.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) error
	AbortMultipart(ctx context.Context, key, uploadID string) error
	// AbortMultipartUploads aborts every multipart upload under key (a tus
	// upload's, whose id only the tus store knows).
	AbortMultipartUploads(ctx context.Context, key string) error
	// ClearUploadState removes what an upload protocol kept beside the
	// object under key (tus's .info and .part objects).
	ClearUploadState(ctx context.Context, key string) error
	// Open reads an object as a stream, with its size; ErrNotFound when
	// there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
}
