// WebP variants, encoded by libwebp directly: its method 0 (libvips'
// webpsave does not expose the settings below effort) and, for a JPEG's
// planes, YCbCr handed over as it is.

#include <stdlib.h>
#include <string.h>

#include <webp/encode.h>

#include "webp.h"

// WebP stores YCbCr in the video range of BT.601 (luma 16-235, chroma
// 16-240), JPEG in the full range: video_range fills the tables that map a
// full-range sample.
static void video_range(unsigned char luma[256], unsigned char chroma[256]) {
	for (int v = 0; v < 256; v++) {
		int c = (v - 128) * 224;
		luma[v] = (unsigned char) (16 + (v * 219 + 127) / 255);
		chroma[v] = (unsigned char) (128 + (c >= 0 ? c + 127 : c - 127) / 255);
	}
}

// encode runs the encoder on a filled picture and hands back a malloc'd
// copy of the bitstream.
static int encode(WebPPicture *pic, int quality, int method, void **out, size_t *out_len) {
	WebPConfig config;
	WebPMemoryWriter w;
	if (!WebPConfigInit(&config)) {
		vips_error("imaging", "libwebp version mismatch");
		return -1;
	}
	config.quality = (float) quality;
	config.method = method;
	if (!WebPValidateConfig(&config)) {
		vips_error("imaging", "invalid WebP settings (quality %d, method %d)", quality, method);
		return -1;
	}
	WebPMemoryWriterInit(&w);
	pic->writer = WebPMemoryWrite;
	pic->custom_ptr = &w;
	if (!WebPEncode(&config, pic)) {
		vips_error("imaging", "libwebp could not encode the variant (error %d)", pic->error_code);
		WebPMemoryWriterClear(&w);
		return -1;
	}
	*out = malloc(w.size ? w.size : 1);
	if (!*out) {
		WebPMemoryWriterClear(&w);
		vips_error("imaging", "out of memory for a %zu-byte variant", w.size);
		return -1;
	}
	memcpy(*out, w.mem, w.size);
	*out_len = w.size;
	WebPMemoryWriterClear(&w);
	return 0;
}

int webp_encode_ycc(const ycc *in, int quality, int method, void **out, size_t *out_len) {
	WebPPicture pic;
	int pw, ph;
	if (!WebPPictureInit(&pic))
		return -1;
	pic.use_argb = 0;
	pic.colorspace = WEBP_YUV420;
	pic.width = ycc_width(in);
	pic.height = ycc_height(in);
	if (!WebPPictureAlloc(&pic)) {
		vips_error("imaging", "out of memory for a %dx%d WebP", pic.width, pic.height);
		return -1;
	}
	unsigned char luma[256], chroma[256];
	video_range(luma, chroma);
	const unsigned char *y = ycc_plane(in, 0, &pw, &ph);
	for (int r = 0; r < pic.height; r++) {
		const unsigned char *src = y + (size_t) r * pw;
		uint8_t *dst = pic.y + (size_t) r * pic.y_stride;
		for (int x = 0; x < pic.width; x++)
			dst[x] = luma[src[x]];
	}
	int sub = ycc_subsampling(in), uw = (pic.width + 1) / 2, uh = (pic.height + 1) / 2;
	for (int i = 1; i < 3; i++) {
		const unsigned char *c = ycc_plane(in, i, &pw, &ph);
		uint8_t *dst = i == 1 ? pic.u : pic.v;
		for (int r = 0; r < uh; r++)
			for (int x = 0; x < uw; x++) {
				int v;
				if (sub == 2) {
					v = c[(size_t) r * pw + x];
				} else {
					// 4:4:4 planes: average each 2x2 block (one column or
					// row at an odd edge).
					int x1 = 2 * x + 1 < pw ? 2 * x + 1 : 2 * x, r1 = 2 * r + 1 < ph ? 2 * r + 1 : 2 * r;
					v = (c[(size_t) 2 * r * pw + 2 * x] + c[(size_t) 2 * r * pw + x1] + c[(size_t) r1 * pw + 2 * x] +
						c[(size_t) r1 * pw + x1] + 2) / 4;
				}
				dst[(size_t) r * pic.uv_stride + x] = chroma[v];
			}
	}
	int r = encode(&pic, quality, method, out, out_len);
	WebPPictureFree(&pic);
	return r;
}

int webp_encode_picture(VipsImage *in, int quality, int method, void **out, size_t *out_len) {
	WebPPicture pic;
	unsigned char *rgba = NULL;
	int ok;
	if (in->BandFmt != VIPS_FORMAT_UCHAR || !in->data || in->Bands < 1 || in->Bands > 4) {
		vips_error("imaging", "WebP: want 8-bit pixels in memory, have %d bands of format %d", in->Bands, in->BandFmt);
		return -1;
	}
	if (!WebPPictureInit(&pic))
		return -1;
	pic.width = in->Xsize;
	pic.height = in->Ysize;
	size_t n = (size_t) in->Xsize * in->Ysize;
	switch (in->Bands) {
	case 3:
		ok = WebPPictureImportRGB(&pic, in->data, in->Xsize * 3);
		break;
	case 4:
		ok = WebPPictureImportRGBA(&pic, in->data, in->Xsize * 4);
		break;
	default:
		// Grey, with or without alpha: as RGBA.
		if (!(rgba = malloc(n * 4))) {
			vips_error("imaging", "out of memory for a %dx%d WebP", in->Xsize, in->Ysize);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char g = in->data[i * in->Bands];
			rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = g;
			rgba[4 * i + 3] = in->Bands == 2 ? in->data[i * 2 + 1] : 255;
		}
		ok = WebPPictureImportRGBA(&pic, rgba, in->Xsize * 4);
		free(rgba);
	}
	if (!ok) {
		vips_error("imaging", "out of memory for a %dx%d WebP", in->Xsize, in->Ysize);
		WebPPictureFree(&pic);
		return -1;
	}
	int r = encode(&pic, quality, method, out, out_len);
	WebPPictureFree(&pic);
	return r;
}
