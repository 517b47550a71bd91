// libjpeg-turbo helpers shared by pipeline.c and ycc.c.

#ifndef IMAGESVC_TURBO_H
#define IMAGESVC_TURBO_H

#include <setjmp.h>
#include <stdio.h>

#include <jpeglib.h>
#include <jerror.h>

#include <vips/vips.h>

#include "guard.h"

// turbo_err makes libjpeg's errors return to the caller (longjmp) and counts
// its warnings about corrupt data (data it decoded past: a truncated file,
// a bad Huffman code) instead of printing them; warnings about metadata (an
// unknown JFIF revision, a bad ICC marker, bytes between segments) are not
// counted. Set it up, then setjmp(jb), then create the codec: creating one
// can fail too (out of memory), and jpeg_destroy_* is safe on a zeroed
// codec.
//
// With a guard, a corrupt-data warning is its verdict VERDICT_CORRUPT, and
// turbo_watch makes a decompressor stop (longjmp) when the guard is
// cancelled or the source has more scans than the guard allows.
typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	int warnings;
	guard *g;
	struct jpeg_progress_mgr progress;
} turbo_err;

struct jpeg_error_mgr *turbo_err_init(turbo_err *err, guard *g);

// turbo_watch hands a created decompressor to err's guard (if any): call it
// after jpeg_create_decompress, which clears the progress hook.
void turbo_watch(struct jpeg_decompress_struct *c, turbo_err *err);

// turbo_scale sets the smallest DCT scale (1/8, 1/4, 1/2 or 1) at which a
// decompressor whose header is read still covers width x height upright,
// and gives that size as stored (orientations 5 to 8 swap it) in sw, sh
// unless they are NULL.
void turbo_scale(struct jpeg_decompress_struct *c, int width, int height, int orientation, int *sw, int *sh);

// turbo_load makes the intermediate of a JPEG (picture.h's load convention).
VipsImage *turbo_load(void *buf, size_t len, int width, int height, int orientation, guard *g);

// turbo_encode encodes 8-bit sRGB or grey pixels in memory as a JPEG.
int turbo_encode(VipsImage *in, int quality, void **out, size_t *out_len);

#endif
