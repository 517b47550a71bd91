package image

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// The backfill re-processes the done images whose variants were made with
// another profile (VARIANTS or VARIANT_FORMATS changed since). It runs in
// tasks of its own, behind new uploads: a scan lists outdated images a page
// at a time and enqueues one task per image, and each image keeps serving
// its old variants until its new set is recorded. It can be stopped at any
// point: what it has not reached still has an older profile, so starting it
// again picks up where it was.

// backfillPage is how many images a scan enqueues at a time.
const backfillPage = 100

// BackfillStatus is what an operator sees of the backfill.
type BackfillStatus struct {
	// Profile is the configured profile, the one the backfill makes.
	Profile string
	// Outdated counts the done images of another profile: what is left.
	Outdated int64
}

// StartBackfill starts re-processing every done image whose profile is not
// the configured one, and returns how many there are. Starting it while it
// runs is harmless: each image is queued once.
func (s *Service) StartBackfill(ctx context.Context) (BackfillStatus, error) {
	st, err := s.BackfillStatus(ctx)
	if err != nil {
		return st, err
	}
	if s.backfills == nil {
		return st, errors.New("no backfill queue")
	}
	if err := s.backfills.EnqueueBackfillScan(ctx, st.Profile, ""); err != nil {
		return st, unavailable("queue_unavailable", "the job queue is unavailable", fmt.Errorf("enqueue backfill: %w", err))
	}
	return st, nil
}

// BackfillStatus returns the configured profile and how many done images
// have another.
func (s *Service) BackfillStatus(ctx context.Context) (BackfillStatus, error) {
	st := BackfillStatus{Profile: s.cfg.Profile()}
	n, err := s.inventory.CountOutdated(ctx, st.Profile)
	if err != nil {
		return st, err
	}
	st.Outdated = n
	return st, nil
}

// ErrOtherProfile is a backfill task for another profile than this
// worker's: another worker (of a newer or older deployment) is to run it.
var ErrOtherProfile = errors.New("the backfill task is for another variant profile than this worker's")

// BackfillScan enqueues the backfill of up to a page of outdated images
// after afterID, and the scan of the next page when this one was full.
func (s *Processor) BackfillScan(ctx context.Context, profile, afterID string) (int, error) {
	if profile != s.cfg.Profile() {
		return 0, ErrOtherProfile
	}
	if s.inventory == nil || s.backfills == nil {
		return 0, errors.New("this processor has no inventory or backfill queue")
	}
	ids, err := s.inventory.OutdatedImages(ctx, profile, afterID, backfillPage)
	if err != nil {
		return 0, fmt.Errorf("list outdated images: %w", err)
	}
	for _, id := range ids {
		if err := s.backfills.EnqueueBackfill(ctx, id, profile); err != nil {
			return 0, fmt.Errorf("enqueue backfill of %s: %w", id, err)
		}
	}
	if len(ids) == backfillPage {
		if err := s.backfills.EnqueueBackfillScan(ctx, profile, ids[len(ids)-1]); err != nil {
			return len(ids), fmt.Errorf("enqueue next backfill scan: %w", err)
		}
	}
	return len(ids), nil
}

// Backfill makes an outdated image's variants again with this worker's
// profile. Unlike a reprocessing, the image stays done and keeps serving
// its old variants until the new set is recorded (fenced on the attempt it
// read, so that a reprocessing or deletion meanwhile wins); the old
// objects are removed then. An image not done, gone or already of the
// profile is nothing to do.
func (s *Processor) Backfill(ctx context.Context, id, profile string) error {
	if profile != s.cfg.Profile() {
		return ErrOtherProfile
	}
	if _, busy := s.busy.LoadOrStore(id, true); busy {
		return errBusy
	}
	defer s.busy.Delete(id)
	img, err := s.catalog.Image(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read image: %w", err)
	}
	if img.Status != StatusDone || img.Profile == profile {
		return nil
	}
	start := time.Now()
	src, err := s.blobs.Get(ctx, img.OriginalKey())
	if err != nil {
		s.obs.DependencyError("s3")
		return fmt.Errorf("get original: %w", err)
	}
	s.stage(StageFetch, start)
	if _, err := sniff.InspectBytes(src, s.cfg.AcceptedTypes, s.cfg.MaxPixels); err != nil {
		// It was processed once: a check that refuses it now is a newer
		// limit. Its variants stay as they are.
		s.log.WarnContext(ctx, "backfill skipped: the original fails today's checks", "err", err)
		return nil
	}
	completion, err := s.render(ctx, img, src, time.Now())
	if failure.KindOf(err) == failure.Unprocessable {
		s.log.WarnContext(ctx, "backfill skipped: the original no longer decodes", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	replaced, err := s.ledger.ReplaceVariants(ctx, id, img.Attempt, completion)
	if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound) {
		// Reprocessed or deleted meanwhile: the new set is not recorded.
		// Remove what it does not share with the image as it is now.
		s.log.InfoContext(ctx, "backfill lost to a reprocessing or deletion")
		return s.removeUnrecorded(ctx, id, completion.Variants)
	}
	if err != nil {
		s.obs.DependencyError(StageDatabase)
		return fmt.Errorf("replace variants: %w", err)
	}
	s.removeReplaced(ctx, replaced)
	return nil
}

// removeUnrecorded deletes the objects of a variant set that was not
// recorded, except those the image's recorded set uses too (keys name
// content, so both may hold one).
func (s *Processor) removeUnrecorded(ctx context.Context, id string, variants []Variant) error {
	keep := map[string]bool{}
	img, err := s.catalog.Image(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("read image: %w", err)
	default:
		for _, k := range Keys(img.Variants) {
			keep[k] = true
		}
	}
	var remove []string
	for _, k := range Keys(variants) {
		if !keep[k] {
			remove = append(remove, k)
		}
	}
	s.removeReplaced(ctx, remove)
	return nil
}
