package eventstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/eventstream"
)

// TestHubOnEmbeddedRedis: the quickstart's embedded Redis-protocol server
// (miniredis) answers the hub's heartbeat like Redis, so a quiet
// subscription stays open there and carries the next event.
func TestHubOnEmbeddedRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cfg := eventstream.NewDefaultConfig()
	cfg.Heartbeat = 100 * time.Millisecond
	s := eventstream.New(rdb, cfg)
	hub, err := s.StartHub(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	ctx := context.Background()
	events, stop, err := s.Subscribe(ctx, "u1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	time.Sleep(10 * cfg.Heartbeat) // several pings
	if err := s.ImageFinished(ctx, finished("quiet", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-events:
		if !ok || e.ImageID != "quiet" {
			t.Errorf("after a quiet second: %+v (open %v), want the event of image quiet", e, ok)
		}
	case <-time.After(2 * time.Second):
		t.Error("no event after a quiet second")
	}
}
