package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// Deleting an account (DELETE /v1/account) is done in an order that leaves
// nothing behind however far it gets, and that can be run again until it
// is finished:
//
//  1. the password is checked;
//  2. the user is marked deleted and its refresh tokens revoked, in one
//     transaction: from then on logins, refreshes and access tokens of the
//     account are refused (Active);
//  3. each Purger removes what the user stores elsewhere (image rows,
//     unfinished uploads, every object under the user's prefixes, the
//     event stream);
//  4. the remaining rows naming the user go in one transaction, the
//     user's row last; it refuses while images or unfinished uploads are
//     there (a request that was running at the mark can still add one),
//     and the purge runs again.
//
// Until step 4 commits, the marked user's row is the record that work is
// left: the user calling again, or Reconcile, goes through 3 and 4 again.

// Errors of account deletion.
var (
	ErrWrongPassword = failure.New(failure.Forbidden, "invalid_password", "the password is not this account's")
	// ErrAccountDeleted is a token of an account that is deleted, or being
	// deleted: the same code as any invalid token, with a message that
	// says why.
	ErrAccountDeleted = failure.New(failure.Unauthorized, "invalid_token", "the account of this access token is deleted")
	// ErrUserHasData is DeleteUser finding images or unfinished uploads of
	// the user: they have objects, which the purge removes first.
	ErrUserHasData = errors.New("the user still has images or unfinished uploads")
)

// Closing stores the accounts being deleted.
type Closing interface {
	// MarkUserDeleted sets the user's deleted_at (an earlier one stays)
	// and revokes every refresh token of the user; ErrUnknownUser when
	// there is no such user.
	MarkUserDeleted(ctx context.Context, id string, at time.Time) error
	// DeleteUser removes a user marked deleted and every row that still
	// names it, the user's row last, in one transaction; nothing when the
	// user is gone already. It returns ErrUserHasData when images or
	// unfinished uploads of the user remain.
	DeleteUser(ctx context.Context, id string) error
	// DeletedUsers lists users marked deleted before t.
	DeletedUsers(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// Purger removes what a user stores outside the users' own tables. It is
// called again after an error, or after it returned, until the account is
// gone, so it must finish what an earlier call left.
type Purger interface {
	PurgeUser(ctx context.Context, userID string) error
}

// Active returns the user behind an access token, or ErrAccountDeleted if
// the account is deleted or being deleted. The API calls it on every
// authenticated request, so that deleting an account ends its access
// tokens at once rather than when they expire: one primary-key read.
func (s *Service) Active(ctx context.Context, userID string) (*User, error) {
	u, err := s.users.UserByID(ctx, userID)
	if errors.Is(err, ErrUnknownUser) {
		return nil, ErrAccountDeleted
	}
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u.DeletedAt != nil {
		return nil, ErrAccountDeleted
	}
	return u, nil
}

// CheckPassword checks a user's password (even of an account being
// deleted, so that its owner can finish the deletion), under the same
// bound on concurrent hashes as logins.
func (s *Service) CheckPassword(ctx context.Context, userID, password string) error {
	release, err := s.startHash(ctx)
	if err != nil {
		return err
	}
	defer release()
	u, err := s.users.UserByID(ctx, userID)
	if errors.Is(err, ErrUnknownUser) {
		return ErrAccountDeleted
	}
	if err != nil {
		return fmt.Errorf("find user: %w", err)
	}
	if len(password) > maxPassword || !VerifyPassword(u.PasswordHash, password) {
		return ErrWrongPassword
	}
	return nil
}

// Accounts deletes accounts.
type Accounts struct {
	passwords *Service
	store     Closing
	purgers   []Purger
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
}

// NewAccounts returns Accounts that check passwords with passwords, mark
// and remove users in store, and have purgers remove what users store
// elsewhere. A worker, which signs no tokens and has no Service, passes
// nil passwords: it only reconciles (Delete then refuses).
func NewAccounts(passwords *Service, store Closing, cfg Config, log *slog.Logger, purgers ...Purger) *Accounts {
	return &Accounts{passwords: passwords, store: store, purgers: purgers, cfg: cfg, log: log, now: time.Now}
}

// Delete deletes a user's account after checking its password. Once the
// password is right the account is closed at once; done reports whether
// everything is removed too. When that could not finish within
// Config.DeleteWait (a dependency down, a very large account), it is left
// to the user calling again or to Reconcile, and done is false with a nil
// error: the deletion has happened as far as the user can tell.
func (a *Accounts) Delete(ctx context.Context, userID, password string) (done bool, err error) {
	if a.passwords == nil {
		return false, errors.New("delete account: no password checker")
	}
	if err := a.passwords.CheckPassword(ctx, userID, password); err != nil {
		return false, err
	}
	if err := a.store.MarkUserDeleted(ctx, userID, a.now().UTC()); err != nil {
		if errors.Is(err, ErrUnknownUser) {
			return false, ErrAccountDeleted
		}
		return false, fmt.Errorf("mark user deleted: %w", err)
	}
	// From here on the client may hang up: the removal goes on for at
	// most DeleteWait whatever it does.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.DeleteWait)
	defer cancel()
	if err := a.Finish(rctx, userID); err != nil {
		a.log.WarnContext(ctx, "account deletion left to the reconciler", "err", err)
		return false, nil
	}
	return true, nil
}

// Finish removes what is left of a user marked deleted: the purges, then
// the user's rows. A request still running when the user was marked may
// store an image meanwhile; then both run again (three rounds at most).
func (a *Accounts) Finish(ctx context.Context, userID string) error {
	for range 3 {
		for _, p := range a.purgers {
			if err := p.PurgeUser(ctx, userID); err != nil {
				return fmt.Errorf("purge user %s: %w", userID, err)
			}
		}
		err := a.store.DeleteUser(ctx, userID)
		if !errors.Is(err, ErrUserHasData) {
			if err != nil {
				return fmt.Errorf("delete user %s: %w", userID, err)
			}
			return nil
		}
	}
	return fmt.Errorf("delete user %s: %w", userID, ErrUserHasData)
}

// Reconcile finishes the deletions that stopped: those of users marked
// deleted over ResumeDeleteAfter ago (a request still at it is left
// alone). It returns how many it finished; one that fails again does not
// keep the others waiting.
func (a *Accounts) Reconcile(ctx context.Context) (int, error) {
	ids, err := a.store.DeletedUsers(ctx, a.now().Add(-a.cfg.ResumeDeleteAfter), 100)
	if err != nil {
		return 0, fmt.Errorf("list deleted users: %w", err)
	}
	n := 0
	var errs []error
	for _, id := range ids {
		if err := a.Finish(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
