package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bbrks/go-blurhash"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// noRedirect is the harness's validating client that stops at redirects,
// so that a test sees the delivery URL's own answer.
func (h *harness) noRedirect() *http.Client {
	c := *h.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// fetch GETs a delivery URL (no credentials) with an Accept header and
// returns its answer; a redirect is followed with a plain client into
// body and the object's Content-Type.
func (h *harness) fetch(url, accept string) (r response, body []byte, contentType string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	r = send(h.t, h.noRedirect(), req)
	if r.Status != http.StatusFound {
		return r, nil, ""
	}
	resp, err := http.Get(r.Header.Get("Location"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("following %s: %d %s", url, resp.StatusCode, body)
	}
	return r, body, resp.Header.Get("Content-Type")
}

// sniffFormat names the format of encoded image bytes.
func sniffFormat(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return "jpeg"
	case len(b) > 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	case len(b) > 12 && string(b[4:12]) == "ftypavif":
		return "avif"
	}
	return "unknown"
}

// TestDeliveryURLs: the variant URLs are the same on every read, work
// without credentials, choose the format from Accept, answer 403 when
// tampered with or expired and 404 once the image is deleted; the
// objects behind them are immutable and typed.
func TestDeliveryURLs(t *testing.T) {
	h := newHarness(t)
	token := h.user("dora@example.com")
	var queued imageJSON
	h.upload(token, "cat.jpg", testenv.JPEG(t, 800, 600, 1)).json(t, &queued)
	img := h.waitFor(token, queued.ID)
	if img.Status != "done" {
		t.Fatalf("image ended %s", img.Status)
	}
	// A second read a second later (tokens count time in seconds): the
	// same URLs.
	time.Sleep(1100 * time.Millisecond)
	var again imageJSON
	h.do(http.MethodGet, "/v1/images/"+img.ID, token, "", nil).json(t, &again)
	for i, v := range img.Variants {
		w := again.Variants[i]
		if v.URL == "" || v.URL != w.URL || len(v.Formats) != 2 || v.Formats[0].URL != w.Formats[0].URL || v.Formats[1].URL != w.Formats[1].URL {
			t.Fatalf("%s: URLs differ between two reads:\n%+v\n%+v", v.Name, v, w)
		}
		if !strings.HasPrefix(v.URL, h.url+image.DeliveryPath) {
			t.Errorf("%s: url %s, want one under %s%s", v.Name, v.URL, h.url, image.DeliveryPath)
		}
		if v.Formats[0].ContentType != "image/jpeg" || v.Formats[1].ContentType != "image/webp" || v.Formats[0].Bytes != v.Bytes {
			t.Errorf("%s: formats %+v, want the JPEG base then WebP", v.Name, v.Formats)
		}
	}
	if img.Placeholder == nil || len(*img.Placeholder) < 6 || img.DominantColor == nil || len(*img.DominantColor) != 7 {
		t.Errorf("placeholder %v, dominant colour %v", img.Placeholder, img.DominantColor)
	}

	t.Run("Negotiated", func(t *testing.T) {
		for _, v := range img.Variants {
			for accept, want := range map[string]string{"*/*": "jpeg", "": "jpeg", "image/avif,image/webp,*/*": "webp",
				"image/webp;q=0,*/*": "jpeg", "image/png,image/jpeg": "jpeg"} {
				r, body, ct := h.fetch(v.URL, accept)
				if r.Status != http.StatusFound {
					t.Fatalf("%s Accept %q: %d %s", v.Name, accept, r.Status, r.Body)
				}
				if r.Header.Get("Vary") != "Accept" || r.Header.Get("Cache-Control") != "public, max-age=60" {
					t.Errorf("%s: Vary %q, Cache-Control %q", v.Name, r.Header.Get("Vary"), r.Header.Get("Cache-Control"))
				}
				if got := sniffFormat(body); got != want || ct != "image/"+want {
					t.Errorf("%s Accept %q: got %s (Content-Type %s), want %s", v.Name, accept, got, ct, want)
				}
				if want == "jpeg" {
					dec, _, err := stdimage.Decode(bytes.NewReader(body))
					if err != nil || dec.Bounds().Dx() != v.Width || dec.Bounds().Dy() != v.Height {
						t.Errorf("%s: decoded %v (%v), want %dx%d", v.Name, dec.Bounds(), err, v.Width, v.Height)
					}
				}
			}
		}
	})
	t.Run("PerFormat", func(t *testing.T) {
		v := img.Variants[0]
		r, body, _ := h.fetch(v.Formats[1].URL, "image/jpeg")
		if r.Status != http.StatusFound || sniffFormat(body) != "webp" || r.Header.Get("Vary") != "" {
			t.Errorf("WebP URL: %d, %s, Vary %q; want a WebP whatever Accept says, not varying", r.Status, sniffFormat(body), r.Header.Get("Vary"))
		}
	})
	t.Run("ObjectsImmutable", func(t *testing.T) {
		keys := h.objects(image.VariantPrefix(h.userID(token), img.ID))
		if len(keys) != 6 {
			t.Fatalf("variant objects %v, want 3 variants in 2 formats", keys)
		}
		for _, k := range keys {
			ct, cc, err := h.blobs.Head(context.Background(), k)
			want := "image/jpeg"
			if strings.HasSuffix(k, ".webp") {
				want = "image/webp"
			}
			if err != nil || ct != want || cc != image.VariantCacheControl {
				t.Errorf("%s: Content-Type %q, Cache-Control %q (%v); want %s, %s", k, ct, cc, err, want, image.VariantCacheControl)
			}
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		u := img.Variants[1].URL
		// Another variant's name in the payload under the first's tag, a
		// changed tag, a key id nobody has, garbage.
		tok := strings.TrimPrefix(u, h.url+image.DeliveryPath)
		parts := strings.Split(tok, ".")
		other := strings.Split(strings.TrimPrefix(img.Variants[0].URL, h.url+image.DeliveryPath), ".")
		flipped := []byte(parts[2])
		flipped[0] ^= 1
		for _, bad := range []string{
			parts[0] + "." + other[1] + "." + parts[2],
			parts[0] + "." + parts[1] + "." + string(flipped),
			"zz." + parts[1] + "." + parts[2],
			"nonsense",
		} {
			r, _, _ := h.fetch(h.url+image.DeliveryPath+bad, "")
			if r.Status != http.StatusForbidden || r.errorCode(t) != "invalid_signature" {
				t.Errorf("tampered %s: %d %s, want 403 invalid_signature", bad, r.Status, r.Body)
			}
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		tok, err := image.DeliveryToken{ImageID: img.ID, Variant: "small", Expires: time.Now().Add(-time.Minute)}.Sign(testDeliveryKey)
		if err != nil {
			t.Fatal(err)
		}
		r, _, _ := h.fetch(h.url+image.DeliveryPath+tok, "")
		if r.Status != http.StatusForbidden || r.errorCode(t) != "expired_url" {
			t.Errorf("expired: %d %s, want 403 expired_url", r.Status, r.Body)
		}
		tok, _ = image.DeliveryToken{ImageID: img.ID, Variant: "small", Expires: time.Now().Add(time.Hour)}.Sign(testDeliveryKey)
		if r, _, _ := h.fetch(h.url+image.DeliveryPath+tok, ""); r.Status != http.StatusFound {
			t.Errorf("not yet expired: %d %s, want 302", r.Status, r.Body)
		}
	})
	t.Run("ErrDeleted", func(t *testing.T) {
		if r := h.do(http.MethodDelete, "/v1/images/"+img.ID, token, "", nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d", r.Status)
		}
		for _, u := range []string{img.Variants[0].URL, img.Variants[0].Formats[1].URL} {
			if r, _, _ := h.fetch(u, ""); r.Status != http.StatusNotFound || r.errorCode(t) != "not_found" {
				t.Errorf("after delete: %d %s, want 404", r.Status, r.Body)
			}
		}
	})
}

// TestDeliveryKeyRotation: a new key signs while the old one still
// verifies; once the old one is removed, its URLs are refused.
func TestDeliveryKeyRotation(t *testing.T) {
	h := newHarness(t)
	token := h.user("rota@example.com")
	var queued imageJSON
	h.upload(token, "r.jpg", testenv.JPEG(t, 320, 240, 1)).json(t, &queued)
	old := h.waitFor(token, queued.ID).Variants[0].URL

	k2 := image.DeliveryKey{ID: "t2", Secret: []byte("the-second-delivery-key-0123456789ab")}
	both := h.replicaWith(func(s *settings) { s.Image.DeliveryKeys = []image.DeliveryKey{k2, testDeliveryKey} })
	r := send(t, h.noRedirect(), mustRequest(t, strings.Replace(old, h.url, both, 1)))
	if r.Status != http.StatusFound {
		t.Errorf("old URL while the old key still verifies: %d %s, want 302", r.Status, r.Body)
	}
	var img imageJSON
	send(t, h.client, withToken(mustRequest(t, both+"/v1/images/"+queued.ID), token)).json(t, &img)
	if !strings.Contains(img.Variants[0].URL, image.DeliveryPath+"t2.") {
		t.Errorf("URL after rotation %s, want one signed by t2", img.Variants[0].URL)
	}

	onlyNew := h.replicaWith(func(s *settings) { s.Image.DeliveryKeys = []image.DeliveryKey{k2} })
	r = send(t, h.noRedirect(), mustRequest(t, strings.Replace(old, h.url, onlyNew, 1)))
	if r.Status != http.StatusForbidden || r.errorCode(t) != "invalid_signature" {
		t.Errorf("old URL once its key is removed: %d %s, want 403", r.Status, r.Body)
	}
	r = send(t, h.noRedirect(), mustRequest(t, strings.Replace(img.Variants[0].URL, both, onlyNew, 1)))
	if r.Status != http.StatusFound {
		t.Errorf("new URL: %d %s, want 302", r.Status, r.Body)
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func withToken(req *http.Request, token string) *http.Request {
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// TestPlaceholder: the placeholder decodes (BlurHash) to a picture whose
// mean colour is the small variant's, and the dominant colour is the
// colour most of the picture has.
func TestPlaceholder(t *testing.T) {
	h := newHarness(t)
	token := h.user("pla@example.com")
	// Grey (90,110,130) with a red block over a sixteenth of it.
	var queued imageJSON
	h.upload(token, "p.jpg", testenv.JPEG(t, 1200, 900, 1)).json(t, &queued)
	img := h.waitFor(token, queued.ID)
	if img.Placeholder == nil || img.DominantColor == nil {
		t.Fatalf("placeholder %v, dominant colour %v", img.Placeholder, img.DominantColor)
	}
	decoded, err := blurhash.Decode(*img.Placeholder, 32, 24, 1)
	if err != nil {
		t.Fatalf("decode placeholder %q: %v", *img.Placeholder, err)
	}
	_, small, _ := h.fetch(img.Variants[0].URL, "image/jpeg")
	variant, _, err := stdimage.Decode(bytes.NewReader(small))
	if err != nil {
		t.Fatal(err)
	}
	got, want := meanColour(decoded), meanColour(variant)
	for c := range 3 {
		if d := got[c] - want[c]; d > 12 || d < -12 {
			t.Errorf("placeholder mean colour %v, the small variant's %v: channel %d off by %.1f (over 12)", got, want, c, d)
		}
	}
	var r, g, b int
	if _, err := fmt.Sscanf(*img.DominantColor, "#%02x%02x%02x", &r, &g, &b); err != nil || abs(r-90) > 6 || abs(g-110) > 6 || abs(b-130) > 6 {
		t.Errorf("dominant colour %s, want about #5a6e82 (the grey) (%v)", *img.DominantColor, err)
	}
}

func meanColour(img stdimage.Image) [3]float64 {
	var sum [3]float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			sum[0] += float64(r >> 8)
			sum[1] += float64(g >> 8)
			sum[2] += float64(bl >> 8)
		}
	}
	n := float64(b.Dx() * b.Dy())
	return [3]float64{sum[0] / n, sum[1] / n, sum[2] / n}
}

func abs(v int) int { return max(v, -v) }
