package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	xslog "golang.org/x/exp/slog"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
)

// Resumable uploads with the tus 1.0 protocol, by tusd (its S3 store writes
// the bytes straight to the original's key). Around tusd, this file adds
// what it leaves to its host: the bearer token on every request, the
// owner's check on every request about an upload (an upload's URL is
// /v1/tus/{user_id}/{upload}), the upload checks before the first byte
// (Upload-Length, quota, declared type) and when the last one arrives (the
// same checks as any upload, and the upload becomes an image), the upload
// slots, and JSON errors.

const tusBase = "/v1/tus/"

// userKey carries the authenticated user's id from the routes into tusd's
// callbacks (tusd keeps the request context's values).
type userKey struct{}

// newTus returns tusd's handler on composer, its callbacks bound to s.
func (s *Server) newTus(composer *tusd.StoreComposer) (*tusd.UnroutedHandler, error) {
	return tusd.NewUnroutedHandler(tusd.Config{
		StoreComposer:             composer,
		BasePath:                  tusBase,
		MaxSize:                   s.cfg.MaxUploadBytes,
		DisableDownload:           true,
		DisableConcatenation:      true,
		Cors:                      &tusd.CorsConfig{Disable: true}, // the API's CORS answers
		RespectForwardedHeaders:   len(s.cfg.TrustedProxies) > 0,
		PreUploadCreateCallback:   s.tusCreate,
		PreFinishResponseCallback: s.tusFinish,
		Logger:                    xslog.New(discardHandler{}),
	})
}

// tusCreate admits an upload before tusd creates it: its size, declared
// type and the quota, as POST /v1/uploads does. (A deferred length is
// refused by tusd: the store offers no creation-defer-length.) The upload's tus id is
// "{user_id}/{id}", which the S3 store turns into the original's key.
func (s *Server) tusCreate(hook tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
	userID, _ := hook.Context.Value(userKey{}).(string)
	meta := hook.Upload.MetaData
	filename := cmp(meta["filename"], meta["name"])
	contentType := cmp(meta["filetype"], meta["type"])
	u, err := s.Uploads.BeginTusUpload(hook.Context, userID, filename, hook.Upload.Size, contentType)
	if err != nil {
		s.metrics.rejectedUpload(err)
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, s.tusError(hook.Context, err)
	}
	// Only what the service uses is kept (the S3 store copies metadata
	// into the object's headers).
	kept := tusd.MetaData{"filename": u.Filename}
	if u.ContentType != "" {
		kept["filetype"] = u.ContentType
	}
	return tusd.HTTPResponse{Header: tusd.HTTPHeader{
			"Image-Id":       u.ID,
			"Upload-Expires": u.ExpiresAt.UTC().Format(http.TimeFormat),
		}},
		tusd.FileInfoChanges{ID: userID + "/" + u.ID, MetaData: kept}, nil
}

// tusFinish turns an upload whose last byte arrived into an image, with the
// checks of every upload; a refused file is deleted and the client told
// why.
func (s *Server) tusFinish(hook tusd.HookEvent) (tusd.HTTPResponse, error) {
	userID, _ := hook.Context.Value(userKey{}).(string)
	_, id, _ := strings.Cut(strings.SplitN(hook.Upload.ID, "+", 2)[0], "/")
	img, _, err := s.Uploads.CompleteUpload(hook.Context, userID, id, nil)
	if err != nil {
		s.metrics.rejectedUpload(err)
		return tusd.HTTPResponse{}, s.tusError(hook.Context, err)
	}
	s.metrics.uploadBytes.Observe(float64(img.Bytes))
	return tusd.HTTPResponse{Header: tusd.HTTPHeader{"Image-Id": img.ID}}, nil
}

// tusError is err as tusd sends it: the API's JSON error and status.
func (s *Server) tusError(ctx context.Context, err error) tusd.Error {
	status, body := describe(err)
	if status >= 500 {
		s.log.ErrorContext(ctx, "tus upload failed", "status", status, "err", err)
	}
	b, _ := json.Marshal(body)
	h := tusd.HTTPHeader{"Content-Type": echo.MIMEApplicationJSON}
	if status == http.StatusServiceUnavailable {
		h["Retry-After"] = "5"
	}
	return tusd.Error{ErrorCode: body.Error.Code, Message: body.Error.Message,
		HTTPResponse: tusd.HTTPResponse{StatusCode: status, Body: string(b) + "\n", Header: h}}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tusRoutes mounts tus under /v1/tus/. Requests about an upload go to
// /v1/tus/{user_id}/{upload}; POST there with X-HTTP-Method-Override is
// the protocol's way for clients that cannot send PATCH or DELETE.
func (s *Server) tusRoutes(v1 *echo.Group, h *tusd.UnroutedHandler) {
	// tusd's middleware answers OPTIONS (the protocol's discovery) itself.
	v1.OPTIONS("/tus/", s.tusServe(h, http.NotFound))
	v1.POST("/tus/", s.tusCreateRoute(h), s.requireAuth)
	upload := "/tus/:user_id/:upload"
	for _, m := range []string{http.MethodHead, http.MethodPatch, http.MethodDelete, http.MethodPost} {
		v1.Add(m, upload, s.tusUpload(h), s.requireAuth)
	}
}

// tusCreateRoute creates an upload (with its first bytes, if the client
// sends some: creation-with-upload), under the upload rate limit and within
// the user's upload slots.
func (s *Server) tusCreateRoute(h *tusd.UnroutedHandler) echo.HandlerFunc {
	create := s.tusServe(h, h.PostFile)
	return func(c echo.Context) error {
		c.Request().Header.Del("X-HTTP-Method-Override") // creating is POST only
		release, err := s.admitUpload(c, principal(c).UserID)
		if err != nil {
			return err
		}
		defer release()
		return create(c)
	}
}

// tusUpload serves the requests about one upload, the owner's only.
func (s *Server) tusUpload(h *tusd.UnroutedHandler) echo.HandlerFunc {
	head, patch := s.tusServe(h, h.HeadFile), s.tusServe(h, h.PatchFile)
	return func(c echo.Context) error {
		req := c.Request()
		method := req.Method
		if o := req.Header.Get("X-HTTP-Method-Override"); method == http.MethodPost {
			method = o
			req.Header.Del("X-HTTP-Method-Override")
			req.Method = o
		}
		userID := principal(c).UserID
		id, _, _ := strings.Cut(c.Param("upload"), "+")
		if c.Param("user_id") != userID {
			return image.ErrUploadNotFound
		}
		u, err := s.Uploads.TusUpload(req.Context(), userID, id)
		if err != nil {
			return err
		}
		switch u.State {
		case image.UploadPending:
		case image.UploadCompleted:
			if method == http.MethodHead {
				return tusDone(c, u)
			}
			return image.ErrUploadNotPending
		case image.UploadCompleting:
			return image.ErrUploadCompleting
		default:
			return errUploadEnded
		}
		switch method {
		case http.MethodHead:
			return head(c)
		case http.MethodPatch:
			release, err := s.takeUploadSlot(userID)
			if err != nil {
				return err
			}
			defer release()
			return patch(c)
		case http.MethodDelete:
			if err := s.Uploads.AbortUpload(req.Context(), userID, id); err != nil {
				return err
			}
			c.Response().Header().Set("Tus-Resumable", "1.0.0")
			return c.NoContent(http.StatusNoContent)
		}
		return echo.ErrMethodNotAllowed
	}
}

var errUploadEnded = failure.New(failure.Gone, "upload_not_pending", "the upload was aborted or expired; start again")

// tusDone answers HEAD for an upload that became an image: every byte is
// there (tusd no longer knows it), so a client that lost the last answer
// learns it is done rather than starting again.
func tusDone(c echo.Context, u *image.PendingUpload) error {
	h := c.Response().Header()
	h.Set("Tus-Resumable", "1.0.0")
	h.Set("Upload-Offset", strconv.FormatInt(u.Bytes, 10))
	h.Set("Upload-Length", strconv.FormatInt(u.Bytes, 10))
	h.Set("Cache-Control", "no-store")
	h.Set("Image-Id", u.ID)
	return c.NoContent(http.StatusOK)
}

// tusServe runs one of tusd's handlers behind its middleware (protocol
// version, headers), with the upload's id as the path tusd expects and the
// user in the context, and rewrites tusd's own plain-text errors as the
// API's JSON errors.
func (s *Server) tusServe(h *tusd.UnroutedHandler, serve http.HandlerFunc) echo.HandlerFunc {
	next := h.Middleware(serve)
	return func(c echo.Context) error {
		req := c.Request()
		r := req.Clone(context.WithValue(req.Context(), userKey{}, principal(c).UserID))
		r.URL.Path = strings.TrimPrefix(req.URL.Path, tusBase)
		w := &tusErrors{ResponseWriter: c.Response().Writer, log: s.log, ctx: req.Context()}
		next.ServeHTTP(w, r)
		w.flush(req.Method == http.MethodHead)
		return nil
	}
}

// tusErrors holds back an error answer of tusd's (text/plain, "ERR_X:
// message") and writes it as the API's JSON error instead; other answers
// pass through.
type tusErrors struct {
	http.ResponseWriter
	log     *slog.Logger
	ctx     context.Context
	status  int
	held    bool
	body    bytes.Buffer
	written bool
}

func (w *tusErrors) WriteHeader(status int) {
	if w.written || w.held {
		return
	}
	if status >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.status, w.held = status, true
		return
	}
	w.written = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *tusErrors) Write(b []byte) (int, error) {
	if !w.written && !w.held {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		if w.body.Len() < 4096 {
			w.body.Write(b)
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets tusd's http.ResponseController reach the connection (its
// read deadlines).
func (w *tusErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *tusErrors) flush(head bool) {
	if !w.held {
		return
	}
	tusCode, message, _ := strings.Cut(strings.TrimSpace(w.body.String()), ": ")
	status, code := tusStatus(tusCode, w.status)
	if status >= 500 {
		w.log.ErrorContext(w.ctx, "tus request failed", "status", w.status, "code", tusCode, "err", message)
		message = "object storage is unavailable; retry shortly"
	}
	if known, ok := tusMessages[code]; ok {
		message = known
	}
	h := w.Header()
	h.Set("Content-Type", echo.MIMEApplicationJSON)
	h.Del("Content-Length")
	if status == http.StatusServiceUnavailable || status == http.StatusLocked {
		h.Set("Retry-After", "5")
	}
	w.ResponseWriter.WriteHeader(status)
	if !head {
		_ = json.NewEncoder(w.ResponseWriter).Encode(errorBody{errorDetail{code, message}})
	}
}

// tusStatus maps tusd's error codes to the API's status and code.
func tusStatus(tusCode string, status int) (int, string) {
	switch tusCode {
	case "ERR_MAX_SIZE_EXCEEDED", "ERR_UPLOAD_SIZE_EXCEEDED":
		return http.StatusRequestEntityTooLarge, "file_too_large"
	case "ERR_UNSUPPORTED_VERSION":
		return http.StatusPreconditionFailed, "unsupported_tus_version"
	case "ERR_INVALID_CONTENT_TYPE":
		return http.StatusBadRequest, "invalid_content_type"
	case "ERR_INVALID_UPLOAD_LENGTH", "ERR_AMBIGUOUS_UPLOAD_LENGTH", "ERR_INVALID_UPLOAD_LENGTH_DEFER":
		return http.StatusBadRequest, "invalid_upload_length"
	case "ERR_INVALID_OFFSET":
		return http.StatusBadRequest, "invalid_upload_offset"
	case "ERR_MISMATCHED_OFFSET":
		return http.StatusConflict, "upload_offset_mismatch"
	case "ERR_UPLOAD_NOT_FOUND":
		return http.StatusNotFound, "upload_not_found"
	case "ERR_UPLOAD_LOCKED", "ERR_LOCK_TIMEOUT":
		return http.StatusLocked, "upload_locked"
	case "ERR_NOT_IMPLEMENTED", "ERR_CONCATENATION_UNSUPPORTED", "ERR_INVALID_CONCAT":
		return http.StatusBadRequest, "unsupported_tus_feature"
	case "ERR_READ_TIMEOUT":
		return http.StatusRequestTimeout, "upload_too_slow"
	case "ERR_UNEXPECTED_EOF", "ERR_CONNECTION_RESET", "ERR_UPLOAD_INTERRUPTED", "ERR_UPLOAD_STOPPED":
		return http.StatusBadRequest, "upload_interrupted"
	case "ERR_SERVER_SHUTDOWN":
		return http.StatusServiceUnavailable, "shutting_down"
	}
	if status >= 500 {
		return http.StatusServiceUnavailable, "storage_unavailable"
	}
	return status, strings.ToLower(strings.TrimPrefix(tusCode, "ERR_"))
}

// tusMessages are the messages of tusd's errors, in the API's words.
var tusMessages = map[string]string{
	"file_too_large":          "the upload is larger than allowed",
	"unsupported_tus_version": "send Tus-Resumable: 1.0.0",
	"invalid_content_type":    "a PATCH body must be Content-Type: application/offset+octet-stream",
	"invalid_upload_length":   "Upload-Length must be the file's size in bytes",
	"invalid_upload_offset":   "Upload-Offset must be the offset the bytes start at",
	"upload_offset_mismatch":  "Upload-Offset is not the upload's offset; ask with HEAD and resume from there",
	"upload_not_found":        "upload not found",
	"upload_locked":           "another request is writing this upload; retry shortly",
	"unsupported_tus_feature": "this tus extension is not supported here (creation, creation-with-upload, termination are)",
	"upload_too_slow":         "the upload arrived too slowly",
	"upload_interrupted":      "the upload's body ended early; ask with HEAD and resume",
	"shutting_down":           "the server is shutting down; retry",
}

// discardHandler drops tusd's logs: every request is logged by the API's
// middleware, and tusd's errors as the API answers them.
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, xslog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, xslog.Record) error { return nil }
func (d discardHandler) WithAttrs([]xslog.Attr) xslog.Handler     { return d }
func (d discardHandler) WithGroup(string) xslog.Handler           { return d }
