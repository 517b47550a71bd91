package webapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bbrks/go-blurhash"
	"github.com/chromedp/chromedp"

	"github.com/imagesvc/imagesvc/internal/app"
	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/logctx"
	"github.com/imagesvc/imagesvc/internal/metrics"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// redisDB is this package's Redis database (see testenv.RedisURL).
const redisDB = 10

// accessTTL is the access tokens' lifetime in the browser test.
const accessTTL = 4 * time.Second

// maxUpload is the service's upload limit in the browser test: small, so
// that the too-large file is small too.
const maxUpload = 1 << 20

// startService runs the whole service as the quickstart does, one process
// with the API and a worker, over real MariaDB, Redis and S3, built by
// the binaries' wiring (internal/app), with the test's settings changed by
// opts. It returns the API's URL.
func startService(t *testing.T, opts ...func(*config.Config)) string {
	t.Helper()
	log := slog.New(logctx.NewHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	store, _ := testenv.MustStore(t)
	blobs, _ := testenv.MustBucket(t)
	rdb := testenv.MustRedis(t, redisDB)

	cfg, _ := config.FromEnv(config.API, func(string) string { return "" })
	cfg.Auth.JWTSecret = []byte("test-secret-test-secret-test-secret!")
	cfg.Auth.Hasher = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1} // fast in tests
	// Access tokens expire during the test: the page refreshes them ahead
	// of time, and the event stream carries on with the new one.
	cfg.Auth.AccessTTL = accessTTL
	cfg.Image.DeliveryKeys = []image.DeliveryKey{{ID: "t1", Secret: []byte("delivery-key-of-the-tests-0123456789")}}
	cfg.Image.MaxUploadBytes, cfg.API.MaxUploadBytes = maxUpload, maxUpload
	cfg.Redis.URL = testenv.RedisURL(redisDB)
	cfg.Webhook.AllowPrivate = true // the receiver is on loopback

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
	ts := httptest.NewServer(api.Handler)
	t.Cleanup(ts.Close)
	t.Cleanup(api.EndStreams) // before the server closes: it waits for every response
	return ts.URL
}

// chromium returns the browser to drive: $CHROMIUM, else Debian's. A
// missing browser fails the test (make test installs it); only -short
// skips.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("drives Chromium over the whole service")
	}
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("no Chromium at %s (apt-get install chromium, or set CHROMIUM): %v", p, err)
	}
	return p
}

// browser starts a headless Chromium with a fresh profile, a phone-sized
// window, and returns its context. The flags keep it off the network
// (background updates, sync, field trials), which the test needs none
// of. Every console error and policy violation is collected in errs.
func browser(t *testing.T, ctx context.Context) (context.Context, func() []string) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 700),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless,
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	var mu sync.Mutex
	var errs []string
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			// Answers of 4xx the app handles are logged by the browser as
			// network errors; they are not the page's.
			s := m.String() + " (" + m.URL + ")"
			if m.IsException() || strings.Contains(s, "Content Security Policy") || m.Type == "error" && m.Source != "network" {
				mu.Lock()
				errs = append(errs, s)
				mu.Unlock()
			}
		}
	}()
	return bctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// photo reads one of the photographs in bimg's test data (bimg is a
// dependency, so its module is where the go command keeps modules): the
// screenshot in the README shows them.
func photo(t *testing.T, name string) []byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/h2non/bimg").Output()
	if err != nil {
		t.Fatalf("go list bimg: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// comparePlaceholder checks pixels, the 32x32 RGBA the page drew for an
// image's placeholder, against the reference decoder's.
func comparePlaceholder(t *testing.T, base, token, id string, pixels []int) {
	t.Helper()
	var img struct{ Placeholder string }
	if err := json.Unmarshal(testenv.Call(t, http.MethodGet, base+"/v1/images/"+id, token, "", nil, http.StatusOK), &img); err != nil {
		t.Fatal(err)
	}
	want, err := blurhash.Decode(img.Placeholder, 32, 32, 1)
	if err != nil {
		t.Fatalf("decode %q: %v", img.Placeholder, err)
	}
	if len(pixels) != 32*32*4 {
		t.Fatalf("the page drew %d values, want %d", len(pixels), 32*32*4)
	}
	var sum, n float64
	for y := range 32 {
		for x := range 32 {
			r, g, b, _ := want.At(x, y).RGBA()
			o := 4 * (y*32 + x)
			for i, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				sum += math.Abs(float64(pixels[o+i]) - float64(v))
				n++
			}
		}
	}
	mean := sum / n
	t.Logf("placeholder %q: the page's pixels differ from the reference decoder's by %.2f of 255 on average", img.Placeholder, mean)
	if mean > 1.5 {
		t.Errorf("placeholder %q: the page's pixels differ from the reference decoder's by %.2f of 255 on average", img.Placeholder, mean)
	}
}

// screenshot writes the whole page as name under $WEBAPP_SCREENSHOTS, else
// bin/screenshots of the module.
func screenshot(t *testing.T, b context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("WEBAPP_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
}

// TestBrowser: a person signs up, logs out and in, creates a webhook and
// pings it, uploads two photos through the file picker, sees both reach
// done through the event stream without a reload and their small variants
// load in the gallery over their placeholders, opens one and deletes it
// with the keyboard, lists the webhook's deliveries and redelivers one, is
// told in words that a too-large file is too large and why an undecodable
// one failed, reprocesses that one, drops five files, stays logged in
// while the access tokens (4 s here) expire, and finds every page usable
// at a phone's width. Screenshots go to $WEBAPP_SCREENSHOTS, else
// bin/screenshots.
func TestBrowser(t *testing.T) {
	chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := startService(t)
	b, consoleErrors := browser(t, ctx)

	dir := t.TempDir()
	files := map[string][]byte{
		"cardinal.jpg": photo(t, "northern_cardinal_bird.jpg"),
		"leaf.jpg":     photo(t, "test_exif.jpg"),
		"huge.jpg":     testenv.PaddedJPEG(t, maxUpload+1),
		"broken.jpg":   testenv.CorruptJPEG(t, 640, 480),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const email, password = "browser@example.com", testenv.Password
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		start := time.Now()
		sctx, cancel := context.WithTimeout(b, time.Minute)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\nconsole: %q", name, err, consoleErrors())
		}
		t.Logf("%s: %.1f s", name, time.Since(start).Seconds())
	}
	poll := func(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }

	step("sign up",
		chromedp.Navigate(base+"/#/signup"),
		visible("#email"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#auth-submit")),
		visible("#drop"))
	step("log out", chromedp.Click(chromedp.CSS("#logout")), visible("#email"))
	step("log in with the keyboard",
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password+"\r"),
		visible("#drop"),
		// The stream starts from now: it is open before anything is uploaded.
		poll(`document.body.dataset.stream === 'live'`, 10*time.Second))

	// A webhook, before the uploads, so that their events are delivered.
	var hooks atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	step("create a webhook and ping it",
		chromedp.Click(chromedp.CSS(`nav a[href="#/webhooks"]`)),
		visible("#hook-url"),
		chromedp.SendKeys(chromedp.CSS("#hook-url"), receiver.URL+"/hook"),
		chromedp.Click(chromedp.CSS(`.webhooks button[type=submit]`)),
		poll(`/^whsec_/.test(document.querySelector('#hook-secret')?.textContent || '')`, 5*time.Second),
		poll(`document.querySelectorAll('.hook').length === 1`, 5*time.Second),
		chromedp.Click(chromedp.CSS(`.hook button[data-action=ping]`)),
		poll(`/answered 204/.test(document.querySelector('.hook-out').textContent)`, 10*time.Second),
		chromedp.Click(chromedp.CSS(`nav a[href="#/"]`)),
		visible("#drop"))

	step("upload two, both done through the event stream",
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{filepath.Join(dir, "cardinal.jpg"), filepath.Join(dir, "leaf.jpg")}, chromedp.NodeReady),
		poll(`document.querySelectorAll('#uploads .upload').length === 2`, 5*time.Second),
		poll(`[...document.querySelectorAll('#uploads .upload')].every(r => r.dataset.state === 'done')
			&& Number(document.body.dataset.events) >= 2`, 40*time.Second))
	// The small variant (300 px across at most) loads in each card.
	step("small variants shown in the gallery",
		poll(`(() => { const imgs = [...document.querySelectorAll('#gallery .card img')];
			return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0 && i.naturalWidth <= 300)
				&& !/No images/.test(document.querySelector('.more').textContent)
				// The placeholder under each: its BlurHash decoded on a canvas.
				&& document.querySelectorAll('#gallery .card .placeholder canvas').length === 2; })()`, 15*time.Second),
		// Faded in (for the screenshot).
		poll(`[...document.querySelectorAll('#gallery .card img')].every(i => getComputedStyle(i).opacity === '1')`, 5*time.Second))
	screenshot(t, b, "gallery.png")

	// The page's BlurHash decoder draws what the reference one (Go) does.
	placeholder, err := chromedp.Run(b, chromedp.Evaluate[struct {
		ID     string
		Pixels []int
	}](`(() => { const card = document.querySelector('#gallery .card');
		const c = card.querySelector('.placeholder canvas');
		return {id: card.dataset.id, pixels: [...c.getContext('2d').getImageData(0, 0, 32, 32).data]}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	comparePlaceholder(t, base, testenv.Login(t, base, email), placeholder.ID, placeholder.Pixels)

	deleted, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('#gallery .card').dataset.id`))
	if err != nil {
		t.Fatal(err)
	}
	step("open one and delete it, with the keyboard",
		chromedp.Focus(chromedp.CSS("#gallery .card a")),
		chromedp.KeyEvent("\r"),
		visible("#delete"),
		poll(`document.querySelectorAll('.variants tbody tr').length === 3`, 5*time.Second),
		chromedp.Focus(chromedp.CSS("#delete")),
		chromedp.KeyEvent("\r"),
		// The confirmation takes the focus: Enter confirms.
		poll(`document.activeElement && document.activeElement.id === 'confirm-delete'`, 5*time.Second),
		chromedp.KeyEvent("\r"),
		visible("#gallery"),
		poll(fmt.Sprintf(`document.querySelectorAll('#gallery .card').length === 1 && !document.querySelector('#gallery [data-id="%s"]')`, deleted), 5*time.Second))
	token := testenv.Login(t, base, email)
	testenv.Call(t, http.MethodGet, base+"/v1/images/"+deleted, token, "", nil, http.StatusNotFound)

	step("webhook deliveries listed and redelivered",
		chromedp.Click(chromedp.CSS(`nav a[href="#/webhooks"]`)),
		poll(`document.querySelectorAll('.hook').length === 1`, 5*time.Second),
		chromedp.Click(chromedp.CSS(`.hook button[data-action=deliveries]`)),
		poll(`document.querySelectorAll('.deliveries tbody tr').length === 2`, 10*time.Second),
		chromedp.Click(chromedp.CSS(`.deliveries button`)),
		poll(`/queued again/.test(document.querySelector('.webhooks .message').textContent)`, 5*time.Second))
	screenshot(t, b, "webhooks.png")
	step("back to the gallery", chromedp.Click(chromedp.CSS(`nav a[href="#/"]`)), visible("#drop"))
	testenv.WaitUntil(t, 10*time.Second, "the redelivery", func() bool { return hooks.Load() >= 4 }) // ping, two events, the redelivery

	step("a too-large file is refused in words",
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{filepath.Join(dir, "huge.jpg")}, chromedp.NodeReady),
		poll(`[...document.querySelectorAll('#uploads .upload[data-state=error] .detail')].some(d => /too large.*limit is 1\.0 MB/.test(d.textContent))`, 5*time.Second))

	// A photo that cannot be decoded fails, with the reason, and may be
	// reprocessed from its page.
	step("a failed image says why and can be reprocessed",
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{filepath.Join(dir, "broken.jpg")}, chromedp.NodeReady),
		poll(`(() => { const r = [...document.querySelectorAll('#uploads .upload')].find(r => r.querySelector('.name').textContent === 'broken.jpg');
			return r && r.dataset.state === 'failed' && /could not be decoded/.test(r.querySelector('.detail').textContent); })()`, 20*time.Second),
		chromedp.Click(chromedp.CSS(`#gallery .card[data-status=failed] a`)),
		visible("#reprocess"),
		chromedp.Click(chromedp.CSS("#reprocess")),
		poll(`/queued for processing again/i.test(document.querySelector('.image-page .message').textContent)
			&& document.querySelector('.facts .status').textContent !== 'failed'`, 5*time.Second))
	screenshot(t, b, "failed.png")
	step("back to the gallery",
		chromedp.Click(chromedp.CSS(`nav a[href="#/"]`)),
		visible("#drop"))

	// Files dropped on the upload area (JPEGs drawn on a canvas, since the
	// protocol cannot drag files from disk) upload as picked ones do; more
	// than the page sends at once wait their turn.
	step("drag and drop",
		chromedp.Evaluate[chromedp.Void](`(async () => {
			const dt = new DataTransfer();
			for (const [i, colour] of ['#3a7', '#a37', '#37a', '#aa3', '#3aa'].entries()) {
				const c = document.createElement('canvas');
				c.width = 320; c.height = 200;
				const g = c.getContext('2d');
				g.fillStyle = colour; g.fillRect(0, 0, 320, 200);
				const blob = await new Promise(r => c.toBlob(r, 'image/jpeg', 0.9));
				dt.items.add(new File([blob], 'dropped-' + i + '.jpg', {type: 'image/jpeg'}));
			}
			document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
		})()`, chromedp.EvalAwaitPromise),
		poll(`[...document.querySelectorAll('#uploads .upload')].filter(r => r.querySelector('.name').textContent.startsWith('dropped-') && r.dataset.state === 'done').length === 5`, 20*time.Second))

	// The tokens were refreshed on time, before they expired, more than
	// once (not only after a 401), and the page is still logged in (a
	// refused refresh would have ended it).
	step("tokens refreshed ahead of expiry",
		poll(`Number(document.body.dataset.refreshes) >= 2 && !document.querySelector('#nav').hidden`, 2*accessTTL))

	// At a phone's width nothing sticks out sideways, on the gallery or on
	// an image's page with its table of variants.
	step("phone width",
		chromedp.EmulateViewport(390, 844),
		poll(`document.documentElement.scrollWidth <= innerWidth`, 5*time.Second))
	screenshot(t, b, "phone.png")
	step("phone width, an image's page",
		chromedp.Click(chromedp.CSS(`#gallery .card[data-status=done] a`)),
		poll(`document.querySelectorAll('.variants tbody tr').length === 3`, 5*time.Second),
		poll(`document.documentElement.scrollWidth <= innerWidth`, 5*time.Second))
	screenshot(t, b, "phone-image.png")

	if errs := consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}
	if err := ctx.Err(); errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the browser test ran out of time")
	}
}

// TestBrowserGalleryScroll: the gallery shows the first page, newest
// first, and the next one when its end scrolls into view, with no image
// twice. The uploads use up the minute's allowance: one more from the page
// is refused with the wait in words.
func TestBrowserGalleryScroll(t *testing.T) {
	chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const email, images, pageSize = "scroll@example.com", 30, 24
	base := startService(t, func(c *config.Config) { c.API.UploadRatePerMinute = images })
	testenv.Signup(t, base, email)
	token := testenv.Login(t, base, email)
	var newest string
	for i := range images {
		newest = testenv.Upload(t, base, token, testenv.JPEG(t, 40+i, 30, 1)) // distinct bytes: no deduplication
	}
	one := filepath.Join(t.TempDir(), "one.jpg")
	if err := os.WriteFile(one, testenv.JPEG(t, 64, 48, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	b, consoleErrors := browser(t, ctx)
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))
	}
	cards := `document.querySelectorAll('#gallery .card')`
	err := chromedp.Do(b,
		chromedp.Navigate(base+"/#/login"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), testenv.Password),
		chromedp.Click(chromedp.CSS("#auth-submit")),
		poll(fmt.Sprintf(`%s.length === %d`, cards, pageSize)),
		poll(fmt.Sprintf(`%s[0].dataset.id === %q`, cards, newest)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.more').scrollIntoView()`),
		poll(fmt.Sprintf(`%s.length === %d`, cards, images)),
		poll(fmt.Sprintf(`new Set([...%s].map(c => c.dataset.id)).size === %d`, cards, images)),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{one}, chromedp.NodeReady),
		poll(`/Too many requests\. Try again in \d+ seconds?\./.test(document.querySelector('#uploads .upload .detail')?.textContent)`),
	)
	if err != nil {
		t.Fatalf("%v\nconsole: %q", err, consoleErrors())
	}
}
