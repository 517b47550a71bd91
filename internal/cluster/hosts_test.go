package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The network every host of the test lives on. The bridge itself holds
// .1: the test process (the "client host") reaches the others through it.
const (
	subnet     = "10.213.0"
	prefix     = "isvcc" // namespaces isvcc-NAME, the bridge isvcc-br, root-side veths isvcc-NAME
	bridge     = prefix + "-br"
	clientAddr = subnet + ".1"
)

// teardown is the stack of undo functions of everything the test made. It
// runs at the end of the test (t.Cleanup) and on SIGINT/SIGTERM (TestMain),
// whichever comes first; running it twice is harmless.
var teardown undoStack

type undoStack struct {
	mu  sync.Mutex
	fns []func()
}

func (s *undoStack) push(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fns = append(s.fns, f)
}

func (s *undoStack) run() {
	s.mu.Lock()
	fns := s.fns
	s.fns = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// host is one network namespace with one address on the bridge.
type host struct {
	name string // db, s3, redis1, api1, worker2…
	ns   string // isvcc-NAME
	veth string // the root side of its link, isvcc-NAME
	addr string // 10.213.0.x
}

func (h *host) String() string { return h.name + "(" + h.addr + ")" }

// run runs a command (ip, mostly) and fails the test with its output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// removeLeftovers deletes the namespaces and bridge of an earlier run that
// was killed before it could clean up (SIGKILL), and kills what still runs
// in them. It touches only names with this test's prefix.
func removeLeftovers() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(ns, prefix+"-") {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", bridge).Run()
}

// requireRoot skips unless CLUSTER_TEST=1 and fails without root.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Getenv("CLUSTER_TEST") != "1" {
		tb.Skip("the cluster test runs with CLUSTER_TEST=1 (make cluster-test): it needs root and about 4 minutes")
	}
	if os.Geteuid() != 0 {
		tb.Fatal("the cluster test needs root: it makes network namespaces, a bridge and cgroups (run make cluster-test as root)")
	}
	for _, bin := range []string{"ip", "mariadbd", "mariadb-install-db", "mariadb", "redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("%s is missing: run bash scripts/deps.sh cluster (make cluster-test does)", bin)
		}
	}
}

// makeNetwork creates the bridge, then a namespace and a veth pair per host.
// It fails when 10.213.0.0/24 is already routed here (someone else uses it).
func makeNetwork(tb testing.TB, names map[string]int) map[string]*host {
	tb.Helper()
	removeLeftovers()
	if out := run(tb, "ip", "-4", "route", "show"); strings.Contains(out, subnet+".") {
		tb.Fatalf("%s.0/24 is in use on this machine; the cluster test needs it for itself:\n%s", subnet, out)
	}
	run(tb, "ip", "link", "add", bridge, "type", "bridge")
	teardown.push(func() { exec.Command("ip", "link", "del", bridge).Run() })
	run(tb, "ip", "addr", "add", clientAddr+"/24", "dev", bridge)
	run(tb, "ip", "link", "set", bridge, "up")
	hosts := map[string]*host{}
	for name, last := range names {
		h := &host{name: name, ns: prefix + "-" + name, veth: prefix + "-" + name, addr: fmt.Sprintf("%s.%d", subnet, last)}
		run(tb, "ip", "netns", "add", h.ns)
		teardown.push(func() { exec.Command("ip", "netns", "del", h.ns).Run() })
		run(tb, "ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		teardown.push(func() { exec.Command("ip", "link", "del", h.veth).Run() })
		run(tb, "ip", "link", "set", h.veth, "master", bridge, "up")
		run(tb, "ip", "-n", h.ns, "addr", "add", h.addr+"/24", "dev", "eth0")
		run(tb, "ip", "-n", h.ns, "link", "set", "eth0", "up")
		run(tb, "ip", "-n", h.ns, "link", "set", "lo", "up")
		hosts[name] = h
	}
	return hosts
}

// cut takes a host off the network (its link on the bridge goes down) and
// restore brings it back.
func (h *host) cut(tb testing.TB)     { run(tb, "ip", "link", "set", h.veth, "down") }
func (h *host) restore(tb testing.TB) { run(tb, "ip", "link", "set", h.veth, "up") }

// proc is a process running in a host's namespace.
type proc struct {
	name string
	host *host
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs bin with args in h's namespace, with env as its whole
// environment and its output in dir/NAME.log. `ip netns exec` execs the
// program in place, so the pid is the program's own (for /proc/PID/stat).
func start(tb testing.TB, dir string, h *host, name string, env []string, bin string, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, host: h, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", h.ns, bin}, args...)...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}, env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group, so that stop reaches its children; and killed
	// with the test binary should that die without cleaning up.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("start %s on %s: %v", name, h, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	teardown.push(func() { p.stop(syscall.SIGKILL, 0) })
	return p
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited says whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group and waits up to grace for the end,
// then kills it.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	syscall.Kill(-p.pid(), sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}

// waitTCP waits until addr accepts connections (from the client host).
func waitTCP(tb testing.TB, addr string, d time.Duration, p *proc) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.exited() {
			tb.Fatalf("%s ended before listening on %s: %v\n%s", p.name, addr, p.err, p.tail())
		}
		if time.Now().After(deadline) {
			tail := ""
			if p != nil {
				tail = p.tail()
			}
			tb.Fatalf("nothing listens on %s after %s\n%s", addr, d, tail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuSeconds is the user+system CPU time the process has used so far,
// read from /proc/PID/stat (all its threads).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// waitFor polls ok every 100 ms until it holds or ctx/d runs out.
func waitFor(ctx context.Context, d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}
