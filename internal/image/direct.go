package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// Uploads straight to object storage: the client asks for a place
// (BeginUpload), sends the bytes to S3 itself (one presigned PUT, or the
// parts of a multipart upload), then says it is done (CompleteUpload). The
// API checks the object as it checks a multipart upload's file, and the
// upload becomes an image with the same lifecycle. Unfinished ones expire
// (Processor.Reconcile).

// Errors of direct uploads.
var (
	ErrUploadNotFound   = failure.New(failure.NotFound, "upload_not_found", "upload not found")
	ErrUploadNotPending = failure.New(failure.Conflict, "upload_not_pending", "the upload was completed, aborted or expired")
	ErrUploadExpired    = failure.New(failure.Gone, "upload_expired", "the upload's time ran out; start again")
	ErrUploadCompleting = failure.New(failure.Conflict, "upload_completing", "the upload is being completed; retry shortly")
	ErrUploadIncomplete = failure.New(failure.Conflict, "upload_incomplete", "the upload's bytes have not all arrived")
	ErrSizeMismatch     = failure.New(failure.Unprocessable, "upload_size_mismatch", "the upload's size is not the size declared")
	ErrNotMultipart     = failure.New(failure.Conflict, "not_multipart", "the upload is a single PUT, not a multipart upload")
	ErrBadParts         = failure.New(failure.Invalid, "invalid_parts", "part numbers must be between 1 and the upload's parts")
	ErrTooManyPending   = failure.New(failure.Forbidden, "too_many_pending_uploads",
		fmt.Sprintf("this account has %d unfinished uploads; complete or abort some first", MaxPendingUploads))
)

// MaxPendingUploads bounds a user's unfinished uploads, so that one account
// cannot open multipart uploads without end.
const MaxPendingUploads = 100

// UploadTarget says where a client sends the bytes of a direct upload.
type UploadTarget struct {
	Upload *PendingUpload
	// URL and Headers are the single PUT's, when the upload is one.
	URL     string
	Headers map[string]string
	// Parts is how many parts of PartSize bytes (the last one smaller) a
	// multipart upload has.
	Parts int
	// URLsExpireAt is when presigned URLs handed out now stop working.
	URLsExpireAt time.Time
}

// urlExpiry is the life of a presigned PUT or part URL: long enough for a
// slow link to send a part, short enough that a leaked one soon dies.
const urlExpiry = time.Hour

// BeginUpload starts an upload of size bytes of contentType straight to
// object storage, checking what can be checked before any byte is sent:
// the size (413), the type (415) and the quota (403).
func (s *Service) BeginUpload(ctx context.Context, userID, filename string, size int64, contentType string) (*UploadTarget, error) {
	contentType, ok := s.declaredType(contentType)
	if !ok {
		return nil, ErrUnsupported
	}
	u, err := s.newPendingUpload(ctx, userID, UploadPut, filename, size, contentType)
	if err != nil {
		return nil, err
	}
	now := u.CreatedAt
	t := &UploadTarget{Upload: u, URLsExpireAt: now.Add(min(urlExpiry, s.cfg.UploadExpiry))}
	if size <= s.cfg.PartSize {
		if t.URL, err = s.staging.PresignPut(ctx, u.Key, size, contentType, min(urlExpiry, s.cfg.UploadExpiry)); err != nil {
			return nil, fmt.Errorf("presign put: %w", err)
		}
		t.Headers = map[string]string{"Content-Type": contentType}
	} else {
		u.Kind = UploadMultipart
		if u.S3UploadID, err = s.staging.CreateMultipart(ctx, u.Key, contentType); err != nil {
			return nil, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("create multipart upload: %w", err))
		}
		t.Parts = int((size + s.cfg.PartSize - 1) / s.cfg.PartSize)
	}
	if err := s.uploads.CreateUpload(ctx, u); err != nil {
		if u.Kind == UploadMultipart {
			_ = s.staging.AbortMultipart(context.WithoutCancel(ctx), u.Key, u.S3UploadID)
		}
		return nil, err
	}
	return t, nil
}

// BeginTusUpload admits a tus upload of size bytes: the checks of
// BeginUpload, with the content type optional (tus clients may not send
// one; the bytes are checked at completion). Its tus object id is
// "{user_id}/{id}".
func (s *Service) BeginTusUpload(ctx context.Context, userID, filename string, size int64, contentType string) (*PendingUpload, error) {
	if contentType != "" {
		var ok bool
		if contentType, ok = s.declaredType(contentType); !ok {
			return nil, ErrUnsupported
		}
	}
	u, err := s.newPendingUpload(ctx, userID, UploadTus, filename, size, contentType)
	if err != nil {
		return nil, err
	}
	if err := s.uploads.CreateUpload(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// TusUpload returns a user's tus upload, whatever its state; another
// user's, or one that is not a tus upload, is not found.
func (s *Service) TusUpload(ctx context.Context, userID, id string) (*PendingUpload, error) {
	u, err := s.pendingUpload(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if u.Kind != UploadTus {
		return nil, ErrUploadNotFound
	}
	return u, nil
}

// newPendingUpload checks what can be checked before any byte is sent (the
// size and the quota) and returns the upload to record.
func (s *Service) newPendingUpload(ctx context.Context, userID, kind, filename string, size int64, contentType string) (*PendingUpload, error) {
	if size > s.cfg.MaxUploadBytes {
		return nil, TooLarge(s.cfg.MaxUploadBytes)
	}
	if size < 1 {
		return nil, ErrEmptyFile
	}
	if err := s.checkQuota(ctx, userID, size); err != nil {
		return nil, err
	}
	if n, err := s.uploads.PendingUploads(ctx, userID); err != nil {
		return nil, err
	} else if n >= MaxPendingUploads {
		return nil, ErrTooManyPending
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new upload id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	return &PendingUpload{
		ID: id.String(), UserID: userID, Kind: kind, State: UploadPending, Filename: CleanFilename(filename),
		ContentType: contentType, Bytes: size, PartSize: s.cfg.PartSize, Key: OriginalKey(userID, id.String()),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.UploadExpiry),
	}, nil
}

// declaredType returns the canonical form of a declared content type
// (image/jpeg for " IMAGE/JPG "), and whether it is one of the accepted
// formats (the bytes are checked at completion).
func (s *Service) declaredType(contentType string) (string, bool) {
	f, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(contentType)), "image/")
	if f == "jpg" {
		f = "jpeg"
	}
	for _, a := range s.cfg.AcceptedTypes {
		if ok && f == string(a) {
			return "image/" + f, true
		}
	}
	return "", false
}

// pendingUpload returns a user's upload; another user's is not found.
func (s *Service) pendingUpload(ctx context.Context, userID, id string) (*PendingUpload, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrUploadNotFound
	}
	u, err := s.uploads.Upload(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.UserID != userID {
		return nil, ErrUploadNotFound
	}
	if u.State == UploadPending && !s.now().Before(u.ExpiresAt) {
		return nil, ErrUploadExpired
	}
	return u, nil
}

// SignParts returns presigned URLs for the given parts of a multipart
// upload (1-based), in that order. Each URL is for the part's exact size.
func (s *Service) SignParts(ctx context.Context, userID, id string, numbers []int32) ([]string, time.Time, error) {
	u, err := s.pendingUpload(ctx, userID, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	if u.Kind != UploadMultipart {
		return nil, time.Time{}, ErrNotMultipart
	}
	if u.State != UploadPending {
		return nil, time.Time{}, ErrUploadNotPending
	}
	parts := int32((u.Bytes + u.PartSize - 1) / u.PartSize)
	if len(numbers) == 0 || len(numbers) > 1000 {
		return nil, time.Time{}, ErrBadParts
	}
	expiry := min(urlExpiry, u.ExpiresAt.Sub(s.now()))
	urls := make([]string, len(numbers))
	for i, n := range numbers {
		if n < 1 || n > parts {
			return nil, time.Time{}, ErrBadParts
		}
		size := min(u.PartSize, u.Bytes-int64(n-1)*u.PartSize)
		if urls[i], err = s.staging.PresignPart(ctx, u.Key, u.S3UploadID, n, size, expiry); err != nil {
			return nil, time.Time{}, fmt.Errorf("presign part: %w", err)
		}
	}
	return urls, s.now().Add(expiry), nil
}

// UploadedParts lists the parts of a multipart upload that have arrived,
// so that a client resumes after a dropped connection.
func (s *Service) UploadedParts(ctx context.Context, userID, id string) (*PendingUpload, []Part, error) {
	u, err := s.pendingUpload(ctx, userID, id)
	if err != nil {
		return nil, nil, err
	}
	if u.Kind != UploadMultipart {
		return nil, nil, ErrNotMultipart
	}
	if u.State != UploadPending {
		return nil, nil, ErrUploadNotPending
	}
	parts, err := s.staging.ListParts(ctx, u.Key, u.S3UploadID)
	if err != nil {
		return nil, nil, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("list parts: %w", err))
	}
	return u, parts, nil
}

// AbortUpload gives an upload up and removes what arrived of it.
func (s *Service) AbortUpload(ctx context.Context, userID, id string) error {
	u, err := s.pendingUpload(ctx, userID, id)
	if err != nil {
		return err
	}
	moved, err := s.uploads.MoveUpload(ctx, id, UploadPending, UploadAborted)
	if err != nil {
		return err
	}
	if !moved {
		return ErrUploadNotPending
	}
	return discard(context.WithoutCancel(ctx), s.staging, s.blobs, u)
}

// discard removes the bytes of an upload that will not become an image.
func discard(ctx context.Context, staging Staging, blobs Blobs, u *PendingUpload) error {
	var err error
	switch {
	case u.Kind == UploadMultipart && u.S3UploadID != "":
		err = staging.AbortMultipart(ctx, u.Key, u.S3UploadID)
	case u.Kind == UploadTus:
		err = staging.AbortMultipartUploads(ctx, u.Key)
	}
	if err != nil {
		return unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("abort multipart upload: %w", err))
	}
	if err := blobs.DeletePrefix(ctx, u.Key); err != nil {
		return unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("delete upload: %w", err))
	}
	return nil
}

// CompleteUpload turns an upload whose bytes have arrived into an image:
// for a multipart upload, the parts are put together first (parts may name
// them; by default every part that arrived). The object is read once,
// hashed and checked as an upload's file is (413, 415, 422: the object is
// then deleted and the upload over); a repeat after success returns the
// image again, as existing.
func (s *Service) CompleteUpload(ctx context.Context, userID, id string, parts []Part) (img *Image, existing bool, err error) {
	u, err := s.pendingUpload(ctx, userID, id)
	if err != nil {
		return nil, false, err
	}
	moved, err := s.uploads.MoveUpload(ctx, id, UploadPending, UploadCompleting)
	if err != nil {
		return nil, false, err
	}
	if !moved {
		switch u.State {
		case UploadCompleted:
			img, err := s.Get(ctx, userID, id)
			return img, true, err
		case UploadCompleting:
			return nil, false, ErrUploadCompleting
		}
		return nil, false, ErrUploadNotPending
	}
	img, existing, err = s.finish(ctx, u, parts)
	cleanup := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		if u.Kind == UploadTus {
			if err := s.staging.ClearUploadState(cleanup, u.Key); err != nil {
				// Left beside the original; deleting the image removes it.
				s.log.WarnContext(ctx, "clear tus upload state", "id", id, "err", err)
			}
		}
		_, err = s.uploads.MoveUpload(cleanup, id, UploadCompleting, UploadCompleted)
		return img, existing, err
	case failure.KindOf(err) == failure.Unavailable || errors.Is(err, ErrUploadIncomplete) || errors.Is(err, ErrBadParts):
		// Not the client's doing, not yet, or parts it can name again: it
		// may complete again.
		_, _ = s.uploads.MoveUpload(cleanup, id, UploadCompleting, UploadPending)
	default:
		// The bytes are refused: the upload is over, and its bytes go.
		_, _ = s.uploads.MoveUpload(cleanup, id, UploadCompleting, UploadAborted)
		_ = discard(cleanup, s.staging, s.blobs, u)
	}
	return nil, false, err
}

// finish puts a multipart upload's parts together, then checks and records
// the object. (A tus upload's object is whole already: the tus store put
// its parts together when the last byte arrived.)
func (s *Service) finish(ctx context.Context, u *PendingUpload, parts []Part) (*Image, bool, error) {
	if u.Kind == UploadMultipart {
		arrived, err := s.staging.ListParts(ctx, u.Key, u.S3UploadID)
		if err != nil {
			return nil, false, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("list parts: %w", err))
		}
		if len(parts) == 0 {
			parts = arrived
		}
		var total int64
		for _, p := range arrived {
			total += p.Size
		}
		if total < u.Bytes {
			return nil, false, ErrUploadIncomplete
		}
		if err := s.staging.CompleteMultipart(ctx, u.Key, u.S3UploadID, parts); errors.Is(err, ErrBadParts) {
			return nil, false, failure.Wrap(failure.Invalid, ErrBadParts.Code,
				"the parts named could not be put together (a part missing, out of order, with another ETag, or under 5 MiB but the last)", err)
		} else if err != nil {
			return nil, false, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("complete multipart upload: %w", err))
		}
	}
	return s.recordObject(ctx, u)
}

// recordObject checks the object of an upload that has arrived and records
// it as an image: one pass over its bytes hashes it and runs the upload
// checks.
func (s *Service) recordObject(ctx context.Context, u *PendingUpload) (*Image, bool, error) {
	r, size, err := s.staging.Open(ctx, u.Key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, ErrUploadIncomplete
	}
	if err != nil {
		return nil, false, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("read upload: %w", err))
	}
	defer r.Close()
	switch {
	case size > s.cfg.MaxUploadBytes:
		return nil, false, TooLarge(s.cfg.MaxUploadBytes)
	case size != u.Bytes:
		return nil, false, failure.New(failure.Unprocessable, ErrSizeMismatch.Code,
			fmt.Sprintf("%d bytes arrived; %d were declared", size, u.Bytes))
	}
	hash := sha256.New()
	tee := io.TeeReader(r, hash)
	hdr, err := sniff.Inspect(tee, s.cfg.AcceptedTypes, s.cfg.MaxPixels)
	if err != nil {
		return nil, false, err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, false, unavailable("storage_unavailable", "object storage is unavailable", fmt.Errorf("read upload: %w", err))
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	if s.cfg.Deduplicate {
		img, err := s.catalog.ImageBySHA256(ctx, u.UserID, sum)
		if err == nil && img.Status != StatusFailed {
			if err := s.blobs.DeletePrefix(context.WithoutCancel(ctx), u.Key); err != nil {
				return nil, false, unavailable("storage_unavailable", "object storage is unavailable", err)
			}
			return img, true, link(img, s.cfg, s.now())
		}
	}
	if err := s.checkQuota(ctx, u.UserID, size); err != nil {
		return nil, false, err
	}
	img := s.newImage(u.ID, u.UserID, u.Filename, size, sum, hdr)
	if err := s.record(ctx, context.WithoutCancel(ctx), img); err != nil {
		return nil, false, err
	}
	return img, false, nil
}

// completingGrace is how long past its expiry an upload being completed is
// left to its completion.
const completingGrace = 15 * time.Minute

// expireUploads gives up the uploads whose time ran out, removing what
// arrived of them, and forgets the records of finished uploads a day later.
// An upload caught completing when its time ran out (a crash mid-way) is
// finished by the image it became, if it became one.
func (s *Processor) expireUploads(ctx context.Context, now time.Time) (int, error) {
	if s.uploads == nil {
		return 0, nil
	}
	stale, err := s.uploads.StaleUploads(ctx, now, 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range stale {
		if u.State == UploadCompleting {
			if now.Sub(u.ExpiresAt) < completingGrace {
				continue // a completion that began in time may still be running
			}
			if _, err := s.catalog.Image(ctx, u.ID); err == nil {
				if _, err := s.uploads.MoveUpload(ctx, u.ID, UploadCompleting, UploadCompleted); err != nil {
					return n, err
				}
				continue
			}
		}
		// The bytes go first: should that fail, the upload stays stale and
		// the next round tries again. No completion can begin meanwhile:
		// an expired upload is refused.
		if err := discard(ctx, s.staging, s.blobs, u); err != nil {
			return n, fmt.Errorf("discard upload %s: %w", u.ID, err)
		}
		if _, err := s.uploads.MoveUpload(ctx, u.ID, u.State, UploadExpired); err != nil {
			return n, err
		}
		n++
	}
	if _, err := s.uploads.ForgetUploads(ctx, now.Add(-24*time.Hour)); err != nil {
		return n, err
	}
	return n, nil
}
