// Package deployments_test checks the deployment files: the compose file
// validates with docker-compose, the Kubernetes manifests parse, and every
// environment variable they set for our processes is one the binaries read.
package deployments_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imagesvc/imagesvc/internal/config"
)

func checkNames(t *testing.T, where string, names []string) {
	t.Helper()
	known := config.Names()
	for _, n := range names {
		if !slices.Contains(known, n) {
			t.Errorf("%s sets %s, which the binaries do not read", where, n)
		}
	}
}

func TestCompose(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed (Debian package docker-compose; `make test` installs it)")
	}
	out, err := exec.Command("docker-compose", "-f", "../docker-compose.yml", "config").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("docker-compose config: %v\n%s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Command       []string          `yaml:"command"`
			Environment   map[string]string `yaml:"environment"`
			Ports         []any             `yaml:"ports"`
			ContainerName string            `yaml:"container_name"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &file); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mysql", "redis", "minio", "api", "worker"} {
		if _, ok := file.Services[name]; !ok {
			t.Errorf("compose has no %s service", name)
		}
	}
	for _, name := range []string{"api", "worker"} {
		svc := file.Services[name]
		var env []string
		for k := range svc.Environment {
			env = append(env, k)
		}
		checkNames(t, "compose service "+name, env)
		for _, required := range []string{"DATABASE_URL", "REDIS_URL", "S3_BUCKET", "JWT_SECRET"} {
			if svc.Environment[required] == "" {
				t.Errorf("compose service %s does not set %s", name, required)
			}
		}
	}
	// --scale worker=3 needs a worker with no fixed name and no host port.
	if w := file.Services["worker"]; w.ContainerName != "" || len(w.Ports) > 0 {
		t.Error("the worker service cannot be scaled: it has a container name or a host port")
	}
	redis := strings.Join(file.Services["redis"].Command, " ")
	if !strings.Contains(redis, "--maxmemory-policy noeviction") || !strings.Contains(redis, "--appendonly yes") {
		t.Errorf("redis command %q lacks persistence or noeviction", redis)
	}
}

type manifest struct {
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Data       map[string]string     `yaml:"data"`
	StringData map[string]string     `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Name string `yaml:"name"`
					Env  []struct {
						Name string `yaml:"name"`
					} `yaml:"env"`
					ReadinessProbe *struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe *struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

func TestKubernetes(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	byKind := map[string]manifest{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var m manifest
			if err := dec.Decode(&m); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if m.Kind == "" || m.Metadata.Name == "" {
				t.Errorf("%s: a document without kind or name", f)
			}
			byKind[m.Kind+"/"+m.Metadata.Name] = m
		}
	}
	cm, sec := byKind["ConfigMap/imagesvc"], byKind["Secret/imagesvc"]
	var shared []string
	for k := range cm.Data {
		shared = append(shared, k)
	}
	for k := range sec.StringData {
		shared = append(shared, k)
	}
	checkNames(t, "ConfigMap and Secret imagesvc", shared)

	api, worker := byKind["Deployment/imagesvc-api"], byKind["Deployment/imagesvc-worker"]
	for name, d := range map[string]manifest{"api": api, "worker": worker} {
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s Deployment: want one container", name)
		}
		var env []string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env = append(env, e.Name)
		}
		checkNames(t, name+" Deployment", env)
	}
	c := api.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("the API Deployment needs readiness on /readyz and liveness on /healthz")
	}
	shutdown, err := time.ParseDuration(cm.Data["WORKER_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("WORKER_SHUTDOWN_TIMEOUT: %v", err)
	}
	if grace := time.Duration(worker.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second; grace <= shutdown {
		t.Errorf("worker grace period %s is not longer than WORKER_SHUTDOWN_TIMEOUT %s", grace, shutdown)
	}
	so := byKind["ScaledObject/imagesvc-worker"]
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Metadata["listName"] != "asynq:{images}:pending" {
		t.Errorf("the ScaledObject does not scale on the images pending list: %+v", so.Spec.Triggers)
	}
}

func TestDockerfile(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	envLine := regexp.MustCompile(`([A-Z_][A-Z0-9_]*)=`)
	var env []string
	var user, health bool
	stages := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "FROM "):
			stages++
		case strings.HasPrefix(line, "ENV "):
			for _, m := range envLine.FindAllStringSubmatch(line, -1) {
				env = append(env, m[1])
			}
		case strings.HasPrefix(line, "USER "):
			user = !strings.Contains(line, "root") && !strings.HasSuffix(line, " 0")
		case strings.HasPrefix(line, "HEALTHCHECK "):
			health = true
		}
	}
	checkNames(t, "Dockerfile", env)
	if stages < 2 || !user || !health {
		t.Errorf("Dockerfile: %d stages, non-root user %v, health check %v; want multi-stage, non-root, a HEALTHCHECK", stages, user, health)
	}
}
