/* sb_progress.h: the progress hook library code calls during long work; the
 * CLI decides whether and how to draw it. done/total are in the caller's
 * units (bytes, tokens, rows); total may be 0 when unknown. */
#ifndef SB_PROGRESS_H
#define SB_PROGRESS_H

#include <stdint.h>

typedef void (*sb_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct sb_progress {
    sb_progress_fn fn;   /* NULL: no reporting */
    void *ctx;
};

static inline void sb_progress_report(const struct sb_progress *p, uint64_t done, uint64_t total)
{
    if (p && p->fn)
        p->fn(p->ctx, done, total);
}

#endif
