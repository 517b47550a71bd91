package gormstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/imagesvc/imagesvc/internal/auth"
)

type userRow struct {
	ID           string `gorm:"primaryKey"`
	Email        string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
	DeletedAt    *time.Time
}

func (userRow) TableName() string { return "users" }

// CreateUser implements auth.Users.
func (s *Store) CreateUser(ctx context.Context, u *auth.User) error {
	row := userRow{ID: u.ID, Email: u.Email, PasswordHash: u.PasswordHash, Role: u.Role, CreatedAt: u.CreatedAt}
	err := s.db.WithContext(ctx).Create(&row).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return fmt.Errorf("insert user: %w", auth.ErrEmailTaken)
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

// UserByEmail implements auth.Users.
func (s *Store) UserByEmail(ctx context.Context, email string) (*auth.User, error) {
	return s.user(ctx, "email = ?", email)
}

// UserByID implements auth.Users.
func (s *Store) UserByID(ctx context.Context, id string) (*auth.User, error) {
	return s.user(ctx, "id = ?", id)
}

func (s *Store) user(ctx context.Context, where string, arg string) (*auth.User, error) {
	var row userRow
	err := s.db.WithContext(ctx).Where(where, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, auth.ErrUnknownUser
	}
	if err != nil {
		return nil, fmt.Errorf("select user: %w", err)
	}
	return &auth.User{ID: row.ID, Email: row.Email, PasswordHash: row.PasswordHash, Role: row.Role,
		CreatedAt: row.CreatedAt, DeletedAt: row.DeletedAt}, nil
}

// SetRole changes a user's role.
func (s *Store) SetRole(ctx context.Context, email, role string) error {
	res := s.db.WithContext(ctx).Model(&userRow{}).Where("email = ?", email).Update("role", role)
	if res.Error != nil {
		return fmt.Errorf("update role: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return auth.ErrUnknownUser
	}
	return nil
}
