package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/idempotency"
	"github.com/imagesvc/imagesvc/internal/image"
)

type imageListResponse struct {
	Items      []image.Document `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

// toImageResponse is the image's JSON form. Delivery URLs that are paths
// (no PUBLIC_URL is set) are made absolute with the request's origin.
func toImageResponse(c echo.Context, img *image.Image) image.Document {
	d := image.NewDocument(img)
	origin := c.Scheme() + "://" + c.Request().Host
	for i := range d.Variants {
		v := &d.Variants[i]
		if strings.HasPrefix(v.URL, "/") {
			v.URL = origin + v.URL
		}
		for j := range v.Formats {
			if strings.HasPrefix(v.Formats[j].URL, "/") {
				v.Formats[j].URL = origin + v.Formats[j].URL
			}
		}
	}
	return d
}

// deliver answers a stable delivery URL: a redirect to the variant in the
// format its token names, or the one the Accept header prefers (then the
// answer varies with Accept). Redirects are cached briefly: they point at
// a presigned URL that expires, or at an object a reprocessing replaces.
// No credentials: the signature in the path is the authorisation, so the
// URL works in an <img>.
func (s *Server) deliver(c echo.Context) error {
	d, err := s.Images.Deliver(c.Request().Context(), c.Param("token"), c.Request().Header.Get("Accept"))
	h := c.Response().Header()
	if err != nil {
		// Not cached: a 404 may be an image still processing.
		h.Set("Cache-Control", "no-store")
		return err
	}
	if d.Negotiated {
		h.Set("Vary", "Accept")
	}
	h.Set("Cache-Control", "public, max-age=60")
	return c.Redirect(http.StatusFound, d.Location)
}

var errBadMultipart = failure.New(failure.Invalid, "invalid_multipart", "the request body must be multipart/form-data with a \"file\" field")

// upload streams the "file" part of a multipart body to the image service.
// The body is capped while it is read, so an oversized upload is stopped
// at the limit, not after buffering it.
func (s *Server) upload(c echo.Context) error {
	userID := principal(c).UserID
	release, err := s.admitUpload(c, userID)
	if err != nil {
		return err
	}
	defer release()
	filename, sp, err := s.receiveUpload(c)
	if err != nil {
		s.metrics.rejectedUpload(err)
		return err
	}
	defer sp.Close()
	// The same request, for Idempotency-Key: the same file under the same
	// name (a retry's multipart boundary differs; its file does not).
	fingerprint := fingerprintOf("POST /v1/images", sp.SHA256, filename)
	return s.respondOnce(c, fingerprint, func() (idempotency.Record, error) {
		img, existing, err := s.Images.Store(c.Request().Context(), userID, filename, sp)
		return s.accepted(c, img, existing, err)
	})
}

// admitUpload takes an upload's place: the user's upload rate, then one of
// the process's upload slots (release it when the upload is over).
func (s *Server) admitUpload(c echo.Context, userID string) (release func(), err error) {
	if err := s.limit(c, "upload:"+userID, s.cfg.UploadRatePerMinute); err != nil {
		s.metrics.rejectedUpload(err)
		return nil, err
	}
	release, err = s.takeUploadSlot(userID)
	if err != nil {
		s.metrics.rejectedUpload(err)
		return nil, err
	}
	return release, nil
}

// accepted is the answer to an upload that became an image: 202, or 200
// with the image stored before (deduplicated, or a repeated completion).
func (s *Server) accepted(c echo.Context, img *image.Image, existing bool, err error) (idempotency.Record, error) {
	if err != nil {
		s.metrics.rejectedUpload(err)
		return idempotency.Record{}, err
	}
	s.metrics.uploadBytes.Observe(float64(img.Bytes))
	status := http.StatusAccepted
	if existing {
		status = http.StatusOK
	}
	return jsonRecord(status, toImageResponse(c, img), "/v1/images/"+img.ID)
}

var errUploadsSaturated = failure.New(failure.Unavailable, "uploads_saturated", "too many uploads in progress; retry shortly")

// receiveUpload reads the "file" part of a multipart body into a checked
// spool file. The body is capped while it is read, so an oversized upload
// is stopped at the limit, not after buffering it.
func (s *Server) receiveUpload(c echo.Context) (string, *image.Spooled, error) {
	req := c.Request()
	mt, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return "", nil, errBadMultipart
	}
	if req.ContentLength > s.cfg.MaxUploadBytes+multipartOverhead {
		return "", nil, image.TooLarge(s.cfg.MaxUploadBytes)
	}
	body := http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxUploadBytes+multipartOverhead)
	if s.cfg.UploadMinBytesPerSecond > 0 {
		body = newPacedReader(c.Response(), body, s.cfg.UploadMinBytesPerSecond, s.cfg.UploadGrace, s.cfg.UploadTimeout)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return "", nil, image.ErrNoFile
		}
		if err != nil {
			return "", nil, multipartError(err)
		}
		if part.FormName() != "file" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return "", nil, multipartError(err)
			}
			continue
		}
		sp, err := s.Images.Spool(req.Context(), part)
		return part.FileName(), sp, err
	}
}

// takeUploadSlot takes one of the process's upload slots for a user, or
// refuses: 503 when every slot is taken, 429 when the user holds their
// share. Each slot holds a spool file of up to MaxUploadBytes and an S3
// connection.
func (s *Server) takeUploadSlot(userID string) (release func(), err error) {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	if s.uploadsByUser[userID] >= s.cfg.MaxConcurrentUploadsPerUser {
		return nil, rateLimited{retryAfter: 5 * time.Second, code: "too_many_uploads",
			message: fmt.Sprintf("at most %d uploads of one user at a time; retry after the time in Retry-After", s.cfg.MaxConcurrentUploadsPerUser)}
	}
	select {
	case s.uploads <- struct{}{}:
	default:
		return nil, errUploadsSaturated
	}
	s.uploadsByUser[userID]++
	return func() {
		s.uploadsMu.Lock()
		defer s.uploadsMu.Unlock()
		if s.uploadsByUser[userID]--; s.uploadsByUser[userID] == 0 {
			delete(s.uploadsByUser, userID)
		}
		<-s.uploads
	}, nil
}

var errUploadTooSlow = failure.New(failure.Timeout, "upload_too_slow", "the upload arrived too slowly")

// pacedReader fails a body that arrives slower than a minimum average rate
// once a grace period has passed, through the connection's read deadline:
// each read may wait until the time by which the bytes so far plus one
// more should have come, and never past the upload's time limit. (It
// replaces the server's ReadTimeout for this request.)
type pacedReader struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	limit time.Time
	rate  int64
	n     int64
}

func newPacedReader(w http.ResponseWriter, body io.ReadCloser, rate int64, grace, timeout time.Duration) io.ReadCloser {
	now := time.Now()
	return &pacedReader{body: body, rc: http.NewResponseController(w), start: now, grace: grace,
		limit: now.Add(timeout), rate: rate}
}

func (p *pacedReader) Read(b []byte) (int, error) {
	due := p.start.Add(p.grace + time.Duration((p.n+1)*int64(time.Second)/p.rate))
	if due.After(p.limit) {
		due = p.limit
	}
	if err := p.rc.SetReadDeadline(due); err != nil {
		return p.body.Read(b) // not a net/http connection (tests): no pacing
	}
	n, err := p.body.Read(b)
	p.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errUploadTooSlow
	}
	return n, err
}

func (p *pacedReader) Close() error {
	_ = p.rc.SetReadDeadline(time.Time{})
	return p.body.Close()
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, errUploadTooSlow) {
		return err
	}
	return failure.Wrap(failure.Invalid, errBadMultipart.Code, errBadMultipart.Message, err)
}

func (s *Server) getImage(c echo.Context) error {
	if v := c.QueryParam("wait"); v != "" && s.Events != nil {
		wait, err := time.ParseDuration(v)
		if err != nil || wait < 0 {
			return errBadWait
		}
		if wait > 0 {
			return s.waitForImage(c, min(wait, maxWait))
		}
	}
	img, err := s.Images.Get(c.Request().Context(), principal(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toImageResponse(c, img))
}

func (s *Server) listImages(c echo.Context) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := s.Images.List(c.Request().Context(), principal(c).UserID, cursor, limit)
	if err != nil {
		return err
	}
	resp := imageListResponse{Items: make([]image.Document, 0, len(page.Items)), NextCursor: nextCursor(page)}
	for _, img := range page.Items {
		resp.Items = append(resp.Items, toImageResponse(c, img))
	}
	return c.JSON(http.StatusOK, resp)
}

// pageParams reads limit (default 20) and cursor.
func pageParams(c echo.Context) (int, image.Cursor, error) {
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, image.Cursor{}, image.ErrBadLimit
		}
		limit = n
	}
	cursor, err := image.DecodeCursor(c.QueryParam("cursor"))
	return limit, cursor, err
}

func nextCursor(p image.Page) *string {
	if p.Next == nil {
		return nil
	}
	next := p.Next.Encode()
	return &next
}

func (s *Server) reprocess(c echo.Context) error {
	p := principal(c)
	if err := s.limit(c, "upload:"+p.UserID, s.cfg.UploadRatePerMinute); err != nil {
		return err
	}
	reprocess := func() (*image.Image, error) {
		if p.Role == auth.RoleAdmin {
			return s.Operations.AdminReprocess(c.Request().Context(), c.Param("id"))
		}
		return s.Operations.Reprocess(c.Request().Context(), p.UserID, c.Param("id"))
	}
	img, err := reprocess()
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/images/"+img.ID)
	return c.JSON(http.StatusAccepted, toImageResponse(c, img))
}

type adminImageResponse struct {
	image.Document
	UserID string `json:"user_id"`
}

func (s *Server) adminImages(c echo.Context) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := s.Operations.AdminList(c.Request().Context(), image.Status(c.QueryParam("status")), cursor, limit)
	if err != nil {
		return err
	}
	items := make([]adminImageResponse, 0, len(page.Items))
	for _, img := range page.Items {
		items = append(items, adminImageResponse{toImageResponse(c, img), img.UserID})
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items, "next_cursor": nextCursor(page)})
}

type queueDepthResponse struct {
	Pending   int `json:"pending"`
	Active    int `json:"active"`
	Scheduled int `json:"scheduled"`
	Retry     int `json:"retry"`
	Archived  int `json:"archived"`
}

func (s *Server) adminStats(c echo.Context) error {
	st, err := s.Operations.Stats(c.Request().Context())
	if err != nil {
		return err
	}
	queues := map[string]queueDepthResponse{}
	for name, q := range st.Queues {
		queues[name] = queueDepthResponse(q)
	}
	return c.JSON(http.StatusOK, map[string]any{"images": st.Images, "queues": queues,
		"backfill": backfillResponse(st.Backfill)})
}

type backfillStatusResponse struct {
	Profile  string `json:"profile"`
	Outdated int64  `json:"outdated"`
}

func backfillResponse(st image.BackfillStatus) backfillStatusResponse {
	return backfillStatusResponse{Profile: st.Profile, Outdated: st.Outdated}
}

// startBackfill starts re-making the variants of the images made with
// another variant set than the configured one.
func (s *Server) startBackfill(c echo.Context) error {
	st, err := s.Operations.StartBackfill(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, backfillResponse(st))
}

func (s *Server) deleteImage(c echo.Context) error {
	if err := s.Images.Delete(c.Request().Context(), principal(c).UserID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
