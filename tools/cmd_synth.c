/* cmd_synth.c: `subbit synth`: a deterministic random model in HF layout. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "cvt_synth.h"
#include "fmt_out.h"

static const char usage[] =
    "usage: subbit synth --arch llama|mixtral|qwen2_moe -o DIR [options]\n"
    "\n"
    "Write a deterministic random model in Hugging Face layout (config.json,\n"
    "model.safetensors or shards, a byte-level tokenizer.json): the same options\n"
    "and seed give the same bytes. For tests, demos and benchmarks.\n"
    "\n"
    "options:\n"
    "  -o, --output DIR     the folder to write (required)\n"
    "      --arch A         llama (default), mixtral or qwen2_moe\n"
    "      --layers N       decoder layers (default 2)\n"
    "      --dim N          hidden size (default 64)\n"
    "      --hidden N       FFN width; per expert for MoE (default 172 / 96)\n"
    "      --heads N        attention heads (default 4)\n"
    "      --kv-heads N     key/value heads (default 2)\n"
    "      --vocab N        vocabulary size (default 258: the byte tokenizer)\n"
    "      --ctx N          max_position_embeddings (default 512)\n"
    "      --experts N      MoE experts (default 4)\n"
    "      --top-k N        experts per token (default 2)\n"
    "      --shared-hidden N  qwen2_moe shared expert width (default 128)\n"
    "      --tied           tie the output to the embeddings\n"
    "      --dtype T        f32 (default), f16 or bf16\n"
    "      --std X          weight standard deviation (default 0.02)\n"
    "      --seed S         random seed (default 1)\n"
    "      --shard-size SIZE  write shards of at most SIZE bytes (e.g. 500M)\n"
    "  -t, --threads N      threads\n"
    "  -f, --force          replace DIR if it exists\n"
    "  -q, --quiet          no progress or notes on stderr, nor the summary line\n"
    "      --json           one JSON document on stdout (what was written)\n"
    "  -h, --help           this text\n";

int cmd_synth(int argc, char **argv)
{
    enum { O_ARCH = 256, O_LAYERS, O_DIM, O_HIDDEN, O_HEADS, O_KV, O_VOCAB, O_CTX, O_EXPERTS,
           O_TOPK, O_SHARED, O_TIED, O_DTYPE, O_STD, O_SEED, O_SHARD, O_JSON };
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "arch", required_argument, 0, O_ARCH },
        { "layers", required_argument, 0, O_LAYERS }, { "dim", required_argument, 0, O_DIM },
        { "hidden", required_argument, 0, O_HIDDEN }, { "heads", required_argument, 0, O_HEADS },
        { "kv-heads", required_argument, 0, O_KV }, { "vocab", required_argument, 0, O_VOCAB },
        { "ctx", required_argument, 0, O_CTX }, { "experts", required_argument, 0, O_EXPERTS },
        { "top-k", required_argument, 0, O_TOPK },
        { "shared-hidden", required_argument, 0, O_SHARED }, { "tied", no_argument, 0, O_TIED },
        { "dtype", required_argument, 0, O_DTYPE }, { "std", required_argument, 0, O_STD },
        { "seed", required_argument, 0, O_SEED }, { "shard-size", required_argument, 0, O_SHARD },
        { "threads", required_argument, 0, 't' }, { "force", no_argument, 0, 'f' },
        { "quiet", no_argument, 0, 'q' }, { "json", no_argument, 0, O_JSON },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    /* first pass: the architecture sets the defaults the other options override */
    enum fmt_arch_kind kind = FMT_ARCH_LLAMA;
    for (int i = 1; i < argc; i++) {
        const char *a = NULL;
        if (!strcmp(argv[i], "--arch") && i + 1 < argc)
            a = argv[i + 1];
        else if (!strncmp(argv[i], "--arch=", 7))
            a = argv[i] + 7;
        if (a) {
            if (!strcmp(a, "mixtral"))
                kind = FMT_ARCH_MIXTRAL;
            else if (!strcmp(a, "qwen2_moe"))
                kind = FMT_ARCH_QWEN2_MOE;
            else if (strcmp(a, "llama"))
                return cli_usage_error("synth", usage, "--arch expects llama, mixtral or qwen2_moe");
        }
    }
    struct cvt_synth_opts so;
    cvt_synth_opts_init(&so, kind);
    const char *out = NULL;
    bool quiet = false, json = false;
    long v, threads = 0;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":o:t:fqh", opts, NULL)) != -1) {
        int *field = NULL;
        switch (c) {
        case 'o': out = optarg; continue;
        case O_ARCH: continue;
        case O_LAYERS: field = &so.layers; break;
        case O_DIM: field = &so.dim; break;
        case O_HIDDEN: field = &so.hidden; break;
        case O_HEADS: field = &so.heads; break;
        case O_KV: field = &so.kv_heads; break;
        case O_VOCAB: field = &so.vocab; break;
        case O_CTX: field = &so.ctx; break;
        case O_EXPERTS: field = &so.experts; break;
        case O_TOPK: field = &so.top_k; break;
        case O_SHARED: field = &so.shared_hidden; break;
        case O_TIED: so.tied = true; continue;
        case O_DTYPE: {
            int dt = sb_dtype_from_name(optarg);
            if (dt != SB_DTYPE_F32 && dt != SB_DTYPE_F16 && dt != SB_DTYPE_BF16)
                return cli_usage_error("synth", usage, "--dtype expects f32, f16 or bf16");
            so.dtype = (enum sb_dtype)dt;
            continue;
        }
        case O_STD:
            if (!cli_parse_double("synth", "--std", optarg, 0.0, 100.0, &d))
                return CLI_USAGE;
            so.init_std = (float)d;
            continue;
        case O_SEED:
            if (!cli_parse_long("synth", "--seed", optarg, 0, 0x7fffffffffffffffL, &v))
                return CLI_USAGE;
            so.seed = (uint64_t)v;
            continue;
        case O_SHARD:
            if (!cli_parse_size("synth", "--shard-size", optarg, &so.shard_size) ||
                so.shard_size == 0)
                return CLI_USAGE;
            continue;
        case 't':
            if (!cli_parse_long("synth", "--threads", optarg, 1, CLI_MAX_THREADS, &threads))
                return CLI_USAGE;
            continue;
        case 'f': so.out_flags |= FMT_OUT_FORCE; continue;
        case 'q': quiet = true; continue;
        case O_JSON: json = true; continue;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("synth", c, argc, argv);
        }
        char oname[32];
        snprintf(oname, sizeof oname, "--%s", opts[c - O_ARCH + 1].name);
        if (!cli_parse_long("synth", oname, optarg, 1, 1L << 30, &v))
            return CLI_USAGE;
        *field = (int)v;
    }
    cli_set_quiet(quiet);
    if (optind != argc)
        return cli_usage_error("synth", usage, "unexpected argument '%s'", argv[optind]);
    if (!out)
        return cli_usage_error("synth", usage, "-o/--output is required");
    /* always a folder: "-o m.gguf" would be a folder named like a file */
    struct sb_err err = { 0 };
    enum fmt_container oc;
    if (fmt_container_for_output(out, &oc, &err) != SB_OK)
        return cli_usage_error("synth", usage, "%s", err.msg);
    size_t ol = strlen(out);
    if (oc != FMT_CONT_SAFETENSORS || (ol >= 12 && !strcmp(out + ol - 12, ".safetensors")))
        return cli_usage_error("synth", usage, "%s: synth writes a folder (Hugging Face layout); "
                               "name one without an extension", out);
    cli_set_threads((int)threads);
    struct cli_progress pg;
    cli_progress_init(&pg, "synth", "synth", quiet || json, true);
    so.progress = cli_progress_hook(&pg);
    double t0 = cli_now();
    int r = cvt_synth(&so, out, &err);
    cli_progress_end(&pg);
    if (r != SB_OK)
        return cli_fail("synth", &err);
    if (json) {
        static const char *arch[] = { [FMT_ARCH_LLAMA] = "llama", [FMT_ARCH_MIXTRAL] = "mixtral",
                                      [FMT_ARCH_QWEN2_MOE] = "qwen2_moe" };
        cJSON *doc = cli_json_doc("synth");
        cJSON_AddStringToObject(doc, "model", out);
        cJSON_AddStringToObject(doc, "output", out);
        cJSON_AddStringToObject(doc, "arch", kind < sizeof arch / sizeof arch[0] && arch[kind]
                                               ? arch[kind] : "?");
        cJSON_AddNumberToObject(doc, "params", (double)cvt_synth_params(&so));
        cJSON_AddNumberToObject(doc, "layers", so.layers);
        cJSON_AddNumberToObject(doc, "dim", so.dim);
        cJSON_AddNumberToObject(doc, "n_ctx", so.ctx);
        if (kind != FMT_ARCH_LLAMA) {
            cJSON_AddNumberToObject(doc, "experts", so.experts);
            cJSON_AddNumberToObject(doc, "experts_per_token", so.top_k);
        }
        cJSON_AddStringToObject(doc, "dtype", sb_dtype_name(so.dtype));
        cJSON_AddNumberToObject(doc, "seed", (double)so.seed);
        cJSON_AddNumberToObject(doc, "seconds", cli_now() - t0);
        cli_print_json(doc);
    } else if (!quiet)
        fprintf(stderr, "subbit synth: wrote %s: %" PRIu64 " parameters in %.2f s\n", out,
                cvt_synth_params(&so), cli_now() - t0);
    return CLI_OK;
}
