package config_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// with returns a copy of m with the pairs kv set.
func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// production is a complete configuration with real dependencies.
var production = map[string]string{
	"DATABASE_URL": "mysql://u:p@db:3306/images", "REDIS_URL": "redis://r:6379/0",
	"JWT_SECRET": "k3Jv9QeT2mXw7LpZ4sRb8NcY1hUa6GdF0oEi5", "S3_BUCKET": "images",
	"DELIVERY_SIGNING_KEYS": "k1:" + deliveryKey,
}

// deliveryKey is 32 random bytes in base64.
const deliveryKey = "q8Xr0fK1s9VdW3mZbN7yT2eL5gH4jP6cA1uI0oR8tYk="

func TestFromEnv(t *testing.T) {
	good := with(production, "S3_ENDPOINT", "http://s3:9000", "VARIANTS", "thumb:100x100", "ACCEPTED_TYPES", "jpeg,png,tiff")
	t.Run("OK", func(t *testing.T) {
		c, err := config.FromEnv(config.API, env(good))
		if err != nil {
			t.Fatal(err)
		}
		if !c.S3.ForcePathStyle || len(c.Image.Variants) != 1 || len(c.Image.AcceptedTypes) != 3 || c.Image.MaxUploadBytes != 25<<20 {
			t.Errorf("config = %+v", c)
		}
		if c.Quickstart || c.Embedded.Any() {
			t.Errorf("quickstart %v, embedded %+v with every dependency set", c.Quickstart, c.Embedded)
		}
		for _, kv := range c.Redacted() {
			if s, ok := kv.(string); ok && (strings.Contains(s, ":p@") || strings.Contains(s, good["JWT_SECRET"])) {
				t.Errorf("Redacted leaks a secret: %q", s)
			}
		}
	})
	t.Run("QuickstartEmbedsWhatIsUnset", func(t *testing.T) {
		c, err := config.FromEnv(config.API, env(map[string]string{"QUICKSTART": "true", "DATA_DIR": "/tmp/qs"}))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Embedded.Database || !c.Embedded.Redis || !c.Embedded.S3 || c.DB.URL != "sqlite:///tmp/qs/imagesvc.db" {
			t.Errorf("embedded = %+v, database %s", c.Embedded, c.DB.URL)
		}
		c, err = config.FromEnv(config.API, env(map[string]string{"QUICKSTART": "true", "S3_BUCKET": "prod-images", "REDIS_URL": "redis://r:6379/0"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Embedded.S3 || c.Embedded.Redis || !c.Embedded.Database {
			t.Errorf("with S3_BUCKET (AWS) and REDIS_URL set: embedded = %+v", c.Embedded)
		}
	})
	// Without QUICKSTART nothing is embedded by accident: each missing
	// dependency is an error naming it, all of them at once.
	t.Run("ErrDependencyRequired", func(t *testing.T) {
		for _, p := range []config.Process{config.API, config.Worker} {
			for _, name := range []string{"DATABASE_URL", "REDIS_URL", "S3_BUCKET"} {
				c, err := config.FromEnv(p, env(with(production, name, "")))
				if err == nil || !strings.Contains(err.Error(), name+" is required") {
					t.Errorf("process %d without %s: err = %v, want one naming it", p, name, err)
				}
				if c.Embedded.Any() {
					t.Errorf("process %d without %s embeds %+v", p, name, c.Embedded)
				}
			}
		}
		_, err := config.FromEnv(config.API, env(map[string]string{}))
		for _, name := range []string{"DATABASE_URL", "REDIS_URL", "S3_BUCKET", "JWT_SECRET"} {
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("FromEnv with nothing set = %v, want an error naming %s", err, name)
			}
		}
	})
	t.Run("S3EndpointOptional", func(t *testing.T) {
		c, err := config.FromEnv(config.API, env(production))
		if err != nil || c.S3.Endpoint != "" || c.Embedded.S3 {
			t.Errorf("S3_BUCKET without S3_ENDPOINT (AWS): err %v, endpoint %q, embedded %v", err, c.S3.Endpoint, c.Embedded.S3)
		}
	})
	t.Run("ErrWorkerQuickstart", func(t *testing.T) {
		_, err := config.FromEnv(config.Worker, env(with(production, "QUICKSTART", "true")))
		if err == nil || !strings.Contains(err.Error(), "QUICKSTART") || !strings.Contains(err.Error(), "worker") {
			t.Errorf("worker with QUICKSTART=true: err = %v, want a refusal naming QUICKSTART", err)
		}
	})
	t.Run("WorkerNeedsNoSecret", func(t *testing.T) {
		c, err := config.FromEnv(config.Worker, env(with(production, "JWT_SECRET", "")))
		if err != nil {
			t.Fatalf("worker without JWT_SECRET: %v", err)
		}
		if len(c.Auth.JWTSecret) != 0 {
			t.Error("the worker read JWT_SECRET")
		}
		// It never signs, so a short or placeholder value does not stop it.
		if _, err := config.FromEnv(config.Worker, env(with(production, "JWT_SECRET", "change-me"))); err != nil {
			t.Errorf("worker with a placeholder JWT_SECRET it does not read: %v", err)
		}
	})
	t.Run("ErrSecretRequiredWithRealDependencies", func(t *testing.T) {
		_, err := config.FromEnv(config.API, env(with(production, "JWT_SECRET", "")))
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
			t.Errorf("FromEnv without JWT_SECRET = %v, want an error naming it", err)
		}
	})
	t.Run("DeliveryKeys", func(t *testing.T) {
		c, err := config.FromEnv(config.Worker, env(with(production, "DELIVERY_SIGNING_KEYS", "new:"+deliveryKey+", old:"+deliveryKey)))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Image.DeliveryKeys) != 2 || c.Image.DeliveryKeys[0].ID != "new" || len(c.Image.DeliveryKeys[0].Secret) != 32 {
			t.Errorf("keys = %+v, want new then old, 32 bytes each", c.Image.DeliveryKeys)
		}
		for _, p := range []config.Process{config.API, config.Worker} {
			_, err := config.FromEnv(p, env(with(production, "DELIVERY_SIGNING_KEYS", "")))
			if err == nil || !strings.Contains(err.Error(), "DELIVERY_SIGNING_KEYS is required") {
				t.Errorf("process %d without DELIVERY_SIGNING_KEYS: err = %v, want it required", p, err)
			}
		}
		if _, err := config.FromEnv(config.API, env(map[string]string{"QUICKSTART": "true"})); err != nil {
			t.Errorf("quickstart without DELIVERY_SIGNING_KEYS (kept under DATA_DIR): %v", err)
		}
		for _, bad := range []string{"k1", "k1:c2hvcnQ=", "k1:" + deliveryKey + ",k1:" + deliveryKey, "bad id!:" + deliveryKey,
			"k1:change-me-delivery-key-use-openssl-rand-base64-32"} {
			if _, err := config.FromEnv(config.API, env(with(production, "DELIVERY_SIGNING_KEYS", bad))); err == nil ||
				!strings.Contains(err.Error(), "DELIVERY_SIGNING_KEYS") {
				t.Errorf("DELIVERY_SIGNING_KEYS=%q: err = %v, want a refusal naming it", bad, err)
			}
		}
	})
	t.Run("VariantFormats", func(t *testing.T) {
		c, err := config.FromEnv(config.API, env(production))
		if err != nil || fmt.Sprint(c.Image.Formats) != "[jpeg webp]" {
			t.Errorf("default formats = %v (%v), want [jpeg webp]", c.Image.Formats, err)
		}
		for v, ok := range map[string]bool{"jpeg": true, "jpeg,webp,avif": true, "webp": false, "jpeg,gif": false, "jpeg,jpeg": false} {
			_, err := config.FromEnv(config.API, env(with(production, "VARIANT_FORMATS", v)))
			if (err == nil) != ok {
				t.Errorf("VARIANT_FORMATS=%s: err = %v, want accepted %v", v, err, ok)
			}
		}
	})
	t.Run("ErrEmbeddedS3OffLoopback", func(t *testing.T) {
		for addr, ok := range map[string]bool{"127.0.0.1:9000": true, "localhost:0": true, "[::1]:9000": true,
			"0.0.0.0:9000": false, ":9000": false, "192.168.1.5:9000": false} {
			_, err := config.FromEnv(config.API, env(map[string]string{"QUICKSTART": "true", "EMBEDDED_S3_ADDR": addr}))
			if got := err == nil; got != ok {
				t.Errorf("EMBEDDED_S3_ADDR=%s: err = %v, want accepted %v", addr, err, ok)
			}
		}
	})
	t.Run("ErrEveryBadSettingNamed", func(t *testing.T) {
		_, err := config.FromEnv(config.API, env(with(production,
			"JWT_SECRET", "short", "MAX_UPLOAD_BYTES", "lots", "VARIANTS", "bad", "LOG_FORMAT", "xml",
		)))
		if err == nil {
			t.Fatal("FromEnv accepted a bad configuration")
		}
		for _, name := range []string{"JWT_SECRET", "MAX_UPLOAD_BYTES", "VARIANTS", "LOG_FORMAT"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error does not name %s: %v", name, err)
			}
		}
	})
}

// TestPlaceholderSecrets: a secret copied from a sample is refused at start,
// in production and in the quickstart alike, with a message naming it.
func TestPlaceholderSecrets(t *testing.T) {
	bad := []string{
		"change-me-to-32-or-more-random-bytes-please", // what compose and the manifests shipped
		"CHANGEME-CHANGEME-CHANGEME-CHANGEME-CHANGEME",
		"change_me_change_me_change_me_change_me_00",
		"this-is-a-placeholder-value-of-thirty-two-bytes",
		"an-example-secret-that-is-long-enough-to-pass",
		"your-secret-here-your-secret-here-your-secret",
		strings.Repeat("x", 48),
	}
	for _, quick := range []string{"false", "true"} {
		for _, v := range bad {
			_, err := config.FromEnv(config.API, env(with(production, "QUICKSTART", quick, "JWT_SECRET", v)))
			if err == nil || !strings.Contains(err.Error(), "JWT_SECRET is a placeholder") {
				t.Errorf("QUICKSTART=%s JWT_SECRET=%q: err = %v, want a placeholder refusal", quick, v, err)
			}
			_, err = config.FromEnv(config.API, env(with(production, "QUICKSTART", quick, "ADMIN_USER", "ops", "ADMIN_PASSWORD", v)))
			if err == nil || !strings.Contains(err.Error(), "ADMIN_PASSWORD is a placeholder") {
				t.Errorf("QUICKSTART=%s ADMIN_PASSWORD=%q: err = %v, want a placeholder refusal", quick, v, err)
			}
		}
	}
	if _, err := config.FromEnv(config.API, env(with(production, "ADMIN_USER", "ops", "ADMIN_PASSWORD", "Tr0ub4dor&3-horse"))); err != nil {
		t.Errorf("a real ADMIN_PASSWORD refused: %v", err)
	}
}

// TestEnvExampleRefused: every value of the repository's .env.example,
// copied unchanged, is refused as a secret.
func TestEnvExampleRefused(t *testing.T) {
	f, err := os.Open("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || v == "" {
			continue
		}
		n++
		_, err := config.FromEnv(config.API, env(with(production, "ADMIN_USER", "ops", "ADMIN_PASSWORD", v)))
		if err == nil || !strings.Contains(err.Error(), "ADMIN_PASSWORD is a placeholder") {
			t.Errorf(".env.example %s=%s is accepted as a secret: %v", name, v, err)
		}
	}
	if n == 0 {
		t.Fatal(".env.example has no values")
	}
}

func TestNames(t *testing.T) {
	names := config.Names()
	for _, want := range []string{"QUICKSTART", "JWT_SECRET", "OPS_HTTP_ADDR", "SHUTDOWN_DRAIN_DELAY", "DATABASE_URL", "WORKER_HTTP_ADDR"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("Names() lacks %s", want)
		}
	}
}
