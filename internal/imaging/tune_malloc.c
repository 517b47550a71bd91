// glibc's malloc, tuned for a worker.

#include <malloc.h>

#include "tune_malloc.h"

// tune_malloc sets glibc's malloc for a worker's pattern: a few large
// pixel buffers per image, many small ones in libvips.
//
// Two arenas, not one per thread: with one arena per libvips worker thread,
// freed image buffers stay spread over many arenas and a worker's RSS
// grows. This is MALLOC_ARENA_MAX=2, set from inside so that nobody has
// to remember it.
//
// Buffers of 1 MB and more straight from mmap, returned on free: glibc
// otherwise raises that threshold to the largest buffer freed so far, and
// the intermediates (a YCbCr luma plane of 2.8 MB, an RGB one of 8 MB)
// settle in the heap at whatever fragmentation the workers' order of frees
// leaves. The README (Performance: worker memory) has the measurements
// that chose 2 and 1 MB.
void tune_malloc(void) {
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

