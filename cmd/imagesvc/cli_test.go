package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	_ "image/jpeg" // decode downloaded variants
	_ "image/png"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/app"
	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	imagedomain "github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/testenv"
	"github.com/imagesvc/imagesvc/pkg/client"
)

// redisDB is this package's Redis database (see testenv.RedisURL).
const redisDB = 6

// stack is the whole service over real MariaDB, Redis and S3, wired by
// internal/app as the binaries are (the API on an httptest server, a
// worker in this process), with the requests the CLI made.
type stack struct {
	url string
	// noStream makes /v1/events answer 404, as a server without it does.
	noStream bool
	mu       sync.Mutex
	requests []string // "GET /v1/events", "GET /v1/images/{id}?wait=1m0s", …
}

func newStack(t *testing.T, opts ...func(*config.Config)) *stack {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, _ := testenv.MustStore(t)
	blobs, _ := testenv.MustBucket(t)
	rdb := testenv.MustRedis(t, redisDB)
	cfg, _ := config.FromEnv(config.API, func(string) string { return "" })
	cfg.Redis.URL = testenv.RedisURL(redisDB)
	cfg.Auth.JWTSecret = []byte("test-secret-test-secret-test-secret!")
	cfg.Image.DeliveryKeys = []imagedomain.DeliveryKey{{ID: "t1", Secret: []byte("delivery-key-of-the-cli-tests-0123456789")}}
	cfg.Auth.Hasher = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}
	cfg.Webhook.AllowPrivate = true
	cfg.API.MaxUploadBytes = cfg.Image.MaxUploadBytes
	for _, o := range opts {
		o(&cfg)
	}
	deps := &app.Deps{Store: store, Redis: rdb, Blobs: blobs}
	reg := metrics.NewRegistry()
	worker, err := app.StartWorker(context.Background(), cfg, deps, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(worker.Stop)
	api, err := app.NewAPI(cfg, deps, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	s := &stack{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		s.mu.Unlock()
		if s.noStream && r.URL.Path == "/v1/events" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"not_found","message":"Not Found"}}`)
			return
		}
		api.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

// made reports whether the CLI made a request starting with prefix and
// holding each of parts.
func (s *stack) made(prefix string, parts ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.requests {
		if strings.HasPrefix(r, prefix) && !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(r, p) }) {
			return true
		}
	}
	return false
}

// imagesvc runs the CLI in process against the stack and returns its exit
// status and output.
func (s *stack) imagesvc(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = run(ctx, append([]string{"--server", s.url}, args...), env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		getenv: func(k string) string {
			if k == "IMAGESVC_PASSWORD" {
				return testenv.Password
			}
			return os.Getenv(k)
		}})
	return code, out.String(), errOut.String()
}

// mustRun runs the CLI and requires exit status 0.
func (s *stack) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := s.imagesvc(t, args...)
	if code != 0 {
		t.Fatalf("imagesvc %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, s)
	}
}

type result struct {
	File   string `json:"file"`
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  *struct{ Code, Message string }
	Image  *struct {
		Width, Height int
		Variants      []struct {
			Name          string
			Width, Height int
			Bytes         int64
		}
	}
}

// TestCLI: sign up, upload a directory of two photos and wait for them,
// download the variants (they decode to the sizes reported), then files
// that are refused or fail make the exit status 1.
func TestCLI(t *testing.T) {
	s := newStack(t)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("HOME", t.TempDir())

	s.mustRun(t, "signup", "--email", "cli@example.com")
	creds := filepath.Join(config, "imagesvc", "credentials.json")
	for path, want := range map[string]fs.FileMode{creds: 0o600, filepath.Dir(creds): 0o700 | fs.ModeDir} {
		if st, err := os.Stat(path); err != nil || st.Mode() != want {
			t.Fatalf("%s: %v %v, want mode %v", path, st.Mode(), err, want)
		}
	}
	if out := s.mustRun(t, "login", "--email", "cli@example.com"); !strings.Contains(out, "logged in") {
		t.Errorf("login said %q", out)
	}

	photos := t.TempDir()
	os.WriteFile(filepath.Join(photos, "beach.jpg"), testenv.JPEG(t, 1600, 1200, 1), 0o644)
	os.WriteFile(filepath.Join(photos, "logo.png"), testenv.PNG(t, 500, 400, 128), 0o644)
	os.WriteFile(filepath.Join(photos, "notes.txt"), []byte("not a photo"), 0o644) // not picked from a directory
	out := s.mustRun(t, "upload", "--wait", "--json", photos)
	var results []result
	decodeJSON(t, out, &results)
	if len(results) != 2 {
		t.Fatalf("%d results, want 2: %s", len(results), out)
	}
	downloads := t.TempDir()
	for _, r := range results {
		if r.Status != "done" || r.Image == nil || len(r.Image.Variants) != 3 {
			t.Fatalf("%s: %+v", r.File, r)
		}
		var saved []struct {
			Variant       string
			Path          string
			Bytes         int64
			Width, Height int
		}
		decodeJSON(t, s.mustRun(t, "download", r.ID, "-o", downloads, "--json"), &saved)
		if len(saved) != 3 {
			t.Fatalf("downloaded %d variants of %s, want 3", len(saved), r.File)
		}
		for i, d := range saved {
			v := r.Image.Variants[i]
			b, err := os.ReadFile(d.Path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
			if err != nil || cfg.Width != v.Width || cfg.Height != v.Height || int64(len(b)) != v.Bytes {
				t.Errorf("%s: %dx%d, %d bytes (%v), the image says %dx%d, %d bytes", d.Path, cfg.Width, cfg.Height, len(b), err, v.Width, v.Height, v.Bytes)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(downloads, "beach-small.jpg")); err != nil {
		t.Errorf("variant file name: %v", err)
	}

	// How the CLI waited: with the event stream where the server has one
	// (it answers 401 to no token there, not 404), else the long poll.
	resp, err := http.Get(s.url + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized && !s.made("GET /v1/events?"):
		t.Error("the server has an event stream and upload --wait did not follow it")
	case resp.StatusCode == http.StatusNotFound && !s.made("GET /v1/images/", "wait=1m0s"):
		t.Error("the server has no event stream and upload --wait did not ask with the long poll")
	}

	// A text file named .jpg is refused (415), a corrupt JPEG is accepted
	// and fails.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "text.jpg"), []byte("hello, this is text"), 0o644)
	os.WriteFile(filepath.Join(bad, "corrupt.jpg"), testenv.CorruptJPEG(t, 640, 480), 0o644)
	code, out, errOut := s.imagesvc(t, "upload", "--wait", "--json", filepath.Join(bad, "text.jpg"), filepath.Join(bad, "corrupt.jpg"))
	if code != 1 {
		t.Errorf("upload of a bad and a corrupt file: exit %d, want 1\n%s", code, errOut)
	}
	decodeJSON(t, out, &results)
	if len(results) != 2 || results[0].Status != "rejected" || results[0].Error == nil || results[0].Error.Code != "unsupported_type" ||
		results[1].Status != "failed" || results[1].Error == nil || results[1].Error.Code != "undecodable_image" {
		t.Errorf("results: %s", out)
	}
	if !strings.Contains(errOut, "2 files processed: 1 failed, 1 rejected") {
		t.Errorf("summary on stderr: %q", errOut)
	}

	var list []struct{ ID, Status string }
	decodeJSON(t, s.mustRun(t, "ls", "--json"), &list)
	if len(list) != 3 || list[0].Status != "failed" {
		t.Errorf("ls: %+v", list)
	}
	s.mustRun(t, "rm", list[0].ID)
	if code, _, errOut := s.imagesvc(t, "get", list[0].ID); code != 1 || !strings.Contains(errOut, "not_found") {
		t.Errorf("get after rm: exit %d, %q", code, errOut)
	}
}

// TestCLIRefreshAndWebhooks: an expired access token is refreshed without
// a word and the new pair kept; the webhook commands work end to end.
func TestCLIRefreshAndWebhooks(t *testing.T) {
	s := newStack(t)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	s.mustRun(t, "signup", "--email", "hooks@example.com")

	// Age the kept access token: the next command must refresh first.
	creds := filepath.Join(config, "imagesvc", "credentials.json")
	var doc struct {
		Servers map[string]map[string]any `json:"servers"`
	}
	b, _ := os.ReadFile(creds)
	decodeJSON(t, string(b), &doc)
	before := doc.Servers[s.url]["refresh_token"]
	doc.Servers[s.url]["expiry"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
	b, _ = json.Marshal(doc)
	os.WriteFile(creds, b, 0o600)
	s.mustRun(t, "ls")
	b, _ = os.ReadFile(creds)
	decodeJSON(t, string(b), &doc)
	if after := doc.Servers[s.url]["refresh_token"]; after == before || after == "" || !s.made("POST /v1/auth/refresh") {
		t.Errorf("refresh token %v after an expired access token, before %v", after, before)
	}

	var hits sync.WaitGroup
	hits.Add(1)
	var once sync.Once
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(hits.Done)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	var hook struct{ ID, Secret string }
	decodeJSON(t, s.mustRun(t, "webhooks", "create", "--url", receiver.URL, "--json"), &hook)
	if hook.ID == "" || !strings.HasPrefix(hook.Secret, "whsec_") {
		t.Fatalf("created %+v", hook)
	}
	if out := s.mustRun(t, "webhooks", "ls"); !strings.Contains(out, hook.ID) || !strings.Contains(out, receiver.URL) {
		t.Errorf("webhooks ls: %s", out)
	}
	var ping struct {
		StatusCode int `json:"status_code"`
	}
	decodeJSON(t, s.mustRun(t, "webhooks", "ping", hook.ID, "--json"), &ping)
	if ping.StatusCode != http.StatusNoContent {
		t.Errorf("ping: %+v", ping)
	}
	hits.Wait()
	s.mustRun(t, "webhooks", "deliveries", hook.ID)
	s.mustRun(t, "webhooks", "rm", hook.ID)
	if code, _, errOut := s.imagesvc(t, "webhooks", "rm", hook.ID); code != 1 || !strings.Contains(errOut, "not_found") {
		t.Errorf("rm twice: exit %d %q", code, errOut)
	}
	if code, _, _ := s.imagesvc(t, "webhooks", "rm"); code != 2 {
		t.Errorf("a missing argument: exit %d, want 2", code)
	}
	s.mustRun(t, "logout")
	if code, _, errOut := s.imagesvc(t, "ls"); code != 1 || !strings.Contains(errOut, "login") {
		t.Errorf("ls after logout: exit %d %q", code, errOut)
	}
}

// TestEventsAcrossTokenExpiry: the client's event stream outlives its
// access token: at token.expired it refreshes and reconnects from the last
// event, so an image finished after the expiry is still announced, once.
func TestEventsAcrossTokenExpiry(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.Auth.AccessTTL = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.Signup(ctx, s.url, "stream@example.com", testenv.Password); err != nil {
		t.Fatal(err)
	}
	tokens, err := client.Login(ctx, s.url, "stream@example.com", testenv.Password)
	if err != nil {
		t.Fatal(err)
	}
	source, err := client.NewTokenSource(s.url, tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	source.Margin = 0 // use each token to its end, so the server's expiry comes first
	session, err := client.NewSession(s.url, source, nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := session.Events(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	upload := func(name string) string {
		t.Helper()
		jpg := testenv.JPEG(t, 64, 48, 1)
		img, err := session.Upload(ctx, name, bytes.NewReader(jpg), int64(len(jpg)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return img.Id
	}
	next := func() client.StreamEvent {
		t.Helper()
		select {
		case ev, ok := <-stream.C:
			if !ok {
				t.Fatalf("stream ended: %v", stream.Err())
			}
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return client.StreamEvent{}
	}
	first := upload("first.jpg")
	if ev := next(); ev.Event.Data.Id != first || ev.Type != "image.processed" || ev.ID == "" {
		t.Fatalf("first event %+v", ev)
	}
	time.Sleep(3 * time.Second) // the stream's token expires
	second := upload("second.jpg")
	if ev := next(); ev.Event.Data.Id != second {
		t.Fatalf("after the token expired: event of %s, want %s", ev.Event.Data.Id, second)
	}
	if source.Tokens().RefreshToken == tokens.RefreshToken || !s.made("POST /v1/auth/refresh") {
		t.Error("the stream went on without a refresh")
	}
	s.mu.Lock()
	n := strings.Count(strings.Join(s.requests, " "), "GET /v1/events")
	s.mu.Unlock()
	if n < 2 {
		t.Errorf("%d connections to the stream, want a reconnection", n)
	}
}

// TestCLIWithoutEventStream: against a server without the event stream,
// upload --wait waits with the long poll.
func TestCLIWithoutEventStream(t *testing.T) {
	s := newStack(t)
	s.noStream = true
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	s.mustRun(t, "signup", "--email", "poll@example.com")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.jpg"), testenv.JPEG(t, 320, 240, 1), 0o644)
	var results []result
	decodeJSON(t, s.mustRun(t, "upload", "--wait", "--json", filepath.Join(dir, "a.jpg")), &results)
	if len(results) != 1 || results[0].Status != "done" {
		t.Fatalf("results %+v", results)
	}
	if !s.made("GET /v1/images/"+results[0].ID, "wait=1m0s") {
		t.Error("upload --wait did not ask with the long poll")
	}
}

// TestCLIAccount: account shows the usage against the quota; account
// delete needs --yes, deletes the account and forgets its credentials.
func TestCLIAccount(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.Image.QuotaImages = 5 })
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	s.mustRun(t, "signup", "--email", "leaving@example.com")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.jpg"), testenv.JPEG(t, 320, 240, 1), 0o644)
	s.mustRun(t, "upload", filepath.Join(dir, "a.jpg"))
	var a struct {
		Email string
		Usage struct{ Images, Bytes int64 }
		Quota struct{ Images, Bytes *int64 }
	}
	decodeJSON(t, s.mustRun(t, "account", "--json"), &a)
	if a.Email != "leaving@example.com" || a.Usage.Images != 1 || a.Usage.Bytes == 0 || a.Quota.Images == nil || *a.Quota.Images != 5 || a.Quota.Bytes != nil {
		t.Errorf("account --json: %+v", a)
	}
	if out := s.mustRun(t, "account"); !strings.Contains(out, "1 of 5") || !strings.Contains(out, "(no quota)") {
		t.Errorf("account:\n%s", out)
	}
	if code, _, errOut := s.imagesvc(t, "account", "delete"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Errorf("account delete without --yes: exit %d %q, want 2", code, errOut)
	}
	s.mustRun(t, "account") // still there
	if out := s.mustRun(t, "account", "delete", "--yes"); !strings.Contains(out, "leaving@example.com") || !strings.Contains(out, "deleted") {
		t.Errorf("account delete: %q", out)
	}
	if code, _, errOut := s.imagesvc(t, "account"); code != 1 || !strings.Contains(errOut, "login") {
		t.Errorf("account after deleting it: exit %d %q, want 1 and a hint to log in", code, errOut)
	}
	if code, _, errOut := s.imagesvc(t, "login", "--email", "leaving@example.com"); code != 1 || !strings.Contains(errOut, "invalid_credentials") {
		t.Errorf("login to the deleted account: exit %d %q", code, errOut)
	}
}
