package gormstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// holdings are the ids of the rows seedAccount wrote for one user; each
// appears in at least one row.
type holdings struct {
	user, image, subscription, event, delivery, pendingUpload, doneUpload string
}

func (h holdings) all() []string {
	return []string{h.user, h.image, h.subscription, h.event, h.delivery, h.pendingUpload, h.doneUpload}
}

// seedAccount gives a user a row in every table: a done image with a
// variant, a refresh token, a webhook with an event and its delivery, an
// idempotency key, a pending multipart upload and a completed one. n
// makes the ids unique.
func seedAccount(t *testing.T, s *gormstore.Store, n int) holdings {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	id := func(k int) string { return fmt.Sprintf("01900000-0000-7000-8000-%06d%06d", n, k) }
	h := holdings{user: id(1), image: id(2), subscription: id(3), event: fmt.Sprintf("msg_%d", n),
		delivery: fmt.Sprintf("dlv_%d", n), pendingUpload: id(4), doneUpload: id(5)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateUser(ctx, &auth.User{ID: h.user, Email: fmt.Sprintf("u%d@example.com", n), PasswordHash: "x", Role: auth.RoleUser, CreatedAt: now}))
	img := &image.Image{ID: h.image, UserID: h.user, Status: image.StatusQueued, ContentType: "image/jpeg", Bytes: 10, Width: 4, Height: 3, CreatedAt: now, UpdatedAt: now}
	must(s.CreateImage(ctx, img))
	claimed, err := s.ClaimImage(ctx, img.ID, now.Add(time.Minute))
	must(err)
	_, err = s.CompleteImage(ctx, img.ID, claimed.Attempt, image.Completion{Variants: []image.Variant{{Name: "small", Width: 4, Height: 3, Bytes: 5,
		ContentType: "image/jpeg", Key: image.VariantPrefix(h.user, h.image) + "small.jpg"}}})
	must(err)
	must(s.CreateRefreshToken(ctx, auth.RefreshToken{Hash: fmt.Sprintf("token-%d", n), UserID: h.user, ExpiresAt: now.Add(time.Hour)}))
	sub := &webhook.Subscription{ID: h.subscription, UserID: h.user, URL: "http://example.com/h",
		Events: []string{webhook.EventImageProcessed}, Secret: "whsec_x", CreatedAt: now}
	must(s.CreateSubscription(ctx, sub, 10))
	ev := &webhook.Event{ID: h.event, UserID: h.user, ImageID: h.image, Type: webhook.EventImageProcessed, Payload: []byte(`{}`), CreatedAt: now}
	_, err = s.AddEvent(ctx, ev, []*webhook.Delivery{{ID: h.delivery, EventID: ev.ID, SubscriptionID: sub.ID,
		EventType: ev.Type, State: webhook.StatePending, NextAttemptAt: &now, CreatedAt: now}})
	must(err)
	_, _, err = s.Claim(ctx, h.user, "key-1", "fingerprint", now)
	must(err)
	for _, u := range []*image.PendingUpload{
		{ID: h.pendingUpload, State: image.UploadPending, Kind: image.UploadMultipart, S3UploadID: "s3-upload"},
		{ID: h.doneUpload, State: image.UploadCompleted, Kind: image.UploadPut},
	} {
		u.UserID, u.Bytes, u.Key, u.CreatedAt, u.ExpiresAt = h.user, 10, image.OriginalKey(h.user, u.ID), now, now.Add(time.Hour)
		must(s.CreateUpload(ctx, u))
	}
	return h
}

// mentioned lists the tables that still have a row naming one of ids.
func mentioned(t *testing.T, s *gormstore.Store, ids []string) map[string]int64 {
	t.Helper()
	found := map[string]int64{}
	for _, id := range ids {
		for table, n := range testenv.RowsMentioning(t, gormstore.DB(s), id) {
			found[table] += n
		}
	}
	return found
}

func TestDeleteUser(t *testing.T) { eachDatabase(t, testDeleteUser) }

// testDeleteUser: marking a user deleted revokes its refresh tokens and
// shows on the user; DeleteUser refuses an account that is not marked, or
// that still has images or unfinished uploads, and then removes every row
// that names the user and nothing of another user's; it can be repeated.
func testDeleteUser(t *testing.T, s *gormstore.Store) {
	ctx := context.Background()
	doomed, kept := seedAccount(t, s, 1), seedAccount(t, s, 2)
	keptBefore := mentioned(t, s, kept.all())
	if len(keptBefore) < 9 {
		t.Fatalf("seedAccount wrote rows in %v; want every table", keptBefore)
	}

	if err := s.DeleteUser(ctx, doomed.user); err == nil || errors.Is(err, auth.ErrUserHasData) {
		t.Fatalf("DeleteUser of a user not marked deleted = %v, want a refusal", err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	for range 2 { // marking again keeps the first time
		if err := s.MarkUserDeleted(ctx, doomed.user, at); err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Hour)
	}
	if u, err := s.UserByID(ctx, doomed.user); err != nil || u.DeletedAt == nil || !u.DeletedAt.Equal(at.Add(-2*time.Hour)) {
		t.Errorf("marked user = %+v, %v; want deleted_at %v", u, err, at.Add(-2*time.Hour))
	}
	if err := s.MarkUserDeleted(ctx, "01900000-0000-7000-8000-999999999999", at); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("MarkUserDeleted of nobody = %v, want ErrUnknownUser", err)
	}
	_, err := s.RotateRefreshToken(ctx, "token-1", time.Now(), auth.RefreshToken{Hash: "token-1b", ExpiresAt: time.Now().Add(time.Hour)})
	if err == nil {
		t.Error("the refresh token of a user marked deleted still rotates")
	}
	if ids, err := s.DeletedUsers(ctx, time.Now().Add(3*time.Hour), 10); err != nil || len(ids) != 1 || ids[0] != doomed.user {
		t.Errorf("DeletedUsers = %v, %v; want [%s]", ids, err, doomed.user)
	}
	if ids, _ := s.DeletedUsers(ctx, at.Add(-3*time.Hour), 10); len(ids) != 0 {
		t.Errorf("DeletedUsers before the mark = %v, want none", ids)
	}

	t.Run("ErrUserHasData", func(t *testing.T) {
		if err := s.DeleteUser(ctx, doomed.user); !errors.Is(err, auth.ErrUserHasData) {
			t.Fatalf("DeleteUser with an image and a pending upload = %v, want ErrUserHasData", err)
		}
		if n, err := s.DeleteUserImages(ctx, doomed.user, 500); err != nil || n != 1 {
			t.Fatalf("DeleteUserImages = %d, %v; want 1", n, err)
		}
		if n, _ := s.DeleteUserImages(ctx, doomed.user, 500); n != 0 {
			t.Errorf("DeleteUserImages again = %d, want 0", n)
		}
		if err := s.DeleteUser(ctx, doomed.user); !errors.Is(err, auth.ErrUserHasData) {
			t.Fatalf("DeleteUser with a pending upload = %v, want ErrUserHasData", err)
		}
		ups, err := s.UnfinishedUploads(ctx, doomed.user)
		if err != nil || len(ups) != 1 || ups[0].ID != doomed.pendingUpload || ups[0].S3UploadID != "s3-upload" {
			t.Fatalf("UnfinishedUploads = %+v, %v; want the pending one", ups, err)
		}
		if _, err := s.MoveUpload(ctx, ups[0].ID, ups[0].State, image.UploadAborted); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OK", func(t *testing.T) {
		for range 2 {
			if err := s.DeleteUser(ctx, doomed.user); err != nil {
				t.Fatalf("DeleteUser = %v", err)
			}
		}
		if left := mentioned(t, s, doomed.all()); len(left) != 0 {
			t.Errorf("rows left naming the deleted user: %v", left)
		}
		if after := mentioned(t, s, kept.all()); fmt.Sprint(after) != fmt.Sprint(keptBefore) {
			t.Errorf("the other user's rows: %v, were %v", after, keptBefore)
		}
	})
}
