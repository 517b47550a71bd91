package webhook_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/imagesvc/imagesvc/internal/mock"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// TestSignMatchesReference signs with our code and verifies with the
// Standard Webhooks library.
func TestSignMatchesReference(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"image.processed"}`)
	ts := time.Now()
	sig, err := webhook.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{}
	hdr.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	hdr.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	hdr.Set("webhook-signature", sig)
	if err := wh.Verify(body, hdr); err != nil {
		t.Errorf("reference library rejects our signature: %v", err)
	}
	hdr.Set("webhook-signature", "v1,"+strings.Repeat("A", 44))
	if err := wh.Verify(body, hdr); err == nil {
		t.Error("reference library accepts a forged signature; the check cannot fail")
	}
}

// TestDeliver walks one delivery attempt through each answer a receiver
// can give, on fakes of the stores and a real receiver on loopback.
func TestDeliver(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name          string
		status        int
		attempts      int        // before this one
		failingSince  *time.Time // of the subscription
		wantState     string
		wantRetry     time.Duration // 0: settled, no retry
		wantDisabled  bool
		wantFailingAt bool
	}{
		{"Delivered", 204, 0, nil, webhook.StateDelivered, 0, false, false},
		{"RetriedOnError", 500, 0, nil, webhook.StatePending, time.Minute, false, true},
		{"SecondRetryLater", 503, 1, nil, webhook.StatePending, time.Hour, false, true},
		{"GoneDisables", 410, 0, nil, webhook.StateFailed, 0, true, false},
		{"ScheduleSpent", 500, 2, nil, webhook.StateFailed, 0, false, true},
		{"FailingTooLongDisables", 500, 0, ptr(time.Now().Add(-25 * time.Hour)), webhook.StateFailed, 0, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
			defer rcv.Close()
			sub := &webhook.Subscription{ID: "sub", UserID: "u", URL: rcv.URL, Events: []string{webhook.EventImageProcessed},
				Secret: "whsec_" + strings.Repeat("A", 43) + "=", FailingSince: tt.failingSince}
			d := &webhook.Delivery{ID: "dlv", EventID: "msg_1", SubscriptionID: "sub", State: webhook.StatePending, Attempts: tt.attempts}
			var saved *webhook.Delivery
			subs := &mock.Subscriptions{
				SubscriptionFn:     func(context.Context, string) (*webhook.Subscription, error) { return sub, nil },
				SaveSubscriptionFn: func(context.Context, *webhook.Subscription) error { return nil },
			}
			outbox := &mock.Outbox{
				DeliveryFn: func(context.Context, string) (*webhook.Delivery, *webhook.Event, error) {
					return d, &webhook.Event{ID: "msg_1", Payload: []byte(`{}`)}, nil
				},
				SaveDeliveryFn: func(_ context.Context, got *webhook.Delivery) error { saved = got; return nil },
			}
			cfg := webhook.NewDefaultConfig()
			cfg.AllowPrivate = true
			cfg.Schedule = []time.Duration{time.Minute, time.Hour}
			s := webhook.NewService(subs, outbox, &mock.DeliveryQueue{}, cfg, nil, slog.New(slog.DiscardHandler))
			err := s.Deliver(ctx, "dlv")
			var re *webhook.RetryError
			retried := errors.As(err, &re)
			if tt.wantRetry == 0 && err != nil || tt.wantRetry != 0 && (!retried || re.After < tt.wantRetry || re.After > tt.wantRetry*6/5) {
				t.Fatalf("Deliver = %v, want a retry after %s (0: none)", err, tt.wantRetry)
			}
			if saved == nil || saved.State != tt.wantState || saved.Attempts != tt.attempts+1 || saved.LastStatus != tt.status {
				t.Errorf("saved delivery %+v, want state %s after attempt %d with status %d", saved, tt.wantState, tt.attempts+1, tt.status)
			}
			if (sub.DisabledAt != nil) != tt.wantDisabled || (sub.FailingSince != nil) != tt.wantFailingAt {
				t.Errorf("subscription disabled %v, failing since %v; want disabled %v, failing %v", sub.DisabledAt, sub.FailingSince, tt.wantDisabled, tt.wantFailingAt)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
