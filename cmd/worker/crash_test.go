package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/imagesvc/imagesvc/internal/s3store"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestWorkerKilledMidTask runs the real binaries: the API and a worker
// against MariaDB, Redis and the S3 server. The worker is killed with
// SIGKILL while it processes an image; a second worker must finish every
// image, none left queued or processing.
func TestWorkerKilledMidTask(t *testing.T) {
	f := startFleet(t)
	first := f.start("worker")
	f.waitProcessing()
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	// asynq hands the orphaned task on when its 30 s lease runs out (its
	// recoverer looks every minute).
	f.start("worker")
	f.waitAllDone(150 * time.Second)
}

// TestWorkerStoppedMidTask: SIGTERM while an image is processing lets the
// worker finish it before it exits (graceful shutdown), with no other
// worker around; the worker's /metrics and /readyz answer while it runs.
func TestWorkerStoppedMidTask(t *testing.T) {
	f := startFleet(t)
	w := f.start("worker")
	testenv.WaitUntil(t, 30*time.Second, "worker ready", func() bool {
		resp, err := http.Get("http://" + f.workerAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	processing := f.waitProcessing()
	if err := w.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("worker exited with %v after SIGTERM", err)
	}
	if st := status(t, f.base, f.token, processing); st != "done" {
		t.Errorf("the image being processed at SIGTERM is %s after the worker exited, want done", st)
	}
}

// TestWorkerMetrics: the worker's /metrics parses and carries the
// processing families once an image is done.
func TestWorkerMetrics(t *testing.T) {
	f := startFleet(t)
	f.start("worker")
	f.waitAllDone(60 * time.Second)
	// The counter moves just after the database says done: poll it.
	var families map[string]*dto.MetricFamily
	done := 0.0
	testenv.WaitUntil(t, 10*time.Second, "processed{result=done} to reach the images", func() bool {
		resp, err := http.Get("http://" + f.workerAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err = parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("worker metrics do not parse: %v", err)
		}
		for _, m := range families["imagesvc_images_processed_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "done" {
					done = m.GetCounter().GetValue()
				}
			}
		}
		return int(done) == len(f.ids)
	})
	for _, name := range []string{"imagesvc_images_processed_total", "imagesvc_processing_stage_seconds",
		"imagesvc_source_megapixels", "imagesvc_dependency_errors_total", "imagesvc_images_in_flight", "go_goroutines"} {
		if families[name] == nil {
			t.Errorf("no %s in the worker's /metrics", name)
		}
	}
}

// fleet is the API and workers as separate processes against MariaDB,
// Redis and the S3 server, with images uploaded and waiting.
type fleet struct {
	t                *testing.T
	vars             map[string]string
	workers          int
	blobs            *s3store.Store
	dbURL            string
	bin              string
	base, workerAddr string
	token            string
	ids              []string
}

func startFleet(t *testing.T) *fleet { return startFleetWith(t, 4) }

// fleetOption changes a fleet's settings before its API starts.
type fleetOption func(f *fleet)

// withEnv sets environment variables of every process of the fleet.
func withEnv(kv ...string) fleetOption {
	return func(f *fleet) {
		for i := 0; i+1 < len(kv); i += 2 {
			f.vars[kv[i]] = kv[i+1]
		}
	}
}

// startFleetWith starts the API with n slow images uploaded and waiting.
func startFleetWith(t *testing.T, n int, opts ...fleetOption) *fleet {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	f := &fleet{t: t, bin: t.TempDir()}
	for _, name := range []string{"api", "worker"} {
		// The failpoints tag builds in the crash failpoints the fault tests set.
		out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", filepath.Join(f.bin, name), "../"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	f.dbURL = testenv.MustDatabaseURL(t)
	blobs, s3cfg := testenv.MustBucket(t)
	f.blobs = blobs
	testenv.MustRedis(t, 3)
	apiAddr := testenv.FreeAddr(t)
	f.workerAddr = testenv.FreeAddr(t)
	f.base = "http://" + apiAddr
	f.vars = map[string]string{
		"DATABASE_URL": f.dbURL, "REDIS_URL": testenv.RedisURL(3),
		"S3_ENDPOINT": s3cfg.Endpoint, "S3_BUCKET": s3cfg.Bucket,
		"AWS_ACCESS_KEY_ID": s3cfg.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3cfg.SecretAccessKey,
		"JWT_SECRET": "crash-test-secret-crash-test-secret", "HTTP_ADDR": apiAddr,
		"DELIVERY_SIGNING_KEYS": "t1:dGVzdC1kZWxpdmVyeS1rZXktMDEyMzQ1Njc4OWFiY2RlZg==",
		"WORKER_CONCURRENCY":    "1", "RECONCILE_INTERVAL": "1s", "WORKER_RETRY_BASE": "500ms",
		"LOG_FORMAT": "text", "LOG_LEVEL": "warn", "UPLOAD_RATE_PER_MINUTE": "0",
	}
	for _, o := range opts {
		o(f)
	}
	f.start("api")
	testenv.WaitUntil(t, 30*time.Second, "api ready", func() bool {
		resp, err := http.Get(f.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	testenv.Signup(t, f.base, "crash@example.com")
	f.token = testenv.Login(t, f.base, "crash@example.com")
	if n > 0 {
		src := testenv.NoiseJPEG(t, 3000, 2000)
		for range n {
			f.ids = append(f.ids, testenv.Upload(t, f.base, f.token, src))
		}
	}
	return f
}

func (f *fleet) start(name string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(f.bin, name))
	cmd.Env = os.Environ()
	for k, v := range f.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if name == "worker" {
		// The first worker serves on workerAddr, the others on their own.
		addr := f.workerAddr
		if f.workers > 0 {
			addr = testenv.FreeAddr(f.t)
		}
		f.workers++
		cmd.Env = append(cmd.Env, "WORKER_HTTP_ADDR="+addr)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// waitProcessing waits until an image is being processed and returns it.
func (f *fleet) waitProcessing() string {
	var id string
	testenv.WaitUntil(f.t, 60*time.Second, "an image in processing", func() bool {
		for _, i := range f.ids {
			if status(f.t, f.base, f.token, i) == "processing" {
				id = i
				return true
			}
		}
		return false
	})
	return id
}

func (f *fleet) waitAllDone(d time.Duration) {
	testenv.WaitUntil(f.t, d, "every image done", func() bool {
		for _, id := range f.ids {
			if status(f.t, f.base, f.token, id) != "done" {
				return false
			}
		}
		return true
	})
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
