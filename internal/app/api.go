package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/eventstream"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/queue"
	"github.com/imagesvc/imagesvc/internal/ratelimit"
	"github.com/imagesvc/imagesvc/internal/s3store"
	"github.com/imagesvc/imagesvc/internal/tuslock"
)

// API is the HTTP API built on a process's dependencies.
type API struct {
	// Handler serves the public routes (and /metrics and /monitoring,
	// unless the configuration puts those on their own port).
	Handler http.Handler
	// Ops serves /metrics and /monitoring when OPS_HTTP_ADDR is set; nil
	// otherwise.
	Ops http.Handler
	// Drain turns /healthz/ready to 503 when shutdown begins.
	Drain *health.Drain
	// EndStreams ends the event streams and wakes the long polls (which
	// then answer from the database): an HTTP server's shutdown waits for
	// every response, and a stream would never end by itself.
	EndStreams func()
	// Images is the image service behind the routes.
	Images *image.Service
	close  []func()
}

// NewAPI builds the API on deps. reg receives its metrics (and is served
// at /metrics); cfg.Redis is where the dashboard, if ADMIN_USER is set,
// looks at the queues.
func NewAPI(cfg config.Config, deps *Deps, reg *prometheus.Registry, log *slog.Logger) (*API, error) {
	authSvc, err := auth.NewService(deps.Store, deps.Store, cfg.Auth)
	if err != nil {
		return nil, err
	}
	enqueuer := queue.NewEnqueuer(deps.Redis, cfg.Queue)
	metrics.RegisterQueues(reg, enqueuer.Inspector())
	images := image.NewService(image.ServiceDeps{
		Catalog: deps.Store, Ledger: deps.Store, Blobs: deps.Blobs, Queue: withFailpoint(enqueuer, log),
		Inventory: deps.Store, QueueStats: enqueuer, Backfills: enqueuer, Uploads: deps.Store, Staging: deps.Blobs,
	}, cfg.Image, log)
	a := &API{Drain: &health.Drain{}, Images: images}
	// The long poll and /v1/events are woken by the events workers
	// publish; this process receives them once, on one connection.
	events := eventstream.New(deps.Redis, eventstream.NewDefaultConfig())
	accounts := newAccounts(cfg, deps, authSvc, log)
	hub, err := events.StartHub(context.Background(), log)
	if err != nil {
		return nil, err
	}
	a.EndStreams = func() { hub.Close() }
	a.close = append(a.close, a.EndStreams)
	var monitor http.Handler
	if cfg.API.AdminUser != "" {
		redisOpt, err := cfg.Redis.AsynqOpt()
		if err != nil {
			return nil, err
		}
		mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: redisOpt})
		a.close = append(a.close, func() { mon.Close() })
		monitor = mon
	}
	// The webhook service here manages subscriptions; workers deliver.
	// tus uploads: tusd's S3 store writes to the original's key; the locks
	// of an upload are in Redis, shared by every replica.
	tus := tusd.NewStoreComposer()
	tusStore := deps.Blobs.TusStore(cfg.Image.TempDir)
	tus.UseCore(tusStore)
	tus.UseTerminater(tusStore)
	tuslock.New(deps.Redis, "imagesvc:tus:").UseIn(tus)
	d := httpapi.Deps{
		Auth: authSvc, Images: images, Operations: images, Uploads: images, Tus: tus, Webhooks: newWebhooks(cfg, deps, enqueuer, nil, log),
		Accounts:    accounts,
		Idempotency: deps.Store, Events: events, Checks: deps.Checks(), Drain: a.Drain, Limiter: ratelimit.New(deps.Redis, "imagesvc:ratelimit:"),
		Monitor: monitor, Registry: reg,
	}
	cfg.API.WebApp.ImageSources = imageSources(cfg, deps.Blobs, log)
	a.Handler = httpapi.New(d, cfg.API, log)
	if cfg.API.SeparateOps {
		a.Ops = httpapi.NewOps(d, cfg.API, log)
	}
	return a, nil
}

// imageSources are where the web app's images come from, for its
// Content-Security-Policy: PUBLIC_URL (the stable URLs' host, when it is
// not the page's), then where they redirect: DELIVERY_BASE_URL when set,
// else the origin of the URLs the S3 store presigns, read off one it
// presigns here (presigning is local), so that a virtual-hosted bucket
// name, an AWS region or S3_PUBLIC_ENDPOINT come out as the browser will
// see them. If it cannot presign, none: the app then allows any https:
// origin.
func imageSources(cfg config.Config, blobs image.Blobs, log *slog.Logger) []string {
	var sources []string
	if cfg.Image.PublicURL != "" {
		sources = append(sources, cfg.Image.PublicURL)
	}
	if cfg.Image.DeliveryBaseURL != "" {
		return append(sources, cfg.Image.DeliveryBaseURL)
	}
	u, err := blobs.PresignGet(context.Background(), "variants/csp-probe", time.Minute)
	if err != nil {
		log.Warn("web app: cannot tell where presigned URLs point; its pages allow images from any https: origin", "err", err)
		return nil
	}
	return append(sources, u)
}

// newAccounts returns the account deletion on deps: the image domain's
// purge (rows, uploads, objects), then the user's event stream. passwords
// is nil in a worker, which only finishes deletions that stopped.
func newAccounts(cfg config.Config, deps *Deps, passwords *auth.Service, log *slog.Logger) *auth.Accounts {
	return auth.NewAccounts(passwords, deps.Store, cfg.Auth, log,
		image.NewPurger(deps.Store, deps.Blobs, deps.Blobs),
		eventstream.New(deps.Redis, eventstream.NewDefaultConfig()))
}

// Close releases what the API holds beyond its dependencies (the
// dashboard's Redis connections).
func (a *API) Close() {
	for _, f := range a.close {
		f()
	}
}

// RunAPI is the API process: it opens the dependencies (embedding those
// the quickstart leaves unset, and then processing images itself, since no
// other process can reach them), serves until ctx ends, then drains: not
// ready at once, still serving for cfg.DrainDelay, then in-flight requests
// finish.
func RunAPI(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.InfoContext(ctx, "starting api", cfg.Redacted()...)
	deps, err := Open(ctx, &cfg, cfg.RunMigrations || cfg.Embedded.Database, log)
	if err != nil {
		return err
	}
	defer deps.Close()
	reg := metrics.NewRegistry()
	if cfg.Embedded.Any() {
		worker, err := StartWorker(ctx, cfg, deps, reg, log)
		if err != nil {
			return err
		}
		defer worker.Stop()
	}
	api, err := NewAPI(cfg, deps, reg, log)
	if err != nil {
		return err
	}
	defer api.Close()

	errc := make(chan error, 2)
	srv, err := serve(cfg.HTTPAddr, api.Handler, &http.Server{
		ReadTimeout:  5 * time.Minute, // a 25 MiB upload over a slow link
		WriteTimeout: 5 * time.Minute,
	}, errc, log)
	if err != nil {
		return err
	}
	srv.RegisterOnShutdown(api.EndStreams)
	log.InfoContext(ctx, "api listening", "addr", srv.Addr)
	if api.Ops != nil {
		ops, err := serve(cfg.OpsHTTPAddr, api.Ops, &http.Server{}, errc, log)
		if err != nil {
			return err
		}
		defer ops.Shutdown(context.Background())
		log.InfoContext(ctx, "api operations listening", "addr", ops.Addr)
	}
	if cfg.Embedded.Any() {
		// Only now: the port is bound, so the address it gives works.
		fmt.Fprint(os.Stderr, quickstartBanner(srv.Addr, cfg.DataDir))
	}

	select {
	case err := <-errc:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	api.Drain.Begin()
	log.Info("draining api", "delay", cfg.DrainDelay)
	time.Sleep(cfg.DrainDelay)
	log.Info("shutting down api")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// serve binds addr and serves h on it in the background with srv's
// timeouts (and defaults for the ones it leaves unset); a serving error
// goes to errc. srv.Addr is set to the address bound.
func serve(addr string, h http.Handler, srv *http.Server, errc chan<- error, log *slog.Logger) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv.Addr = l.Addr().String()
	srv.Handler = h
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = 10 * time.Second
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = 2 * time.Minute
	}
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	go func() {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return srv, nil
}

// Backfill starts re-making the variants of every done image whose
// variant set (VARIANTS, VARIANT_FORMATS) is not the configured one, on
// the workers' backfill queue, and says how many there are. It needs the
// database and Redis.
func Backfill(ctx context.Context, cfg config.Config) (image.BackfillStatus, error) {
	if cfg.Embedded.Any() {
		return image.BackfillStatus{}, errors.New("the quickstart's queue lives inside the running api: " +
			"start the backfill there, with POST /v1/admin/backfill")
	}
	db, err := gormstore.Open(ctx, cfg.DB)
	if err != nil {
		return image.BackfillStatus{}, err
	}
	store := gormstore.NewStore(db)
	defer store.Close()
	rdb, err := cfg.Redis.NewClient()
	if err != nil {
		return image.BackfillStatus{}, err
	}
	defer rdb.Close()
	enqueuer := queue.NewEnqueuer(rdb, cfg.Queue)
	svc := image.NewService(image.ServiceDeps{Inventory: store, Backfills: enqueuer}, cfg.Image, slog.New(slog.DiscardHandler))
	return svc.StartBackfill(ctx)
}

// Migrate applies the database migrations and returns.
func Migrate(ctx context.Context, cfg config.Config) error {
	return gormstore.Migrate(ctx, cfg.DB.URL)
}

// SetBucketCORS lets pages of origins (CORS_ALLOWED_ORIGINS when none are
// given) upload straight to the bucket: direct uploads PUT from the
// browser. It needs only object storage.
func SetBucketCORS(ctx context.Context, cfg config.Config, origins []string) error {
	if len(origins) == 0 {
		origins = cfg.API.CORSAllowedOrigins
	}
	store, err := s3store.New(ctx, cfg.S3)
	if err != nil {
		return err
	}
	if err := store.EnsureBucket(ctx); err != nil {
		return err
	}
	return store.SetCORS(ctx, origins)
}

// Promote gives a user the admin role. It needs only the database.
func Promote(ctx context.Context, cfg config.Config, email string) error {
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
func quickstartBanner(addr, dataDir string) string {
	host := addr
	if h, port, err := net.SplitHostPort(addr); err == nil && (h == "" || h == "::" || h == "0.0.0.0") {
		host = "localhost:" + port
	}
	return fmt.Sprintf(`
imagesvc is running at http://%[1]s (quickstart: embedded database, Redis and S3 under %[2]s)

Open http://%[1]s/ in a browser to sign up and upload photos, or from a shell:

  curl -s http://%[1]s/v1/auth/signup -H 'Content-Type: application/json' \
    -d '{"email":"me@example.com","password":"correct horse battery"}'
  TOKEN=$(curl -s http://%[1]s/v1/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"me@example.com","password":"correct horse battery"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s http://%[1]s/v1/images -H "Authorization: Bearer $TOKEN" -F file=@photo.jpg

`, host, dataDir)
}
