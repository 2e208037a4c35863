/* qnt_tmm_impl.h: the batched exact ternary matmul Y = X W^T that tern, sub1
 * and sub1-qmoe share (private to quant/; the encodings' own headers have the
 * public entry points, qnt_tern_matmul & co.).
 *
 * Why: a fused matvec decodes every weight once per token. For n tokens the
 * weights are decoded once per tile of rows instead, into lists of the
 * columns holding symbol 1 (lo) and symbol 2 (hi) for each row, and every
 * token block then walks those lists:
 *
 *   1. Per token, the fixed-point scale of qnt_ternary_impl.h (qnt_tfx_init)
 *      and X = round(x * 2^s) for all columns, stored token-block major:
 *      block b (tokens 8b .., w = 8 of them, fewer in the last) at xt + 8b
 *      cols, X of its token k at column j at + j w (int64; non-finite tokens
 *      hold 0). A block's column is one cache line; a block is a contiguous
 *      slab (tokens-major rows of a whole group measured slower: TLB, L2).
 *   2. Per tile (OpenMP over tiles, static): the encoding decodes the tile
 *      into struct qnt_tmm_tile; then for each token block and each row, the
 *      sums S_lo, S_hi of 8 tokens are one 8-lane int64 add per list entry
 *      (AVX-512: one zmm load + add; AVX2: two ymm), exact, so their order
 *      is free.
 *   3. y = qnt_tfx_out(lo, hi, S_lo, S_hi) per token, 8 tokens at once in
 *      double lanes with the very operations of qnt_tfx_out (bit-identical,
 *      no contraction), NaN for a token with a non-finite x.
 *
 * So row t of Y is bit for bit what the encoding's fused matvec gives for
 * token t, whatever n, tile, thread count or ISA. Work a token is ~one add
 * per non-zero weight / 8, against a decode per weight in the fused kernels.
 *
 * Memory: the caller's workspace (qnt_tmm_ws_size) holds xt for a group of
 * tokens (at most QNT_TMM_XT_BYTES, at least 64 tokens; longer batches go
 * group by group, decoding each tile once per group) and one tile scratch
 * per thread. Nothing is allocated here. */
#ifndef QNT_TMM_IMPL_H
#define QNT_TMM_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sb_dtype.h"

#define QNT_TMM_TB 8                      /* tokens a block: 8 int64 lanes */
#define QNT_TMM_XT_BYTES ((size_t)16 << 20)
#define QNT_TMM_MIN_GROUP 64              /* tokens a group, at least */

/* One decoded tile: rows r0 .. r0+nr-1 of the tensor. Row i's symbol-1
 * columns are ent[rng[4i] .. rng[4i+1]), its symbol-2 columns ent[rng[4i+2]
 * .. rng[4i+3]), in any order; each column < cols. */
struct qnt_tmm_tile {
    size_t r0, nr;
    const uint8_t *lv;        /* (lo, hi) bf16 LE of row r0 */
    size_t lvs;               /* bytes from one row's levels to the next's */
    const uint32_t *rng;      /* [4 nr] */
    const uint32_t *ent;
};

struct qnt_tmm_job;
/* Decode tile k into *T using scratch (job->tile_bytes, 64-byte aligned). */
typedef void (*qnt_tmm_decode_fn)(const struct qnt_tmm_job *job, size_t k, void *scratch,
                                  struct qnt_tmm_tile *T);

struct qnt_tmm_job {
    size_t cols;
    size_t row0, nrows;       /* output rows: Y is [n, nrows] */
    size_t ntiles;            /* tiles covering (at least) the output rows, in row order */
    size_t tile_bytes;        /* scratch one tile decode needs */
    size_t tile_weights;      /* weights of the largest tile (to size the work) */
    qnt_tmm_decode_fn decode;
    const void *ctx;          /* the encoding's view of its blob */
    int kernel;               /* 0 best available, 1 portable, 2 AVX2 at most (tests) */
};

/* Encodings whose rows decode one at a time (tern, sub1-qmoe): tiles of
 * about 32 Ki weights, each row's symbol-1 columns then its symbol-2
 * columns, packed. emit(enc, r, cls, out, kernel) appends row r's columns of
 * class cls to out (QNT_TMM_SLACK entries may be written past them) and
 * returns their count. */
struct qnt_tmm_rows {
    size_t (*emit)(const void *enc, size_t r, unsigned cls, uint32_t *out, int kernel);
    const void *enc;
    const uint8_t *lv;        /* levels of row 0 */
    size_t lvs;
    size_t tr;                /* rows a tile (set by qnt_tmm_rows_job) */
};

/*! qnt_tmm_rows_job() : the job for rows row0 .. row0+nrows-1 of such an
 *  encoding (R must outlive the job). */
void qnt_tmm_rows_job(struct qnt_tmm_job *job, struct qnt_tmm_rows *R, size_t cols, size_t row0,
                      size_t nrows, int kernel);

/*! qnt_tmm_rows_ws_size() : qnt_tmm_ws_size of such a job, for the current
 *  thread count; 0 on overflow. */
size_t qnt_tmm_rows_ws_size(size_t cols, size_t nrows, size_t n);

/*! qnt_tmm_ws_size() : workspace bytes qnt_tmm_run needs for n tokens with
 *  up to nthreads threads; 0 if that overflows. */
size_t qnt_tmm_ws_size(const struct qnt_tmm_job *job, size_t n, int nthreads);

/*! qnt_tmm_run() : Y[n, nrows] for the job. Uses as many threads (up to
 *  omp_get_max_threads) as ws holds tile scratch for; returns -1 without
 *  writing when ws cannot hold even one (the caller falls back). */
int qnt_tmm_run(const struct qnt_tmm_job *job, const float *X, size_t n, float *Y, void *ws,
                size_t ws_bytes);

/*! qnt_tmm_set_group() : tests only: tokens a group at most (rounded up to
 *  the block; 0: automatic). Not thread-safe. */
void qnt_tmm_set_group(size_t tokens);

/*! qnt_tmm_i64_to_f64_avx2() : tests only: y[i] = (double)x[i] through the
 *  AVX2 kernel's conversion; -1 (nothing written) without AVX2. */
int qnt_tmm_i64_to_f64_avx2(const int64_t *x, double *y, size_t n);

/*! qnt_tmm_threads() : the threads qnt_tmm_run would use (for ws sizing). */
int qnt_tmm_threads(void);

/* The 32 2-bit symbols of a tern row from column j0 as one little-endian
 * word (weight j0 + q at bits 2q), never reading past the row's
 * ceil(cols / 4) bytes, padding past cols cleared. */
static inline uint64_t qnt_tmm_word2(const uint8_t *s, size_t cols, size_t j0)
{
    const size_t b = j0 / 4, left = (cols + 3) / 4 - b;
    uint64_t w = 0;
    if (left >= 8) {
        memcpy(&w, s + b, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
    } else {
        for (size_t i = 0; i < left; i++)
            w |= (uint64_t)s[b + i] << (8 * i);
    }
    if (cols - j0 < 32)
        w &= ((uint64_t)1 << (2 * (cols - j0))) - 1;
    return w;
}

/* Row decoder the encodings share: the columns of symbol 1 (cls 0) or
 * symbol 2 (cls 1) among 2-bit symbols packed 4 to a byte, weight j at bits
 * 2(j % 4) of byte j/4 (tern's row layout), appended to out; returns the
 * count. Symbol 3 is neither. Reads ceil(cols / 4) bytes of s; may write
 * QNT_TMM_SLACK entries past the count. kernel: 0 best, 1 portable. */
#define QNT_TMM_SLACK 16
size_t qnt_tmm_scan2(const uint8_t *s, size_t cols, unsigned cls, uint32_t *out, int kernel);

#endif
