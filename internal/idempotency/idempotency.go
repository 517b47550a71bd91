// Package idempotency makes a request safe to repeat: one made again with
// the same Idempotency-Key (a phone retrying an upload whose answer it did
// not get) gets the first one's response instead of doing the work again.
// Keys are per user and kept for a day. A key sent again with a different
// request is refused; one whose first request is still running is refused
// too, as in use (the client retries a moment later).
package idempotency

import (
	"context"
	"errors"
	"time"
	"unicode"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// TTL is how long a key and its response are kept.
const TTL = 24 * time.Hour

// Record is a key's request and, once it finished, its response.
type Record struct {
	// Fingerprint names the request: a hash of what makes two requests
	// the same request (for an upload, the file's SHA-256 and name).
	Fingerprint string
	// Done is set once the response is stored.
	Done     bool
	Status   int
	Body     []byte
	Location string
}

// Store keeps records per user and key.
type Store interface {
	// Claim records a key as in progress for a request, unless the user
	// has a record of it made within the last TTL: then it returns that
	// record and false.
	Claim(ctx context.Context, userID, key, fingerprint string, now time.Time) (Record, bool, error)
	// Complete stores the response of a claimed request.
	Complete(ctx context.Context, userID, key string, r Record) error
	// Release forgets the claim of a request that failed, so that it may
	// be made again.
	Release(ctx context.Context, userID, key string) error
	// Expire deletes the records made before t, returning how many.
	Expire(ctx context.Context, before time.Time) (int64, error)
}

// Errors of Do.
var (
	ErrBadKey    = failure.New(failure.Invalid, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable characters")
	ErrKeyReused = failure.New(failure.Unprocessable, "idempotency_key_reused",
		"this Idempotency-Key was used for a different request")
	ErrInProgress = failure.New(failure.Conflict, "idempotency_key_in_use",
		"a request with this Idempotency-Key is still being processed; retry shortly")
)

// CheckKey reports whether a key is acceptable.
func CheckKey(key string) error {
	if key == "" || len(key) > 255 {
		return ErrBadKey
	}
	for _, r := range key {
		if !unicode.IsPrint(r) {
			return ErrBadKey
		}
	}
	return nil
}

// Do runs fn once per user and key: the first request with a key runs it
// and stores its response; a repeat with the same fingerprint gets that
// response (replayed), one with another fingerprint ErrKeyReused, and one
// while the first still runs ErrInProgress. When fn fails, the key is
// released and nothing is stored: the client may try again.
func Do(ctx context.Context, store Store, userID, key, fingerprint string, fn func() (Record, error)) (r Record, replayed bool, err error) {
	if err := CheckKey(key); err != nil {
		return Record{}, false, err
	}
	prev, claimed, err := store.Claim(ctx, userID, key, fingerprint, time.Now())
	if err != nil {
		return Record{}, false, err
	}
	if !claimed {
		switch {
		case prev.Fingerprint != fingerprint:
			return Record{}, false, ErrKeyReused
		case !prev.Done:
			return Record{}, false, ErrInProgress
		}
		return prev, true, nil
	}
	r, err = fn()
	if err != nil {
		if rerr := store.Release(context.WithoutCancel(ctx), userID, key); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Record{}, false, err
	}
	r.Fingerprint, r.Done = fingerprint, true
	// The work is done: the client gets its response even if storing it
	// fails (a repeat would then be refused as in use, not done twice).
	_ = store.Complete(context.WithoutCancel(ctx), userID, key, r)
	return r, false, nil
}
