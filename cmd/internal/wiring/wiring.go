// Package wiring connects the adapters to the domain for the binaries in
// cmd/. It lives under cmd/ so that only the binaries (and their tests) can
// import it: the rest of the code never knows every package.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/s3store"
)

// NewLogger returns the process logger: JSON unless LOG_FORMAT=text.
func NewLogger(cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// Deps are the connections to the outside world a process holds.
type Deps struct {
	Store *gormstore.Store
	Redis *redis.Client
	Blobs *s3store.Store
}

// Open connects to MySQL, Redis and S3 and checks each answers. With
// migrate, it also applies pending migrations (under a database lock).
func Open(ctx context.Context, cfg config.Config, migrate bool) (*Deps, error) {
	if migrate {
		if err := gormstore.Migrate(ctx, cfg.DB.URL); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	db, err := gormstore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	d := &Deps{Store: gormstore.NewStore(db)}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	d.Redis = redis.NewClient(opts)
	if err := d.Redis.Ping(ctx).Err(); err != nil {
		d.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	if err := checkEvictionPolicy(ctx, d.Redis); err != nil {
		d.Close()
		return nil, err
	}
	d.Blobs, err = s3store.New(ctx, cfg.S3)
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := d.Blobs.EnsureBucket(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// checkEvictionPolicy refuses a Redis that evicts keys: it would silently
// drop queued tasks.
func checkEvictionPolicy(ctx context.Context, rdb *redis.Client) error {
	res, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return nil // CONFIG may be disabled on managed Redis; nothing to check then
	}
	policy := res["maxmemory-policy"]
	if policy != "" && policy != "noeviction" {
		return errors.New("redis maxmemory-policy is " + policy + ": it would evict queued tasks; set it to noeviction")
	}
	return nil
}

// Checks returns the readiness probes of the dependencies.
func (d *Deps) Checks() []httpapi.Check {
	return []httpapi.Check{
		{Name: "mysql", Ping: d.Store.Ping},
		{Name: "redis", Ping: func(ctx context.Context) error { return d.Redis.Ping(ctx).Err() }},
		{Name: "s3", Ping: d.Blobs.Ping},
	}
}

// Close releases the connections.
func (d *Deps) Close() {
	if d.Redis != nil {
		d.Redis.Close()
	}
	if d.Store != nil {
		d.Store.Close()
	}
}
