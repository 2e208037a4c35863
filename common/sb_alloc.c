/* sb_alloc.c: thin wrappers over libc with a countdown for fault injection. */
#include "sb_alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1;
static long injected;

static int should_fail(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0) {
        injected++;
        return 1; /* stays at 0: every later allocation fails too */
    }
    fail_countdown--;
    return 0;
}

void sb_alloc_fail_after(long n)
{
    fail_countdown = n;
    injected = 0;
}

long sb_alloc_injected(void) { return injected; }

void *sb_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *sb_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *sb_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void sb_free(void *p) { free(p); }

char *sb_strndup(const char *s, size_t n)
{
    char *d = sb_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sb_strdup(const char *s) { return sb_strndup(s, strlen(s)); }

void *sb_malloc_align(size_t align, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : align) != 0)
        return NULL;
    return p;
}

void *sb_malloc_aligned(size_t n) { return sb_malloc_align(64, n); }

void sb_free_aligned(void *p) { free(p); }
