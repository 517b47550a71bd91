package deployments_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// stage is one FROM of a Dockerfile: its base image and its instructions,
// continuation lines joined.
type stage struct {
	from  string
	lines []string
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		instr := strings.Join(strings.Fields(cur.String()), " ")
		cur.Reset()
		if strings.HasPrefix(instr, "FROM ") {
			stages = append(stages, stage{from: strings.Fields(instr)[1]})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %q before any FROM", path, instr)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, instr)
	}
	return stages
}

// aptPackages returns the packages of the apt-get install commands in lines.
func aptPackages(lines []string) []string {
	var pkgs []string
	for _, l := range lines {
		for _, cmd := range regexp.MustCompile(`&&|;`).Split(l, -1) {
			f := strings.Fields(cmd)
			i := slices.Index(f, "install")
			if i < 1 || f[i-1] != "apt-get" {
				continue
			}
			for _, w := range f[i+1:] {
				if !strings.HasPrefix(w, "-") {
					pkgs = append(pkgs, w)
				}
			}
		}
	}
	return pkgs
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	build, runtime := stages[0], stages[len(stages)-1]
	envLine := regexp.MustCompile(`([A-Z_][A-Z0-9_]*)=`)
	var env []string
	var user, health bool
	builds := 0
	for _, s := range stages {
		for _, l := range s.lines {
			if strings.Contains(l, "CGO_ENABLED=0") {
				t.Errorf("Dockerfile: %q: the imaging package needs cgo", l)
			}
		}
	}
	for _, l := range build.lines {
		for _, cmd := range strings.Split(l, "&&") {
			if !strings.Contains(cmd, "go build") {
				continue
			}
			builds++
			if !strings.Contains(cmd, "-tags noquickstart") {
				t.Errorf("Dockerfile: %q builds without -tags noquickstart: the image could embed its dependencies", strings.TrimSpace(cmd))
			}
		}
		if strings.HasPrefix(l, "RUN ") && (strings.Contains(l, "go build") || strings.Contains(l, "go mod download")) && !strings.Contains(l, "--mount=type=cache") {
			t.Errorf("Dockerfile: %q has no build cache mount", l)
		}
	}
	if builds < 2 {
		t.Errorf("Dockerfile builds %d binaries in its first stage, want api and worker", builds)
	}
	for _, l := range runtime.lines {
		switch {
		case strings.HasPrefix(l, "ENV "):
			for _, m := range envLine.FindAllStringSubmatch(l, -1) {
				env = append(env, m[1])
			}
		case strings.HasPrefix(l, "USER "):
			user = !strings.Contains(l, "root") && !strings.HasSuffix(l, " 0")
		case strings.HasPrefix(l, "HEALTHCHECK "):
			health = strings.Contains(l, "healthcheck") && !strings.Contains(l, "curl")
		}
	}
	checkNames(t, "Dockerfile", env)
	if !user || !health {
		t.Errorf("Dockerfile: non-root user %v, HEALTHCHECK on the healthcheck subcommand %v", user, health)
	}
	if pkgs := aptPackages(runtime.lines); slices.Contains(pkgs, "curl") {
		t.Error("the runtime stage installs curl; the binaries check their own health")
	}

	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "bin", "data", ".env"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

// TestRuntimeLibraries builds the binaries as the Dockerfile does and checks
// that the runtime stage's apt-get line installs what they link: each
// library the binaries name directly comes from a package on that line (or
// from the base image), and every library ldd resolves comes from a package
// those depend on. Packages are found with dpkg on this machine, which must
// run the runtime stage's Debian release.
func TestRuntimeLibraries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian machine: no dpkg to map libraries to packages")
	}
	stages := parseDockerfile(t, "Dockerfile")
	runtime := stages[len(stages)-1]
	osRelease, _ := os.ReadFile("/etc/os-release")
	codename := regexp.MustCompile(`(?m)^VERSION_CODENAME=(\w+)`).FindSubmatch(osRelease)
	if codename == nil || !strings.Contains(runtime.from, string(codename[1])) {
		t.Fatalf("the runtime stage is %s but this machine runs %s: package names differ between releases; "+
			"test on the stage's release or move the Dockerfile to this one", runtime.from, codename)
	}
	named := aptPackages(runtime.lines)
	if len(named) == 0 {
		t.Fatal("the runtime stage installs no package")
	}
	dir := t.TempDir()
	base := dependencyClosure(t, baseImagePackages(t))
	installed := dependencyClosure(t, named)
	for _, cmd := range []string{"api", "worker"} {
		bin := filepath.Join(dir, cmd)
		out, err := exec.Command("go", "build", "-tags", "noquickstart", "-o", bin, "../cmd/"+cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", cmd, err, out)
		}
		libs := lddLibraries(t, bin)
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(direct, "libvips.so.42") || !slices.Contains(direct, "libjpeg.so.62") || !slices.Contains(direct, "liblcms2.so.2") {
			t.Errorf("%s links %v: not libvips, libjpeg-turbo and lcms2; built without cgo?", cmd, direct)
		}
		owners := packagesOf(t, libs)
		for soname, path := range libs {
			pkg := owners[path]
			switch {
			case slices.Contains(direct, soname):
				if !slices.Contains(named, pkg) && !base[pkg] {
					t.Errorf("%s links %s (Debian package %s), which the runtime stage's apt-get line does not name", cmd, soname, pkg)
				}
			case !installed[pkg] && !base[pkg]:
				t.Errorf("%s loads %s (Debian package %s), which no package of the runtime stage depends on", cmd, soname, pkg)
			}
		}
	}
}

// lddLibraries maps each shared library ldd resolves for bin to its path.
func lddLibraries(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	libs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		soname, path, ok := strings.Cut(strings.TrimSpace(line), " => ")
		if !ok {
			continue // the vDSO and the dynamic loader
		}
		path, _, _ = strings.Cut(path, " (")
		if path == "not found" {
			t.Errorf("ldd %s: %s not found", bin, soname)
			continue
		}
		libs[soname] = path
	}
	if len(libs) == 0 {
		t.Fatalf("ldd %s names no library: a static binary cannot call libvips", bin)
	}
	return libs
}

// packagesOf maps each library path to the Debian package that ships it.
func packagesOf(t *testing.T, libs map[string]string) map[string]string {
	t.Helper()
	owners := map[string]string{}
	for _, path := range libs {
		// dpkg knows a file by the path its package ships, which may be
		// the /usr one of a merged /lib.
		candidates := []string{path, "/usr" + path, strings.TrimPrefix(path, "/usr")}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			candidates = append(candidates, real, "/usr"+real, strings.TrimPrefix(real, "/usr"))
		}
		for _, c := range candidates {
			out, err := exec.Command("dpkg-query", "-S", c).Output()
			if err != nil {
				continue
			}
			pkg, _, _ := strings.Cut(strings.SplitN(string(out), "\n", 2)[0], ": ")
			pkg, _, _ = strings.Cut(pkg, ":") // the architecture
			owners[path] = pkg
			break
		}
		if owners[path] == "" {
			t.Errorf("no Debian package ships %s", path)
		}
	}
	return owners
}

// baseImagePackages are the packages every Debian image starts from: the
// essential and required ones (what debian:*-slim holds, with their
// dependencies).
func baseImagePackages(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Essential}\t${Priority}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 4 && strings.HasPrefix(f[0], "ii") && (f[2] == "yes" || f[3] == "required") {
			pkgs = append(pkgs, f[1])
		}
	}
	return pkgs
}

// dependencyClosure is pkgs and every installed package they depend on,
// recursively (Depends and Pre-Depends; of alternatives, the installed one).
func dependencyClosure(t *testing.T, pkgs []string) map[string]bool {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Pre-Depends}, ${Depends}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][][]string{} // package: its dependencies, each a list of alternatives
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || !strings.HasPrefix(f[0], "ii") {
			continue // not installed
		}
		name, list := f[1], f[2]
		deps[name] = nil
		for _, dep := range strings.Split(list, ",") {
			var alts []string
			for _, alt := range strings.Split(dep, "|") {
				if f := strings.Fields(alt); len(f) > 0 {
					n, _, _ := strings.Cut(f[0], ":")
					alts = append(alts, n)
				}
			}
			if len(alts) > 0 {
				deps[name] = append(deps[name], alts)
			}
		}
	}
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, alts := range deps[p] {
			for _, a := range alts {
				if _, ok := deps[a]; ok {
					visit(a)
					break
				}
			}
		}
	}
	for _, p := range pkgs {
		if _, ok := deps[p]; !ok {
			t.Errorf("the runtime stage installs %s, which is not installed here to check", p)
		}
		visit(p)
	}
	return seen
}
