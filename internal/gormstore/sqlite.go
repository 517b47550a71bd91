package gormstore

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/golang-migrate/migrate/v4/database/sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

// SQLiteURL returns the URL of an SQLite database file.
func SQLiteURL(path string) string { return "sqlite://" + path }

// sqlitePath returns the file of a sqlite:// URL.
func sqlitePath(rawURL string) (string, bool) {
	path, ok := strings.CutPrefix(rawURL, "sqlite://")
	return path, ok && path != ""
}

// sqliteDSN turns on foreign keys (for ON DELETE CASCADE), WAL (readers do
// not block the writer) and a busy timeout.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Set("_foreign_keys", "on")
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "5000")
	q.Set("_loc", "UTC")
	return "file:" + path + "?" + q.Encode()
}

func openSQLite(path string) gorm.Dialector {
	return sqlite.Open(sqliteDSN(path))
}

func migrateSQLite(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	conn, err := sql.Open("sqlite3", sqliteDSN(path))
	if err != nil {
		return err
	}
	defer conn.Close()
	driver, err := sqlite3.WithInstance(conn, &sqlite3.Config{})
	if err != nil {
		return fmt.Errorf("migration driver: %w", err)
	}
	return apply(driver, "sqlite")
}
