package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/app"
	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/httpapi"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/logctx"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/queue"
	"github.com/imagesvc/imagesvc/internal/s3store"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// redisDB is this package's Redis database (see testenv.RedisURL).
const redisDB = 1

// testDeliveryKey signs the harness's delivery URLs.
var testDeliveryKey = image.DeliveryKey{ID: "t1", Secret: []byte("delivery-key-of-the-tests-0123456789")}

// harness is the whole service over real MariaDB, Redis and S3, built by
// the same wiring as the binaries (internal/app): the API on an httptest
// server and a worker in the same process.
type harness struct {
	t      *testing.T
	url    string
	store  *gormstore.Store
	dbURL  string
	blobs  *s3store.Store
	rdb    *redis.Client
	images *image.Processor // the worker's: Process, Reconcile
	queue  *queue.Enqueuer
	hooks  *webhook.Service
	// accounts is the worker's: Reconcile finishes deletions.
	accounts *auth.Accounts
	secret   []byte
	// client checks every answer against openapi.yaml.
	client *http.Client
	// replica starts another API instance sharing every dependency and
	// returns its URL.
	replica func() string
	// worker starts another worker on every dependency.
	worker func() *app.Worker
	// stopWorker stops the worker newHarness started.
	stopWorker func()
	// replicaWith and workerWith start an API replica or a worker with
	// settings of their own (a new deployment's).
	replicaWith func(opts ...harnessOption) string
	workerWith  func(opts ...harnessOption) *app.Worker
}

// settings are what a test may change before the harness starts.
type settings struct {
	Auth    auth.Config
	Image   image.Config
	Queue   queue.Config
	API     httpapi.Config
	Webhook webhook.Config
}

type harnessOption func(*settings)

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	log := slog.New(logctx.NewHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	store, dbURL := testenv.MustStore(t)
	blobs, _ := testenv.MustBucket(t)
	rdb := testenv.MustRedis(t, redisDB)

	// Every setting's default, as a deployment that sets nothing gets it.
	// (FromEnv also says the dependencies are missing: here they come
	// from testenv.)
	cfg, _ := config.FromEnv(config.API, func(string) string { return "" })
	cfg.Auth.JWTSecret = []byte("test-secret-test-secret-test-secret!")
	cfg.Image.DeliveryKeys = []image.DeliveryKey{testDeliveryKey}
	cfg.Redis.URL = testenv.RedisURL(redisDB) // for the dashboard
	set := settings{Auth: cfg.Auth, Image: cfg.Image, Queue: cfg.Queue, Webhook: cfg.Webhook, API: cfg.API}
	set.Auth.Hasher = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1} // fast in tests
	set.Queue.RetryBase, set.Queue.RetryMax, set.Queue.MaxRetry = 200*time.Millisecond, time.Second, 2
	// Receivers are httptest servers on loopback; retries come quickly.
	set.Webhook.AllowPrivate = true
	set.Webhook.Schedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	for _, o := range opts {
		o(&set)
	}
	set.API.MaxUploadBytes = set.Image.MaxUploadBytes
	cfg.Auth, cfg.Image, cfg.Queue, cfg.Webhook, cfg.API = set.Auth, set.Image, set.Queue, set.Webhook, set.API

	// One process with both, as the quickstart runs them: the worker's
	// metrics are in the API's /metrics.
	deps := &app.Deps{Store: store, Redis: rdb, Blobs: blobs}
	reg := metrics.NewRegistry()
	worker, err := app.StartWorker(context.Background(), cfg, deps, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	var stopOnce sync.Once
	stopWorker := func() { stopOnce.Do(worker.Stop) }
	t.Cleanup(stopWorker)
	api, err := app.NewAPI(cfg, deps, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	ts := httptest.NewServer(api.Handler)
	t.Cleanup(ts.Close)
	t.Cleanup(api.EndStreams) // before the server closes: it waits for every response
	_, router := spec(t)
	h := &harness{t: t, url: ts.URL, store: store, dbURL: dbURL, blobs: blobs, rdb: rdb, images: worker.Images, accounts: worker.Accounts,
		queue: queue.NewEnqueuer(rdb, cfg.Queue), hooks: worker.Webhooks, secret: cfg.Auth.JWTSecret,
		client: &http.Client{Transport: validating{t: t, router: router}}, stopWorker: stopWorker}
	// with returns cfg changed by more options.
	with := func(opts []harnessOption) config.Config {
		c := cfg
		s := settings{Auth: c.Auth, Image: c.Image, Queue: c.Queue, Webhook: c.Webhook, API: c.API}
		for _, o := range opts {
			o(&s)
		}
		c.Auth, c.Image, c.Queue, c.Webhook, c.API = s.Auth, s.Image, s.Queue, s.Webhook, s.API
		return c
	}
	h.replicaWith = func(opts ...harnessOption) string {
		api, err := app.NewAPI(with(opts), deps, metrics.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(api.Close)
		ts := httptest.NewServer(api.Handler)
		t.Cleanup(ts.Close)
		t.Cleanup(api.EndStreams)
		return ts.URL
	}
	h.workerWith = func(opts ...harnessOption) *app.Worker {
		w, err := app.StartWorker(context.Background(), with(opts), deps, metrics.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		return w
	}
	// A second API replica on the same database, Redis and bucket.
	h.replica = func() string {
		api, err := app.NewAPI(cfg, deps, metrics.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(api.Close)
		ts := httptest.NewServer(api.Handler)
		t.Cleanup(ts.Close)
		t.Cleanup(api.EndStreams)
		return ts.URL
	}
	h.worker = func() *app.Worker {
		w, err := app.StartWorker(context.Background(), cfg, deps, metrics.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		return w
	}
	return h
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorCode returns the code of a JSON error body, failing the test if the
// body is not one.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string }
	}
	r.json(t, &body)
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("status %d body %s: not a JSON error", r.Status, r.Body)
	}
	return body.Error.Code
}

func (h *harness) do(method, path, token, contentType string, body io.Reader) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return send(h.t, h.client, req)
}

// send makes the request and reads the whole answer.
func send(t testing.TB, client *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (h *harness) postJSON(path, token string, v any) response {
	h.t.Helper()
	b, _ := json.Marshal(v)
	return h.do(http.MethodPost, path, token, "application/json", bytes.NewReader(b))
}

// user signs up a fresh account and logs in, returning its access token.
func (h *harness) user(email string) string {
	h.t.Helper()
	creds := map[string]string{"email": email, "password": "correct horse battery"}
	if r := h.postJSON("/v1/auth/signup", "", creds); r.Status != http.StatusCreated {
		h.t.Fatalf("signup: %d %s", r.Status, r.Body)
	}
	r := h.postJSON("/v1/auth/login", "", creds)
	if r.Status != http.StatusOK {
		h.t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.json(h.t, &tok)
	return tok.AccessToken
}

// multipartBody returns a body with one file part under field.
func multipartBody(t *testing.T, field, filename string, data []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if field != "" {
		fw, err := mw.CreateFormFile(field, filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	} else {
		mw.WriteField("note", "no file here")
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func (h *harness) upload(token, filename string, data []byte) response {
	h.t.Helper()
	ct, body := multipartBody(h.t, "file", filename, data)
	return h.do(http.MethodPost, "/v1/images", token, ct, body)
}

type imageJSON struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	SHA256      string `json:"sha256"`
	Variants    []struct {
		Name        string `json:"name"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
		Bytes       int64  `json:"bytes"`
		ContentType string `json:"content_type"`
		URL         string `json:"url"`
		Formats     []struct {
			ContentType string `json:"content_type"`
			Bytes       int64  `json:"bytes"`
			URL         string `json:"url"`
		} `json:"formats"`
	} `json:"variants"`
	Placeholder   *string `json:"placeholder"`
	DominantColor *string `json:"dominant_color"`
	Error         *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// waitFor polls an image until it reaches a final status.
func (h *harness) waitFor(token, id string) imageJSON {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := h.do(http.MethodGet, "/v1/images/"+id, token, "", nil)
		if r.Status != http.StatusOK {
			h.t.Fatalf("get image: %d %s", r.Status, r.Body)
		}
		var img imageJSON
		r.json(h.t, &img)
		if img.Status == "done" || img.Status == "failed" {
			return img
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("image %s still %s after 60s", id, img.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// objects lists the keys stored under prefix.
func (h *harness) objects(prefix string) []string {
	h.t.Helper()
	keys, err := h.blobs.Keys(context.Background(), prefix)
	if err != nil {
		h.t.Fatal(err)
	}
	return keys
}

// assertNothingStored checks that a user has no image rows and no objects.
func (h *harness) assertNothingStored(token string) {
	h.t.Helper()
	r := h.do(http.MethodGet, "/v1/images", token, "", nil)
	var list struct{ Items []imageJSON }
	r.json(h.t, &list)
	if len(list.Items) != 0 {
		h.t.Errorf("%d image rows stored, want none", len(list.Items))
	}
	if keys := h.objects(""); len(keys) != 0 {
		h.t.Errorf("objects stored: %v, want none", keys)
	}
}

// userID returns the user behind an access token (its sub claim).
func (h *harness) userID(token string) string {
	h.t.Helper()
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return h.secret, nil }); err != nil {
		h.t.Fatal(err)
	}
	return claims["sub"].(string)
}

// insertQueued writes a queued image row, and its original when src is not
// nil, without enqueueing a task: what a crash between commit and enqueue
// leaves behind.
func (h *harness) insertQueued(userID, id string, src []byte, w, ht int, createdAt time.Time) *image.Image {
	h.t.Helper()
	ctx := context.Background()
	at := createdAt.UTC().Truncate(time.Microsecond)
	img := &image.Image{ID: id, UserID: userID, Status: image.StatusQueued, Filename: "inserted.jpg",
		ContentType: "image/jpeg", Bytes: max(int64(len(src)), 1), Width: w, Height: ht, CreatedAt: at, UpdatedAt: at}
	if src != nil {
		if err := h.blobs.Put(ctx, img.OriginalKey(), bytes.NewReader(src), int64(len(src)), "image/jpeg"); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := h.store.CreateImage(ctx, img); err != nil {
		h.t.Fatal(err)
	}
	return img
}
