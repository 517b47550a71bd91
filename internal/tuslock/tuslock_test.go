package tuslock_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/tuslock"
)

// redisDB is this package's Redis database (see testenv.RedisURL).
const redisDB = 7

// TestLockAcrossReplicas: two lockers on one Redis stand for two API
// replicas. The second request for an upload asks the first to let go and
// gets the lock when it does; one that is not let go times out; locks of
// other uploads are independent.
func TestLockAcrossReplicas(t *testing.T) {
	rdb := testenv.MustRedis(t, redisDB)
	a, b := tuslock.New(rdb, "test:"), tuslock.New(rdb, "test:")
	ctx := context.Background()

	held, _ := a.NewLock("user/upload-1")
	var asked atomic.Int32
	released := make(chan struct{})
	if err := held.Lock(ctx, func() {
		asked.Add(1)
		// The holder ends its request, as tusd's PATCH does.
		go func() {
			time.Sleep(100 * time.Millisecond)
			held.Unlock()
			close(released)
		}()
	}); err != nil {
		t.Fatal(err)
	}

	other, _ := b.NewLock("user/upload-2")
	if err := other.Lock(ctx, func() { t.Error("a lock of another upload was asked to let go") }); err != nil {
		t.Fatalf("lock of another upload: %v", err)
	}
	defer other.Unlock()

	second, _ := b.NewLock("user/upload-1")
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := second.Lock(wait, func() {}); err != nil {
		t.Fatalf("second replica's lock: %v, want it once the first let go", err)
	}
	<-released
	if asked.Load() != 1 {
		t.Errorf("the holder was asked to let go %d times, want 1", asked.Load())
	}
	t.Logf("second replica got the lock after %v", time.Since(start))

	// A holder that does not let go: the waiter gives up at its deadline.
	third, _ := a.NewLock("user/upload-1")
	short, cancel2 := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel2()
	if err := third.Lock(short, func() {}); !errors.Is(err, tusd.ErrLockTimeout) {
		t.Errorf("lock held elsewhere, 700 ms deadline: %v, want ErrLockTimeout", err)
	}
	if err := second.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := third.Lock(ctx, func() {}); err != nil {
		t.Errorf("lock after its release: %v", err)
	}
	third.Unlock()
}

// TestDeadHoldersLockRunsOut: a replica that died holding a lock (no
// Unlock, no refresh) holds it no longer than the lock's time to live.
func TestDeadHoldersLockRunsOut(t *testing.T) {
	rdb := testenv.MustRedis(t, redisDB)
	ctx := context.Background()
	// The dead replica's lock, as its keeper last refreshed it.
	if err := rdb.Set(ctx, "test:lock:user/upload-9", "dead-token", 1500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	l, _ := tuslock.New(rdb, "test:").NewLock("user/upload-9")
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := l.Lock(wait, func() {}); err != nil {
		t.Fatalf("lock of a dead holder's upload: %v, want it after the time to live", err)
	}
	defer l.Unlock()
	if d := time.Since(start); d < time.Second {
		t.Errorf("got the lock after %v, before the dead holder's lock ran out", d)
	}
}
