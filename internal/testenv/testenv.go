// Package testenv gives tests real dependencies: a fresh MariaDB database
// with the schema applied, a flushed Redis database and a fresh S3 bucket,
// each removed when the test ends. It also makes test images.
//
// The servers come from TEST_DATABASE_URL (default
// mysql://root@127.0.0.1:3306/test), TEST_REDIS_URL (default
// redis://127.0.0.1:6379) and TEST_S3_ENDPOINT (default
// http://127.0.0.1:7070, keys testkey/testsecret), which `make test` starts.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver for setup
	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/s3store"
)

// skipShort skips a test that needs a real server under -short: `make
// test-unit` runs the tests that need none, on a machine without them.
func skipShort(tb testing.TB, server string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs " + server + "; skipped under -short (make test-unit)")
	}
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// MustDatabaseURL creates a fresh database with every migration applied and
// returns its mysql:// URL. The database is dropped when the test ends.
func MustDatabaseURL(tb testing.TB) string {
	tb.Helper()
	skipShort(tb, "MariaDB")
	base := getenv("TEST_DATABASE_URL", "mysql://root@127.0.0.1:3306/test")
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	name := "imagesvc_t_" + randomSuffix()
	dsn, err := gormstore.DSN(base)
	if err != nil {
		tb.Fatal(err)
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("create test database (is MariaDB running at %s? `make test` starts it): %v", u.Host, err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP DATABASE IF EXISTS " + name)
	})
	u.Path = "/" + name
	if err := gormstore.Migrate(ctx, u.String()); err != nil {
		tb.Fatalf("migrate test database: %v", err)
	}
	return u.String()
}

// MustStore returns a Store on a fresh database.
func MustStore(tb testing.TB) (*gormstore.Store, string) {
	tb.Helper()
	dbURL := MustDatabaseURL(tb)
	cfg := gormstore.NewDefaultConfig()
	cfg.URL = dbURL
	db, err := gormstore.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	store := gormstore.NewStore(db)
	tb.Cleanup(func() { store.Close() })
	return store, dbURL
}

// RedisURL returns the URL of Redis database n. Packages whose tests use
// Redis take distinct databases, since `go test` runs packages in parallel
// and MustRedis flushes: httpapi 1, cmd/worker 3, eventstream 5,
// cmd/imagesvc 6, tuslock 7, webapp 10. (redisconn's Sentinel test runs
// Redis servers of its own, on ports 6390-6391 and 26390-26392.)
func RedisURL(n int) string {
	base := strings.TrimSuffix(getenv("TEST_REDIS_URL", "redis://127.0.0.1:6379"), "/")
	if i := strings.LastIndex(base, "/"); i > len("redis://") {
		base = base[:i]
	}
	return fmt.Sprintf("%s/%d", base, n)
}

// MustRedis returns a client on Redis database n, flushed before the test.
func MustRedis(tb testing.TB, n int) *redis.Client {
	tb.Helper()
	skipShort(tb, "Redis")
	opts, err := redis.ParseURL(RedisURL(n))
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		tb.Fatalf("flush redis (is Redis running? `make test` starts it): %v", err)
	}
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// S3Config returns the settings of the test S3 server for a bucket.
func S3Config(bucket string) s3store.Config {
	cfg := s3store.NewDefaultConfig()
	cfg.Endpoint = getenv("TEST_S3_ENDPOINT", "http://127.0.0.1:7070")
	cfg.AccessKeyID = getenv("TEST_S3_ACCESS_KEY", "testkey")
	cfg.SecretAccessKey = getenv("TEST_S3_SECRET_KEY", "testsecret")
	cfg.ForcePathStyle = true
	cfg.Bucket = bucket
	return cfg
}

// MustBucket returns a Store on a fresh bucket, emptied and removed when the
// test ends.
func MustBucket(tb testing.TB) (*s3store.Store, s3store.Config) {
	tb.Helper()
	skipShort(tb, "the S3 server")
	cfg := S3Config("t-" + randomSuffix())
	ctx := context.Background()
	store, err := s3store.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := store.EnsureBucket(ctx); err != nil {
		tb.Fatalf("create bucket (is the S3 server running at %s? `make test` starts it): %v", cfg.Endpoint, err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		_ = store.DeletePrefix(ctx, "")
		_ = store.DeleteBucket(ctx)
	})
	return store, cfg
}

// MustSQLiteStore returns a Store on a fresh SQLite file, the quickstart's
// database.
func MustSQLiteStore(tb testing.TB) *gormstore.Store {
	tb.Helper()
	cfg := gormstore.NewDefaultConfig()
	cfg.URL = gormstore.SQLiteURL(tb.TempDir() + "/imagesvc.db")
	if err := gormstore.Migrate(context.Background(), cfg.URL); err != nil {
		tb.Fatalf("migrate sqlite: %v", err)
	}
	db, err := gormstore.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	store := gormstore.NewStore(db)
	tb.Cleanup(func() { store.Close() })
	return store
}
