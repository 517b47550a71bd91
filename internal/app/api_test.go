package app

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"

	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/s3store"
)

// The web app's image policy names the origin the browser is redirected
// to, as the S3 store presigns it: the bucket in the host name when the
// server is addressed virtual-hosted style, the region's host on AWS.
func TestImageSources(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		endpoint, public, deliveryTo string
		pathStyle                    bool
		want                         string
	}{
		{name: "path style", endpoint: "http://s3.internal:9000", pathStyle: true, want: "http://s3.internal:9000"},
		{name: "virtual-hosted", endpoint: "https://objects.example.com", want: "https://images.objects.example.com"},
		{name: "AWS", want: "https://images.s3.eu-west-1.amazonaws.com"},
		{name: "public endpoint", endpoint: "http://s3.internal:9000", public: "https://cdn-s3.example.com", pathStyle: true, want: "https://cdn-s3.example.com"},
		{name: "delivery base", endpoint: "http://s3.internal:9000", deliveryTo: "https://img.example.com", pathStyle: true, want: "https://img.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs, err := s3store.New(context.Background(), s3store.Config{
				Endpoint: tc.endpoint, PublicEndpoint: tc.public, ForcePathStyle: tc.pathStyle,
				Region: "eu-west-1", Bucket: "images", AccessKeyID: "k", SecretAccessKey: "s", MaxConns: 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			var cfg config.Config
			cfg.Image.PublicURL = "https://api.example.com"
			cfg.Image.DeliveryBaseURL = tc.deliveryTo
			got := imageSources(cfg, blobs, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if len(got) != 2 || got[0] != "https://api.example.com" {
				t.Fatalf("sources = %q, want PUBLIC_URL then where images redirect", got)
			}
			u, err := url.Parse(got[1])
			if err != nil {
				t.Fatal(err)
			}
			if origin := u.Scheme + "://" + u.Host; origin != tc.want {
				t.Errorf("image origin = %s, want %s", origin, tc.want)
			}
		})
	}
}
