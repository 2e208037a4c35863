/* sb_alloc.h: the library's allocator, with fault injection for tests.
 * Every allocation in library code goes through these, so a test can make
 * the Nth one fail and check that the error path frees all and leaves no file. */
#ifndef SB_ALLOC_H
#define SB_ALLOC_H

#include <stddef.h>

void *sb_malloc(size_t n);            /* NULL on failure (or injected failure) */
void *sb_calloc(size_t n, size_t size);
void *sb_realloc(void *p, size_t n);
void sb_free(void *p);                /* free(NULL) is fine */
char *sb_strdup(const char *s);
char *sb_strndup(const char *s, size_t n);
/* 64-byte aligned allocation (for SIMD kernels); free with sb_free_aligned. */
void *sb_malloc_aligned(size_t n);
/* align-byte aligned (a power of two >= sizeof(void *)); free with sb_free_aligned. */
void *sb_malloc_align(size_t align, size_t n);
void sb_free_aligned(void *p);

/*! sb_alloc_fail_after() : make the allocation after the next n succeed fail
 *  (n = 0: the very next one fails); -1 turns injection off. Test-only; not
 *  thread-safe. */
void sb_alloc_fail_after(long n);
/*! sb_alloc_injected() : how many failures were injected since the last reset. */
long sb_alloc_injected(void);

#endif
