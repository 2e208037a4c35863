/* rpt_impl.h: inside the report library: the documents, a text buffer with
 * HTML escaping, and the SVG chart primitives (rpt_svg.c). Included only by
 * report/ and its tests. */
#ifndef RPT_IMPL_H
#define RPT_IMPL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpt_report.h"

struct rpt_doc {
    char *name;
    struct cJSON *owned;      /* parsed here (freed with the report), or NULL: borrowed */
    const struct cJSON *doc;
    enum rpt_kind kind;
};

/* Growable text; a failed allocation sets oom and later appends do nothing. */
struct rpt_buf {
    char *p;
    size_t n, cap;
    bool oom;
};
void rpt_buf_printf(struct rpt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s with & < > " ' escaped (safe in text and in quoted attributes). */
void rpt_buf_esc(struct rpt_buf *b, const char *s);

/* How chart values print. */
enum rpt_fmt {
    RPT_FMT_G,            /* %.4g */
    RPT_FMT_COUNT,        /* 2.63 M */
    RPT_FMT_PCT,          /* the value is a percentage */
    RPT_FMT_FRAC_PCT,     /* the value is a fraction, shown as a percentage */
    RPT_FMT_DB,
    RPT_FMT_BYTES         /* KiB, MiB, ... */
};
void rpt_fmt_value(char *buf, size_t len, double v, enum rpt_fmt f);

/* Colour class of an encoding ("enc-sub1"), or "enc-other". */
const char *rpt_enc_class(const char *enc);

struct rpt_bar {
    const char *label;        /* shown, escaped; long labels keep their end */
    const char *tip;          /* hover title (NULL: label) */
    double value;             /* NAN: "n/a", no bar */
    const char *cls;          /* CSS class of the bar (colour); NULL: "bar-main" */
    const char *note;         /* text after the value, or NULL */
};

struct rpt_axis {
    const char *title;        /* axis title, with its unit */
    enum rpt_fmt fmt;
    double lo, hi;            /* fixed domain when lo < hi, else from the data (and 0) */
};

/* Horizontal bars, one row each, on one axis; bars start at 0.
 * <rect class="bar CLS" data-v="VALUE" x y width height> for each finite value. */
void rpt_svg_hbars(struct rpt_buf *b, const char *id, const struct rpt_bar *bars, size_t n,
                   const struct rpt_axis *ax);

/* Small multiples: one column chart per group (e.g. per layer), n[g] columns
 * in group g, all on one y axis from 0; bars[g][i].label is the column's x label.
 * mean: a dashed line at each group's mean when true. */
void rpt_svg_columns(struct rpt_buf *b, const char *id, const char *const *group_title,
                     const struct rpt_bar *const *bars, const size_t *n, size_t groups,
                     const struct rpt_axis *ax, bool mean);

/* Stacked bars, one row per stack (row r: parts[r][0..n[r]) on a shared axis
 * from 0 to the largest total), with a legend of part labels and classes
 * taken from the first stack. */
void rpt_svg_stacks(struct rpt_buf *b, const char *id, const char *const *row_label,
                    const struct rpt_bar *const *parts, const size_t *n, size_t rows,
                    const struct rpt_axis *ax);

/* A legend: a swatch and a label for each (cls, label) pair. */
void rpt_svg_legend(struct rpt_buf *b, const char *const *cls, const char *const *label, size_t n);

#endif
