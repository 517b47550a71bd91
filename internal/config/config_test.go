package config_test

import (
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	good := map[string]string{
		"DATABASE_URL": "mysql://u:p@db:3306/images", "REDIS_URL": "redis://r:6379/0",
		"JWT_SECRET": strings.Repeat("s", 32), "S3_ENDPOINT": "http://s3:9000",
		"VARIANTS": "thumb:100x100", "ACCEPTED_TYPES": "jpeg,png,tiff",
	}
	t.Run("OK", func(t *testing.T) {
		c, err := config.FromEnv(env(good))
		if err != nil {
			t.Fatal(err)
		}
		if !c.S3.ForcePathStyle || len(c.Image.Variants) != 1 || len(c.Image.AcceptedTypes) != 3 || c.Image.MaxUploadBytes != 25<<20 {
			t.Errorf("config = %+v", c)
		}
		for _, kv := range c.Redacted() {
			if s, ok := kv.(string); ok && (strings.Contains(s, ":p@") || strings.Contains(s, good["JWT_SECRET"])) {
				t.Errorf("Redacted leaks a secret: %q", s)
			}
		}
	})
	t.Run("QuickstartEmbedsWhatIsUnset", func(t *testing.T) {
		c, err := config.FromEnv(env(map[string]string{"DATA_DIR": "/tmp/qs"}))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Embedded.Database || !c.Embedded.Redis || !c.Embedded.S3 || c.DB.URL != "sqlite:///tmp/qs/imagesvc.db" {
			t.Errorf("embedded = %+v, database %s", c.Embedded, c.DB.URL)
		}
		c, err = config.FromEnv(env(map[string]string{"S3_BUCKET": "prod-images", "REDIS_URL": "redis://r:6379/0"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Embedded.S3 || c.Embedded.Redis || !c.Embedded.Database {
			t.Errorf("with S3_BUCKET (AWS) and REDIS_URL set: embedded = %+v", c.Embedded)
		}
	})
	t.Run("ErrSecretRequiredWithRealDependencies", func(t *testing.T) {
		_, err := config.FromEnv(env(map[string]string{"DATABASE_URL": "mysql://db/x", "REDIS_URL": "redis://r", "S3_BUCKET": "b"}))
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
			t.Errorf("FromEnv without JWT_SECRET = %v, want an error naming it", err)
		}
	})
	t.Run("ErrEveryBadSettingNamed", func(t *testing.T) {
		_, err := config.FromEnv(env(map[string]string{
			"DATABASE_URL": "mysql://db/x", "REDIS_URL": "redis://r", "S3_BUCKET": "b",
			"JWT_SECRET": "short", "MAX_UPLOAD_BYTES": "lots", "VARIANTS": "bad", "LOG_FORMAT": "xml",
		}))
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
