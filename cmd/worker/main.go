// Command worker processes images: it takes image:process tasks from Redis,
// makes the variants with libvips, stores them in S3 and marks the image
// done in MySQL. Run as many replicas as the load needs.
//
// Commands: `worker` processes; `worker healthcheck` exits 0 when the worker
// on WORKER_HTTP_ADDR answers /healthz (the container health check).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/imagesvc/imagesvc/internal/app"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/health"
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
	log := app.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = app.RunWorker(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("worker stopped", "err", err)
		os.Exit(1)
	}
}
