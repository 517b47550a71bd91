package image_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/mock"
)

// TestReconcileExpiresUploads: the reconciler removes the bytes of every
// unfinished upload whose time ran out and marks it expired; one caught
// completing is left to its completion for a grace period, then finished
// by the image it became, or removed if it became none.
func TestReconcileExpiresUploads(t *testing.T) {
	now := time.Now()
	stale := []*image.PendingUpload{
		{ID: "put", Kind: image.UploadPut, State: image.UploadPending, Key: "originals/u/put", ExpiresAt: now.Add(-time.Minute)},
		{ID: "multi", Kind: image.UploadMultipart, State: image.UploadPending, Key: "originals/u/multi", S3UploadID: "mp-1", ExpiresAt: now.Add(-time.Minute)},
		{ID: "tus", Kind: image.UploadTus, State: image.UploadPending, Key: "originals/u/tus", ExpiresAt: now.Add(-time.Minute)},
		{ID: "completing-now", Kind: image.UploadPut, State: image.UploadCompleting, Key: "originals/u/completing-now", ExpiresAt: now.Add(-time.Minute)},
		{ID: "became-image", Kind: image.UploadPut, State: image.UploadCompleting, Key: "originals/u/became-image", ExpiresAt: now.Add(-time.Hour)},
		{ID: "crashed", Kind: image.UploadPut, State: image.UploadCompleting, Key: "originals/u/crashed", ExpiresAt: now.Add(-time.Hour)},
	}
	var deleted, aborted, abortedAll, moves []string
	uploads := &mock.Uploads{
		StaleUploadsFn: func(_ context.Context, before time.Time, _ int) ([]*image.PendingUpload, error) { return stale, nil },
		MoveUploadFn: func(_ context.Context, id, from, to string) (bool, error) {
			moves = append(moves, id+":"+from+">"+to)
			return true, nil
		},
		ForgetUploadsFn: func(context.Context, time.Time) (int64, error) { return 0, nil },
	}
	staging := &mock.Staging{
		AbortMultipartFn: func(_ context.Context, key, id string) error { aborted = append(aborted, key+"#"+id); return nil },
		AbortMultipartUploadsFn: func(_ context.Context, key string) error {
			abortedAll = append(abortedAll, key)
			return nil
		},
	}
	blobs := &mock.Blobs{DeletePrefixFn: func(_ context.Context, p string) error { deleted = append(deleted, p); return nil }}
	catalog := &mock.Catalog{ImageFn: func(_ context.Context, id string) (*image.Image, error) {
		if id == "became-image" {
			return &image.Image{ID: id}, nil
		}
		return nil, image.ErrNotFound
	}}
	ledger := &mock.Ledger{
		StaleImagesFn:      func(context.Context, time.Time, time.Time, int) ([]string, error) { return nil, nil },
		UnnotifiedImagesFn: func(context.Context, time.Time, int) ([]string, error) { return nil, nil },
	}
	p := image.NewProcessor(image.ProcessorDeps{Catalog: catalog, Ledger: ledger, Blobs: blobs, Queue: &mock.Queue{},
		Resizer: &mock.Resizer{}, Uploads: uploads, Staging: staging}, image.NewDefaultConfig(), slog.New(slog.DiscardHandler))

	n, err := p.Reconcile(context.Background())
	if err != nil || n != 4 {
		t.Errorf("Reconcile = %d, %v; want 4 uploads expired", n, err)
	}
	wantDeleted := []string{"originals/u/put", "originals/u/multi", "originals/u/tus", "originals/u/crashed"}
	if !slices.Equal(deleted, wantDeleted) {
		t.Errorf("deleted %v, want %v", deleted, wantDeleted)
	}
	if !slices.Equal(aborted, []string{"originals/u/multi#mp-1"}) || !slices.Equal(abortedAll, []string{"originals/u/tus"}) {
		t.Errorf("aborted %v and every upload under %v; want the direct multipart upload by its id and the tus upload's by key", aborted, abortedAll)
	}
	wantMoves := []string{"put:pending>expired", "multi:pending>expired", "tus:pending>expired",
		"became-image:completing>completed", "crashed:completing>expired"}
	if !slices.Equal(moves, wantMoves) {
		t.Errorf("moves %v, want %v", moves, wantMoves)
	}
}
