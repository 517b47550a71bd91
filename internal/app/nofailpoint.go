//go:build !failpoints

package app

import (
	"log/slog"

	"github.com/imagesvc/imagesvc/internal/image"
)

// withFailpoint returns q: release builds have no failpoints (see
// failpoint.go, built with the failpoints tag for the fault tests).
func withFailpoint(q image.Queue, _ *slog.Logger) image.Queue { return q }
