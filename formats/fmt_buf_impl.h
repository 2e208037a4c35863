/* fmt_buf_impl.h: a growable text buffer for the JSON formats/ writes
 * (safetensors headers and indexes, config.json). formats/ only.
 * Zero-initialise; on allocation failure `oom` is set and later calls do
 * nothing, so a writer checks once at the end; p is NUL-terminated and owned
 * by the caller (sb_free). */
#ifndef FMT_BUF_IMPL_H
#define FMT_BUF_IMPL_H

#include <stddef.h>

struct fmt_buf {
    char *p;
    size_t len, cap;
    int oom;
};

void fmt_buf_put(struct fmt_buf *b, const char *s, size_t n);
void fmt_buf_puts(struct fmt_buf *b, const char *s);
void fmt_buf_printf(struct fmt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string: quotes, backslash escapes, \u00XX for control bytes */
void fmt_buf_json_str(struct fmt_buf *b, const char *s);

#endif
