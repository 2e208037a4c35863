/* cmd_verify.c: `subbit verify --ref A --model B --text FILE`: did quantization
 * break it? ΔPPL, KL divergence per position and top-1 agreement over the same
 * tokens; thresholds turn it into a CI gate (exit 3). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_proto.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "par_comm.h"
#include "rpt_report.h"
#include "sb_alloc.h"
#include "vfy_model.h"
#include "vfy_ppl.h"
#include "vfy_tok.h"

static const char usage[] =
    "usage: subbit verify --ref A --model B --text FILE [options]\n"
    "\n"
    "Compare model B against reference A on the same tokens (A's tokenizer):\n"
    "perplexity of both and the difference, KL(P_A || P_B) per scored position\n"
    "(mean, median, p99, max) and how often both pick the same top-1 token.\n"
    "\n"
    "options:\n"
    "      --ref A            the reference model\n"
    "      --model B          the model under test\n"
    "      --text FILE        the text ('-': standard input)\n"
    "      --protocol P       chunks (default), stride or blocks (see subbit ppl --help)\n"
    "      --ctx N            window size in tokens (default 512)\n"
    "      --stride N         stride protocol step (default ctx/2)\n"
    "      --max-chunks N     use the first N chunks (stride: windows)\n"
    "      --max-blocks N     use the first N blocks\n"
    "      --block-sep STR    blocks separator (default a blank line)\n"
    "      --max-ppl-delta D  fail when ppl(B) - ppl(A) exceeds D: '1%' relative or\n"
    "                         '0.05' absolute\n"
    "      --max-kld X        fail when the mean KLD exceeds X (nats)\n"
    "      --min-top1 X       fail when top-1 agreement is below X (0..1)\n"
    "      --no-gate          measure only: no threshold, exit 0 (without it and\n"
    "                         without the three above, the defaults apply:\n"
    "                         --max-ppl-delta 1% --max-kld 0.01 --min-top1 0.95)\n"
    "      --batch N          tokens per forward step (default 512)\n"
    "      --ref-config FILE / --config FILE   config.json for lone .safetensors files\n"
    "      --tokenizer FILE   llama2.c tokenizer.bin for both (default: beside each)\n"
    "  -t, --threads N        OpenMP threads\n"
    "  -q, --quiet            no progress or notes on stderr\n"
    "      --json             one JSON document on stdout\n"
    "      --report FILE      also write the result as an HTML page (subbit report)\n"
    "  -f, --force            replace the --report FILE if it exists\n"
    "  -h, --help             this text\n"
    "\n"
    "exit status: 0 all thresholds met, 3 a threshold failed, 1 error, 2 usage\n";

/* the progress line's tail: tokens/s (both models run each token) */
static void verify_detail(void *ctx, double seconds, char *buf, size_t len)
{
    const struct vfy_verify_result *r = ctx;
    if (r->ref.n_forwarded && seconds > 0)
        snprintf(buf, len, ", %.0f tokens/s", (double)r->ref.n_forwarded / seconds);
}

enum { O_REF = 256, O_MODEL, O_TEXT, O_DPPL,
       O_KLD, O_TOP1, O_BATCH, O_RCONFIG, O_CONFIG, O_TOK, O_JSON, O_REPORT, O_NOGATE };

/* the gates when none is named: what a q8_0 copy passes (README) */
#define DEFAULT_DPPL_PCT 1.0
#define DEFAULT_KLD 0.01
#define DEFAULT_TOP1 0.95

static int load(const char *path, const struct fmt_open_opts *oo, struct fmt_model **m,
                struct vfy_model **vm)
{
    struct sb_err err = { 0 };
    if (fmt_model_open(m, path, oo, &err) != SB_OK || vfy_model_new(vm, *m, &err) != SB_OK)
        return cli_fail("verify", &err);
    cli_model_notes("verify", *vm);
    return CLI_OK;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        { "ref", required_argument, 0, O_REF }, { "model", required_argument, 0, O_MODEL },
        { "text", required_argument, 0, O_TEXT }, CLI_PROTO_LONGOPTS,
        { "max-ppl-delta", required_argument, 0, O_DPPL },
        { "max-kld", required_argument, 0, O_KLD }, { "min-top1", required_argument, 0, O_TOP1 },
        { "batch", required_argument, 0, O_BATCH }, { "ref-config", required_argument, 0, O_RCONFIG },
        { "config", required_argument, 0, O_CONFIG }, { "tokenizer", required_argument, 0, O_TOK },
        { "threads", required_argument, 0, 't' }, { "quiet", no_argument, 0, 'q' },
        { "json", no_argument, 0, O_JSON }, { "report", required_argument, 0, O_REPORT },
        { "no-gate", no_argument, 0, O_NOGATE },
        { "force", no_argument, 0, 'f' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *ref_path = NULL, *model_path = NULL, *text_path = NULL, *report = NULL;
    unsigned report_flags = 0;
    struct vfy_ppl_opts po = { VFY_PROTO_CHUNKS, 512, 0, 0, NULL };
    struct fmt_open_opts ro = { 0 }, mo = { 0 };
    long threads = 0, batch = 512;
    double max_dppl = 0, max_kld = -1, min_top1 = -1;
    bool have_dppl = false, no_gate = false;
    bool dppl_rel = false, json = false, quiet = false, ctx_given = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":t:qfh", opts, NULL)) != -1) {
        int prc;
        if (cli_proto_option("verify", usage, c, optarg, &po, &ctx_given, &prc)) {
            if (prc != CLI_OK)
                return prc;
            continue;
        }
        switch (c) {
        case O_REF: ref_path = optarg; break;
        case O_MODEL: model_path = optarg; break;
        case O_TEXT: text_path = optarg; break;
        case O_DPPL: {
            char buf[64];
            size_t n = strlen(optarg);
            dppl_rel = n > 0 && optarg[n - 1] == '%';
            have_dppl = true;
            if (n >= sizeof buf || n < (size_t)(1 + dppl_rel))
                return cli_usage_error("verify", usage, "bad --max-ppl-delta '%s'", optarg);
            memcpy(buf, optarg, n - dppl_rel);
            buf[n - dppl_rel] = 0;
            if (!cli_parse_double("verify", "--max-ppl-delta", buf, -1e30, 1e30, &max_dppl))
                return CLI_USAGE;
            break;
        }
        case O_KLD:
            if (!cli_parse_double("verify", "--max-kld", optarg, 0.0, 1e30, &max_kld))
                return CLI_USAGE;
            break;
        case O_TOP1:
            if (!cli_parse_double("verify", "--min-top1", optarg, 0.0, 1.0, &min_top1))
                return CLI_USAGE;
            break;
        case O_BATCH:
            if (!cli_parse_long("verify", "--batch", optarg, 1, 1 << 20, &batch))
                return CLI_USAGE;
            break;
        case O_RCONFIG: ro.config_path = optarg; break;
        case O_CONFIG: mo.config_path = optarg; break;
        case O_TOK: ro.tokenizer_path = mo.tokenizer_path = optarg; break;
        case 't':
            if (!cli_parse_long("verify", "--threads", optarg, 1, CLI_MAX_THREADS, &threads))
                return CLI_USAGE;
            break;
        case 'q': quiet = true; break;
        case O_JSON: json = true; break;
        case O_REPORT: report = optarg; break;
        case O_NOGATE: no_gate = true; break;
        case 'f': report_flags |= FMT_OUT_FORCE; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("verify", c, argc, argv);
        }
    }
    cli_set_quiet(quiet);
    if (optind != argc)
        return cli_usage_error("verify", usage, "unexpected argument '%s'", argv[optind]);
    if (!ref_path || !model_path || !text_path)
        return cli_usage_error("verify", usage, "--ref, --model and --text are required");
    if (cli_stdin_in_job("verify", usage, "--text", text_path))
        return CLI_USAGE;
    const bool named = have_dppl || max_kld >= 0 || min_top1 >= 0;
    if (no_gate && named)
        return cli_usage_error("verify", usage, "--no-gate with a threshold: give one or the other");
    const char *gate_source = no_gate ? "none" : named ? "options" : "defaults";
    if (!no_gate && !named) {
        have_dppl = dppl_rel = true;
        max_dppl = DEFAULT_DPPL_PCT;
        max_kld = DEFAULT_KLD;
        min_top1 = DEFAULT_TOP1;
    }
    if (report && !(report_flags & FMT_OUT_FORCE) && access(report, F_OK) == 0)
        return cli_error("verify", "%s: exists (use --force to replace)", report);
    cli_set_threads((int)threads);
    cli_install_signals();

    struct sb_err err = { 0 };
    struct fmt_model *ma = NULL, *mb = NULL;
    struct vfy_model *va = NULL, *vb = NULL;
    struct vfy_tok *tok = NULL;
    struct vfy_ctx *ca = NULL, *cb = NULL;
    struct vfy_plan plan = { 0 };
    char *text = NULL;
    size_t len = 0;
    int rc = CLI_ERR;
    bool synced = false;   /* every rank passed the step before scoring */

    if (cli_read_input(text_path, &text, &len, &err) != SB_OK) {
        rc = cli_fail("verify", &err);
        goto out;
    }
    if (len == 0) {
        cli_error("verify", "%s: empty text", strcmp(text_path, "-") ? text_path : "stdin");
        goto out;
    }
    if ((rc = load(ref_path, &ro, &ma, &va)) || (rc = load(model_path, &mo, &mb, &vb)))
        goto out;
    rc = CLI_ERR;
    const struct vfy_model_info *ia = vfy_model_info(va), *ib = vfy_model_info(vb);
    if (ia->vocab != ib->vocab) {
        cli_error("verify", "vocabulary sizes differ: %s has %d tokens, %s has %d", ref_path,
                  ia->vocab, model_path, ib->vocab);
        goto out;
    }
    if (vfy_tok_new(&tok, &ma->vocab, &err) != SB_OK) {
        rc = cli_fail("verify", &err);
        goto out;
    }
    if (!ctx_given && ia->n_ctx_train > 0 && (size_t)ia->n_ctx_train < po.n_ctx)
        po.n_ctx = (size_t)ia->n_ctx_train;
    if (ia->n_ctx_train > 0 && po.n_ctx > (size_t)ia->n_ctx_train) {
        rc = cli_usage_error("verify", usage, "--ctx %zu is above the reference model's context (%d)",
                             po.n_ctx, ia->n_ctx_train);
        goto out;
    }
    if (vfy_plan_from_text(&plan, tok, text, len, &po, &err) != SB_OK) {
        cli_error("verify", "%s: %s", strcmp(text_path, "-") ? text_path : "stdin", err.msg);
        goto out;
    }
    if (vfy_ctx_new(&ca, va, po.n_ctx, (size_t)batch, &err) != SB_OK ||
        vfy_ctx_new(&cb, vb, po.n_ctx, (size_t)batch, &err) != SB_OK) {
        rc = cli_fail("verify", &err);
        goto out;
    }
    /* a rank that failed above says so here (at out:), before anyone scores */
    synced = true;
    if (par_agree(SB_OK, &err) != SB_OK) {
        rc = cli_fail("verify", &err);
        goto out;
    }
    struct cli_progress prog;
    cli_progress_init(&prog, "verify", "windows", quiet || json, false);
    struct sb_progress hook = cli_progress_hook(&prog);
    struct vfy_verify_result r;
    memset(&r, 0, sizeof r);
    prog.detail = verify_detail;
    prog.detail_ctx = &r;
    int st = vfy_verify_run(ca, cb, &plan, &hook, &r, &err);
    cli_progress_end(&prog);
    if (st != SB_OK) {
        rc = cli_fail("verify", &err);
        goto out;
    }

    /* the gates (vfy_verify_gates: the library decides, the CLI prints) */
    struct vfy_gates gates = { have_dppl, max_dppl, dppl_rel, max_kld, min_top1 };
    struct vfy_gate_check fail;
    const bool failed = !vfy_verify_gates(&r, &gates, &fail);
    const bool f_dppl = fail.dppl, f_kld = fail.kld, f_top1 = fail.top1;
    cJSON *d = NULL;
    if (json || report) {
        d = cli_json_doc("verify");
        cJSON_AddStringToObject(d, "ref", ref_path);
        cJSON_AddStringToObject(d, "model", model_path);
        cJSON_AddStringToObject(d, "text", text_path);
        cJSON_AddStringToObject(d, "protocol", vfy_protocol_name(po.protocol));
        cJSON_AddNumberToObject(d, "n_ctx", (double)po.n_ctx);
        cJSON_AddNumberToObject(d, "windows", (double)r.ref.n_windows);
        cJSON_AddNumberToObject(d, "tokens_scored", (double)r.ref.n_scored);
        cJSON_AddNumberToObject(d, "ppl_ref", r.ref.ppl);
        cJSON_AddNumberToObject(d, "ppl_ref_stderr", r.ref.ppl_se);
        cJSON_AddNumberToObject(d, "ppl_model", r.model.ppl);
        cJSON_AddNumberToObject(d, "ppl_model_stderr", r.model.ppl_se);
        cJSON_AddNumberToObject(d, "ppl_delta", r.dppl);
        cJSON_AddNumberToObject(d, "ppl_delta_pct", r.dppl_pct);
        cJSON_AddNumberToObject(d, "ln_ppl_ratio", r.ln_ratio);
        cJSON_AddNumberToObject(d, "ln_ppl_ratio_stderr", r.ln_ratio_se);
        cJSON *k = cJSON_AddObjectToObject(d, "kld");
        cJSON_AddNumberToObject(k, "mean", r.kld.mean);
        cJSON_AddNumberToObject(k, "median", r.kld.median);
        cJSON_AddNumberToObject(k, "p99", r.kld.p99);
        cJSON_AddNumberToObject(k, "max", r.kld.max);
        cJSON_AddNumberToObject(d, "top1_agreement", r.kld.top1);
        cJSON_AddNumberToObject(d, "seconds", r.ref.seconds);
        cJSON *g = cJSON_AddObjectToObject(d, "checks");
        if (have_dppl)
            cJSON_AddBoolToObject(g, "ppl_delta", !f_dppl);
        if (max_kld >= 0)
            cJSON_AddBoolToObject(g, "kld", !f_kld);
        if (min_top1 >= 0)
            cJSON_AddBoolToObject(g, "top1", !f_top1);
        /* the thresholds behind "checks", and where they came from */
        cJSON *gt = cJSON_AddObjectToObject(d, "gates");
        cJSON_AddStringToObject(gt, "source", gate_source);
        if (have_dppl)
            cJSON_AddNumberToObject(gt, dppl_rel ? "max_ppl_delta_pct" : "max_ppl_delta", max_dppl);
        if (max_kld >= 0)
            cJSON_AddNumberToObject(gt, "max_kld", max_kld);
        if (min_top1 >= 0)
            cJSON_AddNumberToObject(gt, "min_top1", min_top1);
        cJSON *nf = cJSON_AddObjectToObject(d, "nonfinite_positions");
        cJSON_AddNumberToObject(nf, "ref", (double)r.ref.n_nonfinite);
        cJSON_AddNumberToObject(nf, "model", (double)r.model.n_nonfinite);
        cJSON_AddBoolToObject(d, "pass", !failed && !fail.nonfinite);
    }
    if (json) {
        cli_print_json(report ? cJSON_Duplicate(d, 1) : d);   /* printing frees it */
    } else {
        printf("protocol:      %s, ctx %zu, %zu windows, %zu tokens scored\n",
               vfy_protocol_name(po.protocol), po.n_ctx, r.ref.n_windows, r.ref.n_scored);
        printf("ppl ref:       %.4f +/- %.4f  (%s)\n", r.ref.ppl, r.ref.ppl_se, ref_path);
        printf("ppl model:     %.4f +/- %.4f  (%s)\n", r.model.ppl, r.model.ppl_se, model_path);
        printf("ppl delta:     %+.4f (%+.3f%%)%s\n", r.dppl, r.dppl_pct, f_dppl ? "  FAIL" : "");
        printf("ln ppl ratio:  %+.6f +/- %.6f  (paired: per scored token, model - ref)\n",
               r.ln_ratio, r.ln_ratio_se);
        printf("KLD:           mean %.6g, median %.6g, p99 %.6g, max %.6g%s\n", r.kld.mean,
               r.kld.median, r.kld.p99, r.kld.max, f_kld ? "  FAIL" : "");
        printf("top-1 agree:   %.4f%s\n", r.kld.top1, f_top1 ? "  FAIL" : "");
        if (no_gate) {
            printf("gates:         none (--no-gate): measured only\n");
        } else {
            printf("gates:        ");
            if (have_dppl)
                printf(" ppl delta <= %g%s %s;", max_dppl, dppl_rel ? "%" : "",
                       f_dppl ? "FAIL" : "pass");
            if (max_kld >= 0)
                printf(" KLD mean <= %g %s;", max_kld, f_kld ? "FAIL" : "pass");
            if (min_top1 >= 0)
                printf(" top-1 >= %g %s;", min_top1, f_top1 ? "FAIL" : "pass");
            printf(" (%s)\n", named ? "as given" : "defaults: no threshold given");
        }
    }
    if (report && par_rank() != 0) {
        cJSON_Delete(d);   /* rank 0 writes the page */
    } else if (report) {
        /* the page is written whether the gates passed or not: it shows which failed */
        const cJSON *docs[] = { d };
        const char *names[] = { "this run" };
        int wr = rpt_render(docs, names, 1, report, report_flags, &err);
        cJSON_Delete(d);
        if (wr != SB_OK) {
            rc = cli_fail("verify", &err);
            goto out;
        }
        if (!json && !quiet)
            printf("report:        %s\n", report);
    }
    if (fail.nonfinite) {
        /* a failure with or without a gate: exit 3 under one, an error without;
         * one line naming the model(s) at fault */
        char both[64] = "";
        if (r.ref.n_nonfinite && r.model.n_nonfinite)
            snprintf(both, sizeof both, " (and the reference at %zu)", r.ref.n_nonfinite);
        const bool m_bad = r.model.n_nonfinite != 0;
        if (par_rank() == 0)
            fprintf(stderr, "subbit verify: %s: logits are not finite (NaN or inf) at %zu of "
                    "%zu scored positions%s: no perplexity or KLD%s\n",
                    m_bad ? model_path : ref_path, m_bad ? r.model.n_nonfinite : r.ref.n_nonfinite,
                    plan.n_scored, both, failed ? "; check failed" : "");
        rc = failed ? CLI_CHECK_FAILED : CLI_ERR;
    } else if (failed) {
        if (par_rank() == 0)
            fprintf(stderr, "subbit verify: check failed:%s%s%s\n", f_dppl ? " ppl delta" : "",
                    f_kld ? " kld" : "", f_top1 ? " top-1" : "");
        rc = CLI_CHECK_FAILED;
    } else {
        rc = CLI_OK;
    }
out:
    if (!synced && par_agree(SB_EIO, &err) != SB_OK && par_rank() != 0)
        rc = CLI_ERR;
    vfy_plan_release(&plan);
    vfy_ctx_free(ca);
    vfy_ctx_free(cb);
    vfy_tok_free(tok);
    vfy_model_free(va);
    vfy_model_free(vb);
    fmt_model_free(ma);
    fmt_model_free(mb);
    sb_free(text);
    return rc;
}
