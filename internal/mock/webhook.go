package mock

import (
	"context"
	"time"

	"github.com/imagesvc/imagesvc/internal/webhook"
)

// Subscriptions is a webhook.Subscriptions.
type Subscriptions struct {
	CreateSubscriptionFn func(ctx context.Context, s *webhook.Subscription, max int) error
	SubscriptionsFn      func(ctx context.Context, userID string) ([]*webhook.Subscription, error)
	SubscriptionFn       func(ctx context.Context, id string) (*webhook.Subscription, error)
	SaveSubscriptionFn   func(ctx context.Context, s *webhook.Subscription) error
	DeleteSubscriptionFn func(ctx context.Context, id string) error
}

var _ webhook.Subscriptions = (*Subscriptions)(nil)

// CreateSubscription calls CreateSubscriptionFn.
func (m *Subscriptions) CreateSubscription(ctx context.Context, s *webhook.Subscription, max int) error {
	return m.CreateSubscriptionFn(ctx, s, max)
}

// Subscriptions calls SubscriptionsFn.
func (m *Subscriptions) Subscriptions(ctx context.Context, userID string) ([]*webhook.Subscription, error) {
	return m.SubscriptionsFn(ctx, userID)
}

// Subscription calls SubscriptionFn.
func (m *Subscriptions) Subscription(ctx context.Context, id string) (*webhook.Subscription, error) {
	return m.SubscriptionFn(ctx, id)
}

// SaveSubscription calls SaveSubscriptionFn.
func (m *Subscriptions) SaveSubscription(ctx context.Context, s *webhook.Subscription) error {
	return m.SaveSubscriptionFn(ctx, s)
}

// DeleteSubscription calls DeleteSubscriptionFn.
func (m *Subscriptions) DeleteSubscription(ctx context.Context, id string) error {
	return m.DeleteSubscriptionFn(ctx, id)
}

// Outbox is a webhook.Outbox.
type Outbox struct {
	AddEventFn      func(ctx context.Context, e *webhook.Event, deliveries []*webhook.Delivery) ([]*webhook.Delivery, error)
	DeliveryFn      func(ctx context.Context, id string) (*webhook.Delivery, *webhook.Event, error)
	SaveDeliveryFn  func(ctx context.Context, d *webhook.Delivery) error
	DeliveriesFn    func(ctx context.Context, subscriptionID string, limit int) ([]*webhook.Delivery, error)
	DueDeliveriesFn func(ctx context.Context, before time.Time, limit int) ([]string, error)
}

var _ webhook.Outbox = (*Outbox)(nil)

// AddEvent calls AddEventFn.
func (m *Outbox) AddEvent(ctx context.Context, e *webhook.Event, deliveries []*webhook.Delivery) ([]*webhook.Delivery, error) {
	return m.AddEventFn(ctx, e, deliveries)
}

// Delivery calls DeliveryFn.
func (m *Outbox) Delivery(ctx context.Context, id string) (*webhook.Delivery, *webhook.Event, error) {
	return m.DeliveryFn(ctx, id)
}

// SaveDelivery calls SaveDeliveryFn.
func (m *Outbox) SaveDelivery(ctx context.Context, d *webhook.Delivery) error {
	return m.SaveDeliveryFn(ctx, d)
}

// Deliveries calls DeliveriesFn.
func (m *Outbox) Deliveries(ctx context.Context, subscriptionID string, limit int) ([]*webhook.Delivery, error) {
	return m.DeliveriesFn(ctx, subscriptionID, limit)
}

// DueDeliveries calls DueDeliveriesFn.
func (m *Outbox) DueDeliveries(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return m.DueDeliveriesFn(ctx, before, limit)
}

// DeliveryQueue is a webhook.Queue.
type DeliveryQueue struct {
	EnqueueDeliveryFn func(ctx context.Context, deliveryID string, delay time.Duration) error
}

var _ webhook.Queue = (*DeliveryQueue)(nil)

// EnqueueDelivery calls EnqueueDeliveryFn.
func (m *DeliveryQueue) EnqueueDelivery(ctx context.Context, deliveryID string, delay time.Duration) error {
	return m.EnqueueDeliveryFn(ctx, deliveryID, delay)
}
