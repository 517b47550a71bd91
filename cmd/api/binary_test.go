package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	binDir  string
	binMu   sync.Mutex
	binPath = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imagesvc-api-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds the api command once per set of build tags ("" for none).
func binary(t *testing.T, tags string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binPath[tags]; ok {
		return p
	}
	p := filepath.Join(binDir, "api"+strings.ReplaceAll(tags, ",", "-"))
	args := []string{"build", "-o", p}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", tags, err, out)
	}
	binPath[tags] = p
	return p
}

// cleanEnv is the test's environment without any setting of the binaries,
// so that a developer's or CI's variables do not leak into a run.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DATABASE_URL", "REDIS_URL", "REDIS_SENTINEL_ADDRS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD",
			"REDIS_PASSWORD", "REDIS_USERNAME", "REDIS_DB", "S3_ENDPOINT", "S3_BUCKET", "JWT_SECRET", "HTTP_ADDR", "DATA_DIR",
			"QUICKSTART", "OPS_HTTP_ADDR", "DELIVERY_SIGNING_KEYS", "EMBEDDED_S3_ADDR", "SHUTDOWN_DRAIN_DELAY", "ADMIN_USER", "ADMIN_PASSWORD", "MIGRATE_ON_START":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
