#ifndef IMAGESVC_PIPELINE_H
#define IMAGESVC_PIPELINE_H

#include <stddef.h>
#include <vips/vips.h>

#include "guard.h"

// Output encodings of encode_variant.
enum { OUT_JPEG = 0, OUT_PNG = 1, OUT_WEBP = 2, OUT_AVIF = 3 };

VipsImage *load_jpeg_turbo(void *buf, size_t len, int width, int height, int orientation, guard *g);
VipsImage *load_thumbnail(void *buf, size_t len, int width, int height, int colour_manage, const char *options, guard *g);
VipsImage *resize_exact(VipsImage *in, int width, int height);
VipsImage *resize_libvips(VipsImage *in, int width, int height);
VipsImage *to_grey_alpha(VipsImage *in);
int encode_variant(VipsImage *in, int format, int quality, int png_compression, void **out, size_t *out_len);
int decode_full(void *buf, size_t len);
int decode_full_turbo(void *buf, size_t len);
void tune_malloc(void);
int icc_is_srgb(const void *icc, size_t icc_len);
// row_getter returns row i of an image, or NULL on failure.
typedef const unsigned char *(*row_getter)(void *ctx, int i);
extern int resample_portable;
int resample_taps(int in, int out);
int resample_taps_at(int in, double scale);
unsigned char *resample_rows(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation);
unsigned char *resample_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh);
unsigned char *resample_alpha_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh);
void premultiply(const unsigned char *in, unsigned char *out, size_t n, int bands);
void unpremultiply(unsigned char *px, size_t n, int bands);
VipsImage *load_streamed(void *buf, size_t len, int width, int height, guard *g);
// scale_at places the samples of one axis: output sample o is centred at
// (o + 0.5) * scale + offset input samples.
typedef struct {
	double scale, offset;
} scale_at;
// memory_rows reads the rows of an image in memory, stride bytes apart.
typedef struct {
	const unsigned char *pixels;
	size_t stride;
} memory_rows;
unsigned char *resample_at(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation,
	scale_at x, scale_at y);
unsigned char *resample_plane(const unsigned char *in, size_t stride, int w, int h, int ow, int oh, int orientation,
	scale_at x, scale_at y);

// ycc is a JPEG's picture as planes: full-resolution luma and two chroma
// planes subsampled sub times in each direction (1 or 2).
typedef struct ycc ycc;
ycc *ycc_load(void *buf, size_t len, int width, int height, int orientation, int sub, guard *g);
ycc *ycc_resize(const ycc *in, int width, int height);
int ycc_encode(const ycc *in, int quality, void **out, size_t *out_len);
int ycc_width(const ycc *in);
int ycc_height(const ycc *in);
void ycc_free(ycc *in);

#endif
