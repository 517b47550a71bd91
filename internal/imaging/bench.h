#ifndef IMAGESVC_BENCH_H
#define IMAGESVC_BENCH_H

#include <stddef.h>

int bench_decode_full(void *buf, size_t len);
int bench_decode_full_turbo(void *buf, size_t len);

#endif
