/* fmt_strset_impl.h: a set of borrowed strings, for the readers' and writers'
 * duplicate checks (tensor names, keys): one hash probe per name, so a file
 * of n tensors is checked in O(n), not O(n^2). Private to formats/. */
#ifndef FMT_STRSET_IMPL_H
#define FMT_STRSET_IMPL_H

#include <stddef.h>

struct fmt_strset {
    const char **slot;     /* borrowed strings */
    size_t cap;            /* power of two */
};

/*! fmt_strset_init() : room for n strings (never grows). 0, or -1 on OOM. */
int fmt_strset_init(struct fmt_strset *s, size_t n);
/*! fmt_strset_add() : 1 if str was in the set already, 0 if it was added.
 *  str must stay alive while the set is used. */
int fmt_strset_add(struct fmt_strset *s, const char *str);
/*! fmt_strset_release() : a zeroed set is fine. */
void fmt_strset_release(struct fmt_strset *s);

#endif
