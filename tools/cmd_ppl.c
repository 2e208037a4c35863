/* cmd_ppl.c: `subbit ppl MODEL --text FILE`: perplexity under a named
 * protocol (chunks, stride, blocks), with its standard error. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.h"
#include "cli_proto.h"
#include "fmt_model.h"
#include "par_comm.h"
#include "sb_alloc.h"
#include "vfy_model.h"
#include "vfy_ppl.h"
#include "vfy_tok.h"

static const char usage[] =
    "usage: subbit ppl MODEL --text FILE [options]\n"
    "\n"
    "Perplexity of MODEL on a text, under a named protocol:\n"
    "  chunks  llama.cpp: BOS + the whole text, windows of --ctx tokens each starting\n"
    "          with BOS, the second half of each window scored\n"
    "  stride  Hugging Face: windows of --ctx advancing by --stride, each token once\n"
    "  blocks  the text split on blank lines (or --block-sep), each block BOS + block,\n"
    "          truncated to --ctx, every token scored\n"
    "\n"
    "options:\n"
    "      --text FILE        the text (any bytes; invalid UTF-8 goes through byte fallback;\n"
    "                         '-': standard input)\n"
    "      --tokens FILE      pre-tokenized ids instead of --text (chunks, stride)\n"
    "      --protocol P       chunks (default), stride or blocks\n"
    "      --ctx N            window size in tokens (default 512)\n"
    "      --stride N         stride protocol step (default ctx/2)\n"
    "      --max-chunks N     use the first N chunks (stride: windows)\n"
    "      --max-blocks N     use the first N blocks\n"
    "      --block-sep STR    blocks separator (default a blank line, \"\\n\\n\")\n"
    "      --max-ppl X        exit 3 when the perplexity is above X\n"
    "      --batch N          tokens per forward step (default 512)\n"
    "      --config FILE      config.json for a lone .safetensors file\n"
    "      --tokenizer FILE   llama2.c tokenizer.bin (default: beside the model)\n"
    "  -t, --threads N        OpenMP threads (default: all cores)\n"
    "  -q, --quiet            no progress or notes on stderr\n"
    "      --json             one JSON document on stdout\n"
    "  -h, --help             this text\n";

/* the progress line's tail: tokens/s and the perplexity so far (r fills as it goes) */
static void ppl_detail(void *ctx, double seconds, char *buf, size_t len)
{
    const struct vfy_ppl_result *r = ctx;
    if (r->n_scored && seconds > 0)
        snprintf(buf, len, ", %.0f tokens/s, ppl %.4f", (double)r->n_forwarded / seconds,
                 exp(r->sum_nll / (double)r->n_scored));
}

enum { O_TEXT = 256, O_TOKENS, O_MAXPPL,
       O_BATCH, O_CONFIG, O_TOK, O_JSON };

int cmd_ppl(int argc, char **argv)
{
    static const struct option opts[] = {
        { "text", required_argument, 0, O_TEXT }, { "tokens", required_argument, 0, O_TOKENS },
        CLI_PROTO_LONGOPTS,
        { "max-ppl", required_argument, 0, O_MAXPPL }, { "batch", required_argument, 0, O_BATCH },
        { "config", required_argument, 0, O_CONFIG }, { "tokenizer", required_argument, 0, O_TOK },
        { "threads", required_argument, 0, 't' }, { "quiet", no_argument, 0, 'q' },
        { "json", no_argument, 0, O_JSON }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *text_path = NULL, *ids_path = NULL;
    struct vfy_ppl_opts po = { VFY_PROTO_CHUNKS, 512, 0, 0, NULL };
    struct fmt_open_opts oo = { 0 };
    long threads = 0, batch = 512;
    double max_ppl = 0;
    bool json = false, quiet = false, ctx_given = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":t:qh", opts, NULL)) != -1) {
        int prc;
        if (cli_proto_option("ppl", usage, c, optarg, &po, &ctx_given, &prc)) {
            if (prc != CLI_OK)
                return prc;
            continue;
        }
        switch (c) {
        case O_TEXT: text_path = optarg; break;
        case O_TOKENS: ids_path = optarg; break;
        case O_MAXPPL:
            if (!cli_parse_double("ppl", "--max-ppl", optarg, 1.0, 1e30, &max_ppl))
                return CLI_USAGE;
            break;
        case O_BATCH:
            if (!cli_parse_long("ppl", "--batch", optarg, 1, 1 << 20, &batch))
                return CLI_USAGE;
            break;
        case O_CONFIG: oo.config_path = optarg; break;
        case O_TOK: oo.tokenizer_path = optarg; break;
        case 't':
            if (!cli_parse_long("ppl", "--threads", optarg, 1, CLI_MAX_THREADS, &threads))
                return CLI_USAGE;
            break;
        case 'q': quiet = true; break;
        case O_JSON: json = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("ppl", c, argc, argv);
        }
    }
    cli_set_quiet(quiet);
    if (optind + 1 != argc)
        return cli_usage_error("ppl", usage, "expected one MODEL");
    if (!text_path == !ids_path)
        return cli_usage_error("ppl", usage, "give one of --text FILE or --tokens FILE");
    if (cli_stdin_in_job("ppl", usage, "--text", text_path))
        return CLI_USAGE;
    const char *path = argv[optind];
    cli_set_threads((int)threads);
    cli_install_signals();

    struct sb_err err = { 0 };
    struct fmt_model *m = NULL;
    struct vfy_model *vm = NULL;
    struct vfy_tok *tok = NULL;
    struct vfy_ctx *ctx = NULL;
    struct vfy_plan plan = { 0 };
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0;
    int rc = CLI_ERR;
    bool synced = false;   /* every rank passed the step before scoring */

    if (text_path) {
        if (cli_read_input(text_path, &text, &len, &err) != SB_OK) {
            rc = cli_fail("ppl", &err);
            goto out;
        }
        if (len == 0) {
            cli_error("ppl", "%s: empty text", strcmp(text_path, "-") ? text_path : "stdin");
            goto out;
        }
    }
    if (fmt_model_open(&m, path, &oo, &err) != SB_OK || vfy_model_new(&vm, m, &err) != SB_OK) {
        rc = cli_fail("ppl", &err);
        goto out;
    }
    cli_model_notes("ppl", vm);
    const struct vfy_model_info *mi = vfy_model_info(vm);
    if (text_path) {
        if (vfy_tok_new(&tok, &m->vocab, &err) != SB_OK) {
            rc = cli_fail("ppl", &err);
            goto out;
        }
        if (vfy_tok_n_vocab(tok) > (uint32_t)mi->vocab) {
            rc = cli_error("ppl", "%s: tokenizer has %u tokens, the model only %d", path,
                           vfy_tok_n_vocab(tok), mi->vocab);
            goto out;
        }
    }
    if (!ctx_given && mi->n_ctx_train > 0 && (size_t)mi->n_ctx_train < po.n_ctx)
        po.n_ctx = (size_t)mi->n_ctx_train;
    /* past its trained context a model's perplexity says nothing about it */
    if (mi->n_ctx_train > 0 && po.n_ctx > (size_t)mi->n_ctx_train) {
        rc = cli_usage_error("ppl", usage, "--ctx %zu is above the model's context (%d)",
                             po.n_ctx, mi->n_ctx_train);
        goto out;
    }
    if (text_path) {
        if (vfy_plan_from_text(&plan, tok, text, len, &po, &err) != SB_OK) {
            cli_error("ppl", "%s: %s", strcmp(text_path, "-") ? text_path : "stdin", err.msg);
            goto out;
        }
    } else {
        if (vfy_tok_read_ids(ids_path, &ids, &n_ids, (uint32_t)mi->vocab, &err) != SB_OK) {
            rc = cli_fail("ppl", &err);
            goto out;
        }
        int bos = m->vocab.bos_id >= 0 ? m->vocab.bos_id : m->arch.bos_id;
        if (vfy_plan_from_ids(&plan, ids, n_ids, bos, &po, &err) != SB_OK) {
            cli_error("ppl", "%s: %s", ids_path, err.msg);
            goto out;
        }
    }
    if (vfy_ctx_new(&ctx, vm, po.n_ctx, (size_t)batch, &err) != SB_OK) {
        rc = cli_fail("ppl", &err);
        goto out;
    }
    /* a rank that failed above says so here (at out:), before anyone scores */
    synced = true;
    if (par_agree(SB_OK, &err) != SB_OK) {
        rc = cli_fail("ppl", &err);
        goto out;
    }
    struct cli_progress prog;
    cli_progress_init(&prog, "ppl", "windows", quiet || json, false);
    struct sb_progress hook = cli_progress_hook(&prog);
    struct vfy_ppl_result r;
    prog.detail = ppl_detail;
    prog.detail_ctx = &r;
    int st = vfy_ppl_run(ctx, &plan, &hook, &r, &err);
    cli_progress_end(&prog);
    if (st == SB_EFORMAT) {   /* non-finite logits: the model is at fault, so it is named */
        rc = cli_error("ppl", "%s: %s", path, err.msg);
        goto out;
    }
    if (st != SB_OK) {
        rc = cli_fail("ppl", &err);
        goto out;
    }
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    const char *pname = vfy_protocol_name(po.protocol);
    if (json) {
        cJSON *d = cli_json_doc("ppl");
        cJSON_AddStringToObject(d, "model", path);
        cJSON_AddStringToObject(d, text_path ? "text" : "tokens", text_path ? text_path : ids_path);
        cJSON_AddStringToObject(d, "protocol", pname);
        cJSON_AddNumberToObject(d, "n_ctx", (double)po.n_ctx);
        if (po.protocol == VFY_PROTO_STRIDE)
            cJSON_AddNumberToObject(d, "stride", (double)(po.stride ? po.stride : po.n_ctx / 2));
        cJSON_AddNumberToObject(d, "windows", (double)r.n_windows);
        if (po.protocol == VFY_PROTO_BLOCKS)
            cJSON_AddNumberToObject(d, "truncated_blocks", (double)plan.n_truncated);
        cJSON_AddNumberToObject(d, "tokens_scored", (double)r.n_scored);
        cJSON_AddNumberToObject(d, "tokens_forwarded", (double)r.n_forwarded);
        cJSON_AddNumberToObject(d, "sum_nll", r.sum_nll);
        cJSON_AddNumberToObject(d, "mean_nll", r.mean_nll);
        cJSON_AddNumberToObject(d, "nll_stderr", r.se_nll);
        cJSON_AddNumberToObject(d, "ppl", r.ppl);
        cJSON_AddNumberToObject(d, "ppl_stderr", r.ppl_se);
        cJSON_AddNumberToObject(d, "seconds", r.seconds);
        cJSON_AddNumberToObject(d, "tokens_per_second", r.tok_per_s);
        cJSON_AddNumberToObject(d, "threads", nthreads);
        cli_print_json(d);
    } else {
        printf("model:         %s\n", path);
        printf("protocol:      %s, ctx %zu, %zu %s\n", pname, po.n_ctx, r.n_windows,
               po.protocol == VFY_PROTO_CHUNKS ? "chunks (second half scored)"
               : po.protocol == VFY_PROTO_BLOCKS ? "blocks" : "windows");
        printf("tokens scored: %zu\n", r.n_scored);
        printf("mean NLL:      %.6f +/- %.6f nats\n", r.mean_nll, r.se_nll);
        printf("perplexity:    %.4f +/- %.4f\n", r.ppl, r.ppl_se);
        printf("speed:         %.0f tokens/s (%d threads, %.2f s)\n", r.tok_per_s, nthreads,
               r.seconds);
    }
    rc = CLI_OK;
    if (max_ppl > 0 && !(r.ppl <= max_ppl)) {
        if (par_rank() == 0)
            fprintf(stderr, "subbit ppl: perplexity %.4f is above --max-ppl %g\n", r.ppl,
                    max_ppl);
        rc = CLI_CHECK_FAILED;
    }
out:
    if (!synced && par_agree(SB_EIO, &err) != SB_OK && par_rank() != 0)
        rc = CLI_ERR;
    vfy_plan_release(&plan);
    vfy_ctx_free(ctx);
    vfy_tok_free(tok);
    vfy_model_free(vm);
    fmt_model_free(m);
    sb_free(ids);
    sb_free(text);
    return rc;
}
