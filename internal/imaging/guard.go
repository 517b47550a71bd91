package imaging

/*
#include <stdlib.h>
#include "guard.h"
*/
import "C"

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/imagesvc/imagesvc/internal/image"
)

// guard bounds one decode (guard.h): a progressive JPEG's scans, and the
// time its task may take. It lives in C memory, because the decoder reads
// it from C while the decode runs; a goroutine cancels it when the task's
// context ends, so that a timed-out task frees its worker slot and its CPU
// together, rather than leaving a decode running for minutes after asynq
// gave the slot (and perhaps the retry of the same image) to another task.
type guard struct {
	g    *C.guard
	stop chan struct{}
	done chan struct{}
}

// newGuard returns a guard cancelled when ctx ends; release it.
func newGuard(ctx context.Context, maxScans int) *guard {
	g := &guard{g: (*C.guard)(C.calloc(1, C.sizeof_guard)), stop: make(chan struct{}), done: make(chan struct{})}
	g.g.max_scans = C.int(maxScans)
	go func() {
		defer close(g.done)
		select {
		case <-ctx.Done():
			C.guard_cancel(g.g)
		case <-g.stop:
		}
	}()
	return g
}

// release stops watching the context and frees the guard.
func (g *guard) release() {
	close(g.stop)
	<-g.done
	C.free(unsafe.Pointer(g.g))
}

// c is the guard for a C call; a nil guard (in tests) is none.
func (g *guard) c() *C.guard {
	if g == nil {
		return nil
	}
	return g.g
}

// err says why a decode under the guard stopped, or nil when a path merely
// declined the source (another may take it).
func (g *guard) err(ctx context.Context) error {
	if g == nil {
		return nil
	}
	switch g.g.verdict {
	case C.VERDICT_CORRUPT:
		return undecodable(fmt.Errorf("corrupt JPEG data"))
	case C.VERDICT_TOO_COMPLEX:
		return fmt.Errorf("%w: more than %d scans", image.ErrTooComplex, g.g.max_scans)
	case C.VERDICT_CANCELLED:
		return fmt.Errorf("decode stopped: %w", context.Cause(ctx))
	}
	return nil
}
