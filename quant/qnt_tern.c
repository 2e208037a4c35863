/* qnt_tern.c: the QMoE ternary grid (qmoe-gptq.md §2.1) in the plain 2-bit
 * row layout of qnt_tern.h: quantize, dequantize, matvec (ref + AVX2).
 * Knows the grid and the bytes; nothing of files. */
#include "qnt_tern.h"

#include <math.h>
#include <stdlib.h>
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

float qnt_tern_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

void qnt_tern_quantize_rows(const float *restrict x, size_t rows, size_t cols, void *restrict dst)
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
        const float tlo = flo * 0.5f, thi = fhi * 0.5f;
        for (size_t j = 0; j < cols; j++) {
            unsigned sym = 0;
            if (fhi > 0.0f && xr[j] > thi)
                sym = 2;
            else if (flo < 0.0f && xr[j] < tlo)
                sym = 1;
            s[j >> 2] |= (uint8_t)(sym << (2 * (j & 3)));
        }
    }
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
    const size_t rb = qnt_tern_row_bytes(cols);
    for (size_t i = 0; i < nrows; i++) {
        const uint8_t *o = (const uint8_t *)src + (row0 + i) * rb;
        const float lv[4] = { 0.0f, qnt_tern_bf16_to_f32(rd16(o)), qnt_tern_bf16_to_f32(rd16(o + 2)),
                              0.0f };
        const uint8_t *s = o + QNT_TERN_ROW_HDR;
        float *d = dst + i * cols;
        for (size_t j = 0; j < cols; j++)
            d[j] = lv[(s[j >> 2] >> (2 * (j & 3))) & 3u];
    }
}

void qnt_tern_matvec_ref(const void *restrict w, size_t rows, size_t cols, const float *restrict x,
                         float *restrict y)
{
    const size_t rb = qnt_tern_row_bytes(cols);
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *o = (const uint8_t *)w + r * rb;
        const double lv[4] = { 0.0, qnt_tern_bf16_to_f32(rd16(o)), qnt_tern_bf16_to_f32(rd16(o + 2)),
                               0.0 };
        const uint8_t *s = o + QNT_TERN_ROW_HDR;
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++)
            acc += lv[(s[j >> 2] >> (2 * (j & 3))) & 3u] * (double)x[j];
        y[r] = (float)acc;
    }
}

/* Portable fast row: y = lo * (sum of x where sym 1) + hi * (sum where sym 2),
 * four float partial sums each so the compiler can vectorise. */
static float tern_row_generic(const uint8_t *restrict o, size_t cols, const float *restrict x)
{
    const float flo = qnt_tern_bf16_to_f32(rd16(o)), fhi = qnt_tern_bf16_to_f32(rd16(o + 2));
    const uint8_t *s = o + QNT_TERN_ROW_HDR;
    float sl[4] = { 0 }, sh[4] = { 0 };
    size_t j = 0;
    for (; j + 4 <= cols; j += 4) {
        unsigned b = s[j >> 2];
        for (int k = 0; k < 4; k++) {
            unsigned c = (b >> (2 * k)) & 3u;
            sl[k] += c == 1 ? x[j + k] : 0.0f;
            sh[k] += c == 2 ? x[j + k] : 0.0f;
        }
    }
    for (; j < cols; j++) {
        unsigned c = (s[j >> 2] >> (2 * (j & 3))) & 3u;
        sl[0] += c == 1 ? x[j] : 0.0f;
        sh[0] += c == 2 ? x[j] : 0.0f;
    }
    return flo * ((sl[0] + sl[1]) + (sl[2] + sl[3])) + fhi * ((sh[0] + sh[1]) + (sh[2] + sh[3]));
}

#ifdef QNT_TERN_X86
__attribute__((target("avx2,fma"))) static float tern_row_avx2(const uint8_t *restrict o,
                                                               size_t cols, const float *restrict x)
{
    const float flo = qnt_tern_bf16_to_f32(rd16(o)), fhi = qnt_tern_bf16_to_f32(rd16(o + 2));
    const uint8_t *s = o + QNT_TERN_ROW_HDR;
    const __m256i shifts = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i three = _mm256_set1_epi32(3), one = _mm256_set1_epi32(1),
                  two = _mm256_set1_epi32(2);
    __m256 al0 = _mm256_setzero_ps(), ah0 = _mm256_setzero_ps();
    __m256 al1 = _mm256_setzero_ps(), ah1 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= cols; j += 16) {
        uint32_t bits;
        memcpy(&bits, s + (j >> 2), 4);
        __m256i v0 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(bits & 0xffff)), shifts), three);
        __m256i v1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(bits >> 16)), shifts), three);
        __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
        al0 = _mm256_add_ps(al0, _mm256_and_ps(x0, _mm256_castsi256_ps(_mm256_cmpeq_epi32(v0, one))));
        ah0 = _mm256_add_ps(ah0, _mm256_and_ps(x0, _mm256_castsi256_ps(_mm256_cmpeq_epi32(v0, two))));
        al1 = _mm256_add_ps(al1, _mm256_and_ps(x1, _mm256_castsi256_ps(_mm256_cmpeq_epi32(v1, one))));
        ah1 = _mm256_add_ps(ah1, _mm256_and_ps(x1, _mm256_castsi256_ps(_mm256_cmpeq_epi32(v1, two))));
    }
    float tl[8], th[8];
    _mm256_storeu_ps(tl, _mm256_add_ps(al0, al1));
    _mm256_storeu_ps(th, _mm256_add_ps(ah0, ah1));
    float sl = ((tl[0] + tl[1]) + (tl[2] + tl[3])) + ((tl[4] + tl[5]) + (tl[6] + tl[7]));
    float sh = ((th[0] + th[1]) + (th[2] + th[3])) + ((th[4] + th[5]) + (th[6] + th[7]));
    for (; j < cols; j++) {
        unsigned c = (s[j >> 2] >> (2 * (j & 3))) & 3u;
        sl += c == 1 ? x[j] : 0.0f;
        sh += c == 2 ? x[j] : 0.0f;
    }
    return flo * sl + fhi * sh;
}
#endif

/* Kernel choice, once: AVX2 if the CPU has it, unless SUBBIT_REF_KERNELS=1. */
static int tern_pick(void)
{
    static int pick = -1;   /* benign race: every thread computes the same value */
    if (pick < 0) {
        const char *e = getenv("SUBBIT_REF_KERNELS");
        int p = 1;
        if (e && e[0] == '1')
            p = 0;
#ifdef QNT_TERN_X86
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            p = 2;
#endif
        pick = p;
    }
    return pick;
}

void qnt_tern_matvec(const void *restrict w, size_t rows, size_t cols, const float *restrict x,
                     float *restrict y)
{
    const int pick = tern_pick();
    if (pick == 0) {
        qnt_tern_matvec_ref(w, rows, cols, x, y);
        return;
    }
    const size_t rb = qnt_tern_row_bytes(cols);
    const long n = (long)rows;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (long r = 0; r < n; r++) {
        const uint8_t *o = (const uint8_t *)w + (size_t)r * rb;
#ifdef QNT_TERN_X86
        if (pick == 2) {
            y[r] = tern_row_avx2(o, cols, x);
            continue;
        }
#endif
        y[r] = tern_row_generic(o, cols, x);
    }
}
