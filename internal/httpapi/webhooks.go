package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// Webhooks is what the API needs from the webhook service.
type Webhooks interface {
	Create(ctx context.Context, userID, url string, events []string) (*webhook.Subscription, error)
	List(ctx context.Context, userID string) ([]*webhook.Subscription, error)
	Delete(ctx context.Context, userID, id string) error
	RotateSecret(ctx context.Context, userID, id string) (*webhook.Subscription, error)
	Deliveries(ctx context.Context, userID, id string, limit int) ([]*webhook.Delivery, error)
	Redeliver(ctx context.Context, userID, id, deliveryID string) (*webhook.Delivery, error)
	Ping(ctx context.Context, userID, id string) (webhook.PingResult, error)
}

type subscriptionRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

type subscriptionResponse struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Secret         string   `json:"secret,omitempty"`
	Enabled        bool     `json:"enabled"`
	DisabledAt     *string  `json:"disabled_at"`
	DisabledReason *string  `json:"disabled_reason"`
	CreatedAt      string   `json:"created_at"`
}

func toSubscriptionResponse(s *webhook.Subscription, withSecret bool) subscriptionResponse {
	r := subscriptionResponse{ID: s.ID, URL: s.URL, Events: s.Events, Enabled: s.DisabledAt == nil, CreatedAt: rfc3339(s.CreatedAt)}
	if withSecret {
		r.Secret = s.Secret
	}
	if s.DisabledAt != nil {
		at, reason := rfc3339(*s.DisabledAt), s.DisabledReason
		r.DisabledAt, r.DisabledReason = &at, &reason
	}
	return r
}

type deliveryResponse struct {
	ID            string  `json:"id"`
	EventID       string  `json:"event_id"`
	Type          string  `json:"type"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	LastStatus    *int    `json:"last_status"`
	LastError     *string `json:"last_error"`
	LastAttemptAt *string `json:"last_attempt_at"`
	NextAttemptAt *string `json:"next_attempt_at"`
	CreatedAt     string  `json:"created_at"`
}

func toDeliveryResponse(d *webhook.Delivery) deliveryResponse {
	r := deliveryResponse{ID: d.ID, EventID: d.EventID, Type: d.EventType, State: d.State, Attempts: d.Attempts,
		LastAttemptAt: optTime(d.LastAttemptAt), NextAttemptAt: optTime(d.NextAttemptAt), CreatedAt: rfc3339(d.CreatedAt)}
	if d.LastStatus != 0 {
		r.LastStatus = &d.LastStatus
	}
	if d.LastError != "" {
		r.LastError = &d.LastError
	}
	return r
}

func optTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := rfc3339(*t)
	return &s
}

func (s *Server) createWebhook(c echo.Context) error {
	var req subscriptionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	sub, err := s.Webhooks.Create(c.Request().Context(), principal(c).UserID, req.URL, req.Events)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toSubscriptionResponse(sub, true))
}

func (s *Server) listWebhooks(c echo.Context) error {
	subs, err := s.Webhooks.List(c.Request().Context(), principal(c).UserID)
	if err != nil {
		return err
	}
	items := make([]subscriptionResponse, 0, len(subs))
	for _, sub := range subs {
		items = append(items, toSubscriptionResponse(sub, false))
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

func (s *Server) deleteWebhook(c echo.Context) error {
	if err := s.Webhooks.Delete(c.Request().Context(), principal(c).UserID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) rotateWebhookSecret(c echo.Context) error {
	sub, err := s.Webhooks.RotateSecret(c.Request().Context(), principal(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toSubscriptionResponse(sub, true))
}

func (s *Server) webhookDeliveries(c echo.Context) error {
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return image.ErrBadLimit
		}
		limit = n
	}
	ds, err := s.Webhooks.Deliveries(c.Request().Context(), principal(c).UserID, c.Param("id"), limit)
	if err != nil {
		return err
	}
	items := make([]deliveryResponse, 0, len(ds))
	for _, d := range ds {
		items = append(items, toDeliveryResponse(d))
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

func (s *Server) redeliverWebhook(c echo.Context) error {
	if err := s.limit(c, "webhook-action:"+principal(c).UserID, s.cfg.WebhookActionRatePerMinute); err != nil {
		return err
	}
	d, err := s.Webhooks.Redeliver(c.Request().Context(), principal(c).UserID, c.Param("id"), c.Param("delivery_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, toDeliveryResponse(d))
}

func (s *Server) pingWebhook(c echo.Context) error {
	if err := s.limit(c, "webhook-action:"+principal(c).UserID, s.cfg.WebhookActionRatePerMinute); err != nil {
		return err
	}
	r, err := s.Webhooks.Ping(c.Request().Context(), principal(c).UserID, c.Param("id"))
	if err != nil {
		return err
	}
	resp := map[string]any{"status_code": nil, "error": nil, "seconds": r.Duration.Seconds()}
	if r.StatusCode != 0 {
		resp["status_code"] = r.StatusCode
	}
	if r.Error != "" {
		resp["error"] = r.Error
	}
	return c.JSON(http.StatusOK, resp)
}
