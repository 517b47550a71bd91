package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/mock"
)

// account is one user on fakes that record the deletion's steps in order.
type account struct {
	user    *auth.User
	steps   []string
	purge   *mock.Purger
	closing *mock.Closing
	svc     *auth.Service
	cfg     auth.Config
}

func newAccount(t *testing.T, password string) *account {
	t.Helper()
	cfg := auth.NewDefaultConfig()
	cfg.JWTSecret = []byte(strings.Repeat("k", 32))
	cfg.Hasher = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}
	hash, err := auth.HashPassword(password, cfg.Hasher)
	if err != nil {
		t.Fatal(err)
	}
	a := &account{user: &auth.User{ID: "u1", Email: "u1@example.com", PasswordHash: hash, Role: auth.RoleUser}, cfg: cfg}
	users := &mock.Users{
		UserByIDFn: func(_ context.Context, id string) (*auth.User, error) {
			if a.user == nil || id != a.user.ID {
				return nil, auth.ErrUnknownUser
			}
			u := *a.user
			return &u, nil
		},
		UserByEmailFn: func(_ context.Context, email string) (*auth.User, error) {
			if a.user == nil || email != a.user.Email {
				return nil, auth.ErrUnknownUser
			}
			u := *a.user
			return &u, nil
		},
	}
	a.closing = &mock.Closing{
		MarkUserDeletedFn: func(_ context.Context, id string, at time.Time) error {
			a.steps = append(a.steps, "mark")
			if a.user.DeletedAt == nil {
				a.user.DeletedAt = &at
			}
			return nil
		},
		DeleteUserFn: func(context.Context, string) error {
			a.steps = append(a.steps, "delete user")
			a.user = nil
			return nil
		},
	}
	a.purge = &mock.Purger{PurgeUserFn: func(context.Context, string) error {
		a.steps = append(a.steps, "purge")
		return nil
	}}
	a.svc, err = auth.NewService(users, &mock.Sessions{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *account) accounts(cfg auth.Config) *auth.Accounts {
	return auth.NewAccounts(a.svc, a.closing, cfg, slog.New(slog.DiscardHandler), a.purge)
}

// TestDeleteAccount: the password is checked before anything happens;
// then the account is closed (logins, refreshes and tokens refused) and
// its data removed, the user last. A removal that stops is reported as
// not done, and Reconcile finishes it.
func TestDeleteAccount(t *testing.T) {
	ctx := context.Background()
	cfg := auth.NewDefaultConfig()

	t.Run("ErrWrongPassword", func(t *testing.T) {
		a := newAccount(t, "correct horse")
		done, err := a.accounts(cfg).Delete(ctx, "u1", "wrong horse")
		if !errors.Is(err, auth.ErrWrongPassword) || done {
			t.Errorf("Delete with a wrong password = %v, %v; want ErrWrongPassword", done, err)
		}
		if len(a.steps) != 0 || a.user.DeletedAt != nil {
			t.Errorf("a refused deletion did %v", a.steps)
		}
		if _, err := a.svc.Active(ctx, "u1"); err != nil {
			t.Errorf("Active after a refused deletion = %v", err)
		}
	})

	t.Run("OK", func(t *testing.T) {
		a := newAccount(t, "correct horse")
		done, err := a.accounts(cfg).Delete(ctx, "u1", "correct horse")
		if err != nil || !done {
			t.Fatalf("Delete = %v, %v; want done", done, err)
		}
		if got := strings.Join(a.steps, ", "); got != "mark, purge, delete user" {
			t.Errorf("steps: %s; want mark, purge, delete user", got)
		}
		if _, err := a.svc.Active(ctx, "u1"); !errors.Is(err, auth.ErrAccountDeleted) {
			t.Errorf("Active of a deleted user = %v, want ErrAccountDeleted", err)
		}
		if _, err := a.accounts(cfg).Delete(ctx, "u1", "correct horse"); !errors.Is(err, auth.ErrAccountDeleted) {
			t.Errorf("Delete again, once gone = %v, want ErrAccountDeleted (401)", err)
		}
	})

	t.Run("Stopped", func(t *testing.T) {
		a := newAccount(t, "correct horse")
		a.purge.PurgeUserFn = func(context.Context, string) error {
			a.steps = append(a.steps, "purge")
			return errors.New("s3: connection reset")
		}
		done, err := a.accounts(cfg).Delete(ctx, "u1", "correct horse")
		if err != nil || done {
			t.Fatalf("Delete with S3 down = %v, %v; want not done, no error (the account is closed)", done, err)
		}
		if got := strings.Join(a.steps, ", "); got != "mark, purge" {
			t.Errorf("steps: %s; want mark, purge (the user's row stays)", got)
		}
		if _, err := a.svc.Active(ctx, "u1"); !errors.Is(err, auth.ErrAccountDeleted) {
			t.Errorf("Active of a user being deleted = %v, want ErrAccountDeleted", err)
		}
		if _, err := a.svc.Login(ctx, "u1@example.com", "correct horse"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("Login of a user being deleted = %v, want ErrBadCredentials", err)
		}

		// The reconciler leaves a deletion that began just now alone, and
		// finishes one that began long enough ago.
		a.purge.PurgeUserFn = func(context.Context, string) error { a.steps = append(a.steps, "purge"); return nil }
		a.closing.DeletedUsersFn = func(_ context.Context, before time.Time, _ int) ([]string, error) {
			if a.user != nil && a.user.DeletedAt.Before(before) {
				return []string{a.user.ID}, nil
			}
			return nil, nil
		}
		if n, err := a.accounts(cfg).Reconcile(ctx); n != 0 || err != nil {
			t.Errorf("Reconcile right after = %d, %v; want 0", n, err)
		}
		past := time.Now().Add(-time.Hour)
		a.user.DeletedAt = &past
		if n, err := a.accounts(cfg).Reconcile(ctx); n != 1 || err != nil {
			t.Errorf("Reconcile = %d, %v; want 1", n, err)
		}
		if got := strings.Join(a.steps, ", "); got != "mark, purge, purge, delete user" {
			t.Errorf("steps: %s; want mark, purge, purge, delete user", got)
		}
	})

	t.Run("ErrUserHasData", func(t *testing.T) {
		// A request running when the account was closed stored an image
		// after the purge: the purge runs again before the user goes.
		a := newAccount(t, "correct horse")
		late := 2
		a.closing.DeleteUserFn = func(context.Context, string) error {
			a.steps = append(a.steps, "delete user")
			if late > 0 {
				late--
				return auth.ErrUserHasData
			}
			return nil
		}
		if done, err := a.accounts(cfg).Delete(ctx, "u1", "correct horse"); err != nil || !done {
			t.Fatalf("Delete = %v, %v; want done", done, err)
		}
		if got := strings.Join(a.steps, ", "); got != "mark, purge, delete user, purge, delete user, purge, delete user" {
			t.Errorf("steps: %s", got)
		}
	})

	t.Run("RefreshRefused", func(t *testing.T) {
		a := newAccount(t, "correct horse")
		now := time.Now()
		a.user.DeletedAt = &now
		sessions := &mock.Sessions{RotateRefreshTokenFn: func(context.Context, string, time.Time, auth.RefreshToken) (string, error) {
			return "u1", nil // a rotation that slipped in before the mark
		}}
		svc, err := auth.NewService(&mock.Users{UserByIDFn: func(context.Context, string) (*auth.User, error) {
			u := *a.user
			return &u, nil
		}}, sessions, a.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Refresh(ctx, "some-token"); !errors.Is(err, auth.ErrBadRefresh) {
			t.Errorf("Refresh for a user being deleted = %v, want ErrBadRefresh", err)
		}
	})
}
