/* qnt_matvec_tile_impl.h: the blocked dense kernel Y = X W^T, written once
 * and included once per instruction set (qnt_matvec.c: scalar lanes;
 * qnt_matvec_x86.c: AVX2, AVX-512). No include guard, on purpose.
 *
 * The includer defines: MV_NAME(x) (appends the ISA suffix), V (lane vector),
 * VL (lanes), V_ZERO(), V_LOADF(p) (VL floats from bytes p), V_STOREF(float *,
 * v), V_FMA(a, b, c) (a*b + c, one rounding), V_ADD, V_MUL, V_SET1(float),
 * V_BF16(p) / V_F16(p) / V_I8(p) (VL elements at bytes p to float, exact),
 * V_HSUM(v) (fixed tree), MV_F16S(p) (one fp16 at bytes p to float), and
 * MV_TARGET (function attributes, may be empty). Optional: V_HSUM_VEC(v)
 * (lane i = V_HSUM(v[i]) for VL vectors) and, with it, MV_STORE_QUADS
 * (a tile then sums and stores its own outputs).
 *
 * Work split (summation order: qnt_matvec_impl.h): OpenMP over blocks of
 * MV_RB rows, schedule(static); inside, MV_TBLK tokens at a time, chunk by
 * chunk of QNT_MM_CH columns, register tiles of 4 rows x up to 4 tokens, so
 * each W vector is loaded once per 4 tokens and each x vector once per 4 rows.
 * Per-output running sums live in tot[] on the stack (one writer: the thread
 * owning the row block). */

#define MV_RB QNT_MM_RB   /* rows per parallel block */
#ifndef MV_TILE_TB
#define MV_TILE_TB 4      /* tokens a tile in mv_tile (an includer with fewer registers: 3) */
#endif
#ifndef MV_ROW1_PF
#define MV_ROW1_PF 0      /* one token, 16-bit weights: software prefetch this many bytes
                             ahead (0: none; it cost 10-30 % on the AVX-512 machine) */
#endif
#define MV_TBLK 32  /* tokens per block: tot[] is MV_RB x MV_TBLK lane vectors */
#ifndef MV_F16_TILE
#define MV_F16_TILE 0     /* 1: the tiles read f16 rows in place (converted as loaded)
                             instead of from rows decoded to f32 */
#endif

/* W elements k .. k+VL-1 of one row (bytes wp, int8 scales sp), exact. */
static inline __attribute__((always_inline)) MV_TARGET V
MV_NAME(mv_loadw)(int enc, const uint8_t *wp, const uint8_t *sp, size_t k, size_t g)
{
    switch (enc) {
    case QNT_MM_F32:
        return V_LOADF(wp + 4 * k);
    case QNT_MM_BF16:
        return V_BF16(wp + 2 * k);
    case QNT_MM_F16:
        return V_F16(wp + 2 * k);
    case QNT_MM_I8_F32: {
        float s;
        memcpy(&s, sp + (k / g) * 4, 4);
        return V_MUL(V_I8(wp + k), V_SET1(s));
    }
    default: /* QNT_MM_I8_F16 */
        return V_MUL(V_I8(wp + k), V_SET1(MV_F16S(sp + (k / g) * 2)));
    }
}

/* The byte of W element k within its row. */
static inline __attribute__((always_inline)) MV_TARGET size_t MV_NAME(mv_wbyte)(int enc, size_t k)
{
    return enc == QNT_MM_F32 ? 4 * k
           : enc == QNT_MM_BF16 || enc == QNT_MM_F16 ? 2 * k
           : k;
}

/* 4 rows x TB tokens over columns k0 .. k1-1 (a chunk, k1 - k0 a multiple of
 * VL); W element index is k - k0 + wk0 (wk0 = k0 in place, 0 in scratch).
 * acc[i][j] = this chunk's lane sums for row i, token j (chains from +0). */
static inline __attribute__((always_inline)) MV_TARGET void
MV_NAME(mv_chunk)(int enc, int TB, const uint8_t *const wp[4], const uint8_t *const sp[4],
                  size_t g, size_t wk0, const float *const xp[4], size_t k0, size_t k1,
                  size_t pf, V acc[4][4])
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            acc[i][j] = V_ZERO();
    for (size_t k = k0; k < k1; k += VL) {
        V xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            xv[j] = V_LOADF((const uint8_t *)(xp[j] + k));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const V wv = MV_NAME(mv_loadw)(enc, wp[i], sp[i], k - k0 + wk0, g);
            /* one token streams W from memory: ask for the same columns 8
             * rows on (pf bytes; 4 and 8 measured, 8 better) while this group runs */
            if (TB == 1 && pf)
                __builtin_prefetch(wp[i] + MV_NAME(mv_wbyte)(enc, k - k0 + wk0) + pf);
#pragma GCC unroll 4
            for (int j = 0; j < TB; j++)
                acc[i][j] = V_FMA(wv, xv[j], acc[i][j]);
        }
    }
}

/* One chunk (mv_chunk), its sums added to tp[i][j]; the running sums start
 * from +0 (first: the chunk adds to a zero in a register, so nothing clears
 * tot[] beforehand). */
static inline __attribute__((always_inline)) MV_TARGET void
MV_NAME(mv_micro)(int enc, int TB, const uint8_t *const wp[4], const uint8_t *const sp[4],
                  size_t g, size_t wk0, const float *const xp[4], size_t k0, size_t k1,
                  V *const tp[4], size_t pf, int first)
{
    V acc[4][4];
    MV_NAME(mv_chunk)(enc, TB, wp, sp, g, wk0, xp, k0, k1, pf, acc);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            tp[i][j] = V_ADD(first ? V_ZERO() : tp[i][j], acc[i][j]);
}

#ifdef MV_STORE_QUADS
/* Lanes 4 j .. 4 j + nr - 1 of s to y + j * ys, tokens j < ntok: each
 * token's 4 outputs one 16-byte store (the compiler takes them from the
 * register: no trip through q[] where nr == 4) */
static inline __attribute__((always_inline)) MV_TARGET void
MV_NAME(mv_store_quads)(float *y, size_t ys, V s, int ntok, int nr)
{
    float q[VL];
    V_STOREF(q, s);
#pragma GCC unroll 4
    for (int j = 0; j < VL / 4; j++)
        if (j < ntok) {
            if (nr == 4)
                memcpy(y + (size_t)j * ys, q + 4 * j, 4 * sizeof(float));
            else   /* the last row group of a tensor with rows % 4 != 0 */
                for (int i = 0; i < nr; i++)
                    y[(size_t)j * ys + (size_t)i] = q[4 * j + i];
        }
}
#endif

/* 4 rows x TB tokens over every chunk of columns 0 .. colsv-1, W in f32
 * (the tensor's own or decoded rows): the same operations as mv_micro chunk
 * after chunk, with the running sums kept by the tile instead of in the
 * block's tot[] between chunks. to[i][j] = the running sum. */
static inline __attribute__((always_inline)) MV_TARGET void
MV_NAME(mv_tile)(int enc, int TB, const uint8_t *const wp[4], const float *const xp[4],
                 size_t colsv, V *const to[4], float *y, size_t ys, int nr)
{
    const uint8_t *const sp[4] = { NULL, NULL, NULL, NULL };
    V run[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            run[i][j] = V_ZERO();
    for (size_t k0 = 0; k0 < colsv; k0 += QNT_MM_CH) {
        const size_t k1 = colsv - k0 < QNT_MM_CH ? colsv : k0 + QNT_MM_CH;
        V acc[4][4];
        MV_NAME(mv_chunk)(enc, TB, wp, sp, 0, k0, xp, k0, k1, 0, acc);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int j = 0; j < TB; j++)
                run[i][j] = V_ADD(run[i][j], acc[i][j]);
    }
#ifdef MV_STORE_QUADS
    if (y) {
        /* the tile's sums VL at a time (lane l: row l % 4, token h / 4 + l / 4;
         * V_HSUM_VEC: the same tree per output as the block's sum), each
         * token's 4 rows stored together: no pass over tot[] afterwards. AVX2
         * machine, 1 thread, 512 tokens, best of 4 alternating runs (with the
         * sums' small loops unrolled: each left loop's exit was a mispredicted
         * branch a call): f16 2048 x 768 78 -> 82 GFLOP/s, 768 x 2048 82 -> 84,
         * f32 2048 x 768 76 -> 79 */
#pragma GCC unroll 2
        for (int h = 0; h < 4 * TB; h += VL) {
            V v[VL];
#pragma GCC unroll 16
            for (int l = 0; l < VL; l++)
                v[l] = h + l < 4 * TB ? run[l % 4][(h + l) / 4] : V_ZERO();
            const int nt = TB - h / 4 < VL / 4 ? TB - h / 4 : VL / 4;
            MV_NAME(mv_store_quads)(y + (size_t)(h / 4) * ys, ys, V_HSUM_VEC(v), nt, nr);
        }
        return;
    }
#else
    (void)y, (void)ys, (void)nr;
#endif
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            to[i][j] = run[i][j];
}

/* One row against one token over columns 0 .. colsv-1, chunk by chunk: the
 * same operations as mv_micro's row i, token 0, chunk after chunk (so the
 * same bits), with W read in address order. One token streams W from
 * memory, and one sequential stream a row is what the hardware prefetcher
 * follows best (one f32 matvec, 226 MB, one thread: 4 rows interleaved
 * with a software prefetch 14-15 GB/s, a row at a time 25 GB/s). */
static inline __attribute__((always_inline)) MV_TARGET V
MV_NAME(mv_row1)(int enc, const uint8_t *wp, const uint8_t *sp, size_t g, const float *x,
                 size_t colsv)
{
    V tot = V_ZERO();
    for (size_t k0 = 0; k0 < colsv; k0 += QNT_MM_CH) {
        const size_t k1 = colsv - k0 < QNT_MM_CH ? colsv : k0 + QNT_MM_CH;
        V acc = V_ZERO();
        size_t k = k0;
        /* two steps of the chain a pass (the same operations): fewer loop
         * instructions a byte, so more of W in flight. One token of the 57M
         * llama from huge pages: f32 107-111 -> 118-119 tokens/s, f16
         * 174-179 -> 183-195 (4 steps a pass: slower than 1) */
        for (; k + 2 * VL <= k1; k += 2 * VL) {
            if (MV_ROW1_PF && (enc == QNT_MM_BF16 || enc == QNT_MM_F16))
                __builtin_prefetch(wp + 2 * k + MV_ROW1_PF);
            acc = V_FMA(MV_NAME(mv_loadw)(enc, wp, sp, k, g),
                        V_LOADF((const uint8_t *)(x + k)), acc);
            acc = V_FMA(MV_NAME(mv_loadw)(enc, wp, sp, k + VL, g),
                        V_LOADF((const uint8_t *)(x + k + VL)), acc);
        }
        if (k < k1)
            acc = V_FMA(MV_NAME(mv_loadw)(enc, wp, sp, k, g),
                        V_LOADF((const uint8_t *)(x + k)), acc);
        tot = V_ADD(tot, acc);
    }
    return tot;
}

#define MV_ROW1(E)                                                                           \
    case E:                                                                                  \
        for (size_t i = 0; i < rb; i++)                                                      \
            tot[i][0] = MV_NAME(mv_row1)(E, wrow[i], srow[i], a->group, a->X, colsv);        \
        break;

/* The cols % VL tail, after the lanes: one function for every caller, so
 * the association cannot differ between call sites. */
static __attribute__((noinline)) float MV_NAME(mv_tail)(const float *w, const float *x, size_t n,
                                                        float r)
{
    for (size_t i = 0; i < n; i++)
        r += w[i] * x[i];
    return r;
}

/* The 4 token rows of a tile starting at token t (tb of them real; a short
 * tile repeats its last token, whose extra sums nobody reads). */
static inline __attribute__((always_inline)) void
MV_NAME(mv_xrows)(const struct qnt_mm_args *a, size_t t, size_t tb, const float *xp[4])
{
    for (size_t q = 0; q < 4; q++)
        xp[q] = a->X + (t + (q < tb ? q : tb - 1)) * a->cols;
}

#define MV_CASE(E, T)                                                                        \
    case (E) * 4 + (T) - 1:                                                                  \
        MV_NAME(mv_micro)(E, T, wp, sp, a->group, wk0, xp, k0, k1, tp, pf, k0 == 0);           \
        break;
#define MV_CASES(E) MV_CASE(E, 1) MV_CASE(E, 2) MV_CASE(E, 3) MV_CASE(E, 4)

MV_TARGET void MV_NAME(qnt_mm)(const struct qnt_mm_args *a)
{
    const size_t cols = a->cols, colsv = cols - cols % VL, tail = cols % VL;
    const size_t n = a->n, nrows = a->nrows;
    /* decode a row tile once when it serves more than one token tile (f16 is
       read in place where the includer says MV_F16_TILE) */
    const int f16_tiles = MV_F16_TILE && a->enc == QNT_MM_F16;
    const int scratch = a->enc == QNT_MM_DECODE || (a->enc != QNT_MM_F32 && !f16_tiles && n > 4);
    const long nblk = (long)((nrows + MV_RB - 1) / MV_RB);
    /* More than one token tile (n > 4, colsv > 0): each row block goes tile by
     * tile over all its columns (mv_tile) with W read in place (f32; f16 under
     * MV_F16_TILE, converted as loaded) or decoded to f32 once a block into
     * this thread's rows (MV_RB x colsv floats;
     * QNT_MM_ROWS_BYTES). Where that allocation fails, chunk by chunk as for
     * fewer tokens (the same bits). */
    const int tiles = n > 4 && colsv > 0;
#pragma omp parallel
    {
    float *wd = tiles && scratch ? (float *)sb_malloc_aligned(QNT_MM_ROWS_BYTES(colsv)) : NULL;
#pragma omp for schedule(static)
    for (long b = 0; b < nblk; b++) {
        /* one lane vector over, so rows' sums are not 2 KiB apart (AVX-512):
         * with 2 KiB, one token's 16 stores of tot[i][0] fell on two offsets
         * modulo 4 KiB and the W stream ran 25 % slower (the loads behind
         * those stores at matching offsets wait on them: 4K aliasing, as far
         * as we can tell). One f16 matvec pass over the 57M llama's 113 MB,
         * one thread, best of 40: 29-31 -> 39 GB/s */
        V tot[MV_RB][MV_TBLK + 1];
        V dummy[4] = { V_ZERO(), V_ZERO(), V_ZERO(), V_ZERO() };
        float buf[4][QNT_MM_CH];
        float wt[MV_RB][VL];
        const uint8_t *wrow[MV_RB], *srow[MV_RB];
        const size_t r0 = (size_t)b * MV_RB;
        const size_t rb = nrows - r0 < MV_RB ? nrows - r0 : MV_RB;
        for (size_t i = 0; i < rb; i++) {
            const size_t r = a->row0 + r0 + i;
            wrow[i] = a->w + r * a->row_bytes;
            srow[i] = a->scales ? a->scales + r * a->scale_row_bytes : NULL;
            if (tail)
                a->decode(a, r, colsv, tail, wt[i]);
        }
        const uint8_t *wf[MV_RB];   /* the rows for mv_tile (f32, or f16 in place) */
        const int tiled = tiles && (!scratch || wd);
        if (tiled) {
            for (size_t i = 0; i < rb; i++) {
                if (!scratch) {
                    wf[i] = wrow[i];
                    continue;
                }
                float *d = wd + i * colsv;
                for (size_t k0 = 0; k0 < colsv; k0 += QNT_MM_CH) {
                    const size_t len = colsv - k0 < QNT_MM_CH ? colsv - k0 : QNT_MM_CH;
                    if (a->enc == QNT_MM_DECODE)
                        a->decode(a, a->row0 + r0 + i, k0, len, d + k0);
                    else
                        for (size_t k = k0; k < k0 + len; k += VL)
                            V_STOREF(d + k, MV_NAME(mv_loadw)(a->enc, wrow[i], srow[i], k,
                                                              a->group));
                }
                wf[i] = (const uint8_t *)d;
            }
        }
        for (size_t t0 = 0; t0 < n; t0 += MV_TBLK) {
            const size_t nt = n - t0 < MV_TBLK ? n - t0 : MV_TBLK;
            if (tiled) {
                /* the block's output lines (one per token, 16 rows = 64 bytes),
                 * asked for while the tiles run: their stores missed every cache
                 * (the weights streamed through since Y was last touched) and
                 * were 9 % of the matmul's samples. f16 ppl --ctx 512 of the 57 M
                 * llama, 1 thread, AVX2 machine, 15 alternating runs (with the
                 * 8-row sums below): median 522 -> 541 tokens/s */
                for (size_t j = 0; j < nt; j++)
                    __builtin_prefetch(a->Y + (t0 + j) * nrows + r0, 1, 3);
                for (size_t i0 = 0; i0 < rb; i0 += 4) {
                    const uint8_t *wp[4];
                    V *to[4];
                    for (size_t q = 0; q < 4; q++) {
                        /* short group: repeat row i0, its sums go to dummy */
                        wp[q] = wf[i0 + q < rb ? i0 + q : i0];
                        to[q] = i0 + q < rb ? &tot[i0 + q][0] : dummy;
                    }
                    const int nr = rb - i0 < 4 ? (int)(rb - i0) : 4;
                    for (size_t j0 = 0; j0 < nt; j0 += MV_TILE_TB) {
                        const size_t tb = nt - j0 < MV_TILE_TB ? nt - j0 : MV_TILE_TB;
                        const float *xp[4];
                        V *tj[4];
                        MV_NAME(mv_xrows)(a, t0 + j0, tb, xp);
                        for (size_t q = 0; q < 4; q++)
                            tj[q] = to[q] == dummy ? dummy : to[q] + j0;
                        /* without a tail the tile stores its outputs itself */
                        float *y = tail ? NULL : a->Y + (t0 + j0) * nrows + r0 + i0;
#define MV_TILES(E)                                                                          \
    switch (tb) {                                                                            \
    case 1: MV_NAME(mv_tile)(E, 1, wp, xp, colsv, tj, y, nrows, nr); break;                  \
    case 2: MV_NAME(mv_tile)(E, 2, wp, xp, colsv, tj, y, nrows, nr); break;                  \
    case 3: MV_NAME(mv_tile)(E, 3, wp, xp, colsv, tj, y, nrows, nr); break;                  \
    default: MV_NAME(mv_tile)(E, 4, wp, xp, colsv, tj, y, nrows, nr); break;                 \
    }
                        if (f16_tiles) {
                            MV_TILES(QNT_MM_F16)
                        } else {
                            MV_TILES(QNT_MM_F32)
                        }
#undef MV_TILES
                    }
                }
#ifdef MV_STORE_QUADS
                if (!tail)
                    continue;
#endif
                goto sum;
            }
            if (colsv == 0)   /* else the first chunk or mv_row1 sets every tot[i][j] */
                for (size_t i = 0; i < rb; i++)
                    for (size_t j = 0; j < nt; j++)
                        tot[i][j] = V_ZERO();
            if (n == 1 && !scratch) {
                switch (a->enc) {
                    MV_ROW1(QNT_MM_F32)
                    MV_ROW1(QNT_MM_BF16)
                    MV_ROW1(QNT_MM_F16)
                    MV_ROW1(QNT_MM_I8_F32)
                    MV_ROW1(QNT_MM_I8_F16)
                default:
                    break;
                }
                goto sum;
            }
            /* n <= 4: one token tile, so walk each 4-row group along its rows
             * (4 streams for the prefetcher); else chunk-major, so the X chunk
             * of the token block stays in cache across the row groups */
            const int rowmajor = nt <= 4;
            const size_t nk = (colsv + QNT_MM_CH - 1) / QNT_MM_CH, ng = (rb + 3) / 4;
            for (size_t o = 0; o < (rowmajor ? ng : nk); o++)
                for (size_t in = 0; in < (rowmajor ? nk : ng); in++) {
                    const size_t i0 = 4 * (rowmajor ? o : in);
                    const size_t k0 = QNT_MM_CH * (rowmajor ? in : o);
                    const size_t k1 = colsv - k0 < QNT_MM_CH ? colsv : k0 + QNT_MM_CH;
                    const uint8_t *wp[4], *sp[4];
                    for (size_t q = 0; q < 4; q++) {
                        /* short group: repeat row i0, its sums go to dummy */
                        const size_t ii = i0 + q < rb ? i0 + q : i0;
                        sp[q] = srow[ii];
                        wp[q] = wrow[ii];
                        if (!scratch)
                            continue;
                        if (a->enc == QNT_MM_DECODE) {
                            a->decode(a, a->row0 + r0 + ii, k0, k1 - k0, buf[q]);
                        } else {
                            for (size_t k = k0; k < k1; k += VL)
                                V_STOREF(buf[q] + (k - k0),
                                         MV_NAME(mv_loadw)(a->enc, wrow[ii], srow[ii], k,
                                                           a->group));
                        }
                        wp[q] = (const uint8_t *)buf[q];
                    }
                    const int enc = scratch ? QNT_MM_F32 : (int)a->enc;
                    const size_t wk0 = scratch ? 0 : k0;
                    const size_t pf = scratch ? 0 : 8 * a->row_bytes;
                    for (size_t j0 = 0; j0 < nt; j0 += MV_TILE_TB) {
                        const size_t tb = nt - j0 < MV_TILE_TB ? nt - j0 : MV_TILE_TB;
                        const float *xp[4];
                        V *tp[4];
                        MV_NAME(mv_xrows)(a, t0 + j0, tb, xp);
                        for (size_t q = 0; q < 4; q++)
                            tp[q] = i0 + q < rb ? &tot[i0 + q][j0] : dummy;
                        switch (enc * 4 + (int)tb - 1) {
                            MV_CASES(QNT_MM_F32)
                            MV_CASES(QNT_MM_BF16)
                            MV_CASES(QNT_MM_F16)
                            MV_CASES(QNT_MM_I8_F32)
                            MV_CASES(QNT_MM_I8_F16)
                        default:
                            break;
                        }
                    }
                }
        sum:
#ifdef V_HSUM_VEC
            /* a full block: each token's rows summed VL at a time (V_HSUM_VEC:
             * the same tree per output as V_HSUM), stored together when there
             * is no tail (AVX2: one token's 16 outputs were 16 scalar stores) */
            if (rb == MV_RB && nt > 1) {
                for (size_t j = 0; j < nt; j++)
                    for (size_t h = 0; h < MV_RB; h += VL) {
                        V v[VL];
                        for (size_t i = 0; i < VL; i++)
                            v[i] = tot[h + i][j];
                        float *y = a->Y + (t0 + j) * nrows + r0 + h;
                        if (!tail) {
                            V_STOREF(y, V_HSUM_VEC(v));
                            continue;
                        }
                        float s[VL];
                        V_STOREF(s, V_HSUM_VEC(v));
                        for (size_t i = 0; i < VL; i++)
                            y[i] = MV_NAME(mv_tail)(wt[h + i], a->X + (t0 + j) * cols + colsv,
                                                    tail, s[i]);
                    }
                continue;
            }
#endif
            /* token by token: a token's rows are consecutive floats of Y
             * (row by row, each store went nrows floats on: with nrows a
             * multiple of 1024 they all met in one L1 set; a 2048 x 768 f16
             * matmul of 512 tokens, one thread: 62 -> 73-78 GFLOP/s) */
            for (size_t j = 0; j < nt; j++)
                for (size_t i = 0; i < rb; i++) {
                    float r = V_HSUM(tot[i][j]);
                    if (tail)
                        r = MV_NAME(mv_tail)(wt[i], a->X + (t0 + j) * cols + colsv, tail, r);
                    a->Y[(t0 + j) * nrows + r0 + i] = r;
                }
        }
    }
    sb_free_aligned(wd);
    }
}

#undef MV_CASE
#undef MV_CASES
#undef MV_ROW1
#undef MV_RB
#undef MV_TBLK
#undef MV_F16_TILE
