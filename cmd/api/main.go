// Command api serves the imagesvc REST API: it stores uploads in S3, records
// them in MySQL and enqueues their processing on Redis. With QUICKSTART=true
// it embeds each dependency left unset and is the whole service in one
// process (make run).
//
// Commands: `api` serves; `api migrate` applies the migrations and exits;
// `api promote EMAIL` gives a user the admin role; `api healthcheck` exits 0
// when the API on HTTP_ADDR answers /healthz (the container health check).
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

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/imagesvc/imagesvc/cmd/internal/wiring"
	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/queue"
	"github.com/imagesvc/imagesvc/internal/ratelimit"
)

func main() {
	// The health check needs only the listen address: it must not fail on
	// settings the running process has and the check's environment lacks.
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" {
		if err := health.Probe(context.Background(), config.ListenAddr(config.API)); err != nil {
			fmt.Fprintf(os.Stderr, "api healthcheck: %v\n", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := config.Load(config.API)
	if err != nil {
		fmt.Fprintf(os.Stderr, "api: configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := wiring.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	switch {
	case len(args) == 0:
		err = run(ctx, cfg, log)
	case args[0] == "migrate" && len(args) == 1:
		err = gormstore.Migrate(ctx, cfg.DB.URL)
	case args[0] == "promote" && len(args) == 2:
		err = promote(ctx, cfg, args[1])
		if err == nil {
			fmt.Printf("%s is an admin now; the role is in tokens issued from the next login or refresh\n", args[1])
		}
	default:
		err = errors.New("usage: api [migrate | promote EMAIL | healthcheck]")
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
	reg := metrics.NewRegistry()
	if cfg.Embedded.Any() {
		// Quickstart: nobody else can reach the embedded servers, so this
		// process is the worker too.
		stopWorker, err := wiring.StartWorker(ctx, cfg, deps, reg, log)
		if err != nil {
			return err
		}
		defer stopWorker()
	}

	authSvc, err := auth.NewService(deps.Store, deps.Store, cfg.Auth)
	if err != nil {
		return err
	}
	enqueuer := queue.NewEnqueuer(deps.Redis, cfg.Queue)
	metrics.RegisterQueues(reg, enqueuer.Inspector())
	images := image.NewService(image.Deps{
		Catalog: deps.Store, Ledger: deps.Store, Blobs: deps.Blobs, Queue: enqueuer,
		Inventory: deps.Store, QueueStats: enqueuer,
	}, cfg.Image, log)
	var monitor http.Handler
	if cfg.API.AdminUser != "" {
		redisOpt, err := asynq.ParseRedisURI(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: redisOpt})
		defer mon.Close()
		monitor = mon
	}
	// The webhook service here manages subscriptions; the worker delivers.
	hooks := wiring.NewWebhooks(cfg, deps, enqueuer, nil, log)
	drain := &health.Drain{}
	apiDeps := httpapi.Deps{
		Auth: authSvc, Images: images, Operations: images, Webhooks: hooks, Checks: deps.Checks(), Drain: drain,
		Limiter: ratelimit.New(deps.Redis, "imagesvc:ratelimit:"), Monitor: monitor, Registry: reg,
	}
	e := httpapi.New(apiDeps, cfg.API, log)

	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // a 25 MiB upload over a slow link
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	log.InfoContext(ctx, "api listening", "addr", cfg.HTTPAddr)
	// /metrics and /monitoring on their own port, off the public one.
	var ops *http.Server
	if cfg.OpsHTTPAddr != "" {
		ops = &http.Server{
			Addr: cfg.OpsHTTPAddr, Handler: httpapi.NewOps(apiDeps, cfg.API, log),
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go func() { errc <- ops.ListenAndServe() }()
		log.InfoContext(ctx, "api operations listening", "addr", cfg.OpsHTTPAddr)
	}
	if cfg.Embedded.Any() {
		fmt.Fprint(os.Stderr, quickstartBanner(cfg.HTTPAddr))
	}

	select {
	case err := <-errc:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	// Say "not ready" first and keep serving while load balancers notice,
	// then stop accepting and let in-flight requests finish.
	drain.Begin()
	log.Info("draining api", "delay", cfg.DrainDelay)
	time.Sleep(cfg.DrainDelay)
	log.Info("shutting down api")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if ops != nil {
		defer ops.Shutdown(shutdownCtx)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// promote gives a user the admin role. It needs only the database.
func promote(ctx context.Context, cfg config.Config, email string) error {
	if err := gormstore.Migrate(ctx, cfg.DB.URL); err != nil {
		return err
	}
	db, err := gormstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	store := gormstore.NewStore(db)
	defer store.Close()
	err = store.SetRole(ctx, strings.ToLower(strings.TrimSpace(email)), auth.RoleAdmin)
	if errors.Is(err, auth.ErrUnknownUser) {
		return fmt.Errorf("no user with email %s", email)
	}
	return err
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
