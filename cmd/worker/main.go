// Command worker processes images: it takes image:process tasks from Redis,
// makes the variants with libvips, stores them in S3 and marks the image
// done in MySQL. Run as many replicas as the load needs.
//
// Commands: `worker` processes; `worker healthcheck` exits 0 when the worker
// on WORKER_HTTP_ADDR answers /healthz (the container health check).
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
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/metrics"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" {
		if err := health.Probe(context.Background(), config.ListenAddr(config.Worker)); err != nil {
			fmt.Fprintf(os.Stderr, "worker healthcheck: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: worker [healthcheck]")
		os.Exit(2)
	}
	// The configuration refuses QUICKSTART=true and missing dependencies: a
	// separate worker cannot reach the servers another process embeds.
	cfg, err := config.Load(config.Worker)
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
	deps, err := wiring.Open(ctx, &cfg, false, log)
	if err != nil {
		return err
	}
	defer deps.Close()

	reg := metrics.NewRegistry()
	stopWorker, err := wiring.StartWorker(ctx, cfg, deps, reg, log)
	if err != nil {
		return err
	}
	drain := &health.Drain{}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", health.Live())
	mux.Handle("GET /healthz/ready", drain.Handler())
	mux.Handle("GET /readyz", health.Ready(deps.Checks(), log))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ops := &http.Server{Addr: cfg.WorkerHTTPAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := ops.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker http server", "err", err)
		}
	}()
	log.InfoContext(ctx, "worker running", "concurrency", cfg.Queue.Concurrency, "http_addr", cfg.WorkerHTTPAddr)
	<-ctx.Done()

	drain.Begin()
	log.Info("shutting down worker", "timeout", cfg.Queue.ShutdownTimeout)
	stopWorker()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ops.Shutdown(shutdownCtx)
}
