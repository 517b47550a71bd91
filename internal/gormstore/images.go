package gormstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/imagesvc/imagesvc/internal/image"
)

type imageRow struct {
	ID          string `gorm:"primaryKey"`
	UserID      string
	Status      string
	Filename    string
	ContentType string
	Bytes       int64
	Width       int
	Height      int
	SHA256      *string `gorm:"column:sha256"`
	Attempt     int
	LeaseUntil  *time.Time
	// Crashes counts claims that found the image still processing.
	Crashes int
	// NotifyPending: finished, its notification not yet recorded.
	NotifyPending bool
	ErrorCode     *string
	ErrorMessage  *string
	Placeholder   *string
	DominantColor *string
	Profile       *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Variants      []variantRow `gorm:"foreignKey:ImageID"`
}

func (imageRow) TableName() string { return "images" }

type variantRow struct {
	ImageID     string `gorm:"primaryKey"`
	Name        string `gorm:"primaryKey"`
	Width       int
	Height      int
	Bytes       int64
	ContentType string
	ObjectKey   string
	// Formats are every encoding of the variant, its base first; nil for
	// a variant recorded before formats existed.
	Formats []formatRow `gorm:"serializer:json"`
}

func (variantRow) TableName() string { return "image_variants" }

// formatRow is one encoding of a variant, in image_variants.formats.
type formatRow struct {
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	ObjectKey   string `json:"object_key"`
}

// CreateImage implements image.Catalog.
func (s *Store) CreateImage(ctx context.Context, img *image.Image) error {
	row := imageRow{
		ID: img.ID, UserID: img.UserID, Status: string(img.Status), Filename: img.Filename,
		ContentType: img.ContentType, Bytes: img.Bytes, Width: img.Width, Height: img.Height,
		SHA256: strPtr(img.SHA256), CreatedAt: img.CreatedAt, UpdatedAt: img.UpdatedAt,
	}
	if err := s.db.WithContext(ctx).Omit("Variants").Create(&row).Error; err != nil {
		return fmt.Errorf("insert image: %w", err)
	}
	return nil
}

// Image implements image.Catalog.
func (s *Store) Image(ctx context.Context, id string) (*image.Image, error) {
	var row imageRow
	err := s.db.WithContext(ctx).Preload("Variants", func(db *gorm.DB) *gorm.DB {
		return db.Order("width, name")
	}).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, image.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select image: %w", err)
	}
	return row.toDomain(), nil
}

// ImageBySHA256 implements image.Catalog.
func (s *Store) ImageBySHA256(ctx context.Context, userID, sha string) (*image.Image, error) {
	var row imageRow
	err := s.db.WithContext(ctx).Preload("Variants", func(db *gorm.DB) *gorm.DB {
		return db.Order("width, name")
	}).Where("user_id = ? AND sha256 = ?", userID, sha).Order("created_at DESC").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, image.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select image by sha256: %w", err)
	}
	return row.toDomain(), nil
}

// Usage implements image.Catalog.
func (s *Store) Usage(ctx context.Context, userID string) (image.Usage, error) {
	var u image.Usage
	err := s.db.WithContext(ctx).Model(&imageRow{}).Where("user_id = ?", userID).
		Select("COUNT(*), COALESCE(SUM(bytes), 0)").Row().Scan(&u.Images, &u.Bytes)
	if err != nil {
		return image.Usage{}, fmt.Errorf("usage: %w", err)
	}
	return u, nil
}

// ListImages implements image.Catalog.
func (s *Store) ListImages(ctx context.Context, userID string, after image.Cursor, limit int) ([]*image.Image, error) {
	return s.list(ctx, s.db.WithContext(ctx).Where("user_id = ?", userID), after, limit)
}

// ListAllImages implements image.Inventory.
func (s *Store) ListAllImages(ctx context.Context, status image.Status, after image.Cursor, limit int) ([]*image.Image, error) {
	q := s.db.WithContext(ctx)
	if status != "" {
		q = q.Where("status = ?", string(status))
	}
	return s.list(ctx, q, after, limit)
}

// CountByStatus implements image.Inventory.
func (s *Store) CountByStatus(ctx context.Context) (map[image.Status]int64, error) {
	var rows []struct {
		Status string
		N      int64
	}
	if err := s.db.WithContext(ctx).Model(&imageRow{}).Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count images: %w", err)
	}
	out := map[image.Status]int64{}
	for _, r := range rows {
		out[image.Status(r.Status)] = r.N
	}
	return out, nil
}

// list runs a newest-first page query with variants.
func (s *Store) list(_ context.Context, q *gorm.DB, after image.Cursor, limit int) ([]*image.Image, error) {
	q = q.Preload("Variants", func(db *gorm.DB) *gorm.DB {
		return db.Order("width, name")
	})
	if !after.IsZero() {
		q = q.Where("(created_at < ?) OR (created_at = ? AND id < ?)", after.CreatedAt, after.CreatedAt, after.ID)
	}
	var rows []imageRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]*image.Image, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// DeleteImage implements image.Catalog. Variant rows go with it (ON DELETE
// CASCADE).
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&imageRow{})
	if res.Error != nil {
		return fmt.Errorf("delete image: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return image.ErrNotFound
	}
	return nil
}

// ClaimImage implements image.Ledger. The row is locked while the attempt
// is bumped, so two workers never leave holding the same attempt.
func (s *Store) ClaimImage(ctx context.Context, id string, leaseUntil time.Time) (*image.Image, error) {
	var row imageRow
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return image.ErrNotClaimable
		}
		if err != nil {
			return err
		}
		if row.Status != string(image.StatusQueued) && row.Status != string(image.StatusProcessing) {
			return image.ErrNotClaimable
		}
		// Still processing: the attempt before never finished, released
		// or failed the image (its worker died, or outlived its lease).
		if row.Status == string(image.StatusProcessing) {
			row.Crashes++
		}
		lease := leaseUntil.UTC()
		row.Status = string(image.StatusProcessing)
		row.Attempt++
		row.LeaseUntil = &lease
		row.UpdatedAt = time.Now().UTC()
		return tx.Model(&imageRow{}).Where("id = ?", id).Updates(map[string]any{
			"status": row.Status, "attempt": row.Attempt, "lease_until": lease, "updated_at": row.UpdatedAt,
			"crashes": row.Crashes,
		}).Error
	})
	if errors.Is(err, image.ErrNotClaimable) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("claim image: %w", err)
	}
	return row.toDomain(), nil
}

// CompleteImage implements image.Ledger.
func (s *Store) CompleteImage(ctx context.Context, id string, attempt int, c image.Completion) ([]string, error) {
	return s.recordVariants(ctx, id, map[string]any{"status": string(image.StatusProcessing), "attempt": attempt}, map[string]any{
		"status":         string(image.StatusDone),
		"lease_until":    nil,
		"error_code":     nil,
		"error_message":  nil,
		"notify_pending": true,
	}, c)
}

// ReplaceVariants implements image.Ledger. The image stays done; its
// notification is not touched (nothing is announced).
func (s *Store) ReplaceVariants(ctx context.Context, id string, attempt int, c image.Completion) ([]string, error) {
	return s.recordVariants(ctx, id, map[string]any{"status": string(image.StatusDone), "attempt": attempt}, map[string]any{}, c)
}

// recordVariants writes a variant set and the image's update in one
// transaction, if the image matches fence; it returns the object keys of
// the replaced set that the new one does not use. It fails with
// ErrNotFound when the image is gone and ErrLeaseLost when it no longer
// matches.
func (s *Store) recordVariants(ctx context.Context, id string, fence, update map[string]any, c image.Completion) ([]string, error) {
	var replaced []string
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		update["placeholder"] = nullable(c.Placeholder)
		update["dominant_color"] = nullable(c.DominantColor)
		update["profile"] = nullable(c.Profile)
		update["updated_at"] = time.Now().UTC()
		q := tx.Model(&imageRow{}).Where("id = ?", id)
		for col, v := range fence {
			q = q.Where(col+" = ?", v)
		}
		res := q.Updates(update)
		if res.Error != nil {
			return fmt.Errorf("update image: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Model(&imageRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
				return fmt.Errorf("check image: %w", err)
			}
			if n == 0 {
				return image.ErrNotFound
			}
			return image.ErrLeaseLost
		}
		names := make([]string, len(c.Variants))
		rows := make([]variantRow, len(c.Variants))
		used := map[string]bool{}
		for i, v := range c.Variants {
			names[i] = v.Name
			rows[i] = variantRow{ImageID: id, Name: v.Name, Width: v.Width, Height: v.Height,
				Bytes: v.Bytes, ContentType: v.ContentType, ObjectKey: v.Key}
			for _, f := range v.Formats {
				rows[i].Formats = append(rows[i].Formats, formatRow{ContentType: f.ContentType, Bytes: f.Bytes, ObjectKey: f.Key})
			}
		}
		for _, k := range image.Keys(c.Variants) {
			used[k] = true
		}
		// The set replaced: its objects that the new set does not use are
		// the caller's to delete once this commits.
		var existing []variantRow
		if err := tx.Where("image_id = ?", id).Find(&existing).Error; err != nil {
			return fmt.Errorf("read variants: %w", err)
		}
		for _, r := range existing {
			v := r.toDomain()
			for _, k := range image.Keys([]image.Variant{v}) {
				if !used[k] {
					replaced = append(replaced, k)
				}
			}
		}
		// Variants that are no longer configured go; the others are upserted.
		// The stale ones are deleted by primary key: a range delete
		// ("image_id = ? AND name NOT IN …") takes InnoDB gap locks that
		// deadlocked with other images' inserts (UUIDv7 ids are adjacent).
		var stale []string
		for _, r := range existing {
			if !slices.Contains(names, r.Name) {
				stale = append(stale, r.Name)
			}
		}
		if len(stale) > 0 {
			if err := tx.Where("image_id = ? AND name IN ?", id, stale).Delete(&variantRow{}).Error; err != nil {
				return fmt.Errorf("delete old variants: %w", err)
			}
		}
		if len(rows) > 0 {
			if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&rows).Error; err != nil {
				return fmt.Errorf("upsert variants: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return replaced, nil
}

// OutdatedImages implements image.Inventory.
func (s *Store) OutdatedImages(ctx context.Context, profile, afterID string, limit int) ([]string, error) {
	var ids []string
	err := s.outdated(ctx, profile).Where("id > ?", afterID).Order("id").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("select outdated images: %w", err)
	}
	return ids, nil
}

// CountOutdated implements image.Inventory.
func (s *Store) CountOutdated(ctx context.Context, profile string) (int64, error) {
	var n int64
	if err := s.outdated(ctx, profile).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count outdated images: %w", err)
	}
	return n, nil
}

func (s *Store) outdated(ctx context.Context, profile string) *gorm.DB {
	return s.db.WithContext(ctx).Model(&imageRow{}).
		Where("status = ? AND (profile IS NULL OR profile <> ?)", string(image.StatusDone), profile)
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// FailImage implements image.Ledger.
func (s *Store) FailImage(ctx context.Context, id string, attempt int, code, message string) error {
	q := s.db.WithContext(ctx).Model(&imageRow{}).
		Where("id = ? AND status IN ?", id, []string{string(image.StatusQueued), string(image.StatusProcessing)})
	if attempt > 0 {
		q = q.Where("attempt = ?", attempt)
	}
	res := q.Updates(map[string]any{
		"status":         string(image.StatusFailed),
		"lease_until":    nil,
		"error_code":     code,
		"error_message":  truncate(message, 512),
		"notify_pending": true,
		"updated_at":     time.Now().UTC(),
	})
	if res.Error != nil {
		return fmt.Errorf("mark failed: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return image.ErrLeaseLost
	}
	return nil
}

// ReleaseImage implements image.Ledger.
func (s *Store) ReleaseImage(ctx context.Context, id string, attempt int) error {
	res := s.db.WithContext(ctx).Model(&imageRow{}).
		Where("id = ? AND status = ? AND attempt = ?", id, string(image.StatusProcessing), attempt).
		Updates(map[string]any{"status": string(image.StatusQueued), "lease_until": nil, "updated_at": time.Now().UTC()})
	if res.Error != nil {
		return fmt.Errorf("release image: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return image.ErrLeaseLost
	}
	return nil
}

// StaleImages implements image.Ledger.
func (s *Store) StaleImages(ctx context.Context, queuedBefore, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&imageRow{}).
		Where("(status = ? AND updated_at < ?) OR (status = ? AND lease_until < ?)",
			string(image.StatusQueued), queuedBefore.UTC(), string(image.StatusProcessing), now.UTC()).
		Order("updated_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("select stale images: %w", err)
	}
	return ids, nil
}

// MarkNotified implements image.Ledger. It leaves updated_at alone: the
// image itself did not change.
func (s *Store) MarkNotified(ctx context.Context, id string, attempt int) error {
	err := s.db.WithContext(ctx).Model(&imageRow{}).Where("id = ? AND attempt = ?", id, attempt).
		UpdateColumn("notify_pending", false).Error
	if err != nil {
		return fmt.Errorf("mark notified: %w", err)
	}
	return nil
}

// UnnotifiedImages implements image.Ledger.
func (s *Store) UnnotifiedImages(ctx context.Context, finishedBefore time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&imageRow{}).
		Where("notify_pending = ? AND updated_at < ? AND status IN ?", true, finishedBefore.UTC(),
			[]string{string(image.StatusDone), string(image.StatusFailed)}).
		Order("updated_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("select unnotified images: %w", err)
	}
	return ids, nil
}

// RequeueImage implements image.Ledger.
func (s *Store) RequeueImage(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Model(&imageRow{}).Where("id = ?", id).Updates(map[string]any{
		"status": string(image.StatusQueued), "lease_until": nil, "error_code": nil, "error_message": nil,
		"crashes": 0, "updated_at": time.Now().UTC(),
	})
	if res.Error != nil {
		return fmt.Errorf("requeue image: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return image.ErrNotFound
	}
	return nil
}

func (r *imageRow) toDomain() *image.Image {
	img := &image.Image{
		ID: r.ID, UserID: r.UserID, Status: image.Status(r.Status), Filename: r.Filename,
		ContentType: r.ContentType, Bytes: r.Bytes, Width: r.Width, Height: r.Height,
		Attempt: r.Attempt, LeaseUntil: r.LeaseUntil, Crashes: r.Crashes, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Placeholder: deref(r.Placeholder), DominantColor: deref(r.DominantColor), Profile: deref(r.Profile),
	}
	if r.ErrorCode != nil {
		img.ErrorCode = *r.ErrorCode
	}
	if r.ErrorMessage != nil {
		img.ErrorMessage = *r.ErrorMessage
	}
	if r.SHA256 != nil {
		img.SHA256 = *r.SHA256
	}
	for _, v := range r.Variants {
		img.Variants = append(img.Variants, v.toDomain())
	}
	return img
}

func (v *variantRow) toDomain() image.Variant {
	d := image.Variant{
		Name: v.Name, Width: v.Width, Height: v.Height, Bytes: v.Bytes,
		ContentType: v.ContentType, Key: v.ObjectKey,
	}
	for _, f := range v.Formats {
		d.Formats = append(d.Formats, image.VariantFormat{ContentType: f.ContentType, Bytes: f.Bytes, Key: f.ObjectKey})
	}
	return d
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
