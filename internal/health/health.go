// Package health answers readiness probes: it pings each dependency with a
// short timeout and says which one failed.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
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
