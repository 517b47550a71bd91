package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// Processor is the image domain as a worker runs it: it makes the variants
// of images, gives up on those that keep failing, and repairs what crashes
// left behind (Reconcile).
type Processor struct {
	catalog   Catalog
	ledger    Ledger
	inventory Inventory
	backfills Backfills
	blobs     Blobs
	queue     Queue
	resizer   Resizer
	notifier  Notifier
	uploads   Uploads
	staging   Staging
	obs       Observer
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	// busy holds the ids of the images this process is processing.
	busy sync.Map
}

// ProcessorDeps are the adapters a Processor works with. Observer and
// Notifier may be nil (no measurements, nobody to tell), and Inventory and
// Backfills (the backfill's); the rest are required.
type ProcessorDeps struct {
	Catalog   Catalog
	Ledger    Ledger
	Inventory Inventory
	Backfills Backfills
	Blobs     Blobs
	Queue     Queue
	Resizer   Resizer
	Observer  Observer
	Notifier  Notifier
	// Uploads and Staging, when set, let Reconcile expire unfinished
	// uploads straight to object storage.
	Uploads Uploads
	Staging Staging
}

// NewProcessor returns a Processor.
func NewProcessor(d ProcessorDeps, cfg Config, log *slog.Logger) *Processor {
	obs := d.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	return &Processor{
		catalog: d.Catalog, ledger: d.Ledger, inventory: d.Inventory, backfills: d.Backfills, blobs: d.Blobs, queue: d.Queue,
		resizer: d.Resizer, notifier: d.Notifier, uploads: d.Uploads, staging: d.Staging, obs: obs, cfg: cfg, log: log, now: time.Now,
	}
}

// Process makes every variant of an image and records them. It is safe to
// run more than once for one image (at-least-once delivery): keys are
// deterministic, variant rows are upserted and the final update is fenced.
//
// An error wrapping ErrUndecodable is permanent: the image has already been
// marked failed and the task must not be retried.
func (s *Processor) Process(ctx context.Context, id string) error {
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

func (s *Processor) process(ctx context.Context, id string) (result string, pixels int64, err error) {
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
	if _, err := sniff.InspectBytes(src, s.cfg.AcceptedTypes, s.cfg.MaxPixels); err != nil {
		fe := failure.As(err)
		if fe == nil {
			fe = ErrUndecodable
		}
		return s.fail(ctx, img, pixels, failure.Wrap(failure.Unprocessable, fe.Code, fe.Message, err))
	}
	completion, err := s.render(ctx, img, src, start)
	if failure.KindOf(err) == failure.Unprocessable {
		return s.fail(ctx, img, pixels, err)
	}
	if err != nil {
		return s.retry(ctx, img, pixels, err)
	}
	start = time.Now()
	replaced, err := s.ledger.CompleteImage(ctx, id, img.Attempt, completion)
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
	s.removeReplaced(ctx, replaced)
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
func (s *Processor) fail(ctx context.Context, img *Image, pixels int64, cause error) (string, int64, error) {
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
func (s *Processor) retry(ctx context.Context, img *Image, pixels int64, cause error) (string, int64, error) {
	if err := s.ledger.ReleaseImage(context.WithoutCancel(ctx), img.ID, img.Attempt); err != nil && !errors.Is(err, ErrLeaseLost) {
		s.log.WarnContext(ctx, "release image for its retry", "err", err)
	}
	return ResultRetry, pixels, cause
}

// notifyFinished tells the notifier about an image that is done or failed,
// with its stable variant URLs, and then clears the image's pending
// notification. Any other state, or a missing image, is nothing to tell. A
// notification that fails stays pending: the task's next attempt, or after
// the last one Reconcile, tells it again (the notifier is idempotent).
func (s *Processor) notifyFinished(ctx context.Context, id string) error {
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
		if err := link(img, s.cfg, s.now()); err != nil {
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
func (s *Processor) stage(name string, start time.Time) time.Time {
	now := time.Now()
	s.obs.Stage(name, now.Sub(start))
	return now
}

// render makes the variants of a fetched original (start is when the
// fetch began) and stores them: the completion to record. A source that
// cannot be decoded is a failure.Unprocessable error.
func (s *Processor) render(ctx context.Context, img *Image, src []byte, start time.Time) (Completion, error) {
	r, err := s.resizer.Render(ctx, src, s.cfg.Variants)
	if failure.KindOf(err) == failure.Unprocessable {
		return Completion{}, err
	}
	if err != nil {
		return Completion{}, fmt.Errorf("resize: %w", err)
	}
	var encode time.Duration
	for _, r := range r.Renditions {
		encode += r.EncodeTime
	}
	s.obs.Stage(StageDecodeResize, time.Since(start)-encode)
	s.obs.Stage(StageEncode, encode)
	start = time.Now()
	variants, err := s.uploadRenditions(ctx, img, r.Renditions)
	if err != nil {
		s.obs.DependencyError("s3")
		return Completion{}, err
	}
	s.stage(StageUpload, start)
	return Completion{Variants: variants, Placeholder: r.Placeholder, DominantColor: r.DominantColor,
		Profile: s.cfg.Profile()}, nil
}

// removeReplaced deletes the objects of a variant set that a new one
// replaced. One that cannot be deleted stays under the image's prefix,
// which the image's deletion removes; nothing refers to it meanwhile.
func (s *Processor) removeReplaced(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	if err := s.blobs.Delete(ctx, keys); err != nil {
		s.obs.DependencyError("s3")
		s.log.WarnContext(ctx, "remove replaced variants", "keys", len(keys), "err", err)
	}
}

// uploadRenditions stores every rendition under a key named by its content
// and returns the variants they make up, their base format first.
func (s *Processor) uploadRenditions(ctx context.Context, img *Image, rs []Rendition) ([]Variant, error) {
	var variants []Variant
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		key := VariantKey(img.UserID, img.ID, r.Name, r.Data, r.Ext)
		f := VariantFormat{ContentType: r.ContentType, Bytes: int64(len(r.Data)), Key: key}
		if n := len(variants); n > 0 && variants[n-1].Name == r.Name {
			variants[n-1].Formats = append(variants[n-1].Formats, f)
		} else {
			variants = append(variants, Variant{
				Name: r.Name, Width: r.Width, Height: r.Height,
				Bytes: f.Bytes, ContentType: f.ContentType, Key: key, Formats: []VariantFormat{f},
			})
		}
		wg.Go(func() {
			if err := s.blobs.PutVariant(ctx, key, bytes.NewReader(r.Data), int64(len(r.Data)), r.ContentType); err != nil {
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
func (s *Processor) GiveUp(ctx context.Context, id string, cause error) error {
	err := s.ledger.FailImage(ctx, id, 0, "processing_failed", "the image could not be processed after several attempts")
	if err != nil && !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("mark failed: %w", err)
	}
	s.log.WarnContext(ctx, "image failed after last retry", "err", cause)
	return s.notifyFinished(ctx, id)
}
