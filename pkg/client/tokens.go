package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/oapi-codegen/runtime/types"
)

// TokenSet is a login's access and refresh tokens.
type TokenSet struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	// Expiry is when the access token stops working.
	Expiry time.Time `json:"expiry"`
}

// tokenSet stamps the API's answer with its expiry, counted from the time
// the request was sent (so a slow answer errs early).
func tokenSet(t *Tokens, sent time.Time) TokenSet {
	return TokenSet{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
		Expiry: sent.Add(time.Duration(t.ExpiresIn) * time.Second)}
}

// TokenStore keeps tokens between runs (the CLI's credentials file).
// Refresh tokens are single use, and the API ends every session of a user
// whose used refresh token comes back, so a TokenSource reads the store
// before it refreshes: tokens another process refreshed meanwhile are
// taken, not refreshed a second time.
type TokenStore interface {
	Load() (TokenSet, error)
	Save(TokenSet) error
}

// ErrLoggedOut is returned when there are no tokens, or the refresh token
// was refused: the user must log in again.
var ErrLoggedOut = errors.New("not logged in, or the session ended: log in again")

// TokenSource hands out a valid access token, refreshing it with the
// refresh token (POST /v1/auth/refresh) shortly before it expires. It is
// safe for concurrent use; refreshes happen one at a time.
type TokenSource struct {
	api   *ClientWithResponses
	store TokenStore // nil: memory only
	// Margin is how long before expiry a token is refreshed.
	Margin time.Duration

	mu     sync.Mutex
	tokens TokenSet
	now    func() time.Time
}

// NewTokenSource returns a TokenSource for server starting from tokens;
// store, when not nil, receives every refreshed pair. opts configure the
// unauthenticated client that refreshes (WithHTTPClient).
func NewTokenSource(server string, tokens TokenSet, store TokenStore, opts ...ClientOption) (*TokenSource, error) {
	api, err := NewClientWithResponses(server, opts...)
	if err != nil {
		return nil, err
	}
	return &TokenSource{api: api, store: store, Margin: time.Minute, tokens: tokens, now: time.Now}, nil
}

// Token returns an access token valid for at least Margin, refreshing
// first if needed.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh(s.tokens) {
		return s.tokens.AccessToken, nil
	}
	if err := s.refreshLocked(ctx); err != nil {
		return "", err
	}
	return s.tokens.AccessToken, nil
}

// Refresh replaces the access token the API refused (stale), whatever its
// expiry says; if it was replaced meanwhile, the newer one stands.
func (s *TokenSource) Refresh(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens.AccessToken != stale && s.fresh(s.tokens) {
		return s.tokens.AccessToken, nil
	}
	if err := s.refreshLocked(ctx); err != nil {
		return "", err
	}
	return s.tokens.AccessToken, nil
}

// Tokens returns the current tokens.
func (s *TokenSource) Tokens() TokenSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

func (s *TokenSource) fresh(t TokenSet) bool {
	return t.AccessToken != "" && s.now().Add(s.Margin).Before(t.Expiry)
}

func (s *TokenSource) refreshLocked(ctx context.Context) error {
	if s.store != nil {
		// Another process may have refreshed: its tokens are the live ones.
		if t, err := s.store.Load(); err == nil && t.RefreshToken != "" && t.RefreshToken != s.tokens.RefreshToken {
			s.tokens = t
			if s.fresh(t) {
				return nil
			}
		}
	}
	if s.tokens.RefreshToken == "" {
		return ErrLoggedOut
	}
	sent := s.now()
	r, err := s.api.RefreshTokensWithResponse(ctx, RefreshTokensJSONRequestBody{RefreshToken: s.tokens.RefreshToken})
	if err != nil {
		return fmt.Errorf("refresh tokens: %w", err)
	}
	if r.JSON200 == nil {
		err := ErrorOf(r.HTTPResponse, r.Body)
		if r.StatusCode() == http.StatusUnauthorized {
			return fmt.Errorf("%w (%v)", ErrLoggedOut, err)
		}
		return fmt.Errorf("refresh tokens: %w", err)
	}
	s.tokens = tokenSet(r.JSON200, sent)
	if s.store != nil {
		if err := s.store.Save(s.tokens); err != nil {
			return fmt.Errorf("save refreshed tokens: %w", err)
		}
	}
	return nil
}

// Login exchanges an email and password for tokens.
func Login(ctx context.Context, server, email, password string, opts ...ClientOption) (TokenSet, error) {
	api, err := NewClientWithResponses(server, opts...)
	if err != nil {
		return TokenSet{}, err
	}
	sent := time.Now()
	r, err := api.LoginWithResponse(ctx, LoginJSONRequestBody{Email: types.Email(email), Password: password})
	if err != nil {
		return TokenSet{}, fmt.Errorf("log in: %w", err)
	}
	if r.JSON200 == nil {
		return TokenSet{}, ErrorOf(r.HTTPResponse, r.Body)
	}
	return tokenSet(r.JSON200, sent), nil
}

// Signup creates an account.
func Signup(ctx context.Context, server, email, password string, opts ...ClientOption) (*User, error) {
	api, err := NewClientWithResponses(server, opts...)
	if err != nil {
		return nil, err
	}
	r, err := api.SignupWithResponse(ctx, SignupJSONRequestBody{Email: types.Email(email), Password: password})
	if err != nil {
		return nil, fmt.Errorf("sign up: %w", err)
	}
	if r.JSON201 == nil {
		return nil, ErrorOf(r.HTTPResponse, r.Body)
	}
	return r.JSON201, nil
}
