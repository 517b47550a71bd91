package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
)

// The routes that wait: the long poll of one image, and the stream of a
// user's events. Both are woken by the event streams (Deps.Events), not by
// polling the database.

// maxWait bounds a long poll; a longer wait is cut to it.
const maxWait = 60 * time.Second

// keepAlive is how often an idle event stream sends a comment, so that
// proxies that close idle connections (often after 30 or 60 s) keep it.
const keepAlive = 15 * time.Second

var errBadWait = failure.New(failure.Invalid, "invalid_wait", "wait must be a duration such as 30s, at most 60s")

// waitForImage answers GET /v1/images/{id}?wait=30s: the image as soon as it
// is done or failed, or at the deadline as it is then.
func (s *Server) waitForImage(c echo.Context, wait time.Duration) error {
	ctx := c.Request().Context()
	p := principal(c)
	release, err := s.takeWaiter(p.UserID)
	if err != nil {
		return err
	}
	defer release()
	// Subscribe before reading the image, so that an event between the two
	// is not missed.
	events, stop, err := s.Events.Subscribe(ctx, p.UserID, "")
	if err != nil {
		return err
	}
	defer func() { stop() }() // the subscription in force at the end
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// Read the image again now and then whatever the events say: an event
	// missed while the process resubscribed to Redis cannot hold a client
	// to the deadline.
	recheck := time.NewTicker(s.cfg.WaitRecheck)
	defer recheck.Stop()
	for {
		img, err := s.Images.Get(ctx, p.UserID, c.Param("id"))
		if err != nil {
			return err
		}
		if img.Status == image.StatusDone || img.Status == image.StatusFailed {
			return c.JSON(http.StatusOK, toImageResponse(c, img))
		}
		// Sleep until an event of this image, the recheck or the deadline.
		for woken := false; !woken; {
			select {
			case e, ok := <-events:
				if !ok {
					// The subscription ended (the process lost its
					// connection to Redis, see eventstream.Hub): subscribe
					// again and read the image again, which covers the
					// gap. Failing that, the recheck is left.
					stop()
					if events, stop, err = s.Events.Subscribe(ctx, p.UserID, ""); err != nil {
						events, stop = nil, func() {}
					}
				}
				woken = !ok || e.ImageID == img.ID
			case <-recheck.C:
				woken = true
			case <-deadline.C:
				return c.JSON(http.StatusOK, toImageResponse(c, img))
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// events answers GET /v1/events with server-sent events: the caller's
// image events from after Last-Event-ID (or the query last_event_id: an
// EventSource reconnecting with a new token cannot set headers), then live
// ones, until the client goes, the server stops, or the access token
// expires (an event token.expired says so; the client reconnects with a
// fresh token and its last id).
func (s *Server) events(c echo.Context) error {
	ctx := c.Request().Context()
	p := principal(c)
	after := c.Request().Header.Get("Last-Event-ID")
	if after == "" {
		after = c.QueryParam("last_event_id")
	}
	release, err := s.takeWaiter(p.UserID)
	if err != nil {
		return err
	}
	defer release()
	after = strings.TrimSpace(after)
	fresh := after == ""
	if fresh {
		// From now: the client is told where now is (an id line without
		// data sets its last event id), so that a reconnect before any
		// event, after its token expired say, misses nothing.
		if after, err = s.Events.Position(ctx, p.UserID); err != nil {
			return err
		}
	}
	events, stop, err := s.Events.Subscribe(ctx, p.UserID, after)
	if err != nil {
		return err
	}
	defer stop()

	w := c.Response()
	rc := http.NewResponseController(w)
	// The server's write timeout bounds a response; a stream has none.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	if fresh {
		fmt.Fprintf(w, "id: %s\n\n", after)
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	expiry := time.NewTimer(time.Until(p.ExpiresAt))
	defer expiry.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return nil // the client resumes from its last id
			}
			fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.Position, e.Type, e.Body)
		case <-ping.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case <-expiry.C:
			fmt.Fprint(w, "event: token.expired\ndata: {}\n\n")
			_ = rc.Flush()
			return nil
		case <-ctx.Done():
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// takeWaiter counts a long poll or stream of a user against
// MaxWaitersPerUser: each holds a connection and a subscription.
func (s *Server) takeWaiter(userID string) (func(), error) {
	s.waitersMu.Lock()
	defer s.waitersMu.Unlock()
	if s.waiters[userID] >= s.cfg.MaxWaitersPerUser {
		return nil, rateLimited{retryAfter: 5 * time.Second, code: "too_many_waiting",
			message: fmt.Sprintf("at most %d long polls and event streams of one user at a time", s.cfg.MaxWaitersPerUser)}
	}
	s.waiters[userID]++
	return func() {
		s.waitersMu.Lock()
		defer s.waitersMu.Unlock()
		if s.waiters[userID]--; s.waiters[userID] == 0 {
			delete(s.waiters, userID)
		}
	}, nil
}
