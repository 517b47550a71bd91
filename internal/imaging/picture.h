#ifndef IMAGESVC_PICTURE_H
#define IMAGESVC_PICTURE_H

#include <stddef.h>

#include <vips/vips.h>

#include "guard.h"

// The conventions of the imaging C, every file alike:
//
// - A load returns the image it made, or NULL. NULL with the guard's
//   verdict VERDICT_NONE means the path declined the source (another path
//   may take it); any other verdict is final (corrupt, too complex,
//   cancelled). A libvips failure leaves its text in libvips' error buffer.
// - Any other function returning a pointer returns NULL on failure; one
//   returning int returns 0 on success and -1 on failure.
// - A buffer returned to the caller is malloc'd: free it with free().
// - Images are VipsImage references: g_object_unref them.

// Output encodings of picture_encode.
enum { OUT_JPEG = 0, OUT_PNG = 1, OUT_WEBP = 2, OUT_AVIF = 3 };

VipsImage *picture_wrap(unsigned char *pixels, int width, int height, int bands, VipsInterpretation type);
VipsImage *picture_to_memory(VipsImage *in);
VipsImage *picture_render(VipsImage *in, guard *g);
VipsImage *picture_resize(VipsImage *in, int width, int height);
VipsImage *picture_resize_libvips(VipsImage *in, int width, int height);
VipsImage *picture_to_grey_alpha(VipsImage *in);
int picture_encode(VipsImage *in, int format, int quality, int png_compression, int effort, void **out, size_t *out_len);

#endif
