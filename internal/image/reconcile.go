package image

import (
	"context"
	"fmt"
	"time"
)

// Reconcile enqueues again the images that were left queued (a crash
// between commit and enqueue) or whose processing lease ran out (a worker
// that died), and notifies the finished images whose notification failed
// after their task's last attempt, and expires unfinished uploads. It
// returns how many images and uploads it handled.
func (s *Processor) Reconcile(ctx context.Context) (int, error) {
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
	expired, err := s.expireUploads(ctx, now)
	if err != nil {
		return n, fmt.Errorf("expire uploads: %w", err)
	}
	return n + expired, nil
}

// RequeueUnfinished enqueues again every image not done or failed, whatever
// its age or lease. Only a process that knows it is the sole worker and that
// the queue lost its tasks (an embedded Redis that restarted) may call it.
func (s *Processor) RequeueUnfinished(ctx context.Context) (int, error) {
	forever := s.now().Add(100 * 365 * 24 * time.Hour)
	return s.requeue(ctx, forever, forever)
}

func (s *Processor) requeue(ctx context.Context, queuedBefore, leaseBefore time.Time) (int, error) {
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
