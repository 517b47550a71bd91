package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StreamEvent is an image event read from the event stream.
type StreamEvent struct {
	// ID is the event's place in the stream: Events(ctx, ID) resumes
	// after it.
	ID string
	// Type is image.processed or image.failed.
	Type string
	// Event is the event's data, the same as a webhook's body.
	Event Event
}

// EventStream is the caller's image events as they happen (GET
// /v1/events).
type EventStream struct {
	// C delivers the events. It is closed when the stream ends: when the
	// context ends, or for the reason Err gives.
	C <-chan StreamEvent

	done   chan struct{}
	err    error
	lastID string
}

// Err returns why the stream ended, once C is closed: nil when its context
// ended, else an error such as ErrLoggedOut or an *APIError.
func (s *EventStream) Err() error {
	<-s.done
	return s.err
}

// LastID returns the id of the last event delivered, once C is closed:
// Events(ctx, LastID()) picks up where this stream stopped.
func (s *EventStream) LastID() string {
	<-s.done
	return s.lastID
}

// streamRetries is how many reconnections in a row may fail before a
// stream gives up.
const streamRetries = 5

// Events follows the caller's image events from after the event lastID
// ("": from now on). The first connection is made before it returns, so
// a server that refuses the stream (an *APIError: 401, 400
// invalid_event_id, 404 where it has none) is known at once. Later, when
// the server ends the stream (the access token expired: an event
// token.expired; a restart), Events reconnects with a fresh access token
// and the last event's id, as a browser's EventSource does, and the
// events in between are replayed; it gives up after streamRetries failed
// attempts in a row or when the token cannot be refreshed.
func (s *Session) Events(ctx context.Context, lastID string) (*EventStream, error) {
	body, err := s.connectEvents(ctx, lastID)
	if err != nil {
		return nil, err
	}
	c := make(chan StreamEvent)
	es := &EventStream{C: c, done: make(chan struct{}), lastID: lastID}
	go func() {
		defer close(es.done)
		defer close(c)
		es.err = s.followEvents(ctx, body, es, c)
		if ctx.Err() != nil {
			es.err = nil
		}
	}()
	return es, nil
}

// followEvents reads streams until ctx ends or one cannot be had.
func (s *Session) followEvents(ctx context.Context, body io.ReadCloser, es *EventStream, c chan<- StreamEvent) error {
	retry := 3 * time.Second
	failures := 0
	for {
		expired, err := readEvents(ctx, body, es, c, &retry)
		body.Close()
		if err != nil || ctx.Err() != nil {
			return err
		}
		if expired {
			// The server says the token is spent, whatever our clock says.
			if _, err := s.tokens.Refresh(ctx, s.tokens.Tokens().AccessToken); err != nil {
				return err
			}
		}
		for body = nil; body == nil; {
			if !expired || failures > 0 {
				select {
				case <-time.After(retry):
				case <-ctx.Done():
					return nil
				}
			}
			body, err = s.connectEvents(ctx, es.lastID)
			var apiErr *APIError
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.As(err, &apiErr) && apiErr.Status < 500 && apiErr.Status != http.StatusTooManyRequests:
				return err // refused: trying again will not help
			case errors.Is(err, ErrLoggedOut):
				return err
			case err != nil:
				if failures++; failures >= streamRetries {
					return fmt.Errorf("event stream: %d attempts failed, the last: %w", failures, err)
				}
			default:
				failures = 0
			}
		}
	}
}

// connectEvents opens the stream with a valid access token, refreshing it
// once if the server refuses it.
func (s *Session) connectEvents(ctx context.Context, lastID string) (io.ReadCloser, error) {
	var params StreamEventsParams
	if lastID != "" {
		params.LastEventID = &lastID
	}
	for attempt := 0; ; attempt++ {
		token, err := s.tokens.Token(ctx)
		if err != nil {
			return nil, err
		}
		req, err := NewStreamEventsRequest(s.server, &params)
		if err != nil {
			return nil, err
		}
		req = req.WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := s.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("event stream: %w", err)
		}
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			return resp.Body, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		err = ErrorOf(resp, b)
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return nil, err
		}
		if _, err := s.tokens.Refresh(ctx, token); err != nil {
			return nil, err
		}
	}
}

// readEvents parses a text/event-stream (the WHATWG HTML standard's
// server-sent events) and delivers the image events until the body ends.
// It reports whether the server said the token expired; retry receives
// the server's reconnection delay.
func readEvents(ctx context.Context, body io.Reader, es *EventStream, c chan<- StreamEvent, retry *time.Duration) (expired bool, err error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var typ, id string
	var data strings.Builder
	id = es.lastID
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			if data.Len() == 0 {
				// No event, but an id line still names a place: the
				// server says where "now" is when a stream opens.
				es.lastID = id
				typ = ""
				continue
			}
			payload := strings.TrimSuffix(data.String(), "\n")
			data.Reset()
			switch typ {
			case "token.expired":
				expired = true
				es.lastID = id
			case "image.processed", "image.failed":
				ev := StreamEvent{ID: id, Type: typ}
				if err := json.Unmarshal([]byte(payload), &ev.Event); err != nil {
					return false, fmt.Errorf("event %s: %w", id, err)
				}
				select {
				case c <- ev:
					es.lastID = id
				case <-ctx.Done():
					return false, nil
				}
			default:
				es.lastID = id // an id names a place in the stream, whatever the event
			}
			typ = ""
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: the keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.ContainsRune(value, 0) {
				id = value
			}
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				*retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	// The body ended, or the connection was cut (sc.Err): either way the
	// caller reconnects.
	return expired, nil
}
