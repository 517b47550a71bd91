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
	"strings"
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
	switch {
	case len(os.Args) > 1 && os.Args[1] == "migrate":
		// `api migrate` applies the migrations alone, for deployments that
		// run them as a separate step (MIGRATE_ON_START=false).
		err = gormstore.Migrate(ctx, cfg.DB.URL)
	case len(os.Args) > 1:
		err = fmt.Errorf("unknown command %q; commands: migrate", os.Args[1])
	default:
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
	deps, err := wiring.Open(ctx, &cfg, cfg.RunMigrations || cfg.Embedded.Database, log)
	if err != nil {
		return err
	}
	defer deps.Close()
	if cfg.Embedded.Any() {
		// Quickstart: nobody else can reach the embedded servers, so this
		// process is the worker too.
		stopWorker, err := wiring.StartWorker(ctx, cfg, deps, log)
		if err != nil {
			return err
		}
		defer stopWorker()
	}

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
	if cfg.Embedded.Any() {
		fmt.Fprint(os.Stderr, quickstartBanner(cfg.HTTPAddr))
	}

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

// quickstartBanner tells a newcomer where the service is and how to try it.
func quickstartBanner(addr string) string {
	host := addr
	if strings.HasPrefix(host, ":") {
		host = "localhost" + host
	}
	return fmt.Sprintf(`
imagesvc is running at http://%[1]s (quickstart: embedded database, Redis and S3 under ./data)

  curl -s http://%[1]s/v1/auth/signup -H 'Content-Type: application/json' \
    -d '{"email":"me@example.com","password":"correct horse battery"}'
  TOKEN=$(curl -s http://%[1]s/v1/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"me@example.com","password":"correct horse battery"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s http://%[1]s/v1/images -H "Authorization: Bearer $TOKEN" -F file=@photo.jpg

`, host)
}
