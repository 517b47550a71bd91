package gormstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

func mustUserAndImage(t *testing.T, s *gormstore.Store) *image.Image {
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

// eachDatabase runs a test on MariaDB and on the quickstart's SQLite: the
// same store code serves both.
func eachDatabase(t *testing.T, test func(t *testing.T, s *gormstore.Store)) {
	t.Run("MariaDB", func(t *testing.T) {
		s, _ := testenv.MustStore(t)
		test(t, s)
	})
	t.Run("SQLite", func(t *testing.T) { test(t, testenv.MustSQLiteStore(t)) })
}

func TestCreateUser(t *testing.T) { eachDatabase(t, testCreateUser) }

func testCreateUser(t *testing.T, s *gormstore.Store) {
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
func TestLedgerFencing(t *testing.T) { eachDatabase(t, testLedgerFencing) }

func testLedgerFencing(t *testing.T, s *gormstore.Store) {
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
	if _, err := s.CompleteImage(ctx, img.ID, first.Attempt, image.Completion{Variants: v}); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("CompleteImage with a stale attempt = %v, want ErrLeaseLost", err)
	}
	if err := s.FailImage(ctx, img.ID, first.Attempt, "x", "y"); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("FailImage with a stale attempt = %v, want ErrLeaseLost", err)
	}
	if _, err := s.CompleteImage(ctx, img.ID, second.Attempt, image.Completion{Variants: v}); err != nil {
		t.Fatalf("CompleteImage with the current attempt = %v", err)
	}
	// Completing twice (a redelivered task that slipped through) changes nothing.
	if _, err := s.CompleteImage(ctx, img.ID, second.Attempt, image.Completion{Variants: v}); !errors.Is(err, image.ErrLeaseLost) {
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

// TestPendingNotification: finishing an image leaves its notification
// pending until MarkNotified of that attempt; only finished images older
// TestCrashCount: a claim that finds the image still processing counts a
// crash of the attempt before; an attempt released for its retry is not
// one; a requeue (reprocess) starts the count again.
func TestCrashCount(t *testing.T) { eachDatabase(t, testCrashCount) }

func testCrashCount(t *testing.T, s *gormstore.Store) {
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	lease := time.Now().Add(time.Minute)
	claim := func(wantCrashes int) *image.Image {
		t.Helper()
		got, err := s.ClaimImage(ctx, img.ID, lease)
		if err != nil || got.Crashes != wantCrashes {
			t.Fatalf("ClaimImage = crashes %v, %v; want %d", got, err, wantCrashes)
		}
		return got
	}
	first := claim(0)
	if err := s.ReleaseImage(ctx, img.ID, first.Attempt); err != nil {
		t.Fatalf("ReleaseImage = %v", err)
	}
	if got, _ := s.Image(ctx, img.ID); got.Status != image.StatusQueued || got.LeaseUntil != nil {
		t.Errorf("after release: %s, lease %v; want queued without a lease", got.Status, got.LeaseUntil)
	}
	second := claim(0)
	claim(1) // the second attempt was never heard of again
	if err := s.ReleaseImage(ctx, img.ID, second.Attempt); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("ReleaseImage of a stale attempt = %v, want ErrLeaseLost", err)
	}
	claim(2)
	if err := s.RequeueImage(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	claim(0)
}

// than the cut-off are listed.
func TestPendingNotification(t *testing.T) { eachDatabase(t, testPendingNotification) }

func testPendingNotification(t *testing.T, s *gormstore.Store) {
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	if ids, err := s.UnnotifiedImages(ctx, later, 10); err != nil || len(ids) != 0 {
		t.Fatalf("a queued image listed as unnotified: %v, %v", ids, err)
	}
	claimed, err := s.ClaimImage(ctx, img.ID, later)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FailImage(ctx, img.ID, 0, "processing_failed", "gave up"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.UnnotifiedImages(ctx, time.Now().Add(-time.Hour), 10); len(ids) != 0 {
		t.Errorf("an image failed just now listed before the cut-off: %v", ids)
	}
	if ids, _ := s.UnnotifiedImages(ctx, later, 10); len(ids) != 1 || ids[0] != img.ID {
		t.Fatalf("failed image: unnotified = %v, want [%s]", ids, img.ID)
	}
	before, _ := s.Image(ctx, img.ID)
	if err := s.MarkNotified(ctx, img.ID, claimed.Attempt+1); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.UnnotifiedImages(ctx, later, 10); len(ids) != 1 {
		t.Errorf("MarkNotified of another attempt cleared the pending notification: %v", ids)
	}
	if err := s.MarkNotified(ctx, img.ID, claimed.Attempt); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.UnnotifiedImages(ctx, later, 10); len(ids) != 0 {
		t.Errorf("after MarkNotified: unnotified = %v, want none", ids)
	}
	if after, _ := s.Image(ctx, img.ID); !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("MarkNotified moved updated_at from %v to %v", before.UpdatedAt, after.UpdatedAt)
	}
	// Processed again (an operator's reprocess), done: pending once more.
	if err := s.RequeueImage(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	again, err := s.ClaimImage(ctx, img.ID, later)
	if err != nil {
		t.Fatal(err)
	}
	v := []image.Variant{{Name: "small", Width: 4, Height: 3, Bytes: 5, ContentType: "image/jpeg", Key: "k"}}
	if _, err := s.CompleteImage(ctx, img.ID, again.Attempt, image.Completion{Variants: v}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.UnnotifiedImages(ctx, later, 10); len(ids) != 1 {
		t.Errorf("done image: unnotified = %v, want it", ids)
	}
}

func TestStaleImages(t *testing.T) { eachDatabase(t, testStaleImages) }

func testStaleImages(t *testing.T, s *gormstore.Store) {
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

func TestListImages(t *testing.T) { eachDatabase(t, testListImages) }

// testListImages pages through images newest first, including two created
// in the same microsecond (the id breaks the tie) and timestamps whose
// fractions differ in length.
func testListImages(t *testing.T, s *gormstore.Store) {
	owner := mustUserAndImage(t, s) // the oldest image
	ctx := context.Background()
	base := owner.CreatedAt.Add(time.Second).Truncate(time.Second)
	times := []time.Time{base, base.Add(100 * time.Millisecond), base.Add(123456 * time.Microsecond), base.Add(123456 * time.Microsecond)}
	ids := []string{
		"01900000-0000-7000-8000-000000000001", "01900000-0000-7000-8000-000000000002",
		"01900000-0000-7000-8000-000000000003", "01900000-0000-7000-8000-000000000004",
	}
	for i, id := range ids {
		img := *owner
		img.ID, img.CreatedAt, img.UpdatedAt = id, times[i], times[i]
		if err := s.CreateImage(ctx, &img); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{ids[3], ids[2], ids[1], ids[0], owner.ID}
	var got []string
	var after image.Cursor
	for range 10 {
		page, err := s.ListImages(ctx, owner.UserID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range page {
			got = append(got, img.ID)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		after = image.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("listed\n%v\nwant\n%v", got, want)
	}
}

func TestOutbox(t *testing.T) { eachDatabase(t, testOutbox) }

// testOutbox: an event is recorded once, with its deliveries, however many
// times it is added; deliveries list newest first and come due.
func testOutbox(t *testing.T, s *gormstore.Store) {
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	sub := &webhook.Subscription{ID: "01900000-0000-7000-8000-0000000000dd", UserID: img.UserID, URL: "http://example.com/h",
		Events: []string{webhook.EventImageProcessed}, Secret: "whsec_x", CreatedAt: now}
	if err := s.CreateSubscription(ctx, sub, 10); err != nil {
		t.Fatal(err)
	}
	ev := &webhook.Event{ID: "msg_1", UserID: img.UserID, ImageID: img.ID, Type: webhook.EventImageProcessed, Payload: []byte(`{}`), CreatedAt: now}
	d := &webhook.Delivery{ID: "dlv_1", EventID: ev.ID, SubscriptionID: sub.ID, EventType: ev.Type, State: webhook.StatePending, NextAttemptAt: &now, CreatedAt: now}
	for i := range 3 {
		got, err := s.AddEvent(ctx, ev, []*webhook.Delivery{d})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != "dlv_1" || got[0].State != webhook.StatePending {
			t.Fatalf("AddEvent #%d returned %+v, want the one pending delivery", i+1, got)
		}
	}
	due, err := s.DueDeliveries(ctx, now.Add(time.Second), 10)
	if err != nil || len(due) != 1 {
		t.Errorf("due deliveries = %v, %v; want [dlv_1]", due, err)
	}
	d.State, d.Attempts, d.LastStatus, d.NextAttemptAt = webhook.StateDelivered, 2, 200, nil
	if err := s.SaveDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, gotEv, err := s.Delivery(ctx, "dlv_1")
	if err != nil || got.State != webhook.StateDelivered || got.Attempts != 2 || string(gotEv.Payload) != "{}" {
		t.Errorf("Delivery = %+v, %+v, %v", got, gotEv, err)
	}
	if due, _ := s.DueDeliveries(ctx, now.Add(time.Second), 10); len(due) != 0 {
		t.Errorf("a delivered delivery is still due: %v", due)
	}
	if err := s.DeleteSubscription(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delivery(ctx, "dlv_1"); !errors.Is(err, webhook.ErrNotFound) {
		t.Errorf("delivery of a deleted subscription: %v, want ErrNotFound (cascade)", err)
	}
}

// TestVariantSets: completing records the formats, placeholder and profile
// and returns the keys the new set no longer uses; the backfill replaces a
// done image's set only at the attempt it read, and finds the images of
// another profile.
func TestVariantSets(t *testing.T) { eachDatabase(t, testVariantSets) }

func testVariantSets(t *testing.T, s *gormstore.Store) {
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	claimed, err := s.ClaimImage(ctx, img.ID, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// Variants are read in order of width, then name.
	variant := func(name, jpg, webp string) image.Variant {
		return image.Variant{Name: name, Width: 4, Height: 3, Bytes: 5, ContentType: "image/jpeg", Key: jpg,
			Formats: []image.VariantFormat{{ContentType: "image/jpeg", Bytes: 5, Key: jpg}, {ContentType: "image/webp", Bytes: 3, Key: webp}}}
	}
	first := image.Completion{Variants: []image.Variant{variant("small", "s1.jpg", "s1.webp"), variant("large", "l1.jpg", "l1.webp")},
		Placeholder: "LKO2?U%2Tw=w", DominantColor: "#5a6e82", Profile: "p1"}
	if replaced, err := s.CompleteImage(ctx, img.ID, claimed.Attempt, first); err != nil || len(replaced) != 0 {
		t.Fatalf("CompleteImage = %v, %v; want nothing replaced", replaced, err)
	}
	got, err := s.Image(ctx, img.ID)
	if err != nil || got.Placeholder != first.Placeholder || got.DominantColor != "#5a6e82" || got.Profile != "p1" ||
		len(got.Variants) != 2 || len(got.Variants[1].Formats) != 2 || got.Variants[1].Formats[1].Key != "s1.webp" {
		t.Fatalf("image after completion: %+v, %v", got, err)
	}
	if ids, err := s.OutdatedImages(ctx, "p2", "", 10); err != nil || len(ids) != 1 || ids[0] != img.ID {
		t.Errorf("OutdatedImages(p2) = %v, %v; want the image", ids, err)
	}
	if ids, _ := s.OutdatedImages(ctx, "p2", img.ID, 10); len(ids) != 0 {
		t.Errorf("OutdatedImages after the image = %v, want none", ids)
	}
	if n, err := s.CountOutdated(ctx, "p1"); err != nil || n != 0 {
		t.Errorf("CountOutdated(p1) = %d, %v; want 0", n, err)
	}

	// The backfill: small keeps its JPEG, loses its WebP; large goes; tiny
	// comes.
	second := image.Completion{Variants: []image.Variant{variant("small", "s1.jpg", "s2.webp"), variant("tiny", "t2.jpg", "t2.webp")},
		Placeholder: "LKO2?U%2Tw=w", DominantColor: "#5a6e82", Profile: "p2"}
	if _, err := s.ReplaceVariants(ctx, img.ID, claimed.Attempt-1, second); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("ReplaceVariants at an older attempt = %v, want ErrLeaseLost", err)
	}
	replaced, err := s.ReplaceVariants(ctx, img.ID, claimed.Attempt, second)
	slices.Sort(replaced)
	if err != nil || !slices.Equal(replaced, []string{"l1.jpg", "l1.webp", "s1.webp"}) {
		t.Errorf("ReplaceVariants = %v, %v; want the keys of the old set the new one does not use", replaced, err)
	}
	got, _ = s.Image(ctx, img.ID)
	if got.Status != image.StatusDone || got.Profile != "p2" || len(got.Variants) != 2 || got.Variants[0].Name != "tiny" && got.Variants[1].Name != "tiny" {
		t.Errorf("image after the backfill: %+v", got)
	}
	if n, _ := s.CountOutdated(ctx, "p2"); n != 0 {
		t.Errorf("CountOutdated(p2) after the backfill = %d, want 0", n)
	}
	// A reprocessing takes the image out of done: the backfill loses.
	if err := s.RequeueImage(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceVariants(ctx, img.ID, claimed.Attempt, first); !errors.Is(err, image.ErrLeaseLost) {
		t.Errorf("ReplaceVariants of a queued image = %v, want ErrLeaseLost", err)
	}
	if _, err := s.ReplaceVariants(ctx, "01900000-0000-7000-8000-0000000000ff", 1, first); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("ReplaceVariants of a missing image = %v, want ErrNotFound", err)
	}
}
