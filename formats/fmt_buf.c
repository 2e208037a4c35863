/* fmt_buf.c: the growable text buffer of fmt_buf_impl.h. */
#include "fmt_buf_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sb_alloc.h"

void fmt_buf_put(struct fmt_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = sb_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void fmt_buf_puts(struct fmt_buf *b, const char *s)
{
    fmt_buf_put(b, s, strlen(s));
}

void fmt_buf_printf(struct fmt_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        fmt_buf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = sb_malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fmt_buf_put(b, big, (size_t)n);
    sb_free(big);
}

void fmt_buf_json_str(struct fmt_buf *b, const char *s)
{
    fmt_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            fmt_buf_put(b, e, 2);
        } else if (c < 0x20) {
            fmt_buf_printf(b, "\\u%04x", c);
        } else {
            fmt_buf_put(b, s, 1);
        }
    }
    fmt_buf_put(b, "\"", 1);
}
