package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	stdimage "image"
	"image/jpeg"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestQuickstart runs the api binary as `make run` does, with QUICKSTART=true
// and no DATABASE_URL, REDIS_URL or S3 settings: one process with an embedded
// database, Redis and S3 under a data directory. It signs up, uploads,
// waits for done and downloads the variants; stops the process while images
// are still queued; starts it again and checks that everything is still
// there and the queued images get processed.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t, "")
	work := t.TempDir() // the data directory is ./data under it
	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	env := cleanEnv("QUICKSTART=true", "HTTP_ADDR="+addr, "WORKER_CONCURRENCY=1", "LOG_FORMAT=text", "LOG_LEVEL=warn")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Dir, cmd.Env, cmd.Stderr = work, env, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		testenv.WaitUntil(t, 30*time.Second, "quickstart ready", func() bool {
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return cmd
	}

	first := start()
	testenv.Signup(t, base, "new@example.com")
	token := testenv.Login(t, base, "new@example.com")
	id := testenv.Upload(t, base, token, smallJPEG(t))
	img := waitDone(t, base, token, id)
	downloads := downloadAll(t, img)
	// The presigned URL a stable URL redirects to now, to be followed after
	// the restart: it names the embedded S3 server's port.
	presigned := redirectOf(t, img.Variants[0].URL)
	// The other upload paths work on the embedded S3 server too.
	waitDone(t, base, token, directUpload(t, base, token, smallJPEG(t)))
	waitDone(t, base, token, tusUpload(t, base, token, smallJPEG(t)))

	// Stop while images are queued: a slow source keeps the worker busy.
	slow := testenv.NoiseJPEG(t, 3000, 2000)
	var queued []string
	for range 3 {
		queued = append(queued, testenv.Upload(t, base, token, slow))
	}
	unfinished := 0
	for _, q := range queued {
		var img imageJSON
		json.Unmarshal(testenv.Call(t, "GET", base+"/v1/images/"+q, token, "", nil, 200), &img)
		if img.Status != "done" {
			unfinished++
		}
	}
	if unfinished == 0 {
		t.Fatal("every image was done before the stop; the restart path is not exercised")
	}
	first.Process.Signal(syscall.SIGTERM)
	first.Wait()
	for _, dir := range []string{"data/imagesvc.db", "data/s3", "data/jwt_secret", "data/delivery_keys", "data/s3_addr"} {
		if _, err := os.Stat(filepath.Join(work, dir)); err != nil {
			t.Errorf("quickstart left no %s: %v", dir, err)
		}
	}

	start()
	// The old token still works: the JWT secret was kept.
	again := waitDone(t, base, token, id)
	if got := downloadAll(t, again); strings.Join(got, ",") != strings.Join(downloads, ",") {
		t.Errorf("variants after restart differ: %v, were %v", got, downloads)
	}
	// URLs given out before the restart still work: the stable ones (the
	// delivery key was kept), and the presigned one (the embedded S3
	// server kept its port).
	if got := downloadAll(t, img); strings.Join(got, ",") != strings.Join(downloads, ",") {
		t.Errorf("stable URLs from before the restart give %v, gave %v", got, downloads)
	}
	if img.Variants[0].URL != again.Variants[0].URL {
		t.Errorf("stable URL changed across a restart: %s, now %s", img.Variants[0].URL, again.Variants[0].URL)
	}
	testenv.Call(t, "GET", presigned, "", "", nil, 200)
	token = testenv.Login(t, base, "new@example.com") // and logging in still works
	for _, q := range queued {
		waitDone(t, base, token, q)
	}
}

type imageJSON struct {
	Status   string
	Variants []struct {
		Name          string
		Width, Height int
		URL           string
	}
}

func waitDone(t *testing.T, base, token, id string) imageJSON {
	t.Helper()
	var img imageJSON
	testenv.WaitUntil(t, 60*time.Second, "image "+id+" done", func() bool {
		json.Unmarshal(testenv.Call(t, "GET", base+"/v1/images/"+id, token, "", nil, 200), &img)
		if img.Status == "failed" {
			t.Fatalf("image %s failed", id)
		}
		return img.Status == "done"
	})
	if len(img.Variants) != 3 {
		t.Fatalf("image %s done with %d variants", id, len(img.Variants))
	}
	return img
}

// downloadAll fetches every variant through its URL and returns "name WxH
// bytes" for each, decoded.
func downloadAll(t *testing.T, img imageJSON) []string {
	var out []string
	for _, v := range img.Variants {
		data := testenv.Call(t, "GET", v.URL, "", "", nil, 200)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width != v.Width || cfg.Height != v.Height {
			t.Fatalf("variant %s: %v, %dx%d, want %dx%d", v.Name, err, cfg.Width, cfg.Height, v.Width, v.Height)
		}
		out = append(out, fmt.Sprintf("%s %dx%d %d", v.Name, cfg.Width, cfg.Height, len(data)))
	}
	return out
}

// redirectOf returns where a delivery URL redirects.
func redirectOf(t *testing.T, u string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d, want a redirect", u, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// directUpload sends a file in one presigned PUT (POST /v1/uploads) and
// completes it, returning the image's id.
func directUpload(t *testing.T, base, token string, data []byte) string {
	t.Helper()
	body := fmt.Sprintf(`{"filename":"direct.jpg","bytes":%d,"content_type":"image/jpeg"}`, len(data))
	var u struct {
		ID  string
		Put struct {
			URL     string
			Headers map[string]string
		}
	}
	json.Unmarshal(testenv.Call(t, "POST", base+"/v1/uploads", token, "application/json", strings.NewReader(body), 201), &u)
	req, _ := http.NewRequest(http.MethodPut, u.Put.URL, bytes.NewReader(data))
	for k, v := range u.Put.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT to the presigned URL: %v %v", err, resp)
	}
	resp.Body.Close()
	testenv.Call(t, "POST", base+"/v1/uploads/"+u.ID+"/complete", token, "", nil, 202)
	return u.ID
}

// tusUpload sends a file with the tus protocol, creation and one PATCH,
// returning the image's id.
func tusUpload(t *testing.T, base, token string, data []byte) string {
	t.Helper()
	do := func(method, url string, headers map[string]string, body []byte, want int) *http.Response {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("tus %s %s: %d, want %d", method, url, resp.StatusCode, want)
		}
		return resp
	}
	created := do(http.MethodPost, base+"/v1/tus/", map[string]string{"Upload-Length": fmt.Sprint(len(data))}, nil, 201)
	do(http.MethodPatch, created.Header.Get("Location"), map[string]string{
		"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, data, 204)
	return created.Header.Get("Image-Id")
}

func smallJPEG(t *testing.T) []byte {
	img := stdimage.NewRGBA(stdimage.Rect(0, 0, 1200, 800))
	for i := range img.Pix {
		img.Pix[i] = byte(i / 7)
	}
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, nil)
	return buf.Bytes()
}
