package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cpuGroup limits the processes put in it to a share of the CPUs: cgroup v2
// (cpu.max) where the unified hierarchy has the cpu controller, else the v1
// cpu controller (cpu.cfs_quota_us), which is what this machine kind has.
type cpuGroup struct {
	dir     string
	version int
}

// newCPUGroup makes a cgroup that may use cores CPUs (0.5: half a core),
// removed at teardown (after the processes in it have been stopped).
func newCPUGroup(tb testing.TB, name string, cores float64) *cpuGroup {
	tb.Helper()
	quota := strconv.Itoa(int(cores * 100000))
	g := &cpuGroup{}
	if ctrl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(ctrl), "cpu") {
		g.version, g.dir = 2, filepath.Join("/sys/fs/cgroup", prefix+"-"+name)
	} else if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		g.version, g.dir = 1, filepath.Join("/sys/fs/cgroup/cpu", prefix+"-"+name)
	} else {
		tb.Fatal("no cgroup cpu controller (neither v2 cpu.max nor v1 cpu.cfs_quota_us) to give workers equal CPU shares")
	}
	os.Remove(g.dir) // a leftover of a killed run
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		tb.Fatalf("make cgroup %s: %v", g.dir, err)
	}
	teardown.push(func() { os.Remove(g.dir) })
	var err error
	if g.version == 2 {
		err = os.WriteFile(filepath.Join(g.dir, "cpu.max"), []byte(quota+" 100000"), 0o644)
	} else {
		if err = os.WriteFile(filepath.Join(g.dir, "cpu.cfs_period_us"), []byte("100000"), 0o644); err == nil {
			err = os.WriteFile(filepath.Join(g.dir, "cpu.cfs_quota_us"), []byte(quota), 0o644)
		}
	}
	if err != nil {
		tb.Fatalf("limit cgroup %s to %.2f CPUs: %v", g.dir, cores, err)
	}
	return g
}

// add moves a process (every thread of it) into the group.
func (g *cpuGroup) add(tb testing.TB, pid int) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		tb.Fatalf("move %d into %s: %v", pid, g.dir, err)
	}
}

// throttled is how long the group's processes were held back by the limit,
// in seconds (cpu.stat), a sign that the CPU share is what bounds them.
func (g *cpuGroup) throttled() float64 {
	b, _ := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseFloat(v, 64)
		switch k {
		case "throttled_usec": // v2
			return n / 1e6
		case "throttled_time": // v1, nanoseconds
			return n / 1e9
		}
	}
	return 0
}

func (g *cpuGroup) String() string { return fmt.Sprintf("cgroup v%d %s", g.version, g.dir) }
