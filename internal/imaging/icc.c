// lcms2: embedded ICC profiles to sRGB, and telling sRGB profiles apart.

#include <stdlib.h>

#include <lcms2.h>

#include "icc.h"

// icc_srgb_transform makes the lcms2 transform of 8-bit RGB (bands 3) or grey
// (bands 1) pixels in an embedded ICC profile to 8-bit sRGB, relative
// colorimetric as vips_icc_transform does; NULL when the profile is
// unusable or does not fit the pixels. libvips' own transform goes through
// floating-point Lab; an 8-bit lcms2 transform costs about half as much
// (the README, Performance, has the measurement).
cmsHTRANSFORM icc_srgb_transform(const void *icc, size_t icc_len, int bands) {
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

// icc_moves_nothing says whether an RGB to sRGB transform is the identity in
// effect: it moves no colour of a 16^3 grid by more than 2/255. Cameras and
// editors embed sRGB profiles that differ in their bytes; converting
// through one costs a transform for nothing, and keeps the source out of
// the YCbCr path.
int icc_moves_nothing(cmsHTRANSFORM t) {
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
// icc_moves_nothing).
int icc_is_srgb(const void *icc, size_t icc_len) {
	cmsHTRANSFORM t = icc_srgb_transform(icc, icc_len, 3);
	if (!t)
		return 0;
	int r = icc_moves_nothing(t);
	cmsDeleteTransform(t);
	return r;
}

// icc_to_srgb returns w x h pixels of bands samples converted by t into a
// malloc'd 3-band buffer, or NULL when memory runs out.
unsigned char *icc_to_srgb(cmsHTRANSFORM t, const unsigned char *px, int w, int h, int bands) {
	unsigned char *out = malloc((size_t) w * h * 3);
	if (out)
		for (int y = 0; y < h; y++)
			cmsDoTransform(t, px + (size_t) y * w * bands, out + (size_t) y * w * 3, (cmsUInt32Number) w);
	return out;
}

