package health_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/health"
)

func TestDrain(t *testing.T) {
	d := &health.Drain{}
	get := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz/ready", nil))
		return rec
	}
	if rec := get(d.Handler()); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("before Begin: %d %s, want 200 ok", rec.Code, rec.Body)
	}
	d.Begin()
	rec := get(d.Handler())
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusServiceUnavailable ||
		body.Error.Code != "draining" || body.Error.Message == "" || rec.Header().Get("Retry-After") == "" {
		t.Errorf("after Begin: %d %s (Retry-After %q), want 503 draining with Retry-After", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	var none *health.Drain
	if rec := get(none.Handler()); rec.Code != http.StatusOK {
		t.Errorf("nil Drain: %d, want 200", rec.Code)
	}
}

func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// A listen address without a host, or with the unspecified one, is
	// probed on loopback.
	for _, addr := range []string{":" + port, "0.0.0.0:" + port, "127.0.0.1:" + port} {
		if err := health.Probe(context.Background(), addr); err != nil {
			t.Errorf("Probe(%s) = %v, want nil", addr, err)
		}
	}
	status = http.StatusServiceUnavailable
	if err := health.Probe(context.Background(), ":"+port); err == nil {
		t.Error("Probe of a 503 = nil, want an error")
	}
	srv.Close()
	if err := health.Probe(context.Background(), ":"+port); err == nil {
		t.Error("Probe with nothing listening = nil, want an error")
	}
	if err := health.Probe(context.Background(), "8080"); err == nil {
		t.Error("Probe(8080) = nil, want an address error")
	}
}
