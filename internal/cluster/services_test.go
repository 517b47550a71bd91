package cluster

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/config"
)

// The hosts and their last address byte.
var layout = map[string]int{
	"db": 10, "s3": 11,
	"redis1": 21, "redis2": 22, "redis3": 23,
	"api1": 31, "api2": 32,
	"worker1": 41, "worker2": 42, "worker3": 43,
}

const (
	dbPassword  = "cluster-test-password"
	s3Key       = "clusterkey"
	s3Secret    = "clustersecret"
	bucket      = "images"
	masterName  = "imagesvc"
	apiPort     = "8080"
	workerPort  = "9090"
	redisPort   = "6379"
	sentinelPrt = "26379"
)

// cluster is every host and process of one test.
type cluster struct {
	tb      testing.TB
	dir     string
	bin     map[string]string // api, worker, versitygw
	hosts   map[string]*host
	db      *proc
	s3      *proc
	redis   map[string]*proc // redis1 (master at start), redis2 (replica)
	sent    []*proc          // one Sentinel per Redis host
	apis    map[string]*proc
	workers map[string]*proc
	// sentinel is true when the binaries read REDIS_SENTINEL_ADDRS: they
	// then find the master through the Sentinels instead of REDIS_URL.
	sentinel bool
	// workerEnv is added to every worker's environment (capacity runs).
	workerEnv []string
}

// newCluster builds the binaries, the network, and starts MariaDB, S3 and
// Redis (master, replica, three Sentinels). APIs and workers are started by
// the caller (startAPI, startWorker).
func newCluster(tb testing.TB) *cluster {
	tb.Helper()
	requireRoot(tb)
	dir, err := os.MkdirTemp("", "imagesvc-cluster-")
	if err != nil {
		tb.Fatal(err)
	}
	teardown.push(func() {
		if tb.Failed() || os.Getenv("CLUSTER_KEEP_LOGS") != "" {
			keepLogs(tb, dir)
		}
		os.RemoveAll(dir)
	})
	tb.Cleanup(teardown.run)
	c := &cluster{tb: tb, dir: dir, bin: map[string]string{}, redis: map[string]*proc{},
		apis: map[string]*proc{}, workers: map[string]*proc{}}
	c.sentinel = slices.Contains(config.Names(), "REDIS_SENTINEL_ADDRS")
	c.build()
	c.hosts = makeNetwork(tb, layout)
	c.startDB()
	c.startS3()
	c.startRedis()
	c.migrate()
	return c
}

// keepLogs copies the processes' logs to /tmp/imagesvc-cluster-logs (the
// temporary directory is removed), for a failed run.
func keepLogs(tb testing.TB, dir string) {
	dst := filepath.Join(os.TempDir(), "imagesvc-cluster-logs")
	os.RemoveAll(dst)
	os.MkdirAll(dst, 0o755)
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
		}
	}
	tb.Logf("process logs kept in %s", dst)
}

// build compiles cmd/api and cmd/worker into the temporary directory.
func (c *cluster) build() {
	root := strings.TrimSpace(run(c.tb, "go", "env", "GOMOD"))
	for _, name := range []string{"api", "worker"} {
		out := filepath.Join(c.dir, name)
		cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
		cmd.Dir = filepath.Dir(root)
		if b, err := cmd.CombinedOutput(); err != nil {
			c.tb.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
		}
		c.bin[name] = out
	}
	gobin := strings.TrimSpace(run(c.tb, "go", "env", "GOPATH")) + "/bin/versitygw"
	if _, err := os.Stat(gobin); err != nil {
		c.tb.Fatalf("versitygw is missing (%s): run bash scripts/deps.sh cluster", gobin)
	}
	c.bin["versitygw"] = gobin
}

func (c *cluster) addr(host, port string) string { return c.hosts[host].addr + ":" + port }

// startDB makes a fresh MariaDB data directory and runs mariadbd on the db
// host. The test's user is made over the server's Unix socket.
func (c *cluster) startDB() {
	data := filepath.Join(c.dir, "mariadb")
	sock := filepath.Join(c.dir, "mariadb.sock")
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--skip-test-db", "--auth-root-authentication-method=socket").CombinedOutput(); err != nil {
		c.tb.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	c.db = start(c.tb, c.dir, c.hosts["db"], "mariadb", nil, "mariadbd", "--no-defaults", "--datadir="+data,
		"--user=root", "--socket="+sock, "--bind-address="+c.hosts["db"].addr, "--port=3306",
		"--pid-file="+filepath.Join(c.dir, "mariadb.pid"), "--skip-log-bin", "--skip-name-resolve",
		"--innodb-buffer-pool-size=128M", "--max-connections=500", "--log-error="+filepath.Join(c.dir, "mariadb.log"))
	waitTCP(c.tb, c.addr("db", "3306"), 60*time.Second, c.db)
	setup := fmt.Sprintf("CREATE DATABASE imagesvc CHARACTER SET utf8mb4; "+
		"CREATE USER 'imagesvc'@'%s.%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO 'imagesvc'@'%s.%%';", subnet, dbPassword, subnet)
	if out, err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-e", setup).CombinedOutput(); err != nil {
		c.tb.Fatalf("create the database: %v\n%s", err, out)
	}
}

// databaseURL is the database as the service's DATABASE_URL names it.
func (c *cluster) databaseURL() string {
	return fmt.Sprintf("mysql://imagesvc:%s@%s/imagesvc", dbPassword, c.addr("db", "3306"))
}

// sqlDB opens the test's own connection to the database (from the client
// host, over the bridge).
func (c *cluster) sqlDB() *sql.DB {
	db, err := sql.Open("mysql", fmt.Sprintf("imagesvc:%s@tcp(%s)/imagesvc?parseTime=true", dbPassword, c.addr("db", "3306")))
	if err != nil {
		c.tb.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	c.tb.Cleanup(func() { db.Close() })
	return db
}

// startS3 runs versitygw on the s3 host with an access log (one line per
// request: the S3 requests per image).
func (c *cluster) startS3() {
	root := filepath.Join(c.dir, "s3")
	os.MkdirAll(root, 0o755)
	c.s3 = start(c.tb, c.dir, c.hosts["s3"], "versitygw", nil, c.bin["versitygw"], "--access", s3Key, "--secret", s3Secret,
		"--port", c.addr("s3", "7070"), "--quiet", "--access-log", c.s3AccessLog(), "posix", root)
	waitTCP(c.tb, c.addr("s3", "7070"), 30*time.Second, c.s3)
}

func (c *cluster) s3AccessLog() string { return filepath.Join(c.dir, "s3-access.log") }

// startRedis runs the master on redis1, its replica on redis2 and a
// Sentinel on each of redis1-3 watching the master (quorum 2; a master
// unanswering for 1 s is down).
func (c *cluster) startRedis() {
	common := []string{"--port", redisPort, "--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--maxmemory-policy", "noeviction"}
	// Each server's files (the RDB a replica sync writes) in a directory
	// of its own under the test's.
	for _, name := range []string{"redis1", "redis2"} {
		os.MkdirAll(filepath.Join(c.dir, name), 0o755)
	}
	master := c.hosts["redis1"]
	c.redis["redis1"] = start(c.tb, c.dir, master, "redis1", nil, "redis-server",
		append([]string{"--bind", master.addr, "--dir", filepath.Join(c.dir, "redis1")}, common...)...)
	replica := c.hosts["redis2"]
	c.redis["redis2"] = start(c.tb, c.dir, replica, "redis2", nil, "redis-server",
		append([]string{"--bind", replica.addr, "--dir", filepath.Join(c.dir, "redis2"), "--replicaof", master.addr, redisPort}, common...)...)
	waitTCP(c.tb, c.addr("redis1", redisPort), 20*time.Second, c.redis["redis1"])
	waitTCP(c.tb, c.addr("redis2", redisPort), 20*time.Second, c.redis["redis2"])
	for _, name := range []string{"redis1", "redis2", "redis3"} {
		h := c.hosts[name]
		conf := filepath.Join(c.dir, "sentinel-"+name+".conf")
		text := fmt.Sprintf("bind %s\nport %s\nprotected-mode no\ndir %s\n"+
			"sentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n",
			h.addr, sentinelPrt, c.dir, masterName, master.addr, redisPort, masterName, masterName, masterName)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			c.tb.Fatal(err)
		}
		p := start(c.tb, c.dir, h, "sentinel-"+name, nil, "redis-sentinel", conf)
		waitTCP(c.tb, h.addr+":"+sentinelPrt, 20*time.Second, p)
		c.sent = append(c.sent, p)
	}
	// The replica is in sync and every Sentinel knows the other two before
	// anything relies on a failover.
	rc := c.redisClient("redis2")
	ok := waitFor(c.tb.Context(), 20*time.Second, func() bool {
		info, _ := rc.Info(c.tb.Context(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	if !ok {
		c.tb.Fatalf("the replica on redis2 never synced:\n%s", c.redis["redis2"].tail())
	}
	sc := c.sentinelClient("redis3")
	ok = waitFor(c.tb.Context(), 20*time.Second, func() bool {
		m, err := sc.Master(c.tb.Context(), masterName).Result()
		return err == nil && m["num-other-sentinels"] == "2" && m["num-slaves"] == "1"
	})
	if !ok {
		c.tb.Fatal("the Sentinels never saw each other and the replica")
	}
}

// redisClient talks to the Redis server on a host.
func (c *cluster) redisClient(host string) *redis.Client {
	rc := redis.NewClient(&redis.Options{Addr: c.addr(host, redisPort), DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	c.tb.Cleanup(func() { rc.Close() })
	return rc
}

// sentinelClient talks to the Sentinel on a host.
func (c *cluster) sentinelClient(host string) *redis.SentinelClient {
	sc := redis.NewSentinelClient(&redis.Options{Addr: c.addr(host, sentinelPrt), DialTimeout: time.Second})
	c.tb.Cleanup(func() { sc.Close() })
	return sc
}

// sentinelAddrs is the value of REDIS_SENTINEL_ADDRS.
func (c *cluster) sentinelAddrs() string {
	return c.addr("redis1", sentinelPrt) + "," + c.addr("redis2", sentinelPrt) + "," + c.addr("redis3", sentinelPrt)
}

// env is the environment of an API or worker process.
func (c *cluster) env() []string {
	env := []string{
		"DATABASE_URL=" + c.databaseURL(),
		"S3_ENDPOINT=http://" + c.addr("s3", "7070"), "S3_BUCKET=" + bucket,
		"AWS_ACCESS_KEY_ID=" + s3Key, "AWS_SECRET_ACCESS_KEY=" + s3Secret,
		"JWT_SECRET=cluster-test-secret-cluster-test-secret-0123",
		"DELIVERY_SIGNING_KEYS=t1:dGVzdC1kZWxpdmVyeS1rZXktMDEyMzQ1Njc4OWFiY2RlZg==",
		"LOG_FORMAT=text", "LOG_LEVEL=warn", "MIGRATE_ON_START=false",
		"UPLOAD_RATE_PER_MINUTE=0", "SIGNUP_RATE_PER_MINUTE_PER_ADDRESS=1000",
		"LOGIN_RATE_PER_MINUTE=1000", "LOGIN_RATE_PER_MINUTE_PER_ADDRESS=1000",
		// A task whose worker vanished is retried a second after asynq
		// recovers it, not minutes later.
		"WORKER_RETRY_BASE=1s",
	}
	if c.sentinel {
		env = append(env, "REDIS_SENTINEL_ADDRS="+c.sentinelAddrs(), "REDIS_SENTINEL_MASTER="+masterName)
	} else {
		env = append(env, "REDIS_URL=redis://"+c.addr("redis1", redisPort)+"/0")
	}
	return env
}

// migrate applies the migrations once, from the first API host, before any
// API or worker starts.
func (c *cluster) migrate() {
	cmd := exec.Command("ip", "netns", "exec", c.hosts["api1"].ns, c.bin["api"], "migrate")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "HTTP_ADDR=" + c.addr("api1", apiPort)}, c.env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.tb.Fatalf("api migrate: %v\n%s", err, out)
	}
}

// startAPI runs the API on a host and waits until it is ready.
func (c *cluster) startAPI(host string) *proc {
	p := start(c.tb, c.dir, c.hosts[host], host, append(c.env(), "HTTP_ADDR="+c.addr(host, apiPort)), c.bin["api"])
	c.apis[host] = p
	waitReady(c.tb, "http://"+c.addr(host, apiPort)+"/readyz", p)
	return p
}

// startWorker runs a worker on a host and waits until it answers /healthz.
func (c *cluster) startWorker(host string, extra ...string) *proc {
	env := append(append(c.env(), "WORKER_HTTP_ADDR="+c.addr(host, workerPort)), c.workerEnv...)
	p := start(c.tb, c.dir, c.hosts[host], host, append(env, extra...), c.bin["worker"])
	c.workers[host] = p
	waitReady(c.tb, "http://"+c.addr(host, workerPort)+"/healthz", p)
	return p
}

// apiURLs are the base URLs of the APIs started, api1 first.
func (c *cluster) apiURLs() []string {
	var urls []string
	for _, h := range []string{"api1", "api2"} {
		if _, ok := c.apis[h]; ok {
			urls = append(urls, "http://"+c.addr(h, apiPort))
		}
	}
	return urls
}
