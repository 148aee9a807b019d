#ifndef ROOTCAUSES_CMALLOC_H
#define ROOTCAUSES_CMALLOC_H
// glibc's malloc_trim, which Swift's Glibc module does not export: servers hand freed heap
// back to the system after a burst of large buffers.
#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>
static inline int rootcauses_malloc_trim(void) { return malloc_trim(0); }
#else
static inline int rootcauses_malloc_trim(void) { return 0; }
#endif
#endif
