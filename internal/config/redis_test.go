package config_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/config"
)

// sentinel is production with its Redis found through Sentinel.
func sentinel(kv ...string) map[string]string {
	m := with(production, "REDIS_URL", "",
		"REDIS_SENTINEL_ADDRS", "s1:26379, s2:26379,10.0.0.3:26380", "REDIS_SENTINEL_MASTER", "imagesvc")
	return with(m, kv...)
}

func TestRedisSentinel(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, p := range []config.Process{config.API, config.Worker} {
			c, err := config.FromEnv(p, env(sentinel("REDIS_SENTINEL_PASSWORD", "sentinel-pw", "REDIS_PASSWORD", "master-pw", "REDIS_DB", "2")))
			if err != nil {
				t.Fatalf("process %d: %v", p, err)
			}
			r := c.Redis
			if !r.Sentinel() || r.URL != "" || r.SentinelMaster != "imagesvc" || r.SentinelPassword != "sentinel-pw" || r.Password != "master-pw" || r.DB != 2 {
				t.Errorf("process %d: redis = %+v", p, r)
			}
			if want := []string{"s1:26379", "s2:26379", "10.0.0.3:26380"}; !slices.Equal(r.SentinelAddrs, want) {
				t.Errorf("sentinel addrs = %q, want %q", r.SentinelAddrs, want)
			}
			if c.Embedded.Redis {
				t.Error("Sentinel set, yet Redis is embedded")
			}
			log := fmt.Sprint(c.Redacted()...)
			if strings.Contains(log, "sentinel-pw") || strings.Contains(log, "master-pw") {
				t.Errorf("Redacted leaks a Redis password: %s", log)
			}
			if !strings.Contains(log, "imagesvc via s1:26379") {
				t.Errorf("Redacted = %s, want the master's name and the Sentinels", log)
			}
		}
	})
	t.Run("QuickstartEmbedsNoRedis", func(t *testing.T) {
		c, err := config.FromEnv(config.API, env(map[string]string{"QUICKSTART": "true",
			"REDIS_SENTINEL_ADDRS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "m"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Embedded.Redis || !c.Redis.Sentinel() {
			t.Errorf("quickstart with Sentinel set: embedded %+v, redis %+v", c.Embedded, c.Redis)
		}
	})
	bad := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"ErrBoth", sentinel("REDIS_URL", "redis://r:6379/0"), "both set"},
		{"ErrBothInQuickstart", sentinel("REDIS_URL", "redis://r:6379/0", "QUICKSTART", "true"), "both set"},
		{"ErrNeither", with(production, "REDIS_URL", ""), "REDIS_URL is required: REDIS_URL for one Redis server, or REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER"},
		{"ErrMasterMissing", sentinel("REDIS_SENTINEL_MASTER", ""), "REDIS_SENTINEL_MASTER is required"},
		{"ErrAddrsMissing", sentinel("REDIS_SENTINEL_ADDRS", ""), "REDIS_SENTINEL_ADDRS is required"},
		{"ErrAddrNoPort", sentinel("REDIS_SENTINEL_ADDRS", "s1:26379,s2"), `"s2" is not host:port`},
		{"ErrAddrNoHost", sentinel("REDIS_SENTINEL_ADDRS", ":26379"), `":26379" is not host:port`},
		{"ErrAddrEmptyItem", sentinel("REDIS_SENTINEL_ADDRS", "s1:26379,,s2:26379"), `"" is not host:port`},
		{"ErrAddrPortZero", sentinel("REDIS_SENTINEL_ADDRS", "s1:0"), "port must be a number from 1 to 65535"},
		{"ErrAddrPortWord", sentinel("REDIS_SENTINEL_ADDRS", "s1:redis"), "port must be a number from 1 to 65535"},
		{"ErrAddrPortTooBig", sentinel("REDIS_SENTINEL_ADDRS", "s1:65536"), "port must be a number from 1 to 65535"},
		{"ErrAddrTwice", sentinel("REDIS_SENTINEL_ADDRS", "s1:26379,s1:26379"), "listed twice"},
		{"ErrPasswordWithURL", with(production, "REDIS_PASSWORD", "pw"), "put the credentials and database in the URL"},
		{"ErrSentinelPasswordWithURL", with(production, "REDIS_SENTINEL_PASSWORD", "pw"), "put the credentials and database in the URL"},
		{"ErrDBWithURL", with(production, "REDIS_DB", "3"), "put the credentials and database in the URL"},
		{"ErrPasswordAlone", map[string]string{"QUICKSTART": "true", "REDIS_PASSWORD": "pw"}, "need REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER"},
		{"ErrNegativeDB", sentinel("REDIS_DB", "-1"), "REDIS_DB must not be negative"},
		{"ErrBadURL", with(production, "REDIS_URL", "http://r:6379"), "REDIS_URL"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []config.Process{config.API, config.Worker} {
				if p == config.Worker && tc.env["QUICKSTART"] == "true" {
					continue
				}
				_, err := config.FromEnv(p, env(tc.env))
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("process %d: FromEnv = %v, want an error containing %q", p, err, tc.want)
				}
			}
		})
	}
}
