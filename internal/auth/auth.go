// Package auth is the user side of the domain: sign-up, password login,
// short-lived access tokens (HS256 JWT) and rotating refresh tokens.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// Roles a user can have.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// User is an account.
type User struct {
	ID           string
	Email        string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
	// DeletedAt is when the account's deletion began; nil for an account
	// in use. A deleted user is refused everywhere (see Accounts).
	DeletedAt *time.Time
}

// RefreshToken is the stored form of a refresh token: only its hash.
type RefreshToken struct {
	Hash      string
	UserID    string
	ExpiresAt time.Time
}

// Users stores accounts.
type Users interface {
	// CreateUser returns ErrEmailTaken when the email is in use.
	CreateUser(ctx context.Context, u *User) error
	// UserByEmail returns ErrUnknownUser when there is none.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UserByID returns ErrUnknownUser when there is none.
	UserByID(ctx context.Context, id string) (*User, error)
}

// Sessions stores refresh tokens.
type Sessions interface {
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken atomically revokes the live token with oldHash and
	// stores next, returning the owner's id. It returns ErrTokenReused when
	// oldHash names a token that was already revoked (the store then revokes
	// every token of that user) and ErrUnknownToken when it names none.
	RotateRefreshToken(ctx context.Context, oldHash string, now time.Time, next RefreshToken) (string, error)
	// RevokeRefreshToken revokes the user's token with this hash, if any.
	RevokeRefreshToken(ctx context.Context, userID, hash string) error
}

// Errors of the auth domain. ErrUnknownUser, ErrUnknownToken and
// ErrTokenReused are store-level; clients see ErrBadCredentials or
// ErrBadRefresh instead.
var (
	ErrEmailTaken     = failure.New(failure.Conflict, "email_taken", "an account with this email already exists")
	ErrInvalidEmail   = failure.New(failure.Unprocessable, "invalid_email", "email is not a valid address")
	ErrWeakPassword   = failure.New(failure.Unprocessable, "weak_password", "password must be 8 to 1024 characters")
	ErrBadCredentials = failure.New(failure.Unauthorized, "invalid_credentials", "email or password is incorrect")
	ErrBadRefresh     = failure.New(failure.Unauthorized, "invalid_refresh_token", "refresh token is invalid, expired or already used")
	ErrBadToken       = failure.New(failure.Unauthorized, "invalid_token", "access token is missing, invalid or expired")
	ErrBusy           = failure.New(failure.Unavailable, "auth_busy", "too many sign-ins at once; retry shortly")
	ErrUnknownUser    = errors.New("unknown user")
	ErrUnknownToken   = errors.New("unknown refresh token")
	ErrTokenReused    = errors.New("refresh token reused")
)

// Config holds the auth settings.
type Config struct {
	JWTSecret  []byte
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Issuer     string
	Hasher     HashParams
	// MaxConcurrentHashes bounds the password hashes computed at once by
	// this process, signups and logins together: each holds
	// Hasher.MemoryKiB of memory and a core for tens of milliseconds. One
	// that cannot start within HashWait gets ErrBusy.
	MaxConcurrentHashes int
	HashWait            time.Duration
	// DeleteWait bounds the time DELETE /v1/account spends removing an
	// account's data before it answers; what is left then, Accounts'
	// Reconcile finishes once ResumeDeleteAfter has passed since the
	// deletion began.
	DeleteWait        time.Duration
	ResumeDeleteAfter time.Duration
}

// NewDefaultConfig returns the defaults: 15-minute access tokens, 30-day
// refresh tokens, two password hashes at once per core, waiting up to two
// seconds for one; an account's deletion answers within 30 seconds and is
// resumed by the reconciler two minutes after it began.
func NewDefaultConfig() Config {
	return Config{
		AccessTTL:           15 * time.Minute,
		RefreshTTL:          30 * 24 * time.Hour,
		Issuer:              "imagesvc",
		Hasher:              DefaultHashParams,
		MaxConcurrentHashes: 2 * runtime.NumCPU(),
		HashWait:            2 * time.Second,
		DeleteWait:          30 * time.Second,
		ResumeDeleteAfter:   2 * time.Minute,
	}
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("JWT_SECRET must be at least 32 bytes"))
	}
	if c.AccessTTL <= 0 || c.RefreshTTL <= 0 {
		errs = append(errs, errors.New("token lifetimes must be positive"))
	}
	if c.MaxConcurrentHashes < 1 || c.HashWait <= 0 {
		errs = append(errs, errors.New("AUTH_MAX_CONCURRENT_HASHES must be at least 1"))
	}
	if c.DeleteWait <= 0 || c.ResumeDeleteAfter <= 0 {
		errs = append(errs, errors.New("account deletion times must be positive"))
	}
	return errors.Join(errs...)
}

// Service signs users up and in.
type Service struct {
	users     Users
	sessions  Sessions
	cfg       Config
	parser    *jwt.Parser
	dummyHash string
	now       func() time.Time
	// hashes holds a token per password hash being computed.
	hashes chan struct{}
}

// NewService returns a Service.
func NewService(users Users, sessions Sessions, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A hash to verify against when the email is unknown, so that an unknown
	// email costs the same time as a wrong password.
	dummy, err := HashPassword("imagesvc-timing-equaliser", cfg.Hasher)
	if err != nil {
		return nil, err
	}
	return &Service{
		users: users, sessions: sessions, cfg: cfg, dummyHash: dummy, now: time.Now,
		hashes: make(chan struct{}, cfg.MaxConcurrentHashes),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithLeeway(5*time.Second),
		),
	}, nil
}

// Tokens is what login and refresh return.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
}

// Signup creates an account with role user.
func (s *Service) Signup(ctx context.Context, email, password string) (*User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	release, err := s.startHash(ctx)
	if err != nil {
		return nil, err
	}
	hash, err := HashPassword(password, s.cfg.Hasher)
	release()
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	u := &User{ID: id.String(), Email: email, PasswordHash: hash, Role: RoleUser,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.users.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// Login checks a password and issues tokens. Unknown email and wrong
// password give the same error after the same work.
func (s *Service) Login(ctx context.Context, email, password string) (Tokens, error) {
	release, err := s.startHash(ctx)
	if err != nil {
		return Tokens{}, err
	}
	u, err := s.checkCredentials(ctx, email, password)
	release()
	if err != nil {
		return Tokens{}, err
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, err
	}
	err = s.sessions.CreateRefreshToken(ctx, RefreshToken{Hash: hash, UserID: u.ID, ExpiresAt: s.now().Add(s.cfg.RefreshTTL)})
	if err != nil {
		return Tokens{}, fmt.Errorf("store refresh token: %w", err)
	}
	return s.issue(u, refresh)
}

// checkCredentials returns the user whose email and password these are,
// after one password hash whatever the outcome.
func (s *Service) checkCredentials(ctx context.Context, email, password string) (*User, error) {
	email, err := normalizeEmail(email)
	if err != nil || len(password) > maxPassword {
		_ = VerifyPassword(s.dummyHash, password)
		return nil, ErrBadCredentials
	}
	u, err := s.users.UserByEmail(ctx, email)
	if errors.Is(err, ErrUnknownUser) {
		_ = VerifyPassword(s.dummyHash, password)
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if !VerifyPassword(u.PasswordHash, password) || u.DeletedAt != nil {
		return nil, ErrBadCredentials
	}
	return u, nil
}

// startHash waits up to HashWait for one of the MaxConcurrentHashes
// password hashes: a burst of signups held 120 hashes of 19 MiB at once
// (2.4 GB) and made a real login wait 10 s. It returns ErrBusy when none
// comes free in time, and the function that frees the one it got.
func (s *Service) startHash(ctx context.Context) (func(), error) {
	t := time.NewTimer(s.cfg.HashWait)
	defer t.Stop()
	select {
	case s.hashes <- struct{}{}:
		return func() { <-s.hashes }, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ErrBusy
	}
}

// Refresh exchanges a refresh token for new tokens; the old one stops
// working. Presenting a token that was already used revokes every session
// of its user, since one of the two holders is not the user.
func (s *Service) Refresh(ctx context.Context, token string) (Tokens, error) {
	if token == "" || len(token) > 256 {
		return Tokens{}, ErrBadRefresh
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, err
	}
	now := s.now()
	userID, err := s.sessions.RotateRefreshToken(ctx, hashToken(token), now, RefreshToken{Hash: hash, ExpiresAt: now.Add(s.cfg.RefreshTTL)})
	if errors.Is(err, ErrUnknownToken) || errors.Is(err, ErrTokenReused) {
		return Tokens{}, ErrBadRefresh
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	u, err := s.users.UserByID(ctx, userID)
	if errors.Is(err, ErrUnknownUser) {
		return Tokens{}, ErrBadRefresh
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("find user: %w", err)
	}
	// Closing an account revokes its tokens, but a rotation may have
	// slipped in just before.
	if u.DeletedAt != nil {
		return Tokens{}, ErrBadRefresh
	}
	return s.issue(u, refresh)
}

// Logout revokes one of the caller's refresh tokens. An unknown token is not
// an error: the outcome the client wants, a dead token, holds either way.
func (s *Service) Logout(ctx context.Context, userID, token string) error {
	if token == "" || len(token) > 256 {
		return ErrBadRefresh
	}
	return s.sessions.RevokeRefreshToken(ctx, userID, hashToken(token))
}

// Claims are the claims of an access token.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID string
	Role   string
	// ExpiresAt is when the access token stops being valid: a stream
	// opened with it ends then.
	ExpiresAt time.Time
}

// Verify parses an access token. Only HS256 is accepted; exp is required.
func (s *Service) Verify(token string) (Principal, error) {
	var c Claims
	_, err := s.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.cfg.JWTSecret, nil })
	if err != nil || c.Subject == "" || (c.Role != RoleUser && c.Role != RoleAdmin) {
		return Principal{}, ErrBadToken
	}
	return Principal{UserID: c.Subject, Role: c.Role, ExpiresAt: c.ExpiresAt.Time}, nil
}

func (s *Service) issue(u *User, refresh string) (Tokens, error) {
	now := s.now()
	jti, err := randomString(16)
	if err != nil {
		return Tokens{}, err
	}
	claims := Claims{
		Role: u.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID,
			Issuer:    s.cfg.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			ID:        jti,
		},
	}
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.JWTSecret)
	if err != nil {
		return Tokens{}, fmt.Errorf("sign token: %w", err)
	}
	return Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.cfg.AccessTTL}, nil
}

const maxPassword = 1024

func checkPassword(p string) error {
	if utf8.RuneCountInString(p) < 8 || len(p) > maxPassword {
		return ErrWeakPassword
	}
	return nil
}

// normalizeEmail accepts a bare address (no display name), in Unicode
// compatibility form (NFKC) and lower-cased: the same address typed as NFC
// or NFD, or with a long s (U+017F) for an s, is one account.
func normalizeEmail(email string) (string, error) {
	email = norm.NFKC.String(strings.TrimSpace(email))
	if email == "" || len(email) > 254 {
		return "", ErrInvalidEmail
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || !strings.Contains(email, "@") {
		return "", ErrInvalidEmail
	}
	return strings.ToLower(email), nil
}

func newRefreshToken() (token, hash string, err error) {
	token, err = randomString(32)
	if err != nil {
		return "", "", err
	}
	return token, hashToken(token), nil
}

// hashToken is SHA-256: refresh tokens are 256 random bits, so a fast hash
// is enough to make a leaked table useless.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
