package image

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// What an account holds in the image domain: its usage against the quota
// (GET /v1/account) and, when the account is deleted, the removal of it
// all (Purger; auth.Accounts orders the whole deletion).

// UsageReport is what a user stores against the quota.
type UsageReport struct {
	// Stored counts the images and their originals' bytes: what the quota
	// counts.
	Stored Usage
	// PendingUploads counts the direct uploads begun and not yet
	// completed, aborted or expired.
	PendingUploads int
	// Quota is Config.QuotaImages and QuotaBytes; 0 is no bound.
	Quota Usage
}

// Usage returns what a user stores against the quota.
func (s *Service) Usage(ctx context.Context, userID string) (UsageReport, error) {
	u, err := s.catalog.Usage(ctx, userID)
	if err != nil {
		return UsageReport{}, err
	}
	pending, err := s.uploads.PendingUploads(ctx, userID)
	if err != nil {
		return UsageReport{}, err
	}
	return UsageReport{Stored: u, PendingUploads: pending,
		Quota: Usage{Images: s.cfg.QuotaImages, Bytes: s.cfg.QuotaBytes}}, nil
}

// UserPrefixes are the key prefixes under which every object of a user
// lives: originals (and direct uploads, which land at their image's
// original key) and variants.
func UserPrefixes(userID string) []string {
	return []string{"originals/" + userID + "/", "variants/" + userID + "/"}
}

// Holdings are the rows of what a user stores, as removing an account
// needs them.
type Holdings interface {
	// UnfinishedUploads lists a user's uploads pending or completing.
	UnfinishedUploads(ctx context.Context, userID string) ([]*PendingUpload, error)
	// MoveUpload is Uploads.MoveUpload.
	MoveUpload(ctx context.Context, id, from, to string) (bool, error)
	// DeleteUserImages deletes up to limit of a user's image rows, with
	// their variant rows, and says how many it deleted.
	DeleteUserImages(ctx context.Context, userID string, limit int) (int, error)
}

// Purger removes everything a user stores in the image domain.
type Purger struct {
	holdings Holdings
	staging  Staging
	blobs    Blobs
}

// NewPurger returns a Purger.
func NewPurger(h Holdings, staging Staging, blobs Blobs) *Purger {
	return &Purger{holdings: h, staging: staging, blobs: blobs}
}

// PurgeUser removes a user's unfinished uploads (multipart uploads aborted,
// bytes deleted), image rows and then every object under the user's
// prefixes (UserPrefixes). Each step can be repeated, so a call after one
// that stopped finishes the job.
//
// It is called for an account already closed (no new request of the user
// is accepted), but a request running since before may still store an
// object or a row meanwhile. Rows go before objects for that reason: the
// objects are found by prefix, not through the rows, so an object stored
// before the sweep goes with it, and a row written after the row step is
// seen by the account's final step, which then runs the purge again. (The
// other order would delete the row of an object stored after the sweep.)
func (p *Purger) PurgeUser(ctx context.Context, userID string) error {
	if userID == "" || strings.Contains(userID, "/") {
		return errBadUserID
	}
	uploads, err := p.holdings.UnfinishedUploads(ctx, userID)
	if err != nil {
		return fmt.Errorf("list unfinished uploads: %w", err)
	}
	for _, u := range uploads {
		// The bytes first (a multipart upload's parts are not objects
		// until it is completed: only aborting removes them); should that
		// fail, the upload stays unfinished and the next call tries again.
		if err := discard(ctx, p.staging, p.blobs, u); err != nil {
			return fmt.Errorf("discard upload %s: %w", u.ID, err)
		}
		if _, err := p.holdings.MoveUpload(ctx, u.ID, u.State, UploadAborted); err != nil {
			return fmt.Errorf("abort upload %s: %w", u.ID, err)
		}
	}
	for {
		n, err := p.holdings.DeleteUserImages(ctx, userID, 500)
		if err != nil {
			return fmt.Errorf("delete image rows: %w", err)
		}
		if n == 0 {
			break
		}
	}
	for _, prefix := range UserPrefixes(userID) {
		if err := p.blobs.DeletePrefix(ctx, prefix); err != nil {
			return fmt.Errorf("delete objects under %s: %w", prefix, err)
		}
	}
	return nil
}

// errBadUserID guards the prefixes PurgeUser deletes under: they must name
// one user's objects and nobody else's.
var errBadUserID = errors.New("purge: the user id is empty or has a slash")
