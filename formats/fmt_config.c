/* fmt_config.c: config.json, parsed once into typed fields (fmt_config.h);
 * the architecture read from them; config.json written for an architecture.
 * The only file of subbit that parses config.json. */
#include "fmt_config.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_buf_impl.h"
#include "fmt_model.h"
#include "sb_alloc.h"
#include "sb_math.h"

/* ---- parsing ---------------------------------------------------------------- */

static struct fmt_cfg_val val_of(const cJSON *it)
{
    struct fmt_cfg_val v = { FMT_CFG_ABSENT, 0.0, false, false, 0 };
    if (!it)
        return v;
    if (cJSON_IsNull(it)) {
        v.kind = FMT_CFG_NULL;
    } else if (cJSON_IsNumber(it)) {
        v.kind = FMT_CFG_NUMBER;
        v.num = it->valuedouble;
    } else if (cJSON_IsBool(it)) {
        v.kind = FMT_CFG_BOOL;
        v.b = cJSON_IsTrue(it);
    } else if (cJSON_IsString(it)) {
        v.kind = FMT_CFG_STRING;
    } else if (cJSON_IsArray(it)) {
        v.kind = FMT_CFG_ARRAY;
        v.n = (size_t)cJSON_GetArraySize(it);
        const cJSON *first = cJSON_GetArrayItem(it, 0);
        if (cJSON_IsNumber(first)) {
            v.first_num = true;
            v.num = first->valuedouble;
        }
    } else {
        v.kind = FMT_CFG_OBJECT;
    }
    return v;
}

static const cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const struct {
    const char *key;
    size_t off;
} fields[] = {
#define FMT_CONFIG_ROW(k) { #k, offsetof(struct fmt_config, k) },
    FMT_CONFIG_KEYS(FMT_CONFIG_ROW)
#undef FMT_CONFIG_ROW
};

const struct fmt_cfg_val *fmt_config_get(const struct fmt_config *c, const char *key)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!strcmp(fields[i].key, key))
            return (const struct fmt_cfg_val *)(const void *)((const char *)c + fields[i].off);
    return NULL;
}

static int parse_qgroups(struct fmt_config *c, const cJSON *root)
{
    const cJSON *groups = item(item(root, "quantization_config"), "config_groups");
    size_t n = 0;
    for (const cJSON *g = cJSON_IsObject(groups) ? groups->child : NULL; g; g = g->next)
        n++;
    if (!n)
        return SB_OK;
    if (!(c->qgroups = sb_calloc(n, sizeof *c->qgroups)))
        return SB_ENOMEM;
    for (const cJSON *g = groups->child; g; g = g->next) {
        struct fmt_cfg_qgroup *q = &c->qgroups[c->n_qgroups++];
        const cJSON *w = item(g, "weights"), *tg = item(g, "targets");
        q->num_bits = val_of(item(w, "num_bits"));
        q->group_size = val_of(item(w, "group_size"));
        size_t nt = 0;
        for (const cJSON *t = cJSON_IsArray(tg) ? tg->child : NULL; t; t = t->next)
            nt += cJSON_IsString(t);
        if (!nt)
            continue;
        if (!(q->targets = sb_calloc(nt, sizeof *q->targets)))
            return SB_ENOMEM;
        for (const cJSON *t = tg->child; t; t = t->next)
            if (cJSON_IsString(t) && !(q->targets[q->n_targets++] = sb_strdup(t->valuestring)))
                return SB_ENOMEM;
    }
    return SB_OK;
}

static int parse_root(struct fmt_config *c, const cJSON *root)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        *(struct fmt_cfg_val *)(void *)((char *)c + fields[i].off) =
            val_of(item(root, fields[i].key));
    const cJSON *mt = item(root, "model_type");
    c->model_type_val = val_of(mt);
    if (cJSON_IsString(mt))
        snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
    /* the checkpoint's dtype: torch_dtype, "dtype" in newer transformers */
    const cJSON *td = item(root, "torch_dtype");
    if (!cJSON_IsString(td))
        td = item(root, "dtype");
    if (cJSON_IsString(td))
        snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", td->valuestring);
    const cJSON *rp = item(root, "rope_parameters");
    if (cJSON_IsObject(rp))
        c->rope_parameters_theta = val_of(item(rp, "rope_theta"));
    const cJSON *rs = item(root, "rope_scaling");
    c->rope_scaling = val_of(rs);
    if (cJSON_IsObject(rs)) {
        const cJSON *t = item(rs, "rope_type");
        if (!cJSON_IsString(t))
            t = item(rs, "type");
        snprintf(c->rope_scaling_type, sizeof c->rope_scaling_type, "%.32s",
                 cJSON_IsString(t) ? t->valuestring : "?");
    }
    const cJSON *mol = item(root, "mlp_only_layers"), *e;
    c->mlp_only_layers_val = val_of(mol);
    if (cJSON_IsArray(mol) && cJSON_GetArraySize(mol) > 0) {
        if (!(c->mlp_only_layers = sb_calloc((size_t)cJSON_GetArraySize(mol), sizeof(long))))
            return SB_ENOMEM;
        cJSON_ArrayForEach(e, mol)
        {
            if (cJSON_IsNumber(e))
                c->mlp_only_layers[c->n_mlp_only_layers++] = (long)sb_f64_to_i64(e->valuedouble);
        }
    }
    const cJSON *lt = item(root, "layer_types");
    c->layer_types = val_of(lt);
    if (cJSON_IsArray(lt))
        cJSON_ArrayForEach(e, lt)
        {
            if (cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention"))
                c->n_sliding_layer_types++;
        }
    return parse_qgroups(c, root);
}

int fmt_config_parse(struct fmt_config **out, const char *json, size_t len, const char *what,
                     struct sb_err *err)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sb_err_set(err, SB_EFORMAT, "%s: not a JSON object", what);
    }
    struct fmt_config *c = sb_calloc(1, sizeof *c);
    int r = c ? parse_root(c, root) : SB_ENOMEM;
    cJSON_Delete(root);
    if (r != SB_OK) {
        fmt_config_free(c);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
    }
    *out = c;
    return SB_OK;
}

void fmt_config_free(struct fmt_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_qgroups; i++) {
        for (size_t k = 0; k < c->qgroups[i].n_targets; k++)
            sb_free(c->qgroups[i].targets[k]);
        sb_free(c->qgroups[i].targets);
    }
    sb_free(c->qgroups);
    sb_free(c->mlp_only_layers);
    sb_free(c);
}

/* ---- the architecture ------------------------------------------------------- */

static int num_or(const struct fmt_cfg_val *v, int dflt)
{
    /* no UB for a number past INT_MAX (or NaN): sb_f64_to_i32 saturates */
    return v->kind == FMT_CFG_NUMBER ? sb_f64_to_i32(v->num) : dflt;
}

static double real_or(const struct fmt_cfg_val *v, double dflt)
{
    return v->kind == FMT_CFG_NUMBER ? v->num : dflt;
}

static bool bool_or(const struct fmt_cfg_val *v, bool dflt)
{
    return v->kind == FMT_CFG_BOOL ? v->b : dflt;
}

static int need_int(const struct fmt_cfg_val *v, const char *key, int *out, const char *what,
                    struct sb_err *err)
{
    if (v->kind != FMT_CFG_NUMBER)
        return sb_err_set(err, SB_EFORMAT, "%s: missing or non-numeric field '%s'", what, key);
    if (v->num < 1 || v->num > 1e9)
        return sb_err_set(err, SB_EFORMAT, "%s: field '%s' out of range (%g)", what, key, v->num);
    *out = (int)v->num;
    return SB_OK;
}

int fmt_arch_from_config(struct fmt_arch *a, const struct fmt_config *c, const char *what,
                         struct sb_err *err)
{
    memset(a, 0, sizeof *a);
    a->bos_id = a->eos_id = -1;
    int r;
    const char *type = c->model_type_val.kind == FMT_CFG_STRING ? c->model_type : "llama";
    snprintf(a->model_type, sizeof a->model_type, "%s", type);
    if (!strcmp(type, "mixtral"))
        a->kind = FMT_ARCH_MIXTRAL;
    else if (!strcmp(type, "qwen2_moe"))
        a->kind = FMT_ARCH_QWEN2_MOE;
    else if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2"))
        a->kind = FMT_ARCH_LLAMA;
    else
        a->kind = FMT_ARCH_UNKNOWN;

    if ((r = need_int(&c->hidden_size, "hidden_size", &a->dim, what, err)) ||
        (r = need_int(&c->num_hidden_layers, "num_hidden_layers", &a->n_layers, what, err)) ||
        (r = need_int(&c->num_attention_heads, "num_attention_heads", &a->n_heads, what, err)) ||
        (r = need_int(&c->vocab_size, "vocab_size", &a->vocab_size, what, err)))
        return r;
    a->n_kv_heads = num_or(&c->num_key_value_heads, a->n_heads);
    a->head_dim = num_or(&c->head_dim, a->dim / a->n_heads);
    a->hidden_dim = num_or(&c->intermediate_size, 0);
    a->n_ctx = num_or(&c->max_position_embeddings, 2048);
    /* given, they must be usable: never replaced by a default behind the user's back */
    const struct {
        const struct fmt_cfg_val *v;
        const char *key;
    } pos[] = { { &c->rms_norm_eps, "rms_norm_eps" }, { &c->rope_theta, "rope_theta" },
                { &c->rope_parameters_theta, "rope_parameters.rope_theta" } };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v->kind == FMT_CFG_NUMBER && !(pos[i].v->num > 0 && pos[i].v->num < 1e30))
            return sb_err_set(err, SB_EFORMAT, "%s: %s %g is not a positive number", what,
                              pos[i].key, pos[i].v->num);
    a->norm_eps = (float)real_or(&c->rms_norm_eps, 1e-6);
    a->rope_theta = (float)real_or(&c->rope_theta, 10000.0);
    a->rope_theta = (float)real_or(&c->rope_parameters_theta, a->rope_theta);
    a->rope_layout = FMT_ROPE_HALF;
    a->tied_embeddings = bool_or(&c->tie_word_embeddings, false);
    a->qkv_bias = bool_or(&c->attention_bias,
                          a->kind == FMT_ARCH_QWEN2_MOE || !strcmp(type, "qwen2"));
    a->bos_id = num_or(&c->bos_token_id, -1);
    /* eos_token_id: a number, or a list whose first entry is the one we use */
    a->eos_id = c->eos_token_id.kind == FMT_CFG_NUMBER || c->eos_token_id.first_num
                    ? sb_f64_to_i32(c->eos_token_id.num) : -1;
    if (a->kind == FMT_ARCH_MIXTRAL) {
        a->n_experts = num_or(&c->num_local_experts, 8);
        a->n_experts_used = num_or(&c->num_experts_per_tok, 2);
        a->moe_hidden_dim = a->hidden_dim;
        a->norm_topk_prob = true;
        a->decoder_sparse_step = 1;
    } else if (a->kind == FMT_ARCH_QWEN2_MOE) {
        a->n_experts = num_or(&c->num_experts, 60);
        a->n_experts_used = num_or(&c->num_experts_per_tok, 4);
        a->moe_hidden_dim = num_or(&c->moe_intermediate_size, a->hidden_dim);
        a->shared_hidden_dim = num_or(&c->shared_expert_intermediate_size, 0);
        a->norm_topk_prob = bool_or(&c->norm_topk_prob, false);
        a->decoder_sparse_step = num_or(&c->decoder_sparse_step, 1);
    }
    /* features the core does not implement (vfy_model_new refuses them) */
    if (c->rope_scaling.kind == FMT_CFG_OBJECT && strcmp(c->rope_scaling_type, "default") != 0)
        snprintf(a->unimplemented, sizeof a->unimplemented, "rope_scaling (%.32s)",
                 c->rope_scaling_type);
    double prf = real_or(&c->partial_rotary_factor, 1.0);
    if (prf != 1.0)
        snprintf(a->unimplemented, sizeof a->unimplemented, "partial_rotary_factor %g", prf);
    if (c->mlp_only_layers_val.kind == FMT_CFG_ARRAY && c->mlp_only_layers_val.n > 0)
        snprintf(a->unimplemented, sizeof a->unimplemented, "mlp_only_layers");
    /* Mistral: sliding_window when set; Qwen2: only with use_sliding_window */
    if (!(c->use_sliding_window.kind == FMT_CFG_BOOL && !c->use_sliding_window.b)) {
        int sw = num_or(&c->sliding_window, 0);
        if (sw > 0 && sw < a->n_ctx)
            a->sliding_window = sw;
    }
    if (a->n_kv_heads < 1 || a->n_heads % a->n_kv_heads)
        return sb_err_set(err, SB_EFORMAT, "%s: num_key_value_heads %d does not divide "
                          "num_attention_heads %d", what, a->n_kv_heads, a->n_heads);
    return SB_OK;
}

/* ---- writing ------------------------------------------------------------------- */

/* Shortest %g text that reads back as the same float (JSON number). */
static void float_text(char *buf, size_t n, float v)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

static bool has_tensor(const struct fmt_model *m, const char *name)
{
    return fmt_model_find(m, name) != NULL;
}

int fmt_config_json_from_model(const struct fmt_model *src, char **json, struct sb_err *err)
{
    const char *what = src->path ? src->path : "(model)";
    *json = NULL;
    if (src->config_json) {
        if (!(*json = sb_strdup(src->config_json)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
        return SB_OK;
    }
    if (!src->has_arch)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: no architecture: cannot write config.json",
                          what);
    const struct fmt_arch *a = &src->arch;
    bool qwen = fmt_model_is_qwen2_moe(src);
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
    float_text(eps, sizeof eps, a->norm_eps > 0 ? a->norm_eps : 1e-5f);
    float_text(theta, sizeof theta, a->rope_theta > 0 ? a->rope_theta : 10000.0f);
    struct fmt_buf s = { 0 };
    fmt_buf_printf(&s, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
                   qwen ? "Qwen2MoeForCausalLM" : moe ? "MixtralForCausalLM" : "LlamaForCausalLM",
                   qwen ? "qwen2_moe" : moe ? "mixtral" : "llama");
    int ff = moe ? (a->moe_hidden_dim > 0 ? a->moe_hidden_dim : a->hidden_dim) : a->hidden_dim;
    if (!moe && !qwen && ff <= 0) {
        const struct fmt_tensor *t = fmt_model_find(src, "blk.0.ffn_gate.weight");
        ff = t && t->ndim == 2 ? (int)t->shape[0] : 0;
    }
    fmt_buf_printf(&s, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
                   "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                   "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
                   "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n"
                   "  \"rope_theta\": %s,\n  \"hidden_act\": \"silu\",\n"
                   "  \"tie_word_embeddings\": %s,\n  \"attention_bias\": %s,\n",
                   a->dim, ff, a->n_layers, a->n_heads, nkv, hd, vocab,
                   a->n_ctx > 0 ? a->n_ctx : 2048, eps, theta, tied ? "true" : "false",
                   (a->qkv_bias || has_tensor(src, "blk.0.attn_q.bias")) ? "true" : "false");
    if (moe)
        fmt_buf_printf(&s, "  \"num_local_experts\": %d,\n  \"num_experts_per_tok\": %d,\n", n_exp,
                       a->n_experts_used > 0 ? a->n_experts_used : 2);
    if (qwen)
        fmt_buf_printf(&s, "  \"num_experts\": %d,\n  \"num_experts_per_tok\": %d,\n"
                       "  \"moe_intermediate_size\": %d,\n"
                       "  \"shared_expert_intermediate_size\": %d,\n"
                       "  \"norm_topk_prob\": %s,\n  \"decoder_sparse_step\": %d,\n", n_exp,
                       a->n_experts_used, a->moe_hidden_dim, a->shared_hidden_dim,
                       a->norm_topk_prob ? "true" : "false",
                       a->decoder_sparse_step > 0 ? a->decoder_sparse_step : 1);
    if (bos >= 0)
        fmt_buf_printf(&s, "  \"bos_token_id\": %d,\n", bos);
    if (eos >= 0)
        fmt_buf_printf(&s, "  \"eos_token_id\": %d,\n", eos);
    fmt_buf_puts(&s, "  \"use_cache\": true\n}\n");
    if (s.oom) {
        sb_free(s.p);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
    }
    *json = s.p;
    return SB_OK;
}

int fmt_config_json_set_dtype(char **config, const char *torch_name, const char *what,
                              struct sb_err *err)
{
    cJSON *root = cJSON_Parse(*config);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return SB_OK; /* not ours to judge: the reader accepted it */
    }
    cJSON *v = cJSON_CreateString(torch_name);
    if (cJSON_GetObjectItemCaseSensitive(root, "dtype"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "dtype", cJSON_CreateString(torch_name));
    if (cJSON_GetObjectItemCaseSensitive(root, "torch_dtype"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "torch_dtype", v);
    else
        cJSON_AddItemToObject(root, "torch_dtype", v);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
    size_t n = strlen(text);
    char *c = sb_malloc(n + 2);
    if (!c) {
        cJSON_free(text);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
    }
    memcpy(c, text, n);
    c[n] = '\n';
    c[n + 1] = '\0';
    cJSON_free(text);
    sb_free(*config);
    *config = c;
    return SB_OK;
}
