#ifndef IMAGESVC_ICC_H
#define IMAGESVC_ICC_H

#include <stddef.h>

#include <lcms2.h>

cmsHTRANSFORM icc_srgb_transform(const void *icc, size_t icc_len, int bands);
int icc_moves_nothing(cmsHTRANSFORM t);
int icc_is_srgb(const void *icc, size_t icc_len);
unsigned char *icc_to_srgb(cmsHTRANSFORM t, const unsigned char *px, int w, int h, int bands);

#endif
