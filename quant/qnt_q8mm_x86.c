/* qnt_q8mm_x86.c: the x86 kernels of qnt_q8mm_impl.h, each reproducing the
 * scalar reference's sum of record bit for bit (one float chain per output,
 * a block a step, from the block's exact integer sum):
 * - AVX512-VNNI, batched (n >= Q8_PACK_MIN tokens): a tile of 16 rows is
 *   repacked once per call into scratch as unsigned codes (q4_0: the nibble,
 *   code + 8; q8_0: code + 128), laid out [block][group of 4 columns][row][4
 *   bytes], so one vpdpbusd multiplies a token's 4 activation codes
 *   (broadcast) into 16 rows at once and the 16 lanes are 16 outputs; the
 *   accumulator starts from ks = -K sum x (qnt_q8x), which takes the K off
 *   again, and each block ends in one float multiply and fused multiply-add
 *   for 16 outputs. 16 tokens share each loaded weight register.
 * - AVX512-VNNI, one to a few tokens: a row at a time in address order (one
 *   token streams W from memory), two blocks a register, the block sums
 *   reduced in registers, the chain in scalar.
 * - AVX2 (2 rows x up to 4 tokens, a block a register; q8_0: vpmaddubsw +
 *   vpmaddwd on the codes' magnitudes with the signs moved onto x; q4_0: the
 *   unsigned nibbles times x (pairs reduced by vphaddw: no vpmaddwd), plus
 *   ks = -8 sum x; exact, no saturation; 8 blocks' sums reduced into the
 *   lanes of one register, which are 8 of the 16 chains, so the chains'
 *   steps are vector multiply-adds). From 4 tokens a block of 16 rows is
 *   first unpacked into scratch (f32 scales, a byte a code), so the tokens
 *   share the nibble unpacking and the fp16 conversions.
 * - AVX2 on weights packed at load (qnt_q8mm_pack, the layout the VNNI
 *   kernels read): rows in lanes, so a block's exact sums for 8 rows need
 *   no horizontal step (q4_0: nibbles times x, int16 sums; q8_0: the codes'
 *   magnitudes times x with their signs); one token and batches alike, the
 *   16 chains in L1.
 * Compiled without -march: each function carries its target attribute and
 * qnt_q8mm.c calls it only after the CPU probe says yes. */
#include "qnt_q8mm_impl.h"

#ifdef QNT_Q8MM_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "sb_alloc.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* ---- AVX2: a block a register, 2 rows x 2 tokens --------------------------- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

/* Tokens from which a call repacks (VNNI) or unpacks (AVX2) its blocks of
 * rows first; below it they are read in place. */
#define Q8_PACK_MIN 4

/* q4_0 block b of a row as its 32 nibbles (0..15), element order. */
static inline __attribute__((always_inline)) T_AVX2 __m256i n256(const uint8_t *row, size_t b)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(row + 18 * b + 2));
    const __m128i f = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), f), _mm_and_si128(v, f));
}

/* The 32 signed codes of q8_0 block b of a row. */
static inline __attribute__((always_inline)) T_AVX2 __m256i w256(const uint8_t *row, size_t b)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)(row + 34 * b + 2));
}

/* The sum of record's tail (the 16 chains in its fixed tree) of the chains in
 * lanes (lo: chains 0-7, hi: 8-15), its very pairs. */
static inline __attribute__((always_inline)) T_AVX2 float tree16_reg(__m256 lo, __m256 hi)
{
    const __m256 v = _mm256_add_ps(lo, hi);                                 /* l + (l + 8) */
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                 /* l + (l + 2) */
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));                             /* 0 + 1 */
    return _mm_cvtss_f32(h);
}

/* The exact sums of 8 blocks' partial sums (8 int32 lanes each), in lanes. */
static inline __attribute__((always_inline)) T_AVX2 __m256i bsum8(const __m256i p[8])
{
    const __m256i t0 = _mm256_hadd_epi32(p[0], p[1]), t1 = _mm256_hadd_epi32(p[2], p[3]);
    const __m256i t2 = _mm256_hadd_epi32(p[4], p[5]), t3 = _mm256_hadd_epi32(p[6], p[7]);
    const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
    /* u0: blocks 0-3 of the low 128 bits | of the high; u1 the same of 4-7 */
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                            _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* bsum8 of q4_0's vpmaddubsw pairs (16 int16 a block): |nibble x code| <=
 * 15 x 127, so a sum of 16 products stays within int16 (30480), and three
 * vphaddw levels reduce each block's 128-bit halves to one int16 each
 * (low lane: blocks 0-7 over elements 0-15; high lane: over 16-31), widened
 * to int32 and added: the same exact sums with half the multiplies (no
 * vpmaddwd by ones). */
static inline __attribute__((always_inline)) T_AVX2 __m256i bsum8_16(const __m256i p[8])
{
    const __m256i a0 = _mm256_hadd_epi16(p[0], p[1]), a1 = _mm256_hadd_epi16(p[2], p[3]);
    const __m256i a2 = _mm256_hadd_epi16(p[4], p[5]), a3 = _mm256_hadd_epi16(p[6], p[7]);
    const __m256i c = _mm256_hadd_epi16(_mm256_hadd_epi16(a0, a1), _mm256_hadd_epi16(a2, a3));
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(c)),
                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(c, 1)));
}

/* One token: the software prefetch distance in bytes (no fault past the
 * tensor's end: a prefetch never faults). On the AVX2 machine (2026-12-05),
 * run -n 128 of the 57 M llama: none 184-188 (q8_0) / 222-231 (q4_0) tokens/s,
 * 512 B 193-199 / 230-241, 1 KiB 205-210 / 242-247, 2 KiB 202-228 / 239-253,
 * 3 KiB 210-219 / 243-256, 4 KiB 206-208 / 251-254. */
#define Q8A_PF 2048

/* NR rows (1-2) x NT tokens (1-4). Blocks go 8 at a time: their 8 exact
 * sums in the lanes of one register, which are the chains b % 16 of blocks
 * b0 .. b0+7 (b0 a multiple of 8: chains 0-7 or 8-15), so each lane's
 * fused multiply-add is that chain's next step, in block order, as in the
 * reference; dw * dx is the same float product. The blocks past the last
 * multiple of 8 go in scalar, after, onto the same chains. */
static inline __attribute__((always_inline)) T_AVX2 void
micro_avx2_t(const struct qnt_q8mm_args *a, const uint8_t *const wr[4],
             const int8_t *const xq[4], const float *const xd[4], float out[4][4], const int NR,
             const int NT, const int Q4, const int U)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t bb = Q4 ? 18 : 34, nb = a->nb, nb8 = nb / 8 * 8;
    /* U: rows unpacked by q8_unpack (nb f32 scales, then nb x 32 codes a
       byte each: q4_0's nibbles, q8_0's signed codes) */
    const size_t uc = 4 * nb;
    /* the tokens' block scales once each (a->x.dx) and, for q4_0, -8 times
       their blocks' code sums (a->x.ks): P = sum(nibble * x) + ks, exact.
       The driver hands each token's d8 row; the token's index follows. */
    const float *dxp[4];
    const int32_t *ksp[4];
    for (int j = 0; j < NT; j++) {
        const size_t o = (size_t)(xd[j] - a->x.d8) / 8;   /* token t's t * nb, no division */
        dxp[j] = a->x.dx + o;
        ksp[j] = a->x.ks + o;
    }
    __m256 acc[2][4][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    for (size_t b0 = 0; b0 < nb8; b0 += 8) {
        const int h = (int)((b0 / 8) & 1);
        __m256 dx[4];
        for (int j = 0; j < NT; j++)
            dx[j] = _mm256_loadu_ps(dxp[j] + b0);
#pragma GCC unroll 2
        for (int i = 0; i < NR; i++) {
            const uint8_t *r = wr[i];
            if (NT == 1 && !U)   /* one token streams W: its next 8 blocks' lines, 2 KiB ahead */
                for (size_t o = 0; o < 8 * bb; o += 64)
                    _mm_prefetch((const char *)(r + bb * b0 + Q8A_PF + o), _MM_HINT_T0);
            __m256 dw;
            if (U) {
                dw = _mm256_loadu_ps((const float *)(const void *)r + b0);
            } else {
                const __m128i sh = _mm_setr_epi16(
                    (short)rd16(r + bb * b0), (short)rd16(r + bb * (b0 + 1)),
                    (short)rd16(r + bb * (b0 + 2)), (short)rd16(r + bb * (b0 + 3)),
                    (short)rd16(r + bb * (b0 + 4)), (short)rd16(r + bb * (b0 + 5)),
                    (short)rd16(r + bb * (b0 + 6)), (short)rd16(r + bb * (b0 + 7)));
                dw = _mm256_cvtph_ps(sh);
            }
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) {
                __m256i p[8];
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    const __m256i x = _mm256_loadu_si256(
                        (const __m256i *)(const void *)(xq[j] + 32 * (b0 + (size_t)k)));
                    /* the block's codes: unpacked (q4_0 nibbles, q8_0 codes) or from the row */
                    const __m256i wc =
                        U ? _mm256_loadu_si256((const __m256i *)(const void *)(r + uc + 32 * (b0 + (size_t)k)))
                        : Q4 ? n256(r, b0 + (size_t)k)
                             : w256(r, b0 + (size_t)k);
                    if (Q4) {   /* nibble (0..15) x code: pairs, no saturation */
                        p[k] = _mm256_maddubs_epi16(wc, x);
                    } else {
                        p[k] = _mm256_madd_epi16(
                            _mm256_maddubs_epi16(_mm256_abs_epi8(wc), _mm256_sign_epi8(x, wc)), ones);
                    }
                }
                __m256i P = Q4 ? bsum8_16(p) : bsum8(p);
                if (Q4)
                    P = _mm256_add_epi32(P, _mm256_loadu_si256((const __m256i *)(const void *)(ksp[j] + b0)));
                acc[i][j][h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[j]), _mm256_cvtepi32_ps(P),
                                               acc[i][j][h]);
            }
        }
    }
    if (nb8 < nb) {
        /* the last 1-7 blocks, vectorized as above: block nb8 + k is lane k of
           chains h (nb8 a multiple of 8), its fused multiply-add that chain's
           next step; the lanes past the row's end compute the last block again
           and keep their chains (blend), so every chain is the reference's to
           the bit, the sign of a zero included. Nothing is read past the
           row's blocks (masked loads for the scales). */
        const int kv = (int)(nb - nb8), h = (int)((nb8 / 8) & 1);
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(kv),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 dx[4];
        for (int j = 0; j < NT; j++)
            dx[j] = _mm256_maskload_ps(dxp[j] + nb8, m);
        for (int i = 0; i < NR; i++) {
            const uint8_t *r = wr[i];
            __m256 dw;
            if (U) {
                dw = _mm256_maskload_ps((const float *)(const void *)r + nb8, m);
            } else {
                uint16_t hb[8] = { 0 };
                for (int k = 0; k < kv; k++)
                    hb[k] = rd16(r + bb * (nb8 + (size_t)k));
                dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)hb));
            }
            for (int j = 0; j < NT; j++) {
                __m256i p[8];
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {   /* lanes past the end: the last block again */
                    const size_t bk = nb8 + (size_t)(k < kv ? k : kv - 1);
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(xq[j] + 32 * bk));
                    const __m256i wc =
                        U ? _mm256_loadu_si256((const __m256i *)(const void *)(r + uc + 32 * bk))
                        : Q4 ? n256(r, bk)
                             : w256(r, bk);
                    p[k] = Q4 ? _mm256_maddubs_epi16(wc, x)
                              : _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wc),
                                                                       _mm256_sign_epi8(x, wc)),
                                                  ones);
                }
                __m256i P = Q4 ? bsum8_16(p) : bsum8(p);
                if (Q4)
                    P = _mm256_add_epi32(P, _mm256_maskload_epi32(ksp[j] + nb8, m));
                const __m256 nw = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[j]), _mm256_cvtepi32_ps(P),
                                                  acc[i][j][h]);
                acc[i][j][h] = _mm256_blendv_ps(acc[i][j][h], nw, _mm256_castsi256_ps(m));
            }
        }
    }
    for (int i = 0; i < NR; i++)   /* the tree in registers */
        for (int j = 0; j < NT; j++)
            out[i][j] = tree16_reg(acc[i][j][0], acc[i][j][1]);
}

/* Only the rows and tokens there are (a lone row or token is not done twice). */
T_AVX2 static void micro_avx2(const struct qnt_q8mm_args *a, const uint8_t *const wr[4],
                              const int8_t *const xq[4], const float *const xd[4], int nr,
                              int nt, float out[4][4])
{
#define Q8A_CASES(Q, U)                                                                      \
    case 0: micro_avx2_t(a, wr, xq, xd, out, 1, 1, Q, U); break;                               \
    case 1: micro_avx2_t(a, wr, xq, xd, out, 1, 2, Q, U); break;                               \
    case 2: micro_avx2_t(a, wr, xq, xd, out, 1, 3, Q, U); break;                               \
    case 3: micro_avx2_t(a, wr, xq, xd, out, 1, 4, Q, U); break;                               \
    case 4: micro_avx2_t(a, wr, xq, xd, out, 2, 1, Q, U); break;                               \
    case 5: micro_avx2_t(a, wr, xq, xd, out, 2, 2, Q, U); break;                               \
    case 6: micro_avx2_t(a, wr, xq, xd, out, 2, 3, Q, U); break;                               \
    default: micro_avx2_t(a, wr, xq, xd, out, 2, 4, Q, U); break;
    const int c = (nr >= 2 ? 4 : 0) + (nt > 4 ? 4 : nt) - 1;
    if (a->q4) {
        switch (c) { Q8A_CASES(1, 0) }
    } else {
        switch (c) { Q8A_CASES(0, 0) }
    }
}

/* micro_avx2 on rows q8_unpack wrote. */
T_AVX2 static void micro_avx2_u(const struct qnt_q8mm_args *a, const uint8_t *const wr[4],
                                const int8_t *const xq[4], const float *const xd[4], int nr,
                                int nt, float out[4][4])
{
    const int c = (nr >= 2 ? 4 : 0) + (nt > 4 ? 4 : nt) - 1;
    if (a->q4) {
        switch (c) { Q8A_CASES(1, 1) }
    } else {
        switch (c) { Q8A_CASES(0, 1) }
    }
#undef Q8A_CASES
}

/* Rows r0 .. r0+rb-1 into the unpacked layout, ub bytes a row: the nb block
 * scales as f32 (exact), then each block's 32 codes a byte each in element
 * order (q4_0: the nibbles; q8_0: the codes as stored). Done once per call,
 * so a batch's tokens share the unpacking and the fp16 conversions. */
T_AVX2 static void q8_unpack(const struct qnt_q8mm_args *a, size_t r0, size_t rb, uint8_t *sc,
                             size_t ub)
{
    const size_t nb = a->nb, bb = a->q4 ? 18 : 34;
    for (size_t i = 0; i < rb; i++) {
        const uint8_t *row = a->w + (a->row0 + r0 + i) * a->row_bytes;
        uint8_t *u = sc + i * ub;
        float *ds = (float *)(void *)u;
        for (size_t b = 0; b < nb; b++) {
            ds[b] = _cvtsh_ss(rd16(row + bb * b));
            _mm256_storeu_si256((__m256i *)(void *)(u + 4 * nb + 32 * b),
                                a->q4 ? n256(row, b) : w256(row, b));
        }
    }
}

void qnt_q8mm_avx2(const struct qnt_q8mm_args *a)
{
    if (a->n < Q8_PACK_MIN) {
        qnt_q8mm_drive(a, 2, a->q4 ? 2 : 1, 4, micro_avx2);   /* one token: q8_0 a row at a time */
        return;
    }
    const size_t ub = a->nb * 36;
    const long nblk = (long)((a->nrows + 15) / 16);
    int failed = 0;
#pragma omp parallel if (a->threads == 0) reduction(| : failed)
    {
        uint8_t *sc = sb_malloc_aligned(16 * ub);   /* one block of rows a thread */
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblk; blk++) {
            const size_t r0 = (size_t)blk * 16, rb = a->nrows - r0 < 16 ? a->nrows - r0 : 16;
            if (!sc) {
                failed = 1;
                continue;
            }
            q8_unpack(a, r0, rb, sc, ub);
            qnt_q8mm_drive_rows(a, sc, ub, r0, rb, 2, 4, micro_avx2_u);
        }
        sb_free_aligned(sc);
    }
    if (failed)   /* no scratch: from the blocks themselves (the same bits) */
        qnt_q8mm_drive(a, 2, 2, 4, micro_avx2);
}

/* qnt_q8x_quantize_ref in AVX2, a block of 32 at a time, as the AVX-512 one
 * below: the max of |x| is exact in any order, d and 1 / d are the same
 * scalar operations, vcvtps2dq rounds to nearest even as lrintf does, and
 * |x * id| <= 127 after rounding, so the two saturating packs only narrow
 * (their 128-bit halves interleave the four registers' dwords: vpermd puts
 * them back in element order). */
T_AVX2 void qnt_q8x_quantize_avx2(const float *restrict x, size_t cols, int8_t *restrict q,
                                  float *restrict d8)
{
    const __m256 big = _mm256_set1_ps(3.4028235e38f);
    const __m256 mag = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t b = 0; b < cols / QNT_Q8MM_QK; b++) {
        const float *xb = x + 32 * b;
        __m256 v[4], m = _mm256_setzero_ps(), ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            const __m256 av = _mm256_and_ps(v[k], mag);
            ok = _mm256_and_ps(ok, _mm256_cmp_ps(av, big, _CMP_LE_OQ));   /* false: NaN, inf */
            m = _mm256_max_ps(m, av);
        }
        float d;
        if (_mm256_movemask_ps(ok) == 0xff) {
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
            d = _mm_cvtss_f32(h) / 127.0f;
            const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
            __m256i c[4];
            for (int k = 0; k < 4; k++)
                c[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
            const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]),
                                                 _mm256_packs_epi32(c[2], c[3]));
            _mm256_storeu_si256((__m256i *)(void *)(q + 32 * b),
                                _mm256_permutevar8x32_epi32(p, order));
        } else {
            d = NAN;
            _mm256_storeu_si256((__m256i *)(void *)(q + 32 * b), _mm256_setzero_si256());
        }
        _mm256_storeu_ps(d8 + 8 * b, _mm256_set1_ps(d));
    }
}

/* ---- AVX2 on packed q4_0 and q8_0 (qnt_q8mm_pack's tiles of 16 rows) -----
 * A block of a tile holds 4 dwords a row, [dword][row][4 bytes]: 32 bytes
 * are 8 rows' dword d, whose low nibbles are the row's elements 4d .. 4d+3
 * and high nibbles 16+4d .. 16+4d+3. So vpmaddubsw of the nibbles with the
 * token's 4 codes broadcast gives each row two pairs in its dword lane: rows
 * are the lanes, and a block's 8 products (4 dwords x low / high) add up in
 * int16 (each pair |15 x 127 x 2| <= 3810, eight of them <= 30480), one
 * vpmaddwd by ones ends them in int32: 8 rows' exact P without a horizontal
 * step, where the row layout reduces each block across its lanes. */

/* Half h (rows 8h .. 8h+7) of a packed block: w[d] the low nibbles of dword
 * d, w[4 + d] the high ones. */
static inline __attribute__((always_inline)) T_AVX2 void pk4_half(const uint8_t *cb, int h,
                                                                   __m256i w[8])
{
    const __m256i f = _mm256_set1_epi8(15);
#pragma GCC unroll 4
    for (int d = 0; d < 4; d++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(cb + 64 * d + 32 * h));
        w[d] = _mm256_and_si256(v, f);
        w[4 + d] = _mm256_and_si256(_mm256_srli_epi16(v, 4), f);
    }
}

/* 8 rows' exact block sums against one token's block: x the block's 32
 * codes, ks its -8 sum x. */
static inline __attribute__((always_inline)) T_AVX2 __m256i pk4_dot(const __m256i w[8],
                                                                    const int8_t *x, int32_t ks)
{
    int32_t x4[8];
    memcpy(x4, x, 32);
    __m256i m[8];
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++)
        m[g] = _mm256_maddubs_epi16(w[g], _mm256_set1_epi32(x4[g]));
    const __m256i s = _mm256_add_epi16(
        _mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_add_epi16(m[2], m[3])),
        _mm256_add_epi16(_mm256_add_epi16(m[4], m[5]), _mm256_add_epi16(m[6], m[7])));
    return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), _mm256_set1_epi32(ks));
}

/* q8_0, half h of a packed block: each group's 32 bytes back to signed
 * codes (stored + 128), c[g], and their magnitudes, m[g] (-128's is 128 as
 * an unsigned byte). */
static inline __attribute__((always_inline)) T_AVX2 void pk8_half(const uint8_t *cb, int h,
                                                                  __m256i c[8], __m256i m[8])
{
    const __m256i k = _mm256_set1_epi8((char)0x80);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
        c[g] = _mm256_xor_si256(
            _mm256_loadu_si256((const __m256i *)(const void *)(cb + 64 * g + 32 * h)), k);
        m[g] = _mm256_abs_epi8(c[g]);
    }
}

/* 8 rows' exact q8_0 block sums against one token's block: |c| times x with
 * c's sign (a pair <= 2 x 128 x 127, no saturation), pairs of pairs in
 * int32. */
static inline __attribute__((always_inline)) T_AVX2 __m256i pk8_dot(const __m256i c[8],
                                                                    const __m256i m[8],
                                                                    const int8_t *x)
{
    int32_t x4[8];
    memcpy(x4, x, 32);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p[8];
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++)
        p[g] = _mm256_madd_epi16(
            _mm256_maddubs_epi16(m[g], _mm256_sign_epi8(_mm256_set1_epi32(x4[g]), c[g])), ones);
    return _mm256_add_epi32(
        _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])),
        _mm256_add_epi32(_mm256_add_epi32(p[4], p[5]), _mm256_add_epi32(p[6], p[7])));
}

/* One packed tile (rows r0 .. r0+nr-1) against TB tokens from t0, blocks in
 * address order. The 16 chains of each token and half are 16 x TB x 2
 * registers' worth, kept in acc (L1): a block's step loads, fuses and
 * stores its chain b % 16, which the next 15 blocks do not touch. */
static inline __attribute__((always_inline)) T_AVX2 void
pk_tile(const struct qnt_q8mm_args *a, const uint8_t *tile, size_t r0, size_t nr, size_t t0,
        const int TB, const int Q4)
{
    const size_t nb = a->nb, bs = Q4 ? QNT_Q8MM_PK4 : QNT_Q8MM_PK8, cbytes = Q4 ? 256 : 512;
    __m256 acc[16][4][2];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            acc[l][j][0] = acc[l][j][1] = _mm256_setzero_ps();
    const int8_t *xq[4];
    const float *xd[4];
    const int32_t *ks[4];
#pragma GCC unroll 4
    for (int j = 0; j < TB; j++) {
        xq[j] = a->x.q + (t0 + (size_t)j) * a->cols;
        xd[j] = a->x.dx + (t0 + (size_t)j) * nb;
        ks[j] = a->x.ks + (t0 + (size_t)j) * nb;
    }
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *cb = tile + b * bs;
        const size_t c = b % 16;
        if (TB == 1)   /* one token streams W: the lines 2 KiB ahead */
            for (size_t o = 0; o < bs; o += 64)
                _mm_prefetch((const char *)(cb + Q8A_PF + o), _MM_HINT_T0);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256 dw = _mm256_cvtph_ps(
                _mm_loadu_si128((const __m128i *)(const void *)(cb + cbytes + 16 * h)));
            __m256i w[8], m[8];
            if (Q4)
                pk4_half(cb, h, w);
            else
                pk8_half(cb, h, w, m);
#pragma GCC unroll 4
            for (int j = 0; j < TB; j++) {
                const __m256i P = Q4 ? pk4_dot(w, xq[j] + 32 * b, ks[j][b])
                                     : pk8_dot(w, m, xq[j] + 32 * b);
                acc[c][j][h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xd[j][b])),
                                               _mm256_cvtepi32_ps(P), acc[c][j][h]);
            }
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < TB; j++) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
#pragma GCC unroll 4
            for (int w = 8; w >= 1; w /= 2)
#pragma GCC unroll 8
                for (int l = 0; l < w; l++)
                    acc[l][j][h] = _mm256_add_ps(acc[l][j][h], acc[l + w][j][h]);
        }
        float *y = a->Y + (t0 + (size_t)j) * a->nrows + r0;
        if (nr == 16) {
            _mm256_storeu_ps(y, acc[0][j][0]);
            _mm256_storeu_ps(y + 8, acc[0][j][1]);
        } else {
            float o[16];
            _mm256_storeu_ps(o, acc[0][j][0]);
            _mm256_storeu_ps(o + 8, acc[0][j][1]);
            memcpy(y, o, nr * sizeof *o);
        }
    }
}

T_AVX2 static void pk_tiles(const struct qnt_q8mm_args *a, const uint8_t *tile, size_t r0,
                            size_t nr)
{
    size_t t0 = 0;
    if (a->q4) {
        for (; t0 + 4 <= a->n; t0 += 4)
            pk_tile(a, tile, r0, nr, t0, 4, 1);
        for (; t0 < a->n; t0++)
            pk_tile(a, tile, r0, nr, t0, 1, 1);
    } else {
        for (; t0 + 4 <= a->n; t0 += 4)
            pk_tile(a, tile, r0, nr, t0, 4, 0);
        for (; t0 < a->n; t0++)
            pk_tile(a, tile, r0, nr, t0, 1, 0);
    }
}

void qnt_q8mm_avx2_packed(const struct qnt_q8mm_args *a)
{
    /* a->w: the packed rows (all of a->nrows, from the packed row 0) */
    const size_t tb = qnt_q8mm_packed_bytes(a->q4, 16, a->cols);
    const long nblk = (long)((a->nrows + 15) / 16);
#pragma omp parallel for schedule(static) if (a->threads == 0)
    for (long blk = 0; blk < nblk; blk++) {
        const size_t r0 = (size_t)blk * 16;
        const size_t nr = a->nrows - r0 < 16 ? a->nrows - r0 : 16;
        pk_tiles(a, a->w + (size_t)blk * tb, r0, nr);
    }
}

/* ---- AVX512-VNNI ------------------------------------------------------------ */

#define T_512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define T_VNNI \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

/* qnt_q8x_quantize_ref, a block of 32 at a time: the max of |x| is exact in
 * any order, d and 1 / d are the same scalar operations, and vcvtps2dq
 * rounds to nearest even as lrintf does in the default rounding mode. */
T_512 void qnt_q8x_quantize_avx512(const float *restrict x, size_t cols, int8_t *restrict q,
                                   float *restrict d8)
{
    const __m512 big = _mm512_set1_ps(3.4028235e38f);
    for (size_t b = 0; b < cols / QNT_Q8MM_QK; b++) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
        /* false for NaN and infinities */
        const __mmask16 f0 = _mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ);
        const __mmask16 f1 = _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ);
        float d;
        if ((f0 & f1) == 0xffff) {
            const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
            d = amax / 127.0f;
            const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
            _mm_storeu_si128((__m128i *)(void *)(q + 32 * b),
                             _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, id))));
            _mm_storeu_si128((__m128i *)(void *)(q + 32 * b + 16),
                             _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, id))));
        } else {
            d = NAN;
            _mm256_storeu_si256((__m256i *)(void *)(q + 32 * b), _mm256_setzero_si256());
        }
        _mm256_storeu_ps(d8 + 8 * b, _mm256_set1_ps(d));
    }
}

/* A tensor from which one token is taken to stream from memory. */
#define Q8_STREAM_BYTES ((size_t)8 << 20)
#define Q8_TR 16                   /* rows a tile */
#define Q8_TBLK (512 + 64)         /* a block of the tile: codes, then 16 f32 scales */

/* Row r's block b as 32 unsigned codes (q4_0: nibble, code + 8; q8_0: code
 * + 128), element order. */
static inline __attribute__((always_inline)) T_VNNI __m256i u256(const uint8_t *row, size_t b,
                                                                   int q4)
{
    if (!q4)
        return _mm256_xor_si256(
            _mm256_loadu_si256((const __m256i *)(const void *)(row + 34 * b + 2)),
            _mm256_set1_epi8((char)0x80));
    return n256(row, b);
}

/* Rows r0 .. r0+nr-1 (nr <= 16) into the tile layout; missing rows are zero
 * codes with zero scales (their lanes are never stored). */
T_VNNI static void q8_pack(const struct qnt_q8mm_args *a, size_t r0, size_t nr, uint8_t *sc)
{
    const size_t bb = a->q4 ? 18 : 34;
    for (size_t b = 0; b < a->nb; b++) {
        uint8_t *cb = sc + b * Q8_TBLK;
        float *dw = (float *)(void *)(cb + 512);
        for (size_t i = 0; i < Q8_TR; i++) {
            uint32_t g8[8];
            if (i < nr) {
                const uint8_t *row = a->w + (a->row0 + r0 + i) * a->row_bytes;
                _mm256_storeu_si256((__m256i *)(void *)g8, u256(row, b, a->q4));
                dw[i] = _cvtsh_ss(rd16(row + bb * b));
            } else {
                memset(g8, 0, sizeof g8);
                dw[i] = 0.0f;
            }
            for (int g = 0; g < 8; g++)
                memcpy(cb + 64 * g + 4 * i, &g8[g], 4);
        }
    }
}

/* TB (<= 8) tokens from t0 against a packed tile: Y[t][r0 + i] for i < nr.
 * Two chains at a time, l and l + 8 (blocks l, l + 8, l + 16, ... take
 * turns), so the tree's first level is made in registers; the other 7 sums
 * of a token follow, lane-wise (lane = row). */
/* A packed tile's block b (qnt_q8mm_pack): the 8 groups' unsigned codes and
 * the 16 scales. q4_0 keeps the nibbles (dword d of each row: groups d and
 * 4 + d), q8_0 the codes + 128. */
static inline __attribute__((always_inline)) T_VNNI __m512
q8_pk_block(const uint8_t *tile, size_t b, int q4, __m512i w[8])
{
    if (q4) {
        const uint8_t *cb = tile + b * QNT_Q8MM_PK4;
        const __m512i f = _mm512_set1_epi8(15);
#pragma GCC unroll 4
        for (int d = 0; d < 4; d++) {
            const __m512i v = _mm512_loadu_si512((const void *)(cb + 64 * d));
            w[d] = _mm512_and_si512(v, f);
            w[4 + d] = _mm512_and_si512(_mm512_srli_epi16(v, 4), f);
        }
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(cb + 256)));
    }
    const uint8_t *cb = tile + b * QNT_Q8MM_PK8;
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++)
        w[g] = _mm512_loadu_si512((const void *)(cb + 64 * g));
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(cb + 512)));
}

static inline __attribute__((always_inline)) T_VNNI void
q8_tile_any(const struct qnt_q8mm_args *a, const uint8_t *sc, size_t r0, size_t nr, size_t t0,
            const int TB, const int PK)
{
    __m512 acc[8][8];
    const int8_t *xq[8];
    const float *xd[8];
    const int32_t *ks[8];
#pragma GCC unroll 8
    for (int j = 0; j < TB; j++) {
        xq[j] = a->x.q + (t0 + (size_t)j) * a->cols;
        xd[j] = a->x.dx + (t0 + (size_t)j) * a->nb;
        ks[j] = a->x.ks + (t0 + (size_t)j) * a->nb;
    }
    for (size_t l = 0; l < 8; l++) {
        __m512 y[2][8];
#pragma GCC unroll 8
        for (int j = 0; j < TB; j++)
            y[0][j] = y[1][j] = _mm512_setzero_ps();
        for (size_t b = l; b < a->nb; b += 8) {
            const int h = (int)((b / 8) & 1);
            __m512i w[8];
            __m512 dw;
            if (PK) {
                dw = q8_pk_block(sc, b, a->q4, w);
            } else {
                const uint8_t *cb = sc + b * Q8_TBLK;
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++)
                    w[g] = _mm512_load_si512((const void *)(cb + 64 * g));
                dw = _mm512_load_ps((const float *)(const void *)(cb + 512));
            }
#pragma GCC unroll 8
            for (int j = 0; j < TB; j++) {
                int32_t x4[8];
                memcpy(x4, xq[j] + 32 * b, 32);
                __m512i p0 = _mm512_set1_epi32(ks[j][b]), p1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int g = 0; g < 8; g += 2) {
                    p0 = _mm512_dpbusd_epi32(p0, w[g], _mm512_set1_epi32(x4[g]));
                    p1 = _mm512_dpbusd_epi32(p1, w[g + 1], _mm512_set1_epi32(x4[g + 1]));
                }
                const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(xd[j][b]));
                const __m512 pf = _mm512_cvtepi32_ps(_mm512_add_epi32(p0, p1));
                if (h)
                    y[1][j] = _mm512_fmadd_ps(dd, pf, y[1][j]);
                else
                    y[0][j] = _mm512_fmadd_ps(dd, pf, y[0][j]);
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < TB; j++)
            acc[l][j] = _mm512_add_ps(y[0][j], y[1][j]);
    }
    const __mmask16 m = (__mmask16)((1u << nr) - 1u);
#pragma GCC unroll 8
    for (int j = 0; j < TB; j++) {
        for (int w = 4; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                acc[l][j] = _mm512_add_ps(acc[l][j], acc[l + w][j]);
        _mm512_mask_storeu_ps(a->Y + (t0 + (size_t)j) * a->nrows + r0, m, acc[0][j]);
    }
}

#define q8_tile(a, sc, r0, nr, t0, TB) q8_tile_any(a, sc, r0, nr, t0, TB, 0)

/* One token against a packed tile, blocks in address order: the 16 chains
 * are 16 registers (lane = row), a block's 8 groups one vpdpbusd each with
 * the token's 4 codes broadcast. */
static inline __attribute__((always_inline)) T_VNNI void
q8_pk_tok(const struct qnt_q8mm_args *a, const uint8_t *tile, size_t r0, size_t nr, size_t t,
          const int Q4)
{
    const int8_t *xq = a->x.q + t * a->cols;
    const float *xd = a->x.dx + t * a->nb;
    const int32_t *ks = a->x.ks + t * a->nb;
    const size_t nb = a->nb;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++)
        acc[l] = _mm512_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 16) {
#pragma GCC unroll 16
        for (size_t k = 0; k < 16; k++) {
            const size_t b = b0 + k;
            if (b >= nb)
                break;
            __m512i w[8];
            const __m512 dw = q8_pk_block(tile, b, Q4, w);
            int32_t x4[8];
            memcpy(x4, xq + 32 * b, 32);
            /* the 8 products apart, then a tree (integers: the same sum in
             * any order). Two chains of 4 kept fewer blocks in flight: one
             * token of the 57M llama, run -n 128, one thread: q8_0 287-338 ->
             * 381-401 tokens/s (q4_0 725-757 -> 708-736, within its spread) */
            __m512i p[8];
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
                p[g] = _mm512_dpbusd_epi32(g ? _mm512_setzero_si512() : _mm512_set1_epi32(ks[b]),
                                           w[g], _mm512_set1_epi32(x4[g]));
            const __m512i sum = _mm512_add_epi32(
                _mm512_add_epi32(_mm512_add_epi32(p[0], p[1]), _mm512_add_epi32(p[2], p[3])),
                _mm512_add_epi32(_mm512_add_epi32(p[4], p[5]), _mm512_add_epi32(p[6], p[7])));
            acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xd[b])),
                                     _mm512_cvtepi32_ps(sum), acc[k]);
        }
    }
#pragma GCC unroll 8
    for (int w = 8; w >= 1; w /= 2)
#pragma GCC unroll 8
        for (int l = 0; l < w; l++)
            acc[l] = _mm512_add_ps(acc[l], acc[l + w]);
    _mm512_mask_storeu_ps(a->Y + t * a->nrows + r0, (__mmask16)((1u << nr) - 1u), acc[0]);
}

/* Row r's blocks b and b + 1 as unsigned codes, element order: block b in
 * bytes 0-31, b + 1 in 32-63 (q4_0: each block's 16 bytes twice, the second
 * copy shifted down a nibble). */
static inline __attribute__((always_inline)) T_VNNI __m512i u512(const uint8_t *row, size_t b,
                                                                   int q4)
{
    if (!q4)
        return _mm512_xor_si512(
            _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(
                                   (const __m256i *)(const void *)(row + 34 * b + 2))),
                               _mm256_loadu_si256((const __m256i *)(const void *)(row + 34 * b + 36)),
                               1),
            _mm512_set1_epi8((char)0x80));
    const __m256i lo =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(row + 18 * b + 2)));
    const __m256i hi = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)(const void *)(row + 18 * b + 20)));
    const __m512i sh = _mm512_set_epi16(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4,
                                        4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_and_si512(
        _mm512_srlv_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), sh),
        _mm512_set1_epi8(15));
}

/* The 16 f16 scales of blocks b0 .. b0+left-1 of a row (zero past them) as
 * floats, by word inserts (rows of one group measured faster so). */
static inline __attribute__((always_inline)) T_VNNI __m512 q8_dw16i(const uint8_t *row, size_t bb,
                                                                      size_t b0, size_t left)
{
    const uint8_t *sp = row + bb * b0;
    __m128i s0 = _mm_setzero_si128(), s1 = _mm_setzero_si128();
#define Q8_INS(v, k, e)                                                                          \
    if ((k) < left)                                                                              \
        v = _mm_insert_epi16(v, (short)rd16(sp + bb * (k)), e);
    Q8_INS(s0, 0, 0) Q8_INS(s0, 1, 1) Q8_INS(s0, 2, 2) Q8_INS(s0, 3, 3)
    Q8_INS(s0, 4, 4) Q8_INS(s0, 5, 5) Q8_INS(s0, 6, 6) Q8_INS(s0, 7, 7)
    Q8_INS(s1, 8, 0) Q8_INS(s1, 9, 1) Q8_INS(s1, 10, 2) Q8_INS(s1, 11, 3)
    Q8_INS(s1, 12, 4) Q8_INS(s1, 13, 5) Q8_INS(s1, 14, 6) Q8_INS(s1, 15, 7)
#undef Q8_INS
    return _mm512_cvtph_ps(_mm256_set_m128i(s1, s0));
}

/* The same through 16 independent 4-byte loads (the scale and two code bytes) and a
 * tree of unpacks, so no load waits for another (word inserts into one
 * register made a chain of dependent loads; a gather measured far slower). */
static inline __attribute__((always_inline)) T_VNNI __m512 q8_dw16(const uint8_t *row, size_t bb,
                                                                     size_t b0, size_t left)
{
    const uint8_t *sp = row + bb * b0;
    __m128i d[16];
#pragma GCC unroll 16
    for (size_t k = 0; k < 16; k++) {
        int32_t v = 0;
        if (k < left)
            memcpy(&v, sp + bb * k, 4);
        d[k] = _mm_cvtsi32_si128(v);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        d[k] = _mm_unpacklo_epi16(d[2 * k], d[2 * k + 1]);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        d[k] = _mm_unpacklo_epi32(d[2 * k], d[2 * k + 1]);
    const __m128i lo = _mm_unpacklo_epi64(d[0], d[1]), hi = _mm_unpacklo_epi64(d[2], d[3]);
    return _mm512_cvtph_ps(_mm256_set_m128i(hi, lo));
}

/* One row against one token, in address order (one token streams W from
 * memory): 16 block pairs at a time, each pair through one vpdpbusd (lanes
 * 0-7 block b, 8-15 block b + 1); a tree of two-source permutes and adds
 * folds the 16 registers into the 32 block sums in block order, two
 * registers whose lanes are the block residues, so the chains are one
 * register's lanes and end in its horizontal sum. */
static inline __attribute__((always_inline)) T_VNNI float
q8_row1(const struct qnt_q8mm_args *a, const uint8_t *row, const int8_t *xq, const float *xdc,
        const int32_t *ks, const int stream)
{
    const int q4 = a->q4;
    const size_t bb = q4 ? 18 : 34, nb = a->nb;
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 acc = _mm512_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 32) {
        const size_t nbk = nb - b0 < 32 ? nb - b0 : 32;
        /* long rows: the scales first, one forward pass over the group's
         * bytes that the codes' pass then finds in cache, and the next
         * group asked for (4096 x 14336 q8_0, one thread: 10.5 -> 17.6 GB/s);
         * a 57M llama's matrices (0.6-1.6 MB, 768-2048 columns), which the
         * cache holds in part, ran 10-20 % slower so: not for them */
        __m512 dw0 = _mm512_setzero_ps(), dw1 = _mm512_setzero_ps();
        if (stream) {
            for (size_t o = 0; o < 32 * bb; o += 64)
                _mm_prefetch((const char *)(row + bb * (b0 + 32)) + o, _MM_HINT_T0);
            dw0 = q8_dw16(row, bb, b0, nbk < 16 ? nbk : 16);
            dw1 = nbk > 16 ? q8_dw16(row, bb, b0 + 16, nbk - 16) : _mm512_setzero_ps();
        }
        __m512i v[16];
#pragma GCC unroll 16
        for (size_t k = 0; k < 16; k++) {
            if (2 * k + 1 < nbk)
                v[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u512(row, b0 + 2 * k, q4),
                                           _mm512_loadu_si512((const void *)(xq + 32 * (b0 + 2 * k))));
            else if (2 * k < nbk) /* the odd last block alone */
                v[k] = _mm512_castsi256_si512(_mm256_dpbusd_epi32(
                    _mm256_setzero_si256(), u256(row, b0 + 2 * k, q4),
                    _mm256_loadu_si256((const __m256i *)(const void *)(xq + 32 * (b0 + 2 * k)))));
            else
                v[k] = _mm512_setzero_si512();
        }
#pragma GCC unroll 8
        for (int st = 16; st > 2; st /= 2)
#pragma GCC unroll 8
            for (int k = 0; k < st / 2; k++)
                v[k] = _mm512_add_epi32(_mm512_permutex2var_epi32(v[2 * k], ev, v[2 * k + 1]),
                                        _mm512_permutex2var_epi32(v[2 * k], od, v[2 * k + 1]));
        /* v[0]: blocks b0 .. b0+15, v[1]: b0+16 .. b0+31, by lane */
        for (size_t h = 0; h < 2 && 16 * h < nbk; h++) {
            const size_t bh = b0 + 16 * h, left = nbk - 16 * h;
            const __mmask16 m = (__mmask16)(left >= 16 ? 0xFFFFu : (1u << left) - 1u);
            const __m512 p = _mm512_cvtepi32_ps(_mm512_add_epi32(v[h], _mm512_maskz_loadu_epi32(m, ks + bh)));
            const __m512 dw = stream ? (h ? dw1 : dw0) : q8_dw16i(row, bb, bh, left);
            const __m512 dd = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(m, xdc + bh));
            acc = _mm512_mask3_fmadd_ps(dd, p, acc, m); /* lanes past the row: kept */
        }
    }
    /* the tree: l + 8, l + 4, l + 2, l + 1 */
    __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

#define Q8_ROWS1(NAME, STREAM)                                                                \
    T_VNNI static void NAME(const struct qnt_q8mm_args *a, size_t r0, size_t nr)              \
    {                                                                                          \
        for (size_t i = 0; i < nr; i++) {                                                      \
            const uint8_t *row = a->w + (a->row0 + r0 + i) * a->row_bytes;                     \
            for (size_t t = 0; t < a->n; t++)                                                  \
                a->Y[t * a->nrows + r0 + i] = q8_row1(a, row, a->x.q + t * a->cols,            \
                                                      a->x.dx + t * a->nb, a->x.ks + t * a->nb, \
                                                      STREAM);                                 \
        }                                                                                      \
    }
Q8_ROWS1(q8_rows1_cached, 0)
Q8_ROWS1(q8_rows1_stream, 1)

static void q8_rows1(const struct qnt_q8mm_args *a, size_t r0, size_t nr)
{
    if (a->nb >= 64 && a->rows * a->row_bytes >= Q8_STREAM_BYTES)
        q8_rows1_stream(a, r0, nr);
    else
        q8_rows1_cached(a, r0, nr);
}

T_VNNI static void q8_tiles(const struct qnt_q8mm_args *a, const uint8_t *sc, size_t r0,
                            size_t nr)
{
    size_t t0 = 0;
    for (; t0 + 8 <= a->n; t0 += 8)
        q8_tile(a, sc, r0, nr, t0, 8);
    for (; t0 + 4 <= a->n; t0 += 4)
        q8_tile(a, sc, r0, nr, t0, 4);
    for (; t0 < a->n; t0++)
        q8_tile(a, sc, r0, nr, t0, 1);
}

void qnt_q8mm_vnni(const struct qnt_q8mm_args *a)
{
    const size_t nrows = a->nrows;
    const long nblk = (long)((nrows + Q8_TR - 1) / Q8_TR);
    const int pack = a->n >= Q8_PACK_MIN;
    /* one tile's scratch a thread: the packed tile, or the chains' operands */
    const size_t sz = pack ? a->nb * Q8_TBLK : 0;
    int failed = 0;
#pragma omp parallel if (a->threads == 0) reduction(| : failed)
    {
        void *sc = pack ? sb_malloc_aligned(sz) : NULL;
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblk; blk++) {
            const size_t r0 = (size_t)blk * Q8_TR;
            const size_t nr = nrows - r0 < Q8_TR ? nrows - r0 : Q8_TR;
            if (!pack) {
                q8_rows1(a, r0, nr);
            } else if (!sc) {
                failed = 1;
            } else {
                q8_pack(a, r0, nr, sc);
                q8_tiles(a, sc, r0, nr);
            }
        }
        sb_free_aligned(sc);
    }
    /* no scratch: the reference's own loop (the same bits, slowly) */
    if (failed)
        qnt_q8mm_scalar(a);
}

T_VNNI static void q8_pk_tiles(const struct qnt_q8mm_args *a, const uint8_t *tile, size_t r0,
                               size_t nr)
{
    if (a->n < Q8_PACK_MIN) {
        for (size_t t = 0; t < a->n; t++) {
            if (a->q4)
                q8_pk_tok(a, tile, r0, nr, t, 1);
            else
                q8_pk_tok(a, tile, r0, nr, t, 0);
        }
        return;
    }
    size_t t0 = 0;
    for (; t0 + 8 <= a->n; t0 += 8)
        q8_tile_any(a, tile, r0, nr, t0, 8, 1);
    for (; t0 + 4 <= a->n; t0 += 4)
        q8_tile_any(a, tile, r0, nr, t0, 4, 1);
    for (; t0 < a->n; t0++)
        q8_tile_any(a, tile, r0, nr, t0, 1, 1);
}

void qnt_q8mm_vnni_packed(const struct qnt_q8mm_args *a)
{
    /* a->w: the packed rows (all of a->nrows, from the packed row 0) */
    const size_t tb = qnt_q8mm_packed_bytes(a->q4, Q8_TR, a->cols);
    const long nblk = (long)((a->nrows + Q8_TR - 1) / Q8_TR);
#pragma omp parallel for schedule(static) if (a->threads == 0)
    for (long blk = 0; blk < nblk; blk++) {
        const size_t r0 = (size_t)blk * Q8_TR;
        const size_t nr = a->nrows - r0 < Q8_TR ? a->nrows - r0 : Q8_TR;
        q8_pk_tiles(a, a->w + (size_t)blk * tb, r0, nr);
    }
}

#endif
