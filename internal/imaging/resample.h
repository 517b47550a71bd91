#ifndef IMAGESVC_RESAMPLE_H
#define IMAGESVC_RESAMPLE_H

#include <stddef.h>

// row_getter returns row i of an image, or NULL on failure.
typedef const unsigned char *(*row_getter)(void *ctx, int i);

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

// resample_portable makes the resampler use its portable loop even where
// the CPU has AVX2 (the tests hold the two to the same bytes).
extern int resample_portable;

int resample_taps(int in, int out);
int resample_taps_at(int in, double scale);
unsigned char *resample_rows(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation);
unsigned char *resample_at(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation,
	scale_at x, scale_at y);
unsigned char *resample_plane(const unsigned char *in, size_t stride, int w, int h, int ow, int oh, int orientation,
	scale_at x, scale_at y);
unsigned char *resample_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh);
unsigned char *resample_alpha_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh);
void premultiply(const unsigned char *in, unsigned char *out, size_t n, int bands);
void unpremultiply(unsigned char *px, size_t n, int bands);

#endif
