package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestLongPoll: GET ?wait= answers when the image is done, woken by its
// event (the recheck is set to an hour, so only the event can wake it),
// also when the upload went to another replica; a short wait answers with
// the current state; a bad wait is 400.
func TestLongPoll(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.WaitRecheck = time.Hour })
	token := h.user("poll@example.com")
	other := h.replica()
	r := h.upload(token, "a.jpg", testenv.JPEG(t, 1600, 1200, 1))
	var img imageJSON
	r.json(t, &img)
	req, _ := http.NewRequest(http.MethodGet, other+"/v1/images/"+img.ID+"?wait=30s", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp := send(t, h.client, req)
	var got imageJSON
	resp.json(t, &got)
	if resp.Status != http.StatusOK || got.Status != "done" {
		t.Fatalf("long poll after %s: %d, status %s; want 200 and done before the 30 s deadline", time.Since(start), resp.Status, got.Status)
	}
	t.Logf("long poll answered done after %s", time.Since(start))

	r = h.upload(token, "b.jpg", testenv.NoiseJPEG(t, 3000, 2000))
	r.json(t, &img)
	if r := h.do(http.MethodGet, "/v1/images/"+img.ID+"?wait=1ms", token, "", nil); r.Status != http.StatusOK {
		t.Errorf("short long poll: %d %s", r.Status, r.Body)
	}
	for _, bad := range []string{"forever", "-1s", "1"} {
		r := h.do(http.MethodGet, "/v1/images/"+img.ID+"?wait="+bad, token, "", nil)
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_wait" {
			t.Errorf("wait=%s: %d %s, want 400 invalid_wait", bad, r.Status, r.Body)
		}
	}
}

// TestLongPollOutlivesLostConnection: when the API's connection to Redis
// for the events drops (a failover, say), the event stream ends every
// subscription (see eventstream.Hub); a long poll then subscribes again
// and is still woken by the image's event, not left to its recheck (an
// hour here) or its deadline.
func TestLongPollOutlivesLostConnection(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.WaitRecheck = time.Hour })
	h.stopWorker() // the image stays queued until the connection is cut
	token := h.user("lost@example.com")
	r := h.upload(token, "a.jpg", testenv.JPEG(t, 800, 600, 1))
	var img imageJSON
	r.json(t, &img)

	type answer struct {
		status string
		after  time.Duration
	}
	answers := make(chan answer, 1)
	go func() {
		start := time.Now()
		r := h.do(http.MethodGet, "/v1/images/"+img.ID+"?wait=30s", token, "", nil)
		var got imageJSON
		r.json(t, &got)
		answers <- answer{got.Status, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond) // the poll has subscribed
	killEventConnections(t, h)
	time.Sleep(300 * time.Millisecond) // the poll has seen its subscription end
	h.worker()
	select {
	case a := <-answers:
		if a.status != "done" {
			t.Fatalf("long poll answered %q after %s; want done, woken by the event after the connection came back", a.status, a.after)
		}
		t.Logf("long poll answered done after %s", a.after)
	case <-time.After(40 * time.Second):
		t.Fatal("no answer to the long poll")
	}
}

// killEventConnections closes the API's Redis connections that listen for
// events (pub/sub ones on this package's database; its tests do not run
// in parallel), as a failover would.
func killEventConnections(t *testing.T, h *harness) {
	t.Helper()
	ctx := context.Background()
	list, err := h.rdb.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["id"] == "" || fields["db"] != strconv.Itoa(redisDB) {
			continue
		}
		if err := h.rdb.Do(ctx, "CLIENT", "KILL", "ID", fields["id"]).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed == 0 {
		t.Fatalf("no pub/sub connection on database %d to cut:\n%s", redisDB, list)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id, event, data string
}

// openStream opens /v1/events on base and returns its events as they come.
func openStream(t *testing.T, ctx context.Context, url, token, lastID string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sseEvent, 16)
	if resp.StatusCode != http.StatusOK {
		close(out)
		return out, resp
	}
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.event != "" {
					out <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			}
		}
	}()
	return out, resp
}

// next waits for the event of an image.
func next(t *testing.T, events <-chan sseEvent, imageID string) sseEvent {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended before the event of %s", imageID)
			}
			var body struct {
				Type string
				Data struct{ ID, Status string }
			}
			if err := json.Unmarshal([]byte(e.data), &body); err != nil {
				t.Fatalf("event data %q: %v", e.data, err)
			}
			if body.Data.ID == imageID {
				if body.Type != e.event || e.id == "" {
					t.Errorf("event %+v: type %q in the body, want it named and with an id", e, body.Type)
				}
				return e
			}
		case <-timeout:
			t.Fatalf("no event of %s in 60 s", imageID)
		}
	}
}

// TestEventStream: events of uploads made through one replica reach a
// stream opened on another; a stream opened again with the last id
// replays what it missed; the token can come in the query (EventSource).
func TestEventStream(t *testing.T) {
	h := newHarness(t)
	token := h.user("stream@example.com")
	other := h.replica()
	ctx, cancel := context.WithCancel(context.Background())
	events, resp := openStream(t, ctx, other+"/v1/events", token, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var first imageJSON
	h.upload(token, "a.jpg", testenv.JPEG(t, 800, 600, 1)).json(t, &first)
	e := next(t, events, first.ID)
	if e.event != "image.processed" {
		t.Errorf("event %q, want image.processed", e.event)
	}
	cancel()

	// Missed while away: a failed image, then resumed from the last id.
	var second imageJSON
	h.upload(token, "b.jpg", testenv.CorruptJPEG(t, 640, 480)).json(t, &second)
	if got := h.waitFor(token, second.ID); got.Status != "failed" {
		t.Fatalf("corrupt image ended %s", got.Status)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	events, _ = openStream(t, ctx, h.url+"/v1/events?access_token="+token, "", e.id)
	if e := next(t, events, second.ID); e.event != "image.failed" {
		t.Errorf("replayed event %q, want image.failed", e.event)
	}

	for name, url := range map[string]string{
		"ErrNoToken":   h.url + "/v1/events",
		"ErrBadCursor": h.url + "/v1/events?access_token=" + token + "&last_event_id=yesterday",
	} {
		_, resp := openStream(t, context.Background(), url, "", "")
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 401 or 400", name, resp.StatusCode)
		}
	}
}

// TestEventStreamSaysWhereNowIs: a stream opened without an id first names
// the position it starts from (an id line without data), so that a client
// reconnecting with it before any event misses nothing in between.
func TestEventStreamSaysWhereNowIs(t *testing.T) {
	h := newHarness(t)
	token := h.user("now@example.com")
	first, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	req, _ := http.NewRequestWithContext(first, http.MethodGet, h.url+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var now string
	for now == "" && sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			now = id
		}
	}
	resp.Body.Close()
	if now == "" {
		t.Fatal("a fresh stream named no position")
	}
	// An image finishes while the client is away; it comes back with the
	// position it was given.
	var img imageJSON
	h.upload(token, "a.jpg", testenv.JPEG(t, 320, 240, 1)).json(t, &img)
	h.waitFor(token, img.ID)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, resp2 := openStream(t, ctx, h.url+"/v1/events", token, now)
	if resp2.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp2.Body)
		t.Fatalf("resuming from %q: %d %s", now, resp2.StatusCode, b)
	}
	next(t, events, img.ID)
}

// TestEventStreamEndsWithToken: a stream ends when its access token
// expires, saying so.
func TestEventStreamEndsWithToken(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Auth.AccessTTL = 2 * time.Second })
	token := h.user("short@example.com")
	events, _ := openStream(t, context.Background(), h.url+"/v1/events", token, "")
	select {
	case e := <-events:
		if e.event != "token.expired" {
			t.Errorf("first event %+v, want token.expired", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream outlived its token by 28 s")
	}
}
