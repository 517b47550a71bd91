#ifndef IMAGESVC_TUNE_MALLOC_H
#define IMAGESVC_TUNE_MALLOC_H

// tune_malloc sets glibc's malloc for a worker; call it before libvips
// starts its threads.
void tune_malloc(void);

#endif
