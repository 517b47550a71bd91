package queue

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

func TestRetryDelay(t *testing.T) {
	delay := RetryDelay(5*time.Second, time.Minute)
	for _, tt := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{0, 5 * time.Second, 6 * time.Second}, // base, plus up to 20% jitter
		{1, 10 * time.Second, 12 * time.Second},
		{3, 40 * time.Second, 48 * time.Second},
		{4, time.Minute, 72 * time.Second}, // capped
		{20, time.Minute, 72 * time.Second},
	} {
		for range 50 {
			if d := delay(tt.n, errors.New("x"), nil); d < tt.lo || d > tt.hi {
				t.Fatalf("RetryDelay after %d retries = %s, want %s to %s", tt.n, d, tt.lo, tt.hi)
			}
		}
	}
	// A webhook delivery carries its own schedule.
	if d := delay(3, &webhook.RetryError{After: 2 * time.Hour}, nil); d != 2*time.Hour {
		t.Errorf("RetryDelay of a webhook retry = %s, want the 2h it asks for", d)
	}
}

// processor is an image handler's Processor whose Process returns err and
// which records whether it gave up.
type processor struct {
	err    error
	gaveUp bool
}

func (p *processor) Process(context.Context, string) error { return p.err }
func (p *processor) GiveUp(context.Context, string, error) error {
	p.gaveUp = true
	return nil
}

func TestImageHandler(t *testing.T) {
	transient := errors.New("s3 is down")
	for _, tt := range []struct {
		name        string
		err         error
		retry       int
		wantSkip    bool
		wantGiveUp  bool
		wantSuccess bool
	}{
		{"OK", nil, 0, false, false, true},
		{"PermanentNotRetried", image.ErrUndecodable, 0, true, false, false},
		{"TransientRetried", transient, 1, false, false, false},
		{"LastRetryGivesUp", transient, 2, false, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &processor{err: tt.err}
			err := NewImageHandler(p, slog.New(slog.DiscardHandler)).process(context.Background(), "img", tt.retry, 2)
			if (err == nil) != tt.wantSuccess || errors.Is(err, asynq.SkipRetry) != tt.wantSkip || p.gaveUp != tt.wantGiveUp {
				t.Errorf("process = %v (skip retry %v), gave up %v; want success %v, skip %v, give up %v",
					err, errors.Is(err, asynq.SkipRetry), p.gaveUp, tt.wantSuccess, tt.wantSkip, tt.wantGiveUp)
			}
		})
	}
}

// backfiller records the backfill calls it gets.
type backfiller struct{ images []string }

func (b *backfiller) BackfillScan(context.Context, string, string) (int, error) { return 0, nil }
func (b *backfiller) Backfill(_ context.Context, id, _ string) error {
	b.images = append(b.images, id)
	return nil
}

// TestBackfillStepsAside: a backfill task does not run while image tasks
// wait; it comes back in a second without counting as a failure.
func TestBackfillStepsAside(t *testing.T) {
	rdb := testenv.MustRedis(t, 7)
	ctx := context.Background()
	b := &backfiller{}
	h := NewBackfillHandler(b, rdb, slog.New(slog.DiscardHandler))
	task, err := json.Marshal(BackfillImagePayload{ImageID: "img", Profile: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.LPush(ctx, "asynq:{"+QueueImages+"}:pending", "an image task").Err(); err != nil {
		t.Fatal(err)
	}
	err = h.image(ctx, asynq.NewTask(TypeBackfillImage, task))
	var y *yield
	if !errors.As(err, &y) || len(b.images) != 0 {
		t.Fatalf("with an image task waiting: %v, backfilled %v; want a step aside", err, b.images)
	}
	if d := RetryDelay(time.Minute, time.Hour)(0, err, nil); d != time.Second {
		t.Errorf("a step aside comes back in %s, want 1s", d)
	}
	if isFailure(err) || !isFailure(errors.New("s3 is down")) {
		t.Error("a step aside counts as a failure, or a failure does not")
	}
	rdb.Del(ctx, "asynq:{"+QueueImages+"}:pending")
	if err := h.image(ctx, asynq.NewTask(TypeBackfillImage, task)); err != nil || len(b.images) != 1 {
		t.Errorf("with no image task waiting: %v, backfilled %v; want the image", err, b.images)
	}
}
