package httpapi

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// errorBody is the JSON error shape of every non-2xx answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statusOf maps a failure kind to its HTTP status: the one place where the
// domain's vocabulary meets HTTP.
func statusOf(k failure.Kind) int {
	switch k {
	case failure.Invalid:
		return http.StatusBadRequest
	case failure.Unauthorized:
		return http.StatusUnauthorized
	case failure.Forbidden:
		return http.StatusForbidden
	case failure.NotFound:
		return http.StatusNotFound
	case failure.Conflict:
		return http.StatusConflict
	case failure.TooLarge:
		return http.StatusRequestEntityTooLarge
	case failure.Unsupported:
		return http.StatusUnsupportedMediaType
	case failure.Unprocessable:
		return http.StatusUnprocessableEntity
	case failure.Unavailable:
		return http.StatusServiceUnavailable
	case failure.Timeout:
		return http.StatusRequestTimeout
	case failure.Gone:
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// errorHandler writes every error as JSON. Internal errors are logged and
// shown to the client as a bare "internal_error", never with their text.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, body := describe(err)
		if status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed",
				"method", c.Request().Method, "path", c.Path(), "status", status, "err", err)
		}
		if status == http.StatusServiceUnavailable {
			c.Response().Header().Set("Retry-After", "5")
		}
		var rl rateLimited
		if errors.As(err, &rl) {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(rl.retryAfter.Seconds(), 1)))))
		}
		if status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="imagesvc"`)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}

func describe(err error) (int, errorBody) {
	var rl rateLimited
	if errors.As(err, &rl) {
		if rl.code != "" {
			return http.StatusTooManyRequests, errorBody{errorDetail{rl.code, rl.message}}
		}
		return http.StatusTooManyRequests, errorBody{errorDetail{"rate_limited", "too many requests; retry after the time in Retry-After"}}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, errorBody{errorDetail{"file_too_large", "the request body is larger than allowed"}}
	}
	if fe := failure.As(err); fe != nil {
		return statusOf(fe.Kind), errorBody{errorDetail{fe.Code, fe.Message}}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code < 500 {
			msg = m
		}
		return he.Code, errorBody{errorDetail{snake(http.StatusText(he.Code)), msg}}
	}
	return http.StatusInternalServerError, errorBody{errorDetail{"internal_error", "internal server error"}}
}

func snake(s string) string {
	s = strings.ToLower(s)
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}
