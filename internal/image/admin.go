package image

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// ErrNotReprocessable is returned when a user asks to reprocess an image
// that has not failed.
var ErrNotReprocessable = failure.New(failure.Conflict, "not_reprocessable", "only failed images can be reprocessed")

// Reprocess runs processing again, with the current variant settings, for
// a failed image of the user's. Its old variants are removed and it goes
// back to queued.
func (s *Service) Reprocess(ctx context.Context, userID, id string) (*Image, error) {
	img, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if img.Status != StatusFailed {
		return nil, ErrNotReprocessable
	}
	return s.reprocess(ctx, img)
}

// AdminReprocess runs processing again for any image, whatever its status
// and owner (an operator's tool: after a fix, or new variant settings).
func (s *Service) AdminReprocess(ctx context.Context, id string) (*Image, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrNotFound
	}
	img, err := s.catalog.Image(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.reprocess(ctx, img)
}

func (s *Service) reprocess(ctx context.Context, img *Image) (*Image, error) {
	if err := s.ledger.RequeueImage(ctx, img.ID); err != nil {
		return nil, err
	}
	// The image is queued now, so no URL points at these any more.
	if err := s.blobs.DeletePrefix(ctx, VariantPrefix(img.UserID, img.ID)); err != nil {
		return nil, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete old variants: %w", err))
	}
	if err := s.queue.EnqueueProcess(ctx, img.ID); err != nil {
		// The row is queued: the reconciler will enqueue it.
		return nil, unavailable("queue_unavailable", "the job queue is unavailable", fmt.Errorf("enqueue image: %w", err))
	}
	return s.catalog.Image(ctx, img.ID)
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
	// Backfill says how many done images the backfill has left.
	Backfill BackfillStatus
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
	backfill, err := s.BackfillStatus(ctx)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Images: counts, Queues: depths, Backfill: backfill}, nil
}
