//go:build failpoints

package app

import (
	"context"
	"log/slog"
	"os"

	"github.com/imagesvc/imagesvc/internal/image"
)

// FailpointCrashAfterCommit (IMAGESVC_FAILPOINT=crash-after-commit) makes
// the API exit between writing an image's row and enqueueing its task: the
// crash the reconciler repairs. Only binaries built with the failpoints tag
// (the fault tests' builds) have it.
const FailpointCrashAfterCommit = "crash-after-commit"

// withFailpoint wraps the API's queue in the failpoint that
// IMAGESVC_FAILPOINT names, if any.
func withFailpoint(q image.Queue, log *slog.Logger) image.Queue {
	if os.Getenv("IMAGESVC_FAILPOINT") != FailpointCrashAfterCommit {
		return q
	}
	return crashBeforeEnqueue{q, log}
}

type crashBeforeEnqueue struct {
	image.Queue
	log *slog.Logger
}

func (c crashBeforeEnqueue) EnqueueProcess(ctx context.Context, imageID string) error {
	c.log.ErrorContext(ctx, "failpoint: crashing between commit and enqueue", "image_id", imageID)
	os.Exit(3)
	return nil
}
