package imaging

import (
	"testing"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// BenchmarkPlaceholder measures what the placeholder adds to an image: the
// BlurHash and dominant colour of a small variant (300x225), from planes
// (a JPEG source) and from RGB (the other paths). Goal: under 2 ms.
func BenchmarkPlaceholder(b *testing.B) {
	src := testenv.PhotoJPEG(1200, 900)
	planes, ok := loadJPEGPlanes(src, 300, 225, 1, 2, nil)
	if !ok {
		b.Fatal("planes path declined the source")
	}
	defer planes.free()
	rgb, ok := loadJPEGTurbo(src, 300, 225, 1, nil)
	if !ok {
		b.Fatal("RGB path declined the source")
	}
	defer rgb.free()
	for name, p := range map[string]picture{"Planes": planes, "RGB": rgb} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := placeholder(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
