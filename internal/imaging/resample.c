// A separable lanczos3 resampler for 8-bit images: every JPEG and PNG
// intermediate and every 8-bit variant (with alpha, premultiplied by the
// caller: resample_alpha_u8). It computes what vips_resize computes with
// its default kernel (the tests hold it to 0.5/255 on average) at about a
// quarter of the CPU (the README, Performance, has the measurements). The
// resample was the largest
// cost of a variant set once the decode went to libjpeg-turbo; libvips'
// reduce works pixel by pixel, this works on rows with fixed-point weights
// (vectorised by the compiler, or with AVX2 multiply-adds where the CPU has
// them; both give the same bytes). Output rows are made BLOCK at a time:
// the vertical pass filters whole rows, the block is transposed, and the
// horizontal pass filters its columns as rows too, in the cache. The rows
// can come straight from the JPEG decoder (resample_rows), so a full-size
// decode is never held whole, and each pixel is written where the EXIF
// orientation puts it.

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resample.h"

// Weights are fixed point with WBITS fractional bits; a window's weights
// sum to 1 << WBITS.
#define WBITS 14

// axis holds, for each output index, the first input index of its window
// and the window's weights (taps of them).
typedef struct {
	int taps;
	int *start;
	int16_t *w;
} axis;

static double lanczos3(double x) {
	x = fabs(x);
	if (x < 1e-9)
		return 1;
	if (x >= 3)
		return 0;
	double px = M_PI * x;
	return 3 * sin(px) * sin(px / 3) / (px * px);
}

static void axis_free(axis *a) {
	free(a->start);
	free(a->w);
	a->start = NULL;
	a->w = NULL;
}

// resample_taps_at is the number of consecutive input samples one output
// sample of a scale of in samples by scale (input samples per output
// sample) reads: the kernel's support, 3, widened by the scale when
// shrinking, on both sides. A row getter must keep that many of the latest
// rows it returned valid.
int resample_taps_at(int in, double scale) {
	int taps = (int) ceil(2 * 3 * (scale > 1 ? scale : 1));
	return taps > in ? in : taps;
}

// resample_taps is resample_taps_at for a scale from in to out rows; -1
// for an empty size.
int resample_taps(int in, int out) {
	if (in < 1 || out < 1)
		return -1;
	return resample_taps_at(in, (double) in / out);
}

// axis_make computes the windows of out output samples from in input
// samples: the lanczos3 kernel, widened by the scale when shrinking, centred
// for output sample o at (o + 0.5) * scale + offset in input samples (input
// sample i spans [i, i + 1)). A window that would cross an edge is shifted
// inside and its weights renormalised, much as edge extension would do.
static int axis_make(axis *a, int in, int out, scale_at at) {
	a->start = NULL;
	a->w = NULL;
	if (in < 1 || out < 1 || !(at.scale > 0))
		return -1;
	double scale = at.scale;
	int taps = resample_taps_at(in, scale);
	double fs = scale > 1 ? scale : 1;
	double support = 3 * fs;
	a->taps = taps;
	a->start = malloc(sizeof(int) * out);
	a->w = malloc(sizeof(int16_t) * (size_t) out * taps);
	double *f = malloc(sizeof(double) * taps);
	if (!a->start || !a->w || !f) {
		free(f);
		axis_free(a);
		return -1;
	}
	for (int o = 0; o < out; o++) {
		double centre = (o + 0.5) * scale + at.offset;
		int s = (int) ceil(centre - support - 0.5);
		if (s < 0)
			s = 0;
		if (s > in - taps)
			s = in - taps;
		double sum = 0;
		for (int k = 0; k < taps; k++) {
			f[k] = lanczos3((s + k + 0.5 - centre) / fs);
			sum += f[k];
		}
		int isum = 0, big = 0;
		int16_t *w = a->w + (size_t) o * taps;
		for (int k = 0; k < taps; k++) {
			w[k] = (int16_t) lround(f[k] / sum * (1 << WBITS));
			isum += w[k];
			if (f[k] > f[big])
				big = k;
		}
		w[big] += (1 << WBITS) - isum;
		a->start[o] = s;
	}
	free(f);
	return 0;
}

// filter_rows_c writes to dst the weighted sum of taps rows, samples from
// to n.
static void filter_rows_c(const uint8_t *const *rows, int taps, const int16_t *w, int32_t *acc, uint8_t *dst,
	size_t from, size_t n) {
	for (size_t i = from; i < n; i++)
		acc[i] = 1 << (WBITS - 1);
	for (int k = 0; k < taps; k++) {
		const int32_t wk = w[k];
		if (!wk)
			continue;
		const uint8_t *r = rows[k];
		for (size_t i = from; i < n; i++)
			acc[i] += wk * r[i];
	}
	for (size_t i = from; i < n; i++) {
		int32_t v = acc[i] >> WBITS;
		dst[i] = v < 0 ? 0 : v > 255 ? 255 : (uint8_t) v;
	}
}

#if defined(__x86_64__)
#include <immintrin.h>

// filter_rows_avx2 is filter_rows_c for CPUs with AVX2: sixteen samples at
// a time, two rows per multiply-add (vpmaddwd), the sums kept in registers
// over all the taps.
__attribute__((target("avx2")))
static void filter_rows_avx2(const uint8_t *const *rows, int taps, const int16_t *w, int32_t *acc, uint8_t *dst, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256i lo = _mm256_set1_epi32(1 << (WBITS - 1)), hi = lo;
		int k = 0;
		for (; k + 1 < taps; k += 2) {
			__m128i a = _mm_loadu_si128((const __m128i *) (rows[k] + i));
			__m128i b = _mm_loadu_si128((const __m128i *) (rows[k + 1] + i));
			__m256i pair = _mm256_set1_epi32((int32_t) ((uint32_t) (uint16_t) w[k + 1] << 16 | (uint16_t) w[k]));
			lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)), pair));
			hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)), pair));
		}
		if (k < taps) {
			__m128i a = _mm_loadu_si128((const __m128i *) (rows[k] + i));
			__m256i one = _mm256_set1_epi32((uint16_t) w[k]);
			__m128i z = _mm_setzero_si128();
			lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, z)), one));
			hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, z)), one));
		}
		__m256i p16 = _mm256_packs_epi32(_mm256_srai_epi32(lo, WBITS), _mm256_srai_epi32(hi, WBITS));
		p16 = _mm256_permute4x64_epi64(p16, 0xD8);
		__m128i p8 = _mm_packus_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
		_mm_storeu_si128((__m128i *) (dst + i), p8);
	}
	if (i < n)
		filter_rows_c(rows, taps, w, acc, dst, i, n);
}
#endif

// resample_portable, when set, makes filter_rows take the portable loop on
// any CPU: the tests hold the two to the same bytes.
int resample_portable;

// filter_rows writes to dst the weighted sum of taps rows of n samples.
static void filter_rows(const uint8_t *const *rows, int taps, const int16_t *w, int32_t *acc, uint8_t *dst, size_t n) {
#if defined(__x86_64__)
	if (!resample_portable && __builtin_cpu_supports("avx2")) {
		filter_rows_avx2(rows, taps, w, acc, dst, n);
		return;
	}
#endif
	filter_rows_c(rows, taps, w, acc, dst, 0, n);
}

// placement says where the resampled pixel (x, y) goes: at origin + x * x_step
// + y * y_step bytes of the output (the steps may be negative).
typedef struct {
	ptrdiff_t origin, x_step, y_step;
} placement;

// upright returns where to put the pixel (x, y) of a stored image of
// w x h pixels so that the result stands upright for its EXIF orientation
// (EXIF 2.3, tag 0x0112).
static placement upright(int orientation, int w, int h, int bands) {
	ptrdiff_t b = bands, W = w, H = h;
	switch (orientation) {
	case 2: // mirrored: (w-1-x, y)
		return (placement) { (W - 1) * b, -b, W * b };
	case 3: // turned 180: (w-1-x, h-1-y)
		return (placement) { ((H - 1) * W + W - 1) * b, -b, -W * b };
	case 4: // upside down: (x, h-1-y)
		return (placement) { (H - 1) * W * b, b, -W * b };
	case 5: // transposed: (y, x) in an h-wide image
		return (placement) { 0, H * b, b };
	case 6: // turned 90 clockwise: (h-1-y, x)
		return (placement) { (H - 1) * b, H * b, -b };
	case 7: // transversed: (h-1-y, w-1-x)
		return (placement) { ((W - 1) * H + H - 1) * b, -H * b, -b };
	case 8: // turned 90 anticlockwise: (y, w-1-x)
		return (placement) { (W - 1) * H * b, -H * b, b };
	default: // (x, y)
		return (placement) { 0, b, W * b };
	}
}

// transpose16 writes the transpose of a 16x16 block of bytes (rows ss
// bytes apart) to dst (rows ds bytes apart): four rounds of interleaving,
// after which result row i holds source column rev[i] (i's four bits
// reversed).
static void transpose16(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds) {
#if defined(__x86_64__)
	static const int rev[16] = { 0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15 };
	__m128i x[16], t[16];
	for (int i = 0; i < 16; i++)
		x[i] = _mm_loadu_si128((const __m128i *) (src + i * ss));
// One round: pairs of rows interleaved in units of bits.
#define INTERLEAVE(dst, src, bits) \
	for (int i = 0; i < 8; i++) { \
		dst[i] = _mm_unpacklo_epi##bits(src[2 * i], src[2 * i + 1]); \
		dst[i + 8] = _mm_unpackhi_epi##bits(src[2 * i], src[2 * i + 1]); \
	}
	INTERLEAVE(t, x, 8)
	INTERLEAVE(x, t, 16)
	INTERLEAVE(t, x, 32)
	INTERLEAVE(x, t, 64)
#undef INTERLEAVE
	for (int i = 0; i < 16; i++)
		_mm_storeu_si128((__m128i *) (dst + rev[i] * ds), x[i]);
#else
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			dst[j * ds + i] = src[i * ss + j];
#endif
}

// transpose_block writes the transpose of a block of rows x cols bytes
// (rows ss bytes apart) to dst (rows ds bytes apart), 16x16 at a time where
// it can.
static void transpose_block(const uint8_t *src, ptrdiff_t ss, uint8_t *dst, ptrdiff_t ds, int rows, int cols) {
	int i = 0;
	for (; i + 16 <= rows; i += 16) {
		int j = 0;
		for (; j + 16 <= cols; j += 16)
			transpose16(src + i * ss + j, ss, dst + j * ds + i, ds);
		for (; j < cols; j++)
			for (int k = i; k < i + 16; k++)
				dst[j * ds + k] = src[k * ss + j];
	}
	for (; i < rows; i++)
		for (int j = 0; j < cols; j++)
			dst[j * ds + i] = src[i * ss + j];
}

// memory_row is the row getter of an image in memory.
static const unsigned char *memory_row(void *ctx, int i) {
	memory_rows *m = ctx;
	return m->pixels + (size_t) i * m->stride;
}

// BLOCK is the number of samples in a column of output rows resampled
// together (32 RGB pixels, 96 grey ones): the vertical pass makes that many
// rows, which are transposed so that the horizontal pass filters their
// columns as rows too, in the cache.
#define BLOCK 96

// resample_rows scales an interleaved 8-bit image of w x h pixels of bands
// samples, read row by row through get (rows are asked for in increasing
// order, a window of resample_taps(h, oh) at a time), to ow x oh, and turns
// it upright for its EXIF orientation on the way (orientations 5 to 8 give
// an oh x ow result). It returns a malloc'd buffer, or NULL when get fails
// or memory runs out.
unsigned char *resample_rows(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation) {
	if (w < 1 || h < 1 || ow < 1 || oh < 1)
		return NULL;
	return resample_at(get, ctx, w, h, bands, ow, oh, orientation,
		(scale_at) { (double) w / ow, 0 }, (scale_at) { (double) h / oh, 0 });
}

// resample_at is resample_rows with the scale and offset of each axis
// given (x across the rows, y down them), for planes whose samples do not
// sit where a plain in/out scale would put them (subsampled chroma).
unsigned char *resample_at(row_getter get, void *ctx, int w, int h, int bands, int ow, int oh, int orientation,
	scale_at x, scale_at y) {
	axis av = { 0 }, ah = { 0 };
	int block = BLOCK / bands;
	size_t row = (size_t) w * bands, col = (size_t) block * bands;
	uint8_t *out = NULL, *rows = NULL, *cols = NULL, *line = NULL, *lines = NULL;
	int32_t *acc = NULL;
	const uint8_t **window = NULL;
	if (axis_make(&av, h, oh, y) || axis_make(&ah, w, ow, x))
		goto fail;
	out = malloc((size_t) ow * oh * bands);
	rows = malloc(row * block);
	cols = malloc(row * block);
	line = malloc(col);
	lines = malloc(col * 16);
	// The vertical pass filters rows of row samples, the horizontal one
	// columns of up to col: a strip narrower than block has row < col.
	acc = malloc(sizeof(int32_t) * (row > col ? row : col));
	window = malloc(sizeof(uint8_t *) * (av.taps > ah.taps ? av.taps : ah.taps));
	if (!out || !rows || !cols || !line || !lines || !acc || !window)
		goto fail;
	placement place = upright(orientation, ow, oh, bands);
	for (int y0 = 0; y0 < oh; y0 += block) {
		int ny = oh - y0 < block ? oh - y0 : block;
		// Vertical: ny rows of w pixels.
		for (int j = 0; j < ny; j++) {
			int y = y0 + j;
			for (int k = 0; k < av.taps; k++)
				if (!(window[k] = get(ctx, av.start[y] + k)))
					goto fail;
			filter_rows(window, av.taps, av.w + (size_t) y * av.taps, acc, rows + j * row, row);
		}
		// Transposed: w columns of ny pixels.
		if (bands == 1)
			transpose_block(rows, (ptrdiff_t) row, cols, (ptrdiff_t) col, ny, w);
		else
			for (int x = 0; x < w; x++) {
				uint8_t *c = cols + x * col;
				const uint8_t *r = rows + (size_t) x * bands;
				if (bands == 3)
					for (int j = 0; j < ny; j++) {
						c[3 * j] = r[j * row];
						c[3 * j + 1] = r[j * row + 1];
						c[3 * j + 2] = r[j * row + 2];
					}
				else
					for (int j = 0; j < ny; j++)
						for (int b = 0; b < bands; b++)
							c[j * bands + b] = r[j * row + b];
			}
		// Horizontal, as rows of the transposed block; each result is a
		// column of ny output pixels, placed where it belongs. Grey
		// columns whose pixels go along output rows (orientations 1 and 4)
		// are placed sixteen at a time, transposed back.
		int grouped = bands == 1 && place.x_step == 1;
		for (int x = 0; x < ow; x++) {
			for (int k = 0; k < ah.taps; k++)
				window[k] = cols + (size_t) (ah.start[x] + k) * col;
			uint8_t *o = out + place.origin + x * place.x_step + y0 * place.y_step;
			if (grouped && (x & ~15) + 16 <= ow) {
				uint8_t *l = lines + (size_t) (x & 15) * col;
				filter_rows(window, ah.taps, ah.w + (size_t) x * ah.taps, acc, l, (size_t) ny);
				if ((x & 15) < 15)
					continue;
				transpose_block(lines, (ptrdiff_t) col, o - 15, place.y_step, 16, ny);
				continue;
			}
			filter_rows(window, ah.taps, ah.w + (size_t) x * ah.taps, acc, line, (size_t) ny * bands);
			if (bands == 3)
				for (int j = 0; j < ny; j++, o += place.y_step) {
					o[0] = line[3 * j];
					o[1] = line[3 * j + 1];
					o[2] = line[3 * j + 2];
				}
			else if (bands == 1)
				for (int j = 0; j < ny; j++, o += place.y_step)
					o[0] = line[j];
			else
				for (int j = 0; j < ny; j++, o += place.y_step)
					for (int b = 0; b < bands; b++)
						o[b] = line[j * bands + b];
		}
	}
	free(window);
	free(acc);
	free(lines);
	free(line);
	free(cols);
	free(rows);
	axis_free(&av);
	axis_free(&ah);
	return out;
fail:
	free(window);
	free(acc);
	free(lines);
	free(line);
	free(cols);
	free(rows);
	free(out);
	axis_free(&av);
	axis_free(&ah);
	return NULL;
}

// resample_u8 is resample_rows of an image in memory.
unsigned char *resample_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh) {
	memory_rows m = { in, (size_t) w * bands };
	return resample_rows(memory_row, &m, w, h, bands, ow, oh, 1);
}

// resample_plane is resample_at of one 8-bit plane in memory, whose rows
// are stride bytes apart.
unsigned char *resample_plane(const unsigned char *in, size_t stride, int w, int h, int ow, int oh, int orientation,
	scale_at x, scale_at y) {
	memory_rows m = { in, stride };
	return resample_at(memory_row, &m, w, h, 1, ow, oh, orientation, x, y);
}

// premultiply writes n pixels of bands samples, the last alpha, with their
// colours multiplied by alpha (0 to 255 standing for 0 to 1), rounded.
void premultiply(const unsigned char *in, unsigned char *out, size_t n, int bands) {
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = in + i * bands;
		unsigned char *q = out + i * bands;
		unsigned a = p[bands - 1];
		for (int b = 0; b < bands - 1; b++)
			q[b] = (unsigned char) ((p[b] * a + 127) / 255);
		q[bands - 1] = (unsigned char) a;
	}
}

// unpremultiply divides the colours of n premultiplied pixels by their
// alpha, in place; fully transparent pixels get black.
void unpremultiply(unsigned char *px, size_t n, int bands) {
	for (size_t i = 0; i < n; i++) {
		unsigned char *q = px + i * bands;
		unsigned a = q[bands - 1];
		for (int b = 0; b < bands - 1; b++) {
			unsigned v = a ? (q[b] * 255u + a / 2) / a : 0;
			q[b] = (unsigned char) (v > 255 ? 255 : v);
		}
	}
}

// resample_alpha_u8 is resample_u8 of an 8-bit image whose last band is
// alpha (grey + alpha or RGBA): the colours are premultiplied by alpha
// around the resample, so that transparent pixels do not bleed their
// colour into the edges, in 8 bits as Pillow does (libvips does it in
// floating point: the colours of nearly transparent pixels, which nobody
// sees, come out coarser; tested against it).
unsigned char *resample_alpha_u8(const unsigned char *in, int w, int h, int bands, int ow, int oh) {
	if (bands < 2 || w < 1 || h < 1)
		return NULL;
	size_t n = (size_t) w * h;
	unsigned char *pre = malloc(n * bands);
	if (!pre)
		return NULL;
	premultiply(in, pre, n, bands);
	unsigned char *out = resample_u8(pre, w, h, bands, ow, oh);
	free(pre);
	if (out)
		unpremultiply(out, (size_t) ow * oh, bands);
	return out;
}
