package gormstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/imagesvc/imagesvc/internal/webhook"
)

var (
	_ webhook.Subscriptions = (*Store)(nil)
	_ webhook.Outbox        = (*Store)(nil)
)

type subscriptionRow struct {
	ID                  string `gorm:"primaryKey"`
	UserID              string
	URL                 string
	Events              string
	Secret              string
	PreviousSecret      *string
	PreviousSecretUntil *time.Time
	DisabledAt          *time.Time
	DisabledReason      *string
	FailingSince        *time.Time
	CreatedAt           time.Time
}

func (subscriptionRow) TableName() string { return "webhook_subscriptions" }

type eventRow struct {
	ID        string `gorm:"primaryKey"`
	UserID    string
	ImageID   string
	Type      string
	Payload   string
	CreatedAt time.Time
}

func (eventRow) TableName() string { return "webhook_events" }

type deliveryRow struct {
	ID             string `gorm:"primaryKey"`
	EventID        string
	SubscriptionID string
	EventType      string
	State          string
	Attempts       int
	LastStatus     int
	LastError      *string
	LastAttemptAt  *time.Time
	NextAttemptAt  *time.Time
	CreatedAt      time.Time
}

func (deliveryRow) TableName() string { return "webhook_deliveries" }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func toSubscriptionRow(s *webhook.Subscription) subscriptionRow {
	return subscriptionRow{
		ID: s.ID, UserID: s.UserID, URL: s.URL, Events: strings.Join(s.Events, ","), Secret: s.Secret,
		PreviousSecret: strPtr(s.PreviousSecret), PreviousSecretUntil: utcPtr(s.PreviousSecretUntil),
		DisabledAt: utcPtr(s.DisabledAt), DisabledReason: strPtr(s.DisabledReason),
		FailingSince: utcPtr(s.FailingSince), CreatedAt: s.CreatedAt.UTC(),
	}
}

func (r *subscriptionRow) toDomain() *webhook.Subscription {
	s := &webhook.Subscription{ID: r.ID, UserID: r.UserID, URL: r.URL, Events: strings.Split(r.Events, ","),
		Secret: r.Secret, PreviousSecretUntil: r.PreviousSecretUntil, DisabledAt: r.DisabledAt,
		FailingSince: r.FailingSince, CreatedAt: r.CreatedAt}
	if r.PreviousSecret != nil {
		s.PreviousSecret = *r.PreviousSecret
	}
	if r.DisabledReason != nil {
		s.DisabledReason = *r.DisabledReason
	}
	return s
}

func toDeliveryRow(d *webhook.Delivery) deliveryRow {
	return deliveryRow{ID: d.ID, EventID: d.EventID, SubscriptionID: d.SubscriptionID, EventType: d.EventType,
		State: d.State, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: strPtr(truncate(d.LastError, 512)),
		LastAttemptAt: utcPtr(d.LastAttemptAt), NextAttemptAt: utcPtr(d.NextAttemptAt), CreatedAt: d.CreatedAt.UTC()}
}

func (r *deliveryRow) toDomain() *webhook.Delivery {
	d := &webhook.Delivery{ID: r.ID, EventID: r.EventID, SubscriptionID: r.SubscriptionID, EventType: r.EventType,
		State: r.State, Attempts: r.Attempts, LastStatus: r.LastStatus, LastAttemptAt: r.LastAttemptAt,
		NextAttemptAt: r.NextAttemptAt, CreatedAt: r.CreatedAt}
	if r.LastError != nil {
		d.LastError = *r.LastError
	}
	return d
}

// CreateSubscription implements webhook.Subscriptions. The user's row is
// locked while the subscriptions are counted, so that requests at once
// cannot all see room for one more (40 parallel creations left 12 over a
// limit of 10).
func (s *Store) CreateSubscription(ctx context.Context, sub *webhook.Subscription, max int) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		var owner userRow
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id").Where("id = ?", sub.UserID).Take(&owner).Error; err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		var n int64
		if err := tx.Model(&subscriptionRow{}).Where("user_id = ?", sub.UserID).Count(&n).Error; err != nil {
			return fmt.Errorf("count subscriptions: %w", err)
		}
		if n >= int64(max) {
			return webhook.ErrTooMany
		}
		row := toSubscriptionRow(sub)
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
		return nil
	})
}

// Subscriptions implements webhook.Subscriptions.
func (s *Store) Subscriptions(ctx context.Context, userID string) ([]*webhook.Subscription, error) {
	var rows []subscriptionRow
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out := make([]*webhook.Subscription, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// Subscription implements webhook.Subscriptions.
func (s *Store) Subscription(ctx context.Context, id string) (*webhook.Subscription, error) {
	var row subscriptionRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, webhook.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select subscription: %w", err)
	}
	return row.toDomain(), nil
}

// SaveSubscription implements webhook.Subscriptions.
func (s *Store) SaveSubscription(ctx context.Context, sub *webhook.Subscription) error {
	row := toSubscriptionRow(sub)
	err := s.db.WithContext(ctx).Model(&subscriptionRow{}).Where("id = ?", sub.ID).Updates(map[string]any{
		"secret": row.Secret, "previous_secret": row.PreviousSecret, "previous_secret_until": row.PreviousSecretUntil,
		"disabled_at": row.DisabledAt, "disabled_reason": row.DisabledReason, "failing_since": row.FailingSince,
	}).Error
	if err != nil {
		return fmt.Errorf("update subscription: %w", err)
	}
	return nil
}

// DeleteSubscription implements webhook.Subscriptions. Its deliveries go
// with it (ON DELETE CASCADE).
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&subscriptionRow{})
	if res.Error != nil {
		return fmt.Errorf("delete subscription: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return webhook.ErrNotFound
	}
	return nil
}

// AddEvent implements webhook.Outbox.
func (s *Store) AddEvent(ctx context.Context, e *webhook.Event, deliveries []*webhook.Delivery) ([]*webhook.Delivery, error) {
	var rows []deliveryRow
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		ev := eventRow{ID: e.ID, UserID: e.UserID, ImageID: e.ImageID, Type: e.Type, Payload: string(e.Payload), CreatedAt: e.CreatedAt.UTC()}
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&ev)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 && len(deliveries) > 0 {
			fresh := make([]deliveryRow, len(deliveries))
			for i, d := range deliveries {
				fresh[i] = toDeliveryRow(d)
			}
			if err := tx.Create(&fresh).Error; err != nil {
				return err
			}
		}
		return tx.Where("event_id = ?", e.ID).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("add event: %w", err)
	}
	out := make([]*webhook.Delivery, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// Delivery implements webhook.Outbox.
func (s *Store) Delivery(ctx context.Context, id string) (*webhook.Delivery, *webhook.Event, error) {
	var d deliveryRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, webhook.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("select delivery: %w", err)
	}
	var e eventRow
	if err := s.db.WithContext(ctx).Where("id = ?", d.EventID).Take(&e).Error; err != nil {
		return nil, nil, fmt.Errorf("select event: %w", err)
	}
	return d.toDomain(), &webhook.Event{ID: e.ID, UserID: e.UserID, ImageID: e.ImageID, Type: e.Type,
		Payload: []byte(e.Payload), CreatedAt: e.CreatedAt}, nil
}

// SaveDelivery implements webhook.Outbox.
func (s *Store) SaveDelivery(ctx context.Context, d *webhook.Delivery) error {
	row := toDeliveryRow(d)
	err := s.db.WithContext(ctx).Model(&deliveryRow{}).Where("id = ?", d.ID).Updates(map[string]any{
		"state": row.State, "attempts": row.Attempts, "last_status": row.LastStatus, "last_error": row.LastError,
		"last_attempt_at": row.LastAttemptAt, "next_attempt_at": row.NextAttemptAt,
	}).Error
	if err != nil {
		return fmt.Errorf("update delivery: %w", err)
	}
	return nil
}

// Deliveries implements webhook.Outbox.
func (s *Store) Deliveries(ctx context.Context, subscriptionID string, limit int) ([]*webhook.Delivery, error) {
	var rows []deliveryRow
	err := s.db.WithContext(ctx).Where("subscription_id = ?", subscriptionID).
		Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]*webhook.Delivery, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// DueDeliveries implements webhook.Outbox.
func (s *Store) DueDeliveries(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&deliveryRow{}).
		Where("state = ? AND next_attempt_at < ?", webhook.StatePending, before.UTC()).
		Order("next_attempt_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("select due deliveries: %w", err)
	}
	return ids, nil
}
