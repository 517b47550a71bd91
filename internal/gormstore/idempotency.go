package gormstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/imagesvc/imagesvc/internal/idempotency"
)

type idempotencyRow struct {
	UserID      string `gorm:"primaryKey"`
	IdemKey     string `gorm:"primaryKey"`
	Fingerprint string
	State       string
	StatusCode  int
	Body        []byte
	Location    *string
	CreatedAt   time.Time
}

func (idempotencyRow) TableName() string { return "idempotency_keys" }

var _ idempotency.Store = (*Store)(nil)

// Claim implements idempotency.Store. The primary key decides between
// requests at once: one insert wins; an expired record is taken over.
func (s *Store) Claim(ctx context.Context, userID, key, fingerprint string, now time.Time) (idempotency.Record, bool, error) {
	row := idempotencyRow{UserID: userID, IdemKey: key, Fingerprint: fingerprint, State: "pending", CreatedAt: now.UTC()}
	err := s.db.WithContext(ctx).Create(&row).Error
	if err == nil {
		return idempotency.Record{}, true, nil
	}
	if !errors.Is(err, gorm.ErrDuplicatedKey) {
		return idempotency.Record{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	var prev idempotencyRow
	if err := s.db.WithContext(ctx).Where("user_id = ? AND idem_key = ?", userID, key).Take(&prev).Error; err != nil {
		return idempotency.Record{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	if prev.CreatedAt.After(now.Add(-idempotency.TTL)) {
		r := idempotency.Record{Fingerprint: prev.Fingerprint, Done: prev.State == "done", Status: prev.StatusCode, Body: prev.Body}
		if prev.Location != nil {
			r.Location = *prev.Location
		}
		return r, false, nil
	}
	// Expired: take it over, unless another request just did.
	res := s.db.WithContext(ctx).Model(&idempotencyRow{}).
		Where("user_id = ? AND idem_key = ? AND created_at = ?", userID, key, prev.CreatedAt).
		Updates(map[string]any{"fingerprint": fingerprint, "state": "pending", "status_code": 0, "body": nil,
			"location": nil, "created_at": now.UTC()})
	if res.Error != nil {
		return idempotency.Record{}, false, fmt.Errorf("renew idempotency key: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return idempotency.Record{Fingerprint: fingerprint}, false, nil // in progress elsewhere
	}
	return idempotency.Record{}, true, nil
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, userID, key string, r idempotency.Record) error {
	err := s.db.WithContext(ctx).Model(&idempotencyRow{}).Where("user_id = ? AND idem_key = ?", userID, key).
		Updates(map[string]any{"state": "done", "status_code": r.Status, "body": r.Body, "location": strPtr(r.Location)}).Error
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", err)
	}
	return nil
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, userID, key string) error {
	err := s.db.WithContext(ctx).Where("user_id = ? AND idem_key = ? AND state = ?", userID, key, "pending").
		Delete(&idempotencyRow{}).Error
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// Expire implements idempotency.Store.
func (s *Store) Expire(ctx context.Context, before time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("created_at < ?", before.UTC()).Delete(&idempotencyRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("expire idempotency keys: %w", res.Error)
	}
	return res.RowsAffected, nil
}
