// Package deployments_test checks the deployment files without a Docker
// engine or a cluster: the compose file renders with docker-compose and
// reads its secrets from .env only; the Kubernetes manifests decode
// strictly against the Kubernetes API types and KEDA's CRD schemas and hold
// together (probe ports, asynq's list names, hardening, sizes); the
// Dockerfile's runtime stage installs the libraries the binaries link; and
// every environment variable they set is one the binaries read.
package deployments_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imagesvc/imagesvc/internal/config"
)

// runtimeVariables are read by the Go runtime, not by config: the only
// other names a deployment file may set.
var runtimeVariables = []string{"GOMEMLIMIT"}

func checkNames(t *testing.T, where string, names []string) {
	t.Helper()
	known := config.Names()
	for _, n := range names {
		if !slices.Contains(known, n) && !slices.Contains(runtimeVariables, n) {
			t.Errorf("%s sets %s, which the binaries do not read", where, n)
		}
	}
}

// composeSecrets are the variables docker-compose.yml must take from .env,
// never from a literal in the file.
var composeSecrets = []string{"JWT_SECRET", "DELIVERY_SIGNING_KEYS", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD",
	"S3_ROOT_ACCESS_KEY", "S3_ROOT_SECRET_KEY", "S3_ACCESS_KEY", "S3_SECRET_KEY", "ADMIN_PASSWORD"}

// composeConfig runs `docker-compose config` with envFile as the only source
// of variables.
func composeConfig(t *testing.T, envFile string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed (Debian package docker-compose; `make test` installs it)")
	}
	cmd := exec.Command("docker-compose", "--env-file", envFile, "-f", "../docker-compose.yml", "config")
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(composeSecrets, name) && name != "WORKER_CONCURRENCY" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, errors.New(string(ee.Stderr))
	}
	return out, err
}

func TestCompose(t *testing.T) {
	example, err := filepath.Abs("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	values := readEnvFile(t, example)
	for _, name := range composeSecrets {
		if values[name] == "" {
			t.Errorf(".env.example has no %s", name)
		}
	}

	// Without the variables, nothing renders: no default secret exists.
	empty := filepath.Join(t.TempDir(), "empty.env")
	os.WriteFile(empty, nil, 0o600)
	if _, err := composeConfig(t, empty); err == nil || !strings.Contains(err.Error(), "set ") {
		t.Errorf("docker-compose config without .env: %v, want a refusal naming a variable", err)
	}

	out, err := composeConfig(t, example)
	if err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	type service struct {
		Image           string            `yaml:"image"`
		Build           any               `yaml:"build"`
		Command         []string          `yaml:"command"`
		Environment     map[string]string `yaml:"environment"`
		Ports           []string          `yaml:"ports"`
		ContainerName   string            `yaml:"container_name"`
		Restart         string            `yaml:"restart"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		Healthcheck     struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	}
	var file struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &file); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mysql", "redis", "s3", "s3-init", "api", "worker"} {
		if _, ok := file.Services[name]; !ok {
			t.Errorf("compose has no %s service", name)
		}
	}
	for name, svc := range file.Services {
		if name != "s3-init" && svc.Restart != "unless-stopped" {
			t.Errorf("compose service %s: restart %q, want unless-stopped", name, svc.Restart)
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("compose service %s publishes %s beyond 127.0.0.1", name, p)
			}
		}
		if svc.Build == nil {
			repo, tag, ok := strings.Cut(svc.Image, ":")
			if !ok || tag == "" || tag == "latest" {
				t.Errorf("compose service %s: image %q has no pinned version", name, svc.Image)
			}
			switch repo {
			case "mysql":
				if !strings.HasPrefix(tag, "8.4") {
					t.Errorf("compose mysql image %s, want MySQL 8.4", svc.Image)
				}
			case "redis":
				if !strings.HasPrefix(tag, "7.") {
					t.Errorf("compose redis image %s, want Redis 7.x", svc.Image)
				}
			}
		}
	}
	for _, name := range []string{"api", "worker"} {
		svc := file.Services[name]
		var env []string
		for k := range svc.Environment {
			env = append(env, k)
		}
		checkNames(t, "compose service "+name, env)
		for _, required := range []string{"DATABASE_URL", "REDIS_URL", "S3_BUCKET"} {
			if svc.Environment[required] == "" {
				t.Errorf("compose service %s does not set %s", name, required)
			}
		}
		if want := []string{"CMD", name, "healthcheck"}; !slices.Equal(svc.Healthcheck.Test, want) {
			t.Errorf("compose service %s health check %q, want %q", name, svc.Healthcheck.Test, want)
		}
	}
	api, worker, s3 := file.Services["api"], file.Services["worker"], file.Services["s3"]
	// Secrets come from .env: rendered, they are its values.
	if api.Environment["JWT_SECRET"] != values["JWT_SECRET"] || api.Environment["ADMIN_PASSWORD"] != values["ADMIN_PASSWORD"] {
		t.Error("the api's JWT_SECRET and ADMIN_PASSWORD are not the ones of the env file")
	}
	if _, ok := worker.Environment["JWT_SECRET"]; ok {
		t.Error("the worker gets JWT_SECRET, which it does not need")
	}
	// Both sign delivery URLs (answers, webhooks), with the .env's keys,
	// and presign for the host browsers reach, not the network's "s3".
	for name, svc := range map[string]service{"api": api, "worker": worker} {
		if svc.Environment["DELIVERY_SIGNING_KEYS"] != values["DELIVERY_SIGNING_KEYS"] {
			t.Errorf("compose service %s: DELIVERY_SIGNING_KEYS is not the env file's", name)
		}
		pub, internal := svc.Environment["S3_PUBLIC_ENDPOINT"], svc.Environment["S3_ENDPOINT"]
		if pub == "" || pub == internal || !strings.Contains(pub, "localhost") {
			t.Errorf("compose service %s: S3_PUBLIC_ENDPOINT %q beside S3_ENDPOINT %q, want the published host", name, pub, internal)
		}
	}
	// The application signs with its own S3 account, not the root one.
	if api.Environment["AWS_ACCESS_KEY_ID"] != values["S3_ACCESS_KEY"] || s3.Environment["ROOT_ACCESS_KEY"] != values["S3_ROOT_ACCESS_KEY"] ||
		api.Environment["AWS_ACCESS_KEY_ID"] == s3.Environment["ROOT_ACCESS_KEY"] {
		t.Errorf("S3 credentials: app %q, root %q; want the app's own account", api.Environment["AWS_ACCESS_KEY_ID"], s3.Environment["ROOT_ACCESS_KEY"])
	}
	// --scale worker=3 needs a worker with no fixed name and no host port,
	// and a concurrency that does not multiply the host's cores by three.
	if worker.ContainerName != "" || len(worker.Ports) > 0 {
		t.Error("the worker service cannot be scaled: it has a container name or a host port")
	}
	if worker.Environment["WORKER_CONCURRENCY"] == "" {
		t.Error("the worker does not set WORKER_CONCURRENCY: every replica would take one image per host CPU")
	}
	// Stopping must outlast the drain and the shutdown timeouts.
	drain := parseDuration(t, "SHUTDOWN_DRAIN_DELAY", api.Environment["SHUTDOWN_DRAIN_DELAY"])
	if grace := parseDuration(t, "api stop_grace_period", api.StopGracePeriod); grace <= drain+apiShutdownTimeout {
		t.Errorf("api stop_grace_period %s is not longer than SHUTDOWN_DRAIN_DELAY + %s", grace, apiShutdownTimeout)
	}
	workerShutdown := parseDuration(t, "WORKER_SHUTDOWN_TIMEOUT", worker.Environment["WORKER_SHUTDOWN_TIMEOUT"])
	if grace := parseDuration(t, "worker stop_grace_period", worker.StopGracePeriod); grace <= workerShutdown {
		t.Errorf("worker stop_grace_period %s is not longer than WORKER_SHUTDOWN_TIMEOUT %s", grace, workerShutdown)
	}
	redis := strings.Join(file.Services["redis"].Command, " ")
	if !strings.Contains(redis, "--maxmemory-policy noeviction") || !strings.Contains(redis, "--appendonly yes") {
		t.Errorf("redis command %q lacks persistence or noeviction", redis)
	}

	// In the file itself, every secret is a ${VAR:?...} reference.
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range composeSecrets {
		if !strings.Contains(string(raw), "${"+name+":?") {
			t.Errorf("docker-compose.yml does not require %s from .env (${%s:?...})", name, name)
		}
	}
}

// apiShutdownTimeout is how long the API lets in-flight requests finish
// after the drain delay (cmd/api).
const apiShutdownTimeout = 20 * time.Second

func parseDuration(t *testing.T, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	return d
}

// readEnvFile reads NAME=value lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if name, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			m[name] = v
		}
	}
	return m
}
