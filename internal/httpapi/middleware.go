package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/logctx"
)

// observe gives the request a log context, then logs and measures it.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		c.SetRequest(req.WithContext(logctx.With(req.Context(), "request_id", rid)))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req = c.Request()
		route := c.Path() // the template, such as /v1/images/:id
		if route == "" || route == req.URL.Path && c.Response().Status == http.StatusNotFound {
			route = "unmatched" // never a raw path: it would explode the label set
		}
		elapsed := time.Since(start)
		s.metrics.observe(route, methodLabel(req.Method), c.Response().Status, elapsed)
		s.log.InfoContext(req.Context(), "request",
			"method", req.Method, "route", route, "status", c.Response().Status,
			"bytes_in", req.ContentLength, "seconds", elapsed.Seconds())
		return nil
	}
}

const (
	principalKey = "principal"
	accountKey   = "account"
)

// requireAuth lets through a request with a valid access token of an
// account in use. The account is read on every request (one primary-key
// read): a deleted account's tokens are refused at once, not when they
// expire.
func (s *Server) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return s.authenticate(next, authOptions{})
}

// requireAuthOrQueryToken also takes the access token from the query
// parameter access_token: a browser's EventSource cannot set headers. Only
// the event stream uses it (a token in a URL can end up in proxies' logs).
func (s *Server) requireAuthOrQueryToken(next echo.HandlerFunc) echo.HandlerFunc {
	return s.authenticate(next, authOptions{query: true})
}

// requireAuthEvenDeleted checks the token only, not the account: the
// owner of an account whose deletion stopped half-way may call
// DELETE /v1/account again to finish it (it checks the password).
func (s *Server) requireAuthEvenDeleted(next echo.HandlerFunc) echo.HandlerFunc {
	return s.authenticate(next, authOptions{deleted: true})
}

type authOptions struct {
	// query accepts the token in the access_token query parameter.
	query bool
	// deleted lets a token of a deleted account through.
	deleted bool
}

func (s *Server) authenticate(next echo.HandlerFunc, opts authOptions) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, token, ok := strings.Cut(h, " ")
		if h == "" && opts.query && c.QueryParam("access_token") != "" {
			scheme, token, ok = "Bearer", c.QueryParam("access_token"), true
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return auth.ErrBadToken
		}
		p, err := s.Auth.Verify(strings.TrimSpace(token))
		if err != nil {
			return err
		}
		req := c.Request()
		if !opts.deleted {
			u, err := s.Auth.Active(req.Context(), p.UserID)
			if err != nil {
				return err
			}
			c.Set(accountKey, u)
		}
		c.Set(principalKey, p)
		c.SetRequest(req.WithContext(logctx.With(req.Context(), "user_id", p.UserID)))
		return next(c)
	}
}

var errForbidden = failure.New(failure.Forbidden, "forbidden", "this needs the admin role")

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if principal(c).Role != auth.RoleAdmin {
			return errForbidden
		}
		return next(c)
	}
}

// basicAuth guards the dashboard. Both values are compared in constant time
// (through fixed-length digests, so their lengths do not leak either).
func (s *Server) basicAuth(user, password string) echo.MiddlewareFunc {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u, p, ok := c.Request().BasicAuth()
			gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
			passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
			if !ok || userOK&passOK != 1 {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="imagesvc monitoring"`)
				return c.JSON(http.StatusUnauthorized, errorBody{errorDetail{"unauthorized", "admin credentials required"}})
			}
			return next(c)
		}
	}
}

func principal(c echo.Context) auth.Principal {
	p, _ := c.Get(principalKey).(auth.Principal)
	return p
}

// rateLimited is a 429 with the time until the client may try again.
type rateLimited struct {
	retryAfter time.Duration
	// code and message replace rate_limited and its message when set.
	code, message string
}

func (e rateLimited) Error() string { return "rate limited" }

// limit counts one event against a limit per minute; it answers 429 when
// the limit is reached. A rate limiter that cannot reach Redis lets the
// request through: refusing every login while Redis is down would be worse.
func (s *Server) limit(c echo.Context, key string, perMinute int) error {
	if s.Limiter == nil || perMinute <= 0 {
		return nil
	}
	ok, wait, err := s.Limiter.Allow(c.Request().Context(), key, perMinute, time.Minute)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "rate limiter unavailable, letting the request through", "err", err)
		return nil
	}
	if !ok {
		return rateLimited{retryAfter: wait}
	}
	return nil
}

// limitByAddress is a middleware counting requests per client address
// against a limit per minute, under the key prefix name.
func (s *Server) limitByAddress(name string, perMinute int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := s.limit(c, name+":addr:"+c.RealIP(), perMinute); err != nil {
				return err
			}
			return next(c)
		}
	}
}
