/* cvt_layout.c: tensor layout mapping between containers (formats.md §2.6–2.9,
 * §3, §4). Knows names, shapes, row order and metadata keys; never re-encodes. */
#include "cvt_layout.h"

#include "fmt_hftok.h"
#include "qnt_cast.h"
#include "qnt_encode.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *model_what(const struct fmt_model *m)
{
    return m && m->path ? m->path : "(model)";
}

/* ---- name tables -------------------------------------------------------- */

enum qk { QK_NONE, QK_Q, QK_K };

/* Per-layer tensors that map one to one (suffixes after "model.layers.N." and
 * "blk.N."); slot gives the output order within a layer. */
struct layer_map {
    const char *hf;
    const char *gguf;
    enum qk qk;
    int slot;
};

static const struct layer_map layer_maps[] = {
    { "input_layernorm.weight", "attn_norm.weight", QK_NONE, 0 },
    { "self_attn.q_proj.weight", "attn_q.weight", QK_Q, 1 },
    { "self_attn.q_proj.bias", "attn_q.bias", QK_Q, 2 },
    { "self_attn.k_proj.weight", "attn_k.weight", QK_K, 3 },
    { "self_attn.k_proj.bias", "attn_k.bias", QK_K, 4 },
    { "self_attn.v_proj.weight", "attn_v.weight", QK_NONE, 5 },
    { "self_attn.v_proj.bias", "attn_v.bias", QK_NONE, 6 },
    { "self_attn.o_proj.weight", "attn_output.weight", QK_NONE, 7 },
    { "post_attention_layernorm.weight", "ffn_norm.weight", QK_NONE, 8 },
    { "mlp.gate_proj.weight", "ffn_gate.weight", QK_NONE, 10 },
    { "mlp.up_proj.weight", "ffn_up.weight", QK_NONE, 11 },
    { "mlp.down_proj.weight", "ffn_down.weight", QK_NONE, 12 },
    /* routers: HF → GGUF accepts both; GGUF → HF picks by architecture */
    { "block_sparse_moe.gate.weight", "ffn_gate_inp.weight", QK_NONE, 9 },
    { "mlp.gate.weight", "ffn_gate_inp.weight", QK_NONE, 9 },
    /* Qwen2-MoE shared expert */
    { "mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", QK_NONE, 16 },
    { "mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight", QK_NONE, 17 },
    { "mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight", QK_NONE, 18 },
    { "mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight", QK_NONE, 19 },
};
#define N_LAYER_MAPS (sizeof layer_maps / sizeof layer_maps[0])

/* Routed experts: kind 0 gate (w1), 1 up (w3), 2 down (w2). */
static const char *const exps_gguf[3] = { "ffn_gate_exps.weight", "ffn_up_exps.weight",
                                          "ffn_down_exps.weight" };
static const char *const exp_mixtral[3] = { "w1", "w3", "w2" };
static const char *const exp_qwen[3] = { "gate_proj", "up_proj", "down_proj" };
#define SLOT_EXPS 13 /* + kind */

static const struct {
    const char *hf, *gguf;
    int group, slot; /* group 0: before the layers, 2: after */
} top_maps[] = {
    { "model.embed_tokens.weight", "token_embd.weight", 0, 0 },
    { "model.norm.weight", "output_norm.weight", 2, 0 },
    { "lm_head.weight", "output.weight", 2, 1 },
};

/* ---- a small name → index hash ----------------------------------------- */

struct name_index {
    const struct fmt_model *m;
    size_t cap;          /* power of two */
    size_t *slot;        /* [cap]: tensor index + 1, 0 = empty */
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int name_index_build(struct name_index *ix, const struct fmt_model *m)
{
    ix->m = m;
    ix->cap = 16;
    while (ix->cap < 2 * m->n_tensors + 1)
        ix->cap *= 2;
    ix->slot = sb_calloc(ix->cap, sizeof *ix->slot);
    if (!ix->slot)
        return SB_ENOMEM;
    for (size_t i = 0; i < m->n_tensors; i++) {
        size_t h = (size_t)fnv1a(m->tensors[i].name) & (ix->cap - 1);
        while (ix->slot[h])
            h = (h + 1) & (ix->cap - 1);
        ix->slot[h] = i + 1;
    }
    return SB_OK;
}

/* Index of the first tensor named name, or -1. */
static long name_index_get(const struct name_index *ix, const char *name)
{
    size_t h = (size_t)fnv1a(name) & (ix->cap - 1);
    long best = -1;
    while (ix->slot[h]) {
        size_t i = ix->slot[h] - 1;
        if (strcmp(ix->m->tensors[i].name, name) == 0 && (best < 0 || (long)i < best))
            best = (long)i;
        h = (h + 1) & (ix->cap - 1);
    }
    return best;
}

/* ---- building a layout --------------------------------------------------- */

struct plan {
    struct cvt_layout *l;
    size_t cap;
    int *keys;           /* [cap][4]: group, layer, slot, sub (output order) */
    const struct fmt_model *src;
    struct name_index ix;
    bool *used;          /* [n_tensors] */
    struct sb_err *err;
};

static int plan_add(struct plan *p, const char *name, int ndim, const int64_t *shape,
                    size_t n_pieces, const int key[4], struct cvt_target **out)
{
    struct cvt_layout *l = p->l;
    if (strlen(name) >= sizeof l->t[0].name)
        return sb_err_set(p->err, SB_EUNSUPPORTED, "%s: output tensor name '%s' is too long",
                          model_what(p->src), name);
    if (l->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        struct cvt_target *t = sb_realloc(l->t, cap * sizeof *t);
        if (!t)
            return sb_err_set(p->err, SB_ENOMEM, "%s: out of memory", model_what(p->src));
        l->t = t;
        int *k = sb_realloc(p->keys, cap * 4 * sizeof *k);
        if (!k)
            return sb_err_set(p->err, SB_ENOMEM, "%s: out of memory", model_what(p->src));
        p->keys = k;
        p->cap = cap;
    }
    struct cvt_target *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    t->pieces = sb_calloc(n_pieces ? n_pieces : 1, sizeof *t->pieces);
    if (!t->pieces)
        return sb_err_set(p->err, SB_ENOMEM, "%s: out of memory", model_what(p->src));
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->n_pieces = n_pieces;
    memcpy(&p->keys[4 * l->n], key, 4 * sizeof *key);
    l->n++;
    *out = t;
    return SB_OK;
}

/* Rows and cols of source tensor st: leading dims x last dim; element mode
 * (a permuted 1-D tensor): n x 1. */
static int tensor_rows_cols(const struct fmt_tensor *st, bool elem, uint64_t *rows,
                            uint64_t *cols)
{
    if (elem) {
        uint64_t n;
        if (sb_shape_numel(st->shape, st->ndim, &n))
            return 1;
        *rows = n;
        *cols = 1;
        return 0;
    }
    return sb_shape_rows_cols(st->shape, st->ndim, rows, cols);
}

static bool target_elem_mode(const struct cvt_target *t)
{
    return t->perm != CVT_PERM_NONE && t->ndim == 1;
}

static bool gguf_keep_f32(const char *name, int ndim)
{
    size_t n = strlen(name);
    static const char *const sfx[] = { "ffn_gate_inp.weight", "ffn_gate_inp_shexp.weight" };
    if (ndim <= 1)
        return true;
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(sfx[i]);
        if (n >= k && strcmp(name + n - k, sfx[i]) == 0)
            return true;
    }
    return false;
}

static bool name_is_expert(const char *name)
{
    return strstr(name, "_exps.") || strstr(name, ".experts.");
}

/* A target that is exactly one source tensor (possibly reshaped [1,H] ⇄ [H]). */
static int plan_one(struct plan *p, size_t si, const char *name, int ndim, const int64_t *shape,
                    enum cvt_perm perm, int heads, const int key[4])
{
    const struct fmt_tensor *st = &p->src->tensors[si];
    struct cvt_target *t;
    int r = plan_add(p, name, ndim, shape, 1, key, &t);
    if (r)
        return r;
    t->perm = perm;
    t->perm_heads = perm != CVT_PERM_NONE ? heads : 0;
    uint64_t rows, cols;
    if (tensor_rows_cols(st, target_elem_mode(t), &rows, &cols))
        return sb_err_set(p->err, SB_EFORMAT, "%s: tensor '%s' has an invalid shape",
                          model_what(p->src), st->name);
    if (perm != CVT_PERM_NONE) {
        if (heads < 1 || rows % (uint64_t)heads || (rows / (uint64_t)heads) % 2)
            return sb_err_set(p->err, SB_EFORMAT,
                              "%s: tensor '%s' has %llu rows, which %d heads of even size "
                              "do not divide", model_what(p->src), st->name,
                              (unsigned long long)rows, heads);
    }
    t->pieces[0] = (struct cvt_piece){ si, 0, rows };
    p->used[si] = true;
    return SB_OK;
}

static int parse_layer(const char *name, const char *prefix, int *layer, const char **rest)
{
    size_t k = strlen(prefix);
    if (strncmp(name, prefix, k) != 0 || !isdigit((unsigned char)name[k]))
        return 0;
    char *end;
    long v = strtol(name + k, &end, 10);
    if (*end != '.' || v < 0 || v > 1000000)
        return 0;
    *layer = (int)v;
    *rest = end + 1;
    return 1;
}

/* ---- HF → GGUF ----------------------------------------------------------- */

/* Per-expert HF names, layer L, kind k, family fam (0 block_sparse_moe w1/w3/w2,
 * 1 mlp.experts gate_proj/up_proj/down_proj). */
static void expert_hf_name(char *buf, size_t n, int fam, int layer, long e, int kind)
{
    if (fam == 0)
        snprintf(buf, n, "model.layers.%d.block_sparse_moe.experts.%ld.%s.weight", layer, e,
                 exp_mixtral[kind]);
    else
        snprintf(buf, n, "model.layers.%d.mlp.experts.%ld.%s.weight", layer, e, exp_qwen[kind]);
}

/* rest is "block_sparse_moe.experts.E.w1.weight" or "mlp.experts.E.gate_proj.weight":
 * 1 and fam, kind, e if so. */
static int parse_expert(const char *rest, int *fam, int *kind, long *e)
{
    const char *q;
    if (!strncmp(rest, "block_sparse_moe.experts.", 25)) {
        *fam = 0;
        q = rest + 25;
    } else if (!strncmp(rest, "mlp.experts.", 12)) {
        *fam = 1;
        q = rest + 12;
    } else {
        return 0;
    }
    if (!isdigit((unsigned char)*q))
        return 0;
    char *end;
    *e = strtol(q, &end, 10);
    if (*end != '.')
        return 0;
    const char *const *names = *fam == 0 ? exp_mixtral : exp_qwen;
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(names[k]);
        if (!strncmp(end + 1, names[k], n) && !strcmp(end + 1 + n, ".weight")) {
            *kind = k;
            return 1;
        }
    }
    return 0;
}

static int plan_stack(struct plan *p, int layer, int fam, int kind)
{
    const struct fmt_model *m = p->src;
    char nm[160];
    long n_exp = m->has_arch && m->arch.n_experts > 0 ? m->arch.n_experts : 0;
    if (!n_exp) { /* no config: count what is there */
        for (;;) {
            expert_hf_name(nm, sizeof nm, fam, layer, n_exp, kind);
            if (name_index_get(&p->ix, nm) < 0)
                break;
            n_exp++;
        }
    }
    size_t *idx = sb_malloc((size_t)n_exp * sizeof *idx);
    if (!idx)
        return sb_err_set(p->err, SB_ENOMEM, "%s: out of memory", model_what(m));
    int r = SB_OK;
    const struct fmt_tensor *t0 = NULL;
    for (long e = 0; e < n_exp; e++) {
        expert_hf_name(nm, sizeof nm, fam, layer, e, kind);
        long i = name_index_get(&p->ix, nm);
        if (i < 0) {
            r = sb_err_set(p->err, SB_EFORMAT, "%s: missing expert tensor '%s' (%ld experts)",
                           model_what(m), nm, n_exp);
            goto done;
        }
        const struct fmt_tensor *st = &m->tensors[i];
        if (st->ndim != 2) {
            r = sb_err_set(p->err, SB_EFORMAT, "%s: expert tensor '%s' is not 2-D",
                           model_what(m), nm);
            goto done;
        }
        if (t0 && (st->shape[0] != t0->shape[0] || st->shape[1] != t0->shape[1])) {
            r = sb_err_set(p->err, SB_EFORMAT,
                           "%s: expert tensor '%s' is [%lld, %lld], expert 0 is [%lld, %lld]",
                           model_what(m), nm, (long long)st->shape[0], (long long)st->shape[1],
                           (long long)t0->shape[0], (long long)t0->shape[1]);
            goto done;
        }
        t0 = t0 ? t0 : st;
        idx[e] = (size_t)i;
    }
    char out[128];
    snprintf(out, sizeof out, "blk.%d.%s", layer, exps_gguf[kind]);
    int64_t shape[3] = { n_exp, t0->shape[0], t0->shape[1] };
    int key[4] = { 1, layer, SLOT_EXPS + kind, 0 };
    struct cvt_target *t;
    if ((r = plan_add(p, out, 3, shape, (size_t)n_exp, key, &t)))
        goto done;
    t->is_expert = true;
    for (long e = 0; e < n_exp; e++) {
        t->pieces[e] = (struct cvt_piece){ idx[e], 0, (uint64_t)t0->shape[0] };
        p->used[idx[e]] = true;
    }
done:
    sb_free(idx);
    return r;
}

/* transformers-v5 packed experts: gate_up_proj [E, 2F, H] → gate (rows 0..F-1
 * of each expert) and up (rows F..2F-1); down_proj [E, H, F] as is. */
static int plan_packed(struct plan *p, size_t si, int layer, bool gate_up)
{
    const struct fmt_tensor *st = &p->src->tensors[si];
    if (st->ndim != 3 || st->shape[0] < 1 || (gate_up && st->shape[1] % 2))
        return sb_err_set(p->err, SB_EFORMAT, "%s: packed expert tensor '%s' is not "
                          "[experts, %s, in]", model_what(p->src), st->name,
                          gate_up ? "2*ffn" : "out");
    int64_t e_n = st->shape[0];
    char out[128];
    struct cvt_target *t;
    int r;
    if (!gate_up) {
        snprintf(out, sizeof out, "blk.%d.%s", layer, exps_gguf[2]);
        int key[4] = { 1, layer, SLOT_EXPS + 2, 0 };
        if ((r = plan_add(p, out, 3, st->shape, 1, key, &t)))
            return r;
        t->is_expert = true;
        t->pieces[0] = (struct cvt_piece){ si, 0, (uint64_t)(e_n * st->shape[1]) };
        p->used[si] = true;
        return SB_OK;
    }
    int64_t f = st->shape[1] / 2;
    for (int kind = 0; kind < 2; kind++) {
        snprintf(out, sizeof out, "blk.%d.%s", layer, exps_gguf[kind]);
        int64_t shape[3] = { e_n, f, st->shape[2] };
        int key[4] = { 1, layer, SLOT_EXPS + kind, 0 };
        if ((r = plan_add(p, out, 3, shape, (size_t)e_n, key, &t)))
            return r;
        t->is_expert = true;
        for (int64_t e = 0; e < e_n; e++)
            t->pieces[e] = (struct cvt_piece){ si, (uint64_t)(e * 2 * f + kind * f),
                                               (uint64_t)f };
    }
    p->used[si] = true;
    return SB_OK;
}

static int plan_hf_to_gguf(struct plan *p)
{
    const struct fmt_model *m = p->src;
    const struct fmt_arch *a = &m->arch;
    if (!m->has_arch)
        return sb_err_set(p->err, SB_EUNSUPPORTED, "%s: no model config (config.json): "
                          "cannot map to GGUF", model_what(m));
    bool qwen = a->kind == FMT_ARCH_QWEN2_MOE;
    snprintf(p->l->gguf_arch, sizeof p->l->gguf_arch, "%s", qwen ? "qwen2moe" : "llama");
    /* llama.cpp runs qwen2moe with NEOX rope (HF's layout): no permutation */
    enum cvt_perm perm = qwen ? CVT_PERM_NONE : CVT_PERM_HF_TO_GGUF;
    int nkv = a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads;
    int r;
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (p->used[i])
            continue;
        const struct fmt_tensor *st = &m->tensors[i];
        const char *name = st->name, *rest;
        int layer;
        bool done = false;
        for (size_t k = 0; k < sizeof top_maps / sizeof top_maps[0] && !done; k++) {
            if (strcmp(name, top_maps[k].hf))
                continue;
            done = true;
            if (!strcmp(name, "lm_head.weight") && a->tied_embeddings) {
                p->used[i] = true; /* tied: GGUF reuses token_embd.weight */
                break;
            }
            int key[4] = { top_maps[k].group, 0, top_maps[k].slot, 0 };
            if ((r = plan_one(p, i, top_maps[k].gguf, st->ndim, st->shape, CVT_PERM_NONE, 0,
                              key)))
                return r;
        }
        if (done)
            continue;
        if (!parse_layer(name, "model.layers.", &layer, &rest))
            goto unknown;
        if (!strcmp(rest, "self_attn.rotary_emb.inv_freq")) {
            p->used[i] = true; /* derived RoPE table of old checkpoints: llama.cpp skips it */
            continue;
        }
        for (size_t k = 0; k < N_LAYER_MAPS; k++) {
            const struct layer_map *lm = &layer_maps[k];
            if (strcmp(rest, lm->hf))
                continue;
            char out[128];
            snprintf(out, sizeof out, "blk.%d.%s", layer, lm->gguf);
            int key[4] = { 1, layer, lm->slot, 0 };
            int64_t shape[SB_MAX_DIMS];
            int ndim = st->ndim;
            memcpy(shape, st->shape, sizeof shape);
            if (lm->slot == 16 && ndim == 2 && shape[0] == 1) { /* [1, H] → [H] */
                ndim = 1;
                shape[0] = shape[1];
            }
            enum cvt_perm pm = lm->qk == QK_NONE ? CVT_PERM_NONE : perm;
            int heads = lm->qk == QK_Q ? a->n_heads : nkv;
            if ((r = plan_one(p, i, out, ndim, shape, pm, heads, key)))
                return r;
            done = true;
            break;
        }
        if (done)
            continue;
        int fam, kind;
        long e;
        if (parse_expert(rest, &fam, &kind, &e)) {
            if ((r = plan_stack(p, layer, fam, kind)))
                return r;
            if (!p->used[i])
                return sb_err_set(p->err, SB_EFORMAT, "%s: expert tensor '%s' is beyond the "
                                  "expert count", model_what(m), name);
            continue;
        }
        if (!strcmp(rest, "mlp.experts.gate_up_proj") ||
            !strcmp(rest, "mlp.experts.gate_up_proj.weight")) {
            if ((r = plan_packed(p, i, layer, true)))
                return r;
            continue;
        }
        if (!strcmp(rest, "mlp.experts.down_proj") ||
            !strcmp(rest, "mlp.experts.down_proj.weight")) {
            if ((r = plan_packed(p, i, layer, false)))
                return r;
            continue;
        }
    unknown:
        return sb_err_set(p->err, SB_EUNSUPPORTED, "%s: no GGUF name for tensor '%s'",
                          model_what(m), name);
    }
    return SB_OK;
}

/* ---- GGUF → HF ----------------------------------------------------------- */

static bool src_is_qwen(const struct fmt_model *m)
{
    return (m->has_arch && m->arch.kind == FMT_ARCH_QWEN2_MOE) ||
           !strcmp(m->arch.model_type, "qwen2moe") || !strcmp(m->arch.model_type, "qwen2_moe");
}

static int plan_gguf_to_hf(struct plan *p)
{
    const struct fmt_model *m = p->src;
    const struct fmt_arch *a = &m->arch;
    bool qwen = src_is_qwen(m);
    snprintf(p->l->gguf_arch, sizeof p->l->gguf_arch, "%s", qwen ? "qwen2moe" : "llama");
    enum cvt_perm perm = qwen ? CVT_PERM_NONE : CVT_PERM_GGUF_TO_HF;
    int nkv = a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads;
    int r;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct fmt_tensor *st = &m->tensors[i];
        const char *name = st->name, *rest;
        int layer;
        bool done = false;
        for (size_t k = 0; k < sizeof top_maps / sizeof top_maps[0]; k++) {
            if (strcmp(name, top_maps[k].gguf))
                continue;
            int key[4] = { top_maps[k].group, 0, top_maps[k].slot, 0 };
            if ((r = plan_one(p, i, top_maps[k].hf, st->ndim, st->shape, CVT_PERM_NONE, 0,
                              key)))
                return r;
            done = true;
            break;
        }
        if (done)
            continue;
        if (!parse_layer(name, "blk.", &layer, &rest))
            goto unknown;
        for (size_t k = 0; k < N_LAYER_MAPS; k++) {
            const struct layer_map *lm = &layer_maps[k];
            if (strcmp(rest, lm->gguf))
                continue;
            const char *hf = lm->hf;
            if (lm->slot == 9) /* the router's HF name depends on the family */
                hf = qwen ? "mlp.gate.weight" : "block_sparse_moe.gate.weight";
            char out[160];
            snprintf(out, sizeof out, "model.layers.%d.%s", layer, hf);
            int key[4] = { 1, layer, lm->slot, 0 };
            int64_t shape[SB_MAX_DIMS];
            int ndim = st->ndim;
            memcpy(shape, st->shape, sizeof shape);
            if (lm->slot == 16 && ndim == 1) { /* [H] → [1, H] */
                ndim = 2;
                shape[1] = shape[0];
                shape[0] = 1;
            }
            if (lm->qk != QK_NONE && a->n_heads < 1)
                return sb_err_set(p->err, SB_EFORMAT, "%s: no head count: cannot map '%s'",
                                  model_what(m), name);
            enum cvt_perm pm = lm->qk == QK_NONE ? CVT_PERM_NONE : perm;
            int heads = lm->qk == QK_Q ? a->n_heads : nkv;
            if ((r = plan_one(p, i, out, ndim, shape, pm, heads, key)))
                return r;
            done = true;
            break;
        }
        if (done)
            continue;
        for (int kind = 0; kind < 3 && !done; kind++) {
            if (strcmp(rest, exps_gguf[kind]))
                continue;
            done = true;
            if (st->ndim != 3 || st->shape[0] < 1)
                return sb_err_set(p->err, SB_EFORMAT, "%s: expert tensor '%s' is not 3-D",
                                  model_what(m), name);
            for (int64_t e = 0; e < st->shape[0]; e++) {
                char out[160];
                if (qwen)
                    snprintf(out, sizeof out, "model.layers.%d.mlp.experts.%lld.%s.weight",
                             layer, (long long)e, exp_qwen[kind]);
                else
                    snprintf(out, sizeof out,
                             "model.layers.%d.block_sparse_moe.experts.%lld.%s.weight", layer,
                             (long long)e, exp_mixtral[kind]);
                /* HF order: expert by expert, w1 w2 w3 within one */
                int key[4] = { 1, layer, SLOT_EXPS, (int)e * 3 + (kind == 0 ? 0 : kind == 2 ? 1 : 2) };
                struct cvt_target *t;
                if ((r = plan_add(p, out, 2, st->shape + 1, 1, key, &t)))
                    return r;
                t->is_expert = true;
                t->pieces[0] = (struct cvt_piece){ i, (uint64_t)(e * st->shape[1]),
                                                   (uint64_t)st->shape[1] };
            }
            p->used[i] = true;
        }
        if (done)
            continue;
    unknown:
        return sb_err_set(p->err, SB_EUNSUPPORTED, "%s: no Hugging Face name for tensor '%s'",
                          model_what(m), name);
    }
    return SB_OK;
}

/* ---- identity ------------------------------------------------------------ */

static int plan_identity(struct plan *p, bool gguf_names)
{
    const struct fmt_model *m = p->src;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct fmt_tensor *st = &m->tensors[i];
        int key[4] = { 0, 0, 0, 0 };
        int r = plan_one(p, i, st->name, st->ndim, st->shape, CVT_PERM_NONE, 0, key);
        if (r)
            return r;
        struct cvt_target *t = &p->l->t[p->l->n - 1];
        t->is_expert = name_is_expert(st->name);
        t->keep_f32 = gguf_names && gguf_keep_f32(st->name, st->ndim);
    }
    return SB_OK;
}

/* ---- plan ---------------------------------------------------------------- */

static bool has_gguf_names(const struct fmt_model *m)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, "token_embd.weight") ||
            !strncmp(m->tensors[i].name, "blk.", 4))
            return true;
    return false;
}

struct order {
    int key[4];
    size_t i;
};

static int cmp_target(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    for (int k = 0; k < 4; k++)
        if (x->key[k] != y->key[k])
            return x->key[k] < y->key[k] ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct cvt_target *)a)->name, ((const struct cvt_target *)b)->name);
}

void cvt_layout_free(struct cvt_layout *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        sb_free(l->t[i].pieces);
    sb_free(l->t);
    sb_free(l);
}

int cvt_layout_plan(const struct fmt_model *src, enum fmt_container dst, struct cvt_layout **out,
                    struct sb_err *err)
{
    *out = NULL;
    if (!src)
        return sb_err_set(err, SB_EINVAL, "(model): no model to plan");
    struct plan p = { .src = src, .err = err };
    int r = SB_OK;
    struct cvt_layout *l = p.l = sb_calloc(1, sizeof *l);
    if (!l)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
    l->src_container = src->container;
    l->dst_container = dst;
    switch (src->container) {
    case FMT_CONT_SAFETENSORS: l->src_hf_names = true; break;
    case FMT_CONT_GGUF:
    case FMT_CONT_L2C: l->src_hf_names = false; break;
    default: l->src_hf_names = !has_gguf_names(src); break;
    }
    switch (dst) {
    case FMT_CONT_SAFETENSORS: l->dst_hf_names = true; break;
    case FMT_CONT_GGUF:
    case FMT_CONT_L2C: l->dst_hf_names = false; break;
    case FMT_CONT_SUBBIT: l->dst_hf_names = l->src_hf_names; break;
    default:
        r = sb_err_set(err, SB_EINVAL, "%s: unknown destination container", model_what(src));
        goto fail;
    }
    l->identity = l->src_hf_names == l->dst_hf_names;
    p.used = sb_calloc(src->n_tensors ? src->n_tensors : 1, sizeof *p.used);
    if (!p.used || name_index_build(&p.ix, src)) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
        goto fail;
    }
    if (l->identity) {
        r = plan_identity(&p, !l->dst_hf_names);
        if (!r && !l->src_hf_names)
            snprintf(l->gguf_arch, sizeof l->gguf_arch, "%s",
                     src_is_qwen(src) ? "qwen2moe" : "llama");
    } else if (l->src_hf_names) {
        r = plan_hf_to_gguf(&p);
    } else {
        r = plan_gguf_to_hf(&p);
    }
    if (r)
        goto fail;
    if (!l->identity) {
        /* output order: embeddings, layer by layer in a fixed slot order, final norm, head */
        struct order *ord = sb_malloc((l->n ? l->n : 1) * sizeof *ord);
        struct cvt_target *t2 = sb_malloc((l->n ? l->n : 1) * sizeof *t2);
        if (!ord || !t2) {
            sb_free(ord);
            sb_free(t2);
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
            goto fail;
        }
        for (size_t i = 0; i < l->n; i++) {
            memcpy(ord[i].key, &p.keys[4 * i], sizeof ord[i].key);
            ord[i].i = i;
        }
        qsort(ord, l->n, sizeof *ord, cmp_target);
        for (size_t i = 0; i < l->n; i++)
            t2[i] = l->t[ord[i].i];
        memcpy(l->t, t2, l->n * sizeof *t2);
        sb_free(ord);
        sb_free(t2);
        for (size_t i = 0; i < l->n; i++) {
            struct cvt_target *t = &l->t[i];
            t->keep_f32 = !l->dst_hf_names && gguf_keep_f32(t->name, t->ndim);
        }
    }
    /* every output name once */
    if (l->n > 1) {
        struct cvt_target *s = sb_malloc(l->n * sizeof *s);
        if (!s) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
            goto fail;
        }
        memcpy(s, l->t, l->n * sizeof *s);
        qsort(s, l->n, sizeof *s, cmp_name);
        for (size_t i = 1; i < l->n && !r; i++)
            if (!strcmp(s[i - 1].name, s[i].name))
                r = sb_err_set(err, SB_EFORMAT, "%s: two tensors map to '%s'", model_what(src),
                               s[i].name);
        sb_free(s);
        if (r)
            goto fail;
    }
    for (size_t i = 0; i < l->n; i++) {
        struct cvt_target *t = &l->t[i];
        const struct fmt_tensor *s0 = &src->tensors[t->pieces[0].src];
        t->src_dtype = s0->dtype;
        t->src_qp = s0->qp;
        for (size_t k = 1; k < t->n_pieces; k++) {
            const struct fmt_tensor *sk = &src->tensors[t->pieces[k].src];
            if (sk->dtype != s0->dtype || sk->qp.group != s0->qp.group ||
                sk->qp.scale_dtype != s0->qp.scale_dtype)
                t->mixed_dtype = true;
        }
    }
    sb_free(p.used);
    sb_free(p.ix.slot);
    sb_free(p.keys);
    *out = l;
    return SB_OK;
fail:
    sb_free(p.used);
    sb_free(p.ix.slot);
    sb_free(p.keys);
    cvt_layout_free(l);
    return r;
}

long cvt_layout_find(const struct cvt_layout *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name))
            return (long)i;
    return -1;
}

/* ---- gathering ----------------------------------------------------------- */

uint64_t cvt_perm_src_row(enum cvt_perm p, uint64_t heads, uint64_t rows, uint64_t r)
{
    if (p == CVT_PERM_NONE || heads == 0)
        return r;
    uint64_t hd = rows / heads, half = hd / 2, h = r / hd, i = r % hd;
    if (p == CVT_PERM_HF_TO_GGUF) /* i = 2j + t  <-  t*hd/2 + j */
        return h * hd + (i % 2) * half + i / 2;
    return h * hd + 2 * (i % half) + i / half; /* i = t*hd/2 + j  <-  2j + t */
}

void cvt_layout_rows_cols(const struct cvt_layout *l, size_t t, uint64_t *rows, uint64_t *cols)
{
    const struct cvt_target *tg = &l->t[t];
    if (target_elem_mode(tg)) {
        uint64_t n = 0;
        sb_shape_numel(tg->shape, tg->ndim, &n);
        *rows = n;
        *cols = 1;
        return;
    }
    if (sb_shape_rows_cols(tg->shape, tg->ndim, rows, cols))
        *rows = *cols = 0;
}

/* Bytes of one row of cols elements in dt; SB_EUNSUPPORTED if dt rows are not
 * separately addressable. */
static int row_nbytes(enum sb_dtype dt, uint64_t cols, uint64_t *out)
{
    const struct sb_dtype_info *in = sb_dtype_get(dt);
    if (!in || (in->flags & (SB_DT_ROWQ | SB_DT_VARLEN)))
        return SB_EUNSUPPORTED;
    if (in->flags & SB_DT_BLOCK) {
        if (cols % in->blck)
            return SB_EFORMAT;
        return sb_mul_u64(cols / in->blck, in->type_size, out) ? SB_EFORMAT : SB_OK;
    }
    uint64_t bits;
    if (sb_mul_u64(cols, in->bits, &bits) || bits % 8)
        return SB_EUNSUPPORTED;
    *out = bits / 8;
    return SB_OK;
}

static bool whole_copy(const struct cvt_target *tg, const struct fmt_model *src)
{
    if (tg->n_pieces != 1 || tg->perm != CVT_PERM_NONE)
        return false;
    const struct fmt_tensor *st = &src->tensors[tg->pieces[0].src];
    uint64_t rows, cols;
    return !sb_shape_rows_cols(st->shape, st->ndim, &rows, &cols) &&
           tg->pieces[0].row0 == 0 && tg->pieces[0].nrows == rows;
}

/* Checks the target against src; *rb = row bytes (0 for a whole copy). */
static int gather_check(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                        bool need_rows, uint64_t *rb, uint64_t *total, struct sb_err *err)
{
    if (!l || t >= l->n || !src)
        return sb_err_set(err, SB_EINVAL, "%s: no such layout target", model_what(src));
    const struct cvt_target *tg = &l->t[t];
    bool elem = target_elem_mode(tg);
    uint64_t rows, cols, sum = 0;
    cvt_layout_rows_cols(l, t, &rows, &cols);
    for (size_t k = 0; k < tg->n_pieces; k++) {
        const struct cvt_piece *pc = &tg->pieces[k];
        if (pc->src >= src->n_tensors)
            return sb_err_set(err, SB_EINVAL, "%s: layout does not match this model",
                              model_what(src));
        const struct fmt_tensor *st = &src->tensors[pc->src];
        uint64_t sr, sc, end;
        if (tensor_rows_cols(st, elem, &sr, &sc) || sc != cols ||
            sb_add_u64(pc->row0, pc->nrows, &end) || end > sr)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s' does not fit output '%s'",
                              model_what(src), st->name, tg->name);
        if (!st->data)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s' has no data (opened headers only)",
                              model_what(src), st->name);
        sum += pc->nrows;
    }
    if (sum != rows)
        return sb_err_set(err, SB_EINVAL, "%s: pieces of '%s' give %llu rows, not %llu",
                          model_what(src), tg->name, (unsigned long long)sum,
                          (unsigned long long)rows);
    if (tg->perm != CVT_PERM_NONE &&
        (tg->perm_heads < 1 || rows % (uint64_t)tg->perm_heads ||
         (rows / (uint64_t)tg->perm_heads) % 2))
        return sb_err_set(err, SB_EINVAL, "%s: '%s': %d heads do not divide %llu rows",
                          model_what(src), tg->name, tg->perm_heads, (unsigned long long)rows);
    if (!need_rows)
        return SB_OK;
    if (whole_copy(tg, src) && !elem) {
        *rb = 0;
        *total = src->tensors[tg->pieces[0].src].nbytes;
        return SB_OK;
    }
    if (tg->mixed_dtype)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: '%s' gathers tensors of different "
                          "encodings", model_what(src), tg->name);
    int r = row_nbytes(tg->src_dtype, cols, rb);
    if (r)
        return sb_err_set(err, r, "%s: '%s': rows of %s are not separately addressable",
                          model_what(src), tg->name, sb_dtype_name(tg->src_dtype));
    for (size_t k = 0; k < tg->n_pieces; k++) {
        const struct fmt_tensor *st = &src->tensors[tg->pieces[k].src];
        uint64_t sr, sc, need;
        tensor_rows_cols(st, elem, &sr, &sc);
        if (sb_mul_u64(sr, *rb, &need) || need > st->nbytes)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' holds %llu bytes, fewer than "
                              "its shape needs", model_what(src), st->name,
                              (unsigned long long)st->nbytes);
    }
    if (sb_mul_u64(rows, *rb, total))
        return sb_err_set(err, SB_EFORMAT, "%s: '%s' is too large", model_what(src), tg->name);
    return SB_OK;
}

/* Target row r (after the permutation is undone) → piece k and row within source. */
static void locate(const struct cvt_target *tg, uint64_t r, size_t *k, uint64_t *srow)
{
    size_t i = 0;
    while (i + 1 < tg->n_pieces && r >= tg->pieces[i].nrows) {
        r -= tg->pieces[i].nrows;
        i++;
    }
    *k = i;
    *srow = tg->pieces[i].row0 + r;
}

int cvt_layout_src_nbytes(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                          uint64_t *out, struct sb_err *err)
{
    uint64_t rb;
    return gather_check(l, t, src, true, &rb, out, err);
}

int cvt_layout_gather_bytes(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                            void *dst, uint64_t cap, struct sb_err *err)
{
    uint64_t rb, total;
    int r = gather_check(l, t, src, true, &rb, &total, err);
    if (r)
        return r;
    const struct cvt_target *tg = &l->t[t];
    if (total > cap)
        return sb_err_set(err, SB_EINVAL, "%s: '%s' needs %llu bytes, buffer holds %llu",
                          model_what(src), tg->name, (unsigned long long)total,
                          (unsigned long long)cap);
    unsigned char *o = dst;
    if (rb == 0) {
        memcpy(o, src->tensors[tg->pieces[0].src].data, (size_t)total);
        return SB_OK;
    }
    if (tg->perm == CVT_PERM_NONE) {
        for (size_t k = 0; k < tg->n_pieces; k++) {
            const struct cvt_piece *pc = &tg->pieces[k];
            const unsigned char *s = src->tensors[pc->src].data;
            memcpy(o, s + pc->row0 * rb, (size_t)(pc->nrows * rb));
            o += pc->nrows * rb;
        }
        return SB_OK;
    }
    uint64_t rows = total / rb;
    for (uint64_t i = 0; i < rows; i++) {
        uint64_t sr = cvt_perm_src_row(tg->perm, (uint64_t)tg->perm_heads, rows, i), srow;
        size_t k;
        locate(tg, sr, &k, &srow);
        const unsigned char *s = src->tensors[tg->pieces[k].src].data;
        memcpy(o + i * rb, s + srow * rb, (size_t)rb);
    }
    return SB_OK;
}

/* Rows [row0, row0+n) of tensor st (rows x cols in element mode or not) as f32. */
static int decode_rows(const struct fmt_model *src, const struct fmt_tensor *st, uint64_t srows,
                       uint64_t cols, uint64_t row0, uint64_t n, float *dst, struct sb_err *err)
{
    size_t cnt = (size_t)(n * cols), off = (size_t)(row0 * cols);
    switch (st->dtype) {
    case SB_DTYPE_F32:
        memcpy(dst, (const float *)st->data + off, cnt * sizeof *dst);
        return SB_OK;
    case SB_DTYPE_F16:
        qnt_f16_to_f32((const uint16_t *)st->data + off, dst, cnt);
        return SB_OK;
    case SB_DTYPE_BF16:
        qnt_bf16_to_f32((const uint16_t *)st->data + off, dst, cnt);
        return SB_OK;
    default:
        break;
    }
    int r = qnt_decode_rows(st->dtype, st->data, st->nbytes, (size_t)srows, (size_t)cols, &st->qp,
                            (size_t)row0, (size_t)n, dst);
    if (r)
        return sb_err_set(err, r, "%s: cannot decode tensor '%s' (%s)", model_what(src),
                          st->name, sb_dtype_name(st->dtype));
    return SB_OK;
}

int cvt_layout_gather_f32(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                          float *dst, struct sb_err *err)
{
    uint64_t rb, total;
    int r = gather_check(l, t, src, false, &rb, &total, err);
    if (r)
        return r;
    const struct cvt_target *tg = &l->t[t];
    bool elem = target_elem_mode(tg);
    uint64_t rows, cols;
    cvt_layout_rows_cols(l, t, &rows, &cols);
    if (elem) {
        const struct sb_dtype_info *in = sb_dtype_get(tg->src_dtype);
        if (tg->mixed_dtype || !in || !(in->flags & SB_DT_FLOAT))
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: '%s': cannot permute a %s vector",
                              model_what(src), tg->name, sb_dtype_name(tg->src_dtype));
    }
    if (tg->perm == CVT_PERM_NONE) {
        float *o = dst;
        for (size_t k = 0; k < tg->n_pieces; k++) {
            const struct cvt_piece *pc = &tg->pieces[k];
            const struct fmt_tensor *st = &src->tensors[pc->src];
            uint64_t sr, sc;
            tensor_rows_cols(st, elem, &sr, &sc);
            if ((r = decode_rows(src, st, sr, sc, pc->row0, pc->nrows, o, err)))
                return r;
            o += pc->nrows * cols;
        }
        return SB_OK;
    }
    for (uint64_t i = 0; i < rows; i++) {
        uint64_t sr = cvt_perm_src_row(tg->perm, (uint64_t)tg->perm_heads, rows, i), srow;
        size_t k;
        locate(tg, sr, &k, &srow);
        const struct fmt_tensor *st = &src->tensors[tg->pieces[k].src];
        uint64_t trows, tcols;
        tensor_rows_cols(st, elem, &trows, &tcols);
        if ((r = decode_rows(src, st, trows, tcols, srow, 1, dst + i * cols, err)))
            return r;
    }
    return SB_OK;
}

/* ---- GGUF metadata --------------------------------------------------------- */

struct kvbuf {
    struct fmt_kv *kv;
    size_t n, cap;
    int failed;
};

static struct fmt_kv *kv_push(struct kvbuf *b, const char *key, enum fmt_kv_type type)
{
    if (b->failed)
        return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 32;
        struct fmt_kv *k = sb_realloc(b->kv, cap * sizeof *k);
        if (!k) {
            b->failed = 1;
            return NULL;
        }
        b->kv = k;
        b->cap = cap;
    }
    struct fmt_kv *kv = &b->kv[b->n];
    memset(kv, 0, sizeof *kv);
    if (!(kv->key = sb_strdup(key))) {
        b->failed = 1;
        return NULL;
    }
    kv->type = type;
    b->n++;
    return kv;
}

static void kv_u32(struct kvbuf *b, const char *key, uint64_t v)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_U32);
    if (kv)
        kv->u = v & 0xffffffffu;
}

static void kv_f32(struct kvbuf *b, const char *key, double v)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_F32);
    if (kv)
        kv->f = (float)v;
}

static void kv_bool(struct kvbuf *b, const char *key, bool v)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_BOOL);
    if (kv)
        kv->u = v;
}

static void kv_str(struct kvbuf *b, const char *key, const char *s)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_STRING);
    if (kv && !(kv->str = sb_strdup(s)))
        b->failed = 1;
    else if (kv)
        kv->len = strlen(s);
}

static void kv_arr(struct kvbuf *b, const char *key, enum fmt_kv_type at, const void *data,
                   uint64_t n, size_t esz)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_ARRAY);
    if (!kv)
        return;
    kv->arr_type = at;
    kv->n = n;
    kv->arr_owned = sb_malloc(n ? (size_t)(n * esz) : 1);
    if (!kv->arr_owned) {
        b->failed = 1;
        return;
    }
    if (n)
        memcpy(kv->arr_owned, data, (size_t)(n * esz));
    kv->arr = kv->arr_owned;
}

static size_t kv_elem_size(enum fmt_kv_type t)
{
    switch (t) {
    case FMT_KV_U8: case FMT_KV_I8: case FMT_KV_BOOL: return 1;
    case FMT_KV_U16: case FMT_KV_I16: return 2;
    case FMT_KV_U32: case FMT_KV_I32: case FMT_KV_F32: return 4;
    case FMT_KV_U64: case FMT_KV_I64: case FMT_KV_F64: return 8;
    default: return 0;
    }
}

static void kv_strs(struct kvbuf *b, const char *key, char *const *strs, const uint64_t *lens,
                    uint64_t n)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_ARRAY);
    if (!kv)
        return;
    kv->arr_type = FMT_KV_STRING;
    kv->strs = sb_calloc(n ? (size_t)n : 1, sizeof *kv->strs);
    kv->lens = sb_calloc(n ? (size_t)n : 1, sizeof *kv->lens);
    if (!kv->strs || !kv->lens) {
        b->failed = 1;
        return;
    }
    kv->n = n; /* so fmt_kv_release frees what was copied */
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? (size_t)lens[i] : strlen(strs[i]);
        char *s = sb_malloc(len + 1);
        if (!s) {
            b->failed = 1;
            return;
        }
        memcpy(s, strs[i], len);
        s[len] = '\0';
        kv->strs[i] = s;
        kv->lens[i] = len;
    }
}

static int kv_copy(struct kvbuf *b, const struct fmt_kv *s)
{
    if (s->type == FMT_KV_ARRAY && s->arr_type == FMT_KV_ARRAY)
        return SB_OK; /* nested arrays: fmt_kv cannot hold them */
    if (s->type == FMT_KV_ARRAY && s->arr_type == FMT_KV_STRING) {
        kv_strs(b, s->key, s->strs, s->lens, s->n);
        return b->failed ? SB_ENOMEM : SB_OK;
    }
    if (s->type == FMT_KV_ARRAY) {
        size_t esz = kv_elem_size(s->arr_type);
        if (!esz)
            return SB_OK;
        kv_arr(b, s->key, s->arr_type, s->arr, s->n, esz);
        return b->failed ? SB_ENOMEM : SB_OK;
    }
    struct fmt_kv *kv = kv_push(b, s->key, s->type);
    if (!kv)
        return SB_ENOMEM;
    kv->u = s->u;
    kv->i = s->i;
    kv->f = s->f;
    if (s->type == FMT_KV_STRING) {
        kv->len = s->len;
        if (!(kv->str = sb_malloc((size_t)s->len + 1)))
            return b->failed = 1, SB_ENOMEM;
        memcpy(kv->str, s->str, (size_t)s->len);
        kv->str[s->len] = '\0';
    }
    return SB_OK;
}

static int32_t spm_token_type(const struct fmt_vocab *v, uint32_t id)
{
    if ((int64_t)id == v->unk_id)
        return 2;
    if ((int64_t)id == v->bos_id || (int64_t)id == v->eos_id)
        return 3;
    const char *s = v->tokens[id];
    if (v->lens[id] == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' &&
        isxdigit((unsigned char)s[3]) && isxdigit((unsigned char)s[4]) && s[5] == '>')
        return 6;
    return 1;
}

/* tokenizer.ggml.tokens in SentencePiece spelling: a llama2.c tokenizer.bin
 * stores spaces for U+2581 and "\n<s>\n" / "\n</s>\n" for BOS / EOS
 * (formats.md §4.3); SentencePiece pieces never hold a raw space. */
static void kv_spm_tokens(struct kvbuf *b, const struct fmt_vocab *v)
{
    struct fmt_kv *kv = kv_push(b, "tokenizer.ggml.tokens", FMT_KV_ARRAY);
    if (!kv)
        return;
    kv->arr_type = FMT_KV_STRING;
    kv->strs = sb_calloc(v->n_tokens, sizeof *kv->strs);
    kv->lens = sb_calloc(v->n_tokens, sizeof *kv->lens);
    if (!kv->strs || !kv->lens) {
        b->failed = 1;
        return;
    }
    kv->n = v->n_tokens;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        const char *s = v->tokens[i];
        size_t len = v->lens ? v->lens[i] : strlen(s);
        if (len == 5 && !memcmp(s, "\n<s>\n", 5)) {
            s = "<s>";
            len = 3;
        } else if (len == 6 && !memcmp(s, "\n</s>\n", 6)) {
            s = "</s>";
            len = 4;
        }
        size_t spaces = 0;
        for (size_t k = 0; k < len; k++)
            spaces += s[k] == ' ';
        char *o = sb_malloc(len + 2 * spaces + 1);
        if (!o) {
            b->failed = 1;
            return;
        }
        size_t n = 0;
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ') {
                memcpy(o + n, "\xe2\x96\x81", 3);
                n += 3;
            } else {
                o[n++] = s[k];
            }
        }
        o[n] = '\0';
        kv->strs[i] = o;
        kv->lens[i] = n;
    }
}

static int has_tensor(const struct fmt_model *m, const char *name)
{
    return fmt_model_find(m, name) != NULL;
}

int cvt_layout_gguf_kv(const struct fmt_model *src, struct fmt_kv **kv, size_t *n,
                       struct sb_err *err)
{
    *kv = NULL;
    *n = 0;
    struct kvbuf b = { 0 };
    struct fmt_vocab json_vocab = { 0 };
    int r = SB_OK;
    if (src->container == FMT_CONT_GGUF && src->n_kv) {
        for (size_t i = 0; i < src->n_kv && !r; i++) {
            const char *k = src->kv[i].key;
            if (!strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version") ||
                !strcmp(k, "general.alignment"))
                continue;
            r = kv_copy(&b, &src->kv[i]);
        }
        goto done;
    }
    if (!src->has_arch) {
        r = sb_err_set(err, SB_EUNSUPPORTED, "%s: no model config: cannot write GGUF metadata",
                       model_what(src));
        goto fail;
    }
    const struct fmt_arch *a = &src->arch;
    bool qwen = a->kind == FMT_ARCH_QWEN2_MOE;
    const char *an = qwen ? "qwen2moe" : "llama";
    char key[96];
#define K(s) (snprintf(key, sizeof key, "%s.%s", an, s), key)
    kv_str(&b, "general.architecture", an);
    kv_u32(&b, K("context_length"), a->n_ctx > 0 ? (uint64_t)a->n_ctx : 2048);
    kv_u32(&b, K("embedding_length"), (uint64_t)a->dim);
    kv_u32(&b, K("block_count"), (uint64_t)a->n_layers);
    int ff = a->hidden_dim > 0 ? a->hidden_dim : a->moe_hidden_dim;
    kv_u32(&b, K("feed_forward_length"), (uint64_t)(ff > 0 ? ff : 0));
    kv_u32(&b, K("attention.head_count"), (uint64_t)a->n_heads);
    kv_u32(&b, K("attention.head_count_kv"),
           (uint64_t)(a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads));
    int hd = a->head_dim > 0 ? a->head_dim : (a->n_heads > 0 ? a->dim / a->n_heads : 0);
    kv_u32(&b, K("rope.dimension_count"), (uint64_t)hd);
    kv_f32(&b, K("rope.freq_base"), a->rope_theta > 0 ? a->rope_theta : 10000.0);
    kv_f32(&b, K("attention.layer_norm_rms_epsilon"), a->norm_eps > 0 ? a->norm_eps : 1e-5);
    if (a->n_heads > 0 && hd != a->dim / a->n_heads) {
        kv_u32(&b, K("attention.key_length"), (uint64_t)hd);
        kv_u32(&b, K("attention.value_length"), (uint64_t)hd);
    }
    if (a->n_experts > 0) {
        kv_u32(&b, K("expert_count"), (uint64_t)a->n_experts);
        kv_u32(&b, K("expert_used_count"), (uint64_t)a->n_experts_used);
    }
    if (qwen) {
        kv_u32(&b, K("expert_feed_forward_length"), (uint64_t)a->moe_hidden_dim);
        kv_u32(&b, K("expert_shared_feed_forward_length"), (uint64_t)a->shared_hidden_dim);
    }
    if (a->vocab_size > 0)
        kv_u32(&b, K("vocab_size"), (uint64_t)a->vocab_size);
#undef K
    const struct fmt_vocab *v = &src->vocab;
    if (v->kind == FMT_VOCAB_HF_JSON && v->hf_json) {
        /* A SentencePiece-style tokenizer.json (Llama 1/2) becomes tokenizer.ggml.*
         * model "llama": pieces, token types, and scores that keep the merge order
         * (rule in fmt_hftok.h: a merge result scores -(rank of its first merge);
         * llama.cpp's convert_hf_to_gguf writes -1000 for every token of such a
         * vocab, which its score-driven encoder cannot tokenize by). A byte-level
         * tokenizer.json writes no tokenizer keys, as before. */
        struct sb_err e = { 0 };
        int rj = fmt_hftok_to_spm(&json_vocab, v->hf_json, v->hf_json_len,
                                  a->vocab_size > 0 ? (uint32_t)a->vocab_size : 0, &e);
        if (rj == SB_ENOMEM) {
            b.failed = 1;
        } else if (rj == SB_OK) {
            json_vocab.add_bos = json_vocab.add_bos || v->add_bos;
            if (json_vocab.bos_id < 0)
                json_vocab.bos_id = v->bos_id;
            if (json_vocab.eos_id < 0)
                json_vocab.eos_id = v->eos_id;
            v = &json_vocab;
        }
    }
    if (v->kind == FMT_VOCAB_SPM && v->n_tokens > 0) {
        kv_str(&b, "tokenizer.ggml.model", "llama");
        kv_spm_tokens(&b, v);
        float *sc = sb_calloc(v->n_tokens, sizeof *sc);
        int32_t *ty = sb_malloc(v->n_tokens * sizeof *ty);
        if (!sc || !ty) {
            sb_free(sc);
            sb_free(ty);
            b.failed = 1;
        } else {
            for (uint32_t i = 0; i < v->n_tokens; i++) {
                sc[i] = v->scores ? v->scores[i] : 0.0f;
                ty[i] = v->types ? v->types[i] : spm_token_type(v, i);
            }
            kv_arr(&b, "tokenizer.ggml.scores", FMT_KV_F32, sc, v->n_tokens, 4);
            kv_arr(&b, "tokenizer.ggml.token_type", FMT_KV_I32, ty, v->n_tokens, 4);
            sb_free(sc);
            sb_free(ty);
        }
        int bos = v->bos_id >= 0 ? v->bos_id : a->bos_id;
        int eos = v->eos_id >= 0 ? v->eos_id : a->eos_id;
        if (bos >= 0)
            kv_u32(&b, "tokenizer.ggml.bos_token_id", (uint64_t)bos);
        if (eos >= 0)
            kv_u32(&b, "tokenizer.ggml.eos_token_id", (uint64_t)eos);
        if (v->unk_id >= 0)
            kv_u32(&b, "tokenizer.ggml.unknown_token_id", (uint64_t)v->unk_id);
        kv_bool(&b, "tokenizer.ggml.add_bos_token", v->add_bos);
    }
done:
    if (b.failed || r == SB_ENOMEM) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
        goto fail;
    }
    fmt_vocab_release(&json_vocab);
    *kv = b.kv;
    *n = b.n;
    return SB_OK;
fail:
    fmt_vocab_release(&json_vocab);
    for (size_t i = 0; i < b.n; i++)
        fmt_kv_release(&b.kv[i]);
    sb_free(b.kv);
    return r;
}

/* ---- HF config.json ------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t n, cap;
    int failed;
};

static void sb_addf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(struct sbuf *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            s->failed = 1;
            return;
        }
        if (s->p && s->n + (size_t)k < s->cap) {
            s->n += (size_t)k;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 1024;
        while (cap < s->n + (size_t)k + 1)
            cap *= 2;
        char *p = sb_realloc(s->p, cap);
        if (!p) {
            s->failed = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
}

/* Shortest %g text that reads back as the same float (JSON number). */
static void fmt_float(char *buf, size_t n, float v)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

int cvt_layout_hf_config(const struct fmt_model *src, char **json, struct sb_err *err)
{
    *json = NULL;
    if (src->config_json) {
        if (!(*json = sb_strdup(src->config_json)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
        return SB_OK;
    }
    if (!src->has_arch)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: no architecture: cannot write config.json",
                          model_what(src));
    const struct fmt_arch *a = &src->arch;
    bool qwen = src_is_qwen(src);
    bool moe = !qwen && (a->n_experts > 0 || a->kind == FMT_ARCH_MIXTRAL ||
                         has_tensor(src, "blk.0.ffn_gate_exps.weight"));
    int n_exp = a->n_experts;
    if (!n_exp) {
        const struct fmt_tensor *t = fmt_model_find(src, "blk.0.ffn_gate_exps.weight");
        n_exp = t && t->ndim == 3 ? (int)t->shape[0] : 0;
    }
    bool tied = !has_tensor(src, "output.weight") && !has_tensor(src, "lm_head.weight");
    int nkv = a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads;
    int hd = a->head_dim > 0 ? a->head_dim : (a->n_heads > 0 ? a->dim / a->n_heads : 0);
    int vocab = a->vocab_size;
    if (vocab <= 0) {
        const struct fmt_tensor *t = fmt_model_find(src, "token_embd.weight");
        vocab = t && t->ndim == 2 ? (int)t->shape[0] : 0;
    }
    int bos = a->bos_id >= 0 ? a->bos_id : src->vocab.bos_id;
    int eos = a->eos_id >= 0 ? a->eos_id : src->vocab.eos_id;
    char eps[32], theta[32];
    fmt_float(eps, sizeof eps, a->norm_eps > 0 ? a->norm_eps : 1e-5f);
    fmt_float(theta, sizeof theta, a->rope_theta > 0 ? a->rope_theta : 10000.0f);
    struct sbuf s = { 0 };
    sb_addf(&s, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
            qwen ? "Qwen2MoeForCausalLM" : moe ? "MixtralForCausalLM" : "LlamaForCausalLM",
            qwen ? "qwen2_moe" : moe ? "mixtral" : "llama");
    int ff = moe ? (a->moe_hidden_dim > 0 ? a->moe_hidden_dim : a->hidden_dim) : a->hidden_dim;
    if (!moe && !qwen && ff <= 0) {
        const struct fmt_tensor *t = fmt_model_find(src, "blk.0.ffn_gate.weight");
        ff = t && t->ndim == 2 ? (int)t->shape[0] : 0;
    }
    sb_addf(&s, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n"
            "  \"rope_theta\": %s,\n  \"hidden_act\": \"silu\",\n"
            "  \"tie_word_embeddings\": %s,\n  \"attention_bias\": %s,\n",
            a->dim, ff, a->n_layers, a->n_heads, nkv, hd, vocab,
            a->n_ctx > 0 ? a->n_ctx : 2048, eps, theta, tied ? "true" : "false",
            (a->qkv_bias || has_tensor(src, "blk.0.attn_q.bias")) ? "true" : "false");
    if (moe)
        sb_addf(&s, "  \"num_local_experts\": %d,\n  \"num_experts_per_tok\": %d,\n", n_exp,
                a->n_experts_used > 0 ? a->n_experts_used : 2);
    if (qwen)
        sb_addf(&s, "  \"num_experts\": %d,\n  \"num_experts_per_tok\": %d,\n"
                "  \"moe_intermediate_size\": %d,\n  \"shared_expert_intermediate_size\": %d,\n"
                "  \"norm_topk_prob\": %s,\n  \"decoder_sparse_step\": %d,\n", n_exp,
                a->n_experts_used, a->moe_hidden_dim, a->shared_hidden_dim,
                a->norm_topk_prob ? "true" : "false",
                a->decoder_sparse_step > 0 ? a->decoder_sparse_step : 1);
    if (bos >= 0)
        sb_addf(&s, "  \"bos_token_id\": %d,\n", bos);
    if (eos >= 0)
        sb_addf(&s, "  \"eos_token_id\": %d,\n", eos);
    sb_addf(&s, "  \"use_cache\": true\n}\n");
    if (s.failed) {
        sb_free(s.p);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", model_what(src));
    }
    *json = s.p;
    return SB_OK;
}
