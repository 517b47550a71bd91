package eventstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/eventstream"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// redisDB is this package's Redis database (see testenv.RedisURL).
const redisDB = 5

func finished(id string, attempt int) *image.Image {
	now := time.Now()
	return &image.Image{ID: id, UserID: "u1", Status: image.StatusDone, Attempt: attempt, CreatedAt: now, UpdatedAt: now}
}

// TestPublishOnce: a change announced twice (a notification retried) is
// one event; another attempt's change is another; replay starts after the
// position given, and live events follow.
func TestPublishOnce(t *testing.T) {
	rdb := testenv.MustRedis(t, redisDB)
	s := eventstream.New(rdb, eventstream.NewDefaultConfig())
	hub, err := s.StartHub(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	ctx := context.Background()
	for _, img := range []*image.Image{finished("a", 1), finished("a", 1), finished("a", 2)} {
		if err := s.ImageFinished(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	events, stop, err := s.Subscribe(ctx, "u1", "0-0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var got []image.StreamedEvent
	for len(got) < 2 {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(5 * time.Second):
			t.Fatalf("replayed %d events, want 2 (attempts 1 and 2, the first once)", len(got))
		}
	}
	if err := s.ImageFinished(ctx, finished("b", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.ImageID != "b" || e.Type != image.EventProcessed {
			t.Errorf("live event %+v, want image b processed", e)
		}
	case e := <-time.After(5 * time.Second):
		t.Fatalf("no live event after the replay (%v)", e)
	}
	select {
	case e := <-events:
		t.Errorf("an event more than published: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	if _, _, err := s.Subscribe(ctx, "u1", "not-an-id"); err == nil {
		t.Error("Subscribe after a malformed position succeeded")
	}
}
