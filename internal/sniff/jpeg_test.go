package sniff_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// noisePGM is a w x h greyscale picture of noise: every scan of it carries
// data, and its entropy-coded data is full of stuffed 0xFF bytes.
func noisePGM(w, h int) []byte {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	out := fmt.Appendf(nil, "P5\n%d %d\n255\n", w, h)
	for range w * h {
		out = append(out, byte(rng.IntN(256)))
	}
	return out
}

// photoPPM is testenv.Photo as a PPM, cjpeg's colour input.
func photoPPM(w, h int) []byte {
	img := testenv.Photo(w, h, false)
	out := fmt.Appendf(nil, "P6\n%d %d\n255\n", w, h)
	for i := 0; i < len(img.Pix); i += 4 {
		out = append(out, img.Pix[i:i+3]...)
	}
	return out
}

// cjpeg encodes a PGM or PPM with libjpeg-turbo's cjpeg and args; "-scans"
// takes a script's text rather than a file name.
func cjpeg(t testing.TB, pnm []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("cjpeg"); err != nil {
		t.Fatal("the cjpeg command (Debian package libjpeg-turbo-progs) is needed; `make test` installs it")
	}
	for i, a := range args {
		if a == "-scans" && i+1 < len(args) {
			path := filepath.Join(t.TempDir(), "scans.txt")
			if err := os.WriteFile(path, []byte(args[i+1]), 0o644); err != nil {
				t.Fatal(err)
			}
			args[i+1] = path
		}
	}
	cmd := exec.Command("cjpeg", args...)
	cmd.Stdin = bytes.NewReader(pnm)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cjpeg %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// scanSequence is a sequence of 704 scans for a greyscale image that
// libjpeg accepts, since each coefficient bit is sent once: the DC first at
// Al=10 and its ten refinements, then coefficient by coefficient a first AC
// scan at Al=10 and its refinements down to Al=0. Any prefix of it is valid
// too.
func scanSequence() []string {
	var lines []string
	for k := 0; k < 64; k++ {
		lines = append(lines, fmt.Sprintf("0: %d %d 0 10;", k, k))
		for a := 10; a > 0; a-- {
			lines = append(lines, fmt.Sprintf("0: %d %d %d %d;", k, k, a, a-1))
		}
	}
	return lines
}

// scanScript is a cjpeg scan script of the first n scans of scanSequence;
// cjpeg reads at most 100.
func scanScript(n int) string { return strings.Join(scanSequence()[:n], "\n") }

// progressiveJPEG returns pgm as a progressive JPEG of n scans, up to 188.
// cjpeg reads scripts of at most 100 scans, so past that it joins two
// files of the same image: the first 99 scans of one (the DC and 8 whole
// coefficients), then the AC scans of another that sends the DC and the
// following coefficients. libjpeg writes a Huffman table before every scan
// that needs one, so each scan stands on its own; djpeg checks the result.
func progressiveJPEG(t testing.TB, pgm []byte, n int) []byte {
	t.Helper()
	if n <= 100 {
		return cjpeg(t, pgm, "-progressive", "-scans", scanScript(n))
	}
	const head, dc = 99, 11
	seq := scanSequence()
	first := cjpeg(t, pgm, "-progressive", "-scans", scanScript(head))
	second := cjpeg(t, pgm, "-progressive", "-scans", strings.Join(append(seq[:dc:dc], seq[head:n]...), "\n"))
	// cjpeg stuffs every 0xFF of entropy-coded data, so 0xFFDA and 0xFFC4
	// are only ever a scan header and a Huffman table here.
	sos := markerOffsets(second, 0xDA)
	cut := sos[dc]
	if dht := markerOffsets(second[sos[dc-1]:cut], 0xC4); len(dht) > 0 {
		cut = sos[dc-1] + dht[0]
	}
	out := append(bytes.TrimSuffix(first, []byte{0xFF, 0xD9}), second[cut:]...)
	if got := djpegScans(t, out); got != n {
		t.Fatalf("the joined JPEG has %d scans for libjpeg, want %d", got, n)
	}
	return out
}

// markerOffsets returns where the 0xFF, marker pairs of data are.
func markerOffsets(data []byte, marker byte) []int {
	var at []int
	for i := 0; i+1 < len(data); i++ {
		if data[i] == 0xFF && data[i+1] == marker {
			at = append(at, i)
		}
	}
	return at
}

// djpegScans counts the scans libjpeg itself reads in jpg, from the trace
// of djpeg -verbose -verbose: the oracle for the counter.
func djpegScans(t testing.TB, jpg []byte) int {
	t.Helper()
	cmd := exec.Command("djpeg", "-verbose", "-verbose")
	cmd.Stdin = bytes.NewReader(jpg)
	var trace bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &trace
	if err := cmd.Run(); err != nil {
		t.Fatalf("djpeg: %v\n%s", err, trace.Bytes())
	}
	return strings.Count(trace.String(), "Start Of Scan")
}

func TestSniffJPEGScans(t *testing.T) {
	grey := noisePGM(64, 48)
	withRestarts := cjpeg(t, grey, "-progressive", "-restart", "1")
	if !bytes.Contains(withRestarts, []byte{0xFF, 0x00}) || !bytes.Contains(withRestarts, []byte{0xFF, 0xD0}) {
		t.Fatal("the -restart 1 JPEG has no stuffed 0xFF byte or no RST0 marker; the test proves nothing")
	}
	fillBytes := bytes.ReplaceAll(withRestarts, []byte{0xFF, 0xDA}, []byte{0xFF, 0xFF, 0xFF, 0xDA})
	sos := []byte{0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00}
	afterEOI := append(append([]byte{}, withRestarts...), bytes.Repeat(sos, 200)...)
	tests := []struct {
		name   string
		data   []byte
		scans  int
		oracle bool // libjpeg reads it, so djpeg must agree
	}{
		{"BaselineGo", testenv.JPEG(t, 64, 48, 1), 1, true},
		{"BaselineCjpeg", cjpeg(t, photoPPM(64, 48)), 1, true},
		{"SequentialThreeScans", cjpeg(t, photoPPM(64, 48), "-scans", "0;1;2;"), 3, true},
		{"ProgressiveColour", cjpeg(t, photoPPM(64, 48), "-progressive"), 10, true},
		{"ProgressiveGrey", cjpeg(t, grey, "-progressive"), 6, true},
		{"Script20", progressiveJPEG(t, grey, 20), 20, true},
		{"StuffingAndRestarts", withRestarts, 6, true},
		{"StuffingAndRestartsScript100", cjpeg(t, grey, "-progressive", "-restart", "1", "-scans", scanScript(100)), 100, true},
		{"FillBytesBeforeMarkers", fillBytes, 6, true},
		{"ScansAfterEOI", afterEOI, 6, true},
		{"CountingStopsPastTheLimit", progressiveJPEG(t, grey, 150), sniff.MaxJPEGScans + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.oracle {
				if n := djpegScans(t, tt.data); n != tt.scans {
					t.Fatalf("libjpeg reads %d scans, the test expects %d", n, tt.scans)
				}
			}
			h, err := sniff.Sniff(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatalf("Sniff: %v", err)
			}
			if h.Scans != tt.scans {
				t.Errorf("Sniff(%s).Scans = %d, want %d", tt.name, h.Scans, tt.scans)
			}
		})
	}
	t.Run("NotAJPEG", func(t *testing.T) {
		h, err := sniff.Sniff(bytes.NewReader(testenv.PNG(t, 8, 8, 255)))
		if err != nil || h.Scans != 0 {
			t.Errorf("Sniff(PNG) = Scans %d, %v, want 0, nil", h.Scans, err)
		}
	})
}

func TestInspectJPEGScans(t *testing.T) {
	grey := noisePGM(64, 48)
	accepted := sniff.DefaultAcceptedTypes
	for _, n := range []int{20, sniff.MaxJPEGScans} {
		t.Run(fmt.Sprintf("OK%dScans", n), func(t *testing.T) {
			jpg := progressiveJPEG(t, grey, n)
			h, err := sniff.Inspect(bytes.NewReader(jpg), accepted, 1e9)
			if err != nil || h.Scans != n {
				t.Errorf("Inspect(%d scans) = Scans %d, %v, want %d, nil", n, h.Scans, err, n)
			}
		})
	}
	for _, n := range []int{sniff.MaxJPEGScans + 1, 150} {
		jpg := progressiveJPEG(t, grey, n)
		for name, inspect := range map[string]func() (sniff.Header, error){
			"Inspect":      func() (sniff.Header, error) { return sniff.Inspect(bytes.NewReader(jpg), accepted, 1e9) },
			"InspectBytes": func() (sniff.Header, error) { return sniff.InspectBytes(jpg, accepted, 1e9) },
			// A reader that cannot seek gets the same check.
			"InspectStream": func() (sniff.Header, error) {
				return sniff.Inspect(struct{ io.Reader }{bytes.NewReader(jpg)}, accepted, 1e9)
			},
		} {
			t.Run(fmt.Sprintf("ErrTooComplex%dScans%s", n, name), func(t *testing.T) {
				_, err := inspect()
				if !errors.Is(err, sniff.ErrTooComplex) || failure.CodeOf(err) != "too_complex" || failure.KindOf(err) != failure.Unprocessable {
					t.Errorf("%s(%d scans) = %v, want ErrTooComplex", name, n, err)
				}
			})
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestJPEGScansReadOnlyWhatTheyMust(t *testing.T) {
	// Sniff holds two 4 KiB buffers: the header reader's and the walk's.
	const slack = 2 * 4096
	t.Run("NothingAfterEOI", func(t *testing.T) {
		jpg := cjpeg(t, noisePGM(64, 48), "-progressive")
		tail := &countingReader{r: bytes.NewReader(make([]byte, 16<<20))}
		h, err := sniff.Sniff(io.MultiReader(bytes.NewReader(jpg), tail))
		if err != nil || h.Scans != 6 {
			t.Fatalf("Sniff = Scans %d, %v, want 6, nil", h.Scans, err)
		}
		if tail.n > slack {
			t.Errorf("Sniff read %d bytes after the end-of-image marker, want at most %d", tail.n, slack)
		}
	})
	t.Run("StopsPastTheLimit", func(t *testing.T) {
		jpg := progressiveJPEG(t, noisePGM(512, 512), 150)
		starts := markerOffsets(jpg, 0xDA)
		if len(starts) != 150 {
			t.Fatalf("found %d scan headers, want 150", len(starts))
		}
		bound := starts[sniff.MaxJPEGScans] + 64 + slack // through the header of the scan over the limit
		if bound >= len(jpg) {
			t.Fatalf("the JPEG is %d bytes, too short to tell a stop at %d", len(jpg), bound)
		}
		r := &countingReader{r: bytes.NewReader(jpg)}
		if _, err := sniff.Sniff(r); err != nil {
			t.Fatal(err)
		}
		if r.n > bound {
			t.Errorf("Sniff read %d of %d bytes, want at most %d: counting goes on past scan %d", r.n, len(jpg), bound, sniff.MaxJPEGScans+1)
		}
	})
}

func TestJPEGScansTruncated(t *testing.T) {
	jpg := cjpeg(t, noisePGM(48, 32), "-progressive", "-restart", "1")
	full, err := sniff.Sniff(bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	last := 0
	for n := range len(jpg) {
		h, err := sniff.Sniff(bytes.NewReader(jpg[:n]))
		if err != nil {
			if !errors.Is(err, sniff.ErrUnsupported) {
				t.Fatalf("Sniff(first %d bytes) = %v, want ErrUnsupported or a header", n, err)
			}
			continue
		}
		if h.Scans < last || h.Scans > full.Scans {
			t.Fatalf("Sniff(first %d bytes).Scans = %d, want between %d and %d", n, h.Scans, last, full.Scans)
		}
		last = h.Scans
	}
	if last != full.Scans-1 && last != full.Scans {
		t.Errorf("the longest prefix counts %d scans of %d", last, full.Scans)
	}
}
