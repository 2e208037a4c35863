/* cvt_synth.c: deterministic random HF models. Values come from a counter-based
 * hash of (seed, tensor index, element index), so any chunking or thread count
 * gives the same bytes. */
#include "cvt_synth.h"
#include "fmt_writer.h"
#include "qnt_encode.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cvt_synth_opts_init(struct cvt_synth_opts *o, enum fmt_arch_kind kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->layers = 2;
    o->dim = 64;
    o->hidden = kind == FMT_ARCH_LLAMA ? 172 : 96;
    o->heads = 4;
    o->kv_heads = 2;
    o->vocab = 258;
    o->ctx = 512;
    o->experts = kind == FMT_ARCH_LLAMA ? 0 : 4;
    o->top_k = kind == FMT_ARCH_LLAMA ? 0 : 2;
    o->shared_hidden = kind == FMT_ARCH_QWEN2_MOE ? 128 : 0;
    o->dtype = SB_DTYPE_F32;
    o->seed = 1;
    o->init_std = 0.02f;
}

/* ---- the tensor list ---------------------------------------------------- */

enum fill { FILL_NORMAL, FILL_ONES };

struct spec {
    char name[128];
    int ndim;
    int64_t shape[2];
    enum fill fill;
};

struct specs {
    struct spec *s;
    size_t n, cap;
    int oom;
};

static void add(struct specs *v, enum fill f, int64_t a, int64_t b, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#include <stdarg.h>
static void add(struct specs *v, enum fill f, int64_t a, int64_t b, const char *fmt, ...)
{
    if (v->oom)
        return;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        struct spec *s = sb_realloc(v->s, cap * sizeof *s);
        if (!s) {
            v->oom = 1;
            return;
        }
        v->s = s;
        v->cap = cap;
    }
    struct spec *s = &v->s[v->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->fill = f;
    s->ndim = b > 0 ? 2 : 1;
    s->shape[0] = a;
    s->shape[1] = b;
}

static void build_specs(const struct cvt_synth_opts *o, struct specs *v)
{
    const int64_t D = o->dim, V = o->vocab, hd = o->dim / o->heads;
    const int64_t Q = o->heads * hd, KV = o->kv_heads * hd;
    add(v, FILL_NORMAL, V, D, "model.embed_tokens.weight");
    for (int l = 0; l < o->layers; l++) {
        const char *p = "model.layers";
        add(v, FILL_ONES, D, 0, "%s.%d.input_layernorm.weight", p, l);
        add(v, FILL_NORMAL, Q, D, "%s.%d.self_attn.q_proj.weight", p, l);
        add(v, FILL_NORMAL, KV, D, "%s.%d.self_attn.k_proj.weight", p, l);
        add(v, FILL_NORMAL, KV, D, "%s.%d.self_attn.v_proj.weight", p, l);
        if (o->kind == FMT_ARCH_QWEN2_MOE) {
            add(v, FILL_NORMAL, Q, 0, "%s.%d.self_attn.q_proj.bias", p, l);
            add(v, FILL_NORMAL, KV, 0, "%s.%d.self_attn.k_proj.bias", p, l);
            add(v, FILL_NORMAL, KV, 0, "%s.%d.self_attn.v_proj.bias", p, l);
        }
        add(v, FILL_NORMAL, D, Q, "%s.%d.self_attn.o_proj.weight", p, l);
        add(v, FILL_ONES, D, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        if (o->kind == FMT_ARCH_MIXTRAL) {
            add(v, FILL_NORMAL, o->experts, D, "%s.%d.block_sparse_moe.gate.weight", p, l);
            for (int e = 0; e < o->experts; e++) {
                add(v, FILL_NORMAL, o->hidden, D, "%s.%d.block_sparse_moe.experts.%d.w1.weight", p, l, e);
                add(v, FILL_NORMAL, D, o->hidden, "%s.%d.block_sparse_moe.experts.%d.w2.weight", p, l, e);
                add(v, FILL_NORMAL, o->hidden, D, "%s.%d.block_sparse_moe.experts.%d.w3.weight", p, l, e);
            }
        } else if (o->kind == FMT_ARCH_QWEN2_MOE) {
            add(v, FILL_NORMAL, o->experts, D, "%s.%d.mlp.gate.weight", p, l);
            for (int e = 0; e < o->experts; e++) {
                add(v, FILL_NORMAL, o->hidden, D, "%s.%d.mlp.experts.%d.gate_proj.weight", p, l, e);
                add(v, FILL_NORMAL, o->hidden, D, "%s.%d.mlp.experts.%d.up_proj.weight", p, l, e);
                add(v, FILL_NORMAL, D, o->hidden, "%s.%d.mlp.experts.%d.down_proj.weight", p, l, e);
            }
            add(v, FILL_NORMAL, o->shared_hidden, D, "%s.%d.mlp.shared_expert.gate_proj.weight", p, l);
            add(v, FILL_NORMAL, o->shared_hidden, D, "%s.%d.mlp.shared_expert.up_proj.weight", p, l);
            add(v, FILL_NORMAL, D, o->shared_hidden, "%s.%d.mlp.shared_expert.down_proj.weight", p, l);
            add(v, FILL_NORMAL, 1, D, "%s.%d.mlp.shared_expert_gate.weight", p, l);
        } else {
            add(v, FILL_NORMAL, o->hidden, D, "%s.%d.mlp.gate_proj.weight", p, l);
            add(v, FILL_NORMAL, o->hidden, D, "%s.%d.mlp.up_proj.weight", p, l);
            add(v, FILL_NORMAL, D, o->hidden, "%s.%d.mlp.down_proj.weight", p, l);
        }
    }
    add(v, FILL_ONES, D, 0, "model.norm.weight");
    if (!o->tied)
        add(v, FILL_NORMAL, V, D, "lm_head.weight");
}

static int check_opts(const struct cvt_synth_opts *o, struct sb_err *err)
{
    if (o->layers < 1 || o->dim < 2 || o->heads < 1 || o->kv_heads < 1 || o->vocab < 1 ||
        o->hidden < 1 || o->ctx < 1)
        return sb_err_set(err, SB_EINVAL, "sizes must be positive");
    if (o->dim % o->heads || (o->dim / o->heads) % 2)
        return sb_err_set(err, SB_EINVAL, "--dim %d must be a multiple of 2 x --heads %d",
                          o->dim, o->heads);
    if (o->heads % o->kv_heads)
        return sb_err_set(err, SB_EINVAL, "--kv-heads %d must divide --heads %d",
                          o->kv_heads, o->heads);
    if (o->kind != FMT_ARCH_LLAMA && (o->experts < 1 || o->top_k < 1 || o->top_k > o->experts))
        return sb_err_set(err, SB_EINVAL, "MoE needs --experts >= --top-k >= 1");
    if (o->kind == FMT_ARCH_QWEN2_MOE && o->shared_hidden < 1)
        return sb_err_set(err, SB_EINVAL, "qwen2_moe needs --shared-hidden >= 1");
    if (o->dtype != SB_DTYPE_F32 && o->dtype != SB_DTYPE_F16 && o->dtype != SB_DTYPE_BF16)
        return sb_err_set(err, SB_EINVAL, "--dtype must be f32, f16 or bf16");
    return SB_OK;
}

uint64_t cvt_synth_params(const struct cvt_synth_opts *o)
{
    struct specs v = { 0 };
    build_specs(o, &v);
    uint64_t total = 0, n;
    for (size_t i = 0; i < v.n && !v.oom; i++) {
        if (sb_shape_numel(v.s[i].shape, v.s[i].ndim, &n) || sb_add_u64(total, n, &total)) {
            total = 0;
            break;
        }
    }
    sb_free(v.s);
    return v.oom ? 0 : total;
}

/* ---- values ------------------------------------------------------------- */

static inline uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Irwin-Hall: the sum of four 16-bit uniforms, centred and scaled to unit
 * variance; cheap, deterministic and normal enough for a random model. */
static void fill_normal(float *x, size_t n, uint64_t seed, uint64_t tensor, float std)
{
    const float scale = std * 1.7320508f / 65536.0f; /* sqrt(12/4) / 2^16 */
    const uint64_t base = mix(seed * 0x9E3779B97F4A7C15ull + tensor + 1);
    int64_t nn = (int64_t)n;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nn; i++) {
        uint64_t h = mix(base + (uint64_t)i * 0x9E3779B97F4A7C15ull);
        int32_t s = (int32_t)(h & 0xFFFF) + (int32_t)((h >> 16) & 0xFFFF) +
                    (int32_t)((h >> 32) & 0xFFFF) + (int32_t)(h >> 48) - 131070;
        x[i] = (float)s * scale;
    }
}

/* ---- config.json and tokenizer.json ----------------------------------- */

static char *config_json(const struct cvt_synth_opts *o)
{
    char *buf = sb_malloc(4096);
    if (!buf)
        return NULL;
    const char *type = o->kind == FMT_ARCH_MIXTRAL     ? "mixtral"
                       : o->kind == FMT_ARCH_QWEN2_MOE ? "qwen2_moe"
                                                       : "llama";
    const char *archname = o->kind == FMT_ARCH_MIXTRAL     ? "MixtralForCausalLM"
                           : o->kind == FMT_ARCH_QWEN2_MOE ? "Qwen2MoeForCausalLM"
                                                           : "LlamaForCausalLM";
    const char *dt = sb_dtype_torch_name(o->dtype);
    int bos = o->vocab >= 258 ? 256 : 0, eos = o->vocab >= 258 ? 257 : 0;
    int n = snprintf(buf, 4096,
                     "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
                     "  \"torch_dtype\": \"%s\",\n  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
                     "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                     "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
                     "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": 1e-05,\n"
                     "  \"rope_theta\": 10000.0,\n  \"hidden_act\": \"silu\",\n"
                     "  \"tie_word_embeddings\": %s,\n  \"bos_token_id\": %d,\n"
                     "  \"eos_token_id\": %d",
                     archname, type, dt, o->vocab, o->dim, o->hidden, o->layers, o->heads,
                     o->kv_heads, o->ctx, o->tied ? "true" : "false", bos, eos);
    if (o->kind == FMT_ARCH_MIXTRAL)
        n += snprintf(buf + n, 4096 - (size_t)n,
                      ",\n  \"num_local_experts\": %d,\n  \"num_experts_per_tok\": %d",
                      o->experts, o->top_k);
    else if (o->kind == FMT_ARCH_QWEN2_MOE)
        n += snprintf(buf + n, 4096 - (size_t)n,
                      ",\n  \"num_experts\": %d,\n  \"num_experts_per_tok\": %d,\n"
                      "  \"moe_intermediate_size\": %d,\n  \"shared_expert_intermediate_size\": %d,\n"
                      "  \"norm_topk_prob\": false,\n  \"decoder_sparse_step\": 1,\n"
                      "  \"qkv_bias\": true",
                      o->experts, o->top_k, o->hidden, o->shared_hidden);
    snprintf(buf + n, 4096 - (size_t)n, "\n}\n");
    return buf;
}

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to
 * U+0100 upwards, so every byte is one visible character. */
static unsigned byte_to_cp(unsigned b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)))
            n++;
    return 256 + n;
}

static int put_json_cp(char *p, unsigned cp)
{
    if (cp == '"' || cp == '\\')
        return sprintf(p, "\\%c", (char)cp);
    if (cp < 0x80)
        return sprintf(p, "%c", (char)cp);
    return sprintf(p, "\\u%04x", cp);
}

static int write_tokenizer_json(const char *path, struct sb_err *err)
{
    char *buf = sb_malloc(16384);
    if (!buf)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    int n = sprintf(buf,
                    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
                    "{\"id\":256,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,"
                    "\"rstrip\":false,\"normalized\":false,\"special\":true},"
                    "{\"id\":257,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,"
                    "\"rstrip\":false,\"normalized\":false,\"special\":true}],"
                    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
                    "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false},"
                    "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\","
                    "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false},"
                    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
                    "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
                    "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{");
    for (unsigned b = 0; b < 256; b++) {
        buf[n++] = '"';
        n += put_json_cp(buf + n, byte_to_cp(b));
        n += sprintf(buf + n, "\":%u%s", b, b < 255 ? "," : "");
    }
    n += sprintf(buf + n, "},\"merges\":[]}}\n");
    struct fmt_out o;
    int r = fmt_out_open(&o, path, FMT_OUT_FORCE, err);
    if (r == SB_OK && (r = fmt_out_write(&o, buf, (size_t)n, err)) == SB_OK)
        r = fmt_out_commit(&o, err);
    else
        fmt_out_abort(&o);
    sb_free(buf);
    return r;
}

/* ---- the writer loop ---------------------------------------------------- */

int cvt_synth(const struct cvt_synth_opts *o, const char *out_dir, struct sb_err *err)
{
    int r = check_opts(o, err);
    if (r)
        return r;
    struct specs v = { 0 };
    build_specs(o, &v);
    struct fmt_tensor *plan = NULL;
    struct fmt_writer *w = NULL;
    char *config = NULL;
    float *f = NULL;
    void *out = NULL;
    struct fmt_outdir tokdir;           /* $TMPDIR/subbit-synth.subbit-tmp-PID-XXXXXX */
    char *tokpath = NULL;
    memset(&tokdir, 0, sizeof tokdir);
    if (v.oom || !(plan = sb_calloc(v.n, sizeof *plan)) || !(config = config_json(o))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_dir);
        goto done;
    }
    uint64_t max_elems = 0, total = 0;
    for (size_t i = 0; i < v.n; i++) {
        plan[i].name = v.s[i].name;
        plan[i].dtype = o->dtype;
        plan[i].ndim = v.s[i].ndim;
        plan[i].shape[0] = v.s[i].shape[0];
        plan[i].shape[1] = v.s[i].shape[1];
        plan[i].map_index = -1;
        uint64_t n;
        if (sb_shape_numel(plan[i].shape, plan[i].ndim, &n) ||
            sb_dtype_nbytes(o->dtype, plan[i].shape, plan[i].ndim, NULL, &plan[i].nbytes)) {
            r = sb_err_set(err, SB_EINVAL, "tensor '%s' is too large", v.s[i].name);
            goto done;
        }
        if (n > max_elems)
            max_elems = n;
        total += plan[i].nbytes;
    }
    const char *tmp = getenv("TMPDIR");
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/subbit-synth",
             tmp && *tmp && strlen(tmp) < 4000 ? tmp : "/tmp");
    if ((r = fmt_outdir_open(&tokdir, base, FMT_OUT_FORCE, err)) != SB_OK)
        goto done;
    if (!(tokpath = fmt_outdir_file(&tokdir, "tokenizer.json"))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_dir);
        goto done;
    }
    if (o->vocab >= 258 && (r = write_tokenizer_json(tokpath, err)) != SB_OK)
        goto done;
    const char *side[1] = { tokpath };
    struct fmt_write_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.flags = o->out_flags;
    wo.shard_size = o->shard_size;
    wo.config_json = config;
    wo.side_files = side;
    wo.n_side_files = o->vocab >= 258 ? 1 : 0;
    f = sb_malloc_aligned((size_t)max_elems * sizeof(float));
    out = sb_malloc_aligned((size_t)max_elems * sizeof(float));
    if (!f || !out) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_dir);
        goto done;
    }
    /* a folder output, even for one file: config.json and the tokenizer travel with it */
    size_t dl = strlen(out_dir);
    char *dirpath = sb_malloc(dl + 2);
    if (!dirpath) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_dir);
        goto done;
    }
    memcpy(dirpath, out_dir, dl + 1);
    if (dl == 0 || out_dir[dl - 1] != '/')
        strcat(dirpath, "/");
    r = fmt_writer_open(&w, FMT_CONT_SAFETENSORS, dirpath, plan, v.n, &wo, err);
    sb_free(dirpath);
    if (r)
        goto done;
    uint64_t done_bytes = 0;
    for (size_t k = 0; k < v.n; k++) {
        size_t i = fmt_writer_order(w, k);
        uint64_t n = plan[i].nbytes / sb_dtype_get(o->dtype)->type_size;
        if (v.s[i].fill == FILL_ONES)
            for (uint64_t j = 0; j < n; j++)
                f[j] = 1.0f;
        else
            fill_normal(f, (size_t)n, o->seed, i, o->init_std);
        const void *data = f;
        if (o->dtype != SB_DTYPE_F32) {
            if ((r = qnt_convert_plain(SB_DTYPE_F32, f, o->dtype, out, (size_t)n)) != SB_OK) {
                sb_err_set(err, r, "tensor '%s': cast to %s failed", v.s[i].name, sb_dtype_name(o->dtype));
                goto done;
            }
            data = out;
        }
        if ((r = fmt_writer_put(w, i, data, plan[i].nbytes, err)) != SB_OK)
            goto done;
        done_bytes += plan[i].nbytes;
        sb_progress_report(&o->progress, done_bytes, total);
    }
    r = fmt_writer_commit(w, err);
    w = NULL;
done:
    if (w)
        fmt_writer_abort(w);
    sb_free(tokpath);
    if (tokdir.tmp)
        fmt_outdir_abort(&tokdir); /* the folder and the tokenizer in it */
    sb_free(v.s);
    sb_free(plan);
    sb_free(config);
    sb_free_aligned(f);
    sb_free_aligned(out);
    return r;
}
