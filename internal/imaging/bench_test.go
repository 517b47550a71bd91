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
	photo := testenv.JPEG(b, 4000, 3000, 1)
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"JPEG12MP", photo},
		{"JPEG12MPRotated", testenv.JPEG(b, 4000, 3000, 6)},
		{"JPEG12MPDisplayP3", testenv.ViaVips(b, photo, "icc_transform", "p3")},
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
