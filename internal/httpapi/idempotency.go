package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/idempotency"
)

// respondOnce answers a request that creates something: without an
// Idempotency-Key it runs do and writes its response; with one, the first
// request with the key runs do and its response is kept a day, a repeat of
// the same request (fingerprint) gets that response again (with
// Idempotent-Replayed: true), and the same key with another request is
// refused.
func (s *Server) respondOnce(c echo.Context, fingerprint string, do func() (idempotency.Record, error)) error {
	key := c.Request().Header.Get("Idempotency-Key")
	var r idempotency.Record
	var replayed bool
	var err error
	if key == "" || s.Idempotency == nil {
		r, err = do()
	} else {
		r, replayed, err = idempotency.Do(c.Request().Context(), s.Idempotency, principal(c).UserID, key, fingerprint, do)
	}
	if err != nil {
		return err
	}
	if r.Location != "" {
		c.Response().Header().Set(echo.HeaderLocation, r.Location)
	}
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.Blob(r.Status, echo.MIMEApplicationJSON, r.Body)
}

// jsonRecord is a JSON response as respondOnce keeps it.
func jsonRecord(status int, v any, location string) (idempotency.Record, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return idempotency.Record{}, err
	}
	return idempotency.Record{Status: status, Body: append(body, '\n'), Location: location}, nil
}

// fingerprintOf names a request by the parts that make two requests the
// same one.
func fingerprintOf(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}
