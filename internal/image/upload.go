package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Upload stores a new image for a user and queues it for processing: Spool,
// then Store. existing reports an upload that deduplication answered with
// an image stored before.
func (s *Service) Upload(ctx context.Context, userID, filename string, body io.Reader) (img *Image, existing bool, err error) {
	sp, err := s.Spool(ctx, body)
	if err != nil {
		return nil, false, err
	}
	defer sp.Close()
	return s.Store(ctx, userID, filename, sp)
}

// Spooled is an upload read into a temporary file and checked, not stored
// yet; Close removes the file.
type Spooled struct {
	file   *os.File
	Size   int64
	SHA256 string
	Header sniff.Header
}

// Close removes the spool file.
func (sp *Spooled) Close() {
	sp.file.Close()
	os.Remove(sp.file.Name())
}

// Spool reads an upload into a temporary file, hashing it as it comes, and
// checks it (size, type, pixels, scans), so that an oversized or
// unsupported upload is refused before anything is stored.
func (s *Service) Spool(ctx context.Context, body io.Reader) (_ *Spooled, err error) {
	f, err := os.CreateTemp(s.cfg.TempDir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	sp := &Spooled{file: f}
	defer func() {
		if err != nil {
			sp.Close()
		}
	}()
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hash), io.LimitReader(body, s.cfg.MaxUploadBytes+1))
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
	sp.Size, sp.SHA256 = n, hex.EncodeToString(hash.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spool file: %w", err)
	}
	if sp.Header, err = sniff.Inspect(f, s.cfg.AcceptedTypes, s.cfg.MaxPixels); err != nil {
		return nil, err
	}
	return sp, nil
}

// ErrQuotaExceeded is an upload over the user's quota of images or bytes.
var ErrQuotaExceeded = failure.New(failure.Forbidden, "quota_exceeded", "the account's storage quota is used up")

// Store stores a spooled upload: the original goes to S3, the row is
// written and the task enqueued; when a step fails the earlier ones are
// undone, so a rejected upload leaves nothing behind. With deduplication on,
// a file the user stored already returns that image (existing).
func (s *Service) Store(ctx context.Context, userID, filename string, sp *Spooled) (img *Image, existing bool, err error) {
	if s.cfg.Deduplicate {
		img, err := s.catalog.ImageBySHA256(ctx, userID, sp.SHA256)
		if err == nil && img.Status != StatusFailed {
			if err := link(img, s.cfg, s.now()); err != nil {
				return nil, false, err
			}
			return img, true, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, false, err
		}
	}
	if err := s.checkQuota(ctx, userID, sp.Size); err != nil {
		return nil, false, err
	}
	if _, err := sp.file.Seek(0, io.SeekStart); err != nil {
		return nil, false, fmt.Errorf("rewind spool file: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, fmt.Errorf("new image id: %w", err)
	}
	img = s.newImage(id.String(), userID, filename, sp.Size, sp.SHA256, sp.Header)
	// Undo work must finish even if the client has gone away.
	cleanup := context.WithoutCancel(ctx)
	if err := s.blobs.Put(ctx, img.OriginalKey(), sp.file, sp.Size, img.ContentType); err != nil {
		// The object may have been stored even though the answer was lost.
		s.undo(cleanup, img, false)
		return nil, false, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("put original: %w", err))
	}
	if err := s.record(ctx, cleanup, img); err != nil {
		return nil, false, err
	}
	return img, false, nil
}

// newImage is the row of an original about to be recorded.
func (s *Service) newImage(id, userID, filename string, size int64, sha string, hdr sniff.Header) *Image {
	now := s.now().UTC().Truncate(time.Microsecond)
	return &Image{
		ID: id, UserID: userID, Status: StatusQueued,
		Filename: CleanFilename(filename), ContentType: hdr.Format.ContentType(), Bytes: size, SHA256: sha,
		Width: hdr.Width, Height: hdr.Height, CreatedAt: now, UpdatedAt: now,
	}
}

// record writes the row of an image whose original is stored, and enqueues
// it; a failure undoes both (with cleanup, a context that outlives the
// client).
func (s *Service) record(ctx, cleanup context.Context, img *Image) error {
	if err := s.catalog.CreateImage(ctx, img); err != nil {
		s.undo(cleanup, img, false)
		if failure.KindOf(err) == failure.Unavailable {
			return err
		}
		return unavailable("database_unavailable", "the database is unavailable", fmt.Errorf("insert image: %w", err))
	}
	if err := s.queue.EnqueueProcess(ctx, img.ID); err != nil {
		s.undo(cleanup, img, true)
		return unavailable("queue_unavailable", "the job queue is unavailable", fmt.Errorf("enqueue image: %w", err))
	}
	return nil
}

// checkQuota refuses an upload of size bytes that would take the user
// over their quota. (Uploads in flight at once can each pass: the overrun
// is bounded by a user's share of the upload slots.)
func (s *Service) checkQuota(ctx context.Context, userID string, size int64) error {
	if s.cfg.QuotaImages == 0 && s.cfg.QuotaBytes == 0 {
		return nil
	}
	u, err := s.catalog.Usage(ctx, userID)
	if err != nil {
		return err
	}
	if s.cfg.QuotaImages > 0 && u.Images+1 > s.cfg.QuotaImages || s.cfg.QuotaBytes > 0 && u.Bytes+size > s.cfg.QuotaBytes {
		return failure.New(failure.Forbidden, ErrQuotaExceeded.Code, fmt.Sprintf(
			"the account stores %d images and %d bytes; its quota is %s", u.Images, u.Bytes, s.quotaText()))
	}
	return nil
}

func (s *Service) quotaText() string {
	var parts []string
	if s.cfg.QuotaImages > 0 {
		parts = append(parts, fmt.Sprintf("%d images", s.cfg.QuotaImages))
	}
	if s.cfg.QuotaBytes > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes", s.cfg.QuotaBytes))
	}
	return strings.Join(parts, " and ")
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
