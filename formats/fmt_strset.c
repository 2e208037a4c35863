/* fmt_strset.c: open-addressing set of strings (FNV-1a, linear probing). */
#include "fmt_strset_impl.h"
#include "sb_alloc.h"

#include <stdint.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int fmt_strset_init(struct fmt_strset *s, size_t n)
{
    s->cap = 16;
    while (s->cap < 2 * n + 1)
        s->cap *= 2;
    s->slot = sb_calloc(s->cap, sizeof *s->slot);
    return s->slot ? 0 : -1;
}

/* The set is sized for all adds at init, so it never fills. */
int fmt_strset_add(struct fmt_strset *s, const char *str)
{
    size_t i = (size_t)hash_str(str) & (s->cap - 1);
    while (s->slot[i]) {
        if (!strcmp(s->slot[i], str))
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = str;
    return 0;
}

void fmt_strset_release(struct fmt_strset *s)
{
    sb_free(s->slot);
    s->slot = NULL;
}
