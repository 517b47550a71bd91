// Full decodes for the benchmark's floor (make bench): not used by the
// pipeline.

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <vips/vips.h>

#include "bench.h"
#include "turbo.h"

// bench_decode_full decodes every pixel of the source once through libvips' own
// loader and does nearly nothing else with them.
int bench_decode_full(void *buf, size_t len) {
	VipsImage *im = vips_image_new_from_buffer(buf, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (!im)
		return -1;
	double avg;
	int r = vips_avg(im, &avg, NULL);
	g_object_unref(im);
	return r;
}

// bench_decode_full_turbo decodes every pixel of a JPEG at full size with
// libjpeg-turbo from memory, sixteen rows at a time into one reused strip:
// the cheapest full decode there is.
int bench_decode_full_turbo(void *buf, size_t len) {
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
