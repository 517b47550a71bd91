package gormstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/imagesvc/imagesvc/internal/image"
)

type uploadRow struct {
	ID          string `gorm:"primaryKey"`
	UserID      string
	Kind        string
	State       string
	Filename    string
	ContentType string
	Bytes       int64
	PartSize    int64
	ObjectKey   string
	S3UploadID  *string `gorm:"column:s3_upload_id"`
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

func (uploadRow) TableName() string { return "uploads" }

func (r uploadRow) toDomain() *image.PendingUpload {
	u := &image.PendingUpload{
		ID: r.ID, UserID: r.UserID, Kind: r.Kind, State: r.State, Filename: r.Filename,
		ContentType: r.ContentType, Bytes: r.Bytes, PartSize: r.PartSize, Key: r.ObjectKey,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
	if r.S3UploadID != nil {
		u.S3UploadID = *r.S3UploadID
	}
	return u
}

var _ image.Uploads = (*Store)(nil)

// CreateUpload implements image.Uploads.
func (s *Store) CreateUpload(ctx context.Context, u *image.PendingUpload) error {
	row := uploadRow{
		ID: u.ID, UserID: u.UserID, Kind: u.Kind, State: u.State, Filename: u.Filename,
		ContentType: u.ContentType, Bytes: u.Bytes, PartSize: u.PartSize, ObjectKey: u.Key,
		S3UploadID: strPtr(u.S3UploadID),
		CreatedAt:  u.CreatedAt.UTC(), ExpiresAt: u.ExpiresAt.UTC(),
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("insert upload: %w", err)
	}
	return nil
}

// Upload implements image.Uploads.
func (s *Store) Upload(ctx context.Context, id string) (*image.PendingUpload, error) {
	return s.takeUpload(ctx, "id = ?", id)
}

func (s *Store) takeUpload(ctx context.Context, where string, arg string) (*image.PendingUpload, error) {
	var row uploadRow
	err := s.db.WithContext(ctx).Where(where, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, image.ErrUploadNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select upload: %w", err)
	}
	return row.toDomain(), nil
}

// MoveUpload implements image.Uploads: the state in the WHERE clause
// decides between requests at once.
func (s *Store) MoveUpload(ctx context.Context, id, from, to string) (bool, error) {
	res := s.db.WithContext(ctx).Model(&uploadRow{}).Where("id = ? AND state = ?", id, from).Update("state", to)
	if res.Error != nil {
		return false, fmt.Errorf("update upload: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// StaleUploads implements image.Uploads.
func (s *Store) StaleUploads(ctx context.Context, before time.Time, limit int) ([]*image.PendingUpload, error) {
	var rows []uploadRow
	err := s.db.WithContext(ctx).
		Where("state IN ? AND expires_at < ?", []string{image.UploadPending, image.UploadCompleting}, before.UTC()).
		Order("expires_at").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("select stale uploads: %w", err)
	}
	out := make([]*image.PendingUpload, len(rows))
	for i, r := range rows {
		out[i] = r.toDomain()
	}
	return out, nil
}

// PendingUploads implements image.Uploads.
func (s *Store) PendingUploads(ctx context.Context, userID string) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&uploadRow{}).
		Where("user_id = ? AND state IN ?", userID, []string{image.UploadPending, image.UploadCompleting}).Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count uploads: %w", err)
	}
	return int(n), nil
}

// ForgetUploads implements image.Uploads.
func (s *Store) ForgetUploads(ctx context.Context, before time.Time) (int64, error) {
	res := s.db.WithContext(ctx).
		Where("state NOT IN ? AND expires_at < ?", []string{image.UploadPending, image.UploadCompleting}, before.UTC()).
		Delete(&uploadRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete finished uploads: %w", res.Error)
	}
	return res.RowsAffected, nil
}
