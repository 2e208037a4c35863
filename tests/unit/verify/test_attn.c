/* test_attn.c: the core's attention kernels (verify/vfy_attn_impl.h).
 * - vfy_attn_exp against libm's double exp on a dense grid of [-87, 0]
 *   (within 2 ulp of the float result), 0 below -87, exp(0) = 1 exactly;
 * - the reference tile against an independent float64 softmax attention
 *   written here (scores, max, exp, weighted values): within 2e-6 of the
 *   largest |value| per output (float rounding of hd-long dots and a sum of
 *   up to 100 weights, each term < 1, accumulates far less than that);
 * - every kernel this CPU has equals the reference bit for bit (the order of
 *   record is fixed: one sequential chain per output element), for head
 *   sizes that fill and that do not fill a vector (8, 20, 64), grouped-query
 *   heads, batches that leave short tiles (n = 1, 5, 13), a batch starting
 *   past position 0, at 1 and 3 threads. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "vfy_attn_impl.h"

START_TEST(test_exp_of_record)
{
    ck_assert(vfy_attn_exp(0.0f) == 1.0f);
    ck_assert(vfy_attn_exp(-87.5f) == 0.0f);
    ck_assert(vfy_attn_exp(-INFINITY) == 0.0f);
    ck_assert(isnan(vfy_attn_exp(NAN)));
    double worst = 0.0;
    for (int i = 0; i <= 870000; i++) {
        const float x = -(float)i * 1e-4f;
        const double want = exp((double)x);
        const float got = vfy_attn_exp(x);
        const double ulp = (double)nextafterf((float)want, INFINITY) - (double)(float)want;
        const double e = fabs((double)got - want) / ulp;
        worst = e > worst ? e : worst;
    }
    ck_assert_msg(worst <= 2.0, "exp error %.3f ulp", worst);
}
END_TEST

struct case_ {
    size_t nh, nkv, hd, n, pos0, n_ctx;
};
static const struct case_ cases[] = {
    { 2, 2, 8, 1, 0, 4 },      /* one query at position 0 */
    { 4, 2, 20, 13, 0, 40 },   /* hd not a vector multiple, grouped heads, short last tile */
    { 3, 1, 64, 5, 37, 60 },   /* a batch after a filled cache */
    { 2, 2, 64, 1, 99, 100 },  /* generation: one query over 100 keys */
};

struct bufs {
    float *q, *kt, *v, *o, *scratch;
    struct vfy_attn_args a;
};

static void make(struct bufs *b, const struct case_ *c, uint64_t seed)
{
    const size_t qd = c->nh * c->hd, kvd = c->nkv * c->hd;
    b->q = malloc(c->n * qd * sizeof(float));
    b->kt = malloc(vfy_attn_kpad(c->n_ctx) * kvd * sizeof(float));
    b->v = malloc(c->n_ctx * kvd * sizeof(float));
    b->o = malloc(c->n * qd * sizeof(float));
    b->scratch = malloc(4 * VFY_ATTN_ROWS * c->n_ctx * sizeof(float));
    test_fill_normal(b->q, c->n * qd, seed);
    test_fill_normal(b->kt, vfy_attn_kpad(c->n_ctx) * kvd, seed + 1);
    test_fill_normal(b->v, c->n_ctx * kvd, seed + 2);
    for (size_t i = 0; i < c->n * qd; i++)
        b->q[i] *= 3.0f;   /* peaked softmaxes too */
    b->a = (struct vfy_attn_args){ .q = b->q, .kt = b->kt, .v = b->v, .o = b->o, .n = c->n,
                                   .pos0 = c->pos0, .n_ctx = c->n_ctx, .nh = c->nh,
                                   .nkv = c->nkv, .hd = c->hd,
                                   .scale = 1.0f / sqrtf((float)c->hd), .scratch = b->scratch };
}

static void unmake(struct bufs *b)
{
    free(b->q);
    free(b->kt);
    free(b->v);
    free(b->o);
    free(b->scratch);
}

START_TEST(test_ref_is_softmax_attention)
{
    const struct case_ *c = &cases[_i];
    struct bufs b;
    make(&b, c, 100u + (uint64_t)_i);
    ck_assert_int_eq(vfy_attn_run(&b.a, 1, VFY_ATTN_REF), 0);
    const size_t qd = c->nh * c->hd, rep = c->nh / c->nkv;
    double *s = malloc(c->n_ctx * sizeof(double));
    for (size_t i = 0; i < c->n; i++)
        for (size_t h = 0; h < c->nh; h++) {
            const size_t p = c->pos0 + i, g = h / rep;
            double m = -INFINITY, z = 0.0, vmax = 0.0;
            for (size_t t = 0; t <= p; t++) {
                double acc = 0.0;
                for (size_t d = 0; d < c->hd; d++)
                    acc += (double)b.q[i * qd + h * c->hd + d] *
                           b.kt[g * c->hd * vfy_attn_kpad(c->n_ctx) +
                                (t / 16) * 16 * c->hd + d * 16 + t % 16];
                s[t] = acc / sqrt((double)c->hd);
                m = s[t] > m ? s[t] : m;
            }
            for (size_t t = 0; t <= p; t++)
                z += s[t] = exp(s[t] - m);
            for (size_t d = 0; d < c->hd; d++) {
                double o = 0.0;
                for (size_t t = 0; t <= p; t++) {
                    const double v = b.v[(g * c->n_ctx + t) * c->hd + d];
                    o += s[t] / z * v;
                    vmax = fabs(v) > vmax ? fabs(v) : vmax;
                }
                const double got = b.o[i * qd + h * c->hd + d];
                ck_assert_msg(fabs(got - o) <= 2e-6 * vmax, "case %d row %zu head %zu d %zu: "
                              "%.9g vs %.9g", _i, i, h, d, got, o);
            }
        }
    free(s);
    unmake(&b);
}
END_TEST

START_TEST(test_kernels_are_ref)
{
    const struct case_ *c = &cases[_i];
    struct bufs b;
    make(&b, c, 200u + (uint64_t)_i);
    const size_t nout = c->n * c->nh * c->hd;
    float *want = malloc(nout * sizeof(float));
    ck_assert_int_eq(vfy_attn_run(&b.a, 1, VFY_ATTN_REF), 0);
    memcpy(want, b.o, nout * sizeof(float));
    int ran = 0;
    for (int k = VFY_ATTN_AVX2; k <= VFY_ATTN_AVX512; k++)
        for (int th = 1; th <= 3; th += 2) {
            memset(b.o, 0xff, nout * sizeof(float));
            if (vfy_attn_run(&b.a, th, k) != 0)
                continue;
            ran++;
            for (size_t e = 0; e < nout; e++)
                ck_assert_msg(memcmp(&want[e], &b.o[e], sizeof(float)) == 0,
                              "case %d kernel %d threads %d element %zu: %a vs %a", _i, k, th, e,
                              (double)b.o[e], (double)want[e]);
        }
    /* the batch split does not matter: row by row equals the whole batch */
    if (c->n > 1) {
        memset(b.o, 0, nout * sizeof(float));
        const size_t qd = c->nh * c->hd;
        for (size_t i = 0; i < c->n; i++) {
            struct vfy_attn_args one = b.a;
            one.q = b.q + i * qd;
            one.o = b.o + i * qd;
            one.n = 1;
            one.pos0 = c->pos0 + i;
            ck_assert_int_eq(vfy_attn_run(&one, 1, VFY_ATTN_BEST), 0);
        }
        ck_assert_mem_eq(want, b.o, nout * sizeof(float));
    }
    if (!ran)
        fprintf(stderr, "test_kernels_are_ref: this CPU has no vector kernel; reference only\n");
    free(want);
    unmake(&b);
}
END_TEST

TEST_SUITE(verify_attn, 60, NULL, NULL, TEST(test_exp_of_record),
           TEST_LOOP(test_ref_is_softmax_attention, 4), TEST_LOOP(test_kernels_are_ref, 4))
