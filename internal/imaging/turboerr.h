#ifndef IMAGESVC_TURBOERR_H
#define IMAGESVC_TURBOERR_H

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

#endif
