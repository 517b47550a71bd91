// Package mock has function-field fakes of the domain's ports (the
// interfaces internal/image, internal/auth and internal/webhook declare),
// for the fast unit tier: a test sets the functions it expects to be
// called; one it did not set panics when called, which fails the test and
// names the call.
// The integration tier runs the real adapters instead.
package mock

import (
	"context"
	"io"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
)

// Catalog is an image.Catalog.
type Catalog struct {
	CreateImageFn   func(ctx context.Context, img *image.Image) error
	ImageFn         func(ctx context.Context, id string) (*image.Image, error)
	ListImagesFn    func(ctx context.Context, userID string, after image.Cursor, limit int) ([]*image.Image, error)
	DeleteImageFn   func(ctx context.Context, id string) error
	ImageBySHA256Fn func(ctx context.Context, userID, sha256 string) (*image.Image, error)
	UsageFn         func(ctx context.Context, userID string) (image.Usage, error)
}

var _ image.Catalog = (*Catalog)(nil)

// CreateImage calls CreateImageFn.
func (c *Catalog) CreateImage(ctx context.Context, img *image.Image) error {
	return c.CreateImageFn(ctx, img)
}

// Image calls ImageFn.
func (c *Catalog) Image(ctx context.Context, id string) (*image.Image, error) {
	return c.ImageFn(ctx, id)
}

// ListImages calls ListImagesFn.
func (c *Catalog) ListImages(ctx context.Context, userID string, after image.Cursor, limit int) ([]*image.Image, error) {
	return c.ListImagesFn(ctx, userID, after, limit)
}

// DeleteImage calls DeleteImageFn.
func (c *Catalog) DeleteImage(ctx context.Context, id string) error { return c.DeleteImageFn(ctx, id) }

// ImageBySHA256 calls ImageBySHA256Fn.
func (c *Catalog) ImageBySHA256(ctx context.Context, userID, sha256 string) (*image.Image, error) {
	return c.ImageBySHA256Fn(ctx, userID, sha256)
}

// Usage calls UsageFn.
func (c *Catalog) Usage(ctx context.Context, userID string) (image.Usage, error) {
	return c.UsageFn(ctx, userID)
}

// Ledger is an image.Ledger.
type Ledger struct {
	ClaimImageFn       func(ctx context.Context, id string, leaseUntil time.Time) (*image.Image, error)
	ReleaseImageFn     func(ctx context.Context, id string, attempt int) error
	CompleteImageFn    func(ctx context.Context, id string, attempt int, c image.Completion) ([]string, error)
	ReplaceVariantsFn  func(ctx context.Context, id string, attempt int, c image.Completion) ([]string, error)
	FailImageFn        func(ctx context.Context, id string, attempt int, code, message string) error
	StaleImagesFn      func(ctx context.Context, queuedBefore, now time.Time, limit int) ([]string, error)
	RequeueImageFn     func(ctx context.Context, id string) error
	MarkNotifiedFn     func(ctx context.Context, id string, attempt int) error
	UnnotifiedImagesFn func(ctx context.Context, finishedBefore time.Time, limit int) ([]string, error)
}

var _ image.Ledger = (*Ledger)(nil)

// ClaimImage calls ClaimImageFn.
func (l *Ledger) ClaimImage(ctx context.Context, id string, leaseUntil time.Time) (*image.Image, error) {
	return l.ClaimImageFn(ctx, id, leaseUntil)
}

// ReleaseImage calls ReleaseImageFn.
func (l *Ledger) ReleaseImage(ctx context.Context, id string, attempt int) error {
	return l.ReleaseImageFn(ctx, id, attempt)
}

// CompleteImage calls CompleteImageFn.
func (l *Ledger) CompleteImage(ctx context.Context, id string, attempt int, c image.Completion) ([]string, error) {
	return l.CompleteImageFn(ctx, id, attempt, c)
}

// ReplaceVariants calls ReplaceVariantsFn.
func (l *Ledger) ReplaceVariants(ctx context.Context, id string, attempt int, c image.Completion) ([]string, error) {
	return l.ReplaceVariantsFn(ctx, id, attempt, c)
}

// FailImage calls FailImageFn.
func (l *Ledger) FailImage(ctx context.Context, id string, attempt int, code, message string) error {
	return l.FailImageFn(ctx, id, attempt, code, message)
}

// StaleImages calls StaleImagesFn.
func (l *Ledger) StaleImages(ctx context.Context, queuedBefore, now time.Time, limit int) ([]string, error) {
	return l.StaleImagesFn(ctx, queuedBefore, now, limit)
}

// RequeueImage calls RequeueImageFn.
func (l *Ledger) RequeueImage(ctx context.Context, id string) error { return l.RequeueImageFn(ctx, id) }

// MarkNotified calls MarkNotifiedFn.
func (l *Ledger) MarkNotified(ctx context.Context, id string, attempt int) error {
	return l.MarkNotifiedFn(ctx, id, attempt)
}

// UnnotifiedImages calls UnnotifiedImagesFn.
func (l *Ledger) UnnotifiedImages(ctx context.Context, finishedBefore time.Time, limit int) ([]string, error) {
	return l.UnnotifiedImagesFn(ctx, finishedBefore, limit)
}

// Blobs is an image.Blobs.
type Blobs struct {
	PutFn          func(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error
	PutVariantFn   func(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error
	GetFn          func(ctx context.Context, key string) ([]byte, error)
	DeleteFn       func(ctx context.Context, keys []string) error
	DeletePrefixFn func(ctx context.Context, prefix string) error
	PresignGetFn   func(ctx context.Context, key string, expiry time.Duration) (string, error)
}

var _ image.Blobs = (*Blobs)(nil)

// Put calls PutFn.
func (b *Blobs) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error {
	return b.PutFn(ctx, key, body, size, contentType)
}

// PutVariant calls PutVariantFn.
func (b *Blobs) PutVariant(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) error {
	return b.PutVariantFn(ctx, key, body, size, contentType)
}

// Delete calls DeleteFn.
func (b *Blobs) Delete(ctx context.Context, keys []string) error { return b.DeleteFn(ctx, keys) }

// Get calls GetFn.
func (b *Blobs) Get(ctx context.Context, key string) ([]byte, error) { return b.GetFn(ctx, key) }

// DeletePrefix calls DeletePrefixFn.
func (b *Blobs) DeletePrefix(ctx context.Context, prefix string) error {
	return b.DeletePrefixFn(ctx, prefix)
}

// PresignGet calls PresignGetFn.
func (b *Blobs) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return b.PresignGetFn(ctx, key, expiry)
}

// Queue is an image.Queue.
type Queue struct {
	EnqueueProcessFn func(ctx context.Context, imageID string) error
}

var _ image.Queue = (*Queue)(nil)

// EnqueueProcess calls EnqueueProcessFn.
func (q *Queue) EnqueueProcess(ctx context.Context, imageID string) error {
	return q.EnqueueProcessFn(ctx, imageID)
}

// Resizer is an image.Resizer.
type Resizer struct {
	RenderFn func(ctx context.Context, src []byte, specs []image.Spec) (image.Rendering, error)
}

var _ image.Resizer = (*Resizer)(nil)

// Render calls RenderFn.
func (r *Resizer) Render(ctx context.Context, src []byte, specs []image.Spec) (image.Rendering, error) {
	return r.RenderFn(ctx, src, specs)
}

// Backfills is an image.Backfills.
type Backfills struct {
	EnqueueBackfillScanFn func(ctx context.Context, profile, afterID string) error
	EnqueueBackfillFn     func(ctx context.Context, imageID, profile string) error
}

var _ image.Backfills = (*Backfills)(nil)

// EnqueueBackfillScan calls EnqueueBackfillScanFn.
func (b *Backfills) EnqueueBackfillScan(ctx context.Context, profile, afterID string) error {
	return b.EnqueueBackfillScanFn(ctx, profile, afterID)
}

// EnqueueBackfill calls EnqueueBackfillFn.
func (b *Backfills) EnqueueBackfill(ctx context.Context, imageID, profile string) error {
	return b.EnqueueBackfillFn(ctx, imageID, profile)
}

// Notifier is an image.Notifier.
type Notifier struct {
	ImageFinishedFn func(ctx context.Context, img *image.Image) error
}

var _ image.Notifier = (*Notifier)(nil)

// ImageFinished calls ImageFinishedFn.
func (n *Notifier) ImageFinished(ctx context.Context, img *image.Image) error {
	return n.ImageFinishedFn(ctx, img)
}

// Uploads is an image.Uploads.
type Uploads struct {
	CreateUploadFn   func(ctx context.Context, u *image.PendingUpload) error
	UploadFn         func(ctx context.Context, id string) (*image.PendingUpload, error)
	MoveUploadFn     func(ctx context.Context, id, from, to string) (bool, error)
	StaleUploadsFn   func(ctx context.Context, before time.Time, limit int) ([]*image.PendingUpload, error)
	PendingUploadsFn func(ctx context.Context, userID string) (int, error)
	ForgetUploadsFn  func(ctx context.Context, before time.Time) (int64, error)
}

var _ image.Uploads = (*Uploads)(nil)

// CreateUpload calls CreateUploadFn.
func (u *Uploads) CreateUpload(ctx context.Context, p *image.PendingUpload) error {
	return u.CreateUploadFn(ctx, p)
}

// Upload calls UploadFn.
func (u *Uploads) Upload(ctx context.Context, id string) (*image.PendingUpload, error) {
	return u.UploadFn(ctx, id)
}

// MoveUpload calls MoveUploadFn.
func (u *Uploads) MoveUpload(ctx context.Context, id, from, to string) (bool, error) {
	return u.MoveUploadFn(ctx, id, from, to)
}

// StaleUploads calls StaleUploadsFn.
func (u *Uploads) StaleUploads(ctx context.Context, before time.Time, limit int) ([]*image.PendingUpload, error) {
	return u.StaleUploadsFn(ctx, before, limit)
}

// PendingUploads calls PendingUploadsFn.
func (u *Uploads) PendingUploads(ctx context.Context, userID string) (int, error) {
	return u.PendingUploadsFn(ctx, userID)
}

// ForgetUploads calls ForgetUploadsFn.
func (u *Uploads) ForgetUploads(ctx context.Context, before time.Time) (int64, error) {
	return u.ForgetUploadsFn(ctx, before)
}

// Staging is an image.Staging.
type Staging struct {
	PresignPutFn            func(ctx context.Context, key string, size int64, contentType string, expiry time.Duration) (string, error)
	CreateMultipartFn       func(ctx context.Context, key, contentType string) (string, error)
	PresignPartFn           func(ctx context.Context, key, uploadID string, part int32, size int64, expiry time.Duration) (string, error)
	ListPartsFn             func(ctx context.Context, key, uploadID string) ([]image.Part, error)
	CompleteMultipartFn     func(ctx context.Context, key, uploadID string, parts []image.Part) error
	AbortMultipartFn        func(ctx context.Context, key, uploadID string) error
	AbortMultipartUploadsFn func(ctx context.Context, key string) error
	ClearUploadStateFn      func(ctx context.Context, key string) error
	OpenFn                  func(ctx context.Context, key string) (io.ReadCloser, int64, error)
}

var _ image.Staging = (*Staging)(nil)

// PresignPut calls PresignPutFn.
func (s *Staging) PresignPut(ctx context.Context, key string, size int64, contentType string, expiry time.Duration) (string, error) {
	return s.PresignPutFn(ctx, key, size, contentType, expiry)
}

// CreateMultipart calls CreateMultipartFn.
func (s *Staging) CreateMultipart(ctx context.Context, key, contentType string) (string, error) {
	return s.CreateMultipartFn(ctx, key, contentType)
}

// PresignPart calls PresignPartFn.
func (s *Staging) PresignPart(ctx context.Context, key, uploadID string, part int32, size int64, expiry time.Duration) (string, error) {
	return s.PresignPartFn(ctx, key, uploadID, part, size, expiry)
}

// ListParts calls ListPartsFn.
func (s *Staging) ListParts(ctx context.Context, key, uploadID string) ([]image.Part, error) {
	return s.ListPartsFn(ctx, key, uploadID)
}

// CompleteMultipart calls CompleteMultipartFn.
func (s *Staging) CompleteMultipart(ctx context.Context, key, uploadID string, parts []image.Part) error {
	return s.CompleteMultipartFn(ctx, key, uploadID, parts)
}

// AbortMultipart calls AbortMultipartFn.
func (s *Staging) AbortMultipart(ctx context.Context, key, uploadID string) error {
	return s.AbortMultipartFn(ctx, key, uploadID)
}

// AbortMultipartUploads calls AbortMultipartUploadsFn.
func (s *Staging) AbortMultipartUploads(ctx context.Context, key string) error {
	return s.AbortMultipartUploadsFn(ctx, key)
}

// ClearUploadState calls ClearUploadStateFn.
func (s *Staging) ClearUploadState(ctx context.Context, key string) error {
	return s.ClearUploadStateFn(ctx, key)
}

// Open calls OpenFn.
func (s *Staging) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	return s.OpenFn(ctx, key)
}

// Holdings is an image.Holdings.
type Holdings struct {
	UnfinishedUploadsFn func(ctx context.Context, userID string) ([]*image.PendingUpload, error)
	MoveUploadFn        func(ctx context.Context, id, from, to string) (bool, error)
	DeleteUserImagesFn  func(ctx context.Context, userID string, limit int) (int, error)
}

var _ image.Holdings = (*Holdings)(nil)

// UnfinishedUploads calls UnfinishedUploadsFn.
func (h *Holdings) UnfinishedUploads(ctx context.Context, userID string) ([]*image.PendingUpload, error) {
	return h.UnfinishedUploadsFn(ctx, userID)
}

// MoveUpload calls MoveUploadFn.
func (h *Holdings) MoveUpload(ctx context.Context, id, from, to string) (bool, error) {
	return h.MoveUploadFn(ctx, id, from, to)
}

// DeleteUserImages calls DeleteUserImagesFn.
func (h *Holdings) DeleteUserImages(ctx context.Context, userID string, limit int) (int, error) {
	return h.DeleteUserImagesFn(ctx, userID, limit)
}
