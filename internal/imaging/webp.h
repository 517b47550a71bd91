#ifndef IMAGESVC_WEBP_H
#define IMAGESVC_WEBP_H

#include <stddef.h>

#include <vips/vips.h>

#include "ycc.h"

// webp_encode_picture encodes an 8-bit image in memory (grey, grey + alpha,
// sRGB or sRGBA) as a lossy WebP with libwebp, at quality (0-100) and
// method (0 fastest to 6 smallest).
int webp_encode_picture(VipsImage *in, int quality, int method, void **out, size_t *out_len);

// webp_encode_ycc encodes a JPEG's planes as a lossy WebP without going
// through RGB: WebP's own representation is YCbCr 4:2:0 too.
int webp_encode_ycc(const ycc *in, int quality, int method, void **out, size_t *out_len);

#endif
