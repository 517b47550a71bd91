package gormstore

import (
	"context"

	"gorm.io/gorm"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/image"
)

// Store implements the image and auth stores on one database.
type Store struct {
	db *gorm.DB
}

var (
	_ image.Catalog   = (*Store)(nil)
	_ image.Ledger    = (*Store)(nil)
	_ image.Inventory = (*Store)(nil)
	_ auth.Users      = (*Store)(nil)
	_ auth.Sessions   = (*Store)(nil)
)

// NewStore returns a Store on db.
func NewStore(db *gorm.DB) *Store { return &Store{db: db} }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
