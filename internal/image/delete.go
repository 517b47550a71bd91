package image

import (
	"context"
	"errors"
	"fmt"
)

// Delete removes a user's image: its objects first, then its row, so that a
// failure half-way leaves a row the user can delete again rather than
// objects nobody knows about.
func (s *Service) Delete(ctx context.Context, userID, id string) error {
	img, err := s.owned(ctx, userID, id)
	if err != nil {
		return err
	}
	if err := s.blobs.DeletePrefix(ctx, VariantPrefix(img.UserID, img.ID)); err != nil {
		return unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete variants: %w", err))
	}
	if err := s.blobs.DeletePrefix(ctx, img.OriginalKey()); err != nil {
		return unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete original: %w", err))
	}
	if err := s.catalog.DeleteImage(ctx, img.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}
