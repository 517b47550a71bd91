package imaging_test

import (
	"context"
	"testing"

	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// BenchmarkResize measures the whole pipeline (decode once, three variants)
// on generated sources, so that regressions show in benchstat.
func BenchmarkResize(b *testing.B) {
	r := imaging.New(imaging.NewDefaultConfig())
	for _, tc := range []struct {
		name         string
		w, h, orient int
	}{
		{"JPEG12MP", 4000, 3000, 1},
		{"JPEG12MPRotated", 4000, 3000, 6},
		{"JPEG800x600", 800, 600, 1},
	} {
		src := testenv.JPEG(b, tc.w, tc.h, tc.orient)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := r.Resize(context.Background(), src, specs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
