/* qnt_tmm.c: the batched exact ternary matmul tern, sub1 and sub1-qmoe share
 * (design and summation: qnt_tmm_impl.h), portable and AVX-512, and the
 * dispatch qnt_matvec.c calls for the three encodings. Knows the fixed-point
 * sums and the tile lists; the encodings decode their own tiles. */
#include "qnt_tmm_impl.h"

#include <string.h>

#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"
#include "sb_cpu.h"
#include "sb_math.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QNT_TMM_X86 1
#endif

#define TMM_CC 1024u   /* columns an xt build item converts */

static inline size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The symbols of class cls among the 32 from column j0: the low bit of each. */
static inline uint64_t scan2_mask(const uint8_t *s, size_t cols, size_t j0, unsigned cls)
{
    const uint64_t w = qnt_tmm_word2(s, cols, j0);
    return (cls ? (w >> 1) & ~w : w & ~(w >> 1)) & 0x5555555555555555ull;
}

static size_t scan2_generic(const uint8_t *s, size_t cols, unsigned cls, uint32_t *out)
{
    size_t n = 0;
    for (size_t j0 = 0; j0 < cols; j0 += 32) {
        uint64_t m = scan2_mask(s, cols, j0, cls);
        while (m) {
            out[n++] = (uint32_t)(j0 + ((unsigned)__builtin_ctzll(m) >> 1));
            m &= m - 1;
        }
    }
    return n;
}

#ifdef QNT_TMM_X86
/* Branch-free: the 32 symbols' class bits gathered by pext, the column
 * numbers compressed under them; stores 16 entries past the count. */
__attribute__((target("avx512f,bmi2,popcnt"))) static size_t scan2_avx512(const uint8_t *s,
                                                                         size_t cols, unsigned cls,
                                                                         uint32_t *out)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    size_t n = 0;
    for (size_t j0 = 0; j0 < cols; j0 += 32) {
        const uint32_t k = (uint32_t)_pext_u64(scan2_mask(s, cols, j0, cls), 0x5555555555555555ull);
        const __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)j0), lane);
        _mm512_storeu_si512(out + n, _mm512_maskz_compress_epi32((__mmask16)k, c0));
        n += (size_t)__builtin_popcount(k & 0xffffu);
        _mm512_storeu_si512(out + n, _mm512_maskz_compress_epi32((__mmask16)(k >> 16),
                                                                 _mm512_add_epi32(c0, sixteen)));
        n += (size_t)__builtin_popcount(k >> 16);
    }
    return n;
}
#endif

static int tmm_avx512(void);

size_t qnt_tmm_scan2(const uint8_t *s, size_t cols, unsigned cls, uint32_t *out, int kernel)
{
#ifdef QNT_TMM_X86
    if (kernel == 0 && tmm_avx512())
        return scan2_avx512(s, cols, cls, out);
#endif
    (void)kernel;
    return scan2_generic(s, cols, cls, out);
}

/* ---- sizes -------------------------------------------------------------- */

/* Tokens a group: xt within QNT_TMM_XT_BYTES, at least QNT_TMM_MIN_GROUP,
 * at most n; a multiple of the block unless it is all of n. */
static size_t tmm_group_max;   /* qnt_tmm_set_group (tests); 0: automatic */

void qnt_tmm_set_group(size_t tokens)
{
    tmm_group_max = tokens ? (tokens + QNT_TMM_TB - 1) / QNT_TMM_TB * QNT_TMM_TB : 0;
}

static size_t tmm_group(size_t cols, size_t n)
{
    size_t g = QNT_TMM_MIN_GROUP;
    if (cols && QNT_TMM_XT_BYTES / (cols * 8 * QNT_TMM_TB) * QNT_TMM_TB > g)
        g = QNT_TMM_XT_BYTES / (cols * 8 * QNT_TMM_TB) * QNT_TMM_TB;
    if (tmm_group_max)
        g = tmm_group_max;
    return g < n ? g : n;
}

struct tmm_layout {
    size_t group, fx_off, xt_off, tiles_off, tile_stride;
};

static int tmm_layout(const struct qnt_tmm_job *job, size_t n, struct tmm_layout *L)
{
    size_t xt;
    L->group = tmm_group(job->cols, n);
    if (sb_mul_size(L->group, job->cols * 8, &xt) || job->cols > SIZE_MAX / 64)
        return -1;
    L->fx_off = 0;
    L->xt_off = al64(L->group * sizeof(struct qnt_tfx));
    L->tiles_off = L->xt_off + al64(xt);
    L->tile_stride = al64(job->tile_bytes ? job->tile_bytes : 1);
    return L->tiles_off < L->xt_off ? -1 : 0;
}

int qnt_tmm_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

size_t qnt_tmm_ws_size(const struct qnt_tmm_job *job, size_t n, int nthreads)
{
    struct tmm_layout L;
    size_t t, out;
    if (tmm_layout(job, n, &L) || nthreads < 1 || sb_mul_size(L.tile_stride, (size_t)nthreads, &t) ||
        sb_add_size(L.tiles_off, t, &out) || sb_add_size(out, 64, &out))
        return 0;
    return out;
}

/* ---- row-wise encodings ------------------------------------------------------ */

static void rows_decode(const struct qnt_tmm_job *job, size_t k, void *scratch,
                        struct qnt_tmm_tile *T)
{
    const struct qnt_tmm_rows *R = job->ctx;
    const size_t r0 = job->row0 + k * R->tr, end = job->row0 + job->nrows;
    const size_t nr = end - r0 < R->tr ? end - r0 : R->tr;
    uint32_t *rng = scratch, *ent = rng + 4 * R->tr;
    uint32_t p = 0;
    for (size_t i = 0; i < nr; i++) {
        rng[4 * i] = p;
        p += (uint32_t)R->emit(R->enc, r0 + i, 0, ent + p, job->kernel);
        rng[4 * i + 1] = rng[4 * i + 2] = p;
        p += (uint32_t)R->emit(R->enc, r0 + i, 1, ent + p, job->kernel);
        rng[4 * i + 3] = p;
    }
    T->r0 = r0;
    T->nr = nr;
    T->lv = R->lv + r0 * R->lvs;
    T->lvs = R->lvs;
    T->rng = rng;
    T->ent = ent;
}

void qnt_tmm_rows_job(struct qnt_tmm_job *job, struct qnt_tmm_rows *R, size_t cols, size_t row0,
                      size_t nrows, int kernel)
{
    R->tr = cols ? 32768 / cols : 32768;   /* ~32 Ki weights: lists stay in L1/L2 */
    if (!R->tr)
        R->tr = 1;
    if (R->tr > nrows)
        R->tr = nrows ? nrows : 1;
    memset(job, 0, sizeof *job);
    job->cols = cols;
    job->row0 = row0;
    job->nrows = nrows;
    job->ntiles = (nrows + R->tr - 1) / R->tr;
    job->tile_bytes = (4 * R->tr + R->tr * cols + QNT_TMM_SLACK) * sizeof(uint32_t);
    job->tile_weights = R->tr * cols;
    job->decode = rows_decode;
    job->ctx = R;
    job->kernel = kernel;
}

size_t qnt_tmm_rows_ws_size(size_t cols, size_t nrows, size_t n)
{
    struct qnt_tmm_job job;
    struct qnt_tmm_rows R;
    memset(&R, 0, sizeof R);
    if (nrows && cols > SIZE_MAX / 4 / nrows)
        return 0;
    qnt_tmm_rows_job(&job, &R, cols, 0, nrows, 0);
    return qnt_tmm_ws_size(&job, n, qnt_tmm_threads());
}

/* ---- CPU ------------------------------------------------------------------ */

static int tmm_avx512(void)
{
#ifdef QNT_TMM_X86
    return sb_cpu_has(SB_CPU_AVX512F | SB_CPU_AVX512DQ | SB_CPU_AVX512VL | SB_CPU_BMI2 |
                      SB_CPU_POPCNT);
#else
    return 0;
#endif
}

static int tmm_avx2(void)
{
#ifdef QNT_TMM_X86
    return sb_cpu_has(SB_CPU_AVX2);
#else
    return 0;
#endif
}

/* The kernels a job runs: 2 AVX-512, 1 AVX2, 0 portable. job->kernel: 0 the
 * best this CPU has, 1 portable, 2 AVX2 at most (tests). */
static int tmm_simd(int kernel)
{
    if (kernel == 1)
        return 0;
    if (kernel == 0 && tmm_avx512())
        return 2;
    return tmm_avx2() ? 1 : 0;
}

/* ---- xt: X in fixed point, block-major: block b (8 tokens, w in the last)
 * at xt + 8 b cols, its column j at + j w ------------------------------------ */

/* One block: tokens X .. X + (w - 1) cols (w <= 8), columns c0 .. c1-1, into
 * xb[j w + k]. */
static void xt_build_generic(const float *X, size_t cols, const struct qnt_tfx *fx, size_t w,
                             size_t c0, size_t c1, int64_t *xb)
{
    for (size_t j = c0; j < c1; j++)
        for (size_t k = 0; k < w; k++)
            xb[j * w + k] = fx[k].finite ? qnt_tfx_x(X[k * cols + j], fx[k].scale) : 0;
}

#ifdef QNT_TMM_X86
#define TMM_TGT "avx512f,avx512dq,avx512vl"

/* 8 columns of 8 tokens: rows r[k] (token k, columns j..j+7) to columns. */
__attribute__((target(TMM_TGT))) static inline void tmm_transpose8(__m512i r[8])
{
    const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i i1 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512i a[8], b[8];
    for (int k = 0; k < 8; k += 2) {
        a[k] = _mm512_unpacklo_epi64(r[k], r[k + 1]);       /* r_k[0] r_k+1[0] r_k[2] ... */
        a[k + 1] = _mm512_unpackhi_epi64(r[k], r[k + 1]);   /* r_k[1] r_k+1[1] r_k[3] ... */
    }
    for (int h = 0; h < 8; h += 4)
        for (int q = 0; q < 2; q++) {
            b[h + q] = _mm512_permutex2var_epi64(a[h + q], i0, a[h + q + 2]);
            b[h + q + 2] = _mm512_permutex2var_epi64(a[h + q], i1, a[h + q + 2]);
        }
    /* b[0]: column 0 of tokens 0-3 | column 4 of tokens 0-3; b[4] the same of 4-7;
       b[1] columns 1 / 5, b[2] columns 2 / 6, b[3] columns 3 / 7 */
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_i64x2(b[c], b[c + 4], 0x44);
        r[c + 4] = _mm512_shuffle_i64x2(b[c], b[c + 4], 0xEE);
    }
}

__attribute__((target(TMM_TGT))) static void xt_build_avx512(const float *X, size_t cols,
                                                             const struct qnt_tfx *fx, size_t w,
                                                             size_t c0, size_t c1, int64_t *xb)
{
    const __m512d mg = _mm512_set1_pd(QNT_TFX_MAGIC);
    const __m512i mb = _mm512_set1_epi64(QNT_TFX_MAGIC_BITS);
    const __mmask8 wm = (__mmask8)((1u << w) - 1);
    __m512d sc[QNT_TMM_TB];
    int live[QNT_TMM_TB];
    for (size_t k = 0; k < QNT_TMM_TB; k++) {
        live[k] = k < w && fx[k].finite;
        sc[k] = _mm512_set1_pd(live[k] ? fx[k].scale : 0.0);
    }
    size_t j = c0;
    for (; j + 8 <= c1; j += 8) {
        __m512i r[8];
        for (size_t k = 0; k < QNT_TMM_TB; k++) {
            if (!live[k]) {
                r[k] = _mm512_setzero_si512();
                continue;
            }
            /* qnt_tfx_x: the product is exact, the add rounds to an integer */
            const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(X + k * cols + j));
            r[k] = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_add_pd(_mm512_mul_pd(v, sc[k]), mg)),
                                    mb);
        }
        if (w == 1) {            /* one token: its row is already the columns */
            _mm512_storeu_si512(xb + j, r[0]);
            continue;
        }
        tmm_transpose8(r);
        for (int c = 0; c < 8; c++)
            _mm512_mask_storeu_epi64(xb + (j + (size_t)c) * w, wm, r[c]);
    }
    xt_build_generic(X, cols, fx, w, j, c1, xb);
}

/* The same in AVX2 (no FMA in the target: the product is exact anyway, the
 * add rounds to an integer as qnt_tfx_x's does): 4 columns of 4 tokens at a
 * time, a 4 x 4 transpose of int64. */
__attribute__((target("avx2"))) static void xt_build_avx2(const float *X, size_t cols,
                                                         const struct qnt_tfx *fx, size_t w,
                                                         size_t c0, size_t c1, int64_t *xb)
{
    const __m256d mg = _mm256_set1_pd(QNT_TFX_MAGIC);
    const __m256i mb = _mm256_set1_epi64x(QNT_TFX_MAGIC_BITS);
    __m256d sc[QNT_TMM_TB];
    int live[QNT_TMM_TB];
    for (size_t k = 0; k < QNT_TMM_TB; k++) {
        live[k] = k < w && fx[k].finite;
        sc[k] = _mm256_set1_pd(live[k] ? fx[k].scale : 0.0);
    }
    __m256i tm[2];   /* store masks of tokens 0-3 and 4-7 */
    for (int h = 0; h < 2; h++)
        tm[h] = _mm256_setr_epi64x(4 * h + 0 < (int)w ? -1 : 0, 4 * h + 1 < (int)w ? -1 : 0,
                                   4 * h + 2 < (int)w ? -1 : 0, 4 * h + 3 < (int)w ? -1 : 0);
    size_t j = c0;
    for (; j + 4 <= c1; j += 4) {
        __m256i r[QNT_TMM_TB];
        /* every small fixed loop here unrolled: rolled, each kept its values
           on the stack and its exit mispredicted (the column stores' loop
           was a third of this function's samples) */
#pragma GCC unroll 8
        for (size_t k = 0; k < QNT_TMM_TB; k++) {
            if (!live[k]) {
                r[k] = _mm256_setzero_si256();
                continue;
            }
            const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(X + k * cols + j));
            r[k] = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(_mm256_mul_pd(v, sc[k]), mg)),
                                    mb);
        }
        if (w == 1) {
            _mm256_storeu_si256((__m256i *)(void *)(xb + j), r[0]);
            continue;
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            if (4 * (size_t)h >= w)
                break;
            const __m256i *q = r + 4 * h;
            const __m256i a0 = _mm256_unpacklo_epi64(q[0], q[1]), a1 = _mm256_unpackhi_epi64(q[0], q[1]);
            const __m256i a2 = _mm256_unpacklo_epi64(q[2], q[3]), a3 = _mm256_unpackhi_epi64(q[2], q[3]);
            const __m256i col[4] = { _mm256_permute2x128_si256(a0, a2, 0x20),
                                     _mm256_permute2x128_si256(a1, a3, 0x20),
                                     _mm256_permute2x128_si256(a0, a2, 0x31),
                                     _mm256_permute2x128_si256(a1, a3, 0x31) };
            /* a whole half: plain stores (a masked store is microcoded on
               AMD: this function fell from 5.0 % to 3.3 % of a tinymoe ppl with sub1 experts) */
            if (4 * (size_t)h + 4 <= w)
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    _mm256_storeu_si256((__m256i *)(void *)(xb + (j + (size_t)c) * w + 4 * (size_t)h),
                                        col[c]);
            else
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    _mm256_maskstore_epi64(
                        (long long *)(void *)(xb + (j + (size_t)c) * w + 4 * (size_t)h), tm[h], col[c]);
        }
    }
    xt_build_generic(X, cols, fx, w, j, c1, xb);
}
#endif

/* ---- the sums of a tile ------------------------------------------------------ */

struct tmm_blk {
    const int64_t *xb;          /* xt of this block: column j at xb + j nv */
    const struct qnt_tfx *fx;   /* its tokens */
    size_t nv;                  /* its width: tokens, <= 8 */
    float *Y;                   /* Y of its first token, column 0 = output row row0 */
    size_t ys;                  /* Y row stride (nrows) */
};

static inline uint16_t lv16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Tile rows i0 .. i1-1, whose output column is yc + (i - i0). */
static void tmm_rows_generic(const struct qnt_tmm_tile *T, size_t i0, size_t i1, size_t yc,
                             const struct tmm_blk *B)
{
    static const uint32_t qnan = 0x7fc00000u;
    for (size_t i = i0; i < i1; i++) {
        int64_t s[2][QNT_TMM_TB];
        memset(s, 0, sizeof s);
        for (int c = 0; c < 2; c++)
            for (uint32_t e = T->rng[4 * i + 2 * c]; e < T->rng[4 * i + 2 * c + 1]; e++) {
                const int64_t *p = B->xb + (size_t)T->ent[e] * B->nv;
                for (size_t k = 0; k < B->nv; k++)
                    s[c][k] += p[k];
            }
        const uint8_t *l = T->lv + i * T->lvs;
        for (size_t k = 0; k < B->nv; k++) {
            float *y = B->Y + k * B->ys + yc + (i - i0);
            if (B->fx[k].finite)
                *y = qnt_tfx_out(lv16(l), lv16(l + 2), s[0][k], s[1][k], &B->fx[k]);
            else
                memcpy(y, &qnan, 4);
        }
    }
}

#ifdef QNT_TMM_X86
/* Sum of xb rows (W int64 each: masked loads of W lanes) at the listed
 * columns, two chains. */
static inline __attribute__((target(TMM_TGT), always_inline)) __m512i
tmm_sum(const int64_t *xb, size_t W, const uint32_t *e, uint32_t a, uint32_t b)
{
    const __mmask8 wm = (__mmask8)((1u << W) - 1);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    for (; a + 2 <= b; a += 2) {
        s0 = _mm512_add_epi64(s0, _mm512_maskz_loadu_epi64(wm, xb + (size_t)e[a] * W));
        s1 = _mm512_add_epi64(s1, _mm512_maskz_loadu_epi64(wm, xb + (size_t)e[a + 1] * W));
    }
    if (a < b)
        s0 = _mm512_add_epi64(s0, _mm512_maskz_loadu_epi64(wm, xb + (size_t)e[a] * W));
    return _mm512_add_epi64(s0, s1);
}

/* qnt_tfx_out for 8 tokens, the same operations in the same order: (double)S
 * (round to nearest), times 2^-s, times the level, 0 where S == 0, add,
 * round to float. The barrier keeps the products from fusing into the add. */
__attribute__((target(TMM_TGT))) static inline __m256 tmm_out8(uint16_t lob, uint16_t hib,
                                                               __m512i slo, __m512i shi,
                                                               __m512d inv)
{
    const __m512d lo = _mm512_set1_pd((double)qnt_tern_bf16_to_f32(lob));
    const __m512d hi = _mm512_set1_pd((double)qnt_tern_bf16_to_f32(hib));
    __m512d a = _mm512_mul_pd(lo, _mm512_mul_pd(_mm512_cvtepi64_pd(slo), inv));
    __m512d b = _mm512_mul_pd(hi, _mm512_mul_pd(_mm512_cvtepi64_pd(shi), inv));
    a = _mm512_maskz_mov_pd(_mm512_test_epi64_mask(slo, slo), a);
    b = _mm512_maskz_mov_pd(_mm512_test_epi64_mask(shi, shi), b);
    __asm__("" : "+v"(a), "+v"(b));
    return _mm512_cvtpd_ps(_mm512_add_pd(a, b));
}

static inline __attribute__((target(TMM_TGT), always_inline)) void
tmm_rows_w(const struct qnt_tmm_tile *T, size_t i0, size_t i1, size_t yc,
           const struct tmm_blk *B, const size_t W)
{
    double inv[QNT_TMM_TB];
    __mmask8 fin = 0;
    for (size_t k = 0; k < QNT_TMM_TB; k++) {
        inv[k] = k < W ? B->fx[k].inv : 0.0;
        if (k < W && B->fx[k].finite)
            fin |= (__mmask8)(1u << k);
    }
    const __m512d vinv = _mm512_loadu_pd(inv);
    const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
    for (size_t i = i0; i < i1; i++) {
        const uint32_t *r = T->rng + 4 * i;
        const __m512i slo = tmm_sum(B->xb, W, T->ent, r[0], r[1]);
        const __m512i shi = tmm_sum(B->xb, W, T->ent, r[2], r[3]);
        const uint8_t *l = T->lv + i * T->lvs;
        float o[QNT_TMM_TB];
        _mm256_storeu_ps(o, _mm256_mask_blend_ps(fin, qnan, tmm_out8(lv16(l), lv16(l + 2), slo, shi,
                                                                     vinv)));
        float *y = B->Y + yc + (i - i0);
        for (size_t k = 0; k < W; k++)
            y[k * B->ys] = o[k];
    }
}

__attribute__((target(TMM_TGT))) static void tmm_rows_avx512(const struct qnt_tmm_tile *T,
                                                             size_t i0, size_t i1, size_t yc,
                                                             const struct tmm_blk *B)
{
    if (B->nv == QNT_TMM_TB)     /* the common case: a constant stride */
        tmm_rows_w(T, i0, i1, yc, B, QNT_TMM_TB);
    else
        tmm_rows_w(T, i0, i1, yc, B, B->nv);
}

/* AVX2: tokens 0-3 and 4-7 of a block in two int64 registers, the same exact
 * sums. No FMA in the target, so nothing can contract qnt_tfx_out's
 * products into its add. */
#define TMM_TGT2 "avx2"

static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_sum2(const int64_t *xb, size_t W, const __m256i m[2], const uint32_t *e, uint32_t a,
         uint32_t b, __m256i s[2])
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    if (W == QNT_TMM_TB) {
        for (; a + 2 <= b; a += 2) {
            const __m256i *p = (const __m256i *)(const void *)(xb + (size_t)e[a] * W);
            const __m256i *q = (const __m256i *)(const void *)(xb + (size_t)e[a + 1] * W);
            s0 = _mm256_add_epi64(s0, _mm256_loadu_si256(p));
            s1 = _mm256_add_epi64(s1, _mm256_loadu_si256(p + 1));
            s2 = _mm256_add_epi64(s2, _mm256_loadu_si256(q));
            s3 = _mm256_add_epi64(s3, _mm256_loadu_si256(q + 1));
        }
        if (a < b) {
            const __m256i *p = (const __m256i *)(const void *)(xb + (size_t)e[a] * W);
            s0 = _mm256_add_epi64(s0, _mm256_loadu_si256(p));
            s1 = _mm256_add_epi64(s1, _mm256_loadu_si256(p + 1));
        }
    } else {
        for (; a < b; a++) {
            const long long *p = (const long long *)(xb + (size_t)e[a] * W);
            s0 = _mm256_add_epi64(s0, _mm256_maskload_epi64(p, m[0]));
            s1 = _mm256_add_epi64(s1, _mm256_maskload_epi64(p + 4, m[1]));
        }
    }
    s[0] = _mm256_add_epi64(s0, s2);
    s[1] = _mm256_add_epi64(s1, s3);
}

/* (double)S, rounded to nearest even as a conversion instruction would be,
 * for any int64: S = H 2^48 + L (H = S >> 48 signed, L the low 48 bits, both
 * exact as doubles by their bit patterns), one rounding in the final add. */
static inline __attribute__((target(TMM_TGT2), always_inline)) __m256d tmm_i64_pd(__m256i x)
{
    const __m256d big = _mm256_set1_pd(0x1.8p68);                  /* 3 2^67 */
    const __m256d bigm = _mm256_set1_pd(0x1.8p68 + 0x1p52);
    __m256i h = _mm256_srai_epi32(x, 16);                          /* high word pair: S >> 48 */
    h = _mm256_blend_epi16(h, _mm256_setzero_si256(), 0x33);       /* ... times 2^32 */
    h = _mm256_add_epi64(h, _mm256_castpd_si256(big));             /* 3 2^67 + H 2^48 */
    const __m256i l = _mm256_blend_epi16(x, _mm256_castpd_si256(_mm256_set1_pd(0x1p52)), 0x88);
    return _mm256_add_pd(_mm256_sub_pd(_mm256_castsi256_pd(h), bigm), _mm256_castsi256_pd(l));
}

__attribute__((target(TMM_TGT2))) static void i64_to_f64_avx2(const int64_t *x, double *y,
                                                             size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(y + i, tmm_i64_pd(_mm256_loadu_si256((const __m256i *)(const void *)(x + i))));
    for (; i < n; i++) {
        int64_t t[4] = { x[i], 0, 0, 0 };
        double u[4];
        _mm256_storeu_pd(u, tmm_i64_pd(_mm256_loadu_si256((const __m256i *)(void *)t)));
        y[i] = u[0];
    }
}

/* Rows of at most this many columns have sums under 2^51 in magnitude (each
 * |X_j| < 2^QNT_TFX_BITS = 2^40, at most cols of them), which one add of
 * 1.5 2^52's bits and one subtraction convert exactly (tmm_i64_pd_small:
 * 2 operations instead of tmm_i64_pd's 6; the same doubles). */
#define TMM_SMALL_COLS 2048

static inline __attribute__((target(TMM_TGT2), always_inline)) __m256d tmm_i64_pd_small(__m256i x)
{
    const __m256i x1 = _mm256_add_epi64(x, _mm256_set1_epi64x(QNT_TFX_MAGIC_BITS));
    return _mm256_sub_pd(_mm256_castsi256_pd(x1), _mm256_set1_pd(QNT_TFX_MAGIC));
}

/* qnt_tfx_out for 4 tokens, its operations in its order (see tmm_out8);
 * SMALL: the row has at most TMM_SMALL_COLS columns. */
static inline __attribute__((target(TMM_TGT2), always_inline)) __m128
tmm_out4(__m256d lo, __m256d hi, __m256i slo, __m256i shi, __m256d inv, const int SMALL)
{
    const __m256i z = _mm256_setzero_si256();
    const __m256d dlo = SMALL ? tmm_i64_pd_small(slo) : tmm_i64_pd(slo);
    const __m256d dhi = SMALL ? tmm_i64_pd_small(shi) : tmm_i64_pd(shi);
    __m256d a = _mm256_mul_pd(lo, _mm256_mul_pd(dlo, inv));
    __m256d b = _mm256_mul_pd(hi, _mm256_mul_pd(dhi, inv));
    a = _mm256_andnot_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(slo, z)), a);
    b = _mm256_andnot_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(shi, z)), b);
    __asm__("" : "+x"(a), "+x"(b));
    return _mm256_cvtpd_ps(_mm256_add_pd(a, b));
}

/* A block of W tokens' constants for qnt_tfx_out: 1 / scale per token, a
 * NaN mask for non-finite tokens and lanes past W, and the lanes' load mask. */
struct tmm_bk2 {
    __m256d vinv[2];
    __m128 nanm[2];
    __m256i m[2];
};

static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_bk2_init(const struct tmm_blk *B, size_t W, struct tmm_bk2 *K)
{
    double inv[QNT_TMM_TB];
    int32_t fin[QNT_TMM_TB];
    long long lm[QNT_TMM_TB];
    for (size_t k = 0; k < QNT_TMM_TB; k++) {
        inv[k] = k < W ? B->fx[k].inv : 0.0;
        fin[k] = k < W && B->fx[k].finite ? 0 : -1;   /* -1: NaN */
        lm[k] = k < W ? -1 : 0;
    }
    for (int h = 0; h < 2; h++) {
        K->m[h] = _mm256_loadu_si256((const __m256i *)(const void *)(lm + 4 * h));
        K->vinv[h] = _mm256_loadu_pd(inv + 4 * h);
        K->nanm[h] = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(const void *)(fin + 4 * h)));
    }
}

/* Row i's two levels, in every lane. */
static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_levels(const struct qnt_tmm_tile *T, size_t i, __m256d *lo, __m256d *hi)
{
    const uint8_t *l = T->lv + i * T->lvs;
    *lo = _mm256_set1_pd((double)qnt_tern_bf16_to_f32(lv16(l)));
    *hi = _mm256_set1_pd((double)qnt_tern_bf16_to_f32(lv16(l + 2)));
}

/* A row's outputs for a block of W tokens from its sums and levels:
 * qnt_tfx_out in tmm_out4, NaN for non-finite tokens, stored a token at a
 * time. */
static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_out_row(__m256d lo, __m256d hi, const struct tmm_bk2 *K, const __m256i slo[2],
            const __m256i shi[2], float *y, size_t ys, size_t W, const int SMALL)
{
    const __m128 qnan = _mm_castsi128_ps(_mm_set1_epi32(0x7fc00000));
    float o[QNT_TMM_TB];
    for (int h = 0; h < 2; h++)
        _mm_storeu_ps(o + 4 * h, _mm_blendv_ps(tmm_out4(lo, hi, slo[h], shi[h], K->vinv[h], SMALL),
                                               qnan, K->nanm[h]));
    for (size_t k = 0; k < W; k++)
        y[k * ys] = o[k];
}

/* A row's outputs for a block (tmm_out_row's values) as one vector of its 8
 * tokens, for tmm_store8 */
static inline __attribute__((target(TMM_TGT2), always_inline)) __m256
tmm_out_vec(__m256d lo, __m256d hi, const struct tmm_bk2 *K, const __m256i slo[2],
            const __m256i shi[2], const int SMALL)
{
    const __m128 qnan = _mm_castsi128_ps(_mm_set1_epi32(0x7fc00000));
    const __m128 a =
        _mm_blendv_ps(tmm_out4(lo, hi, slo[0], shi[0], K->vinv[0], SMALL), qnan, K->nanm[0]);
    const __m128 b =
        _mm_blendv_ps(tmm_out4(lo, hi, slo[1], shi[1], K->vinv[1], SMALL), qnan, K->nanm[1]);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(a), b, 1);
}

/* 8 rows' outputs r[i] (lane k: token k) stored token by token: token k's 8
 * consecutive rows at y + k ys, for the block's W tokens (8 vector stores
 * instead of 64 scalar ones; the values are tmm_out_row's) */
static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_store8(const __m256 r[8], float *y, size_t ys, size_t W)
{
    __m256 a[8], b[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        a[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);       /* r_i0 r_i+1,0 r_i1 r_i+1,1 | 4 5 */
        a[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);   /* tokens 2 3 | 6 7 */
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            b[i + 2 * h] = _mm256_shuffle_ps(a[i + h], a[i + h + 2], 0x44);
            b[i + 2 * h + 1] = _mm256_shuffle_ps(a[i + h], a[i + h + 2], 0xEE);
        }
    /* b[0]: token 0 (rows 0-3) | token 4; b[1]: 1 | 5; b[2]: 2 | 6; b[3]: 3 | 7;
       b[4..7] the same of rows 4-7 */
#pragma GCC unroll 8
    for (size_t k = 0; k < W; k++) {
        const int c = (int)(k & 3);
        const __m256 t = k < 4 ? _mm256_permute2f128_ps(b[c], b[c + 4], 0x20)
                               : _mm256_permute2f128_ps(b[c], b[c + 4], 0x31);
        _mm256_storeu_ps(y + k * ys, t);
    }
}

static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_rows2_w(const struct qnt_tmm_tile *T, size_t i0, size_t i1, size_t yc,
            const struct tmm_blk *B, const size_t W, const int SMALL)
{
    struct tmm_bk2 K;
    tmm_bk2_init(B, W, &K);
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {   /* 8 rows at a time, stored token by token */
        __m256 o[8];
        for (int g = 0; g < 8; g++) {
            const uint32_t *r = T->rng + 4 * (i + (size_t)g);
            __m256i slo[2], shi[2];
            tmm_sum2(B->xb, W, K.m, T->ent, r[0], r[1], slo);
            tmm_sum2(B->xb, W, K.m, T->ent, r[2], r[3], shi);
            __m256d lo, hi;
            tmm_levels(T, i + (size_t)g, &lo, &hi);
            o[g] = tmm_out_vec(lo, hi, &K, slo, shi, SMALL);
        }
        tmm_store8(o, B->Y + yc + (i - i0), B->ys, W);
    }
    for (; i < i1; i++) {
        const uint32_t *r = T->rng + 4 * i;
        __m256i slo[2], shi[2];
        tmm_sum2(B->xb, W, K.m, T->ent, r[0], r[1], slo);
        tmm_sum2(B->xb, W, K.m, T->ent, r[2], r[3], shi);
        __m256d lo, hi;
        tmm_levels(T, i, &lo, &hi);
        tmm_out_row(lo, hi, &K, slo, shi, B->Y + yc + (i - i0), B->ys, W, SMALL);
    }
}

/* Two blocks over one row's list, the first full (8 tokens, slab xa), the
 * second of WB tokens (slab xb, column j at xb + j WB; WB < 8: the last,
 * short block, read by masked loads mb): the entry's index once, four loads
 * and adds; the same exact integer sums as tmm_sum2 on each block. */
static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_sum2x2(const int64_t *xa, const int64_t *xb, size_t WB, const __m256i mb[2],
           const uint32_t *e, uint32_t a, uint32_t b, __m256i sa[2], __m256i sb[2],
           const int FULL)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, b0 = a0, b1 = a0;
    for (; a < b; a++) {
        const size_t o = (size_t)e[a] * QNT_TMM_TB;
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(const void *)(xa + o)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(const void *)(xa + o + 4)));
        if (FULL) {
            b0 = _mm256_add_epi64(b0, _mm256_loadu_si256((const __m256i *)(const void *)(xb + o)));
            b1 = _mm256_add_epi64(b1, _mm256_loadu_si256((const __m256i *)(const void *)(xb + o + 4)));
        } else {
            const long long *q = (const long long *)(xb + (size_t)e[a] * WB);
            b0 = _mm256_add_epi64(b0, _mm256_maskload_epi64(q, mb[0]));
            b1 = _mm256_add_epi64(b1, _mm256_maskload_epi64(q + 4, mb[1]));
        }
    }
    sa[0] = a0;
    sa[1] = a1;
    sb[0] = b0;
    sb[1] = b1;
}

/* tmm_rows2_w for two blocks at once, BB[0] full, BB[1] of BB[1].nv tokens
 * (each row's list walked once for both); each block's outputs as
 * tmm_rows2_w computes them. */
static inline __attribute__((target(TMM_TGT2), always_inline)) void
tmm_rows2_pair_w(const struct qnt_tmm_tile *T, size_t i0, size_t i1, size_t yc,
                 const struct tmm_blk *BB, const int FULL, const int SMALL)
{
    const size_t WB = BB[1].nv;
    struct tmm_bk2 K[2];
    tmm_bk2_init(&BB[0], QNT_TMM_TB, &K[0]);
    tmm_bk2_init(&BB[1], WB, &K[1]);
    size_t i = i0;
    /* 8 rows at a time, stored token by token (tmm_store8) */
    for (; i + 8 <= i1; i += 8) {
        __m256 o[2][8];
        for (int g = 0; g < 8; g++) {
            const uint32_t *r = T->rng + 4 * (i + (size_t)g);
            __m256i slo[2][2], shi[2][2];
            tmm_sum2x2(BB[0].xb, BB[1].xb, WB, K[1].m, T->ent, r[0], r[1], slo[0], slo[1], FULL);
            tmm_sum2x2(BB[0].xb, BB[1].xb, WB, K[1].m, T->ent, r[2], r[3], shi[0], shi[1], FULL);
            __m256d lo, hi;
            tmm_levels(T, i + (size_t)g, &lo, &hi);
#pragma GCC unroll 2
            for (int q = 0; q < 2; q++)
                o[q][g] = tmm_out_vec(lo, hi, &K[q], slo[q], shi[q], SMALL);
        }
#pragma GCC unroll 2
        for (int q = 0; q < 2; q++)
            tmm_store8(o[q], BB[q].Y + yc + (i - i0), BB[q].ys, q ? WB : QNT_TMM_TB);
    }
    for (; i < i1; i++) {
        const uint32_t *r = T->rng + 4 * i;
        __m256i slo[2][2], shi[2][2];
        tmm_sum2x2(BB[0].xb, BB[1].xb, WB, K[1].m, T->ent, r[0], r[1], slo[0], slo[1], FULL);
        tmm_sum2x2(BB[0].xb, BB[1].xb, WB, K[1].m, T->ent, r[2], r[3], shi[0], shi[1], FULL);
        __m256d lo, hi;
        tmm_levels(T, i, &lo, &hi);
        for (int q = 0; q < 2; q++)
            tmm_out_row(lo, hi, &K[q], slo[q], shi[q], BB[q].Y + yc + (i - i0), BB[q].ys,
                        q ? WB : QNT_TMM_TB, SMALL);
    }
}

/* small: the rows have at most TMM_SMALL_COLS columns */
__attribute__((target(TMM_TGT2))) static void tmm_rows2_pair(const struct qnt_tmm_tile *T,
                                                            size_t i0, size_t i1, size_t yc,
                                                            const struct tmm_blk *BB, int small)
{
    if (BB[1].nv == QNT_TMM_TB) {
        if (small)
            tmm_rows2_pair_w(T, i0, i1, yc, BB, 1, 1);
        else
            tmm_rows2_pair_w(T, i0, i1, yc, BB, 1, 0);
    } else if (small) {
        tmm_rows2_pair_w(T, i0, i1, yc, BB, 0, 1);
    } else {
        tmm_rows2_pair_w(T, i0, i1, yc, BB, 0, 0);
    }
}

__attribute__((target(TMM_TGT2))) static void tmm_rows_avx2(const struct qnt_tmm_tile *T,
                                                           size_t i0, size_t i1, size_t yc,
                                                           const struct tmm_blk *B, int small)
{
    if (B->nv == QNT_TMM_TB) {
        if (small)
            tmm_rows2_w(T, i0, i1, yc, B, QNT_TMM_TB, 1);
        else
            tmm_rows2_w(T, i0, i1, yc, B, QNT_TMM_TB, 0);
    } else if (small) {
        tmm_rows2_w(T, i0, i1, yc, B, B->nv, 1);
    } else {
        tmm_rows2_w(T, i0, i1, yc, B, B->nv, 0);
    }
}
#endif

int qnt_tmm_i64_to_f64_avx2(const int64_t *x, double *y, size_t n)
{
#ifdef QNT_TMM_X86
    if (tmm_avx2()) {
        i64_to_f64_avx2(x, y, n);
        return 0;
    }
#endif
    (void)x, (void)y, (void)n;
    return -1;
}

/* ---- driver --------------------------------------------------------------- */

int qnt_tmm_run(const struct qnt_tmm_job *job, const float *X, size_t n, float *Y, void *ws,
                size_t ws_bytes)
{
    struct tmm_layout L;
    if (!n || !job->nrows)
        return 0;
    if (tmm_layout(job, n, &L) || !ws)
        return -1;
    uint8_t *base = (uint8_t *)al64((size_t)(uintptr_t)ws);
    const size_t pad = (size_t)(base - (uint8_t *)ws);
    if (ws_bytes < pad + L.tiles_off + L.tile_stride)
        return -1;
    size_t fit = (ws_bytes - pad - L.tiles_off) / L.tile_stride;
    int nt = qnt_tmm_threads();
    if ((size_t)nt > fit)
        nt = (int)fit;
    /* small work: no team (the fork costs more than it saves) */
    const double work = (double)job->ntiles * (double)job->tile_weights * (1.0 + (double)n / 8);
    if (work < 262144.0)
        nt = 1;
    const int simd = tmm_simd(job->kernel);
    struct qnt_tfx *fx = (struct qnt_tfx *)(void *)(base + L.fx_off);
    int64_t *xt = (int64_t *)(void *)(base + L.xt_off);
    const size_t cols = job->cols, G = L.group;
    const size_t ncc = (cols + TMM_CC - 1) / TMM_CC;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
        const int team = omp_get_num_threads();
#else
        const int tid = 0, team = 1;
#endif
        void *scr = base + L.tiles_off + (size_t)tid * L.tile_stride;
        struct qnt_tmm_tile T;
        for (size_t g0 = 0; g0 < n; g0 += G) {
            const size_t ng = n - g0 < G ? n - g0 : G;
            const size_t nb = (ng + QNT_TMM_TB - 1) / QNT_TMM_TB;
            const long nfx = (long)ng;
#pragma omp for schedule(static)
            for (long t = 0; t < nfx; t++)
                qnt_tfx_init(&fx[t], X + (g0 + (size_t)t) * cols, cols);
            const long nxi = (long)(nb * ncc);
#pragma omp for schedule(static)
            for (long it = 0; it < nxi; it++) {
                const size_t b = (size_t)it / ncc, c0 = (size_t)it % ncc * TMM_CC;
                const size_t c1 = cols - c0 < TMM_CC ? cols : c0 + TMM_CC;
                const size_t nv = ng - b * QNT_TMM_TB < QNT_TMM_TB ? ng - b * QNT_TMM_TB : QNT_TMM_TB;
                const float *Xb = X + (g0 + b * QNT_TMM_TB) * cols;   /* block b: nv tokens */
                int64_t *xb = xt + b * QNT_TMM_TB * cols;
#ifdef QNT_TMM_X86
                if (simd == 2)
                    xt_build_avx512(Xb, cols, fx + b * QNT_TMM_TB, nv, c0, c1, xb);
                else if (simd == 1)
                    xt_build_avx2(Xb, cols, fx + b * QNT_TMM_TB, nv, c0, c1, xb);
                else
#endif
                    xt_build_generic(Xb, cols, fx + b * QNT_TMM_TB, nv, c0, c1, xb);
            }
            /* tiles x slices of the token blocks: with fewer tiles than
               threads, or a few tiles that do not split evenly over them (an
               expert's 3 chunks over 2 threads), each tile in slices so the
               threads get the same number of items. A thread decodes a tile
               once for consecutive slices of it (the static schedule gives
               each thread a run of items), else once per slice. */
            size_t ns = 1;
            if (job->ntiles < (size_t)team) {
                ns = ((size_t)team + job->ntiles - 1) / job->ntiles;
            } else if (job->ntiles % (size_t)team && job->ntiles < 4 * (size_t)team) {
                size_t g = (size_t)team, r = job->ntiles;
                while (r) {   /* gcd */
                    const size_t q = g % r;
                    g = r;
                    r = q;
                }
                ns = (size_t)team / g;
            }
            if (ns > nb)
                ns = nb;
            const long nit = (long)(job->ntiles * ns);
            size_t have = SIZE_MAX;   /* the tile in this thread's scratch */
#pragma omp for schedule(static)
            for (long it = 0; it < nit; it++) {
                const size_t k = (size_t)it / ns, sl = (size_t)it % ns;
                if (k != have) {
                    job->decode(job, k, scr, &T);
                    have = k;
                }
                /* the tile's rows inside the output range */
                size_t i0 = T.r0 < job->row0 ? job->row0 - T.r0 : 0, i1 = T.nr;
                if (T.r0 + i1 > job->row0 + job->nrows)
                    i1 = job->row0 + job->nrows > T.r0 ? job->row0 + job->nrows - T.r0 : 0;
                if (i0 >= i1)
                    continue;
                const size_t yc = T.r0 + i0 - job->row0;
                const size_t bend = (sl + 1) * nb / ns;
                for (size_t b = sl * nb / ns; b < bend; b++) {
                    struct tmm_blk B;
                    B.xb = xt + b * QNT_TMM_TB * cols;
                    B.fx = fx + b * QNT_TMM_TB;
                    B.nv = ng - b * QNT_TMM_TB < QNT_TMM_TB ? ng - b * QNT_TMM_TB : QNT_TMM_TB;
                    B.Y = Y + (g0 + b * QNT_TMM_TB) * job->nrows;
                    B.ys = job->nrows;
#ifdef QNT_TMM_X86
                    /* AVX2: two blocks a walk of the lists (the second may be
                       the group's short last block) */
                    if (simd == 1 && b + 1 < bend) {
                        struct tmm_blk BB[2] = { B, B };
                        BB[1].xb = B.xb + QNT_TMM_TB * cols;
                        BB[1].fx = B.fx + QNT_TMM_TB;
                        BB[1].nv = ng - (b + 1) * QNT_TMM_TB < QNT_TMM_TB
                                       ? ng - (b + 1) * QNT_TMM_TB : QNT_TMM_TB;
                        BB[1].Y = B.Y + QNT_TMM_TB * job->nrows;
                        tmm_rows2_pair(&T, i0, i1, yc, BB, cols <= TMM_SMALL_COLS);
                        b++;
                        continue;
                    }
                    if (simd == 2)
                        tmm_rows_avx512(&T, i0, i1, yc, &B);
                    else if (simd == 1)
                        tmm_rows_avx2(&T, i0, i1, yc, &B, cols <= TMM_SMALL_COLS);
                    else
#endif
                        tmm_rows_generic(&T, i0, i1, yc, &B);
                }
            }
        }
    }
    return 0;
}
