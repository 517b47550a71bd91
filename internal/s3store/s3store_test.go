package s3store_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/s3store"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestPresignPublicEndpoint: with S3_PUBLIC_ENDPOINT, presigned URLs name
// the public host, not the one the service connects to (the signature
// covers the host, so it cannot be rewritten later), and they work there:
// here the public host is another name of the same test server.
func TestPresignPublicEndpoint(t *testing.T) {
	internal, cfg := testenv.MustBucket(t)
	ctx := context.Background()
	body := []byte("variant bytes")
	if err := internal.PutVariant(ctx, "variants/u/i/small-abc.jpg", bytes.NewReader(body), int64(len(body)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	public := strings.Replace(cfg.Endpoint, u.Hostname(), "localhost", 1)
	if public == cfg.Endpoint {
		t.Skipf("the test S3 server's endpoint %s has no other name to try", cfg.Endpoint)
	}
	cfg.PublicEndpoint = public
	store, err := s3store.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := store.PresignGet(ctx, "variants/u/i/small-abc.jpg", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(signed, public+"/") {
		t.Errorf("presigned %s, want a URL on the public endpoint %s", signed, public)
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("GET of the public presigned URL: %d %q", resp.StatusCode, got)
	}
	// Without one, URLs name the endpoint the service uses.
	plain, err := internal.PresignGet(ctx, "variants/u/i/small-abc.jpg", time.Minute)
	if err != nil || !strings.HasPrefix(plain, cfg.Endpoint+"/") {
		t.Errorf("presigned without a public endpoint: %s (%v), want one on %s", plain, err, cfg.Endpoint)
	}
}

// TestPutVariant: variant objects carry their Content-Type and the
// immutable Cache-Control; Delete removes the keys given (a missing one
// too), and nothing else.
func TestPutVariant(t *testing.T) {
	store, _ := testenv.MustBucket(t)
	ctx := context.Background()
	for k, ct := range map[string]string{"variants/u/i/a-1.webp": "image/webp", "variants/u/i/b-2.jpg": "image/jpeg"} {
		if err := store.PutVariant(ctx, k, bytes.NewReader([]byte("x")), 1, ct); err != nil {
			t.Fatal(err)
		}
	}
	ct, cc, err := store.Head(ctx, "variants/u/i/a-1.webp")
	if err != nil || ct != "image/webp" || cc != image.VariantCacheControl {
		t.Errorf("stored with Content-Type %q, Cache-Control %q (%v)", ct, cc, err)
	}
	if err := store.Delete(ctx, []string{"variants/u/i/a-1.webp", "variants/u/i/missing.jpg"}); err != nil {
		t.Fatal(err)
	}
	keys, _ := store.Keys(ctx, "variants/")
	if len(keys) != 1 || keys[0] != "variants/u/i/b-2.jpg" {
		t.Errorf("after Delete: %v, want b-2.jpg alone", keys)
	}
}
