// Package redisconn makes every Redis connection of the service from one
// Config: a redis:// URL naming one server, or a master that Redis
// Sentinel monitors and names. The queue (asynq client, server, inspector
// and the dashboard), the rate limiter, the event stream, the tus locks and
// the readiness check all take their client from here, so none of them can
// miss Sentinel.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Config says where Redis is: URL, or the Sentinel fields.
type Config struct {
	// URL is redis://[user:password@]host:port/db (rediss:// for TLS).
	URL string
	// SentinelAddrs are the host:port of the Sentinels that monitor the
	// master; the client asks them which server is the master, and asks
	// again when its connection fails (a failover).
	SentinelAddrs []string
	// SentinelMaster is the name the Sentinels know the master by.
	SentinelMaster string
	// SentinelPassword authenticates to the Sentinels (requirepass of
	// sentinel.conf); empty when they need none.
	SentinelPassword string
	// Username and Password authenticate to the master and its replicas
	// (their requirepass or ACL user) when Sentinel is used; with URL they
	// are in the URL.
	Username, Password string
	// DB is the database number selected on the master, with Sentinel.
	DB int
}

// Sentinel reports whether the master is found through Sentinel.
func (c Config) Sentinel() bool { return len(c.SentinelAddrs) > 0 || c.SentinelMaster != "" }

// ParseSentinelAddrs splits a comma-separated list of host:port and checks
// each: a host, a port from 1 to 65535, no repeats.
func ParseSentinelAddrs(s string) ([]string, error) {
	var addrs []string
	seen := map[string]bool{}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, fmt.Errorf("%q is not host:port", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: the port must be a number from 1 to 65535", a)
		}
		if seen[a] {
			return nil, fmt.Errorf("%q is listed twice", a)
		}
		seen[a] = true
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// Validate checks that exactly one way to Redis is given, and given whole.
// An empty Config is valid: the quickstart embeds Redis then.
func (c Config) Validate() error {
	if c.URL != "" && c.Sentinel() {
		return errors.New("REDIS_URL and REDIS_SENTINEL_ADDRS/REDIS_SENTINEL_MASTER are both set: " +
			"set REDIS_URL for one Redis server, or the Sentinel settings for a monitored master, not both")
	}
	if c.URL != "" {
		if _, err := redis.ParseURL(c.URL); err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		if c.Username != "" || c.Password != "" || c.SentinelPassword != "" || c.DB != 0 {
			return errors.New("REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB and REDIS_SENTINEL_PASSWORD go with the Sentinel settings; " +
				"with REDIS_URL put the credentials and database in the URL (redis://user:password@host:6379/0)")
		}
		return nil
	}
	if !c.Sentinel() {
		if c.Username != "" || c.Password != "" || c.SentinelPassword != "" || c.DB != 0 {
			return errors.New("REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB and REDIS_SENTINEL_PASSWORD need REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER")
		}
		return nil
	}
	var errs []error
	if len(c.SentinelAddrs) == 0 {
		errs = append(errs, errors.New("REDIS_SENTINEL_ADDRS is required with REDIS_SENTINEL_MASTER: the Sentinels' host:port, comma-separated"))
	}
	if c.SentinelMaster == "" {
		errs = append(errs, errors.New("REDIS_SENTINEL_MASTER is required with REDIS_SENTINEL_ADDRS: the master's name in sentinel.conf (sentinel monitor <name> ...)"))
	}
	if c.DB < 0 {
		errs = append(errs, errors.New("REDIS_DB must not be negative"))
	}
	return errors.Join(errs...)
}

// Empty reports whether no Redis is configured (the quickstart embeds one).
func (c Config) Empty() bool { return c.URL == "" && !c.Sentinel() }

// NewClient returns a client of the configured Redis. With Sentinel it is
// a failover client: it connects to whichever server the Sentinels name
// master, and asks them again when that connection fails.
func (c Config) NewClient() (*redis.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Sentinel() {
		return redis.NewFailoverClient(c.failoverOptions()), nil
	}
	opts, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return redis.NewClient(opts), nil
}

func (c Config) failoverOptions() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:       c.SentinelMaster,
		SentinelAddrs:    c.SentinelAddrs,
		SentinelPassword: c.SentinelPassword,
		Username:         c.Username,
		Password:         c.Password,
		DB:               c.DB,
	}
}

// AsynqOpt returns the same Redis as asynq's connection option, for what
// makes its own connections (the asynqmon dashboard).
func (c Config) AsynqOpt() (asynq.RedisConnOpt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Sentinel() {
		return asynq.RedisFailoverClientOpt{
			MasterName: c.SentinelMaster, SentinelAddrs: c.SentinelAddrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: c.DB,
		}, nil
	}
	opt, err := asynq.ParseRedisURI(c.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return opt, nil
}

// CheckEvictionPolicy refuses a Redis that evicts keys: it would silently
// drop queued tasks. With Sentinel, rdb is a failover client and the
// command runs on the master the Sentinels name.
func CheckEvictionPolicy(ctx context.Context, rdb redis.UniversalClient) error {
	res, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return nil // CONFIG may be disabled on managed Redis; nothing to check then
	}
	policy := res["maxmemory-policy"]
	if policy != "" && policy != "noeviction" {
		return errors.New("redis maxmemory-policy is " + policy + ": it would evict queued tasks; set it to noeviction")
	}
	return nil
}
