/* rpt_html.c: the report's page: a section per kind of data present (quality
 * against the reference, perplexity, memory, one per converted/quantized
 * model), each a few charts from rpt_svg.c and a table. Aggregates per layer,
 * expert, encoding and tensor kind here; never reads JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_out.h"
#include "rpt_impl.h"
#include "sb_alloc.h"

#define TOP 16            /* per-tensor charts show the TOP worst tensors */

struct page {
    struct rpt_buf b;
    void **tmp;           /* scratch freed when the page is done */
    size_t n_tmp, cap_tmp;
    int chart;            /* next chart id */
};

static void *scratch(struct page *pg, size_t n, size_t size)
{
    void *p = NULL;
    if (pg->n_tmp == pg->cap_tmp) {
        size_t cap = pg->cap_tmp ? 2 * pg->cap_tmp : 64;
        void **q = sb_realloc(pg->tmp, cap * sizeof *q);
        if (!q)
            return pg->b.oom = true, NULL;
        pg->tmp = q;
        pg->cap_tmp = cap;
    }
    if (!(p = sb_calloc(n ? n : 1, size)))
        return pg->b.oom = true, NULL;
    return pg->tmp[pg->n_tmp++] = p;
}

static const char *id(struct page *pg)
{
    char *s = scratch(pg, 24, 1);
    if (s)
        snprintf(s, 24, "chart%d", ++pg->chart);
    return s ? s : "chart";
}

static const char *fmtv(struct page *pg, double v, enum rpt_fmt f)
{
    char *s = scratch(pg, 48, 1);
    if (s)
        rpt_fmt_value(s, 48, v, f);
    return s ? s : "";
}

static const char *sprint(struct page *pg, const char *fmt, double a, double b)
{
    char *s = scratch(pg, 96, 1);
    if (s)
        snprintf(s, 96, fmt, a, b);
    return s ? s : "";
}

#define P(...) rpt_buf_printf(&pg->b, __VA_ARGS__)
#define E(s) rpt_buf_esc(&pg->b, (s) ? (s) : "")

static void h3(struct page *pg, const char *title, const char *caption)
{
    P("<h3>");
    E(title);
    P("</h3>\n");
    if (caption) {
        P("<p class=\"cap\">");
        E(caption);
        P("</p>\n");
    }
}

static void td(struct page *pg, double v, enum rpt_fmt f)
{
    P("<td class=\"num\">%s</td>", fmtv(pg, v, f));
}

/* a cell (th: a header cell) of text */
static void tdt(struct page *pg, const char *s, bool th)
{
    P(th ? "<th>" : "<td>");
    E(s);
    P(th ? "</th>" : "</td>");
}

/* ---- aggregation: (key, layer, expert) cells, params-weighted ---------- */

struct cell {
    const char *key;      /* encoding or folded name; NULL when grouping by layer/expert */
    const char *enc;      /* the cell's encoding; NULL once two differ */
    int layer, expert;
    double w, v, v2;      /* weight; sum w*v; a second sum (SQNR's reference energy) */
    bool flag;            /* any fallback */
    size_t count;
    char lbl[16];
};

static int cell_cmp(const void *pa, const void *pb)
{
    const struct cell *a = pa, *b = pb;
    int k = a->key && b->key ? strcmp(a->key, b->key) : 0;
    if (k)
        return k;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return (a->expert > b->expert) - (a->expert < b->expert);
}

/* Sort c[0..n) and merge equal keys; returns the new count. */
static size_t merge(struct cell *c, size_t n)
{
    if (!n)
        return 0;
    qsort(c, n, sizeof *c, cell_cmp);
    size_t m = 0;
    for (size_t i = 1; i < n; i++) {
        if (cell_cmp(&c[m], &c[i]) == 0) {
            if (c[m].enc && (!c[i].enc || strcmp(c[m].enc, c[i].enc)))
                c[m].enc = NULL;
            c[m].w += c[i].w;
            c[m].v += c[i].v;
            c[m].v2 += c[i].v2;
            c[m].flag |= c[i].flag;
            c[m].count += c[i].count;
        } else {
            c[++m] = c[i];
        }
    }
    return m + 1;
}

/* "model.layers.3.mlp.experts.7.w1.weight" -> "layers.*.mlp.experts.*.w1"
 * (digits false: "layers.3.mlp.experts.7.w1") */
static const char *fold(struct page *pg, const char *name, bool digits)
{
    size_t n = strlen(name);
    char *s = scratch(pg, n + 1, 1), *o = s;
    if (!s)
        return name;
    if (!strncmp(name, "model.", 6) && n > 6)
        name += 6;
    for (const char *p = name; *p;) {
        const char *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        if (digits && q > p && (p == name || p[-1] == '.') && (*q == '.' || !*q)) {
            *o++ = '*';
            p = q;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    if (o - s > 7 && !strcmp(o - 7, ".weight"))
        o[-7] = 0;
    return s;
}

/* Columns per layer from cells sorted by (layer, expert): one group a layer. */
static void columns(struct page *pg, struct cell *c, size_t n, const struct rpt_axis *ax,
                    const char *flag_cls, double scale)
{
    size_t groups = 0;
    for (size_t i = 0; i < n; i++)
        groups += i == 0 || c[i].layer != c[i - 1].layer;
    const char **title = scratch(pg, groups, sizeof *title);
    const struct rpt_bar **bars = scratch(pg, groups, sizeof *bars);
    size_t *cnt = scratch(pg, groups, sizeof *cnt);
    struct rpt_bar *all = scratch(pg, n, sizeof *all);
    if (!title || !bars || !cnt || !all)
        return;
    for (size_t i = 0, g = (size_t)-1; i < n; i++) {
        if (i == 0 || c[i].layer != c[i - 1].layer) {
            double sum = 0, m = 0;           /* the layer's mean, in its title */
            for (size_t j = i; j < n && c[j].layer == c[i].layer; j++, m++)
                sum += c[j].v / c[j].w * scale;
            bars[++g] = &all[i];
            title[g] = sprint(pg, c[i].layer >= 0 ? "layer %.0f" : "no layer", c[i].layer, 0);
            char *t = scratch(pg, 96, 1);
            if (t) {
                snprintf(t, 96, "%s, mean %s", title[g], fmtv(pg, sum / m, ax->fmt));
                title[g] = t;
            }
        }
        snprintf(c[i].lbl, sizeof c[i].lbl, "%d", c[i].expert);
        all[i] = (struct rpt_bar){ c[i].lbl, sprint(pg, "layer %.0f, expert %.0f", c[i].layer,
                                                    c[i].expert),
                                   c[i].v / c[i].w * scale, c[i].flag ? flag_cls : NULL, NULL };
        cnt[g]++;
    }
    rpt_svg_columns(&pg->b, id(pg), title, bars, cnt, groups, ax, true);
}

/* Length of the folder prefix ("/tmp/run/") that all n names share; 0 if none. */
static size_t common_dir(const char *const *name, size_t n)
{
    size_t k = n ? strlen(name[0]) : 0;
    for (size_t i = 1; i < n; i++) {
        size_t j = 0;
        while (j < k && name[i][j] == name[0][j])
            j++;
        k = j;
    }
    while (k > 0 && name[0][k - 1] != '/')
        k--;
    return k;
}

/* the first k bytes of name (the shared folder), escaped */
static void dir_of(struct page *pg, const char *name, size_t k)
{
    char *d = scratch(pg, k + 1, 1);
    if (d) {
        memcpy(d, name, k);
        E(d);
    }
}

/* ---- sections ----------------------------------------------------------- */

static void section_verify(struct page *pg, const struct rpt_report *r)
{
    const size_t n = r->n_cmps;
    struct rpt_bar *b = scratch(pg, 3 * n, sizeof *b);
    const char **name = scratch(pg, n, sizeof *name);
    if (!b || !name)
        return;
    for (size_t i = 0; i < n; i++)
        name[i] = r->cmps[i].model;
    const size_t k = common_dir(name, n);
    for (size_t i = 0; i < n; i++)
        name[i] += k;
    /* one reference and token count for all: say so once, not in every row */
    bool same = true;
    for (size_t i = 1; i < n; i++)
        same &= r->cmps[i].ref && r->cmps[0].ref && !strcmp(r->cmps[i].ref, r->cmps[0].ref) &&
                r->cmps[i].tokens == r->cmps[0].tokens;
    same &= r->cmps[0].ref != NULL;
    P("<section><h2>Quality against the reference</h2>\n<p class=\"cap\">");
    if (k) {
        P("copies in ");
        dir_of(pg, r->cmps[0].model, k);
    }
    if (same) {
        P("%sreference <b>", k ? "; " : "");
        E(r->cmps[0].ref);
        P("</b>, %s tokens scored", fmtv(pg, r->cmps[0].tokens, RPT_FMT_COUNT));
        if (r->cmps[0].protocol) {
            P(" (");
            E(r->cmps[0].protocol);
            P(" protocol)");
        }
    }
    P("</p>\n<table><tr><th>copy</th>%s<th>ppl ref</th><th>ppl</th><th>&Delta;ppl</th>"
      "<th>KLD mean</th><th>KLD p99</th><th>top-1 agree</th><th>gates</th></tr>\n",
      same ? "" : "<th>reference</th><th>tokens</th>");
    for (size_t i = 0; i < n; i++) {
        const struct rpt_cmp *c = &r->cmps[i];
        const char *cls = c->pass < 0 ? NULL : c->pass ? "c-pass" : "c-fail";
        P("<tr>");
        tdt(pg, name[i], false);
        if (!same) {
            tdt(pg, c->ref, false);
            td(pg, c->tokens, RPT_FMT_COUNT);
        }
        td(pg, c->ppl_ref, RPT_FMT_G);
        td(pg, c->ppl_model, RPT_FMT_G);
        P("<td class=\"num\">%s%s</td>", c->ppl_delta_pct > 0 ? "+" : "",
          fmtv(pg, c->ppl_delta_pct, RPT_FMT_PCT));
        td(pg, c->kld_mean, RPT_FMT_G);
        td(pg, c->kld_p99, RPT_FMT_G);
        td(pg, c->top1, RPT_FMT_FRAC_PCT);
        P("<td class=\"%s\">%s</td></tr>\n", cls ? cls : "",
          c->pass < 0 ? "none given" : c->pass ? "pass" : "FAIL");
        b[i] = (struct rpt_bar){ name[i], c->model, c->ppl_delta_pct, cls, NULL };
        b[n + i] = (struct rpt_bar){ name[i], c->model, c->kld_mean, cls, NULL };
        b[2 * n + i] = (struct rpt_bar){ name[i], c->model, c->top1, cls, NULL };
    }
    P("</table>\n");
    const struct rpt_axis a1 = { "perplexity change against the reference (%)", RPT_FMT_PCT, 0, 0 };
    const struct rpt_axis a2 = { "mean KL divergence per token (nats)", RPT_FMT_G, 0, 0 };
    const struct rpt_axis a3 = { "top-1 agreement with the reference (%)", RPT_FMT_FRAC_PCT, 0, 1 };
    h3(pg, "\xCE\x94ppl", "bar colour: green passed its gates, red failed, blue no gate given");
    rpt_svg_hbars(&pg->b, id(pg), b, n, &a1);
    h3(pg, "KL divergence", NULL);
    rpt_svg_hbars(&pg->b, id(pg), b + n, n, &a2);
    h3(pg, "Top-1 agreement", NULL);
    rpt_svg_hbars(&pg->b, id(pg), b + 2 * n, n, &a3);
    P("</section>\n");
}

static void section_ppl(struct page *pg, const struct rpt_report *r)
{
    struct rpt_bar *b = scratch(pg, r->n_ppls, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < r->n_ppls; i++) {
        const struct rpt_ppl *p = &r->ppls[i];
        b[i] = (struct rpt_bar){ p->model, NULL, p->ppl, NULL,
                                 sprint(pg, "\xC2\xB1 %.3g, %.0f tokens scored", p->ppl_se, p->tokens) };
    }
    const struct rpt_axis ax = { "perplexity (lower is better)", RPT_FMT_G, 0, 0 };
    P("<section><h2>Perplexity</h2>\n");
    rpt_svg_hbars(&pg->b, id(pg), b, r->n_ppls, &ax);
    P("</section>\n");
}

static const char *mem_cls(const char *label)
{
    /* hf's attention scores take scratch's colour: that profile has no scratch */
    static const char *const names[] = { "weights", "KV cache", "activations", "logits", "scratch",
                                         "process", "gradients", "optimizer", "other",
                                         "attention scores" };
    static const char *const cls[] = { "m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m4" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(label, names[i]))
            return cls[i];
    return "m8";
}

static void section_mem(struct page *pg, const struct rpt_report *r)
{
    const size_t n = r->n_mems;
    const char **row = scratch(pg, n, sizeof *row);
    const struct rpt_bar **parts = scratch(pg, n, sizeof *parts);
    size_t *cnt = scratch(pg, n, sizeof *cnt);
    const char *lcls[RPT_MEM_PARTS * 2], *llbl[RPT_MEM_PARTS * 2];
    size_t nl = 0;
    if (!row || !parts || !cnt)
        return;
    P("<section><h2>Memory</h2>\n");
    for (size_t i = 0; i < n; i++) {
        const struct rpt_mem *m = &r->mems[i];
        struct rpt_bar *p = scratch(pg, RPT_MEM_PARTS, sizeof *p);
        if (!p)
            return;
        const bool train = i > 0 && m->file == r->mems[i - 1].file;   /* the doc's 2nd row */
        char *rl = scratch(pg, strlen(m->model) + 64, 1);
        if (!rl)
            return;
        if (isfinite(m->ctx))
            sprintf(rl, "%s, ctx %.0f%s", m->model, m->ctx, train ? ", training" : "");
        else
            sprintf(rl, "%s%s", m->model, train ? ", training" : "");
        row[i] = rl;
        for (int k = 0; k < m->n_parts; k++) {
            p[k] = (struct rpt_bar){ m->label[k], NULL, m->bytes[k], mem_cls(m->label[k]),
                                     sprint(pg, "%.1f%% of the total",
                                            100 * m->bytes[k] / m->total, 0) };
            size_t j = 0;
            while (j < nl && strcmp(llbl[j], m->label[k]))
                j++;
            if (j == nl && nl < RPT_MEM_PARTS * 2) {
                llbl[nl] = m->label[k];
                lcls[nl++] = mem_cls(m->label[k]);
            }
        }
        parts[i] = p;
        cnt[i] = (size_t)m->n_parts;
    }
    const struct rpt_axis ax = { "bytes (1 KiB = 1024 B)", RPT_FMT_BYTES, 0, 0 };
    rpt_svg_stacks(&pg->b, id(pg), row, parts, cnt, n, &ax);
    rpt_svg_legend(&pg->b, lcls, llbl, nl);
    bool measured = false;
    for (size_t i = 0; i < n; i++)
        measured |= isfinite(r->mems[i].measured);
    P("<table><tr><th></th>");
    for (size_t i = 0; i < n; i++)
        tdt(pg, row[i], true);
    P("</tr>\n<tr><td>weights as</td>");
    for (size_t i = 0; i < n; i++)
        tdt(pg, r->mems[i].encoding, false);
    P("</tr>\n<tr><td>parameters</td>");
    for (size_t i = 0; i < n; i++)
        td(pg, r->mems[i].params, RPT_FMT_COUNT);
    for (size_t j = 0; j < nl; j++) {
        P("</tr>\n<tr>");
        tdt(pg, llbl[j], false);
        for (size_t i = 0; i < n; i++) {
            const struct rpt_mem *m = &r->mems[i];
            double v = NAN;
            for (int k = 0; k < m->n_parts; k++)
                v = strcmp(m->label[k], llbl[j]) ? v : m->bytes[k];
            td(pg, v, RPT_FMT_BYTES);
        }
    }
    P("</tr>\n<tr><th>total</th>");
    for (size_t i = 0; i < n; i++)
        td(pg, r->mems[i].total, RPT_FMT_BYTES);
    if (measured) {
        P("</tr>\n<tr><td>measured peak RSS</td>");
        for (size_t i = 0; i < n; i++)
            td(pg, r->mems[i].measured, RPT_FMT_BYTES);
    }
    P("</tr>\n");
    P("</table></section>\n");
}

static int by_value(const void *pa, const void *pb)
{
    const struct rpt_bar *a = pa, *b = pb;
    return (a->value > b->value) - (a->value < b->value);
}

/* What a run's sections share: cells to aggregate in, folded names, the legend. */
struct run_ctx {
    const struct rpt_run *u;
    struct cell *c;       /* n_t cells */
    const char **kind;    /* folded name of each tensor */
    const char **lcls, **llbl;   /* encodings legend */
    size_t nl;
};

static void legend(struct page *pg, const struct run_ctx *x)
{
    rpt_svg_legend(&pg->b, x->lcls, x->llbl, x->nl);
}

static void run_errors(struct page *pg, const struct run_ctx *x)
{
    const struct rpt_run *u = x->u;
    struct cell *c = x->c;
    size_t n = 0, nq = 0;
    struct rpt_bar *sq = scratch(pg, u->n_t, sizeof *sq), *rm = scratch(pg, u->n_t, sizeof *rm);
    if (!sq || !rm)
        return;
    for (size_t i = 0; i < u->n_t; i++) {
        const struct rpt_tensor *t = &u->t[i];
        if (isnan(t->rmse) || t->layer < 0 || !(t->params > 0))
            continue;
        /* sums of squares back from rmse and SQNR: err = rmse^2 n, ref = err 10^(SQNR/10) */
        const double e = t->rmse * t->rmse * t->params;
        c[n++] = (struct cell){ NULL, NULL, t->layer, -1, t->params, e,
                                isfinite(t->sqnr_db) ? e * pow(10, t->sqnr_db / 10) : 0, 0, 1, "" };
    }
    for (size_t i = 0; i < u->n_t; i++) {
        const struct rpt_tensor *t = &u->t[i];
        if (t->rmse > 0 && isfinite(t->sqnr_db)) {
            sq[nq] = (struct rpt_bar){ fold(pg, t->name, false), t->name, t->sqnr_db,
                                       rpt_enc_class(t->enc), NULL };
            rm[nq] = (struct rpt_bar){ sq[nq].label, t->name, -t->rmse, sq[nq].cls, NULL };
            nq++;
        }
    }
    if (!nq)
        return;
    if ((n = merge(c, n))) {
        struct rpt_bar *lr = scratch(pg, 2 * n, sizeof *lr);
        if (!lr)
            return;
        for (size_t i = 0; i < n; i++) {
            snprintf(c[i].lbl, sizeof c[i].lbl, "layer %d", c[i].layer);
            lr[i] = (struct rpt_bar){ c[i].lbl, NULL, sqrt(c[i].v / c[i].w), NULL, NULL };
            const double sqnr = c[i].v > 0 && c[i].v2 > 0 ? 10 * log10(c[i].v2 / c[i].v) : NAN;
            lr[n + i] = (struct rpt_bar){ c[i].lbl, NULL, sqnr, NULL, NULL };
        }
        const struct rpt_axis a1 = { "RMSE (weight units)", RPT_FMT_G, 0, 0 };
        const struct rpt_axis a2 = { "SQNR (dB, higher is better)", RPT_FMT_DB, 0, 0 };
        h3(pg, "Error per layer",
           "RMSE over all of the layer's weights; SQNR over its tensors with an error");
        rpt_svg_hbars(&pg->b, id(pg), lr, n, &a1);
        rpt_svg_hbars(&pg->b, id(pg), lr + n, n, &a2);
    }
    qsort(sq, nq, sizeof *sq, by_value);
    qsort(rm, nq, sizeof *rm, by_value);
    for (size_t i = 0; i < nq; i++)
        rm[i].value = -rm[i].value;
    const size_t k = nq < TOP ? nq : TOP;
    const struct rpt_axis a3 = { "SQNR (dB), lowest first", RPT_FMT_DB, 0, 0 };
    const struct rpt_axis a4 = { "RMSE (weight units), highest first", RPT_FMT_G, 0, 0 };
    h3(pg, "Error per tensor", sprint(pg, k < nq ? "the %.0f worst of %.0f tensors with an error; "
                                              "all are in the table below" : "%.0f tensors with an error",
                                      nq < TOP ? (double)nq : TOP, (double)nq));
    legend(pg, x);
    rpt_svg_hbars(&pg->b, id(pg), sq, k, &a3);
    rpt_svg_hbars(&pg->b, id(pg), rm, k, &a4);
}


static void run_bits(struct page *pg, struct run_ctx *x)
{
    const struct rpt_run *u = x->u;
    struct cell *c = x->c;
    size_t n = 0;
    double total = 0;
    for (int pass = 0; pass < 2; pass++) {          /* by encoding, then by tensor kind */
        n = 0;
        for (size_t i = 0; i < u->n_t; i++)
            if (isfinite(u->t[i].bits) && u->t[i].params > 0) {
                const struct rpt_tensor *t = &u->t[i];
                c[n++] = (struct cell){ pass ? x->kind[i] : t->enc, t->enc, 0, 0, t->params,
                                        t->params * t->bits, 0, 0, 1, "" };
                total += pass ? 0 : t->params;
            }
        if (!(n = merge(c, n)))
            return;
        struct rpt_bar *b = scratch(pg, n, sizeof *b);
        if (!b)
            return;
        if (!pass && (!(x->lcls = scratch(pg, n, sizeof *x->lcls)) ||
                      !(x->llbl = scratch(pg, n, sizeof *x->llbl))))
            return;
        for (size_t i = 0; i < n; i++) {
            const char *cls = c[i].enc ? rpt_enc_class(c[i].enc) : "c-other";
            b[i] = (struct rpt_bar){ c[i].key, NULL, c[i].v / c[i].w, cls, NULL };
            if (pass) {
                b[i].note = c[i].count == 1 ? "1 tensor"
                                            : sprint(pg, "%.0f tensors", (double)c[i].count, 0);
            } else {
                b[i].note = sprint(pg, "%.3g%% of weights, %.0f tensors", 100 * c[i].w / total,
                                   (double)c[i].count);
                x->lcls[x->nl] = cls;
                x->llbl[x->nl++] = c[i].key;
            }
        }
        const struct rpt_axis ax = { "bits per weight", RPT_FMT_G, 0, 0 };
        if (pass) {
            h3(pg, "Bits per weight by tensor",
               "layer and expert numbers folded into *; colour: encoding (grey: mixed)");
            legend(pg, x);
        } else {
            h3(pg, "Bits per weight by encoding", NULL);
        }
        rpt_svg_hbars(&pg->b, id(pg), b, n, &ax);
    }
}

/* Zero fraction of ternary tensors per expert, and tokens routed per expert. */
static void run_experts(struct page *pg, const struct run_ctx *x)
{
    const struct rpt_run *u = x->u;
    struct cell *c = x->c;
    size_t n = 0;
    for (size_t i = 0; i < u->n_t; i++) {
        const struct rpt_tensor *t = &u->t[i];
        if (isfinite(t->zero_fraction) && t->params > 0 && t->expert >= 0)
            c[n++] = (struct cell){ NULL, NULL, t->layer, t->expert, t->params,
                                    t->params * t->zero_fraction, 0, 0, 1, "" };
    }
    if ((n = merge(c, n))) {
        const struct rpt_axis ax = { "zero fraction of the ternary weights, per expert (%)",
                                     RPT_FMT_FRAC_PCT, 0, 1 };
        h3(pg, "Ternary zero fraction per expert",
           "share of each expert's weights set to 0 (all its matrices); dashed: the layer's mean");
        columns(pg, c, n, &ax, NULL, 1);
    }
    n = 0;
    for (size_t i = 0; i < u->n_routes; i++) {
        const struct rpt_route *ro = &u->routes[i];
        c[n++] = (struct cell){ NULL, NULL, ro->layer, ro->expert, 1, ro->tokens, 0, ro->fallback,
                                1, "" };
    }
    if ((n = merge(c, n))) {
        const struct rpt_axis ax = { "calibration tokens routed to each expert", RPT_FMT_G, 0, 0 };
        const char *cls[] = { "c-main", "c-fail" };
        const char *lbl[] = { "calibrated",
                              "fallback (\xE2\x96\xBC): too few tokens, not calibrated" };
        h3(pg, "Tokens routed per expert during calibration", "dashed: the layer's mean");
        rpt_svg_legend(&pg->b, cls, lbl, 2);
        columns(pg, c, n, &ax, "c-fail", 1);
    }
}

static void run_table(struct page *pg, const struct rpt_run *u)
{
    P("<details><summary>All %zu tensors</summary>\n<table><tr><th>tensor</th><th>encoding</th>"
      "<th>weights</th><th>bits/weight</th><th>RMSE</th><th>SQNR</th><th>zeros</th>"
      "<th>tokens</th></tr>\n", u->n_t);
    for (size_t i = 0; i < u->n_t; i++) {
        const struct rpt_tensor *t = &u->t[i];
        P("<tr>");
        tdt(pg, t->name, false);
        tdt(pg, t->enc, false);
        td(pg, t->params, RPT_FMT_COUNT);
        td(pg, t->bits, RPT_FMT_G);
        td(pg, t->rmse, RPT_FMT_G);
        td(pg, t->sqnr_db, RPT_FMT_DB);
        td(pg, t->zero_fraction, RPT_FMT_FRAC_PCT);
        td(pg, t->tokens, RPT_FMT_COUNT);
        P("</tr>\n");
    }
    P("</table></details>\n");
}

static void section_run(struct page *pg, const struct rpt_run *u)
{
    static const char *const what[] = { "Conversion", "Quantization", "Model" };
    const size_t nc = u->n_t > u->n_routes ? u->n_t : u->n_routes;
    struct run_ctx x = { u, scratch(pg, nc, sizeof *x.c), scratch(pg, u->n_t, sizeof *x.kind),
                         NULL, NULL, 0 };
    if (!x.c || !x.kind)
        return;
    for (size_t i = 0; i < u->n_t; i++)
        x.kind[i] = fold(pg, u->t[i].name, true);
    P("<section><h2>%s: ", what[u->kind <= RPT_INSPECT ? u->kind : 2]);
    E(u->model ? u->model : u->file);
    P("</h2>\n<p class=\"facts\">");
    if (u->input) {
        P("from <b>");
        E(u->input);
        P("</b> &middot; ");
    }
    if (u->method) {
        P("method <b>");
        E(u->method);
        P("</b> &middot; ");
    }
    if (u->to) {
        P("to <b>");
        E(u->to);
        P("</b> &middot; ");
    }
    P("%zu tensors, %s weights", u->n_t, fmtv(pg, u->params, RPT_FMT_COUNT));
    if (isfinite(u->in_bytes))
        P(" &middot; %s &rarr;", fmtv(pg, u->in_bytes, RPT_FMT_BYTES));
    P(" %s (%s bits/weight)", fmtv(pg, u->out_bytes, RPT_FMT_BYTES),
      fmtv(pg, u->bits_per_param, RPT_FMT_G));
    if (isfinite(u->calib_tokens))
        P(" &middot; %s calibration tokens", fmtv(pg, u->calib_tokens, RPT_FMT_COUNT));
    if (isfinite(u->seconds))
        P(" &middot; %.3g s", u->seconds);
    P(" <span class=\"src\">(");
    E(u->file);
    P(")</span></p>\n");
    run_bits(pg, &x);
    run_errors(pg, &x);
    run_experts(pg, &x);
    if (u->n_t)
        run_table(pg, u);
    P("</section>\n");
}

static const char css[] =
    "body{font:14px/1.45 'DejaVu Sans',system-ui,sans-serif;color:#222;background:#f4f5f7;"
    "margin:0;padding:24px}\n"
    "main{max-width:920px;margin:auto}\n"
    "section,header{background:#fff;border:1px solid #dde;border-radius:6px;padding:14px 24px;"
    "margin-bottom:18px}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:4px 0 6px;word-break:break-all}"
    "h3{font-size:15px;margin:18px 0 2px}\n"
    ".cap,.src,.sub{color:#666;font-size:12.5px;margin:0 0 4px}\n"
    ".facts{margin:0 0 6px}\n"
    "table{border-collapse:collapse;font-size:12.5px;margin:8px 0}"
    "th,td{padding:2px 8px;border-bottom:1px solid #e4e4e8;text-align:left}th{white-space:nowrap}"
    "td{overflow-wrap:break-word}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "summary{cursor:pointer;margin-top:12px;color:#335}\n"
    "svg.chart{display:block;margin:4px 0 8px;max-width:100%;height:auto}\n"
    "svg text{font-family:'DejaVu Sans',sans-serif;font-size:11px;fill:#333}\n"
    "svg text.lbl{font-family:'DejaVu Sans Mono',monospace}\n"
    "svg text.tick{fill:#666;font-size:10px}svg text.axt{font-size:11.5px;fill:#444}"
    "svg text.ptitle{font-weight:bold}svg text.seg{fill:#fff;font-size:10.5px}"
    "svg .note{fill:#777}\n"
    "svg line.grid{stroke:#e3e3e8}svg line.zero{stroke:#888}"
    "svg line.mean{stroke:#222;stroke-dasharray:4 3}\n"
    ".legend{font-size:12px;margin:2px 0 4px}.legend span{margin-right:14px;white-space:nowrap}"
    ".sw{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px}\n"
    /* Okabe-Ito and Tol's colours: tell apart with colour-blindness */
    ".c-main{fill:#4477aa;background:#4477aa}.c-pass{fill:#228833;background:#228833}"
    ".c-fail,td.c-fail{fill:#cc3311;background:#cc3311;color:#fff}"
    ".c-other{fill:#999;background:#999}td.c-pass{color:#fff}\n"
    ".c0{fill:#332288;background:#332288}.c1{fill:#88ccee;background:#88ccee}"
    ".c2{fill:#44aa99;background:#44aa99}.c3{fill:#117733;background:#117733}"
    ".c4{fill:#999933;background:#999933}.c5{fill:#ddcc77;background:#ddcc77}"
    ".c6{fill:#cc6677;background:#cc6677}.c7{fill:#882255;background:#882255}"
    ".c8{fill:#aa4499;background:#aa4499}.c9{fill:#ee7733;background:#ee7733}"
    ".c10{fill:#0077bb;background:#0077bb}\n"
    ".m0{fill:#4477aa;background:#4477aa}.m1{fill:#ee6677;background:#ee6677}"
    ".m2{fill:#228833;background:#228833}.m3{fill:#ccbb44;background:#ccbb44}"
    ".m4{fill:#66ccee;background:#66ccee}.m5{fill:#aa3377;background:#aa3377}"
    ".m6{fill:#ee7733;background:#ee7733}.m7{fill:#009988;background:#009988}"
    ".m8{fill:#bbbbbb;background:#bbbbbb}\n";

int rpt_report_html(const struct rpt_report *r, char **html, size_t *len, struct sb_err *err)
{
    struct page pg0 = { 0 }, *pg = &pg0;
    *html = NULL;
    *len = 0;
    const char *title = r->title ? r->title : "subbit report";
    P("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
    E(title);
    P("</title>\n<style>\n%s</style></head>\n<body><main>\n<header><h1>", css);
    E(title);
    P("</h1>\n<p class=\"sub\">subbit %s &middot; from ", SUBBIT_VERSION);
    const char **name = scratch(pg, r->n_docs, sizeof *name);
    for (size_t i = 0; name && i < r->n_docs; i++)
        name[i] = r->docs[i].name;
    const size_t k = name ? common_dir(name, r->n_docs) : 0;
    if (k) {
        dir_of(pg, r->docs[0].name, k);
        P(": ");
    }
    for (size_t i = 0; i < r->n_docs; i++) {
        P("%s", i ? ", " : "");
        E(r->docs[i].name + k);
        P(" (%s)", rpt_kind_name(r->docs[i].kind));
    }
    P("</p></header>\n");
    if (r->n_cmps)
        section_verify(pg, r);
    if (r->n_ppls)
        section_ppl(pg, r);
    if (r->n_mems)
        section_mem(pg, r);
    for (size_t i = 0; i < r->n_runs; i++)          /* the long per-tensor detail last */
        section_run(pg, &r->runs[i]);
    P("<footer class=\"sub\">Written by subbit report: one file, no script, nothing fetched."
      "</footer>\n</main></body></html>\n");
    for (size_t i = 0; i < pg->n_tmp; i++)
        sb_free(pg->tmp[i]);
    sb_free(pg->tmp);
    if (pg->b.oom) {
        sb_free(pg->b.p);
        return sb_err_set(err, SB_ENOMEM, "out of memory rendering the report");
    }
    *html = pg->b.p;
    *len = pg->b.n;
    return SB_OK;
}

int rpt_report_write(const struct rpt_report *r, const char *path, unsigned flags,
                     struct sb_err *err)
{
    char *html;
    size_t len;
    struct fmt_out o;
    int rc = rpt_report_html(r, &html, &len, err);
    if (rc != SB_OK)
        return rc;
    if ((rc = fmt_out_open(&o, path, flags, err)) == SB_OK) {
        if ((rc = fmt_out_write(&o, html, len, err)) == SB_OK)
            rc = fmt_out_commit(&o, err);
        else
            fmt_out_abort(&o);
    }
    sb_free(html);
    return rc;
}

int rpt_render(const struct cJSON *const *docs, const char *const *names, size_t n,
               const char *path, unsigned flags, struct sb_err *err)
{
    struct rpt_report *r;
    int rc = rpt_report_new(&r, err);
    for (size_t i = 0; rc == SB_OK && i < n; i++)
        rc = rpt_report_add_doc(r, names && names[i] ? names[i] : "document", docs[i], err);
    if (rc == SB_OK)
        rc = rpt_report_write(r, path, flags, err);
    rpt_report_free(r);
    return rc;
}
