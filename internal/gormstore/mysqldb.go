// Package gormstore implements the domain's stores with gorm: on MySQL 8 /
// MariaDB 10.11 in production, on an SQLite file in the quickstart. The
// store code is the same for both; each has its own migrations.
package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratemysql "github.com/golang-migrate/migrate/v4/database/mysql"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/imagesvc/imagesvc/migrations"
)

// Config holds the database settings.
type Config struct {
	// URL is mysql://user:pass@host:3306/db?param=value.
	URL          string
	MaxOpenConns int
	MaxIdleConns int
}

// NewDefaultConfig returns pool defaults sized for one process.
func NewDefaultConfig() Config {
	return Config{MaxOpenConns: 20, MaxIdleConns: 10}
}

// DSN converts a mysql:// URL into a go-sql-driver DSN that parses times in
// UTC and speaks utf8mb4.
func DSN(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	if u.Scheme != "mysql" {
		return "", errors.New("DATABASE_URL: scheme must be mysql://")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || db == "" {
		return "", errors.New("DATABASE_URL: want mysql://user:pass@host:3306/db")
	}
	c := gomysql.NewConfig()
	c.Net = "tcp"
	c.Addr = u.Host
	if u.Port() == "" {
		c.Addr = u.Host + ":3306"
	}
	c.User = u.User.Username()
	c.Passwd, _ = u.User.Password()
	c.DBName = db
	c.ParseTime = true
	c.Loc = time.UTC
	c.Timeout = 5 * time.Second
	c.Params = map[string]string{"charset": "utf8mb4", "time_zone": "'+00:00'"}
	for k, v := range u.Query() {
		c.Params[k] = v[0]
	}
	return c.FormatDSN(), nil
}

// Open connects to the database named by cfg.URL (mysql:// or sqlite://)
// and checks it answers.
func Open(ctx context.Context, cfg Config) (*gorm.DB, error) {
	var dialector gorm.Dialector
	maxOpen := cfg.MaxOpenConns
	if path, ok := sqlitePath(cfg.URL); ok {
		dialector = openSQLite(path)
		// SQLite has one writer; one connection serialises transactions
		// in Go instead of failing them with "database is locked".
		maxOpen = 1
	} else {
		dsn, err := DSN(cfg.URL)
		if err != nil {
			return nil, err
		}
		dialector = gormmysql.Open(dsn)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		TranslateError:         true,
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := classifyErrors(db); err != nil {
		return nil, fmt.Errorf("register error classifier: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(min(cfg.MaxIdleConns, maxOpen))
	sqlDB.SetConnMaxLifetime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return db, nil
}

// Migrate applies every pending migration. On MySQL, golang-migrate holds
// an advisory lock (GET_LOCK) while it runs, so replicas that start together
// apply each migration once.
func Migrate(ctx context.Context, rawURL string) error {
	if path, ok := sqlitePath(rawURL); ok {
		return migrateSQLite(path)
	}
	dsn, err := DSN(rawURL)
	if err != nil {
		return err
	}
	conn, err := sql.Open("mysql", dsn+"&multiStatements=true")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	driver, err := migratemysql.WithInstance(conn, &migratemysql.Config{})
	if err != nil {
		return fmt.Errorf("migration driver: %w", err)
	}
	return apply(driver, "mysql")
}

func apply(driver database.Driver, dir string) error {
	src, err := iofs.New(migrations.FS, dir)
	if err != nil {
		return fmt.Errorf("migration source: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, dir, driver)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}
