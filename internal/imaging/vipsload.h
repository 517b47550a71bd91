#ifndef IMAGESVC_VIPSLOAD_H
#define IMAGESVC_VIPSLOAD_H

#include <stddef.h>

#include <vips/vips.h>

#include "guard.h"

VipsImage *vipsload_thumbnail(void *buf, size_t len, int width, int height, int colour_manage, const char *options,
	guard *g);
VipsImage *vipsload_streamed(void *buf, size_t len, int width, int height, guard *g);

#endif
