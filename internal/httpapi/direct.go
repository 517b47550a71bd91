package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/idempotency"
	"github.com/imagesvc/imagesvc/internal/image"
)

// DirectUploads is what the API needs for uploads that do not pass through
// it: straight to object storage (see image.Service.BeginUpload) and tus.
type DirectUploads interface {
	BeginTusUpload(ctx context.Context, userID, filename string, size int64, contentType string) (*image.PendingUpload, error)
	TusUpload(ctx context.Context, userID, id string) (*image.PendingUpload, error)
	BeginUpload(ctx context.Context, userID, filename string, size int64, contentType string) (*image.UploadTarget, error)
	SignParts(ctx context.Context, userID, id string, numbers []int32) ([]string, time.Time, error)
	UploadedParts(ctx context.Context, userID, id string) (*image.PendingUpload, []image.Part, error)
	CompleteUpload(ctx context.Context, userID, id string, parts []image.Part) (*image.Image, bool, error)
	AbortUpload(ctx context.Context, userID, id string) error
}

type beginUploadRequest struct {
	Filename    string `json:"filename"`
	Bytes       int64  `json:"bytes"`
	ContentType string `json:"content_type"`
}

type putTarget struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

type uploadResponse struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	// PartSize and Parts say how to cut a multipart upload: every part
	// PartSize bytes but the last.
	PartSize  int64      `json:"part_size"`
	Parts     int        `json:"parts"`
	Put       *putTarget `json:"put,omitempty"`
	ExpiresAt string     `json:"expires_at"`
	// URLsExpireAt is when the URLs in this answer stop working.
	URLsExpireAt string `json:"urls_expire_at,omitempty"`
}

func (s *Server) beginUpload(c echo.Context) error {
	userID := principal(c).UserID
	var req beginUploadRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Bytes < 0 {
		return failure.New(failure.Invalid, "invalid_bytes", "bytes must be the file's size")
	}
	fingerprint := fingerprintOf("POST /v1/uploads", req.Filename, strconv.FormatInt(req.Bytes, 10), req.ContentType)
	return s.respondOnce(c, fingerprint, func() (idempotency.Record, error) {
		// Counted as an upload: the bytes it lets in cost what an upload
		// through the API does.
		if err := s.limit(c, "upload:"+userID, s.cfg.UploadRatePerMinute); err != nil {
			s.metrics.rejectedUpload(err)
			return idempotency.Record{}, err
		}
		t, err := s.Uploads.BeginUpload(c.Request().Context(), userID, req.Filename, req.Bytes, req.ContentType)
		if err != nil {
			s.metrics.rejectedUpload(err)
			return idempotency.Record{}, err
		}
		u := t.Upload
		r := uploadResponse{ID: u.ID, Kind: u.Kind, Filename: u.Filename, ContentType: u.ContentType, Bytes: u.Bytes,
			PartSize: u.PartSize, Parts: t.Parts, ExpiresAt: rfc3339(u.ExpiresAt), URLsExpireAt: rfc3339(t.URLsExpireAt)}
		if t.URL != "" {
			r.Parts = 1
			r.Put = &putTarget{URL: t.URL, Method: http.MethodPut, Headers: t.Headers}
		}
		return jsonRecord(http.StatusCreated, r, "/v1/uploads/"+u.ID)
	})
}

type signPartsRequest struct {
	Numbers []int32 `json:"numbers"`
}

type signedPart struct {
	Number int32  `json:"number"`
	URL    string `json:"url"`
}

func (s *Server) signParts(c echo.Context) error {
	var req signPartsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	urls, expires, err := s.Uploads.SignParts(c.Request().Context(), principal(c).UserID, c.Param("id"), req.Numbers)
	if err != nil {
		return err
	}
	items := make([]signedPart, len(urls))
	for i, u := range urls {
		items[i] = signedPart{Number: req.Numbers[i], URL: u}
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items, "expires_at": rfc3339(expires)})
}

type partJSON struct {
	Number int32  `json:"number"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size,omitempty"`
}

func (s *Server) listParts(c echo.Context) error {
	u, parts, err := s.Uploads.UploadedParts(c.Request().Context(), principal(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	items := make([]partJSON, len(parts))
	for i, p := range parts {
		items[i] = partJSON{Number: p.Number, ETag: p.ETag, Size: p.Size}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"items": items, "part_size": u.PartSize, "parts": (u.Bytes + u.PartSize - 1) / u.PartSize,
	})
}

type completeUploadRequest struct {
	Parts []partJSON `json:"parts"`
}

func (s *Server) completeUpload(c echo.Context) error {
	userID := principal(c).UserID
	var req completeUploadRequest
	// The body is optional: without parts, every part that arrived.
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	parts := make([]image.Part, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = image.Part{Number: p.Number, ETag: p.ETag}
	}
	// Completing reads the object once, as an upload through the API
	// does: it takes one of the upload slots.
	release, err := s.takeUploadSlot(userID)
	if err != nil {
		return err
	}
	defer release()
	id := c.Param("id")
	return s.respondOnce(c, fingerprintOf("POST /v1/uploads/complete", id), func() (idempotency.Record, error) {
		img, existing, err := s.Uploads.CompleteUpload(c.Request().Context(), userID, id, parts)
		return s.accepted(c, img, existing, err)
	})
}

func (s *Server) abortUpload(c echo.Context) error {
	if err := s.Uploads.AbortUpload(c.Request().Context(), principal(c).UserID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
