package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// Config holds the settings of the image service.
type Config struct {
	MaxUploadBytes int64
	MaxPixels      int64
	AcceptedTypes  []Format
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
}

// NewDefaultConfig returns the defaults of DESIGN.md.
func NewDefaultConfig() Config {
	return Config{
		MaxUploadBytes: 25 << 20,
		MaxPixels:      50_000_000,
		AcceptedTypes:  DefaultAcceptedTypes,
		Variants: []Spec{
			{Name: "small", Width: 300, Height: 300},
			{Name: "medium", Width: 1024, Height: 1024},
			{Name: "large", Width: 2048, Height: 2048},
		},
		URLExpiry:  15 * time.Minute,
		Lease:      10 * time.Minute,
		StaleAfter: 2 * time.Minute,
		MaxCrashes: 3,
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
	return errors.Join(errs...)
}

// Service uploads, reads, deletes and processes images.
type Service struct {
	catalog   Catalog
	ledger    Ledger
	inventory Inventory
	stats     QueueStats
	blobs     Blobs
	queue     Queue
	resizer   Resizer
	notifier  Notifier
	obs       Observer
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	// busy holds the ids of the images this process is processing.
	busy sync.Map
}

// Deps are the adapters a Service works with. Resizer may be nil in a process
// that only serves the API; Queue may be nil in one that only processes.
type Deps struct {
	Catalog Catalog
	Ledger  Ledger
	Blobs   Blobs
	Queue   Queue
	Resizer Resizer
	// Inventory and QueueStats serve the admin endpoints; nil in a worker.
	Inventory  Inventory
	QueueStats QueueStats
	// Observer receives processing measurements; nil means none.
	Observer Observer
	// Notifier is told of finished images; nil means nobody.
	Notifier Notifier
}

// NewService returns a Service.
func NewService(d Deps, cfg Config, log *slog.Logger) *Service {
	obs := d.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	return &Service{
		catalog: d.Catalog, ledger: d.Ledger, blobs: d.Blobs, queue: d.Queue, resizer: d.Resizer,
		inventory: d.Inventory, stats: d.QueueStats, notifier: d.Notifier, obs: obs, cfg: cfg, log: log, now: time.Now,
	}
}

// Variants returns the configured variant specs.
func (s *Service) Variants() []Spec { return s.cfg.Variants }

// Upload stores a new image for a user and queues it for processing.
//
// The body is spooled to a temporary file first so that an oversized or
// unsupported upload is rejected before anything is stored. Then the original
// goes to S3, the row is written, and the task is enqueued; when a step fails
// the earlier ones are undone, so a rejected upload leaves nothing behind.
func (s *Service) Upload(ctx context.Context, userID, filename string, body io.Reader) (*Image, error) {
	f, err := os.CreateTemp(s.cfg.TempDir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	n, err := io.Copy(f, io.LimitReader(body, s.cfg.MaxUploadBytes+1))
	if fe := failure.As(err); fe != nil {
		return nil, err // the reader said why (too slow, say)
	}
	if err != nil {
		return nil, failure.Wrap(failure.Invalid, "bad_request", "the upload could not be read", err)
	}
	if n > s.cfg.MaxUploadBytes {
		return nil, TooLarge(s.cfg.MaxUploadBytes)
	}
	if n == 0 {
		return nil, ErrEmptyFile
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spool file: %w", err)
	}
	hdr, err := Inspect(f, s.cfg.AcceptedTypes, s.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spool file: %w", err)
	}

	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new image id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	img := &Image{
		ID: id.String(), UserID: userID, Status: StatusQueued,
		Filename: CleanFilename(filename), ContentType: hdr.Format.ContentType(), Bytes: n,
		Width: hdr.Width, Height: hdr.Height, CreatedAt: now, UpdatedAt: now,
	}
	// Undo work must finish even if the client has gone away.
	cleanup := context.WithoutCancel(ctx)
	if err := s.blobs.Put(ctx, img.OriginalKey(), f, n, img.ContentType); err != nil {
		// The object may have been stored even though the answer was lost.
		s.undo(cleanup, img, false)
		return nil, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("put original: %w", err))
	}
	if err := s.catalog.CreateImage(ctx, img); err != nil {
		s.undo(cleanup, img, false)
		return nil, unavailable("database_unavailable", "the database is unavailable", fmt.Errorf("insert image: %w", err))
	}
	if err := s.queue.EnqueueProcess(ctx, img.ID); err != nil {
		s.undo(cleanup, img, true)
		return nil, unavailable("queue_unavailable", "the job queue is unavailable", fmt.Errorf("enqueue image: %w", err))
	}
	return img, nil
}

// undo removes what a failed upload stored. If removal fails too, the log
// says so; a row left queued is picked up by the reconciler and processed.
func (s *Service) undo(ctx context.Context, img *Image, row bool) {
	if row {
		if err := s.catalog.DeleteImage(ctx, img.ID); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.ErrorContext(ctx, "undo upload: delete row", "image_id", img.ID, "err", err)
			return // keep the original: the reconciler will process the row
		}
	}
	if err := s.blobs.DeletePrefix(ctx, img.OriginalKey()); err != nil {
		s.log.ErrorContext(ctx, "undo upload: delete original", "image_id", img.ID, "err", err)
	}
}

// Get returns a user's image with presigned variant URLs; another user's
// image is ErrNotFound, so existence does not leak.
func (s *Service) Get(ctx context.Context, userID, id string) (*Image, error) {
	img, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if err := s.presign(ctx, img); err != nil {
		return nil, err
	}
	return img, nil
}

func (s *Service) owned(ctx context.Context, userID, id string) (*Image, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrNotFound
	}
	img, err := s.catalog.Image(ctx, id)
	if err != nil {
		return nil, err
	}
	if img.UserID != userID {
		return nil, ErrNotFound
	}
	return img, nil
}

func (s *Service) presign(ctx context.Context, img *Image) error {
	if img.Status != StatusDone {
		img.Variants = nil
		return nil
	}
	for i := range img.Variants {
		u, err := s.blobs.PresignGet(ctx, img.Variants[i].Key, s.cfg.URLExpiry)
		if err != nil {
			return fmt.Errorf("presign %s: %w", img.Variants[i].Key, err)
		}
		img.Variants[i].URL = u
	}
	return nil
}

// ErrNotReprocessable is returned when a user asks to reprocess an image
// that has not failed.
var ErrNotReprocessable = failure.New(failure.Conflict, "not_reprocessable", "only failed images can be reprocessed")

// Reprocess runs processing again, with the current variant settings, for a
// failed image of the user's, or for any image when admin is set. Its old
// variants are removed and it goes back to queued.
func (s *Service) Reprocess(ctx context.Context, userID string, admin bool, id string) (*Image, error) {
	var img *Image
	var err error
	if admin {
		if _, perr := uuid.Parse(id); perr != nil {
			return nil, ErrNotFound
		}
		img, err = s.catalog.Image(ctx, id)
	} else {
		img, err = s.owned(ctx, userID, id)
	}
	if err != nil {
		return nil, err
	}
	if !admin && img.Status != StatusFailed {
		return nil, ErrNotReprocessable
	}
	if err := s.ledger.RequeueImage(ctx, id); err != nil {
		return nil, err
	}
	// The image is queued now, so no URL points at these any more.
	if err := s.blobs.DeletePrefix(ctx, VariantPrefix(img.UserID, img.ID)); err != nil {
		return nil, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete old variants: %w", err))
	}
	if err := s.queue.EnqueueProcess(ctx, id); err != nil {
		// The row is queued: the reconciler will enqueue it.
		return nil, unavailable("queue_unavailable", "the job queue is unavailable", fmt.Errorf("enqueue image: %w", err))
	}
	return s.catalog.Image(ctx, id)
}

// AdminList lists the images of every user, newest first, optionally of one
// status.
func (s *Service) AdminList(ctx context.Context, status Status, after Cursor, limit int) (Page, error) {
	switch status {
	case "", StatusQueued, StatusProcessing, StatusDone, StatusFailed:
	default:
		return Page{}, failure.New(failure.Invalid, "invalid_status", "status must be queued, processing, done or failed")
	}
	if limit < 1 {
		return Page{}, ErrBadLimit
	}
	limit = min(limit, MaxPageSize)
	items, err := s.inventory.ListAllImages(ctx, status, after, limit+1)
	if err != nil {
		return Page{}, err
	}
	return s.page(ctx, items, limit)
}

// Stats are the counts an operator looks at first.
type Stats struct {
	Images map[Status]int64
	Queues map[string]QueueDepth
}

// Stats counts images by status and tasks by queue and state.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	counts, err := s.inventory.CountByStatus(ctx)
	if err != nil {
		return Stats{}, err
	}
	for _, st := range []Status{StatusQueued, StatusProcessing, StatusDone, StatusFailed} {
		counts[st] += 0
	}
	depths, err := s.stats.Depths(ctx)
	if err != nil {
		return Stats{}, unavailable("queue_unavailable", "the job queue is unavailable", err)
	}
	return Stats{Images: counts, Queues: depths}, nil
}

// Cursor is a position in a newest-first listing.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether the cursor is the start of the listing.
func (c Cursor) IsZero() bool { return c.ID == "" }

// Encode returns the opaque string form of the cursor.
func (c Cursor) Encode() string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor parses a cursor from Encode; "" is the zero Cursor.
func DecodeCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), ".")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return Cursor{}, ErrBadCursor
	}
	if _, err := uuid.Parse(id); err != nil {
		return Cursor{}, ErrBadCursor
	}
	// A tampered position outside the years a database DATETIME holds
	// would fail the query instead of listing nothing.
	at := time.UnixMicro(micros).UTC()
	if at.Year() < 1 || at.Year() > 9999 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{CreatedAt: at, ID: id}, nil
}

// Page is one page of a listing.
type Page struct {
	Items []*Image
	Next  *Cursor
}

// MaxPageSize caps the limit of a listing; a larger limit gets this many.
const MaxPageSize = 100

// List returns a page of a user's images, newest first.
func (s *Service) List(ctx context.Context, userID string, after Cursor, limit int) (Page, error) {
	if limit < 1 {
		return Page{}, ErrBadLimit
	}
	limit = min(limit, MaxPageSize)
	items, err := s.catalog.ListImages(ctx, userID, after, limit+1)
	if err != nil {
		return Page{}, err
	}
	return s.page(ctx, items, limit)
}

// page cuts a listing fetched with limit+1 rows into a page and presigns its
// variant URLs.
func (s *Service) page(ctx context.Context, items []*Image, limit int) (Page, error) {
	var page Page
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		page.Next = &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	for _, img := range items {
		if err := s.presign(ctx, img); err != nil {
			return Page{}, err
		}
	}
	page.Items = items
	return page, nil
}

// Delete removes a user's image: its objects first, then its row, so that a
// failure half-way leaves a row the user can delete again rather than
// objects nobody knows about.
func (s *Service) Delete(ctx context.Context, userID, id string) error {
	img, err := s.owned(ctx, userID, id)
	if err != nil {
		return err
	}
	if err := s.blobs.DeletePrefix(ctx, VariantPrefix(img.UserID, img.ID)); err != nil {
		return unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete variants: %w", err))
	}
	if err := s.blobs.DeletePrefix(ctx, img.OriginalKey()); err != nil {
		return unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete original: %w", err))
	}
	if err := s.catalog.DeleteImage(ctx, img.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Process makes every variant of an image and records them. It is safe to
// run more than once for one image (at-least-once delivery): keys are
// deterministic, variant rows are upserted and the final update is fenced.
//
// An error wrapping ErrUndecodable is permanent: the image has already been
// marked failed and the task must not be retried.
func (s *Service) Process(ctx context.Context, id string) error {
	s.obs.InFlight(1)
	defer s.obs.InFlight(-1)
	result, pixels, err := s.process(ctx, id)
	s.obs.Finished(result, pixels)
	return err
}

// errBusy is a task for an image this process is still working on: asynq
// gives a timed-out task's slot (and the retry of the same image) to a new
// task while the old one is still stopping.
var errBusy = errors.New("the image is still being processed by this process")

func (s *Service) process(ctx context.Context, id string) (result string, pixels int64, err error) {
	if _, busy := s.busy.LoadOrStore(id, true); busy {
		return ResultRetry, 0, errBusy
	}
	defer s.busy.Delete(id)
	start := time.Now()
	img, err := s.ledger.ClaimImage(ctx, id, s.now().Add(s.cfg.Lease))
	if errors.Is(err, ErrNotClaimable) {
		// Already finished (or deleted). Notify again: a worker may have died
		// between the final update and the notification, and notifying is
		// idempotent.
		s.log.InfoContext(ctx, "image not claimable, nothing to process")
		if err := s.notifyFinished(ctx, id); err != nil {
			return ResultRetry, 0, err
		}
		return ResultSkipped, 0, nil
	}
	if err != nil {
		s.obs.DependencyError(StageDatabase)
		return ResultRetry, 0, fmt.Errorf("claim image: %w", err)
	}
	pixels = int64(img.Width) * int64(img.Height)
	if img.Crashes >= s.cfg.MaxCrashes {
		return s.fail(ctx, img, pixels, ErrProcessingCrashed)
	}
	src, err := s.blobs.Get(ctx, img.OriginalKey())
	if err != nil {
		s.obs.DependencyError("s3")
		return s.retry(ctx, img, pixels, fmt.Errorf("get original: %w", err))
	}
	start = s.stage(StageFetch, start)

	// The upload checked the header; check again what is about to be
	// decoded: an original stored before a check existed, or by another
	// path, gets the same limits.
	if _, err := InspectBytes(src, s.cfg.AcceptedTypes, s.cfg.MaxPixels); err != nil {
		fe := failure.As(err)
		if fe == nil {
			fe = ErrUndecodable
		}
		return s.fail(ctx, img, pixels, failure.Wrap(failure.Unprocessable, fe.Code, fe.Message, err))
	}
	renditions, err := s.resizer.Resize(ctx, src, s.cfg.Variants)
	if failure.KindOf(err) == failure.Unprocessable {
		return s.fail(ctx, img, pixels, err)
	}
	if err != nil {
		return s.retry(ctx, img, pixels, fmt.Errorf("resize: %w", err))
	}
	var encode time.Duration
	for _, r := range renditions {
		encode += r.EncodeTime
	}
	s.obs.Stage(StageDecodeResize, time.Since(start)-encode)
	s.obs.Stage(StageEncode, encode)
	start = time.Now()

	variants, err := s.uploadRenditions(ctx, img, renditions)
	if err != nil {
		s.obs.DependencyError("s3")
		return s.retry(ctx, img, pixels, err)
	}
	start = s.stage(StageUpload, start)

	err = s.ledger.CompleteImage(ctx, id, img.Attempt, variants)
	s.stage(StageDatabase, start)
	switch {
	case errors.Is(err, ErrLeaseLost):
		s.log.InfoContext(ctx, "lease lost, a newer attempt owns the image", "claimed_attempt", img.Attempt)
		return ResultSkipped, pixels, nil
	case errors.Is(err, ErrNotFound):
		// Deleted while we worked: remove what we uploaded after the delete.
		s.log.InfoContext(ctx, "image deleted during processing")
		if err := s.blobs.DeletePrefix(ctx, VariantPrefix(img.UserID, img.ID)); err != nil {
			s.obs.DependencyError("s3")
			return ResultRetry, pixels, fmt.Errorf("remove variants of deleted image: %w", err)
		}
		return ResultSkipped, pixels, nil
	case err != nil:
		s.obs.DependencyError(StageDatabase)
		return s.retry(ctx, img, pixels, fmt.Errorf("complete image: %w", err))
	}
	if err := s.notifyFinished(ctx, id); err != nil {
		return ResultRetry, pixels, err
	}
	return ResultDone, pixels, nil
}

// ErrProcessingCrashed fails an image whose processing ended without a word
// Config.MaxCrashes times: its worker was killed or stuck each time.
var ErrProcessingCrashed = failure.New(failure.Unprocessable, "processing_crashed",
	"processing this image stopped its worker several times")

// fail marks a claimed image failed for good, with the code and message of
// cause (a failure.Error), and notifies. The error returned is cause, which
// the queue does not retry.
func (s *Service) fail(ctx context.Context, img *Image, pixels int64, cause error) (string, int64, error) {
	fe := failure.As(cause)
	if err := s.ledger.FailImage(ctx, img.ID, img.Attempt, fe.Code, fe.Message); err != nil && !errors.Is(err, ErrLeaseLost) {
		s.obs.DependencyError(StageDatabase)
		return s.retry(ctx, img, pixels, fmt.Errorf("mark failed: %w", err))
	}
	if err := s.notifyFinished(ctx, img.ID); err != nil {
		return ResultRetry, pixels, err // retried: the next attempt notifies again
	}
	return ResultFailed, pixels, cause
}

// retry puts a claimed image back to queued before its task is retried, so
// that the next claim does not count this attempt as a crash. A release
// that fails (the database is down) leaves it processing: one crash too
// many counted, against an image that may then fail a little early.
func (s *Service) retry(ctx context.Context, img *Image, pixels int64, cause error) (string, int64, error) {
	if err := s.ledger.ReleaseImage(context.WithoutCancel(ctx), img.ID, img.Attempt); err != nil && !errors.Is(err, ErrLeaseLost) {
		s.log.WarnContext(ctx, "release image for its retry", "err", err)
	}
	return ResultRetry, pixels, cause
}

// notifyFinished tells the notifier about an image that is done or failed,
// with presigned variant URLs, and then clears the image's pending
// notification. Any other state, or a missing image, is nothing to tell. A
// notification that fails stays pending: the task's next attempt, or after
// the last one Reconcile, tells it again (the notifier is idempotent).
func (s *Service) notifyFinished(ctx context.Context, id string) error {
	img, err := s.catalog.Image(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read finished image: %w", err)
	}
	if img.Status != StatusDone && img.Status != StatusFailed {
		return nil
	}
	if s.notifier != nil {
		if err := s.presign(ctx, img); err != nil {
			return err
		}
		if err := s.notifier.ImageFinished(ctx, img); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	if err := s.ledger.MarkNotified(ctx, id, img.Attempt); err != nil {
		return err
	}
	return nil
}

// stage records the time since start for a stage and returns now.
func (s *Service) stage(name string, start time.Time) time.Time {
	now := time.Now()
	s.obs.Stage(name, now.Sub(start))
	return now
}

func (s *Service) uploadRenditions(ctx context.Context, img *Image, rs []Rendition) ([]Variant, error) {
	variants := make([]Variant, len(rs))
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		key := VariantPrefix(img.UserID, img.ID) + r.Name + "." + r.Ext
		variants[i] = Variant{
			Name: r.Name, Width: r.Width, Height: r.Height,
			Bytes: int64(len(r.Data)), ContentType: r.ContentType, Key: key,
		}
		wg.Go(func() {
			if err := s.blobs.Put(ctx, key, bytes.NewReader(r.Data), int64(len(r.Data)), r.ContentType); err != nil {
				errs[i] = fmt.Errorf("put variant %s: %w", key, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return variants, nil
}

// GiveUp marks an image failed after its last retry.
func (s *Service) GiveUp(ctx context.Context, id string, cause error) error {
	err := s.ledger.FailImage(ctx, id, 0, "processing_failed", "the image could not be processed after several attempts")
	if err != nil && !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("mark failed: %w", err)
	}
	s.log.WarnContext(ctx, "image failed after last retry", "err", cause)
	return s.notifyFinished(ctx, id)
}

// Reconcile enqueues again the images that were left queued (a crash
// between commit and enqueue) or whose processing lease ran out (a worker
// that died), and notifies the finished images whose notification failed
// after their task's last attempt. It returns how many images it handled.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	now := s.now()
	n, err := s.requeue(ctx, now.Add(-s.cfg.StaleAfter), now)
	if err != nil {
		return n, err
	}
	ids, err := s.ledger.UnnotifiedImages(ctx, now.Add(-s.cfg.StaleAfter), 500)
	if err != nil {
		return n, fmt.Errorf("list unnotified images: %w", err)
	}
	for _, id := range ids {
		if err := s.notifyFinished(ctx, id); err != nil {
			return n, fmt.Errorf("notify %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// RequeueUnfinished enqueues again every image not done or failed, whatever
// its age or lease. Only a process that knows it is the sole worker and that
// the queue lost its tasks (an embedded Redis that restarted) may call it.
func (s *Service) RequeueUnfinished(ctx context.Context) (int, error) {
	forever := s.now().Add(100 * 365 * 24 * time.Hour)
	return s.requeue(ctx, forever, forever)
}

func (s *Service) requeue(ctx context.Context, queuedBefore, leaseBefore time.Time) (int, error) {
	ids, err := s.ledger.StaleImages(ctx, queuedBefore, leaseBefore, 500)
	if err != nil {
		return 0, fmt.Errorf("list stale images: %w", err)
	}
	for i, id := range ids {
		if err := s.queue.EnqueueProcess(ctx, id); err != nil {
			return i, fmt.Errorf("re-enqueue %s: %w", id, err)
		}
	}
	return len(ids), nil
}

// CleanFilename keeps the base name of a client-supplied file name, without
// control characters or bidirectional controls (a right-to-left override
// shows "invoice\u202Egpj.exe" as "invoiceexe.jpg"), at most 255 bytes of
// valid UTF-8.
func CleanFilename(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	if name == "." || name == "/" {
		name = ""
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return strings.TrimSpace(name)
}

func unavailable(code, message string, err error) error {
	return failure.Wrap(failure.Unavailable, code, message, err)
}
