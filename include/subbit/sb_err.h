/* sb_err.h: the one error type of subbit: a status code and one message.
 * Knows nothing of files or formats. */
#ifndef SB_ERR_H
#define SB_ERR_H

#include <stddef.h>

enum sb_status {
    SB_OK = 0,
    SB_EIO = -1,          /* read/write/open failed */
    SB_EFORMAT = -2,      /* the input breaks its format's rules */
    SB_EUNSUPPORTED = -3, /* valid, but not something we handle */
    SB_ENOMEM = -4,       /* allocation failed */
    SB_EINVAL = -5,       /* bad argument from the caller */
    SB_EINTR = -6         /* interrupted by the user */
};

/* Zero-initialise; code 0 = no error. msg is one line, no trailing newline,
 * no control bytes (sb_escape). */
struct sb_err {
    int code;
    char msg[512];
};

/*! sb_err_set() : record an error (printf-style message) unless one is already
 *  recorded: the first error wins, since it names the cause.
 *  @return code, so callers write `return sb_err_set(err, SB_EFORMAT, ...)`.
 *  err may be NULL (the error is then only returned). */
int sb_err_set(struct sb_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*! sb_escape() : src with every byte a terminal could act on written as \xNN
 *  (C0 controls, DEL, C1 controls, bytes that are not well-formed UTF-8), into
 *  dst (cap bytes, always NUL-terminated; truncated at a whole character).
 *  @return the length written. sb_err_set() applies it to every message. */
size_t sb_escape(char *dst, size_t cap, const char *src);

/*! sb_err_clear() : forget a recorded error. */
void sb_err_clear(struct sb_err *err);

/*! sb_status_name() : "io", "format", ... for a code; never NULL. */
const char *sb_status_name(int code);

#endif
