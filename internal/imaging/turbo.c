// libjpeg-turbo, called directly: the JPEG decoder of the pipeline (to
// RGB; ycc.c has the planes path) and the JPEG encoder of its variants.

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <lcms2.h>
#include <vips/vips.h>

#include "icc.h"
#include "picture.h"
#include "resample.h"
#include "turbo.h"

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

// turbo_load makes the intermediate of a JPEG with libjpeg-turbo
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
VipsImage *turbo_load(void *buf, size_t len, int width, int height, int orientation, guard *g) {
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
			colour = icc_srgb_transform(icc, icc_len, bands);
			free(icc);
			if (!colour)
				longjmp(err.jb, 1); // a profile lcms2 cannot use: libvips decides
			if (bands == 3 && icc_moves_nothing(colour)) {
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
		unsigned char *srgb = icc_to_srgb(colour, px, pw, ph, bands);
		free(px);
		px = srgb;
		bands = 3;
	}
	if (colour)
		cmsDeleteTransform(colour);
	if (!px)
		return NULL;
	if (!(im = picture_wrap(px, pw, ph, bands, bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB)))
		return NULL;

	if (orientation > 1 && !rotated) {
		// Decoded at the size wanted, so not through the resampler.
		VipsImage *turned = NULL;
		vips_image_set_int(im, VIPS_META_ORIENTATION, orientation);
		int r = vips_autorot(im, &turned, NULL);
		g_object_unref(im);
		im = r ? NULL : picture_to_memory(turned);
	}
	return im;
}

// turbo_encode encodes 8-bit sRGB or grey pixels in memory as a JPEG
// with libjpeg-turbo directly, as vips_jpegsave would (optimised Huffman
// tables, 4:2:0 chroma below quality 90, no metadata) at three quarters of
// its CPU: it skips libvips' write-behind thread and its per-line copies.
int turbo_encode(VipsImage *in, int quality, void **out, size_t *out_len) {
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

