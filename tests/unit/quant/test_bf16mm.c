/* test_bf16mm.c: bf16 weights times bf16 activations (qnt_bf16mm_impl.h).
 * - step(): hand-worked cases (exact sums, subnormal inputs and accumulator
 *   as zero, the flush of a tiny result decided after rounding to 24 bits:
 *   2^-126 - 2^-150 flushed, 2^-126 - 2^-151 kept, overflow, NaN), and, where
 *   the CPU has AVX512-BF16, against vdpbf16ps itself on 2^20 random lanes
 *   biased to subnormals, infinities, NaNs and results near 2^-126;
 * - the reference sum within the documented bound of the double dot of the
 *   weights with the unrounded activations (sum |w||x| (2^-9 + 1e-5));
 * - the kernel equals the reference bit for bit: shapes from one block to
 *   4128 columns, short row groups, n across the token tiles, row ranges,
 *   1 and 3 threads, NaN / infinite / subnormal weights and activations;
 * - qnt_matmul takes it for bf16 (fast path "avx512bf16"), an allocation
 *   failure gives the same bits. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_bf16mm_impl.h"
#include "qnt_cast.h"
#include "qnt_matvec.h"
#include "qnt_matvec_impl.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "test_util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

static uint32_t bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

static float fl(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* bf16 of 2^e (a normal exponent) with sign s */
static uint16_t p2(int e, int s)
{
    return (uint16_t)(((unsigned)(e + 127) << 7) | (s ? 0x8000u : 0u));
}

START_TEST(test_step_hand)
{
    /* 1 + 1 * 1 = 2; 3 + 1.5 * -2 = 0 */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(1.0f, 0x3f80, 0x3f80)), bits(2.0f));
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(3.0f, 0x3fc0, 0xc000)), bits(0.0f));
    /* one rounding: 1 + 2^-24 * (1 + 2^-7) is above the halfway point 1 + 2^-24 */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(1.0f, 0x3381, 0x3f80)), bits(1.0f) + 1);
    /* subnormal factor (0x0001 = 2^-133) counts as 0; subnormal accumulator too */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(1.0f, 0x0001, 0x7f00)), bits(1.0f));
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(fl(0x00000005), 0x3f80, 0x0000)), 0u);
    /* near 2^-126: 2^-126 - 2^-126 * 2^-24 = (2 - 2^-23) 2^-127 has 24 bits,
     * below 2^-126: flushed to +0 (rounding to the format alone gives 2^-126) */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(FLT_MIN, p2(-126, 0), p2(-24, 1))), 0u);
    /* 2^-126 - 2^-151 rounds to 2^-126 at 24 bits: kept */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(FLT_MIN, p2(-126, 0), p2(-25, 1))),
                      bits(FLT_MIN));
    /* -2^-126 + 2^-127 = -2^-127: tiny, a zero of its sign */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(-FLT_MIN, p2(-126, 0), p2(-1, 0))), 0x80000000u);
    /* overflow to +inf, inf * 0 = NaN */
    ck_assert_uint_eq(bits(qnt_bf16dp_step_ref(FLT_MAX, 0x7f7f, 0x3f80)), 0x7f800000u);
    ck_assert(isnan(qnt_bf16dp_step_ref(0.0f, 0x7f80, 0x0000)));
}
END_TEST

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    return test_rand_u64(&rs);
}

/* a bf16: often subnormal, huge / inf / NaN, or with an exponent near -63
 * (products near 2^-126) */
static uint16_t rand_bf16(void)
{
    const uint64_t r = rnd();
    uint16_t h = (uint16_t)(r >> 8);
    switch (r % 8) {
    case 0: return h & 0x807f;
    case 1: return (uint16_t)((h & 0x80ff) | 0x7f00);
    case 2: case 3: return (uint16_t)((h & 0x807f) | (((uint16_t)(64 + (r >> 30) % 9 - 4)) << 7));
    default: return h;
    }
}

static float rand_acc(void)
{
    const uint64_t r = rnd();
    uint32_t v = (uint32_t)r;
    switch ((r >> 32) % 6) {
    case 0: v &= 0x807fffffu; break;                                       /* subnormal */
    case 1: v = (v & 0x80000003u) | 0x00800000u; break;                    /* 2^-126 + tiny */
    case 2: v = (v & 0x807fffffu) | (uint32_t)((r >> 40) % 3) << 23; break; /* near 2^-126 */
    default: break;
    }
    return fl(v);
}

#ifdef HAVE_X86
__attribute__((target("avx512f,avx512bf16"))) static void hw_dp(float acc[16], const uint16_t a[32],
                                                                 const uint16_t b[32])
{
    __m512 c = _mm512_loadu_ps(acc);
    c = _mm512_dpbf16_ps(c, (__m512bh)_mm512_loadu_si512(a), (__m512bh)_mm512_loadu_si512(b));
    _mm512_storeu_ps(acc, c);
}
#endif

/* two steps of the reference == one vdpbf16ps lane (odd pair element first) */
START_TEST(test_step_is_the_instruction)
{
#ifdef HAVE_X86
    if (!(sb_cpu_features() & SB_CPU_AVX512BF16))
        return;   /* nothing to compare with */
    long bad = 0;
    for (int it = 0; it < 65536; it++) {
        float acc[16], ref[16];
        uint16_t a[32], b[32];
        for (int l = 0; l < 16; l++)
            acc[l] = rand_acc();
        for (int e = 0; e < 32; e++) {
            a[e] = rand_bf16();
            b[e] = rand_bf16();
        }
        memcpy(ref, acc, sizeof ref);
        hw_dp(acc, a, b);
        for (int l = 0; l < 16; l++) {
            float r = qnt_bf16dp_step_ref(ref[l], a[2 * l + 1], b[2 * l + 1]);
            r = qnt_bf16dp_step_ref(r, a[2 * l], b[2 * l]);
            if (!(isnan(r) && isnan(acc[l])) && bits(r) != bits(acc[l]) && bad++ < 5)
                fprintf(stderr, "c %08x a %04x %04x b %04x %04x: hw %08x ref %08x\n",
                        bits(ref[l]), a[2 * l + 1], a[2 * l], b[2 * l + 1], b[2 * l],
                        bits(acc[l]), bits(r));
        }
    }
    ck_assert_int_eq(bad, 0);
#endif
}
END_TEST

static uint16_t *make_w(size_t rows, size_t cols, uint64_t seed)
{
    uint16_t *w = malloc(rows * cols * 2);
    float *v = malloc(rows * cols * sizeof *v);
    test_fill_normal(v, rows * cols, seed);
    qnt_f32_to_bf16_array_ref(v, w, rows * cols);
    free(v);
    return w;
}

/* the reference within sum |w||x| (2^-9 + 1e-5) of the exact dot */
START_TEST(test_ref_bound)
{
    const size_t rows = 9, cols = 1024, n = 3;
    uint16_t *w = make_w(rows, cols, 11);
    float *X = malloc(n * cols * sizeof *X), Y[27];
    test_fill_normal(X, n * cols, 12);
    for (size_t j = 0; j < cols; j++)
        X[j] *= 1e3f;   /* scale does not matter */
    qnt_bf16mm_rows(QNT_BF16MM_REF, w, cols, 0, rows, X, n, Y);
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < rows; r++) {
            double want = 0, mag = 0;
            for (size_t j = 0; j < cols; j++) {
                const double wv = qnt_bf16_to_f32_ref(w[r * cols + j]);
                want += wv * X[t * cols + j];
                mag += fabs(wv * X[t * cols + j]);
            }
            const double err = fabs(Y[t * rows + r] - want);
            ck_assert_msg(err <= mag * (0x1p-9 + 1e-5), "row %zu token %zu: %.9g vs %.9g", r, t,
                          (double)Y[t * rows + r], want);
            /* and it did round: not the f32 dot's answer to 1e-5 for every row */
        }
    free(w);
    free(X);
}
END_TEST

static const struct { size_t rows, cols; } shapes[] = {
    { 1, 32 }, { 3, 64 }, { 5, 96 }, { 17, 288 }, { 37, 1024 }, { 6, 4128 },
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

START_TEST(test_kernel_equals_ref)
{
    const size_t rows = shapes[_i].rows, cols = shapes[_i].cols;
    const size_t ns[] = { 1, 2, 3, 4, 5, 9, 33 };
    uint16_t *w = make_w(rows, cols, 100 + (uint64_t)_i);
    float *X = malloc(33 * cols * sizeof *X);
    float *A = malloc(33 * rows * sizeof *A), *B = malloc(33 * rows * sizeof *B);
    test_fill_normal(X, 33 * cols, 7 + (uint64_t)_i);
    /* specials: a NaN and an infinite weight, subnormal weights and inputs, a
     * NaN activation, one near the top of the range */
    if (rows >= 3) {
        w[2 * cols + 1] = 0x7fc1;
        w[1 * cols + cols - 1] = 0xff80;
        w[0] = 0x0003;
    }
    X[4 * cols + cols / 2] = NAN;
    X[3 * cols] = 1e-40f;
    X[5 * cols + 1] = 3e38f;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const size_t n = ns[ni];
        const size_t r0 = rows > 2 ? 1 : 0, nr = rows > 2 ? rows - 2 : rows;
        for (int part = 0; part < 2; part++) {
            const size_t row0 = part ? r0 : 0, nrows = part ? nr : rows;
            qnt_bf16mm_rows(QNT_BF16MM_REF, w, cols, row0, nrows, X, n, A);
            for (int th = 1; th <= 3; th += 2) {
#ifdef _OPENMP
                omp_set_num_threads(th);
#endif
                memset(B, 0xA5, n * nrows * sizeof *B);
                if (qnt_bf16mm_rows(QNT_BF16MM_AVX512BF16, w, cols, row0, nrows, X, n, B) != 0)
                    continue;   /* not on this CPU */
                ck_assert_msg(memcmp(A, B, n * nrows * sizeof *A) == 0,
                              "%zux%zu n %zu rows %zu+%zu threads %d", rows, cols, n, row0,
                              nrows, th);
            }
        }
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    free(w);
    free(X);
    free(A);
    free(B);
}
END_TEST

/* qnt_matmul of bf16 is this kernel where the CPU has it; no memory, same bits */
START_TEST(test_through_matmul)
{
    const size_t rows = 21, cols = 352, n = 6;
    uint16_t *w = make_w(rows, cols, 300);
    float *X = malloc(n * cols * sizeof *X), *A = malloc(n * rows * sizeof *A);
    float *B = malloc(n * rows * sizeof *B);
    test_fill_normal(X, n * cols, 9);
    if (qnt_matvec_set_isa("avx512bf16") != 0)
        goto out;   /* not on this CPU */
    ck_assert_str_eq(qnt_matvec_fast_name(), sb_cpu_ref() ? "ref" : "avx512bf16");
    qnt_matmul(SB_DTYPE_BF16, w, rows * cols * 2, NULL, rows, cols, X, n, A);
    qnt_bf16mm_rows(QNT_BF16MM_REF, w, cols, 0, rows, X, n, B);
    if (!sb_cpu_ref())
        ck_assert_mem_eq(A, B, n * rows * sizeof *A);
    sb_alloc_fail_after(0);
    qnt_matmul(SB_DTYPE_BF16, w, rows * cols * 2, NULL, rows, cols, X, n, B);
    sb_alloc_fail_after(-1);
    ck_assert_mem_eq(A, B, n * rows * sizeof *A);
out:
    qnt_matvec_set_isa(NULL);
    free(w);
    free(X);
    free(A);
    free(B);
}
END_TEST

TEST_SUITE(quant_bf16mm, 60, NULL, NULL,
    TEST(test_step_hand), TEST(test_step_is_the_instruction), TEST(test_ref_bound),
    TEST_LOOP(test_kernel_equals_ref, N_SHAPES), TEST(test_through_matmul))
