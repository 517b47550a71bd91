// Package httpapi is the REST API: Echo routes, handlers, JSON shapes,
// authentication middleware and the mapping of domain errors to statuses.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
)

// Authenticator is what the API needs from the auth domain.
type Authenticator interface {
	Signup(ctx context.Context, email, password string) (*auth.User, error)
	Login(ctx context.Context, email, password string) (auth.Tokens, error)
	Refresh(ctx context.Context, token string) (auth.Tokens, error)
	Logout(ctx context.Context, userID, token string) error
	Verify(token string) (auth.Principal, error)
}

// Images is what the API needs from the image domain.
type Images interface {
	Upload(ctx context.Context, userID, filename string, body io.Reader) (*image.Image, error)
	Get(ctx context.Context, userID, id string) (*image.Image, error)
	List(ctx context.Context, userID string, after image.Cursor, limit int) (image.Page, error)
	Delete(ctx context.Context, userID, id string) error
}

// Check is one readiness probe: a dependency and how to ping it.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Config holds the API settings.
type Config struct {
	// MaxUploadBytes is the largest file; the whole multipart body may
	// exceed it by multipartOverhead.
	MaxUploadBytes int64
}

// multipartOverhead is the room left for multipart headers and other small
// fields around the file.
const multipartOverhead = 64 << 10

// maxJSONBytes bounds JSON request bodies.
const maxJSONBytes = 64 << 10

// Server holds the handlers' dependencies.
type Server struct {
	auth   Authenticator
	images Images
	checks []Check
	cfg    Config
	log    *slog.Logger
}

// New returns the Echo instance with every route.
func New(a Authenticator, images Images, checks []Check, cfg Config, log *slog.Logger) *echo.Echo {
	s := &Server{auth: a, images: images, checks: checks, cfg: cfg, log: log}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(middleware.RequestID())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.logRequests)

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.Handler()))

	v1 := e.Group("/v1")
	v1.POST("/auth/signup", s.signup)
	v1.POST("/auth/login", s.login)
	v1.POST("/auth/refresh", s.refresh)

	// Authentication is per route, not on a group: an Echo group with
	// middleware answers unknown paths through it (401 instead of 404).
	v1.POST("/auth/logout", s.logout, s.requireAuth)
	v1.POST("/images", s.upload, s.requireAuth)
	v1.GET("/images", s.listImages, s.requireAuth)
	v1.GET("/images/:id", s.getImage, s.requireAuth)
	v1.DELETE("/images/:id", s.deleteImage, s.requireAuth)
	return e
}

func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req := c.Request()
		attrs := []any{
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"method", req.Method, "route", c.Path(), "status", c.Response().Status,
			"bytes_in", req.ContentLength, "seconds", time.Since(start).Seconds(),
		}
		if p, ok := c.Get(principalKey).(auth.Principal); ok {
			attrs = append(attrs, "user_id", p.UserID)
		}
		s.log.InfoContext(req.Context(), "request", attrs...)
		return nil
	}
}

const principalKey = "principal"

func (s *Server) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return auth.ErrBadToken
		}
		p, err := s.auth.Verify(strings.TrimSpace(token))
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

func principal(c echo.Context) auth.Principal {
	p, _ := c.Get(principalKey).(auth.Principal)
	return p
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.checks))
	for _, ch := range s.checks {
		go func() { results <- result{ch.Name, ch.Ping(ctx)} }()
	}
	status := map[string]string{}
	var failed []string
	for range s.checks {
		r := <-results
		status[r.name] = "ok"
		if r.err != nil {
			status[r.name] = "unavailable"
			failed = append(failed, r.name)
			s.log.WarnContext(ctx, "readiness check failed", "dependency", r.name, "err", r.err)
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		c.Response().Header().Set("Retry-After", "5")
		return c.JSON(http.StatusServiceUnavailable, map[string]any{
			"error":  errorDetail{"not_ready", "unavailable: " + strings.Join(failed, ", ")},
			"checks": status,
		})
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ok", "checks": status})
}

type credentialsRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type userResponse struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

var errBadJSON = failure.New(failure.Invalid, "invalid_json", "the request body must be a JSON object")

// decodeJSON reads a bounded JSON object body into v.
func decodeJSON(c echo.Context, v any) error {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return failure.New(failure.Unsupported, "unsupported_media_type", "the request body must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), req.Body, maxJSONBytes))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errBadJSON
	}
	if dec.More() {
		return errBadJSON
	}
	return nil
}

func (s *Server) signup(c echo.Context) error {
	var req credentialsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.auth.Signup(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, userResponse{ID: u.ID, Email: u.Email, CreatedAt: rfc3339(u.CreatedAt)})
}

func (s *Server) login(c echo.Context) error {
	var req credentialsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := s.auth.Login(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokens(t))
}

func (s *Server) refresh(c echo.Context) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := s.auth.Refresh(c.Request().Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokens(t))
}

func (s *Server) logout(c echo.Context) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.auth.Logout(c.Request().Context(), principal(c).UserID, req.RefreshToken); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func tokens(t auth.Tokens) tokenResponse {
	return tokenResponse{AccessToken: t.AccessToken, TokenType: "Bearer",
		ExpiresIn: int(t.ExpiresIn / time.Second), RefreshToken: t.RefreshToken}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
