/* vfy_forward.c: the Llama-family decoder, readable top to bottom (llama2.c
 * run.c's forward(), batched): embedding, then per layer RMSNorm, Q/K/V
 * (+bias), RoPE, grouped-query attention over the KV cache, output
 * projection, RMSNorm, SwiGLU FFN or MoE (Mixtral / Qwen2-MoE routing), and
 * the final norm and classifier. Activations are f32; weights stay in their
 * encoding (qnt_matmul_rows). Reductions that decide numbers (norms, softmax
 * of the router) run in double. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qnt_matvec.h"
#include "sb_alloc.h"
#include "sb_math.h"
#include "vfy_attn_impl.h"
#include "vfy_model_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

struct vfy_ctx {
    const struct vfy_model *vm;
    size_t n_ctx, max_batch;
    int nthreads;
    /* activations, B = max_batch rows each */
    float *x, *xb, *xb2;            /* (B, dim) */
    float *q, *att_out;             /* (B, nh*hd) */
    float *k, *v;                   /* (B, nkv*hd) */
    float *hb, *hb2;                /* (B, max_ffn) */
    float *att;                     /* (nthreads, VFY_ATTN_ROWS, n_ctx) attention scores */
    float *key_cache;               /* (n_layers, nkv, P/KB, hd, KB): keys in blocks (vfy_attn_impl.h) */
    float *value_cache;             /* (n_layers, nkv, n_ctx, hd) */
    float *rope_cos, *rope_sin;     /* (n_ctx, hd/2) */
    /* MoE */
    float *router;                  /* (B, E) */
    int *sel;                       /* (B, k) chosen experts */
    float *selw;                    /* (B, k) their weights */
    /* routed rows: one expert's (B rows), or where experts run side by side
       (moe_side) all B k, expert by expert (expert e's at eoff[e] .. eoff[e+1]) */
    int *rows;                      /* (B) one expert's tokens (moe_seq) */
    float *rw;                      /* (B or B k) their weights */
    int *slot;                      /* side by side: (B, k) where token i's choice j sits */
    uint64_t *eoff;                 /* side by side: (2 E + 1) offsets, then fill cursors */
    int *eord;                      /* side by side: (E) experts with rows, most first */
    float *xe, *ye;                 /* (B or B k, dim) */
    float *he, *he2;                /* (B or B k, max_ffn) */
    float *moe_out;                 /* (B, dim) */
    uint64_t *counts;               /* (n_layers, E) */
};

static void mm(const struct vfy_mat *m, const float *X, size_t n, float *Y)
{
    vfy_mat_mul(m, X, n, Y);
}

/* ---- context ---------------------------------------------------------------- */

/* Every buffer of a context, with its element size and count for a shape: the
 * one list vfy_ctx_new allocates from and vfy_ctx_bytes sums, so `subbit mem`
 * sizes the buffers the core really makes. */
enum { CTX_X, CTX_XB, CTX_XB2, CTX_Q, CTX_ATT_OUT, CTX_K, CTX_V, CTX_HB, CTX_HB2, CTX_ATT,
       CTX_KCACHE, CTX_VCACHE, CTX_COS, CTX_SIN, CTX_ROUTER, CTX_SEL, CTX_SELW, CTX_ROWS, CTX_RW,
       CTX_SLOT, CTX_EOFF, CTX_EORD, CTX_XE, CTX_YE, CTX_MOE_OUT, CTX_HE, CTX_HE2, CTX_COUNTS,
       CTX_NBUF };

static const size_t ctx_off[CTX_NBUF] = {
    offsetof(struct vfy_ctx, x), offsetof(struct vfy_ctx, xb), offsetof(struct vfy_ctx, xb2),
    offsetof(struct vfy_ctx, q), offsetof(struct vfy_ctx, att_out), offsetof(struct vfy_ctx, k),
    offsetof(struct vfy_ctx, v), offsetof(struct vfy_ctx, hb), offsetof(struct vfy_ctx, hb2),
    offsetof(struct vfy_ctx, att), offsetof(struct vfy_ctx, key_cache),
    offsetof(struct vfy_ctx, value_cache), offsetof(struct vfy_ctx, rope_cos),
    offsetof(struct vfy_ctx, rope_sin), offsetof(struct vfy_ctx, router),
    offsetof(struct vfy_ctx, sel), offsetof(struct vfy_ctx, selw), offsetof(struct vfy_ctx, rows),
    offsetof(struct vfy_ctx, rw), offsetof(struct vfy_ctx, slot), offsetof(struct vfy_ctx, eoff),
    offsetof(struct vfy_ctx, eord), offsetof(struct vfy_ctx, xe), offsetof(struct vfy_ctx, ye),
    offsetof(struct vfy_ctx, moe_out), offsetof(struct vfy_ctx, he), offsetof(struct vfy_ctx, he2),
    offsetof(struct vfy_ctx, counts),
};

/* Whether a context of nthreads may run a batch's experts side by side
 * (moe()): two experts a thread at least. */
static int moe_side(size_t E, size_t nthreads)
{
    return nthreads > 1 && E >= 2 * nthreads;
}

/* counts (elements) and element sizes of every buffer; 1 on overflow */
static int ctx_layout(const struct vfy_ctx_shape *s, size_t n_ctx, size_t B, size_t nthreads,
                      uint64_t cnt[CTX_NBUF], size_t esz[CTX_NBUF])
{
    const uint64_t dim = s->dim, hd = s->head_dim, qd = s->n_heads * hd;
    const uint64_t kvd = s->n_kv_heads * hd, F = s->ffn ? s->ffn : 1, E = s->n_experts;
    const uint64_t K = s->n_experts_used, L = s->n_layers, T = n_ctx;
    const uint64_t S = moe_side(s->n_experts, nthreads) ? K : 1;
    uint64_t cache, kcache;   /* the keys' positions rounded up to whole blocks */
    if (sb_mul_u64(L, T, &cache) || sb_mul_u64(cache, kvd, &cache) ||
        sb_mul_u64(L, vfy_attn_kpad(n_ctx), &kcache) || sb_mul_u64(kcache, kvd, &kcache))
        return 1;
    const uint64_t c[CTX_NBUF] = {
        [CTX_X] = B * dim, [CTX_XB] = B * dim, [CTX_XB2] = B * dim,          /* (B, dim) */
        [CTX_Q] = B * qd, [CTX_ATT_OUT] = B * qd,                          /* (B, nh*hd) */
        [CTX_K] = B * kvd, [CTX_V] = B * kvd,                              /* (B, nkv*hd) */
        [CTX_HB] = B * F, [CTX_HB2] = B * F,                               /* (B, max_ffn) */
        [CTX_ATT] = nthreads * VFY_ATTN_ROWS * T,                         /* (threads, 4, n_ctx) */
        [CTX_KCACHE] = kcache, [CTX_VCACHE] = cache,  /* (L, nkv, P / 16, hd, 16), (L, nkv, n_ctx, hd) */
        [CTX_COS] = T * (hd / 2), [CTX_SIN] = T * (hd / 2),                /* (n_ctx, hd/2) */
        /* MoE */
        [CTX_ROUTER] = E ? B * E : 0, [CTX_SEL] = E ? B * K : 0, [CTX_SELW] = E ? B * K : 0,
        /* the routed rows: B of one expert at a time, or all B k (experts side by side) */
        [CTX_ROWS] = E ? B : 0, [CTX_RW] = E ? B * S : 0, [CTX_SLOT] = S > 1 ? B * K : 0,
        [CTX_EOFF] = S > 1 ? 2 * E + 1 : 0, [CTX_EORD] = S > 1 ? E : 0,
        [CTX_XE] = E ? B * S * dim : 0, [CTX_YE] = E ? B * S * dim : 0,
        [CTX_MOE_OUT] = E ? B * dim : 0, [CTX_HE] = E ? B * S * F : 0,
        [CTX_HE2] = E ? B * S * F : 0, [CTX_COUNTS] = L * E,
    };
    for (int i = 0; i < CTX_NBUF; i++) {
        cnt[i] = c[i];
        esz[i] = i == CTX_SEL || i == CTX_ROWS || i == CTX_SLOT || i == CTX_EORD ? sizeof(int)
                 : i == CTX_COUNTS || i == CTX_EOFF                          ? sizeof(uint64_t)
                                                                             : sizeof(float);
    }
    return 0;
}

int vfy_ctx_bytes(const struct vfy_ctx_shape *s, size_t n_ctx, size_t max_batch, size_t nthreads,
                  struct vfy_ctx_size *out)
{
    uint64_t cnt[CTX_NBUF], b;
    size_t esz[CTX_NBUF];
    memset(out, 0, sizeof *out);
    if (ctx_layout(s, n_ctx, max_batch, nthreads, cnt, esz))
        return SB_EINVAL;
    for (int i = 0; i < CTX_NBUF; i++) {
        if (sb_mul_u64(cnt[i], esz[i], &b))
            return SB_EINVAL;
        uint64_t *sum = i == CTX_KCACHE || i == CTX_VCACHE ? &out->kv : &out->buffers;
        if (sb_add_u64(*sum, b, sum))
            return SB_EINVAL;
    }
    return SB_OK;
}

void vfy_model_ctx_shape(const struct vfy_model *vm, struct vfy_ctx_shape *s)
{
    const struct vfy_model_info *in = &vm->info;
    s->n_layers = (size_t)in->n_layers;
    s->dim = (size_t)in->dim;
    s->n_heads = (size_t)in->n_heads;
    s->n_kv_heads = (size_t)in->n_kv_heads;
    s->head_dim = (size_t)in->head_dim;
    s->ffn = (size_t)(vm->max_ffn > 0 ? vm->max_ffn : 1);
    s->n_experts = (size_t)in->n_experts;
    s->n_experts_used = (size_t)in->n_experts_used;
}

int vfy_ctx_new(struct vfy_ctx **out, const struct vfy_model *vm, size_t n_ctx, size_t max_batch,
                struct sb_err *err)
{
    *out = NULL;
    if (n_ctx == 0 || max_batch == 0)
        return sb_err_set(err, SB_EINVAL, "context size and batch must be positive");
    if (max_batch > n_ctx)
        max_batch = n_ctx;
    if (vm->m->arch.sliding_window > 0 && n_ctx > (size_t)vm->m->arch.sliding_window)
        return sb_err_set(err, SB_EUNSUPPORTED, "context %zu exceeds the model's sliding window "
                          "%d, which the reference core does not implement", n_ctx,
                          vm->m->arch.sliding_window);
    if (n_ctx > ((size_t)1 << 24))
        return sb_err_set(err, SB_EINVAL, "context size %zu too large", n_ctx);
    struct vfy_ctx *c = sb_calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->vm = vm;
    c->n_ctx = n_ctx;
    c->max_batch = max_batch;
#ifdef _OPENMP
    c->nthreads = omp_get_max_threads();
#else
    c->nthreads = 1;
#endif
    struct vfy_ctx_shape shape;
    uint64_t cnt[CTX_NBUF];
    size_t esz[CTX_NBUF];
    vfy_model_ctx_shape(vm, &shape);
    if (ctx_layout(&shape, n_ctx, max_batch, (size_t)c->nthreads, cnt, esz))
        goto oom;
    for (int i = 0; i < CTX_NBUF; i++) {
        if (!cnt[i])
            continue;    /* a dense model has no MoE buffers */
        void *p = cnt[i] <= SIZE_MAX / esz[i] ? sb_calloc((size_t)cnt[i], esz[i]) : NULL;
        if (!p)
            goto oom;
        memcpy((char *)c + ctx_off[i], &p, sizeof p);   /* the member, whatever its type */
    }
    /* RoPE angles: pair j turns by pos * theta^(-2j/hd), computed in double */
    const size_t hd = shape.head_dim;
    for (size_t p = 0; p < n_ctx; p++)
        for (size_t j = 0; j < hd / 2; j++) {
            double ang = (double)p * pow(vm->rope_theta, -2.0 * (double)j / (double)hd);
            c->rope_cos[p * (hd / 2) + j] = (float)cos(ang);
            c->rope_sin[p * (hd / 2) + j] = (float)sin(ang);
        }
    *out = c;
    return SB_OK;
oom:
    vfy_ctx_free(c);
    return sb_err_set(err, SB_ENOMEM, "out of memory for a context of %zu positions", n_ctx);
}

void vfy_ctx_free(struct vfy_ctx *c)
{
    if (!c)
        return;
    for (int i = 0; i < CTX_NBUF; i++) {
        void *p;
        memcpy(&p, (char *)c + ctx_off[i], sizeof p);
        sb_free(p);
    }
    sb_free(c);
}

size_t vfy_ctx_n_ctx(const struct vfy_ctx *c)
{
    return c->n_ctx;
}

const struct vfy_model *vfy_ctx_model(const struct vfy_ctx *c)
{
    return c->vm;
}

const uint64_t *vfy_ctx_expert_counts(const struct vfy_ctx *c)
{
    return c->counts;
}

/* ---- building blocks ---------------------------------------------------------- */

/* Per-token work (norms, RoPE and the cache, residual adds, the SwiGLU
 * activation) runs over the threads from this many tokens on: each token's
 * operations are unchanged, so the bits do not depend on it; below it (one
 * token generating) a parallel region would cost more than it saves. */
#define VFY_PAR_MIN 8

/* x += y over n rows of dim */
static void add_rows(float *x, const float *y, size_t n, size_t dim)
{
#pragma omp parallel for schedule(static) if (n >= VFY_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            x[i * dim + j] += y[i * dim + j];
}

/* o = w * x / sqrt(mean(x^2) + eps) (sum of squares in double) */
static void rmsnorm(float *o, const float *x, const float *w, size_t n, float eps)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const float s = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++)
        o[i] = w[i] * (x[i] * s);
}

/* Rotate each head of v (n_heads * hd) at position pos, pairing by layout. */
static void rope(const struct vfy_ctx *c, float *v, int n_heads, size_t hd, size_t pos)
{
    const float *cs = c->rope_cos + pos * (hd / 2), *sn = c->rope_sin + pos * (hd / 2);
    const bool half = c->vm->info.rope_layout == FMT_ROPE_HALF;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hd;
        for (size_t j = 0; j < hd / 2; j++) {
            /* HF rotate_half pairs (j, j + hd/2); GGUF/llama2.c pair (2j, 2j+1) */
            float *a = half ? &x[j] : &x[2 * j], *b = half ? &x[j + hd / 2] : &x[2 * j + 1];
            const float x0 = *a, x1 = *b;
            *a = x0 * cs[j] - x1 * sn[j];
            *b = x0 * sn[j] + x1 * cs[j];
        }
    }
}

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

/* h = silu(gate x) * (up x); out = down h, for n rows of x */
static void swiglu(const struct vfy_mat *gate, const struct vfy_mat *up, const struct vfy_mat *down,
                   const float *x, size_t n, float *h, float *h2, float *out)
{
    const size_t F = gate->nrows;
    mm(gate, x, n, h);
    mm(up, x, n, h2);
    vfy_swiglu_act(h, h2, n * F);
    mm(down, h, n, out);
}

/* Attention of n tokens at positions pos0.. of layer l; q rotated, cache
 * filled (vfy_attn_impl.h: matrix form per head over tiles of queries). */
static void attention(struct vfy_ctx *c, size_t l, size_t n, size_t pos0)
{
    const struct vfy_model_info *in = &c->vm->info;
    const size_t hd = (size_t)in->head_dim, kvd = (size_t)in->n_kv_heads * hd;
    const struct vfy_attn_args a = {
        .q = c->q, .kt = c->key_cache + l * vfy_attn_kpad(c->n_ctx) * kvd,
        .v = c->value_cache + l * c->n_ctx * kvd, .o = c->att_out, .n = n, .pos0 = pos0,
        .n_ctx = c->n_ctx, .nh = (size_t)in->n_heads, .nkv = (size_t)in->n_kv_heads, .hd = hd,
        .scale = 1.0f / sqrtf((float)hd), .scratch = c->att,
    };
    vfy_attn_run(&a, c->nthreads, VFY_ATTN_BEST);
}

/* Q/K/V of n rows of c->xb (+ biases), RoPE at positions pos0.., into layer
 * l's cache, then attention: the result (the input of o_proj) in c->att_out. */
static void attn_block(struct vfy_ctx *c, const struct vfy_layer *L, size_t l, size_t n,
                       size_t pos0)
{
    const struct vfy_model_info *in = &c->vm->info;
    const size_t hd = (size_t)in->head_dim;
    const size_t qd = (size_t)in->n_heads * hd, kvd = (size_t)in->n_kv_heads * hd;
    mm(&L->wq, c->xb, n, c->q);
    mm(&L->wk, c->xb, n, c->k);
    mm(&L->wv, c->xb, n, c->v);
#pragma omp parallel for schedule(static) if (n >= VFY_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; L->bq && d < qd; d++)
            c->q[i * qd + d] += L->bq[d];
        for (size_t d = 0; L->bk && d < kvd; d++)
            c->k[i * kvd + d] += L->bk[d];
        for (size_t d = 0; L->bv && d < kvd; d++)
            c->v[i * kvd + d] += L->bv[d];
        rope(c, c->q + i * qd, in->n_heads, hd, pos0 + i);
        rope(c, c->k + i * kvd, in->n_kv_heads, hd, pos0 + i);
        /* keys in blocks, (nkv, P / KB, hd, KB) a layer; values (nkv, n_ctx, hd) */
        const size_t P = vfy_attn_kpad(c->n_ctx);
        float *kt = c->key_cache + l * P * kvd;
        float *vc = c->value_cache + l * c->n_ctx * kvd;
        for (size_t g = 0; g < (size_t)in->n_kv_heads; g++) {
            for (size_t d = 0; d < hd; d++)
                kt[g * hd * P + vfy_attn_kidx(hd, pos0 + i, d)] = c->k[i * kvd + g * hd + d];
            memcpy(vc + (g * c->n_ctx + pos0 + i) * hd, c->v + i * kvd + g * hd,
                   hd * sizeof(float));
        }
    }
    attention(c, l, n, pos0);
}

/* Routing of n rows from their router logits (n, E): softmax over all
 * experts, top k (lowest index wins ties), Mixtral renormalises the k. */
static void route(const struct vfy_model *vm, const float *logits, size_t n, int *sel_out,
                  float *w_out)
{
    const size_t E = (size_t)vm->info.n_experts, K = (size_t)vm->info.n_experts_used;
    for (size_t i = 0; i < n; i++) {
        const float *r = logits + i * E;
        double mx = r[0], p[64], sum = 0.0;   /* K <= 64, checked at bind */
        for (size_t e = 1; e < E; e++)
            if (r[e] > mx)
                mx = r[e];
        for (size_t e = 0; e < E; e++)
            sum += exp((double)r[e] - mx);
        int *sel = sel_out + i * K;
        float *w = w_out + i * K;
        double wsum = 0.0;
        for (size_t k = 0; k < K; k++) {
            int best = -1;
            for (size_t e = 0; e < E; e++) {
                bool taken = false;
                for (size_t j = 0; j < k; j++)
                    taken |= sel[j] == (int)e;
                if (!taken && (best < 0 || r[e] > r[best]))
                    best = (int)e;
            }
            sel[k] = best;
            p[k] = exp((double)r[best] - mx) / sum;
            wsum += p[k];
        }
        for (size_t k = 0; k < K; k++)
            w[k] = (float)(vm->renorm_topk ? p[k] / wsum : p[k]);
    }
}

/* sigmoid(g . x) of Qwen2-MoE's shared expert for one row x (dim) */
static float shared_gate(const struct vfy_layer *L, const float *x, size_t dim)
{
    double g = 0.0;
    for (size_t d = 0; d < dim; d++)
        g += (double)L->sh_gate_inp[d] * x[d];
    return (float)(1.0 / (1.0 + exp(-g)));
}

/* Mixture of experts for n rows of c->xb; result in c->moe_out.
 *
 * Each expert's SwiGLU runs on the rows routed to it (in token order), and
 * each token adds its experts' outputs in expert index order, so a batch and
 * single tokens sum alike. An expert's matmuls compute their rows the same
 * way at any thread count, so experts can also run side by side: where the
 * context was made for it (moe_side: its buffers hold all B k routed rows)
 * and a batch has two experts with tokens a thread, the threads take whole
 * experts, most tokens first, each expert's kernels on one thread (sub1
 * experts' few coarse tiles split badly over threads: a synthetic MoE's ppl at
 * 2 threads went from 1.5 to 1.7-1.8x its 1-thread speed). Otherwise one expert after the
 * other, each with every thread (a token's few experts; more threads than
 * experts). The same bits either way. */
static void moe_seq(struct vfy_ctx *c, const struct vfy_layer *L, size_t l, size_t n)
{
    const struct vfy_model *vm = c->vm;
    const size_t E = (size_t)vm->info.n_experts, K = (size_t)vm->info.n_experts_used;
    const size_t dim = (size_t)vm->info.dim;
    memset(c->moe_out, 0, n * dim * sizeof *c->moe_out);
    for (size_t e = 0; e < E; e++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < K; k++)
                if (c->sel[i * K + k] == (int)e) {
                    c->rows[m] = (int)i;
                    c->rw[m] = c->selw[i * K + k];
                    memcpy(c->xe + m * dim, c->xb + i * dim, dim * sizeof(float));
                    m++;
                }
        if (!m)
            continue;
        c->counts[l * E + e] += m;
        const struct vfy_expert *X = &L->experts[e];
        swiglu(&X->gate, &X->up, &X->down, c->xe, m, c->he, c->he2, c->ye);
        for (size_t j = 0; j < m; j++) {
            float *o = c->moe_out + (size_t)c->rows[j] * dim;
            for (size_t d = 0; d < dim; d++)
                o[d] += c->rw[j] * c->ye[j * dim + d];
        }
    }
}

/* moe() side by side; 0 where it does not apply (the caller goes moe_seq). */
static int moe_par(struct vfy_ctx *c, const struct vfy_layer *L, size_t l, size_t n)
{
    const struct vfy_model *vm = c->vm;
    const size_t E = (size_t)vm->info.n_experts, K = (size_t)vm->info.n_experts_used;
    const size_t dim = (size_t)vm->info.dim, F = (size_t)(vm->max_ffn > 0 ? vm->max_ffn : 1);
    if (!moe_side(E, (size_t)c->nthreads) || !c->eoff)
        return 0;
    /* the experts' row counts and offsets (a counting sort of the n k choices) */
    uint64_t *off = c->eoff, *cur = c->eoff + E + 1;
    memset(off, 0, (E + 1) * sizeof *off);
    for (size_t i = 0; i < n * K; i++)
        off[c->sel[i] + 1]++;
    size_t na = 0;
    for (size_t e = 0; e < E; e++)
        na += off[e + 1] != 0;
    if (na < 2 * (size_t)c->nthreads)
        return 0;
    for (size_t e = 0; e < E; e++) {
        c->counts[l * E + e] += off[e + 1];
        off[e + 1] += off[e];
        cur[e] = off[e];
    }
    /* the experts with rows, most first (ties: lower index first) */
    na = 0;
    for (size_t e = 0; e < E; e++) {
        const uint64_t m = off[e + 1] - off[e];
        if (!m)
            continue;
        size_t q = na++;
        for (; q > 0 && off[c->eord[q - 1] + 1] - off[c->eord[q - 1]] < m; q--)
            c->eord[q] = c->eord[q - 1];
        c->eord[q] = (int)e;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < K; k++) {
            const size_t e = (size_t)c->sel[i * K + k], j = (size_t)cur[e]++;
            c->rw[j] = c->selw[i * K + k];
            c->slot[i * K + k] = (int)j;
            memcpy(c->xe + j * dim, c->xb + i * dim, dim * sizeof(float));
        }
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t q = 0; q < na; q++) {
#ifdef _OPENMP
        omp_set_num_threads(1);   /* this thread's nested regions: the expert's kernels */
#endif
        const size_t e = (size_t)c->eord[q], j0 = (size_t)off[e], m = (size_t)(off[e + 1] - j0);
        const struct vfy_expert *X = &L->experts[e];
        swiglu(&X->gate, &X->up, &X->down, c->xe + j0 * dim, m, c->he + j0 * F,
               c->he2 + j0 * F, c->ye + j0 * dim);
    }
    /* each token: its experts' outputs in expert index order, from +0 */
#pragma omp parallel for schedule(static) if (n >= VFY_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float *o = c->moe_out + i * dim;
        memset(o, 0, dim * sizeof *o);
        int done = -1;
        for (size_t k = 0; k < K; k++) {
            int best = -1;   /* the lowest of the k choices above done */
            size_t bk = 0;
            for (size_t t = 0; t < K; t++) {
                const int e = c->sel[i * K + t];
                if (e > done && (best < 0 || e < best)) {
                    best = e;
                    bk = t;
                }
            }
            done = best;
            const size_t j = (size_t)c->slot[i * K + bk];
            for (size_t d = 0; d < dim; d++)
                o[d] += c->rw[j] * c->ye[j * dim + d];
        }
    }
    return 1;
}

static void moe(struct vfy_ctx *c, const struct vfy_layer *L, size_t l, size_t n)
{
    const struct vfy_model *vm = c->vm;
    const size_t dim = (size_t)vm->info.dim;
    mm(&L->router, c->xb, n, c->router);
    route(vm, c->router, n, c->sel, c->selw);
    if (!moe_par(c, L, l, n))
        moe_seq(c, L, l, n);
    if (L->has_shared) {   /* Qwen2-MoE: + sigmoid(g . x) * shared_mlp(x) */
        swiglu(&L->sh_gate, &L->sh_up, &L->sh_down, c->xb, n, c->he, c->he2, c->ye);
        for (size_t i = 0; i < n; i++) {
            const float s = shared_gate(L, c->xb + i * dim, dim);
            for (size_t d = 0; d < dim; d++)
                c->moe_out[i * dim + d] += s * c->ye[i * dim + d];
        }
    }
}

/* ---- one batch ------------------------------------------------------------------ */

static void forward_batch(struct vfy_ctx *c, const int32_t *tok, size_t n, size_t pos0,
                          float *logits, bool all_logits)
/* logits NULL: fill the cache only */
{
    const struct vfy_model *vm = c->vm;
    const struct vfy_model_info *in = &vm->info;
    const size_t dim = (size_t)in->dim;

    vfy_embed(vm, tok, n, c->x);   /* token embeddings (vocab, dim) */

    for (size_t l = 0; l < (size_t)in->n_layers; l++) {
        const struct vfy_layer *L = &vm->layers[l];
        /* attention: x += wo . attn(rope(wq xn), rope(wk xn), wv xn) */
#pragma omp parallel for schedule(static) if (n >= VFY_PAR_MIN)
        for (size_t i = 0; i < n; i++)
            rmsnorm(c->xb + i * dim, c->x + i * dim, L->attn_norm, dim, vm->eps);
        attn_block(c, L, l, n, pos0);
        mm(&L->wo, c->att_out, n, c->xb2);
        add_rows(c->x, c->xb2, n, dim);

        /* FFN: x += swiglu(xn) or moe(xn) */
#pragma omp parallel for schedule(static) if (n >= VFY_PAR_MIN)
        for (size_t i = 0; i < n; i++)
            rmsnorm(c->xb + i * dim, c->x + i * dim, L->ffn_norm, dim, vm->eps);
        if (L->moe) {
            moe(c, L, l, n);
            add_rows(c->x, c->moe_out, n, dim);
        } else {
            swiglu(&L->gate, &L->up, &L->down, c->xb, n, c->hb, c->hb2, c->xb2);
            add_rows(c->x, c->xb2, n, dim);
        }
    }

    /* final norm and classifier: every row, or the last only */
    if (!logits)
        return;
    const size_t first = all_logits ? 0 : n - 1, m = n - first;
    for (size_t i = first; i < n; i++)
        rmsnorm(c->xb + (i - first) * dim, c->x + i * dim, vm->out_norm, dim, vm->eps);
    mm(&vm->out, c->xb, m, logits);
}

int vfy_forward(struct vfy_ctx *c, const int32_t *tokens, size_t n, size_t pos0, float *logits,
                bool all_logits, struct sb_err *err)
{
    const size_t V = (size_t)c->vm->info.vocab;
    if (n == 0)
        return sb_err_set(err, SB_EINVAL, "forward: no tokens");
    if (pos0 > c->n_ctx || n > c->n_ctx - pos0)
        return sb_err_set(err, SB_EINVAL, "forward: positions %zu..%zu past the context size %zu",
                          pos0, pos0 + n - 1, c->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= V)
            return sb_err_set(err, SB_EINVAL, "forward: token id %ld out of range (vocab %zu)",
                              (long)tokens[i], V);
    for (size_t s = 0; s < n; s += c->max_batch) {
        const size_t b = n - s < c->max_batch ? n - s : c->max_batch;
        const bool last = s + b == n;
        if (all_logits)
            forward_batch(c, tokens + s, b, pos0 + s, logits + s * V, true);
        else
            forward_batch(c, tokens + s, b, pos0 + s, last ? logits : NULL, false);
    }
    return SB_OK;
}

/* ---- stepping one layer over many tokens (vfy_model.h) ------------------------- */

void vfy_layer_norm(const struct vfy_model *vm, int l, enum vfy_norm which, const float *x,
                    size_t n, float *out)
{
    const size_t dim = (size_t)vm->info.dim;
    const float *w = which == VFY_NORM_OUT ? vm->out_norm
                     : which == VFY_NORM_ATTN ? vm->layers[l].attn_norm : vm->layers[l].ffn_norm;
    for (size_t i = 0; i < n; i++)
        rmsnorm(out + i * dim, x + i * dim, w, dim, vm->eps);
}

int vfy_layer_attention(struct vfy_ctx *c, int l, const float *xn, size_t n, float *att,
                        struct sb_err *err)
{
    const struct vfy_model_info *in = &c->vm->info;
    const size_t dim = (size_t)in->dim, qd = (size_t)in->n_heads * (size_t)in->head_dim;
    if (l < 0 || l >= in->n_layers || n == 0 || n > c->max_batch || n > c->n_ctx)
        return sb_err_set(err, SB_EINVAL, "layer attention: %zu tokens for a context of %zu "
                          "(batch %zu)", n, c->n_ctx, c->max_batch);
    memcpy(c->xb, xn, n * dim * sizeof(float));
    attn_block(c, &c->vm->layers[l], (size_t)l, n, 0);
    memcpy(att, c->att_out, n * qd * sizeof(float));
    return SB_OK;
}

void vfy_layer_route(struct vfy_ctx *c, int l, const float *xn, size_t n, int *sel, float *selw)
{
    const struct vfy_model *vm = c->vm;
    const size_t E = (size_t)vm->info.n_experts, K = (size_t)vm->info.n_experts_used;
    const size_t dim = (size_t)vm->info.dim;
    for (size_t s = 0; s < n; s += c->max_batch) {
        const size_t b = n - s < c->max_batch ? n - s : c->max_batch;
        mm(&vm->layers[l].router, xn + s * dim, b, c->router);
        route(vm, c->router, b, sel + s * K, selw + s * K);
        (void)E;
    }
}

void vfy_layer_shared_gate(const struct vfy_model *vm, int l, const float *xn, size_t n,
                           float *g)
{
    const size_t dim = (size_t)vm->info.dim;
    for (size_t i = 0; i < n; i++)
        g[i] = shared_gate(&vm->layers[l], xn + i * dim, dim);
}

void vfy_swiglu_act(float *h, const float *h2, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= VFY_PAR_MIN * 1024)
    for (size_t i = 0; i < n; i++)
        h[i] = silu(h[i]) * h2[i];
}
