/* vfy_metrics.h: what verify and ppl measure over scored positions: NLL of the
 * target from a log-softmax in double, KL(P_ref || P_model), top-1 agreement,
 * and the summaries (mean, standard error, median, p99, max, perplexity).
 * Pure functions and small accumulators; no I/O. */
#ifndef VFY_METRICS_H
#define VFY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

/*! vfy_logsumexp() : log(sum_v exp(l[v])), in double, shifted by the max. */
double vfy_logsumexp(const float *l, size_t n);
/*! vfy_nll() : -log softmax(l)[target], in double. */
double vfy_nll(const float *l, size_t n, int32_t target);
/*! vfy_kld() : KL(P || Q) = sum_v p_v (log p_v - log q_v) for P = softmax(ref),
 *  Q = softmax(model), in double; >= 0 up to rounding (clamped at 0); NaN
 *  stays NaN (never clamped to a passing 0). */
double vfy_kld(const float *ref, const float *model, size_t n);
/*! vfy_logits_finite() : true when every l[v] is finite (no NaN, no inf). */
bool vfy_logits_finite(const float *l, size_t n);
/*! vfy_argmax() : index of the largest logit (the first on ties). */
int32_t vfy_argmax(const float *l, size_t n);

/* Running NLL statistics. Zero-initialise. */
struct vfy_nll_acc {
    double sum, sum2;
    size_t n;
};
void vfy_nll_add(struct vfy_nll_acc *a, double nll);
double vfy_nll_mean(const struct vfy_nll_acc *a);
/*! standard error of the mean NLL: sqrt(var / (n - 1)), var the population variance
 *  (llama.cpp's perplexity uncertainty); 0 for n < 2. */
double vfy_nll_se(const struct vfy_nll_acc *a);

/* KLD values kept for the median and p99. */
struct vfy_kld_acc {
    double *v;
    size_t n, cap;
    double sum, max;
    size_t top1_same;
};
/*! vfy_kld_add() : one position's KLD and whether the two argmaxes agree.
 *  @return SB_OK or SB_ENOMEM (no message). */
int vfy_kld_add(struct vfy_kld_acc *a, double kld, int same_top1);
void vfy_kld_release(struct vfy_kld_acc *a);

struct vfy_kld_summary {
    double mean, median, p99, max, top1;
    size_t n;
};
/*! vfy_kld_summarize() : sorts a->v in place; median averages the middle pair,
 *  p99 is the nearest-rank value (index ceil(0.99 n) - 1). */
void vfy_kld_summarize(struct vfy_kld_acc *a, struct vfy_kld_summary *s);

#endif
