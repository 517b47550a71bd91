// Package webapp is the browser app served at / : sign up and log in,
// upload with progress, follow processing on the event stream, browse the
// gallery, manage images and webhooks. It is plain HTML, CSS and ES
// modules embedded from static/ (no build step, nothing from a CDN); it
// calls the public API like any other client. httpapi mounts it.
package webapp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed static
var static embed.FS

// Config holds what the app's pages need to know of the deployment.
type Config struct {
	// ImageSources are URLs whose origins (scheme://host[:port]) the
	// stable delivery URLs redirect to: one the S3 store presigned, or
	// DELIVERY_BASE_URL. The page's policy lets images load from them and
	// nowhere else. Empty means any https: origin (for when the origin
	// could not be found out).
	ImageSources []string
	// MaxUploadBytes is the largest upload, which the page checks before
	// sending (a server that stops reading an oversized body may leave
	// the browser with a reset connection instead of the 413).
	MaxUploadBytes int64
}

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// App serves the pages and their assets.
type App struct {
	index  asset
	assets map[string]asset
	policy string
}

// New returns the app with its assets read from the binary.
func New(cfg Config) *App {
	a := &App{assets: map[string]asset{}, policy: policy(cfg.ImageSources)}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := static.ReadFile("static/" + e.Name())
		if err != nil {
			panic(err)
		}
		if e.Name() == "index.html" {
			b = []byte(strings.Replace(string(b), "{{MAX_UPLOAD_BYTES}}", strconv.FormatInt(cfg.MaxUploadBytes, 10), 1))
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if strings.HasSuffix(e.Name(), ".js") {
			ct = "text/javascript; charset=utf-8" // whatever the host's mime.types says
		}
		ast := asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if e.Name() == "index.html" {
			a.index = ast
			continue
		}
		a.assets[e.Name()] = ast
	}
	return a
}

// Register adds GET / and GET /app/{file} to e; mw (the API's rate limits)
// run before them.
func (a *App) Register(e *echo.Echo, mw ...echo.MiddlewareFunc) {
	e.GET("/", a.serveIndex, mw...)
	e.GET("/app/:file", a.serveAsset, mw...)
}

// policy is the Content-Security-Policy of every answer of the app: its
// own scripts and styles only (no inline script, no eval), API calls to
// this origin only, images from here and from where delivery URLs
// redirect. (The placeholders are drawn on a canvas: no data: or blob:.)
func policy(imageSources []string) string {
	img := []string{"'self'"}
	if len(imageSources) == 0 {
		img = append(img, "https:")
	}
	for _, s := range imageSources {
		if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
			img = append(img, u.Scheme+"://"+u.Host)
		}
	}
	img = slices.Compact(img)
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src " + strings.Join(img, " ") +
		"; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// secure sets the headers every answer of the app carries.
func (a *App) secure(h http.Header) {
	h.Set("Content-Security-Policy", a.policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

func (a *App) serveIndex(c echo.Context) error {
	return a.serve(c, a.index)
}

func (a *App) serveAsset(c echo.Context) error {
	ast, ok := a.assets[c.Param("file")]
	if !ok {
		return echo.ErrNotFound
	}
	return a.serve(c, ast)
}

// serve answers with an asset. The assets have no hash in their names, so
// the browser revalidates every time (no-cache) and gets a 304 while the
// binary is the same.
func (a *App) serve(c echo.Context, ast asset) error {
	h := c.Response().Header()
	a.secure(h)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", ast.etag)
	h.Set("Content-Type", ast.contentType)
	// ServeContent answers If-None-Match (weak and list forms included)
	// and Range as RFC 9110 says.
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, bytes.NewReader(ast.body))
	return nil
}
