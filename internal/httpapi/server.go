// Package httpapi is the REST API: Echo routes, handlers, JSON shapes,
// authentication middleware and the mapping of domain errors to statuses.
package httpapi

import (
	"context"
	_ "embed" // the OpenAPI document
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/idempotency"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/webapp"
)

// Authenticator is what the API needs from the auth domain.
type Authenticator interface {
	Signup(ctx context.Context, email, password string) (*auth.User, error)
	Login(ctx context.Context, email, password string) (auth.Tokens, error)
	Refresh(ctx context.Context, token string) (auth.Tokens, error)
	Logout(ctx context.Context, userID, token string) error
	Verify(token string) (auth.Principal, error)
	// Active returns the user of a verified token, or an error when the
	// account is deleted or being deleted.
	Active(ctx context.Context, userID string) (*auth.User, error)
}

// Accounts is what the API needs to delete accounts (auth.Accounts).
type Accounts interface {
	// Delete checks the password, closes the account and removes what it
	// holds; done is false when the removal goes on in the background.
	Delete(ctx context.Context, userID, password string) (done bool, err error)
}

// Images is what the API needs from the image domain.
type Images interface {
	// Spool reads and checks an upload; Store stores it (existing: a
	// duplicate answered with the image stored before).
	Spool(ctx context.Context, body io.Reader) (*image.Spooled, error)
	Store(ctx context.Context, userID, filename string, sp *image.Spooled) (img *image.Image, existing bool, err error)
	Get(ctx context.Context, userID, id string) (*image.Image, error)
	List(ctx context.Context, userID string, after image.Cursor, limit int) (image.Page, error)
	Delete(ctx context.Context, userID, id string) error
	// Deliver resolves a stable delivery URL's token for an Accept header.
	Deliver(ctx context.Context, token, accept string) (image.Delivery, error)
	// Usage is what a user stores against the quota.
	Usage(ctx context.Context, userID string) (image.UsageReport, error)
}

// Operations is what the operators' endpoints need from the image domain.
type Operations interface {
	Reprocess(ctx context.Context, userID, id string) (*image.Image, error)
	AdminReprocess(ctx context.Context, id string) (*image.Image, error)
	AdminList(ctx context.Context, status image.Status, after image.Cursor, limit int) (image.Page, error)
	Stats(ctx context.Context) (image.Stats, error)
	StartBackfill(ctx context.Context) (image.BackfillStatus, error)
}

// Events is what the waiting routes need of the event streams.
type Events interface {
	// Subscribe returns a user's image events after position after ("":
	// from now), until stop or ctx ends.
	Subscribe(ctx context.Context, userID, after string) (events <-chan image.StreamedEvent, stop func(), err error)
	// Position is where a user's stream is now.
	Position(ctx context.Context, userID string) (string, error)
}

// Limiter counts events per key (rate limits shared by every replica).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
}

// Config holds the API settings.
type Config struct {
	// MaxUploadBytes is the largest file; the whole multipart body may
	// exceed it by multipartOverhead.
	MaxUploadBytes int64
	// UploadRatePerMinute bounds uploads per user; 0 turns it off.
	UploadRatePerMinute int
	// LoginRatePerMinute bounds login attempts per email from one client
	// address (so that a stranger failing on an email does not lock its
	// owner out elsewhere), and LoginRatePerMinutePerAddress per client
	// address; 0 turns one off.
	LoginRatePerMinute           int
	LoginRatePerMinutePerAddress int
	// SignupRatePerMinutePerAddress bounds signups per client address; 0
	// turns it off.
	SignupRatePerMinutePerAddress int
	// WebhookActionRatePerMinute bounds webhook pings and redeliveries per
	// user (each is an outgoing request); 0 turns it off. Reprocessing
	// counts against UploadRatePerMinute, since it costs what an upload
	// does.
	WebhookActionRatePerMinute int
	// AdminUser and AdminPassword guard /monitoring (HTTP Basic auth).
	AdminUser, AdminPassword string
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// when finding the client address; empty means the peer address.
	TrustedProxies []*net.IPNet
	// MaxConcurrentUploads bounds the uploads in flight in this process;
	// one more is answered 503 with Retry-After. 0 means 32.
	MaxConcurrentUploads int
	// MaxConcurrentUploadsPerUser is one user's share of them; one more is
	// answered 429. 0 means a quarter of MaxConcurrentUploads (at least 1).
	MaxConcurrentUploadsPerUser int
	// UploadMinBytesPerSecond is the slowest an upload body may arrive on
	// average, after UploadGrace (0 turns it off): a client trickling a
	// byte a second would otherwise hold its slot for the whole read
	// timeout.
	UploadMinBytesPerSecond int64
	UploadGrace             time.Duration
	// UploadTimeout bounds the time an upload body may take in all,
	// however steadily it arrives. 0 means 5 minutes.
	UploadTimeout time.Duration
	// CORSAllowedOrigins are the browser origins (scheme://host[:port])
	// allowed to call the API from their pages; empty turns CORS off.
	CORSAllowedOrigins []string
	// MaxWaitersPerUser bounds the long polls and event streams one user
	// holds open in this process; one more is answered 429. 0 means 10.
	MaxWaitersPerUser int
	// WaitRecheck is how often a long poll reads its image again whatever
	// the events say. 0 means 5 s.
	WaitRecheck time.Duration
	// PageRatePerMinutePerAddress bounds the web app's requests (its page
	// and assets) per client address; 0 turns it off.
	PageRatePerMinutePerAddress int
	// WebApp is what the web app at / needs of the deployment.
	WebApp webapp.Config
	// SeparateOps leaves /metrics and /monitoring out of New: NewOps serves
	// them, on a port kept off the public network.
	SeparateOps bool
}

// Deps are the API's collaborators.
type Deps struct {
	Auth       Authenticator
	Images     Images
	Operations Operations
	// Uploads serves /v1/uploads; nil answers 404 there.
	Uploads DirectUploads
	// Tus is tusd's store (S3 and locks) for /v1/tus/; nil, or no
	// Uploads, answers 404 there.
	Tus *tusd.StoreComposer
	// Webhooks serves /v1/webhooks; nil answers 404 there.
	Webhooks Webhooks
	// Accounts serves /v1/account; nil answers 404 there.
	Accounts Accounts
	// Idempotency keeps the responses of requests made with an
	// Idempotency-Key.
	Idempotency idempotency.Store
	// Events wakes the long poll and feeds /v1/events; nil answers 404
	// there and makes the long poll poll.
	Events Events
	Checks []health.Check
	// Drain answers /healthz/ready; nil is always ready.
	Drain *health.Drain
	// Limiter enforces the rate limits; nil turns them off.
	Limiter Limiter
	// Monitor is the asynqmon handler, rooted at /monitoring; nil (or no
	// AdminUser) answers 404 there.
	Monitor http.Handler
	// Registry receives the API's metrics and is served at /metrics.
	Registry *prometheus.Registry
}

// OpenAPI is the OpenAPI 3.0 description of this API, served at
// /openapi.yaml; a test fails when a route or a response differs from it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// multipartOverhead is the room left for multipart headers and other small
// fields around the file.
const multipartOverhead = 64 << 10

// maxJSONBytes bounds JSON request bodies.
const maxJSONBytes = 64 << 10

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	cfg     Config
	log     *slog.Logger
	metrics *httpMetrics
	// uploads holds a token per upload in flight.
	uploads chan struct{}
	// uploadsByUser counts each user's uploads in flight.
	uploadsMu     sync.Mutex
	uploadsByUser map[string]int
	// waiters counts each user's long polls and event streams.
	waitersMu sync.Mutex
	waiters   map[string]int
}

// corsConfig lets pages of the allowed origins call every route: the
// headers the flows send (tokens, idempotency, resuming, tus) and the ones
// their answers carry that a script needs to read.
func corsConfig(origins []string) middleware.CORSConfig {
	return middleware.CORSConfig{
		AllowOrigins: origins,
		AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", "Last-Event-ID",
			"Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat",
			"X-HTTP-Method-Override", echo.HeaderXRequestID},
		ExposeHeaders: []string{echo.HeaderLocation, "Retry-After", "Idempotent-Replayed", echo.HeaderXRequestID,
			"Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Upload-Offset", "Upload-Length",
			"Upload-Expires", "Upload-Metadata"},
		MaxAge: 3600,
	}
}

// New returns the Echo instance with every route.
func New(d Deps, cfg Config, log *slog.Logger) *echo.Echo {
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxConcurrentUploads <= 0 {
		cfg.MaxConcurrentUploads = 32
	}
	if cfg.MaxConcurrentUploadsPerUser <= 0 {
		cfg.MaxConcurrentUploadsPerUser = max(1, cfg.MaxConcurrentUploads/4)
	}
	if cfg.UploadGrace <= 0 {
		cfg.UploadGrace = 10 * time.Second
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = 5 * time.Minute
	}
	if cfg.MaxWaitersPerUser <= 0 {
		cfg.MaxWaitersPerUser = 10
	}
	if cfg.WaitRecheck <= 0 {
		cfg.WaitRecheck = 5 * time.Second
	}
	s := &Server{Deps: d, cfg: cfg, log: log, metrics: newHTTPMetrics(d.Registry),
		uploads: make(chan struct{}, cfg.MaxConcurrentUploads), uploadsByUser: map[string]int{}, waiters: map[string]int{}}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	e.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		// Only the configured ranges: Echo trusts loopback, link-local and
		// private peers by default, and any of them could then write the
		// client address that the per-address limits count.
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	if len(cfg.CORSAllowedOrigins) > 0 {
		// Before routing, so that preflights of every route are answered.
		e.Pre(middleware.CORSWithConfig(corsConfig(cfg.CORSAllowedOrigins)))
	}
	e.Use(middleware.RequestID())
	e.Use(s.observe)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
			return err
		},
	}))

	e.GET("/healthz", echo.WrapHandler(health.Live()))
	e.GET("/healthz/ready", echo.WrapHandler(d.Drain.Handler()))
	e.GET("/readyz", echo.WrapHandler(health.Ready(d.Checks, log)))
	e.GET("/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", OpenAPI) })
	docsRoutes(e)
	// The web app: pages for people, on the same middleware and under a
	// per-address limit like the API's other routes without a token.
	if cfg.WebApp.MaxUploadBytes == 0 {
		cfg.WebApp.MaxUploadBytes = cfg.MaxUploadBytes
	}
	webapp.New(cfg.WebApp).Register(e, s.limitByAddress("page", cfg.PageRatePerMinutePerAddress))
	if !cfg.SeparateOps {
		s.opsRoutes(e)
	}

	v1 := e.Group("/v1")
	v1.POST("/auth/signup", s.signup)
	v1.POST("/auth/login", s.login)
	v1.POST("/auth/refresh", s.refresh)

	// Authentication is per route, not on a group: an Echo group with
	// middleware answers unknown paths through it (401 instead of 404).
	v1.POST("/auth/logout", s.logout, s.requireAuth)
	v1.POST("/images", s.upload, s.requireAuth)
	v1.GET("/images", s.listImages, s.requireAuth)
	v1.GET("/images/:id", s.getImage, s.requireAuth)
	if d.Events != nil {
		v1.GET("/events", s.events, s.requireAuthOrQueryToken)
	}
	v1.DELETE("/images/:id", s.deleteImage, s.requireAuth)
	v1.POST("/images/:id/reprocess", s.reprocess, s.requireAuth)
	if d.Uploads != nil {
		v1.POST("/uploads", s.beginUpload, s.requireAuth)
		v1.POST("/uploads/:id/parts", s.signParts, s.requireAuth)
		v1.GET("/uploads/:id/parts", s.listParts, s.requireAuth)
		v1.POST("/uploads/:id/complete", s.completeUpload, s.requireAuth)
		v1.DELETE("/uploads/:id", s.abortUpload, s.requireAuth)
		if d.Tus != nil {
			h, err := s.newTus(d.Tus)
			if err != nil {
				panic(fmt.Sprintf("tusd: %v", err)) // a wiring mistake: the composer has no store
			}
			s.tusRoutes(v1, h)
		}
	}
	if d.Accounts != nil {
		v1.GET("/account", s.getAccount, s.requireAuth)
		// A token of an account being deleted still reaches this one
		// route (with the password), so that its owner can finish.
		v1.DELETE("/account", s.deleteAccount, s.requireAuthEvenDeleted)
	}
	v1.GET("/admin/images", s.adminImages, s.requireAuth, s.requireAdmin)
	v1.GET("/admin/stats", s.adminStats, s.requireAuth, s.requireAdmin)
	v1.POST("/admin/backfill", s.startBackfill, s.requireAuth, s.requireAdmin)
	// The stable delivery URLs: signed, no credentials (they go in <img>).
	v1.GET("/i/:token", s.deliver)
	if d.Webhooks != nil {
		v1.POST("/webhooks", s.createWebhook, s.requireAuth)
		v1.GET("/webhooks", s.listWebhooks, s.requireAuth)
		v1.DELETE("/webhooks/:id", s.deleteWebhook, s.requireAuth)
		v1.POST("/webhooks/:id/rotate-secret", s.rotateWebhookSecret, s.requireAuth)
		v1.POST("/webhooks/:id/ping", s.pingWebhook, s.requireAuth)
		v1.GET("/webhooks/:id/deliveries", s.webhookDeliveries, s.requireAuth)
		v1.POST("/webhooks/:id/deliveries/:delivery_id/redeliver", s.redeliverWebhook, s.requireAuth)
	}
	return e
}

// NewOps returns the operators' server: /metrics and, with AdminUser set,
// /monitoring. With Config.SeparateOps, New leaves these out and this is
// served on its own port.
func NewOps(d Deps, cfg Config, log *slog.Logger) *echo.Echo {
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	s := &Server{Deps: d, cfg: cfg, log: log}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(middleware.Recover())
	s.opsRoutes(e)
	return e
}

// opsRoutes adds the operators' routes to e.
func (s *Server) opsRoutes(e *echo.Echo) {
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry})))
	if s.Monitor != nil && s.cfg.AdminUser != "" && s.cfg.AdminPassword != "" {
		mon := echo.WrapHandler(s.Monitor)
		guard := s.basicAuth(s.cfg.AdminUser, s.cfg.AdminPassword)
		e.Any("/monitoring", mon, guard)
		e.Any("/monitoring/*", mon, guard)
	}
}

var errBadJSON = failure.New(failure.Invalid, "invalid_json", "the request body must be a JSON object")

// decodeJSON reads a bounded JSON object body into v.
func decodeJSON(c echo.Context, v any) error {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return failure.New(failure.Unsupported, "unsupported_media_type", "the request body must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), req.Body, maxJSONBytes))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errBadJSON
	}
	if dec.More() {
		return errBadJSON
	}
	return nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
