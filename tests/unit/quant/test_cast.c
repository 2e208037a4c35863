/* test_cast.c: exact casts f32 <-> f16 / bf16 (qnt_cast.h).
 * - golden tables from outside our code (Python struct.pack('<e'), hand-derived bf16);
 * - all 2^32 f32 inputs: every fast kernel == `_ref` bit for bit, and `_ref` ==
 *   an independent rounding written here in double arithmetic;
 * - all 2^16 inputs the other way, and the f16 round trip. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_cast.h"
#include "qnt_cast_impl.h"
#include "sb_cpu.h"
#include "test_util.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- independent oracle: round in double, no f32 bit fiddling ---- */

/* nearest integer, ties to even, for 0 <= v < 2^52 (default rounding mode) */
static double rne(double v)
{
    return (v + 0x1p52) - 0x1p52;
}

static int dexp(double a) /* unbiased exponent of a normal or infinite double */
{
    uint64_t b;
    memcpy(&b, &a, 8);
    return (int)((b >> 52) & 0x7FF) - 1023;
}

static double pow2(int k)
{
    uint64_t b = (uint64_t)(k + 1023) << 52;
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static uint16_t oracle_f16(float f)
{
    const uint32_t u = fbits(f);
    const uint16_t s = (u >> 31) ? 0x8000 : 0;
    if (f != f)
        return s | 0x7E00 | ((u >> 13) & 0x3FF);
    const double a = fabs((double)f);
    if (a < 0x1p-14)                        /* subnormal grid 2^-24; 1024 is the least normal */
        return s | (uint16_t)rne(a * 0x1p24);
    const int e = dexp(a);
    if (e > 15)
        return s | 0x7C00;
    const double r = rne(a * pow2(10 - e)); /* 11 significant bits: [1024, 2048] */
    if (e == 15 && r == 2048.0)
        return s | 0x7C00;
    return s | (uint16_t)(((e + 15) << 10) + (int)r - 1024);
}

static uint16_t oracle_bf16(float f)
{
    const uint32_t u = fbits(f);
    const uint16_t s = (u >> 31) ? 0x8000 : 0;
    if (f != f)
        return (uint16_t)((u >> 16) | 0x40);
    const double a = fabs((double)f);
    if (a < 0x1p-126)                       /* subnormal grid 2^-133 */
        return s | (uint16_t)rne(a * 0x1p133);
    const int e = dexp(a);
    if (e > 127)
        return s | 0x7F80;
    const double r = rne(a * pow2(7 - e));  /* 8 significant bits: [128, 256] */
    if (e == 127 && r == 256.0)
        return s | 0x7F80;
    return s | (uint16_t)(((e + 127) << 7) + (int)r - 128);
}

/* ---- golden tables ---- */

/* From Python's struct.pack('<e', x) (IEEE binary16, round half to even); the
 * two overflow rows (struct raises there) follow IEEE: 65520 is the tie between
 * 65504 and 2^16 and goes to even, i.e. inf. */
static const struct { float in; uint16_t want; } f16_golden[] = {
    { 1.0f, 0x3C00 }, { -2.0f, 0xC000 }, { 65504.0f, 0x7BFF }, { 65519.0f, 0x7BFF },
    { 65520.0f, 0x7C00 }, { -1e6f, 0xFC00 }, { 0x1.002p0f, 0x3C00 }, { 0x1.006p0f, 0x3C02 },
    { 0x1p-25f, 0x0000 }, { 0x3p-25f, 0x0002 }, { 0x1p-24f, 0x0001 }, { 0x1.000002p-25f, 0x0001 },
    { 0x1.8p-24f, 0x0002 }, { 0x1.4p-24f, 0x0001 }, { 0x1p-14f, 0x0400 }, { 0x1.ffcp-15f, 0x0400 },
    { 0x1.ffep-1f, 0x3C00 }, { 0.3f, 0x34CD }, { 0.1f, 0x2E66 }, { -0.0f, 0x8000 },
    { 1e-8f, 0x0000 }, { 1e-7f, 0x0002 }, { 3.14159265f, 0x4248 }, { -1000.7f, 0xE3D1 },
    { 6.1e-5f, 0x03FF }, { INFINITY, 0x7C00 },
};

/* bf16 by hand from the f32 bits (Python struct.pack('<f') gives them):
 * 0.1f = 0x3DCCCCCD, low half 0xCCCD > 0x8000 rounds up; 1+2^-8 is the tie
 * between 0x3F80 and 0x3F81 and goes to even; 1+3*2^-8 ties up to 0x3F82;
 * FLT_MAX = 0x7F7FFFFF rounds to inf; 0x7F7F7FFF stays below the tie;
 * the least f32 subnormal 0x00000001 rounds to 0, 0x00008000 ties to 0 and
 * 0x00018000 ties up to 0x0002. */
static const struct { uint32_t in; uint16_t want; } bf16_golden[] = {
    { 0x3F800000, 0x3F80 }, { 0x3DCCCCCD, 0x3DCD }, { 0x3F808000, 0x3F80 },
    { 0x3F818000, 0x3F82 }, { 0x7F7FFFFF, 0x7F80 }, { 0xFF7FFFFF, 0xFF80 },
    { 0x7F7F7FFF, 0x7F7F }, { 0x00000001, 0x0000 }, { 0x00008000, 0x0000 },
    { 0x00018000, 0x0002 }, { 0x80000000, 0x8000 }, { 0x7F800000, 0x7F80 },
    /* NaN: (u >> 16) | 0x40; a payload only in the low half must not become inf */
    { 0x7F800001, 0x7FC0 }, { 0xFFC00000, 0xFFC0 }, { 0x7FFFFFFF, 0x7FFF },
    { 0x7F810000, 0x7FC1 },
};

START_TEST(test_f16_golden)
{
    const int n = (int)(sizeof f16_golden / sizeof f16_golden[0]);
    for (int i = 0; i < n; i++) {
        float x = f16_golden[i].in;
        uint16_t got;
        ck_assert_msg(qnt_f32_to_f16_ref(x) == f16_golden[i].want, "ref row %d: 0x%04x want 0x%04x", i,
                      qnt_f32_to_f16_ref(x), f16_golden[i].want);
        qnt_f32_to_f16(&x, &got, 1);
        ck_assert_uint_eq(got, f16_golden[i].want);
        ck_assert_uint_eq(oracle_f16(x), f16_golden[i].want);
    }
    /* NaN rule: sign kept, quiet bit set, top payload bits kept */
    ck_assert_uint_eq(qnt_f32_to_f16_ref(bitsf(0x7F800001)), 0x7E00);
    ck_assert_uint_eq(qnt_f32_to_f16_ref(bitsf(0xFFA02000)), 0xFE01 | 0x0100);
}
END_TEST

START_TEST(test_bf16_golden)
{
    const int n = (int)(sizeof bf16_golden / sizeof bf16_golden[0]);
    for (int i = 0; i < n; i++) {
        float x = bitsf(bf16_golden[i].in);
        uint16_t got;
        ck_assert_msg(qnt_f32_to_bf16_ref(x) == bf16_golden[i].want, "ref row %d: 0x%04x want 0x%04x",
                      i, qnt_f32_to_bf16_ref(x), bf16_golden[i].want);
        qnt_f32_to_bf16(&x, &got, 1);
        ck_assert_uint_eq(got, bf16_golden[i].want);
        ck_assert_uint_eq(oracle_bf16(x), bf16_golden[i].want);
    }
}
END_TEST

/* Every kernel set, at every length 0..67 and misaligned starts (covers tails). */
START_TEST(test_kernels_tails)
{
    const struct qnt_cast_kernels *ks[4];
    const int nk = qnt_cast_kernels_available(ks, 4);
    float x[80], back[80], want_back[80];
    uint16_t h[80], want[80];
    test_fill_normal(x, 80, 7);
    x[3] = NAN;
    x[20] = 65520.0f;
    x[41] = 0x1p-25f;
    for (int k = 0; k < nk; k++)
        for (size_t off = 0; off < 3; off++)
            for (size_t n = 0; n < 68; n++) {
                memset(h, 0xAA, sizeof h);
                memset(want, 0xAA, sizeof want);
                qnt_f32_to_f16_array_ref(x + off, want, n);
                ks[k]->f32_to_f16(x + off, h, n);
                ck_assert_msg(!memcmp(h, want, sizeof h), "%s f16 n=%zu", ks[k]->name, n);
                qnt_f16_to_f32_array_ref(want, want_back, n);
                memcpy(back, want_back, sizeof back);
                ks[k]->f16_to_f32(want, back, n);
                ck_assert(!memcmp(back, want_back, n * 4));
                qnt_f32_to_bf16_array_ref(x + off, want, n);
                ks[k]->f32_to_bf16(x + off, h, n);
                ck_assert_msg(!memcmp(h, want, n * 2), "%s bf16 n=%zu", ks[k]->name, n);
                qnt_bf16_to_f32_array_ref(want, want_back, n);
                ks[k]->bf16_to_f32(want, back, n);
                ck_assert(!memcmp(back, want_back, n * 4));
            }
}
END_TEST

/* Sanitizer builds run about 5x slower: there every 8th chunk of the 2^32
 * space is checked (still all exponents and signs); normal builds check all. */
#if defined(__SANITIZE_ADDRESS__)
#define CHUNK_STEP 8
#else
#define CHUNK_STEP 1
#endif
#define CHUNK_BITS 16
#define CHUNK (1u << CHUNK_BITS)

/* which: 0 = f16, 1 = bf16 */
static void exhaustive(int which)
{
    const struct qnt_cast_kernels *ks[4];
    const int nk = qnt_cast_kernels_available(ks, 4);
    const long nchunks = 1L << (32 - CHUNK_BITS);
    unsigned long long bad_oracle = 0, bad_fast = 0, bad_disp = 0;
    uint32_t first_oracle = 0, first_fast = 0;
    int any_oracle = 0, any_fast = 0;
#pragma omp parallel reduction(+ : bad_oracle, bad_fast, bad_disp)
    {
        float *x = malloc(CHUNK * sizeof *x);
        uint16_t *r = malloc(CHUNK * 2), *f = malloc(CHUNK * 2);
#pragma omp for schedule(static)
        for (long c = 0; c < nchunks; c += CHUNK_STEP) {
            for (uint32_t i = 0; i < CHUNK; i++)
                x[i] = bitsf(((uint32_t)c << CHUNK_BITS) | i);
            if (which == 0)
                qnt_f32_to_f16_array_ref(x, r, CHUNK);
            else
                qnt_f32_to_bf16_array_ref(x, r, CHUNK);
            for (uint32_t i = 0; i < CHUNK; i++) {
                uint16_t o = which == 0 ? oracle_f16(x[i]) : oracle_bf16(x[i]);
                if (o != r[i]) {
                    bad_oracle++;
#pragma omp critical
                    if (!any_oracle) {
                        any_oracle = 1;
                        first_oracle = fbits(x[i]);
                    }
                }
            }
            for (int k = 0; k < nk; k++) {
                if (which == 0)
                    ks[k]->f32_to_f16(x, f, CHUNK);
                else
                    ks[k]->f32_to_bf16(x, f, CHUNK);
                if (memcmp(f, r, CHUNK * 2)) {
                    for (uint32_t i = 0; i < CHUNK; i++)
                        if (f[i] != r[i]) {
                            bad_fast++;
#pragma omp critical
                            if (!any_fast) {
                                any_fast = 1;
                                first_fast = fbits(x[i]);
                            }
                        }
                }
            }
            if (which == 0)
                qnt_f32_to_f16(x, f, CHUNK);
            else
                qnt_f32_to_bf16(x, f, CHUNK);
            bad_disp += memcmp(f, r, CHUNK * 2) != 0;
        }
        free(x);
        free(r);
        free(f);
    }
    ck_assert_msg(bad_oracle == 0, "%s: %llu inputs where _ref != oracle, first 0x%08x",
                  which ? "bf16" : "f16", bad_oracle, first_oracle);
    ck_assert_msg(bad_fast == 0, "%s: %llu inputs where a kernel != _ref, first 0x%08x",
                  which ? "bf16" : "f16", bad_fast, first_fast);
    ck_assert_uint_eq(bad_disp, 0);
}

START_TEST(test_f16_exhaustive)
{
    exhaustive(0);
}
END_TEST

START_TEST(test_bf16_exhaustive)
{
    exhaustive(1);
}
END_TEST

/* All 2^16 halves to f32: value exact (checked in double), every kernel == _ref,
 * and f16 -> f32 -> f16 gives the input back (a NaN comes back quiet). */
START_TEST(test_f16_to_f32_all)
{
    const struct qnt_cast_kernels *ks[4];
    const int nk = qnt_cast_kernels_available(ks, 4);
    static uint16_t h[65536], back[65536];
    static float r[65536], f[65536];
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    qnt_f16_to_f32_array_ref(h, r, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        const int s = i >> 15, e = (i >> 10) & 31, m = i & 1023;
        const uint32_t rb = fbits(r[i]);
        ck_assert_int_eq((int)(rb >> 31), s);
        if (e == 31 && m) {
            ck_assert(isnan(r[i]));
            ck_assert_uint_eq(rb, ((uint32_t)s << 31) | 0x7FC00000u | ((uint32_t)m << 13));
            continue;
        }
        double v = e == 31 ? INFINITY : e == 0 ? m * 0x1p-24 : (1024 + m) * pow2(e - 25);
        ck_assert_msg((double)fabsf(r[i]) == v, "h=0x%04x", i);
    }
    for (int k = 0; k < nk; k++) {
        ks[k]->f16_to_f32(h, f, 65536);
        ck_assert_msg(!memcmp(f, r, sizeof f), "%s", ks[k]->name);
    }
    qnt_f16_to_f32(h, f, 65536);
    ck_assert(!memcmp(f, r, sizeof f));
    qnt_f32_to_f16(r, back, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        const int nan = ((i >> 10) & 31) == 31 && (i & 1023);
        ck_assert_uint_eq(back[i], nan ? (i | 0x0200) : i);
    }
}
END_TEST

START_TEST(test_bf16_to_f32_all)
{
    const struct qnt_cast_kernels *ks[4];
    const int nk = qnt_cast_kernels_available(ks, 4);
    static uint16_t h[65536], back[65536];
    static float r[65536], f[65536];
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    qnt_bf16_to_f32_array_ref(h, r, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        ck_assert_uint_eq(fbits(r[i]), i << 16);
    for (int k = 0; k < nk; k++) {
        ks[k]->bf16_to_f32(h, f, 65536);
        ck_assert_msg(!memcmp(f, r, sizeof f), "%s", ks[k]->name);
    }
    qnt_f32_to_bf16(r, back, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        const int nan = (i & 0x7FFF) > 0x7F80;
        ck_assert_uint_eq(back[i], nan ? (i | 0x40) : i);
    }
}
END_TEST

START_TEST(test_kernel_name)
{
    const char *n = qnt_cast_kernel_name();
    ck_assert(!strcmp(n, "avx512") || !strcmp(n, "f16c") || !strcmp(n, "ref"));
    if (sb_cpu_ref())
        ck_assert_str_eq(n, "ref");
}
END_TEST

Suite *quant_cast_suite(void)
{
    Suite *s = suite_create("quant_cast");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, test_f16_golden);
    tcase_add_test(tc, test_bf16_golden);
    tcase_add_test(tc, test_kernels_tails);
    tcase_add_test(tc, test_f16_to_f32_all);
    tcase_add_test(tc, test_bf16_to_f32_all);
    tcase_add_test(tc, test_kernel_name);
    suite_add_tcase(s, tc);
    tc = tcase_create("exhaustive");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_test(tc, test_bf16_exhaustive);
    suite_add_tcase(s, tc);
    return s;
}
