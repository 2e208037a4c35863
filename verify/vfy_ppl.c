/* vfy_ppl.c: the perplexity protocols and the verify comparison (vfy_ppl.h). */
#include "vfy_ppl.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "par_comm.h"
#include "sb_alloc.h"

const char *vfy_protocol_name(enum vfy_protocol p)
{
    switch (p) {
    case VFY_PROTO_CHUNKS: return "chunks";
    case VFY_PROTO_STRIDE: return "stride";
    case VFY_PROTO_BLOCKS: return "blocks";
    }
    return "?";
}

int vfy_protocol_from_name(const char *s)
{
    for (int p = VFY_PROTO_CHUNKS; p <= VFY_PROTO_BLOCKS; p++)
        if (!strcmp(s, vfy_protocol_name((enum vfy_protocol)p)))
            return p;
    return -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- plan building ---------------------------------------------------------------- */

static int plan_push_tokens(struct vfy_plan *p, size_t *cap, const int32_t *ids, size_t n,
                            struct sb_err *err)
{
    if (p->n_tok + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < p->n_tok + n)
            c *= 2;
        int32_t *t = sb_realloc(p->tok, c * sizeof *t);
        if (!t)
            return sb_err_set(err, SB_ENOMEM, "out of memory for %zu tokens", c);
        p->tok = t;
        *cap = c;
    }
    memcpy(p->tok + p->n_tok, ids, n * sizeof *ids);
    p->n_tok += n;
    return SB_OK;
}

static int plan_push_window(struct vfy_plan *p, size_t *cap, size_t off, size_t n, size_t first,
                            struct sb_err *err)
{
    if (p->n_win == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        struct vfy_window *w = sb_realloc(p->win, c * sizeof *w);
        if (!w)
            return sb_err_set(err, SB_ENOMEM, "out of memory for %zu windows", c);
        p->win = w;
        *cap = c;
    }
    p->win[p->n_win++] = (struct vfy_window){ off, n, first };
    p->n_scored += n - first;
    return SB_OK;
}

/* chunks and stride over one token stream */
static int plan_stream(struct vfy_plan *p, const int32_t *ids, size_t n, int bos,
                       const struct vfy_ppl_opts *o, struct sb_err *err)
{
    const size_t C = o->n_ctx;
    size_t tcap = 0, wcap = 0;
    int rc;
    p->n_input = n;
    if (o->protocol == VFY_PROTO_CHUNKS) {
        if (C < 4)
            return sb_err_set(err, SB_EINVAL, "context %zu too small for the chunks protocol", C);
        size_t chunks = n / C;
        if (chunks == 0)
            return sb_err_set(err, SB_EINVAL, "text too short: %zu tokens, one chunk needs %zu", n, C);
        if (o->max_units && chunks > o->max_units)
            chunks = o->max_units;
        for (size_t c = 0; c < chunks; c++) {
            const size_t off = p->n_tok;
            if ((rc = plan_push_tokens(p, &tcap, ids + c * C, C, err)))
                return rc;
            if (bos >= 0)
                p->tok[off] = bos;
            if ((rc = plan_push_window(p, &wcap, off, C, C / 2 + 1, err)))
                return rc;
        }
        return SB_OK;
    }
    /* stride: HF's loop; targets prev_end .. end-1 of each window */
    const size_t S = o->stride ? o->stride : (C / 2 ? C / 2 : 1);
    if (n < 2)
        return sb_err_set(err, SB_EINVAL, "text too short: %zu tokens, nothing to score", n);
    if ((rc = plan_push_tokens(p, &tcap, ids, n, err)))
        return rc;
    size_t prev_end = 0;
    for (size_t b = 0; b < n; b += S) {
        const size_t end = b + C < n ? b + C : n, trg = end - prev_end;
        size_t first = (end - b) - trg;
        if (first < 1)
            first = 1;
        if (first < end - b && (rc = plan_push_window(p, &wcap, b, end - b, first, err)))
            return rc;
        prev_end = end;
        if (end == n || (o->max_units && p->n_win >= o->max_units))
            break;
    }
    return SB_OK;
}

int vfy_plan_from_ids(struct vfy_plan *p, const int32_t *ids, size_t n, int bos,
                      const struct vfy_ppl_opts *o, struct sb_err *err)
{
    memset(p, 0, sizeof *p);
    p->protocol = o->protocol;
    p->n_ctx = o->n_ctx;
    if (o->protocol == VFY_PROTO_BLOCKS)
        return sb_err_set(err, SB_EINVAL, "the blocks protocol needs text, not token ids");
    int rc = plan_stream(p, ids, n, bos, o, err);
    if (rc)
        vfy_plan_release(p);
    return rc;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           (c >= 0x1c && c <= 0x1f);
}

int vfy_blocks_split(const char *text, size_t len, const char *sep,
                     int (*fn)(void *ctx, const char *s, size_t n), void *ctx)
{
    const size_t sl = strlen(sep);
    size_t start = 0;
    while (start <= len) {
        size_t end = len;
        for (size_t i = start; sl && i + sl <= len; i++)
            if (!memcmp(text + i, sep, sl)) {
                end = i;
                break;
            }
        size_t a = start, b = end;
        while (a < b && is_ws((unsigned char)text[a]))
            a++;
        while (b > a && is_ws((unsigned char)text[b - 1]))
            b--;
        if (b > a) {
            int rc = fn(ctx, text + a, b - a);
            if (rc)
                return rc;
        }
        if (end == len)
            break;
        start = end + sl;
    }
    return 0;
}

struct blocks_ctx {
    struct vfy_plan *p;
    const struct vfy_tok *t;
    const struct vfy_ppl_opts *o;
    size_t tcap, wcap, n_blocks;
    struct sb_err *err;
    int rc;
};

static int block_cb(void *vctx, const char *s, size_t n)
{
    struct blocks_ctx *b = vctx;
    if (b->o->max_units && b->n_blocks >= b->o->max_units)
        return 1;
    int32_t *ids;
    size_t m;
    int rc = vfy_tok_encode(b->t, s, n, true, &ids, &m, b->err);
    if (rc) {
        b->rc = rc;
        return 1;
    }
    b->n_blocks++;
    b->p->n_input += m;
    if (m > b->o->n_ctx) {
        m = b->o->n_ctx;
        b->p->n_truncated++;
    }
    const size_t off = b->p->n_tok;
    if (m >= 2 && ((rc = plan_push_tokens(b->p, &b->tcap, ids, m, b->err)) ||
                   (rc = plan_push_window(b->p, &b->wcap, off, m, 1, b->err)))) {
        b->rc = rc;
        sb_free(ids);
        return 1;
    }
    sb_free(ids);
    return 0;
}

int vfy_plan_from_text(struct vfy_plan *p, const struct vfy_tok *t, const char *text, size_t len,
                       const struct vfy_ppl_opts *o, struct sb_err *err)
{
    memset(p, 0, sizeof *p);
    p->protocol = o->protocol;
    p->n_ctx = o->n_ctx;
    int rc;
    if (o->n_ctx < 2)
        return sb_err_set(err, SB_EINVAL, "context %zu too small", o->n_ctx);
    if (o->protocol == VFY_PROTO_BLOCKS) {
        struct blocks_ctx b = { p, t, o, 0, 0, 0, err, 0 };
        vfy_blocks_split(text, len, o->block_sep ? o->block_sep : "\n\n", block_cb, &b);
        rc = b.rc;
        if (!rc && p->n_scored == 0)
            rc = sb_err_set(err, SB_EINVAL, "no block with a token to score");
    } else {
        int32_t *ids;
        size_t n;
        if ((rc = vfy_tok_encode(t, text, len, vfy_tok_bos(t) >= 0, &ids, &n, err)))
            return rc;
        rc = plan_stream(p, ids, n, vfy_tok_bos(t), o, err);
        sb_free(ids);
    }
    if (rc)
        vfy_plan_release(p);
    return rc;
}

void vfy_plan_release(struct vfy_plan *p)
{
    sb_free(p->tok);
    sb_free(p->win);
    memset(p, 0, sizeof *p);
}

/* ---- running -------------------------------------------------------------------- */

static void finish(struct vfy_ppl_result *r, const struct vfy_nll_acc *a, double t0)
{
    r->sum_nll = a->sum;
    r->n_scored = a->n;
    r->mean_nll = vfy_nll_mean(a);
    r->se_nll = vfy_nll_se(a);
    r->ppl = exp(r->mean_nll);
    r->ppl_se = r->ppl * r->se_nll;
    r->seconds = now_s() - t0;
    r->tok_per_s = r->seconds > 0 ? (double)r->n_forwarded / r->seconds : 0.0;
}

/* ---- windows across ranks ---------------------------------------------------- */

/* The windows of this rank (par_comm.h): contiguous, balanced by tokens
 * forwarded. Each rank keeps what every scored position gave (vals, k doubles
 * a position, in window order); the ranks' lists are gathered in rank order,
 * which is window order, and summed by the caller position by position, the
 * order one process sums in: the same bits at any rank count. */
static int split_windows(const struct vfy_plan *p, size_t *lo, size_t *hi, size_t *n_vals,
                         struct sb_err *err)
{
    uint64_t *cum = sb_malloc((p->n_win + 1) * sizeof *cum);
    if (!cum)
        return sb_err_set(err, SB_ENOMEM, "out of memory for %zu windows", p->n_win);
    cum[0] = 0;
    for (size_t w = 0; w < p->n_win; w++)
        cum[w + 1] = cum[w] + p->win[w].n;
    uint64_t a, b;
    par_split(p->n_win, cum, par_rank(), par_size(), &a, &b);
    sb_free(cum);
    *lo = (size_t)a;
    *hi = (size_t)b;
    *n_vals = 0;
    for (size_t w = *lo; w < *hi; w++)
        *n_vals += p->win[w].n - p->win[w].first;
    return SB_OK;
}

/* every rank's values, in window order (one process: its own) */
static int gather_vals(int rc, double **vals, size_t n_vals, size_t k, size_t n_scored,
                       struct sb_err *err)
{
    if (par_size() == 1 || (rc = par_agree(rc, err)) != SB_OK)
        return rc;
    void *all = NULL;
    uint64_t n_all = 0;
    if ((rc = par_allgather(*vals, n_vals * k * sizeof **vals, &all, &n_all, NULL, err)) != SB_OK)
        return rc;
    if (n_all != n_scored * k * sizeof **vals) {
        sb_free(all);
        return sb_err_set(err, SB_EINVAL, "ranks scored %llu values, the plan has %zu",
                          (unsigned long long)(n_all / sizeof **vals), n_scored * k);
    }
    sb_free(*vals);
    *vals = all;
    return SB_OK;
}

static void count_windows(const struct vfy_plan *p, struct vfy_ppl_result *r)
{
    r->n_windows = p->n_win;
    r->n_forwarded = 0;
    for (size_t w = 0; w < p->n_win; w++)
        r->n_forwarded += p->win[w].n;
}

int vfy_ppl_run(struct vfy_ctx *ctx, const struct vfy_plan *p, const struct sb_progress *progress,
                struct vfy_ppl_result *r, struct sb_err *err)
{
    memset(r, 0, sizeof *r);
    if (vfy_ctx_n_ctx(ctx) < p->n_ctx)
        return sb_err_set(err, SB_EINVAL, "context %zu smaller than the plan's %zu",
                          vfy_ctx_n_ctx(ctx), p->n_ctx);
    const size_t V = (size_t)vfy_model_info(vfy_ctx_model(ctx))->vocab;
    /* logits only for the positions that are scored (chunks: the second half) */
    size_t rows = 1, lo, hi, n_vals, nv = 0, run_n = 0;
    double run_sum = 0;
    for (size_t w = 0; w < p->n_win; w++)
        if (p->win[w].n - (p->win[w].first - 1) > rows)
            rows = p->win[w].n - (p->win[w].first - 1);
    int rc = split_windows(p, &lo, &hi, &n_vals, err);
    if (rc != SB_OK)
        return rc;
    float *lg = sb_malloc(rows * V * sizeof *lg);
    double *vals = sb_malloc((n_vals ? n_vals : 1) * sizeof *vals);
    const double t0 = now_s();
    if (!lg || !vals)
        rc = sb_err_set(err, SB_ENOMEM, "out of memory for logits (%zu x %zu)", rows, V);
    else if (par_fault("ppl"))
        rc = sb_err_set(err, SB_EIO, "fault injected (SUBBIT_PAR_FAULT)");
    for (size_t w = lo; w < hi && rc == SB_OK; w++) {
        const struct vfy_window *win = &p->win[w];
        const int32_t *tok = p->tok + win->off;
        /* a window starts again at position 0 (vfy_forward: nothing of the last
         * window is read); logits are needed from position first-1 on, earlier
         * ones only fill the cache */
        const size_t pre = win->first - 1;
        if (pre && (rc = vfy_forward(ctx, tok, pre, 0, lg, false, err)))
            break;
        if ((rc = vfy_forward(ctx, tok + pre, win->n - pre, pre, lg, true, err)))
            break;
        for (size_t j = win->first; j < win->n && rc == SB_OK; j++) {
            const float *l = lg + (j - 1 - pre) * V;
            if (!vfy_logits_finite(l, V))
                rc = sb_err_set(err, SB_EFORMAT, "logits are not finite (NaN or inf) at token "
                                "%zu of window %zu: no perplexity (the weights hold a NaN or "
                                "inf, or the arithmetic overflows)", j, w + 1);
            else
                vals[nv++] = vfy_nll(l, V, tok[j]);
        }
        if (rc != SB_OK)
            break;
        /* so far, this rank's share: a progress hook may show a running perplexity */
        r->n_forwarded += win->n;
        r->n_windows++;
        for (; run_n < nv; run_n++)
            run_sum += vals[run_n];
        r->sum_nll = run_sum;
        r->n_scored = nv;
        sb_progress_report(progress, w + 1 - lo, hi - lo);
    }
    sb_free(lg);
    if ((rc = gather_vals(rc, &vals, n_vals, 1, p->n_scored, err)) == SB_OK) {
        struct vfy_nll_acc acc = { 0 };
        for (size_t i = 0; i < p->n_scored; i++)
            vfy_nll_add(&acc, vals[i]);
        count_windows(p, r);
        finish(r, &acc, t0);
    }
    sb_free(vals);
    return rc;
}

/* a verified position: both NLLs, the KLD, whether the top-1 agree, and
 * whether each model's logits were finite (if not, the rest is unset) */
enum { VV_NLL_A, VV_NLL_B, VV_KLD, VV_SAME, VV_FA, VV_FB, VV_N };

int vfy_verify_run(struct vfy_ctx *ref, struct vfy_ctx *model, const struct vfy_plan *p,
                   const struct sb_progress *progress, struct vfy_verify_result *r,
                   struct sb_err *err)
{
    memset(r, 0, sizeof *r);
    const size_t V = (size_t)vfy_model_info(vfy_ctx_model(ref))->vocab;
    const size_t V2 = (size_t)vfy_model_info(vfy_ctx_model(model))->vocab;
    if (V != V2)
        return sb_err_set(err, SB_EINVAL, "vocabulary sizes differ: %zu and %zu", V, V2);
    if (vfy_ctx_n_ctx(ref) < p->n_ctx || vfy_ctx_n_ctx(model) < p->n_ctx)
        return sb_err_set(err, SB_EINVAL, "context smaller than the plan's %zu", p->n_ctx);
    size_t lo, hi, n_vals, nv = 0;
    int rc = split_windows(p, &lo, &hi, &n_vals, err);
    if (rc != SB_OK)
        return rc;
    float *la = sb_malloc(p->n_ctx * V * sizeof *la), *lb = sb_malloc(p->n_ctx * V * sizeof *lb);
    double *vals = sb_malloc((n_vals ? n_vals : 1) * VV_N * sizeof *vals);
    struct vfy_nll_acc aa = { 0 }, ab = { 0 }, ad = { 0 };
    struct vfy_kld_acc k = { 0 };
    size_t skipped = 0;   /* positions with non-finite logits in either */
    const double t0 = now_s();
    if (!la || !lb || !vals)
        rc = sb_err_set(err, SB_ENOMEM, "out of memory for logits (%zu x %zu)", p->n_ctx, V);
    else if (par_fault("verify"))
        rc = sb_err_set(err, SB_EIO, "fault injected (SUBBIT_PAR_FAULT)");
    for (size_t w = lo; w < hi && rc == SB_OK; w++) {
        const struct vfy_window *win = &p->win[w];
        const int32_t *tok = p->tok + win->off;
        const size_t pre = win->first - 1;
        if (pre && ((rc = vfy_forward(ref, tok, pre, 0, la, false, err)) ||
                    (rc = vfy_forward(model, tok, pre, 0, lb, false, err))))
            break;
        if ((rc = vfy_forward(ref, tok + pre, win->n - pre, pre, la, true, err)) ||
            (rc = vfy_forward(model, tok + pre, win->n - pre, pre, lb, true, err)))
            break;
        for (size_t j = win->first; j < win->n; j++, nv++) {
            const float *a = la + (j - 1 - pre) * V, *b = lb + (j - 1 - pre) * V;
            double *v = vals + nv * VV_N;
            memset(v, 0, VV_N * sizeof *v);
            v[VV_FA] = vfy_logits_finite(a, V);
            v[VV_FB] = vfy_logits_finite(b, V);
            if (v[VV_FA] == 0.0 || v[VV_FB] == 0.0)
                continue;   /* counted, in no statistic */
            v[VV_NLL_A] = vfy_nll(a, V, tok[j]);
            v[VV_NLL_B] = vfy_nll(b, V, tok[j]);
            v[VV_KLD] = vfy_kld(a, b, V);
            v[VV_SAME] = vfy_argmax(a, V) == vfy_argmax(b, V);
        }
        r->ref.n_forwarded += win->n;   /* so far, this rank's: for a progress hook */
        r->model.n_forwarded += win->n;
        r->ref.n_windows = r->model.n_windows = w + 1 - lo;
        sb_progress_report(progress, w + 1 - lo, hi - lo);
    }
    sb_free(la);
    sb_free(lb);
    if ((rc = gather_vals(rc, &vals, n_vals, VV_N, p->n_scored, err)) != SB_OK)
        goto out;
    for (size_t i = 0; i < p->n_scored; i++) {
        const double *v = vals + i * VV_N;
        r->ref.n_nonfinite += v[VV_FA] == 0.0;
        r->model.n_nonfinite += v[VV_FB] == 0.0;
        if (v[VV_FA] == 0.0 || v[VV_FB] == 0.0) {
            skipped++;
            continue;
        }
        vfy_nll_add(&aa, v[VV_NLL_A]);
        vfy_nll_add(&ab, v[VV_NLL_B]);
        vfy_nll_add(&ad, v[VV_NLL_B] - v[VV_NLL_A]);
        if (vfy_kld_add(&k, v[VV_KLD], v[VV_SAME] != 0.0)) {
            rc = sb_err_set(err, SB_ENOMEM, "out of memory for per-token KLD");
            goto out;
        }
    }
    count_windows(p, &r->ref);
    count_windows(p, &r->model);
    finish(&r->ref, &aa, t0);
    finish(&r->model, &ab, t0);
    vfy_kld_summarize(&k, &r->kld);
    r->ln_ratio = vfy_nll_mean(&ad);
    r->ln_ratio_se = vfy_nll_se(&ad);
    r->ref.n_scored += skipped;   /* scored, and failed */
    r->model.n_scored += skipped;
    if (r->ref.n_nonfinite || r->model.n_nonfinite) {
        /* the finite positions alone would pass for the whole text: no figure */
        r->ref.ppl = r->ref.mean_nll = r->ref.ppl_se = NAN;
        r->model.ppl = r->model.mean_nll = r->model.ppl_se = NAN;
        r->kld.mean = r->kld.median = r->kld.p99 = r->kld.max = r->kld.top1 = NAN;
        r->ln_ratio = r->ln_ratio_se = NAN;
    }
    r->dppl = r->model.ppl - r->ref.ppl;
    r->dppl_pct = r->ref.ppl > 0 ? 100.0 * r->dppl / r->ref.ppl
                                 : isnan(r->dppl) ? NAN : 0.0;
out:
    vfy_kld_release(&k);
    sb_free(vals);
    return rc;
}

bool vfy_verify_gates(const struct vfy_verify_result *r, const struct vfy_gates *g,
                      struct vfy_gate_check *failed)
{
    struct vfy_gate_check f = { false, false, false, false };
    /* written as !(x <= limit): a NaN fails every gate it meets */
    const double d = g->dppl_pct ? r->dppl_pct : r->dppl;
    f.dppl = g->dppl && !(d <= g->max_dppl);
    f.kld = g->max_kld >= 0 && !(r->kld.mean <= g->max_kld);
    f.top1 = g->min_top1 >= 0 && !(r->kld.top1 >= g->min_top1);
    f.nonfinite = r->ref.n_nonfinite || r->model.n_nonfinite;
    if (f.nonfinite) {   /* every gate set fails, whatever the figures say */
        f.dppl = g->dppl;
        f.kld = g->max_kld >= 0;
        f.top1 = g->min_top1 >= 0;
    }
    if (failed)
        *failed = f;
    return !(f.dppl || f.kld || f.top1);
}
