// The JPEG-to-JPEG path: a YCbCr JPEG in sRGB (no ICC profile, or one that
// is sRGB in effect) is decoded to its planes (libjpeg's raw data: luma,
// and chroma at its stored resolution), each plane is resampled on its
// own, and the variants are encoded from planes again. Nothing is
// converted to RGB and back: the decoder skips chroma upsampling and
// colour conversion, the encoder skips colour conversion and chroma
// downsampling, and the resampler filters the chroma planes at a quarter
// of the luma's size, so it does half the work of filtering RGB.
// Resampling commutes with the (affine) YCbCr to RGB conversion, so the
// result is the RGB path's up to rounding (the tests hold them to each
// other).
//
// Chroma samples are centred between luma samples (JFIF): chroma sample j
// of a plane subsampled f times spans luma [f*j, f*j + f). Each plane's
// windows are placed from that geometry, not from its own in/out size,
// so chroma stays on its luma when a size is odd or the image is flipped.

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "icc.h"
#include "picture.h"
#include "resample.h"
#include "turbo.h"
#include "ycc.h"

// The scaled DCT sizes of a component (libjpeg 7 and later name them per
// direction; libjpeg-turbo keeps them equal).
#if JPEG_LIB_VERSION >= 70
#define SCALED_H(comp) ((comp)->DCT_h_scaled_size)
#define SCALED_V(comp) ((comp)->DCT_v_scaled_size)
#define MIN_SCALED_V(c) ((c)->min_DCT_v_scaled_size)
#else
#define SCALED_H(comp) ((comp)->DCT_scaled_size)
#define SCALED_V(comp) ((comp)->DCT_scaled_size)
#define MIN_SCALED_V(c) ((c)->min_DCT_scaled_size)
#endif

struct ycc {
	int w, h; // luma size
	int sub;  // chroma subsampling, both directions: 1 or 2
	unsigned char *p[3];
	int pw[3], ph[3];
};

int ycc_width(const ycc *in) { return in->w; }
int ycc_height(const ycc *in) { return in->h; }

void ycc_free(ycc *in) {
	if (!in)
		return;
	for (int i = 0; i < 3; i++)
		free(in->p[i]);
	free(in);
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

// ycc_new allocates the planes of a width x height picture.
static ycc *ycc_new(int width, int height, int sub) {
	ycc *y = calloc(1, sizeof *y);
	if (!y)
		return NULL;
	y->w = width;
	y->h = height;
	y->sub = sub;
	for (int i = 0; i < 3; i++) {
		int s = i ? sub : 1;
		y->pw[i] = ceil_div(width, s);
		y->ph[i] = ceil_div(height, s);
	}
	return y;
}

// plane_axis places the samples of one axis of an output plane subsampled
// g times, of an output luma length out, read from an input plane
// subsampled f times of an image with scale input luma samples per output
// luma sample. flipped says that the orientation mirrors this axis: the
// output's chroma cells then start at the far end of the upright image, a
// cell's width before this end when out is not a multiple of g.
static scale_at plane_axis(double scale, double f, int g, int out, int flipped) {
	int r = flipped ? (g - out % g) % g : 0;
	return (scale_at) { g * scale / f, -r * scale / f };
}

// plane_geometry gives the stored (not yet upright) size of plane i of out
// and where its samples sit on an input plane subsampled fx x fy times, of
// an image of iw x ih stored luma samples turned upright by orientation.
static void plane_geometry(const ycc *out, int i, int iw, int ih, double fx, double fy, int orientation, int *ow,
	int *oh, scale_at *ax, scale_at *ay) {
	int turned = orientation >= 5 && orientation <= 8;
	int sw = turned ? out->h : out->w, sh = turned ? out->w : out->h; // stored output luma size
	int flip_x = orientation == 2 || orientation == 3 || orientation == 7 || orientation == 8;
	int flip_y = orientation == 3 || orientation == 4 || orientation == 6 || orientation == 7;
	int g = i ? out->sub : 1;
	*ow = ceil_div(sw, g);
	*oh = ceil_div(sh, g);
	*ax = plane_axis((double) iw / sw, fx, g, sw, flip_x);
	*ay = plane_axis((double) ih / sh, fy, g, sh, flip_y);
}

// resample_plane_into makes plane i of out from an input plane in memory
// (see plane_geometry).
static int resample_plane_into(ycc *out, int i, const unsigned char *in, size_t stride, int pw, int ph, int iw,
	int ih, double fx, double fy, int orientation) {
	int ow, oh;
	scale_at ax, ay;
	plane_geometry(out, i, iw, ih, fx, fy, orientation, &ow, &oh, &ax, &ay);
	out->p[i] = resample_plane(in, stride, pw, ph, ow, oh, orientation, ax, ay);
	return out->p[i] ? 0 : -1;
}

// raw_rows decodes a JPEG's planes an iMCU row at a time as the luma's
// resampler asks for rows: luma into a ring of slots rows, chroma whole.
typedef struct {
	struct jpeg_decompress_struct *c;
	turbo_err *err;
	unsigned char *planes[3];
	size_t strides[3];
	int rows_per_imcu[3];
	int slots;
	unsigned int imcu; // the next iMCU row to decode
} raw_rows;

// decode_imcu decodes the next iMCU row. libjpeg's errors return here (see
// jpeg_row in turbo.c for why err->jb is saved and restored).
static int decode_imcu(raw_rows *d) {
	jmp_buf outer;
	int r = -1;
	memcpy(outer, d->err->jb, sizeof outer);
	if (setjmp(d->err->jb))
		goto done;
	if (d->c->output_scanline >= d->c->output_height)
		goto done; // nothing left: a row past the end was asked for
	JSAMPROW rows[3][32];
	JSAMPARRAY arr[3];
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < d->rows_per_imcu[i]; k++) {
			size_t y = (size_t) d->imcu * d->rows_per_imcu[i] + k;
			if (i == 0)
				y %= d->slots;
			rows[i][k] = d->planes[i] + y * d->strides[i];
		}
		arr[i] = rows[i];
	}
	if (jpeg_read_raw_data(d->c, arr, (JDIMENSION) (d->c->max_v_samp_factor * MIN_SCALED_V(d->c))) == 0 ||
		d->err->warnings)
		goto done;
	d->imcu++;
	r = 0;
done:
	memcpy(d->err->jb, outer, sizeof outer);
	return r;
}

static const unsigned char *luma_row(void *ctx, int i) {
	raw_rows *d = ctx;
	while ((long) d->imcu * d->rows_per_imcu[0] <= i)
		if (decode_imcu(d))
			return NULL;
	return d->planes[0] + (size_t) (i % d->slots) * d->strides[0];
}

// ycc_load decodes a JPEG to planes at the smallest DCT scale that covers
// width x height (the upright size wanted), and resamples them to that
// size, upright, with chroma subsampled sub times (2: 4:2:0, 1: 4:4:4).
//
// It returns NULL for what it does not take: anything but 8-bit YCbCr with
// full-resolution luma and chroma at full or half resolution, a source
// with an ICC profile other than sRGB (its colours need converting, in
// RGB), and anything libjpeg warns about or fails on. The caller then
// takes the RGB path, which decides what is undecodable.
//
// The luma streams through a ring of the rows one output row reads; the
// chroma planes are held whole (6 MB for a 12 MP 4:2:0 source decoded at
// full scale, up to 24 MB for 4:4:4; a source is decoded at full scale
// only when it is less than twice the largest variant).
ycc *ycc_load(void *buf, size_t len, int width, int height, int orientation, int sub, guard *g) {
	struct jpeg_decompress_struct c;
	turbo_err err;
	unsigned char *volatile planes[3] = { NULL, NULL, NULL };
	ycc *volatile out = NULL;

	if (width < 1 || height < 1 || (sub != 1 && sub != 2))
		return NULL;
	if (orientation < 1 || orientation > 8)
		orientation = 1;
	memset(&c, 0, sizeof c);
	c.err = turbo_err_init(&err, g);
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&c);
		for (int i = 0; i < 3; i++)
			free(planes[i]);
		ycc_free(out);
		return NULL;
	}
	jpeg_create_decompress(&c);
	turbo_watch(&c, &err);
	jpeg_mem_src(&c, buf, len);
	jpeg_save_markers(&c, JPEG_APP0 + 2, 0xFFFF);
	jpeg_read_header(&c, TRUE);
	if (c.num_components != 3 || c.jpeg_color_space != JCS_YCbCr || c.data_precision != 8 || err.warnings)
		longjmp(err.jb, 1);
	{
		JOCTET *icc = NULL;
		unsigned int icc_len = 0;
		if (jpeg_read_icc_profile(&c, &icc, &icc_len)) {
			int srgb = icc_is_srgb(icc, icc_len);
			free(icc);
			if (!srgb)
				longjmp(err.jb, 1);
		}
	}
	int mh = c.max_h_samp_factor, mv = c.max_v_samp_factor;
	if (mh > 2 || mv > 2 || c.comp_info[0].h_samp_factor != mh || c.comp_info[0].v_samp_factor != mv)
		longjmp(err.jb, 1);
	for (int i = 1; i < 3; i++)
		if (c.comp_info[i].h_samp_factor != 1 || c.comp_info[i].v_samp_factor != 1)
			longjmp(err.jb, 1);

	turbo_scale(&c, width, height, orientation, NULL, NULL);
	c.raw_data_out = TRUE;
	jpeg_start_decompress(&c);

	// jpeg_read_raw_data fills whole blocks: planes as wide as their blocks,
	// chroma as tall as its iMCU rows. The luma streams through a ring of
	// the rows one output row reads, plus the iMCU row being decoded.
	raw_rows d = { &c, &err, { NULL }, { 0 }, { 0 }, 0, 0 };
	int pw[3], ph[3];
	double fx[3], fy[3];
	for (int i = 0; i < 3; i++) {
		jpeg_component_info *ci = &c.comp_info[i];
		d.rows_per_imcu[i] = ci->v_samp_factor * SCALED_V(ci);
		// decode_imcu hands libjpeg at most 32 rows per plane: sampling
		// factors are at most 2 (checked above) and scaled DCT blocks at
		// most 16 rows.
		if (d.rows_per_imcu[i] > 32)
			longjmp(err.jb, 1);
		d.strides[i] = (size_t) ci->width_in_blocks * SCALED_H(ci);
		pw[i] = ci->downsampled_width;
		ph[i] = ci->downsampled_height;
		// Output luma samples per sample of this plane. libjpeg decodes
		// subsampled chroma at a larger DCT scale than luma when it can
		// (at 1/2 scale, 4:2:0 chroma comes out at luma's resolution), so
		// this follows the scaled sizes, not the sampling factors alone.
		jpeg_component_info *luma = &c.comp_info[0];
		fx[i] = (double) (mh * SCALED_H(luma)) / (ci->h_samp_factor * SCALED_H(ci));
		fy[i] = (double) (mv * SCALED_V(luma)) / (ci->v_samp_factor * SCALED_V(ci));
	}
	if (!(out = ycc_new(width, height, sub)))
		longjmp(err.jb, 1);
	int ow, oh;
	scale_at ax, ay;
	plane_geometry(out, 0, (int) c.output_width, (int) c.output_height, 1, 1, orientation, &ow, &oh, &ax, &ay);
	d.slots = resample_taps_at(ph[0], ay.scale) + d.rows_per_imcu[0];
	for (int i = 0; i < 3; i++) {
		size_t rows = i ? (size_t) c.total_iMCU_rows * d.rows_per_imcu[i] : (size_t) d.slots;
		if (!(planes[i] = d.planes[i] = malloc(d.strides[i] * rows)))
			longjmp(err.jb, 1);
	}
	out->p[0] = resample_at(luma_row, &d, pw[0], ph[0], 1, ow, oh, orientation, ax, ay);
	if (!out->p[0])
		longjmp(err.jb, 1);
	// The chroma rows below the luma's last window, and the warnings of
	// what is left.
	while (c.output_scanline < c.output_height)
		if (decode_imcu(&d))
			longjmp(err.jb, 1);
	jpeg_finish_decompress(&c);
	if (err.warnings)
		longjmp(err.jb, 1);
	for (int i = 1; i < 3; i++)
		if (resample_plane_into(out, i, planes[i], d.strides[i], pw[i], ph[i], (int) c.output_width,
				(int) c.output_height, fx[i], fy[i], orientation))
			longjmp(err.jb, 1);
	jpeg_destroy_decompress(&c);
	for (int i = 0; i < 3; i++)
		free(planes[i]);
	return out;
}

// ycc_resize returns in scaled to width x height, with the same chroma
// subsampling.
ycc *ycc_resize(const ycc *in, int width, int height) {
	ycc *out = ycc_new(width, height, in->sub);
	if (!out)
		return NULL;
	size_t strides[3];
	double f[3];
	for (int i = 0; i < 3; i++) {
		strides[i] = (size_t) in->pw[i];
		f[i] = i ? in->sub : 1;
	}
	for (int i = 0; i < 3; i++)
		if (resample_plane_into(out, i, in->p[i], strides[i], in->pw[i], in->ph[i], in->w, in->h, f[i], f[i], 1)) {
			ycc_free(out);
			return NULL;
		}
	return out;
}

// ycc_encode encodes in as a baseline JPEG with optimised Huffman tables
// and no metadata, as encode_jpeg_turbo does, from its planes. libjpeg's
// raw input takes whole blocks: the edge samples are repeated to fill
// them, as libjpeg itself pads.
int ycc_encode(const ycc *in, int quality, void **out, size_t *out_len) {
	struct jpeg_compress_struct c;
	turbo_err err;
	unsigned char *buf = NULL;
	unsigned long len = 0;
	unsigned char *volatile strip = NULL;
	memset(&c, 0, sizeof c);
	c.err = turbo_err_init(&err, NULL);
	if (setjmp(err.jb)) {
		// Not free(buf): see encode_jpeg_turbo.
		jpeg_destroy_compress(&c);
		free(strip);
		return -1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &len);
	c.image_width = in->w;
	c.image_height = in->h;
	c.input_components = 3;
	c.in_color_space = JCS_YCbCr;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	c.optimize_coding = TRUE;
	c.raw_data_in = TRUE;
	c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = in->sub;
	for (int i = 1; i < 3; i++)
		c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	jpeg_start_compress(&c, TRUE);

	size_t widths[3], offsets[3], total = 0;
	int rows_per_imcu[3];
	for (int i = 0; i < 3; i++) {
		widths[i] = (size_t) c.comp_info[i].width_in_blocks * DCTSIZE;
		rows_per_imcu[i] = c.comp_info[i].v_samp_factor * DCTSIZE;
		offsets[i] = total;
		total += widths[i] * rows_per_imcu[i];
	}
	if (!(strip = malloc(total)))
		longjmp(err.jb, 1);
	// rows holds an iMCU row: sub (1 or 2, checked by ycc_load) blocks of
	// DCTSIZE rows per plane.
	_Static_assert(2 * DCTSIZE <= 16, "an iMCU row of planes fits rows");
	for (int y0 = 0; c.next_scanline < c.image_height; y0++) {
		JSAMPROW rows[3][16];
		JSAMPARRAY arr[3];
		for (int i = 0; i < 3; i++) {
			int pw = in->pw[i], ph = in->ph[i];
			for (int r = 0; r < rows_per_imcu[i]; r++) {
				int y = y0 * rows_per_imcu[i] + r;
				unsigned char *dst = strip + offsets[i] + (size_t) r * widths[i];
				const unsigned char *src = in->p[i] + (size_t) (y < ph ? y : ph - 1) * pw;
				memcpy(dst, src, pw);
				memset(dst + pw, src[pw - 1], widths[i] - pw);
				rows[i][r] = dst;
			}
			arr[i] = rows[i];
		}
		jpeg_write_raw_data(&c, arr, (JDIMENSION) (in->sub * DCTSIZE));
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(strip);
	*out = buf;
	*out_len = len;
	return 0;
}

const unsigned char *ycc_plane(const ycc *in, int i, int *width, int *height) {
	*width = in->pw[i];
	*height = in->ph[i];
	return in->p[i];
}

int ycc_subsampling(const ycc *in) { return in->sub; }

// chroma_at upsamples a chroma plane subsampled twice to luma position
// (x, y) with libjpeg's "fancy" triangle filter: chroma sample j is centred
// between luma samples 2j and 2j+1, so luma 2j takes 3/4 of sample j and
// 1/4 of sample j-1, luma 2j+1 3/4 of j and 1/4 of j+1 (edges repeat), in
// each direction; the result is in sixteenths.
static int chroma_at(const unsigned char *p, int pw, int ph, int x, int y) {
	int j = x >> 1, k = y >> 1;
	int jn = x & 1 ? (j + 1 < pw ? j + 1 : j) : (j > 0 ? j - 1 : 0);
	int kn = y & 1 ? (k + 1 < ph ? k + 1 : k) : (k > 0 ? k - 1 : 0);
	const unsigned char *r = p + (size_t) k * pw, *rn = p + (size_t) kn * pw;
	return 3 * (3 * r[j] + r[jn]) + (3 * rn[j] + rn[jn]);
}

static unsigned char clamp_u8(int v) { return v < 0 ? 0 : v > 255 ? 255 : (unsigned char) v; }

// ycc_to_rgb converts a picture to 8-bit sRGB in memory (the JFIF
// conversion, chroma upsampled by chroma_at): for the encoders that take
// RGB (AVIF) and the placeholder.
VipsImage *ycc_to_rgb(const ycc *in) {
	size_t n = (size_t) in->w * in->h;
	unsigned char *px = malloc(n * 3);
	if (!px) {
		vips_error("imaging", "out of memory converting %dx%d to RGB", in->w, in->h);
		return NULL;
	}
	// Fixed point, 16 fractional bits, of the JFIF coefficients.
	const int cr_r = 91881, cb_g = -22554, cr_g = -46802, cb_b = 116130, half = 1 << 15;
	for (int y = 0; y < in->h; y++) {
		const unsigned char *yr = in->p[0] + (size_t) y * in->pw[0];
		unsigned char *o = px + (size_t) y * in->w * 3;
		for (int x = 0; x < in->w; x++) {
			int cb, cr; // centred on 0, times 16
			if (in->sub == 2) {
				cb = chroma_at(in->p[1], in->pw[1], in->ph[1], x, y) - 128 * 16;
				cr = chroma_at(in->p[2], in->pw[2], in->ph[2], x, y) - 128 * 16;
			} else {
				cb = (in->p[1][(size_t) y * in->pw[1] + x] - 128) * 16;
				cr = (in->p[2][(size_t) y * in->pw[2] + x] - 128) * 16;
			}
			int l = yr[x] << 16;
			o[3 * x] = clamp_u8((l + cr_r * cr / 16 + half) >> 16);
			o[3 * x + 1] = clamp_u8((l + (cb_g * cb + cr_g * cr) / 16 + half) >> 16);
			o[3 * x + 2] = clamp_u8((l + cb_b * cb / 16 + half) >> 16);
		}
	}
	return picture_wrap(px, in->w, in->h, 3, VIPS_INTERPRETATION_sRGB);
}
