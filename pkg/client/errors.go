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

// ErrorOf returns the API's error for an answer that is not a 2xx, as an
// *APIError, and nil for a 2xx. body is the answer's body, read.
func ErrorOf(resp *http.Response, body []byte) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
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

// answerError is the error of an answer that did not bring the body
// expected: the API's error, or, for a 2xx of another shape, a description.
func answerError(resp *http.Response, body []byte) error {
	if err := ErrorOf(resp, body); err != nil {
		return err
	}
	return fmt.Errorf("unexpected answer %s (%s)", resp.Status, resp.Header.Get("Content-Type"))
}
