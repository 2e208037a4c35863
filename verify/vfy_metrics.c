/* vfy_metrics.c: NLL, KLD, top-1 and their summaries (vfy_metrics.h). */
#include "vfy_metrics.h"

#include <math.h>
#include <stdlib.h>

#include "sb_alloc.h"

double vfy_logsumexp(const float *l, size_t n)
{
    double mx = -INFINITY, s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (l[i] > mx)
            mx = l[i];
    for (size_t i = 0; i < n; i++)
        s += exp((double)l[i] - mx);
    return mx + log(s);
}

double vfy_nll(const float *l, size_t n, int32_t target)
{
    return vfy_logsumexp(l, n) - (double)l[target];
}

double vfy_kld(const float *ref, const float *model, size_t n)
{
    const double lp = vfy_logsumexp(ref, n), lq = vfy_logsumexp(model, n);
    double k = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double a = (double)ref[i] - lp, b = (double)model[i] - lq;
        k += exp(a) * (a - b);
    }
    return k < 0.0 ? 0.0 : k;   /* a NaN is kept: it must fail a gate, not pass as 0 */
}

bool vfy_logits_finite(const float *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(l[i]))
            return false;
    return true;
}

int32_t vfy_argmax(const float *l, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return (int32_t)b;
}

void vfy_nll_add(struct vfy_nll_acc *a, double nll)
{
    a->sum += nll;
    a->sum2 += nll * nll;
    a->n++;
}

double vfy_nll_mean(const struct vfy_nll_acc *a)
{
    return a->n ? a->sum / (double)a->n : 0.0;
}

double vfy_nll_se(const struct vfy_nll_acc *a)
{
    if (a->n < 2)
        return 0.0;
    const double m = a->sum / (double)a->n, var = a->sum2 / (double)a->n - m * m;
    return var > 0.0 ? sqrt(var / (double)(a->n - 1)) : 0.0;
}

int vfy_kld_add(struct vfy_kld_acc *a, double kld, int same_top1)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        double *v = sb_realloc(a->v, cap * sizeof *v);
        if (!v)
            return SB_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = kld;
    a->sum += kld;
    if (kld > a->max)
        a->max = kld;
    a->top1_same += same_top1 != 0;
    return SB_OK;
}

void vfy_kld_release(struct vfy_kld_acc *a)
{
    sb_free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static int cmp_double(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

void vfy_kld_summarize(struct vfy_kld_acc *a, struct vfy_kld_summary *s)
{
    s->n = a->n;
    s->mean = s->median = s->p99 = s->max = s->top1 = 0.0;
    if (!a->n)
        return;
    qsort(a->v, a->n, sizeof *a->v, cmp_double);
    s->mean = a->sum / (double)a->n;
    s->median = a->n % 2 ? a->v[a->n / 2] : 0.5 * (a->v[a->n / 2 - 1] + a->v[a->n / 2]);
    size_t r = (size_t)ceil(0.99 * (double)a->n);
    s->p99 = a->v[(r ? r : 1) - 1];
    s->max = a->max;
    s->top1 = (double)a->top1_same / (double)a->n;
}
