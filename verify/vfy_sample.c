/* vfy_sample.c: greedy / temperature / top-p sampling (vfy_sample.h), the
 * procedure of llama2.c run.c: softmax of logits / temp, then either a draw
 * from the whole distribution or from the smallest set of most likely tokens
 * whose mass exceeds top_p. */
#include "vfy_sample.h"

#include <math.h>
#include <stdlib.h>

#include "sb_alloc.h"
#include "vfy_metrics.h"

int vfy_sampler_init(struct vfy_sampler *s, size_t n_vocab, float temp, float top_p,
                     uint64_t seed, struct sb_err *err)
{
    s->buf = NULL;
    if (n_vocab == 0 || !(temp >= 0.0f) || !(top_p > 0.0f))
        return sb_err_set(err, SB_EINVAL, "sampler: bad parameters (temperature %g, top-p %g)",
                          (double)temp, (double)top_p);
    s->n_vocab = n_vocab;
    s->temp = temp;
    s->top_p = top_p;
    s->state = seed ? seed : 0x9E3779B97F4A7C15ull;
    if (temp > 0.0f && top_p < 1.0f) {
        s->buf = sb_malloc(n_vocab * sizeof *s->buf);
        if (!s->buf)
            return sb_err_set(err, SB_ENOMEM, "sampler: out of memory");
    }
    return SB_OK;
}

void vfy_sampler_release(struct vfy_sampler *s)
{
    sb_free(s->buf);
    s->buf = NULL;
}

float vfy_sampler_random(struct vfy_sampler *s)
{
    s->state ^= s->state >> 12;
    s->state ^= s->state << 25;
    s->state ^= s->state >> 27;
    return (float)((s->state * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

static int cmp_desc(const void *a, const void *b)
{
    const struct vfy_prob_index *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int32_t vfy_sampler_next(struct vfy_sampler *s, float *logits)
{
    const size_t n = s->n_vocab;
    if (s->temp == 0.0f)
        return vfy_argmax(logits, n);
    float mx = logits[0];
    for (size_t i = 1; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        logits[i] = expf((logits[i] - mx) / s->temp);
        sum += logits[i];
    }
    for (size_t i = 0; i < n; i++)
        logits[i] = (float)(logits[i] / sum);
    const float coin = vfy_sampler_random(s);
    if (s->top_p >= 1.0f || !s->buf) {
        float cdf = 0.0f;
        for (size_t i = 0; i < n; i++) {
            cdf += logits[i];
            if (coin < cdf)
                return (int32_t)i;
        }
        return (int32_t)(n - 1);
    }
    /* nucleus: candidates sorted by probability; cut where the mass passes top_p */
    const float cutoff = (1.0f - s->top_p) / (float)(n - 1 ? n - 1 : 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (logits[i] >= cutoff)
            s->buf[m++] = (struct vfy_prob_index){ logits[i], (int32_t)i };
    qsort(s->buf, m, sizeof *s->buf, cmp_desc);
    float cum = 0.0f;
    size_t last = m - 1;
    for (size_t i = 0; i < m; i++) {
        cum += s->buf[i].p;
        if (cum > s->top_p) {
            last = i;
            break;
        }
    }
    const float r = coin * cum;
    float cdf = 0.0f;
    for (size_t i = 0; i <= last; i++) {
        cdf += s->buf[i].p;
        if (r < cdf)
            return s->buf[i].i;
    }
    return s->buf[last].i;
}
