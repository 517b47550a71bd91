package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// uploadWithKey posts a file under an Idempotency-Key.
func (h *harness) uploadWithKey(token, key, filename string, data []byte) response {
	h.t.Helper()
	ct, body := multipartBody(h.t, "file", filename, data)
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/images", body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Idempotency-Key", key)
	return send(h.t, h.client, req)
}

// TestIdempotencyKey: an upload retried with its key makes one image and
// gets the first answer, one after the other and twenty at once; the key
// with another file is refused; keys are per user.
func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.MaxConcurrentUploadsPerUser = 32 })
	token, other := h.user("idem@example.com"), h.user("idem2@example.com")
	src := testenv.JPEG(t, 320, 240, 1)
	first := h.uploadWithKey(token, "k-1", "a.jpg", src)
	again := h.uploadWithKey(token, "k-1", "a.jpg", src)
	var a, b imageJSON
	first.json(t, &a)
	again.json(t, &b)
	if first.Status != http.StatusAccepted || again.Status != http.StatusAccepted || a.ID != b.ID ||
		again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("Location") != "/v1/images/"+a.ID {
		t.Errorf("retry: %d %s, replayed %q, location %q; want the first answer (202, image %s) again",
			again.Status, b.ID, again.Header.Get("Idempotent-Replayed"), again.Header.Get("Location"), a.ID)
	}
	if r := h.uploadWithKey(token, "k-1", "a.jpg", testenv.JPEG(t, 321, 240, 1)); r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != "idempotency_key_reused" {
		t.Errorf("same key, another file: %d %s, want 422 idempotency_key_reused", r.Status, r.Body)
	}
	if r := h.uploadWithKey(other, "k-1", "a.jpg", src); r.Status != http.StatusAccepted {
		t.Errorf("another user's same key: %d %s, want 202", r.Status, r.Body)
	}

	// Twenty at once: one image; the others get its answer or 409.
	var mu sync.Mutex
	ids, statuses := map[string]bool{}, map[int]int{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r := h.uploadWithKey(token, "k-2", "b.jpg", src)
			var img imageJSON
			if r.Status == http.StatusAccepted {
				r.json(t, &img)
			} else if r.Status != http.StatusConflict || r.errorCode(t) != "idempotency_key_in_use" {
				t.Errorf("concurrent retry: %d %s", r.Status, r.Body)
			}
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			if img.ID != "" {
				ids[img.ID] = true
			}
		})
	}
	wg.Wait()
	var list struct{ Items []imageJSON }
	h.do(http.MethodGet, "/v1/images?limit=100", token, "", nil).json(t, &list)
	if len(ids) != 1 || len(list.Items) != 2 {
		t.Errorf("20 uploads at once with one key: answers %v naming %d images, %d images stored; want 1 new image", statuses, len(ids), len(list.Items))
	}
	if r := h.uploadWithKey(token, strings.Repeat("k", 300), "c.jpg", src); r.Status != http.StatusBadRequest {
		t.Errorf("a 300-byte key: %d, want 400", r.Status)
	}
}

// TestDeduplicate: with DEDUPLICATE=true a second upload of the same file
// by the same user returns the first image (200); another user's upload is
// theirs; off, every upload is an image.
func TestDeduplicate(t *testing.T) {
	src := testenv.JPEG(t, 320, 240, 1)
	on := newHarness(t, func(s *settings) { s.Image.Deduplicate = true })
	token := on.user("dedupe@example.com")
	var a, b imageJSON
	r1 := on.upload(token, "a.jpg", src)
	r1.json(t, &a)
	r2 := on.upload(token, "copy.jpg", src)
	r2.json(t, &b)
	if r1.Status != http.StatusAccepted || r2.Status != http.StatusOK || a.ID != b.ID || a.SHA256 == "" || a.SHA256 != b.SHA256 {
		t.Errorf("dedupe on: %d then %d, images %s and %s (sha256 %q); want 202 then 200 with the first image", r1.Status, r2.Status, a.ID, b.ID, a.SHA256)
	}
	if r := on.upload(on.user("other@example.com"), "a.jpg", src); r.Status != http.StatusAccepted {
		t.Errorf("another user's same file: %d, want 202", r.Status)
	}

	off := newHarness(t)
	token = off.user("nodedupe@example.com")
	off.upload(token, "a.jpg", src).json(t, &a)
	r := off.upload(token, "a.jpg", src)
	r.json(t, &b)
	if r.Status != http.StatusAccepted || a.ID == b.ID {
		t.Errorf("dedupe off: second upload %d, image %s; want 202 and a second image", r.Status, b.ID)
	}
}

// TestQuota: an upload over the images or bytes quota is 403
// quota_exceeded and stores nothing.
func TestQuota(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.QuotaImages = 2 })
	token := h.user("quota@example.com")
	for i := range 2 {
		if r := h.upload(token, "a.jpg", testenv.JPEG(t, 100+i, 80, 1)); r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	if r := h.upload(token, "c.jpg", testenv.JPEG(t, 102, 80, 1)); r.Status != http.StatusForbidden || r.errorCode(t) != "quota_exceeded" {
		t.Errorf("third upload with a quota of 2 images: %d %s, want 403 quota_exceeded", r.Status, r.Body)
	}
	src := testenv.JPEG(t, 320, 240, 1)
	b := newHarness(t, func(s *settings) { s.Image.QuotaBytes = int64(len(src)) + 10 })
	token = b.user("bytes@example.com")
	b.upload(token, "a.jpg", src)
	if r := b.upload(token, "b.jpg", testenv.JPEG(t, 321, 240, 1)); r.Status != http.StatusForbidden || r.errorCode(t) != "quota_exceeded" {
		t.Errorf("upload over the bytes quota: %d %s, want 403 quota_exceeded", r.Status, r.Body)
	}
	if keys := b.objects("originals/"); len(keys) != 1 {
		t.Errorf("originals %v, want only the first", keys)
	}
}

// TestCORS: a page of an allowed origin gets its preflight answered and
// can read the headers the flows need; another origin gets no CORS
// headers; with no origins configured there are none at all.
func TestCORS(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.CORSAllowedOrigins = []string{"https://app.example.com"} })
	token := h.user("cors@example.com")
	pre, _ := http.NewRequest(http.MethodOptions, h.url+"/v1/images", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	r := send(t, http.DefaultClient, pre)
	if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "idempotency-key") {
		t.Errorf("preflight: %d, allow origin %q, headers %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Allow-Headers"))
	}
	ct, body := multipartBody(t, "file", "a.jpg", testenv.JPEG(t, 64, 48, 1))
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/images", body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Origin", "https://app.example.com")
	r = send(t, h.client, req)
	if r.Status != http.StatusAccepted || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Location") {
		t.Errorf("upload from the page: %d, allow origin %q, expose %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Expose-Headers"))
	}
	pre.Header.Set("Origin", "https://evil.example.net")
	if r := send(t, http.DefaultClient, pre); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: allow origin %q, want none", r.Header.Get("Access-Control-Allow-Origin"))
	}
	off := newHarness(t)
	pre2, _ := http.NewRequest(http.MethodOptions, off.url+"/v1/images", nil)
	pre2.Header.Set("Origin", "https://app.example.com")
	pre2.Header.Set("Access-Control-Request-Method", "POST")
	if r := send(t, http.DefaultClient, pre2); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off: allow origin %q, want none", r.Header.Get("Access-Control-Allow-Origin"))
	}
}
