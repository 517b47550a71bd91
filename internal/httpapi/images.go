package httpapi

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
)

type imageResponse struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Bytes       int64             `json:"bytes"`
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	Variants    []variantResponse `json:"variants"`
	Error       *errorDetail      `json:"error"`
	CreatedAt   string            `json:"created_at"`
	UpdatedAt   string            `json:"updated_at"`
}

type variantResponse struct {
	Name        string `json:"name"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Bytes       int64  `json:"bytes"`
	ContentType string `json:"content_type"`
	URL         string `json:"url"`
}

type imageListResponse struct {
	Items      []imageResponse `json:"items"`
	NextCursor *string         `json:"next_cursor"`
}

func toImageResponse(img *image.Image) imageResponse {
	r := imageResponse{
		ID: img.ID, Status: string(img.Status), Filename: img.Filename, ContentType: img.ContentType,
		Bytes: img.Bytes, Width: img.Width, Height: img.Height, Variants: []variantResponse{},
		CreatedAt: rfc3339(img.CreatedAt), UpdatedAt: rfc3339(img.UpdatedAt),
	}
	for _, v := range img.Variants {
		r.Variants = append(r.Variants, variantResponse{Name: v.Name, Width: v.Width, Height: v.Height,
			Bytes: v.Bytes, ContentType: v.ContentType, URL: v.URL})
	}
	if img.Status == image.StatusFailed {
		r.Error = &errorDetail{Code: img.ErrorCode, Message: img.ErrorMessage}
	}
	return r
}

var errBadMultipart = failure.New(failure.Invalid, "invalid_multipart", "the request body must be multipart/form-data with a \"file\" field")

// upload streams the "file" part of a multipart body to the image service.
// The body is capped while it is read, so an oversized upload is stopped
// at the limit, not after buffering it.
func (s *Server) upload(c echo.Context) error {
	req := c.Request()
	mt, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return errBadMultipart
	}
	if req.ContentLength > s.cfg.MaxUploadBytes+multipartOverhead {
		return image.TooLarge(s.cfg.MaxUploadBytes)
	}
	body := http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxUploadBytes+multipartOverhead)
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return image.ErrNoFile
		}
		if err != nil {
			return multipartError(err)
		}
		if part.FormName() != "file" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return multipartError(err)
			}
			continue
		}
		img, err := s.images.Upload(req.Context(), principal(c).UserID, part.FileName(), part)
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/images/"+img.ID)
		return c.JSON(http.StatusAccepted, toImageResponse(img))
	}
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return failure.Wrap(failure.Invalid, errBadMultipart.Code, errBadMultipart.Message, err)
}

func (s *Server) getImage(c echo.Context) error {
	img, err := s.images.Get(c.Request().Context(), principal(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toImageResponse(img))
}

func (s *Server) listImages(c echo.Context) error {
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return image.ErrBadLimit
		}
		limit = n
	}
	cursor, err := image.DecodeCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	page, err := s.images.List(c.Request().Context(), principal(c).UserID, cursor, limit)
	if err != nil {
		return err
	}
	resp := imageListResponse{Items: make([]imageResponse, 0, len(page.Items))}
	for _, img := range page.Items {
		resp.Items = append(resp.Items, toImageResponse(img))
	}
	if page.Next != nil {
		next := page.Next.Encode()
		resp.NextCursor = &next
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) deleteImage(c echo.Context) error {
	if err := s.images.Delete(c.Request().Context(), principal(c).UserID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
