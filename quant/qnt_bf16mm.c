/* qnt_bf16mm.c: bf16 x bf16 products (qnt_bf16mm_impl.h): the scalar
 * reference of the sum of record, and the dispatch with the activations'
 * rounding. */
#include "qnt_bf16mm_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "qnt_cast.h"
#include "sb_alloc.h"
#include "sb_cpu.h"

static float daz(float v)
{
    return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v;
}

float qnt_bf16dp_step_ref(float c, uint16_t u, uint16_t v)
{
    const float a = daz(qnt_bf16_to_f32_ref(u)), b = daz(qnt_bf16_to_f32_ref(v));
    c = daz(c);
    float r = fmaf(a, b, c);
    /* tininess after rounding with an unbounded exponent: an exact result
     * below 2^-126 - 2^-151 rounds (to 24 bits) below 2^-126 and is flushed,
     * although rounding to the format gave 2^-126. a * b + c is exact in
     * double whenever it is that close to 2^-126 (a * b has 16 significant
     * bits, c 24: a cancellation down there leaves fewer than 53). */
    if (fabsf(r) == FLT_MIN && fabs((double)a * b + (double)c) < (double)FLT_MIN - 0x1p-151)
        r = copysignf(0.0f, r);
    return daz(r);
}

static float bf16mm_dot_ref(const uint16_t *w, const uint16_t *x, size_t cols)
{
    float acc[16] = { 0 };
    for (size_t b = 0; b < cols / QNT_BF16MM_QK; b++)
        for (size_t l = 0; l < 16; l++) {
            const size_t e = b * QNT_BF16MM_QK + 2 * l;
            acc[l] = qnt_bf16dp_step_ref(acc[l], w[e + 1], x[e + 1]);
            acc[l] = qnt_bf16dp_step_ref(acc[l], w[e], x[e]);
        }
    float s[8];
    for (int i = 0; i < 8; i++)
        s[i] = acc[i] + acc[i + 8];
    for (int i = 0; i < 4; i++)
        s[i] = s[i] + s[i + 4];
    const float y = (s[0] + s[2]) + (s[1] + s[3]);
    return isnan(y) ? NAN : y;
}

void qnt_bf16mm_scalar(const struct qnt_bf16mm_args *a)
{
    for (size_t t = 0; t < a->n; t++)
        for (size_t i = 0; i < a->nrows; i++)
            a->Y[t * a->nrows + i] =
                bf16mm_dot_ref(a->w + (a->row0 + i) * a->cols, a->x + t * a->cols, a->cols);
}

int qnt_bf16mm_available(void)
{
#ifdef QNT_BF16MM_X86
    return sb_cpu_has(SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512BF16);
#else
    return 0;
#endif
}

#define BF16MM_STACK_COLS 16384u

int qnt_bf16mm_rows(int kernel, const void *w, size_t cols, size_t row0, size_t nrows,
                    const float *X, size_t n, float *Y)
{
    void (*fn)(const struct qnt_bf16mm_args *) = qnt_bf16mm_scalar;
#ifdef QNT_BF16MM_X86
    if (kernel == QNT_BF16MM_AVX512BF16) {
        if (!qnt_bf16mm_available())
            return -1;
        fn = qnt_bf16mm_avx512bf16;
    }
#endif
    if (kernel != QNT_BF16MM_REF && fn == qnt_bf16mm_scalar)
        return -1;
    struct qnt_bf16mm_args a;
    memset(&a, 0, sizeof a);
    a.w = w;
    a.cols = cols;
    a.row0 = row0;
    a.nrows = nrows;
    a.threads = kernel == QNT_BF16MM_REF;
    /* the reference rounds with the reference too (the same bits) */
    void (*round)(const float *restrict, uint16_t *restrict, size_t) =
        kernel == QNT_BF16MM_REF ? qnt_f32_to_bf16_array_ref : qnt_f32_to_bf16;
    uint16_t *buf = n && cols <= SIZE_MAX / 2 / n ? sb_malloc_aligned(n * cols * 2) : NULL;
    if (buf) {
        round(X, buf, n * cols);
        a.x = buf;
        a.n = n;
        a.Y = Y;
        fn(&a);
        sb_free_aligned(buf);
        return 0;
    }
    /* no memory: token by token from the stack, the same bits */
    uint16_t xb[BF16MM_STACK_COLS];
    for (size_t t = 0; t < n; t++) {
        if (cols > BF16MM_STACK_COLS) {
            for (size_t i = 0; i < nrows; i++)
                Y[t * nrows + i] = NAN;
            continue;
        }
        round(X + t * cols, xb, cols);
        a.x = xb;
        a.n = 1;
        a.Y = Y + t * nrows;
        fn(&a);
    }
    return 0;
}
