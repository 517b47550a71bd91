package webapp_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/imagesvc/imagesvc/internal/webapp"
)

func serve(t *testing.T, cfg webapp.Config) *httptest.Server {
	t.Helper()
	e := echo.New()
	webapp.New(cfg).Register(e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestHeaders: every answer of the app carries a policy that runs
// scripts from this server only (none inline), loads images from here and
// from where the delivery URLs redirect, and may not be framed.
func TestHeaders(t *testing.T) {
	ts := serve(t, webapp.Config{ImageSources: []string{"http://127.0.0.1:7070"}, MaxUploadBytes: 25 << 20})
	for _, path := range []string{"/", "/app/main.js", "/app/style.css"} {
		resp, _ := get(t, ts.URL+path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "connect-src 'self'",
			"img-src 'self' http://127.0.0.1:7070;", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q allows something unsafe", path, csp)
		}
		for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			"X-Frame-Options": "DENY", "Cache-Control": "no-cache"} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, name, got, want)
			}
		}
	}
	resp, _ := get(t, ts.URL+"/app/main.js")
	if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("main.js Content-Type = %q", ct)
	}
	if again, _ := get(t, ts.URL+"/app/main.js", "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("main.js with its ETag: %d, want 304", again.StatusCode)
	}
	for _, path := range []string{"/app/nope.js", "/app/index.html", "/app/..%2fwebapp.go"} {
		if resp, _ := get(t, ts.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	_, page := get(t, ts.URL+"/")
	if !strings.Contains(page, `content="26214400"`) {
		t.Errorf("the page does not carry the upload limit:\n%s", page)
	}

	// When where images redirect is not known, they may come from any https: host.
	resp, _ = get(t, serve(t, webapp.Config{}).URL+"/")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' https:;") {
		t.Errorf("Content-Security-Policy %q, want img-src with https:", csp)
	}
}

// TestNoMarkupFromData reads the app's sources for the ways data turns
// into markup or code, and for tokens kept where other scripts read them:
// filenames and messages come from users, so text goes in as text nodes
// (dom.js) and nothing is parsed.
func TestNoMarkupFromData(t *testing.T) {
	forbidden := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|` +
		`setAttribute\(['"]style|localStorage|sessionStorage|document\.cookie|srcdoc`)
	err := filepath.WalkDir("static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			code := line
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				code = "" // comments may name what the code avoids
			}
			if m := forbidden.FindString(code); m != "" {
				t.Errorf("%s:%d uses %s: %s", path, i+1, m, strings.TrimSpace(line))
			}
		}
		if strings.HasSuffix(path, ".html") {
			if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]|\son[a-z]+=|\sstyle=`).Match(b) {
				t.Errorf("%s has an inline script, handler or style", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
