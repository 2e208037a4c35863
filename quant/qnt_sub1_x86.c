/* qnt_sub1_x86.c: the AVX-512 fused sub1 chunk matvec (docs/sub1.md, "Speed").
 *
 * Same stream, same tokens as qnt_sub1.c's walker; only the work is split in
 * two phases per batch of up to S1X_B tokens:
 *   1. scalar rANS: the 4 interleaved states step through the batch and write
 *      each token's info byte (run | class << 6 | escape << 7) to a buffer.
 *      Nothing else is on this path (no positions, no row checks), so the
 *      4 state chains run at their latency. Two chunks are decoded side by
 *      side (8 independent chains) while both have room.
 *   2. AVX-512, 16 tokens a step: positions by a prefix sum of the run
 *      lengths, a masked gather of x at the non-zeros, x to fixed point
 *      (X = x * 2^s rounded, qnt_ternary_impl.h; widen to double, one
 *      multiply-add with 1.5 * 2^52, one integer subtract) and per-class
 *      int64 sums (weights are {0, lo, hi} per row, so y = lo * S_lo + hi *
 *      S_hi: no multiply per weight). The sums are exact, so y is
 *      bit-identical to every other ternary kernel (qnt_tfx_out).
 * A batch runs without bounds checks only while the chunk has room for its
 * worst case (2 bytes a token); the last bytes go group by group with the
 * checked step. Compiled without -march: the functions carry target
 * attributes and qnt_sub1.c calls them after qnt_sub1_cpu_has_avx512(). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "qnt_ternary_impl.h"

int qnt_sub1_cpu_has_avx512(void);
void qnt_sub1_chunks_avx512(const uint32_t *restrict tab, const uint8_t *const *restrict sp,
                            const uint8_t *const *restrict se, const size_t *restrict nr,
                            size_t nchunk, size_t cols, const uint8_t *const *restrict lv,
                            const float *restrict x, const struct qnt_tfx *fx,
                            float *const *restrict y);

int qnt_sub1_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2");
}

#define S1X_B 64u                     /* tokens a batch (multiple of 16 and of 4) */
#define S1X_L (1u << 16)

static inline uint16_t s1x_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* One chunk's decoder and accumulator state. */
struct s1x {
    const uint8_t *p, *pend;
    uint32_t st[4];
    uint32_t base, n;                 /* flattened position of the next token; chunk size */
    uint32_t rs, re;                  /* current row's flattened start, end */
    size_t row, nr, cols;
    const uint8_t *lv;                /* (lo, hi) bf16 of row 0 of the chunk */
    float *y;
    const struct qnt_tfx *fx;
    int done;
    __m512i sneg0, sneg1, spos0, spos1;  /* int64 X sums: symbol 1 (class 0), symbol 2; tokens 0-7, 8-15 */
    uint8_t buf[2][S1X_B + 16];       /* info bytes: decoded batch, batch being summed */
};

/* Unchecked step: the caller made sure the batch cannot read past pend. The
 * renormalisation is data-random (~1/3 of tokens), so it must not be a branch:
 * cmp sets CF = (X < 2^16), cmovb takes the shifted-in state, adc advances the
 * word offset O by CF (the stream is read at B + 2 O). */
#define S1X_STEP(X, B, O, OUT)                                                             \
    do {                                                                                   \
        uint32_t e_ = tab[(X) & 4095u];                                                    \
        (X) = (e_ >> 20) * ((X) >> 12) + (e_ & 4095u);                                     \
        (OUT) = (uint8_t)(e_ >> 12);                                                       \
        uint16_t w_;                                                                       \
        memcpy(&w_, (B) + 2 * (O), 2);                                                     \
        uint32_t xn_ = ((X) << 16) | w_;                                                   \
        __asm__("cmpl $0x10000, %k[x]\n\tcmovb %k[xn], %k[x]\n\tadcq $0, %q[o]"          \
                : [x] "+r"(X), [o] "+r"(O)                                                 \
                : [xn] "r"(xn_)                                                            \
                : "cc");                                                                   \
    } while (0)

/* Checked step (the chunk's last bytes; on a damaged stream reads stay inside). */
#define S1X_STEPC(X, P, PEND, OUT)                                                         \
    do {                                                                                   \
        static const uint8_t zero2_[2] = { 0, 0 };                                         \
        uint32_t e_ = tab[(X) & 4095u];                                                    \
        (X) = (e_ >> 20) * ((X) >> 12) + (e_ & 4095u);                                     \
        (OUT) = (uint8_t)(e_ >> 12);                                                       \
        unsigned ok_ = (P) + 2 <= (PEND);                                                  \
        const uint8_t *q_ = ok_ ? (P) : zero2_;                                            \
        uint32_t c_ = ((X) < S1X_L) & ok_;                                                 \
        uint16_t w_;                                                                       \
        memcpy(&w_, q_, 2);                                                                \
        (X) = c_ ? (((X) << 16) | w_) : (X);                                               \
        (P) += 2 * c_;                                                                     \
    } while (0)

/* y for the current row, then move to the next one. */
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) static void s1x_flush(struct s1x *s)
{
    const int64_t sn = _mm512_reduce_add_epi64(_mm512_add_epi64(s->sneg0, s->sneg1));
    const int64_t sp = _mm512_reduce_add_epi64(_mm512_add_epi64(s->spos0, s->spos1));
    const uint8_t *l = s->lv + 4 * s->row;
    s->y[s->row] = qnt_tfx_out(s1x_rd16(l), s1x_rd16(l + 2), sn, sp, s->fx);
    s->sneg0 = s->sneg1 = s->spos0 = s->spos1 = _mm512_setzero_si512();
    s->row++;
    s->rs = s->re;
    s->re += (uint32_t)s->cols;
    if (s->row >= s->nr)
        s->done = 1;
}

/* Phase 2 on the first cnt tokens of s->buf. */
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) static void
s1x_accumulate(struct s1x *s, const uint8_t *restrict buf, const float *restrict x, unsigned cnt)
{
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1),
                  m63 = _mm512_set1_epi32(63), m64 = _mm512_set1_epi32(64),
                  m128 = _mm512_set1_epi32(128), last = _mm512_set1_epi32(15);
    __m512i base = _mm512_set1_epi32((int)s->base);
    __m512i rs = _mm512_set1_epi32((int)s->rs), re = _mm512_set1_epi32((int)s->re);
    const __m512d sc = _mm512_set1_pd(s->fx->scale), mg = _mm512_set1_pd(QNT_TFX_MAGIC);
    const __m512i mb = _mm512_set1_epi64(QNT_TFX_MAGIC_BITS);
    /* in registers across the loop */
    __m512i sneg0 = s->sneg0, sneg1 = s->sneg1, spos0 = s->spos0, spos1 = s->spos1;
    for (unsigned i = 0; i < cnt && !s->done; i += 16) {
        __mmask16 valid = cnt - i >= 16 ? 0xffff : (__mmask16)((1u << (cnt - i)) - 1);
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(buf + i)));
        __mmask16 nz = _mm512_mask_testn_epi32_mask(valid, v, m128);
        __mmask16 cls = _mm512_test_epi32_mask(v, m64);
        __m512i run = _mm512_maskz_and_epi32(valid, v, m63);
        __m512i inc = _mm512_mask_add_epi32(run, nz, run, one);
        __m512i ps = inc;                                    /* inclusive prefix sum */
        ps = _mm512_add_epi32(ps, _mm512_alignr_epi32(ps, zero, 15));
        ps = _mm512_add_epi32(ps, _mm512_alignr_epi32(ps, zero, 14));
        ps = _mm512_add_epi32(ps, _mm512_alignr_epi32(ps, zero, 12));
        ps = _mm512_add_epi32(ps, _mm512_alignr_epi32(ps, zero, 8));
        __m512i col = _mm512_sub_epi32(_mm512_add_epi32(base, ps), one);   /* nz lanes */
        base = _mm512_add_epi32(base, _mm512_permutexvar_epi32(last, ps));
        __mmask16 todo = nz;
        while (todo) {
            __mmask16 m = todo & _mm512_cmplt_epu32_mask(col, re);
            if (m) {
                __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m,
                                                    _mm512_sub_epi32(col, rs), x, 4);
                /* X = bits(x * 2^s + 1.5 * 2^52) - bits(1.5 * 2^52): the product is exact */
                __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(g));
                __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(
                    _mm512_extractf64x4_pd(_mm512_castps_pd(g), 1)));
                __m512i X0 = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_fmadd_pd(d0, sc, mg)), mb);
                __m512i X1 = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_fmadd_pd(d1, sc, mg)), mb);
                const __mmask16 mp = m & cls, mn = m & (__mmask16)~cls;
                spos0 = _mm512_mask_add_epi64(spos0, (__mmask8)mp, spos0, X0);
                spos1 = _mm512_mask_add_epi64(spos1, (__mmask8)(mp >> 8), spos1, X1);
                sneg0 = _mm512_mask_add_epi64(sneg0, (__mmask8)mn, sneg0, X0);
                sneg1 = _mm512_mask_add_epi64(sneg1, (__mmask8)(mn >> 8), sneg1, X1);
            }
            todo &= (__mmask16)~m;
            if (!todo)
                break;
            s->sneg0 = sneg0;                              /* a non-zero past this row */
            s->sneg1 = sneg1;
            s->spos0 = spos0;
            s->spos1 = spos1;
            s1x_flush(s);
            sneg0 = sneg1 = spos0 = spos1 = _mm512_setzero_si512();
            if (s->done)
                break;
            rs = _mm512_set1_epi32((int)s->rs);
            re = _mm512_set1_epi32((int)s->re);
        }
    }
    s->base = (uint32_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(base));
    s->sneg0 = sneg0;
    s->sneg1 = sneg1;
    s->spos0 = spos0;
    s->spos1 = spos1;
    if (s->base >= s->n)
        s->done = 1;
}

__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) static void
s1x_init(struct s1x *s, const uint8_t *p, const uint8_t *pend, size_t nr, size_t cols,
         const uint8_t *lv, const struct qnt_tfx *fx, float *y)
{
    s->p = p + 16;
    s->pend = pend;
    for (int k = 0; k < 4; k++)
        memcpy(&s->st[k], p + 4 * k, 4);
    s->base = 0;
    s->n = (uint32_t)(nr * cols);
    s->rs = 0;
    s->re = (uint32_t)cols;
    s->row = 0;
    s->nr = nr;
    s->cols = cols;
    s->lv = lv;
    s->y = y;
    s->fx = fx;
    s->done = nr == 0 || cols == 0;
    s->sneg0 = s->sneg1 = s->spos0 = s->spos1 = _mm512_setzero_si512();
    memset(s->buf, 0, sizeof s->buf);
}

/* Phase 1, one full batch, unchecked. */
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"), optimize("no-tree-vectorize"))) static void
s1x_batch1(struct s1x *restrict s, const uint32_t *restrict tab, int cur)
{
    uint32_t x0 = s->st[0], x1 = s->st[1], x2 = s->st[2], x3 = s->st[3];
    const uint8_t *p = s->p;
    uint64_t o = 0;
    uint8_t *b = s->buf[cur];
    for (unsigned g = 0; g < S1X_B; g += 4) {
        S1X_STEP(x0, p, o, b[g]);
        S1X_STEP(x1, p, o, b[g + 1]);
        S1X_STEP(x2, p, o, b[g + 2]);
        S1X_STEP(x3, p, o, b[g + 3]);
    }
    s->st[0] = x0, s->st[1] = x1, s->st[2] = x2, s->st[3] = x3;
    s->p = p + 2 * o;
}

/* Phase 1 for two chunks side by side (8 chains), unchecked. s[1] follows
 * s[0] in memory and in the stream, so one buffer pointer and one stream base
 * serve both (fewer registers: 8 states, 2 offsets, base, table, buffer). */
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"), optimize("no-tree-vectorize"))) static void
s1x_batch2(struct s1x *restrict s, const uint32_t *restrict tab, int cur)
{
    uint32_t x0 = s[0].st[0], x1 = s[0].st[1], x2 = s[0].st[2], x3 = s[0].st[3];
    uint32_t z0 = s[1].st[0], z1 = s[1].st[1], z2 = s[1].st[2], z3 = s[1].st[3];
    const uint8_t *p = s[0].p;
    uint64_t o = 0, u = (uint64_t)(s[1].p - p) / 2;
    enum { D = sizeof(struct s1x) };
    uint8_t *b = s[0].buf[cur], *const bend = b + S1X_B;
    for (; b < bend; b += 4) {
        S1X_STEP(x0, p, o, b[0]);
        S1X_STEP(z0, p, u, b[D]);
        S1X_STEP(x1, p, o, b[1]);
        S1X_STEP(z1, p, u, b[D + 1]);
        S1X_STEP(x2, p, o, b[2]);
        S1X_STEP(z2, p, u, b[D + 2]);
        S1X_STEP(x3, p, o, b[3]);
        S1X_STEP(z3, p, u, b[D + 3]);
    }
    s[0].st[0] = x0, s[0].st[1] = x1, s[0].st[2] = x2, s[0].st[3] = x3;
    s[1].st[0] = z0, s[1].st[1] = z1, s[1].st[2] = z2, s[1].st[3] = z3;
    s[0].p = p + 2 * o;
    s[1].p = p + 2 * u;
}

static inline int s1x_room(const struct s1x *s)
{
    return !s->done && (size_t)(s->pend - s->p) >= 2 * S1X_B;
}

/* The rest of a chunk: unchecked batches while there is room, then checked groups. */
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) static void
s1x_finish(struct s1x *s, const uint32_t *restrict tab, const float *restrict x)
{
    while (s1x_room(s)) {
        s1x_batch1(s, tab, 0);
        s1x_accumulate(s, s->buf[0], x, S1X_B);
    }
    while (!s->done) {
        for (int k = 0; k < 4; k++)
            S1X_STEPC(s->st[k], s->p, s->pend, s->buf[0][k]);
        s1x_accumulate(s, s->buf[0], x, 4);
    }
    while (s->row < s->nr)                                 /* rows with no non-zero left */
        s1x_flush(s);
}

/* nchunk (1 or 2) chunks: stream [sp[i], se[i]), nr[i] rows of cols, levels
 * lv[i], outputs y[i]. tab: the fast decode table (qnt_sub1.c, s1_table_fast). */
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) void
qnt_sub1_chunks_avx512(const uint32_t *restrict tab, const uint8_t *const *restrict sp,
                       const uint8_t *const *restrict se, const size_t *restrict nr,
                       size_t nchunk, size_t cols, const uint8_t *const *restrict lv,
                       const float *restrict x, const struct qnt_tfx *fx,
                       float *const *restrict y)
{
    struct s1x s[2];
    for (size_t i = 0; i < nchunk; i++)
        s1x_init(&s[i], sp[i], se[i], nr[i], cols, lv[i], fx, y[i]);
    if (nchunk == 2) {
        /* software pipeline: sum batch i-1 while batch i decodes (the sums are
           independent of the rANS chains, so they fill the chains' idle slots) */
        int cur = 0, prev = 0;
        while (s1x_room(&s[0]) && s1x_room(&s[1])) {
            s1x_batch2(s, tab, cur);
            if (prev) {
                s1x_accumulate(&s[0], s[0].buf[cur ^ 1], x, S1X_B);
                s1x_accumulate(&s[1], s[1].buf[cur ^ 1], x, S1X_B);
            }
            prev = 1;
            cur ^= 1;
        }
        if (prev) {
            s1x_accumulate(&s[0], s[0].buf[cur ^ 1], x, S1X_B);
            s1x_accumulate(&s[1], s[1].buf[cur ^ 1], x, S1X_B);
        }
    }
    for (size_t i = 0; i < nchunk; i++)
        s1x_finish(&s[i], tab, x);
}
#endif
