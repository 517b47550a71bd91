package image_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/mock"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// api is a Service on fakes that keep the objects and rows it stores, so
// a test can see what a failed upload left behind.
type api struct {
	objects map[string]bool
	rows    map[string]bool
	catalog *mock.Catalog
	blobs   *mock.Blobs
	queue   *mock.Queue
	*image.Service
}

func newAPI(t *testing.T) *api {
	t.Helper()
	a := &api{objects: map[string]bool{}, rows: map[string]bool{}}
	a.blobs = &mock.Blobs{
		PutFn: func(_ context.Context, key string, _ io.ReadSeeker, _ int64, _ string) error {
			a.objects[key] = true
			return nil
		},
		DeletePrefixFn: func(_ context.Context, prefix string) error {
			for k := range a.objects {
				if strings.HasPrefix(k, prefix) {
					delete(a.objects, k)
				}
			}
			return nil
		},
	}
	a.catalog = &mock.Catalog{
		CreateImageFn: func(_ context.Context, img *image.Image) error { a.rows[img.ID] = true; return nil },
		DeleteImageFn: func(_ context.Context, id string) error { delete(a.rows, id); return nil },
	}
	a.queue = &mock.Queue{EnqueueProcessFn: func(context.Context, string) error { return nil }}
	a.Service = image.NewService(image.ServiceDeps{Catalog: a.catalog, Ledger: &mock.Ledger{}, Blobs: a.blobs, Queue: a.queue}, testConfig(), slog.New(slog.DiscardHandler))
	return a
}

// TestUploadUndo: an upload that fails half-way leaves no row and no
// object, and says the dependency is down (503).
func TestUploadUndo(t *testing.T) {
	src := testenv.JPEG(t, 64, 48, 1)
	down := errors.New("connection refused")
	for _, tt := range []struct {
		name  string
		fault func(a *api)
		code  string
	}{
		{"OK", func(*api) {}, ""},
		{"PutFails", func(a *api) {
			put := a.blobs.PutFn
			a.blobs.PutFn = func(ctx context.Context, key string, b io.ReadSeeker, n int64, ct string) error {
				put(ctx, key, b, n, ct) // the object may land although the answer is lost
				return down
			}
		}, "storage_unavailable"},
		{"InsertFails", func(a *api) {
			a.catalog.CreateImageFn = func(context.Context, *image.Image) error { return down }
		}, "database_unavailable"},
		{"EnqueueFails", func(a *api) {
			a.queue.EnqueueProcessFn = func(context.Context, string) error { return down }
		}, "queue_unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAPI(t)
			tt.fault(a)
			img, _, err := a.Upload(context.Background(), "u", "cat.jpg", bytes.NewReader(src))
			if tt.code == "" {
				if err != nil || len(a.rows) != 1 || len(a.objects) != 1 {
					t.Fatalf("Upload = %v; %d rows, %d objects; want 1 and 1", err, len(a.rows), len(a.objects))
				}
				if img.Status != image.StatusQueued || img.Width != 64 || img.ContentType != "image/jpeg" {
					t.Errorf("image = %+v", img)
				}
				return
			}
			if failure.KindOf(err) != failure.Unavailable || failure.CodeOf(err) != tt.code {
				t.Errorf("Upload = %v, want unavailable %s", err, tt.code)
			}
			if len(a.rows) != 0 || len(a.objects) != 0 {
				t.Errorf("left %d rows and objects %v, want nothing", len(a.rows), a.objects)
			}
		})
	}
}

// TestUploadRefusedBeforeStoring: a body that is too large or not an image
// is refused before anything is stored.
func TestUploadRefusedBeforeStoring(t *testing.T) {
	cfg := image.NewDefaultConfig()
	cfg.MaxUploadBytes = 1000
	nothing := &mock.Blobs{} // any call panics
	s := image.NewService(image.ServiceDeps{Catalog: &mock.Catalog{}, Ledger: &mock.Ledger{}, Blobs: nothing,
		Queue: &mock.Queue{}}, cfg, slog.New(slog.DiscardHandler))
	for name, tt := range map[string]struct {
		body []byte
		kind failure.Kind
	}{
		"TooLarge":   {bytes.Repeat([]byte{0xFF}, 1001), failure.TooLarge},
		"Empty":      {nil, failure.Invalid},
		"NotAnImage": {[]byte("hello"), failure.Unsupported},
		"PixelBomb":  {testenv.PNGHeaderOnly(30000, 30000), failure.Unprocessable},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.Upload(context.Background(), "u", "x", bytes.NewReader(tt.body)); failure.KindOf(err) != tt.kind {
				t.Errorf("Upload = %v (kind %d), want kind %d", err, failure.KindOf(err), tt.kind)
			}
		})
	}
}
