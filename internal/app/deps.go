// Package app builds the service from its parts: the one wiring path that
// cmd/api, cmd/worker and the end-to-end tests all call, so that a test
// cannot pass on wiring that production forgot. It is the only package
// besides cmd/ that knows every adapter.
//
// Open connects to the dependencies (or embeds them in the quickstart);
// NewAPI builds the HTTP API on them and StartWorker the task processor;
// RunAPI and RunWorker are the two processes, from listening to draining.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/logctx"
	"github.com/imagesvc/imagesvc/internal/quickstart"
	"github.com/imagesvc/imagesvc/internal/redisconn"
	"github.com/imagesvc/imagesvc/internal/s3store"
)

// NewLogger returns the process logger: JSON unless LOG_FORMAT=text, with
// the attributes that logctx put in a context on every line.
func NewLogger(cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(logctx.NewHandler(slog.NewTextHandler(os.Stderr, opts)))
	}
	return slog.New(logctx.NewHandler(slog.NewJSONHandler(os.Stderr, opts)))
}

// Deps are the connections to the outside world a process holds, and the
// embedded servers it runs in the quickstart.
type Deps struct {
	Store   *gormstore.Store
	Redis   *redis.Client
	Blobs   *s3store.Store
	closers []func()
}

// Open starts the embedded servers that cfg asks for (filling in their
// endpoints), connects to MySQL or SQLite, Redis and S3 and checks each
// answers. With migrate, it also applies pending migrations (under a
// database lock).
func Open(ctx context.Context, cfg *config.Config, migrate bool, log *slog.Logger) (_ *Deps, err error) {
	d := &Deps{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := d.startEmbedded(cfg, log); err != nil {
		return nil, err
	}
	log.InfoContext(ctx, "dependencies",
		"database", describe(cfg.Embedded.Database, "embedded SQLite "+cfg.DB.URL, "MySQL"),
		"redis", describe(cfg.Embedded.Redis, "embedded Redis-protocol server (in memory) "+cfg.Redis.URL, redisKind(cfg.Redis)),
		"s3", describe(cfg.Embedded.S3, "embedded S3-protocol server "+cfg.S3.Endpoint+" storing under "+filepath.Join(cfg.DataDir, "s3"), "S3 "+cfg.S3.Endpoint))
	if migrate {
		if err := gormstore.Migrate(ctx, cfg.DB.URL); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	db, err := gormstore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	d.Store = gormstore.NewStore(db)
	d.closers = append(d.closers, func() { d.Store.Close() })
	d.Redis, err = cfg.Redis.NewClient()
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { d.Redis.Close() })
	if err := d.Redis.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	if !cfg.Embedded.Redis {
		if err := redisconn.CheckEvictionPolicy(ctx, d.Redis); err != nil {
			return nil, err
		}
	}
	d.Blobs, err = s3store.New(ctx, cfg.S3)
	if err != nil {
		return nil, err
	}
	if err := d.Blobs.EnsureBucket(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// redisKind names the Redis a process uses, for the start-up log.
func redisKind(c redisconn.Config) string {
	if c.Sentinel() {
		return "Redis master " + c.SentinelMaster + " named by Sentinel"
	}
	return "Redis"
}

func describe(embedded bool, yes, no string) string {
	if embedded {
		return yes
	}
	return no
}

func (d *Deps) startEmbedded(cfg *config.Config, log *slog.Logger) error {
	if cfg.Quickstart && len(cfg.Auth.JWTSecret) == 0 {
		secret, err := quickstart.Secret(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.Auth.JWTSecret = secret
	}
	if cfg.Quickstart && len(cfg.Image.DeliveryKeys) == 0 {
		v, err := quickstart.DeliveryKeys(cfg.DataDir)
		if err != nil {
			return err
		}
		if cfg.Image.DeliveryKeys, err = image.ParseDeliveryKeys(v); err != nil {
			return fmt.Errorf("delivery keys kept in %s: %w", cfg.DataDir, err)
		}
	}
	if cfg.Embedded.Redis {
		r, err := quickstart.StartRedis()
		if err != nil {
			return err
		}
		d.closers = append(d.closers, r.Close)
		cfg.Redis.URL = r.URL()
	}
	if cfg.Embedded.S3 {
		addr := cfg.EmbeddedS3Addr
		if addr == "" {
			kept, changed, err := quickstart.S3Addr(cfg.DataDir)
			if err != nil {
				return err
			}
			if changed {
				log.Warn("the embedded S3 server's kept port was taken: it moved, and URLs presigned before no longer work", "addr", kept)
			}
			addr = kept
		}
		s, err := quickstart.StartS3(filepath.Join(cfg.DataDir, "s3"), addr)
		if err != nil {
			return err
		}
		d.closers = append(d.closers, s.Close)
		cfg.S3.Endpoint = s.URL()
		// gofakes3 checks no signature; the SDK still needs some keys.
		if cfg.S3.AccessKeyID == "" {
			cfg.S3.AccessKeyID, cfg.S3.SecretAccessKey = "quickstart", "quickstart"
		}
	}
	return nil
}

// Checks returns the readiness probes of the dependencies.
func (d *Deps) Checks() []health.Check {
	return []health.Check{
		{Name: "database", Ping: d.Store.Ping},
		{Name: "redis", Ping: func(ctx context.Context) error { return d.Redis.Ping(ctx).Err() }},
		{Name: "s3", Ping: d.Blobs.Ping},
	}
}

// Close releases the connections and stops the embedded servers, in the
// reverse order of their start.
func (d *Deps) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}
