package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/httpapi"
)

// TestDocs: /docs is an HTML page whose script and document come from this
// server, under a policy that allows nothing from elsewhere; no network
// beyond the test server is needed.
func TestDocs(t *testing.T) {
	ts := httptest.NewServer(httpapi.New(httpapi.Deps{}, httpapi.Config{}, slog.New(slog.DiscardHandler)))
	defer ts.Close()
	_, router := spec(t)
	client := &http.Client{Transport: validating{t: t, router: router}}

	get := func(u string) (*http.Response, []byte) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	page, html := get(ts.URL + "/docs")
	if page.StatusCode != http.StatusOK || page.Header.Get("Content-Type") != "text/html; charset=UTF-8" {
		t.Fatalf("/docs: %d %q", page.StatusCode, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src 'self' 'unsafe") || strings.Contains(csp, "http") {
		t.Errorf("Content-Security-Policy %q allows inline scripts or another host", csp)
	}
	if strings.Contains(string(html), "<script>") || strings.Contains(string(html), "//") {
		t.Errorf("the page has an inline script or an absolute URL:\n%s", html)
	}

	// The page's own references, resolved as a browser does.
	base, _ := url.Parse(ts.URL + "/docs")
	refs := map[string]string{}
	for _, m := range regexp.MustCompile(`(src|spec-url)="([^"]+)"`).FindAllStringSubmatch(string(html), -1) {
		refs[m[1]] = base.ResolveReference(&url.URL{Path: m[2]}).String()
	}
	script, js := get(refs["src"])
	if script.StatusCode != http.StatusOK || script.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		!strings.Contains(string(js), "Redoc") || len(js) < 100_000 {
		t.Errorf("script %s: %d %q, %d bytes", refs["src"], script.StatusCode, script.Header.Get("Content-Type"), len(js))
	}
	doc, yaml := get(refs["spec-url"])
	if doc.StatusCode != http.StatusOK || doc.Header.Get("Content-Type") != "application/yaml" || string(yaml) != string(httpapi.OpenAPI) {
		t.Errorf("document %s: %d %q", refs["spec-url"], doc.StatusCode, doc.Header.Get("Content-Type"))
	}
}
