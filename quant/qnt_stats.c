/* qnt_stats.c: error statistics between a reference and a reconstruction. */
#include "qnt_stats.h"

#include <math.h>

void qnt_err_stats_add(struct qnt_err_stats *st, const float *ref, const float *got, size_t n)
{
    double sr = 0, se = 0, mx = st->max_abs;
    for (size_t i = 0; i < n; i++) {
        const double r = ref[i], e = r - (double)got[i];
        sr += r * r;
        se += e * e;
        if (fabs(e) > mx || e != e)
            mx = fabs(e);
    }
    st->sum_sq_ref += sr;
    st->sum_sq_err += se;
    st->max_abs = mx;
    st->n += n;
}

void qnt_err_stats_merge(struct qnt_err_stats *a, const struct qnt_err_stats *b)
{
    a->sum_sq_ref += b->sum_sq_ref;
    a->sum_sq_err += b->sum_sq_err;
    if (b->max_abs > a->max_abs || b->max_abs != b->max_abs)
        a->max_abs = b->max_abs;
    a->n += b->n;
}

void qnt_err_stats_finish(struct qnt_err_stats *st)
{
    st->rmse = st->n ? sqrt(st->sum_sq_err / (double)st->n) : 0.0;
    if (st->sum_sq_err == 0.0)
        st->sqnr_db = INFINITY;
    else if (st->sum_sq_ref == 0.0)
        st->sqnr_db = -INFINITY;
    else
        st->sqnr_db = 10.0 * log10(st->sum_sq_ref / st->sum_sq_err);
}
