/* vfy_sample.h: choosing the next token from logits: greedy (temperature 0),
 * temperature, and top-p (nucleus), with a seeded generator so a run repeats
 * exactly. The sampler owns its scratch; one sampler per thread. */
#ifndef VFY_SAMPLE_H
#define VFY_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

struct vfy_prob_index {
    float p;
    int32_t i;
};

struct vfy_sampler {
    size_t n_vocab;
    float temp;              /* 0: greedy */
    float top_p;             /* in (0, 1]; 1 or more: no nucleus cut */
    uint64_t state;          /* xorshift64* state */
    struct vfy_prob_index *buf;
};

/*! vfy_sampler_init() : @return SB_OK, SB_EINVAL (temp < 0, top_p <= 0,
 *  n_vocab 0), SB_ENOMEM. Release with vfy_sampler_release. */
int vfy_sampler_init(struct vfy_sampler *s, size_t n_vocab, float temp, float top_p,
                     uint64_t seed, struct sb_err *err);
void vfy_sampler_release(struct vfy_sampler *s);

/*! vfy_sampler_next() : the next token; logits[n_vocab] are overwritten
 *  (turned into probabilities) unless the sampler is greedy. */
int32_t vfy_sampler_next(struct vfy_sampler *s, float *logits);

/*! vfy_sampler_random() : the next uniform float in [0, 1) (for tests). */
float vfy_sampler_random(struct vfy_sampler *s);

#endif
