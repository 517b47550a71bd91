package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// tusRequest sends one tus request to the harness (answers checked against
// openapi.yaml).
func (h *harness) tusRequest(method, path, token string, headers map[string]string, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return send(h.t, h.client, req)
}

// tusCreate starts a tus upload of size bytes and returns its path.
func (h *harness) tusCreate(token string, size int, filename, filetype string) string {
	h.t.Helper()
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(filename))
	if filetype != "" {
		meta += ",filetype " + base64.StdEncoding.EncodeToString([]byte(filetype))
	}
	r := h.tusRequest(http.MethodPost, "/v1/tus/", token, map[string]string{
		"Upload-Length": strconv.Itoa(size), "Upload-Metadata": meta}, nil)
	if r.Status != http.StatusCreated || r.Header.Get("Image-Id") == "" {
		h.t.Fatalf("tus create: %d %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	i := strings.Index(loc, "/v1/tus/")
	if i < 0 {
		h.t.Fatalf("tus create: Location %q", loc)
	}
	return loc[i:]
}

// tusPatch sends bytes at offset.
func (h *harness) tusPatch(token, path string, offset int, data []byte) response {
	h.t.Helper()
	return h.tusRequest(http.MethodPatch, path, token, map[string]string{
		"Upload-Offset": strconv.Itoa(offset), "Content-Type": "application/offset+octet-stream"}, data)
}

// TestTusChecks: the checks before the first byte, the owner's check on
// every request, a refused file deleted on completion, an aborted upload
// removed; every error in JSON.
func TestTusChecks(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.QuotaBytes = 10 << 20 })
	token, other := h.user("tus@example.com"), h.user("tus-other@example.com")

	for _, tt := range []struct {
		name    string
		headers map[string]string
		status  int
		code    string
	}{
		{"OverMaxSize", map[string]string{"Upload-Length": strconv.Itoa(25<<20 + 1)}, http.StatusRequestEntityTooLarge, "file_too_large"},
		{"OverQuota", map[string]string{"Upload-Length": strconv.Itoa(11 << 20)}, http.StatusForbidden, "quota_exceeded"},
		{"NoLength", map[string]string{}, http.StatusBadRequest, "invalid_upload_length"},
		{"DeferredLength", map[string]string{"Upload-Defer-Length": "1"}, http.StatusBadRequest, "unsupported_tus_feature"},
		{"Empty", map[string]string{"Upload-Length": "0"}, http.StatusBadRequest, "file_empty"},
		{"DeclaredText", map[string]string{"Upload-Length": "100", "Upload-Metadata": "filetype " + base64.StdEncoding.EncodeToString([]byte("text/plain"))}, http.StatusUnsupportedMediaType, "unsupported_type"},
		{"OldProtocol", map[string]string{"Upload-Length": "100", "Tus-Resumable": "0.2.2"}, http.StatusPreconditionFailed, "unsupported_tus_version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.tusRequest(http.MethodPost, "/v1/tus/", token, tt.headers, nil)
			code := r.errorCode(t)
			if r.Status != tt.status || (tt.code != "" && code != tt.code) {
				t.Errorf("create: %d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
		})
	}
	if r := h.tusRequest(http.MethodPost, "/v1/tus/", "", map[string]string{"Upload-Length": "100"}, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("create without a token: %d, want 401", r.Status)
	}

	// Text sent as an upload: refused when the last byte arrives, deleted.
	text := []byte(strings.Repeat("not an image\n", 100))
	path := h.tusCreate(token, len(text), "fake.jpg", "image/jpeg")
	if r := h.tusRequest(http.MethodHead, path, other, nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("another user's HEAD: %d, want 404", r.Status)
	}
	if r := h.tusPatch(other, path, 0, text); r.Status != http.StatusNotFound || r.errorCode(t) != "upload_not_found" {
		t.Errorf("another user's PATCH: %d %s, want 404 upload_not_found", r.Status, r.Body)
	}
	if r := h.tusPatch(token, path, 5, text); r.Status != http.StatusConflict || r.errorCode(t) != "upload_offset_mismatch" {
		t.Errorf("PATCH at a wrong offset: %d %s, want 409 upload_offset_mismatch", r.Status, r.Body)
	}
	if r := h.tusPatch(token, path, 0, text); r.Status != http.StatusUnsupportedMediaType || r.errorCode(t) != "unsupported_type" {
		t.Errorf("PATCH of the whole text: %d %s, want 415 unsupported_type", r.Status, r.Body)
	}
	if r := h.tusRequest(http.MethodHead, path, token, nil, nil); r.Status != http.StatusGone {
		t.Errorf("HEAD after the refusal: %d, want 410", r.Status)
	}
	if keys := h.objects("originals/"); len(keys) != 0 {
		t.Errorf("objects after a refused tus upload: %v, want none", keys)
	}

	// Aborted half-way: its bytes and its multipart upload go.
	src := testenv.PaddedJPEG(t, 6<<20)
	path = h.tusCreate(token, len(src), "half.jpg", "")
	if r := h.tusPatch(token, path, 0, src[:5<<20+10]); r.Status != http.StatusNoContent || r.Header.Get("Upload-Offset") != strconv.Itoa(5<<20+10) {
		t.Fatalf("PATCH of the first 5 MiB: %d %s, offset %q", r.Status, r.Body, r.Header.Get("Upload-Offset"))
	}
	if keys := h.objects("originals/"); len(keys) == 0 {
		t.Errorf("objects half-way: none, want tusd's .info at least")
	}
	if r := h.tusRequest(http.MethodDelete, path, other, nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("another user's DELETE: %d, want 404", r.Status)
	}
	if r := h.tusRequest(http.MethodDelete, path, token, nil, nil); r.Status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s, want 204", r.Status, r.Body)
	}
	key := "originals/" + h.userID(token) + "/" + strings.Split(strings.Split(path, "/")[4], "+")[0]
	if keys := h.objects("originals/"); len(keys) != 0 {
		t.Errorf("objects after DELETE: %v, want none", keys)
	}
	if ids, err := h.blobs.MultipartUploads(context.Background(), key); err != nil || len(ids) != 0 {
		t.Errorf("multipart uploads of %s after DELETE: %v %v, want none", key, ids, err)
	}
	h.assertNothingStored(token)
}

// TestTusResumedWithTusJSClient: tus-js-client, the protocol's reference
// client, uploads a 12 MiB file in 5 MiB chunks; the connection is cut
// after the first chunk, and a second client resumes from HEAD's offset.
// The upload becomes an image that ends done.
func TestTusResumedWithTusJSClient(t *testing.T) {
	client := tusJSClient(t)
	h := newHarness(t)
	token := h.user("tusjs@example.com")
	src := testenv.PaddedJPEG(t, 12<<20)
	file := filepath.Join(t.TempDir(), "big.jpg")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", client, h.url+"/v1/tus/", token, file, strconv.Itoa(5<<20))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tus-js-client: %v\n%s", err, out)
	}
	var res struct {
		InterruptedAt int64  `json:"interruptedAt"`
		ResumedFrom   int64  `json:"resumedFrom"`
		URL           string `json:"url"`
		ImageID       string `json:"imageId"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("tus-js-client output %q: %v", out, err)
	}
	t.Logf("tus-js-client: %+v", res)
	if res.InterruptedAt < 5<<20 || res.ResumedFrom < 5<<20 || res.ResumedFrom >= int64(len(src)) || res.ImageID == "" {
		t.Fatalf("tus-js-client: %+v; want an interruption after the first chunk and a resume from there", res)
	}
	img := h.waitFor(token, res.ImageID)
	if img.Status != "done" || img.Bytes != int64(len(src)) || img.Filename != "big.jpg" || len(img.SHA256) != 64 {
		t.Errorf("image after the tus upload: %+v, want done, %d bytes, big.jpg", img, len(src))
	}
	if keys := h.objects("originals/"); len(keys) != 1 {
		t.Errorf("originals after the tus upload: %v, want the one object (no tusd .info left)", keys)
	}
	// A client that lost the last answer asks again: the upload is whole.
	path := res.URL[strings.Index(res.URL, "/v1/tus/"):]
	if r := h.tusRequest(http.MethodHead, path, token, nil, nil); r.Status != http.StatusOK ||
		r.Header.Get("Upload-Offset") != strconv.Itoa(len(src)) || r.Header.Get("Image-Id") != res.ImageID {
		t.Errorf("HEAD after completion: %d, offset %q, image %q", r.Status, r.Header.Get("Upload-Offset"), r.Header.Get("Image-Id"))
	}
}

// tusJSClient returns the script that drives tus-js-client, skipping the
// test when Node or the package is missing and the tier is short.
func tusJSClient(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata/tusclient")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil || !exists(filepath.Join(dir, "node_modules", "tus-js-client")) {
		if testing.Short() || os.Getenv("CI") == "" {
			t.Skip("tus-js-client is not installed (make test installs it: npm ci in internal/httpapi/testdata/tusclient)")
		}
		t.Fatal("tus-js-client is not installed: run make test (npm ci in internal/httpapi/testdata/tusclient)")
	}
	return filepath.Join(dir, "resume.mjs")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
