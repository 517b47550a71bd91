// Images in memory as libvips holds them: wrapping pixels, rendering lazy
// pipelines (stopped when a guard is cancelled), resizing and encoding.

#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "guard.h"
#include "picture.h"
#include "resample.h"
#include "turbo.h"
#include "webp.h"

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

// picture_to_memory renders a lazy pipeline into memory and drops the pipeline.
VipsImage *picture_to_memory(VipsImage *in) {
	if (!in)
		return NULL;
	VipsImage *out = vips_image_copy_memory(in);
	g_object_unref(in);
	return out;
}

// picture_wrap makes a libvips image of malloc'd 8-bit pixels in the given
// interpretation (libvips would guess grey + alpha as multiband, which
// has no alpha), which frees them when the image closes.
VipsImage *picture_wrap(unsigned char *pixels, int width, int height, int bands, VipsInterpretation type) {
	VipsImage *im = vips_image_new_from_memory(pixels, (size_t) width * height * bands, width, height, bands, VIPS_FORMAT_UCHAR);
	if (!im) {
		free(pixels);
		return NULL;
	}
	im->Type = type;
	g_signal_connect(im, "postclose", G_CALLBACK(free_pixels), pixels);
	return im;
}

// picture_to_grey_alpha renders in (sRGB with alpha) as grey + alpha in memory: a
// test source.
VipsImage *picture_to_grey_alpha(VipsImage *in) {
	VipsImage *g = NULL;
	if (vips_colourspace(in, &g, VIPS_INTERPRETATION_B_W, NULL))
		return NULL;
	return picture_to_memory(g);
}

// picture_resize_libvips is picture_resize through vips_resize (premultiplied when
// there is alpha), rendered in memory: the path of everything resample_u8
// does not take, and the reference it is tested against.
VipsImage *picture_resize_libvips(VipsImage *in, int width, int height) {
	return picture_to_memory(resize_lazy(in, width, height));
}

// picture_resize returns in scaled to width x height, rendered in memory so
// that it can be encoded and resized again without recomputing it. 8-bit
// images already in memory (every variant) go through resample.c: without
// alpha as they are, grey + alpha and RGBA premultiplied; the rest through
// vips_resize.
VipsImage *picture_resize(VipsImage *in, int width, int height) {
	if (in->BandFmt == VIPS_FORMAT_UCHAR && in->data && (in->Xsize != width || in->Ysize != height)) {
		int alpha = vips_image_hasalpha(in);
		if (alpha && in->Bands != 2 && in->Bands != 4)
			return picture_resize_libvips(in, width, height);
		unsigned char *px = alpha ? resample_alpha_u8(in->data, in->Xsize, in->Ysize, in->Bands, width, height)
					  : resample_u8(in->data, in->Xsize, in->Ysize, in->Bands, width, height);
		if (!px) {
			vips_error("imaging", "out of memory resizing to %dx%d", width, height);
			return NULL;
		}
		return picture_wrap(px, width, height, in->Bands, in->Type);
	}
	return picture_resize_libvips(in, width, height);
}

// kill_on_cancel is the "eval" handler of an image being rendered: libvips
// calls it between tiles, and a killed image stops the render (every region
// of it checks the kill flag before it computes).
static void kill_on_cancel(VipsImage *image, VipsProgress *progress, guard *g) {
	if (guard_cancelled(g))
		vips_image_set_kill(image, TRUE);
}

// render renders a lazy pipeline into memory, as picture_to_memory does, stopping
// when g is cancelled.
VipsImage *picture_render(VipsImage *in, guard *g) {
	if (in && g) {
		vips_image_set_progress(in, TRUE);
		g_signal_connect(in, "eval", G_CALLBACK(kill_on_cancel), g);
	}
	return picture_to_memory(in);
}

// picture_encode encodes in without metadata into a malloc'd buffer, with
// effort the encoder's trade of CPU for bytes (WebP: libwebp's method,
// 0-6; AVIF: libvips' effort, 0-9). A JPEG of a source with alpha is
// flattened on white (not black).
int picture_encode(VipsImage *in, int format, int quality, int png_compression, int effort, void **out, size_t *out_len) {
	VipsImage *flat = NULL;
	void *buf = NULL;
	size_t len = 0;
	int r;
	if (format == OUT_JPEG && in->BandFmt == VIPS_FORMAT_UCHAR && in->data && (in->Bands == 1 || in->Bands == 3) &&
		!vips_image_hasalpha(in))
		return turbo_encode(in, quality, out, out_len); // malloc'd by libjpeg
	if (format == OUT_WEBP && in->BandFmt == VIPS_FORMAT_UCHAR && in->data)
		return webp_encode_picture(in, quality, effort, out, out_len);
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
		r = vips_pngsave_buffer(in, &buf, &len, "strip", TRUE, "compression", png_compression,
			"filter", VIPS_FOREIGN_PNG_FILTER_ALL, NULL);
		break;
	case OUT_WEBP:
		r = vips_webpsave_buffer(in, &buf, &len, "strip", TRUE, "Q", quality, "effort", effort, NULL);
		break;
	case OUT_AVIF:
		// 8 bits: libvips 8.14 writes 12 unless told.
		r = vips_heifsave_buffer(in, &buf, &len, "strip", TRUE, "Q", quality,
			"compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "effort", effort, "bitdepth", 8, NULL);
		break;
	default:
		r = vips_jpegsave_buffer(in, &buf, &len, "strip", TRUE, "Q", quality, "optimize_coding", TRUE, NULL);
	}
	if (flat)
		g_object_unref(flat);
	if (r)
		return -1;
	// libvips' buffer is GLib's: hand back one from malloc, as every
	// buffer this package returns is.
	*out = malloc(len ? len : 1);
	if (*out)
		memcpy(*out, buf, len);
	g_free(buf);
	if (!*out) {
		vips_error("imaging", "out of memory for a %zu-byte variant", len);
		return -1;
	}
	*out_len = len;
	return 0;
}
