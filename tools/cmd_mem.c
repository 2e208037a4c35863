/* cmd_mem.c: `subbit mem`: the memory table of a model, a config.json or a
 * preset, from headers alone (verify/vfy_mem.h does the arithmetic); with
 * --measure, beside it the peak RSS of `subbit ppl` on a short text. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cvt_convert.h"
#include "cvt_quant.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "sb_alloc.h"
#include "vfy_mem.h"

static const char usage[] =
    "usage: subbit mem [options] MODEL|CONFIG|PRESET\n"
    "       subbit mem --list\n"
    "\n"
    "Estimate the memory a model needs, from headers alone: parameters (total,\n"
    "per component, MoE active per token), weights per encoding, KV cache,\n"
    "runtime buffers and the total beside the 1.2 x weights rule of thumb.\n"
    "MODEL is a .safetensors file, an HF folder (sharded or not), a .gguf, a\n"
    "llama2.c .bin or a .subbit; CONFIG an HF config.json, or a folder holding one\n"
    "(with model.safetensors.index.json: sized from its total_size, before the\n"
    "download); PRESET a built-in name or the Hugging Face id it was transcribed\n"
    "from (mistralai/Mixtral-8x7B-v0.1, in any case, or its huggingface.co URL,\n"
    "/tree/main and all); an Instruct, -it or -chat variant of it gets its base\n"
    "model's preset, and a note says so. Sizes in KiB, MiB, GiB (powers of 1024).\n"
    "\n"
    "options:\n"
    "      --list           list the built-in presets and their sources\n"
    "      --ctx N          context length in tokens (default 4096, or the model's\n"
    "                       context when smaller; beyond it: a warning)\n"
    "      --seqs N         sequences decoded at once (default 1; --batch is an old\n"
    "                       name for it: in ppl and verify --batch is tokens a step)\n"
    "      --kv-type T      KV cache encoding: f32, f16 (default) or q8_0 (llama.cpp's\n"
    "                       -ctk/-ctv; ignored by --runtime hf: the model's dtype)\n"
    "      --zeros F        sub1: fraction of zero weights (default 0.885)\n"
    "      --keep LIST      kept at 16 bit besides norms and routers: a comma-separated\n"
    "                       list (repeatable) of components (embed, output, attn, ffn,\n"
    "                       shared, experts; none) or, for a model file, tensor-name\n"
    "                       globs (blk.0.*), as convert --keep takes them (default\n"
    "                       embed,output)\n"
    "      --to ENC         weights counted in the total (default: as stored; f16\n"
    "                       for a config or preset); --enc is the same\n"
    "      --train          training memory: mixed-precision AdamW + activations\n"
    "      --recompute      with --train: full activation recomputation\n"
    "      --config FILE    config.json to use with MODEL\n"
    "      --runtime R      whose buffers the KV cache and runtime terms are of:\n"
    "                       subbit (default): our core as 'subbit ppl' runs it;\n"
    "                       llama.cpp: its CPU backend (cells padded to 256, compute\n"
    "                       buffer of -ub tokens, output buffer, mmapped weights),\n"
    "                       checked against what llama.cpp prints; hf: transformers\n"
    "                       with eager attention in the checkpoint's torch_dtype,\n"
    "                       from its documented behaviour: NOT measured (no torch here)\n"
    "      --flash-attn on|off  llama.cpp: -fa (default on, as its auto on the CPU)\n"
    "      --ubatch N       llama.cpp: -ub (default 512)\n"
    "      --measure        also run 'subbit ppl' on a short text and print its peak RSS\n"
    "                       (the KV cache is then counted in f32, as the core keeps it)\n"
    "      --text FILE      the text for --measure (default: a built-in one)\n"
    "      --for quant      instead: what 'subbit quant' holds resident (MODEL a model\n"
    "                       file), with its --to, -o OUT (the container; default\n"
    "                       out.subbit), --calib-tokens N, --calib-ctx N, --max-memory\n"
    "                       SIZE (the quantized matrices, then the calibration\n"
    "                       activations, spill when they do not fit; a cap below one\n"
    "                       layer's need is an error, as in quant)\n"
    "      --for convert    instead: what 'subbit convert' holds at its peak, with its\n"
    "                       --to (any it writes), -o OUT, --max-memory SIZE (as quant)\n"
    "  -t, --threads N      threads of the --measure run\n"
    "      --json           one JSON document on stdout\n"
    "  -q, --quiet          no progress or notes on stderr, nor the assumptions read from\n"
    "                       a config (warnings about them included)\n"
    "  -h, --help           this text\n";

/* ---- formatting ---- */

static const char *fmt_count(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000000000ull)
        snprintf(buf, len, "%.3f T", (double)n / 1e12);
    else if (n >= 1000000000ull)
        snprintf(buf, len, "%.2f B", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, len, "%.2f M", (double)n / 1e6);
    else if (n >= 1000ull)
        snprintf(buf, len, "%.2f K", (double)n / 1e3);
    else
        snprintf(buf, len, "%" PRIu64, n);
    return buf;
}

/* binary units throughout (KiB, MiB, GiB: what the rest of subbit prints);
 * model cards' decimal GB are 7% larger than GiB at this size */
static const char *fmt_size(uint64_t n, char *buf, size_t len)
{
    return cli_fmt_bytes(n, buf, len);
}

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
    cJSON_AddNumberToObject(o, k, (double)v);
}

/* ---- input resolution ---- */

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* A folder with weights in it (anything fmt_model_open reads), or only a
 * config (and perhaps the shards' index, before they are downloaded)? */
static bool dir_has_weights(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d))) {
        found = ends_with(e->d_name, ".safetensors") || ends_with(e->d_name, ".gguf") ||
                ends_with(e->d_name, ".subbit");
    }
    closedir(d);
    return found;
}

/* metadata.total_size of dir/model.safetensors.index.json: the bytes of every
 * shard's tensors; 0 when there is no index or it names none */
static uint64_t index_total_size(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    char *text = NULL;
    size_t len = 0;
    struct sb_err err = { 0 };
    if (access(p, R_OK) != 0 || fmt_read_file(p, &text, &len, &err) != SB_OK)
        return 0;
    cJSON *j = cJSON_ParseWithLength(text, len);
    sb_free(text);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "metadata"), "total_size");
    uint64_t n = cJSON_IsNumber(ts) && ts->valuedouble > 0 && ts->valuedouble < 1.8e19
                     ? (uint64_t)ts->valuedouble : 0;
    cJSON_Delete(j);
    return n;
}

static int from_config_file(struct vfy_mem_model *m, const char *path, struct sb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int r = fmt_read_file(path, &text, &len, err);
    if (r)
        return r;
    r = vfy_mem_from_config(m, text, len, path, err);
    sb_free(text);
    if (r == SB_OK) {
        const char *dir = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", dir && dir[1] ? dir + 1 : path);
    }
    return r;
}

/* ---- the built-in measurement text ---- */

static const char story[] =
    "Once upon a time, there was a little girl named Lily. She liked to play in the park "
    "with her big red ball. One day, the ball rolled away and Lily ran after it. She saw a "
    "small dog under a tree. The dog was sad because it was lost. Lily said, \"Do not be "
    "sad, little dog. I will help you find your home.\" They walked together and looked "
    "for the dog's house. At last they found a kind old man who was looking for his dog. "
    "He was very happy and gave Lily a big hug. Lily smiled and went home to tell her mom.\n\n";

/* $TMPDIR/subbit-mem.subbit-tmp-PID-XXXXXX, registered so that Ctrl-C removes it
 * (*slot; fmt_out_temp_unregister once unlinked) */
static int write_text(char *path, size_t cap, uint64_t ctx, int *slot)
{
    const char *tmp = getenv("TMPDIR");
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/subbit-mem", tmp && *tmp && strlen(tmp) < 4000 ? tmp : "/tmp");
    if (fmt_out_temp_name(path, cap, base) != 0)
        return -1;
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    *slot = fmt_out_temp_register(path, false);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        fmt_out_temp_unregister(*slot);
        return -1;
    }
    /* about 4 bytes a token or more: 8 bytes per context token covers a window */
    uint64_t want = ctx * 8 + 2048;
    for (uint64_t n = 0; n < want; n += sizeof story - 1)
        fputs(story, f);
    if (fclose(f) != 0) {
        unlink(path);
        fmt_out_temp_unregister(*slot);
        return -1;
    }
    return 0;
}

/* ---- main ---- */

/* --keep LIST, the syntax convert's takes: comma-separated components (embed,
 * output, attn, ffn, shared, experts; none) or tensor-name globs (*globs,
 * n_globs grow; their text points into s); repeatable: the first --keep
 * replaces the default (embed,output), later ones add */
#define MEM_MAX_KEEP_GLOBS 64

static bool parse_keep(char *s, unsigned *out, const char **globs, size_t *n_globs)
{
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int p = vfy_mem_part_from_word(t);
        if (!strcmp(t, "none"))
            continue;
        if (p >= 0) {
            *out |= 1u << p;
            continue;
        }
        if (*n_globs == MEM_MAX_KEEP_GLOBS)
            return false;
        globs[(*n_globs)++] = t;
    }
    return true;
}

static int list_presets(bool json)
{
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < vfy_mem_preset_count(); i++) {
            const struct vfy_mem_preset *p = vfy_mem_preset_get(i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", p->name);
            cJSON_AddStringToObject(o, "source", p->source);
            cJSON_AddItemToArray(arr, o);
        }
        cli_print_json(arr);
        return CLI_OK;
    }
    for (size_t i = 0; i < vfy_mem_preset_count(); i++) {
        const struct vfy_mem_preset *p = vfy_mem_preset_get(i);
        struct vfy_mem_model m;
        struct sb_err err = { 0 };
        char pb[32];
        const char *params = "?";
        if (vfy_mem_from_preset(&m, p, &err) == SB_OK) {
            struct vfy_mem_opts o;
            struct vfy_mem_est e;
            vfy_mem_opts_init(&o);
            if (vfy_mem_estimate(&m, &o, &e, &err) == SB_OK)
                params = fmt_count(e.params, pb, sizeof pb);
            vfy_mem_model_release(&m);
        }
        printf("%-16s %10s  %s\n", p->name, params, p->source);
    }
    return CLI_OK;
}

/* the default --ctx was cut to the model's context (print_table, to_json say so) */
static bool ctx_is_model_max;

static const char *const match_names[] = { "", "name", "id", "base" };
static const char *const runtime_names[] = { "subbit", "llama.cpp", "hf" };

static void print_table(const char *what, enum vfy_mem_match match, const struct vfy_mem_model *m,
                        const struct vfy_mem_opts *o, const struct vfy_mem_est *e,
                        uint64_t measured)
{
    char a[48], b[48], c[48];
    printf("model          %s (%s)\n", m->name, m->model_type[0] ? m->model_type : "?");
    if (match == VFY_MEM_MATCH_ID)
        printf("preset         %s, from the Hugging Face id %s\n", m->name, what);
    else if (match == VFY_MEM_MATCH_BASE)
        printf("preset         %s, the base model of %s\n", m->name, what);
    if (m->source[0])
        printf("source         %s\n", m->source);
    printf("parameters     %s (%" PRIu64 ")", fmt_count(e->params, a, sizeof a), e->params);
    if (e->params_stored != e->params)
        printf(", stored %" PRIu64 " (tied copy counted once)", e->params_stored);
    printf("\n");
    for (int p = 0; p < VFY_MEM_NPARTS; p++)
        if (e->part[p])
            printf("  %-15s %12s  %5.1f%%\n", vfy_mem_part_name((enum vfy_mem_part)p),
                   fmt_count(e->part[p], a, sizeof a),
                   100.0 * (double)e->part[p] / (double)e->params);
    printf("  %-15s %12s  x %d layers%s\n", "per layer", fmt_count(e->per_layer, a, sizeof a),
           m->n_layers + m->n_enc_layers, m->tied ? ", embeddings tied" : "");
    if (m->n_experts > 0)
        printf("  %-15s %12s  (%d of %d experts in %d MoE layers%s)\n", "active/token",
               fmt_count(e->active, a, sizeof a), m->n_experts_used, m->n_experts,
               m->n_moe_layers, m->n_shared_experts ? ", + shared" : "");
    printf("\nweights        %12s %12s %10s\n", "bytes", "kept 16-bit", "bits/param");
    if (m->from_file)
        printf("  %-12s %12s %12s %10.3f\n", "as stored", fmt_size(e->stored.bytes, a, sizeof a),
               "", e->stored.bits_per_param);
    else if (m->index_bytes)
        printf("  %-12s %12s %12s %10.3f  (model.safetensors.index.json total_size)\n",
               "as indexed", fmt_size(e->stored.bytes, a, sizeof a), "", e->stored.bits_per_param);
    for (int k = 0; k < VFY_MEM_NENC; k++) {
        const struct vfy_mem_weights *w = &e->enc[k];
        char name[32];
        snprintf(name, sizeof name, "%s%s", sb_dtype_name(w->enc),
                 w->enc == SB_DTYPE_SUB1 ? "" : "");
        if (w->enc == SB_DTYPE_SUB1)
            snprintf(name, sizeof name, "sub1 @%.3f", o->zeros);
        printf("  %-12s %12s %12s %10.3f%s\n", name, fmt_size(w->bytes, a, sizeof a),
               w->kept_bytes ? fmt_size(w->kept_bytes, b, sizeof b) : "-", w->bits_per_param,
               w->fallback_params ? "  (some rows do not fit the block: 16-bit)" : "");
    }
    const char *kvt = sb_dtype_name(e->runtime == VFY_MEM_RUNTIME_HF ? (enum sb_dtype)e->dtype
                                                                        : o->kv_type);
    if (e->runtime == VFY_MEM_RUNTIME_LLAMA_CPP)
        printf("\nKV cache       %s for %" PRIu64 " cells (ctx %" PRIu64 "%s x %" PRIu64
               " seq, padded to %u a sequence) at %s (%s/token",
               fmt_size(e->kv, a, sizeof a), e->kv_cells, o->ctx,
               ctx_is_model_max ? " (the model's context)" : "", o->batch,
               VFY_MEM_LLAMA_CTX_PAD, kvt, cli_fmt_bytes(e->kv_per_token, b, sizeof b));
    else
        printf("\nKV cache       %s for ctx %" PRIu64 "%s x batch %" PRIu64 " at %s (%s/token",
               fmt_size(e->kv, a, sizeof a), o->ctx,
               ctx_is_model_max ? " (the model's context)" : "", o->batch, kvt,
               cli_fmt_bytes(e->kv_per_token, b, sizeof b));
    if (m->mla && e->runtime == VFY_MEM_RUNTIME_HF)
        printf("; MLA: every head's K and V, as transformers caches them");
    else if (m->mla)
        printf("; MLA latent %d + %d", m->kv_lora_rank, m->qk_rope_head_dim);
    if (m->n_swa_layers)
        printf("; %d layers windowed to %d", m->n_swa_layers, m->window);
    if (m->cross_attn)
        printf("; + cross-attention");
    printf(")\n");
    char d[48];
    uint64_t V = (uint64_t)(m->vocab_size > 0 ? m->vocab_size : 0);
    switch (e->runtime) {
    case VFY_MEM_RUNTIME_LLAMA_CPP:
        printf("runtime        llama.cpp (CPU): compute buffer %s, output buffer %s, process %s\n",
               fmt_size(e->activations, a, sizeof a), fmt_size(e->logits, b, sizeof b),
               fmt_size(e->baseline, c, sizeof c));
        printf("  %-15s n_ubatch %" PRIu64 ", flash attention %s: kq_mask %s", "compute",
               e->n_ubatch, o->no_flash_attn ? "off" : "on", fmt_size(e->kq_mask, a, sizeof a));
        if (e->kq)
            printf(", f32 scores %s", fmt_size(e->kq, b, sizeof b));
        printf(" (ggml-alloc's packing not modelled: -3%%..+24%% of llama.cpp's)\n");
        printf("  %-15s %" PRIu64 " row a sequence x %" PRIu64 " vocabulary x 4 bytes (f32) = %s\n",
               "logits", e->logits_rows, V, fmt_size(e->logits, a, sizeof a));
        printf("  %-15s mmapped: the file's tensors, resident once a token ran\n", "weights");
        if (m->mla || m->cross_attn)
            printf("  %-15s %s: the cache is subbit's layout, not checked against llama.cpp\n",
                   "note", m->mla ? "MLA" : "cross-attention");
        break;
    case VFY_MEM_RUNTIME_HF:
        printf("runtime        transformers (eager attention, %s; not measured): attention "
               "scores %s, logits %s, activations %s, process not counted\n",
               sb_dtype_name((enum sb_dtype)e->dtype), fmt_size(e->scores, a, sizeof a),
               fmt_size(e->logits, b, sizeof b), fmt_size(e->activations, c, sizeof c));
        printf("  %-15s one layer: %d heads x %" PRIu64 "^2 x %" PRIu64 " seq, in %s + its fp32 "
               "softmax + the cast back, and the mask = %s\n", "scores", m->n_heads, o->ctx,
               o->batch, sb_dtype_name((enum sb_dtype)e->dtype), fmt_size(e->scores, d, sizeof d));
        printf("  %-15s %" PRIu64 " positions x %" PRIu64 " vocabulary x 4 bytes (f32) = %s\n",
               "logits", e->logits_rows, V, fmt_size(e->logits, a, sizeof a));
        break;
    default:
        printf("runtime        logits %s, activations %s, scratch %s, process %s\n",
               fmt_size(e->logits, a, sizeof a), fmt_size(e->activations, b, sizeof b),
               fmt_size(e->scratch, c, sizeof c), cli_fmt_bytes(e->baseline, d, sizeof d));
        /* what the logits cost: f32 scores over the vocabulary for each scored position */
        if (V > 0)
            printf("  %-15s %" PRIu64 " scored positions x %" PRIu64 " vocabulary x 4 bytes (f32) "
                   "= %s\n", "logits", e->logits_rows, V, fmt_size(e->logits, a, sizeof a));
        break;
    }
    printf("total          %s with %s weights   (rule of thumb 1.2 x weights: %s)\n",
           fmt_size(e->total, a, sizeof a),
           e->weights_enc < 0 ? "stored" : sb_dtype_name((enum sb_dtype)e->weights_enc),
           fmt_size(e->rule_of_thumb, b, sizeof b));
    if (measured)
        printf("measured       %s peak RSS of 'subbit ppl' (estimate/measured %.3f)\n",
               fmt_size(measured, a, sizeof a), (double)e->total / (double)measured);
    if (o->train) {
        printf("\ntraining       mixed-precision AdamW, ctx %" PRIu64 " x batch %" PRIu64 "%s\n",
               o->ctx, o->batch, o->recompute ? ", full recomputation" : "");
        printf("  %-15s %12s  (2 bytes/param)\n", "weights", fmt_size(e->train_weights, a, sizeof a));
        printf("  %-15s %12s  (2 bytes/param)\n", "gradients", fmt_size(e->train_grads, a, sizeof a));
        printf("  %-15s %12s  (12 bytes/param: fp32 master, m, v)\n", "optimizer",
               fmt_size(e->train_optim, a, sizeof a));
        printf("  %-15s %12s  (%s)\n", "activations", fmt_size(e->train_act, a, sizeof a),
               o->recompute ? "2.s.b.h.L" : "s.b.h.L.(34 + 5.a.s/h)");
        printf("  %-15s %12s\n", "total", fmt_size(e->train_total, a, sizeof a));
    }
}

static cJSON *to_json(const char *what, enum vfy_mem_match match, const struct vfy_mem_model *m,
                      const struct vfy_mem_opts *o, const struct vfy_mem_est *e, uint64_t measured)
{
    cJSON *d = cli_json_doc("mem");
    cJSON_AddStringToObject(d, "model", what);   /* as named: a path, preset or HF id */
    cJSON_AddStringToObject(d, "name", m->name);
    if (match != VFY_MEM_MATCH_NONE) {
        cJSON_AddStringToObject(d, "preset", m->name);
        cJSON_AddStringToObject(d, "preset_match", match_names[match]);
    }
    add_u64(d, "n_ctx", o->ctx);
    cJSON_AddNumberToObject(d, "model_ctx", m->n_ctx_max);
    cJSON_AddStringToObject(d, "model_type", m->model_type);
    if (m->source[0])
        cJSON_AddStringToObject(d, "source", m->source);
    cJSON *notes = cJSON_AddArrayToObject(d, "notes");
    for (int i = 0; i < m->n_notes; i++)
        cJSON_AddItemToArray(notes, cJSON_CreateString(m->notes[i]));
    cJSON *p = cJSON_AddObjectToObject(d, "params");
    add_u64(p, "total", e->params);
    add_u64(p, "stored", e->params_stored);
    add_u64(p, "active", e->active);
    add_u64(p, "per_layer", e->per_layer);
    cJSON_AddNumberToObject(p, "layers", m->n_layers + m->n_enc_layers);
    cJSON_AddBoolToObject(p, "tied_embeddings", m->tied);
    static const char *const keys[VFY_MEM_NPARTS] = { "embeddings", "output", "attention",
                                                       "ffn", "experts", "shared_experts",
                                                       "routers", "norms", "other" };
    for (int i = 0; i < VFY_MEM_NPARTS; i++)
        add_u64(p, keys[i], e->part[i]);
    if (m->n_experts) {
        cJSON *x = cJSON_AddObjectToObject(d, "moe");
        cJSON_AddNumberToObject(x, "experts", m->n_experts);
        cJSON_AddNumberToObject(x, "experts_per_token", m->n_experts_used);
        cJSON_AddNumberToObject(x, "shared_experts", m->n_shared_experts);
        cJSON_AddNumberToObject(x, "moe_layers", m->n_moe_layers);
    }
    cJSON *w = cJSON_AddArrayToObject(d, "weights");
    for (int k = 0; k < VFY_MEM_NENC; k++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "encoding", sb_dtype_name(e->enc[k].enc));
        add_u64(r, "bytes", e->enc[k].bytes);
        add_u64(r, "kept_bytes", e->enc[k].kept_bytes);
        add_u64(r, "fallback_params", e->enc[k].fallback_params);
        cJSON_AddNumberToObject(r, "bits_per_param", e->enc[k].bits_per_param);
        if (e->enc[k].enc == SB_DTYPE_SUB1)
            cJSON_AddNumberToObject(r, "zeros", o->zeros);
        cJSON_AddItemToArray(w, r);
    }
    if (m->from_file) {
        cJSON *s = cJSON_AddObjectToObject(d, "stored");
        cJSON_AddStringToObject(s, "encoding", sb_dtype_name(e->stored.enc));
        add_u64(s, "bytes", e->stored.bytes);
        cJSON_AddNumberToObject(s, "bits_per_param", e->stored.bits_per_param);
    } else if (m->index_bytes) {
        cJSON *s = cJSON_AddObjectToObject(d, "stored");
        cJSON_AddStringToObject(s, "from", "model.safetensors.index.json");
        add_u64(s, "bytes", e->stored.bytes);
        cJSON_AddNumberToObject(s, "bits_per_param", e->stored.bits_per_param);
    }
    cJSON *kv = cJSON_AddObjectToObject(d, "kv_cache");
    cJSON_AddStringToObject(kv, "type", sb_dtype_name(o->kv_type));
    add_u64(kv, "ctx", o->ctx);
    cJSON_AddNumberToObject(kv, "model_ctx", m->n_ctx_max);
    add_u64(kv, "batch", o->batch);
    add_u64(kv, "bytes_per_token", e->kv_per_token);
    add_u64(kv, "bytes", e->kv);
    add_u64(kv, "cells", e->kv_cells);
    cJSON_AddBoolToObject(kv, "mla", m->mla);
    cJSON_AddNumberToObject(kv, "window", m->window);
    cJSON_AddNumberToObject(kv, "window_layers", m->n_swa_layers);
    cJSON *rt = cJSON_AddObjectToObject(d, "runtime");
    cJSON_AddStringToObject(rt, "profile", runtime_names[e->runtime]);
    add_u64(rt, "logits", e->logits);
    add_u64(rt, "logits_positions", e->logits_rows);
    add_u64(rt, "activations", e->activations);
    add_u64(rt, "scratch", e->scratch);
    add_u64(rt, "process_baseline", e->baseline);
    if (e->runtime == VFY_MEM_RUNTIME_LLAMA_CPP) {
        add_u64(rt, "compute_buffer", e->activations);
        add_u64(rt, "output_buffer", e->logits);
        add_u64(rt, "n_ubatch", e->n_ubatch);
        cJSON_AddBoolToObject(rt, "flash_attn", !o->no_flash_attn);
        add_u64(rt, "kq_mask", e->kq_mask);
        add_u64(rt, "kq", e->kq);
    } else if (e->runtime == VFY_MEM_RUNTIME_HF) {
        cJSON_AddStringToObject(rt, "dtype", sb_dtype_name((enum sb_dtype)e->dtype));
        add_u64(rt, "attention_scores", e->scores);
        cJSON_AddBoolToObject(rt, "measured", false);
    }
    cJSON_AddStringToObject(d, "weights_encoding",
                            e->weights_enc < 0 ? "stored"
                                               : sb_dtype_name((enum sb_dtype)e->weights_enc));
    add_u64(d, "weights_bytes", e->weights);
    add_u64(d, "total", e->total);
    add_u64(d, "rule_of_thumb", e->rule_of_thumb);
    if (measured) {
        cJSON *ms = cJSON_AddObjectToObject(d, "measured");
        add_u64(ms, "peak_rss", measured);
        add_u64(ms, "peak_rss_bytes", measured);
        cJSON_AddNumberToObject(ms, "ratio", (double)e->total / (double)measured);
    }
    if (o->train) {
        cJSON *t = cJSON_AddObjectToObject(d, "train");
        add_u64(t, "weights", e->train_weights);
        add_u64(t, "gradients", e->train_grads);
        add_u64(t, "optimizer", e->train_optim);
        add_u64(t, "activations", e->train_act);
        cJSON_AddBoolToObject(t, "recompute", o->recompute);
        add_u64(t, "total", e->train_total);
    }
    return d;
}

static int measure(const char *model, const char *text, uint64_t ctx, const char *config,
                   long threads, uint64_t *peak)
{
    char self[PATH_MAX], tmp_text[PATH_MAX] = "", ctxs[32], ths[32];
    int slot = -1;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return cli_error("mem", "/proc/self/exe: cannot read");
    self[n] = 0;
    if (!text) {
        if (write_text(tmp_text, sizeof tmp_text, ctx, &slot) != 0)
            return cli_error("mem", "cannot write a temporary text file");
        text = tmp_text;
    }
    snprintf(ctxs, sizeof ctxs, "%" PRIu64, ctx);
    char *argv[16];
    int k = 0;
    argv[k++] = self;
    argv[k++] = "ppl";
    argv[k++] = (char *)model;
    argv[k++] = "--text";
    argv[k++] = (char *)text;
    argv[k++] = "--protocol";
    argv[k++] = "chunks";
    argv[k++] = "--ctx";
    argv[k++] = ctxs;
    argv[k++] = "--json";
    if (config) {
        argv[k++] = "--config";
        argv[k++] = (char *)config;
    }
    if (threads > 0) {
        snprintf(ths, sizeof ths, "%ld", threads);
        argv[k++] = "-t";
        argv[k++] = ths;
    }
    argv[k] = NULL;
    struct sb_err err = { 0 };
    int status = 0;
    int r = vfy_mem_run_child(argv, NULL, NULL, peak, &status, &err);
    if (tmp_text[0])
        unlink(tmp_text);
    fmt_out_temp_unregister(slot);
    if (r)
        return cli_fail("mem", &err);
    if (status != 0)
        return cli_error("mem", "%s: 'subbit ppl' exited with %d; no measurement", model, status);
    return CLI_OK;
}

/* ---- --for quant ---- */

struct quant_for {
    const char *what, *out;
    long tokens, ctx;
    uint64_t cap;
    int to;                        /* enum sb_dtype; -1: keep */
};

static int mem_for_quant(const char *path, const char *config, const struct quant_for *qf,
                         bool json)
{
    struct fmt_open_opts fo = { 0 };
    struct fmt_model *fm = NULL;
    struct sb_err err = { 0 };
    struct cvt_quant_opts qo;
    struct cvt_quant_mem mm;
    fo.config_path = config;
    cvt_quant_opts_init(&qo);
    qo.conv.to = qf->to;
    qo.conv.max_memory = qf->cap;
    /* quant's windows: --calib-tokens in whole windows of --calib-ctx (a text long enough) */
    const size_t n = (size_t)((qf->tokens + qf->ctx - 1) / qf->ctx) * (size_t)qf->ctx;
    int r = fmt_model_open(&fm, path, &fo, &err);
    if (r == SB_OK)
        r = cvt_quant_memory(fm, n, (size_t)qf->ctx, qf->out, &qo, &mm, &err);
    fmt_model_free(fm);
    if (r != SB_OK)
        return cli_fail("mem", &err);
    char b[7][32];
    if (json) {
        cJSON *d = cli_json_doc("mem");
        cJSON_AddStringToObject(d, "model", path);
        cJSON_AddStringToObject(d, "for", "quant");
        cJSON_AddStringToObject(d, "output", qf->out);
        cJSON_AddNumberToObject(d, "calib_tokens", (double)mm.tokens);
        cJSON_AddNumberToObject(d, "max_memory", (double)qf->cap);
        cJSON_AddNumberToObject(d, "process_bytes", (double)mm.fixed);
        cJSON_AddNumberToObject(d, "work_bytes", (double)mm.work);
        cJSON_AddNumberToObject(d, "weights_bytes", (double)mm.weights);
        cJSON_AddNumberToObject(d, "held_bytes", (double)mm.held);
        cJSON_AddNumberToObject(d, "held_window_bytes", (double)mm.held_window);
        cJSON_AddBoolToObject(d, "held_spilled", mm.spill_held);
        cJSON_AddNumberToObject(d, "activation_bytes", (double)mm.act);
        cJSON_AddNumberToObject(d, "spill_window_bytes", (double)mm.spill_window);
        cJSON_AddNumberToObject(d, "write_bytes", (double)mm.write);
        cJSON_AddBoolToObject(d, "spilled", mm.spill);
        cJSON_AddNumberToObject(d, "peak_bytes", (double)mm.peak);
        cli_print_json(d);
        return CLI_OK;
    }
    printf("subbit quant of %s into %s, %" PRIu64 " calibration tokens%s:\n", path, qf->out,
           mm.tokens, qf->cap ? "" : " (no --max-memory)");
    printf("  process            %12s\n", fmt_size(mm.fixed, b[0], sizeof b[0]));
    printf("  work buffers       %12s  (GPTQ, the core's context, routing)\n",
           fmt_size(mm.work, b[1], sizeof b[1]));
    printf("  weights            %12s  (the largest layer; the rest of the model whole)\n",
           fmt_size(mm.weights, b[2], sizeof b[2]));
    printf("  quantized, held    %12s  %s\n", fmt_size(mm.held, b[3], sizeof b[3]),
           mm.spill_held ? "spilled to a scratch file as each expert and layer ends" : "resident");
    if (mm.spill_held)
        printf("  quantized window   %12s  resident at once\n",
               fmt_size(mm.held_window, b[5], sizeof b[5]));
    printf("  activations        %12s  %s\n", fmt_size(mm.act, b[4], sizeof b[4]),
           mm.spill ? "spilled to a scratch file" : "resident");
    if (mm.spill)
        printf("  spill window       %12s  resident at once\n",
               fmt_size(mm.spill_window, b[5], sizeof b[5]));
    printf("  write              %12s  (after the calibration)\n",
           fmt_size(mm.write, b[6], sizeof b[6]));
    printf("peak (estimate):     %12s", fmt_size(mm.peak, b[0], sizeof b[0]));
    if (qf->cap)
        printf("  under --max-memory %s", fmt_size(qf->cap, b[1], sizeof b[1]));
    printf("\n");
    return CLI_OK;
}

/* ---- --for convert ---- */

static int mem_for_convert(const char *path, const char *config, const struct quant_for *qf,
                           bool json)
{
    struct fmt_open_opts fo = { 0 };
    struct fmt_model *fm = NULL;
    struct sb_err err = { 0 };
    struct cvt_opts co;
    struct cvt_convert_mem mm;
    fo.config_path = config;
    cvt_opts_init(&co);
    co.to = qf->to;
    co.max_memory = qf->cap;
    int r = fmt_model_open(&fm, path, &fo, &err);
    if (r == SB_OK)
        r = cvt_convert_memory(fm, qf->out, &co, &mm, &err);
    fmt_model_free(fm);
    if (r != SB_OK)
        return cli_fail("mem", &err);
    char b[4][32];
    if (json) {
        cJSON *d = cli_json_doc("mem");
        cJSON_AddStringToObject(d, "model", path);
        cJSON_AddStringToObject(d, "for", "convert");
        cJSON_AddStringToObject(d, "output", qf->out);
        cJSON_AddNumberToObject(d, "max_memory", (double)qf->cap);
        cJSON_AddNumberToObject(d, "process_bytes", (double)mm.fixed);
        cJSON_AddNumberToObject(d, "block_elems", (double)mm.block_elems);
        cJSON_AddStringToObject(d, "largest_tensor", mm.tensor);
        cJSON_AddStringToObject(d, "largest_tensor_to", sb_dtype_name(mm.to));
        cJSON_AddNumberToObject(d, "peak_bytes", (double)mm.peak);
        cli_print_json(d);
        return CLI_OK;
    }
    printf("subbit convert of %s into %s%s:\n", path, qf->out, qf->cap ? "" : " (no --max-memory)");
    printf("  process and writer %12s\n", fmt_size(mm.fixed, b[0], sizeof b[0]));
    printf("  row blocks of      %12s  f32 at most (three at once)\n",
           fmt_size(mm.block_elems * 4, b[1], sizeof b[1]));
    printf("  largest need       %s (%s)\n", mm.tensor, sb_dtype_name(mm.to));
    printf("peak (estimate):     %12s", fmt_size(mm.peak, b[2], sizeof b[2]));
    if (qf->cap)
        printf("  under --max-memory %s", fmt_size(qf->cap, b[3], sizeof b[3]));
    printf("\n");
    return CLI_OK;
}

int cmd_mem(int argc, char **argv)
{
    enum { O_LIST = 256, O_CTX, O_BATCH, O_SEQS, O_KV, O_ZEROS, O_KEEP, O_ENC, O_TRAIN, O_RECOMP,
           O_CONFIG, O_MEASURE, O_TEXT, O_JSON, O_RUNTIME, O_FA, O_UBATCH, O_FOR, O_CTOK, O_CCTX,
           O_MAXMEM };
    static const struct option lopts[] = {
        { "list", no_argument, 0, O_LIST }, { "ctx", required_argument, 0, O_CTX },
        { "batch", required_argument, 0, O_BATCH }, { "seqs", required_argument, 0, O_SEQS },
        { "to", required_argument, 0, O_ENC }, { "kv-type", required_argument, 0, O_KV },
        { "zeros", required_argument, 0, O_ZEROS }, { "keep", required_argument, 0, O_KEEP },
        { "enc", required_argument, 0, O_ENC }, { "train", no_argument, 0, O_TRAIN },
        { "recompute", no_argument, 0, O_RECOMP }, { "config", required_argument, 0, O_CONFIG },
        { "measure", no_argument, 0, O_MEASURE }, { "text", required_argument, 0, O_TEXT },
        { "json", no_argument, 0, O_JSON }, { "quiet", no_argument, 0, 'q' },
        { "runtime", required_argument, 0, O_RUNTIME }, { "flash-attn", required_argument, 0, O_FA },
        { "ubatch", required_argument, 0, O_UBATCH },
        { "threads", required_argument, 0, 't' }, { "help", no_argument, 0, 'h' },
        { "for", required_argument, 0, O_FOR }, { "output", required_argument, 0, 'o' },
        { "calib-tokens", required_argument, 0, O_CTOK },
        { "calib-ctx", required_argument, 0, O_CCTX },
        { "max-memory", required_argument, 0, O_MAXMEM }, { 0, 0, 0, 0 },
    };
    struct quant_for qf = { NULL, "out.subbit", 131072, 512, 0, -1 };
    struct vfy_mem_opts o;
    vfy_mem_opts_init(&o);
    bool list = false, json = false, quiet = false, do_measure = false, kv_given = false;
    bool ctx_given = false, fa_given = false, ub_given = false, keep_given = false;
    static const char *keep_globs[MEM_MAX_KEEP_GLOBS];
    long threads = 0;
    const char *config = NULL, *text = NULL, *enc_arg = NULL;
    long v;
    double dv;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":t:o:qh", lopts, NULL)) != -1) {
        switch (c) {
        case O_LIST: list = true; break;
        case O_FOR:
            if (strcmp(optarg, "quant") && strcmp(optarg, "convert"))
                return cli_usage_error("mem", usage, "--for expects quant or convert, got '%s'",
                                       optarg);
            qf.what = optarg;
            break;
        case 'o': qf.out = optarg; break;
        case O_CTOK:
            if (!cli_parse_long("mem", "--calib-tokens", optarg, 1, 1L << 34, &qf.tokens))
                return CLI_USAGE;
            break;
        case O_CCTX:
            if (!cli_parse_long("mem", "--calib-ctx", optarg, 4, 1L << 20, &qf.ctx))
                return CLI_USAGE;
            break;
        case O_MAXMEM:
            if (!cli_parse_size("mem", "--max-memory", optarg, &qf.cap))
                return CLI_USAGE;
            break;
        case O_CTX:
            if (!cli_parse_long("mem", "--ctx", optarg, 1, 1L << 30, &v))
                return CLI_USAGE;
            o.ctx = (uint64_t)v;
            ctx_given = true;
            break;
        case 't':
            if (!cli_parse_long("mem", "--threads", optarg, 1, CLI_MAX_THREADS, &threads))
                return CLI_USAGE;
            break;
        case O_BATCH:
        case O_SEQS:
            if (!cli_parse_long("mem", c == O_SEQS ? "--seqs" : "--batch", optarg, 1, 1L << 20, &v))
                return CLI_USAGE;
            if (c == O_BATCH)
                cli_warn("mem", "--batch here counts sequences; it is now --seqs (in ppl and "
                         "verify --batch is tokens a forward step)");
            o.batch = (uint64_t)v;
            break;
        case O_KV: {
            int t = sb_dtype_from_name(optarg);
            if (t != SB_DTYPE_F32 && t != SB_DTYPE_F16 && t != SB_DTYPE_Q8_0 && t != SB_DTYPE_BF16)
                return cli_usage_error("mem", usage, "--kv-type expects f32, f16 or q8_0, got '%s'",
                                       optarg);
            o.kv_type = (enum sb_dtype)t;
            kv_given = true;
            break;
        }
        case O_ZEROS:
            if (!cli_parse_double("mem", "--zeros", optarg, 0.0, 0.999999, &dv))
                return CLI_USAGE;
            o.zeros = dv;
            break;
        case O_KEEP:
            if (!keep_given)
                o.keep = 0;
            keep_given = true;
            if (!parse_keep(optarg, &o.keep, keep_globs, &o.n_keep_globs))
                return cli_usage_error("mem", usage, "--keep: more than %d globs",
                                       MEM_MAX_KEEP_GLOBS);
            o.keep_globs = keep_globs;
            break;
        case O_ENC: enc_arg = optarg; break;
        case O_TRAIN: o.train = true; break;
        case O_RECOMP: o.recompute = true; break;
        case O_CONFIG: config = optarg; break;
        case O_MEASURE: do_measure = true; break;
        case O_TEXT: text = optarg; break;
        case O_JSON: json = true; break;
        case O_RUNTIME: {
            size_t i;
            for (i = 0; i < sizeof runtime_names / sizeof runtime_names[0] &&
                        strcasecmp(optarg, runtime_names[i]); i++)
                ;
            if (i == sizeof runtime_names / sizeof runtime_names[0] &&
                strcasecmp(optarg, "llamacpp") && strcasecmp(optarg, "transformers"))
                return cli_usage_error("mem", usage, "--runtime expects subbit, llama.cpp or hf, "
                                       "got '%s'", optarg);
            o.runtime = i < 3 ? (enum vfy_mem_runtime)i
                              : tolower((unsigned char)optarg[0]) == 'l' ? VFY_MEM_RUNTIME_LLAMA_CPP
                                                                          : VFY_MEM_RUNTIME_HF;
            break;
        }
        case O_FA:
            if (strcasecmp(optarg, "on") && strcasecmp(optarg, "off"))
                return cli_usage_error("mem", usage, "--flash-attn expects on or off, got '%s'",
                                       optarg);
            o.no_flash_attn = !strcasecmp(optarg, "off");
            fa_given = true;
            break;
        case O_UBATCH:
            if (!cli_parse_long("mem", "--ubatch", optarg, 1, 1L << 20, &v))
                return CLI_USAGE;
            o.ubatch = (uint64_t)v;
            ub_given = true;
            break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("mem", c, argc, argv);
        }
    }
    cli_set_quiet(quiet);
    if (list)
        return list_presets(json);
    if (optind != argc - 1)
        return cli_usage_error("mem", usage, optind >= argc ? "no model, config or preset named"
                                                           : "expects one model, config or preset");
    if (o.recompute && !o.train)
        return cli_usage_error("mem", usage, "--recompute needs --train");
    if ((fa_given || ub_given) && o.runtime != VFY_MEM_RUNTIME_LLAMA_CPP)
        return cli_usage_error("mem", usage, "%s is llama.cpp's: it needs --runtime llama.cpp",
                               fa_given ? "--flash-attn" : "--ubatch");
    if (do_measure && o.runtime != VFY_MEM_RUNTIME_SUBBIT)
        return cli_usage_error("mem", usage, "--measure runs subbit's core: it needs --runtime "
                               "subbit (the default)");
    if (o.runtime == VFY_MEM_RUNTIME_LLAMA_CPP && o.no_flash_attn && kv_given &&
        o.kv_type == SB_DTYPE_Q8_0)
        return cli_usage_error("mem", usage, "llama.cpp quantizes the V cache only with flash "
                               "attention on");
    if (enc_arg) {   /* --for convert takes what convert writes; the rest mem's encodings */
        int t = sb_dtype_from_name(enc_arg);
        bool ok = false;
        for (int k = 0; k < VFY_MEM_NENC; k++)
            ok |= t == (int)vfy_mem_encodings[k];
        if (qf.what && !strcmp(qf.what, "convert") && t >= 0)
            ok = true;
        if (!ok && strcmp(enc_arg, "stored"))
            return cli_usage_error("mem", usage, "--to/--enc expects stored, f32, f16, bf16, int8, "
                                   "q8_0, q4_0, tq2_0, tern or sub1%s, got '%s'",
                                   qf.what && !strcmp(qf.what, "convert") ? " (or any encoding "
                                   "convert writes)" : "", enc_arg);
        o.weights_enc = ok ? t : -1;
        qf.to = t;
    }
    const char *what = argv[optind];
    if (qf.what && !strcmp(qf.what, "convert"))
        return mem_for_convert(what, config, &qf, json);
    if (qf.what) {
        if (threads)
            cli_set_threads((int)threads);
        return mem_for_quant(what, config, &qf, json);
    }

    struct vfy_mem_model m;
    memset(&m, 0, sizeof m);
    struct sb_err err = { 0 };
    struct stat st;
    const struct vfy_mem_preset *preset = NULL;
    enum vfy_mem_match match = VFY_MEM_MATCH_NONE;
    bool is_file_model = false;
    int r;
    if (stat(what, &st) != 0 && (preset = vfy_mem_preset_lookup(what, &match)) != NULL) {
        r = vfy_mem_from_preset(&m, preset, &err);
    } else if (stat(what, &st) != 0) {
        return cli_error("mem", "%s: no such file, folder or preset (see 'subbit mem --list')",
                         what);
    } else if (S_ISREG(st.st_mode) && ends_with(what, ".json") &&
               !ends_with(what, ".index.json")) {
        r = from_config_file(&m, what, &err);
    } else if (S_ISDIR(st.st_mode) && !dir_has_weights(what)) {
        char cp[PATH_MAX];
        snprintf(cp, sizeof cp, "%s/config.json", what);
        if (access(cp, R_OK) != 0)
            return cli_error("mem", "%s: no weights and no config.json in this folder", what);
        r = from_config_file(&m, cp, &err);
        if (r == SB_OK)
            m.index_bytes = index_total_size(what);   /* the shards not downloaded yet */
    } else {
        char dir[PATH_MAX];
        const char *open_path = what;
        if (ends_with(what, ".index.json")) { /* the index names its folder */
            snprintf(dir, sizeof dir, "%s", what);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = 0;
            else
                snprintf(dir, sizeof dir, ".");
            open_path = dir;
        }
        struct fmt_open_opts fo = { 0 };
        fo.config_path = config;
        fo.headers_only = true;
        struct fmt_model *fm = NULL;
        r = fmt_model_open(&fm, open_path, &fo, &err);
        if (r == SB_OK) {
            r = vfy_mem_from_fmt(&m, fm, false, &err);
            fmt_model_free(fm);
        }
        is_file_model = true;
    }
    if (r != SB_OK) {
        vfy_mem_model_release(&m);
        return cli_fail("mem", &err);
    }
    /* a Hugging Face id: say which preset it became (stdout's "preset" line
     * says it too; a variant's base is a guess worth a note) */
    if (match == VFY_MEM_MATCH_BASE && !quiet)
        cli_note("mem", "%s: no preset of its own; using %s, its base model's (%s): fine-tuned "
                 "variants keep the base model's shapes", what, preset->name, m.source);
    if (!quiet)
        for (int i = 0; i < m.n_notes; i++)
            cli_warn("mem", "%s", m.notes[i]);
    /* a --keep glob that names no tensor is most likely a typo */
    for (size_t k = 0; m.from_file && k < o.n_keep_globs; k++) {
        bool hit = false;
        for (size_t i = 0; !hit && i < m.n_groups; i++)
            hit = m.groups[i].name && fnmatch(o.keep_globs[k], m.groups[i].name, 0) == 0;
        if (!hit)
            cli_warn("mem", "--keep '%s' matches no tensor of %s (components: embed, output, "
                     "attn, ffn, shared, experts)", o.keep_globs[k], what);
    }

    if (kv_given && o.runtime == VFY_MEM_RUNTIME_HF)
        cli_warn("mem", "--kv-type ignored: transformers keeps the KV cache in the model's dtype");
    if (do_measure && !kv_given)
        o.kv_type = SB_DTYPE_F32; /* what our core's KV cache holds */
    /* the context: the default stops at the model's; one asked beyond it is
     * estimated (a long-context runtime may stretch it) but said to be beyond,
     * and --measure, which runs our core, refuses it as ppl does */
    if (m.n_ctx_max > 0 && o.ctx > (uint64_t)m.n_ctx_max) {
        if (!ctx_given) {
            o.ctx = (uint64_t)m.n_ctx_max;
            ctx_is_model_max = true;
        } else if (do_measure) {
            vfy_mem_model_release(&m);
            return cli_usage_error("mem", usage, "--measure: --ctx %" PRIu64 " is above the "
                                   "model's context (%d)", o.ctx, m.n_ctx_max);
        } else {
            cli_warn("mem", "--ctx %" PRIu64 " is above the model's context (%d)", o.ctx,
                     m.n_ctx_max);
        }
    }
    struct vfy_mem_est e;
    if ((r = vfy_mem_estimate(&m, &o, &e, &err)) != SB_OK) {
        vfy_mem_model_release(&m);
        return cli_fail("mem", &err);
    }
    uint64_t measured = 0;
    if (do_measure) {
        if (!is_file_model) {
            vfy_mem_model_release(&m);
            return cli_error("mem", "%s: --measure needs a model file, not a config or preset",
                             what);
        }
        if ((r = measure(what, text, o.ctx, config, threads, &measured)) != CLI_OK) {
            vfy_mem_model_release(&m);
            return r;
        }
    }
    if (json)
        cli_print_json(to_json(what, match, &m, &o, &e, measured));
    else
        print_table(what, match, &m, &o, &e, measured);
    vfy_mem_model_release(&m);
    return CLI_OK;
}
