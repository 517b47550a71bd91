// Package webhook tells subscribers when their images are done or failed:
// subscriptions, Standard Webhooks 1.0 signing, an outbox of events and
// deliveries, retries over about a day, and delivery that refuses internal
// addresses at creation and at every connection.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
)

// Event types a subscription can list.
const (
	EventImageProcessed = image.EventProcessed
	EventImageFailed    = image.EventFailed
	EventPing           = "webhook.ping"
)

// Subscription is a user's webhook endpoint.
type Subscription struct {
	ID     string
	UserID string
	URL    string
	Events []string
	Secret string
	// PreviousSecret still signs (as a second signature) until
	// PreviousSecretUntil, so that receivers can roll over.
	PreviousSecret      string
	PreviousSecretUntil *time.Time
	// DisabledAt is set when deliveries stop: a 410 Gone, or failures for
	// longer than the configured period. DisabledReason says which.
	DisabledAt     *time.Time
	DisabledReason string
	// FailingSince is the first failed attempt since the last success.
	FailingSince *time.Time
	CreatedAt    time.Time
}

// Wants reports whether the subscription is active and lists the event type.
func (s *Subscription) Wants(eventType string) bool {
	if s.DisabledAt != nil {
		return false
	}
	for _, e := range s.Events {
		if e == eventType {
			return true
		}
	}
	return false
}

// Event is one state change of an image, as sent to subscribers.
type Event struct {
	ID        string // the webhook-id header: the same on every retry
	UserID    string
	ImageID   string
	Type      string
	Payload   []byte // the JSON body sent
	CreatedAt time.Time
}

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed"
)

// Delivery is one event for one subscription, with its attempts so far.
type Delivery struct {
	ID             string
	EventID        string
	SubscriptionID string
	EventType      string
	State          string
	Attempts       int
	LastStatus     int
	LastError      string
	LastAttemptAt  *time.Time
	NextAttemptAt  *time.Time
	CreatedAt      time.Time
}

// Subscriptions stores subscriptions.
type Subscriptions interface {
	// CreateSubscription stores s unless its user has max subscriptions
	// already (ErrTooMany), deciding that atomically.
	CreateSubscription(ctx context.Context, s *Subscription, max int) error
	// Subscriptions lists a user's subscriptions, oldest first.
	Subscriptions(ctx context.Context, userID string) ([]*Subscription, error)
	// Subscription returns one, or ErrNotFound.
	Subscription(ctx context.Context, id string) (*Subscription, error)
	// SaveSubscription writes back secret, disabled and failing fields.
	SaveSubscription(ctx context.Context, s *Subscription) error
	DeleteSubscription(ctx context.Context, id string) error
}

// Outbox stores events and their deliveries.
type Outbox interface {
	// AddEvent stores the event and its deliveries unless an event with its
	// id exists already; either way it returns the event's deliveries.
	AddEvent(ctx context.Context, e *Event, deliveries []*Delivery) ([]*Delivery, error)
	// Delivery returns a delivery with its event, or ErrNotFound.
	Delivery(ctx context.Context, id string) (*Delivery, *Event, error)
	SaveDelivery(ctx context.Context, d *Delivery) error
	// Deliveries lists a subscription's deliveries, newest first.
	Deliveries(ctx context.Context, subscriptionID string, limit int) ([]*Delivery, error)
	// DueDeliveries lists pending deliveries due before t.
	DueDeliveries(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// Queue schedules delivery attempts.
type Queue interface {
	// EnqueueDelivery schedules an attempt after delay; one already
	// scheduled for the delivery is not an error.
	EnqueueDelivery(ctx context.Context, deliveryID string, delay time.Duration) error
}

// Errors clients see.
var (
	ErrNotFound         = failure.New(failure.NotFound, "not_found", "webhook not found")
	ErrDeliveryNotFound = failure.New(failure.NotFound, "not_found", "delivery not found")
	ErrBadURL           = failure.New(failure.Unprocessable, "invalid_url", "url must be an http or https URL of at most 2048 characters, without credentials")
	ErrForbiddenURL     = failure.New(failure.Unprocessable, "forbidden_url", "url resolves to an internal address (loopback, private, link-local or similar); a server for local development may set WEBHOOK_ALLOW_PRIVATE=true")
	ErrUnresolvedURL    = failure.New(failure.Unprocessable, "unresolvable_url", "the host of url does not resolve")
	ErrBadEvents        = failure.New(failure.Unprocessable, "invalid_events", "events must list one or more of image.processed, image.failed")
	ErrTooMany          = failure.New(failure.Unprocessable, "too_many_webhooks", "this account has the maximum number of webhooks")
)

// RetryError asks for another attempt after a delay.
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string { return "retry in " + e.After.String() + ": " + e.Err.Error() }

func (e *RetryError) Unwrap() error { return e.Err }

// NewSecret returns a signing secret: "whsec_" and the base64 of 32 random
// bytes.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the Standard Webhooks signature "v1,<base64>" of a message:
// HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the decoded secret.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", errors.New("malformed secret")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// eventID is deterministic: one image reaching one state on one attempt is
// one event, however many times the worker reports it.
func deliveryID(eventID, subscriptionID string) string {
	return "dlv_" + digest(eventID, subscriptionID)
}

func digest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "|")))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}
