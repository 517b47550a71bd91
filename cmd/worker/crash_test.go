package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	stdimage "image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
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

// TestWorkerKilledMidTask runs the real binaries: the API and a worker
// against MariaDB, Redis and the S3 server. The worker is killed with
// SIGKILL while it processes an image; a second worker must finish every
// image, none left queued or processing.
func TestWorkerKilledMidTask(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := t.TempDir()
	for _, name := range []string{"api", "worker"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "../"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	dbURL := testenv.MustDatabaseURL(t)
	_, s3cfg := testenv.MustBucket(t)
	testenv.MustRedis(t, 3)
	apiAddr, workerAddr := freeAddr(t), freeAddr(t)
	env := append(os.Environ(),
		"DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(3),
		"S3_ENDPOINT="+s3cfg.Endpoint, "S3_BUCKET="+s3cfg.Bucket,
		"AWS_ACCESS_KEY_ID="+s3cfg.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+s3cfg.SecretAccessKey,
		"JWT_SECRET=crash-test-secret-crash-test-secret",
		"HTTP_ADDR="+apiAddr, "WORKER_HTTP_ADDR="+workerAddr,
		"WORKER_CONCURRENCY=1", "RECONCILE_INTERVAL=1s", "WORKER_RETRY_BASE=500ms", "LOG_FORMAT=text", "LOG_LEVEL=warn",
	)
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name))
		cmd.Env = env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	start("api")
	base := "http://" + apiAddr
	waitUntil(t, 30*time.Second, "api ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	token := login(t, base)
	src := noiseJPEG(t, 3000, 2000)
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, upload(t, base, token, src))
	}

	first := start("worker")
	waitUntil(t, 60*time.Second, "an image in processing", func() bool {
		for _, id := range ids {
			if status(t, base, token, id) == "processing" {
				return true
			}
		}
		return false
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	// asynq hands the orphaned task on when its 30 s lease runs out (its
	// recoverer looks every minute).
	start("worker")
	waitUntil(t, 150*time.Second, "every image done", func() bool {
		for _, id := range ids {
			if status(t, base, token, id) != "done" {
				return false
			}
		}
		return true
	})
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func post(t *testing.T, url, token, contentType string, body io.Reader) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, body)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, resp.StatusCode, out)
	}
	return out
}

func login(t *testing.T, base string) string {
	creds := `{"email":"crash@example.com","password":"correct horse battery"}`
	post(t, base+"/v1/auth/signup", "", "application/json", strings.NewReader(creds))
	return post(t, base+"/v1/auth/login", "", "application/json", strings.NewReader(creds))["access_token"].(string)
}

func upload(t *testing.T, base, token string, data []byte) string {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "noise.jpg")
	fw.Write(data)
	mw.Close()
	return post(t, base+"/v1/images", token, mw.FormDataContentType(), &buf)["id"].(string)
}

func status(t *testing.T, base, token, id string) string {
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/images/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var img struct {
		Status   string
		Variants []any
	}
	json.NewDecoder(resp.Body).Decode(&img)
	if img.Status == "done" && len(img.Variants) != 3 {
		t.Fatalf("image %s done with %d variants", id, len(img.Variants))
	}
	if img.Status == "failed" {
		t.Fatalf("image %s failed", id)
	}
	return img.Status
}

// noiseJPEG is slow to decode, like a detailed photograph, so that the
// worker is caught mid-task.
func noiseJPEG(t *testing.T, w, h int) []byte {
	img := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(r.Uint32())
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
