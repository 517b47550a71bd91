package image

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Get returns a user's image with its stable variant URLs; another user's
// image is ErrNotFound, so existence does not leak.
func (s *Service) Get(ctx context.Context, userID, id string) (*Image, error) {
	img, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if err := link(img, s.cfg, s.now()); err != nil {
		return nil, err
	}
	return img, nil
}

func (s *Service) owned(ctx context.Context, userID, id string) (*Image, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrNotFound
	}
	img, err := s.catalog.Image(ctx, id)
	if err != nil {
		return nil, err
	}
	if img.UserID != userID {
		return nil, ErrNotFound
	}
	return img, nil
}

// Cursor is a position in a newest-first listing.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether the cursor is the start of the listing.
func (c Cursor) IsZero() bool { return c.ID == "" }

// Encode returns the opaque string form of the cursor.
func (c Cursor) Encode() string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor parses a cursor from Encode; "" is the zero Cursor.
func DecodeCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), ".")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return Cursor{}, ErrBadCursor
	}
	if _, err := uuid.Parse(id); err != nil {
		return Cursor{}, ErrBadCursor
	}
	// A tampered position outside the years a database DATETIME holds
	// would fail the query instead of listing nothing.
	at := time.UnixMicro(micros).UTC()
	if at.Year() < 1 || at.Year() > 9999 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{CreatedAt: at, ID: id}, nil
}

// Page is one page of a listing.
type Page struct {
	Items []*Image
	Next  *Cursor
}

// MaxPageSize caps the limit of a listing; a larger limit gets this many.
const MaxPageSize = 100

// List returns a page of a user's images, newest first.
func (s *Service) List(ctx context.Context, userID string, after Cursor, limit int) (Page, error) {
	if limit < 1 {
		return Page{}, ErrBadLimit
	}
	limit = min(limit, MaxPageSize)
	items, err := s.catalog.ListImages(ctx, userID, after, limit+1)
	if err != nil {
		return Page{}, err
	}
	return s.page(ctx, items, limit)
}

// page cuts a listing fetched with limit+1 rows into a page and fills in
// its variant URLs.
func (s *Service) page(ctx context.Context, items []*Image, limit int) (Page, error) {
	var page Page
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		page.Next = &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	for _, img := range items {
		if err := link(img, s.cfg, s.now()); err != nil {
			return Page{}, err
		}
	}
	page.Items = items
	return page, nil
}
