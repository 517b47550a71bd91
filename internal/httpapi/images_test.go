package httpapi_test

import (
	"bytes"
	"context"
	stdimage "image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestUploadToDone follows an image from upload to its three variants,
// each downloaded through its presigned URL, decoded and measured.
func TestUploadToDone(t *testing.T) {
	h := newHarness(t)
	token := h.user("alice@example.com")

	// A phone photo stored sideways: 1600x1200 pixels with EXIF orientation
	// 6, so upright it is 1200x1600.
	src := testenv.JPEG(t, 1600, 1200, 6)
	r := h.upload(token, "holiday/cat.jpg", src)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var queued imageJSON
	r.json(t, &queued)
	if queued.Status != "queued" || queued.Filename != "cat.jpg" || queued.ContentType != "image/jpeg" ||
		queued.Width != 1600 || queued.Height != 1200 || queued.Bytes != int64(len(src)) || len(queued.Variants) != 0 {
		t.Errorf("upload answered %+v", queued)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/images/"+queued.ID {
		t.Errorf("Location = %q, want /v1/images/%s", loc, queued.ID)
	}

	img := h.waitFor(token, queued.ID)
	if img.Status != "done" || img.Error != nil {
		t.Fatalf("image ended %s (%+v)", img.Status, img.Error)
	}
	want := map[string][2]int{"small": {225, 300}, "medium": {768, 1024}, "large": {1200, 1600}}
	if len(img.Variants) != len(want) {
		t.Fatalf("%d variants, want %d", len(img.Variants), len(want))
	}
	for _, v := range img.Variants {
		resp, err := http.Get(v.URL) // a plain client, no credentials
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("download %s: %d %s", v.Name, resp.StatusCode, data)
		}
		dec, format, err := stdimage.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("decode %s: %v", v.Name, err)
		}
		b := dec.Bounds()
		w := want[v.Name]
		if b.Dx() != w[0] || b.Dy() != w[1] || v.Width != w[0] || v.Height != w[1] {
			t.Errorf("%s: decoded %dx%d, reported %dx%d, want %dx%d", v.Name, b.Dx(), b.Dy(), v.Width, v.Height, w[0], w[1])
		}
		if format != "jpeg" || v.ContentType != "image/jpeg" || v.Bytes != int64(len(data)) {
			t.Errorf("%s: %s %s %d bytes, want jpeg with %d bytes", v.Name, format, v.ContentType, v.Bytes, len(data))
		}
		// Orientation 6 is a 90° clockwise turn: the stored top-left block
		// must be top-right in the upright variant.
		if !red(dec.At(b.Dx()-3, 2)) || red(dec.At(2, 2)) {
			t.Errorf("%s: not upright (marker not at top-right)", v.Name)
		}
	}
	keys := h.objects("")
	if len(keys) != 7 {
		t.Errorf("stored objects %v, want the original and 3 variants in 2 formats", keys)
	}
}

func red(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 > 200 && g>>8 < 80 && b>>8 < 80
}

func TestUploadRejected(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.Image.MaxUploadBytes = 200 << 10
		s.Image.MaxPixels = 4_000_000
	})
	token := h.user("bob@example.com")
	big := bytes.Repeat([]byte{0xAB}, 300<<10)
	tests := []struct {
		name   string
		ct     string
		body   io.Reader
		status int
		code   string
	}{
		{"NotMultipart", "application/json", strings.NewReader(`{"file":"x"}`), 400, "invalid_multipart"},
		{"NoContentType", "", strings.NewReader("x"), 400, "invalid_multipart"},
		{"BrokenMultipart", "multipart/form-data; boundary=zzz", strings.NewReader("--zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"), 400, ""},
		{"NoFileField", "", nil, 400, "file_missing"},
		{"TooLarge", "", nil, 413, "file_too_large"},
		{"NotAnImage", "", nil, 415, "unsupported_type"},
		{"SVG", "", nil, 415, "unsupported_type"},
		{"PDF", "", nil, 415, "unsupported_type"},
		{"TIFFNamedPNG", "", nil, 415, "unsupported_type"},
		{"TooManyPixels", "", nil, 422, "too_many_pixels"},
		{"DecompressionBomb", "", nil, 422, "too_many_pixels"},
		{"Empty", "", nil, 400, "file_empty"},
	}
	bodies := map[string][]byte{
		"TooLarge":          append(testenv.JPEG(t, 64, 64, 1), big...),
		"NotAnImage":        []byte("#!/bin/sh\necho this is not an image\n"),
		"SVG":               []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`),
		"PDF":               []byte("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
		"TIFFNamedPNG":      []byte("II*\x00\x08\x00\x00\x00\x00\x00"),
		"TooManyPixels":     testenv.PNGHeaderOnly(2001, 2000),
		"DecompressionBomb": testenv.PNGHeaderOnly(30000, 30000),
		"Empty":             {},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := tt.ct, tt.body
			if body == nil {
				field := "file"
				if tt.name == "NoFileField" {
					field = ""
				}
				var buf *bytes.Buffer
				ct, buf = multipartBody(t, field, "x.jpg", bodies[tt.name])
				body = buf
			}
			r := h.do(http.MethodPost, "/v1/images", token, ct, body)
			if r.Status != tt.status {
				t.Fatalf("status %d %s, want %d", r.Status, r.Body, tt.status)
			}
			code := r.errorCode(t)
			if tt.code != "" && code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
		})
	}
	h.assertNothingStored(token)
}

func TestCorruptImageFails(t *testing.T) {
	h := newHarness(t)
	token := h.user("carol@example.com")
	r := h.upload(token, "broken.jpg", testenv.CorruptJPEG(t, 640, 480))
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var queued imageJSON
	r.json(t, &queued)
	img := h.waitFor(token, queued.ID)
	if img.Status != "failed" || img.Error == nil || img.Error.Code != "undecodable_image" || img.Error.Message == "" {
		t.Fatalf("image ended %s with error %+v, want failed with undecodable_image", img.Status, img.Error)
	}
	if len(img.Variants) != 0 {
		t.Errorf("failed image has variants %+v", img.Variants)
	}
	if keys := h.objects("variants/"); len(keys) != 0 {
		t.Errorf("variants stored for a failed image: %v", keys)
	}
}

func TestRedeliveryChangesNothing(t *testing.T) {
	h := newHarness(t)
	token := h.user("dave@example.com")
	r := h.upload(token, "a.png", testenv.PNG(t, 900, 700, 120))
	var queued imageJSON
	r.json(t, &queued)
	done := h.waitFor(token, queued.ID)
	if done.Status != "done" {
		t.Fatalf("image ended %s", done.Status)
	}
	for _, v := range done.Variants {
		if v.ContentType != "image/png" {
			t.Errorf("%s: %s, want image/png for a source with alpha", v.Name, v.ContentType)
		}
	}
	before := h.objects("")

	// The finished task is delivered again, directly and through the queue.
	ctx := context.Background()
	if err := h.images.Process(ctx, queued.ID); err != nil {
		t.Fatalf("Process again: %v", err)
	}
	if err := h.queue.EnqueueProcess(ctx, queued.ID); err != nil {
		t.Fatalf("enqueue again: %v", err)
	}
	again := h.waitFor(token, queued.ID)
	if again.UpdatedAt != done.UpdatedAt || len(again.Variants) != len(done.Variants) {
		t.Errorf("redelivery changed the image: %+v, was %+v", again, done)
	}
	stored, err := h.store.Image(ctx, queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Attempt != 1 || len(stored.Variants) != 3 {
		t.Errorf("after redelivery: attempt %d, %d variant rows; want 1 and 3", stored.Attempt, len(stored.Variants))
	}
	if after := h.objects(""); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("objects changed: %v, were %v", after, before)
	}
}

func TestImagesAreOwned(t *testing.T) {
	h := newHarness(t)
	alice := h.user("alice@example.com")
	mallory := h.user("mallory@example.com")
	r := h.upload(alice, "a.jpg", testenv.JPEG(t, 400, 300, 1))
	var img imageJSON
	r.json(t, &img)

	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/v1/images/" + img.ID},
		{http.MethodDelete, "/v1/images/" + img.ID},
		{http.MethodGet, "/v1/images/not-a-uuid"},
		{http.MethodGet, "/v1/images/01900000-0000-7000-8000-000000000000"},
	} {
		r := h.do(tt.method, tt.path, mallory, "", nil)
		if r.Status != http.StatusNotFound || r.errorCode(t) != "not_found" {
			t.Errorf("%s %s as another user: %d %s, want 404 not_found", tt.method, tt.path, r.Status, r.Body)
		}
	}
	var list struct{ Items []imageJSON }
	h.do(http.MethodGet, "/v1/images", mallory, "", nil).json(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("another user lists %d images, want 0", len(list.Items))
	}
	if r := h.do(http.MethodGet, "/v1/images/"+img.ID, alice, "", nil); r.Status != http.StatusOK {
		t.Errorf("owner: %d", r.Status)
	}
}

func TestListAndDelete(t *testing.T) {
	h := newHarness(t)
	token := h.user("erin@example.com")
	var ids []string
	for i := 0; i < 5; i++ {
		r := h.upload(token, "p.jpg", testenv.JPEG(t, 320, 240, 1))
		var img imageJSON
		r.json(t, &img)
		ids = append(ids, img.ID)
	}
	// Pages of two, newest first, until next_cursor is null.
	var got []string
	cursor := ""
	for pages := 0; pages < 5; pages++ {
		r := h.do(http.MethodGet, "/v1/images?limit=2&cursor="+cursor, token, "", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		var page struct {
			Items      []imageJSON
			NextCursor *string `json:"next_cursor"`
		}
		r.json(t, &page)
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(got) != 5 {
		t.Fatalf("listed %v, want 5 images", got)
	}
	for i := range got {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("listed %v, want newest first %v", got, ids)
		}
	}
	for _, q := range []string{"limit=0", "limit=abc", "cursor=***", "cursor=bm9wZQ"} {
		if r := h.do(http.MethodGet, "/v1/images?"+q, token, "", nil); r.Status != http.StatusBadRequest {
			t.Errorf("list?%s: %d, want 400", q, r.Status)
		}
	}

	id := ids[0]
	h.waitFor(token, id)
	if r := h.do(http.MethodDelete, "/v1/images/"+id, token, "", nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := h.do(http.MethodGet, "/v1/images/"+id, token, "", nil); r.Status != http.StatusNotFound {
		t.Errorf("get after delete: %d, want 404", r.Status)
	}
	for _, k := range h.objects("") {
		if strings.Contains(k, id) {
			t.Errorf("object %s left after delete", k)
		}
	}
	if r := h.do(http.MethodDelete, "/v1/images/"+id, token, "", nil); r.Status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", r.Status)
	}
}

// TestReconcilerRepairsLostEnqueue simulates a crash between the database
// commit and the enqueue: the row and the original exist, no task does.
// The reconciler must get the image processed.
func TestReconcilerRepairsLostEnqueue(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.StaleAfter = time.Millisecond })
	token := h.user("heidi@example.com")
	ctx := context.Background()
	lost := h.insertQueued(h.userID(token), "01900000-0000-7000-8000-00000000dead",
		testenv.JPEG(t, 640, 480, 1), 640, 480, time.Now().Add(-time.Minute))
	n, err := h.images.Reconcile(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 image re-enqueued", n, err)
	}
	img := h.waitFor(token, lost.ID)
	if img.Status != "done" || len(img.Variants) != 3 {
		t.Errorf("lost image ended %s with %d variants, want done with 3", img.Status, len(img.Variants))
	}
}

// TestCrashingImageFails: an image whose attempts keep ending without a
// word (its worker killed each time) fails with processing_crashed once
// the reconciler finds it again, instead of being handed on for ever.
func TestCrashingImageFails(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.StaleAfter = time.Millisecond })
	token := h.user("crash@example.com")
	ctx := context.Background()
	img := h.insertQueued(h.userID(token), "01900000-0000-7000-8000-0000000dead1",
		testenv.JPEG(t, 640, 480, 1), 640, 480, time.Now().Add(-time.Minute))
	// Three claims, none of which ever finished: the last two found the
	// image still processing. The last lease has run out.
	for i := range 3 {
		if _, err := h.store.ClaimImage(ctx, img.ID, time.Now().Add(time.Duration(i-2)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := h.images.Reconcile(ctx); err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 image re-enqueued", n, err)
	}
	got := h.waitFor(token, img.ID)
	if got.Status != "failed" || got.Error == nil || got.Error.Code != "processing_crashed" {
		t.Errorf("image ended %s with %+v, want failed with processing_crashed", got.Status, got.Error)
	}
}

// TestLastRetryFails: an image whose original cannot be fetched is retried
// with backoff and, after the last retry, ends failed with a reason.
func TestLastRetryFails(t *testing.T) {
	h := newHarness(t) // 2 retries, 200 ms apart at first
	token := h.user("ivan@example.com")
	ctx := context.Background()
	orphan := h.insertQueued(h.userID(token), "01900000-0000-7000-8000-00000000beef", nil, 1, 1, time.Now()) // no original in S3
	if err := h.queue.EnqueueProcess(ctx, orphan.ID); err != nil {
		t.Fatal(err)
	}
	img := h.waitFor(token, orphan.ID)
	if img.Status != "failed" || img.Error == nil || img.Error.Code != "processing_failed" {
		t.Errorf("image ended %s with %+v, want failed with processing_failed", img.Status, img.Error)
	}
	got, err := h.store.Image(ctx, orphan.ID)
	if err != nil || got.Attempt != 3 {
		t.Errorf("attempts = %d (%v), want 3 (1 + 2 retries)", got.Attempt, err)
	}
}

// TestUploadsSaturated: with one upload slot, a second upload (another
// user's) while the first is still sending is refused with 503 and
// Retry-After, and the first one completes.
func TestUploadsSaturated(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.MaxConcurrentUploads = 1 })
	token, second := h.user("sat@example.com"), h.user("sat2@example.com")
	ct, body := multipartBody(t, "file", "a.jpg", testenv.JPEG(t, 320, 240, 1))
	pr, pw := io.Pipe()
	first := make(chan response, 1)
	go func() { first <- h.do(http.MethodPost, "/v1/images", token, ct, pr) }()
	pw.Write(body.Bytes()[:100]) // the first upload is in flight, holding the slot
	time.Sleep(300 * time.Millisecond)

	r := h.upload(second, "b.jpg", testenv.JPEG(t, 320, 240, 1))
	if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "uploads_saturated" || r.Header.Get("Retry-After") == "" {
		t.Errorf("second upload while the slot is taken: %d %s, want 503 uploads_saturated with Retry-After", r.Status, r.Body)
	}
	pw.Write(body.Bytes()[100:])
	pw.Close()
	if r := <-first; r.Status != http.StatusAccepted {
		t.Errorf("first upload: %d %s", r.Status, r.Body)
	}
	if r := h.upload(token, "c.jpg", testenv.JPEG(t, 320, 240, 1)); r.Status != http.StatusAccepted {
		t.Errorf("upload after the slot was freed: %d %s", r.Status, r.Body)
	}
}

// TestWorkerChecksTheOriginal: the worker applies the upload's checks to
// the original it fetched before decoding it, whatever stored it: a TIFF
// (not accepted by default) put straight into the bucket fails as
// unsupported instead of being decoded.
func TestWorkerChecksTheOriginal(t *testing.T) {
	h := newHarness(t)
	token := h.user("checks@example.com")
	tiff := testenv.VipsSave(t, testenv.PNG(t, 320, 240, 255), "tif", "")
	img := h.insertQueued(h.userID(token), "01900000-0000-7000-8000-00000000c0de", tiff, 320, 240, time.Now())
	if err := h.queue.EnqueueProcess(context.Background(), img.ID); err != nil {
		t.Fatal(err)
	}
	got := h.waitFor(token, img.ID)
	if got.Status != "failed" || got.Error == nil || got.Error.Code != "unsupported_type" {
		t.Errorf("image ended %s with %+v, want failed with unsupported_type", got.Status, got.Error)
	}
}
