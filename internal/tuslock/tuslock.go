// Package tuslock keeps tusd's upload locks in Redis, so that the requests
// of one tus upload run one at a time across every API replica: a client
// resuming on another replica while its old PATCH is still being read there
// must not write the same parts twice.
//
// tusd ships only a locker in memory (one process) and one on a shared
// file system; this one is bsm/redislock (SET NX with a token, refreshed
// while held) plus tusd's release request: a request that wants a held
// lock sets a flag the holder checks, and the holder ends its request
// (tusd saves what it read) so that the newcomer gets the lock at once.
package tuslock

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
	"github.com/tus/tusd/v2/pkg/handler"
)

// Locker hands out the locks of tus uploads.
type Locker struct {
	rdb    redis.UniversalClient
	locks  *redislock.Client
	prefix string
	// ttl is how long a lock outlives a holder that died.
	ttl time.Duration
	// poll is how often a holder checks for a release request, and a
	// waiter tries again.
	poll time.Duration
}

// New returns a Locker on rdb whose keys start with prefix.
func New(rdb redis.UniversalClient, prefix string) *Locker {
	return &Locker{rdb: rdb, locks: redislock.New(rdb), prefix: prefix, ttl: 10 * time.Second, poll: 200 * time.Millisecond}
}

// UseIn makes composer's uploads use these locks.
func (l *Locker) UseIn(composer *handler.StoreComposer) { composer.UseLocker(l) }

// NewLock implements handler.Locker.
func (l *Locker) NewLock(id string) (handler.Lock, error) {
	return &lock{l: l, key: l.prefix + "lock:" + id, release: l.prefix + "release:" + id}, nil
}

type lock struct {
	l            *Locker
	key, release string
	held         *redislock.Lock
	stop         context.CancelFunc
	done         sync.WaitGroup
}

// Lock implements handler.Lock: it waits for the lock until ctx ends,
// asking its holder to let go.
func (k *lock) Lock(ctx context.Context, requestRelease func()) error {
	for {
		held, err := k.l.locks.Obtain(ctx, k.key, k.l.ttl, nil)
		if err == nil {
			k.held = held
			break
		}
		if !errors.Is(err, redislock.ErrNotObtained) {
			return err
		}
		if err := k.l.rdb.Set(ctx, k.release, "1", k.l.ttl).Err(); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return handler.ErrLockTimeout
		case <-time.After(k.l.poll):
		}
	}
	// A release request from before this holder is not for it.
	k.l.rdb.Del(ctx, k.release)
	keep, stop := context.WithCancel(context.WithoutCancel(ctx))
	k.stop = stop
	k.done.Go(func() { k.keep(keep, requestRelease) })
	return nil
}

// keep refreshes the lock while it is held and passes a release request on
// to the holder, once.
func (k *lock) keep(ctx context.Context, requestRelease func()) {
	refresh := time.NewTicker(k.l.ttl / 3)
	defer refresh.Stop()
	poll := time.NewTicker(k.l.poll)
	defer poll.Stop()
	asked := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			// Should this fail, the lock may lapse: tusd's store then still
			// refuses a write at a wrong offset.
			_ = k.held.Refresh(ctx, k.l.ttl, nil)
		case <-poll.C:
			if asked {
				continue
			}
			if n, err := k.l.rdb.Exists(ctx, k.release).Result(); err == nil && n > 0 {
				asked = true
				requestRelease()
			}
		}
	}
}

// Unlock implements handler.Lock.
func (k *lock) Unlock() error {
	if k.held == nil {
		return nil
	}
	k.stop()
	k.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := k.held.Release(ctx)
	k.held = nil
	if errors.Is(err, redislock.ErrLockNotHeld) {
		return nil // it lapsed; nobody else's lock was touched
	}
	return err
}
