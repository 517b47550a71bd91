package image_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/mock"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// worker is a Processor on fakes that record what happened to one image.
type worker struct {
	ledger   *mock.Ledger
	catalog  *mock.Catalog
	blobs    *mock.Blobs
	resizer  *mock.Resizer
	notified atomic.Int32
	released atomic.Int32
	failed   struct {
		sync.Mutex
		code string
	}
	deleted []string
	*image.Processor
}

// newWorker returns a Processor whose image (id "img", attempt 1, crashes
// as given) claims, fetches, resizes and completes, unless a test replaces
// one of the functions.
func newWorker(t *testing.T, crashes int) *worker {
	t.Helper()
	w := &worker{}
	src := testenv.JPEG(t, 64, 48, 1)
	claimed := &image.Image{ID: "img", UserID: "u", Status: image.StatusProcessing, Attempt: 1, Crashes: crashes, Width: 64, Height: 48}
	finished := *claimed
	w.ledger = &mock.Ledger{
		ClaimImageFn: func(context.Context, string, time.Time) (*image.Image, error) { c := *claimed; return &c, nil },
		ReleaseImageFn: func(context.Context, string, int) error {
			w.released.Add(1)
			return nil
		},
		CompleteImageFn: func(context.Context, string, int, image.Completion) ([]string, error) {
			finished.Status = image.StatusDone
			return nil, nil
		},
		FailImageFn: func(_ context.Context, _ string, _ int, code, _ string) error {
			w.failed.Lock()
			defer w.failed.Unlock()
			w.failed.code = code
			finished.Status = image.StatusFailed
			return nil
		},
		MarkNotifiedFn: func(context.Context, string, int) error { return nil },
	}
	w.catalog = &mock.Catalog{ImageFn: func(context.Context, string) (*image.Image, error) { f := finished; return &f, nil }}
	w.blobs = &mock.Blobs{
		GetFn:        func(context.Context, string) ([]byte, error) { return src, nil },
		PutVariantFn: func(context.Context, string, io.ReadSeeker, int64, string) error { return nil },
		DeletePrefixFn: func(_ context.Context, prefix string) error {
			w.deleted = append(w.deleted, prefix)
			return nil
		},
		PresignGetFn: func(context.Context, string, time.Duration) (string, error) { return "https://s3/x", nil },
	}
	w.resizer = &mock.Resizer{RenderFn: func(context.Context, []byte, []image.Spec) (image.Rendering, error) {
		return image.Rendering{Renditions: []image.Rendition{{Name: "small", Format: image.FormatJPEG, Width: 64, Height: 48,
			ContentType: "image/jpeg", Ext: "jpg", Data: []byte("x")}}}, nil
	}}
	notifier := &mock.Notifier{ImageFinishedFn: func(context.Context, *image.Image) error { w.notified.Add(1); return nil }}
	w.Processor = image.NewProcessor(image.ProcessorDeps{Catalog: w.catalog, Ledger: w.ledger, Blobs: w.blobs,
		Queue: &mock.Queue{}, Resizer: w.resizer, Notifier: notifier}, testConfig(), slog.New(slog.DiscardHandler))
	return w
}

func TestProcess(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		w := newWorker(t, 0)
		if err := w.Process(ctx, "img"); err != nil {
			t.Fatal(err)
		}
		if w.notified.Load() != 1 || w.released.Load() != 0 {
			t.Errorf("notified %d, released %d; want 1, 0", w.notified.Load(), w.released.Load())
		}
	})
	t.Run("ErrProcessingCrashed", func(t *testing.T) {
		w := newWorker(t, 3)     // three attempts before this one never finished
		w.resizer.RenderFn = nil // never reached: would panic
		err := w.Process(ctx, "img")
		if !errors.Is(err, image.ErrProcessingCrashed) || failure.KindOf(err) != failure.Unprocessable {
			t.Errorf("Process = %v, want ErrProcessingCrashed (not retried)", err)
		}
		if w.failed.code != "processing_crashed" || w.notified.Load() != 1 {
			t.Errorf("failed with %q, notified %d; want processing_crashed, 1", w.failed.code, w.notified.Load())
		}
	})
	t.Run("ErrUndecodable", func(t *testing.T) {
		w := newWorker(t, 0)
		w.resizer.RenderFn = func(context.Context, []byte, []image.Spec) (image.Rendering, error) {
			return image.Rendering{}, image.ErrUndecodable
		}
		if err := w.Process(ctx, "img"); failure.KindOf(err) != failure.Unprocessable || w.failed.code != "undecodable_image" {
			t.Errorf("Process = %v, failed with %q; want undecodable_image, not retried", err, w.failed.code)
		}
	})
	t.Run("ChecksTheOriginal", func(t *testing.T) {
		w := newWorker(t, 0)
		w.blobs.GetFn = func(context.Context, string) ([]byte, error) { return []byte("not an image"), nil }
		w.resizer.RenderFn = nil
		if err := w.Process(ctx, "img"); failure.KindOf(err) != failure.Unprocessable || w.failed.code != "unsupported_type" {
			t.Errorf("Process = %v, failed with %q; want unsupported_type, not retried", err, w.failed.code)
		}
	})
	t.Run("TransientErrorReleases", func(t *testing.T) {
		w := newWorker(t, 0)
		w.blobs.GetFn = func(context.Context, string) ([]byte, error) { return nil, errors.New("s3 is down") }
		err := w.Process(ctx, "img")
		if err == nil || failure.KindOf(err) == failure.Unprocessable {
			t.Errorf("Process = %v, want an error that is retried", err)
		}
		if w.released.Load() != 1 {
			t.Errorf("released %d times, want 1: the next claim must not count a crash", w.released.Load())
		}
	})
	t.Run("LeaseLost", func(t *testing.T) {
		w := newWorker(t, 0)
		w.ledger.CompleteImageFn = func(context.Context, string, int, image.Completion) ([]string, error) { return nil, image.ErrLeaseLost }
		if err := w.Process(ctx, "img"); err != nil || w.notified.Load() != 0 {
			t.Errorf("Process = %v, notified %d; want nil and no notification (the newer attempt tells)", err, w.notified.Load())
		}
	})
	t.Run("DeletedDuringProcessing", func(t *testing.T) {
		w := newWorker(t, 0)
		w.ledger.CompleteImageFn = func(context.Context, string, int, image.Completion) ([]string, error) { return nil, image.ErrNotFound }
		if err := w.Process(ctx, "img"); err != nil {
			t.Fatal(err)
		}
		if len(w.deleted) != 1 || w.deleted[0] != image.VariantPrefix("u", "img") {
			t.Errorf("deleted %v, want the variants just written", w.deleted)
		}
	})
	t.Run("OneTaskPerImageAtOnce", func(t *testing.T) {
		w := newWorker(t, 0)
		inResize, release := make(chan struct{}), make(chan struct{})
		resize := w.resizer.RenderFn
		w.resizer.RenderFn = func(ctx context.Context, src []byte, specs []image.Spec) (image.Rendering, error) {
			close(inResize)
			<-release
			return resize(ctx, src, specs)
		}
		first := make(chan error, 1)
		go func() { first <- w.Process(ctx, "img") }()
		<-inResize
		var claims atomic.Int32
		claim := w.ledger.ClaimImageFn
		w.ledger.ClaimImageFn = func(ctx context.Context, id string, lease time.Time) (*image.Image, error) {
			claims.Add(1)
			return claim(ctx, id, lease)
		}
		if err := w.Process(ctx, "img"); err == nil || claims.Load() != 0 {
			t.Errorf("a second task of the image while the first decodes: %v after %d claims, want an error before any claim", err, claims.Load())
		}
		close(release)
		if err := <-first; err != nil {
			t.Errorf("first task: %v", err)
		}
	})
}

func TestReconcile(t *testing.T) {
	w := newWorker(t, 0)
	var enqueued []string
	w.ledger.StaleImagesFn = func(context.Context, time.Time, time.Time, int) ([]string, error) { return []string{"a", "b"}, nil }
	w.ledger.UnnotifiedImagesFn = func(context.Context, time.Time, int) ([]string, error) { return []string{"img"}, nil }
	queue := &mock.Queue{EnqueueProcessFn: func(_ context.Context, id string) error { enqueued = append(enqueued, id); return nil }}
	p := image.NewProcessor(image.ProcessorDeps{Catalog: w.catalog, Ledger: w.ledger, Blobs: w.blobs, Queue: queue,
		Resizer: w.resizer, Notifier: &mock.Notifier{ImageFinishedFn: func(context.Context, *image.Image) error {
			w.notified.Add(1)
			return nil
		}}}, testConfig(), slog.New(slog.DiscardHandler))
	w.catalog.ImageFn = func(context.Context, string) (*image.Image, error) {
		return &image.Image{ID: "img", UserID: "u", Status: image.StatusDone, Attempt: 1}, nil
	}
	n, err := p.Reconcile(context.Background())
	if err != nil || n != 3 || len(enqueued) != 2 || w.notified.Load() != 1 {
		t.Errorf("Reconcile = %d, %v; enqueued %v, notified %d; want 3, [a b], 1", n, err, enqueued, w.notified.Load())
	}
}

// testConfig is the default configuration with a delivery key, which
// production requires.
func testConfig() image.Config {
	cfg := image.NewDefaultConfig()
	cfg.DeliveryKeys = []image.DeliveryKey{{ID: "test", Secret: []byte("0123456789abcdef0123456789abcdef")}}
	return cfg
}
