package gormstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/image"
)

var (
	_ auth.Closing   = (*Store)(nil)
	_ image.Holdings = (*Store)(nil)
)

// MarkUserDeleted implements auth.Closing.
func (s *Store) MarkUserDeleted(ctx context.Context, id string, at time.Time) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		var row userRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return auth.ErrUnknownUser
		}
		if err != nil {
			return fmt.Errorf("select user: %w", err)
		}
		if row.DeletedAt == nil {
			if err := tx.Model(&userRow{}).Where("id = ?", id).Update("deleted_at", at.UTC()).Error; err != nil {
				return fmt.Errorf("mark user deleted: %w", err)
			}
		}
		err = tx.Model(&refreshTokenRow{}).Where("user_id = ? AND revoked_at IS NULL", id).Update("revoked_at", at.UTC()).Error
		if err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", err)
		}
		return nil
	})
}

// DeletedUsers implements auth.Closing.
func (s *Store) DeletedUsers(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&userRow{}).Where("deleted_at IS NOT NULL AND deleted_at < ?", before.UTC()).
		Order("deleted_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("select deleted users: %w", err)
	}
	return ids, nil
}

// DeleteUser implements auth.Closing. The user's row is locked first: an
// image or upload inserted meanwhile by a request that was running when
// the user was marked (its foreign key takes a shared lock on that row)
// either lands before, and is counted, or waits and then fails. Every
// table is cleared by name rather than through ON DELETE CASCADE, which
// webhook_events lacks.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		var row userRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil // gone already
		}
		if err != nil {
			return fmt.Errorf("select user: %w", err)
		}
		if row.DeletedAt == nil {
			return fmt.Errorf("delete user %s: not marked deleted", id)
		}
		var images, uploads int64
		if err := tx.Model(&imageRow{}).Where("user_id = ?", id).Count(&images).Error; err != nil {
			return fmt.Errorf("count images: %w", err)
		}
		err = tx.Model(&uploadRow{}).Where("user_id = ? AND state IN ?", id, []string{image.UploadPending, image.UploadCompleting}).
			Count(&uploads).Error
		if err != nil {
			return fmt.Errorf("count uploads: %w", err)
		}
		if images > 0 || uploads > 0 {
			return fmt.Errorf("%d images, %d unfinished uploads: %w", images, uploads, auth.ErrUserHasData)
		}
		subs := tx.Model(&subscriptionRow{}).Select("id").Where("user_id = ?", id)
		events := tx.Model(&eventRow{}).Select("id").Where("user_id = ?", id)
		steps := []struct {
			what string
			q    *gorm.DB
			row  any
		}{
			{"webhook deliveries", tx.Where("subscription_id IN (?) OR event_id IN (?)", subs, events), &deliveryRow{}},
			{"webhook events", tx.Where("user_id = ?", id), &eventRow{}},
			{"webhook subscriptions", tx.Where("user_id = ?", id), &subscriptionRow{}},
			{"uploads", tx.Where("user_id = ?", id), &uploadRow{}},
			{"idempotency keys", tx.Where("user_id = ?", id), &idempotencyRow{}},
			{"refresh tokens", tx.Where("user_id = ?", id), &refreshTokenRow{}},
			{"user", tx.Where("id = ?", id), &userRow{}},
		}
		for _, st := range steps {
			if err := st.q.Delete(st.row).Error; err != nil {
				return fmt.Errorf("delete %s: %w", st.what, err)
			}
		}
		return nil
	})
}

// UnfinishedUploads implements image.Holdings.
func (s *Store) UnfinishedUploads(ctx context.Context, userID string) ([]*image.PendingUpload, error) {
	var rows []uploadRow
	err := s.db.WithContext(ctx).
		Where("user_id = ? AND state IN ?", userID, []string{image.UploadPending, image.UploadCompleting}).
		Order("created_at").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("select unfinished uploads: %w", err)
	}
	out := make([]*image.PendingUpload, len(rows))
	for i, r := range rows {
		out[i] = r.toDomain()
	}
	return out, nil
}

// DeleteUserImages implements image.Holdings. The variant rows are deleted
// by name too, not left to ON DELETE CASCADE alone.
func (s *Store) DeleteUserImages(ctx context.Context, userID string, limit int) (int, error) {
	var n int
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var ids []string
		if err := tx.Model(&imageRow{}).Where("user_id = ?", userID).Order("id").Limit(limit).Pluck("id", &ids).Error; err != nil {
			return fmt.Errorf("select images: %w", err)
		}
		if len(ids) == 0 {
			n = 0
			return nil
		}
		if err := tx.Where("image_id IN ?", ids).Delete(&variantRow{}).Error; err != nil {
			return fmt.Errorf("delete variants: %w", err)
		}
		res := tx.Where("id IN ?", ids).Delete(&imageRow{})
		if res.Error != nil {
			return fmt.Errorf("delete images: %w", res.Error)
		}
		n = int(res.RowsAffected)
		return nil
	})
	return n, err
}
