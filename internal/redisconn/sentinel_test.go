package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/eventstream"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/queue"
	"github.com/imagesvc/imagesvc/internal/ratelimit"
	"github.com/imagesvc/imagesvc/internal/redisconn"
	"github.com/imagesvc/imagesvc/internal/tuslock"
)

// The test's own ports, away from the Redis of the other tests (6379).
const (
	masterPort  = 6390
	replicaPort = 6391
	masterName  = "imagesvc"
	masterPW    = "master-pw"
	sentinelPW  = "sentinel-pw"
	// failoverBound is how long the clients may take to follow a new
	// master after the old one is killed: Sentinel's down-after (1 s)
	// plus its election and promotion, plus the clients' reconnects.
	failoverBound = 15 * time.Second
)

var sentinelPorts = []int{26390, 26391, 26392}

// TestSentinelFailover runs the service's Redis users (the queue's client
// and server, the event stream, the rate limiter, the tus locks, the
// eviction-policy check) on a master that three Sentinels monitor, kills
// the master with SIGKILL, and checks that each of them follows the
// replica Sentinel promotes, within failoverBound.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and redis-sentinel processes")
	}
	for _, bin := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (bash scripts/deps.sh installs it): %v", bin, err)
		}
	}
	dir := t.TempDir()
	// The replica evicts: after the failover the eviction-policy check
	// must see it, which shows that it asks the master Sentinel names.
	master := startProcess(t, dir, "master", "redis-server", "--port", fmt.Sprint(masterPort), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--requirepass", masterPW, "--masterauth", masterPW, "--maxmemory-policy", "noeviction")
	startProcess(t, dir, "replica", "redis-server", "--port", fmt.Sprint(replicaPort), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--requirepass", masterPW, "--masterauth", masterPW,
		"--replicaof", "127.0.0.1", fmt.Sprint(masterPort), "--maxmemory-policy", "allkeys-lru")
	// The Sentinels learn of the replica from the master's INFO, which they
	// read every 10 s: start them once the replica is attached, so that
	// their first read shows it.
	waitForReplica(t)
	var addrs []string
	for _, port := range sentinelPorts {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
requirepass %s
sentinel sentinel-pass %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
`, port, dir, sentinelPW, sentinelPW, masterName, masterPort, masterName, masterPW, masterName, masterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		startProcess(t, dir, fmt.Sprintf("sentinel-%d", port), "redis-sentinel", conf)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	cfg := redisconn.Config{SentinelAddrs: addrs, SentinelMaster: masterName, SentinelPassword: sentinelPW, Password: masterPW}
	began := time.Now()
	waitForSentinels(t, cfg)
	t.Logf("the Sentinels knew the replica and each other after %.1f s", time.Since(began).Seconds())

	ctx := context.Background()
	rdb, err := cfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if got := role(ctx, rdb); got != fmt.Sprint(masterPort) {
		t.Fatalf("the failover client talks to port %s, want the master's %d", got, masterPort)
	}
	if err := redisconn.CheckEvictionPolicy(ctx, rdb); err != nil {
		t.Fatalf("eviction check on the noeviction master: %v", err)
	}
	log := slog.New(slog.DiscardHandler)

	// The queue: the API's enqueuer and the worker's server.
	processed := &seen{ids: map[string]bool{}}
	qcfg := queue.NewDefaultConfig()
	qcfg.Concurrency = 2
	qcfg.ShutdownTimeout = time.Second
	srv := queue.NewServer(rdb, qcfg, log)
	if err := srv.Start(queue.NewMux(queue.NewImageHandler(processed, log), nil, nil)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	enqueuer := queue.NewEnqueuer(rdb, qcfg)
	// The dashboard's connection option names the same master.
	if opt, err := cfg.AsynqOpt(); err != nil {
		t.Fatal(err)
	} else if c, ok := opt.MakeRedisClient().(redis.UniversalClient); !ok {
		t.Fatalf("AsynqOpt makes a %T", opt.MakeRedisClient())
	} else {
		if got := role(ctx, c); got != fmt.Sprint(masterPort) {
			t.Errorf("the dashboard's client talks to port %s, want %d", got, masterPort)
		}
		c.Close()
	}

	events := eventstream.New(rdb, eventstream.NewDefaultConfig())
	hub, err := events.StartHub(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	limiter := ratelimit.New(rdb, "test:ratelimit:")
	locks := tuslock.New(rdb, "test:tus:")

	// Every user works before the failover.
	exercise(t, "before the failover", enqueuer, processed, events, limiter, locks)
	sub, stopSub, err := subscribe(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	defer stopSub()

	// Kill the master; Sentinel promotes the replica.
	killed := time.Now()
	if err := master.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var promoted time.Duration
	for {
		if time.Since(killed) > failoverBound {
			t.Fatalf("the failover client still has no master %v after the old one was killed", failoverBound)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		port := role(cctx, rdb)
		cancel()
		if port == fmt.Sprint(replicaPort) {
			promoted = time.Since(killed)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the client wrote to the promoted replica %.1f s after the master was killed", promoted.Seconds())

	// The subscription open across the failover ended (its client would
	// come back with Last-Event-ID), rather than wait forever.
	select {
	case <-drain(sub):
	case <-time.After(failoverBound - time.Since(killed)):
		t.Error("a subscription open across the failover is still open")
	}
	exercise(t, "after the failover", enqueuer, processed, events, limiter, locks)
	t.Logf("every user works on the new master %.1f s after the old one was killed", time.Since(killed).Seconds())
	if time.Since(killed) > failoverBound {
		t.Errorf("the users took %v to follow the new master, want under %v", time.Since(killed), failoverBound)
	}
	if err := redisconn.CheckEvictionPolicy(ctx, rdb); err == nil || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Errorf("eviction check on the promoted replica (allkeys-lru) = %v, want a refusal", err)
	}
}

// exercise uses each Redis user once, retrying each for a while: right
// after a failover the first calls may still meet a connection to the old
// master.
func exercise(t *testing.T, when string, enqueuer *queue.Enqueuer, processed *seen, events *eventstream.Stream,
	limiter *ratelimit.Limiter, locks *tuslock.Locker) {
	t.Helper()
	ctx := context.Background()
	retry := func(what string, f func() error) {
		t.Helper()
		deadline := time.Now().Add(failoverBound)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s, %s: %v", when, what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	id := fmt.Sprintf("img-%d", time.Now().UnixNano())
	retry("enqueue", func() error { return enqueuer.EnqueueProcess(ctx, id) })
	retry("process the task", func() error {
		if !processed.has(id) {
			return errors.New("not processed yet")
		}
		return nil
	})
	retry("rate limit", func() error {
		ok, _, err := limiter.Allow(ctx, "k-"+id, 1, time.Minute)
		if err == nil && !ok {
			err = errors.New("the first hit was refused")
		}
		return err
	})
	retry("tus lock", func() error {
		lock, err := locks.NewLock(id)
		if err != nil {
			return err
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := lock.Lock(lctx, func() {}); err != nil {
			return err
		}
		return lock.Unlock()
	})
	retry("event stream", func() error {
		sub, stop, err := subscribe(ctx, events)
		if err != nil {
			return err
		}
		defer stop()
		// A new image each try: an event is published once per image
		// and attempt, and a try may have published before it failed.
		id := fmt.Sprintf("img-%d", time.Now().UnixNano())
		img := &image.Image{ID: id, UserID: "u1", Status: image.StatusDone, Attempt: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := events.ImageFinished(ctx, img); err != nil {
			return err
		}
		select {
		case e, ok := <-sub:
			if !ok || e.ImageID != id {
				return fmt.Errorf("got %+v (open %v), want the event of %s", e, ok, id)
			}
			return nil
		case <-time.After(2 * time.Second):
			return errors.New("no live event")
		}
	})
}

func subscribe(ctx context.Context, events *eventstream.Stream) (<-chan image.StreamedEvent, func(), error) {
	pos, err := events.Position(ctx, "u1")
	if err != nil {
		return nil, nil, err
	}
	return events.Subscribe(ctx, "u1", pos)
}

// drain returns a channel closed when sub is.
func drain(sub <-chan image.StreamedEvent) <-chan image.StreamedEvent {
	done := make(chan image.StreamedEvent)
	go func() {
		for range sub {
		}
		close(done)
	}()
	return done
}

// role returns the port of the server rdb writes to, or "" when it has
// none: the port is written to a key and read back from INFO.
func role(ctx context.Context, rdb redis.UniversalClient) string {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	if err := rdb.Set(ctx, "test:probe", "1", time.Minute).Err(); err != nil {
		return "" // a replica refuses writes
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tcp_port:"); ok {
			return v
		}
	}
	return ""
}

// waitForReplica waits until the replica has synchronised with the master.
func waitForReplica(t *testing.T) {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", replicaPort), Password: masterPW})
	defer r.Close()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		info, err := r.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the replica has not synchronised with the master after 10 s: %v\n%s", err, info)
		}
	}
}

// waitForSentinels waits until every Sentinel knows the replica and the
// other two Sentinels: before that a failover cannot reach its quorum.
func waitForSentinels(t *testing.T, cfg redisconn.Config) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range cfg.SentinelAddrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: cfg.SentinelPassword})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			replicas, err1 := s.Replicas(ctx, masterName).Result()
			others, err2 := s.Sentinels(ctx, masterName).Result()
			cancel()
			if err1 == nil && err2 == nil && len(replicas) == 1 && len(others) == len(cfg.SentinelAddrs)-1 {
				break
			}
			if time.Now().After(deadline) {
				s.Close()
				t.Fatalf("sentinel %s: replicas %d (%v), other sentinels %d (%v) after 15 s", addr, len(replicas), err1, len(others), err2)
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.Close()
	}
}

// startProcess starts a Redis process whose output goes to a log in dir,
// shown if the test fails, and kills it at the end of the test.
func startProcess(t *testing.T, dir, name, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, lastLines(string(b), 20))
			}
		}
	})
	return cmd
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// seen is the domain's processor, reduced to remembering what it was
// asked to process.
type seen struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *seen) Process(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[id] = true
	return nil
}

func (s *seen) GiveUp(context.Context, string, error) error { return nil }

func (s *seen) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}
