// Package health answers the probes: liveness, the pod-local readiness of a
// draining process, and the readiness of the dependencies (each pinged with
// a short timeout, naming the one that failed).
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Check is one dependency and how to ping it.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Timeout bounds each check.
const Timeout = 2 * time.Second

// Ready returns a handler that answers 200 when every check passes and 503,
// naming the ones that failed, otherwise. Checks run in parallel.
func Ready(checks []Check, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), Timeout)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		results := make(chan result, len(checks))
		for _, c := range checks {
			go func() { results <- result{c.Name, c.Ping(ctx)} }()
		}
		status := map[string]string{}
		var failed []string
		for range checks {
			res := <-results
			status[res.name] = "ok"
			if res.err != nil {
				status[res.name] = "unavailable"
				failed = append(failed, res.name)
				log.WarnContext(ctx, "readiness check failed", "dependency", res.name, "err", res.err)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if len(failed) > 0 {
			sort.Strings(failed)
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]any{
				"error":  map[string]string{"code": "not_ready", "message": "unavailable: " + strings.Join(failed, ", ")},
				"checks": status,
			})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "checks": status})
	})
}

// Live answers 200 while the process runs.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
}

// Drain is the pod-local readiness of a process: ready while it runs,
// not ready from the moment it begins to shut down. It looks at nothing
// outside the process, so a blip of a shared dependency never takes every
// replica out of its load balancer at once (/readyz reports those). The
// zero value is ready; a nil *Drain is always ready.
type Drain struct {
	draining atomic.Bool
}

// Begin marks the process as shutting down.
func (d *Drain) Begin() { d.draining.Store(true) }

// Draining reports whether Begin was called.
func (d *Drain) Draining() bool { return d != nil && d.draining.Load() }

// Handler answers 200 {"status":"ok"}, or 503 with the error envelope and
// Retry-After once the process is draining. It is served only once the
// process has started: before that, nothing listens.
func (d *Drain) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if d.Draining() {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"draining","message":"this instance is shutting down; retry on another"}}` + "\n"))
			return
		}
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
}

// ProbeTimeout bounds Probe.
const ProbeTimeout = 2 * time.Second

// Probe GETs /healthz of the process listening on addr (a listen address
// such as ":8080" or "127.0.0.1:9090"), on loopback when addr names no
// host or the unspecified one. It is the container health check, so the
// image needs no curl.
func Probe(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No proxy from the environment: the process is on this host.
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return nil
}
