package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// Upload stores a new image for a user and queues it for processing.
//
// The body is spooled to a temporary file first so that an oversized or
// unsupported upload is rejected before anything is stored. Then the original
// goes to S3, the row is written, and the task is enqueued; when a step fails
// the earlier ones are undone, so a rejected upload leaves nothing behind.
func (s *Service) Upload(ctx context.Context, userID, filename string, body io.Reader) (*Image, error) {
	f, err := os.CreateTemp(s.cfg.TempDir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	n, err := io.Copy(f, io.LimitReader(body, s.cfg.MaxUploadBytes+1))
	if fe := failure.As(err); fe != nil {
		return nil, err // the reader said why (too slow, say)
	}
	if err != nil {
		return nil, failure.Wrap(failure.Invalid, "bad_request", "the upload could not be read", err)
	}
	if n > s.cfg.MaxUploadBytes {
		return nil, TooLarge(s.cfg.MaxUploadBytes)
	}
	if n == 0 {
		return nil, ErrEmptyFile
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spool file: %w", err)
	}
	hdr, err := sniff.Inspect(f, s.cfg.AcceptedTypes, s.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spool file: %w", err)
	}

	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new image id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	img := &Image{
		ID: id.String(), UserID: userID, Status: StatusQueued,
		Filename: CleanFilename(filename), ContentType: hdr.Format.ContentType(), Bytes: n,
		Width: hdr.Width, Height: hdr.Height, CreatedAt: now, UpdatedAt: now,
	}
	// Undo work must finish even if the client has gone away.
	cleanup := context.WithoutCancel(ctx)
	if err := s.blobs.Put(ctx, img.OriginalKey(), f, n, img.ContentType); err != nil {
		// The object may have been stored even though the answer was lost.
		s.undo(cleanup, img, false)
		return nil, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("put original: %w", err))
	}
	if err := s.catalog.CreateImage(ctx, img); err != nil {
		s.undo(cleanup, img, false)
		return nil, unavailable("database_unavailable", "the database is unavailable", fmt.Errorf("insert image: %w", err))
	}
	if err := s.queue.EnqueueProcess(ctx, img.ID); err != nil {
		s.undo(cleanup, img, true)
		return nil, unavailable("queue_unavailable", "the job queue is unavailable", fmt.Errorf("enqueue image: %w", err))
	}
	return img, nil
}

// undo removes what a failed upload stored. If removal fails too, the log
// says so; a row left queued is picked up by the reconciler and processed.
func (s *Service) undo(ctx context.Context, img *Image, row bool) {
	if row {
		if err := s.catalog.DeleteImage(ctx, img.ID); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.ErrorContext(ctx, "undo upload: delete row", "image_id", img.ID, "err", err)
			return // keep the original: the reconciler will process the row
		}
	}
	if err := s.blobs.DeletePrefix(ctx, img.OriginalKey()); err != nil {
		s.log.ErrorContext(ctx, "undo upload: delete original", "image_id", img.ID, "err", err)
	}
}

// CleanFilename keeps the base name of a client-supplied file name, without
// control characters or bidirectional controls (a right-to-left override
// shows "invoice\u202Egpj.exe" as "invoiceexe.jpg"), at most 255 bytes of
// valid UTF-8.
func CleanFilename(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	if name == "." || name == "/" {
		name = ""
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return strings.TrimSpace(name)
}
