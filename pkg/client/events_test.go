package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/pkg/client"
)

func eventData(typ, id string) string {
	return fmt.Sprintf(`{"type":%q,"timestamp":"2026-11-28T10:00:00Z","data":%s}`, typ, imageJSON(id, map[string]string{
		"image.processed": "done", "image.failed": "failed"}[typ]))
}

// TestEvents: the stream is parsed (comments, retry, ids, CRLF lines), and
// after token.expired the client reconnects with a refreshed token and the
// last id, and gets what came after it.
func TestEvents(t *testing.T) {
	f, ts := newFakeAPI(t)
	var mu sync.Mutex
	var connects []string
	f.routes["GET /v1/events"] = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		connects = append(connects, r.Header.Get("Authorization")+" after "+r.Header.Get("Last-Event-ID"))
		n := len(connects)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 1:
			io.WriteString(w, "retry: 10\n\n: keep-alive\n\n")
			fmt.Fprintf(w, "id: e1\nevent: image.processed\ndata: %s\n\n", eventData("image.processed", "a"))
			fmt.Fprintf(w, "id: e2\r\nevent: image.failed\r\ndata: %s\r\n\r\n", eventData("image.failed", "b"))
			io.WriteString(w, "event: token.expired\ndata: {}\n\n")
		case 2:
			fmt.Fprintf(w, "id: e3\nevent: image.processed\ndata: %s\n\n", eventData("image.processed", "c"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			t.Errorf("connection %d", n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := session(t, ts.URL, time.Hour).Events(ctx, "e0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range stream.C {
		got = append(got, fmt.Sprintf("%s %s %s %s", ev.ID, ev.Type, ev.Event.Data.Id, ev.Event.Data.Status))
		if len(got) == 3 {
			cancel()
		}
	}
	if err := stream.Err(); err != nil {
		t.Errorf("Err() = %v after the context ended", err)
	}
	want := "[e1 image.processed a done e2 image.failed b failed e3 image.processed c done]"
	if fmt.Sprint(got) != want {
		t.Errorf("events %v, want %v", got, want)
	}
	if fmt.Sprint(connects) != "[Bearer access-0 after e0 Bearer access-1 after e2]" {
		t.Errorf("connections %q", connects)
	}
	if stream.LastID() != "e3" {
		t.Errorf("LastID() = %q", stream.LastID())
	}
}

// TestEventsRefused: a server without the stream, or one that refuses the
// id, answers before Events returns.
func TestEventsRefused(t *testing.T) {
	f, ts := newFakeAPI(t)
	_, err := session(t, ts.URL, time.Hour).Events(context.Background(), "")
	if !client.IsCode(err, "not_found") {
		t.Errorf("no stream: %v", err)
	}
	f.routes["GET /v1/events"] = func(w http.ResponseWriter, r *http.Request) { writeError(w, 400, "invalid_event_id") }
	_, err = session(t, ts.URL, time.Hour).Events(context.Background(), "nonsense")
	if !client.IsCode(err, "invalid_event_id") {
		t.Errorf("bad id: %v", err)
	}
}
