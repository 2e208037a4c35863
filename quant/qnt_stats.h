/* qnt_stats.h: quantization error statistics, accumulated in double.
 * Calling sequence: zero-initialise, qnt_err_stats_add() any number of times
 * (chunks in a fixed order give the same sums), qnt_err_stats_finish(). Not
 * thread-safe on one struct: give each thread its own and add them serially. */
#ifndef QNT_STATS_H
#define QNT_STATS_H

#include <stddef.h>
#include <stdint.h>

struct qnt_err_stats {
    double rmse;        /* sqrt(sum_sq_err / n), after finish (0 when n = 0) */
    double sqnr_db;     /* 10 log10(sum_sq_ref / sum_sq_err); +inf when the error is 0 */
    double max_abs;     /* max |ref - got| (running) */
    double sum_sq_ref;  /* sum ref^2 (running) */
    double sum_sq_err;  /* sum (ref - got)^2 (running) */
    uint64_t n;         /* elements added */
};

/*! qnt_err_stats_add() : add n pairs (ref[i], got[i]). */
void qnt_err_stats_add(struct qnt_err_stats *st, const float *ref, const float *got, size_t n);

/*! qnt_err_stats_merge() : add the running sums of b into a (for per-thread stats). */
void qnt_err_stats_merge(struct qnt_err_stats *a, const struct qnt_err_stats *b);

/*! qnt_err_stats_finish() : compute rmse and sqnr_db from the sums. SQNR of an
 *  all-zero reference with a nonzero error is -inf; 0/0 (nothing to compare,
 *  or ref and error both zero) counts as exact: +inf. */
void qnt_err_stats_finish(struct qnt_err_stats *st);

#endif
