package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

type uploadJSON struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Bytes    int64  `json:"bytes"`
	PartSize int64  `json:"part_size"`
	Parts    int    `json:"parts"`
	Put      *struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers"`
	} `json:"put"`
}

type partsJSON struct {
	Items []struct {
		Number int32  `json:"number"`
		URL    string `json:"url"`
		ETag   string `json:"etag"`
		Size   int64  `json:"size"`
	} `json:"items"`
	Parts int `json:"parts"`
}

// beginUpload starts a direct upload and fails the test unless it is 201.
func (h *harness) beginUpload(token, filename string, size int, contentType string) uploadJSON {
	h.t.Helper()
	r := h.postJSON("/v1/uploads", token, map[string]any{"filename": filename, "bytes": size, "content_type": contentType})
	if r.Status != http.StatusCreated || r.Header.Get("Location") == "" {
		h.t.Fatalf("begin upload: %d %s", r.Status, r.Body)
	}
	var u uploadJSON
	r.json(h.t, &u)
	return u
}

// putObject sends bytes to a presigned URL as a browser would: straight to
// the S3 server, no API in between.
func putObject(t *testing.T, url string, headers map[string]string, data []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// A server refusing a body may close the connection before the
		// body is sent: a refusal all the same.
		t.Logf("PUT %d bytes: %v", len(data), err)
		return 0, ""
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("ETag")
}

// signParts returns the URLs of parts of a multipart upload.
func (h *harness) signParts(token, id string, numbers ...int32) map[int32]string {
	h.t.Helper()
	r := h.postJSON("/v1/uploads/"+id+"/parts", token, map[string]any{"numbers": numbers})
	if r.Status != http.StatusOK {
		h.t.Fatalf("sign parts %v: %d %s", numbers, r.Status, r.Body)
	}
	var p partsJSON
	r.json(h.t, &p)
	urls := map[int32]string{}
	for _, it := range p.Items {
		urls[it.Number] = it.URL
	}
	return urls
}

func part(data []byte, size int64, n int32) []byte {
	start := int64(n-1) * size
	return data[start:min(start+size, int64(len(data)))]
}

// TestDirectUploadPut: a small file goes in one presigned PUT, straight to
// the S3 server, and becomes an image like any other; the PUT's size and
// type are signed, so other bytes are refused by the server.
func TestDirectUploadPut(t *testing.T) {
	h := newHarness(t)
	token := h.user("direct@example.com")
	src := testenv.JPEG(t, 640, 480, 1)
	u := h.beginUpload(token, "cat.jpg", len(src), "image/jpeg")
	if u.Kind != "put" || u.Put == nil || u.Parts != 1 {
		t.Fatalf("upload of %d bytes: %+v, want one PUT", len(src), u)
	}
	if status, _ := putObject(t, u.Put.URL, u.Put.Headers, append(bytes.Clone(src), 0)); status != 0 && status < 400 {
		t.Errorf("PUT of one byte more than declared: %d, want the server to refuse it", status)
	}
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil); r.Status != http.StatusConflict || r.errorCode(t) != "upload_incomplete" {
		t.Errorf("complete before the bytes arrived: %d %s, want 409 upload_incomplete", r.Status, r.Body)
	}
	if status, _ := putObject(t, u.Put.URL, u.Put.Headers, src); status != http.StatusOK {
		t.Fatalf("PUT to the presigned URL: %d", status)
	}
	other := h.user("stranger@example.com")
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", other, nil); r.Status != http.StatusNotFound || r.errorCode(t) != "upload_not_found" {
		t.Errorf("another user completes it: %d %s, want 404 upload_not_found", r.Status, r.Body)
	}
	r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil)
	var img imageJSON
	r.json(t, &img)
	if r.Status != http.StatusAccepted || img.ID != u.ID || img.Filename != "cat.jpg" || img.Width != 640 || len(img.SHA256) != 64 {
		t.Fatalf("complete: %d %s, want 202 with image %s", r.Status, r.Body, u.ID)
	}
	if done := h.waitFor(token, img.ID); done.Status != "done" || len(done.Variants) == 0 {
		t.Errorf("image after a direct upload: %s with %d variants, want done", done.Status, len(done.Variants))
	}
	again := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil)
	if again.Status != http.StatusOK {
		t.Errorf("complete again: %d %s, want 200 with the image", again.Status, again.Body)
	}
}

// TestDirectUploadMultipart: a file of three parts, the connection lost
// after two of them: the client lists what arrived, sends the rest, and the
// upload completes into an image.
func TestDirectUploadMultipart(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.Image.MaxUploadBytes = 20 << 20
		s.Image.PartSize = 5 << 20
	})
	token := h.user("multi@example.com")
	src := testenv.PaddedJPEG(t, 11<<20)
	u := h.beginUpload(token, "big.jpg", len(src), "image/jpeg")
	if u.Kind != "multipart" || u.Parts != 3 || u.PartSize != 5<<20 || u.Put != nil {
		t.Fatalf("upload of 11 MiB with 5 MiB parts: %+v, want multipart in 3 parts", u)
	}
	urls := h.signParts(token, u.ID, 1, 2)
	for n := int32(1); n <= 2; n++ {
		if status, etag := putObject(t, urls[n], nil, part(src, u.PartSize, n)); status != http.StatusOK || etag == "" {
			t.Fatalf("PUT part %d: %d, etag %q", n, status, etag)
		}
	}
	// The connection drops; the client comes back and asks what arrived.
	r := h.do(http.MethodGet, "/v1/uploads/"+u.ID+"/parts", token, "", nil)
	var listed partsJSON
	r.json(t, &listed)
	if r.Status != http.StatusOK || len(listed.Items) != 2 || listed.Items[0].Number != 1 || listed.Items[1].Size != 5<<20 || listed.Parts != 3 {
		t.Fatalf("list parts after two: %d %s", r.Status, r.Body)
	}
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil); r.Status != http.StatusConflict || r.errorCode(t) != "upload_incomplete" {
		t.Errorf("complete with a part missing: %d %s, want 409 upload_incomplete", r.Status, r.Body)
	}
	last := h.signParts(token, u.ID, 3)[3]
	if status, _ := putObject(t, last, nil, append(bytes.Clone(part(src, u.PartSize, 3)), 'x')); status != 0 && status < 400 {
		t.Errorf("last part one byte longer than its signed size: %d, want the server to refuse it", status)
	}
	if status, _ := putObject(t, last, nil, part(src, u.PartSize, 3)); status != http.StatusOK {
		t.Fatalf("PUT part 3: %d", status)
	}
	for _, bad := range []string{`{"numbers":[0]}`, `{"numbers":[4]}`, `{"numbers":[]}`, `{"numbers":"1"}`} {
		if r := h.do(http.MethodPost, "/v1/uploads/"+u.ID+"/parts", token, "application/json", strings.NewReader(bad)); r.Status != http.StatusBadRequest {
			t.Errorf("sign %s: %d %s, want 400", bad, r.Status, r.Body)
		}
	}
	// Parts named wrong are refused, and the upload waits for a right
	// answer.
	wrong := map[string]any{"parts": []map[string]any{{"number": 1, "etag": `"bogus"`}, {"number": 2, "etag": listed.Items[1].ETag}}}
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, wrong); r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_parts" {
		t.Errorf("complete with a wrong ETag: %d %s, want 400 invalid_parts", r.Status, r.Body)
	}
	r = h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil)
	var img imageJSON
	r.json(t, &img)
	if r.Status != http.StatusAccepted || img.Bytes != int64(len(src)) {
		t.Fatalf("complete: %d %s", r.Status, r.Body)
	}
	if done := h.waitFor(token, img.ID); done.Status != "done" {
		t.Errorf("image after a multipart upload: %s %+v, want done", done.Status, done.Error)
	}
	if keys := h.objects("originals/"); len(keys) != 1 {
		t.Errorf("originals %v, want the one object", keys)
	}
}

// TestDirectUploadRefused: what is refused before any byte, and what is
// refused at completion, with the object deleted and the upload over.
func TestDirectUploadRefused(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.QuotaBytes = 1 << 20 })
	token := h.user("refused@example.com")
	for _, tt := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"filename":"a.jpg","bytes":26214401,"content_type":"image/jpeg"}`, http.StatusRequestEntityTooLarge, "file_too_large"},
		{`{"filename":"a.txt","bytes":100,"content_type":"text/plain"}`, http.StatusUnsupportedMediaType, "unsupported_type"},
		{`{"filename":"a.jpg","bytes":0,"content_type":"image/jpeg"}`, http.StatusBadRequest, "file_empty"},
		{`{"filename":"a.jpg","bytes":-5,"content_type":"image/jpeg"}`, http.StatusBadRequest, "invalid_bytes"},
		{`{"filename":"a.jpg","bytes":2000000,"content_type":"image/jpeg"}`, http.StatusForbidden, "quota_exceeded"},
		{`{"filename":"a.jpg","bytes":"12","content_type":"image/jpeg"}`, http.StatusBadRequest, "invalid_json"},
	} {
		r := h.do(http.MethodPost, "/v1/uploads", token, "application/json", strings.NewReader(tt.body))
		if r.Status != tt.status || r.errorCode(t) != tt.code {
			t.Errorf("begin %s: %d %s, want %d %s", tt.body, r.Status, r.Body, tt.status, tt.code)
		}
	}

	// A declared type is taken as a browser may write it, and kept in its
	// canonical form.
	padded := h.postJSON("/v1/uploads", token, map[string]any{"filename": "a.jpg", "bytes": 100, "content_type": " IMAGE/JPG" + strings.Repeat(" ", 200)})
	var pu uploadJSON
	padded.json(t, &pu)
	if padded.Status != http.StatusCreated || pu.Put == nil || pu.Put.Headers["Content-Type"] != "image/jpeg" {
		t.Errorf("begin with content type \" IMAGE/JPG   …\": %d %s, want 201 with image/jpeg", padded.Status, padded.Body)
	}
	h.do(http.MethodDelete, "/v1/uploads/"+pu.ID, token, "", nil)

	// Text declared as a JPEG: 415 at completion, and nothing is left.
	text := []byte(strings.Repeat("this is not an image\n", 50))
	u := h.beginUpload(token, "fake.jpg", len(text), "image/jpeg")
	putObject(t, u.Put.URL, u.Put.Headers, text)
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil); r.Status != http.StatusUnsupportedMediaType || r.errorCode(t) != "unsupported_type" {
		t.Errorf("complete of text: %d %s, want 415 unsupported_type", r.Status, r.Body)
	}
	if keys := h.objects("originals/"); len(keys) != 0 {
		t.Errorf("objects after a refused upload: %v, want none", keys)
	}
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil); r.Status != http.StatusConflict || r.errorCode(t) != "upload_not_pending" {
		t.Errorf("complete again after the refusal: %d %s, want 409 upload_not_pending", r.Status, r.Body)
	}

	// A server that does not check the signed size: the client declared
	// fewer bytes than it sent. The count is checked at completion.
	src := testenv.JPEG(t, 320, 240, 1)
	u = h.beginUpload(token, "liar.jpg", len(src)-10, "image/jpeg")
	if err := h.blobs.Put(context.Background(), "originals/"+h.userID(token)+"/"+u.ID, bytes.NewReader(src), int64(len(src)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil); r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != "upload_size_mismatch" {
		t.Errorf("complete of %d bytes declared %d: %d %s, want 422 upload_size_mismatch", len(src), len(src)-10, r.Status, r.Body)
	}
	if keys := h.objects("originals/"); len(keys) != 0 {
		t.Errorf("objects after a size mismatch: %v, want none", keys)
	}
	h.assertNothingStored(token)

	// Aborted: its bytes go, and it cannot be completed.
	u = h.beginUpload(token, "gone.jpg", len(src), "image/jpeg")
	putObject(t, u.Put.URL, u.Put.Headers, src)
	if r := h.do(http.MethodDelete, "/v1/uploads/"+u.ID, token, "", nil); r.Status != http.StatusNoContent {
		t.Errorf("abort: %d %s", r.Status, r.Body)
	}
	if keys := h.objects("originals/"); len(keys) != 0 {
		t.Errorf("objects after an abort: %v, want none", keys)
	}
	for _, r := range []response{
		h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil),
		h.do(http.MethodDelete, "/v1/uploads/"+u.ID, token, "", nil),
	} {
		if r.Status != http.StatusConflict || r.errorCode(t) != "upload_not_pending" {
			t.Errorf("after the abort: %d %s, want 409 upload_not_pending", r.Status, r.Body)
		}
	}
	for _, id := range []string{"not-a-uuid", "0190d6a5-0000-7000-8000-000000000000"} {
		if r := h.do(http.MethodGet, "/v1/uploads/"+id+"/parts", token, "", nil); r.Status != http.StatusNotFound {
			t.Errorf("parts of upload %s: %d %s, want 404", id, r.Status, r.Body)
		}
	}
}

// TestDirectUploadExpires: an unfinished multipart upload, and an
// unfinished tus upload, are removed after UPLOAD_EXPIRY: their parts,
// their objects (tusd's .info too), and the uploads themselves.
func TestDirectUploadExpires(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.Image.MaxUploadBytes = 20 << 20
		s.Image.PartSize = 5 << 20
		s.Image.UploadExpiry = 2 * time.Second
	})
	token := h.user("expiry@example.com")
	src := testenv.PaddedJPEG(t, 6<<20)
	u := h.beginUpload(token, "slow.jpg", len(src), "image/jpeg")
	if status, _ := putObject(t, h.signParts(token, u.ID, 1)[1], nil, part(src, u.PartSize, 1)); status != http.StatusOK {
		t.Fatalf("PUT part 1: %d", status)
	}
	key := "originals/" + h.userID(token) + "/" + u.ID
	// A tus upload with its first part sent, expiring with it.
	tusPath := h.tusCreate(token, len(src), "slow-tus.jpg", "image/jpeg")
	if r := h.tusPatch(token, tusPath, 0, src[:5<<20]); r.Status != http.StatusNoContent {
		t.Fatalf("tus PATCH of 5 MiB: %d %s", r.Status, r.Body)
	}
	tusKey := "originals/" + h.userID(token) + "/" + strings.Split(strings.Split(tusPath, "/")[4], "+")[0]
	time.Sleep(2 * time.Second)
	if r := h.tusRequest(http.MethodHead, tusPath, token, nil, nil); r.Status != http.StatusGone {
		t.Errorf("tus HEAD of an expired upload: %d, want 410", r.Status)
	}
	if r := h.do(http.MethodGet, "/v1/uploads/"+u.ID+"/parts", token, "", nil); r.Status != http.StatusGone || r.errorCode(t) != "upload_expired" {
		t.Errorf("parts of an expired upload: %d %s, want 410 upload_expired", r.Status, r.Body)
	}
	// The S3 server still holds the part until the reconciler runs.
	uploads, err := h.blobs.MultipartUploads(context.Background(), key)
	if err != nil || len(uploads) != 1 {
		t.Fatalf("multipart uploads of %s before the reconciler: %v %v, want 1", key, uploads, err)
	}
	if _, err := h.images.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, tusKey} {
		if uploads, err := h.blobs.MultipartUploads(context.Background(), k); err != nil || len(uploads) != 0 {
			t.Errorf("multipart uploads of %s after the reconciler: %v %v, want none", k, uploads, err)
		}
	}
	if keys := h.objects("originals/"); len(keys) != 0 {
		t.Errorf("objects after expiry: %v, want none", keys)
	}
	if r := h.postJSON("/v1/uploads/"+u.ID+"/complete", token, nil); r.Status != http.StatusConflict || r.errorCode(t) != "upload_not_pending" {
		t.Errorf("complete after expiry: %d %s, want 409 upload_not_pending", r.Status, r.Body)
	}
	h.assertNothingStored(token)
}
