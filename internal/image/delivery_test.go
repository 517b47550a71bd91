package image_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/mock"
)

const imageID = "01900000-0000-7000-8000-000000000001"

var (
	key1 = image.DeliveryKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	key2 = image.DeliveryKey{ID: "k2", Secret: []byte("fedcba9876543210fedcba9876543210")}
)

func TestDeliveryToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	t.Run("OK", func(t *testing.T) {
		for _, tok := range []image.DeliveryToken{
			{ImageID: imageID, Variant: "small"},
			{ImageID: imageID, Variant: "a-very-long-variant-name_0123456", Format: image.FormatWebP},
			{ImageID: imageID, Variant: "large", Format: image.FormatPNG, Expires: now.Add(time.Hour)},
		} {
			s, err := tok.Sign(key1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := image.VerifyDeliveryToken(s, []image.DeliveryKey{key2, key1}, now)
			if err != nil || got.ImageID != tok.ImageID || got.Variant != tok.Variant || got.Format != tok.Format || !got.Expires.Equal(tok.Expires) {
				t.Errorf("Verify(Sign(%+v)) = %+v, %v", tok, got, err)
			}
			if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
				t.Errorf("token %q is not URL-safe", s)
			}
		}
	})
	s, _ := image.DeliveryToken{ImageID: imageID, Variant: "small"}.Sign(key1)
	parts := strings.Split(s, ".")
	t.Run("ErrTampered", func(t *testing.T) {
		other, _ := image.DeliveryToken{ImageID: imageID, Variant: "large"}.Sign(key1)
		for _, bad := range []string{
			parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2], // another payload under this tag
			"k2." + parts[1] + "." + parts[2],                              // another key's id
			parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
			parts[0] + "." + parts[1], "", "....",
		} {
			if _, err := image.VerifyDeliveryToken(bad, []image.DeliveryKey{key1, key2}, now); !errors.Is(err, image.ErrBadDeliveryURL) {
				t.Errorf("Verify(%q) = %v, want ErrBadDeliveryURL", bad, err)
			}
		}
	})
	t.Run("ErrKeyRemoved", func(t *testing.T) {
		if _, err := image.VerifyDeliveryToken(s, []image.DeliveryKey{key2}, now); !errors.Is(err, image.ErrBadDeliveryURL) {
			t.Errorf("a token of a removed key: %v, want ErrBadDeliveryURL", err)
		}
		forged := image.DeliveryKey{ID: "k1", Secret: key2.Secret} // same id, another secret
		if _, err := image.VerifyDeliveryToken(s, []image.DeliveryKey{forged}, now); !errors.Is(err, image.ErrBadDeliveryURL) {
			t.Errorf("a token checked against another secret of the same id: %v", err)
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		s, _ := image.DeliveryToken{ImageID: imageID, Variant: "small", Expires: now}.Sign(key1)
		if _, err := image.VerifyDeliveryToken(s, []image.DeliveryKey{key1}, now); !errors.Is(err, image.ErrExpiredURL) {
			t.Errorf("at its expiry: %v, want ErrExpiredURL", err)
		}
		if _, err := image.VerifyDeliveryToken(s, []image.DeliveryKey{key1}, now.Add(-time.Second)); err != nil {
			t.Errorf("a second before its expiry: %v", err)
		}
	})
}

func TestParseDeliveryKeys(t *testing.T) {
	keys, err := image.ParseDeliveryKeys(image.FormatDeliveryKeys([]image.DeliveryKey{key2, key1}))
	if err != nil || len(keys) != 2 || keys[0].ID != "k2" || string(keys[1].Secret) != string(key1.Secret) {
		t.Errorf("round trip = %+v, %v", keys, err)
	}
	// URL-safe base64, with or without padding, is accepted too.
	if _, err := image.ParseDeliveryKeys("a_b-1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"); err != nil {
		t.Errorf("unpadded key: %v", err)
	}
	for _, bad := range []string{"", "k1", "k1:", "k1:c2hvcnQ=", "waytoolongkeyid_01:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
		"k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY,k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", "k1:!!!"} {
		if _, err := image.ParseDeliveryKeys(bad); err == nil {
			t.Errorf("ParseDeliveryKeys(%q) accepted", bad)
		}
	}
}

func TestProfile(t *testing.T) {
	base := image.NewDefaultConfig()
	p := base.Profile()
	same := base
	same.Formats = []image.Format{image.FormatWebP, image.FormatJPEG}
	same.Quality, same.WebPEffort = 60, 4 // encoder settings: not the set
	if same.Profile() != p {
		t.Errorf("the same set in another order, or with other encoder settings, has another profile")
	}
	for name, change := range map[string]func(*image.Config){
		"VARIANTS": func(c *image.Config) {
			c.Variants = append(slices.Clone(c.Variants), image.Spec{Name: "x", Width: 1, Height: 1})
		},
		"box":             func(c *image.Config) { c.Variants = []image.Spec{{Name: "small", Width: 301, Height: 300}} },
		"VARIANT_FORMATS": func(c *image.Config) { c.Formats = []image.Format{image.FormatJPEG} },
		"OUTPUT_FORMAT":   func(c *image.Config) { c.OutputFormat = "jpeg" },
	} {
		c := base
		change(&c)
		if c.Profile() == p {
			t.Errorf("a change of %s keeps the profile", name)
		}
	}
}

func TestParseFormats(t *testing.T) {
	for in, want := range map[string]string{"jpeg": "[jpeg]", "JPEG, webp": "[jpeg webp]", "avif,jpeg,webp": "[avif jpeg webp]"} {
		got, err := image.ParseFormats(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseFormats(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "webp", "jpeg,png", "jpeg,jpeg", "jpeg,gif"} {
		if _, err := image.ParseFormats(bad); err == nil {
			t.Errorf("ParseFormats(%q) accepted", bad)
		}
	}
}

// deliveryService is a Service whose catalog holds one done image with a
// small variant in JPEG and WebP.
func deliveryService(t *testing.T, cfg image.Config) *image.Service {
	t.Helper()
	img := &image.Image{ID: imageID, UserID: "u", Status: image.StatusDone, Variants: []image.Variant{{
		Name: "small", Width: 4, Height: 3, Bytes: 10, ContentType: "image/jpeg", Key: "variants/u/i/small-1.jpg",
		Formats: []image.VariantFormat{{ContentType: "image/jpeg", Bytes: 10, Key: "variants/u/i/small-1.jpg"},
			{ContentType: "image/webp", Bytes: 5, Key: "variants/u/i/small-2.webp"}},
	}}}
	catalog := &mock.Catalog{ImageFn: func(_ context.Context, id string) (*image.Image, error) {
		if id != imageID {
			return nil, image.ErrNotFound
		}
		c := *img
		return &c, nil
	}}
	blobs := &mock.Blobs{PresignGetFn: func(_ context.Context, key string, _ time.Duration) (string, error) {
		return "https://s3.example.com/" + key + "?X-Amz-Signature=x", nil
	}}
	return image.NewService(image.ServiceDeps{Catalog: catalog, Blobs: blobs}, cfg, slog.New(slog.DiscardHandler))
}

func TestDeliver(t *testing.T) {
	cfg := testConfig()
	s := deliveryService(t, cfg)
	ctx := context.Background()
	sign := func(f image.Format) string {
		tok, err := image.DeliveryToken{ImageID: imageID, Variant: "small", Format: f}.Sign(cfg.DeliveryKeys[0])
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t.Run("Negotiated", func(t *testing.T) {
		for accept, want := range map[string]string{
			"":                                    "small-1.jpg",
			"*/*":                                 "small-1.jpg",
			"image/*":                             "small-1.jpg",
			"image/webp,*/*":                      "small-2.webp",
			"image/avif,image/webp,*/*;q=0.8":     "small-2.webp", // no AVIF made
			"image/webp;q=0,*/*":                  "small-1.jpg",
			"text/html, image/webp ;q=0.5, */*":   "small-2.webp",
			"image/avif,image/apng,image/svg+xml": "small-1.jpg",
		} {
			d, err := s.Deliver(ctx, sign(""), accept)
			if err != nil || !strings.Contains(d.Location, want) || !d.Negotiated {
				t.Errorf("Accept %q: %+v, %v; want %s, negotiated", accept, d, err, want)
			}
		}
	})
	t.Run("PerFormat", func(t *testing.T) {
		d, err := s.Deliver(ctx, sign(image.FormatWebP), "image/jpeg")
		if err != nil || !strings.Contains(d.Location, "small-2.webp") || d.Negotiated {
			t.Errorf("WebP token: %+v, %v", d, err)
		}
		if _, err := s.Deliver(ctx, sign(image.FormatAVIF), ""); !errors.Is(err, image.ErrNotFound) {
			t.Errorf("a format not made: %v, want ErrNotFound", err)
		}
	})
	t.Run("DeliveryBaseURL", func(t *testing.T) {
		c := cfg
		c.DeliveryBaseURL = "https://cdn.example.com/"
		d, err := deliveryService(t, c).Deliver(ctx, sign(""), "")
		if err != nil || d.Location != "https://cdn.example.com/variants/u/i/small-1.jpg" {
			t.Errorf("with DELIVERY_BASE_URL: %+v, %v", d, err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		gone, _ := image.DeliveryToken{ImageID: "01900000-0000-7000-8000-000000000002", Variant: "small"}.Sign(cfg.DeliveryKeys[0])
		noVariant, _ := image.DeliveryToken{ImageID: imageID, Variant: "large"}.Sign(cfg.DeliveryKeys[0])
		for _, tok := range []string{gone, noVariant} {
			if _, err := s.Deliver(ctx, tok, ""); !errors.Is(err, image.ErrNotFound) {
				t.Errorf("Deliver = %v, want ErrNotFound", err)
			}
		}
	})
}

// TestLinksStable: an image's URLs are under PUBLIC_URL and the same on
// two reads (the HTTP tests read a second apart), and a variant recorded
// before formats existed has its base as its one format.
func TestLinksStable(t *testing.T) {
	cfg := testConfig()
	cfg.PublicURL = "https://images.example.com"
	catalog := &mock.Catalog{ImageFn: func(context.Context, string) (*image.Image, error) {
		return &image.Image{ID: imageID, UserID: "u", Status: image.StatusDone,
			Variants: []image.Variant{{Name: "small", ContentType: "image/jpeg", Key: "k"}}}, nil
	}}
	s := image.NewService(image.ServiceDeps{Catalog: catalog}, cfg, slog.New(slog.DiscardHandler))
	a, err := s.Get(context.Background(), "u", imageID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Get(context.Background(), "u", imageID)
	if a.Variants[0].URL != b.Variants[0].URL || !strings.HasPrefix(a.Variants[0].URL, "https://images.example.com/v1/i/test.") {
		t.Errorf("URLs %s and %s, want one stable URL under PUBLIC_URL", a.Variants[0].URL, b.Variants[0].URL)
	}
	// A variant recorded before formats existed has its base as its one format.
	if len(a.Variants[0].Formats) != 1 || a.Variants[0].Formats[0].URL == "" {
		t.Errorf("formats of an old variant: %+v", a.Variants[0].Formats)
	}
	if _, err := image.VerifyDeliveryToken(strings.TrimPrefix(a.Variants[0].URL, "https://images.example.com/v1/i/"), cfg.DeliveryKeys, time.Now().Add(100*365*24*time.Hour)); err != nil {
		t.Errorf("without DELIVERY_URL_LIFETIME the URL expires: %v", err)
	}
	// With a lifetime, the URL expires between one and two lifetimes on.
	cfg.DeliveryLifetime = time.Hour
	s = image.NewService(image.ServiceDeps{Catalog: catalog}, cfg, slog.New(slog.DiscardHandler))
	c, err := s.Get(context.Background(), "u", imageID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := image.VerifyDeliveryToken(strings.TrimPrefix(c.Variants[0].URL, "https://images.example.com/v1/i/"), cfg.DeliveryKeys, time.Now())
	if left := time.Until(tok.Expires); err != nil || left < time.Hour-time.Minute || left > 2*time.Hour {
		t.Errorf("with a lifetime of 1h the URL expires in %s (%v), want 1h to 2h", left, err)
	}
}

// TestBackfill: the backfill records the new set only while the image is
// still done at the attempt it read, removes the replaced objects after,
// and removes its own unrecorded ones (but not those the image shares)
// when it lost.
func TestBackfill(t *testing.T) {
	ctx := context.Background()
	newWorkerFor := func(t *testing.T, replace func() ([]string, error), current []image.Variant) (*worker, *[]string) {
		w := newWorker(t, 0)
		var deleted []string
		w.blobs.DeleteFn = func(_ context.Context, keys []string) error { deleted = append(deleted, keys...); return nil }
		img := &image.Image{ID: "img", UserID: "u", Status: image.StatusDone, Attempt: 4, Profile: "old", Variants: current}
		w.catalog.ImageFn = func(context.Context, string) (*image.Image, error) { c := *img; return &c, nil }
		w.ledger.ReplaceVariantsFn = func(_ context.Context, _ string, attempt int, c image.Completion) ([]string, error) {
			if attempt != 4 || c.Profile != testConfig().Profile() || len(c.Variants) != 1 {
				t.Errorf("ReplaceVariants(attempt %d, %+v)", attempt, c)
			}
			return replace()
		}
		return w, &deleted
	}
	profile := testConfig().Profile()
	t.Run("OK", func(t *testing.T) {
		w, deleted := newWorkerFor(t, func() ([]string, error) { return []string{"old.webp"}, nil }, nil)
		if err := w.Backfill(ctx, "img", profile); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(*deleted, []string{"old.webp"}) {
			t.Errorf("deleted %v, want the replaced objects", *deleted)
		}
	})
	t.Run("LostToAReprocessing", func(t *testing.T) {
		newKey := image.VariantKey("u", "img", "small", []byte("x"), "jpg")
		shared := []image.Variant{{Name: "small", Key: newKey}}
		w, deleted := newWorkerFor(t, func() ([]string, error) { return nil, image.ErrLeaseLost }, shared)
		if err := w.Backfill(ctx, "img", profile); err != nil {
			t.Fatal(err)
		}
		if len(*deleted) != 0 {
			t.Errorf("deleted %v: the image's recorded set uses that key", *deleted)
		}
		w, deleted = newWorkerFor(t, func() ([]string, error) { return nil, image.ErrLeaseLost }, nil)
		w.Backfill(ctx, "img", profile)
		if !slices.Equal(*deleted, []string{newKey}) {
			t.Errorf("deleted %v, want the unrecorded %s", *deleted, newKey)
		}
	})
	t.Run("NothingToDo", func(t *testing.T) {
		w := newWorker(t, 0)
		w.catalog.ImageFn = func(context.Context, string) (*image.Image, error) {
			return &image.Image{ID: "img", Status: image.StatusDone, Profile: profile}, nil
		}
		w.blobs.GetFn = nil // never reached: would panic
		if err := w.Backfill(ctx, "img", profile); err != nil {
			t.Error(err)
		}
	})
	t.Run("ErrOtherProfile", func(t *testing.T) {
		if err := newWorker(t, 0).Backfill(ctx, "img", "another"); !errors.Is(err, image.ErrOtherProfile) {
			t.Errorf("Backfill of another profile = %v, want ErrOtherProfile", err)
		}
	})
}
