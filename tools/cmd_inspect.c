/* cmd_inspect.c: `subbit inspect MODEL`: what is in a checkpoint. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "fmt_model.h"
#include "sb_math.h"

static const char usage[] =
    "usage: subbit inspect MODEL [options]\n"
    "\n"
    "List a model's architecture, its tensors (name, encoding, shape, bytes,\n"
    "bits/param) and the totals. MODEL is a .safetensors file, a Hugging Face\n"
    "folder (sharded or not), a .gguf, a llama2.c .bin or a .subbit container.\n"
    "\n"
    "options:\n"
    "  -s, --summary          architecture and totals only, no tensor rows\n"
    "      --config FILE      config.json to use for a lone .safetensors file\n"
    "      --tokenizer FILE   llama2.c tokenizer.bin (default: beside the model)\n"
    "      --json             one JSON document on stdout\n"
    "  -q, --quiet            no progress or notes on stderr\n"
    "  -h, --help             this text\n";

static void shape_str(const struct fmt_tensor *t, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && n < len; d++)
        n += (size_t)snprintf(buf + n, len - n, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

static uint64_t numel(const struct fmt_tensor *t)
{
    uint64_t n = 1;
    sb_shape_numel(t->shape, t->ndim, &n);
    return n;
}

static const char *rope_name(enum fmt_rope_layout l)
{
    return l == FMT_ROPE_INTERLEAVED ? "interleaved" : "half-split";
}

static const char *vocab_name(enum fmt_vocab_kind k)
{
    return k == FMT_VOCAB_SPM ? "sentencepiece-bpe" : k == FMT_VOCAB_HF_JSON ? "hf-tokenizer.json"
                                                                              : "none";
}

/* A GGUF byte-level BPE (tokenizer.ggml.model "gpt2"): its pre-tokenizer name
 * and merge count, else NULL */
static const char *gguf_gpt2(const struct fmt_model *m, uint64_t *n_merges)
{
    const struct fmt_kv *model = fmt_model_find_kv(m, "tokenizer.ggml.model");
    const struct fmt_kv *pre = fmt_model_find_kv(m, "tokenizer.ggml.pre");
    const struct fmt_kv *mg = fmt_model_find_kv(m, "tokenizer.ggml.merges");
    if (m->container != FMT_CONT_GGUF || m->vocab.kind != FMT_VOCAB_HF_JSON || !model ||
        model->type != FMT_KV_STRING || strcmp(model->str, "gpt2"))
        return NULL;
    *n_merges = mg && mg->type == FMT_KV_ARRAY ? mg->n : 0;
    return pre && pre->type == FMT_KV_STRING ? pre->str : "";
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        { "summary", no_argument, 0, 's' }, { "config", required_argument, 0, 'c' },
        { "tokenizer", required_argument, 0, 'k' }, { "json", no_argument, 0, 'j' },
        { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    bool json = false, summary = false, quiet = false;
    struct fmt_open_opts oo = { 0 };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":sqh", opts, NULL)) != -1) {
        switch (c) {
        case 's': summary = true; break;
        case 'c': oo.config_path = optarg; break;
        case 'k': oo.tokenizer_path = optarg; break;
        case 'j': json = true; break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("inspect", c, argc, argv);
        }
    }
    cli_set_quiet(quiet);
    if (optind + 1 != argc)
        return cli_usage_error("inspect", usage, "expected one MODEL");
    const char *path = argv[optind];
    struct sb_err err = { 0 };
    struct fmt_model *m;
    if (fmt_model_open(&m, path, &oo, &err) != SB_OK)
        return cli_fail("inspect", &err);

    uint64_t params = 0, bytes = 0;
    struct { uint64_t n, params, bytes; } by[SB_DTYPE_COUNT];
    memset(by, 0, sizeof by);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct fmt_tensor *t = &m->tensors[i];
        uint64_t n = numel(t);
        params += n;
        bytes += t->nbytes;
        by[t->dtype].n++;
        by[t->dtype].params += n;
        by[t->dtype].bytes += t->nbytes;
    }
    double bpp = params ? 8.0 * (double)bytes / (double)params : 0.0;
    const struct fmt_arch *a = &m->arch;

    if (json) {
        cJSON *doc = cli_json_doc("inspect");
        cJSON_AddStringToObject(doc, "model", path);
        cJSON_AddStringToObject(doc, "path", path);
        cJSON_AddStringToObject(doc, "container", fmt_container_name(m->container));
        if (m->has_arch) {
            cJSON *ar = cJSON_AddObjectToObject(doc, "architecture");
            cJSON_AddStringToObject(ar, "model_type", a->model_type);
            cJSON_AddNumberToObject(ar, "layers", a->n_layers);
            cJSON_AddNumberToObject(ar, "dim", a->dim);
            cJSON_AddNumberToObject(ar, "hidden_dim", a->hidden_dim);
            cJSON_AddNumberToObject(ar, "heads", a->n_heads);
            cJSON_AddNumberToObject(ar, "kv_heads", a->n_kv_heads);
            cJSON_AddNumberToObject(ar, "head_dim", a->head_dim);
            cJSON_AddNumberToObject(ar, "vocab_size", a->vocab_size);
            cJSON_AddNumberToObject(ar, "context_length", a->n_ctx);
            cJSON_AddNumberToObject(ar, "model_ctx", a->n_ctx);
            cJSON_AddNumberToObject(ar, "rms_norm_eps", a->norm_eps);
            cJSON_AddNumberToObject(ar, "rope_theta", a->rope_theta);
            cJSON_AddStringToObject(ar, "rope_layout", rope_name(a->rope_layout));
            cJSON_AddBoolToObject(ar, "tied_embeddings", a->tied_embeddings);
            cJSON_AddNumberToObject(ar, "experts", a->n_experts);
            cJSON_AddNumberToObject(ar, "experts_used", a->n_experts_used);
            cJSON_AddNumberToObject(ar, "experts_per_token", a->n_experts_used);
        }
        cJSON *tok = cJSON_AddObjectToObject(doc, "tokenizer");
        cJSON_AddStringToObject(tok, "kind", vocab_name(m->vocab.kind));
        cJSON_AddNumberToObject(tok, "tokens", fmt_vocab_n_tokens(&m->vocab));
        uint64_t nm;
        const char *pre = gguf_gpt2(m, &nm);
        if (pre) {
            cJSON_AddStringToObject(tok, "gguf_model", "gpt2");
            cJSON_AddStringToObject(tok, "pre", pre);
            cJSON_AddNumberToObject(tok, "merges", (double)nm);
        }
        if (!summary) {
            cJSON *arr = cJSON_AddArrayToObject(doc, "tensors");
            for (size_t i = 0; i < m->n_tensors; i++) {
                const struct fmt_tensor *t = &m->tensors[i];
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "name", t->name);
                cJSON_AddStringToObject(o, "encoding", sb_dtype_name(t->dtype));
                cJSON *sh = cJSON_AddArrayToObject(o, "shape");
                for (int d = 0; d < t->ndim; d++)
                    cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
                cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
                uint64_t n = numel(t);
                cJSON_AddNumberToObject(o, "bits_per_param",
                                        n ? 8.0 * (double)t->nbytes / (double)n : 0.0);
                cJSON_AddNumberToObject(o, "offset", (double)t->file_offset);
                cJSON_AddItemToArray(arr, o);
            }
        }
        cJSON *enc = cJSON_AddObjectToObject(doc, "by_encoding");
        for (int d = 0; d < SB_DTYPE_COUNT; d++) {
            if (!by[d].n)
                continue;
            cJSON *o = cJSON_AddObjectToObject(enc, sb_dtype_name((enum sb_dtype)d));
            cJSON_AddNumberToObject(o, "tensors", (double)by[d].n);
            cJSON_AddNumberToObject(o, "params", (double)by[d].params);
            cJSON_AddNumberToObject(o, "bytes", (double)by[d].bytes);
        }
        cJSON *tot = cJSON_AddObjectToObject(doc, "totals");
        cJSON_AddNumberToObject(tot, "tensors", (double)m->n_tensors);
        cJSON_AddNumberToObject(tot, "params", (double)params);
        cJSON_AddNumberToObject(tot, "bytes", (double)bytes); /* the tensors' */
        cJSON_AddNumberToObject(tot, "file_bytes", (double)fmt_model_file_bytes(m));
        cJSON_AddNumberToObject(tot, "bits_per_param", bpp);
        cJSON_AddNumberToObject(doc, "metadata_keys", (double)m->n_kv);
        cli_print_json(doc);
        fmt_model_free(m);
        return CLI_OK;
    }

    char b1[32], b2[96];
    printf("model: %s (%s)\n", path, fmt_container_name(m->container));
    if (m->has_arch) {
        printf("architecture: %s, %d layers, dim %d, heads %d (kv %d, head_dim %d), ffn %d, "
               "vocab %d, context %d\n",
               a->model_type[0] ? a->model_type : "?", a->n_layers, a->dim, a->n_heads,
               a->n_kv_heads, a->head_dim, a->n_experts ? a->moe_hidden_dim : a->hidden_dim,
               a->vocab_size, a->n_ctx);
        if (a->n_experts)
            printf("moe: %d experts, top-%d%s%s\n", a->n_experts, a->n_experts_used,
                   a->norm_topk_prob ? " (renormalised)" : "",
                   a->shared_hidden_dim ? ", shared expert" : "");
        printf("rope: %s, theta %g; rms eps %g; embeddings %s\n", rope_name(a->rope_layout),
               a->rope_theta, a->norm_eps, a->tied_embeddings ? "tied" : "untied");
    } else {
        printf("architecture: unknown (no config found)\n");
    }
    uint64_t nm;
    const char *pre = gguf_gpt2(m, &nm);
    if (pre)
        printf("tokenizer: gpt2 (byte-level BPE), %u tokens, %" PRIu64 " merges, pre-tokenizer "
               "'%s'\n", fmt_vocab_n_tokens(&m->vocab), nm, pre);
    else if (fmt_vocab_n_tokens(&m->vocab))
        printf("tokenizer: %s, %u tokens\n", vocab_name(m->vocab.kind),
               fmt_vocab_n_tokens(&m->vocab));
    else
        printf("tokenizer: %s\n", vocab_name(m->vocab.kind));
    if (!summary) {
        printf("\n%-52s %-9s %-20s %14s %8s\n", "tensor", "encoding", "shape", "bytes", "bits/w");
        for (size_t i = 0; i < m->n_tensors; i++) {
            const struct fmt_tensor *t = &m->tensors[i];
            uint64_t n = numel(t);
            shape_str(t, b2, sizeof b2);
            printf("%-52s %-9s %-20s %14" PRIu64 " %8.3f\n", t->name, sb_dtype_name(t->dtype), b2,
                   t->nbytes, n ? 8.0 * (double)t->nbytes / (double)n : 0.0);
        }
    }
    printf("\nby encoding:\n");
    for (int d = 0; d < SB_DTYPE_COUNT; d++)
        if (by[d].n)
            printf("  %-9s %5" PRIu64 " tensors %14" PRIu64 " params %12s  %.3f bits/param\n",
                   sb_dtype_name((enum sb_dtype)d), by[d].n, by[d].params,
                   cli_fmt_bytes(by[d].bytes, b1, sizeof b1),
                   by[d].params ? 8.0 * (double)by[d].bytes / (double)by[d].params : 0.0);
    printf("total: %zu tensors, %" PRIu64 " parameters, %" PRIu64 " bytes of tensors (%s), "
           "%.3f bits/param\n",
           m->n_tensors, params, bytes, cli_fmt_bytes(bytes, b1, sizeof b1), bpp);
    const uint64_t fb = fmt_model_file_bytes(m);
    if (fb >= bytes)
        printf("files: %" PRIu64 " bytes on disk (%s): the tensors, %" PRIu64 " bytes of headers, "
               "metadata and padding\n",
               fb, cli_fmt_bytes(fb, b1, sizeof b1), fb - bytes);
    else   /* .subbit stores a tensor zstd-compressed when that saves 5% */
        printf("files: %" PRIu64 " bytes on disk (%s): %" PRIu64 " fewer than the tensors, "
               "stored compressed\n", fb, cli_fmt_bytes(fb, b1, sizeof b1), bytes - fb);
    fmt_model_free(m);
    return CLI_OK;
}
