package httpapi

import (
	"embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// docsFiles are the API reference page and the Redoc bundle it runs,
// vendored (see docs/README.md) so the page needs nothing but this server.
//
//go:embed docs/index.html docs/redoc.standalone.js
var docsFiles embed.FS

// docsPolicy is the page's Content-Security-Policy: everything from this
// server only. Redoc's styled-components write <style> elements at run
// time ('unsafe-inline' styles), its search index runs in a worker made
// from a blob: URL, and its icons are data: images. Checked in headless
// Chromium: without the first nothing renders, without the others the
// search worker or the icons are refused. (Redoc's footer logo, from its
// CDN, is refused, as it should be.)
const docsPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsRoutes serves the reference page at /docs and its script.
func docsRoutes(e *echo.Echo) {
	page := mustRead(docsFiles, "docs/index.html")
	script := mustRead(docsFiles, "docs/redoc.standalone.js")
	e.GET("/docs", func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", docsPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, page)
	})
	e.GET("/docs/redoc.standalone.js", func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", script)
	})
}

func mustRead(fs embed.FS, name string) []byte {
	b, err := fs.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return b
}
