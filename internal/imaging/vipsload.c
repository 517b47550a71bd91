// libvips' loaders: everything the libjpeg-turbo paths do not take, and
// PNGs decoded row by row into the resampler.

#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "guard.h"
#include "picture.h"
#include "resample.h"
#include "vipsload.h"

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

// vipsload_thumbnail makes the intermediate of any accepted format with one
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
VipsImage *vipsload_thumbnail(void *buf, size_t len, int width, int height, int colour_manage, const char *options,
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
	return picture_render(x, g);
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

// vipsload_streamed makes the intermediate of a source without shrink-on-load,
// orientation or colour profile (a PNG) by decoding it once, row by row,
// into resample.c: width x height is the size wanted. vips_thumbnail did
// the same in floating point (premultiplied when there is alpha), at about
// twice the CPU for a 12 MP RGBA PNG; the full decode is never held whole
// here either. NULL with a libvips error when the source does not decode.
VipsImage *vipsload_streamed(void *buf, size_t len, int width, int height, guard *g) {
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
		return picture_render(x, g);
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
	return picture_wrap(px, width, height, bands, type);
}

