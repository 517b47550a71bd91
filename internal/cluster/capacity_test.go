package cluster

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// usage is a snapshot of what the cluster has done so far: the CPU seconds
// of each process, Redis commands, MariaDB statements and S3 requests.
type usage struct {
	at       time.Time
	cpu      map[string]float64 // process name -> CPU seconds
	redis    map[string]float64 // command -> calls, on the master
	db       map[string]float64 // Questions, Com_select…
	s3       int                // requests in versitygw's access log
	s3ByKind map[string]int
}

// snapshot reads every counter now.
func (c *cluster) snapshot(db *sql.DB) usage {
	u := usage{at: time.Now(), cpu: map[string]float64{}, redis: map[string]float64{}, db: map[string]float64{}}
	procs := []*proc{c.db, c.s3, c.redis["redis1"]}
	for _, p := range c.apis {
		procs = append(procs, p)
	}
	for _, p := range c.workers {
		procs = append(procs, p)
	}
	for _, p := range procs {
		if p != nil && !p.exited() {
			u.cpu[p.name] = cpuSeconds(p.pid())
		}
	}
	info, _ := c.redisClient("redis1").Info(c.tb.Context(), "commandstats").Result()
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_get:calls=12,usec=…
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		u.redis[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseFloat(calls, 64)
	}
	rows, err := db.QueryContext(c.tb.Context(), "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('Questions','Com_select','Com_insert','Com_update','Com_delete','Com_commit','Com_begin')")
	if err == nil {
		for rows.Next() {
			var k string
			var v float64
			rows.Scan(&k, &v)
			u.db[k] = v
		}
		rows.Close()
	}
	u.s3, u.s3ByKind = countS3(c.s3AccessLog())
	return u
}

// countS3 counts the requests in versitygw's access log, by operation
// (the field s3_PutObject, s3_GetObject…).
func countS3(path string) (int, map[string]int) {
	by := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return 0, by
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
		kind := "other"
		for _, f := range strings.Fields(sc.Text()) {
			if op, ok := strings.CutPrefix(f, "s3_"); ok {
				kind = op
				break
			}
		}
		by[kind]++
	}
	return n, by
}

// countS3From counts the requests in versitygw's access log made from one
// address, by operation.
func countS3From(path, addr string) map[string]float64 {
	b, _ := os.ReadFile(path)
	by := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if !slices.Contains(f, addr) {
			continue
		}
		for _, x := range f {
			if op, ok := strings.CutPrefix(x, "s3_"); ok {
				by[op]++
			}
		}
	}
	return by
}

// delta is after minus before, per key.
func delta[M ~map[string]float64](before, after M) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

func sum(m map[string]float64, keep func(string) bool) float64 {
	var s float64
	for k, v := range m {
		if keep(k) {
			s += v
		}
	}
	return s
}

// capacityRow is one line of the 1/2/3-worker table.
type capacityRow struct {
	workers                 int
	images                  int
	drain                   time.Duration
	perSecond               float64
	workerCPU, apiCPU       float64 // CPU-s per image
	s3CPU, dbCPU, redisCPU  float64 // CPU-s per image
	workerBusy              float64 // worker CPU used / CPU share given, 0-1
	throttled               float64 // seconds the workers' cgroups were held back
	s3Load, dbLoad, rdsLoad float64 // CPU-s per second of drain (cores)
	// Redis commands and MariaDB questions per image, made by the upload
	// (the API) and by the processing (the workers, idle polling
	// included); idle* is the rate per second with nothing to do.
	uploadRedis, workRedis, idleRedis float64
	uploadDB, workDB, idleDB          float64
	s3Requests                        float64 // per image
	redisTop, dbTop, s3Top            string
}

// TestCapacity measures throughput with 1, 2 and 3 worker hosts, each held
// to the same CPU share, and what each image costs every process. It prints
// the table docs/scale-out.md shows.
func TestCapacity(t *testing.T) {
	if os.Getenv("CLUSTER_CAPACITY") != "1" {
		t.Skip("the capacity measurement runs with CLUSTER_CAPACITY=1 (make capacity)")
	}
	cores := envFloat("CAPACITY_WORKER_CPU", 0.5)
	images := int(envFloat("CAPACITY_IMAGES", 48))
	mp := envFloat("CAPACITY_MP", 12)
	c := newCluster(t)
	groups := map[string]*cpuGroup{}
	for _, w := range []string{"worker1", "worker2", "worker3"} {
		groups[w] = newCPUGroup(t, w, cores)
	}
	c.startAPI("api1")
	c.startAPI("api2")
	cl := newClient(t, c.apiURLs(), 4)
	src := photoJPEG(t, mp)
	db := c.sqlDB()
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("capacity: %d uploads of a %.0f MP JPEG (%d bytes) per run; each worker host limited to %.2f CPUs (%s); "+
		"machine: %d CPUs, load average at start %s", images, mp, len(src), cores, groups["worker1"], runtime.NumCPU(), strings.TrimSpace(string(load)))

	var rows []capacityRow
	var prof *profile
	for n := 1; n <= 3; n++ {
		before := c.snapshot(db)
		// The queue fills first, with no worker running: the drain time is
		// then the workers' alone, and the API's CPU per upload is apart.
		l := cl.steady(t.Context(), src, 4, 0, images)
		l.wg.Wait()
		outs := l.finish()
		if s := summarize(outs); s.accepted != images {
			t.Fatalf("%d workers: %s", n, s)
		}
		queued := c.snapshot(db)
		var names []string
		for i := 1; i <= n; i++ {
			names = append(names, fmt.Sprintf("worker%d", i))
		}
		var throttledBefore float64
		for _, w := range names {
			throttledBefore += groups[w].throttled()
		}
		started := time.Now()
		var perf *exec.Cmd
		for _, w := range names {
			p := c.startWorker(w, "WORKER_CONCURRENCY=2")
			groups[w].add(t, p.pid())
			if n == 1 {
				perf = startPerf(t, c.dir, p.pid())
			}
		}
		startedAt := c.snapshot(db)
		// Drained when the workers have finished every image: read from
		// their metrics, so that the wait costs MariaDB and Redis nothing.
		var done float64
		drainedOK := waitFor(t.Context(), 20*time.Minute, func() bool {
			sleep(t.Context(), 150*time.Millisecond) // every 250 ms with waitFor's 100
			done = 0
			for _, w := range names {
				done += metric("http://"+c.addr(w, workerPort)+"/metrics", `imagesvc_images_processed_total{result="done"}`)
			}
			return done >= float64(images)
		})
		drained := c.snapshot(db)
		drain := time.Since(started)
		if perf != nil {
			prof = stopPerf(t, perf, c.dir)
		}
		if !drainedOK {
			t.Fatalf("%d workers: %.0f of %d images done after 20 minutes", n, done, images)
		}
		// What the workers and the API ask of Redis and MariaDB while no
		// image is waiting (asynq's polling, heartbeats, the reconciler):
		// the idle rate, to tell it apart from the per-image work.
		sleep(t.Context(), 10*time.Second)
		idle := c.snapshot(db)
		idleSecs := idle.at.Sub(drained.at).Seconds()
		var throttled float64
		for _, w := range names {
			throttled += groups[w].throttled()
		}
		final := cl.waitFinished(t.Context(), outs, time.Minute)
		if lost := lost(outs, final); lost > 0 {
			t.Fatalf("%d workers: %d images not done", n, lost)
		}
		for _, w := range names {
			c.workers[w].stop(syscall.SIGTERM, 30*time.Second)
			delete(c.workers, w)
		}
		up, work, all := delta(before.cpu, queued.cpu), delta(startedAt.cpu, drained.cpu), delta(before.cpu, drained.cpu)
		isWorker := func(k string) bool { return strings.HasPrefix(k, "worker") }
		isAPI := func(k string) bool { return strings.HasPrefix(k, "api") }
		is := func(name string) func(string) bool { return func(k string) bool { return k == name } }
		every := func(string) bool { return true }
		secs := drain.Seconds()
		per := float64(images)
		upRedis, workRedis, idleRedis := delta(before.redis, queued.redis), delta(queued.redis, drained.redis), delta(drained.redis, idle.redis)
		upDB, workDB, idleDB := delta(before.db, queued.db), delta(queued.db, drained.db), delta(drained.db, idle.db)
		r := capacityRow{
			workers: n, images: images, drain: drain, perSecond: per / secs,
			// The workers started with the drain: all their CPU (start-up
			// included, some tens of milliseconds) is the images'.
			workerCPU: sum(drained.cpu, isWorker) / per, apiCPU: sum(up, isAPI) / per,
			s3CPU: sum(all, is("versitygw")) / per, dbCPU: sum(all, is("mariadb")) / per,
			redisCPU:   sum(all, is("redis1")) / per,
			workerBusy: sum(drained.cpu, isWorker) / (secs * cores * float64(n)),
			throttled:  throttled - throttledBefore,
			s3Load:     sum(work, is("versitygw")) / secs, dbLoad: sum(work, is("mariadb")) / secs, rdsLoad: sum(work, is("redis1")) / secs,
			uploadRedis: sum(upRedis, every) / per, workRedis: sum(workRedis, every) / per, idleRedis: sum(idleRedis, every) / idleSecs,
			uploadDB: upDB["Questions"] / per, workDB: workDB["Questions"] / per, idleDB: idleDB["Questions"] / idleSecs,
			s3Requests: float64(drained.s3-before.s3) / per,
			redisTop:   "upload: " + top(upRedis, per, 6) + "; processing: " + top(workRedis, per, 6),
			dbTop:      "upload: " + top(upDB, per, 6) + "; processing: " + top(workDB, per, 6),
			s3Top:      topInt(before.s3ByKind, drained.s3ByKind, per),
		}
		rows = append(rows, r)
		t.Logf("%d worker(s): %d images drained in %.1f s, %.2f images/s", n, images, secs, r.perSecond)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| worker hosts (%.2f CPU each) | images/s | drain of %d | vs 1 worker | worker CPU used of its share | throttled |\n|---|---|---|---|---|---|\n", cores, images)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %.2f | %.1f s | %.2fx | %.0f%% | %.1f s |\n", r.workers, r.perSecond, r.drain.Seconds(),
			r.perSecond/rows[0].perSecond, 100*r.workerBusy, r.throttled)
	}
	fmt.Fprintf(&b, "\nper image (CPU seconds) | worker | API | S3 (versitygw) | MariaDB | Redis\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %d worker(s)            | %.3f | %.3f | %.3f | %.3f | %.4f\n", r.workers, r.workerCPU, r.apiCPU, r.s3CPU, r.dbCPU, r.redisCPU)
	}
	fmt.Fprintf(&b, "\nload on the shared services while draining (cores busy): S3 / MariaDB / Redis\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %d worker(s): %.2f / %.2f / %.3f\n", r.workers, r.s3Load, r.dbLoad, r.rdsLoad)
	}
	fmt.Fprintf(&b, "\nrequests per image: made by the upload (API) + by the processing (workers, their idle polling included); idle rate with nothing queued\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %d worker(s): Redis %.1f + %.1f commands, idle %.1f/s (%s)\n", r.workers, r.uploadRedis, r.workRedis, r.idleRedis, r.redisTop)
		fmt.Fprintf(&b, "               MariaDB %.1f + %.1f questions, idle %.1f/s (%s)\n", r.uploadDB, r.workDB, r.idleDB, r.dbTop)
		fmt.Fprintf(&b, "               S3 %.1f requests (%s)\n", r.s3Requests, r.s3Top)
	}
	if prof != nil {
		fmt.Fprintf(&b, "\n%s", prof)
	}
	t.Log(b.String())
	if path := os.Getenv("CAPACITY_RESULTS"); path != "" {
		os.WriteFile(path, []byte(b.String()), 0o644)
	}
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

// top lists the largest per-image counts of m, "name n.n".
func top(m map[string]float64, images float64, k int) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for key, v := range m {
		if v > 0 && key != "Questions" {
			all = append(all, kv{key, v})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.v - a.v) })
	var parts []string
	for _, e := range all[:min(k, len(all))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", e.k, e.v/images))
	}
	return strings.Join(parts, ", ")
}

func topInt(before, after map[string]int, images float64) string {
	m := map[string]float64{}
	for k, v := range after {
		m[k] = float64(v - before[k])
	}
	return top(m, images, 8)
}

// profile is where a worker's CPU went, from perf samples: inside the
// imaging call (libvips and the libraries under it, the project's C, bimg
// and internal/imaging) or outside it, by Go package.
type profile struct {
	samples, inside int
	outside         map[string]int
}

// startPerf samples the worker's stacks at 499 Hz until stopPerf. perf
// missing or refused: no profile, said in the output.
func startPerf(t *testing.T, dir string, pid int) *exec.Cmd {
	if _, err := exec.LookPath("perf"); err != nil {
		t.Logf("perf is missing: no worker CPU profile")
		return nil
	}
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", filepath.Join(dir, "perf.data"))
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Logf("perf record: %v: no worker CPU profile", err)
		return nil
	}
	teardown.push(func() { cmd.Process.Kill() })
	return cmd
}

func stopPerf(t *testing.T, cmd *exec.Cmd, dir string) *profile {
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	out, err := exec.Command("perf", "script", "-i", filepath.Join(dir, "perf.data"), "-F", "ip,sym,dso").Output()
	if err != nil {
		t.Logf("perf script: %v: no worker CPU profile", err)
		return nil
	}
	return classify(out)
}

// classify reads perf script output (one block of frames per sample,
// innermost first) and charges each sample by its innermost user-space
// frame: a shared library other than libc/libpthread, C in the worker
// binary, bimg or internal/imaging is inside the imaging call; libc counts
// as inside too (Go code does not call it; the C does: malloc, memcpy). A
// Go frame is outside, charged to its package.
func classify(out []byte) *profile {
	p := &profile{outside: map[string]int{}}
	var frames []string
	flush := func() {
		if len(frames) == 0 {
			return
		}
		p.samples++
		where := "" // the innermost user-space frame; none: all kernel
		for _, f := range frames {
			if !strings.Contains(f, "[kernel.kallsyms]") {
				where = f
				break
			}
		}
		if in, pkg := inside(where); in {
			p.inside++
		} else {
			p.outside[pkg]++
		}
		frames = frames[:0]
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			flush()
			continue
		}
		frames = append(frames, line)
	}
	flush()
	return p
}

// inside says whether a frame ("ip sym+off (dso)") is in the imaging call,
// and otherwise names its Go package (or "kernel", "other").
func inside(frame string) (bool, string) {
	if frame == "" {
		return false, "kernel"
	}
	open := strings.LastIndexByte(frame, '(')
	dso := strings.Trim(frame[max(open, 0):], "()")
	sym := frame
	if f := strings.Fields(frame); len(f) >= 2 {
		sym = f[1]
	}
	base := filepath.Base(dso)
	switch {
	case strings.HasPrefix(base, "lib") && !strings.HasPrefix(base, "libpthread"):
		return true, ""
	case strings.Contains(sym, "internal/imaging") || strings.Contains(sym, "h2non/bimg"):
		return true, ""
	case !strings.Contains(sym, "."):
		// A C symbol linked into the binary (the project's imaging C; cgo
		// glue is named _cgo_… and runtime.cgocall is Go).
		if strings.HasPrefix(sym, "_cgo_") || strings.HasPrefix(sym, "x_cgo") {
			return false, "cgo"
		}
		return true, ""
	}
	pkg := sym
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		if j := strings.IndexByte(pkg[i:], '.'); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else if j := strings.IndexByte(pkg, '.'); j >= 0 {
		pkg = pkg[:j]
	}
	return false, pkg
}

func (p *profile) String() string {
	if p.samples == 0 {
		return "worker CPU profile: no samples\n"
	}
	out := p.samples - p.inside
	var b strings.Builder
	fmt.Fprintf(&b, "worker CPU profile (perf record -F 499 -g on worker1, 1-worker run): %d samples, inside the imaging call %.1f%%, "+
		"outside %.1f%% = %.1f%% of the inside (goal: at most 20%%)\n", p.samples,
		100*float64(p.inside)/float64(p.samples), 100*float64(out)/float64(p.samples), 100*float64(out)/float64(max(p.inside, 1)))
	m := map[string]float64{}
	for k, v := range p.outside {
		m[k] = float64(v)
	}
	fmt.Fprintf(&b, "  outside, share of all samples by package: %s\n", top(m, float64(p.samples)/100, 12))
	return b.String()
}
