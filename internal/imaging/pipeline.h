#ifndef IMAGESVC_PIPELINE_H
#define IMAGESVC_PIPELINE_H

#include <stddef.h>
#include <vips/vips.h>

// Output encodings of encode_variant.
enum { OUT_JPEG = 0, OUT_PNG = 1, OUT_WEBP = 2, OUT_AVIF = 3 };

VipsImage *load_jpeg_turbo(void *buf, size_t len, int width, int height, int orientation);
VipsImage *load_thumbnail(void *buf, size_t len, int width, int height, int colour_manage);
VipsImage *resize_exact(VipsImage *in, int width, int height);
VipsImage *resize_libvips(VipsImage *in, int width, int height);
int encode_variant(VipsImage *in, int format, int quality, int png_compression, void **out, size_t *out_len);
int decode_full(void *buf, size_t len);
int decode_full_turbo(void *buf, size_t len);
void tune_malloc(void);
// row_getter returns row i of an image, or NULL on failure.
typedef const unsigned char *(*row_getter)(void *ctx, int i);
int resample_taps(int in, int out);
unsigned char *resample_rows(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation);
unsigned char *resample_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh);

#endif
