package eventstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/eventstream"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestHubConnectionLost: when the hub's connection to Redis drops (a
// failover, a restart), the events published until it is back are lost to
// it, so every open subscription ends, for its client to come back and
// replay from the stream; then the hub carries live events again.
func TestHubConnectionLost(t *testing.T) {
	testenv.MustRedis(t, redisDB) // flushes, and skips under -short
	opts, err := redis.ParseURL(testenv.RedisURL(redisDB))
	if err != nil {
		t.Fatal(err)
	}
	// A name of its own, so that only this test's connection is killed
	// on the shared server.
	opts.ClientName = fmt.Sprintf("eventstream-hub-test-%d", time.Now().UnixNano())
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	s := eventstream.New(rdb, eventstream.NewDefaultConfig())
	hub, err := s.StartHub(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	ctx := context.Background()
	pos, err := s.Position(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	events, stop, err := s.Subscribe(ctx, "u1", pos)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	killPubSub(t, rdb, opts.ClientName)
	deadline := time.After(3 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-events:
		case <-deadline:
			t.Fatal("the subscription is still open 3 s after the hub's Redis connection was killed")
		}
	}

	// The hub reconnects by itself: a new subscription gets live events.
	// One made before the hub is back ends at once, so try until one holds.
	for start := time.Now(); ; {
		if time.Since(start) > 10*time.Second {
			t.Fatal("no live event through the hub 10 s after its connection was killed")
		}
		pos, err := s.Position(ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		events, stop, err := s.Subscribe(ctx, "u1", pos)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ImageFinished(ctx, finished(fmt.Sprintf("after-%d", time.Now().UnixNano()), 1)); err != nil {
			t.Fatal(err)
		}
		select {
		case e, ok := <-events:
			stop()
			if ok && strings.HasPrefix(e.ImageID, "after-") {
				return
			}
		case <-time.After(2 * time.Second):
			stop()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killPubSub kills the subscribed connection of the client named name.
func killPubSub(t *testing.T, rdb *redis.Client, name string) {
	t.Helper()
	ctx := context.Background()
	list, err := rdb.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		named := false
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if named && id != "" {
			if err := rdb.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d subscribed connections named %s, want 1:\n%s", killed, name, list)
	}
}

// TestHubConnectionSilent: a connection that stops carrying anything
// without being closed (a peer gone without a reset, a dropped link) is
// found by the heartbeat, and the subscriptions end as when it is lost.
func TestHubConnectionSilent(t *testing.T) {
	testenv.MustRedis(t, redisDB)
	opts, err := redis.ParseURL(testenv.RedisURL(redisDB))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startFreezableProxy(t, opts.Addr)
	opts.Addr = proxy.addr
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	cfg := eventstream.NewDefaultConfig()
	cfg.Heartbeat = 200 * time.Millisecond
	s := eventstream.New(rdb, cfg)
	hub, err := s.StartHub(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	events, stop, err := s.Subscribe(context.Background(), "u1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// Quiet for several heartbeats: pings answered keep it open.
	select {
	case _, ok := <-events:
		t.Fatalf("the subscription ended (%v) on a quiet, healthy connection", ok)
	case <-time.After(5 * cfg.Heartbeat):
	}
	proxy.freeze()
	deadline := time.After(10 * cfg.Heartbeat)
	for open := true; open; {
		select {
		case _, open = <-events:
		case <-deadline:
			t.Fatalf("the subscription is still open %v after its connection went silent", 10*cfg.Heartbeat)
		}
	}
}

// freezableProxy forwards TCP connections to a server until frozen; then
// it forwards nothing more, and closes nothing, until the test ends.
type freezableProxy struct {
	addr   string
	mu     sync.Mutex
	frozen bool
	done   chan struct{}
}

func startFreezableProxy(t *testing.T, upstream string) *freezableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezableProxy{addr: ln.Addr().String(), done: make(chan struct{})}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				down.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, down, up)
			mu.Unlock()
			go p.pipe(down, up)
			go p.pipe(up, down)
		}
	}()
	return p
}

func (p *freezableProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

func (p *freezableProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		frozen := p.frozen
		p.mu.Unlock()
		if frozen {
			<-p.done
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}
