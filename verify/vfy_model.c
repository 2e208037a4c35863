/* vfy_model.c: bind a fmt_model's tensors to decoder roles (vfy_model.h).
 * Knows both naming schemes and the MoE layouts (classic per-expert, packed
 * gate_up_proj, GGUF 3-D *_exps); knows nothing of the maths (vfy_forward.c). */
#include "vfy_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "qnt_matvec.h"
#include "qnt_type.h"
#include "sb_alloc.h"
#include "vfy_model_impl.h"

struct binder {
    const struct fmt_model *m;
    const char *path;
    struct sb_err *err;
    bool gguf;
};

static void note(struct vfy_model *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct vfy_model *vm, const char *fmt, ...)
{
    struct vfy_model_info *in = &vm->info;
    if (in->n_notes >= VFY_MODEL_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->notes[in->n_notes++], sizeof in->notes[0], fmt, ap);
    va_end(ap);
}

/* the FFN width the configuration states (key names as the container has them) */
static void check_ffn(const struct binder *b, struct vfy_model *vm, int l, long F, bool expert)
{
    const struct fmt_arch *a = &b->m->arch;
    const int want = expert ? a->moe_hidden_dim : a->hidden_dim;
    const char *key = b->gguf ? (expert ? "expert_feed_forward_length" : "feed_forward_length")
                              : (expert && a->kind == FMT_ARCH_QWEN2_MOE ? "moe_intermediate_size"
                                                                         : "intermediate_size");
    if (want <= 0 || want == F || vm->ffn_noted)
        return;
    vm->ffn_noted = true;
    note(vm, "%s: %s %d disagrees with the tensors (%ld in layer %d): using the tensors' %ld",
         b->path, key, want, F, l, F);
}

static const char *shape_str(const struct fmt_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int d = 0; d < t->ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
    return buf;
}

static const struct fmt_tensor *find(const struct binder *b, const char *name)
{
    return fmt_model_find(b->m, name);
}

static int missing(const struct binder *b, const char *name)
{
    return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' not found", b->path, name);
}

/* A view of all rows of t as [rows, cols], checked against the kernels. */
static int view_tensor(const struct binder *b, const struct fmt_tensor *t, struct vfy_mat *mat)
{
    uint64_t rows, cols;
    char sbuf[96];
    if (sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols))
        return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' has a shape that overflows",
                          b->path, t->name);
    if (!t->data)
        return sb_err_set(b->err, SB_EINVAL, "%s: tensor '%s' has no data (opened headers only)",
                          b->path, t->name);
    int rc = qnt_matvec_check(t->dtype, t->nbytes, &t->qp, rows, cols, 0, rows);
    if (rc == SB_EUNSUPPORTED)
        return sb_err_set(b->err, SB_EUNSUPPORTED,
                          "%s: tensor '%s': no kernel for encoding '%s'", b->path, t->name,
                          sb_dtype_name(t->dtype));
    if (rc != SB_OK)
        return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' (%s, %s): %llu bytes do not fit",
                          b->path, t->name, sb_dtype_name(t->dtype), shape_str(t, sbuf, sizeof sbuf),
                          (unsigned long long)t->nbytes);
    /* the structural check of a variable-length blob (the size rule, again, for the rest) */
    if (qnt_type_validate(t->dtype, t->data, t->nbytes, rows, cols, &t->qp) != SB_OK)
        return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s': damaged %s data", b->path,
                          t->name, sb_dtype_name(t->dtype));
    memset(mat, 0, sizeof *mat);   /* a caller's local too: no stale pack or replaced */
    mat->dt = t->dtype;
    mat->w = t->data;
    mat->nbytes = t->nbytes;
    mat->qp = t->qp;
    mat->rows = rows;
    mat->cols = cols;
    mat->row0 = 0;
    mat->nrows = rows;
    mat->name = t->name;
    return SB_OK;
}

static int slice(const struct binder *b, const struct vfy_mat *all, size_t row0, size_t nrows,
                 struct vfy_mat *out)
{
    *out = *all;
    out->row0 = row0;
    out->nrows = nrows;
    int rc = qnt_matvec_check(all->dt, all->nbytes, &all->qp, all->rows, all->cols, row0, nrows);
    if (rc != SB_OK)
        return sb_err_set(b->err, rc == SB_EUNSUPPORTED ? SB_EUNSUPPORTED : SB_EFORMAT,
                          "%s: tensor '%s': cannot take rows %zu..%zu of %s", b->path, all->name,
                          row0, row0 + nrows, sb_dtype_name(all->dt));
    return SB_OK;
}

/* A 2-D matrix (out_dim, in_dim); out_dim < 0 accepts any (and returns it). */
static int bind_mat(const struct binder *b, const char *name, long out_dim, long in_dim,
                    struct vfy_mat *mat)
{
    const struct fmt_tensor *t = find(b, name);
    char sbuf[96];
    if (!t)
        return missing(b, name);
    if (t->ndim != 2 || (out_dim >= 0 && t->shape[0] != out_dim) || t->shape[1] != in_dim) {
        if (out_dim >= 0)
            return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' has shape %s, expected [%ld, %ld]",
                              b->path, name, shape_str(t, sbuf, sizeof sbuf), out_dim, in_dim);
        return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' has shape %s, expected [*, %ld]",
                          b->path, name, shape_str(t, sbuf, sizeof sbuf), in_dim);
    }
    return view_tensor(b, t, mat);
}

/* A vector of n elements (any shape holding exactly n), copied to f32. */
static int bind_vec(const struct binder *b, const char *name, long n, float **out)
{
    const struct fmt_tensor *t = find(b, name);
    char sbuf[96];
    if (!t)
        return missing(b, name);
    uint64_t rows, cols;
    if (sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols) || rows * cols != (uint64_t)n)
        return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' has shape %s, expected [%ld]",
                          b->path, name, shape_str(t, sbuf, sizeof sbuf), n);
    struct vfy_mat mv;
    int rc = view_tensor(b, t, &mv);
    if (rc)
        return rc;
    float *v = sb_malloc((size_t)n * sizeof *v);
    if (!v)
        return sb_err_set(b->err, SB_ENOMEM, "%s: out of memory", b->path);
    for (uint64_t r = 0; r < rows; r++)
        qnt_matvec_get_row(mv.dt, mv.w, mv.nbytes, &mv.qp, rows, cols, r, v + r * cols);
    *out = v;
    return SB_OK;
}

static int bind_opt_vec(const struct binder *b, const char *name, long n, float **out)
{
    *out = NULL;
    return find(b, name) ? bind_vec(b, name, n, out) : SB_OK;
}

/* ---- experts ------------------------------------------------------------- */

/* A 3-D stacked expert tensor [E, R, in_dim]; returns R via *r_out. */
static int bind_stacked(const struct binder *b, const char *name, int E, long in_dim,
                        struct vfy_mat *all, long *r_out)
{
    const struct fmt_tensor *t = find(b, name);
    char sbuf[96];
    if (!t)
        return missing(b, name);
    if (t->ndim != 3 || t->shape[0] != E || t->shape[2] != in_dim)
        return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' has shape %s, expected [%d, *, %ld]",
                          b->path, name, shape_str(t, sbuf, sizeof sbuf), E, in_dim);
    *r_out = (long)t->shape[1];
    return view_tensor(b, t, all);
}

static int bind_experts(const struct binder *b, struct vfy_layer *L, int l, int E, long dim)
{
    char n1[160], n2[160], n3[160];
    int rc;
    L->experts = sb_calloc((size_t)E, sizeof *L->experts);
    if (!L->experts)
        return sb_err_set(b->err, SB_ENOMEM, "%s: out of memory", b->path);
    long F = -1;
    if (b->gguf) {
        snprintf(n1, sizeof n1, "blk.%d.ffn_gate_exps.weight", l);
        if (find(b, n1)) {   /* 3-D [E, F, dim] x2 and [E, dim, F] */
            struct vfy_mat g, u, d;
            long Fg, Fu, Hd;
            snprintf(n2, sizeof n2, "blk.%d.ffn_up_exps.weight", l);
            snprintf(n3, sizeof n3, "blk.%d.ffn_down_exps.weight", l);
            if ((rc = bind_stacked(b, n1, E, dim, &g, &Fg)) ||
                (rc = bind_stacked(b, n2, E, dim, &u, &Fu)))
                return rc;
            const struct fmt_tensor *td = find(b, n3);
            if (!td)
                return missing(b, n3);
            if (Fu != Fg || td->ndim != 3 || td->shape[0] != E || td->shape[1] != dim ||
                td->shape[2] != Fg) {
                char sbuf[96];
                return sb_err_set(b->err, SB_EFORMAT,
                                  "%s: tensor '%s' has shape %s, expected [%d, %ld, %ld]", b->path,
                                  n3, shape_str(td, sbuf, sizeof sbuf), E, dim, Fg);
            }
            if ((rc = bind_stacked(b, n3, E, Fg, &d, &Hd)))
                return rc;
            F = Fg;
            for (int e = 0; e < E; e++) {
                if ((rc = slice(b, &g, (size_t)e * F, F, &L->experts[e].gate)) ||
                    (rc = slice(b, &u, (size_t)e * F, F, &L->experts[e].up)) ||
                    (rc = slice(b, &d, (size_t)e * dim, dim, &L->experts[e].down)))
                    return rc;
            }
        } else {   /* old GGUF: one tensor per expert */
            for (int e = 0; e < E; e++) {
                snprintf(n1, sizeof n1, "blk.%d.ffn_gate.%d.weight", l, e);
                snprintf(n2, sizeof n2, "blk.%d.ffn_up.%d.weight", l, e);
                snprintf(n3, sizeof n3, "blk.%d.ffn_down.%d.weight", l, e);
                if ((rc = bind_mat(b, n1, F, dim, &L->experts[e].gate)))
                    return e == 0 && !find(b, n1)
                               ? sb_err_set(b->err, SB_EFORMAT, "%s: tensor 'blk.%d.ffn_gate_exps.weight' not found",
                                            b->path, l)
                               : rc;
                F = (long)L->experts[e].gate.nrows;
                if ((rc = bind_mat(b, n2, F, dim, &L->experts[e].up)) ||
                    (rc = bind_mat(b, n3, dim, F, &L->experts[e].down)))
                    return rc;
            }
        }
    } else {
        char pre[96];
        snprintf(pre, sizeof pre, "model.layers.%d.", l);
        snprintf(n1, sizeof n1, "%smlp.experts.gate_up_proj", pre);
        const struct fmt_tensor *gu = find(b, n1);
        if (!gu) {
            snprintf(n1, sizeof n1, "%smlp.experts.gate_up_proj.weight", pre);
            gu = find(b, n1);
        }
        if (gu) {   /* packed: [E, 2F, dim] with gate rows first, then [E, dim, F] */
            struct vfy_mat a, d;
            long F2, Hd;
            if ((rc = bind_stacked(b, n1, E, dim, &a, &F2)))
                return rc;
            if (F2 % 2)
                return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s': odd gate_up width %ld",
                                  b->path, n1, F2);
            F = F2 / 2;
            snprintf(n3, sizeof n3, "%smlp.experts.down_proj", pre);
            if (!find(b, n3))
                snprintf(n3, sizeof n3, "%smlp.experts.down_proj.weight", pre);
            if ((rc = bind_stacked(b, n3, E, F, &d, &Hd)))
                return rc;
            if (Hd != dim)
                return sb_err_set(b->err, SB_EFORMAT, "%s: tensor '%s' has %ld rows per expert, expected %ld",
                                  b->path, n3, Hd, dim);
            for (int e = 0; e < E; e++) {
                if ((rc = slice(b, &a, (size_t)e * 2 * F, F, &L->experts[e].gate)) ||
                    (rc = slice(b, &a, (size_t)e * 2 * F + F, F, &L->experts[e].up)) ||
                    (rc = slice(b, &d, (size_t)e * dim, dim, &L->experts[e].down)))
                    return rc;
            }
        } else {
            /* classic: Mixtral block_sparse_moe.experts.E.w1/w3/w2, or mlp.experts.E.*_proj */
            snprintf(n1, sizeof n1, "%sblock_sparse_moe.experts.0.w1.weight", pre);
            bool mixtral = find(b, n1) != NULL;
            for (int e = 0; e < E; e++) {
                if (mixtral) {
                    snprintf(n1, sizeof n1, "%sblock_sparse_moe.experts.%d.w1.weight", pre, e);
                    snprintf(n2, sizeof n2, "%sblock_sparse_moe.experts.%d.w3.weight", pre, e);
                    snprintf(n3, sizeof n3, "%sblock_sparse_moe.experts.%d.w2.weight", pre, e);
                } else {
                    snprintf(n1, sizeof n1, "%smlp.experts.%d.gate_proj.weight", pre, e);
                    snprintf(n2, sizeof n2, "%smlp.experts.%d.up_proj.weight", pre, e);
                    snprintf(n3, sizeof n3, "%smlp.experts.%d.down_proj.weight", pre, e);
                }
                if ((rc = bind_mat(b, n1, F, dim, &L->experts[e].gate)))
                    return rc;
                F = (long)L->experts[e].gate.nrows;
                if ((rc = bind_mat(b, n2, F, dim, &L->experts[e].up)) ||
                    (rc = bind_mat(b, n3, dim, F, &L->experts[e].down)))
                    return rc;
            }
        }
    }
    L->moe_dim = (int)F;
    return SB_OK;
}

/* ---- one layer ------------------------------------------------------------- */

static int bind_layer(const struct binder *b, struct vfy_model *vm, int l)
{
    struct vfy_layer *L = &vm->layers[l];
    const struct fmt_arch *a = &b->m->arch;
    const long dim = vm->info.dim, hd = vm->info.head_dim;
    const long qdim = vm->info.n_heads * hd, kvdim = vm->info.n_kv_heads * hd;
    char n[5][160];
    int rc;
    const char *p = b->gguf ? "blk" : "model.layers";
#define NM(i, fmt) snprintf(n[i], sizeof n[i], "%s.%d." fmt, p, l)
    if (b->gguf) {
        NM(0, "attn_norm.weight"); NM(1, "ffn_norm.weight");
        NM(2, "attn_q.weight"); NM(3, "attn_k.weight"); NM(4, "attn_v.weight");
    } else {
        NM(0, "input_layernorm.weight"); NM(1, "post_attention_layernorm.weight");
        NM(2, "self_attn.q_proj.weight"); NM(3, "self_attn.k_proj.weight");
        NM(4, "self_attn.v_proj.weight");
    }
    if ((rc = bind_vec(b, n[0], dim, &L->attn_norm)) || (rc = bind_vec(b, n[1], dim, &L->ffn_norm)) ||
        (rc = bind_mat(b, n[2], qdim, dim, &L->wq)) || (rc = bind_mat(b, n[3], kvdim, dim, &L->wk)) ||
        (rc = bind_mat(b, n[4], kvdim, dim, &L->wv)))
        return rc;
    if (b->gguf) {
        NM(0, "attn_output.weight"); NM(1, "attn_q.bias"); NM(2, "attn_k.bias"); NM(3, "attn_v.bias");
    } else {
        NM(0, "self_attn.o_proj.weight"); NM(1, "self_attn.q_proj.bias");
        NM(2, "self_attn.k_proj.bias"); NM(3, "self_attn.v_proj.bias");
    }
    if ((rc = bind_mat(b, n[0], dim, qdim, &L->wo)))
        return rc;
    if (a->qkv_bias) {
        if ((rc = bind_vec(b, n[1], qdim, &L->bq)) || (rc = bind_vec(b, n[2], kvdim, &L->bk)) ||
            (rc = bind_vec(b, n[3], kvdim, &L->bv)))
            return rc;
    } else if ((rc = bind_opt_vec(b, n[1], qdim, &L->bq)) || (rc = bind_opt_vec(b, n[2], kvdim, &L->bk)) ||
               (rc = bind_opt_vec(b, n[3], kvdim, &L->bv))) {
        return rc;
    }

    /* FFN: sparse or dense (formats.md §3.3: Qwen2-MoE sparse when (l+1) % step == 0) */
    const int E = vm->info.n_experts;
    L->moe = E > 0;
    if (E > 0 && a->kind == FMT_ARCH_QWEN2_MOE) {
        int step = a->decoder_sparse_step > 0 ? a->decoder_sparse_step : 1;
        L->moe = (l + 1) % step == 0;
    }
    if (!L->moe) {
        if (b->gguf) {
            NM(0, "ffn_gate.weight"); NM(1, "ffn_up.weight"); NM(2, "ffn_down.weight");
        } else {
            NM(0, "mlp.gate_proj.weight"); NM(1, "mlp.up_proj.weight"); NM(2, "mlp.down_proj.weight");
        }
        if ((rc = bind_mat(b, n[0], -1, dim, &L->gate)))
            return rc;
        const long F = (long)L->gate.nrows;
        if ((rc = bind_mat(b, n[1], F, dim, &L->up)) || (rc = bind_mat(b, n[2], dim, F, &L->down)))
            return rc;
        L->ffn_dim = (int)F;
        check_ffn(b, vm, l, F, false);
        if (F > vm->max_ffn)
            vm->max_ffn = (int)F;
        return SB_OK;
    }
    vm->info.n_moe_layers++;
    if (b->gguf) {
        NM(0, "ffn_gate_inp.weight");
    } else {
        NM(0, "mlp.gate.weight");
        NM(1, "block_sparse_moe.gate.weight");
        if (!find(b, n[0]) && find(b, n[1]))
            memcpy(n[0], n[1], sizeof n[0]);
    }
    if ((rc = bind_mat(b, n[0], E, dim, &L->router)) || (rc = bind_experts(b, L, l, E, dim)))
        return rc;
    check_ffn(b, vm, l, L->moe_dim, true);
    if (L->moe_dim > vm->max_ffn)
        vm->max_ffn = L->moe_dim;

    /* Qwen2-MoE shared expert with its sigmoid gate */
    if (b->gguf) {
        NM(0, "ffn_gate_inp_shexp.weight"); NM(1, "ffn_gate_shexp.weight");
        NM(2, "ffn_up_shexp.weight"); NM(3, "ffn_down_shexp.weight");
    } else {
        NM(0, "mlp.shared_expert_gate.weight"); NM(1, "mlp.shared_expert.gate_proj.weight");
        NM(2, "mlp.shared_expert.up_proj.weight"); NM(3, "mlp.shared_expert.down_proj.weight");
    }
#undef NM
    L->has_shared = (a->kind == FMT_ARCH_QWEN2_MOE && a->shared_hidden_dim > 0) || find(b, n[0]) ||
                    find(b, n[1]);
    if (L->has_shared) {
        if ((rc = bind_vec(b, n[0], dim, &L->sh_gate_inp)) || (rc = bind_mat(b, n[1], -1, dim, &L->sh_gate)))
            return rc;
        const long S = (long)L->sh_gate.nrows;
        if ((rc = bind_mat(b, n[2], S, dim, &L->sh_up)) || (rc = bind_mat(b, n[3], dim, S, &L->sh_down)))
            return rc;
        L->sh_dim = (int)S;
        if (S > vm->max_ffn)
            vm->max_ffn = (int)S;
    }
    return SB_OK;
}

/* ---- the model ------------------------------------------------------------- */

/* q8_0 / q4_0 matrices are repacked once, 16 rows interleaved (qnt_matmul_pack_into):
 * one token then reads a tile in one stream, as llama.cpp's repacked q4_0
 * does; f32 / f16 / bf16 ones are copied as they are. The packs have the
 * format's bytes a block and share one arena, in transparent huge pages where
 * the kernel gives them and the arena reaches VFY_PACK_HUGE_MIN (MADV_HUGEPAGE:
 * fewer TLB misses while one token streams the weights; one token of the 57M
 * f32 llama: 75 tokens/s from the file's mapping, 86 from a copy in 4 KiB
 * pages, 108-109 in huge pages); the mapped pages of a tensor, and 64 KiB on
 * either side that fault-around maps while its neighbours are read, are
 * released once its pack is made (fmt_model_release_around: re-read on
 * access, e.g. by an embedding lookup), so the weights stay resident once. */
#define PACK_ALIGN ((size_t)2 << 20)

static void size_mat(struct vfy_model *vm, struct vfy_mat *m)
{
    if (!m->w)
        return;
    const uint64_t nb = qnt_matmul_pack_bytes(m->dt, m->cols, m->nrows);
    if (nb)
        vm->pack_bytes += (nb + 63) / 64 * 64;
}

/* the mapped pages of a packed matrix's tensor */
static void release_mat(struct vfy_model *vm, struct vfy_mat *m)
{
    if (!m->pack || !m->name)
        return;
    const struct fmt_tensor *t = fmt_model_find(vm->m, m->name);
    if (t && t->data == m->w)
        fmt_model_release_around(vm->m, t, FMT_FAULT_AROUND);
}

static void pack_mat(struct vfy_model *vm, struct vfy_mat *m)
{
    if (m->pack || !m->w || !vm->pack_arena)
        return;
    const uint64_t nb = qnt_matmul_pack_bytes(m->dt, m->cols, m->nrows);
    if (!nb || vm->pack_used + nb > vm->pack_bytes)
        return;
    void *p = (uint8_t *)vm->pack_arena + vm->pack_used;
    if (qnt_matmul_pack_into(m->dt, m->w, &m->qp, m->cols, m->row0, m->nrows, p) != 0)
        return;
    m->pack = p;
    vm->pack_used += (nb + 63) / 64 * 64;
    release_mat(vm, m);
}

static void unpack_mat(struct vfy_model *vm, struct vfy_mat *m)
{
    (void)vm;
    m->pack = NULL;   /* the arena is the model's */
}

static void each_mat(struct vfy_model *vm, void (*fn)(struct vfy_model *, struct vfy_mat *));

static void pack_all(struct vfy_model *vm)
{
    vm->pack_bytes = 0;
    each_mat(vm, size_mat);
    if (!vm->pack_bytes || vm->pack_bytes > SIZE_MAX - PACK_ALIGN)
        return;
    const size_t n = (size_t)vm->pack_bytes;
    vm->pack_arena = sb_malloc_align(PACK_ALIGN, (n + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN);
    if (!vm->pack_arena)
        return;   /* no packs: the file's layout, the same bits */
#ifdef MADV_HUGEPAGE
    if (n >= VFY_PACK_HUGE_MIN)
        (void)madvise(vm->pack_arena, (n + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN,
                      MADV_HUGEPAGE);
#endif
    vm->pack_used = 0;
    each_mat(vm, pack_mat);
}

/* fn on every matrix the forward multiplies with (not the embedding's rows) */
static void each_mat(struct vfy_model *vm, void (*fn)(struct vfy_model *, struct vfy_mat *))
{
    for (int l = 0; vm->layers && l < vm->info.n_layers; l++) {
        struct vfy_layer *L = &vm->layers[l];
        struct vfy_mat *ms[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down,
                                 &L->router, &L->sh_gate, &L->sh_up, &L->sh_down };
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
            fn(vm, ms[i]);
        for (int e = 0; L->moe && L->experts && e < vm->info.n_experts; e++) {
            fn(vm, &L->experts[e].gate);
            fn(vm, &L->experts[e].up);
            fn(vm, &L->experts[e].down);
        }
    }
    fn(vm, &vm->out);
}

int vfy_model_new(struct vfy_model **out, const struct fmt_model *m, struct sb_err *err)
{
    return vfy_model_new_opts(out, m, 0, err);
}

int vfy_model_new_opts(struct vfy_model **out, const struct fmt_model *m, unsigned flags,
                       struct sb_err *err)
{
    *out = NULL;
    struct binder b = { m, m->path ? m->path : "model", err, false };
    const struct fmt_arch *a = &m->arch;
    const struct fmt_tensor *te;
    int rc;
    if ((te = fmt_model_find(m, "token_embd.weight")))
        b.gguf = true;
    else if (!(te = fmt_model_find(m, "model.embed_tokens.weight")))
        return sb_err_set(err, SB_EFORMAT,
                          "%s: tensor 'model.embed_tokens.weight' not found (nor 'token_embd.weight')",
                          b.path);
    if (!m->has_arch && m->arch_error[0])   /* the config's own error, not a vaguer one */
        return sb_err_set(err, SB_EFORMAT, "%s", m->arch_error);
    if (!m->has_arch || a->n_layers <= 0 || a->n_heads <= 0)
        return sb_err_set(err, SB_EFORMAT, "%s: no model configuration (layers and heads)", b.path);
    /* every layer has tensors of its own: a layer count from a header is
     * checked against them before anything is sized by it (a fuzzed GGUF
     * asked for 14 GB of layer records) */
    if ((size_t)a->n_layers > m->n_tensors)
        return sb_err_set(err, SB_EFORMAT, "%s: the configuration says %d layers, but the model "
                          "has %zu tensors", b.path, a->n_layers, m->n_tensors);
    if (te->ndim != 2)
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' is not 2-D", b.path, te->name);
    if (a->unimplemented[0])
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: %s is not implemented by the reference core",
                          b.path, a->unimplemented);

    struct vfy_model *vm = sb_calloc(1, sizeof *vm);
    if (!vm)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", b.path);
    vm->m = m;
    struct vfy_model_info *in = &vm->info;
    in->n_layers = a->n_layers;
    in->dim = a->dim > 0 ? a->dim : (int)te->shape[1];
    in->n_heads = a->n_heads;
    in->n_kv_heads = a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads;
    in->head_dim = a->head_dim > 0 ? a->head_dim : in->dim / in->n_heads;
    in->vocab = (int)te->shape[0];
    in->n_experts = a->n_experts > 1 ? a->n_experts : 0;
    in->n_experts_used = in->n_experts ? (a->n_experts_used > 0 ? a->n_experts_used : 2) : 0;
    in->n_ctx_train = a->n_ctx;
    in->gguf_names = b.gguf;
    in->rope_layout = a->rope_layout;
    /* a config.json value <= 0 is refused by fmt_config; other sources (a
     * hand-made or older .subbit, GGUF metadata) get the default, said so */
    vm->eps = a->norm_eps > 0 ? a->norm_eps : 1e-5f;
    vm->rope_theta = a->rope_theta > 0 ? a->rope_theta : 10000.0;
    if (!(a->norm_eps > 0))
        note(vm, "%s: rms_norm_eps %g is not > 0: using 1e-05", b.path, (double)a->norm_eps);
    if (!(a->rope_theta > 0))
        note(vm, "%s: rope_theta %g is not > 0: using 10000", b.path, (double)a->rope_theta);
    if (a->vocab_size > in->vocab)
        note(vm, "%s: vocab_size %d is more than the embedding's %d rows: using %d", b.path,
             a->vocab_size, in->vocab, in->vocab);
    if (b.m->vocab.approx[0])
        note(vm, "%s: %s is not a pre-tokenizer subbit implements: text is split as GPT-2 "
             "splits it, so token ids may differ from llama.cpp's", b.path, b.m->vocab.approx);
    vm->renorm_topk = a->kind != FMT_ARCH_QWEN2_MOE || a->norm_topk_prob;
    if (in->n_kv_heads > in->n_heads || in->n_heads % in->n_kv_heads || in->head_dim % 2 ||
        in->n_experts_used > in->n_experts || in->n_experts_used > 64) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: inconsistent configuration (heads %d, kv heads %d, "
                        "head dim %d, experts %d used of %d)", b.path, in->n_heads, in->n_kv_heads,
                        in->head_dim, in->n_experts_used, in->n_experts);
        goto fail;
    }
    if ((rc = bind_mat(&b, te->name, in->vocab, in->dim, &vm->embd)))
        goto fail;
    if ((rc = bind_vec(&b, b.gguf ? "output_norm.weight" : "model.norm.weight", in->dim, &vm->out_norm)))
        goto fail;
    const char *on = b.gguf ? "output.weight" : "lm_head.weight";
    if (fmt_model_find(m, on)) {
        if ((rc = bind_mat(&b, on, in->vocab, in->dim, &vm->out)))
            goto fail;
        if (a->tied_embeddings && fmt_model_find(m, on)->data != te->data)
            note(vm, "%s: tie_word_embeddings is true, but '%s' is stored: using '%s' (as "
                 "subbit mem counts it)", b.path, on, on);
    } else {
        vm->out = vm->embd;   /* tied (formats.md §2.7: a missing output reuses the embedding) */
        in->tied_output = true;
    }
    vm->layers = sb_calloc((size_t)in->n_layers, sizeof *vm->layers);
    if (!vm->layers) {
        rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", b.path);
        goto fail;
    }
    for (int l = 0; l < in->n_layers; l++)
        if ((rc = bind_layer(&b, vm, l)))
            goto fail;
    if (!(flags & VFY_MODEL_NO_PACK))
        pack_all(vm);
    *out = vm;
    return SB_OK;
fail:
    vfy_model_free(vm);
    return rc;
}

void vfy_model_free(struct vfy_model *vm)
{
    if (!vm)
        return;
    each_mat(vm, unpack_mat);
    sb_free_aligned(vm->pack_arena);
    for (int l = 0; vm->layers && l < vm->info.n_layers; l++) {
        struct vfy_layer *L = &vm->layers[l];
        sb_free(L->attn_norm);
        sb_free(L->ffn_norm);
        sb_free(L->bq);
        sb_free(L->bk);
        sb_free(L->bv);
        sb_free(L->experts);
        sb_free(L->sh_gate_inp);
    }
    sb_free(vm->layers);
    sb_free(vm->out_norm);
    sb_free(vm);
}

const struct vfy_model_info *vfy_model_info(const struct vfy_model *vm)
{
    return &vm->info;
}

/* ---- matrices by role ------------------------------------------------------------ */

static struct vfy_mat *mat_of(struct vfy_model *vm, int l, enum vfy_role role, int e)
{
    if (role == VFY_ROLE_OUTPUT)
        return &vm->out;
    if (l < 0 || l >= vm->info.n_layers)
        return NULL;
    struct vfy_layer *L = &vm->layers[l];
    switch (role) {
    case VFY_ROLE_Q: return &L->wq;
    case VFY_ROLE_K: return &L->wk;
    case VFY_ROLE_V: return &L->wv;
    case VFY_ROLE_O: return &L->wo;
    case VFY_ROLE_GATE: case VFY_ROLE_UP: case VFY_ROLE_DOWN: {
        if (!L->moe) {
            if (e >= 0)
                return NULL;
            return role == VFY_ROLE_GATE ? &L->gate : role == VFY_ROLE_UP ? &L->up : &L->down;
        }
        if (e < 0 || e >= vm->info.n_experts)
            return NULL;
        struct vfy_expert *X = &L->experts[e];
        return role == VFY_ROLE_GATE ? &X->gate : role == VFY_ROLE_UP ? &X->up : &X->down;
    }
    case VFY_ROLE_ROUTER: return L->moe ? &L->router : NULL;
    case VFY_ROLE_SH_GATE: return L->has_shared ? &L->sh_gate : NULL;
    case VFY_ROLE_SH_UP: return L->has_shared ? &L->sh_up : NULL;
    case VFY_ROLE_SH_DOWN: return L->has_shared ? &L->sh_down : NULL;
    default: return NULL;
    }
}

bool vfy_model_mat(const struct vfy_model *vm, int layer, enum vfy_role role, int expert,
                   struct vfy_matref *out)
{
    const struct vfy_mat *m = mat_of((struct vfy_model *)vm, layer, role, expert);
    if (!m)
        return false;
    out->name = m->name;
    out->dt = m->dt;
    out->replaced = m->replaced;
    out->rows = m->replaced ? m->orig_rows : m->rows;
    out->cols = m->cols;
    out->row0 = m->replaced ? m->orig_row0 : m->row0;
    out->nrows = m->nrows;
    return true;
}

int vfy_model_set_mat(struct vfy_model *vm, int layer, enum vfy_role role, int expert,
                      enum sb_dtype dt, const void *w, uint64_t nbytes,
                      const struct sb_qparams *qp, struct sb_err *err)
{
    struct vfy_mat *m = mat_of(vm, layer, role, expert);
    if (!m)
        return sb_err_set(err, SB_EINVAL, "no matrix for layer %d role %d expert %d", layer,
                          (int)role, expert);
    struct sb_qparams q = { 0 };
    if (qp)
        q = *qp;
    int rc = qnt_matvec_check(dt, nbytes, &q, m->nrows, m->cols, 0, m->nrows);
    if (rc != SB_OK)
        return sb_err_set(err, rc, "tensor '%s': cannot compute with %s replacement data",
                          m->name, sb_dtype_name(dt));
    if (!m->replaced) {
        m->orig_rows = m->rows;
        m->orig_row0 = m->row0;
    }
    const bool tied = role == VFY_ROLE_OUTPUT && vm->info.tied_output;
    unpack_mat(vm, m);
    m->dt = dt;
    m->w = w;
    m->nbytes = nbytes;
    m->qp = q;
    m->rows = m->nrows;
    m->row0 = 0;
    m->replaced = true;
    if (tied)
        vm->embd = *m;   /* one tensor: the embedding lookup reads the same data */
    return SB_OK;
}

bool vfy_model_pack_mat(struct vfy_model *vm, int layer, enum vfy_role role, int expert, void *buf,
                        uint64_t cap)
{
    struct vfy_mat *m = mat_of(vm, layer, role, expert);
    if (!m || m->pack || !m->w || !buf || (m->dt != SB_DTYPE_Q8_0 && m->dt != SB_DTYPE_Q4_0))
        return false;
    const uint64_t nb = qnt_matmul_pack_bytes(m->dt, m->cols, m->nrows);
    if (!nb || nb > cap ||
        qnt_matmul_pack_into(m->dt, m->w, &m->qp, m->cols, m->row0, m->nrows, buf) != 0)
        return false;
    m->pack = buf;
    return true;
}

void vfy_model_unpack_mat(struct vfy_model *vm, int layer, enum vfy_role role, int expert)
{
    struct vfy_mat *m = mat_of(vm, layer, role, expert);
    if (m)
        unpack_mat(vm, m);
}

void vfy_layer_matmul(const struct vfy_model *vm, int layer, enum vfy_role role, int expert,
                      const float *X, size_t n, float *Y)
{
    vfy_mat_mul(mat_of((struct vfy_model *)vm, layer, role, expert), X, n, Y);
}

void vfy_mat_mul(const struct vfy_mat *m, const float *X, size_t n, float *Y)
{
    if (m->pack && qnt_matmul_packed(m->dt, m->pack, m->cols, m->nrows, X, n, Y) == 0)
        return;
    qnt_matmul_rows(m->dt, m->w, m->nbytes, &m->qp, m->rows, m->cols, m->row0, m->nrows, X, n, Y);
}

void vfy_embed(const struct vfy_model *vm, const int32_t *tokens, size_t n, float *x)
{
    const struct vfy_mat *em = &vm->embd;
    const size_t dim = (size_t)vm->info.dim;
    for (size_t i = 0; i < n; i++)
        qnt_matvec_get_row(em->dt, em->w, em->nbytes, &em->qp, em->rows, em->cols,
                           em->row0 + (size_t)tokens[i], x + i * dim);
}
