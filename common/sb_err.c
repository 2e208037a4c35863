/* sb_err.c: first-error-wins message buffer. */
#include "sb_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sb_err_set(struct sb_err *err, int code, const char *fmt, ...)
{
    if (!err || err->code != 0)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* one line: a message must never break the CLI's one-line contract */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
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
