package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/imagesvc/imagesvc/internal/image"
)

// Config holds the webhook settings.
type Config struct {
	// AllowPrivate lets URLs reach internal addresses (development, tests).
	AllowPrivate bool
	// MaxPerUser bounds the subscriptions of one user.
	MaxPerUser int
	// Schedule is the delay before each retry; its length is the number of
	// retries, after which the delivery has failed.
	Schedule []time.Duration
	// DisableAfter disables a subscription whose deliveries have all failed
	// for this long.
	DisableAfter time.Duration
	// SecretOverlap is how long a rotated-out secret keeps signing.
	SecretOverlap time.Duration
	// StaleAfter is how long a due delivery may wait before the reconciler
	// enqueues it again.
	StaleAfter time.Duration
	Version    string
}

// NewDefaultConfig returns retries after about 5 s, 5 min, 30 min, 2 h, 5 h
// and 10 h (some 18 hours in all).
func NewDefaultConfig() Config {
	return Config{
		MaxPerUser: 10,
		Schedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
			2 * time.Hour, 5 * time.Hour, 10 * time.Hour},
		DisableAfter:  24 * time.Hour,
		SecretOverlap: 24 * time.Hour,
		StaleAfter:    2 * time.Minute,
		Version:       "1",
	}
}

// ParseSchedule parses "5s,5m,30m,2h,5h,10h".
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("retry schedule %q: want durations such as 5s,5m,30m", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// Observer receives delivery measurements.
type Observer interface {
	Delivered(result string, d time.Duration)
}

// Delivery results as the Observer receives them.
const (
	ResultSuccess = "success"
	ResultRetry   = "retry"
	ResultFailed  = "failed"
	ResultGone    = "gone"
)

// Service manages subscriptions and delivers events.
type Service struct {
	subs   Subscriptions
	outbox Outbox
	queue  Queue
	client *Client
	obs    Observer
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
}

// NewService returns a Service. obs may be nil.
func NewService(subs Subscriptions, outbox Outbox, queue Queue, cfg Config, obs Observer, log *slog.Logger) *Service {
	if obs == nil {
		obs = nopObserver{}
	}
	return &Service{subs: subs, outbox: outbox, queue: queue, client: NewClient(cfg.AllowPrivate, cfg.Version),
		obs: obs, cfg: cfg, log: log, now: time.Now}
}

type nopObserver struct{}

func (nopObserver) Delivered(string, time.Duration) {}

var _ image.Notifier = (*Service)(nil)

// Create adds a subscription and returns it with its secret, which is shown
// only this once.
func (s *Service) Create(ctx context.Context, userID, rawURL string, events []string) (*Subscription, error) {
	if len(events) == 0 {
		return nil, ErrBadEvents
	}
	seen := map[string]bool{}
	var evs []string
	for _, e := range events {
		if e != EventImageProcessed && e != EventImageFailed {
			return nil, ErrBadEvents
		}
		if !seen[e] {
			seen[e] = true
			evs = append(evs, e)
		}
	}
	if err := s.client.CheckURL(ctx, rawURL); err != nil {
		return nil, err
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	sub := &Subscription{ID: id.String(), UserID: userID, URL: rawURL, Events: evs, Secret: secret,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.subs.CreateSubscription(ctx, sub, s.cfg.MaxPerUser); err != nil {
		return nil, err
	}
	return sub, nil
}

// List returns a user's subscriptions.
func (s *Service) List(ctx context.Context, userID string) ([]*Subscription, error) {
	return s.subs.Subscriptions(ctx, userID)
}

// owned returns the user's subscription, or ErrNotFound for anyone else's.
func (s *Service) owned(ctx context.Context, userID, id string) (*Subscription, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrNotFound
	}
	sub, err := s.subs.Subscription(ctx, id)
	if err != nil {
		return nil, err
	}
	if sub.UserID != userID {
		return nil, ErrNotFound
	}
	return sub, nil
}

// Delete removes a subscription; pending deliveries to it stop.
func (s *Service) Delete(ctx context.Context, userID, id string) error {
	if _, err := s.owned(ctx, userID, id); err != nil {
		return err
	}
	return s.subs.DeleteSubscription(ctx, id)
}

// RotateSecret gives a subscription a new secret. The old one keeps signing,
// as a second signature, for the configured overlap.
func (s *Service) RotateSecret(ctx context.Context, userID, id string) (*Subscription, error) {
	sub, err := s.owned(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	until := s.now().Add(s.cfg.SecretOverlap).UTC()
	sub.PreviousSecret, sub.PreviousSecretUntil, sub.Secret = sub.Secret, &until, secret
	if err := s.subs.SaveSubscription(ctx, sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// Deliveries lists a subscription's deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, userID, id string, limit int) ([]*Delivery, error) {
	if _, err := s.owned(ctx, userID, id); err != nil {
		return nil, err
	}
	return s.outbox.Deliveries(ctx, id, min(max(limit, 1), 100))
}

// Redeliver sends one delivery again, whatever its state, keeping its event
// id.
func (s *Service) Redeliver(ctx context.Context, userID, subID, deliveryID string) (*Delivery, error) {
	if _, err := s.owned(ctx, userID, subID); err != nil {
		return nil, err
	}
	d, _, err := s.outbox.Delivery(ctx, deliveryID)
	if errors.Is(err, ErrNotFound) || (err == nil && d.SubscriptionID != subID) {
		return nil, ErrDeliveryNotFound
	}
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	d.State, d.Attempts, d.NextAttemptAt = StatePending, 0, &now
	if err := s.outbox.SaveDelivery(ctx, d); err != nil {
		return nil, err
	}
	if err := s.queue.EnqueueDelivery(ctx, d.ID, 0); err != nil {
		return nil, err
	}
	return d, nil
}

// PingResult is what the receiver answered to a ping.
type PingResult struct {
	StatusCode int
	Error      string
	Duration   time.Duration
}

// Ping sends a webhook.ping event at once and reports the answer.
func (s *Service) Ping(ctx context.Context, userID, id string) (PingResult, error) {
	sub, err := s.owned(ctx, userID, id)
	if err != nil {
		return PingResult{}, err
	}
	now := s.now().UTC()
	msgID := "msg_" + digest("ping", sub.ID, now.String())
	body, err := json.Marshal(map[string]any{"type": EventPing, "timestamp": now.Format(time.RFC3339),
		"data": map[string]string{"webhook_id": sub.ID}})
	if err != nil {
		return PingResult{}, err
	}
	sigs, err := s.signatures(sub, msgID, now, body)
	if err != nil {
		return PingResult{}, err
	}
	r := s.client.Post(ctx, sub.URL, msgID, now, body, sigs)
	out := PingResult{StatusCode: r.Status, Duration: r.Duration}
	if r.Err != nil {
		out.Error = describeErr(r.Err)
	}
	return out, nil
}

// ImageFinished implements image.Notifier: it records one event for the
// image's new state and a delivery for each subscription that wants it, and
// schedules them. Called again for the same state change, it creates
// nothing new and only schedules again what is still pending.
func (s *Service) ImageFinished(ctx context.Context, img *image.Image) error {
	now := s.now().UTC().Truncate(time.Second)
	e, err := image.NewEvent(img, now)
	if err != nil {
		return err
	}
	eventType := e.Type
	ev := &Event{ID: e.ID, UserID: img.UserID, ImageID: img.ID, Type: eventType, Payload: e.Body, CreatedAt: now}
	subs, err := s.subs.Subscriptions(ctx, img.UserID)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	var fresh []*Delivery
	for _, sub := range subs {
		if sub.Wants(eventType) {
			fresh = append(fresh, &Delivery{ID: deliveryID(ev.ID, sub.ID), EventID: ev.ID, SubscriptionID: sub.ID,
				EventType: eventType, State: StatePending, NextAttemptAt: &now, CreatedAt: now})
		}
	}
	deliveries, err := s.outbox.AddEvent(ctx, ev, fresh)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	for _, d := range deliveries {
		if d.State != StatePending {
			continue
		}
		if err := s.queue.EnqueueDelivery(ctx, d.ID, 0); err != nil {
			return fmt.Errorf("enqueue delivery: %w", err)
		}
	}
	return nil
}

// Deliver makes one attempt of a delivery. It returns nil when the delivery
// is settled (delivered, failed for good, or nothing to do) and a
// *RetryError with the delay before the next attempt otherwise.
func (s *Service) Deliver(ctx context.Context, id string) error {
	d, ev, err := s.outbox.Delivery(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return &RetryError{After: s.cfg.Schedule[0], Err: err}
	}
	if d.State != StatePending {
		return nil
	}
	sub, err := s.subs.Subscription(ctx, d.SubscriptionID)
	if errors.Is(err, ErrNotFound) || (err == nil && sub.DisabledAt != nil) {
		d.State, d.LastError, d.NextAttemptAt = StateFailed, "subscription deleted or disabled", nil
		return s.save(ctx, d)
	}
	if err != nil {
		return &RetryError{After: s.cfg.Schedule[0], Err: err}
	}

	now := s.now().UTC()
	sigs, err := s.signatures(sub, ev.ID, now, ev.Payload)
	if err != nil {
		return err
	}
	r := s.client.Post(ctx, sub.URL, ev.ID, now, ev.Payload, sigs)
	d.Attempts++
	d.LastAttemptAt, d.LastStatus, d.LastError = &now, r.Status, ""
	if r.Err != nil {
		d.LastError = describeErr(r.Err)
	}
	log := s.log.With("delivery_id", d.ID, "webhook_id", ev.ID, "subscription_id", sub.ID, "attempt", d.Attempts)

	switch {
	case r.Err == nil && r.Status >= 200 && r.Status < 300:
		d.State, d.NextAttemptAt = StateDelivered, nil
		s.obs.Delivered(ResultSuccess, r.Duration)
		if sub.FailingSince != nil {
			sub.FailingSince = nil
			if err := s.subs.SaveSubscription(ctx, sub); err != nil {
				return &RetryError{After: s.cfg.Schedule[0], Err: err}
			}
		}
		return s.save(ctx, d)
	case r.Status == 410:
		d.State, d.NextAttemptAt = StateFailed, nil
		s.obs.Delivered(ResultGone, r.Duration)
		log.InfoContext(ctx, "receiver answered 410 Gone: subscription disabled")
		return s.disable(ctx, sub, d, "the receiver answered 410 Gone")
	}

	// A failure: retry, unless the subscription has failed for too long or
	// the schedule is spent.
	if sub.FailingSince == nil {
		sub.FailingSince = &now
		if err := s.subs.SaveSubscription(ctx, sub); err != nil {
			return &RetryError{After: s.cfg.Schedule[0], Err: err}
		}
	}
	if now.Sub(*sub.FailingSince) >= s.cfg.DisableAfter {
		d.State, d.NextAttemptAt = StateFailed, nil
		s.obs.Delivered(ResultFailed, r.Duration)
		return s.disable(ctx, sub, d, fmt.Sprintf("every delivery failed for %s", s.cfg.DisableAfter))
	}
	if d.Attempts > len(s.cfg.Schedule) {
		d.State, d.NextAttemptAt = StateFailed, nil
		s.obs.Delivered(ResultFailed, r.Duration)
		log.WarnContext(ctx, "webhook delivery given up", "status", r.Status, "err", d.LastError)
		return s.save(ctx, d)
	}
	delay := s.cfg.Schedule[d.Attempts-1]
	delay += time.Duration(rand.Int64N(int64(delay)/5 + 1)) // up to 20% jitter
	if r.RetryAfter > delay {
		delay = min(r.RetryAfter, 24*time.Hour)
	}
	next := now.Add(delay)
	d.NextAttemptAt = &next
	s.obs.Delivered(ResultRetry, r.Duration)
	if err := s.save(ctx, d); err != nil {
		return err
	}
	return &RetryError{After: delay, Err: fmt.Errorf("attempt %d: status %d %s", d.Attempts, r.Status, d.LastError)}
}

func (s *Service) save(ctx context.Context, d *Delivery) error {
	if err := s.outbox.SaveDelivery(ctx, d); err != nil {
		return &RetryError{After: s.cfg.Schedule[0], Err: err}
	}
	return nil
}

func (s *Service) disable(ctx context.Context, sub *Subscription, d *Delivery, reason string) error {
	now := s.now().UTC()
	sub.DisabledAt, sub.DisabledReason = &now, reason
	if err := s.subs.SaveSubscription(ctx, sub); err != nil {
		return &RetryError{After: s.cfg.Schedule[0], Err: err}
	}
	return s.save(ctx, d)
}

// signatures returns the webhook-signature header: the current secret's
// signature and, during a rotation, the previous secret's.
func (s *Service) signatures(sub *Subscription, id string, ts time.Time, body []byte) (string, error) {
	sig, err := Sign(sub.Secret, id, ts, body)
	if err != nil {
		return "", err
	}
	if sub.PreviousSecret != "" && sub.PreviousSecretUntil != nil && ts.Before(*sub.PreviousSecretUntil) {
		old, err := Sign(sub.PreviousSecret, id, ts, body)
		if err != nil {
			return "", err
		}
		sig += " " + old
	}
	return sig, nil
}

// Reconcile enqueues again pending deliveries that are overdue (a crash
// between recording and enqueueing, or a Redis that lost its tasks).
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	ids, err := s.outbox.DueDeliveries(ctx, s.now().Add(-s.cfg.StaleAfter), 500)
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := s.queue.EnqueueDelivery(ctx, id, 0); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

func describeErr(err error) string {
	switch {
	case errors.Is(err, errInternal):
		return "refused: the URL resolves to an internal address"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
		return "timeout"
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}
