package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
)

// Upload sends the contents of r as a new image named filename and returns
// it, queued. size is the number of bytes r holds, or -1 if unknown (the
// body is then sent chunked, and the API can refuse a file over its limit
// only once it has read that much). progress, when not nil, is called from
// the sending goroutine with the bytes of the file sent so far. If r is
// also an io.Seeker, the upload can be sent again after a refused token.
func (s *Session) Upload(ctx context.Context, filename string, r io.Reader, size int64, progress func(sent int64)) (*Image, error) {
	head, tail, contentType, err := multipartFrame(filename)
	if err != nil {
		return nil, err
	}
	start := int64(-1)
	if seeker, ok := r.(io.Seeker); ok {
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			start = -1
		}
	}
	body := func() io.Reader {
		return io.MultiReader(bytes.NewReader(head), &counting{r: r, progress: progress}, bytes.NewReader(tail))
	}
	frame := func(_ context.Context, req *http.Request) error {
		if size >= 0 {
			req.ContentLength = int64(len(head)) + size + int64(len(tail))
		}
		if start >= 0 {
			req.GetBody = func() (io.ReadCloser, error) {
				if _, err := r.(io.Seeker).Seek(start, io.SeekStart); err != nil {
					return nil, err
				}
				return io.NopCloser(body()), nil
			}
		}
		return nil
	}
	// One key for this upload, however often it is sent (the session sends
	// it again after refreshing a refused token): the API makes one image.
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	params := &UploadImageParams{IdempotencyKey: ptr(hex.EncodeToString(key))}
	resp, err := s.UploadImageWithBodyWithResponse(ctx, params, contentType, body(), frame)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", filename, err)
	}
	switch {
	case resp.JSON202 != nil:
		return resp.JSON202, nil
	case resp.JSON200 != nil: // deduplicated: the same file stored before
		return resp.JSON200, nil
	}
	return nil, ErrorOf(resp.HTTPResponse, resp.Body)
}

// multipartFrame returns what goes before and after the file in a
// multipart/form-data body with the file as its one field, "file", and
// the body's content type. Knowing both, the body's length is known
// without reading the file.
func multipartFrame(filename string) (head, tail []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(filename)))
	h.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}

// quoteEscaper escapes a file name as mime/multipart does.
var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

// counting reports the bytes read through it.
type counting struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

func ptr[T any](v T) *T { return &v }
