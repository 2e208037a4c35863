/* qnt_qmoe.c: the QMoE sub-1-bit dictionary code (qmoe-gptq.md §2.3-2.6):
 * dictionary construction in the paper code's exact order, greedy trie
 * encoding, decode, fused matvec. Blob layout: docs/container.md §4.
 * Knows the dictionary and the blob; nothing of files. */
#include "qnt_qmoe.h"
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"
#include "qnt_tmm_impl.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "sb_err.h"
#include "sb_math.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ROOT QNT_QMOE_ENTRIES          /* trie node of the empty sequence */
#define HDR 24u                        /* "SQM1", rows, cols, reserved, u64 codewords */

/* ---- dictionary -------------------------------------------------------- */

struct dict {
    uint32_t dec[2 * QNT_QMOE_ENTRIES];          /* §2.4 decode table */
    int32_t trie[(QNT_QMOE_ENTRIES + 1) * 9];    /* child entry of node by pair id, -1 if none */
};

static struct dict *g_dict;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

struct hitem {
    double p;              /* running product of pair probabilities from 1.0 */
    int32_t parent;        /* dictionary index of the prefix, ROOT for the empty one */
    uint8_t len;
    uint8_t seq[QNT_QMOE_MAX_PAIRS];
};

/* Heap order = Python's on (-p, seq): p descending, then seq lexicographic
 * (a proper prefix sorts first). Returns 1 if a pops before b. */
static int hbefore(const struct hitem *a, const struct hitem *b)
{
    if (a->p != b->p)
        return a->p > b->p;
    unsigned n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->seq, b->seq, n);
    if (c)
        return c < 0;
    return a->len < b->len;
}

static void hpush(struct hitem *h, size_t *n, const struct hitem *it)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!hbefore(it, &h[par]))
            break;
        h[i] = h[par];
        i = par;
    }
    h[i] = *it;
}

static struct hitem hpop(struct hitem *h, size_t *n)
{
    struct hitem top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && hbefore(&h[c + 1], &h[c]))
            c++;
        if (!hbefore(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

static void dict_build(void)
{
    struct dict *d = sb_malloc(sizeof *d);
    /* every pop pushes at most 9: the heap never exceeds 1 + 8 * pops */
    const size_t cap = 1 + 9 * (size_t)(QNT_QMOE_ENTRIES + 1);
    struct hitem *h = sb_malloc(cap * sizeof *h);
    if (!d || !h) {
        sb_free(d);
        sb_free(h);
        return;
    }
    /* pair probabilities as the paper code's gen(1., 2): (1.0 * p[i]) * p[j] for
       pair index 3i + j; the products commute exactly, so id = first + 3*second works */
    const double ps[3] = { QNT_QMOE_P0, (1 - QNT_QMOE_P0) / 2, (1 - QNT_QMOE_P0) / 2 };
    double pp[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            pp[3 * i + j] = (1.0 * ps[i]) * ps[j];
    memset(d->dec, 0, sizeof d->dec);
    for (size_t i = 0; i < sizeof d->trie / sizeof d->trie[0]; i++)
        d->trie[i] = -1;
    size_t n = 0;
    struct hitem it = { 1.0, -1, 0, { 0 } };
    hpush(h, &n, &it);
    uint32_t count = 0;
    while (count < QNT_QMOE_ENTRIES) {
        struct hitem top = hpop(h, &n);
        int32_t self = ROOT;
        if (top.len > 0) {
            self = (int32_t)count++;
            d->trie[(size_t)top.parent * 9 + top.seq[top.len - 1]] = self;
            uint32_t w[2] = { 0, 0 };
            for (unsigned j = 0; j < top.len; j++) {
                unsigned r = top.seq[j], k = j % 7;
                w[j / 7] |= (uint32_t)(r % 3) << (4 + 4 * k);
                w[j / 7] |= (uint32_t)(r / 3) << (4 + 4 * k + 2);
            }
            d->dec[2 * (size_t)self] = w[0] | top.len;
            d->dec[2 * (size_t)self + 1] = w[1] | top.len;
        }
        if (top.len == QNT_QMOE_MAX_PAIRS)
            continue;
        for (unsigned i = 0; i < 9; i++) {
            struct hitem c = top;
            c.p = top.p * pp[i];
            c.parent = self;
            c.seq[c.len++] = (uint8_t)i;
            hpush(h, &n, &c);
        }
    }
    sb_free(h);
    g_dict = d;
}

static const struct dict *dict_get(void)
{
    pthread_once(&g_once, dict_build);
    return g_dict;
}

const uint32_t *qnt_qmoe_table(void)
{
    const struct dict *d = dict_get();
    return d ? d->dec : NULL;
}

unsigned qnt_qmoe_entry_pairs(uint32_t e, uint8_t pairs[QNT_QMOE_MAX_PAIRS])
{
    const uint32_t *t = qnt_qmoe_table();
    if (!t || e >= QNT_QMOE_ENTRIES)
        return 0;
    unsigned L = t[2 * e] & 15u;
    for (unsigned j = 0; j < L; j++) {
        uint32_t w = t[2 * e + j / 7] >> (4 + 4 * (j % 7));
        pairs[j] = (uint8_t)((w & 3u) + 3 * ((w >> 2) & 3u));
    }
    return L;
}

/* ---- blob -------------------------------------------------------------- */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

struct qview {
    const uint8_t *off;      /* (rows + 1) u32 codeword offsets */
    const uint8_t *lv;       /* rows x (lo, hi) bf16 */
    const uint8_t *cw;       /* u16 codewords */
};

static void qview_init(struct qview *v, const void *w, size_t rows)
{
    v->off = (const uint8_t *)w + HDR;
    v->lv = v->off + 4 * (rows + 1);
    v->cw = v->lv + 4 * rows;
}

size_t qnt_qmoe_encode_bound(size_t rows, size_t cols)
{
    /* at worst one codeword per pair (an empty row still emits none) */
    size_t pairs = (cols + 1) / 2, cw, t, out;
    if (sb_mul_size(rows, pairs, &cw) || sb_mul_size(cw, 2, &cw) || sb_add_size(rows, 1, &t) ||
        sb_mul_size(t, 8, &t) || sb_add_size(cw, t, &out) || sb_add_size(out, HDR, &out))
        return 0;
    return out;
}

/* Greedy longest match over one row's symbols (qmoe-gptq.md §2.5): follow the
 * trie; when the next pair has no child, emit the current node and restart at
 * the root with that pair. Returns the codeword count; writes them if cw.
 * Pair i is (s[2i], s[2i+1]) of unpacked symbols, or, packed, the nibble i of
 * the tern row (first symbol in its low 2 bits); id = first + 3 * second, and
 * an odd row's last pair has second 0. */
static inline __attribute__((always_inline)) size_t
qmoe_walk(const struct dict *d, const uint8_t *restrict s, size_t cols, const int packed,
          uint8_t *cw)
{
    size_t n = 0;
    if (cols == 0)
        return 0;
    int32_t node = ROOT;
    for (size_t i = 0; 2 * i < cols; i++) {
        unsigned pr;
        if (packed) {
            unsigned nib = (s[i >> 1] >> (4 * (i & 1))) & 15u;
            if (2 * i + 1 == cols)
                nib &= 3u;
            pr = (nib & 3u) + 3u * (nib >> 2);
        } else {
            pr = s[2 * i] + 3u * (2 * i + 1 < cols ? s[2 * i + 1] : 0u);
        }
        int32_t next = d->trie[(size_t)node * 9 + pr];
        if (next < 0) {
            if (cw)
                wr16(cw + 2 * n, (uint16_t)node);
            n++;
            next = d->trie[(size_t)ROOT * 9 + pr];
        }
        node = next;
    }
    if (cw)
        wr16(cw + 2 * n, (uint16_t)node);
    return n + 1;
}

static size_t qmoe_row(const struct dict *d, const uint8_t *restrict s, size_t cols, uint8_t *cw)
{
    return qmoe_walk(d, s, cols, 0, cw);
}

static size_t qmoe_row_packed(const struct dict *d, const uint8_t *restrict s, size_t cols,
                              uint8_t *cw)
{
    return qmoe_walk(d, s, cols, 1, cw);
}

int qnt_qmoe_encode_ref(const void *restrict tern, size_t rows, size_t cols, void *restrict dst,
                        size_t cap, uint64_t *nbytes)
{
    *nbytes = 0;
    if (rows > UINT32_MAX || cols > UINT32_MAX)
        return SB_EINVAL;
    const struct dict *d = dict_get();
    if (!d)
        return SB_ENOMEM;
    uint8_t *sym = sb_malloc(cols ? cols : 1);
    if (!sym)
        return SB_ENOMEM;
    const size_t rb = qnt_tern_row_bytes(cols);
    /* pass 1: sizes (checks symbols: 3 cannot be coded) */
    uint64_t total = 0;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)tern + r * rb + QNT_TERN_ROW_HDR;
        for (size_t j = 0; j < cols; j++) {
            sym[j] = (row[j >> 2] >> (2 * (j & 3))) & 3u;
            if (sym[j] == 3) {
                sb_free(sym);
                return SB_EINVAL;
            }
        }
        total += qmoe_row(d, sym, cols, NULL);
    }
    uint64_t need = HDR + 8 * (uint64_t)rows + 4 + 2 * total;
    if (total > UINT32_MAX || need > cap) {
        sb_free(sym);
        return SB_EINVAL;
    }
    uint8_t *o = dst;
    memcpy(o, "SQM1", 4);
    wr32(o + 4, (uint32_t)rows);
    wr32(o + 8, (uint32_t)cols);
    wr32(o + 12, 0);
    wr64(o + 16, total);
    struct qview v;
    qview_init(&v, o, rows);
    uint8_t *off = (uint8_t *)v.off, *lv = (uint8_t *)v.lv, *cw = (uint8_t *)v.cw;
    uint64_t at = 0;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)tern + r * rb;
        memcpy(lv + 4 * r, row, 4);
        for (size_t j = 0; j < cols; j++)
            sym[j] = (row[QNT_TERN_ROW_HDR + (j >> 2)] >> (2 * (j & 3))) & 3u;
        wr32(off + 4 * r, (uint32_t)at);
        at += qmoe_row(d, sym, cols, cw + 2 * at);
    }
    wr32(off + 4 * rows, (uint32_t)at);
    sb_free(sym);
    *nbytes = need;
    return SB_OK;
}

/* 1 if row s (cols symbols) holds a symbol 3 */
static int qmoe_row_bad(const uint8_t *s, size_t cols)
{
    uint64_t bad = 0;
    for (size_t j0 = 0; j0 < cols; j0 += 32) {
        const uint64_t w = qnt_tmm_word2(s, cols, j0);
        bad |= w & (w >> 1) & 0x5555555555555555ull;
    }
    return bad != 0;
}

/* Rows in parallel (OpenMP, static), each coded once into its worst-case
 * slot of dst (one codeword a pair), then moved together in row order; with a
 * cap below that, the rows are coded twice (count, then write at their
 * offsets). The bytes of qnt_qmoe_encode_ref at any thread count. */
int qnt_qmoe_encode(const void *restrict tern, size_t rows, size_t cols, void *restrict dst,
                    size_t cap, uint64_t *nbytes)
{
    *nbytes = 0;
    if (rows > UINT32_MAX || cols > UINT32_MAX)
        return SB_EINVAL;
    const struct dict *d = dict_get();
    if (!d)
        return SB_ENOMEM;
    const size_t rb = qnt_tern_row_bytes(cols), np = (cols + 1) / 2;
    const uint64_t fixed = HDR + 8 * (uint64_t)rows + 4;
    if (fixed > cap)
        return SB_EINVAL;
    uint8_t *o = dst;
    struct qview v;
    qview_init(&v, o, rows);
    uint8_t *off = (uint8_t *)v.off, *lv = (uint8_t *)v.lv, *cw = (uint8_t *)v.cw;
    const int slots = (uint64_t)rows * np <= (cap - fixed) / 2;
    const long nr = (long)rows;
    int bad = 0;
    /* 1. per row: its codeword count at off[r + 1] (coded into its slot) */
#pragma omp parallel for schedule(static) reduction(| : bad) if (rows * cols > 65536)
    for (long r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)tern + (size_t)r * rb;
        memcpy(lv + 4 * (size_t)r, row, 4);
        size_t n = 0;
        if (qmoe_row_bad(row + QNT_TERN_ROW_HDR, cols))
            bad = 1;   /* a symbol 3 has no trie edge: never walked */
        else if (slots)
            n = qmoe_row_packed(d, row + QNT_TERN_ROW_HDR, cols, cw + 2 * (size_t)r * np);
        else
            n = qmoe_row_packed(d, row + QNT_TERN_ROW_HDR, cols, NULL);   /* count only */
        wr32(off + 4 * ((size_t)r + 1), (uint32_t)n);
    }
    if (bad)
        return SB_EINVAL;
    uint64_t total = 0;
    for (size_t r = 0; r < rows; r++)
        total += rd32(off + 4 * (r + 1));
    const uint64_t need = fixed + 2 * total;
    if (total > UINT32_MAX || need > cap)
        return SB_EINVAL;
    /* 2. offsets, and the codewords together */
    uint32_t at = 0;
    for (size_t r = 0; r < rows; r++) {
        const uint32_t n = rd32(off + 4 * (r + 1));
        if (slots)
            memmove(cw + 2 * (size_t)at, cw + 2 * r * np, 2 * (size_t)n);
        wr32(off + 4 * r, at);
        at += n;
    }
    wr32(off + 4 * rows, at);
    if (!slots) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (long r = 0; r < nr; r++)
            qmoe_row_packed(d, (const uint8_t *)tern + (size_t)r * rb + QNT_TERN_ROW_HDR, cols,
                            cw + 2 * (size_t)rd32(off + 4 * (size_t)r));
    }
    memcpy(o, "SQM1", 4);
    wr32(o + 4, (uint32_t)rows);
    wr32(o + 8, (uint32_t)cols);
    wr32(o + 12, 0);
    wr64(o + 16, total);
    *nbytes = need;
    return SB_OK;
}

int qnt_qmoe_validate(const void *w, uint64_t nbytes, size_t rows, size_t cols)
{
    const uint8_t *b = w;
    if (nbytes < HDR || memcmp(b, "SQM1", 4) != 0 || rd32(b + 4) != rows || rd32(b + 8) != cols ||
        rd32(b + 12) != 0)
        return SB_EFORMAT;
    uint64_t total = rd64(b + 16);
    if ((uint64_t)rows > (nbytes - HDR - 4) / 8)
        return SB_EFORMAT;
    uint64_t fixed = HDR + 8 * (uint64_t)rows + 4;
    if (total > (nbytes - fixed) / 2 || fixed + 2 * total != nbytes)
        return SB_EFORMAT;
    struct qview v;
    qview_init(&v, w, rows);
    /* each row needs between ceil(pairs / 14) and pairs codewords (one if cols == 0: none) */
    uint64_t pairs = (cols + 1) / 2, minc = (pairs + QNT_QMOE_MAX_PAIRS - 1) / QNT_QMOE_MAX_PAIRS;
    if (rd32(v.off) != 0 || rd32(v.off + 4 * rows) != total)
        return SB_EFORMAT;
    for (size_t r = 0; r < rows; r++) {
        uint32_t a = rd32(v.off + 4 * r), e = rd32(v.off + 4 * r + 4);
        if (e < a || e - a < minc || e - a > pairs)
            return SB_EFORMAT;
    }
    return SB_OK;
}

/* Walk row r's codewords, calling emit(ctx, j, sym) for each non-zero weight j
 * (ascending). Stops at the row end even on a damaged blob. */
#define QMOE_WALK_ROW(v, tab, r, cols, EMIT)                                                 \
    do {                                                                                     \
        uint32_t a_ = rd32((v)->off + 4 * (r)), e_ = rd32((v)->off + 4 * (r) + 4);           \
        size_t idx_ = 0;                                                                     \
        for (uint32_t c_ = a_; c_ < e_ && idx_ < (cols); c_++) {                             \
            uint32_t ent_ = rd16((v)->cw + 2 * (size_t)c_);                                  \
            uint32_t w0_ = (tab)[2 * ent_], w1_ = (tab)[2 * ent_ + 1];                       \
            size_t L2_ = 2 * (w0_ & 15u);                                                    \
            for (int h_ = 0; h_ < 2; h_++) {                                                 \
                uint32_t v_ = (h_ ? w1_ : w0_) >> 4;                                         \
                uint32_t m_ = (v_ | (v_ >> 1)) & 0x05555555u;                                \
                while (m_) {                                                                 \
                    unsigned k_ = (unsigned)__builtin_ctz(m_) >> 1;                          \
                    size_t j_ = idx_ + 14u * (unsigned)h_ + k_;                              \
                    unsigned s_ = (v_ >> (2 * k_)) & 3u;                                     \
                    m_ &= m_ - 1;                                                            \
                    if (j_ < (cols)) {                                                       \
                        EMIT(j_, s_);                                                        \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            idx_ += L2_;                                                                     \
        }                                                                                    \
    } while (0)

void qnt_qmoe_dequantize_rows(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                              size_t nrows, float *restrict dst)
{
    (void)nbytes;
    const uint32_t *tab = qnt_qmoe_table();
    size_t rows = rd32((const uint8_t *)w + 4);
    struct qview v;
    qview_init(&v, w, rows);
    memset(dst, 0, nrows * cols * sizeof *dst);
    if (!tab)
        return;
    for (size_t i = 0; i < nrows; i++) {
        size_t r = row0 + i;
        float lv[4] = { 0.0f, qnt_tern_bf16_to_f32(rd16(v.lv + 4 * r)),
                        qnt_tern_bf16_to_f32(rd16(v.lv + 4 * r + 2)), 0.0f };
        float *d = dst + i * cols;
#define EMIT_DEQ(j, s) d[j] = lv[s]
        QMOE_WALK_ROW(&v, tab, r, cols, EMIT_DEQ);
#undef EMIT_DEQ
    }
}

void qnt_qmoe_decode_tern(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                          size_t nrows, void *restrict dst)
{
    (void)nbytes;
    const uint32_t *tab = qnt_qmoe_table();
    size_t rows = rd32((const uint8_t *)w + 4);
    const size_t rb = qnt_tern_row_bytes(cols);
    struct qview v;
    qview_init(&v, w, rows);
    memset(dst, 0, nrows * rb);
    for (size_t i = 0; i < nrows; i++) {
        size_t r = row0 + i;
        uint8_t *o = (uint8_t *)dst + i * rb;
        memcpy(o, v.lv + 4 * r, 4);
        if (!tab)
            continue;
        uint8_t *s = o + QNT_TERN_ROW_HDR;
#define EMIT_TERN(j, sy) s[(j) >> 2] |= (uint8_t)((sy) << (2 * ((j) & 3)))
        QMOE_WALK_ROW(&v, tab, r, cols, EMIT_TERN);
#undef EMIT_TERN
    }
}

void qnt_qmoe_matvec_ref(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                         const float *restrict x, float *restrict y)
{
    qnt_qmoe_matmul_ref(w, nbytes, rows, cols, 0, rows, x, 1, y);
}

/* Fast row: exact int64 sums of X under symbol 1 and symbol 2
 * (qnt_ternary_impl.h; only non-zeros cost work, ~11.5% of weights), one
 * multiply by each level at the end. */
static float qmoe_row_fast(const struct qview *v, const uint32_t *restrict tab, size_t r,
                           size_t cols, const float *restrict x, const struct qnt_tfx *fx)
{
    const uint8_t *cw = v->cw;
    uint32_t a = rd32(v->off + 4 * r), e = rd32(v->off + 4 * r + 4);
    const double scale = fx->scale;
    int64_t s1 = 0, s2 = 0;
    size_t idx = 0;
    for (uint32_t c = a; c < e; c++) {
        uint32_t ent = rd16(cw + 2 * (size_t)c);
        uint32_t w0 = tab[2 * ent] >> 4, w1 = tab[2 * ent + 1] >> 4;
        size_t L2 = 2 * (tab[2 * ent] & 15u);
        if (idx >= cols)              /* damaged blob: stay inside x */
            break;
        uint64_t v64 = (uint64_t)w0 | (uint64_t)w1 << 28;   /* 28 slots, 2 bits each */
        uint64_t m1 = v64 & 0x0055555555555555ull, m2 = (v64 >> 1) & 0x0055555555555555ull;
        if (cols - idx < 28) {        /* row end: slots past cols are padding */
            uint64_t keep = (1ull << (2 * (cols - idx))) - 1;
            m1 &= keep;
            m2 &= keep;
        }
        const float *xp = x + idx;
        while (m1) {
            s1 += qnt_tfx_x(xp[__builtin_ctzll(m1) >> 1], scale);
            m1 &= m1 - 1;
        }
        while (m2) {
            s2 += qnt_tfx_x(xp[__builtin_ctzll(m2) >> 1], scale);
            m2 &= m2 - 1;
        }
        idx += L2;
    }
    return qnt_tfx_out(rd16(v->lv + 4 * r), rd16(v->lv + 4 * r + 2), s1, s2, fx);
}

void qnt_qmoe_matvec(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                     const float *restrict x, float *restrict y)
{
    const uint32_t *tab = qnt_qmoe_table();
    if (sb_cpu_ref() || !tab) {
        qnt_qmoe_matvec_ref(w, nbytes, rows, cols, x, y);
        return;
    }
    struct qview v;
    qview_init(&v, w, rows);
    struct qnt_tfx fx;
    qnt_tfx_init(&fx, x, cols);
    if (!fx.finite) {
        qnt_tfx_nan(y, rows);
        return;
    }
    const long n = (long)rows;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (long r = 0; r < n; r++)
        y[r] = qmoe_row_fast(&v, tab, (size_t)r, cols, x, &fx);
}

/* ---- batched matmul (qnt_tmm_impl.h) ---------------------------------------- */

/* Row r's columns of symbol 1 (cls 0) or 2 (cls 1) into out; the count.
 * Same walk and masks as qmoe_row_fast. */
static size_t qmoe_row_emit(const struct qview *v, const uint32_t *restrict tab, size_t r,
                            size_t cols, unsigned cls, uint32_t *restrict out)
{
    const uint8_t *cw = v->cw;
    uint32_t a = rd32(v->off + 4 * r), e = rd32(v->off + 4 * r + 4);
    size_t idx = 0, n = 0;
    for (uint32_t c = a; c < e && idx < cols; c++) {
        uint32_t ent = rd16(cw + 2 * (size_t)c);
        uint64_t v64 = (uint64_t)(tab[2 * ent] >> 4) | (uint64_t)(tab[2 * ent + 1] >> 4) << 28;
        uint64_t m = (cls ? v64 >> 1 : v64) & 0x0055555555555555ull;
        if (cols - idx < 28)          /* row end: slots past cols are padding */
            m &= ((uint64_t)1 << (2 * (cols - idx))) - 1;
        while (m) {
            out[n++] = (uint32_t)(idx + ((unsigned)__builtin_ctzll(m) >> 1));
            m &= m - 1;
        }
        idx += 2 * (tab[2 * ent] & 15u);
    }
    return n;
}

struct qmoe_tmm {
    struct qview v;
    const uint32_t *tab;
    size_t cols;
};

static size_t qmoe_tmm_emit(const void *enc, size_t r, unsigned cls, uint32_t *out, int kernel)
{
    const struct qmoe_tmm *m = enc;
    (void)kernel;
    return qmoe_row_emit(&m->v, m->tab, r, m->cols, cls, out);
}

size_t qnt_qmoe_matmul_ws_size(size_t cols, size_t nrows, size_t n)
{
    return qnt_tmm_rows_ws_size(cols, nrows, n);
}

void qnt_qmoe_matmul_ref(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                         size_t row0, size_t nrows, const float *restrict X, size_t n,
                         float *restrict Y)
{
    (void)nbytes;
    const uint32_t *tab = qnt_qmoe_table();
    struct qview v;
    qview_init(&v, w, rows);
    for (size_t t = 0; t < n; t++) {
        const float *x = X + t * cols;
        float *y = Y + t * nrows;
        struct qnt_tfx fx;
        qnt_tfx_init(&fx, x, cols);
        if (!fx.finite) {
            qnt_tfx_nan(y, nrows);
            continue;
        }
        for (size_t i = 0; i < nrows; i++) {
            const size_t r = row0 + i;
            int64_t sum[4] = { 0, 0, 0, 0 };      /* exact, by symbol (qnt_ternary_impl.h) */
            if (tab) {
#define EMIT_REF(j, s) sum[s] += qnt_tfx_x(x[j], fx.scale)
                QMOE_WALK_ROW(&v, tab, r, cols, EMIT_REF);
#undef EMIT_REF
            }
            y[i] = qnt_tfx_out(rd16(v.lv + 4 * r), rd16(v.lv + 4 * r + 2), sum[1], sum[2], &fx);
        }
    }
}

void qnt_qmoe_matmul_kernel(int kernel, const void *restrict w, uint64_t nbytes, size_t rows,
                            size_t cols, size_t row0, size_t nrows, const float *restrict X,
                            size_t n, float *restrict Y, void *ws, size_t ws_bytes)
{
    struct qnt_tmm_job job;
    struct qmoe_tmm m;
    qview_init(&m.v, w, rows);
    m.tab = qnt_qmoe_table();
    m.cols = cols;
    struct qnt_tmm_rows R = { qmoe_tmm_emit, &m, m.v.lv, 4, 0 };
    qnt_tmm_rows_job(&job, &R, cols, row0, nrows, kernel);
    if (m.tab && qnt_tmm_run(&job, X, n, Y, ws, ws_bytes) == 0)
        return;
    if (!m.tab) {
        qnt_qmoe_matmul_ref(w, nbytes, rows, cols, row0, nrows, X, n, Y);
        return;
    }
    for (size_t t = 0; t < n; t++) {       /* token by token, the same bits */
        const float *x = X + t * cols;
        struct qnt_tfx fx;
        qnt_tfx_init(&fx, x, cols);
        if (!fx.finite) {
            qnt_tfx_nan(Y + t * nrows, nrows);
            continue;
        }
        for (size_t i = 0; i < nrows; i++)
            Y[t * nrows + i] = qmoe_row_fast(&m.v, m.tab, row0 + i, cols, x, &fx);
    }
}

void qnt_qmoe_matmul(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                     size_t row0, size_t nrows, const float *restrict X, size_t n,
                     float *restrict Y, void *ws, size_t ws_bytes)
{
    if (sb_cpu_ref()) {
        qnt_qmoe_matmul_ref(w, nbytes, rows, cols, row0, nrows, X, n, Y);
        return;
    }
    qnt_qmoe_matmul_kernel(0, w, nbytes, rows, cols, row0, nrows, X, n, Y, ws, ws_bytes);
}
