// Package config reads the settings of both binaries from the environment
// (and an optional .env file) into the Config of each package, and reports
// every bad setting at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/queue"
	"github.com/imagesvc/imagesvc/internal/quickstart"
	"github.com/imagesvc/imagesvc/internal/redisconn"
	"github.com/imagesvc/imagesvc/internal/s3store"
	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// Process names the binary that reads the configuration: the API signs
// tokens and may run the quickstart; a worker does neither.
type Process int

const (
	// API is cmd/api.
	API Process = iota
	// Worker is cmd/worker.
	Worker
)

// Default listen addresses, also used by the health-check subcommands.
const (
	DefaultHTTPAddr       = ":8080"
	DefaultWorkerHTTPAddr = ":9090"
)

// Config is the whole configuration of a process.
type Config struct {
	HTTPAddr       string
	WorkerHTTPAddr string
	// OpsHTTPAddr, when set, is where the API serves /metrics and
	// /monitoring instead of HTTPAddr.
	OpsHTTPAddr string
	// DrainDelay is how long the API keeps serving after SIGTERM, answering
	// 503 on /healthz/ready, before it stops accepting connections.
	DrainDelay time.Duration
	// Redis is where the queue, the event streams, the rate limits and
	// the tus locks live: REDIS_URL or the REDIS_SENTINEL_* settings.
	Redis     redisconn.Config
	LogFormat string
	LogLevel  slog.Level
	// ReconcileEvery is how often a worker looks for stale images.
	ReconcileEvery time.Duration
	// RunMigrations makes the API apply migrations at start.
	RunMigrations bool
	// DataDir holds the quickstart's database, objects and JWT secret.
	DataDir string
	// Process is the process the configuration is for.
	Process Process
	// Quickstart (QUICKSTART=true, the API only) embeds every dependency
	// whose setting is unset; without it a missing one is an error.
	Quickstart bool
	// Embedded says which dependencies run inside the process (quickstart)
	// because their settings were left unset.
	Embedded Embedded
	// EmbeddedS3Addr is where the embedded S3 server listens.
	EmbeddedS3Addr string

	API     httpapi.Config
	DB      gormstore.Config
	S3      s3store.Config
	Auth    auth.Config
	Image   image.Config
	Queue   queue.Config
	Webhook webhook.Config
}

// Embedded lists the dependencies the process runs itself.
type Embedded struct {
	Database bool
	Redis    bool
	S3       bool
}

// Any reports whether any dependency is embedded: then the process runs its
// own worker, since no other process can reach its embedded servers.
func (e Embedded) Any() bool { return e.Database || e.Redis || e.S3 }

// Load reads the configuration of process p. A .env file in the working
// directory is read first; variables already set in the environment win
// over it.
func Load(p Process) (Config, error) {
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf(".env: %w", err)
	}
	return FromEnv(p, os.Getenv)
}

// ListenAddr is the address process p serves /healthz on (HTTP_ADDR or
// WORKER_HTTP_ADDR), read from the environment alone: the health-check
// subcommands need nothing else, so they run where the rest is unset.
func ListenAddr(p Process) string {
	name, def := "HTTP_ADDR", DefaultHTTPAddr
	if p == Worker {
		name, def = "WORKER_HTTP_ADDR", DefaultWorkerHTTPAddr
	}
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// FromEnv builds the Config of process p from a lookup function.
func FromEnv(p Process, getenv func(string) string) (Config, error) {
	e := &env{get: getenv}
	c := Config{
		Process: p,
		DB:      gormstore.NewDefaultConfig(),
		S3:      s3store.NewDefaultConfig(),
		Auth:    auth.NewDefaultConfig(),
		Image:   image.NewDefaultConfig(),
		Queue:   queue.NewDefaultConfig(),
		Webhook: webhook.NewDefaultConfig(),
	}
	c.Queue.Concurrency = runtime.NumCPU()

	c.HTTPAddr = e.str("HTTP_ADDR", DefaultHTTPAddr)
	c.WorkerHTTPAddr = e.str("WORKER_HTTP_ADDR", DefaultWorkerHTTPAddr)
	c.OpsHTTPAddr = e.str("OPS_HTTP_ADDR", "")
	c.API.SeparateOps = c.OpsHTTPAddr != ""
	c.DrainDelay = e.duration("SHUTDOWN_DRAIN_DELAY", 0)
	c.LogFormat = e.str("LOG_FORMAT", "json")
	if c.LogFormat != "json" && c.LogFormat != "text" {
		e.fail("LOG_FORMAT", "must be json or text")
	}
	if err := c.LogLevel.UnmarshalText([]byte(e.str("LOG_LEVEL", "info"))); err != nil {
		e.fail("LOG_LEVEL", "must be debug, info, warn or error")
	}
	c.ReconcileEvery = e.duration("RECONCILE_INTERVAL", 30*time.Second)
	c.RunMigrations = e.boolean("MIGRATE_ON_START", true)

	// Production needs every dependency named. QUICKSTART=true (make run)
	// embeds each one left unset instead; only the API can, since no other
	// process reaches the servers it embeds.
	c.Quickstart = e.boolean("QUICKSTART", false)
	if c.Quickstart && p == Worker {
		e.fail("QUICKSTART", "must not be true for a worker: a separate worker cannot reach the servers "+
			"another process embeds; set DATABASE_URL, REDIS_URL (or the REDIS_SENTINEL_* settings) and S3_BUCKET instead "+
			"(for a single-process quickstart, run the api alone: it processes images itself)")
	}
	if c.Quickstart {
		if err := quickstart.Available(); err != nil {
			e.fail("QUICKSTART", "cannot be true: "+err.Error())
		}
	}
	dependency := func(name string) string {
		v := e.str(name, "")
		if v == "" && !c.Quickstart {
			if p == API {
				e.fail(name, "is required (QUICKSTART=true embeds it instead, for local development only)")
			} else {
				e.fail(name, "is required")
			}
		}
		return v
	}
	c.DataDir = e.str("DATA_DIR", "data")
	c.DB.URL = dependency("DATABASE_URL")
	c.DB.MaxOpenConns = e.integer("DB_MAX_OPEN_CONNS", c.DB.MaxOpenConns)
	c.DB.MaxIdleConns = min(c.DB.MaxIdleConns, c.DB.MaxOpenConns)
	if c.DB.URL == "" && c.Quickstart {
		c.Embedded.Database = true
		c.DB.URL = gormstore.SQLiteURL(filepath.Join(c.DataDir, "imagesvc.db"))
	} else if c.DB.URL != "" {
		if _, err := gormstore.DSN(c.DB.URL); err != nil {
			e.errs = append(e.errs, err)
		}
	}
	c.Redis = e.redis()
	if c.Redis.Empty() && !c.Quickstart {
		msg := "is required: REDIS_URL for one Redis server, or REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER for a master that Sentinel monitors"
		if p == API {
			msg += " (QUICKSTART=true embeds it instead, for local development only)"
		}
		e.fail("REDIS_URL", msg)
	}
	c.Embedded.Redis = c.Redis.Empty() && c.Quickstart

	// An empty S3_ENDPOINT means AWS; the quickstart embeds S3 only when
	// both are unset.
	c.S3.Endpoint = e.str("S3_ENDPOINT", "")
	c.S3.Region = e.str("S3_REGION", c.S3.Region)
	if c.Quickstart {
		c.S3.Bucket = e.str("S3_BUCKET", "")
	} else {
		c.S3.Bucket = dependency("S3_BUCKET")
	}
	c.Embedded.S3 = c.S3.Endpoint == "" && c.S3.Bucket == "" && c.Quickstart
	if c.S3.Bucket == "" {
		c.S3.Bucket = "images"
	}
	c.S3.ForcePathStyle = e.boolean("S3_FORCE_PATH_STYLE", c.S3.Endpoint != "" || c.Embedded.S3)
	c.S3.AccessKeyID = e.str("AWS_ACCESS_KEY_ID", "")
	c.S3.SecretAccessKey = e.str("AWS_SECRET_ACCESS_KEY", "")
	c.S3.MaxConns = e.integer("S3_MAX_CONNS", c.S3.MaxConns)
	c.S3.PublicEndpoint = e.str("S3_PUBLIC_ENDPOINT", "")
	// Empty: a port picked at the first start and kept under DATA_DIR, so
	// that presigned URLs given out survive a restart.
	c.EmbeddedS3Addr = e.str("EMBEDDED_S3_ADDR", "")
	// The embedded S3 server checks no signature: anyone who reaches it
	// reads and writes every object, so it listens on loopback only.
	if host, _, err := net.SplitHostPort(c.EmbeddedS3Addr); c.EmbeddedS3Addr != "" && (err != nil || !loopback(host)) {
		e.fail("EMBEDDED_S3_ADDR", "must be a loopback address such as 127.0.0.1:9000 (the embedded S3 server checks no signature)")
	}

	// Only the API signs tokens. In the quickstart an unset secret is
	// generated and kept under DATA_DIR.
	if p == API {
		if c.Quickstart {
			c.Auth.JWTSecret = []byte(e.str("JWT_SECRET", ""))
		} else {
			c.Auth.JWTSecret = []byte(e.required("JWT_SECRET"))
		}
		e.secret("JWT_SECRET", string(c.Auth.JWTSecret))
	}

	c.Image.MaxUploadBytes = int64(e.integer("MAX_UPLOAD_BYTES", int(c.Image.MaxUploadBytes)))
	c.Image.MaxPixels = int64(e.integer("MAX_PIXELS", int(c.Image.MaxPixels)))
	if v := e.get("ACCEPTED_TYPES"); v != "" {
		types, err := sniff.ParseFormats(v)
		if err != nil {
			e.fail("ACCEPTED_TYPES", err.Error())
		}
		c.Image.AcceptedTypes = types
	}
	if v := e.get("VARIANTS"); v != "" {
		specs, err := image.ParseSpecs(v)
		if err != nil {
			e.fail("VARIANTS", err.Error())
		}
		c.Image.Variants = specs
	}
	c.Image.URLExpiry = e.duration("URL_EXPIRY", c.Image.URLExpiry)
	c.Image.StaleAfter = e.duration("RECONCILE_STALE_AFTER", c.Image.StaleAfter)
	c.Image.Lease = e.duration("PROCESSING_LEASE", c.Image.Lease)
	c.Image.MaxCrashes = e.integer("PROCESSING_MAX_CRASHES", c.Image.MaxCrashes)
	c.Image.TempDir = e.str("UPLOAD_TMP_DIR", "")
	c.Image.Deduplicate = e.boolean("DEDUPLICATE", false)
	c.Image.QuotaImages = int64(e.integer("USER_QUOTA_IMAGES", 0))
	c.Image.QuotaBytes = int64(e.integer("USER_QUOTA_BYTES", 0))
	c.Image.UploadExpiry = e.duration("UPLOAD_EXPIRY", c.Image.UploadExpiry)
	c.Image.PartSize = int64(e.integer("UPLOAD_PART_SIZE", int(c.Image.PartSize)))

	c.Queue.Concurrency = e.integer("WORKER_CONCURRENCY", c.Queue.Concurrency)
	c.Queue.MaxRetry = e.integer("WORKER_MAX_RETRY", c.Queue.MaxRetry)
	c.Queue.RetryBase = e.duration("WORKER_RETRY_BASE", c.Queue.RetryBase)
	c.Queue.RetryMax = e.duration("WORKER_RETRY_MAX", c.Queue.RetryMax)
	c.Queue.TaskTimeout = e.duration("WORKER_TASK_TIMEOUT", c.Queue.TaskTimeout)
	c.Queue.ShutdownTimeout = e.duration("WORKER_SHUTDOWN_TIMEOUT", c.Queue.ShutdownTimeout)
	c.Queue.TaskCheckInterval = e.duration("WORKER_TASK_CHECK_INTERVAL", c.Queue.TaskCheckInterval)

	c.API.MaxUploadBytes = c.Image.MaxUploadBytes
	c.API.UploadRatePerMinute = e.integer("UPLOAD_RATE_PER_MINUTE", 60)
	c.API.MaxConcurrentUploads = e.integer("MAX_CONCURRENT_UPLOADS", 32)
	c.API.MaxConcurrentUploadsPerUser = e.integer("MAX_CONCURRENT_UPLOADS_PER_USER", 0)
	c.API.UploadMinBytesPerSecond = int64(e.integer("UPLOAD_MIN_BYTES_PER_SECOND", 16<<10))
	c.API.SignupRatePerMinutePerAddress = e.integer("SIGNUP_RATE_PER_MINUTE_PER_ADDRESS", 10)
	c.API.PageRatePerMinutePerAddress = e.integer("PAGE_RATE_PER_MINUTE_PER_ADDRESS", 600)
	c.API.WebhookActionRatePerMinute = e.integer("WEBHOOK_ACTION_RATE_PER_MINUTE", 30)
	c.API.LoginRatePerMinute = e.integer("LOGIN_RATE_PER_MINUTE", 10)
	c.API.LoginRatePerMinutePerAddress = e.integer("LOGIN_RATE_PER_MINUTE_PER_ADDRESS", 30)
	c.API.AdminUser = e.str("ADMIN_USER", "")
	c.API.AdminPassword = e.str("ADMIN_PASSWORD", "")
	if (c.API.AdminUser == "") != (c.API.AdminPassword == "") {
		e.fail("ADMIN_USER and ADMIN_PASSWORD", "must be set together")
	}
	e.secret("ADMIN_PASSWORD", c.API.AdminPassword)
	if v := e.get("CORS_ALLOWED_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			u, err := url.Parse(o)
			if o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "") {
				e.fail("CORS_ALLOWED_ORIGINS", "must list origins such as https://app.example.com (scheme and host, no path), or *")
				break
			}
			c.API.CORSAllowedOrigins = append(c.API.CORSAllowedOrigins, o)
		}
	}
	if v := e.get("TRUSTED_PROXIES"); v != "" {
		for _, cidr := range strings.Split(v, ",") {
			_, n, err := net.ParseCIDR(strings.TrimSpace(cidr))
			if err != nil {
				e.fail("TRUSTED_PROXIES", "must be a comma-separated list of CIDRs")
				break
			}
			c.API.TrustedProxies = append(c.API.TrustedProxies, n)
		}
	}

	c.Auth.MaxConcurrentHashes = e.integer("AUTH_MAX_CONCURRENT_HASHES", c.Auth.MaxConcurrentHashes)

	c.Webhook.AllowPrivate = e.boolean("WEBHOOK_ALLOW_PRIVATE", false)
	c.Webhook.MaxPerUser = e.integer("WEBHOOK_MAX_PER_USER", c.Webhook.MaxPerUser)
	c.Webhook.DisableAfter = e.duration("WEBHOOK_DISABLE_AFTER", c.Webhook.DisableAfter)
	if v := e.get("WEBHOOK_RETRY_SCHEDULE"); v != "" {
		sched, err := webhook.ParseSchedule(v)
		if err != nil {
			e.fail("WEBHOOK_RETRY_SCHEDULE", err.Error())
		} else {
			c.Webhook.Schedule = sched
		}
	}

	c.Image.Quality = e.integer("JPEG_QUALITY", c.Image.Quality)
	c.Image.WebPQuality = e.integer("WEBP_QUALITY", c.Image.WebPQuality)
	c.Image.AVIFQuality = e.integer("AVIF_QUALITY", c.Image.AVIFQuality)
	c.Image.WebPEffort = e.integer("WEBP_EFFORT", c.Image.WebPEffort)
	c.Image.AVIFEffort = e.integer("AVIF_EFFORT", c.Image.AVIFEffort)
	if v := e.get("VARIANT_FORMATS"); v != "" {
		formats, err := image.ParseFormats(v)
		if err != nil {
			e.fail("VARIANT_FORMATS", err.Error())
		} else {
			c.Image.Formats = formats
		}
	}

	// Both processes sign delivery URLs: the API in its answers, workers
	// in webhooks. Like JWT_SECRET, a key is generated and kept under
	// DATA_DIR in the quickstart and required otherwise.
	if v := e.get("DELIVERY_SIGNING_KEYS"); v != "" {
		// A placeholder is caught in the text (its letters pass for
		// URL-safe base64) and in each decoded secret.
		e.secret("DELIVERY_SIGNING_KEYS", v)
		keys, err := image.ParseDeliveryKeys(v)
		if err != nil {
			e.fail("DELIVERY_SIGNING_KEYS", err.Error())
		}
		for _, k := range keys {
			e.secret("DELIVERY_SIGNING_KEYS (key "+k.ID+")", string(k.Secret))
		}
		c.Image.DeliveryKeys = keys
	} else if !c.Quickstart {
		e.fail("DELIVERY_SIGNING_KEYS", "is required: kid:base64key items, the first signs (a key: `openssl rand -base64 32`)")
	}
	c.Image.DeliveryLifetime = e.duration("DELIVERY_URL_LIFETIME", 0)
	c.Image.PublicURL = e.str("PUBLIC_URL", "")
	c.Image.DeliveryBaseURL = e.str("DELIVERY_BASE_URL", "")
	c.Image.DecodeMemory = int64(e.integer("WORKER_DECODE_MEMORY_MB", int(c.Image.DecodeMemory>>20))) << 20
	c.Image.OutputFormat = strings.ToLower(e.str("OUTPUT_FORMAT", c.Image.OutputFormat))

	errs := e.errs
	if len(c.Auth.JWTSecret) > 0 {
		errs = append(errs, c.Auth.Validate())
	}
	if c.Queue.TaskTimeout >= c.Image.Lease {
		errs = append(errs, errors.New("PROCESSING_LEASE must be longer than WORKER_TASK_TIMEOUT"))
	}
	errs = append(errs, c.S3.Validate(), c.Image.Validate(), c.Queue.Validate())
	return c, errors.Join(errs...)
}

// Redacted returns the settings that are safe to log at start-up.
func (c Config) Redacted() []any {
	// Each process logs the addresses it binds, and no other.
	addrs := []any{"http_addr", c.HTTPAddr, "ops_http_addr", c.OpsHTTPAddr, "shutdown_drain_delay", c.DrainDelay.String()}
	if c.Process == Worker {
		addrs = []any{"worker_http_addr", c.WorkerHTTPAddr}
	}
	return append(addrs,
		"database_url", redactURL(c.DB.URL), "redis", c.redisDescription(),
		"quickstart", c.Quickstart, "embedded_database", c.Embedded.Database, "embedded_redis", c.Embedded.Redis, "embedded_s3", c.Embedded.S3,
		"s3_endpoint", c.S3.Endpoint, "s3_bucket", c.S3.Bucket, "s3_region", c.S3.Region,
		"max_upload_bytes", c.Image.MaxUploadBytes, "max_pixels", c.Image.MaxPixels,
		"accepted_types", c.Image.AcceptedTypes, "variants", len(c.Image.Variants), "variant_formats", c.Image.Formats,
		"variant_profile", c.Image.Profile(), "delivery_keys", len(c.Image.DeliveryKeys), "public_url", c.Image.PublicURL,
		"delivery_base_url", c.Image.DeliveryBaseURL, "s3_public_endpoint", c.S3.PublicEndpoint,
		"worker_concurrency", c.Queue.Concurrency, "jwt_secret", len(c.Auth.JWTSecret) > 0,
		"upload_rate_per_minute", c.API.UploadRatePerMinute, "login_rate_per_minute", c.API.LoginRatePerMinute,
		"dashboard", c.API.AdminUser != "", "webhook_allow_private", c.Webhook.AllowPrivate,
	)
}

// redisDescription names the Redis without its secrets.
func (c Config) redisDescription() string {
	if c.Redis.Sentinel() {
		return "sentinel master " + c.Redis.SentinelMaster + " via " + strings.Join(c.Redis.SentinelAddrs, ",")
	}
	return redactURL(c.Redis.URL)
}

// redis reads the Redis settings: REDIS_URL, or the Sentinel ones (with
// the master's own credentials and database beside them, since there is
// no URL to carry them).
func (e *env) redis() redisconn.Config {
	c := redisconn.Config{
		URL:              e.str("REDIS_URL", ""),
		SentinelMaster:   e.str("REDIS_SENTINEL_MASTER", ""),
		SentinelPassword: e.str("REDIS_SENTINEL_PASSWORD", ""),
		Username:         e.str("REDIS_USERNAME", ""),
		Password:         e.str("REDIS_PASSWORD", ""),
		DB:               e.integer("REDIS_DB", 0),
	}
	if v := e.str("REDIS_SENTINEL_ADDRS", ""); v != "" {
		addrs, err := redisconn.ParseSentinelAddrs(v)
		if err != nil {
			e.fail("REDIS_SENTINEL_ADDRS", "must be a comma-separated list of host:port: "+err.Error())
			// Keep it marked set, so that the other rules still apply.
			addrs = []string{v}
		}
		c.SentinelAddrs = addrs
	}
	if err := c.Validate(); err != nil {
		e.errs = append(e.errs, err)
	}
	return c
}

// loopback reports whether host names only the local machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		creds := rest[:at]
		if user, _, hasPass := strings.Cut(creds, ":"); hasPass {
			return scheme + "://" + user + ":xxxxx@" + rest[at+1:]
		}
	}
	return u
}

type env struct {
	get  func(string) string
	errs []error
}

func (e *env) fail(name, msg string) {
	e.errs = append(e.errs, fmt.Errorf("%s %s", name, msg))
}

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

func (e *env) required(name string) string {
	v := strings.TrimSpace(e.get(name))
	if v == "" {
		e.fail(name, "is required")
	}
	return v
}

// secret refuses a value that was copied from a sample rather than
// generated (see placeholder); an empty one is left to the other checks.
func (e *env) secret(name, v string) {
	if v == "" {
		return
	}
	if why := placeholder(v); why != "" {
		e.fail(name, "is a placeholder ("+why+"): generate a random one, such as `openssl rand -base64 48`")
	}
}

func (e *env) integer(name string, def int) int {
	v := strings.TrimSpace(e.get(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, "must be an integer")
		return def
	}
	return n
}

func (e *env) boolean(name string, def bool) bool {
	v := strings.TrimSpace(e.get(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "must be true or false")
		return def
	}
	return b
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(e.get(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, "must be a duration such as 30s or 5m")
		return def
	}
	return d
}

// Names lists every environment variable the binaries read, so that
// deployment files can be checked against it.
func Names() []string {
	seen := map[string]bool{}
	for _, p := range []Process{API, Worker} {
		FromEnv(p, func(name string) string {
			seen[name] = true
			return ""
		})
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
