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
    /* every expert there, before sizing anything by a count from the config;
     * a layer whose expert 0 is missing has none to stack */
    for (long e = 0; e < n_exp || e == 0; e++) {
        expert_hf_name(nm, sizeof nm, fam, layer, e, kind);
        if (name_index_get(&p->ix, nm) >= 0)
            continue;
        if (n_exp == 0)
            return sb_err_set(p->err, SB_EFORMAT, "%s: layer %d has expert tensors but no "
                              "'%s'", model_what(m), layer, nm);
        return sb_err_set(p->err, SB_EFORMAT, "%s: missing expert tensor '%s' (%ld experts)",
                          model_what(m), nm, n_exp);
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

static int plan_gguf_to_hf(struct plan *p)
{
    const struct fmt_model *m = p->src;
    const struct fmt_arch *a = &m->arch;
    bool qwen = fmt_model_is_qwen2_moe(m);
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
                     fmt_model_is_qwen2_moe(src) ? "qwen2moe" : "llama");
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
        if (l->n) /* no tensors: l->t is NULL */
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

/* Target rows row0 .. end-1 in source order (no permutation): runs of rows
 * that lie in one piece, decoded with one call each. */
static int gather_in_order(const struct cvt_target *tg, const struct fmt_model *src, bool elem,
                           uint64_t cols, uint64_t row0, uint64_t end, float *dst,
                           struct sb_err *err)
{
    float *o = dst;
    for (uint64_t i = row0; i < end;) {
        size_t k;
        uint64_t srow, sr, sc;
        locate(tg, i, &k, &srow);
        const struct cvt_piece *pc = &tg->pieces[k];
        const struct fmt_tensor *st = &src->tensors[pc->src];
        uint64_t run = pc->row0 + pc->nrows - srow;
        if (run > end - i)
            run = end - i;
        tensor_rows_cols(st, elem, &sr, &sc);
        int r = decode_rows(src, st, sr, sc, srow, run, o, err);
        if (r)
            return r;
        o += run * cols;
        i += run;
    }
    return SB_OK;
}

int cvt_layout_gather_f32_rows(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                               uint64_t row0, uint64_t nrows, float *dst, struct sb_err *err)
{
    uint64_t rb, total, end;
    int r = gather_check(l, t, src, false, &rb, &total, err);
    if (r)
        return r;
    const struct cvt_target *tg = &l->t[t];
    bool elem = target_elem_mode(tg);
    uint64_t rows, cols;
    cvt_layout_rows_cols(l, t, &rows, &cols);
    if (sb_add_u64(row0, nrows, &end) || end > rows)
        return sb_err_set(err, SB_EINVAL, "%s: '%s': rows %llu..%llu past its %llu rows",
                          model_what(src), tg->name, (unsigned long long)row0,
                          (unsigned long long)end, (unsigned long long)rows);
    if (elem) {
        const struct sb_dtype_info *in = sb_dtype_get(tg->src_dtype);
        if (tg->mixed_dtype || !in || !(in->flags & SB_DT_FLOAT))
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: '%s': cannot permute a %s vector",
                              model_what(src), tg->name, sb_dtype_name(tg->src_dtype));
    }
    if (tg->perm == CVT_PERM_NONE)
        return gather_in_order(tg, src, elem, cols, row0, end, dst, err);
    bool varlen = false;
    for (size_t k = 0; k < tg->n_pieces; k++)
        varlen |= (sb_dtype_get(src->tensors[tg->pieces[k].src].dtype)->flags & SB_DT_VARLEN) != 0;
    if (varlen) {
        /* a variable-length blob is validated and its decoder set up per call:
         * decode the target whole once, in source order, then permute the rows
         * (row by row took 4x longer for fuzz_subbit's inputs) */
        size_t n;
        float *tmp = NULL;
        if (sb_mul_size((size_t)rows, (size_t)cols, &n) || sb_mul_size(n, sizeof *tmp, &n) ||
            !(tmp = sb_malloc(n ? n : 1)))
            return sb_err_set(err, SB_ENOMEM, "%s: '%s': out of memory", model_what(src),
                              tg->name);
        if ((r = gather_in_order(tg, src, elem, cols, 0, rows, tmp, err)) == SB_OK)
            for (uint64_t i = row0; i < end; i++)
                memcpy(dst + (i - row0) * cols,
                       tmp + cvt_perm_src_row(tg->perm, (uint64_t)tg->perm_heads, rows, i) * cols,
                       (size_t)cols * sizeof *dst);
        sb_free(tmp);
        return r;
    }
    for (uint64_t i = row0; i < end; i++) {
        uint64_t sr = cvt_perm_src_row(tg->perm, (uint64_t)tg->perm_heads, rows, i), srow;
        size_t k;
        locate(tg, sr, &k, &srow);
        const struct fmt_tensor *st = &src->tensors[tg->pieces[k].src];
        uint64_t trows, tcols;
        tensor_rows_cols(st, elem, &trows, &tcols);
        if ((r = decode_rows(src, st, trows, tcols, srow, 1, dst + (i - row0) * cols, err)))
            return r;
    }
    return SB_OK;
}

int cvt_layout_gather_f32(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                          float *dst, struct sb_err *err)
{
    uint64_t rows, cols;
    if (!l || t >= l->n)
        return sb_err_set(err, SB_EINVAL, "%s: no such layout target", model_what(src));
    cvt_layout_rows_cols(l, t, &rows, &cols);
    return cvt_layout_gather_f32_rows(l, t, src, 0, rows, dst, err);
}
