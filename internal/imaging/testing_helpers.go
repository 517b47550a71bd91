package imaging

/*
#include "picture.h"
#include "resample.h"
*/
import "C"

import "unsafe"

// What the tests need of the C beyond what the pipeline uses, kept out of
// the files the pipeline reads: a test file cannot use cgo itself.

// samples returns a copy of the 8-bit samples of p, which must be rendered
// by libvips in memory (every such picture this package makes is), not
// planes.
func (p picture) samples() []byte {
	if p.y != nil {
		panic("imaging: samples of planes")
	}
	return C.GoBytes(unsafe.Pointer(p.p.data), C.int(p.width()*p.height()*p.bands()))
}

// hasAlpha says whether p's last band is alpha, as libvips sees it.
func (p picture) hasAlpha() bool { return p.p != nil && C.vips_image_hasalpha(p.p) != 0 }

// toGreyAlpha returns p (sRGB with alpha) as grey + alpha, in memory (for
// the tests).
func (p picture) toGreyAlpha() (picture, error) {
	im := C.picture_to_grey_alpha(p.p)
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// resizeWithLibvips is resize through vips_resize only, the reference the
// tests hold resample_u8 to.
func (p picture) resizeWithLibvips(width, height int) (picture, error) {
	if p.y != nil {
		panic("imaging: planes resized with libvips")
	}
	im := C.picture_resize_libvips(p.p, C.int(width), C.int(height))
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// setPortableResample makes the resampler use its portable loop even where
// the CPU has AVX2 (for the tests, which hold the two to the same bytes).
func setPortableResample(on bool) { C.resample_portable = cbool(on) }
