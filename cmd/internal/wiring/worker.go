package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/queue"
)

// StartWorker starts processing images on deps: the asynq server and the
// reconciler. cmd/worker runs it alone; the quickstart API runs it in its
// own process. The returned function stops dequeuing, lets running tasks
// finish within the shutdown timeout, and returns.
func StartWorker(ctx context.Context, cfg config.Config, deps *Deps, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	images := image.NewService(image.Deps{
		Catalog: deps.Store, Ledger: deps.Store, Blobs: deps.Blobs,
		Queue: queue.NewEnqueuer(deps.Redis, cfg.Queue), Resizer: imaging.New(cfg.Imaging),
		Observer: metrics.NewProcessing(reg),
	}, cfg.Image, log)
	if cfg.Embedded.Redis {
		// An embedded Redis starts empty: every unfinished image lost its
		// task, and this process is the only worker.
		n, err := images.RequeueUnfinished(ctx)
		if err != nil {
			return nil, fmt.Errorf("requeue unfinished images: %w", err)
		}
		if n > 0 {
			log.InfoContext(ctx, "re-enqueued unfinished images", "count", n)
		}
	}
	srv := queue.NewServer(deps.Redis, cfg.Queue, log)
	if err := srv.Start(queue.NewMux(queue.NewImageHandler(images, log))); err != nil {
		return nil, fmt.Errorf("start asynq server: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		reconcile(rctx, images, cfg.ReconcileEvery, log)
	}()
	return func() {
		cancel()
		<-done
		srv.Shutdown()
	}, nil
}

// reconcile periodically re-enqueues images left queued or whose lease ran
// out. Several workers doing it at once is harmless: the task id is the
// image id, so a second enqueue is refused.
func reconcile(ctx context.Context, images *image.Service, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := images.Reconcile(ctx)
			if err != nil {
				log.WarnContext(ctx, "reconcile", "err", err)
			} else if n > 0 {
				log.InfoContext(ctx, "re-enqueued stale images", "count", n)
			}
		}
	}
}
