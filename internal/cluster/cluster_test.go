package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Ctrl-C or a CI timeout's SIGTERM: remove what the test made before
	// going (t.Cleanup does not run when the process is interrupted).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		teardown.run()
		os.Stderr.WriteString("cluster: interrupted by " + s.String() + "; everything the test made is removed\n")
		os.Exit(1)
	}()
	code := m.Run()
	teardown.run()
	os.Exit(code)
}

// figures are what the scenarios measured, for docs/scale-out.md.
type figures struct {
	Sentinel          bool    `json:"sentinel"`
	PromoteSeconds    float64 `json:"promote_seconds,omitempty"`
	FailoverOutageSec float64 `json:"failover_outage_seconds,omitempty"`
	FailoverRefused   int     `json:"failover_refused,omitempty"`
	FailoverUploads   int     `json:"failover_uploads,omitempty"`
	FailoverLost      int     `json:"failover_lost"`
	CutRecoverSeconds float64 `json:"worker_cut_recover_seconds,omitempty"`
	CutRetaken        int     `json:"worker_cut_retaken,omitempty"`
	CutUploads        int     `json:"worker_cut_uploads,omitempty"`
	CutLost           int     `json:"worker_cut_lost"`
	CutLateS3         int     `json:"worker_cut_late_s3_requests"`
	APIStopUploads    int     `json:"api_stop_uploads,omitempty"`
	APIStopRefused    int     `json:"api_stop_refused,omitempty"`
	APIStopConnErrors int     `json:"api_stop_connection_errors,omitempty"`
	APIStopLost       int     `json:"api_stop_lost"`
}

// TestCluster runs the service on ten hosts and takes pieces away under
// load: a worker host's network, the Redis master (with Sentinel), an API.
func TestCluster(t *testing.T) {
	c := newCluster(t)
	c.startAPI("api1")
	c.startAPI("api2")
	for _, w := range []string{"worker1", "worker2", "worker3"} {
		c.startWorker(w, "WORKER_CONCURRENCY=1")
	}
	cl := newClient(t, c.apiURLs(), 4)
	small := photoJPEG(t, 2)
	fig := figures{Sentinel: c.sentinel}
	t.Logf("cluster up: %d hosts on %s.0/24, Redis through %s", len(c.hosts), subnet,
		map[bool]string{true: "Sentinel", false: "REDIS_URL (the binaries have no Sentinel support)"}[c.sentinel])

	t.Run("Baseline", func(t *testing.T) {
		l := cl.steady(t.Context(), small, 2, 0, 8)
		l.wg.Wait()
		outs := l.finish()
		final := cl.waitFinished(t.Context(), outs, 60*time.Second)
		noServerErrors(t, outs)
		c.verify(t, cl, outs, final)
		byAPI := map[string]int{}
		for _, o := range outs {
			byAPI[o.api]++
		}
		if len(byAPI) != 2 {
			t.Errorf("uploads accepted by %v, want both APIs", byAPI)
		}
		t.Logf("baseline: %s", summarize(outs))
		// Every server listens on its host's address only: a namespace's
		// loopback has no listener, so a process that reached for
		// 127.0.0.1 would fail here rather than find a neighbour.
		for _, h := range c.hosts {
			for _, line := range strings.Split(strings.TrimSpace(run(t, "ip", "netns", "exec", h.ns, "ss", "-Htln")), "\n") {
				f := strings.Fields(line)
				if len(f) < 4 {
					continue
				}
				if host, _, _ := strings.Cut(f[3], ":"); host != h.addr {
					t.Errorf("%s: a listener on %s, want only %s", h, f[3], h.addr)
				}
			}
		}
	})

	t.Run("WorkerCut", func(t *testing.T) {
		w3 := c.hosts["worker3"]
		metrics := "http://" + c.addr("worker3", workerPort) + "/metrics"
		l := cl.steady(t.Context(), photoJPEG(t, 4), 2, 300*time.Millisecond, 60)
		// Cut it while it renders (one task at a time: it has fetched one
		// original more than it has rendered), so that it has variants to
		// store when its link comes back.
		busy := waitFor(t.Context(), 60*time.Second, func() bool {
			b := scrape(metrics)
			return sample(b, "imagesvc_images_in_flight") >= 1 &&
				sample(b, `imagesvc_processing_stage_seconds_count{stage="fetch"}`) > sample(b, `imagesvc_processing_stage_seconds_count{stage="decode_resize"}`)
		})
		if !busy {
			l.finish()
			t.Fatal("worker3 never took a task")
		}
		w3.cut(t)
		cutAt := time.Now()
		t.Logf("worker3 cut off mid-task at %s", cutAt.Format("15:04:05.000"))
		sleep(t.Context(), 10*time.Second)
		outs := l.finish()
		// Every image, the one worker3 held included, finishes while it is
		// still cut off: the others took its task over (asynq's lease on
		// it expires 30 s after the cut; its recoverer runs every minute).
		final := cl.waitFinished(t.Context(), outs, 150*time.Second)
		fig.CutRecoverSeconds = time.Since(cutAt).Seconds()
		fig.CutLost = lost(outs, final)
		before := countS3From(c.s3AccessLog(), w3.addr)
		w3.restore(t)
		// Let worker3 find out: it finishes or abandons what it held (its
		// completion is fenced off) and then holds nothing.
		back := waitFor(t.Context(), 60*time.Second, func() bool { return metric(metrics, "imagesvc_images_in_flight") == 0 })
		if !back {
			t.Errorf("worker3 still busy (or unreachable) 60 s after its link came back")
		}
		sleep(t.Context(), 2*time.Second)
		// Whether worker3 wrote anything late (after the others finished
		// its image): the check below holds either way, but it is only
		// put to the test when it did.
		late := delta(before, countS3From(c.s3AccessLog(), w3.addr))
		fig.CutLateS3 = int(sum(late, func(string) bool { return true }))
		t.Logf("worker3's S3 requests after its link came back: %d (%s)", fig.CutLateS3, top(late, 1, 8))
		noServerErrors(t, outs)
		fig.CutRetaken = c.verify(t, cl, outs, final)
		fig.CutUploads = len(outs)
		if fig.CutRetaken == 0 {
			t.Errorf("no image was processed a second time: worker3's task was not taken over")
		}
		if c.workers["worker3"].exited() {
			t.Errorf("worker3 ended: %v\n%s", c.workers["worker3"].err, c.workers["worker3"].tail())
		}
		t.Logf("worker cut: %s; every image finished (or the wait ended) %.0f s after the cut, %d taken over from worker3, %d lost",
			summarize(outs), fig.CutRecoverSeconds, fig.CutRetaken, fig.CutLost)
	})

	t.Run("RedisMasterKilled", func(t *testing.T) {
		if !c.sentinel {
			t.Fatal("the binaries read no REDIS_SENTINEL_ADDRS: a killed master cannot be replaced")
		}
		sc := c.sentinelClient("redis3")
		l := cl.steady(t.Context(), small, 3, 100*time.Millisecond, 400)
		sleep(t.Context(), 3*time.Second)
		killedAt := time.Now()
		c.redis["redis1"].stop(syscall.SIGKILL, 0)
		promoted := waitFor(t.Context(), 60*time.Second, func() bool {
			addr, err := sc.GetMasterAddrByName(t.Context(), masterName).Result()
			return err == nil && addr[0] == c.hosts["redis2"].addr
		})
		if !promoted {
			l.finish()
			t.Fatal("the Sentinels did not promote the replica on redis2 within 60 s")
		}
		fig.PromoteSeconds = time.Since(killedAt).Seconds()
		sleep(t.Context(), 10*time.Second)
		outs := l.finish()
		final := cl.waitFinished(t.Context(), outs, 120*time.Second)
		noServerErrors(t, outs)
		c.verify(t, cl, outs, final)
		s := summarize(outs)
		fig.FailoverUploads, fig.FailoverRefused, fig.FailoverLost = s.uploads, s.refused, lost(outs, final)
		fig.FailoverOutageSec = acceptGap(outs, killedAt).Seconds()
		if s.accepted == 0 {
			t.Errorf("nothing accepted: %s", s)
		}
		t.Logf("Redis master killed: promoted in %.1f s, no upload accepted for %.1f s; %s; %d lost",
			fig.PromoteSeconds, fig.FailoverOutageSec, s, fig.FailoverLost)
	})

	t.Run("APIStopped", func(t *testing.T) {
		l := cl.steady(t.Context(), small, 2, 200*time.Millisecond, 200)
		sleep(t.Context(), 3*time.Second)
		stoppedAt := time.Now()
		c.apis["api2"].stop(syscall.SIGTERM, 30*time.Second)
		sleep(t.Context(), 8*time.Second)
		outs := l.finish()
		final := cl.waitFinished(t.Context(), outs, 60*time.Second)
		noServerErrors(t, outs)
		c.verify(t, cl, outs, final)
		after := 0
		for _, o := range outs {
			if o.accepted() && o.start.After(stoppedAt) {
				after++
				if !strings.HasPrefix(o.api, "http://"+c.hosts["api1"].addr) {
					t.Errorf("upload accepted by %s after api2 stopped", o.api)
				}
			}
		}
		if after == 0 {
			t.Errorf("no upload accepted after api2 stopped")
		}
		s := summarize(outs)
		fig.APIStopUploads, fig.APIStopRefused, fig.APIStopConnErrors, fig.APIStopLost = s.uploads, s.refused, s.connErrors, lost(outs, final)
		if s.accepted != s.uploads {
			t.Errorf("every upload should end accepted (the client retries against api1): %s", s)
		}
		t.Logf("API stopped: %s; %d accepted by api1 after the stop", s, after)
	})

	b, _ := json.MarshalIndent(fig, "", "  ")
	t.Logf("figures:\n%s", b)
	if path := os.Getenv("CLUSTER_RESULTS"); path != "" {
		os.WriteFile(path, b, 0o644)
	}
}

// acceptGap is the longest time between two accepted uploads' answers
// from at on (the last one answered before at included): how long no
// client could upload at all.
func acceptGap(outs []outcome, at time.Time) time.Duration {
	var ends []time.Time
	var before time.Time
	for _, o := range outs {
		switch {
		case !o.accepted():
		case o.end.Before(at):
			if o.end.After(before) {
				before = o.end
			}
		default:
			ends = append(ends, o.end)
		}
	}
	if !before.IsZero() {
		ends = append(ends, before)
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(ends); i++ {
		gap = max(gap, ends[i].Sub(ends[i-1]))
	}
	return gap
}

// metric reads one sample from a Prometheus text endpoint; -1 when it
// cannot be read.
func metric(url, name string) float64 { return sample(scrape(url), name) }

// scrape reads a Prometheus text endpoint; nil when it does not answer.
func scrape(url string) []byte {
	// Uncompressed: gzip would cost the scraped worker CPU that the
	// capacity profile would then charge to it.
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	resp, err := hc.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// sample finds "name value" (or a labelled "name{…} value" when name has
// its labels) in a Prometheus text body.
func sample(body []byte, name string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return -1
}
