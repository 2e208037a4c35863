/* qnt_sub1_x86.c: the AVX-512 fused sub1 chunk matvec (docs/sub1.md, "Speed").
 *
 * Same stream, same tokens as qnt_sub1.c's walker. A chunk has L <= 16 lanes
 * (whole rows each), stepped in lockstep, so one zmm register holds every
 * lane's rANS state and one step decodes up to 16 tokens:
 *   - table: alias layout (header byte 18 = 1, docs/container.md §7): bucket
 *     b = slot >> 7, j = slot & 127; three vpermt2d over 32-entry tables give
 *     cut[b] and the primary and alias entries, j < cut picks one, k = (entry
 *     + j) mod 4096; then x = f * (x >> 12) + k with vpmulld. The cumulative
 *     layout (byte 18 = 0, older blobs) gathers from the 16 KiB decode table
 *     instead (qnt_sub1_chunks_avx512);
 *   - renormalisation: the lanes whose state fell under 2^16 take the next
 *     16-bit words of the stream in lane order: vpexpandw of 16 words loaded
 *     at the read pointer, which then moves by 2 * popcount (branch-free);
 *   - matvec: per lane, position += run; lanes with a non-zero gather x at
 *     their column, x goes to fixed point (X = x * 2^s rounded,
 *     qnt_ternary_impl.h: widen to double, one multiply-add with 1.5 * 2^52,
 *     one integer subtract) and into per-lane, per-class int64 sums. The sums
 *     are exact, so y is bit-identical to every other ternary kernel
 *     (qnt_tfx_out). A lane whose non-zero lands past its current row (rare at
 *     large widths) leaves the vector path for a scalar flush of that lane.
 * Two chunks are stepped alternately (32 lanes a thread) so that a second
 * independent chain fills the first's latency; three measured no faster (and
 * four spill). The sums, positions and read pointers stay in registers: the
 * rare scalar path (s1x_cross) works on copies.
 * Reads past the chunk's end are never made: the last 32 bytes go through a
 * zero-padded copy. Compiled without -march: the function carries target
 * attributes and qnt_sub1.c calls it after the CPU probe (sb_cpu.h) says yes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "qnt_tern.h"
#include "qnt_ternary_impl.h"

void qnt_sub1_chunks_avx512(const uint32_t *restrict tab, const uint8_t *const *sp,
                            const uint8_t *const *se, const size_t *nr, size_t nchunk, unsigned L,
                            size_t cols, const uint8_t *const *lv, const float *restrict x,
                            const struct qnt_tfx *fx, float *const *y);

#define S1X_TGT "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt"

static inline uint16_t s1x_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Lane bookkeeping outside the registers (only touched on a row change). */
struct s1x_lanes {
    uint32_t row[16], rend[16];       /* current row, end row (chunk-relative) */
    uint32_t rs[16], re[16];          /* current row's start, end (lane positions) */
    int64_t slo[16], shi[16];
};

static void s1x_flush(struct s1x_lanes *ln, unsigned k, uint32_t cols, const uint8_t *lv,
                      const struct qnt_tfx *fx, float *y)
{
    const uint8_t *l = lv + 4 * (size_t)ln->row[k];
    y[ln->row[k]] = qnt_tfx_out(s1x_rd16(l), s1x_rd16(l + 2), ln->slo[k], ln->shi[k], fx);
    ln->slo[k] = ln->shi[k] = 0;
    ln->row[k]++;
    ln->rs[k] = ln->re[k];
    ln->re[k] += cols;
}

/* A chunk's lane bookkeeping and where it reads and writes. */
struct s1x_chunk {
    struct s1x_lanes ln;
    const uint8_t *p, *pend, *lv;
    float *y;
    uint32_t *rng;                    /* emit mode: the tile's row ranges (else NULL) */
    uint32_t st0[16], end0[16];
    /* decode mode: rows row0 .. row0+nrows-1 of the chunk (chunk-relative) go
       to dst; per lane its row's first index there (~0: not wanted), levels */
    size_t drow0, dnrows;
    uint32_t dbase[16];
    float dlv[16][2];
};

/* Decode mode: lane k's current row's destination and levels. */
static void s1x_deq_row(struct s1x_chunk *c, unsigned k, uint32_t cols)
{
    const size_t r = c->ln.row[k];
    const int in = r >= c->drow0 && r - c->drow0 < c->dnrows && r < c->ln.rend[k];
    c->dbase[k] = in ? (uint32_t)((r - c->drow0) * cols) : ~0u;
    c->dlv[k][0] = c->dlv[k][1] = 0.0f;
    if (r < c->ln.rend[k]) {
        const uint8_t *l = c->lv + 4 * r;
        c->dlv[k][0] = qnt_tern_bf16_to_f32(s1x_rd16(l));
        c->dlv[k][1] = qnt_tern_bf16_to_f32(s1x_rd16(l + 2));
    }
}

/* Emit mode, row change of lane k: its row's lists end where the lane's
 * write indices stand (slo = next symbol-1 slot, growing; shi = next
 * symbol-2 slot, shrinking); the next row's region starts fresh. */
static inline __attribute__((always_inline)) void
s1x_flush_emit(struct s1x_lanes *ln, unsigned k, uint32_t cols, uint32_t *rng)
{
    const uint32_t i = ln->row[k];
    rng[4 * (size_t)i + 1] = (uint32_t)ln->slo[k];
    rng[4 * (size_t)i + 2] = (uint32_t)ln->shi[k] + 1;
    ln->row[k]++;
    ln->rs[k] = ln->re[k];
    ln->re[k] += cols;
    ln->slo[k] = (int64_t)(i + 1) * cols;
    ln->shi[k] = (int64_t)(i + 2) * cols - 1;
}

static void s1x_init(struct s1x_chunk *c, const uint8_t *p, const uint8_t *pend, unsigned L,
                     size_t nr, size_t cols, const uint8_t *lv, float *y, uint32_t *rng)
{
    c->rng = rng;
    for (unsigned k = 0; k < 16; k++) {
        uint32_t ra = k < L ? (uint32_t)(k * nr / L) : 0, rb = k < L ? (uint32_t)((k + 1) * nr / L) : 0;
        c->ln.row[k] = ra;
        c->ln.rend[k] = rb;
        c->end0[k] = (rb - ra) * (uint32_t)cols;
        c->ln.rs[k] = 0;
        c->ln.re[k] = (uint32_t)cols;
        c->ln.slo[k] = c->ln.shi[k] = 0;
        if (rng) {                     /* emit: write indices of the lane's first row */
            c->ln.slo[k] = (int64_t)ra * (int64_t)cols;
            c->ln.shi[k] = (int64_t)(ra + 1) * (int64_t)cols - 1;
        }
        c->st0[k] = 0;
        if (k < L)
            memcpy(&c->st0[k], p + 4 * k, 4);
    }
    c->p = p + 4 * L;
    c->pend = pend;
    c->lv = lv;
    c->y = y;
}

/* Lanes in cross have a non-zero past their current row: flush rows (scalar,
 * rare at large widths). Returns the lanes still to sum: a damaged stream's
 * non-zero past the lane's end is dropped and the lane stopped. */
__attribute__((target(S1X_TGT), noinline)) static __mmask16
s1x_cross(struct s1x_chunk *c, __mmask16 cross, __mmask16 nz, uint32_t cols,
          const struct qnt_tfx *fx, __m512i *pos, __m512i *rs, const __m512i end, __m512i *s)
{
    uint32_t pa[16], ea[16];
    int64_t t[4][8];
    _mm512_storeu_si512(pa, *pos);
    _mm512_storeu_si512(ea, end);
    for (int i = 0; i < 4; i++)
        _mm512_storeu_si512(t[i], s[i]);
    struct s1x_lanes *ln = &c->ln;
    for (unsigned k = 0; k < 16; k++) {
        if (!((cross >> k) & 1))
            continue;
        ln->slo[k] = t[k >> 3][k & 7];
        ln->shi[k] = t[2 + (k >> 3)][k & 7];
        if (pa[k] >= ea[k]) {                  /* damaged: past the lane's end */
            pa[k] = ea[k];
            nz &= (__mmask16) ~(1u << k);
            continue;
        }
        while (pa[k] >= ln->re[k])
            s1x_flush(ln, k, cols, c->lv, fx, c->y);
        t[k >> 3][k & 7] = ln->slo[k];
        t[2 + (k >> 3)][k & 7] = ln->shi[k];
    }
    for (int i = 0; i < 4; i++)
        s[i] = _mm512_loadu_si512(t[i]);
    *pos = _mm512_loadu_si512(pa);
    *rs = _mm512_loadu_si512(ln->rs);
    return nz;
}

/* s1x_cross in emit mode: w[0] / w[1] are the lanes' symbol-1 / symbol-2
 * write indices (16 x u32). */
__attribute__((target(S1X_TGT), noinline)) static __mmask16
s1x_cross_emit(struct s1x_chunk *c, __mmask16 cross, __mmask16 nz, uint32_t cols, __m512i *pos,
               __m512i *rs, const __m512i end, __m512i *w)
{
    uint32_t pa[16], ea[16], wl[16], wh[16];
    _mm512_storeu_si512(pa, *pos);
    _mm512_storeu_si512(ea, end);
    _mm512_storeu_si512(wl, w[0]);
    _mm512_storeu_si512(wh, w[1]);
    struct s1x_lanes *ln = &c->ln;
    for (unsigned k = 0; k < 16; k++) {
        if (!((cross >> k) & 1))
            continue;
        if (pa[k] >= ea[k]) {                  /* damaged: past the lane's end */
            pa[k] = ea[k];
            nz &= (__mmask16) ~(1u << k);
            continue;
        }
        ln->slo[k] = wl[k];
        ln->shi[k] = wh[k];
        while (pa[k] >= ln->re[k])
            s1x_flush_emit(ln, k, cols, c->rng);
        wl[k] = (uint32_t)ln->slo[k];
        wh[k] = (uint32_t)ln->shi[k];
    }
    w[0] = _mm512_loadu_si512(wl);
    w[1] = _mm512_loadu_si512(wh);
    *pos = _mm512_loadu_si512(pa);
    *rs = _mm512_loadu_si512(ln->rs);
    return nz;
}

/* s1x_cross in decode mode: the lanes' rows move on, their destinations and
 * levels with them (w[0] base, w[1] / w[2] levels as float bits). */
__attribute__((target(S1X_TGT), noinline)) static __mmask16
s1x_cross_deq(struct s1x_chunk *c, __mmask16 cross, __mmask16 nz, uint32_t cols, __m512i *pos,
              __m512i *rs, const __m512i end, __m512i *w)
{
    uint32_t pa[16], ea[16];
    _mm512_storeu_si512(pa, *pos);
    _mm512_storeu_si512(ea, end);
    struct s1x_lanes *ln = &c->ln;
    for (unsigned k = 0; k < 16; k++) {
        if (!((cross >> k) & 1))
            continue;
        if (pa[k] >= ea[k]) {                  /* damaged: past the lane's end */
            pa[k] = ea[k];
            nz &= (__mmask16) ~(1u << k);
            continue;
        }
        while (pa[k] >= ln->re[k]) {
            ln->row[k]++;
            ln->rs[k] = ln->re[k];
            ln->re[k] += cols;
        }
        s1x_deq_row(c, k, cols);
    }
    float lo[16], hi[16];
    for (unsigned k = 0; k < 16; k++) {
        lo[k] = c->dlv[k][0];
        hi[k] = c->dlv[k][1];
    }
    w[0] = _mm512_loadu_si512(c->dbase);
    w[1] = _mm512_castps_si512(_mm512_loadu_ps(lo));
    w[2] = _mm512_castps_si512(_mm512_loadu_ps(hi));
    *pos = _mm512_loadu_si512(pa);
    *rs = _mm512_loadu_si512(ln->rs);
    return nz;
}

/* Every lane: its current row, then rows with no non-zero left. Matvec mode:
 * t holds the sums (4 x 8 int64); emit mode: the write indices (2 x 16 u32). */
static void s1x_done(struct s1x_chunk *c, unsigned L, uint32_t cols, const struct qnt_tfx *fx,
                     const int64_t (*t)[8])
{
    const uint32_t *w = (const uint32_t *)t;
    if (!c->y && !c->rng)
        return;                        /* decode mode: nothing left to write */
    for (unsigned k = 0; k < L; k++) {
        if (c->rng) {
            c->ln.slo[k] = w[k];
            c->ln.shi[k] = w[16 + k];
            while (c->ln.row[k] < c->ln.rend[k])
                s1x_flush_emit(&c->ln, k, cols, c->rng);
            continue;
        }
        c->ln.slo[k] = t[k >> 3][k & 7];
        c->ln.shi[k] = t[2 + (k >> 3)][k & 7];
        while (c->ln.row[k] < c->ln.rend[k])
            s1x_flush(&c->ln, k, cols, c->lv, fx, c->y);
    }
}

/* One lockstep step of chunk C's lanes (registers ST, END, POS, RS, S[4]);
 * sets ACT to the lanes that stepped (0: the chunk is done). */
#define S1X_STEP(C, P, ST, END, POS, RS, S, ACT)                                            \
    do {                                                                                   \
        (ACT) = _mm512_cmplt_epu32_mask(POS, END);                                         \
        if (!(ACT))                                                                        \
            break;                                                                         \
        __m512i e_, k_;                                                                    \
        if (ALIAS) {                                                                       \
            const __m512i sl_ = _mm512_and_si512(ST, m12);                                 \
            const __m512i b_ = _mm512_srli_epi32(sl_, 7), j_ = _mm512_and_si512(sl_, m127); \
            const __m512i cut_ = _mm512_permutex2var_epi32(bc0, b_, bc1);                  \
            const __mmask16 pm_ = _mm512_cmplt_epu32_mask(j_, cut_);                       \
            e_ = _mm512_mask_blend_epi32(pm_, _mm512_permutex2var_epi32(ba0, b_, ba1),     \
                                         _mm512_permutex2var_epi32(bp0, b_, bp1));         \
            k_ = _mm512_and_si512(_mm512_add_epi32(e_, j_), m12);                          \
        } else {                                                                           \
            e_ = _mm512_i32gather_epi32(_mm512_and_si512(ST, m12), tab, 4);                \
            k_ = _mm512_and_si512(e_, m12);                                                \
        }                                                                                  \
        const __m512i xn_ = _mm512_add_epi32(                                              \
            _mm512_mullo_epi32(_mm512_srli_epi32(e_, 20), _mm512_srli_epi32(ST, 12)), k_);  \
        ST = _mm512_mask_mov_epi32(ST, ACT, xn_);                                          \
        const __mmask16 ren_ = _mm512_mask_cmplt_epu32_mask(ACT, ST, lim);                 \
        __m256i w_;                                                                        \
        const ptrdiff_t left_ = (C)->pend - (P), adv_ = 2 * __builtin_popcount(ren_);      \
        if (__builtin_expect(left_ >= 32, 1)) {                                            \
            w_ = _mm256_loadu_si256((const __m256i *)(P));                                 \
            __asm__("" : "+v"(w_));          /* keep vpexpandw's register form */          \
            (P) += adv_;                     /* <= 32 */                                   \
        } else {                             /* the chunk's last bytes */                  \
            uint8_t tail_[32] = { 0 };                                                     \
            if (left_ > 0)                                                                 \
                memcpy(tail_, (P), (size_t)left_);                                         \
            w_ = _mm256_loadu_si256((const __m256i *)tail_);                               \
            (P) += adv_ <= left_ ? adv_ : (left_ > 0 ? left_ : 0);                         \
        }                                                                                  \
        const __m512i wx_ = _mm512_cvtepu16_epi32(_mm256_maskz_expand_epi16(ren_, w_));    \
        ST = _mm512_mask_or_epi32(ST, ren_, _mm512_slli_epi32(ST, 16), wx_);               \
        const __m512i info_ = _mm512_srli_epi32(e_, 12);                                   \
        __mmask16 nz_ = _mm512_mask_testn_epi32_mask(ACT, info_, m128);                    \
        const __mmask16 cls_ = _mm512_test_epi32_mask(info_, m64);                         \
        POS = _mm512_mask_add_epi32(POS, ACT, POS, _mm512_and_si512(info_, m63));          \
        __m512i col_ = _mm512_sub_epi32(POS, RS);                                          \
        const __mmask16 cross_ = _mm512_mask_cmpge_epu32_mask(nz_, col_, vcols);           \
        if (__builtin_expect(cross_ != 0, 0)) {   /* copies: S, POS, RS stay in registers */ \
            __m512i t_[4] = { S[0], S[1], S[2], S[3] }, p_ = POS, r_ = RS;                 \
            if (EMIT == 1)                                                                 \
                nz_ = s1x_cross_emit(C, cross_, nz_, c32, &p_, &r_, END, t_);              \
            else if (EMIT == 2)                                                            \
                nz_ = s1x_cross_deq(C, cross_, nz_, c32, &p_, &r_, END, t_);               \
            else                                                                           \
                nz_ = s1x_cross(C, cross_, nz_, c32, fx, &p_, &r_, END, t_);               \
            S[0] = t_[0];                                                                  \
            S[1] = t_[1];                                                                  \
            S[2] = t_[2];                                                                  \
            S[3] = t_[3];                                                                  \
            POS = p_;                                                                      \
            RS = r_;                                                                       \
            col_ = _mm512_sub_epi32(POS, RS);                                              \
        }                                                                                  \
        if (EMIT == 2) {                 /* the levels into dst */                         \
            const __mmask16 dl_ = _mm512_mask_cmpneq_epu32_mask(nz_, S[0], _mm512_set1_epi32(-1)); \
            _mm512_mask_i32scatter_ps(dst, dl_, _mm512_add_epi32(S[0], col_),              \
                                      _mm512_castsi512_ps(_mm512_mask_blend_epi32(cls_, S[1], S[2])), 4); \
            POS = _mm512_mask_add_epi32(POS, nz_, POS, one);                               \
            break;                                                                         \
        }                                                                                  \
        if (EMIT == 1) {                 /* the columns into the rows' lists */            \
            const __mmask16 el_ = nz_ & (__mmask16)~cls_, eh_ = nz_ & cls_;                \
            _mm512_mask_i32scatter_epi32(ent, el_, S[0], col_, 4);                         \
            _mm512_mask_i32scatter_epi32(ent, eh_, S[1], col_, 4);                         \
            S[0] = _mm512_mask_add_epi32(S[0], el_, S[0], one);                            \
            S[1] = _mm512_mask_sub_epi32(S[1], eh_, S[1], one);                            \
            POS = _mm512_mask_add_epi32(POS, nz_, POS, one);                               \
            break;                                                                         \
        }                                                                                  \
        const __m512 g_ = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), nz_, col_, x, 4);  \
        const __m512d d0_ = _mm512_cvtps_pd(_mm512_castps512_ps256(g_));                   \
        const __m512d d1_ = _mm512_cvtps_pd(                                               \
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g_), 1)));            \
        const __m512i X0_ = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_fmadd_pd(d0_, sc, mg)), mb); \
        const __m512i X1_ = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_fmadd_pd(d1_, sc, mg)), mb); \
        const __mmask16 mh_ = nz_ & cls_, ml_ = nz_ & (__mmask16)~cls_;                    \
        S[0] = _mm512_mask_add_epi64(S[0], (__mmask8)ml_, S[0], X0_);                      \
        S[1] = _mm512_mask_add_epi64(S[1], (__mmask8)(ml_ >> 8), S[1], X1_);               \
        S[2] = _mm512_mask_add_epi64(S[2], (__mmask8)mh_, S[2], X0_);                      \
        S[3] = _mm512_mask_add_epi64(S[3], (__mmask8)(mh_ >> 8), S[3], X1_);               \
        POS = _mm512_mask_add_epi32(POS, nz_, POS, one);                                   \
    } while (0)

/* nchunk (1 or 2) chunks: stream [sp[i], se[i]), nr[i] rows of cols in L
 * lanes, levels lv[i], outputs y[i]; tab: the fast decode table (qnt_sub1.c,
 * s1_table_fast). Two chunks step alternately: two independent gather chains
 * hide each other's latency. Sums S: class 0 lanes 0-7, 8-15, class 1 the same. */
static inline __attribute__((target(S1X_TGT), always_inline)) void
s1x_chunks(const uint32_t *restrict tab, const uint8_t *const *sp, const uint8_t *const *se,
           const size_t *nr, size_t nchunk, unsigned L, size_t cols, const uint8_t *const *lv,
           const float *restrict x, const struct qnt_tfx *fx, float *const *y, const int ALIAS,
           uint32_t *rng, uint32_t *ent, float *dst, size_t drow0, size_t dnrows, const int EMIT)
{
    struct s1x_chunk ca, cb;
    /* alias layout: tab = 32 primary entries, 32 alias entries, 32 cuts */
    __m512i bp0 = _mm512_setzero_si512(), bp1 = bp0, ba0 = bp0, ba1 = bp0, bc0 = bp0, bc1 = bp0;
    if (ALIAS) {
        bp0 = _mm512_loadu_si512(tab);
        bp1 = _mm512_loadu_si512(tab + 16);
        ba0 = _mm512_loadu_si512(tab + 32);
        ba1 = _mm512_loadu_si512(tab + 48);
        bc0 = _mm512_loadu_si512(tab + 64);
        bc1 = _mm512_loadu_si512(tab + 80);
    }
    const __m512i m127 = _mm512_set1_epi32(127);
    const uint32_t c32 = (uint32_t)cols;
    const __m512i m12 = _mm512_set1_epi32(4095), m63 = _mm512_set1_epi32(63),
                  m64 = _mm512_set1_epi32(64), m128 = _mm512_set1_epi32(128),
                  lim = _mm512_set1_epi32(1 << 16), one = _mm512_set1_epi32(1),
                  vcols = _mm512_set1_epi32((int)c32);
    const __m512d sc = _mm512_set1_pd(fx->scale), mg = _mm512_set1_pd(QNT_TFX_MAGIC);
    const __m512i mb = _mm512_set1_epi64(QNT_TFX_MAGIC_BITS);
    s1x_init(&ca, sp[0], se[0], L, nr[0], cols, lv[0], y ? y[0] : NULL, EMIT == 1 ? rng : NULL);
    const uint8_t *pa = ca.p;   /* read pointers: locals, off the chunks' memory */
    __m512i sta = _mm512_loadu_si512(ca.st0), enda = _mm512_loadu_si512(ca.end0);
    __m512i posa = _mm512_setzero_si512(), rsa = posa, sa[4] = { posa, posa, posa, posa };
    if (EMIT == 2) {            /* sa[0]: destinations, sa[1], sa[2]: levels */
        float lo[16], hi[16];
        ca.drow0 = drow0;
        ca.dnrows = dnrows;
        for (unsigned k = 0; k < 16; k++) {
            s1x_deq_row(&ca, k, c32);
            lo[k] = ca.dlv[k][0];
            hi[k] = ca.dlv[k][1];
        }
        sa[0] = _mm512_loadu_si512(ca.dbase);
        sa[1] = _mm512_castps_si512(_mm512_loadu_ps(lo));
        sa[2] = _mm512_castps_si512(_mm512_loadu_ps(hi));
    }
    if (EMIT == 1) {            /* sa[0], sa[1]: the lanes' write indices (u32) */
        uint32_t wl[16], wh[16];
        for (unsigned k = 0; k < 16; k++) {
            wl[k] = (uint32_t)ca.ln.slo[k];
            wh[k] = (uint32_t)ca.ln.shi[k];
        }
        sa[0] = _mm512_loadu_si512(wl);
        sa[1] = _mm512_loadu_si512(wh);
    }
    __mmask16 acta = 1, actb = 0;
    int64_t t[4][8];
    if (nchunk > 1) {
        s1x_init(&cb, sp[1], se[1], L, nr[1], cols, lv[1], y[1], NULL);
        const uint8_t *pb = cb.p;
        __m512i stb = _mm512_loadu_si512(cb.st0), endb = _mm512_loadu_si512(cb.end0);
        __m512i posb = _mm512_setzero_si512(), rsb = posb, sb[4] = { posb, posb, posb, posb };
        actb = 1;
        while (acta && actb) {
            S1X_STEP(&ca, pa, sta, enda, posa, rsa, sa, acta);
            S1X_STEP(&cb, pb, stb, endb, posb, rsb, sb, actb);
        }
        while (actb)
            S1X_STEP(&cb, pb, stb, endb, posb, rsb, sb, actb);
        for (int i = 0; i < 4; i++)
            _mm512_storeu_si512(t[i], sb[i]);
        s1x_done(&cb, L, c32, fx, (const int64_t(*)[8])t);
    }
    while (acta)
        S1X_STEP(&ca, pa, sta, enda, posa, rsa, sa, acta);
    for (int i = 0; i < 4; i++)
        _mm512_storeu_si512(t[i], sa[i]);
    s1x_done(&ca, L, c32, fx, (const int64_t(*)[8])t);
}
#endif

#if defined(__x86_64__) || defined(__i386__)
void qnt_sub1_chunks_avx512_alias(const uint32_t *restrict bk, const uint8_t *const *sp,
                                  const uint8_t *const *se, const size_t *nr, size_t nchunk,
                                  unsigned L, size_t cols, const uint8_t *const *lv,
                                  const float *restrict x, const struct qnt_tfx *fx,
                                  float *const *y);

__attribute__((target(S1X_TGT))) void
qnt_sub1_chunks_avx512(const uint32_t *restrict tab, const uint8_t *const *sp,
                       const uint8_t *const *se, const size_t *nr, size_t nchunk, unsigned L,
                       size_t cols, const uint8_t *const *lv, const float *restrict x,
                       const struct qnt_tfx *fx, float *const *y)
{
    s1x_chunks(tab, sp, se, nr, nchunk, L, cols, lv, x, fx, y, 0, NULL, NULL, NULL, 0, 0, 0);
}

__attribute__((target(S1X_TGT))) void
qnt_sub1_chunks_avx512_alias(const uint32_t *restrict bk, const uint8_t *const *sp,
                             const uint8_t *const *se, const size_t *nr, size_t nchunk,
                             unsigned L, size_t cols, const uint8_t *const *lv,
                             const float *restrict x, const struct qnt_tfx *fx, float *const *y)
{
    s1x_chunks(bk, sp, se, nr, nchunk, L, cols, lv, x, fx, y, 1, NULL, NULL, NULL, 0, 0, 0);
}

/* Emit mode, one chunk: every non-zero's column into its row's list (tile
 * rows: rng[4i] .. as qnt_tmm_impl.h; the caller presets rng[4i] = i cols,
 * rng[4i+3] = (i+1) cols, the row's region of ent). alias: the table
 * layout, as above. */
__attribute__((target(S1X_TGT))) void
qnt_sub1_chunk_emit_avx512(const uint32_t *restrict tab, int alias, const uint8_t *sp,
                           const uint8_t *se, size_t nr, unsigned L, size_t cols,
                           uint32_t *restrict rng, uint32_t *restrict ent)
{
    const uint8_t *const spp[1] = { sp }, *const sep[1] = { se }, *const lvp[1] = { NULL };
    const size_t nrp[1] = { nr };
    const struct qnt_tfx fx = { 1.0, 1.0, 1 };
    if (alias)
        s1x_chunks(tab, spp, sep, nrp, 1, L, cols, lvp, NULL, &fx, NULL, 1, rng, ent, NULL, 0, 0, 1);
    else
        s1x_chunks(tab, spp, sep, nrp, 1, L, cols, lvp, NULL, &fx, NULL, 0, rng, ent, NULL, 0, 0, 1);
}

/* Decode mode, one chunk of nr rows (levels lv of its row 0): every
 * non-zero's level into dst, rows drow0 .. drow0+dnrows-1 of the chunk (dst
 * zeroed; dnrows cols < 2^31); the others are decoded and dropped. */
__attribute__((target(S1X_TGT))) void
qnt_sub1_chunk_deq_avx512(const uint32_t *restrict tab, int alias, const uint8_t *sp,
                          const uint8_t *se, size_t nr, unsigned L, size_t cols, const uint8_t *lv,
                          size_t drow0, size_t dnrows, float *restrict dst)
{
    const uint8_t *const spp[1] = { sp }, *const sep[1] = { se }, *const lvp[1] = { lv };
    const size_t nrp[1] = { nr };
    const struct qnt_tfx fx = { 1.0, 1.0, 1 };
    if (alias)
        s1x_chunks(tab, spp, sep, nrp, 1, L, cols, lvp, NULL, &fx, NULL, 1, NULL, NULL, dst, drow0,
                   dnrows, 2);
    else
        s1x_chunks(tab, spp, sep, nrp, 1, L, cols, lvp, NULL, &fx, NULL, 0, NULL, NULL, dst, drow0,
                   dnrows, 2);
}
#endif

#if defined(__x86_64__) || defined(__i386__)
/* ---- AVX2 ------------------------------------------------------------------
 * The same lanes, the same tokens, for CPUs without AVX-512 (issue 14): 16
 * lanes as two 8-lane halves (lanes 0-7, 8-15) stepped together, one chunk at
 * a time. The table is qnt_sub1.c's s1_table (per slot (f - 1) << 20 | (slot
 * - start) << 8 | info, for either slot layout), read by vpgatherdd. The
 * renormalisation takes the next words in lane order, half A's then half
 * B's: 8 words loaded at the read pointer, zero-extended, and permuted into
 * the lanes that need them (each lane's index = the count of needing lanes
 * below it, made with pdep and a multiply); the last 16 bytes of a chunk go
 * through a zero-padded copy, as in the AVX-512 kernel. A lane whose
 * non-zero lands past its row, the row changes and the writes of the emit
 * and decode modes are scalar; the matvec's gather, fixed point and sums are
 * vector. No FMA in the target: X = x * 2^s is one exact product, then the
 * rounding add, as qnt_tfx_x. */
#define S1A_TGT "avx2,bmi2,popcnt"

/* Lanes in cross: rows move on (scalar). Matvec: t = the sums ([4][8] as
 * s1x_done's); emit: w = the write indices ([2][16]); decode: the lanes'
 * destinations and levels are redone (c->dbase, c->dlv). Returns nz with a
 * damaged lane (past its end) dropped and stopped. */
static unsigned s1a_cross(struct s1x_chunk *c, unsigned cross, unsigned nz, uint32_t cols,
                          const struct qnt_tfx *fx, uint32_t *pa, const uint32_t *ea,
                          int64_t (*t)[8], uint32_t *w, const int EMIT)
{
    struct s1x_lanes *ln = &c->ln;
    for (unsigned k = 0; k < 16; k++) {
        if (!((cross >> k) & 1))
            continue;
        if (pa[k] >= ea[k]) {
            pa[k] = ea[k];
            nz &= ~(1u << k);
            continue;
        }
        if (EMIT == 1) {
            ln->slo[k] = w[k];
            ln->shi[k] = w[16 + k];
            while (pa[k] >= ln->re[k])
                s1x_flush_emit(ln, k, cols, c->rng);
            w[k] = (uint32_t)ln->slo[k];
            w[16 + k] = (uint32_t)ln->shi[k];
        } else if (EMIT == 2) {
            while (pa[k] >= ln->re[k]) {
                ln->row[k]++;
                ln->rs[k] = ln->re[k];
                ln->re[k] += cols;
            }
            s1x_deq_row(c, k, cols);
        } else {
            ln->slo[k] = t[k >> 3][k & 7];
            ln->shi[k] = t[2 + (k >> 3)][k & 7];
            while (pa[k] >= ln->re[k])
                s1x_flush(ln, k, cols, c->lv, fx, c->y);
            t[k >> 3][k & 7] = ln->slo[k];
            t[2 + (k >> 3)][k & 7] = ln->shi[k];
        }
    }
    return nz;
}

static inline __attribute__((target(S1A_TGT), always_inline)) unsigned s1a_mask(__m256i v)
{
    return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(v));
}

/* 8 lane bits -> lanes of all ones */
static inline __attribute__((target(S1A_TGT), always_inline)) __m256i s1a_lanes(unsigned m)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);
}

/* The emit and decode modes' writes go without a branch a lane (a loop over
 * the writing lanes mispredicted on its varying count; decode to f32 1.77 ->
 * 2.0 G weights/s): the lanes outside mask m (vector mv; m not 0) take m's
 * first lane, so all 8 store, the extra stores repeating that lane's index
 * and value. Returns the permutation that does it. */
static inline __attribute__((target(S1A_TGT), always_inline)) __m256i s1a_dup_first(unsigned m, __m256i mv)
{
    return _mm256_blendv_epi8(_mm256_set1_epi32(__builtin_ctz(m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), mv);
}

/* One chunk of nr rows in L lanes; EMIT 0 matvec (x, fx, levels lv, y of
 * the chunk's row 0), 1 the rows' lists (rng, ent), 2 the levels into dst
 * (chunk rows drow0 .. drow0+dnrows-1). */
static inline __attribute__((target(S1A_TGT), always_inline)) void
s1a_chunk(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se, size_t nr,
          unsigned L, size_t cols, const uint8_t *lv, const float *restrict x,
          const struct qnt_tfx *fx, float *y, uint32_t *rng, uint32_t *ent, float *dst,
          size_t drow0, size_t dnrows, const int EMIT, const int NH)
{
    struct s1x_chunk C;
    const uint32_t c32 = (uint32_t)cols;
    s1x_init(&C, sp, se, L, nr, cols, lv, y, EMIT == 1 ? rng : NULL);
    const uint8_t *p = C.p, *const pend = se;
    const __m256i m4095 = _mm256_set1_epi32(4095), m255 = _mm256_set1_epi32(255),
                  m128 = _mm256_set1_epi32(128), m64 = _mm256_set1_epi32(64),
                  m63 = _mm256_set1_epi32(63), one = _mm256_set1_epi32(1),
                  zero = _mm256_setzero_si256(), cmax = _mm256_set1_epi32((int)c32 - 1);
    const __m256d sc = _mm256_set1_pd(fx ? fx->scale : 0.0), mg = _mm256_set1_pd(QNT_TFX_MAGIC);
    const __m256i mb = _mm256_set1_epi64x(QNT_TFX_MAGIC_BITS);
    __m256i st[2], pos[2], end[2], rs[2];
    for (int h = 0; h < NH; h++) {
        st[h] = _mm256_loadu_si256((const __m256i *)(const void *)(C.st0 + 8 * h));
        end[h] = _mm256_loadu_si256((const __m256i *)(const void *)(C.end0 + 8 * h));
        pos[h] = rs[h] = zero;
    }
    /* mode state: matvec S[h][class][q] int64 sums of lanes 8h+4q ..; emit
       W[h][0/1] write indices; decode D[h][0] destination, [1] / [2] levels */
    __m256i S[2][2][2], W[2][2], D[2][3], base[2] = { zero, zero };
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 2; k++)
            S[h][k][0] = S[h][k][1] = W[h][k] = zero;
    if (EMIT == 1)
        for (int h = 0; h < NH; h++) {
            uint32_t wl[8], wh[8];
            for (unsigned k = 0; k < 8; k++) {
                wl[k] = (uint32_t)C.ln.slo[8 * h + k];
                wh[k] = (uint32_t)C.ln.shi[8 * h + k];
            }
            W[h][0] = _mm256_loadu_si256((const __m256i *)(void *)wl);
            W[h][1] = _mm256_loadu_si256((const __m256i *)(void *)wh);
            base[h] = W[h][0];   /* the lane's first row's first slot: its row x cols */
        }
    if (EMIT == 2) {
        C.drow0 = drow0;
        C.dnrows = dnrows;
        for (unsigned k = 0; k < 16; k++)
            s1x_deq_row(&C, k, c32);
    }
#define S1A_LOAD_D()                                                                        \
    do {                                                                                    \
        for (int h_ = 0; h_ < NH; h_++) {                                                   \
            float lo_[8], hi_[8];                                                           \
            for (unsigned k_ = 0; k_ < 8; k_++) {                                           \
                lo_[k_] = C.dlv[8 * h_ + k_][0];                                            \
                hi_[k_] = C.dlv[8 * h_ + k_][1];                                            \
            }                                                                               \
            D[h_][0] = _mm256_loadu_si256((const __m256i *)(const void *)(C.dbase + 8 * h_)); \
            D[h_][1] = _mm256_castps_si256(_mm256_loadu_ps(lo_));                           \
            D[h_][2] = _mm256_castps_si256(_mm256_loadu_ps(hi_));                           \
        }                                                                                   \
    } while (0)
    if (EMIT == 2)
        S1A_LOAD_D();
    for (;;) {
        __m256i act[2], e[2];
        for (int h = 0; h < NH; h++)
            act[h] = _mm256_cmpgt_epi32(end[h], pos[h]);   /* positions < 2^31 */
        if (!(s1a_mask(act[0]) | (NH > 1 ? s1a_mask(act[1]) : 0u)))
            break;
        for (int h = 0; h < NH; h++) {
            e[h] = _mm256_i32gather_epi32((const int *)(const void *)tab,
                                          _mm256_and_si256(st[h], m4095), 4);
            const __m256i f = _mm256_add_epi32(_mm256_srli_epi32(e[h], 20), one);
            const __m256i xn = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(st[h], 12)),
                                                _mm256_and_si256(_mm256_srli_epi32(e[h], 8), m4095));
            st[h] = _mm256_blendv_epi8(st[h], xn, act[h]);
        }
        for (int h = 0; h < NH; h++) {   /* lane order: half A's words, then half B's */
            const __m256i ren = _mm256_and_si256(act[h], _mm256_cmpeq_epi32(_mm256_srli_epi32(st[h], 16),
                                                                            zero));
            const unsigned rm = s1a_mask(ren);   /* no branch on rm (it mispredicted: 2.0 -> 2.2) */
            const ptrdiff_t left = pend - p, adv = 2 * __builtin_popcount(rm);
            __m128i w16;
            if (__builtin_expect(left >= 16, 1)) {
                w16 = _mm_loadu_si128((const __m128i *)(const void *)p);
                p += adv;
            } else {
                uint8_t tail[16] = { 0 };
                if (left > 0)
                    memcpy(tail, p, (size_t)left);
                w16 = _mm_loadu_si128((const __m128i *)(void *)tail);
                p += adv <= left ? adv : (left > 0 ? left : 0);
            }
            const uint64_t pre = _pdep_u64(rm, 0x0101010101010101ull) * 0x0101010101010100ull;
            const __m256i idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)pre));
            const __m256i wx = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(w16), idx);
            st[h] = _mm256_blendv_epi8(st[h], _mm256_or_si256(_mm256_slli_epi32(st[h], 16), wx), ren);
        }
        __m256i nzv[2], cls[2], col[2];
        unsigned nz = 0, cross = 0;
        for (int h = 0; h < NH; h++) {
            const __m256i info = _mm256_and_si256(e[h], m255);
            nzv[h] = _mm256_and_si256(act[h], _mm256_cmpeq_epi32(_mm256_and_si256(info, m128), zero));
            cls[h] = _mm256_cmpeq_epi32(_mm256_and_si256(info, m64), m64);
            pos[h] = _mm256_add_epi32(pos[h], _mm256_and_si256(act[h], _mm256_and_si256(info, m63)));
            col[h] = _mm256_sub_epi32(pos[h], rs[h]);
            nz |= s1a_mask(nzv[h]) << (8 * h);
            cross |= s1a_mask(_mm256_and_si256(nzv[h], _mm256_cmpgt_epi32(col[h], cmax))) << (8 * h);
        }
        /* emit: lanes that move exactly one row on, inside the lane (the usual
           case) do it here, the vectors kept in registers: the row's list ends
           are written and the next row's slots start at its row x cols. On
           512 columns 16 % of the steps have such a lane; through the general
           path below decoding them ran at 1.8 G weights/s, 2.2 on 14,336 columns */
        if (EMIT == 1 && __builtin_expect(cross != 0, 0)) {
            const __m256i vc = _mm256_set1_epi32((int)c32), v2c = _mm256_add_epi32(vc, vc);
            unsigned far = 0;
            for (int h = 0; h < NH; h++)
                far |= s1a_mask(_mm256_andnot_si256(_mm256_and_si256(_mm256_cmpgt_epi32(end[h], pos[h]),
                                                                     _mm256_cmpgt_epi32(v2c, col[h])),
                                                    s1a_lanes((cross >> (8 * h)) & 0xffu)))
                       << (8 * h);
            if (!far) {
                uint32_t wl[16], wh[16];
                for (int h = 0; h < NH; h++) {
                    _mm256_storeu_si256((__m256i *)(void *)(wl + 8 * h), W[h][0]);
                    _mm256_storeu_si256((__m256i *)(void *)(wh + 8 * h), W[h][1]);
                }
                for (unsigned m = cross; m; m &= m - 1) {   /* the row's list ends, the bookkeeping */
                    const unsigned k = (unsigned)__builtin_ctz(m);
                    C.ln.slo[k] = wl[k];
                    C.ln.shi[k] = wh[k];
                    s1x_flush_emit(&C.ln, k, c32, C.rng);
                }
                for (int h = 0; h < NH; h++) {
                    const __m256i cm = s1a_lanes((cross >> (8 * h)) & 0xffu);
                    rs[h] = _mm256_add_epi32(rs[h], _mm256_and_si256(cm, vc));
                    const __m256i lo = _mm256_add_epi32(base[h], rs[h]);
                    W[h][0] = _mm256_blendv_epi8(W[h][0], lo, cm);
                    W[h][1] = _mm256_blendv_epi8(W[h][1], _mm256_sub_epi32(_mm256_add_epi32(lo, vc), one), cm);
                    col[h] = _mm256_sub_epi32(pos[h], rs[h]);
                }
                cross = 0;
            }
        }
        if (__builtin_expect(cross != 0, 0)) {
            uint32_t pa[16], ea[16], w[32];
            int64_t t[4][8];
            for (int h = 0; h < NH; h++) {
                _mm256_storeu_si256((__m256i *)(void *)(pa + 8 * h), pos[h]);
                _mm256_storeu_si256((__m256i *)(void *)(ea + 8 * h), end[h]);
                for (int k = 0; k < 2; k++) {
                    _mm256_storeu_si256((__m256i *)(void *)(w + 16 * k + 8 * h), W[h][k]);
                    _mm256_storeu_si256((__m256i *)(void *)(&t[2 * k + h][0]), S[h][k][0]);
                    _mm256_storeu_si256((__m256i *)(void *)(&t[2 * k + h][4]), S[h][k][1]);
                }
            }
            nz = s1a_cross(&C, cross, nz, c32, fx, pa, ea, t, w, EMIT);
            for (int h = 0; h < NH; h++) {
                pos[h] = _mm256_loadu_si256((const __m256i *)(const void *)(pa + 8 * h));
                rs[h] = _mm256_loadu_si256((const __m256i *)(const void *)(C.ln.rs + 8 * h));
                for (int k = 0; k < 2; k++) {
                    W[h][k] = _mm256_loadu_si256((const __m256i *)(const void *)(w + 16 * k + 8 * h));
                    S[h][k][0] = _mm256_loadu_si256((const __m256i *)(const void *)(&t[2 * k + h][0]));
                    S[h][k][1] = _mm256_loadu_si256((const __m256i *)(const void *)(&t[2 * k + h][4]));
                }
                col[h] = _mm256_sub_epi32(pos[h], rs[h]);
                nzv[h] = s1a_lanes((nz >> (8 * h)) & 0xffu);
            }
            if (EMIT == 2)
                S1A_LOAD_D();
        }
        for (int h = 0; h < NH; h++) {
            const unsigned hm = (nz >> (8 * h)) & 0xffu;
            if (EMIT == 1) {            /* the columns into the rows' lists */
                if (hm) {
                    uint32_t ia[8], ca[8];
                    const __m256i sel = s1a_dup_first(hm, nzv[h]);
                    _mm256_storeu_si256((__m256i *)(void *)ia, _mm256_permutevar8x32_epi32(
                                                                   _mm256_blendv_epi8(W[h][0], W[h][1], cls[h]), sel));
                    _mm256_storeu_si256((__m256i *)(void *)ca, _mm256_permutevar8x32_epi32(col[h], sel));
                    /* unrolled: a rolled 8-step loop's exit mispredicted (18 % of
                       this function's samples on tinymoe's lists) */
#pragma GCC unroll 8
                    for (unsigned k = 0; k < 8; k++)
                        ent[ia[k]] = ca[k];
                }
                W[h][0] = _mm256_add_epi32(W[h][0], _mm256_and_si256(_mm256_andnot_si256(cls[h], nzv[h]), one));
                W[h][1] = _mm256_sub_epi32(W[h][1], _mm256_and_si256(_mm256_and_si256(cls[h], nzv[h]), one));
            } else if (EMIT == 2) {     /* the levels into dst */
                uint32_t ia[8];
                float va[8];
                const __m256i live = _mm256_andnot_si256(_mm256_cmpeq_epi32(D[h][0], _mm256_set1_epi32(-1)),
                                                         nzv[h]);
                const unsigned lm = s1a_mask(live);
                if (lm) {
                    const __m256i sel = s1a_dup_first(lm, live);
                    _mm256_storeu_si256((__m256i *)(void *)ia,
                                        _mm256_permutevar8x32_epi32(_mm256_add_epi32(D[h][0], col[h]), sel));
                    _mm256_storeu_si256((__m256i *)(void *)va, _mm256_permutevar8x32_epi32(
                                                                   _mm256_blendv_epi8(D[h][1], D[h][2], cls[h]), sel));
#pragma GCC unroll 8
                    for (unsigned k = 0; k < 8; k++)
                        dst[ia[k]] = va[k];
                }
            } else if (hm) {            /* x at the non-zeros, to fixed point, into the sums */
                const __m256 g = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, col[h],
                                                          _mm256_castsi256_ps(nzv[h]), 4);
                const __m256i hi = _mm256_and_si256(nzv[h], cls[h]), lo = _mm256_andnot_si256(cls[h], nzv[h]);
                for (int q = 0; q < 2; q++) {
                    const __m256d d = _mm256_cvtps_pd(q ? _mm256_extractf128_ps(g, 1) : _mm256_castps256_ps128(g));
                    const __m256i X = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(_mm256_mul_pd(d, sc), mg)), mb);
                    const __m256i ml = _mm256_cvtepi32_epi64(q ? _mm256_extracti128_si256(lo, 1) : _mm256_castsi256_si128(lo));
                    const __m256i mh = _mm256_cvtepi32_epi64(q ? _mm256_extracti128_si256(hi, 1) : _mm256_castsi256_si128(hi));
                    S[h][0][q] = _mm256_add_epi64(S[h][0][q], _mm256_and_si256(X, ml));
                    S[h][1][q] = _mm256_add_epi64(S[h][1][q], _mm256_and_si256(X, mh));
                }
            }
            pos[h] = _mm256_add_epi32(pos[h], _mm256_and_si256(nzv[h], one));
        }
    }
#undef S1A_LOAD_D
    int64_t t[4][8];
    uint32_t *w = (uint32_t *)(void *)t;
    for (int h = 0; h < NH; h++) {
        if (EMIT == 1) {
            _mm256_storeu_si256((__m256i *)(void *)(w + 8 * h), W[h][0]);
            _mm256_storeu_si256((__m256i *)(void *)(w + 16 + 8 * h), W[h][1]);
        } else {
            for (int k = 0; k < 2; k++) {
                _mm256_storeu_si256((__m256i *)(void *)(&t[2 * k + h][0]), S[h][k][0]);
                _mm256_storeu_si256((__m256i *)(void *)(&t[2 * k + h][4]), S[h][k][1]);
            }
        }
    }
    s1x_done(&C, L, c32, fx, (const int64_t(*)[8])t);
}

__attribute__((target(S1A_TGT))) void
qnt_sub1_chunk_matvec_avx2(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se,
                           size_t nr, unsigned L, size_t cols, const uint8_t *lv,
                           const float *restrict x, const struct qnt_tfx *fx, float *y)
{
    if (L <= 8)   /* one 8-lane half: the other's steps would be idle work */
        s1a_chunk(tab, sp, se, nr, L, cols, lv, x, fx, y, NULL, NULL, NULL, 0, 0, 0, 1);
    else
        s1a_chunk(tab, sp, se, nr, L, cols, lv, x, fx, y, NULL, NULL, NULL, 0, 0, 0, 2);
}

__attribute__((target(S1A_TGT))) void
qnt_sub1_chunk_emit_avx2(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se,
                         size_t nr, unsigned L, size_t cols, uint32_t *restrict rng,
                         uint32_t *restrict ent)
{
    const struct qnt_tfx fx = { 1.0, 1.0, 1 };
    if (L <= 8)   /* one 8-lane half: the other's steps would be idle work */
        s1a_chunk(tab, sp, se, nr, L, cols, NULL, NULL, &fx, NULL, rng, ent, NULL, 0, 0, 1, 1);
    else
        s1a_chunk(tab, sp, se, nr, L, cols, NULL, NULL, &fx, NULL, rng, ent, NULL, 0, 0, 1, 2);
}

__attribute__((target(S1A_TGT))) void
qnt_sub1_chunk_deq_avx2(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se,
                        size_t nr, unsigned L, size_t cols, const uint8_t *lv, size_t drow0,
                        size_t dnrows, float *restrict dst)
{
    const struct qnt_tfx fx = { 1.0, 1.0, 1 };
    if (L <= 8)   /* one 8-lane half: the other's steps would be idle work */
        s1a_chunk(tab, sp, se, nr, L, cols, lv, NULL, &fx, NULL, NULL, NULL, dst, drow0, dnrows, 2, 1);
    else
        s1a_chunk(tab, sp, se, nr, L, cols, lv, NULL, &fx, NULL, NULL, NULL, dst, drow0, dnrows, 2, 2);
}
#endif
