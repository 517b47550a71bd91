#ifndef IMAGESVC_YCC_H
#define IMAGESVC_YCC_H

#include <stddef.h>

#include <vips/vips.h>

#include "guard.h"

// ycc is a JPEG's picture as planes: full-resolution luma and two chroma
// planes subsampled sub times in each direction (1 or 2).
typedef struct ycc ycc;

ycc *ycc_load(void *buf, size_t len, int width, int height, int orientation, int sub, guard *g);
ycc *ycc_resize(const ycc *in, int width, int height);
int ycc_encode(const ycc *in, int quality, void **out, size_t *out_len);
int ycc_width(const ycc *in);
int ycc_height(const ycc *in);
void ycc_free(ycc *in);

// ycc_plane returns plane i (0 luma, 1 Cb, 2 Cr) and its size; rows are
// width bytes apart. ycc_subsampling is the chroma's (1 or 2).
const unsigned char *ycc_plane(const ycc *in, int i, int *width, int *height);
int ycc_subsampling(const ycc *in);

// ycc_to_rgb returns the picture as 8-bit sRGB in memory.
VipsImage *ycc_to_rgb(const ycc *in);

#endif
