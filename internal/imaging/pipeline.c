// The variant pipeline in C: one decode into an upright, sRGB intermediate
// held in memory, then each variant resized from the smallest image already
// made that is at least as large, and encoded. See imaging.go for why.

#include <malloc.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <lcms2.h>
#include <vips/vips.h>

#include "pipeline.h"
#include "turbo.h"

// tune_malloc sets glibc's malloc for a worker's pattern: a few large
// pixel buffers per image, many small ones in libvips.
//
// Two arenas, not one per thread: with one arena per libvips worker thread,
// freed image buffers stayed spread over many arenas and the RSS of a
// worker grew 19% over 500 24 MP images (316 to 377 MB). This is
// MALLOC_ARENA_MAX=2, set from inside so that nobody has to remember it.
//
// Buffers of 1 MB and more straight from mmap, returned on free: glibc
// otherwise raises that threshold to the largest buffer freed so far, and
// the intermediates then settle in the heap at whatever fragmentation the
// two workers' order of frees leaves. With RGB intermediates (8 MB for
// 2048x1365) the RSS stepped from 79 to 97 MB over 500 images in one run
// without a fixed threshold, and stayed at 79-81 MB with it at 4 MB. The
// YCbCr planes are smaller (2.8 MB of luma, 0.7 MB per chroma plane for
// 2048x1365): at 4 MB they stayed in the heap and the RSS grew 77 to 92 MB
// (+19%); at 1 MB, 77 to 80 (+3%), at the same images per second (make
// bench).
void tune_malloc(void) {
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

static void turbo_error_exit(j_common_ptr c) {
	longjmp(((turbo_err *) c->err)->jb, 1);
}

static void turbo_emit_message(j_common_ptr c, int level) {
	turbo_err *err = (turbo_err *) c->err;
	if (level >= 0)
		return;
	switch (c->err->msg_code) {
	case JWRN_ADOBE_XFORM:
	case JWRN_BOGUS_ICC:
	case JWRN_EXTRANEOUS_DATA:
	case JWRN_JFIF_MAJOR:
		return; // about metadata, or bytes between segments: the pixels are whole
	}
	err->warnings++;
	if (err->g)
		err->g->verdict = VERDICT_CORRUPT;
}

// turbo_err_init sets err up and returns what goes in a codec's err.
struct jpeg_error_mgr *turbo_err_init(turbo_err *err, guard *g) {
	struct jpeg_error_mgr *pub = jpeg_std_error(&err->pub);
	pub->error_exit = turbo_error_exit;
	pub->emit_message = turbo_emit_message;
	err->warnings = 0;
	err->g = g;
	return pub;
}

void guard_cancel(guard *g) {
	__atomic_store_n(&g->cancel, 1, __ATOMIC_RELAXED);
}

int guard_cancelled(guard *g) {
	if (!g || !__atomic_load_n(&g->cancel, __ATOMIC_RELAXED))
		return 0;
	g->verdict = VERDICT_CANCELLED;
	return 1;
}

// turbo_progress runs between iMCU rows of a decode (and, for a
// progressive source, while jpeg_start_decompress reads its scans): it
// stops the decode when the guard is cancelled or the source has more
// scans than allowed, as djpeg -maxscans does. Thousands of empty scans
// are valid JPEG and each costs a pass over every block.
static void turbo_progress(j_common_ptr c) {
	turbo_err *err = (turbo_err *) c->err;
	if (guard_cancelled(err->g))
		longjmp(err->jb, 1);
	if (c->is_decompressor && err->g->max_scans > 0 &&
		((j_decompress_ptr) c)->input_scan_number > err->g->max_scans) {
		err->g->verdict = VERDICT_TOO_COMPLEX;
		longjmp(err->jb, 1);
	}
}

void turbo_watch(struct jpeg_decompress_struct *c, turbo_err *err) {
	if (!err->g)
		return;
	memset(&err->progress, 0, sizeof err->progress);
	err->progress.progress_monitor = turbo_progress;
	c->progress = &err->progress;
}

void turbo_scale(struct jpeg_decompress_struct *c, int width, int height, int orientation, int *sw, int *sh) {
	int turned = orientation >= 5 && orientation <= 8;
	unsigned w = turned ? height : width, h = turned ? width : height;
	if (sw)
		*sw = (int) w, *sh = (int) h;
	c->scale_num = 1;
	c->scale_denom = 1;
	for (int d = 8; d >= 2; d /= 2)
		if ((c->image_width + d - 1) / d >= w && (c->image_height + d - 1) / d >= h) {
			c->scale_denom = d;
			return;
		}
}

static void free_pixels(VipsImage *image, gpointer pixels) {
	free(pixels);
}

// resize_lazy scales in to exactly width x height (the caller computed the
// size, so the aspect ratio is already decided) with libvips' default
// kernel (lanczos3). Alpha is premultiplied around the resample so that
// transparent pixels do not bleed their colour into the edges.
static VipsImage *resize_lazy(VipsImage *in, int width, int height) {
	VipsImage *t[7] = { NULL };
	VipsImage *out = NULL;
	VipsImage *x = in;
	if (in->Xsize == width && in->Ysize == height) {
		g_object_ref(in);
		return in;
	}
	int alpha = vips_image_hasalpha(in);
	if (alpha) {
		if (vips_premultiply(x, &t[0], NULL))
			goto done;
		x = t[0];
	}
	if (vips_resize(x, &t[1], (double) width / in->Xsize, "vscale", (double) height / in->Ysize, NULL))
		goto done;
	x = t[1];
	// vips_resize rounds its output size; settle a one-pixel difference.
	if (x->Xsize > width || x->Ysize > height) {
		if (vips_crop(x, &t[2], 0, 0, VIPS_MIN(x->Xsize, width), VIPS_MIN(x->Ysize, height), NULL))
			goto done;
		x = t[2];
	}
	if (x->Xsize < width || x->Ysize < height) {
		if (vips_embed(x, &t[3], 0, 0, width, height, "extend", VIPS_EXTEND_COPY, NULL))
			goto done;
		x = t[3];
	}
	if (alpha) {
		// vips_cast truncates: round first, or every sample comes out half
		// a level low on average.
		if (vips_unpremultiply(x, &t[4], NULL) || vips_rint(t[4], &t[6], NULL) ||
			vips_cast(t[6], &t[5], in->BandFmt, NULL))
			goto done;
		x = t[5];
	}
	g_object_ref(x);
	out = x;
done:
	for (int i = 0; i < 7; i++)
		if (t[i])
			g_object_unref(t[i]);
	return out;
}

// to_memory renders a lazy pipeline into memory and drops the pipeline.
static VipsImage *to_memory(VipsImage *in) {
	if (!in)
		return NULL;
	VipsImage *out = vips_image_copy_memory(in);
	g_object_unref(in);
	return out;
}

// wrap_pixels makes a libvips image of malloc'd 8-bit pixels in the given
// interpretation (libvips would guess grey + alpha as multiband, which
// has no alpha), which frees them when the image closes.
static VipsImage *wrap_pixels(unsigned char *pixels, int width, int height, int bands, VipsInterpretation type) {
	VipsImage *im = vips_image_new_from_memory(pixels, (size_t) width * height * bands, width, height, bands, VIPS_FORMAT_UCHAR);
	if (!im) {
		free(pixels);
		return NULL;
	}
	im->Type = type;
	g_signal_connect(im, "postclose", G_CALLBACK(free_pixels), pixels);
	return im;
}

// to_grey_alpha renders in (sRGB with alpha) as grey + alpha in memory: a
// test source.
VipsImage *to_grey_alpha(VipsImage *in) {
	VipsImage *g = NULL;
	if (vips_colourspace(in, &g, VIPS_INTERPRETATION_B_W, NULL))
		return NULL;
	return to_memory(g);
}

// resize_libvips is resize_exact through vips_resize (premultiplied when
// there is alpha), rendered in memory: the path of everything resample_u8
// does not take, and the reference it is tested against.
VipsImage *resize_libvips(VipsImage *in, int width, int height) {
	return to_memory(resize_lazy(in, width, height));
}

// resize_exact returns in scaled to width x height, rendered in memory so
// that it can be encoded and resized again without recomputing it. 8-bit
// images already in memory (every variant) go through resample.c: without
// alpha as they are, grey + alpha and RGBA premultiplied; the rest through
// vips_resize.
VipsImage *resize_exact(VipsImage *in, int width, int height) {
	if (in->BandFmt == VIPS_FORMAT_UCHAR && in->data && (in->Xsize != width || in->Ysize != height)) {
		int alpha = vips_image_hasalpha(in);
		if (alpha && in->Bands != 2 && in->Bands != 4)
			return resize_libvips(in, width, height);
		unsigned char *px = alpha ? resample_alpha_u8(in->data, in->Xsize, in->Ysize, in->Bands, width, height)
					  : resample_u8(in->data, in->Xsize, in->Ysize, in->Bands, width, height);
		if (!px) {
			vips_error("imaging", "out of memory resizing to %dx%d", width, height);
			return NULL;
		}
		return wrap_pixels(px, width, height, in->Bands, in->Type);
	}
	return resize_libvips(in, width, height);
}

// srgb_transform makes the lcms2 transform of 8-bit RGB (bands 3) or grey
// (bands 1) pixels in an embedded ICC profile to 8-bit sRGB, relative
// colorimetric as vips_icc_transform does; NULL when the profile is
// unusable or does not fit the pixels. libvips' own transform goes through
// floating-point Lab and cost 0.08 CPU-s on a 2048x1536 intermediate; an
// 8-bit lcms2 transform costs a fraction of that (see the README).
static cmsHTRANSFORM srgb_transform(const void *icc, size_t icc_len, int bands) {
	cmsHPROFILE in = cmsOpenProfileFromMem(icc, (cmsUInt32Number) icc_len);
	if (!in)
		return NULL;
	cmsColorSpaceSignature space = cmsGetColorSpace(in);
	if (!(space == cmsSigRgbData && bands == 3) && !(space == cmsSigGrayData && bands == 1)) {
		cmsCloseProfile(in);
		return NULL;
	}
	cmsHPROFILE srgb = cmsCreate_sRGBProfile();
	cmsHTRANSFORM t = srgb ? cmsCreateTransform(in, bands == 3 ? TYPE_RGB_8 : TYPE_GRAY_8, srgb, TYPE_RGB_8,
		INTENT_RELATIVE_COLORIMETRIC, 0) : NULL;
	cmsCloseProfile(in);
	if (srgb)
		cmsCloseProfile(srgb);
	return t;
}

// moves_nothing says whether an RGB to sRGB transform is the identity in
// effect: it moves no colour of a 16^3 grid by more than 2/255. Cameras and
// editors embed sRGB profiles that differ in their bytes; converting
// through one costs a transform for nothing, and keeps the source out of
// the YCbCr path.
static int moves_nothing(cmsHTRANSFORM t) {
	unsigned char grid[16 * 16 * 16 * 3], out[sizeof grid];
	int n = 0;
	for (int r = 0; r < 16; r++)
		for (int g = 0; g < 16; g++)
			for (int b = 0; b < 16; b++) {
				grid[n++] = (unsigned char) (r * 17);
				grid[n++] = (unsigned char) (g * 17);
				grid[n++] = (unsigned char) (b * 17);
			}
	cmsDoTransform(t, grid, out, 16 * 16 * 16);
	for (int i = 0; i < n; i++)
		if (abs((int) grid[i] - (int) out[i]) > 2)
			return 0;
	return 1;
}

// icc_is_srgb says whether an RGB ICC profile is sRGB in effect (see
// moves_nothing).
int icc_is_srgb(const void *icc, size_t icc_len) {
	cmsHTRANSFORM t = srgb_transform(icc, icc_len, 3);
	if (!t)
		return 0;
	int r = moves_nothing(t);
	cmsDeleteTransform(t);
	return r;
}

// to_srgb returns w x h pixels of bands samples converted by t into a
// malloc'd 3-band buffer, or NULL when memory runs out.
static unsigned char *to_srgb(cmsHTRANSFORM t, const unsigned char *px, int w, int h, int bands) {
	unsigned char *out = malloc((size_t) w * h * 3);
	if (out)
		for (int y = 0; y < h; y++)
			cmsDoTransform(t, px + (size_t) y * w * bands, out + (size_t) y * w * 3, (cmsUInt32Number) w);
	return out;
}

// jpeg_rows hands the rows of a JPEG to resample_rows as they are decoded,
// into a ring of slots rows.
typedef struct {
	struct jpeg_decompress_struct *c;
	turbo_err *err;
	unsigned char *ring;
	int slots;
	size_t stride;
	int next; // the row the decoder gives next
} jpeg_rows;

// jpeg_row decodes up to row i and returns it, or NULL when libjpeg fails
// (its error returns here; the decompressor is then only fit to destroy).
//
// libjpeg's errors longjmp to err->jb, which the caller set; jpeg_row sets
// it to its own frame while it reads and puts the caller's back before it
// returns, so that no jump ever lands in a frame that has returned. A
// warning (corrupt data) stops the decode at once: the caller declines the
// source, and a small file claiming many rows costs no more than its data.
static const unsigned char *jpeg_row(void *ctx, int i) {
	jpeg_rows *j = ctx;
	jmp_buf outer;
	const unsigned char *row = NULL;
	memcpy(outer, j->err->jb, sizeof outer);
	if (setjmp(j->err->jb))
		goto done;
	while (j->next <= i) {
		JSAMPROW r = j->ring + (size_t) (j->next % j->slots) * j->stride;
		if (jpeg_read_scanlines(j->c, &r, 1) != 1 || j->err->warnings)
			goto done;
		j->next++;
	}
	row = j->ring + (size_t) (i % j->slots) * j->stride;
done:
	memcpy(j->err->jb, outer, sizeof outer);
	return row;
}

// finish ends a decompression, returning -1 instead of jumping on an
// error (and leaving err->jb as it found it).
static int finish(struct jpeg_decompress_struct *c, turbo_err *err) {
	jmp_buf outer;
	int r = -1;
	memcpy(outer, err->jb, sizeof outer);
	if (setjmp(err->jb))
		goto done;
	jpeg_finish_decompress(c);
	r = 0;
done:
	memcpy(err->jb, outer, sizeof outer);
	return r;
}

// load_jpeg_turbo makes the intermediate of a JPEG with libjpeg-turbo
// directly: width x height is the upright size wanted. It decodes at the
// smallest DCT scale (1/8, 1/4, 1/2 or 1) that still covers that size, from
// the whole buffer at once, then resizes, turns the result upright from its
// EXIF orientation and converts it to sRGB through an embedded ICC profile.
//
// libvips' own JPEG loader does the same work at about 1.9 times the CPU
// (make bench, F against Ft: it reads through a small buffer, which keeps
// libjpeg-turbo off its fast Huffman path, and hands rows between
// threads), and
// vips_thumbnail keeps a factor of two for its resample, so it decodes a
// 24 MP source at full size for a 2048 box where 1/2 suffices.
//
// It returns NULL without a libvips error for what it does not handle
// (other colour spaces such as CMYK, anything libjpeg warns about or fails
// on): the caller then takes the libvips path, whose checks decide.
VipsImage *load_jpeg_turbo(void *buf, size_t len, int width, int height, int orientation, guard *g) {
	struct jpeg_decompress_struct c;
	turbo_err err;
	unsigned char *volatile pixels = NULL;
	cmsHTRANSFORM volatile colour = NULL; // from an embedded profile other than sRGB
	VipsImage *im = NULL;

	if (width < 1 || height < 1)
		return NULL;
	if (orientation < 1 || orientation > 8)
		orientation = 1; // no EXIF orientation (0), or a meaningless one
	memset(&c, 0, sizeof c);
	c.err = turbo_err_init(&err, g);
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&c);
		free(pixels);
		if (colour)
			cmsDeleteTransform(colour);
		return NULL;
	}
	jpeg_create_decompress(&c);
	turbo_watch(&c, &err);
	jpeg_mem_src(&c, buf, len);
	jpeg_save_markers(&c, JPEG_APP0 + 2, 0xFFFF);
	jpeg_read_header(&c, TRUE);
	int bands;
	if (c.num_components == 3 && (c.jpeg_color_space == JCS_YCbCr || c.jpeg_color_space == JCS_RGB)) {
		c.out_color_space = JCS_RGB;
		bands = 3;
	} else if (c.num_components == 1 && c.jpeg_color_space == JCS_GRAYSCALE) {
		c.out_color_space = JCS_GRAYSCALE;
		bands = 1;
	} else {
		longjmp(err.jb, 1);
	}
	if (c.data_precision != 8 || err.warnings)
		longjmp(err.jb, 1);
	{
		JOCTET *icc = NULL;
		unsigned int icc_len = 0;
		if (jpeg_read_icc_profile(&c, &icc, &icc_len)) {
			colour = srgb_transform(icc, icc_len, bands);
			free(icc);
			if (!colour)
				longjmp(err.jb, 1); // a profile lcms2 cannot use: libvips decides
			if (bands == 3 && moves_nothing(colour)) {
				cmsDeleteTransform(colour); // sRGB: nothing to convert
				colour = NULL;
			}
		}
	}

	int sw, sh; // the stored (not yet upright) size wanted
	turbo_scale(&c, width, height, orientation, &sw, &sh);
	jpeg_start_decompress(&c);
	int ow = c.output_width, oh = c.output_height;
	size_t stride = (size_t) ow * bands;
	unsigned char *px;
	int rotated = 0;
	if (ow == sw && oh == sh) {
		// Decoded at the size wanted: straight into the image.
		pixels = malloc(stride * oh);
		if (!pixels)
			longjmp(err.jb, 1);
		while (c.output_scanline < c.output_height) {
			JSAMPROW rows[16];
			int n = 0;
			for (; n < 16 && c.output_scanline + n < c.output_height; n++)
				rows[n] = pixels + (size_t) (c.output_scanline + n) * stride;
			jpeg_read_scanlines(&c, rows, n);
			if (err.warnings)
				longjmp(err.jb, 1);
		}
		jpeg_finish_decompress(&c);
		px = pixels;
		pixels = NULL;
	} else {
		// Resampled as it is decoded, through a ring of the rows one
		// output row reads: the full-size decode is never held whole.
		int slots = resample_taps(oh, sh);
		jpeg_rows jr = { &c, &err, NULL, slots, stride, 0 };
		if (slots < 1 || !(jr.ring = pixels = malloc(stride * slots)))
			longjmp(err.jb, 1);
		px = resample_rows(jpeg_row, &jr, ow, oh, bands, sw, sh, orientation);
		rotated = 1;
		// Decode what the last windows did not reach, for its warnings.
		if (px && !jpeg_row(&jr, oh - 1)) {
			free(px);
			px = NULL;
		}
		if (!px || finish(&c, &err)) {
			free(px);
			longjmp(err.jb, 1);
		}
		free(pixels);
		pixels = NULL;
	}
	jpeg_destroy_decompress(&c);
	if (err.warnings) {
		free(px);
		px = NULL;
	}

	int pw = rotated ? width : sw, ph = rotated ? height : sh;
	if (px && colour) {
		unsigned char *srgb = to_srgb(colour, px, pw, ph, bands);
		free(px);
		px = srgb;
		bands = 3;
	}
	if (colour)
		cmsDeleteTransform(colour);
	if (!px)
		return NULL;
	if (!(im = wrap_pixels(px, pw, ph, bands, bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB)))
		return NULL;

	if (orientation > 1 && !rotated) {
		// Decoded at the size wanted, so not through the resampler.
		VipsImage *turned = NULL;
		vips_image_set_int(im, VIPS_META_ORIENTATION, orientation);
		int r = vips_autorot(im, &turned, NULL);
		g_object_unref(im);
		im = r ? NULL : to_memory(turned);
	}
	return im;
}

// to_8bit turns 16-bit and other deep images into 8-bit sRGB or grey, the
// only depth every output format takes.
static VipsImage *to_8bit(VipsImage *in) {
	VipsImage *out = NULL;
	if (in->BandFmt == VIPS_FORMAT_UCHAR) {
		g_object_ref(in);
		return in;
	}
	VipsInterpretation target = in->Bands <= 2 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
	if (vips_colourspace(in, &out, target, NULL))
		return NULL;
	if (out->BandFmt != VIPS_FORMAT_UCHAR) {
		VipsImage *c = NULL;
		int r = vips_cast(out, &c, VIPS_FORMAT_UCHAR, NULL);
		g_object_unref(out);
		if (r)
			return NULL;
		out = c;
	}
	return out;
}

// kill_on_cancel is the "eval" handler of an image being rendered: libvips
// calls it between tiles, and a killed image stops the render (every region
// of it checks the kill flag before it computes).
static void kill_on_cancel(VipsImage *image, VipsProgress *progress, guard *g) {
	if (guard_cancelled(g))
		vips_image_set_kill(image, TRUE);
}

// render renders a lazy pipeline into memory, as to_memory does, stopping
// when g is cancelled.
static VipsImage *render(VipsImage *in, guard *g) {
	if (in && g) {
		vips_image_set_progress(in, TRUE);
		g_signal_connect(in, "eval", G_CALLBACK(kill_on_cancel), g);
	}
	return to_memory(in);
}

// load_thumbnail makes the intermediate of any accepted format with one
// vips_thumbnail_buffer call: the source scaled to fit inside width x height
// (never enlarged) with shrink-on-load, turned upright after the shrink,
// first page or frame only. With colour_manage, an embedded ICC profile (or,
// for CMYK, a built-in one) converts it to sRGB through lcms; that costs
// about a third of the step, so it is asked for only when the source has a
// profile or is CMYK.
//
// options go to the loader, as "fail_on=error": vips_thumbnail_buffer
// does not pass its own fail_on to the loader in libvips 8.14 (the file
// variant does), so a truncated PNG came out with a grey band.
VipsImage *load_thumbnail(void *buf, size_t len, int width, int height, int colour_manage, const char *options,
	guard *g) {
	VipsImage *thumb = NULL;
	int r;
	if (colour_manage)
		r = vips_thumbnail_buffer(buf, len, &thumb, width, "height", height, "size", VIPS_SIZE_DOWN,
			"export_profile", "srgb", "option_string", options, NULL);
	else
		r = vips_thumbnail_buffer(buf, len, &thumb, width, "height", height, "size", VIPS_SIZE_DOWN,
			"option_string", options, NULL);
	if (r)
		return NULL;
	VipsImage *x = to_8bit(thumb);
	g_object_unref(thumb);
	return render(x, g);
}

// vips_rows hands the rows of a libvips image to resample_rows: read in
// strips through a region (the loader decodes as the strips are asked
// for) and copied into a ring of slots rows, premultiplied when the image
// has alpha.
typedef struct {
	VipsRegion *reg;
	unsigned char *ring;
	int slots, strip, next, alpha;
	size_t stride;
	guard *g;
} vips_rows;

static const unsigned char *vips_row(void *ctx, int i) {
	vips_rows *v = ctx;
	VipsImage *im = v->reg->im;
	while (v->next <= i) {
		int n = VIPS_MIN(v->strip, im->Ysize - v->next);
		VipsRect r = { 0, v->next, im->Xsize, n };
		if (n < 1 || guard_cancelled(v->g) || vips_region_prepare(v->reg, &r))
			return NULL;
		for (int k = 0; k < n; k++) {
			const unsigned char *src = (const unsigned char *) VIPS_REGION_ADDR(v->reg, 0, v->next + k);
			unsigned char *dst = v->ring + (size_t) ((v->next + k) % v->slots) * v->stride;
			if (v->alpha)
				premultiply(src, dst, (size_t) im->Xsize, im->Bands);
			else
				memcpy(dst, src, v->stride);
		}
		v->next += n;
	}
	return v->ring + (size_t) (i % v->slots) * v->stride;
}

// load_streamed makes the intermediate of a source without shrink-on-load,
// orientation or colour profile (a PNG) by decoding it once, row by row,
// into resample.c: width x height is the size wanted. vips_thumbnail did
// the same in floating point (premultiplied when there is alpha), at about
// twice the CPU for a 12 MP RGBA PNG; the full decode is never held whole
// here either. NULL with a libvips error when the source does not decode.
VipsImage *load_streamed(void *buf, size_t len, int width, int height, guard *g) {
	VipsImage *in = vips_image_new_from_buffer(buf, len, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
		VIPS_FAIL_ON_ERROR, NULL);
	if (!in)
		return NULL;
	VipsImage *x = to_8bit(in);
	g_object_unref(in);
	if (!x)
		return NULL;
	if (x->Bands > 4 || width < 1 || height < 1) {
		vips_error("imaging", "%d bands to %dx%d: not streamed", x->Bands, width, height);
		g_object_unref(x);
		return NULL;
	}
	if (x->Xsize == width && x->Ysize == height)
		return render(x, g);
	vips_rows v = { vips_region_new(x), NULL, 0, 16, 0, vips_image_hasalpha(x), (size_t) x->Xsize * x->Bands, g };
	v.slots = resample_taps(x->Ysize, height) + v.strip;
	unsigned char *px = NULL;
	if (v.reg && v.slots > v.strip && (v.ring = malloc(v.stride * v.slots)))
		px = resample_rows(vips_row, &v, x->Xsize, x->Ysize, x->Bands, width, height, 1);
	free(v.ring);
	if (v.reg)
		g_object_unref(v.reg);
	int bands = x->Bands, alpha = v.alpha;
	VipsInterpretation type = x->Type;
	g_object_unref(x);
	if (!px) {
		vips_error("imaging", "could not decode and resize to %dx%d", width, height);
		return NULL;
	}
	if (alpha)
		unpremultiply(px, (size_t) width * height, bands);
	return wrap_pixels(px, width, height, bands, type);
}

// encode_jpeg_turbo encodes 8-bit sRGB or grey pixels in memory as a JPEG
// with libjpeg-turbo directly, as vips_jpegsave would (optimised Huffman
// tables, 4:2:0 chroma below quality 90, no metadata) at three quarters of
// its CPU: it skips libvips' write-behind thread and its per-line copies.
static int encode_jpeg_turbo(VipsImage *in, int quality, void **out, size_t *out_len) {
	struct jpeg_compress_struct c;
	turbo_err err;
	unsigned char *buf = NULL;
	unsigned long len = 0;
	memset(&c, 0, sizeof c);
	c.err = turbo_err_init(&err, NULL);
	if (setjmp(err.jb)) {
		// Not free(buf): once the output outgrew it, libjpeg freed it and
		// keeps its replacement to itself until the encode ends. Only
		// running out of memory gets here; that buffer is lost with it.
		jpeg_destroy_compress(&c);
		vips_error("imaging", "libjpeg-turbo could not encode %dx%d", in->Xsize, in->Ysize);
		return -1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, (unsigned char **) &buf, &len);
	c.image_width = in->Xsize;
	c.image_height = in->Ysize;
	c.input_components = in->Bands;
	c.in_color_space = in->Bands == 1 ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	c.optimize_coding = TRUE;
	if (quality >= 90)
		for (int i = 0; i < c.num_components; i++)
			c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	jpeg_start_compress(&c, TRUE);
	size_t stride = (size_t) in->Xsize * in->Bands;
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = in->data + c.next_scanline * stride;
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*out = buf;
	*out_len = len;
	return 0;
}

// encode_variant encodes in without metadata. A JPEG of a source with alpha
// is flattened on white (not black).
int encode_variant(VipsImage *in, int format, int quality, int png_compression, void **out, size_t *out_len) {
	VipsImage *flat = NULL;
	int r;
	if (format == OUT_JPEG && in->BandFmt == VIPS_FORMAT_UCHAR && in->data && (in->Bands == 1 || in->Bands == 3) &&
		!vips_image_hasalpha(in))
		return encode_jpeg_turbo(in, quality, out, out_len);
	if (format == OUT_JPEG && vips_image_hasalpha(in)) {
		VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
		r = vips_flatten(in, &flat, "background", white, NULL);
		vips_area_unref(VIPS_AREA(white));
		if (r)
			return -1;
		in = flat;
	}
	switch (format) {
	case OUT_PNG:
		r = vips_pngsave_buffer(in, out, out_len, "strip", TRUE, "compression", png_compression,
			"filter", VIPS_FOREIGN_PNG_FILTER_ALL, NULL);
		break;
	case OUT_WEBP:
		r = vips_webpsave_buffer(in, out, out_len, "strip", TRUE, "Q", quality, NULL);
		break;
	case OUT_AVIF:
		r = vips_heifsave_buffer(in, out, out_len, "strip", TRUE, "Q", quality,
			"compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, NULL);
		break;
	default:
		r = vips_jpegsave_buffer(in, out, out_len, "strip", TRUE, "Q", quality, "optimize_coding", TRUE, NULL);
	}
	if (flat)
		g_object_unref(flat);
	return r;
}

// decode_full decodes every pixel of the source once through libvips' own
// loader and does nearly nothing else with them.
int decode_full(void *buf, size_t len) {
	VipsImage *im = vips_image_new_from_buffer(buf, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (!im)
		return -1;
	double avg;
	int r = vips_avg(im, &avg, NULL);
	g_object_unref(im);
	return r;
}

// decode_full_turbo decodes every pixel of a JPEG at full size with
// libjpeg-turbo from memory, sixteen rows at a time into one reused strip:
// the cheapest full decode there is.
int decode_full_turbo(void *buf, size_t len) {
	struct jpeg_decompress_struct c;
	turbo_err err;
	unsigned char *volatile strip = NULL;
	memset(&c, 0, sizeof c);
	c.err = turbo_err_init(&err, NULL);
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&c);
		free(strip);
		return -1;
	}
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, buf, len);
	jpeg_read_header(&c, TRUE);
	jpeg_start_decompress(&c);
	size_t stride = (size_t) c.output_width * c.output_components;
	strip = malloc(stride * 16);
	if (!strip)
		longjmp(err.jb, 1);
	while (c.output_scanline < c.output_height) {
		JSAMPROW rows[16];
		for (int i = 0; i < 16; i++)
			rows[i] = strip + i * stride;
		jpeg_read_scanlines(&c, rows, 16);
	}
	jpeg_finish_decompress(&c);
	jpeg_destroy_decompress(&c);
	free(strip);
	return 0;
}
