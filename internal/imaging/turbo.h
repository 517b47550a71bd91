// libjpeg-turbo helpers shared by pipeline.c and ycc.c.

#ifndef IMAGESVC_TURBO_H
#define IMAGESVC_TURBO_H

#include <setjmp.h>
#include <stdio.h>

#include <jpeglib.h>

// turbo_err makes libjpeg's errors return to the caller (longjmp) and counts
// its warnings (corrupt data it decoded past) instead of printing them.
// Set it up, then setjmp(jb), then create the codec: creating one can fail
// too (out of memory), and jpeg_destroy_* is safe on a zeroed codec.
typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	int warnings;
} turbo_err;

struct jpeg_error_mgr *turbo_err_init(turbo_err *err);

// turbo_scale sets the smallest DCT scale (1/8, 1/4, 1/2 or 1) at which a
// decompressor whose header is read still covers width x height upright,
// and gives that size as stored (orientations 5 to 8 swap it) in sw, sh
// unless they are NULL.
void turbo_scale(struct jpeg_decompress_struct *c, int width, int height, int orientation, int *sw, int *sh);

#endif
