/* vfy_attn_x86_impl.h: the body of one attention tile kernel
 * (vfy_attn_impl.h), included by vfy_attn_x86.c once per instruction set
 * with these defined: TGT (target attribute), NAME, V, VL (lanes),
 * V_ZERO, V_SET1, V_LOAD, V_LOADN(p, k) (first k lanes, the rest 0),
 * V_STOREN(p, v, k), V_KEEPN(v, k) (lanes past k zeroed), V_FMA, V_MUL,
 * V_SUB, V_ADD, V_MAX, V_HMAX, V_POW2(t) (2^n from t = 1.5 * 2^23 + n),
 * V_ZERO_BELOW(x, v) (v, 0 where x < -87), V_FOLD (the 16-lane sum of record from
 * 16 / VL accumulators). Every output element is one sequential chain, as
 * in the reference; vectors only spread independent elements over lanes. */

#define NS (16 / VL)   /* accumulators holding the 16 lanes of the exp sum */

static inline __attribute__((always_inline)) TGT size_t ATT_(lanes)(size_t len, size_t at)
{
    return at >= len ? 0 : len - at >= VL ? VL : len - at;
}

/* Scores of R query rows against keys 0 .. len-1 (C vectors of keys a pass).
 * R and C are constants where this is inlined, and every loop over them is
 * unrolled, so that the accumulators live in registers (a loop the compiler
 * keeps rolled puts them on the stack: a load and a store every FMA). */
static inline __attribute__((always_inline)) TGT void ATT_(scores)(
    const struct vfy_attn_args *a, const float *const q[VFY_ATTN_ROWS], const float *kt,
    size_t len, float *S, const int R, const int C)
{
    const size_t N = a->n_ctx, hd = a->hd;
    const V sc = V_SET1(a->scale);
    for (size_t t0 = 0; t0 < len; t0 += (size_t)C * VL) {
        V acc[VFY_ATTN_ROWS][4];
        size_t k[4];
        const float *kb[4];   /* vector c's first key, element 0 */
        int full = 1;
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            k[c] = ATT_(lanes)(len, t0 + (size_t)c * VL);
            /* a vector with no key reads block 0 (masked off): past the
             * keys, pages may not be mapped yet, and a masked load over an
             * unmapped page is slow (a microcode assist, we think: attention
             * 8 -> 29 % of run -n 256's samples, 185 -> 134 tokens/s) */
            kb[c] = kt + (k[c] ? vfy_attn_kidx(hd, t0 + (size_t)c * VL, 0) : 0);
            full &= k[c] == VL;
#pragma GCC unroll 4
            for (int j = 0; j < R; j++)
                acc[j][c] = V_ZERO();
        }
        if (full) {
            for (size_t d = 0; d < hd; d++) {
                V kv[4];
#pragma GCC unroll 4
                for (int c = 0; c < C; c++)
                    kv[c] = V_LOAD(kb[c] + d * VFY_ATTN_KB);
#pragma GCC unroll 4
                for (int j = 0; j < R; j++) {
                    const V qj = V_SET1(q[j][d]);
#pragma GCC unroll 4
                    for (int c = 0; c < C; c++)
                        acc[j][c] = V_FMA(qj, kv[c], acc[j][c]);
                }
            }
        } else {
            for (size_t d = 0; d < hd; d++) {
                V kv[4];
#pragma GCC unroll 4
                for (int c = 0; c < C; c++)
                    kv[c] = V_LOADN(kb[c] + d * VFY_ATTN_KB, k[c]);
#pragma GCC unroll 4
                for (int j = 0; j < R; j++) {
                    const V qj = V_SET1(q[j][d]);
#pragma GCC unroll 4
                    for (int c = 0; c < C; c++)
                        acc[j][c] = V_FMA(qj, kv[c], acc[j][c]);
                }
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < R; j++)
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                V_STOREN(S + (size_t)j * N + t0 + (size_t)c * VL, V_MUL(acc[j][c], sc), k[c]);
    }
}

/* vfy_attn_exp, lane by lane: the same float operations in the same order */
static inline __attribute__((always_inline)) TGT V ATT_(exp)(V x)
{
    const V t = V_FMA(x, V_SET1(1.44269504088896341f), V_SET1(12582912.0f));
    const V n = V_SUB(t, V_SET1(12582912.0f));
    V r = V_FMA(n, V_SET1(-0.693359375f), x);
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    V p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    p = V_FMA(p, V_MUL(r, r), r);
    p = V_ADD(p, V_SET1(1.0f));
    return V_ZERO_BELOW(x, V_MUL(p, V_POW2(t)));
}

/* s[0 .. len-1] -> exp(s - max), in place; returns 1 / their sum of record. */
static inline __attribute__((always_inline)) TGT float ATT_(softmax)(float *s, size_t len)
{
    float m = -INFINITY;
    size_t t = 0;
    if (len >= VL) {
        V mv = V_LOAD(s);
        for (t = VL; t + VL <= len; t += VL)
            mv = V_MAX(mv, V_LOAD(s + t));
        m = V_HMAX(mv);
    }
    for (; t < len; t++)
        m = s[t] > m ? s[t] : m;
    const V mm = V_SET1(m);
    V z[NS];
    for (int i = 0; i < NS; i++)
        z[i] = V_ZERO();
    size_t c = 0;
    for (t = 0; t < len; t += VL, c++) {
        const size_t k = ATT_(lanes)(len, t);
        V e = ATT_(exp)(V_SUB(V_LOADN(s + t, k), mm));
        if (k < VL)
            e = V_KEEPN(e, k);
        V_STOREN(s + t, e, k);
        z[c % NS] = V_ADD(z[c % NS], e);
    }
    return 1.0f / V_FOLD(z);
}

/* acc[j][c] += e[j][t] * values[t] (columns d0 + c * VL ..) for rows j >= J0
 * of the tile (J0, R, DC and FULL constants where inlined: registers) */
static inline __attribute__((always_inline)) TGT void ATT_(vstep)(
    const float *S, size_t N, const float *vr, size_t t, const size_t k[4],
    V acc[VFY_ATTN_ROWS][4], const int J0, const int R, const int DC, const int FULL)
{
    V x[4];
#pragma GCC unroll 4
    for (int c = 0; c < DC; c++)
        x[c] = FULL ? V_LOAD(vr + c * VL) : V_LOADN(vr + c * VL, k[c]);
#pragma GCC unroll 4
    for (int j = J0; j < R; j++) {
        const V e = V_SET1(S[(size_t)j * N + t]);
#pragma GCC unroll 4
        for (int c = 0; c < DC; c++)
            acc[j][c] = V_FMA(e, x[c], acc[j][c]);
    }
}

/* o rows = e rows . values 0 .. p0+j (row j), scaled by inv[j]; DC vectors of
 * the head's hd columns a pass. Each output is one chain over t ascending:
 * positions 0 .. p0 for every row, then p0 + i for the rows j >= i. */
static inline __attribute__((always_inline)) TGT void ATT_(values_pass)(
    const struct vfy_attn_args *a, const float *S, const float *vv, size_t p0, size_t d0,
    const float inv[VFY_ATTN_ROWS], float *const o[VFY_ATTN_ROWS], const int R, const int DC,
    const int FULL)
{
    const size_t N = a->n_ctx, hd = a->hd;
    V acc[VFY_ATTN_ROWS][4];
    size_t k[4];
#pragma GCC unroll 4
    for (int c = 0; c < DC; c++) {
        k[c] = ATT_(lanes)(hd, d0 + (size_t)c * VL);
#pragma GCC unroll 4
        for (int j = 0; j < R; j++)
            acc[j][c] = V_ZERO();
    }
    for (size_t t = 0; t <= p0; t++)
        ATT_(vstep)(S, N, vv + t * hd + d0, t, k, acc, 0, R, DC, FULL);
#pragma GCC unroll 4
    for (int i = 1; i < R; i++)
        ATT_(vstep)(S, N, vv + (p0 + (size_t)i) * hd + d0, p0 + (size_t)i, k, acc, i, R, DC,
                    FULL);
#pragma GCC unroll 4
    for (int j = 0; j < R; j++) {
        const V s = V_SET1(inv[j]);
#pragma GCC unroll 4
        for (int c = 0; c < DC; c++)
            V_STOREN(o[j] + d0 + (size_t)c * VL, V_MUL(acc[j][c], s), k[c]);
    }
}

static inline __attribute__((always_inline)) TGT void ATT_(values)(
    const struct vfy_attn_args *a, const float *S, const float *vv, size_t p0,
    const float inv[VFY_ATTN_ROWS], float *const o[VFY_ATTN_ROWS], const int R, const int DC)
{
    const size_t hd = a->hd;
    for (size_t d0 = 0; d0 < hd; d0 += (size_t)DC * VL) {
        if (hd - d0 >= (size_t)DC * VL)
            ATT_(values_pass)(a, S, vv, p0, d0, inv, o, R, DC, 1);
        else
            ATT_(values_pass)(a, S, vv, p0, d0, inv, o, R, DC, 0);
    }
}

static inline __attribute__((always_inline)) TGT void ATT_(tile)(
    const struct vfy_attn_args *a, size_t i0, size_t h, float *S, const int R)
{
    const size_t hd = a->hd, qd = a->nh * hd, g = h / (a->nh / a->nkv), N = a->n_ctx;
    const size_t p0 = a->pos0 + i0;
    const float *q[VFY_ATTN_ROWS];
    float *o[VFY_ATTN_ROWS], inv[VFY_ATTN_ROWS];
    for (int j = 0; j < R; j++) {
        q[j] = a->q + (i0 + (size_t)j) * qd + h * hd;
        o[j] = a->o + (i0 + (size_t)j) * qd + h * hd;
    }
    ATT_(scores)(a, q, a->kt + g * hd * vfy_attn_kpad(N), p0 + (size_t)R, S, R, R == 1 ? 4 : 2);
    for (int j = 0; j < R; j++)
        inv[j] = ATT_(softmax)(S + (size_t)j * N, p0 + (size_t)j + 1);
    ATT_(values)(a, S, a->v + g * N * hd, p0, inv, o, R, R == 1 ? 4 : VL == 16 ? 4 : 2);
}

TGT void NAME(const struct vfy_attn_args *a, size_t i0, size_t nr, size_t h, float *S)
{
    switch (nr) {
    case 1: ATT_(tile)(a, i0, h, S, 1); break;
    case 2: ATT_(tile)(a, i0, h, S, 2); break;
    case 3: ATT_(tile)(a, i0, h, S, 3); break;
    default: ATT_(tile)(a, i0, h, S, 4); break;
    }
}

#undef NS
