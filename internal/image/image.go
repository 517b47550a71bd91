// Package image is the domain of imagesvc: what an image is, the lifecycle it
// goes through, and the two services that move it along, one file per job:
// the API's Service (upload.go, query.go, delete.go, admin.go) and the
// worker's Processor (process.go, reconcile.go).
//
// It declares the small interfaces it needs from the outside world
// (ports.go: Catalog, Ledger, Blobs, Queue, Resizer, Notifier…) and imports
// no adapter; internal/gormstore, internal/s3store, internal/queue,
// internal/imaging and internal/webhook implement them, and internal/mock
// fakes them for the unit tests. The header checks of uploads are package
// sniff.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
)

// Status is where an image is in its lifecycle:
// queued → processing → done | failed.
type Status string

// The statuses of an image.
const (
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusDone       Status = "done"
	StatusFailed     Status = "failed"
)

// Image is one uploaded source image and, once processed, its variants.
type Image struct {
	ID          string
	UserID      string
	Status      Status
	Filename    string
	ContentType string
	Bytes       int64
	Width       int
	Height      int
	// SHA256 is the hex SHA-256 of the original, "" for an image stored
	// before it was computed.
	SHA256   string
	Variants []Variant
	// ErrorCode and ErrorMessage say why the image failed; empty otherwise.
	ErrorCode    string
	ErrorMessage string
	// Attempt counts claims by workers; it fences status updates so that a
	// worker whose lease expired cannot overwrite a newer worker's result.
	Attempt    int
	LeaseUntil *time.Time
	// Crashes counts the claims that found the image still processing: an
	// attempt that never finished (its worker killed, or stuck past the
	// lease).
	Crashes int
	// Placeholder is a BlurHash of the image and DominantColor its most
	// common colour (#rrggbb), both made with the variants; empty before.
	Placeholder   string
	DominantColor string
	// Profile names the variant set the variants were made with (see
	// Config.Profile); the backfill re-processes images of another one.
	Profile   string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OriginalKey is the object key of the uploaded original.
func (img *Image) OriginalKey() string {
	return OriginalKey(img.UserID, img.ID)
}

// OriginalKey is the object key of an original: originals/{user_id}/{image_id}.
func OriginalKey(userID, imageID string) string {
	return "originals/" + userID + "/" + imageID
}

// VariantPrefix is the key prefix under which every variant of an image lives.
func VariantPrefix(userID, imageID string) string {
	return "variants/" + userID + "/" + imageID + "/"
}

// VariantKey is the object key of a variant in one format:
// variants/{user_id}/{image_id}/{name}-{hash}.{ext}, where hash is a short
// hash of the object's bytes. A key names one content for ever, so the
// object can be cached as immutable; a reprocessing that changes the bytes
// writes another key.
func VariantKey(userID, imageID, name string, data []byte, ext string) string {
	sum := sha256.Sum256(data)
	return VariantPrefix(userID, imageID) + name + "-" + hex.EncodeToString(sum[:6]) + "." + ext
}

// VariantCacheControl is the Cache-Control of every variant object: its key
// changes with its content, so it never changes under a cache.
const VariantCacheControl = "public, max-age=31536000, immutable"

// Variant is one resized rendition of an image stored in S3, in one or
// more formats. Its own ContentType, Bytes and Key are those of its base
// format (JPEG, or PNG for a source with alpha, unless OUTPUT_FORMAT says
// otherwise).
type Variant struct {
	Name        string
	Width       int
	Height      int
	Bytes       int64
	ContentType string
	Key         string
	// Formats are the encodings of the variant, the base first. A variant
	// recorded before formats existed has none: its base is its only one.
	Formats []VariantFormat
	// URL is the stable delivery URL, filled in when the image is read: it
	// does not change between reads and chooses the format from the
	// client's Accept header.
	URL string
}

// VariantFormat is a variant in one format.
type VariantFormat struct {
	ContentType string
	Bytes       int64
	Key         string
	// URL is the stable delivery URL of this format, filled in when the
	// image is read.
	URL string
}

// formats returns the variant's formats, the base alone for a variant
// recorded before formats existed.
func (v *Variant) formats() []VariantFormat {
	if len(v.Formats) > 0 {
		return v.Formats
	}
	return []VariantFormat{{ContentType: v.ContentType, Bytes: v.Bytes, Key: v.Key}}
}

// Keys returns the object keys of every format of the variants.
func Keys(variants []Variant) []string {
	var keys []string
	for i := range variants {
		for _, f := range variants[i].formats() {
			keys = append(keys, f.Key)
		}
	}
	return keys
}

// Spec is a named bounding box: a variant is the source scaled to fit inside
// it, aspect ratio kept, never enlarged.
type Spec struct {
	Name   string
	Width  int
	Height int
}

// Fit returns the size of a w x h image scaled to fit inside the box,
// keeping its aspect ratio and never enlarging it. Neither side goes below 1.
func (s Spec) Fit(w, h int) (int, int) {
	if w <= s.Width && h <= s.Height {
		return w, h
	}
	// Compare w/s.Width with h/s.Height without floating point: the side that
	// overflows the box the most decides the scale.
	if int64(w)*int64(s.Height) >= int64(h)*int64(s.Width) {
		nh := roundDiv(int64(h)*int64(s.Width), int64(w))
		return s.Width, max(1, int(nh))
	}
	nw := roundDiv(int64(w)*int64(s.Height), int64(h))
	return max(1, int(nw)), s.Height
}

func roundDiv(a, b int64) int64 { return (2*a + b) / (2 * b) }

// ParseSpecs parses a VARIANTS setting such as
// "small:300x300,medium:1024x1024,large:2048x2048".
func ParseSpecs(s string) ([]Spec, error) {
	var specs []Spec
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, box, ok := strings.Cut(item, ":")
		if !ok || !validName(name) {
			return nil, fmt.Errorf("variant %q: want name:WIDTHxHEIGHT with a name of a-z, 0-9, _ or -", item)
		}
		ws, hs, ok := strings.Cut(box, "x")
		w, errW := strconv.Atoi(ws)
		h, errH := strconv.Atoi(hs)
		if !ok || errW != nil || errH != nil || w < 1 || h < 1 || w > 16384 || h > 16384 {
			return nil, fmt.Errorf("variant %q: box must be WIDTHxHEIGHT between 1 and 16384", item)
		}
		if seen[name] {
			return nil, fmt.Errorf("variant %q: name used twice", name)
		}
		seen[name] = true
		specs = append(specs, Spec{Name: name, Width: w, Height: h})
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("no variants")
	}
	return specs, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Errors the image domain returns to clients.
var (
	ErrNotFound  = failure.New(failure.NotFound, "not_found", "image not found")
	ErrNoFile    = failure.New(failure.Invalid, "file_missing", "multipart field \"file\" is required")
	ErrEmptyFile = failure.New(failure.Invalid, "file_empty", "the uploaded file is empty")
	ErrBadCursor = failure.New(failure.Invalid, "invalid_cursor", "cursor is malformed")
	ErrBadLimit  = failure.New(failure.Invalid, "invalid_limit", "limit must be a positive integer")
	// ErrUndecodable is returned by a Resizer when the source cannot be
	// decoded; processing then fails at once, without retries.
	ErrUndecodable = failure.New(failure.Unprocessable, "undecodable_image", "the image data could not be decoded")
	// ErrUnsupported, ErrTooManyPixels and ErrTooComplex are the header
	// checks' (package sniff), which uploads and processing both run.
	ErrUnsupported   = sniff.ErrUnsupported
	ErrTooManyPixels = sniff.ErrTooManyPixels
	ErrTooComplex    = sniff.ErrTooComplex
)

// TooLarge returns the error for an upload over limit bytes.
func TooLarge(limit int64) error {
	return failure.New(failure.TooLarge, "file_too_large",
		fmt.Sprintf("the upload is larger than %d bytes", limit))
}
