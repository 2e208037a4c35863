/* vfy_attn_impl.h: the core's causal attention over the KV cache (verify/
 * and its tests only): a scalar reference and AVX2 / AVX-512 kernels that
 * reproduce it bit for bit, picked once through the CPU probe (sb_cpu.h).
 *
 * A batch of n queries at positions pos0 .. pos0+n-1 is done in tiles of up
 * to VFY_ATTN_ROWS queries of one head (matrix form: the tile's scores against
 * every key in one pass, the tile's outputs from every value in one pass).
 * The sum of record for the query at position p of head h (kv head
 * g = h / (nh / nkv)), which every kernel reproduces at any tile, batch split
 * and thread count because each output element is one sequential chain:
 *   s[t] = (fmaf chain over d = 0 .. hd-1 of q[d] * K[t][d], from +0) * scale,
 *          t = 0 .. p
 *   m    = max of s[0 .. p]
 *   e[t] = vfy_attn_exp(s[t] - m)
 *   z    = the e[t] summed in 16 lanes (lane t % 16, ascending t), the lanes
 *          then folded l += l + 8, l += l + 4, l += l + 2, 0 += 1
 *   o[d] = (fmaf chain over t = 0 .. p of e[t] * V[t][d], from +0) * (1 / z)
 * vfy_attn_exp is a Cephes-style exp (range reduction by ln 2 in two parts,
 * a degree-5 polynomial, the power of two put in the exponent bits), written
 * with the same float operations scalar and vector; 0 below -87, within 2
 * ulp of exp elsewhere on [-87, 0] (the unit test checks against libm's
 * double exp).
 *
 * Cache layout: keys transposed in blocks of VFY_ATTN_KB positions, so a
 * query meets 16 consecutive keys in one vector and a block's keys are one
 * contiguous run (kt = (nkv, P / KB, hd, KB) per layer, P = vfy_attn_kpad(n_ctx):
 * key t, element d of kv head g at g * hd * P + (t / KB) * KB * hd + d * KB + t % KB;
 * a transposed (hd, n_ctx) layout read each key block as hd lines n_ctx
 * floats apart, which the prefetchers did not follow); values head by head,
 * v = (nkv, n_ctx, hd) per layer (a head's values one contiguous run; by
 * position, (n_ctx, nkv * hd), they were hd floats every nkv * hd). */
#ifndef VFY_ATTN_IMPL_H
#define VFY_ATTN_IMPL_H

#include <stddef.h>

#define VFY_ATTN_ROWS 4
#define VFY_ATTN_KB 16   /* positions per key block */

/* positions of a layer's key cache: n_ctx rounded up to whole key blocks */
static inline size_t vfy_attn_kpad(size_t n_ctx)
{
    return (n_ctx + VFY_ATTN_KB - 1) / VFY_ATTN_KB * VFY_ATTN_KB;
}

/* index of key t, element d, in one kv head's (P / KB, hd, KB) blocks */
static inline size_t vfy_attn_kidx(size_t hd, size_t t, size_t d)
{
    return t / VFY_ATTN_KB * VFY_ATTN_KB * hd + d * VFY_ATTN_KB + t % VFY_ATTN_KB;
}

struct vfy_attn_args {
    const float *q;          /* (n, nh * hd) rotated queries */
    const float *kt;         /* (nkv, P / KB, hd, KB) this layer's keys, positions 0 .. pos0+n-1 */
    const float *v;          /* (nkv, n_ctx, hd) this layer's values */
    float *o;                /* (n, nh * hd) */
    size_t n, pos0, n_ctx, nh, nkv, hd;
    float scale;             /* 1 / sqrt(hd) */
    float *scratch;          /* (threads, VFY_ATTN_ROWS, n_ctx) */
};

/* One tile: queries i0 .. i0+nr-1 (nr <= VFY_ATTN_ROWS) of head h, scores in
 * S (VFY_ATTN_ROWS, n_ctx). */
typedef void vfy_attn_tile_fn(const struct vfy_attn_args *a, size_t i0, size_t nr, size_t h,
                              float *S);

vfy_attn_tile_fn vfy_attn_tile_ref;
#if defined(__x86_64__) || defined(__i386__)
#define VFY_ATTN_X86 1
vfy_attn_tile_fn vfy_attn_tile_avx2, vfy_attn_tile_avx512;
#endif

/*! vfy_attn_exp() : the exp of record (above), for x <= 0. */
float vfy_attn_exp(float x);

enum vfy_attn_kernel { VFY_ATTN_BEST = -1, VFY_ATTN_REF = 0, VFY_ATTN_AVX2, VFY_ATTN_AVX512 };

/*! vfy_attn_run() : every tile of a, OpenMP over (tile, head) on nthreads
 *  threads (a->scratch holds that many), through kernel (VFY_ATTN_BEST: what
 *  the CPU probe allows). @return 0, or -1 when this CPU lacks the kernel. */
int vfy_attn_run(const struct vfy_attn_args *a, int nthreads, int kernel);

#endif
