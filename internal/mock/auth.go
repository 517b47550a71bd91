package mock

import (
	"context"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
)

// Users is an auth.Users.
type Users struct {
	CreateUserFn  func(ctx context.Context, u *auth.User) error
	UserByEmailFn func(ctx context.Context, email string) (*auth.User, error)
	UserByIDFn    func(ctx context.Context, id string) (*auth.User, error)
}

var _ auth.Users = (*Users)(nil)

// CreateUser calls CreateUserFn.
func (m *Users) CreateUser(ctx context.Context, u *auth.User) error { return m.CreateUserFn(ctx, u) }

// UserByEmail calls UserByEmailFn.
func (m *Users) UserByEmail(ctx context.Context, email string) (*auth.User, error) {
	return m.UserByEmailFn(ctx, email)
}

// UserByID calls UserByIDFn.
func (m *Users) UserByID(ctx context.Context, id string) (*auth.User, error) {
	return m.UserByIDFn(ctx, id)
}

// Closing is an auth.Closing.
type Closing struct {
	MarkUserDeletedFn func(ctx context.Context, id string, at time.Time) error
	DeleteUserFn      func(ctx context.Context, id string) error
	DeletedUsersFn    func(ctx context.Context, before time.Time, limit int) ([]string, error)
}

var _ auth.Closing = (*Closing)(nil)

// MarkUserDeleted calls MarkUserDeletedFn.
func (m *Closing) MarkUserDeleted(ctx context.Context, id string, at time.Time) error {
	return m.MarkUserDeletedFn(ctx, id, at)
}

// DeleteUser calls DeleteUserFn.
func (m *Closing) DeleteUser(ctx context.Context, id string) error { return m.DeleteUserFn(ctx, id) }

// DeletedUsers calls DeletedUsersFn.
func (m *Closing) DeletedUsers(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return m.DeletedUsersFn(ctx, before, limit)
}

// Purger is an auth.Purger.
type Purger struct {
	PurgeUserFn func(ctx context.Context, userID string) error
}

var _ auth.Purger = (*Purger)(nil)

// PurgeUser calls PurgeUserFn.
func (m *Purger) PurgeUser(ctx context.Context, userID string) error {
	return m.PurgeUserFn(ctx, userID)
}

// Sessions is an auth.Sessions.
type Sessions struct {
	CreateRefreshTokenFn func(ctx context.Context, t auth.RefreshToken) error
	RotateRefreshTokenFn func(ctx context.Context, oldHash string, now time.Time, next auth.RefreshToken) (string, error)
	RevokeRefreshTokenFn func(ctx context.Context, userID, hash string) error
}

var _ auth.Sessions = (*Sessions)(nil)

// CreateRefreshToken calls CreateRefreshTokenFn.
func (m *Sessions) CreateRefreshToken(ctx context.Context, t auth.RefreshToken) error {
	return m.CreateRefreshTokenFn(ctx, t)
}

// RotateRefreshToken calls RotateRefreshTokenFn.
func (m *Sessions) RotateRefreshToken(ctx context.Context, oldHash string, now time.Time, next auth.RefreshToken) (string, error) {
	return m.RotateRefreshTokenFn(ctx, oldHash, now, next)
}

// RevokeRefreshToken calls RevokeRefreshTokenFn.
func (m *Sessions) RevokeRefreshToken(ctx context.Context, userID, hash string) error {
	return m.RevokeRefreshTokenFn(ctx, userID, hash)
}
