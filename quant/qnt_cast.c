/* qnt_cast.c: scalar reference casts f32 <-> f16 / bf16 and the dispatch to
 * the fast kernels (qnt_cast_x86.c). Rules: qnt_cast.h, formats.md §6.2-6.3. */
#include "qnt_cast.h"
#include "qnt_cast_impl.h"
#include "sb_cpu.h"

#include <string.h>

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round m >> shift to nearest, ties to even (shift >= 1). */
static uint32_t shr_rne(uint32_t m, unsigned shift)
{
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t qnt_f32_to_f16_ref(float x)
{
    const uint32_t u = f32_bits(x), a = u & 0x7FFFFFFFu;
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (a > 0x7F800000u)                     /* NaN: quiet, top payload bits kept */
        return sign | 0x7E00u | (uint16_t)((a >> 13) & 0x3FFu);
    if (a >= 0x477FF000u)                    /* |x| >= 65520 (tie 65504|65536 goes up), inf */
        return sign | 0x7C00u;
    if (a < 0x38800000u) {                   /* |x| < 2^-14: f16 subnormal or zero */
        if (a < 0x33000000u)                 /* |x| < 2^-25: below half the least subnormal */
            return sign;
        /* |x| = m * 2^(e-150) with a 24-bit m; the code is |x| / 2^-24 = m >> (126-e),
         * shift 14..24; a carry out of 10 bits gives 0x0400, the least normal. */
        const uint32_t e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u;
        return sign | (uint16_t)shr_rne(m, 126u - e);
    }
    /* normal: rebias 127 -> 15, keep 10 of the 23 mantissa bits; a mantissa
     * carry steps the exponent, which is the right answer (never reaches inf here) */
    const uint32_t h = (((a >> 23) - 112u) << 10) | ((a & 0x7FFFFFu) >> 13);
    const uint32_t rem = a & 0x1FFFu;
    return sign | (uint16_t)(h + (rem > 0x1000u || (rem == 0x1000u && (h & 1))));
}

float qnt_f16_to_f32_ref(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1F)                           /* inf, or NaN made quiet */
        return bits_f32(sign | 0x7F800000u | (m << 13) | (m ? 0x400000u : 0));
    if (e == 0) {                            /* zero or subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t qnt_f32_to_bf16_ref(float x)
{
    const uint32_t u = f32_bits(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)     /* NaN first: the bias could carry it into inf/-0 */
        return (uint16_t)((u >> 16) | 0x0040u);
    /* RNE on the low 16 bits: add 0x7FFF, plus 1 when the kept lsb is odd */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float qnt_bf16_to_f32_ref(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

/* The array casts read their input with memcpy: tensor data mapped from a
 * safetensors file starts wherever its header ends, so an f32 tensor may sit
 * at an address = 2 (mod 4) (the SIMD kernels load unaligned and hand their
 * tails to these loops). The compiler turns each memcpy into one load. */
static float ld_f32(const float *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint16_t ld_u16(const uint16_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

void qnt_f32_to_f16_array_ref(const float *restrict x, uint16_t *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = qnt_f32_to_f16_ref(ld_f32(x + i));
}

void qnt_f16_to_f32_array_ref(const uint16_t *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = qnt_f16_to_f32_ref(ld_u16(x + i));
}

void qnt_f32_to_bf16_array_ref(const float *restrict x, uint16_t *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = qnt_f32_to_bf16_ref(ld_f32(x + i));
}

void qnt_bf16_to_f32_array_ref(const uint16_t *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = qnt_bf16_to_f32_ref(ld_u16(x + i));
}

static const struct qnt_cast_kernels kernels_ref = {
    "ref", qnt_f32_to_f16_array_ref, qnt_f16_to_f32_array_ref,
    qnt_f32_to_bf16_array_ref, qnt_bf16_to_f32_array_ref,
};

int qnt_cast_kernels_available(const struct qnt_cast_kernels **out, int max)
{
    int n = 0;
#ifdef QNT_HAVE_X86
    const unsigned f = sb_cpu_features();
    const unsigned f16c = SB_CPU_AVX2 | SB_CPU_F16C;
    const unsigned avx512 = f16c | SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512VL;
    if (n < max && (f & avx512) == avx512)
        out[n++] = &qnt_cast_kernels_avx512;
    if (n < max && (f & f16c) == f16c)
        out[n++] = &qnt_cast_kernels_f16c;
#endif
    if (n < max)
        out[n++] = &kernels_ref;
    return n;
}

/* the fastest set, asked of the probe at every call (a few loads), so the
 * tests' forced-reference switch takes effect at once */
static const struct qnt_cast_kernels *picked(void)
{
    const struct qnt_cast_kernels *p = &kernels_ref;
    if (!sb_cpu_ref())
        qnt_cast_kernels_available(&p, 1);
    return p;
}

const char *qnt_cast_kernel_name(void)
{
    return picked()->name;
}

void qnt_f32_to_f16(const float *restrict x, uint16_t *restrict y, size_t n)
{
    picked()->f32_to_f16(x, y, n);
}

void qnt_f16_to_f32(const uint16_t *restrict x, float *restrict y, size_t n)
{
    picked()->f16_to_f32(x, y, n);
}

void qnt_f32_to_bf16(const float *restrict x, uint16_t *restrict y, size_t n)
{
    picked()->f32_to_bf16(x, y, n);
}

void qnt_bf16_to_f32(const uint16_t *restrict x, float *restrict y, size_t n)
{
    picked()->bf16_to_f32(x, y, n);
}
