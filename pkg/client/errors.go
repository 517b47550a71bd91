package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// APIError is an error answer of the API: {"error": {"code", "message"}}
// with its status.
type APIError struct {
	Status  int
	Code    string // snake_case, stable: switch on this
	Message string
	// RetryAfter is the wait the API asked for (429, 503), 0 if none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// ErrorOf returns the error of an answer that is not the one expected
// (whose body the generated ...WithResponse method did not decode): the
// API's error as an *APIError for a status that is not a 2xx, a
// description of the answer for a 2xx of another shape. body is the
// answer's body, read.
func ErrorOf(resp *http.Response, body []byte) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return fmt.Errorf("unexpected answer %s (%s)", resp.Status, resp.Header.Get("Content-Type"))
	}
	e := &APIError{Status: resp.StatusCode}
	var env Error
	if json.Unmarshal(body, &env) == nil {
		e.Code, e.Message = env.Error.Code, env.Error.Message
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// IsCode reports whether err is an *APIError with the code.
func IsCode(err error, code string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}
