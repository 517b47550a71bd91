package image

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Document is the public JSON form of an image, the one clients read from
// the API and receive in webhooks.
type Document struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Bytes       int64             `json:"bytes"`
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	SHA256      *string           `json:"sha256"`
	Variants    []VariantDocument `json:"variants"`
	// Placeholder (a BlurHash) and DominantColor (#rrggbb) are null until
	// the image is done.
	Placeholder   *string        `json:"placeholder"`
	DominantColor *string        `json:"dominant_color"`
	Error         *ErrorDocument `json:"error"`
	CreatedAt     string         `json:"created_at"`
	UpdatedAt     string         `json:"updated_at"`
}

// VariantDocument is the public JSON form of a variant.
type VariantDocument struct {
	Name        string `json:"name"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Bytes       int64  `json:"bytes"`
	ContentType string `json:"content_type"`
	// URL is the stable delivery URL: the same on every read, it redirects
	// to the format the client's Accept header prefers.
	URL     string           `json:"url"`
	Formats []FormatDocument `json:"formats"`
}

// FormatDocument is one format of a variant.
type FormatDocument struct {
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	// URL is the stable delivery URL of this format.
	URL string `json:"url"`
}

// ErrorDocument says why an image failed.
type ErrorDocument struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewDocument returns the public form of img. Variant URLs are those the
// image carries (see Service.Get); variants are listed only once done.
func NewDocument(img *Image) Document {
	d := Document{
		ID: img.ID, Status: string(img.Status), Filename: img.Filename, ContentType: img.ContentType,
		Bytes: img.Bytes, Width: img.Width, Height: img.Height, Variants: []VariantDocument{},
		CreatedAt: img.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: img.UpdatedAt.UTC().Format(time.RFC3339),
	}
	if img.SHA256 != "" {
		d.SHA256 = &img.SHA256
	}
	if img.Status == StatusDone {
		for _, v := range img.Variants {
			vd := VariantDocument{Name: v.Name, Width: v.Width, Height: v.Height,
				Bytes: v.Bytes, ContentType: v.ContentType, URL: v.URL, Formats: []FormatDocument{}}
			for _, f := range v.formats() {
				vd.Formats = append(vd.Formats, FormatDocument{ContentType: f.ContentType, Bytes: f.Bytes, URL: f.URL})
			}
			d.Variants = append(d.Variants, vd)
		}
		if img.Placeholder != "" {
			d.Placeholder, d.DominantColor = &img.Placeholder, &img.DominantColor
		}
	}
	if img.Status == StatusFailed {
		d.Error = &ErrorDocument{Code: img.ErrorCode, Message: img.ErrorMessage}
	}
	return d
}

// The events an image's final state is announced as, to webhooks and to
// event streams alike.
const (
	EventProcessed = "image.processed"
	EventFailed    = "image.failed"
)

// Event is the announcement of an image reaching done or failed.
type Event struct {
	// ID names the change: the image, its status and its attempt. A
	// change announced twice (delivery is at least once) has one ID.
	ID string
	// Type is EventProcessed or EventFailed.
	Type string
	// Body is the JSON every receiver gets:
	// {"type", "timestamp", "data": the image's Document}.
	Body []byte
}

// NewEvent returns the event of an image that is done or failed, stamped
// at now (to the second).
func NewEvent(img *Image, now time.Time) (Event, error) {
	typ := EventProcessed
	if img.Status == StatusFailed {
		typ = EventFailed
	}
	body, err := json.Marshal(struct {
		Type      string   `json:"type"`
		Timestamp string   `json:"timestamp"`
		Data      Document `json:"data"`
	}{typ, now.UTC().Truncate(time.Second).Format(time.RFC3339), NewDocument(img)})
	if err != nil {
		return Event{}, fmt.Errorf("encode event: %w", err)
	}
	sum := sha256.Sum256([]byte(img.ID + "|" + string(img.Status) + "|" + strconv.Itoa(img.Attempt)))
	id := "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
	return Event{ID: id, Type: typ, Body: body}, nil
}

// Notifiers tells every notifier in turn; the first error stops it. Each
// notifier is idempotent on the event's ID, so the retry that follows an
// error tells them all again safely.
type Notifiers []Notifier

// ImageFinished implements Notifier.
func (ns Notifiers) ImageFinished(ctx context.Context, img *Image) error {
	for _, n := range ns {
		if err := n.ImageFinished(ctx, img); err != nil {
			return err
		}
	}
	return nil
}

// StreamedEvent is an image event as a user's event stream holds it.
type StreamedEvent struct {
	// Position is the event's place in its user's stream: what a client
	// sends back (as Last-Event-ID) to resume after it.
	Position string
	Type     string
	ImageID  string
	// Body is the event's JSON, the same as a webhook's.
	Body []byte
}
