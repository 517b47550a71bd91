package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/pkg/client"
)

// fakeAPI answers the few routes a test needs, with tokens that rotate:
// each refresh token works once, and each access token is "access-N".
type fakeAPI struct {
	t         *testing.T
	mu        sync.Mutex
	refreshes int
	refresh   string // the one refresh token that works
	routes    map[string]http.HandlerFunc
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, refresh: "refresh-0", routes: map[string]http.HandlerFunc{}}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/auth/refresh" {
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if body.RefreshToken != f.refresh {
			writeError(w, 401, "invalid_refresh_token")
			return
		}
		f.refreshes++
		f.refresh = fmt.Sprintf("refresh-%d", f.refreshes)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("access-%d", f.refreshes),
			"token_type": "Bearer", "expires_in": 900, "refresh_token": f.refresh})
		return
	}
	h, ok := f.routes[r.Method+" "+r.URL.Path]
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		writeError(w, 404, "not_found")
		return
	}
	h(w, r)
}

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"m"}}`, code)
}

func imageJSON(id, status string) string {
	return fmt.Sprintf(`{"id":%q,"status":%q,"filename":"a.jpg","content_type":"image/jpeg","bytes":3,"width":1,"height":1,`+
		`"variants":[],"error":null,"created_at":"2026-11-28T10:00:00Z","updated_at":"2026-11-28T10:00:00Z"}`, id, status)
}

// session returns a Session whose access token "access-0" expires in
// expiresIn.
func session(t *testing.T, url string, expiresIn time.Duration) *client.Session {
	t.Helper()
	tokens, err := client.NewTokenSource(url, client.TokenSet{AccessToken: "access-0", RefreshToken: "refresh-0",
		Expiry: time.Now().Add(expiresIn)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSession(url, tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTokenRefreshedOnce: a token about to expire is refreshed once, by
// one of many concurrent callers; the rotated refresh token is not sent
// twice (the API would end every session).
func TestTokenRefreshedOnce(t *testing.T) {
	f, ts := newFakeAPI(t)
	var seen sync.Map
	f.routes["GET /v1/images/x"] = func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"), true)
		io.WriteString(w, imageJSON("x", "done"))
	}
	s := session(t, ts.URL, 30*time.Second) // inside the refresh margin
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r, err := s.GetImageWithResponse(context.Background(), "x", nil)
			if err != nil || r.JSON200 == nil {
				t.Errorf("get: %v %v", err, r)
			}
		})
	}
	wg.Wait()
	if f.refreshes != 1 {
		t.Errorf("%d refreshes, want 1", f.refreshes)
	}
	seen.Range(func(k, _ any) bool {
		if k != "Bearer access-1" {
			t.Errorf("sent %v, want the refreshed token", k)
		}
		return true
	})
	if got := s.Tokens().Tokens(); got.RefreshToken != "refresh-1" || time.Until(got.Expiry) < 14*time.Minute {
		t.Errorf("tokens after refresh: %+v", got)
	}
}

// TestRefusedTokenRefreshed: a token the API refuses before its expiry is
// refreshed and the request sent again.
func TestRefusedTokenRefreshed(t *testing.T) {
	f, ts := newFakeAPI(t)
	f.routes["DELETE /v1/images/x"] = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer access-1" {
			writeError(w, 401, "invalid_token")
			return
		}
		w.WriteHeader(204)
	}
	s := session(t, ts.URL, time.Hour)
	r, err := s.DeleteImageWithResponse(context.Background(), "x")
	if err != nil || r.StatusCode() != 204 {
		t.Fatalf("delete: %v %v", err, r.Status())
	}
}

// TestUploadProgress: the body is multipart with the file under "file",
// its length known in advance, and progress reaches the file's size.
func TestUploadProgress(t *testing.T) {
	f, ts := newFakeAPI(t)
	data := strings.Repeat("0123456789", 100_000)
	f.routes["POST /v1/images"] = func(w http.ResponseWriter, r *http.Request) {
		_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		body, _ := io.ReadAll(r.Body)
		if r.ContentLength != int64(len(body)) {
			t.Errorf("Content-Length %d, body %d bytes", r.ContentLength, len(body))
		}
		part, err := multipart.NewReader(strings.NewReader(string(body)), params["boundary"]).NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(part)
		if part.FormName() != "file" || part.FileName() != `my "cat".jpg` || string(got) != data {
			t.Errorf("part %q %q, %d bytes", part.FormName(), part.FileName(), len(got))
		}
		w.Header().Set("Location", "/v1/images/x")
		w.WriteHeader(202)
		io.WriteString(w, imageJSON("x", "queued"))
	}
	s := session(t, ts.URL, time.Hour)
	var last atomic.Int64
	calls := 0
	img, err := s.Upload(context.Background(), `my "cat".jpg`, strings.NewReader(data), int64(len(data)), func(n int64) {
		if n < last.Load() {
			t.Errorf("progress went back from %d to %d", last.Load(), n)
		}
		last.Store(n)
		calls++
	})
	if err != nil || img.Id != "x" || img.Status != client.ImageStatusQueued {
		t.Fatalf("upload: %v %+v", err, img)
	}
	if last.Load() != int64(len(data)) || calls < 2 {
		t.Errorf("progress ended at %d after %d calls, want %d", last.Load(), calls, len(data))
	}
}

// TestUploadError: an error answer comes back as an *APIError with its
// code and Retry-After.
func TestUploadError(t *testing.T) {
	f, ts := newFakeAPI(t)
	f.routes["POST /v1/images"] = func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "7")
		writeError(w, 503, "uploads_saturated")
	}
	_, err := session(t, ts.URL, time.Hour).Upload(context.Background(), "a.jpg", strings.NewReader("abc"), -1, nil)
	var apiErr *client.APIError
	if !client.IsCode(err, "uploads_saturated") || !asAPIError(err, &apiErr) || apiErr.Status != 503 || apiErr.RetryAfter != 7*time.Second {
		t.Errorf("upload error %#v", err)
	}
}

func asAPIError(err error, target **client.APIError) bool {
	e, ok := err.(*client.APIError)
	*target = e
	return ok
}

// TestWaitForImageLongPoll: each request asks for the long poll, and
// against a server that answers at once the client still gets there.
func TestWaitForImageLongPoll(t *testing.T) {
	f, ts := newFakeAPI(t)
	var calls atomic.Int32
	f.routes["GET /v1/images/x"] = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "1m0s" {
			t.Errorf("wait=%q, want 1m0s", r.URL.Query().Get("wait"))
		}
		status := []string{"queued", "processing", "processing", "done"}[min(int(calls.Add(1))-1, 3)]
		io.WriteString(w, imageJSON("x", status))
	}
	var seen []client.ImageStatus
	img, err := session(t, ts.URL, time.Hour).WaitForImage(context.Background(), "x", func(img *client.Image) {
		seen = append(seen, img.Status)
	})
	if err != nil || img.Status != client.ImageStatusDone {
		t.Fatalf("wait: %v %+v", err, img)
	}
	if fmt.Sprint(seen) != "[queued processing done]" {
		t.Errorf("statuses seen %v", seen)
	}
}

// TestOtherUnauthorizedNotRefreshed: a 401 that is not about the access
// token (logout's invalid_refresh_token) comes back as it is, without
// spending the refresh token.
func TestOtherUnauthorizedNotRefreshed(t *testing.T) {
	f, ts := newFakeAPI(t)
	f.routes["POST /v1/auth/logout"] = func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 401, "invalid_refresh_token")
	}
	r, err := session(t, ts.URL, time.Hour).LogoutWithResponse(context.Background(), client.LogoutJSONRequestBody{RefreshToken: "x"})
	if err != nil || !client.IsCode(client.ErrorOf(r.HTTPResponse, r.Body), "invalid_refresh_token") {
		t.Fatalf("logout: %v %s", err, r.Body)
	}
	if f.refreshes != 0 {
		t.Errorf("%d refreshes, want none", f.refreshes)
	}
}
