/* qnt_sub1.c: SB_DTYPE_SUB1, our entropy code for ternary rows (docs/sub1.md,
 * layout in docs/container.md §7).
 *
 * Model: each chunk of G consecutive rows is one flattened symbol stream, cut
 * split into L lanes of whole rows (L <= 16, per tensor); each lane is cut
 * into tokens "r zeros then a non-zero of class c" (r < R) or "R zeros"
 * (escape). Lanes are coded with lockstep interleaved rANS (one 32-bit state
 * per lane, 16-bit renormalisation words interleaved in (step, lane) order,
 * 12-bit frequencies from a per-tensor table), so one AVX-512 register steps
 * all 16 lanes at once. For
 * i.i.d. symbols the token model is exactly the order-0 model, so the rate
 * sits at the order-0 entropy plus table quantisation plus per-chunk
 * overhead. Work in the decoder is per token (~one per non-zero weight), not
 * per weight, which is what makes the fused matvec fast at 88% zeros.
 * Slots map to tokens by the alias layout (header byte 18 = 1, run cap R <= 15:
 * 32 buckets of 128 slots, so the AVX-512 kernel looks tokens up with
 * in-register permutes) or, in older blobs, cumulatively (byte 18 = 0).
 * Blobs from before lanes (header byte 17 = 0) still decode (s1_walk_chunk_v0).
 * Knows the code and the blob; nothing of files. */
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"
#include "qnt_tmm_impl.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "sb_err.h"
#include "sb_math.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <string.h>

#define S1_SCALE 12u
#define S1_M (1u << S1_SCALE)
#define S1_L (1u << 16)               /* state interval [2^16, 2^32) */
#define S1_NS 4u                      /* interleaved states of the old (lane 0) layout */
#define S1_LMAX 16u                   /* lanes */
#define S1_LMIN_SIMD 8u               /* lanes of a tensor the rule gives <= 4 (s1_plan_init) */
#define S1_LANE_TARGET 16384u         /* weights a lane, at least (a 4-byte state each) */
#define S1_HDR 20u                    /* "SB1" ver, rows, cols, G, R, L + 2 reserved */
#define S1_RMAX 63u
#define S1_NB 32u                     /* alias layout: buckets of S1_BW slots */
#define S1_BW (S1_M / S1_NB)
#define S1_RMAX_ALIAS 15u             /* alias layout: 2R + 1 <= S1_NB symbols */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- parsed header ------------------------------------------------------ */

struct s1view {
    size_t rows, cols, G, nchunks;
    unsigned R, nsym;                 /* alphabet: 2R non-zero tokens + escape */
    unsigned L;                       /* lanes; 0: the old 4-state layout (decoded, not written) */
    unsigned alias;                   /* byte 18: 1 = alias slot layout, 0 = cumulative */
    uint16_t freq[2 * S1_RMAX + 1];
    const uint8_t *lv;                /* rows x (lo, hi) bf16 */
    const uint8_t *off;               /* (nchunks - 1) u32 chunk ends, stream-relative */
    const uint8_t *stream;
    uint64_t stream_len;
};

/* Parse and check everything structural. 0 on success. */
static int s1_parse(struct s1view *v, const void *w, uint64_t nbytes)
{
    const uint8_t *b = w;
    if (nbytes < S1_HDR || memcmp(b, "SB1\x01", 4) != 0)
        return -1;
    v->rows = rd32(b + 4);
    v->cols = rd32(b + 8);
    v->G = rd32(b + 12);
    v->R = b[16];
    v->L = b[17];
    v->alias = b[18];
    if (b[18] > 1 || b[19] || v->R < 1 || v->R > S1_RMAX || v->L > S1_LMAX)
        return -1;
    if (v->alias && (!v->L || v->R > S1_RMAX_ALIAS))
        return -1;
    v->nsym = 2 * v->R + 1;
    uint64_t n = (uint64_t)v->rows * v->cols;
    if (n == 0) {
        if (v->G != 0)
            return -1;
        v->nchunks = 0;
    } else {
        if (v->G == 0 || v->G > v->rows)
            return -1;
        v->nchunks = (v->rows + v->G - 1) / v->G;
    }
    uint64_t pos = S1_HDR;
    /* frequencies: LEB128 each, sum 2^12, escape > 0 */
    uint32_t sum = 0;
    for (unsigned i = 0; i < v->nsym; i++) {
        uint32_t f = 0;
        for (int sh = 0;; sh += 7) {
            if (pos >= nbytes || sh > 14)
                return -1;
            uint8_t c = b[pos++];
            f |= (uint32_t)(c & 0x7f) << sh;
            if (!(c & 0x80))
                break;
        }
        if (f > S1_M)
            return -1;
        v->freq[i] = (uint16_t)(f == S1_M ? 0 : f);   /* stored below as f - 1 trick */
        if (f == S1_M)
            v->freq[i] = 0xffff;                      /* marker: whole range */
        sum += f;
    }
    if (sum != S1_M || v->freq[v->nsym - 1] == 0)
        return -1;
    uint64_t need;
    if (sb_mul_u64(v->rows, 4, &need) || sb_add_u64(pos, need, &need))
        return -1;
    v->lv = b + pos;
    pos = need;
    uint64_t offb = v->nchunks ? 4 * ((uint64_t)v->nchunks - 1) : 0;
    if (sb_add_u64(pos, offb, &need) || need > nbytes)
        return -1;
    v->off = b + pos;
    v->stream = b + need;
    v->stream_len = nbytes - need;
    uint64_t prev = 0;
    for (size_t c = 0; c < v->nchunks; c++) {
        uint64_t e = c + 1 < v->nchunks ? rd32(v->off + 4 * c) : v->stream_len;
        if (e < prev || e - prev < 4 * (v->L ? v->L : S1_NS) || ((e - prev) & 1))
            return -1;
        prev = e;
    }
    if (v->nchunks == 0 && v->stream_len != 0)
        return -1;
    return 0;
}

static inline uint64_t s1_chunk_start(const struct s1view *v, size_t c)
{
    return c == 0 ? 0 : rd32(v->off + 4 * (c - 1));
}
static inline uint64_t s1_chunk_end(const struct s1view *v, size_t c)
{
    return c + 1 < v->nchunks ? rd32(v->off + 4 * c) : v->stream_len;
}

/* Alias layout (byte 18 = 1, nsym <= 32): the 4096 slots are 32 buckets of
 * 128; bucket b holds its primary symbol prim[b] at slots j < cut[b] and its
 * alias alt[b] at j >= cut[b]. Built from the frequencies alone (no storage):
 * symbol b starts as bucket b's primary; while a bucket with fewer than 128
 * slots left (lowest index first) and one with at least 128 (lowest first)
 * remain, the small one is closed with the large one as its alias. A
 * symbol's slots are numbered k = 0 .. f-1 in slot order, so every bucket's
 * primary and alias parts are runs of consecutive k. */
struct s1alias {
    uint8_t prim[S1_NB], alt[S1_NB], cut[S1_NB];
    uint16_t k0[S1_NB], k1[S1_NB];    /* k at slot j = 0 (primary) and at j = cut (alias) */
};

static void s1_alias_build(const uint32_t *f, unsigned nsym, struct s1alias *a)
{
    uint32_t rem[S1_NB], small = 0, large = 0;   /* the open buckets, as bit sets */
    for (unsigned b = 0; b < S1_NB; b++) {
        rem[b] = b < nsym ? f[b] : 0;
        a->prim[b] = a->alt[b] = (uint8_t)b;
        a->cut[b] = 0;
        if (rem[b] < S1_BW)
            small |= 1u << b;
        else
            large |= 1u << b;
    }
    /* the lowest small and the lowest large, as a scan would find them (a
       bucket whose rest falls under 128 joins the small ones) */
    while (small && large) {
        const unsigned sm = (unsigned)__builtin_ctz(small), lg = (unsigned)__builtin_ctz(large);
        a->cut[sm] = (uint8_t)rem[sm];
        a->alt[sm] = (uint8_t)lg;
        small &= ~(1u << sm);
        rem[lg] -= S1_BW - rem[sm];
        if (rem[lg] < S1_BW) {
            large &= ~(1u << lg);
            small |= 1u << lg;
        }
    }
    for (unsigned b = 0; b < S1_NB; b++)
        if ((small | large) >> b & 1u) {   /* exactly 128 left (sum f = 4096) */
            a->cut[b] = (uint8_t)(rem[b] >= S1_BW ? S1_BW : rem[b]);
            a->alt[b] = (uint8_t)b;
        }
    uint32_t k[S1_NB] = { 0 };
    for (unsigned b = 0; b < S1_NB; b++) {
        a->k0[b] = (uint16_t)k[a->prim[b]];
        k[a->prim[b]] += a->cut[b];
        a->k1[b] = (uint16_t)k[a->alt[b]];
        k[a->alt[b]] += S1_BW - a->cut[b];
    }
}

/* Slot -> (symbol, k) of the alias layout. */
static inline void s1_alias_slot(const struct s1alias *a, uint32_t slot, unsigned *s, uint32_t *k)
{
    uint32_t b = slot / S1_BW, j = slot % S1_BW;
    if (j < a->cut[b]) {
        *s = a->prim[b];
        *k = a->k0[b] + j;
    } else {
        *s = a->alt[b];
        *k = a->k1[b] + j - a->cut[b];
    }
}

static inline uint32_t s1_info(const struct s1view *v, unsigned s)
{
    return s == v->nsym - 1 ? (0x80u | v->R) : ((s >> 1) | ((s & 1u) << 6));
}

static void s1_view_freqs(const struct s1view *v, uint32_t *f)
{
    for (unsigned s = 0; s < v->nsym; s++)
        f[s] = v->freq[s] == 0xffff ? S1_M : v->freq[s];
}

/* t[j] = base + (j << 8) for j < n, 4 at a time (the table is rebuilt at
   every product: a toy model's calls are small enough for this to show) */
static inline void s1_fill(uint32_t *restrict t, uint32_t n, uint32_t base)
{
    typedef uint32_t v4u __attribute__((vector_size(16), aligned(4)));
    v4u v = { base, base + 256, base + 512, base + 768 };
    const v4u step = { 1024, 1024, 1024, 1024 };
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4, v += step)
        memcpy(t + j, &v, sizeof v);
    for (; j < n; j++)
        t[j] = base + (j << 8);
}

/* Decode table: per slot, ((f - 1) << 20) | ((slot - start) << 8) | info,
 * info = run (6 bits) | class (bit 6: 0 = symbol 1, 1 = symbol 2) | escape (bit 7). */
static void s1_table(const struct s1view *v, uint32_t *restrict tab)
{
    if (v->alias) {
        uint32_t f[S1_NB];
        struct s1alias a;
        s1_view_freqs(v, f);
        s1_alias_build(f, v->nsym, &a);
        /* bucket b: slots j < cut are its primary's k0 + j, the rest its alias's
           k1 + j - cut (s1_alias_slot, a bucket at a time) */
        for (uint32_t b = 0; b < S1_NB; b++) {
            uint32_t *t = tab + b * S1_BW;
            const unsigned ps = a.prim[b], as = a.alt[b];
            const uint32_t ep = ps < v->nsym ? ((f[ps] - 1) << 20) | s1_info(v, ps) : 0;
            const uint32_t ea = as < v->nsym ? ((f[as] - 1) << 20) | s1_info(v, as) : 0;
            /* (k << 8) takes bits 8-19, which ep / ea leave clear: | is + */
            s1_fill(t, a.cut[b], ep | ((uint32_t)a.k0[b] << 8));
            s1_fill(t + a.cut[b], S1_BW - a.cut[b], ea | ((uint32_t)a.k1[b] << 8));
        }
        return;
    }
    uint32_t start = 0;
    for (unsigned s = 0; s < v->nsym; s++) {
        uint32_t f = v->freq[s] == 0xffff ? S1_M : v->freq[s];
        uint32_t info = s == v->nsym - 1 ? (0x80u | v->R) : ((s >> 1) | ((s & 1u) << 6));
        s1_fill(tab + start, f, ((f - 1) << 20) | info);
        start += f;
    }
}

/* One decode step on state X: yields the entry's info byte in INFO. The
 * renormalisation read stays inside the chunk on a damaged stream. */
#define S1_STEP(X, INFO)                                                                   \
    do {                                                                                   \
        uint32_t e_ = tab[(X) & (S1_M - 1)];                                               \
        (X) = ((e_ >> 20) + 1) * ((X) >> S1_SCALE) + ((e_ >> 8) & (S1_M - 1));             \
        if ((X) < S1_L && p + 2 <= pend) {                                                 \
            (X) = ((X) << 16) | rd16(p);                                                   \
            p += 2;                                                                        \
        }                                                                                  \
        (INFO) = e_ & 0xffu;                                                               \
    } while (0)

/* The same step, branch-free (renormalisation is data-random, ~1/3 of steps,
 * and would mispredict); reads zeros past pend. */
#define S1_STEPF(X, INFO)                                                                  \
    do {                                                                                   \
        uint32_t e_ = tab[(X) & (S1_M - 1)];                                               \
        (X) = ((e_ >> 20) + 1) * ((X) >> S1_SCALE) + ((e_ >> 8) & (S1_M - 1));             \
        unsigned ok_ = p + 2 <= pend;                                                      \
        const uint8_t *q_ = ok_ ? p : zero2;                                               \
        uint32_t c_ = ((X) < S1_L) & ok_;                                                  \
        uint32_t xn_ = ((X) << 16) | rd16(q_);                                             \
        (X) = c_ ? xn_ : (X);                                                              \
        p += 2 * c_;                                                                       \
        (INFO) = e_ & 0xffu;                                                               \
    } while (0)

typedef void (*s1_event)(void *ctx, size_t row, size_t col, unsigned sym);

/* The old layout (L = 0: 4 interleaved states over the flattened chunk). */
static void s1_walk_chunk_v0(const struct s1view *v, const uint32_t *restrict tab, size_t c,
                          s1_event ev, void *ctx)
{
    const uint8_t *p = v->stream + s1_chunk_start(v, c), *pend = v->stream + s1_chunk_end(v, c);
    size_t r0 = c * v->G, nr = v->rows - r0 < v->G ? v->rows - r0 : v->G;
    uint64_t n = (uint64_t)nr * v->cols, pos = 0;
    uint32_t x[S1_NS];
    for (unsigned k = 0; k < S1_NS; k++, p += 4)
        x[k] = rd32(p);
    for (;;) {
        for (unsigned k = 0; k < S1_NS; k++) {
            unsigned info;
            S1_STEP(x[k], info);
            pos += info & 63u;
            if (info & 0x80u)
                continue;
            if (pos >= n)
                return;                  /* damaged: a non-zero past the end */
            ev(ctx, r0 + (size_t)(pos / v->cols), (size_t)(pos % v->cols), 1u + ((info >> 6) & 1u));
            pos++;
        }
        if (pos >= n)
            return;
    }
}

/* Lane k of a chunk of nr rows holds rows [lane_row(k), lane_row(k + 1)). */
static inline size_t s1_lane_row(size_t nr, unsigned L, unsigned k) { return k * nr / L; }

/* Generic chunk walker: calls ev(ctx, row, col, sym) for every non-zero weight
 * of chunk c (in lockstep lane order, ascending within a lane). Used by
 * dequantize / decode / the reference. Lane k steps while its position is
 * inside its rows; words are read in (step, lane) order. */
static void s1_walk_chunk(const struct s1view *v, const uint32_t *restrict tab, size_t c,
                          s1_event ev, void *ctx)
{
    if (!v->L) {
        s1_walk_chunk_v0(v, tab, c, ev, ctx);
        return;
    }
    static const uint8_t zero2[2] = { 0, 0 };
    const uint8_t *p = v->stream + s1_chunk_start(v, c), *pend = v->stream + s1_chunk_end(v, c);
    const size_t r0 = c * v->G, nr = v->rows - r0 < v->G ? v->rows - r0 : v->G;
    const unsigned L = v->L;
    uint32_t x[S1_LMAX];
    uint64_t pos[S1_LMAX], end[S1_LMAX], rs[S1_LMAX];   /* position, end, current row's start */
    size_t row[S1_LMAX];
    for (unsigned k = 0; k < L; k++, p += 4) {
        x[k] = rd32(p);
        row[k] = r0 + s1_lane_row(nr, L, k);
        end[k] = (uint64_t)(s1_lane_row(nr, L, k + 1) - s1_lane_row(nr, L, k)) * v->cols;
        pos[k] = rs[k] = 0;
    }
    for (int any = 1; any;) {
        any = 0;
        for (unsigned k = 0; k < L; k++) {
            if (pos[k] >= end[k])
                continue;
            any = 1;
            unsigned info;
            S1_STEPF(x[k], info);
            pos[k] += info & 63u;
            if (info & 0x80u)
                continue;
            if (pos[k] >= end[k]) {
                pos[k] = end[k];        /* damaged: a non-zero past the lane's end */
                continue;
            }
            while (pos[k] - rs[k] >= v->cols) {
                rs[k] += v->cols;
                row[k]++;
            }
            ev(ctx, row[k], (size_t)(pos[k] - rs[k]), 1u + ((info >> 6) & 1u));
            pos[k]++;
        }
    }
}

/* ---- the lane walker every fast decoder shares -------------------------------- */

/* What a walk does with each non-zero weight (row, col, class): */
enum s1_mode {
    S1M_SUM,    /* matvec: add X (qnt_ternary_impl.h) into the lane row's int64 sum of
                   its class (exact: any order gives the same); y at each row's end */
    S1M_EMIT,   /* the column into its row's list (tile layout of qnt_tmm_impl.h: row
                   i's region ent[i cols .. (i+1) cols), symbol 1 growing from the
                   start, symbol 2 from the end; rng preset by the caller) */
    S1M_DEQ,    /* its level into dst (rows row0 .. row0+nrows-1, f32, zeroed) */
    S1M_TERN,   /* its symbol into dst (tern rows, symbols zeroed) */
};

struct s1_sink {
    const float *x;             /* SUM */
    const struct qnt_tfx *fx;
    float *y;
    uint32_t *rng, *ent;        /* EMIT */
    void *dst;                  /* DEQ, TERN */
    size_t row0, nrows, rb;
};

/* Chunk c of a lane blob (L > 0): the lanes in lockstep, one token each a
 * step. Branch-free but for a lane's row change (once a row): the class, the
 * escape tokens (~16 % of tokens at R = 15, data-random) and the
 * renormalisation all select instead of branching; an escape's write goes
 * where it does no harm (a free slot of the row's list, a dummy). */
static inline __attribute__((always_inline)) void
s1_chunk_lanes_l(const struct s1view *v, const uint32_t *restrict tab, size_t c, const int MODE,
                 const struct s1_sink *K, const unsigned LC)
{
    static const uint8_t zero2[2] = { 0, 0 };
    const uint8_t *p = v->stream + s1_chunk_start(v, c), *pend = v->stream + s1_chunk_end(v, c);
    const size_t cols = v->cols, r0 = c * v->G, nr = v->rows - r0 < v->G ? v->rows - r0 : v->G;
    const unsigned L = LC ? LC : v->L;
    const double scale = MODE == S1M_SUM ? K->fx->scale : 0.0;
    float dummy_f = 0.0f;
    uint8_t dummy_b = 0;
    uint32_t st[S1_LMAX];
    uint64_t pos[S1_LMAX], end[S1_LMAX], rs[S1_LMAX];   /* lane position, end, row start */
    size_t row[S1_LMAX], rend[S1_LMAX];                   /* lane's current row, end row */
    int64_t slo[S1_LMAX], shi[S1_LMAX];
    uint32_t wl[S1_LMAX], wh[S1_LMAX];                    /* EMIT: next slots of the row */
    float lvf[S1_LMAX][2];                                /* DEQ: the row's levels */
    for (unsigned k = 0; k < L; k++, p += 4) {
        st[k] = rd32(p);
        row[k] = r0 + s1_lane_row(nr, L, k);
        rend[k] = r0 + s1_lane_row(nr, L, k + 1);
        end[k] = (uint64_t)(rend[k] - row[k]) * cols;
        pos[k] = rs[k] = 0;
        slo[k] = shi[k] = 0;
        wl[k] = (uint32_t)((row[k] - r0) * cols);
        wh[k] = (uint32_t)((row[k] - r0 + 1) * cols) - 1;
        if (MODE == S1M_DEQ && row[k] < rend[k]) {
            lvf[k][0] = qnt_tern_bf16_to_f32(rd16(v->lv + 4 * row[k]));
            lvf[k][1] = qnt_tern_bf16_to_f32(rd16(v->lv + 4 * row[k] + 2));
        }
    }
    /* the lane's row is done: its output, then the next row */
#define S1_FLUSH(K_)                                                                       \
    do {                                                                                   \
        if (MODE == S1M_SUM) {                                                             \
            const uint8_t *l_ = v->lv + 4 * row[K_];                                       \
            K->y[row[K_]] = qnt_tfx_out(rd16(l_), rd16(l_ + 2), slo[K_], shi[K_], K->fx);  \
            slo[K_] = shi[K_] = 0;                                                         \
        }                                                                                  \
        if (MODE == S1M_EMIT) {                                                            \
            uint32_t *rr_ = K->rng + 4 * (row[K_] - r0);                                   \
            rr_[1] = wl[K_];                                                               \
            rr_[2] = wh[K_] + 1;                                                           \
            wl[K_] = rr_[3];                  /* the next row's region */                  \
            wh[K_] = rr_[3] + (uint32_t)cols - 1;                                          \
        }                                                                                  \
        row[K_]++;                                                                         \
        rs[K_] += cols;                                                                    \
        if (MODE == S1M_DEQ && row[K_] < rend[K_]) {                                       \
            lvf[K_][0] = qnt_tern_bf16_to_f32(rd16(v->lv + 4 * row[K_]));                  \
            lvf[K_][1] = qnt_tern_bf16_to_f32(rd16(v->lv + 4 * row[K_] + 2));              \
        }                                                                                  \
    } while (0)
    for (int any = 1; any;) {
        any = 0;
        for (unsigned k = 0; k < L; k++) {
            if (pos[k] >= end[k])
                continue;
            any = 1;
            unsigned info;
            S1_STEPF(st[k], info);
            pos[k] += info & 63u;
            const unsigned nz = !(info & 0x80u), cls = (info >> 6) & 1u;
            if (pos[k] >= rs[k] + cols) {   /* into a later row (or past the lane) */
                if (pos[k] >= end[k]) {      /* an escape's overshoot, or damaged */
                    pos[k] = end[k];
                    continue;
                }
                while (pos[k] >= rs[k] + cols)
                    S1_FLUSH(k);
            }
            const size_t col = (size_t)(pos[k] - rs[k]);   /* < cols */
            if (MODE == S1M_SUM) {
                const int64_t X = qnt_tfx_x(K->x[col], scale) & -(int64_t)nz;
                const int64_t hm = -(int64_t)cls;           /* class: all ones = hi */
                shi[k] += X & hm;
                slo[k] += X & ~hm;
            } else if (MODE == S1M_EMIT) {
                /* entries so far in this row <= col < cols, so wl <= wh: an
                   escape writes a free slot */
                K->ent[cls ? wh[k] : wl[k]] = (uint32_t)col;
                wl[k] += nz & (cls ^ 1u);
                wh[k] -= nz & cls;
            } else {
                const size_t ri = row[k] - K->row0;       /* in range: ri < nrows */
                const int live = nz && row[k] >= K->row0 && ri < K->nrows;
                if (MODE == S1M_DEQ) {
                    float *t = live ? (float *)K->dst + ri * cols + col : &dummy_f;
                    *t = lvf[k][cls];
                } else {
                    uint8_t *t = live ? (uint8_t *)K->dst + ri * K->rb + QNT_TERN_ROW_HDR + col / 4
                                      : &dummy_b;
                    *t |= (uint8_t)((1u + cls) << (2 * (col & 3)));
                }
            }
            pos[k] += nz;
        }
    }
    for (unsigned k = 0; k < L; k++)
        while (row[k] < rend[k])
            S1_FLUSH(k);
#undef S1_FLUSH
}

/* Small tensors have 1 or 2 lanes: with L a constant, the lanes' state
 * lives in registers. */
static inline __attribute__((always_inline)) void
s1_chunk_lanes(const struct s1view *v, const uint32_t *restrict tab, size_t c, const int MODE,
               const struct s1_sink *K)
{
    if (v->L == 1)
        s1_chunk_lanes_l(v, tab, c, MODE, K, 1);
    else if (v->L == 2)
        s1_chunk_lanes_l(v, tab, c, MODE, K, 2);
    else
        s1_chunk_lanes_l(v, tab, c, MODE, K, 0);
}

/* ---- encoder ------------------------------------------------------------ */

size_t qnt_sub1_encode_bound(size_t rows, size_t cols)
{
    /* tokens <= weights + 1 per lane (pad), each token <= 2 bytes of output;
       + 4 bytes of state per lane and 4 of offset per chunk; + tables and levels */
    size_t n, t, out;
    size_t nch = rows && cols ? rows : 0;       /* at most one chunk per row */
    if (sb_mul_size(rows, cols, &n) || sb_mul_size(n, 2, &out) || sb_mul_size(nch, 8 * S1_LMAX, &t) ||
        sb_add_size(out, t, &out) || sb_mul_size(rows, 4, &t) || sb_add_size(out, t, &out) ||
        sb_add_size(out, S1_HDR + 3 * (2 * S1_RMAX + 1) + 64, &out))
        return 0;
    return out;
}

struct s1enc {
    const uint8_t *tern;
    size_t rows, cols, rb, G, nchunks;
};

/* Tokens of rows [r0, r1) (one lane) with run cap R into tok (if non-NULL);
 * returns the count. The last token may be an escape that overshoots r1. */
static size_t s1_tokens(const struct s1enc *E, size_t r0, size_t r1, unsigned R, uint8_t *tok,
                        uint64_t *cnt)
{
    size_t nt = 0;
    unsigned z = 0;
    const uint8_t esc = (uint8_t)(2 * R);
#define PUT(t)                                                                             \
    do {                                                                                   \
        if (tok)                                                                           \
            tok[nt] = (t);                                                                 \
        if (cnt)                                                                           \
            cnt[(t)]++;                                                                    \
        nt++;                                                                              \
    } while (0)
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *s = E->tern + r * E->rb + QNT_TERN_ROW_HDR;
        for (size_t j = 0; j < E->cols; j++) {
            unsigned sy = (s[j >> 2] >> (2 * (j & 3))) & 3u;
            if (sy == 0) {
                if (++z == R) {
                    PUT(esc);
                    z = 0;
                }
            } else {
                PUT((uint8_t)(2 * z + (sy - 1)));
                z = 0;
            }
        }
    }
    if (z)
        PUT(esc);                        /* overshoots the end; the decoder stops there */
#undef PUT
    return nt;
}

/* Tokens of every lane of chunk c; ntk[k] per lane; returns the total. */
static size_t s1_chunk_tokens(const struct s1enc *E, size_t c, unsigned L, unsigned R,
                              uint8_t *tok, uint64_t *cnt, size_t *ntk)
{
    size_t r0 = c * E->G, nr = E->rows - r0 < E->G ? E->rows - r0 : E->G, tot = 0;
    for (unsigned k = 0; k < L; k++) {
        size_t t = s1_tokens(E, r0 + s1_lane_row(nr, L, k), r0 + s1_lane_row(nr, L, k + 1), R,
                             tok ? tok + tot : NULL, cnt);
        if (ntk)
            ntk[k] = t;
        tot += t;
    }
    return tot;
}

/* Frequencies summing to 2^12 that minimise sum cnt * log2(M / f) greedily
 * from a rounded start; every used symbol and the escape get f >= 1. */
static void s1_quantize(const uint64_t *cnt, unsigned nsym, uint32_t *f)
{
    uint64_t tot = 0;
    for (unsigned i = 0; i < nsym; i++)
        tot += cnt[i];
    int64_t sum = 0;
    for (unsigned i = 0; i < nsym; i++) {
        f[i] = 0;
        if (cnt[i]) {
            double t = (double)cnt[i] * S1_M / (double)tot;
            f[i] = t < 1.0 ? 1u : (uint32_t)(t + 0.5);
        }
        sum += f[i];
    }
    while (sum != S1_M) {
        int best = -1;
        double bd = 0;
        for (unsigned i = 0; i < nsym; i++) {
            if (!cnt[i])
                continue;
            double d;
            if (sum < S1_M)
                d = (double)cnt[i] * log2((f[i] + 1.0) / f[i]);            /* gain */
            else if (f[i] > 1)
                d = -(double)cnt[i] * log2((double)f[i] / (f[i] - 1.0));    /* loss */
            else
                continue;
            if (best < 0 || d > bd) {
                best = (int)i;
                bd = d;
            }
        }
        if (sum < S1_M) {
            f[best]++;
            sum++;
        } else {
            f[best]--;
            sum--;
        }
    }
}

static size_t leb_len(uint32_t f) { return f < 128 ? 1 : 2; }

/* ---- the encoder's plan, shared by the reference and the fast encoder ------- */

#define S1_NRC 5                      /* run caps tried: {63, 32, 16, 8, 4} or {15, 8, 4} */

struct s1plan {
    struct s1enc E;
    unsigned L, alias;
    const unsigned *Rs;
    size_t nR;
    uint64_t cnt[S1_NRC][2 * S1_RMAX + 1];   /* token counts for each candidate R */
    size_t mts[S1_NRC];                      /* most tokens in one chunk */
};

static unsigned s1_lanes_set;   /* qnt_sub1_set_lanes (tests); 0: the rule below */

void qnt_sub1_set_lanes(unsigned lanes) { s1_lanes_set = lanes < S1_LMAX ? lanes : S1_LMAX; }

static void s1_plan_init(struct s1plan *P, const void *tern, size_t rows, size_t cols, int alias)
{
    static const unsigned Rs1[S1_NRC] = { 63, 32, 16, 8, 4 }, Rsa[] = { 15, 8, 4 };
    memset(P, 0, sizeof *P);
    struct s1enc E = { tern, rows, cols, qnt_tern_row_bytes(cols), 0, 0 };
    P->L = 1;
    if (rows && cols) {
        /* 16 lanes of ceil(S1_LANE_TARGET / cols) rows (fewer where the tensor is
           smaller): each lane's 4-byte state is < 0.002 bits a weight */
        size_t rpl = cols >= S1_LANE_TARGET ? 1 : (S1_LANE_TARGET + cols - 1) / cols;
        E.G = rows / S1_LMAX < rpl ? rows : S1_LMAX * rpl;
        E.nchunks = (rows + E.G - 1) / E.G;
        uint64_t nc = (uint64_t)E.G * cols, l = (nc + S1_LANE_TARGET - 1) / S1_LANE_TARGET;
        P->L = (unsigned)(l < S1_LMAX ? l : S1_LMAX);
        /* the lane kernels take more than 4 lanes: a tensor that small (a
           toy model's experts, < 4 S1_LANE_TARGET weights) gets 8 lanes where
           it has the rows, so they decode it (the AVX2 kernel in one 8-lane
           half; with 2 lanes the portable walker decoded them at every
           product: tinymoe's ppl with sub1 experts at 0.7x of bf16's).
           tinymoe's 192 x 128 experts: 6 more states, +0.006 bits a weight
           (code 1.020x -> 1.026x of the entropy, every tensor still <= 1.03x;
           16 lanes: 1.035x, and no faster) */
        if (P->L <= 4)
            P->L = S1_LMIN_SIMD;
        if (s1_lanes_set)
            P->L = s1_lanes_set;
        if (P->L > E.G)
            P->L = (unsigned)E.G;
    }
    P->E = E;
    P->alias = alias != 0;
    P->Rs = alias ? Rsa : Rs1;
    P->nR = alias ? sizeof Rsa / sizeof Rsa[0] : S1_NRC;
}

/* The run cap by estimated size (ideal code length + table): larger R means
 * fewer tokens (faster decode), so the largest R whose estimate is within
 * 0.2 % of the smallest. Returns its index. */
static size_t s1_pick_R(const struct s1plan *P)
{
    double best = -1, est[S1_NRC];
    for (size_t k = 0; k < P->nR; k++) {
        const unsigned ns = 2 * P->Rs[k] + 1;
        uint64_t tot = 0;
        for (unsigned i = 0; i < ns; i++)
            tot += P->cnt[k][i];
        double bits = 8.0 * ns;           /* about a byte a frequency */
        for (unsigned i = 0; i < ns; i++)
            if (P->cnt[k][i])
                bits += (double)P->cnt[k][i] * log2((double)tot / (double)P->cnt[k][i]);
        est[k] = bits;
        if (best < 0 || bits < best)
            best = bits;
    }
    for (size_t k = 0; k < P->nR; k++)
        if (est[k] <= best * 1.002 + 64)
            return k;
    return 0;
}

/* The code for run cap index ki: frequencies f, starts, the slot of each
 * (symbol, k) (slotof[start[s] + k]); then header, table, levels into dst.
 * Returns the fixed part's size (the offsets follow the levels), 0 if it
 * does not fit cap. */
struct s1code {
    unsigned R, nsym;
    uint32_t f[2 * S1_RMAX + 1], start[2 * S1_RMAX + 2];
    uint16_t slotof[S1_M];
};

static size_t s1_write_head(const struct s1plan *P, size_t ki, struct s1code *C, uint8_t *o,
                            size_t cap)
{
    const struct s1enc *E = &P->E;
    uint64_t cnt[2 * S1_RMAX + 1];
    C->R = (unsigned)P->Rs[ki];
    C->nsym = 2 * C->R + 1;
    memcpy(cnt, P->cnt[ki], sizeof cnt);
    cnt[C->nsym - 1] += 1;                /* the escape must be codable (padding) */
    s1_quantize(cnt, C->nsym, C->f);
    C->start[0] = 0;
    for (unsigned i = 0; i < C->nsym; i++)
        C->start[i + 1] = C->start[i] + C->f[i];
    /* slot of (symbol s, k): start[s] + k in the cumulative layout; in the
       alias layout slotof[start[s] + k] */
    for (uint32_t i = 0; i < S1_M; i++)
        C->slotof[i] = (uint16_t)i;
    if (P->alias) {
        struct s1alias a;
        s1_alias_build(C->f, C->nsym, &a);
        for (uint32_t slot = 0; slot < S1_M; slot++) {
            unsigned sy;
            uint32_t k;
            s1_alias_slot(&a, slot, &sy, &k);
            C->slotof[C->start[sy] + k] = (uint16_t)slot;
        }
    }
    size_t hdr = S1_HDR;
    for (unsigned i = 0; i < C->nsym; i++)
        hdr += leb_len(C->f[i]);
    const size_t fixed = hdr + 4 * E->rows + (E->nchunks ? 4 * (E->nchunks - 1) : 0);
    if (fixed > cap)
        return 0;
    memcpy(o, "SB1\x01", 4);
    wr32(o + 4, (uint32_t)E->rows);
    wr32(o + 8, (uint32_t)E->cols);
    wr32(o + 12, (uint32_t)E->G);
    o[16] = (uint8_t)C->R;
    o[17] = (uint8_t)P->L;
    o[18] = (uint8_t)P->alias;
    o[19] = 0;
    size_t pos = S1_HDR;
    for (unsigned i = 0; i < C->nsym; i++) {
        if (C->f[i] < 128) {
            o[pos++] = (uint8_t)C->f[i];
        } else {
            o[pos++] = (uint8_t)(0x80 | (C->f[i] & 0x7f));
            o[pos++] = (uint8_t)(C->f[i] >> 7);
        }
    }
    for (size_t r = 0; r < E->rows; r++)
        memcpy(o + pos + 4 * r, E->tern + r * E->rb, 4);
    return fixed;
}

/* One chunk's tokens (lane k: ntk[k] of them, lanes one after another in
 * tok) coded backwards so that the stream ends at q; returns its start. The
 * exact reverse of the decoder's (step, lane) order; at most 2 bytes a token
 * plus 4 a lane. */
static uint8_t *s1_rans_chunk(const struct s1code *C, const uint8_t *tok, const size_t *ntk,
                              unsigned L, uint8_t *q)
{
    size_t tk[S1_LMAX], maxt = 0, tsum = 0;
    uint32_t x[S1_LMAX];
    for (unsigned k = 0; k < L; k++) {
        tk[k] = tsum;
        tsum += ntk[k];
        if (ntk[k] > maxt)
            maxt = ntk[k];
        x[k] = S1_L;
    }
    for (size_t i = maxt; i-- > 0;) {
        for (unsigned k = L; k-- > 0;) {
            if (i >= ntk[k])
                continue;
            uint32_t *xs = &x[k];
            const unsigned sy = tok[tk[k] + i];
            const uint32_t f = C->f[sy];
            const uint64_t xmax = ((uint64_t)(S1_L >> S1_SCALE) << 16) * f;
            if (*xs >= xmax) {
                q -= 2;
                wr16(q, (uint16_t)*xs);
                *xs >>= 16;
            }
            *xs = ((*xs / f) << S1_SCALE) + C->slotof[C->start[sy] + *xs % f];
        }
    }
    for (unsigned k = L; k-- > 0;) {
        q -= 4;
        wr32(q, x[k]);
    }
    return q;
}

/* ---- the reference encoder ------------------------------------------------------ */

int qnt_sub1_encode_ref(const void *restrict tern, size_t rows, size_t cols, void *restrict dst,
                        size_t cap, uint64_t *nbytes, int layout)
{
    *nbytes = 0;
    if (rows > UINT32_MAX || cols > UINT32_MAX)
        return SB_EINVAL;
    struct s1plan *P = sb_malloc(sizeof *P);
    struct s1code *C = sb_malloc(sizeof *C);
    uint8_t *tok = NULL, *buf = NULL;
    int rc = SB_ENOMEM;
    if (!P || !C)
        goto out;
    s1_plan_init(P, tern, rows, cols, layout != 0);
    const struct s1enc *E = &P->E;
    const unsigned L = P->L;
    /* symbols must be 0..2 with zero padding bits: only those round-trip */
    rc = SB_EINVAL;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *s = E->tern + r * E->rb + QNT_TERN_ROW_HDR;
        for (size_t j = 0; j < cols; j++)
            if (((s[j >> 2] >> (2 * (j & 3))) & 3u) == 3)
                goto out;
        if ((cols & 3) && (s[cols >> 2] >> (2 * (cols & 3))))
            goto out;
    }
    for (size_t k = 0; k < P->nR; k++)
        for (size_t c = 0; c < E->nchunks; c++) {
            size_t t = s1_chunk_tokens(E, c, L, P->Rs[k], NULL, P->cnt[k], NULL);
            if (t > P->mts[k])
                P->mts[k] = t;
        }
    const size_t ki = rows && cols ? s1_pick_R(P) : P->alias ? 1 : 2;   /* empty: R = 8 or 16 */
    const size_t fixed = s1_write_head(P, ki, C, dst, cap);
    if (!fixed)
        goto out;
    uint8_t *offp = (uint8_t *)dst + fixed - (E->nchunks ? 4 * (E->nchunks - 1) : 0);
    uint8_t *stream = (uint8_t *)dst + fixed;
    size_t scap = cap - fixed, slen = 0;
    const size_t maxtok = P->mts[ki], bufcap = 2 * maxtok + 4 * S1_LMAX + 16;
    rc = SB_ENOMEM;
    if (E->nchunks) {
        tok = sb_malloc(maxtok ? maxtok : 1);
        buf = sb_malloc(bufcap);
        if (!tok || !buf)
            goto out;
    }
    rc = SB_EINVAL;
    for (size_t c = 0; c < E->nchunks; c++) {
        size_t ntk[S1_LMAX];
        s1_chunk_tokens(E, c, L, C->R, tok, NULL, ntk);
        const uint8_t *q = s1_rans_chunk(C, tok, ntk, L, buf + bufcap);
        size_t len = (size_t)(buf + bufcap - q);
        if (len > scap - slen || (c + 1 < E->nchunks && slen + len > UINT32_MAX))
            goto out;
        memcpy(stream + slen, q, len);
        slen += len;
        if (c + 1 < E->nchunks)
            wr32(offp + 4 * c, (uint32_t)slen);
    }
    *nbytes = fixed + slen;
    rc = SB_OK;
out:
    sb_free(tok);
    sb_free(buf);
    sb_free(C);
    sb_free(P);
    return rc;
}

/* ---- the fast encoder: word-level scans, chunks in parallel ---------------------- */

#define S1_HIST 256                   /* runs shorter than this are counted in a histogram */

/* Lane rows [r0, r1): calls RUN(z, cls) for every non-zero weight (z: zeros
 * since the previous one or the lane start, cls 0 = symbol 1, 1 = symbol 2),
 * then returns the trailing zeros. Sets *bad on a symbol 3 or padding bits. */
#define S1_LANE_RUNS(E, r0, r1, bad, RUN, TRAIL)                                           \
    do {                                                                                   \
        uint64_t next_ = 0, base_ = 0;                                                     \
        for (size_t r_ = (r0); r_ < (r1); r_++, base_ += (E)->cols) {                      \
            const uint8_t *s_ = (E)->tern + r_ * (E)->rb + QNT_TERN_ROW_HDR;               \
            for (size_t j0_ = 0; j0_ < (E)->cols; j0_ += 32) {                             \
                const uint64_t w_ = qnt_tmm_word2(s_, (E)->cols, j0_);                     \
                (bad) |= w_ & (w_ >> 1) & 0x5555555555555555ull;                           \
                uint64_t m_ = (w_ | (w_ >> 1)) & 0x5555555555555555ull;                    \
                while (m_) {                                                               \
                    const unsigned b_ = (unsigned)__builtin_ctzll(m_);                     \
                    const uint64_t p_ = base_ + j0_ + (b_ >> 1);                           \
                    RUN(p_ - next_, (unsigned)(w_ >> (b_ + 1)) & 1u);                      \
                    next_ = p_ + 1;                                                        \
                    m_ &= m_ - 1;                                                          \
                }                                                                          \
            }                                                                              \
            if ((E)->cols & 3)                                                             \
                (bad) |= s_[(E)->cols >> 2] >> (2 * ((E)->cols & 3));                      \
        }                                                                                  \
        TRAIL(base_ - next_);                                                              \
    } while (0)

/* Chunk c's token counts for every candidate R (added to cnt) and its token
 * total for each (tokc). Nonzero: a symbol 3 or padding bits. */
static uint64_t s1_chunk_stats(const struct s1plan *P, size_t c,
                               uint64_t (*cnt)[2 * S1_RMAX + 1], size_t *tokc)
{
    const struct s1enc *E = &P->E;
    const size_t r0 = c * E->G, nr = E->rows - r0 < E->G ? E->rows - r0 : E->G;
    uint32_t hist[2][S1_HIST];
    uint64_t bad = 0;
    memset(hist, 0, sizeof hist);
    for (size_t k = 0; k < P->nR; k++)
        tokc[k] = 0;
#define S1_RUN_STAT(z, cls)                                                                \
    do {                                                                                   \
        const uint64_t z_ = (z);                                                           \
        if (z_ < S1_HIST) {                                                                \
            hist[cls][z_]++;                                                               \
        } else {                  /* long runs: every R directly */                         \
            for (size_t k_ = 0; k_ < P->nR; k_++) {                                        \
                const unsigned R_ = P->Rs[k_];                                             \
                cnt[k_][2 * (z_ % R_) + (cls)]++;                                          \
                cnt[k_][2 * R_] += z_ / R_;                                                \
                tokc[k_] += z_ / R_ + 1;                                                   \
            }                                                                              \
        }                                                                                  \
    } while (0)
#define S1_TRAIL_STAT(z)                                                                   \
    do {                                                                                   \
        const uint64_t z_ = (z);                                                           \
        for (size_t k_ = 0; k_ < P->nR; k_++) {                                            \
            const unsigned R_ = P->Rs[k_];                                                 \
            const uint64_t e_ = z_ / R_ + (z_ % R_ != 0);                                  \
            cnt[k_][2 * R_] += e_;                                                         \
            tokc[k_] += e_;                                                                \
        }                                                                                  \
    } while (0)
    for (unsigned k = 0; k < P->L; k++)
        S1_LANE_RUNS(E, r0 + s1_lane_row(nr, P->L, k), r0 + s1_lane_row(nr, P->L, k + 1), bad,
                     S1_RUN_STAT, S1_TRAIL_STAT);
#undef S1_RUN_STAT
#undef S1_TRAIL_STAT
    for (size_t k = 0; k < P->nR; k++) {
        const unsigned R = P->Rs[k];
        for (unsigned cls = 0; cls < 2; cls++)
            for (unsigned z = 0; z < S1_HIST; z++) {
                const uint64_t h = hist[cls][z];
                if (!h)
                    continue;
                cnt[k][2 * (z % R) + cls] += h;
                cnt[k][2 * R] += h * (z / R);
                tokc[k] += h * (z / R + 1);
            }
    }
    return bad;
}

/* Chunk c's tokens with run cap R (lane by lane into tok, ntk[k] each): what
 * s1_chunk_tokens writes. Writes at most cap; returns the total (more than
 * cap only if the statistics pass and this one disagreed: our bug). */
static size_t s1_chunk_tokens_fast(const struct s1plan *P, size_t c, unsigned R, uint8_t *tok,
                                   size_t cap, size_t *ntk)
{
    const struct s1enc *E = &P->E;
    const size_t r0 = c * E->G, nr = E->rows - r0 < E->G ? E->rows - r0 : E->G;
    const uint8_t esc = (uint8_t)(2 * R);
    uint64_t bad = 0;
    size_t nt = 0;
#define S1_RUN_TOK(z, cls)                                                                 \
    do {                                                                                   \
        const uint64_t z_ = (z);                                                           \
        for (uint64_t e_ = z_ / R; e_; e_--, nt++)                                         \
            if (nt < cap)                                                                  \
                tok[nt] = esc;                                                             \
        if (nt < cap)                                                                      \
            tok[nt] = (uint8_t)(2 * (z_ % R) + (cls));                                     \
        nt++;                                                                              \
    } while (0)
#define S1_TRAIL_TOK(z)                                                                    \
    do {                                                                                   \
        const uint64_t z_ = (z);                                                           \
        for (uint64_t e_ = z_ / R + (z_ % R != 0); e_; e_--, nt++)                         \
            if (nt < cap)                                                                  \
                tok[nt] = esc;                                                             \
    } while (0)
    for (unsigned k = 0; k < P->L; k++) {
        const size_t t0 = nt;
        S1_LANE_RUNS(E, r0 + s1_lane_row(nr, P->L, k), r0 + s1_lane_row(nr, P->L, k + 1), bad,
                     S1_RUN_TOK, S1_TRAIL_TOK);
        ntk[k] = nt - t0;
    }
#undef S1_RUN_TOK
#undef S1_TRAIL_TOK
    (void)bad;
    return nt;
}

int qnt_sub1_encode_layout(const void *restrict tern, size_t rows, size_t cols,
                           void *restrict dst, size_t cap, uint64_t *nbytes, int layout)
{
    *nbytes = 0;
    if (rows > UINT32_MAX || cols > UINT32_MAX)
        return SB_EINVAL;
    if (!rows || !cols)
        return qnt_sub1_encode_ref(tern, rows, cols, dst, cap, nbytes, layout);
    const int nth = qnt_tmm_threads();
    struct s1plan *P = sb_malloc(sizeof *P);
    struct s1code *C = sb_malloc(sizeof *C);
    uint64_t(*tcnt)[S1_NRC][2 * S1_RMAX + 1] = sb_malloc((size_t)nth * sizeof *tcnt);
    size_t *tokc = NULL, *off = NULL, *len = NULL;
    uint8_t *tok = NULL;
    uint64_t bad = 0;
    int rc = SB_ENOMEM;
    if (!P || !C || !tcnt)
        goto out;
    s1_plan_init(P, tern, rows, cols, layout != 0);
    const struct s1enc *E = &P->E;
    const size_t nch = E->nchunks;
    tokc = sb_malloc(nch * S1_NRC * sizeof *tokc);
    off = sb_malloc((nch + 1) * sizeof *off);
    len = sb_malloc(nch * sizeof *len);
    if (!tokc || !off || !len)
        goto out;
    memset(tcnt, 0, (size_t)nth * sizeof *tcnt);
    /* 1. every candidate R's statistics, chunks in parallel (integer sums:
          the same at any thread count) */
    const long nchl = (long)nch;
#pragma omp parallel num_threads(nth) reduction(| : bad)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
#pragma omp for schedule(static)
        for (long c = 0; c < nchl; c++)
            bad |= s1_chunk_stats(P, (size_t)c, tcnt[tid], tokc + (size_t)c * S1_NRC);
    }
    rc = SB_EINVAL;
    if (bad)   /* symbols must be 0..2 with zero padding bits: only those round-trip */
        goto out;
    for (int t = 0; t < nth; t++)
        for (size_t k = 0; k < P->nR; k++)
            for (unsigned i = 0; i < 2 * S1_RMAX + 1; i++)
                P->cnt[k][i] += tcnt[t][k][i];
    for (size_t c = 0; c < nch; c++)
        for (size_t k = 0; k < P->nR; k++)
            if (tokc[c * S1_NRC + k] > P->mts[k])
                P->mts[k] = tokc[c * S1_NRC + k];
    /* 2. the code and the fixed part */
    const size_t ki = s1_pick_R(P);
    const size_t fixed = s1_write_head(P, ki, C, dst, cap);
    if (!fixed)
        goto out;
    uint8_t *offp = (uint8_t *)dst + fixed - 4 * (nch - 1);
    uint8_t *stream = (uint8_t *)dst + fixed;
    /* 3. chunks in parallel, each into its worst-case slot of dst (2 bytes a
          token, 4 a lane), then moved together in order */
    off[0] = 0;
    for (size_t c = 0; c < nch; c++)
        off[c + 1] = off[c] + 2 * tokc[c * S1_NRC + ki] + 4 * (size_t)P->L;
    if (off[nch] > cap - fixed) {   /* a tight cap: the serial encoder's own checks */
        rc = qnt_sub1_encode_ref(tern, rows, cols, dst, cap, nbytes, layout);
        goto out;
    }
    const size_t maxtok = P->mts[ki] ? P->mts[ki] : 1;
    rc = SB_ENOMEM;
    tok = sb_malloc((size_t)nth * maxtok);
    if (!tok)
        goto out;
#pragma omp parallel num_threads(nth)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        uint8_t *tk = tok + (size_t)tid * maxtok;
#pragma omp for schedule(static) reduction(| : bad)
        for (long c = 0; c < nchl; c++) {
            size_t ntk[S1_LMAX];
            if (s1_chunk_tokens_fast(P, (size_t)c, C->R, tk, maxtok, ntk) !=
                tokc[(size_t)c * S1_NRC + ki]) {
                bad = 1;   /* cannot happen: both passes see the same runs */
                len[c] = 0;
                continue;
            }
            const uint8_t *q = s1_rans_chunk(C, tk, ntk, P->L, stream + off[c + 1]);
            len[c] = (size_t)(stream + off[c + 1] - q);
        }
    }
    rc = SB_EINVAL;
    if (bad)
        goto out;
    size_t slen = 0;
    for (size_t c = 0; c < nch; c++) {
        if (c + 1 < nch && slen + len[c] > UINT32_MAX)
            goto out;
        memmove(stream + slen, stream + off[c + 1] - len[c], len[c]);
        slen += len[c];
        if (c + 1 < nch)
            wr32(offp + 4 * c, (uint32_t)slen);
    }
    *nbytes = fixed + slen;
    rc = SB_OK;
out:
    sb_free(tok);
    sb_free(len);
    sb_free(off);
    sb_free(tokc);
    sb_free(tcnt);
    sb_free(C);
    sb_free(P);
    return rc;
}

int qnt_sub1_encode(const void *restrict tern, size_t rows, size_t cols, void *restrict dst,
                    size_t cap, uint64_t *nbytes)
{
    return qnt_sub1_encode_layout(tern, rows, cols, dst, cap, nbytes, 1);
}

/* ---- decoders ----------------------------------------------------------- */

int qnt_sub1_validate(const void *w, uint64_t nbytes, size_t rows, size_t cols)
{
    struct s1view v;
    if (s1_parse(&v, w, nbytes) || v.rows != rows || v.cols != cols)
        return SB_EFORMAT;
    return SB_OK;
}

struct deq_ctx {
    const struct s1view *v;
    size_t row0, nrows;
    float *dst;
    uint8_t *tern;
    size_t rb;
};

static void ev_deq(void *ctx, size_t row, size_t col, unsigned sym)
{
    struct deq_ctx *d = ctx;
    if (row < d->row0 || row >= d->row0 + d->nrows)
        return;
    d->dst[(row - d->row0) * d->v->cols + col] =
        qnt_tern_bf16_to_f32(rd16(d->v->lv + 4 * row + 2 * (sym - 1)));
}

static void ev_tern(void *ctx, size_t row, size_t col, unsigned sym)
{
    struct deq_ctx *d = ctx;
    if (row < d->row0 || row >= d->row0 + d->nrows)
        return;
    d->tern[(row - d->row0) * d->rb + QNT_TERN_ROW_HDR + (col >> 2)] |=
        (uint8_t)(sym << (2 * (col & 3)));
}

#if defined(__x86_64__) || defined(__i386__)
static int s1_simd_ok(const struct s1view *v);
static void s1_table_alias(const struct s1view *v, uint32_t *restrict bk);
static void s1_table_fast(const struct s1view *v, uint32_t *restrict tab);
void qnt_sub1_chunk_deq_avx512(const uint32_t *restrict tab, int alias, const uint8_t *sp,
                               const uint8_t *se, size_t nr, unsigned L, size_t cols,
                               const uint8_t *lv, size_t drow0, size_t dnrows, float *restrict dst);
/* qnt_sub1_x86.c, AVX2: one chunk through s1_table's table */
static int s1_avx2_ok(const struct s1view *v);
void qnt_sub1_chunk_matvec_avx2(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se,
                                size_t nr, unsigned L, size_t cols, const uint8_t *lv,
                                const float *restrict x, const struct qnt_tfx *fx, float *y);
void qnt_sub1_chunk_emit_avx2(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se,
                              size_t nr, unsigned L, size_t cols, uint32_t *restrict rng,
                              uint32_t *restrict ent);
void qnt_sub1_chunk_deq_avx2(const uint32_t *restrict tab, const uint8_t *sp, const uint8_t *se,
                             size_t nr, unsigned L, size_t cols, const uint8_t *lv, size_t drow0,
                             size_t dnrows, float *restrict dst);
#endif

/* Rows row0 .. row0+nrows-1 (DEQ or TERN into dst), chunk by chunk; the old
 * layout through the generic walker; DEQ of 16-lane blobs through the AVX-512
 * kernel (16 lanes a step, the levels scattered into dst). */
static void s1_walk_rows(const struct s1view *v, size_t row0, size_t nrows, int mode, void *dst,
                         s1_event ev, void *ctx)
{
    if (!v->nchunks || !nrows)
        return;
    uint32_t tab[S1_M];
#if defined(__x86_64__) || defined(__i386__)
    const int deq = mode == S1M_DEQ && v->L > 4 && (uint64_t)nrows * v->cols < (1u << 31);
    const int k512 = deq && s1_simd_ok(v), k2 = deq && !k512 && s1_avx2_ok(v);
    if (k512 || k2) {
        if (k2)
            s1_table(v, tab);
        else if (v->alias)
            s1_table_alias(v, tab);
        else
            s1_table_fast(v, tab);
        for (size_t c = row0 / v->G; c < v->nchunks && c * v->G < row0 + nrows; c++) {
            const size_t r0 = c * v->G, nr = v->rows - r0 < v->G ? v->rows - r0 : v->G;
            const size_t a = row0 > r0 ? row0 - r0 : 0;   /* chunk rows a .. b-1 wanted */
            const size_t b = row0 + nrows < r0 + nr ? row0 + nrows - r0 : nr;
            const uint8_t *sp = v->stream + s1_chunk_start(v, c), *se = v->stream + s1_chunk_end(v, c);
            float *d = (float *)dst + (r0 + a - row0) * v->cols;
            if (k512)
                qnt_sub1_chunk_deq_avx512(tab, (int)v->alias, sp, se, nr, v->L, v->cols,
                                          v->lv + 4 * r0, a, b - a, d);
            else
                qnt_sub1_chunk_deq_avx2(tab, sp, se, nr, v->L, v->cols, v->lv + 4 * r0, a, b - a, d);
        }
        return;
    }
#endif
    s1_table(v, tab);
    struct s1_sink K;
    memset(&K, 0, sizeof K);
    K.dst = dst;
    K.row0 = row0;
    K.nrows = nrows;
    K.rb = qnt_tern_row_bytes(v->cols);
    for (size_t c = row0 / v->G; c < v->nchunks && c * v->G < row0 + nrows; c++) {
        if (!v->L)
            s1_walk_chunk(v, tab, c, ev, ctx);
        else if (mode == S1M_DEQ)
            s1_chunk_lanes(v, tab, c, S1M_DEQ, &K);
        else
            s1_chunk_lanes(v, tab, c, S1M_TERN, &K);
    }
}

void qnt_sub1_dequantize_rows(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                              size_t nrows, float *restrict dst)
{
    struct s1view v;
    memset(dst, 0, nrows * cols * sizeof *dst);
    if (s1_parse(&v, w, nbytes) || v.cols != cols || row0 + nrows > v.rows)
        return;
    struct deq_ctx d = { &v, row0, nrows, dst, NULL, 0 };
    s1_walk_rows(&v, row0, nrows, S1M_DEQ, dst, ev_deq, &d);
}

void qnt_sub1_decode_tern(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                          size_t nrows, void *restrict dst)
{
    struct s1view v;
    const size_t rb = qnt_tern_row_bytes(cols);
    memset(dst, 0, nrows * rb);
    if (s1_parse(&v, w, nbytes) || v.cols != cols || row0 + nrows > v.rows)
        return;
    for (size_t i = 0; i < nrows; i++)
        memcpy((uint8_t *)dst + i * rb, v.lv + 4 * (row0 + i), 4);
    struct deq_ctx d = { &v, row0, nrows, NULL, dst, rb };
    s1_walk_rows(&v, row0, nrows, S1M_TERN, dst, ev_tern, &d);
}

struct ref_ctx {
    const float *x;
    double scale;              /* qnt_ternary_impl.h */
    int64_t (*acc)[2];         /* [64][symbol - 1]: rows lo .. lo + 63 */
    size_t lo;
};

static void ev_ref(void *ctx, size_t row, size_t col, unsigned sym)
{
    struct ref_ctx *d = ctx;
    if (row < d->lo || row >= d->lo + 64)
        return;
    d->acc[row - d->lo][sym - 1] += qnt_tfx_x(d->x[col], d->scale);
}

/* The reference over rows row0 .. row0+nrows-1 (y[0 .. nrows-1]): per row,
 * exact int64 sums of X under symbol 1 and symbol 2 (qnt_ternary_impl.h);
 * rows are summed 64 at a time (the chunk is re-walked per block: it is the
 * reference). */
static void s1_ref_rows(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                        size_t row0, size_t nrows, const float *restrict x, float *restrict y)
{
    struct s1view v;
    memset(y, 0, nrows * sizeof *y);
    if (s1_parse(&v, w, nbytes) || v.rows != rows || v.cols != cols || !v.nchunks)
        return;
    struct qnt_tfx fx;
    qnt_tfx_init(&fx, x, cols);
    if (!fx.finite) {
        qnt_tfx_nan(y, nrows);
        return;
    }
    uint32_t tab[S1_M];
    s1_table(&v, tab);
    for (size_t c = row0 / v.G; c < v.nchunks && c * v.G < row0 + nrows; c++) {
        size_t r0 = c * v.G, nr = rows - r0 < v.G ? rows - r0 : v.G;
        for (size_t b = 0; b < nr; b += 64) {
            if (r0 + b + 64 <= row0 || r0 + b >= row0 + nrows)
                continue;
            int64_t acc[64][2];
            memset(acc, 0, sizeof acc);
            struct ref_ctx d = { x, fx.scale, acc, r0 + b };
            s1_walk_chunk(&v, tab, c, ev_ref, &d);
            for (size_t i = 0; i < 64 && b + i < nr; i++) {
                const size_t r = r0 + b + i;
                if (r < row0 || r >= row0 + nrows)
                    continue;
                const uint8_t *l = v.lv + 4 * r;
                y[r - row0] = qnt_tfx_out(rd16(l), rd16(l + 2), acc[i][0], acc[i][1], &fx);
            }
        }
    }
}

void qnt_sub1_matvec_ref(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                         const float *restrict x, float *restrict y)
{
    s1_ref_rows(w, nbytes, rows, cols, 0, rows, x, y);
}

/* The old layout's emit (L = 0): through the generic walker. */
struct emit_ctx {
    uint32_t *rng, *ent;
    size_t r0;
};

static void ev_emit(void *ctx, size_t row, size_t col, unsigned sym)
{
    struct emit_ctx *d = ctx;
    uint32_t *rr = d->rng + 4 * (row - d->r0);
    if (sym == 1)
        d->ent[rr[1]++] = (uint32_t)col;
    else
        d->ent[--rr[2]] = (uint32_t)col;
}

static void s1_chunk_emit(const struct s1view *v, const uint32_t *restrict tab, size_t c,
                          uint32_t *restrict rng, uint32_t *restrict ent)
{
    if (!v->L) {
        struct emit_ctx d = { rng, ent, c * v->G };
        s1_walk_chunk_v0(v, tab, c, ev_emit, &d);
        return;
    }
    struct s1_sink K;
    memset(&K, 0, sizeof K);
    K.rng = rng;
    K.ent = ent;
    s1_chunk_lanes(v, tab, c, S1M_EMIT, &K);
}

static void s1_chunk_matvec(const struct s1view *v, const uint32_t *restrict tab, size_t c,
                            const float *restrict x, const struct qnt_tfx *fx, float *restrict y)
{
    struct s1_sink K;
    memset(&K, 0, sizeof K);
    K.x = x;
    K.fx = fx;
    K.y = y;
    s1_chunk_lanes(v, tab, c, S1M_SUM, &K);
}

#if defined(__x86_64__) || defined(__i386__)
/* qnt_sub1_x86.c */
void qnt_sub1_chunks_avx512(const uint32_t *restrict tab, const uint8_t *const *sp,
                            const uint8_t *const *se, const size_t *nr, size_t nchunk, unsigned L,
                            size_t cols, const uint8_t *const *lv, const float *restrict x,
                            const struct qnt_tfx *fx, float *const *y);
void qnt_sub1_chunks_avx512_alias(const uint32_t *restrict bk, const uint8_t *const *sp,
                                  const uint8_t *const *se, const size_t *nr, size_t nchunk,
                                  unsigned L, size_t cols, const uint8_t *const *lv,
                                  const float *restrict x, const struct qnt_tfx *fx,
                                  float *const *y);
void qnt_sub1_chunk_emit_avx512(const uint32_t *restrict tab, int alias, const uint8_t *sp,
                                const uint8_t *se, size_t nr, unsigned L, size_t cols,
                                uint32_t *restrict rng, uint32_t *restrict ent);

/* Bucket tables of the AVX-512 alias kernel (alias layout): bk[b] = primary
 * entry, bk[32 + b] = alias entry, bk[64 + b] = cut; an entry is f << 20 |
 * info << 12 | (k at j = 0, mod 4096), so (entry + j) mod 4096 is k for the
 * slot j of the bucket either side of the cut. Needs every f < 4096. */
static void s1_table_alias(const struct s1view *v, uint32_t *restrict bk)
{
    uint32_t f[S1_NB];
    struct s1alias a;
    s1_view_freqs(v, f);
    s1_alias_build(f, v->nsym, &a);
    for (unsigned b = 0; b < S1_NB; b++) {
        unsigned p = a.prim[b], q = a.alt[b];
        uint32_t fp = p < v->nsym ? f[p] : 0, fq = q < v->nsym ? f[q] : 0;
        uint32_t ip = p < v->nsym ? s1_info(v, p) : 0, iq = q < v->nsym ? s1_info(v, q) : 0;
        bk[b] = (fp << 20) | (ip << 12) | (a.k0[b] & (S1_M - 1));
        bk[S1_NB + b] = (fq << 20) | (iq << 12) | ((a.k1[b] - a.cut[b]) & (S1_M - 1));
        bk[2 * S1_NB + b] = a.cut[b];
    }
}

/* Decode table of the AVX-512 kernel: per slot f << 20 | info << 12 | (slot -
 * start), info as in s1_table. Needs every f < 4096 (the caller checks). */
static void s1_table_fast(const struct s1view *v, uint32_t *restrict tab)
{
    uint32_t start = 0;
    for (unsigned s = 0; s < v->nsym; s++) {
        uint32_t f = v->freq[s];
        uint32_t info = s == v->nsym - 1 ? (0x80u | v->R) : ((s >> 1) | ((s & 1u) << 6));
        for (uint32_t k = 0; k < f; k++)
            tab[start + k] = (f << 20) | (info << 12) | k;
        start += f;
    }
}

/* 1 if the AVX-512 kernel may run (qnt_sub1_x86.c's target attribute). */
static int s1_use_avx512(void)
{
    return sb_cpu_has(SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512VL | SB_CPU_AVX512VBMI2 |
                      SB_CPU_POPCNT);
}

/* Whether the lane kernels (AVX-512 or AVX2) take this blob: lanes (L > 0);
 * positions are u32 lanes (a lane's rows, at most ceil(G / L), < 2^31
 * weights), and so are the emit kernels' list indices (a chunk, G cols <
 * 2^31); f = 4096 (all zeros) does not fit the AVX-512 tables (and such a
 * tensor has no non-zero to find). */
static int s1_lanes_ok(const struct s1view *v)
{
    return v->L && (uint64_t)((v->G + v->L - 1) / v->L) * v->cols < (1u << 31) &&
           (uint64_t)v->G * v->cols < (1u << 31) && v->freq[v->nsym - 1] != 0xffff;
}

static int s1_simd_max = 2;   /* qnt_sub1_set_simd_max (tests) */

void qnt_sub1_set_simd_max(int level) { s1_simd_max = level; }

/* The AVX-512 kernels (qnt_sub1_x86.c, first half). */
static int s1_simd_ok(const struct s1view *v)
{
    return s1_simd_max >= 2 && s1_lanes_ok(v) && s1_use_avx512();
}

/* The AVX2 kernels (qnt_sub1_x86.c, second half; s1_table's table). */
static int s1_avx2_ok(const struct s1view *v)
{
    return s1_simd_max >= 1 && s1_lanes_ok(v) && sb_cpu_has(SB_CPU_AVX2 | SB_CPU_BMI2 | SB_CPU_POPCNT);
}

/* Chunks two by two (two 16-lane registers a thread; pairs over threads, static). */
static void s1_matvec_avx512(const struct s1view *v, const float *restrict x,
                             const struct qnt_tfx *fx, float *restrict y)
{
    uint32_t tab[S1_M];                 /* shared, read-only inside the region */
    if (v->alias)
        s1_table_alias(v, tab);
    else
        s1_table_fast(v, tab);
    const long npair = (long)((v->nchunks + 1) / 2);
#pragma omp parallel for schedule(static) if (v->rows * v->cols > 65536)
    for (long pi = 0; pi < npair; pi++) {
        const uint8_t *sp[2], *se[2], *lv[2];
        size_t nr[2], k = 0;
        float *yo[2];
        for (size_t c = 2 * (size_t)pi; c < v->nchunks && k < 2; c++, k++) {
            size_t r0 = c * v->G;
            sp[k] = v->stream + s1_chunk_start(v, c);
            se[k] = v->stream + s1_chunk_end(v, c);
            nr[k] = v->rows - r0 < v->G ? v->rows - r0 : v->G;
            lv[k] = v->lv + 4 * r0;
            yo[k] = y + r0;
        }
        if (v->alias)
            qnt_sub1_chunks_avx512_alias(tab, sp, se, nr, k, v->L, v->cols, lv, x, fx, yo);
        else
            qnt_sub1_chunks_avx512(tab, sp, se, nr, k, v->L, v->cols, lv, x, fx, yo);
    }
}
#endif

static void s1_matvec(int allow_simd, const void *restrict w, uint64_t nbytes, size_t rows,
                      size_t cols, const float *restrict x, float *restrict y)
{
    struct s1view v;
    if (sb_cpu_ref() || s1_parse(&v, w, nbytes) || v.rows != rows || v.cols != cols ||
        !v.nchunks || !v.L) {            /* the old layout: the reference only */
        qnt_sub1_matvec_ref(w, nbytes, rows, cols, x, y);
        return;
    }
    struct qnt_tfx fx;
    qnt_tfx_init(&fx, x, cols);
    if (!fx.finite) {
        qnt_tfx_nan(y, rows);
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (allow_simd && s1_simd_ok(&v)) {
        s1_matvec_avx512(&v, x, &fx, y);
        return;
    }
#endif
    uint32_t tab[S1_M];                 /* shared, read-only inside the region */
    s1_table(&v, tab);
    const long nch = (long)v.nchunks;
#if defined(__x86_64__) || defined(__i386__)
    if (allow_simd && v.L > 4 && s1_avx2_ok(&v)) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (long c = 0; c < nch; c++) {
            const size_t r0 = (size_t)c * v.G, nr = v.rows - r0 < v.G ? v.rows - r0 : v.G;
            qnt_sub1_chunk_matvec_avx2(tab, v.stream + s1_chunk_start(&v, (size_t)c),
                                       v.stream + s1_chunk_end(&v, (size_t)c), nr, v.L, cols,
                                       v.lv + 4 * r0, x, &fx, y + r0);
        }
        return;
    }
#else
    (void)allow_simd;
#endif
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (long c = 0; c < nch; c++)
        s1_chunk_matvec(&v, tab, (size_t)c, x, &fx, y);
}

void qnt_sub1_matvec(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                     const float *restrict x, float *restrict y)
{
    s1_matvec(1, w, nbytes, rows, cols, x, y);
}

void qnt_sub1_matvec_generic(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                             const float *restrict x, float *restrict y)
{
    s1_matvec(0, w, nbytes, rows, cols, x, y);
}

/* ---- batched matmul (qnt_tmm_impl.h) ---------------------------------------- */

/* A tile is a chunk (the code cannot start inside one). */
struct s1_tmm {
    struct s1view v;
    size_t c0;                  /* first chunk of the output rows */
    int simd;                   /* the emit kernel: 2 AVX-512, 1 AVX2, 0 portable */
    uint32_t tab[S1_M];         /* its table (alias buckets or fast), else s1_table's */
};

static void s1_tmm_decode(const struct qnt_tmm_job *job, size_t k, void *scratch,
                          struct qnt_tmm_tile *T)
{
    const struct s1_tmm *m = job->ctx;
    const struct s1view *v = &m->v;
    const size_t c = m->c0 + k, cols = v->cols, r0 = c * v->G;
    const size_t nr = v->rows - r0 < v->G ? v->rows - r0 : v->G;
    uint32_t *rng = scratch, *ent = rng + 4 * v->G;
    for (size_t i = 0; i < nr; i++) {
        rng[4 * i] = rng[4 * i + 1] = (uint32_t)(i * cols);
        rng[4 * i + 2] = rng[4 * i + 3] = (uint32_t)((i + 1) * cols);
    }
#if defined(__x86_64__) || defined(__i386__)
    if (m->simd == 2)
        qnt_sub1_chunk_emit_avx512(m->tab, (int)v->alias, v->stream + s1_chunk_start(v, c),
                                   v->stream + s1_chunk_end(v, c), nr, v->L, cols, rng, ent);
    else if (m->simd == 1)
        qnt_sub1_chunk_emit_avx2(m->tab, v->stream + s1_chunk_start(v, c),
                                 v->stream + s1_chunk_end(v, c), nr, v->L, cols, rng, ent);
    else
#endif
        s1_chunk_emit(v, m->tab, c, rng, ent);
    T->r0 = r0;
    T->nr = nr;
    T->lv = v->lv + 4 * r0;
    T->lvs = 4;
    T->rng = rng;
    T->ent = ent;
}

/* 0 and the job, or -1 (a blob the batched path does not take: the caller
 * goes token by token). */
static int s1_tmm_job(struct qnt_tmm_job *job, struct s1_tmm *m, const void *w, uint64_t nbytes,
                      size_t rows, size_t cols, size_t row0, size_t nrows, int kernel)
{
    struct s1view *v = &m->v;
    if (s1_parse(v, w, nbytes) || v->rows != rows || v->cols != cols || !v->nchunks ||
        (uint64_t)v->G * cols > UINT32_MAX / 2 || row0 + nrows > rows || !nrows)
        return -1;
    m->c0 = row0 / v->G;
    m->simd = 0;
#if defined(__x86_64__) || defined(__i386__)
    m->simd = kernel == 0 && s1_simd_ok(v) && v->L > 4 ? 2
              : kernel != 1 && s1_avx2_ok(v) && v->L > 4 ? 1
                                                         : 0;
    if (m->simd == 2 && v->alias)
        s1_table_alias(v, m->tab);
    else if (m->simd == 2)
        s1_table_fast(v, m->tab);
    else
#endif
        s1_table(v, m->tab);
    memset(job, 0, sizeof *job);
    job->cols = cols;
    job->row0 = row0;
    job->nrows = nrows;
    job->ntiles = (row0 + nrows - 1) / v->G + 1 - m->c0;
    job->tile_bytes = (4 * v->G + v->G * cols) * sizeof(uint32_t);
    job->tile_weights = v->G * cols;
    job->decode = s1_tmm_decode;
    job->ctx = m;
    job->kernel = kernel;
    return 0;
}

size_t qnt_sub1_matmul_ws_size(const void *w, uint64_t nbytes, size_t rows, size_t cols, size_t n)
{
    struct s1view v;
    struct qnt_tmm_job job;
    if (s1_parse(&v, w, nbytes) || v.rows != rows || v.cols != cols || !v.nchunks ||
        (uint64_t)v.G * cols > UINT32_MAX / 2)
        return 0;
    memset(&job, 0, sizeof job);
    job.cols = cols;
    job.tile_bytes = (4 * v.G + v.G * cols) * sizeof(uint32_t);
    return qnt_tmm_ws_size(&job, n, qnt_tmm_threads());
}

void qnt_sub1_matmul_ref(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                         size_t row0, size_t nrows, const float *restrict X, size_t n,
                         float *restrict Y)
{
    for (size_t t = 0; t < n; t++)
        s1_ref_rows(w, nbytes, rows, cols, row0, nrows, X + t * cols, Y + t * nrows);
}

void qnt_sub1_matmul_kernel(int kernel, const void *restrict w, uint64_t nbytes, size_t rows,
                            size_t cols, size_t row0, size_t nrows, const float *restrict X,
                            size_t n, float *restrict Y, void *ws, size_t ws_bytes)
{
    struct qnt_tmm_job job;
    struct s1_tmm m;
    if (s1_tmm_job(&job, &m, w, nbytes, rows, cols, row0, nrows, kernel) == 0 &&
        qnt_tmm_run(&job, X, n, Y, ws, ws_bytes) == 0)
        return;
    /* token by token: the fused kernel over the whole tensor, else the reference */
    for (size_t t = 0; t < n; t++) {
        if (row0 == 0 && nrows == rows)
            s1_matvec(kernel == 0, w, nbytes, rows, cols, X + t * cols, Y + t * nrows);
        else
            s1_ref_rows(w, nbytes, rows, cols, row0, nrows, X + t * cols, Y + t * nrows);
    }
}

void qnt_sub1_matmul(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                     size_t row0, size_t nrows, const float *restrict X, size_t n,
                     float *restrict Y, void *ws, size_t ws_bytes)
{
    if (sb_cpu_ref()) {
        qnt_sub1_matmul_ref(w, nbytes, rows, cols, row0, nrows, X, n, Y);
        return;
    }
    qnt_sub1_matmul_kernel(0, w, nbytes, rows, cols, row0, nrows, X, n, Y, ws, ws_bytes);
}
