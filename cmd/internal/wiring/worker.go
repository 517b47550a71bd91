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
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// StartWorker starts processing images on deps: the asynq server and the
// reconciler. cmd/worker runs it alone; the quickstart API runs it in its
// own process. The returned function stops dequeuing, lets running tasks
// finish within the shutdown timeout, and returns.
func StartWorker(ctx context.Context, cfg config.Config, deps *Deps, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	enqueuer := queue.NewEnqueuer(deps.Redis, cfg.Queue)
	hooks := NewWebhooks(cfg, deps, enqueuer, reg, log)
	images := image.NewService(image.Deps{
		Catalog: deps.Store, Ledger: deps.Store, Blobs: deps.Blobs,
		Queue: enqueuer, Resizer: imaging.New(cfg.Imaging),
		Observer: metrics.NewProcessing(reg), Notifier: hooks,
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
	if err := srv.Start(queue.NewMux(queue.NewImageHandler(images, log), queue.NewWebhookHandler(hooks, log))); err != nil {
		return nil, fmt.Errorf("start asynq server: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		reconcile(rctx, []reconciler{images, hooks}, cfg.ReconcileEvery, log)
	}()
	return func() {
		cancel()
		<-done
		srv.Shutdown()
	}, nil
}

// reconciler re-enqueues work whose task was lost.
type reconciler interface {
	Reconcile(ctx context.Context) (int, error)
}

// reconcile periodically re-enqueues images left queued or whose lease ran
// out, and webhook deliveries that are overdue. Several workers doing it at
// once is harmless: task ids name the image or delivery, so a second
// enqueue is refused.
func reconcile(ctx context.Context, rs []reconciler, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, r := range rs {
				n, err := r.Reconcile(ctx)
				if err != nil {
					log.WarnContext(ctx, "reconcile", "err", err)
				} else if n > 0 {
					log.InfoContext(ctx, "re-enqueued stale work", "count", n, "kind", fmt.Sprintf("%T", r))
				}
			}
		}
	}
}

// NewWebhooks returns the webhook service on deps.
func NewWebhooks(cfg config.Config, deps *Deps, enqueuer *queue.Enqueuer, reg prometheus.Registerer, log *slog.Logger) *webhook.Service {
	var obs webhook.Observer
	if reg != nil {
		obs = metrics.NewWebhooks(reg)
	}
	return webhook.NewService(deps.Store, deps.Store, enqueuer, cfg.Webhook, obs, log)
}
