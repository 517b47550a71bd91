package main_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// production is a complete production configuration. Nothing listens at
// these addresses: the refusals below happen before any connection.
var production = []string{
	"DATABASE_URL=mysql://imagesvc:pw@127.0.0.1:1/imagesvc", "REDIS_URL=redis://127.0.0.1:1/0",
	"S3_BUCKET=images", "S3_ENDPOINT=http://127.0.0.1:1", "JWT_SECRET=k3Jv9QeT2mXw7LpZ4sRb8NcY1hUa6GdF0oEi5",
	"DELIVERY_SIGNING_KEYS=k1:dGVzdC1kZWxpdmVyeS1rZXktMDEyMzQ1Njc4OWFiY2RlZg==",
}

// without returns production less the variable name, plus extra.
func without(name string, extra ...string) []string {
	var env []string
	for _, kv := range production {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// refuse runs the api with env and checks that it exits non-zero, before
// listening, with a message containing want.
func refuse(t *testing.T, bin string, env []string, want string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // no .env, no data directory
	cmd.Env = cleanEnv(append(env, "HTTP_ADDR="+testenv.FreeAddr(t))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("api exited with %v, want a non-zero exit", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("api still running after 20 s; want a refusal naming %q\n%s", want, stderr.String())
	}
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("api stderr does not say %q:\n%s", want, stderr.String())
	}
}

// TestRefusesMissingDependency: without QUICKSTART=true, a missing
// dependency variable stops the API with its name, instead of embedding.
func TestRefusesMissingDependency(t *testing.T) {
	bin := binary(t, "")
	for _, name := range []string{"DATABASE_URL", "REDIS_URL", "S3_BUCKET"} {
		t.Run(name, func(t *testing.T) {
			refuse(t, bin, without(name), name+" is required")
		})
	}
}

// TestRefusesTwoRedis: REDIS_URL beside the Sentinel settings stops the
// API: which Redis it would use is not for it to guess.
func TestRefusesTwoRedis(t *testing.T) {
	bin := binary(t, "")
	refuse(t, bin, append(production, "REDIS_SENTINEL_ADDRS=127.0.0.1:1", "REDIS_SENTINEL_MASTER=imagesvc"), "both set")
}

// TestRefusesPlaceholderSecret: the secret compose and the manifests used
// to ship, deployed unchanged, stops the API.
func TestRefusesPlaceholderSecret(t *testing.T) {
	bin := binary(t, "")
	refuse(t, bin, without("JWT_SECRET", "JWT_SECRET=change-me-to-32-or-more-random-bytes-please"), "JWT_SECRET is a placeholder")
	refuse(t, bin, append(production, "ADMIN_USER=admin", "ADMIN_PASSWORD=change-me-admin-password"), "ADMIN_PASSWORD is a placeholder")
	refuse(t, bin, without("DELIVERY_SIGNING_KEYS", "DELIVERY_SIGNING_KEYS=k1:change-me-delivery-key-use-openssl-rand-base64-32"),
		"DELIVERY_SIGNING_KEYS is a placeholder")
	refuse(t, bin, without("DELIVERY_SIGNING_KEYS"), "DELIVERY_SIGNING_KEYS is required")
}

// TestNoQuickstartBuild: the binary the container image runs cannot embed.
func TestNoQuickstartBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := binary(t, "noquickstart")
	refuse(t, bin, []string{"QUICKSTART=true"}, "built without the quickstart (build tag noquickstart)")
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"github.com/alicebob/miniredis", "github.com/johannesboyne/gofakes3"} {
		if bytes.Contains(out, []byte(mod)) {
			t.Errorf("the noquickstart binary links %s", mod)
		}
	}
}

// TestHealthcheckDrainAndOps runs the quickstart API with an operations
// port and a drain delay: /metrics is served only on the operations port,
// `api healthcheck` needs nothing but HTTP_ADDR, and on SIGTERM
// /healthz/ready turns 503 while requests are still served.
func TestHealthcheckDrainAndOps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t, "")
	addr, opsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	base, ops := "http://"+addr, "http://"+opsAddr
	healthcheck := func() error {
		cmd := exec.Command(bin, "healthcheck")
		cmd.Dir = t.TempDir()
		cmd.Env = cleanEnv("HTTP_ADDR=" + addr) // and nothing else: no dependency, no secret
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := healthcheck(); err == nil {
		t.Error("api healthcheck with no api running exited 0")
	}

	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv("QUICKSTART=true", "HTTP_ADDR="+addr, "OPS_HTTP_ADDR="+opsAddr,
		"SHUTDOWN_DRAIN_DELAY=3s", "LOG_FORMAT=text", "LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	testenv.WaitUntil(t, 30*time.Second, "api ready", func() bool { return status(base+"/healthz/ready") == http.StatusOK })

	if err := healthcheck(); err != nil {
		t.Errorf("api healthcheck with the api running: %v", err)
	}
	if got := status(ops + "/metrics"); got != http.StatusOK {
		t.Errorf("GET /metrics on OPS_HTTP_ADDR: %d, want 200", got)
	}
	if got := status(base + "/metrics"); got != http.StatusNotFound {
		t.Errorf("GET /metrics on HTTP_ADDR with OPS_HTTP_ADDR set: %d, want 404", got)
	}

	// An event stream left open must not hold the shutdown up: the server
	// waits for every response, and a stream never ends by itself.
	testenv.Signup(t, base, "stream@example.com")
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.Login(t, base, "stream@example.com"))
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events: %v %v", stream, err)
	}
	defer stream.Body.Close()

	cmd.Process.Signal(syscall.SIGTERM)
	testenv.WaitUntil(t, 2*time.Second, "/healthz/ready 503 after SIGTERM", func() bool {
		return status(base+"/healthz/ready") == http.StatusServiceUnavailable
	})
	// Still serving during the drain delay: liveness and the API answer.
	if got := status(base + "/healthz"); got != http.StatusOK {
		t.Errorf("GET /healthz while draining: %d, want 200", got)
	}
	resp, err := http.Get(base + "/healthz/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"code":"draining"`) {
		t.Errorf("draining answer: Retry-After %q, %s", resp.Header.Get("Retry-After"), body)
	}
	select {
	case err := <-done:
		done <- err
		t.Fatalf("api exited during the drain delay: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("api exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("api still running 30 s after SIGTERM")
	}
}
