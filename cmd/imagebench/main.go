// Command imagebench measures the variant pipeline against its floor and
// against the naive way, side by side in one process, on a corpus it
// generates, and then the memory of a worker-like run. `make bench` runs it.
//
// For each kind of source it prints:
//
//	F   one full decode of the source through libvips' loader (the floor
//	    as libvips and bimg see it)
//	Ft  for JPEGs, one full decode with libjpeg-turbo straight from memory,
//	    the cheapest full decode there is (the floor of our JPEG path)
//	N   the naive pipeline: three independent bimg resizes of the source
//	P   our pipeline (imaging.Resizer)
//
// as CPU seconds per image, with the ratios P/N, P/F and P/Ft and the output
// bytes.
// It reports; it never fails on a time.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/h2non/bimg"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

var specs = []image.Spec{{Name: "small", Width: 300, Height: 300}, {Name: "medium", Width: 1024, Height: 1024}, {Name: "large", Width: 2048, Height: 2048}}

func main() {
	iters := flag.Int("n", 7, "rounds per measurement of a large source (small sources run 4x as many); the median is reported")
	soak := flag.Int("soak", 500, "24 MP images processed at concurrency 2 for the memory run (0 to skip)")
	dir := flag.String("corpus", "", "also write the generated sources into this directory")
	table := flag.Bool("table", true, "print the F/N/P table (false: only the memory run, in a fresh process)")
	formats := flag.Bool("formats", false, "only the formats table: each VARIANT_FORMATS set against jpeg alone")
	photos := flag.String("photos", "", "with -formats, also measure the JPEGs of 8 MP or more in this directory")
	webpQ := flag.String("webp-q", "", "with -formats, also rows of jpeg,webp at these WebP qualities (comma-separated)")
	hostile := flag.Bool("hostile", false, "only the hostile sources: the largest and costliest an upload can carry, two at once, with the peak RSS of each")
	flag.Parse()
	if *formats {
		var qs []int
		for _, q := range strings.Split(*webpQ, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(q)); err == nil {
				qs = append(qs, n)
			}
		}
		if err := formatsRun(*iters, *photos, qs); err != nil {
			fmt.Fprintln(os.Stderr, "imagebench:", err)
			os.Exit(1)
		}
		return
	}
	if *hostile {
		if err := hostileRun(); err != nil {
			fmt.Fprintln(os.Stderr, "imagebench:", err)
			os.Exit(1)
		}
		return
	}
	corpusDir = *dir
	var err error
	if *table {
		err = run(*iters)
	}
	if err == nil && *soak > 0 {
		err = soakRun(imaging.New(imaging.NewDefaultConfig()), testenv.PhotoJPEG(6000, 4000), *soak)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebench:", err)
		os.Exit(1)
	}
}

var corpusDir string

type source struct {
	name string
	data []byte
}

func run(iters int) error {
	resizer := imaging.New(imaging.NewDefaultConfig())
	fmt.Printf("libvips %s, %d CPUs, Go %s\n\n", imaging.VipsVersion(), runtime.NumCPU(), runtime.Version())
	fmt.Println("generating the corpus…")
	j12 := testenv.PhotoJPEG(4000, 3000)
	j24 := testenv.PhotoJPEG(6000, 4000)
	corpus := []source{
		{"JPEG 12 MP 4000x3000", j12},
		{"JPEG 12 MP, EXIF orientation 6", testenv.WithOrientation(j12, 6)},
		{"JPEG 12 MP progressive", progressive(j12)},
		{"JPEG 24 MP 6000x4000", j24},
		{"JPEG 24 MP, EXIF orientation 6", testenv.WithOrientation(j24, 6)},
		{"JPEG 24 MP progressive", progressive(j24)},
		{"PNG RGBA 4000x3000", photoPNG(4000, 3000)},
		{"WebP 4096x4096", toWebP(testenv.PhotoJPEG(4096, 4096))},
		{"JPEG 800x600", testenv.PhotoJPEG(800, 600)},
	}

	if corpusDir != "" {
		for i, src := range corpus {
			os.MkdirAll(corpusDir, 0o755)
			os.WriteFile(fmt.Sprintf("%s/%d.img", corpusDir, i), src.data, 0o644)
		}
	}
	fmt.Printf("\n%-44s %8s %8s %8s %8s %6s %6s %6s %11s %5s\n", "source (bytes)", "F cpu s", "Ft cpu s", "N cpu s", "P cpu s", "P/N", "P/F", "P/Ft", "P out bytes", "iters")
	for _, src := range corpus {
		n := iters
		if len(src.data) < 1<<20 {
			n = iters * 4
		}
		var outBytes int
		fns := []func() error{
			func() error { return imaging.DecodeFull(src.data) },
			nil,
			func() error { _, err := naive(src.data); return err },
			func() error {
				rs, err := resizer.Resize(context.Background(), src.data, specs)
				outBytes = 0
				for _, r := range rs {
					outBytes += len(r.Data)
				}
				return err
			},
		}
		if bimg.DetermineImageType(src.data) == bimg.JPEG {
			fns[1] = func() error { return imaging.DecodeFullTurbo(src.data) }
		}
		rs := measure(n, fns)
		f, ft, nv, p := rs[0], rs[1], rs[2], rs[3]
		if f.err != nil || ft.err != nil || nv.err != nil || p.err != nil {
			return fmt.Errorf("%s: F %v, Ft %v, N %v, P %v", src.name, f.err, ft.err, nv.err, p.err)
		}
		fts, pft := "-", "-"
		if ft.cpu > 0 {
			fts, pft = fmt.Sprintf("%.3f", ft.cpu), fmt.Sprintf("%.2f", p.cpu/ft.cpu)
		}
		fmt.Printf("%-44s %8.3f %8s %8.3f %8.3f %6.2f %6.2f %6s %11d %5d\n", fmt.Sprintf("%s (%d)", src.name, len(src.data)),
			f.cpu, fts, nv.cpu, p.cpu, p.cpu/nv.cpu, p.cpu/f.cpu, pft, outBytes, n)
	}
	fmt.Printf("\npeak RSS of this process (corpus generation included): %d MB\n", maxRSS()>>20)
	return nil
}

type result struct {
	cpu  float64 // median CPU seconds (all threads) per run
	wall float64
	err  error
}

// measure runs each fn (nil ones are skipped) once to warm up, then n
// rounds of all of them in turn, and returns each one's median CPU time per
// run, libvips' worker threads included. Taking turns spreads whatever else
// the machine does over all of them alike, and the median drops the rounds
// another tenant of the machine disturbed (on the VM this was measured on,
// single runs varied by 10 to 20%).
func measure(n int, fns []func() error) []result {
	rs := make([]result, len(fns))
	cpus := make([][]float64, len(fns))
	for i, fn := range fns {
		if fn != nil {
			rs[i].err = fn()
		}
	}
	for range n {
		for i, fn := range fns {
			if fn == nil || rs[i].err != nil {
				continue
			}
			c0, t0 := cpuTime(), time.Now()
			rs[i].err = fn()
			cpus[i] = append(cpus[i], cpuTime()-c0)
			rs[i].wall += time.Since(t0).Seconds() / float64(n)
		}
	}
	for i, c := range cpus {
		if len(c) > 0 {
			slices.Sort(c)
			rs[i].cpu = c[len(c)/2]
		}
	}
	return rs
}

// naive makes the three variants as most code does: three independent bimg
// resizes of the source, each decoding it (bimg rotating at full size).
func naive(src []byte) (int, error) {
	size, err := bimg.NewImage(src).Size()
	if err != nil {
		return 0, err
	}
	meta, _ := bimg.NewImage(src).Metadata()
	w, h := size.Width, size.Height
	if meta.Orientation >= 5 {
		w, h = h, w
	}
	total := 0
	for _, s := range specs {
		fw, fh := s.Fit(w, h)
		out, err := bimg.Resize(src, bimg.Options{Width: fw, Height: fh, Force: true, Quality: 82, StripMetadata: true})
		if err != nil {
			return 0, err
		}
		total += len(out)
	}
	return total, nil
}

// soakRun processes n copies of a 24 MP JPEG at concurrency 2, like a worker
// with WORKER_CONCURRENCY=2, and prints the peak RSS of each hundred.
func soakRun(r *imaging.Resizer, src []byte, n int) error {
	// Give back what generating the source took, so that the run starts
	// where a worker holding one downloaded source would.
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Printf("\nmemory: %d images of 24 MP at concurrency 2, as a worker with WORKER_CONCURRENCY=2 (RSS sampled after every image; starts at %d MB with the source in memory)\n", n, currentRSS()>>20)
	var next, done atomic.Int64
	var mu sync.Mutex
	peaks := make([]int64, (n+99)/100)
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range 2 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := r.Resize(context.Background(), src, specs); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				rss := currentRSS()
				mu.Lock()
				k := int(done.Add(1)-1) / 100
				peaks[k] = max(peaks[k], rss)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for k, p := range peaks {
		fmt.Printf("  images %3d-%3d: peak RSS %4d MB\n", k*100+1, min((k+1)*100, n), p>>20)
	}
	first, last := peaks[0], peaks[len(peaks)-1]
	// The process's own maximum (getrusage) would include generating the
	// source, which a worker never does; the peak of the run is the
	// largest of the per-hundred peaks.
	fmt.Printf("  peak over the run %d MB; last hundred vs first: %+.1f%%; %.1f s, %.2f images/s\n",
		slices.Max(peaks)>>20, 100*(float64(last)-float64(first))/float64(first), time.Since(start).Seconds(),
		float64(n)/time.Since(start).Seconds())
	return nil
}

func photoPNG(w, h int) []byte {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, testenv.Photo(w, h, true)); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// progressive re-encodes a JPEG as progressive (as many cameras and editors
// write them); they cost more to decode.
func progressive(src []byte) []byte {
	out, err := bimg.Resize(src, bimg.Options{Type: bimg.JPEG, Quality: 90, Interlace: true})
	if err != nil {
		panic(err)
	}
	return out
}

func toWebP(src []byte) []byte {
	out, err := bimg.Resize(src, bimg.Options{Type: bimg.WEBP, Quality: 85})
	if err != nil {
		panic(err)
	}
	return out
}

func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func maxRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss << 10 // kilobytes on Linux
}

// currentRSS reads VmRSS from /proc/self/status.
func currentRSS() int64 { return statusKB("VmRSS:") }

// statusKB reads a field in kB of /proc/self/status, in bytes.
func statusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
