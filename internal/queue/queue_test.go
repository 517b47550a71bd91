package queue

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/imagesvc/imagesvc/internal/image"
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
