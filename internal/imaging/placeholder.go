package imaging

import (
	"fmt"
	stdimage "image"

	"github.com/bbrks/go-blurhash"
)

// placeholderSide is the longest side of the thumbnail the dominant
// colour is counted on; the BlurHash is made from it halved. A BlurHash of
// 4x3 components keeps only the lowest frequencies, which 16 pixels hold,
// and the encoder costs three pow calls per pixel and component: from 32
// pixels it cost 2.7 to 4.3 ms, over the 2 ms budget (see
// BenchmarkPlaceholder).
const placeholderSide = 32

// placeholder returns the BlurHash (4x3 components, 3x4 for a portrait)
// and the dominant colour of p, from a thumbnail of it whose longest side
// is placeholderSide (the hash from that halved). Transparent pixels count
// as white, as in a JPEG variant.
func placeholder(p picture) (hash, dominant string, err error) {
	w, h := p.width(), p.height()
	tw, th := w, h
	if max(w, h) > placeholderSide {
		if w >= h {
			tw, th = placeholderSide, max(1, (h*placeholderSide+w/2)/w)
		} else {
			tw, th = max(1, (w*placeholderSide+h/2)/h), placeholderSide
		}
	}
	thumb := p
	if tw != w || th != h {
		if thumb, err = p.resize(tw, th); err != nil {
			return "", "", err
		}
		defer thumb.free()
	}
	if thumb.y != nil {
		rgb, err := thumb.toRGB()
		if err != nil {
			return "", "", err
		}
		defer rgb.free()
		thumb = rgb
	}
	img, err := thumb.pixels()
	if err != nil {
		return "", "", err
	}
	flatten(img)
	x, y := 4, 3
	if th > tw {
		x, y = 3, 4
	}
	if hash, err = blurhash.Encode(x, y, halve(img)); err != nil {
		return "", "", fmt.Errorf("blurhash: %w", err)
	}
	return hash, dominantColor(img), nil
}

// halve returns img at half its size (each side rounded up), each pixel
// the mean of the up to 2x2 it covers.
func halve(img *stdimage.NRGBA) *stdimage.NRGBA {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := stdimage.NewNRGBA(stdimage.Rect(0, 0, (w+1)/2, (h+1)/2))
	for y := range out.Rect.Dy() {
		for x := range out.Rect.Dx() {
			var sum [4]int
			n := 0
			for dy := range 2 {
				for dx := range 2 {
					if 2*x+dx < w && 2*y+dy < h {
						o := img.PixOffset(2*x+dx, 2*y+dy)
						for c := range 4 {
							sum[c] += int(img.Pix[o+c])
						}
						n++
					}
				}
			}
			o := out.PixOffset(x, y)
			for c := range 4 {
				out.Pix[o+c] = uint8((sum[c] + n/2) / n)
			}
		}
	}
	return out
}

// flatten composes img on white and makes it opaque.
func flatten(img *stdimage.NRGBA) {
	for i := 0; i < len(img.Pix); i += 4 {
		a := int(img.Pix[i+3])
		for c := range 3 {
			img.Pix[i+c] = uint8((int(img.Pix[i+c])*a + 255*(255-a) + 127) / 255)
		}
		img.Pix[i+3] = 255
	}
}

// dominantColor returns the most common colour of img as #rrggbb: the
// pixels are put in 512 bins (3 bits a channel) and the colour is the mean
// of the fullest bin, so that it is a colour of the picture, not the blend
// of all of them that an average is.
func dominantColor(img *stdimage.NRGBA) string {
	var count [512]int
	var sum [512][3]int
	for i := 0; i < len(img.Pix); i += 4 {
		r, g, b := int(img.Pix[i]), int(img.Pix[i+1]), int(img.Pix[i+2])
		bin := r>>5<<6 | g>>5<<3 | b>>5
		count[bin]++
		sum[bin][0] += r
		sum[bin][1] += g
		sum[bin][2] += b
	}
	best := 0
	for bin := range count {
		if count[bin] > count[best] {
			best = bin
		}
	}
	n := max(count[best], 1)
	return fmt.Sprintf("#%02x%02x%02x", (sum[best][0]+n/2)/n, (sum[best][1]+n/2)/n, (sum[best][2]+n/2)/n)
}
