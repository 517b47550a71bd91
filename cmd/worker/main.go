// Command worker processes images: it takes image:process tasks from Redis,
// makes the variants with libvips, stores them in S3 and marks the image
// done in MySQL. Run as many replicas as the load needs.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imagesvc/imagesvc/cmd/internal/wiring"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/queue"
)

func main() {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := wiring.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("worker stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.InfoContext(ctx, "starting worker", append(cfg.Redacted(), "libvips", imaging.VipsVersion())...)
	// The API owns the schema; a worker only checks it can connect.
	deps, err := wiring.Open(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer deps.Close()

	images := image.NewService(image.Deps{
		Catalog: deps.Store, Ledger: deps.Store, Blobs: deps.Blobs,
		Queue: queue.NewEnqueuer(deps.Redis, cfg.Queue), Resizer: imaging.New(cfg.Imaging),
	}, cfg.Image, log)
	srv := queue.NewServer(deps.Redis, cfg.Queue, log)
	if err := srv.Start(queue.NewMux(queue.NewImageHandler(images, log))); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.Handle("GET /metrics", promhttp.Handler())
	ops := &http.Server{Addr: cfg.WorkerHTTPAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := ops.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker http server", "err", err)
		}
	}()

	go reconcile(ctx, images, cfg.ReconcileEvery, log)
	log.InfoContext(ctx, "worker running", "concurrency", cfg.Queue.Concurrency, "http_addr", cfg.WorkerHTTPAddr)
	<-ctx.Done()

	log.Info("shutting down worker", "timeout", cfg.Queue.ShutdownTimeout)
	// Shutdown stops dequeuing, waits for running tasks up to the timeout
	// and leaves the rest to be redelivered.
	srv.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ops.Shutdown(shutdownCtx)
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
