package imaging_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// BenchmarkResize measures the whole pipeline (decode once, three variants)
// on generated sources, so that regressions show in benchstat.
func BenchmarkResize(b *testing.B) {
	r := imaging.New(imaging.NewDefaultConfig())
	photo := testenv.JPEG(b, 4000, 3000, 1)
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"JPEG12MP", photo},
		{"JPEG12MPRotated", testenv.JPEG(b, 4000, 3000, 6)},
		{"JPEG12MPDisplayP3", withDisplayP3(b, photo)},
		{"JPEG800x600", testenv.JPEG(b, 800, 600, 1)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.src)))
			for b.Loop() {
				if _, err := r.Resize(context.Background(), tc.src, specs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// withDisplayP3 returns src converted to Display P3 with the profile
// embedded, as iPhones write them, by libvips' CLI.
func withDisplayP3(b *testing.B, src []byte) []byte {
	b.Helper()
	dir := b.TempDir()
	in, mid, out := filepath.Join(dir, "in.jpg"), filepath.Join(dir, "p3.v"), filepath.Join(dir, "p3.jpg")
	if err := os.WriteFile(in, src, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, args := range [][]string{{"icc_transform", in, mid, "p3"}, {"jpegsave", mid, out, "--Q", "90"}} {
		if o, err := exec.Command("vips", args...).CombinedOutput(); err != nil {
			b.Fatalf("vips %v: %v\n%s", args, err, o)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
