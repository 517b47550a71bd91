package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/eventstream"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/idempotency"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/queue"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// Worker processes tasks on a process's dependencies.
type Worker struct {
	// Images processes, gives up on and reconciles images.
	Images *image.Processor
	// Webhooks delivers the events of finished images.
	Webhooks *webhook.Service
	// Accounts finishes the account deletions that stopped half-way.
	Accounts *auth.Accounts
	stop     func()
}

// StartWorker starts processing images on deps: the asynq server and the
// reconciler. cmd/worker runs it alone; the quickstart API runs it in its
// own process. reg receives the processing metrics.
func StartWorker(ctx context.Context, cfg config.Config, deps *Deps, reg prometheus.Registerer, log *slog.Logger) (*Worker, error) {
	resizing := imaging.FromImage(cfg.Image)
	if err := resizing.Validate(); err != nil {
		return nil, err
	}
	enqueuer := queue.NewEnqueuer(deps.Redis, cfg.Queue)
	hooks := newWebhooks(cfg, deps, enqueuer, reg, log)
	images := image.NewProcessor(image.ProcessorDeps{
		Catalog: deps.Store, Ledger: deps.Store, Inventory: deps.Store, Backfills: enqueuer, Blobs: deps.Blobs,
		Queue: enqueuer, Resizer: imaging.New(resizing),
		Observer: metrics.NewProcessing(reg),
		// Webhooks first: they are idempotent on the event's id, so a
		// retry after the stream's error repeats nothing.
		Notifier: image.Notifiers{hooks, eventstream.New(deps.Redis, eventstream.NewDefaultConfig())},
		Uploads:  deps.Store, Staging: deps.Blobs,
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
	if err := srv.Start(queue.NewMux(queue.NewImageHandler(images, log), queue.NewWebhookHandler(hooks, log),
		queue.NewBackfillHandler(images, deps.Redis, log))); err != nil {
		return nil, fmt.Errorf("start asynq server: %w", err)
	}
	accounts := newAccounts(cfg, deps, nil, log)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		reconcile(rctx, []reconciler{images, hooks, expireKeys{deps.Store}, accounts}, cfg.ReconcileEvery, log)
	}()
	return &Worker{Images: images, Webhooks: hooks, Accounts: accounts, stop: func() {
		cancel()
		<-done
		srv.Shutdown()
	}}, nil
}

// Stop stops dequeuing, lets running tasks finish within the shutdown
// timeout, and returns.
func (w *Worker) Stop() { w.stop() }

// expireKeys deletes the Idempotency-Key records older than their day.
type expireKeys struct{ store idempotency.Store }

func (e expireKeys) Reconcile(ctx context.Context) (int, error) {
	n, err := e.store.Expire(ctx, time.Now().Add(-idempotency.TTL))
	return int(n), err
}

// reconciler re-enqueues work whose task was lost.
type reconciler interface {
	Reconcile(ctx context.Context) (int, error)
}

// reconcile periodically re-enqueues images left queued or whose lease ran
// out, and webhook deliveries that are overdue, and finishes account
// deletions that stopped. Several workers doing it at once is harmless:
// task ids name the image or delivery, so a second enqueue is refused, and
// every step of an account's removal can be repeated.
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

// newWebhooks returns the webhook service on deps.
func newWebhooks(cfg config.Config, deps *Deps, enqueuer *queue.Enqueuer, reg prometheus.Registerer, log *slog.Logger) *webhook.Service {
	var obs webhook.Observer
	if reg != nil {
		obs = metrics.NewWebhooks(reg)
	}
	return webhook.NewService(deps.Store, deps.Store, enqueuer, cfg.Webhook, obs, log)
}

// RunWorker is the worker process: it processes tasks until ctx ends, with
// /healthz, /healthz/ready, /readyz and /metrics on cfg.WorkerHTTPAddr,
// then stops dequeuing and lets running tasks finish.
func RunWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.InfoContext(ctx, "starting worker", append(cfg.Redacted(), "libvips", imaging.VipsVersion())...)
	// The API owns the schema; a worker only checks it can connect.
	deps, err := Open(ctx, &cfg, false, log)
	if err != nil {
		return err
	}
	defer deps.Close()

	reg := metrics.NewRegistry()
	worker, err := StartWorker(ctx, cfg, deps, reg, log)
	if err != nil {
		return err
	}
	drain := &health.Drain{}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", health.Live())
	mux.Handle("GET /healthz/ready", drain.Handler())
	mux.Handle("GET /readyz", health.Ready(deps.Checks(), log))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	errc := make(chan error, 1)
	ops, err := serve(cfg.WorkerHTTPAddr, mux, &http.Server{}, errc, log)
	if err != nil {
		worker.Stop()
		return err
	}
	log.InfoContext(ctx, "worker running", "concurrency", cfg.Queue.Concurrency, "http_addr", ops.Addr)
	select {
	case err = <-errc:
		err = fmt.Errorf("worker http server: %w", err)
	case <-ctx.Done():
	}

	drain.Begin()
	log.Info("shutting down worker", "timeout", cfg.Queue.ShutdownTimeout)
	worker.Stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, ops.Shutdown(shutdownCtx))
}
