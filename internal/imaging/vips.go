package imaging

/*
#cgo pkg-config: vips
#cgo CFLAGS: -O3
#cgo LDFLAGS: -ljpeg -llcms2 -lm
#include <stdlib.h>
#include "pipeline.h"
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"
)

// tuneMalloc sets glibc's malloc for a worker (see tune_malloc); call it
// before libvips starts its threads.
func tuneMalloc() {
	C.tune_malloc()
}

// blockUntrusted turns off the libvips loaders that are not meant for
// untrusted input (libvips 8.13 and later).
func blockUntrusted() {
	C.vips_block_untrusted_set(C.TRUE)
}

// vipsError takes the text of libvips' error buffer, copied and cleared
// under its lock. The buffer is one for the whole process: with several
// images at once, a message can carry another image's error as well.
func vipsError() error {
	p := C.vips_error_buffer_copy()
	msg := strings.TrimSpace(C.GoString(p))
	C.g_free(C.gpointer(p))
	if msg == "" {
		msg = "libvips failed"
	}
	return errors.New(msg)
}

// picture is an image in memory, either rendered by libvips (p) or a
// JPEG's planes (y, see ycc.c); release it with free.
type picture struct {
	p *C.VipsImage
	y *C.ycc
}

func (p picture) width() int {
	if p.y != nil {
		return int(C.ycc_width(p.y))
	}
	return int(p.p.Xsize)
}

func (p picture) height() int {
	if p.y != nil {
		return int(C.ycc_height(p.y))
	}
	return int(p.p.Ysize)
}

func (p picture) bands() int {
	if p.y != nil {
		return 3
	}
	return int(p.p.Bands)
}

func (p picture) free() {
	if p.y != nil {
		C.ycc_free(p.y)
		return
	}
	C.g_object_unref(C.gpointer(p.p))
}

// samples returns a copy of the 8-bit samples of p, which must be rendered
// by libvips in memory (every such picture this package makes is), not
// planes.
func (p picture) samples() []byte {
	if p.y != nil {
		panic("imaging: samples of planes")
	}
	return C.GoBytes(unsafe.Pointer(p.p.data), C.int(p.width()*p.height()*p.bands()))
}

func cbuf(src []byte) (unsafe.Pointer, C.size_t) {
	return unsafe.Pointer(&src[0]), C.size_t(len(src))
}

// loadJPEGTurbo returns the intermediate of a JPEG decoded by libjpeg-turbo
// (see load_jpeg_turbo), or false when that path does not take it (the
// guard's verdict then says whether that is final).
func loadJPEGTurbo(src []byte, width, height, orientation int, g *guard) (picture, bool) {
	p, n := cbuf(src)
	im := C.load_jpeg_turbo(p, n, C.int(width), C.int(height), C.int(orientation), g.c())
	return picture{p: im}, im != nil
}

// loadJPEGPlanes returns the intermediate of a JPEG as planes (see
// ycc_load), with chroma subsampled sub times, or false when that path
// does not take it (the guard's verdict then says whether that is final).
func loadJPEGPlanes(src []byte, width, height, orientation, sub int, g *guard) (picture, bool) {
	p, n := cbuf(src)
	y := C.ycc_load(p, n, C.int(width), C.int(height), C.int(orientation), C.int(sub), g.c())
	return picture{y: y}, y != nil
}

// loadStreamed returns the intermediate of a PNG without a profile or
// orientation, decoded row by row into the resampler (see load_streamed).
func loadStreamed(src []byte, width, height int, g *guard) (picture, error) {
	p, n := cbuf(src)
	im := C.load_streamed(p, n, C.int(width), C.int(height), g.c())
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// loadThumbnail returns the intermediate made by vips_thumbnail (see
// load_thumbnail); options go to libvips' loader.
func loadThumbnail(src []byte, width, height int, colourManage bool, options string, g *guard) (picture, error) {
	p, n := cbuf(src)
	opts := C.CString(options)
	defer C.free(unsafe.Pointer(opts))
	im := C.load_thumbnail(p, n, C.int(width), C.int(height), cbool(colourManage), opts, g.c())
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// resize returns p scaled to exactly width x height.
func (p picture) resize(width, height int) (picture, error) {
	if p.y != nil {
		y := C.ycc_resize(p.y, C.int(width), C.int(height))
		if y == nil {
			return picture{}, errors.New("out of memory")
		}
		return picture{y: y}, nil
	}
	im := C.resize_exact(p.p, C.int(width), C.int(height))
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// hasAlpha says whether p's last band is alpha, as libvips sees it.
func (p picture) hasAlpha() bool { return p.p != nil && C.vips_image_hasalpha(p.p) != 0 }

// toGreyAlpha returns p (sRGB with alpha) as grey + alpha, in memory (for
// the tests).
func (p picture) toGreyAlpha() (picture, error) {
	im := C.to_grey_alpha(p.p)
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
	im := C.resize_libvips(p.p, C.int(width), C.int(height))
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// Output encodings (pipeline.h).
const (
	outJPEG = C.OUT_JPEG
	outPNG  = C.OUT_PNG
	outWebP = C.OUT_WEBP
	outAVIF = C.OUT_AVIF
)

// encode returns p encoded without metadata.
func (p picture) encode(format, quality, pngCompression int) ([]byte, error) {
	var out unsafe.Pointer
	var n C.size_t
	if p.y != nil {
		if format != outJPEG {
			return nil, errors.New("planes encode only as JPEG")
		}
		if C.ycc_encode(p.y, C.int(quality), &out, &n) != 0 {
			return nil, errors.New("libjpeg-turbo could not encode the variant")
		}
		defer C.free(out)
		return C.GoBytes(out, C.int(n)), nil
	}
	if C.encode_variant(p.p, C.int(format), C.int(quality), C.int(pngCompression), &out, &n) != 0 {
		return nil, vipsError()
	}
	defer C.g_free(C.gpointer(out))
	return C.GoBytes(out, C.int(n)), nil
}

// decodeFull decodes every pixel of src through libvips' loader (see
// decode_full).
func decodeFull(src []byte) error {
	p, n := cbuf(src)
	if C.decode_full(p, n) != 0 {
		return vipsError()
	}
	return nil
}

// decodeFullTurbo decodes every pixel of a JPEG with libjpeg-turbo (see
// decode_full_turbo).
func decodeFullTurbo(src []byte) error {
	p, n := cbuf(src)
	if C.decode_full_turbo(p, n) != 0 {
		return errors.New("libjpeg-turbo could not decode the source")
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// setPortableResample makes the resampler use its portable loop even where
// the CPU has AVX2 (for the tests, which hold the two to the same bytes).
func setPortableResample(on bool) { C.resample_portable = cbool(on) }

// threadShutdown frees libvips' per-thread state of the calling thread.
func threadShutdown() { C.vips_thread_shutdown() }
