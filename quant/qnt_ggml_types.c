/* qnt_ggml_types.c: the generic half of qnt_ggml_types.h - per-type layouts,
 * dequantizers, the `_ref` and scalar-lane dots over the unpacked chunks of
 * qnt_ggml_types_impl.h, the dispatch to the AVX2 / AVX-512 dots
 * (qnt_ggml_types_x86.c), the uniform type table and a row-parallel matvec.
 * The per-type bit layouts live in qnt_ggml_q.c, qnt_ggml_kq.c, qnt_ggml_iq.c. */
#include "qnt_ggml_types.h"
#include "sb_cpu.h"
#include "qnt_ggml_types_impl.h"
#include "qnt_cast.h"

#include <math.h>
#include <string.h>

/* ---- layouts ------------------------------------------------------------- */

#ifdef QNT_GX_HAVE_X86
#define FAST(T, fn) fn
#else
#define FAST(T, fn) qnt_gx_unpack_##T
#endif

#define LAYOUT(T, blck, add, fast) \
    static const struct qnt_gx_layout layout_##T = { \
        blck, sizeof(struct qnt_block_##T), add, qnt_gx_unpack_##T, fast \
    };

LAYOUT(q4_1, 32, 1, FAST(q4_1, qnt_gx_unpack_q4_1_avx2))
LAYOUT(q5_0, 32, 0, FAST(q5_0, qnt_gx_unpack_q5_0_avx2))
LAYOUT(q5_1, 32, 1, FAST(q5_1, qnt_gx_unpack_q5_1_avx2))
LAYOUT(q2_K, 256, -1, FAST(q2_K, qnt_gx_unpack_q2_K_avx2))
LAYOUT(q3_K, 256, 0, FAST(q3_K, qnt_gx_unpack_q3_K_avx2))
LAYOUT(q4_K, 256, -1, FAST(q4_K, qnt_gx_unpack_q4_K_avx2))
LAYOUT(q5_K, 256, -1, FAST(q5_K, qnt_gx_unpack_q5_K_avx2))
LAYOUT(q6_K, 256, 0, FAST(q6_K, qnt_gx_unpack_q6_K_avx2))
LAYOUT(q8_K, 256, 0, qnt_gx_unpack_q8_K)
LAYOUT(iq4_nl, 32, 0, FAST(iq4_nl, qnt_gx_unpack_iq4_nl_avx2))
LAYOUT(iq4_xs, 256, 0, FAST(iq4_xs, qnt_gx_unpack_iq4_xs_avx2))

const struct qnt_gx_layout *qnt_gx_layout_get(enum sb_dtype dt)
{
    switch (dt) {
    case SB_DTYPE_Q4_1: return &layout_q4_1;
    case SB_DTYPE_Q5_0: return &layout_q5_0;
    case SB_DTYPE_Q5_1: return &layout_q5_1;
    case SB_DTYPE_Q2_K: return &layout_q2_K;
    case SB_DTYPE_Q3_K: return &layout_q3_K;
    case SB_DTYPE_Q4_K: return &layout_q4_K;
    case SB_DTYPE_Q5_K: return &layout_q5_K;
    case SB_DTYPE_Q6_K: return &layout_q6_K;
    case SB_DTYPE_Q8_K: return &layout_q8_K;
    case SB_DTYPE_IQ4_NL: return &layout_iq4_nl;
    case SB_DTYPE_IQ4_XS: return &layout_iq4_xs;
    default: return NULL;
    }
}

/* ---- generic kernels ------------------------------------------------------ */

/* Chunk k of a row: its first block and its length in elements. */
static const void *chunk_at(const struct qnt_gx_layout *l, const void *w, size_t e0)
{
    return (const uint8_t *)w + e0 / l->blck * l->block_bytes;
}

/* Element e of an unpacked chunk, exactly as ggml's dequantizer computes it. */
static inline float weight(const struct qnt_gx_layout *l, const struct qnt_gx_chunk *c, size_t e)
{
    const float v = (float)c->q[e] * c->mul[e / 16];
    if (l->off_sign > 0)
        return v + c->off[e / 16];
    if (l->off_sign < 0)
        return v - c->off[e / 16];
    return v;
}

void qnt_gx_dequantize(const struct qnt_gx_layout *l, const void *restrict x, float *restrict y,
                       size_t n)
{
    struct qnt_gx_chunk c;
    for (size_t e0 = 0; e0 < n; e0 += QNT_GX_CHUNK) {
        const size_t len = n - e0 < QNT_GX_CHUNK ? n - e0 : QNT_GX_CHUNK;
        l->unpack(chunk_at(l, x, e0), len, &c);
        for (size_t e = 0; e < len; e++) {
            y[e0 + e] = weight(l, &c, e);
        }
    }
}

float qnt_gx_dot_ref(const struct qnt_gx_layout *l, const void *restrict w,
                     const float *restrict x, size_t n)
{
    struct qnt_gx_chunk c;
    double s = 0.0;
    for (size_t e0 = 0; e0 < n; e0 += QNT_GX_CHUNK) {
        const size_t len = n - e0 < QNT_GX_CHUNK ? n - e0 : QNT_GX_CHUNK;
        l->unpack(chunk_at(l, w, e0), len, &c);
        for (size_t e = 0; e < len; e++) {
            s += (double)weight(l, &c, e) * (double)x[e0 + e];
        }
    }
    return (float)s;
}

float qnt_gx_dot_scalar(const struct qnt_gx_layout *l, const void *restrict w,
                        const float *restrict x, size_t n)
{
    struct qnt_gx_chunk c;
    float run[16] = { 0 };
    for (size_t e0 = 0; e0 < n; e0 += QNT_GX_CHUNK) {
        const size_t len = n - e0 < QNT_GX_CHUNK ? n - e0 : QNT_GX_CHUNK;
        l->unpack(chunk_at(l, w, e0), len, &c);
        float acc[2][16] = { { 0 } };
        for (size_t g = 0; g < len / 16; g++) {
            const float *xg = x + e0 + 16 * g;
            for (int k = 0; k < 16; k++) {
                const float v = weight(l, &c, 16 * g + (size_t)k);
                acc[g % 2][k] = fmaf(v, xg[k], acc[g % 2][k]);
            }
        }
        for (int k = 0; k < 16; k++)
            run[k] += acc[0][k] + acc[1][k];
    }
    for (int w8 = 8; w8 >= 1; w8 /= 2)
        for (int k = 0; k < w8; k++)
            run[k] += run[k + w8];
    return run[0];
}

/* ---- dispatch -------------------------------------------------------------- */

typedef float (*gx_dot_fn)(const struct qnt_gx_layout *, const void *restrict,
                           const float *restrict, size_t);

struct gx_isa {
    const char *name;
    gx_dot_fn dot;
};

static const struct gx_isa isa_scalar = { "scalar", qnt_gx_dot_scalar };
#ifdef QNT_GX_HAVE_X86
static const struct gx_isa isa_avx2 = { "avx2", qnt_gx_dot_avx2 };
static const struct gx_isa isa_avx512 = { "avx512", qnt_gx_dot_avx512 };

/* what the CPU has, whatever the forced-reference switch says (sb_cpu.h) */
static int cpu_avx2(void)
{
    const unsigned m = SB_CPU_AVX2 | SB_CPU_FMA;
    return (sb_cpu_features() & m) == m;
}

static int cpu_avx512(void)
{
    const unsigned m = SB_CPU_AVX2 | SB_CPU_FMA | SB_CPU_AVX512F | SB_CPU_AVX512BW;
    return (sb_cpu_features() & m) == m;
}
#endif

static const struct gx_isa *gx_forced;

static const struct gx_isa *pick(void)
{
    static const struct gx_isa *picked;
    const struct gx_isa *f = __atomic_load_n(&gx_forced, __ATOMIC_ACQUIRE);
    if (f)
        return f;
    f = __atomic_load_n(&picked, __ATOMIC_ACQUIRE);
    if (!f) {
        f = &isa_scalar;
#ifdef QNT_GX_HAVE_X86
        if (cpu_avx512())
            f = &isa_avx512;
        else if (cpu_avx2())
            f = &isa_avx2;
#endif
        __atomic_store_n(&picked, f, __ATOMIC_RELEASE);
    }
    return f;
}

int qnt_ggml_types_set_isa(const char *name)
{
    const struct gx_isa *f = NULL;
    if (name && strcmp(name, "scalar") == 0)
        f = &isa_scalar;
#ifdef QNT_GX_HAVE_X86
    else if (name && strcmp(name, "avx2") == 0 && cpu_avx2())
        f = &isa_avx2;
    else if (name && strcmp(name, "avx512") == 0 && cpu_avx512())
        f = &isa_avx512;
#endif
    if (name && !f)
        return -1;
    __atomic_store_n(&gx_forced, f, __ATOMIC_RELEASE);
    return 0;
}

const char *qnt_ggml_types_dot_name(void)
{
    return sb_cpu_ref() ? "ref" : pick()->name;
}

static float gx_dot(const struct qnt_gx_layout *l, const void *w, const float *x, size_t n)
{
    if (sb_cpu_ref())
        return qnt_gx_dot_ref(l, w, x, n);
    return pick()->dot(l, w, x, n);
}

/* ---- typed entry points and the uniform table --------------------------- */

/* The unsuffixed quantizers: the AVX2 group fits for the k-quants (the same
 * bytes) and the iq4 types, `_ref` for the rest (already fast, or not
 * vectorised yet: q3_K's code-by-code refinement). */
static int quant_avx2(void)
{
#ifdef QNT_GX_HAVE_X86
    return sb_cpu_has(SB_CPU_AVX2);
#else
    return 0;
#endif
}

#ifdef QNT_GX_HAVE_X86
#define FAST_FIT(kind, fit) (quant_avx2() ? fit##_avx2 : fit##_ref)
#else
#define FAST_FIT(kind, fit) fit##_ref
#endif

static void quantize_q2_K_fast(const float *restrict x, struct qnt_block_q2_K *restrict y, size_t n)
{
    qnt_gx_q2_K_quantize_fit(x, y, n, FAST_FIT(min, qnt_gx_q2_K_fit));
}

static void quantize_q4_K_fast(const float *restrict x, struct qnt_block_q4_K *restrict y, size_t n)
{
    qnt_gx_q4_K_quantize_fit(x, y, n, FAST_FIT(k45, qnt_gx_k45_fit));
}

static void quantize_q5_K_fast(const float *restrict x, struct qnt_block_q5_K *restrict y, size_t n)
{
    qnt_gx_q5_K_quantize_fit(x, y, n, FAST_FIT(k45, qnt_gx_k45_fit));
}

static void quantize_q6_K_fast(const float *restrict x, struct qnt_block_q6_K *restrict y, size_t n)
{
    qnt_gx_q6_K_quantize_fit(x, y, n, FAST_FIT(q6, qnt_gx_q6_K_fit));
}

static void quantize_iq4_nl_fast(const float *restrict x, struct qnt_block_iq4_nl *restrict y,
                                 size_t n)
{
    qnt_gx_iq4_nl_quantize_fit(x, y, n, FAST_FIT(iq4, qnt_gx_iq4_fit8));
}

static void quantize_iq4_xs_fast(const float *restrict x, struct qnt_block_iq4_xs *restrict y,
                                 size_t n)
{
    qnt_gx_iq4_xs_quantize_fit(x, y, n, FAST_FIT(iq4, qnt_gx_iq4_fit8));
}

#define DEFINE_TYPE(T, DT, BLCK, QUANT) \
    void qnt_##T##_quantize(const float *restrict x, struct qnt_block_##T *restrict y, size_t n) \
    { \
        QUANT(x, y, n); \
    } \
    void qnt_##T##_dequantize(const struct qnt_block_##T *restrict x, float *restrict y, size_t n) \
    { \
        qnt_gx_dequantize(&layout_##T, x, y, n); \
    } \
    float qnt_##T##_dot_ref(const struct qnt_block_##T *restrict w, const float *restrict x, \
                            size_t n) \
    { \
        return qnt_gx_dot_ref(&layout_##T, w, x, n); \
    } \
    float qnt_##T##_dot(const struct qnt_block_##T *restrict w, const float *restrict x, size_t n) \
    { \
        return gx_dot(&layout_##T, w, x, n); \
    } \
    static void T##_quantize_ref_v(const float *restrict x, void *restrict y, size_t n) \
    { \
        qnt_##T##_quantize_ref(x, y, n); \
    } \
    static void T##_quantize_v(const float *restrict x, void *restrict y, size_t n) \
    { \
        qnt_##T##_quantize(x, y, n); \
    } \
    static void T##_dequantize_v(const void *restrict x, float *restrict y, size_t n) \
    { \
        qnt_gx_dequantize(&layout_##T, x, y, n); \
    } \
    static float T##_dot_ref_v(const void *restrict w, const float *restrict x, size_t n) \
    { \
        return qnt_gx_dot_ref(&layout_##T, w, x, n); \
    } \
    static float T##_dot_v(const void *restrict w, const float *restrict x, size_t n) \
    { \
        return gx_dot(&layout_##T, w, x, n); \
    } \
    static const struct qnt_ggml_type type_##T = { \
        DT, #T, BLCK, sizeof(struct qnt_block_##T), \
        T##_quantize_ref_v, T##_quantize_v, T##_dequantize_v, T##_dot_ref_v, T##_dot_v \
    };

DEFINE_TYPE(q4_1, SB_DTYPE_Q4_1, 32, qnt_q4_1_quantize_ref)
DEFINE_TYPE(q5_0, SB_DTYPE_Q5_0, 32, qnt_q5_0_quantize_ref)
DEFINE_TYPE(q5_1, SB_DTYPE_Q5_1, 32, qnt_q5_1_quantize_ref)
DEFINE_TYPE(q2_K, SB_DTYPE_Q2_K, 256, quantize_q2_K_fast)
DEFINE_TYPE(q3_K, SB_DTYPE_Q3_K, 256, qnt_q3_K_quantize_ref)
DEFINE_TYPE(q4_K, SB_DTYPE_Q4_K, 256, quantize_q4_K_fast)
DEFINE_TYPE(q5_K, SB_DTYPE_Q5_K, 256, quantize_q5_K_fast)
DEFINE_TYPE(q6_K, SB_DTYPE_Q6_K, 256, quantize_q6_K_fast)
DEFINE_TYPE(q8_K, SB_DTYPE_Q8_K, 256, qnt_q8_K_quantize_ref)
DEFINE_TYPE(iq4_nl, SB_DTYPE_IQ4_NL, 32, quantize_iq4_nl_fast)
DEFINE_TYPE(iq4_xs, SB_DTYPE_IQ4_XS, 256, quantize_iq4_xs_fast)

const struct qnt_ggml_type *qnt_ggml_type_get(enum sb_dtype dt)
{
    switch (dt) {
    case SB_DTYPE_Q4_1: return &type_q4_1;
    case SB_DTYPE_Q5_0: return &type_q5_0;
    case SB_DTYPE_Q5_1: return &type_q5_1;
    case SB_DTYPE_Q2_K: return &type_q2_K;
    case SB_DTYPE_Q3_K: return &type_q3_K;
    case SB_DTYPE_Q4_K: return &type_q4_K;
    case SB_DTYPE_Q5_K: return &type_q5_K;
    case SB_DTYPE_Q6_K: return &type_q6_K;
    case SB_DTYPE_Q8_K: return &type_q8_K;
    case SB_DTYPE_IQ4_NL: return &type_iq4_nl;
    case SB_DTYPE_IQ4_XS: return &type_iq4_xs;
    default: return NULL;
    }
}

void qnt_ggml_type_matvec(const struct qnt_ggml_type *t, const void *w, size_t rows, size_t cols,
                          const float *x, float *y, int ref)
{
    const size_t row_bytes = cols / t->blck * t->block_bytes;
    float (*dot)(const void *restrict, const float *restrict, size_t) = ref ? t->dot_ref : t->dot;
    const long long nr = (long long)rows;
#pragma omp parallel for schedule(static) if (!ref && rows > 1)
    for (long long r = 0; r < nr; r++)
        y[r] = dot((const uint8_t *)w + (size_t)r * row_bytes, x, cols);
}
