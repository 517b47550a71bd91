package mysql_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/mysql"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

func mustUserAndImage(t *testing.T, s *mysql.Store) *image.Image {
	t.Helper()
	ctx := context.Background()
	u := &auth.User{ID: "01900000-0000-7000-8000-0000000000aa", Email: "u@example.com", PasswordHash: "x", Role: auth.RoleUser, CreatedAt: time.Now().UTC()}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	img := &image.Image{ID: "01900000-0000-7000-8000-0000000000bb", UserID: u.ID, Status: image.StatusQueued,
		ContentType: "image/jpeg", Bytes: 10, Width: 4, Height: 3, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCreateUser(t *testing.T) {
	s, _ := testenv.MustStore(t)
	mustUserAndImage(t, s)
	t.Run("ErrEmailTaken", func(t *testing.T) {
		err := s.CreateUser(context.Background(), &auth.User{ID: "01900000-0000-7000-8000-0000000000cc", Email: "u@example.com",
			PasswordHash: "x", Role: auth.RoleUser, CreatedAt: time.Now()})
		if !errors.Is(err, auth.ErrEmailTaken) {
			t.Errorf("CreateUser with a taken email = %v, want ErrEmailTaken", err)
		}
	})
	t.Run("ErrUnknownUser", func(t *testing.T) {
		if _, err := s.UserByEmail(context.Background(), "nobody@example.com"); !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("UserByEmail = %v, want ErrUnknownUser", err)
		}
	})
}

// TestLedgerFencing: a worker whose lease was taken over by a newer attempt
// cannot complete or fail the image.
func TestLedgerFencing(t *testing.T) {
	s, _ := testenv.MustStore(t)
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	lease := time.Now().Add(time.Minute)

	first, err := s.ClaimImage(ctx, img.ID, lease)
	if err != nil || first.Attempt != 1 || first.Status != image.StatusProcessing {
		t.Fatalf("first claim = %+v, %v", first, err)
	}
	second, err := s.ClaimImage(ctx, img.ID, lease)
	if err != nil || second.Attempt != 2 {
		t.Fatalf("second claim = %+v, %v", second, err)
	}
	v := []image.Variant{{Name: "small", Width: 4, Height: 3, Bytes: 5, ContentType: "image/jpeg", Key: "k"}}
	if err := s.CompleteImage(ctx, img.ID, first.Attempt, v); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("CompleteImage with a stale attempt = %v, want ErrLeaseLost", err)
	}
	if err := s.FailImage(ctx, img.ID, first.Attempt, "x", "y"); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("FailImage with a stale attempt = %v, want ErrLeaseLost", err)
	}
	if err := s.CompleteImage(ctx, img.ID, second.Attempt, v); err != nil {
		t.Fatalf("CompleteImage with the current attempt = %v", err)
	}
	// Completing twice (a redelivered task that slipped through) changes nothing.
	if err := s.CompleteImage(ctx, img.ID, second.Attempt, v); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("second CompleteImage = %v, want ErrLeaseLost", err)
	}
	if _, err := s.ClaimImage(ctx, img.ID, lease); !errors.Is(err, image.ErrNotClaimable) {
		t.Errorf("claim of a done image = %v, want ErrNotClaimable", err)
	}
	got, err := s.Image(ctx, img.ID)
	if err != nil || got.Status != image.StatusDone || len(got.Variants) != 1 {
		t.Errorf("image = %+v, %v; want done with one variant", got, err)
	}
}

func TestStaleImages(t *testing.T) {
	s, _ := testenv.MustStore(t)
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	now := time.Now()
	ids, err := s.StaleImages(ctx, now.Add(-time.Hour), now, 10)
	if err != nil || len(ids) != 0 {
		t.Errorf("fresh queued image listed as stale: %v, %v", ids, err)
	}
	ids, _ = s.StaleImages(ctx, now.Add(time.Second), now, 10)
	if len(ids) != 1 || ids[0] != img.ID {
		t.Errorf("old queued image: stale = %v, want [%s]", ids, img.ID)
	}
	// A processing image is stale once its lease has ended.
	if _, err := s.ClaimImage(ctx, img.ID, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	ids, _ = s.StaleImages(ctx, now.Add(-time.Hour), now, 10)
	if len(ids) != 1 {
		t.Errorf("expired lease: stale = %v, want the image", ids)
	}
	if _, err := s.ClaimImage(ctx, img.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ids, _ = s.StaleImages(ctx, now.Add(-time.Hour), now, 10)
	if len(ids) != 0 {
		t.Errorf("live lease: stale = %v, want none", ids)
	}
}
