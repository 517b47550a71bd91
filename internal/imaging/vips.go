package imaging

/*
#cgo pkg-config: vips
#include <stdlib.h>
#include <malloc.h>
#include <vips/vips.h>

// limit_arenas caps glibc's malloc arenas. With one arena per libvips worker
// thread, freed image buffers stay spread over many arenas and the RSS of a
// worker grew 19% over 500 24 MP images (316 to 377 MB); with two it stays
// flat near 230 MB at the same speed (measured with make bench). This is
// MALLOC_ARENA_MAX=2, set from inside so that nobody has to remember it.
static void limit_arenas(void) {
	mallopt(M_ARENA_MAX, 2);
}

// shrink_to_tiff makes the pipeline's intermediate: the source scaled to fit
// inside width x height (never enlarged) with shrink-on-load, turned upright
// from its EXIF orientation after the shrink, converted to sRGB, and written
// as an uncompressed TIFF. Only the first page or frame is read. With
// colour_manage, an embedded ICC profile (or, for CMYK, a built-in one) is
// honoured through lcms; that costs about a third of the step, so it is
// asked for only when the source has a profile or is CMYK.
static int shrink_to_tiff(void *buf, size_t len, int width, int height, int colour_manage, void **out, size_t *out_len) {
	VipsImage *thumb = NULL;
	int r;
	if (colour_manage)
		r = vips_thumbnail_buffer(buf, len, &thumb, width, "height", height, "size", VIPS_SIZE_DOWN,
			"export_profile", "srgb", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	else
		r = vips_thumbnail_buffer(buf, len, &thumb, width, "height", height, "size", VIPS_SIZE_DOWN,
			"fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (r)
		return -1;
	r = vips_tiffsave_buffer(thumb, out, out_len, "compression", VIPS_FOREIGN_TIFF_COMPRESSION_NONE, NULL);
	g_object_unref(thumb);
	return r;
}

// decode_full decodes every pixel of the source once (the cost floor a
// pipeline is measured against) and does nearly nothing else with them.
static int decode_full(void *buf, size_t len) {
	VipsImage *im = vips_image_new_from_buffer(buf, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (!im)
		return -1;
	double avg;
	int r = vips_avg(im, &avg, NULL);
	g_object_unref(im);
	return r;
}
*/
import "C"

import (
	"errors"
	"runtime"
	"strings"
	"unsafe"
)

// limitArenas caps glibc's malloc arenas (see limit_arenas); call it before
// libvips starts its threads.
func limitArenas() {
	C.limit_arenas()
}

// blockUntrusted turns off the libvips loaders that are not meant for
// untrusted input (libvips 8.13 and later).
func blockUntrusted() {
	C.vips_block_untrusted_set(C.TRUE)
}

func vipsError() error {
	msg := strings.TrimSpace(C.GoString(C.vips_error_buffer()))
	C.vips_error_clear()
	if msg == "" {
		msg = "libvips failed"
	}
	return errors.New(msg)
}

// shrinkToTIFF returns the pipeline's intermediate (see shrink_to_tiff).
func shrinkToTIFF(src []byte, width, height int, colourManage bool) ([]byte, error) {
	if len(src) == 0 {
		return nil, errors.New("empty source")
	}
	// libvips works on its own threads; keep this one for its error buffer.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer C.vips_thread_shutdown()
	var out unsafe.Pointer
	var n C.size_t
	if C.shrink_to_tiff(unsafe.Pointer(&src[0]), C.size_t(len(src)), C.int(width), C.int(height), cbool(colourManage), &out, &n) != 0 {
		return nil, vipsError()
	}
	defer C.g_free(C.gpointer(out))
	return C.GoBytes(out, C.int(n)), nil
}

// DecodeFull decodes every pixel of src once: the floor a pipeline's cost is
// compared with in the benchmark.
func DecodeFull(src []byte) error {
	if len(src) == 0 {
		return errors.New("empty source")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer C.vips_thread_shutdown()
	if C.decode_full(unsafe.Pointer(&src[0]), C.size_t(len(src))) != 0 {
		return vipsError()
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
