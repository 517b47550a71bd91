package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// receiver is a webhook subscriber that checks every signature with the
// Standard Webhooks reference library, not with our code.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	secret  string
	answers []int // status to answer, in order; then 200
	got     []received
}

type received struct {
	ID, UserAgent, ContentType string
	Body                       map[string]any
	SignatureOK                bool
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{t: t, answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := received{ID: req.Header.Get("webhook-id"), UserAgent: req.Header.Get("User-Agent"), ContentType: req.Header.Get("Content-Type")}
	if wh, err := standardwebhooks.NewWebhook(r.secret); err == nil {
		rec.SignatureOK = wh.Verify(body, req.Header) == nil
	}
	json.Unmarshal(body, &rec.Body)
	r.got = append(r.got, rec)
	status := http.StatusOK
	if len(r.answers) > 0 {
		status, r.answers = r.answers[0], r.answers[1:]
	}
	w.WriteHeader(status)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type subscriptionJSON struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Secret         string   `json:"secret"`
	Enabled        bool     `json:"enabled"`
	DisabledReason *string  `json:"disabled_reason"`
}

func (h *harness) subscribe(token, url string, events ...string) subscriptionJSON {
	h.t.Helper()
	r := h.postJSON("/v1/webhooks", token, map[string]any{"url": url, "events": events})
	if r.Status != http.StatusCreated {
		h.t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}
	var sub subscriptionJSON
	r.json(h.t, &sub)
	return sub
}

type deliveryJSON struct {
	ID         string `json:"id"`
	EventID    string `json:"event_id"`
	Type       string `json:"type"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus *int   `json:"last_status"`
}

func (h *harness) deliveries(token, subID string) []deliveryJSON {
	h.t.Helper()
	r := h.do(http.MethodGet, "/v1/webhooks/"+subID+"/deliveries", token, "", nil)
	if r.Status != http.StatusOK {
		h.t.Fatalf("deliveries: %d %s", r.Status, r.Body)
	}
	var list struct{ Items []deliveryJSON }
	r.json(h.t, &list)
	return list.Items
}

// TestWebhookRetriesUntilDelivered: the receiver fails twice, then accepts.
// The event arrives three times with one webhook-id, every signature
// verifies with the reference library, and the log shows it delivered.
func TestWebhookRetriesUntilDelivered(t *testing.T) {
	h := newHarness(t)
	token := h.user("uma@example.com")
	rcv := newReceiver(t, 500, 503)
	sub := h.subscribe(token, rcv.srv.URL+"/hooks", "image.processed")
	rcv.secret = sub.Secret
	if !strings.HasPrefix(sub.Secret, "whsec_") || len(sub.Secret) != len("whsec_")+44 {
		t.Errorf("secret %q is not whsec_ + base64 of 32 bytes", sub.Secret)
	}

	var img imageJSON
	h.upload(token, "a.jpg", testenv.JPEG(t, 640, 480, 1)).json(t, &img)
	h.waitFor(token, img.ID)
	testenv.WaitUntil(t, 60*time.Second, "third attempt", func() bool { return len(rcv.requests()) >= 3 })
	testenv.WaitUntil(t, 10*time.Second, "delivered state", func() bool {
		ds := h.deliveries(token, sub.ID)
		return len(ds) == 1 && ds[0].State == "delivered"
	})

	got := rcv.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	for i, r := range got {
		if r.ID != got[0].ID || !strings.HasPrefix(r.ID, "msg_") {
			t.Errorf("attempt %d has webhook-id %q, want %q on every attempt", i+1, r.ID, got[0].ID)
		}
		if !r.SignatureOK {
			t.Errorf("attempt %d: signature does not verify with the Standard Webhooks library", i+1)
		}
		if !strings.HasPrefix(r.UserAgent, "imagesvc-webhooks/") || r.ContentType != "application/json" {
			t.Errorf("attempt %d: User-Agent %q, Content-Type %q", i+1, r.UserAgent, r.ContentType)
		}
		data, _ := r.Body["data"].(map[string]any)
		if r.Body["type"] != "image.processed" || data["id"] != img.ID || data["status"] != "done" || r.Body["timestamp"] == nil {
			t.Errorf("attempt %d: body %v", i+1, r.Body)
		}
		if vs, _ := data["variants"].([]any); len(vs) != 3 {
			t.Errorf("attempt %d: %d variants in the event, want 3", i+1, len(vs))
		}
	}
	ds := h.deliveries(token, sub.ID)
	if ds[0].Attempts != 3 || ds[0].EventID != got[0].ID || ds[0].LastStatus == nil || *ds[0].LastStatus != 200 || ds[0].Type != "image.processed" {
		t.Errorf("delivery log: %+v", ds[0])
	}

	// The processing task delivered again: still one event, one delivery.
	ctx := context.Background()
	if err := h.images.Process(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.queue.EnqueueProcess(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if n := len(rcv.requests()); n != 3 {
		t.Errorf("after redelivery of the processing task the receiver got %d requests, want still 3", n)
	}
	if ds := h.deliveries(token, sub.ID); len(ds) != 1 {
		t.Errorf("%d deliveries after redelivery of the processing task, want 1", len(ds))
	}
}

func TestWebhookFailedEventAndFilter(t *testing.T) {
	h := newHarness(t)
	token := h.user("vera@example.com")
	processed := newReceiver(t)
	failed := newReceiver(t)
	s1 := h.subscribe(token, processed.srv.URL, "image.processed")
	s2 := h.subscribe(token, failed.srv.URL, "image.failed")
	processed.secret, failed.secret = s1.Secret, s2.Secret

	var bad imageJSON
	h.upload(token, "bad.jpg", testenv.CorruptJPEG(t, 320, 240)).json(t, &bad)
	h.waitFor(token, bad.ID)
	testenv.WaitUntil(t, 20*time.Second, "image.failed event", func() bool { return len(failed.requests()) == 1 })
	r := failed.requests()[0]
	data, _ := r.Body["data"].(map[string]any)
	errDoc, _ := data["error"].(map[string]any)
	if r.Body["type"] != "image.failed" || data["status"] != "failed" || errDoc["code"] != "undecodable_image" || !r.SignatureOK {
		t.Errorf("image.failed event: %v (signature ok %v)", r.Body, r.SignatureOK)
	}
	time.Sleep(time.Second)
	if n := len(processed.requests()); n != 0 {
		t.Errorf("the image.processed subscriber got %d requests for a failed image", n)
	}
}

// TestWebhookAfterFailedLastNotify: an image failed after its task's last
// retry, and the notification that should have followed failed too (the
// task is then archived, nothing retries it): the image is left failed with
// its notification pending, which is what FailImage alone leaves. The
// reconciler sends the image.failed event, once; images notified the
// normal way are not notified again.
func TestWebhookAfterFailedLastNotify(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.StaleAfter = time.Millisecond })
	token := h.user("gina@example.com")
	rcv := newReceiver(t)
	sub := h.subscribe(token, rcv.srv.URL, "image.failed", "image.processed")
	rcv.secret = sub.Secret
	ctx := context.Background()

	var ok imageJSON
	h.upload(token, "ok.jpg", testenv.JPEG(t, 320, 240, 1)).json(t, &ok)
	h.waitFor(token, ok.ID)
	testenv.WaitUntil(t, 20*time.Second, "image.processed event", func() bool { return len(rcv.requests()) == 1 })
	testenv.WaitUntil(t, 5*time.Second, "the processed image's notification recorded", func() bool {
		ids, err := h.store.UnnotifiedImages(ctx, time.Now().Add(time.Hour), 10)
		return err == nil && len(ids) == 0
	})

	img := h.insertQueued(h.userID(token), "01900000-0000-7000-8000-0000000fa11d", nil, 1, 1, time.Now())
	if _, err := h.store.ClaimImage(ctx, img.ID, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := h.store.FailImage(ctx, img.ID, 0, "processing_failed", "the image could not be processed after several attempts"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d requests before the reconciler ran, want 1 (the processed image's)", n)
	}
	n, err := h.images.Reconcile(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want the failed image notified", n, err)
	}
	testenv.WaitUntil(t, 20*time.Second, "image.failed event", func() bool { return len(rcv.requests()) == 2 })
	r := rcv.requests()[1]
	data, _ := r.Body["data"].(map[string]any)
	errDoc, _ := data["error"].(map[string]any)
	if r.Body["type"] != "image.failed" || data["id"] != img.ID || errDoc["code"] != "processing_failed" || !r.SignatureOK {
		t.Errorf("event after reconcile: %v (signature ok %v)", r.Body, r.SignatureOK)
	}
	if n, err := h.images.Reconcile(ctx); err != nil || n != 0 {
		t.Errorf("second Reconcile = %d, %v; want nothing left to do", n, err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(rcv.requests()); n != 2 {
		t.Errorf("%d requests in all, want 2", n)
	}
}

func TestWebhookGoneDisables(t *testing.T) {
	h := newHarness(t)
	token := h.user("walt@example.com")
	rcv := newReceiver(t, 410)
	sub := h.subscribe(token, rcv.srv.URL, "image.processed")
	rcv.secret = sub.Secret
	var img imageJSON
	h.upload(token, "a.jpg", testenv.JPEG(t, 320, 240, 1)).json(t, &img)
	h.waitFor(token, img.ID)
	testenv.WaitUntil(t, 20*time.Second, "failed delivery", func() bool {
		ds := h.deliveries(token, sub.ID)
		return len(ds) == 1 && ds[0].State == "failed"
	})
	var list struct{ Items []subscriptionJSON }
	h.do(http.MethodGet, "/v1/webhooks", token, "", nil).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].Enabled || list.Items[0].DisabledReason == nil || !strings.Contains(*list.Items[0].DisabledReason, "410") {
		t.Errorf("after a 410: %+v, want disabled with a reason", list.Items)
	}
	if list.Items[0].Secret != "" {
		t.Error("GET /v1/webhooks shows the secret")
	}
	// Nothing more goes to a disabled subscription.
	h.upload(token, "b.jpg", testenv.JPEG(t, 320, 240, 1)).json(t, &img)
	h.waitFor(token, img.ID)
	time.Sleep(time.Second)
	if n := len(rcv.requests()); n != 1 {
		t.Errorf("a disabled subscription got %d requests, want 1", n)
	}
}

func TestWebhookSubscriptions(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Webhook.MaxPerUser = 2 })
	token := h.user("xena@example.com")
	rcv := newReceiver(t)
	for _, tt := range []struct {
		name string
		body any
		code string
	}{
		{"ErrUnknownEvent", map[string]any{"url": rcv.srv.URL, "events": []string{"image.deleted"}}, "invalid_events"},
		{"ErrNoEvents", map[string]any{"url": rcv.srv.URL, "events": []string{}}, "invalid_events"},
		{"ErrScheme", map[string]any{"url": "ftp://example.com/x", "events": []string{"image.processed"}}, "invalid_url"},
		{"ErrCredentials", map[string]any{"url": "http://user:pw@example.com/x", "events": []string{"image.processed"}}, "invalid_url"},
		{"ErrTooLong", map[string]any{"url": "http://example.com/" + strings.Repeat("a", 2048), "events": []string{"image.processed"}}, "invalid_url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.postJSON("/v1/webhooks", token, tt.body)
			if r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != tt.code {
				t.Errorf("%d %s, want 422 %s", r.Status, r.Body, tt.code)
			}
		})
	}
	a := h.subscribe(token, rcv.srv.URL+"/a", "image.processed", "image.failed")
	h.subscribe(token, rcv.srv.URL+"/b", "image.processed")
	if r := h.postJSON("/v1/webhooks", token, map[string]any{"url": rcv.srv.URL, "events": []string{"image.processed"}}); r.Status != 422 || r.errorCode(t) != "too_many_webhooks" {
		t.Errorf("third webhook with a maximum of 2: %d %s", r.Status, r.Body)
	}
	other := h.user("yuri@example.com")
	for _, path := range []string{"/v1/webhooks/" + a.ID + "/ping", "/v1/webhooks/" + a.ID + "/rotate-secret"} {
		if r := h.do(http.MethodPost, path, other, "", nil); r.Status != http.StatusNotFound {
			t.Errorf("%s by another user: %d, want 404", path, r.Status)
		}
	}

	// Ping answers with the receiver's status at once.
	rcv.secret = a.Secret
	r := h.do(http.MethodPost, "/v1/webhooks/"+a.ID+"/ping", token, "", nil)
	var ping struct {
		StatusCode int `json:"status_code"`
	}
	r.json(t, &ping)
	if r.Status != 200 || ping.StatusCode != 200 || len(rcv.requests()) != 1 || rcv.requests()[0].Body["type"] != "webhook.ping" || !rcv.requests()[0].SignatureOK {
		t.Errorf("ping: %d %s", r.Status, r.Body)
	}

	// Rotation: the new secret signs, and so does the old one for a while.
	r = h.do(http.MethodPost, "/v1/webhooks/"+a.ID+"/rotate-secret", token, "", nil)
	var rotated subscriptionJSON
	r.json(t, &rotated)
	if r.Status != 200 || rotated.Secret == a.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	for _, secret := range []string{rotated.Secret, a.Secret} {
		rcv.secret = secret
		h.do(http.MethodPost, "/v1/webhooks/"+a.ID+"/ping", token, "", nil)
		got := rcv.requests()
		if !got[len(got)-1].SignatureOK {
			t.Errorf("after rotation, a ping does not verify with the %s secret", map[bool]string{true: "new", false: "old"}[secret == rotated.Secret])
		}
	}

	if r := h.do(http.MethodDelete, "/v1/webhooks/"+a.ID, token, "", nil); r.Status != http.StatusNoContent {
		t.Errorf("delete: %d", r.Status)
	}
	if r := h.do(http.MethodDelete, "/v1/webhooks/"+a.ID, token, "", nil); r.Status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", r.Status)
	}
}

// TestWebhookSSRF: with private addresses not allowed, internal URLs are
// refused at creation, and at connection time for a URL that passed.
func TestWebhookSSRF(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Webhook.AllowPrivate = false })
	token := h.user("zoe@example.com")
	for _, u := range []string{
		"http://127.0.0.1/hook", "http://[::1]/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
		"http://0x7f000001/hook", "http://[::ffff:127.0.0.1]/hook", "http://localhost:8080/hook",
		"http://192.168.1.10/hook", "http://100.64.0.1/hook", "http://[fd00::1]/hook", "http://0.0.0.0/hook",
	} {
		r := h.postJSON("/v1/webhooks", token, map[string]any{"url": u, "events": []string{"image.processed"}})
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("POST /v1/webhooks %s: %d %s, want 422", u, r.Status, r.Body)
		}
	}

	// The dial-time check: the client refuses the connection even to a URL
	// that was never checked (DNS may answer differently later).
	rcv := newReceiver(t)
	c := webhook.NewClient(false, "test")
	res := c.Post(context.Background(), rcv.srv.URL, "msg_x", time.Now(), []byte(`{}`), "v1,x")
	if res.Err == nil || len(rcv.requests()) != 0 {
		t.Errorf("the client connected to %s: %+v", rcv.srv.URL, res)
	}
}

// TestWebhookRedirectNotFollowed: a 3xx is a failed attempt; the client
// never goes where it points.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	c := webhook.NewClient(true, "test")
	res := c.Post(context.Background(), redirect.URL, "msg_x", time.Now(), []byte(`{}`), "v1,x")
	if res.Status != http.StatusTemporaryRedirect || len(target.requests()) != 0 {
		t.Errorf("redirect: status %d, target hit %d times; want 307 and never", res.Status, len(target.requests()))
	}
}

// TestFaultSameTaskTwiceAtOnce: one image processed by two workers at the
// same moment (a task redelivered while its first run still goes on) ends
// with one set of variants and one event.
func TestFaultSameTaskTwiceAtOnce(t *testing.T) {
	h := newHarness(t)
	token := h.user("twice@example.com")
	rcv := newReceiver(t)
	sub := h.subscribe(token, rcv.srv.URL, "image.processed")
	rcv.secret = sub.Secret
	// An image whose row and original exist but whose task was never
	// enqueued, so that only the two runs below process it.
	var first imageJSON
	h.upload(token, "seed.jpg", testenv.JPEG(t, 100, 80, 1)).json(t, &first)
	h.waitFor(token, first.ID)
	testenv.WaitUntil(t, 10*time.Second, "seed event", func() bool { return len(rcv.requests()) == 1 })
	owner := h.userID(token)
	ctx := context.Background()
	img := h.insertQueued(owner, "01900000-0000-7000-8000-0000000f00d1", testenv.JPEG(t, 1600, 1200, 1), 1600, 1200, time.Now())
	// Two workers (one process never runs two tasks of one image at once).
	var wg sync.WaitGroup
	for _, worker := range []*image.Processor{h.images, h.worker().Images} {
		wg.Go(func() {
			if err := worker.Process(ctx, img.ID); err != nil {
				t.Errorf("Process: %v", err)
			}
		})
	}
	wg.Wait()
	done := h.waitFor(token, img.ID)
	if done.Status != "done" || len(done.Variants) != 3 {
		t.Fatalf("image ended %s with %d variants", done.Status, len(done.Variants))
	}
	keys := h.objects(image.VariantPrefix(owner, img.ID))
	if len(keys) != 6 {
		t.Errorf("variant objects %v, want 3 variants in 2 formats", keys)
	}
	time.Sleep(2 * time.Second)
	ids := map[string]bool{}
	for _, r := range rcv.requests()[1:] {
		ids[r.ID] = true
	}
	if len(ids) != 1 {
		t.Errorf("%d distinct events for the image processed twice at once, want 1", len(ids))
	}
}
