/* sb_err.c: first-error-wins message buffer; every control byte of a message
 * is escaped, since messages quote names taken from files. */
#include "sb_err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if none.
 * Overlong forms, surrogates and code points past U+10FFFF are not well formed. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t sb_escape(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t n = strlen(src), o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n;) {
        size_t k = s[i] < 0x80 ? 1 : utf8_len(s + i, n - i);
        /* C0 controls, DEL, bytes that are not UTF-8, and the C1 controls
         * U+0080..U+009F (CSI is U+009B: a terminal acts on it too) */
        bool esc = k == 0 || (k == 1 && (s[i] < 0x20 || s[i] == 0x7F)) ||
                   (k == 2 && s[i] == 0xC2 && s[i + 1] < 0xA0);
        if (esc) {
            if (o + 4 >= cap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[s[i] >> 4];
            dst[o++] = hex[s[i] & 15];
            i++;
            continue;
        }
        if (o + k >= cap)
            break;
        memcpy(dst + o, s + i, k);
        o += k;
        i += k;
    }
    dst[o] = '\0';
    return o;
}

int sb_err_set(struct sb_err *err, int code, const char *fmt, ...)
{
    if (!err || err->code != 0)
        return code;
    err->code = code;
    char raw[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* one line, and nothing a terminal would act on: a message must never
     * break the CLI's one-line contract nor carry escape sequences from a file */
    sb_escape(err->msg, sizeof err->msg, raw);
    return code;
}

void sb_err_clear(struct sb_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *sb_status_name(int code)
{
    switch (code) {
    case SB_OK: return "ok";
    case SB_EIO: return "io";
    case SB_EFORMAT: return "format";
    case SB_EUNSUPPORTED: return "unsupported";
    case SB_ENOMEM: return "nomem";
    case SB_EINVAL: return "invalid";
    case SB_EINTR: return "interrupted";
    default: return "unknown";
    }
}
