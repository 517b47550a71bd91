package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

func TestMonitoring(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.AdminUser, s.API.AdminPassword = "ops", "s3cret-dashboard" })
	token := h.user("olga@example.com")
	h.upload(token, "a.jpg", testenv.JPEG(t, 300, 200, 1)) // so that the images queue exists

	get := func(path, user, pass string) response {
		req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		return send(t, http.DefaultClient, req)
	}
	for name, creds := range map[string][2]string{"None": {}, "WrongPassword": {"ops", "nope"}, "WrongUser": {"root", "s3cret-dashboard"}} {
		t.Run("Err"+name, func(t *testing.T) {
			for _, path := range []string{"/monitoring/", "/monitoring/api/queues"} {
				r := get(path, creds[0], creds[1])
				if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("%s: %d, want 401 with a Basic challenge", path, r.Status)
				}
			}
		})
	}
	if r := get("/monitoring/", "ops", "s3cret-dashboard"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "<html") {
		t.Errorf("dashboard UI: %d", r.Status)
	}
	r := get("/monitoring/api/queues", "ops", "s3cret-dashboard")
	var queues struct {
		Queues []struct {
			Queue string `json:"queue"`
		} `json:"queues"`
	}
	r.json(t, &queues)
	found := false
	for _, q := range queues.Queues {
		found = found || q.Queue == "images"
	}
	if r.Status != http.StatusOK || !found {
		t.Errorf("queues API: %d %s, want the images queue", r.Status, r.Body)
	}

	// Without ADMIN_USER the dashboard is off.
	off := newHarness(t)
	if r := off.do(http.MethodGet, "/monitoring/", "", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("dashboard without ADMIN_USER: %d, want 404", r.Status)
	}
}

// TestMetrics checks that /metrics parses as Prometheus text and has the
// families an operator needs once an image has been processed.
func TestMetrics(t *testing.T) {
	h := newHarness(t)
	token := h.user("paul@example.com")
	r := h.upload(token, "a.jpg", testenv.JPEG(t, 1600, 1200, 1))
	var img imageJSON
	r.json(t, &img)
	h.waitFor(token, img.ID)
	h.upload(token, "x.txt", []byte("not an image"))
	h.do(http.MethodGet, "/v1/no/such/route/"+img.ID, token, "", nil)

	// The processing counters move just after the image is seen done: poll.
	var families map[string]*dto.MetricFamily
	testenv.WaitUntil(t, 10*time.Second, "processing counted", func() bool {
		r = h.do(http.MethodGet, "/metrics", "", "", nil)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		var err error
		families, err = parser.TextToMetricFamilies(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatalf("metrics do not parse: %v", err)
		}
		for _, m := range families["imagesvc_images_processed_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "done" && m.GetCounter().GetValue() >= 1 {
					return true
				}
			}
		}
		return false
	})
	for _, name := range []string{
		"imagesvc_http_requests_total", "imagesvc_http_request_duration_seconds", "imagesvc_upload_bytes",
		"imagesvc_uploads_rejected_total", "imagesvc_processing_stage_seconds", "imagesvc_images_processed_total",
		"imagesvc_source_megapixels", "imagesvc_dependency_errors_total", "imagesvc_images_in_flight",
		"asynq_queue_size", "asynq_queue_latency_seconds", "go_goroutines", "process_cpu_seconds_total",
	} {
		if families[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}
	value := func(family string, labels map[string]string) float64 {
		f := families[family]
		if f == nil {
			return -1
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		return -1
	}
	if v := value("imagesvc_images_processed_total", map[string]string{"result": "done"}); v < 1 {
		t.Errorf("images processed (done) = %v, want at least 1", v)
	}
	for _, stage := range []string{"fetch", "decode_resize", "encode", "upload", "database"} {
		if v := value("imagesvc_processing_stage_seconds", map[string]string{"stage": stage}); v < 1 {
			t.Errorf("stage %s observed %v times, want at least 1", stage, v)
		}
	}
	if v := value("imagesvc_uploads_rejected_total", map[string]string{"reason": "unsupported_type"}); v != 1 {
		t.Errorf("rejected unsupported_type = %v, want 1", v)
	}
	if v := value("imagesvc_http_requests_total", map[string]string{"route": "/v1/images/:id", "method": "GET", "status": "200"}); v < 1 {
		t.Errorf("requests for the route template /v1/images/:id = %v, want some", v)
	}
	for _, m := range families["imagesvc_http_requests_total"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), img.ID) {
				t.Errorf("a raw path became a route label: %s", l.GetValue())
			}
		}
	}
}

// TestReadinessFollowsRedis stops a Redis server under the readiness
// probe and starts it again.
func TestReadinessFollowsRedis(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed")
	}
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	startRedis := func() *exec.Cmd {
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	store, _ := testenv.MustStore(t)
	blobs, _ := testenv.MustBucket(t)
	e := httpapi.New(httpapi.Deps{Checks: []health.Check{
		{Name: "database", Ping: store.Ping}, {Name: "s3", Ping: blobs.Ping},
		{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}}, httpapi.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(e)
	defer ts.Close()
	ready := func() (int, string) {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitStatus := func(want int) string {
		deadline := time.Now().Add(15 * time.Second)
		for {
			status, body := ready()
			if status == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz %d %s, want %d", status, body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	srv := startRedis()
	waitStatus(http.StatusOK)
	srv.Process.Kill()
	srv.Wait()
	body := waitStatus(http.StatusServiceUnavailable)
	if !strings.Contains(body, `"redis":"unavailable"`) || !strings.Contains(body, `"database":"ok"`) {
		t.Errorf("readyz with Redis down: %s, want redis named as unavailable", body)
	}
	startRedis()
	waitStatus(http.StatusOK)
}

func TestRateLimits(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.API.UploadRatePerMinute = 3
		s.API.LoginRatePerMinute = 4
		s.API.LoginRatePerMinutePerAddress = 100
	})
	token := h.user("quinn@example.com") // one login attempt spent
	other := h.replica()
	src := testenv.JPEG(t, 64, 48, 1)
	uploadTo := func(base string) response {
		ct, body := multipartBody(t, "file", "a.jpg", src)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/images", body)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ct)
		return send(t, http.DefaultClient, req)
	}
	// Three uploads across the two replicas pass; the fourth is refused.
	for i, base := range []string{h.url, other, h.url} {
		if r := uploadTo(base); r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	r := uploadTo(other)
	if r.Status != http.StatusTooManyRequests || r.errorCode(t) != "rate_limited" {
		t.Fatalf("fourth upload: %d %s, want 429 rate_limited", r.Status, r.Body)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After = %q, want 1 to 60 seconds", r.Header.Get("Retry-After"))
	}

	// Login attempts per email: wrong passwords count too.
	creds := map[string]string{"email": "quinn@example.com", "password": "wrong password!"}
	statuses := []int{}
	for _, base := range []string{h.url, other, h.url, other} {
		b, _ := json.Marshal(creds)
		resp, err := http.Post(base+"/v1/auth/login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if fmt.Sprint(statuses) != "[401 401 401 429]" {
		t.Errorf("login attempts answered %v, want [401 401 401 429]", statuses)
	}
}

func TestAdminAndReprocess(t *testing.T) {
	h := newHarness(t)
	user := h.user("rita@example.com")
	admin := h.user("sam@example.com")
	for _, path := range []string{"/v1/admin/images", "/v1/admin/stats"} {
		if r := h.do(http.MethodGet, path, user, "", nil); r.Status != http.StatusForbidden || r.errorCode(t) != "forbidden" {
			t.Errorf("%s with a user token: %d, want 403", path, r.Status)
		}
	}
	ctx := context.Background()
	if err := h.store.SetRole(ctx, "sam@example.com", auth.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if r := h.do(http.MethodGet, "/v1/admin/stats", admin, "", nil); r.Status != http.StatusForbidden {
		t.Errorf("an old token keeps its old role: %d, want 403", r.Status)
	}
	r := h.postJSON("/v1/auth/login", "", map[string]string{"email": "sam@example.com", "password": "correct horse battery"})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.json(t, &tok)
	admin = tok.AccessToken

	// One image done, one failed (undecodable).
	var done, failed imageJSON
	h.upload(user, "ok.jpg", testenv.JPEG(t, 640, 480, 1)).json(t, &done)
	h.upload(user, "bad.jpg", testenv.CorruptJPEG(t, 640, 480)).json(t, &failed)
	h.waitFor(user, done.ID)
	h.waitFor(user, failed.ID)

	r = h.do(http.MethodGet, "/v1/admin/stats", admin, "", nil)
	var stats struct {
		Images map[string]int
		Queues map[string]map[string]int
	}
	r.json(t, &stats)
	if r.Status != 200 || stats.Images["done"] != 1 || stats.Images["failed"] != 1 || stats.Images["queued"] != 0 || stats.Queues["images"] == nil {
		t.Errorf("stats: %d %s", r.Status, r.Body)
	}
	r = h.do(http.MethodGet, "/v1/admin/images?status=failed", admin, "", nil)
	var list struct {
		Items []struct {
			ID     string `json:"id"`
			UserID string `json:"user_id"`
		}
	}
	r.json(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != failed.ID || list.Items[0].UserID == "" {
		t.Errorf("admin list of failed images: %s", r.Body)
	}
	if r := h.do(http.MethodGet, "/v1/admin/images?status=bogus", admin, "", nil); r.Status != 400 {
		t.Errorf("bad status filter: %d, want 400", r.Status)
	}

	// The owner may reprocess a failed image, not a done one; nobody else.
	if r := h.do(http.MethodPost, "/v1/images/"+done.ID+"/reprocess", user, "", nil); r.Status != http.StatusConflict {
		t.Errorf("owner reprocessing a done image: %d, want 409", r.Status)
	}
	stranger := h.user("tom@example.com")
	if r := h.do(http.MethodPost, "/v1/images/"+failed.ID+"/reprocess", stranger, "", nil); r.Status != http.StatusNotFound {
		t.Errorf("stranger reprocessing: %d, want 404", r.Status)
	}
	// Repair the failed image's original, as if the failure had been ours,
	// then reprocess: it must end done with variants.
	src := testenv.JPEG(t, 640, 480, 1)
	if err := h.blobs.Put(ctx, image.OriginalKey(mustImage(t, h, failed.ID).UserID, failed.ID), bytes.NewReader(src), int64(len(src)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	r = h.do(http.MethodPost, "/v1/images/"+failed.ID+"/reprocess", user, "", nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("owner reprocessing a failed image: %d %s", r.Status, r.Body)
	}
	if again := h.waitFor(user, failed.ID); again.Status != "done" || len(again.Variants) != 3 || again.Error != nil {
		t.Errorf("after reprocess: %s %+v", again.Status, again.Error)
	}
	// An admin may reprocess any image, a done one included.
	if r := h.do(http.MethodPost, "/v1/images/"+done.ID+"/reprocess", admin, "", nil); r.Status != http.StatusAccepted {
		t.Fatalf("admin reprocessing a done image: %d %s", r.Status, r.Body)
	}
	if again := h.waitFor(user, done.ID); again.Status != "done" || len(again.Variants) != 3 {
		t.Errorf("after admin reprocess: %s", again.Status)
	}
}

func mustImage(t *testing.T, h *harness, id string) *image.Image {
	img, err := h.store.Image(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
