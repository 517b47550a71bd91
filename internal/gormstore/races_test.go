package gormstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// TestSubscriptionLimitAtOnce: requests at once never leave a user over
// the subscription limit.
func TestSubscriptionLimitAtOnce(t *testing.T) { eachDatabase(t, testSubscriptionLimitAtOnce) }

func testSubscriptionLimitAtOnce(t *testing.T, s *gormstore.Store) {
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	var wg sync.WaitGroup
	var created, refused atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			sub := &webhook.Subscription{ID: fmt.Sprintf("01900000-0000-7000-8000-%012d", i), UserID: img.UserID,
				URL: "http://example.com/h", Events: []string{webhook.EventImageProcessed}, Secret: "whsec_x", CreatedAt: time.Now().UTC()}
			switch err := s.CreateSubscription(ctx, sub, 10); {
			case err == nil:
				created.Add(1)
			case errors.Is(err, webhook.ErrTooMany):
				refused.Add(1)
			default:
				t.Errorf("CreateSubscription = %v", err)
			}
		})
	}
	wg.Wait()
	subs, err := s.Subscriptions(ctx, img.UserID)
	if err != nil || len(subs) != 10 || created.Load() != 10 || refused.Load() != 30 {
		t.Errorf("40 creations at once with a limit of 10: %d created, %d refused, %d stored (%v); want 10, 30, 10",
			created.Load(), refused.Load(), len(subs), err)
	}
}

// TestRefreshAtOnce: one refresh token presented many times at once is
// rotated once; the others are refused (reuse), never a database error.
func TestRefreshAtOnce(t *testing.T) { eachDatabase(t, testRefreshAtOnce) }

func testRefreshAtOnce(t *testing.T, s *gormstore.Store) {
	img := mustUserAndImage(t, s)
	ctx := context.Background()
	now := time.Now()
	if err := s.CreateRefreshToken(ctx, auth.RefreshToken{Hash: "h0", UserID: img.UserID, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var rotated atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			_, err := s.RotateRefreshToken(ctx, "h0", now, auth.RefreshToken{Hash: fmt.Sprintf("h%d", i+1), ExpiresAt: now.Add(time.Hour)})
			switch {
			case err == nil:
				rotated.Add(1)
			case errors.Is(err, auth.ErrTokenReused), errors.Is(err, auth.ErrUnknownToken):
			default:
				t.Errorf("RotateRefreshToken = %v, want success or a refusal", err)
			}
		})
	}
	wg.Wait()
	if rotated.Load() != 1 {
		t.Errorf("%d rotations of one token, want 1", rotated.Load())
	}
}

// TestDatabaseDownIsUnavailable: every kind of call to a database that has
// gone away fails as unavailable (503), reads included.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	dbURL := testenv.MustDatabaseURL(t)
	u, _ := url.Parse(dbURL)
	proxy := testenv.NewTCPProxy(t, u.Host)
	u.Host = proxy.Addr
	cfg := gormstore.NewDefaultConfig()
	cfg.URL = u.String()
	db, err := gormstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := gormstore.NewStore(db)
	t.Cleanup(func() { s.Close() })
	img := mustUserAndImage(t, s)
	proxy.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, call := range map[string]func() error{
		"Image":       func() error { _, err := s.Image(ctx, img.ID); return err },
		"ListImages":  func() error { _, err := s.ListImages(ctx, img.UserID, image.Cursor{}, 10); return err },
		"ClaimImage":  func() error { _, err := s.ClaimImage(ctx, img.ID, time.Now()); return err },
		"UserByEmail": func() error { _, err := s.UserByEmail(ctx, "u@example.com"); return err },
		"RotateRefresh": func() error {
			_, err := s.RotateRefreshToken(ctx, "x", time.Now(), auth.RefreshToken{Hash: "y"})
			return err
		},
		"DeleteImage":   func() error { return s.DeleteImage(ctx, img.ID) },
		"Subscriptions": func() error { _, err := s.Subscriptions(ctx, img.UserID); return err },
	} {
		if err := call(); failure.KindOf(err) != failure.Unavailable {
			t.Errorf("%s with the database down = %v (kind %d), want unavailable", name, err, failure.KindOf(err))
		}
	}
}
