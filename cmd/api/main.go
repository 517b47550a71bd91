// Command api serves the imagesvc REST API: it stores uploads in S3, records
// them in MySQL and enqueues their processing on Redis.
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

	"github.com/imagesvc/imagesvc/cmd/internal/wiring"
	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/queue"
)

func main() {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "api: configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := wiring.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		// `api migrate` applies the migrations alone, for deployments that
		// run them as a separate step (MIGRATE_ON_START=false).
		err = gormstore.Migrate(ctx, cfg.DB.URL)
	} else {
		err = run(ctx, cfg, log)
	}
	stop()
	if err != nil {
		log.Error("api stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.InfoContext(ctx, "starting api", cfg.Redacted()...)
	deps, err := wiring.Open(ctx, cfg, cfg.RunMigrations)
	if err != nil {
		return err
	}
	defer deps.Close()

	authSvc, err := auth.NewService(deps.Store, deps.Store, cfg.Auth)
	if err != nil {
		return err
	}
	images := image.NewService(image.Deps{
		Catalog: deps.Store, Ledger: deps.Store, Blobs: deps.Blobs,
		Queue: queue.NewEnqueuer(deps.Redis, cfg.Queue),
	}, cfg.Image, log)
	e := httpapi.New(authSvc, images, deps.Checks(), httpapi.Config{MaxUploadBytes: cfg.Image.MaxUploadBytes}, log)

	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // a 25 MiB upload over a slow link
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.InfoContext(ctx, "api listening", "addr", cfg.HTTPAddr)

	select {
	case err := <-errc:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down api")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
