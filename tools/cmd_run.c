/* cmd_run.c: `subbit run MODEL -p TEXT`: generate text, streamed to stdout as
 * it comes; greedy with --temp 0, else temperature / top-p sampling seeded by
 * --seed. Stops after -n tokens, at EOS or BOS, or at the context's end. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "fmt_model.h"
#include "sb_alloc.h"
#include "vfy_gen.h"
#include "vfy_model.h"
#include "vfy_sample.h"
#include "vfy_tok.h"

static const char usage[] =
    "usage: subbit run MODEL [-p TEXT] [options]\n"
    "\n"
    "Generate text from MODEL, streaming it to stdout (the prompt first).\n"
    "\n"
    "options:\n"
    "  -p, --prompt TEXT      the prompt (default: empty, start from BOS)\n"
    "  -n, --tokens N         tokens to generate (default 256)\n"
    "      --temp T           temperature; 0 = greedy (default 1.0)\n"
    "      --top-p P          nucleus sampling threshold in (0, 1] (default 0.9)\n"
    "      --seed S           random seed (default: from the clock)\n"
    "      --ctx N            context size (default: the model's, at most 4096)\n"
    "      --config FILE      config.json for a lone .safetensors file\n"
    "      --tokenizer FILE   llama2.c tokenizer.bin (default: beside the model)\n"
    "  -t, --threads N        OpenMP threads\n"
    "  -q, --quiet            no progress or notes on stderr, nor the speed line\n"
    "      --json             one JSON document on stdout (the text in \"text\")\n"
    "  -h, --help             this text\n";

enum { O_TEMP = 256, O_TOPP, O_SEED, O_CTX, O_CONFIG, O_TOK, O_JSON };

/* the text for --json, gathered instead of streamed */
struct text_buf {
    char *s;
    size_t n, cap;
    bool oom;
};

/* each piece straight to stdout, as it comes; or into a text_buf (--json) */
static int print_piece(void *user, const char *piece, size_t len)
{
    struct text_buf *b = user;
    if (!b) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
        return 0;
    }
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return 1;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, piece, len);
    b->n += len;
    b->s[b->n] = 0;
    return 0;
}

static const char *stop_name(enum vfy_gen_stop s)
{
    return s == VFY_GEN_EOS ? "eos" : s == VFY_GEN_CONTEXT ? "context" : s == VFY_GEN_HOOK ? "stopped"
                                                                                          : "limit";
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "prompt", required_argument, 0, 'p' }, { "tokens", required_argument, 0, 'n' },
        { "temp", required_argument, 0, O_TEMP }, { "top-p", required_argument, 0, O_TOPP },
        { "seed", required_argument, 0, O_SEED }, { "ctx", required_argument, 0, O_CTX },
        { "config", required_argument, 0, O_CONFIG }, { "tokenizer", required_argument, 0, O_TOK },
        { "threads", required_argument, 0, 't' }, { "quiet", no_argument, 0, 'q' },
        { "json", no_argument, 0, O_JSON }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *prompt = "";
    long n_gen = 256, threads = 0, ctx_n = 0, seed = -1;
    double temp = 1.0, top_p = 0.9;
    bool quiet = false, json = false;
    struct fmt_open_opts oo = { 0 };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":p:n:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': prompt = optarg; break;
        case 'n':
            if (!cli_parse_long("run", "--tokens", optarg, 0, 1 << 20, &n_gen))
                return CLI_USAGE;
            break;
        case O_TEMP:
            if (!cli_parse_double("run", "--temp", optarg, 0.0, 100.0, &temp))
                return CLI_USAGE;
            break;
        case O_TOPP:
            if (!cli_parse_double("run", "--top-p", optarg, 1e-6, 1.0, &top_p))
                return CLI_USAGE;
            break;
        case O_SEED:
            if (!cli_parse_long("run", "--seed", optarg, 0, 0x7FFFFFFFFFFFFFFFL, &seed))
                return CLI_USAGE;
            break;
        case O_CTX:
            if (!cli_parse_long("run", "--ctx", optarg, 1, 1 << 20, &ctx_n))
                return CLI_USAGE;
            break;
        case O_CONFIG: oo.config_path = optarg; break;
        case O_TOK: oo.tokenizer_path = optarg; break;
        case 't':
            if (!cli_parse_long("run", "--threads", optarg, 1, CLI_MAX_THREADS, &threads))
                return CLI_USAGE;
            break;
        case 'q': quiet = true; break;
        case O_JSON: json = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("run", c, argc, argv);
        }
    }
    cli_set_quiet(quiet);
    if (optind + 1 != argc)
        return cli_usage_error("run", usage, "expected one MODEL");
    const char *path = argv[optind];
    cli_set_threads((int)threads);
    cli_install_signals();

    struct sb_err err = { 0 };
    struct fmt_model *m = NULL;
    struct vfy_model *vm = NULL;
    struct vfy_tok *tok = NULL;
    struct vfy_ctx *ctx = NULL;
    struct vfy_sampler smp = { 0 };
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct text_buf tb = { 0 };
    int rc = CLI_ERR;

    if (fmt_model_open(&m, path, &oo, &err) != SB_OK || vfy_model_new(&vm, m, &err) != SB_OK ||
        vfy_tok_new(&tok, &m->vocab, &err) != SB_OK ||
        vfy_tok_encode(tok, prompt, strlen(prompt), vfy_tok_bos(tok) >= 0, &ids, &n_ids, &err) != SB_OK) {
        rc = cli_fail("run", &err);
        goto out;
    }
    cli_model_notes("run", vm);
    const struct vfy_model_info *mi = vfy_model_info(vm);
    if (n_ids == 0) {
        rc = cli_error("run", "%s: the model has no BOS token; give a prompt", path);
        goto out;
    }
    if (ctx_n > 0 && mi->n_ctx_train > 0 && ctx_n > mi->n_ctx_train) {
        rc = cli_usage_error("run", usage, "--ctx %ld is above the model's context (%d)", ctx_n,
                             mi->n_ctx_train);
        goto out;
    }
    size_t n_ctx = ctx_n > 0 ? (size_t)ctx_n : mi->n_ctx_train > 0 ? (size_t)mi->n_ctx_train : 2048;
    if (ctx_n == 0 && n_ctx > 4096)
        n_ctx = 4096;
    if (ctx_n == 0 && n_ctx > n_ids + (size_t)n_gen)
        n_ctx = n_ids + (size_t)n_gen;
    if (ctx_n > 0 && mi->n_ctx_train > 0 && n_ctx > (size_t)mi->n_ctx_train)
        cli_warn("run", "--ctx %zu is above the model's context (%d): using %zu "
                 "(positions past %d were never trained)", n_ctx, mi->n_ctx_train, n_ctx,
                 mi->n_ctx_train);
    if (n_ids > n_ctx) {
        rc = cli_error("run", "prompt of %zu tokens does not fit the context of %zu", n_ids, n_ctx);
        goto out;
    }
    struct vfy_gen_result res;
    const uint64_t used_seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
    if (vfy_ctx_new(&ctx, vm, n_ctx, 512, &err) != SB_OK ||
        vfy_sampler_init(&smp, (size_t)mi->vocab, (float)temp, (float)top_p, used_seed,
                         &err) != SB_OK ||
        vfy_generate(ctx, tok, &smp, ids, n_ids, (size_t)n_gen, print_piece, json ? &tb : NULL,
                     &res, &err) != SB_OK) {
        rc = cli_fail("run", &err);
        goto out;
    }
    if (tb.oom) {
        rc = cli_error("run", "out of memory holding the text for --json");
        goto out;
    }
    const double tps = res.seconds > 0 ? (double)res.made / res.seconds : 0.0;
    if (json) {
        cJSON *d = cli_json_doc("run");
        cJSON_AddStringToObject(d, "model", path);
        cJSON_AddStringToObject(d, "prompt", prompt);
        cJSON_AddStringToObject(d, "text", tb.s ? tb.s : "");
        cJSON_AddNumberToObject(d, "prompt_tokens", (double)n_ids);
        cJSON_AddNumberToObject(d, "tokens_generated", (double)res.made);
        cJSON_AddStringToObject(d, "stop", stop_name(res.stop));
        cJSON_AddNumberToObject(d, "n_ctx", (double)n_ctx);
        cJSON_AddNumberToObject(d, "temperature", temp);
        cJSON_AddNumberToObject(d, "top_p", top_p);
        cJSON_AddNumberToObject(d, "seed", (double)used_seed);
        cJSON_AddNumberToObject(d, "seconds", res.seconds);
        cJSON_AddNumberToObject(d, "tokens_per_second", tps);
        cli_print_json(d);
    } else {
        fputc('\n', stdout);
        fflush(stdout);
    }
    /* the context ended the text before -n did: say so, and what would allow more */
    if (res.stop == VFY_GEN_CONTEXT && res.made < (size_t)n_gen) {
        if (mi->n_ctx_train > 0 && n_ctx < (size_t)mi->n_ctx_train)
            cli_warn("run", "stopped at the end of the context (%zu tokens) after %zu of the "
                     "-n %ld tokens; --ctx up to %d allows more", n_ctx, res.made, n_gen,
                     mi->n_ctx_train);
        else
            cli_warn("run", "stopped at the end of the model's context (%zu tokens) after %zu "
                     "of the -n %ld tokens", n_ctx, res.made, n_gen);
    }
    if (!quiet && !json)
        fprintf(stderr, "subbit run: %zu tokens, %.1f tokens/s\n", res.made, tps);
    rc = CLI_OK;
out:
    vfy_sampler_release(&smp);
    vfy_ctx_free(ctx);
    vfy_tok_free(tok);
    vfy_model_free(vm);
    fmt_model_free(m);
    sb_free(ids);
    free(tb.s);
    return rc;
}
