package s3store_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestSetCORS: after SetCORS, a browser on an allowed origin may PUT to a
// presigned URL of the bucket and read the ETag; another origin may not.
func TestSetCORS(t *testing.T) {
	store, _ := testenv.MustBucket(t)
	ctx := context.Background()
	if err := store.SetCORS(ctx, []string{"https://app.example.com"}); err != nil {
		t.Fatal(err)
	}
	url, err := store.PresignPut(ctx, "originals/u/i", 10, "image/jpeg", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	preflight := func(origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, url, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "PUT")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	if h := preflight("https://app.example.com"); h.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight from the allowed origin: %v, want it allowed", h)
	}
	if h := preflight("https://evil.example.com"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: Access-Control-Allow-Origin %q, want none", h.Get("Access-Control-Allow-Origin"))
	}
}
