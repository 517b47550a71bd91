package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// loginFrom posts a login as if from client address addr (through a
// trusted proxy's X-Forwarded-For).
func (h *harness) loginFrom(addr, email, password string) int {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/auth/login", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	return send(h.t, h.client, req).Status
}

// TestLoginLimitPerAddress: failing logins on an email from one address
// locks that address out of the email, not its owner elsewhere.
func TestLoginLimitPerAddress(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.API.LoginRatePerMinute = 3
		s.API.LoginRatePerMinutePerAddress = 100
		s.API.TrustedProxies = cidrs(t, "127.0.0.0/8")
	})
	h.user("owner@example.com")
	var got []int
	for range 4 {
		got = append(got, h.loginFrom("203.0.113.7", "owner@example.com", "guessing wrong"))
	}
	if fmt.Sprint(got) != "[401 401 401 429]" {
		t.Errorf("attacker's logins answered %v, want [401 401 401 429]", got)
	}
	if s := h.loginFrom("198.51.100.2", "owner@example.com", "correct horse battery"); s != http.StatusOK {
		t.Errorf("the owner's login from another address: %d, want 200", s)
	}
}

// TestWebAppLimitPerAddress: the web app's page and assets count against
// one limit per client address, as the API's routes without a token do,
// and a refused request says when to come back.
func TestWebAppLimitPerAddress(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.PageRatePerMinutePerAddress = 3 })
	var got []int
	for _, path := range []string{"/", "/app/main.js", "/app/style.css", "/"} {
		r := h.do(http.MethodGet, path, "", "", nil)
		got = append(got, r.Status)
		if r.Status == http.StatusTooManyRequests && (r.errorCode(t) != "rate_limited" || r.Header.Get("Retry-After") == "") {
			t.Errorf("GET %s: %d %s, want rate_limited with Retry-After", path, r.Status, r.Body)
		}
	}
	if fmt.Sprint(got) != "[200 200 200 429]" {
		t.Errorf("the app's requests answered %v, want [200 200 200 429]", got)
	}
	// The API itself is not held back by the page's limit.
	if r := h.do(http.MethodGet, "/healthz", "", "", nil); r.Status != http.StatusOK {
		t.Errorf("/healthz after the page's limit: %d", r.Status)
	}
}

// TestTrustedProxiesOnly: X-Forwarded-For counts only from the configured
// proxies; a loopback or private peer is not one unless listed, so it
// cannot spread its attempts over invented addresses.
func TestTrustedProxiesOnly(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.API.LoginRatePerMinute = 100
		s.API.LoginRatePerMinutePerAddress = 3
		s.API.TrustedProxies = cidrs(t, "192.0.2.0/24") // not the tests' loopback peer
	})
	var got []int
	for i := range 4 {
		got = append(got, h.loginFrom(fmt.Sprintf("203.0.113.%d", i+1), "nobody@example.com", "wrong password"))
	}
	if fmt.Sprint(got) != "[401 401 401 429]" {
		t.Errorf("logins with invented X-Forwarded-For answered %v, want [401 401 401 429]", got)
	}
}

// TestSignupLimits: signups per address are limited, and password hashes
// beyond the process's bound get 503 with Retry-After rather than memory.
func TestSignupLimits(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.API.SignupRatePerMinutePerAddress = 2 })
	var got []int
	for i := range 3 {
		r := h.postJSON("/v1/auth/signup", "", map[string]string{"email": fmt.Sprintf("s%d@example.com", i), "password": "correct horse battery"})
		got = append(got, r.Status)
	}
	if fmt.Sprint(got) != "[201 201 429]" {
		t.Errorf("signups from one address answered %v, want [201 201 429]", got)
	}

	busy := newHarness(t, func(s *settings) {
		s.Auth.Hasher = auth.HashParams{MemoryKiB: 16 * 1024, Time: 4, Threads: 1}
		s.Auth.MaxConcurrentHashes = 1
		s.Auth.HashWait = time.Millisecond
	})
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r := busy.postJSON("/v1/auth/signup", "", map[string]string{"email": fmt.Sprintf("b%d@example.com", i), "password": "correct horse battery"})
			if r.Status == http.StatusServiceUnavailable && (r.errorCode(t) != "auth_busy" || r.Header.Get("Retry-After") == "") {
				t.Errorf("busy signup: %d %s, want auth_busy with Retry-After", r.Status, r.Body)
			}
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusCreated] == 0 || codes[http.StatusServiceUnavailable] == 0 || len(codes) != 2 {
		t.Errorf("8 signups at once with one hash at a time answered %v, want some 201 and some 503", codes)
	}
}

// TestMetricsMethodsBounded: invented HTTP methods do not become metric
// label values.
func TestMetricsMethodsBounded(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		req, _ := http.NewRequest(fmt.Sprintf("BREW%d", i), h.url+"/v1/images", nil)
		send(t, http.DefaultClient, req)
	}
	metrics := string(h.do(http.MethodGet, "/metrics", "", "", nil).Body)
	if strings.Contains(metrics, "BREW") || !strings.Contains(metrics, `method="OTHER"`) {
		t.Errorf("/metrics has invented methods as labels, or no OTHER:\n%s", grepLines(metrics, "imagesvc_http_requests_total"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUploadSlotsPerUser: one user cannot hold every upload slot; a
// second user still gets one.
func TestUploadSlotsPerUser(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.API.MaxConcurrentUploads = 4
		s.API.MaxConcurrentUploadsPerUser = 1
	})
	greedy, other := h.user("greedy@example.com"), h.user("other@example.com")
	ct, body := multipartBody(t, "file", "a.jpg", testenv.JPEG(t, 320, 240, 1))
	pr, pw := io.Pipe()
	first := make(chan response, 1)
	go func() { first <- h.do(http.MethodPost, "/v1/images", greedy, ct, pr) }()
	pw.Write(body.Bytes()[:100]) // in flight, holding greedy's one slot
	time.Sleep(300 * time.Millisecond)

	r := h.upload(greedy, "b.jpg", testenv.JPEG(t, 320, 240, 1))
	if r.Status != http.StatusTooManyRequests || r.errorCode(t) != "too_many_uploads" || r.Header.Get("Retry-After") == "" {
		t.Errorf("greedy's second upload: %d %s, want 429 too_many_uploads with Retry-After", r.Status, r.Body)
	}
	if r := h.upload(other, "c.jpg", testenv.JPEG(t, 320, 240, 1)); r.Status != http.StatusAccepted {
		t.Errorf("another user's upload meanwhile: %d %s, want 202", r.Status, r.Body)
	}
	pw.Write(body.Bytes()[100:])
	pw.Close()
	if r := <-first; r.Status != http.StatusAccepted {
		t.Errorf("greedy's first upload: %d %s", r.Status, r.Body)
	}
}

// TestSlowUploadRefused: a body trickling in below the minimum rate is
// refused with 408 once the grace period is over, and frees its slot.
func TestSlowUploadRefused(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.API.MaxConcurrentUploads = 1
		s.API.UploadMinBytesPerSecond = 10 << 10
		s.API.UploadGrace = 500 * time.Millisecond
	})
	token := h.user("slow@example.com")
	ct, body := multipartBody(t, "file", "a.jpg", testenv.JPEG(t, 640, 480, 1))
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		token, ct, body.Len())
	start := time.Now()
	for i := 0; i < 30 && time.Since(start) < 10*time.Second; i++ { // a byte every 100 ms, far below 10 KiB/s
		if _, err := conn.Write(body.Bytes()[i : i+1]); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickling upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "upload_too_slow") {
		t.Errorf("trickling upload: %d %s, want 408 upload_too_slow", resp.StatusCode, b)
	}
	if r := h.upload(token, "b.jpg", testenv.JPEG(t, 320, 240, 1)); r.Status != http.StatusAccepted {
		t.Errorf("upload after the slow one was cut: %d %s, want 202 (its slot freed)", r.Status, r.Body)
	}
}

func cidrs(t *testing.T, list ...string) []*net.IPNet {
	t.Helper()
	var out []*net.IPNet
	for _, c := range list {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestTamperedCursor: a cursor naming a time no database column holds is
// a bad request, not a failed query.
func TestTamperedCursor(t *testing.T) {
	h := newHarness(t)
	token := h.user("cursor@example.com")
	for _, raw := range []string{"253402300800000000.0196a3f0-0000-7000-8000-000000000001", "-62167219200000001.0196a3f0-0000-7000-8000-000000000001"} {
		r := h.do(http.MethodGet, "/v1/images?cursor="+base64.RawURLEncoding.EncodeToString([]byte(raw)), token, "", nil)
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_cursor" {
			t.Errorf("list with cursor %q: %d %s, want 400 invalid_cursor", raw, r.Status, r.Body)
		}
	}
}
