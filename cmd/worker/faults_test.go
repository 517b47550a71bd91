package main_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// The fault tests run the API and workers as processes against real
// MariaDB, Redis and S3, inject a fault while uploads continue, and check
// the invariant: every accepted upload ends done; refused ones got a 503
// (never a 500) and left nothing; every done image has exactly its
// variants in the database and in S3; no object lacks a row. `make
// test-faults` runs each three times.

// uploader keeps uploading small images until stopped, and records what
// was accepted and every refusal.
type uploader struct {
	mu       sync.Mutex
	accepted []string
	statuses map[int]int
	stop     chan struct{}
	done     chan struct{}
}

func startUploader(t *testing.T, f *fleet, every time.Duration) *uploader {
	u := &uploader{statuses: map[int]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	src := testenv.NoiseJPEG(t, 640, 480)
	client := &http.Client{Timeout: 30 * time.Second}
	go func() {
		defer close(u.done)
		for {
			select {
			case <-u.stop:
				return
			case <-time.After(every):
			}
			ct, body := testenv.Multipart("f.jpg", src)
			req, _ := http.NewRequest(http.MethodPost, f.base+"/v1/images", body)
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", "Bearer "+f.token)
			resp, err := client.Do(req)
			status := 0
			var img struct{ ID string }
			if err == nil {
				status = resp.StatusCode
				json.NewDecoder(resp.Body).Decode(&img)
				if status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					status = -503 // a 503 without Retry-After is a defect too
				}
				resp.Body.Close()
			}
			u.mu.Lock()
			u.statuses[status]++
			if status == http.StatusAccepted {
				u.accepted = append(u.accepted, img.ID)
			}
			u.mu.Unlock()
		}
	}()
	return u
}

func (u *uploader) finish() {
	close(u.stop)
	<-u.done
}

// check asserts the invariant once every accepted image should be done.
func (u *uploader) check(t *testing.T, f *fleet, within time.Duration) {
	t.Helper()
	u.mu.Lock()
	accepted, statuses := append([]string(nil), u.accepted...), u.statuses
	u.mu.Unlock()
	t.Logf("uploads answered %v", statuses)
	for status := range statuses {
		if status != http.StatusAccepted && status != http.StatusServiceUnavailable {
			t.Errorf("%d uploads answered %d; want only 202 or 503 with Retry-After", statuses[status], status)
		}
	}
	if len(accepted) == 0 {
		t.Fatal("no upload was accepted")
	}
	f.ids = accepted
	f.waitAllDone(within)
	assertStoresConsistent(t, f, len(accepted))
}

// assertStoresConsistent: n images, all done, each with three variant rows;
// S3 holds exactly their originals and variants.
func assertStoresConsistent(t *testing.T, f *fleet, n int) {
	t.Helper()
	ctx := context.Background()
	cfg := gormstore.NewDefaultConfig()
	cfg.URL = f.dbURL
	db, err := gormstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	store := gormstore.NewStore(db)
	defer store.Close()
	imgs, err := store.ListAllImages(ctx, "", image.Cursor{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, img := range imgs {
		if img.Status != image.StatusDone || len(img.Variants) != 3 {
			t.Errorf("image %s is %s with %d variants, want done with 3", img.ID, img.Status, len(img.Variants))
		}
		want[img.OriginalKey()] = true
		for _, k := range image.Keys(img.Variants) {
			want[k] = true
		}
	}
	if len(imgs) != n {
		t.Errorf("%d image rows, want %d (the accepted uploads)", len(imgs), n)
	}
	keys, err := f.blobs.Keys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("S3 object %s belongs to no image (orphan)", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("S3 lacks %s", k)
	}
}

func redisServer(t *testing.T, port string) *exec.Cmd {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed")
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.WaitUntil(t, 10*time.Second, "redis-server up", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

// TestFaultRedisRestart: Redis (without persistence, the harsh case) is
// killed and started again while uploads go on. Uploads during the outage
// get 503; what was accepted, including tasks the restart erased, is
// processed (the reconciler re-enqueues it).
func TestFaultRedisRestart(t *testing.T) {
	port := strings.Split(testenv.FreeAddr(t), ":")[1]
	srv := redisServer(t, port)
	f := startFleetWith(t, 0, withEnv("REDIS_URL", "redis://127.0.0.1:"+port+"/0",
		"RECONCILE_STALE_AFTER", "3s", "PROCESSING_LEASE", "20s", "WORKER_TASK_TIMEOUT", "15s"))
	f.start("worker")
	f.start("worker")
	u := startUploader(t, f, 100*time.Millisecond)
	time.Sleep(2 * time.Second)
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	time.Sleep(3 * time.Second)
	redisServer(t, port)
	time.Sleep(3 * time.Second)
	u.finish()
	u.check(t, f, 90*time.Second)
}

// TestFaultDatabaseOutage: MariaDB becomes unreachable (every connection cut
// and new ones refused) under load, then comes back. Uploads get 503 while
// it is down, readiness says so, and processing resumes after.
func TestFaultDatabaseOutage(t *testing.T) {
	outage := 10 * time.Second // `make test-faults` sets FAULT_DB_OUTAGE=30s
	if d, err := time.ParseDuration(os.Getenv("FAULT_DB_OUTAGE")); err == nil {
		outage = d
	}
	var proxy *testenv.TCPProxy
	f := startFleetWith(t, 0, func(f *fleet) {
		u, _ := url.Parse(f.dbURL)
		proxy = testenv.NewTCPProxy(t, u.Host)
		u.Host = proxy.Addr
		f.vars["DATABASE_URL"] = u.String()
	})
	f.start("worker")
	u := startUploader(t, f, 100*time.Millisecond)
	time.Sleep(2 * time.Second)
	proxy.Cut()
	testenv.WaitUntil(t, 10*time.Second, "readyz 503 naming the database", func() bool {
		resp, err := http.Get(f.base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Checks map[string]string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == 503 && body.Checks["database"] == "unavailable"
	})
	time.Sleep(outage)
	proxy.Restore()
	time.Sleep(3 * time.Second)
	u.finish()
	u.check(t, f, 120*time.Second)
}

// TestFaultS3Flaky: the S3 server fails 20% of requests (half 503
// SlowDown, half connection resets). Retries get every accepted image done
// with all its variants, and refused uploads leave no object.
func TestFaultS3Flaky(t *testing.T) {
	var flaky *testenv.FlakyHTTP
	f := startFleetWith(t, 0, func(f *fleet) {
		flaky = testenv.NewFlakyHTTP(t, f.vars["S3_ENDPOINT"], 0)
		f.vars["S3_ENDPOINT"] = flaky.URL
	})
	f.start("worker")
	f.start("worker")
	flaky.SetRate(0.2)
	u := startUploader(t, f, 100*time.Millisecond)
	time.Sleep(8 * time.Second)
	u.finish()
	f.ids = u.accepted
	f.waitAllDone(120 * time.Second)
	flaky.SetRate(0)
	t.Logf("%d S3 requests failed on purpose", flaky.Failures.Load())
	if flaky.Failures.Load() == 0 {
		t.Fatal("no S3 request failed; the fault was not injected")
	}
	u.check(t, f, 10*time.Second)
}

// TestFaultCrashAfterCommit: the API exits between writing an image's row
// and enqueueing its task (a failpoint set by test configuration only). The
// client gets no answer; the image is processed all the same.
func TestFaultCrashAfterCommit(t *testing.T) {
	f := startFleetWith(t, 0, withEnv("IMAGESVC_FAILPOINT", "crash-after-commit", // the failpoints build only (internal/app/failpoint.go)
		"RECONCILE_STALE_AFTER", "2s"))
	f.start("worker")
	ct, body := testenv.Multipart("crash.jpg", testenv.NoiseJPEG(t, 640, 480))
	req, _ := http.NewRequest(http.MethodPost, f.base+"/v1/images", body)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+f.token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the upload was answered %d; the failpoint did not crash the API", resp.StatusCode)
	}
	// The API is gone; start it again without the failpoint.
	delete(f.vars, "IMAGESVC_FAILPOINT")
	f.start("api")
	testenv.WaitUntil(t, 30*time.Second, "api back", func() bool {
		resp, err := http.Get(f.base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	req, _ = http.NewRequest(http.MethodGet, f.base+"/v1/images", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Items []struct{ ID, Status string } }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Items) != 1 {
		t.Fatalf("%d images after the crash, want the committed one", len(list.Items))
	}
	f.ids = []string{list.Items[0].ID}
	f.waitAllDone(60 * time.Second)
	assertStoresConsistent(t, f, 1)
}

// TestFaultWorkerKilledRepeatedly: workers are killed with SIGKILL three
// times while uploads go on; each time another starts. Every accepted image
// ends done (asynq hands orphaned tasks on after their 30 s lease).
func TestFaultWorkerKilledRepeatedly(t *testing.T) {
	f := startFleetWith(t, 0)
	victim := f.start("worker")
	f.start("worker")
	u := startUploader(t, f, 150*time.Millisecond)
	for range 3 {
		time.Sleep(2 * time.Second)
		victim.Process.Signal(syscall.SIGKILL)
		victim.Wait()
		victim = f.start("worker")
	}
	u.finish()
	u.check(t, f, 150*time.Second)
}
