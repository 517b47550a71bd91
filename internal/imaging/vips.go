package imaging

/*
#cgo pkg-config: vips libwebp
#cgo CFLAGS: -O3
#cgo LDFLAGS: -ljpeg -llcms2 -lm
#include <stdlib.h>
#include "tune_malloc.h"
#include "picture.h"
#include "turbo.h"
#include "vipsload.h"
#include "webp.h"
#include "ycc.h"
*/
import "C"

import (
	"errors"
	"fmt"
	stdimage "image"
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

func cbuf(src []byte) (unsafe.Pointer, C.size_t) {
	return unsafe.Pointer(&src[0]), C.size_t(len(src))
}

// loadJPEGTurbo returns the intermediate of a JPEG decoded by libjpeg-turbo
// (see turbo_load), or false when that path does not take it (the
// guard's verdict then says whether that is final).
func loadJPEGTurbo(src []byte, width, height, orientation int, g *guard) (picture, bool) {
	p, n := cbuf(src)
	im := C.turbo_load(p, n, C.int(width), C.int(height), C.int(orientation), g.c())
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
// orientation, decoded row by row into the resampler (see vipsload_streamed).
func loadStreamed(src []byte, width, height int, g *guard) (picture, error) {
	p, n := cbuf(src)
	im := C.vipsload_streamed(p, n, C.int(width), C.int(height), g.c())
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// loadThumbnail returns the intermediate made by vips_thumbnail (see
// vipsload_thumbnail); options go to libvips' loader.
func loadThumbnail(src []byte, width, height int, colourManage bool, options string, g *guard) (picture, error) {
	p, n := cbuf(src)
	opts := C.CString(options)
	defer C.free(unsafe.Pointer(opts))
	im := C.vipsload_thumbnail(p, n, C.int(width), C.int(height), cbool(colourManage), opts, g.c())
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
	im := C.picture_resize(p.p, C.int(width), C.int(height))
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

// encode returns p encoded without metadata, with the encoder's default
// effort.
func (p picture) encode(format, quality, pngCompression int) ([]byte, error) {
	effort := 4
	if format == outAVIF {
		effort = 0
	}
	return p.encodeWith(format, quality, pngCompression, effort)
}

// encodeWith returns p encoded without metadata; effort is the WebP
// method (0-6) or the AVIF effort (0-9). Planes encode as JPEG and WebP
// as they are, and through RGB for the rest.
func (p picture) encodeWith(format, quality, pngCompression, effort int) ([]byte, error) {
	var out unsafe.Pointer
	var n C.size_t
	if p.y != nil {
		switch format {
		case outJPEG:
			if C.ycc_encode(p.y, C.int(quality), &out, &n) != 0 {
				return nil, errors.New("libjpeg-turbo could not encode the variant")
			}
		case outWebP:
			if C.webp_encode_ycc(p.y, C.int(quality), C.int(effort), &out, &n) != 0 {
				return nil, vipsError()
			}
		default:
			rgb, err := p.toRGB()
			if err != nil {
				return nil, err
			}
			defer rgb.free()
			return rgb.encodeWith(format, quality, pngCompression, effort)
		}
		defer C.free(out)
		return C.GoBytes(out, C.int(n)), nil
	}
	if C.picture_encode(p.p, C.int(format), C.int(quality), C.int(pngCompression), C.int(effort), &out, &n) != 0 {
		return nil, vipsError()
	}
	defer C.free(out)
	return C.GoBytes(out, C.int(n)), nil
}

// toRGB returns planes as an 8-bit sRGB picture in memory.
func (p picture) toRGB() (picture, error) {
	im := C.ycc_to_rgb(p.y)
	if im == nil {
		return picture{}, vipsError()
	}
	return picture{p: im}, nil
}

// pixels returns an image in memory (8-bit, 1 to 4 bands, not planes) as
// Go's NRGBA.
func (p picture) pixels() (*stdimage.NRGBA, error) {
	im := p.p
	if im.BandFmt != C.VIPS_FORMAT_UCHAR || im.data == nil || im.Bands < 1 || im.Bands > 4 {
		return nil, fmt.Errorf("want 8-bit pixels in memory, have %d bands of format %d", im.Bands, im.BandFmt)
	}
	w, h, bands := int(im.Xsize), int(im.Ysize), int(im.Bands)
	src := unsafe.Slice((*byte)(unsafe.Pointer(im.data)), w*h*bands)
	out := stdimage.NewNRGBA(stdimage.Rect(0, 0, w, h))
	for i := range w * h {
		s, d := src[i*bands:(i+1)*bands], out.Pix[i*4:i*4+4]
		switch bands {
		case 1, 2:
			d[0], d[1], d[2] = s[0], s[0], s[0]
		default:
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
		d[3] = 255
		if bands == 2 || bands == 4 {
			d[3] = s[bands-1]
		}
	}
	return out, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// threadShutdown frees libvips' per-thread state of the calling thread.
func threadShutdown() { C.vips_thread_shutdown() }
