package image

import (
	"log/slog"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// Service is the image domain as the API serves it: upload, read, list,
// delete, reprocess, and the operators' listings. Processor is the
// worker's side.
type Service struct {
	catalog   Catalog
	ledger    Ledger
	blobs     Blobs
	queue     Queue
	inventory Inventory
	stats     QueueStats
	backfills Backfills
	uploads   Uploads
	staging   Staging
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
}

// ServiceDeps are the adapters a Service works with; all are required.
type ServiceDeps struct {
	Catalog Catalog
	// Ledger puts images back to queued for reprocessing.
	Ledger Ledger
	Blobs  Blobs
	Queue  Queue
	// Inventory and QueueStats serve the operators' endpoints.
	Inventory  Inventory
	QueueStats QueueStats
	// Backfills starts the backfill.
	Backfills Backfills
	// Uploads and Staging serve uploads straight to object storage.
	Uploads Uploads
	Staging Staging
}

// NewService returns a Service.
func NewService(d ServiceDeps, cfg Config, log *slog.Logger) *Service {
	return &Service{
		catalog: d.Catalog, ledger: d.Ledger, blobs: d.Blobs, queue: d.Queue,
		inventory: d.Inventory, stats: d.QueueStats, backfills: d.Backfills, uploads: d.Uploads, staging: d.Staging,
		cfg: cfg, log: log, now: time.Now,
	}
}

// unavailable wraps err as a dependency that is down: 503 with Retry-After.
func unavailable(code, message string, err error) error {
	return failure.Wrap(failure.Unavailable, code, message, err)
}
