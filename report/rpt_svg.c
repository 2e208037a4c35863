/* rpt_svg.c: the chart primitives of the report: horizontal bars, small
 * multiples of columns, stacked bars, as inline SVG text. Geometry only:
 * colours and fonts come from the page's style sheet (classes). Every bar is
 * a <rect class="bar ..." data-v="value"> with a <title> for hover, so a
 * test can check that lengths follow values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpt_impl.h"
#include "sb_alloc.h"

#define W 860.0          /* chart width, px */
#define ROW 17.0         /* horizontal bar row pitch */
#define BAR 12.0         /* bar thickness */
#define CH 6.7           /* label character width (11px monospace) */
#define MAXCH 46         /* longer labels keep their last MAXCH - 1 characters */
#define VALW 230.0       /* value column */
#define AXH 38.0         /* axis with tick labels and title */

void rpt_buf_printf(struct rpt_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap <= b->n + (size_t)k)
            cap *= 2;
        char *q = sb_realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

void rpt_buf_esc(struct rpt_buf *b, const char *s)
{
    for (const char *p = s; *p;) {
        size_t k = strcspn(p, "&<>\"'");
        if (k)
            rpt_buf_printf(b, "%.*s", (int)k, p);
        p += k;
        if (!*p)
            break;
        switch (*p++) {
        case '&': rpt_buf_printf(b, "&amp;"); break;
        case '<': rpt_buf_printf(b, "&lt;"); break;
        case '>': rpt_buf_printf(b, "&gt;"); break;
        case '"': rpt_buf_printf(b, "&quot;"); break;
        default: rpt_buf_printf(b, "&#39;"); break;
        }
    }
}

static double bytes_unit(double v, const char **name)
{
    static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    int k = 0;
    while (k < 5 && fabs(v) >= 1024.0 * pow(1024.0, k))
        k++;
    *name = names[k];
    return pow(1024.0, k);
}

void rpt_fmt_value(char *buf, size_t len, double v, enum rpt_fmt f)
{
    const char *u;
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else if (isinf(v))
        snprintf(buf, len, "%s", v > 0 ? "exact" : "-inf");
    else if (f == RPT_FMT_PCT)
        snprintf(buf, len, "%.3g%%", v);
    else if (f == RPT_FMT_FRAC_PCT)
        snprintf(buf, len, "%.3g%%", 100 * v);
    else if (f == RPT_FMT_COUNT) {
        static const char *const sfx[] = { "", " k", " M", " B", " T" };
        int k = 0;                    /* exact below 100 000: token counts read better */
        while (k < 4 && fabs(v) >= (k ? 999.5 : 99999.5) * pow(1000.0, k))
            k++;
        snprintf(buf, len, k ? "%.3g%s" : "%.0f%s", v / pow(1000.0, k), sfx[k]);
    } else if (f == RPT_FMT_DB)
        snprintf(buf, len, "%.2f dB", v);
    else if (f == RPT_FMT_BYTES) {
        double s = bytes_unit(v, &u);
        snprintf(buf, len, s == 1 ? "%.0f %s" : "%.3g %s", v / s, u);
    } else
        snprintf(buf, len, "%.4g", v);
}

static const char *const encs[] = { "f32", "f16", "bf16", "int8", "q8_0", "q4_0",
                                    "tq1_0", "tq2_0", "tern", "sub1", "sub1-qmoe" };

const char *rpt_enc_class(const char *enc)
{
    static const char *const cls[] = { "c0", "c1", "c2", "c3", "c4", "c5",
                                       "c6", "c7", "c8", "c9", "c10" };
    for (size_t i = 0; i < sizeof encs / sizeof encs[0]; i++)
        if (enc && !strcmp(enc, encs[i]))
            return cls[i];
    return "c-other";
}

/* A nice axis: [lo, hi] widened to whole steps of 1, 2 or 5 x 10^k (of the byte unit). */
struct axis {
    double lo, hi, step, unit;
    const char *uname;
};

static struct axis nice_axis(double lo, double hi, const struct rpt_axis *ax, int ticks)
{
    struct axis a = { lo, hi, 1, 1, "" };
    if (ax->lo < ax->hi) {
        a.lo = ax->lo;
        a.hi = ax->hi;
    }
    if (!(a.hi > a.lo))
        a.hi = a.lo + 1;
    if (ax->fmt == RPT_FMT_BYTES)
        a.unit = bytes_unit(fmax(fabs(a.lo), fabs(a.hi)), &a.uname);
    const double raw = (a.hi - a.lo) / a.unit / ticks, p = pow(10, floor(log10(raw)));
    const double m = raw / p;
    a.step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p * a.unit;
    if (!(ax->lo < ax->hi)) {
        a.lo = floor(a.lo / a.step + 1e-9) * a.step;
        a.hi = ceil(a.hi / a.step - 1e-9) * a.step;
    }
    return a;
}

static void tick_label(char *buf, size_t len, double v, const struct axis *a, enum rpt_fmt f)
{
    if (fabs(v) < a->step * 1e-9)
        v = 0;
    if (f == RPT_FMT_BYTES)
        snprintf(buf, len, v ? "%g %s" : "0", v / a->unit, a->uname);
    else if (f == RPT_FMT_PCT || f == RPT_FMT_FRAC_PCT)
        snprintf(buf, len, "%g%%", f == RPT_FMT_PCT ? v : 100 * v);
    else
        snprintf(buf, len, "%g", v);
}

/* label text, its end kept when long (whole UTF-8 characters) */
static void label(struct rpt_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > MAXCH) {
        s += n - (MAXCH - 1);
        while ((*s & 0xC0) == 0x80)
            s++;
        rpt_buf_printf(b, "\xE2\x80\xA6");
    }
    rpt_buf_esc(b, s);
}

static double label_width(const char *const *s, size_t n, size_t stride)
{
    size_t m = 4;
    for (size_t i = 0; i < n; i++) {
        const char *t = *(const char *const *)((const char *)s + i * stride);
        size_t k = t ? strlen(t) : 0;
        m = k > m ? k : m;
    }
    return (m > MAXCH ? MAXCH : (double)m) * CH + 12;
}

static void x_axis(struct rpt_buf *b, const struct axis *a, const struct rpt_axis *ax, double x0,
                   double pw, double y0, double y1)
{
    const double sc = pw / (a->hi - a->lo);
    for (double t = a->lo; t <= a->hi + a->step * 1e-6; t += a->step) {
        char tl[48];
        const double x = x0 + (t - a->lo) * sc;
        tick_label(tl, sizeof tl, t, a, ax->fmt);
        rpt_buf_printf(b, "<line class=\"grid%s\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                          "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                       fabs(t) < a->step * 1e-6 ? " zero" : "", x, x, y0, y1 + 4, x, y1 + 16, tl);
    }
    rpt_buf_printf(b, "<text class=\"axt\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x0 + pw / 2,
                   y1 + 32);
    rpt_buf_esc(b, ax->title);
    rpt_buf_printf(b, "</text>\n");
}

static void bar_rect(struct rpt_buf *b, const struct rpt_bar *r, const char *defcls, double x,
                     double y, double w, double h, enum rpt_fmt f)
{
    char v[48];
    rpt_fmt_value(v, sizeof v, r->value, f);
    rpt_buf_printf(b, "<rect class=\"bar %s\" data-v=\"%.9g\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                      "height=\"%.1f\"><title>", r->cls ? r->cls : defcls, r->value, x, y, w, h);
    rpt_buf_esc(b, r->tip ? r->tip : r->label ? r->label : "");
    rpt_buf_printf(b, ": %s", v);
    if (r->note) {
        rpt_buf_printf(b, ", ");
        rpt_buf_esc(b, r->note);
    }
    rpt_buf_printf(b, "</title></rect>\n");
}

void rpt_svg_hbars(struct rpt_buf *b, const char *id, const struct rpt_bar *bars, size_t n,
                   const struct rpt_axis *ax)
{
    if (!n)
        return;
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(bars[i].value)) {
            lo = fmin(lo, bars[i].value);
            hi = fmax(hi, bars[i].value);
        }
    const struct axis a = nice_axis(lo, hi, ax, 5);
    const double lw = label_width(&bars[0].label, n, sizeof bars[0]);
    const double pw = W - lw - VALW, sc = pw / (a.hi - a.lo), h = n * ROW + 6;
    const double zx = lw + (0 - a.lo) * sc;
    rpt_buf_printf(b, "<svg class=\"chart\" id=\"%s\" "
                      "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
                   id, W, h + AXH, W, h + AXH);
    x_axis(b, &a, ax, lw, pw, 0, h);
    for (size_t i = 0; i < n; i++) {
        const struct rpt_bar *r = &bars[i];
        const double y = 3 + i * ROW, v = fmin(fmax(r->value, a.lo), a.hi);
        char val[48];
        rpt_buf_printf(b, "<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", lw - 6,
                       y + BAR - 2);
        label(b, r->label ? r->label : "");
        rpt_buf_printf(b, "</text>\n");
        if (isfinite(r->value))
            bar_rect(b, r, "c-main", v < 0 ? zx + v * sc : zx, y, fabs(v) * sc, BAR, ax->fmt);
        rpt_fmt_value(val, sizeof val, r->value, ax->fmt);
        rpt_buf_printf(b, "<text class=\"val\" x=\"%.1f\" y=\"%.1f\">%s", W - VALW + 8,
                       y + BAR - 2, val);
        if (r->note) {
            rpt_buf_printf(b, " <tspan class=\"note\">");
            rpt_buf_esc(b, r->note);
            rpt_buf_printf(b, "</tspan>");
        }
        rpt_buf_printf(b, "</text>\n");
    }
    rpt_buf_printf(b, "</svg>\n");
}

void rpt_svg_columns(struct rpt_buf *b, const char *id, const char *const *group_title,
                     const struct rpt_bar *const *bars, const size_t *n, size_t groups,
                     const struct rpt_axis *ax, bool mean)
{
    double hi = 0;
    size_t most = 1;
    for (size_t g = 0; g < groups; g++) {
        most = n[g] > most ? n[g] : most;
        for (size_t i = 0; i < n[g]; i++)
            if (isfinite(bars[g][i].value))
                hi = fmax(hi, bars[g][i].value);
    }
    const struct axis a = nice_axis(0, hi, ax, 2);
    const double cw = most > 24 ? 8 : 16, pw = most * cw + 8, ph = 70, left = 58;
    const double cell = left + pw + 14, top = 22, rowh = top + ph + 22;
    size_t per_row = (size_t)(W / cell);
    per_row = per_row ? per_row : 1;
    const size_t rows = (groups + per_row - 1) / per_row;
    const double h = 18 + rows * rowh;
    rpt_buf_printf(b, "<svg class=\"chart\" id=\"%s\" "
                      "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n"
                      "<text class=\"axt\" x=\"0\" y=\"12\">",
                   id, W, h, W, h);
    rpt_buf_esc(b, ax->title);
    rpt_buf_printf(b, "</text>\n");
    for (size_t g = 0; g < groups; g++) {
        const double gx = (g % per_row) * cell + left, gy = 18 + (g / per_row) * rowh + top;
        const double sc = ph / (a.hi - a.lo);
        rpt_buf_printf(b, "<g class=\"panel\"><text class=\"ptitle\" x=\"%.1f\" y=\"%.1f\">", gx,
                       gy - 8);
        rpt_buf_esc(b, group_title[g]);
        rpt_buf_printf(b, "</text>\n");
        for (double t = a.lo; t <= a.hi + a.step * 1e-6; t += a.step) {
            char tl[48];
            tick_label(tl, sizeof tl, t, &a, ax->fmt);
            rpt_buf_printf(b, "<line class=\"grid%s\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                              "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                           t == a.lo ? " zero" : "", gx - 3, gx + pw, gy + ph - (t - a.lo) * sc,
                           gy + ph - (t - a.lo) * sc, gx - 6, gy + ph - (t - a.lo) * sc + 4, tl);
        }
        double sum = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < n[g]; i++) {
            const struct rpt_bar *r = &bars[g][i];
            const double x = gx + 4 + i * cw;
            if (isfinite(r->value)) {
                const double v = fmin(r->value, a.hi) * sc;
                bar_rect(b, r, "c-main", x + 1, gy + ph - v, cw - 2, v, ax->fmt);
                if (r->cls)             /* flagged: a marker above, seen even when the bar is not */
                    rpt_buf_printf(b, "<path class=\"mark %s\" d=\"M%.1f %.1fl4 -6h-8z\"/>\n", r->cls,
                                   x + cw / 2, gy + ph - v - 2);
                sum += r->value;
                cnt++;
            }
            if (most <= 24 || i % 4 == 0) {
                rpt_buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                               x + cw / 2, gy + ph + 12);
                rpt_buf_esc(b, r->label ? r->label : "");
                rpt_buf_printf(b, "</text>\n");
            }
        }
        if (mean && cnt) {
            const double y = gy + ph - fmin(sum / cnt, a.hi) * sc;
            rpt_buf_printf(b, "<line class=\"mean\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\">"
                              "<title>mean %.4g</title></line>\n", gx, gx + pw, y, y, sum / cnt);
        }
        rpt_buf_printf(b, "</g>\n");
    }
    rpt_buf_printf(b, "</svg>\n");
}

void rpt_svg_stacks(struct rpt_buf *b, const char *id, const char *const *row_label,
                    const struct rpt_bar *const *parts, const size_t *n, size_t rows,
                    const struct rpt_axis *ax)
{
    if (!rows)
        return;
    double hi = 0;
    for (size_t r = 0; r < rows; r++) {
        double s = 0;
        for (size_t i = 0; i < n[r]; i++)
            s += isfinite(parts[r][i].value) && parts[r][i].value > 0 ? parts[r][i].value : 0;
        hi = fmax(hi, s);
    }
    const struct axis a = nice_axis(0, hi, ax, 5);
    const double lw = label_width(row_label, rows, sizeof row_label[0]);
    const double pw = W - lw - VALW, sc = pw / (a.hi - a.lo), pitch = 30, h = rows * pitch + 6;
    rpt_buf_printf(b, "<svg class=\"chart\" id=\"%s\" "
                      "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
                   id, W, h + AXH, W, h + AXH);
    x_axis(b, &a, ax, lw, pw, 0, h);
    for (size_t r = 0; r < rows; r++) {
        const double y = 5 + r * pitch;
        double x = lw, s = 0;
        char val[48];
        rpt_buf_printf(b, "<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", lw - 6,
                       y + 15);
        label(b, row_label[r]);
        rpt_buf_printf(b, "</text>\n");
        for (size_t i = 0; i < n[r]; i++) {
            const struct rpt_bar *p = &parts[r][i];
            if (!(isfinite(p->value) && p->value > 0))
                continue;
            const double w = p->value * sc;
            bar_rect(b, p, "c0", x, y, w, 22, ax->fmt);
            if (w > 7 * CH * (p->label ? strlen(p->label) : 0) / 6 + 8) {
                rpt_buf_printf(b, "<text class=\"seg\" x=\"%.1f\" y=\"%.1f\">", x + 4, y + 15);
                rpt_buf_esc(b, p->label);
                rpt_buf_printf(b, "</text>\n");
            }
            x += w;
            s += p->value;
        }
        rpt_fmt_value(val, sizeof val, s, ax->fmt);
        rpt_buf_printf(b, "<text class=\"val\" x=\"%.1f\" y=\"%.1f\">%s</text>\n", W - VALW + 8,
                       y + 15, val);
    }
    rpt_buf_printf(b, "</svg>\n");
}

void rpt_svg_legend(struct rpt_buf *b, const char *const *cls, const char *const *lbl, size_t n)
{
    rpt_buf_printf(b, "<div class=\"legend\">");
    for (size_t i = 0; i < n; i++) {
        rpt_buf_printf(b, "<span><i class=\"sw %s\"></i>", cls[i]);
        rpt_buf_esc(b, lbl[i]);
        rpt_buf_printf(b, "</span>");
    }
    rpt_buf_printf(b, "</div>\n");
}
