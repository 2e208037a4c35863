/* qnt_tern.c: the QMoE ternary grid (qmoe-gptq.md §2.1) in the plain 2-bit
 * row layout of qnt_tern.h: quantize, dequantize, matvec (ref, AVX2,
 * AVX-512), and the exact row sums all ternary matvecs share
 * (qnt_ternary_impl.h).
 * Knows the grid and the bytes; nothing of files. */
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"
#include "qnt_tmm_impl.h"
#include "sb_cpu.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QNT_TERN_X86 1
#endif

uint16_t qnt_tern_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)          /* NaN: keep sign, quiet it */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);              /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Symbols of xr[j0 .. cols-1] ORed into s (zeroed there), levels flo, fhi:
 * above half of hi gives 2, else below half of lo gives 1 (§2.1). */
static void tern_syms(const float *restrict xr, size_t j0, size_t cols, float flo, float fhi,
                      uint8_t *restrict s)
{
    const float tlo = flo * 0.5f, thi = fhi * 0.5f;
    for (size_t j = j0; j < cols; j++) {
        unsigned sym = 0;
        if (fhi > 0.0f && xr[j] > thi)
            sym = 2;
        else if (flo < 0.0f && xr[j] < tlo)
            sym = 1;
        s[j >> 2] |= (uint8_t)(sym << (2 * (j & 3)));
    }
}

void qnt_tern_quantize_rows_ref(const float *restrict x, size_t rows, size_t cols,
                                void *restrict dst)
{
    const size_t rb = qnt_tern_row_bytes(cols);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        uint8_t *o = (uint8_t *)dst + r * rb;
        float mn = 0.0f, mx = 0.0f;              /* grid includes 0 (§2.1) */
        for (size_t j = 0; j < cols; j++) {
            if (xr[j] < mn)
                mn = xr[j];
            if (xr[j] > mx)
                mx = xr[j];
        }
        uint16_t lo = qnt_tern_f32_to_bf16(mn), hi = qnt_tern_f32_to_bf16(mx);
        /* bf16 rounding of a finite huge value may reach inf; keep levels finite
           and signed right (-0 would decode as -0.0 for symbol 1, harmless). */
        const float flo = qnt_tern_bf16_to_f32(lo), fhi = qnt_tern_bf16_to_f32(hi);
        wr16(o, lo);
        wr16(o + 2, hi);
        uint8_t *s = o + QNT_TERN_ROW_HDR;
        memset(s, 0, (cols + 3) / 4);
        tern_syms(xr, 0, cols, flo, fhi, s);
    }
}

#ifdef QNT_TERN_X86
/* The SIMD rows' end: min / max over the tail xr[j .. cols-1] on top of the
 * lanes' mn / mx, as the reference compares; the levels into the row's
 * header, and as floats. */
static void tern_row_levels(const float *restrict xr, size_t j, size_t cols, float mn, float mx,
                            uint8_t *restrict o, float *flo, float *fhi)
{
    for (; j < cols; j++) {
        if (xr[j] < mn)
            mn = xr[j];
        if (xr[j] > mx)
            mx = xr[j];
    }
    const uint16_t lo = qnt_tern_f32_to_bf16(mn), hi = qnt_tern_f32_to_bf16(mx);
    *flo = qnt_tern_bf16_to_f32(lo);
    *fhi = qnt_tern_bf16_to_f32(hi);
    wr16(o, lo);
    wr16(o + 2, hi);
}

/* One row, 16 weights a step: min / max in lanes (vminps returns its second
 * operand when the first is NaN or both are zeros, so NaN and -0 are skipped
 * exactly as the reference's strict compares skip them; min and max are
 * exact, so the lane order does not matter), then the two class masks of 16
 * weights spread to 2-bit fields with pdep: 4 bytes a step. The tail and the
 * levels go through the reference's own code. */
__attribute__((target("avx512f,bmi2"))) static void tern_row_avx512(const float *restrict xr,
                                                                   size_t cols,
                                                                   uint8_t *restrict o)
{
    __m512 vmn = _mm512_setzero_ps(), vmx = vmn;
    size_t j = 0;
    for (; j + 16 <= cols; j += 16) {
        const __m512 v = _mm512_loadu_ps(xr + j);
        vmn = _mm512_min_ps(v, vmn);
        vmx = _mm512_max_ps(v, vmx);
    }
    float mn = _mm512_reduce_min_ps(vmn), mx = _mm512_reduce_max_ps(vmx);
    const size_t jv = j;
    float flo, fhi;
    tern_row_levels(xr, jv, cols, mn, mx, o, &flo, &fhi);
    uint8_t *s = o + QNT_TERN_ROW_HDR;
    const float tlo = flo * 0.5f, thi = fhi * 0.5f;
    const __m512 vtlo = _mm512_set1_ps(tlo), vthi = _mm512_set1_ps(thi);
    const __mmask16 use2 = fhi > 0.0f ? 0xffff : 0, use1 = flo < 0.0f ? 0xffff : 0;
    for (j = 0; j < jv; j += 16) {
        const __m512 v = _mm512_loadu_ps(xr + j);
        const __mmask16 k2 = _mm512_mask_cmp_ps_mask(use2, v, vthi, _CMP_GT_OQ);
        const __mmask16 k1 = _mm512_mask_cmp_ps_mask(use1 & (__mmask16)~k2, v, vtlo, _CMP_LT_OQ);
        const uint32_t b = _pdep_u32(k1, 0x55555555u) | _pdep_u32(k2, 0xAAAAAAAAu);
        uint8_t *d = s + j / 4;
        d[0] = (uint8_t)b, d[1] = (uint8_t)(b >> 8), d[2] = (uint8_t)(b >> 16), d[3] = (uint8_t)(b >> 24);
    }
    memset(s + jv / 4, 0, (cols + 3) / 4 - jv / 4);
    tern_syms(xr, jv, cols, flo, fhi, s);
}

/* The same in AVX2: 8 weights a step, 2 bytes of symbols (vminps / vmaxps
 * have the AVX-512 ones' operand rule, so NaN and -0 are skipped the same
 * way; no lane ever holds -0 or NaN, so the reduction's order is free). */
__attribute__((target("avx2,bmi2"))) static void tern_row_avx2(const float *restrict xr,
                                                              size_t cols, uint8_t *restrict o)
{
    __m256 vmn = _mm256_setzero_ps(), vmx = vmn;
    size_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        const __m256 v = _mm256_loadu_ps(xr + j);
        vmn = _mm256_min_ps(v, vmn);
        vmx = _mm256_max_ps(v, vmx);
    }
    __m128 a = _mm_min_ps(_mm256_castps256_ps128(vmn), _mm256_extractf128_ps(vmn, 1));
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(vmx), _mm256_extractf128_ps(vmx, 1));
    a = _mm_min_ps(a, _mm_movehl_ps(a, a));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    a = _mm_min_ss(a, _mm_shuffle_ps(a, a, 1));
    b = _mm_max_ss(b, _mm_shuffle_ps(b, b, 1));
    float mn = _mm_cvtss_f32(a), mx = _mm_cvtss_f32(b);
    const size_t jv = j;
    float flo, fhi;
    tern_row_levels(xr, jv, cols, mn, mx, o, &flo, &fhi);
    uint8_t *s = o + QNT_TERN_ROW_HDR;
    const __m256 vtlo = _mm256_set1_ps(flo * 0.5f), vthi = _mm256_set1_ps(fhi * 0.5f);
    const unsigned use2 = fhi > 0.0f ? 0xffu : 0, use1 = flo < 0.0f ? 0xffu : 0;
    for (j = 0; j < jv; j += 8) {
        const __m256 v = _mm256_loadu_ps(xr + j);
        const unsigned k2 = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, vthi, _CMP_GT_OQ)) & use2;
        const unsigned k1 =
            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, vtlo, _CMP_LT_OQ)) & use1 & ~k2;
        const uint32_t bits = _pdep_u32(k1, 0x5555u) | _pdep_u32(k2, 0xAAAAu);
        s[j / 4] = (uint8_t)bits;
        s[j / 4 + 1] = (uint8_t)(bits >> 8);
    }
    memset(s + jv / 4, 0, (cols + 3) / 4 - jv / 4);
    tern_syms(xr, jv, cols, flo, fhi, s);
}
#endif

static int tern_pick(void);

void qnt_tern_quantize_rows_kernel(int kernel, const float *restrict x, size_t rows, size_t cols,
                                   void *restrict dst)
{
    const size_t rb = qnt_tern_row_bytes(cols);
    const size_t per = cols && cols < 65536 ? 65536 / cols : 1;   /* rows a block: ~64 Ki weights */
    const long nb = (long)((rows + per - 1) / per);
    int simd = 0;   /* 3 AVX-512, 2 AVX2 (kernel 2: at most AVX2), 0 reference */
#ifdef QNT_TERN_X86
    if (kernel != 1) {
        simd = tern_pick();
        if (kernel == 2 && simd > 2)
            simd = 2;
        if (simd < 2)
            simd = 0;
    }
#else
    (void)kernel;
#endif
#pragma omp parallel for schedule(static) if (nb > 1)
    for (long b = 0; b < nb; b++) {
        const size_t r0 = (size_t)b * per, r1 = rows - r0 < per ? rows : r0 + per;
#ifdef QNT_TERN_X86
        if (simd == 3) {
            for (size_t r = r0; r < r1; r++)
                tern_row_avx512(x + r * cols, cols, (uint8_t *)dst + r * rb);
            continue;
        }
        if (simd == 2) {
            for (size_t r = r0; r < r1; r++)
                tern_row_avx2(x + r * cols, cols, (uint8_t *)dst + r * rb);
            continue;
        }
#endif
        qnt_tern_quantize_rows_ref(x + r0 * cols, r1 - r0, cols, (uint8_t *)dst + r0 * rb);
    }
}

void qnt_tern_quantize_rows(const float *restrict x, size_t rows, size_t cols, void *restrict dst)
{
    if (tern_pick() == 0)
        qnt_tern_quantize_rows_ref(x, rows, cols, dst);
    else
        qnt_tern_quantize_rows_kernel(0, x, rows, cols, dst);
}

void qnt_tern_row_symbols(const void *restrict src, size_t cols, size_t r, uint8_t *restrict sym,
                          uint16_t *lo, uint16_t *hi)
{
    const uint8_t *o = (const uint8_t *)src + r * qnt_tern_row_bytes(cols);
    *lo = rd16(o);
    *hi = rd16(o + 2);
    const uint8_t *s = o + QNT_TERN_ROW_HDR;
    for (size_t j = 0; j < cols; j++)
        sym[j] = (uint8_t)((s[j >> 2] >> (2 * (j & 3))) & 3u);
}

void qnt_tern_dequantize_rows(const void *restrict src, size_t cols, size_t row0, size_t nrows,
                              float *restrict dst)
{
    for (size_t i = 0; i < nrows; i++)
        qnt_tern_decode(src, row0 + nrows, cols, NULL, row0 + i, 0, cols, dst + i * cols);
}

void qnt_tern_quantize_range(const float *restrict x, size_t row0, size_t nrows, size_t rows,
                             size_t cols, const struct sb_qparams *qp, void *restrict blob)
{
    (void)rows, (void)qp;
    qnt_tern_quantize_rows(x, nrows, cols, (uint8_t *)blob + row0 * qnt_tern_row_bytes(cols));
}

void qnt_tern_dequantize_range(const void *restrict blob, uint64_t nbytes, size_t rows,
                               size_t cols, const struct sb_qparams *qp, size_t row0,
                               size_t nrows, float *restrict dst)
{
    (void)nbytes, (void)rows, (void)qp;
    qnt_tern_dequantize_rows(blob, cols, row0, nrows, dst);
}

void qnt_tern_decode(const void *restrict blob, size_t rows, size_t cols,
                     const struct sb_qparams *qp, size_t r, size_t j0, size_t len,
                     float *restrict out)
{
    (void)rows, (void)qp;
    const uint8_t *o = (const uint8_t *)blob + r * qnt_tern_row_bytes(cols);
    const float lv[4] = { 0.0f, qnt_tern_bf16_to_f32(rd16(o)), qnt_tern_bf16_to_f32(rd16(o + 2)),
                          0.0f };
    const uint8_t *s = o + QNT_TERN_ROW_HDR;
    for (size_t i = 0; i < len; i++) {
        const size_t j = j0 + i;
        out[i] = lv[(s[j >> 2] >> (2 * (j & 3))) & 3u];
    }
}

/* ---- exact ternary sums (qnt_ternary_impl.h) ----------------------------- */

/* max |x| on the bits: for non-NaN floats, |x| orders as its low 31 bits,
   and inf / NaN are exactly the bit patterns >= 0x7f800000 */
uint32_t qnt_tfx_amax_ref(const float *x, size_t cols)
{
    uint32_t m = 0;
    for (size_t j = 0; j < cols; j++) {
        uint32_t u;
        memcpy(&u, &x[j], 4);
        u &= 0x7fffffffu;
        m = u > m ? u : m;
    }
    return m;
}

#ifdef QNT_TERN_X86
/* The same maximum 8 lanes a vector, 4 vectors a step (the scalar loop waits
   on its cmov chain: 3.7 % of a tinymoe ppl with sub1 experts) */
__attribute__((target("avx2"))) static uint32_t tfx_amax_avx2(const float *x, size_t cols)
{
    const __m256i ab = _mm256_set1_epi32(0x7fffffff);
    __m256i m[4] = { _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                     _mm256_setzero_si256() };
    size_t j = 0;
#define TFX_LD(p) _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p)), ab)
    for (; j + 32 <= cols; j += 32)
        for (int q = 0; q < 4; q++)
            m[q] = _mm256_max_epu32(m[q], TFX_LD(x + j + 8 * q));
    for (; j + 8 <= cols; j += 8)
        m[0] = _mm256_max_epu32(m[0], TFX_LD(x + j));
#undef TFX_LD
    const __m256i v = _mm256_max_epu32(_mm256_max_epu32(m[0], m[1]), _mm256_max_epu32(m[2], m[3]));
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0xb1));
    const uint32_t r = qnt_tfx_amax_ref(x + j, cols - j), a = (uint32_t)_mm_cvtsi128_si32(h);
    return r > a ? r : a;
}
#endif

uint32_t qnt_tfx_amax(const float *x, size_t cols)
{
#ifdef QNT_TERN_X86
    if (sb_cpu_has(SB_CPU_AVX2))
        return tfx_amax_avx2(x, cols);
#endif
    return qnt_tfx_amax_ref(x, cols);
}

void qnt_tfx_init(struct qnt_tfx *fx, const float *x, size_t cols)
{
    const uint32_t m = qnt_tfx_amax(x, cols);
    fx->finite = m < 0x7f800000u;
    int bits = QNT_TFX_BITS, lg = 0;
    while (lg < 63 && ((uint64_t)1 << lg) < (uint64_t)cols)
        lg++;                                   /* ceil(log2 cols): row sums stay < 2^63 */
    if (63 - lg < bits)
        bits = 63 - lg;
    int e = 0;
    if (fx->finite && m) {
        float f;
        memcpy(&f, &m, 4);
        (void)frexpf(f, &e);                    /* max|x| < 2^e, e in [-148, 128] */
    }
    fx->scale = ldexp(1.0, bits - e);
    fx->inv = ldexp(1.0, e - bits);
}

float qnt_tfx_out(uint16_t lo, uint16_t hi, int64_t s_lo, int64_t s_hi, const struct qnt_tfx *fx)
{
    const double a = s_lo ? (double)qnt_tern_bf16_to_f32(lo) * ((double)s_lo * fx->inv) : 0.0;
    const double b = s_hi ? (double)qnt_tern_bf16_to_f32(hi) * ((double)s_hi * fx->inv) : 0.0;
    return (float)(a + b);
}

void qnt_tfx_nan(float *y, size_t rows)
{
    const uint32_t qnan = 0x7fc00000u;
    for (size_t r = 0; r < rows; r++)
        memcpy(&y[r], &qnan, 4);
}

/* ---- matvec -------------------------------------------------------------- */

void qnt_tern_matvec_ref(const void *restrict w, size_t rows, size_t cols, const float *restrict x,
                         float *restrict y)
{
    struct qnt_tfx fx;
    qnt_tfx_init(&fx, x, cols);
    if (!fx.finite) {
        qnt_tfx_nan(y, rows);
        return;
    }
    const size_t rb = qnt_tern_row_bytes(cols);
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *o = (const uint8_t *)w + r * rb;
        const uint8_t *s = o + QNT_TERN_ROW_HDR;
        int64_t sum[4] = { 0, 0, 0, 0 };          /* by symbol; 0 and 3 weigh nothing */
        for (size_t j = 0; j < cols; j++)
            sum[(s[j >> 2] >> (2 * (j & 3))) & 3u] += qnt_tfx_x(x[j], fx.scale);
        y[r] = qnt_tfx_out(rd16(o), rd16(o + 2), sum[1], sum[2], &fx);
    }
}

/* The fast kernel works on tiles of TERN_TR rows: x goes to fixed point
 * TERN_BC columns at a time into a stack buffer, and every row of the tile
 * adds its symbol-1 and symbol-2 X into two exact sums. X (|X| < 2^40) is
 * kept as two int32 halves, X = H * 2^20 + L with L in [0, 2^20), so SIMD
 * lanes are 32 bits wide (16 weights a zmm, one 16-bit mask per class):
 * over one block a lane adds at most TERN_BC / 16 = 128 halves, |sum| <=
 * 2^27, and the block's lane sums are widened to int64 before the row sum.
 * Conversion costs 1/TERN_TR of a weight's work; the buffer is 16 KiB and
 * stays in L1; no allocation, no scratch argument. */
#ifndef TERN_BC
#define TERN_BC 2048u
#endif
#ifndef TERN_TR
#define TERN_TR 16u
#endif
_Static_assert(TERN_BC % 16 == 0 && TERN_BC / 16 <= 128, "tern block: int32 lane sums");

struct tern_xblk {
    int32_t h[TERN_BC];   /* X >> 20 (floor), in [-2^20, 2^20) */
    int32_t l[TERN_BC];   /* X & (2^20 - 1) */
};

/* Block kernel: n <= TERN_BC columns from symbol byte s (column offset a
 * multiple of 4), sums added to acc[0] (symbol 1), acc[1] (symbol 2). */
typedef void (*tern_blk_fn)(const uint8_t *restrict s, const struct tern_xblk *restrict xb,
                            size_t j0, size_t n, int64_t *restrict acc);

static void tern_blk_generic(const uint8_t *restrict s, const struct tern_xblk *restrict xb,
                             size_t j0, size_t n, int64_t *restrict acc)
{
    int64_t ah = 0, al = 0, bh = 0, bl = 0;
    for (size_t j = j0; j < n; j++) {
        const unsigned c = (s[j >> 2] >> (2 * (j & 3))) & 3u;
        ah += c == 1 ? xb->h[j] : 0;
        al += c == 1 ? xb->l[j] : 0;
        bh += c == 2 ? xb->h[j] : 0;
        bl += c == 2 ? xb->l[j] : 0;
    }
    acc[0] += ah * (1 << 20) + al;
    acc[1] += bh * (1 << 20) + bl;
}

/* x[j0 .. n-1] to xb (same indices) */
static void tern_fx_generic(const float *restrict x, size_t j0, size_t n, double scale,
                            struct tern_xblk *restrict xb)
{
    for (size_t j = j0; j < n; j++) {
        const int64_t X = qnt_tfx_x(x[j], scale);
        xb->l[j] = (int32_t)(X & 0xfffff);
        xb->h[j] = (int32_t)((X - (X & 0xfffff)) / (1 << 20));   /* exact: floor */
    }
}

#ifdef QNT_TERN_X86
__attribute__((target("avx2"))) static inline int64_t tern_hsum8_avx2(__m256i v)
{
    __m256i w = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                 _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
    int64_t t[4];
    _mm256_storeu_si256((__m256i *)t, w);
    return (t[0] + t[1]) + (t[2] + t[3]);
}

__attribute__((target("avx2"))) static void tern_blk_avx2(const uint8_t *restrict s,
                                                          const struct tern_xblk *restrict xb,
                                                          size_t j0, size_t n,
                                                          int64_t *restrict acc)
{
    const __m256i sh = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), three = _mm256_set1_epi32(3),
                  one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
    __m256i ah = _mm256_setzero_si256(), al = ah, bh = ah, bl = ah;
    size_t j = j0;
    for (; j + 8 <= n; j += 8) {
        uint16_t b16;
        memcpy(&b16, s + (j >> 2), 2);
        const __m256i v = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(b16), sh), three);
        const __m256i m1 = _mm256_cmpeq_epi32(v, one), m2 = _mm256_cmpeq_epi32(v, two);
        const __m256i h = _mm256_loadu_si256((const __m256i *)(xb->h + j));
        const __m256i l = _mm256_loadu_si256((const __m256i *)(xb->l + j));
        ah = _mm256_add_epi32(ah, _mm256_and_si256(h, m1));
        al = _mm256_add_epi32(al, _mm256_and_si256(l, m1));
        bh = _mm256_add_epi32(bh, _mm256_and_si256(h, m2));
        bl = _mm256_add_epi32(bl, _mm256_and_si256(l, m2));
    }
    acc[0] += tern_hsum8_avx2(ah) * (1 << 20) + tern_hsum8_avx2(al);
    acc[1] += tern_hsum8_avx2(bh) * (1 << 20) + tern_hsum8_avx2(bl);
    tern_blk_generic(s, xb, j, n, acc);
}

__attribute__((target("avx512f"))) static inline int64_t tern_hsum16_avx512(__m512i v)
{
    return _mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)),
                         _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1))));
}

/* 16 weights a step: the symbols' 2-bit fields spread over 16 lanes (shift by
 * lane), compared with 1 and 2 straight into mask registers (3 is 0), and the
 * two halves of X added under them: no multiply, no mask transfer. */
__attribute__((target("avx512f"))) static void tern_blk_avx512(const uint8_t *restrict s,
                                                              const struct tern_xblk *restrict xb,
                                                              size_t j0, size_t n,
                                                              int64_t *restrict acc)
{
    const __m512i sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i three = _mm512_set1_epi32(3), one = _mm512_set1_epi32(1),
                  two = _mm512_set1_epi32(2);
    __m512i ah = _mm512_setzero_si512(), al = ah, bh = ah, bl = ah;
    size_t j = j0;
    for (; j + 16 <= n; j += 16) {
        uint32_t bits;
        memcpy(&bits, s + (j >> 2), 4);
        const __m512i v = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)bits), sh), three);
        const __mmask16 k1 = _mm512_cmpeq_epi32_mask(v, one), k2 = _mm512_cmpeq_epi32_mask(v, two);
        const __m512i h = _mm512_loadu_si512(xb->h + j), l = _mm512_loadu_si512(xb->l + j);
        ah = _mm512_mask_add_epi32(ah, k1, ah, h);
        al = _mm512_mask_add_epi32(al, k1, al, l);
        bh = _mm512_mask_add_epi32(bh, k2, bh, h);
        bl = _mm512_mask_add_epi32(bl, k2, bl, l);
    }
    acc[0] += tern_hsum16_avx512(ah) * (1 << 20) + tern_hsum16_avx512(al);
    acc[1] += tern_hsum16_avx512(bh) * (1 << 20) + tern_hsum16_avx512(bl);
    tern_blk_generic(s, xb, j, n, acc);
}

__attribute__((target("avx512f"))) static void tern_fx_avx512(const float *restrict x, size_t j0,
                                                              size_t n, double scale,
                                                              struct tern_xblk *restrict xb)
{
    const __m512d sc = _mm512_set1_pd(scale), mg = _mm512_set1_pd(QNT_TFX_MAGIC);
    const __m512i mb = _mm512_set1_epi64(QNT_TFX_MAGIC_BITS), lm = _mm512_set1_epi64(0xfffff);
    size_t j = j0;
    for (; j + 8 <= n; j += 8) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        v = _mm512_add_pd(_mm512_mul_pd(v, sc), mg);
        const __m512i X = _mm512_sub_epi64(_mm512_castpd_si512(v), mb);
        _mm256_storeu_si256((__m256i *)(xb->h + j), _mm512_cvtepi64_epi32(_mm512_srai_epi64(X, 20)));
        _mm256_storeu_si256((__m256i *)(xb->l + j),
                            _mm512_cvtepi64_epi32(_mm512_and_si512(X, lm)));
    }
    tern_fx_generic(x, j, n, scale, xb);
}
#endif

/* The best kernel up to `kernel` (1 generic, 2 AVX2, 3 AVX-512) this CPU runs. */
static int tern_best(int kernel)
{
#ifdef QNT_TERN_X86
    const unsigned f = sb_cpu_features();
    if (kernel >= 3 && (f & (SB_CPU_AVX512F | SB_CPU_BMI2)) == (SB_CPU_AVX512F | SB_CPU_BMI2))
        return 3;
    if (kernel >= 2 && (f & SB_CPU_AVX2))
        return 2;
#else
    (void)kernel;
#endif
    return 1;
}

/* Kernel choice: 0 ref (forced by the probe's switch), else tern_best. */
static int tern_pick(void)
{
    return sb_cpu_ref() ? 0 : tern_best(3);
}

/* Rows r0 .. r0+nr-1; y[r - yoff] for row r. */
static void tern_tile(const uint8_t *restrict w, size_t rb, size_t cols, size_t r0, size_t nr,
                      const float *restrict x, const struct qnt_tfx *fx, int pick,
                      float *restrict y, size_t yoff)
{
    struct tern_xblk xb;
    int64_t acc[TERN_TR][2];
    tern_blk_fn blk = tern_blk_generic;
    void (*conv)(const float *restrict, size_t, size_t, double, struct tern_xblk *restrict) =
        tern_fx_generic;
#ifdef QNT_TERN_X86
    if (pick == 2)
        blk = tern_blk_avx2;
    if (pick == 3) {
        blk = tern_blk_avx512;
        conv = tern_fx_avx512;
    }
#else
    (void)pick;
#endif
    memset(acc, 0, sizeof acc);
    for (size_t c0 = 0; c0 < cols; c0 += TERN_BC) {
        const size_t n = cols - c0 < TERN_BC ? cols - c0 : TERN_BC;
        conv(x + c0, 0, n, fx->scale, &xb);
        for (size_t i = 0; i < nr; i++)
            blk(w + (r0 + i) * rb + QNT_TERN_ROW_HDR + c0 / 4, &xb, 0, n, acc[i]);
    }
    for (size_t i = 0; i < nr; i++) {
        const uint8_t *o = w + (r0 + i) * rb;
        y[r0 + i - yoff] = qnt_tfx_out(rd16(o), rd16(o + 2), acc[i][0], acc[i][1], fx);
    }
}

/* Rows row0 .. row0+nrows-1 into y[0 .. nrows-1]. */
static void tern_matvec(int pick, const void *restrict w, size_t cols, size_t row0, size_t nrows,
                        const float *restrict x, float *restrict y)
{
    struct qnt_tfx fx;
    qnt_tfx_init(&fx, x, cols);
    if (!fx.finite) {
        qnt_tfx_nan(y, nrows);
        return;
    }
    const size_t rb = qnt_tern_row_bytes(cols);
    const long nt = (long)((nrows + TERN_TR - 1) / TERN_TR);
#pragma omp parallel for schedule(static) if (nrows * cols > 65536)
    for (long t = 0; t < nt; t++) {
        const size_t r0 = row0 + (size_t)t * TERN_TR;
        const size_t nr = row0 + nrows - r0 < TERN_TR ? row0 + nrows - r0 : TERN_TR;
        tern_tile((const uint8_t *)w, rb, cols, r0, nr, x, &fx, pick, y, row0);
    }
}

void qnt_tern_matvec(const void *restrict w, size_t rows, size_t cols, const float *restrict x,
                     float *restrict y)
{
    const int pick = tern_pick();
    if (pick == 0)
        qnt_tern_matvec_ref(w, rows, cols, x, y);
    else
        tern_matvec(pick, w, cols, 0, rows, x, y);
}

void qnt_tern_matvec_kernel(int kernel, const void *restrict w, size_t rows, size_t cols,
                            const float *restrict x, float *restrict y)
{
    tern_matvec(tern_best(kernel), w, cols, 0, rows, x, y);
}

/* ---- batched matmul (qnt_tmm_impl.h) ----------------------------------------- */

struct tern_tmm {
    const uint8_t *w;
    size_t rb, cols;
};

static size_t tern_tmm_emit(const void *enc, size_t r, unsigned cls, uint32_t *out, int kernel)
{
    const struct tern_tmm *c = enc;
    return qnt_tmm_scan2(c->w + r * c->rb + QNT_TERN_ROW_HDR, c->cols, cls, out, kernel);
}

size_t qnt_tern_matmul_ws_size(size_t cols, size_t nrows, size_t n)
{
    return qnt_tmm_rows_ws_size(cols, nrows, n);
}

void qnt_tern_matmul_kernel(int kernel, const void *restrict w, size_t rows, size_t cols,
                            size_t row0, size_t nrows, const float *restrict X, size_t n,
                            float *restrict Y, void *ws, size_t ws_bytes)
{
    (void)rows;
    struct qnt_tmm_job job;
    const struct tern_tmm c = { w, qnt_tern_row_bytes(cols), cols };
    struct qnt_tmm_rows R = { tern_tmm_emit, &c, w, c.rb, 0 };
    qnt_tmm_rows_job(&job, &R, cols, row0, nrows, kernel);
    if (qnt_tmm_run(&job, X, n, Y, ws, ws_bytes) == 0)
        return;
    /* no room: token by token, the same bits */
    const int pick = tern_pick();
    for (size_t t = 0; t < n; t++)
        tern_matvec(pick ? pick : 1, w, cols, row0, nrows, X + t * cols, Y + t * nrows);
}

void qnt_tern_matmul(const void *restrict w, size_t rows, size_t cols, size_t row0, size_t nrows,
                     const float *restrict X, size_t n, float *restrict Y, void *ws,
                     size_t ws_bytes)
{
    if (tern_pick() == 0) {
        qnt_tern_matmul_ref(w, rows, cols, row0, nrows, X, n, Y);
        return;
    }
    qnt_tern_matmul_kernel(0, w, rows, cols, row0, nrows, X, n, Y, ws, ws_bytes);
}

void qnt_tern_matmul_ref(const void *restrict w, size_t rows, size_t cols, size_t row0,
                         size_t nrows, const float *restrict X, size_t n, float *restrict Y)
{
    (void)rows;
    const size_t rb = qnt_tern_row_bytes(cols);
    for (size_t t = 0; t < n; t++)
        qnt_tern_matvec_ref((const uint8_t *)w + row0 * rb, nrows, cols, X + t * cols,
                            Y + t * nrows);
}
