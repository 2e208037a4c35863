/* test_ggml.c: ggml block quantizers (qnt_ggml.h).
 * - golden blocks worked out by hand from formats.md §2.5 (independent of the code);
 * - fast == `_ref` byte for byte over many seeds, with ties, zeros and extremes;
 * - dequantize(quantize(x)) within each format's error bound. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "qnt_cast.h"
#include "qnt_ggml.h"
#include "qnt_ggml_impl.h"
#include "test_util.h"

START_TEST(test_q8_0_golden)
{
    float x[32] = { 0 }, back[32];
    struct qnt_block_q8_0 b;
    x[0] = 127.0f;                          /* amax 127: d = 1 (fp16 0x3C00), 1/d = 1 */
    x[1] = 0.5f;                            /* ties go away from zero */
    x[2] = -0.5f;
    x[5] = 2.5f;
    x[6] = -2.5f;
    x[7] = 1.49f;
    x[8] = -126.5f;
    x[9] = 3.5f;                            /* round-to-even would give 4 here too; 2.5 tells */
    qnt_q8_0_quantize_ref(x, &b, 32);
    ck_assert_uint_eq(b.d, 0x3C00);
    static const int8_t want[10] = { 127, 1, -1, 0, 0, 3, -3, 1, -127, 4 };
    for (int j = 0; j < 10; j++)
        ck_assert_int_eq(b.qs[j], want[j]);
    for (int j = 10; j < 32; j++)
        ck_assert_int_eq(b.qs[j], 0);
    qnt_q8_0_dequantize(&b, back, 32);
    for (int j = 0; j < 10; j++)
        ck_assert(back[j] == (float)want[j]);
    struct qnt_block_q8_0 f;
    qnt_q8_0_quantize(x, &f, 32);
    ck_assert_mem_eq(&f, &b, sizeof b);
    /* zero block: d = 0, inverse 0, every code 0 */
    memset(x, 0, sizeof x);
    qnt_q8_0_quantize_ref(x, &b, 32);
    ck_assert_uint_eq(b.d, 0);
    for (int j = 0; j < 32; j++)
        ck_assert_int_eq(b.qs[j], 0);
}
END_TEST

START_TEST(test_q4_0_golden)
{
    float x[32] = { 0 }, back[32];
    struct qnt_block_q4_0 b;
    x[3] = -4.0f;                           /* first of the two largest magnitudes: m = -4 */
    x[10] = 4.0f;                           /* d = -4 / -8 = 0.5 (0x3800), 1/d = 2 */
    x[1] = 3.0f;                            /* 3*2 + 8.5 = 14.5 -> 14 */
    x[17] = -1.0f;                          /* -2 + 8.5 = 6.5 -> 6 */
    x[18] = 0.25f;                          /* 0.5 + 8.5 = 9 */
    qnt_q4_0_quantize_ref(x, &b, 32);
    ck_assert_uint_eq(b.d, 0x3800);
    /* codes: x3 -> 0 (m maps to 0), x10 -> 16.5 -> trunc 16 -> min 15, zeros -> 8 */
    ck_assert_uint_eq(b.qs[0], 0x88);
    ck_assert_uint_eq(b.qs[1], 0x6E);       /* element 1 = 14 low, element 17 = 6 high */
    ck_assert_uint_eq(b.qs[2], 0x98);       /* element 2 = 8, element 18 = 9 */
    ck_assert_uint_eq(b.qs[3], 0x80);
    ck_assert_uint_eq(b.qs[10], 0x8F);
    qnt_q4_0_dequantize(&b, back, 32);
    ck_assert(back[3] == -4.0f && back[10] == 3.5f && back[1] == 3.0f && back[17] == -1.0f);
    ck_assert(back[18] == 0.5f && back[0] == 0.0f);
    /* the sign rule: with +4 first, d = -0.5 and the codes flip */
    x[3] = 4.0f;
    x[10] = -4.0f;
    qnt_q4_0_quantize_ref(x, &b, 32);
    ck_assert_uint_eq(b.d, 0xB800);
    ck_assert_uint_eq(b.qs[3], 0x80);
    ck_assert_uint_eq(b.qs[10], 0x8F);
    ck_assert_uint_eq(b.qs[1] & 15, 2);     /* 3 * -2 + 8.5 = 2.5 -> 2 */
    struct qnt_block_q4_0 f;
    qnt_q4_0_quantize(x, &f, 32);
    ck_assert_mem_eq(&f, &b, sizeof b);
    /* all-zero block: m = 0, d = 0 / -8 = -0 (fp16 0x8000), all codes 8 */
    memset(x, 0, sizeof x);
    qnt_q4_0_quantize_ref(x, &b, 32);
    ck_assert_uint_eq(b.d, 0x8000);
    for (int j = 0; j < 16; j++)
        ck_assert_uint_eq(b.qs[j], 0x88);
}
END_TEST

/* One block, amax 1 (d = fp16 0x3C00): x0 = 1 (t 2), x32 = -1 (t 0), x64 = 0.4
 * (t 1), x96 = 0.5 (rounds away: t 2), x133 = -0.5 (t 0), x200 = -1 (t 0),
 * x250 = 1 (t 2); the rest 0 (t 1). */
static void tq_block(float *x)
{
    memset(x, 0, 256 * sizeof *x);
    x[0] = 1.0f;
    x[32] = -1.0f;
    x[64] = 0.4f;
    x[96] = 0.5f;
    x[133] = -0.5f;
    x[200] = -1.0f;
    x[250] = 1.0f;
}

START_TEST(test_tq2_0_golden)
{
    float x[256], back[256];
    struct qnt_block_tq2_0 b, f;
    tq_block(x);
    qnt_tq2_0_quantize_ref(x, &b, 256);
    ck_assert_uint_eq(b.d, 0x3C00);
    /* byte 32c + k, bits 2l: element 128c + 32l + k */
    ck_assert_uint_eq(b.qs[0], 0x92);       /* 2 | 0<<2 | 1<<4 | 2<<6 */
    ck_assert_uint_eq(b.qs[1], 0x55);
    ck_assert_uint_eq(b.qs[37], 0x54);      /* element 133 = 128 + 5: byte 37, bits 0-1 = 0 */
    ck_assert_uint_eq(b.qs[40], 0x45);      /* element 200 = 128 + 64 + 8: byte 40, bits 4-5 = 0 */
    ck_assert_uint_eq(b.qs[58], 0x95);      /* element 250 = 128 + 96 + 26: byte 58, bits 6-7 = 2 */
    qnt_tq2_0_dequantize(&b, back, 256);
    ck_assert(back[0] == 1.0f && back[32] == -1.0f && back[64] == 0.0f && back[96] == 1.0f);
    ck_assert(back[133] == -1.0f && back[250] == 1.0f && back[7] == 0.0f);
    qnt_tq2_0_quantize(x, &f, 256);
    ck_assert_mem_eq(&f, &b, sizeof b);
}
END_TEST

START_TEST(test_tq1_0_golden)
{
    float x[256], back[256];
    struct qnt_block_tq1_0 b, f;
    tq_block(x);
    qnt_tq1_0_quantize_ref(x, &b, 256);
    ck_assert_uint_eq(b.d, 0x3C00);
    /* qs[0] holds elements 0,32,64,96,128 = trits 2,0,1,2,1: v = 178, ceil(178*256/243) = 188 */
    ck_assert_uint_eq(b.qs[0], 188);
    ck_assert_uint_eq(b.qs[1], 128);        /* all ones: v = 121 -> 128 */
    ck_assert_uint_eq(b.qs[5], 127);        /* elements 5..133: last trit 0: v = 120 -> 127 */
    ck_assert_uint_eq(b.qs[40], 118);       /* element 200 = 160 + 40: qs[32 + 8], trit 2 = 0: v = 112 */
    ck_assert_uint_eq(b.qh[0], 127);        /* 4 ones and the implicit 0: v = 120 */
    ck_assert_uint_eq(b.qh[2], 136);        /* element 250 = 240 + 10: qh[2], trit 2 = 2: v = 129 */
    qnt_tq1_0_dequantize(&b, back, 256);
    for (int e = 0; e < 256; e++)
        ck_assert_msg(back[e] == (x[e] == 0.4f ? 0.0f : roundf(x[e])), "e=%d", e);
    qnt_tq1_0_quantize(x, &f, 256);
    ck_assert_mem_eq(&f, &b, sizeof b);
}
END_TEST

/* Random rows with planted edge cases: every 9th block all zero, some blocks
 * on an exact scale with ±0.5 ulp ties, tiny blocks (fp16 d underflows to 0,
 * the fp32 inverse still used), huge ones, and repeated max magnitudes. */
#define NX 8192
static void fill_edge(float *x, unsigned seed)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
    test_fill_normal(x, NX, seed);
    for (size_t b = 0; b < NX / 32; b++) {
        float *v = x + 32 * b;
        const unsigned kind = (unsigned)(test_rand_u64(&st) % 9);
        if (kind == 0)
            memset(v, 0, 32 * sizeof *v);
        else if (kind == 1) {               /* scale 1 with halves: q8_0 ties */
            for (int j = 0; j < 32; j++)
                v[j] = (float)((int)(test_rand_u64(&st) % 255) - 127) + ((j & 1) ? 0.5f : 0.0f);
            v[0] = 127.0f;
        } else if (kind == 2)
            for (int j = 0; j < 32; j++)
                v[j] *= 1e-9f;
        else if (kind == 3)
            for (int j = 0; j < 32; j++)
                v[j] *= 1e30f;
        else if (kind == 4) {               /* equal magnitudes of both signs */
            const float m = v[3] == 0.0f ? 1.0f : fabsf(v[3]) * 4.0f;
            v[(test_rand_u64(&st) % 16)] = -m;
            v[16 + (test_rand_u64(&st) % 16)] = m;
        } else if (kind == 5) {             /* ternary ties: ±amax/2 exactly */
            for (int j = 0; j < 32; j++)
                v[j] = (float)((int)(test_rand_u64(&st) % 5) - 2) * 0.5f;
        } else if (kind == 6) {             /* a few values only; sparse */
            for (int j = 0; j < 32; j++)
                if (test_rand_u64(&st) % 4)
                    v[j] = 0.0f;
        }
    }
}

START_TEST(test_fast_is_ref)
{
    static float x[NX];
    static struct qnt_block_q8_0 a8[NX / 32], b8[NX / 32];
    static struct qnt_block_q4_0 a4[NX / 32], b4[NX / 32];
    static struct qnt_block_tq1_0 a1[NX / 256], b1[NX / 256];
    static struct qnt_block_tq2_0 a2[NX / 256], b2[NX / 256];
    fill_edge(x, 1000u + (unsigned)_i);
    qnt_q8_0_quantize_ref(x, a8, NX);
    qnt_q4_0_quantize_ref(x, a4, NX);
    qnt_tq1_0_quantize_ref(x, a1, NX);
    qnt_tq2_0_quantize_ref(x, a2, NX);
#ifdef QNT_GGML_HAVE_AVX2
    if (__builtin_cpu_supports("avx2")) {
        memset(b8, 0, sizeof b8);
        qnt_q8_0_quantize_avx2(x, b8, NX);
        ck_assert_mem_eq(a8, b8, sizeof a8);
        qnt_q4_0_quantize_avx2(x, b4, NX);
        ck_assert_mem_eq(a4, b4, sizeof a4);
        qnt_tq1_0_quantize_avx2(x, b1, NX);
        ck_assert_mem_eq(a1, b1, sizeof a1);
        qnt_tq2_0_quantize_avx2(x, b2, NX);
        ck_assert_mem_eq(a2, b2, sizeof a2);
    }
#endif
    qnt_q8_0_quantize(x, b8, NX);
    ck_assert_mem_eq(a8, b8, sizeof a8);
    qnt_q4_0_quantize(x, b4, NX);
    ck_assert_mem_eq(a4, b4, sizeof a4);
    qnt_tq1_0_quantize(x, b1, NX);
    ck_assert_mem_eq(a1, b1, sizeof a1);
    qnt_tq2_0_quantize(x, b2, NX);
    ck_assert_mem_eq(a2, b2, sizeof a2);
}
END_TEST

/* Error bounds. With s the exact step and d16 its fp16 rounding, a dequantized
 * value is q*d16, so |x - q*d16| <= (rounding half-step or clamp) + |q|*|d - d16|,
 * and |q*d| <= amax, so the second term is <= amax * 2^-11 (fp16 relative). */
START_TEST(test_roundtrip_bounds)
{
    static float x[NX], back[NX];
    static struct qnt_block_q8_0 b8[NX / 32];
    static struct qnt_block_q4_0 b4[NX / 32];
    static struct qnt_block_tq2_0 b2[NX / 256];
    static struct qnt_block_tq1_0 b1[NX / 256];
    test_fill_normal(x, NX, 77 + (unsigned)_i);
    const double rel16 = 0x1p-11 * 1.001;

    qnt_q8_0_quantize(x, b8, NX);
    qnt_q8_0_dequantize(b8, back, NX);
    for (size_t b = 0; b < NX / 32; b++) {
        double amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmax(amax, fabs(x[32 * b + j]));
        for (int j = 0; j < 32; j++)
            ck_assert(fabs(x[32 * b + j] - back[32 * b + j]) <= amax / 127 * 0.5 * 1.0001 + amax * rel16);
    }
    qnt_q4_0_quantize(x, b4, NX);
    qnt_q4_0_dequantize(b4, back, NX);
    for (size_t b = 0; b < NX / 32; b++) {
        double amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmax(amax, fabs(x[32 * b + j]));
        /* step amax/8; the clamp at 15 costs up to one full step on the far side */
        for (int j = 0; j < 32; j++)
            ck_assert(fabs(x[32 * b + j] - back[32 * b + j]) <= amax / 8 * 1.0001 + amax * rel16);
    }
    qnt_tq2_0_quantize(x, b2, NX);
    qnt_tq2_0_dequantize(b2, back, NX);
    static float back1[NX];
    qnt_tq1_0_quantize(x, b1, NX);
    qnt_tq1_0_dequantize(b1, back1, NX);
    for (size_t b = 0; b < NX / 256; b++) {
        double amax = 0;
        for (int j = 0; j < 256; j++)
            amax = fmax(amax, fabs(x[256 * b + j]));
        for (int j = 0; j < 256; j++) {
            ck_assert(fabs(x[256 * b + j] - back[256 * b + j]) <= amax * 0.5 * 1.0001 + amax * rel16);
            ck_assert(back1[256 * b + j] == back[256 * b + j]);   /* same trits, same d */
        }
    }
}
END_TEST

TEST_SUITE(quant_ggml, 60, NULL, NULL,
    TEST(test_q8_0_golden), TEST(test_q4_0_golden), TEST(test_tq2_0_golden),
    TEST(test_tq1_0_golden), TEST_LOOP(test_fast_is_ref, 40),
    TEST_LOOP(test_roundtrip_bounds, 4))
