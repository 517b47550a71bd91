package gormstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/imagesvc/imagesvc/internal/auth"
)

type refreshTokenRow struct {
	TokenHash string `gorm:"primaryKey"`
	UserID    string
	ExpiresAt time.Time
	RevokedAt *time.Time
	CreatedAt time.Time
}

func (refreshTokenRow) TableName() string { return "refresh_tokens" }

// CreateRefreshToken implements auth.Sessions.
func (s *Store) CreateRefreshToken(ctx context.Context, t auth.RefreshToken) error {
	row := refreshTokenRow{TokenHash: t.Hash, UserID: t.UserID, ExpiresAt: t.ExpiresAt.UTC(), CreatedAt: time.Now().UTC()}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// RotateRefreshToken implements auth.Sessions.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash string, now time.Time, next auth.RefreshToken) (string, error) {
	var userID string
	reused := false
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		reused = false
		var old refreshTokenRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("token_hash = ?", oldHash).Take(&old).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return auth.ErrUnknownToken
		}
		if err != nil {
			return err
		}
		at := now.UTC()
		if old.RevokedAt != nil {
			// Reuse of a rotated token: end every session of the user.
			reused = true
			return tx.Model(&refreshTokenRow{}).Where("user_id = ? AND revoked_at IS NULL", old.UserID).
				Update("revoked_at", at).Error
		}
		if !old.ExpiresAt.After(now) {
			return auth.ErrUnknownToken
		}
		if err := tx.Model(&refreshTokenRow{}).Where("token_hash = ?", oldHash).Update("revoked_at", at).Error; err != nil {
			return err
		}
		userID = old.UserID
		row := refreshTokenRow{TokenHash: next.Hash, UserID: old.UserID, ExpiresAt: next.ExpiresAt.UTC(), CreatedAt: at}
		return tx.Create(&row).Error
	})
	if err != nil {
		if errors.Is(err, auth.ErrUnknownToken) {
			return "", err
		}
		return "", fmt.Errorf("rotate refresh token: %w", err)
	}
	if reused {
		return "", auth.ErrTokenReused
	}
	return userID, nil
}

// RevokeRefreshToken implements auth.Sessions.
func (s *Store) RevokeRefreshToken(ctx context.Context, userID, hash string) error {
	err := s.db.WithContext(ctx).Model(&refreshTokenRow{}).
		Where("token_hash = ? AND user_id = ? AND revoked_at IS NULL", hash, userID).Update("revoked_at", time.Now().UTC()).Error
	if err != nil {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	return nil
}
