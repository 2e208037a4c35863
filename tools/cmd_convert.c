/* cmd_convert.c: `subbit convert IN -o OUT --to ENC`. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_conv.h"
#include "cvt_convert.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "par_comm.h"

static const char usage[] =
    "usage: subbit convert IN -o OUT --to ENC [options]\n"
    "\n"
    "Re-encode a model and/or change its container. The container comes from\n"
    "OUT: *.gguf, *.subbit, *.safetensors, or a folder (Hugging Face layout).\n"
    "ENC: f32 f16 bf16 int8 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K\n"
    "iq4_nl iq4_xs tq1_0 tq2_0 tern sub1 sub1-qmoe, or 'keep'; or llama-quantize's\n"
    "mixes (GGUF output): Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K\n"
    "IQ4_NL IQ4_XS, per-tensor types as docs/ggml-mixes.md describes.\n"
    "\n"
    "options:\n"
    CLI_CONV_USAGE
    "      --dry-run           print every decision and the output size; write nothing\n"
    "      --stats             per-tensor error: RMSE, SQNR dB, max abs error\n"
    "      --max-memory SIZE   hold at most SIZE resident (e.g. 512M): row blocks sized to\n"
    "                          it; a tensor that cannot fit fails before anything is written\n"
    "  -h, --help              this text\n";

static void shape_str(const struct cvt_decision *d, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < d->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%" PRId64, i ? ", " : "", d->shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

int cmd_convert(int argc, char **argv)
{
    enum { O_DRY = 256, O_STATS, O_MAXMEM };
    static const struct option opts[] = {
        CLI_CONV_LONGOPTS,
        { "dry-run", no_argument, 0, O_DRY }, { "stats", no_argument, 0, O_STATS },
        { "max-memory", required_argument, 0, O_MAXMEM },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    struct cvt_opts co;
    cvt_opts_init(&co);
    struct fmt_open_opts oo = { 0 };
    struct cli_conv cc = { 0 };
    int c, rc = CLI_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":" CLI_CONV_SHORT "h", opts, NULL)) != -1) {
        int crc;
        if (cli_conv_option("convert", c, optarg, &cc, &co, &oo, &crc)) {
            if (crc != CLI_OK)
                goto usage_fail;
            continue;
        }
        switch (c) {
        case O_DRY: co.dry_run = true; break;
        case O_STATS: co.stats = true; break;
        case O_MAXMEM:
            if (!cli_parse_size("convert", "--max-memory", optarg, &co.max_memory))
                goto usage_fail;
            break;
        case 'h': fputs(usage, stdout); cli_conv_release(&cc); return CLI_OK;
        default: cli_conv_release(&cc); return cli_getopt_error("convert", c, argc, argv);
        }
    }
    cli_set_quiet(cc.quiet);
    if ((rc = cli_conv_check("convert", usage, &cc, argc)) != CLI_OK)
        return rc;
    const char *out = cc.out;
    const bool json = cc.json, quiet = cc.quiet;
    cli_set_threads((int)cc.threads);

    const char *in = argv[optind];
    struct sb_err err = { 0 };
    struct fmt_model *m = NULL;
    struct cvt_report *rep = NULL;
    int r = fmt_model_open(&m, in, &oo, &err);
    if (r == SB_OK && par_fault("open"))   /* a rank that cannot read what the others can */
        r = sb_err_set(&err, SB_EIO, "%s: fault injected (SUBBIT_PAR_FAULT)", in);
    if (r != SB_OK) {
        rc = cli_fail_job("convert", &err);
        fmt_model_free(m);
        cli_conv_release(&cc);
        return rc;
    }
    struct cli_progress pg;
    cli_progress_init(&pg, "convert", "convert", quiet || json || co.dry_run, true);
    co.progress = cli_progress_hook(&pg);
    r = cvt_convert(m, out, &co, &rep, &err);
    cli_progress_end(&pg);
    if (r != SB_OK) {
        rc = cli_fail("convert", &err);
        goto done;
    }
    cli_conv_tokenizer_warn("convert", in, rep);
    char b1[32], b2[32], sh[96];
    bool show_rows = co.dry_run || co.stats;
    if (json) {
        const uint64_t peak = cli_peak_rss_job();   /* every rank: the job's largest */
        cJSON *doc = cli_json_doc("convert");
        cJSON_AddStringToObject(doc, "model", in);
        cJSON_AddStringToObject(doc, "input", in);
        cJSON_AddStringToObject(doc, "output", out);
        cJSON_AddStringToObject(doc, "container", fmt_container_name(rep->container));
        cJSON_AddBoolToObject(doc, "dry_run", co.dry_run);
        cJSON_AddBoolToObject(doc, "tokenizer_dropped", rep->tokenizer_dropped);
        cJSON *tot = cli_conv_report_json(doc, rep);
        cJSON_AddNumberToObject(tot, "seconds", rep->seconds);
        cJSON_AddNumberToObject(tot, "peak_rss_bytes", (double)peak);
        cJSON_AddNumberToObject(doc, "seconds", rep->seconds);
        cJSON_AddNumberToObject(doc, "peak_rss_bytes", (double)peak);
        cli_print_json(doc);
    } else {
        if (show_rows) {
            printf("%-52s %-9s %-9s %-18s %12s %12s  %s\n", "tensor", "from", "to", "shape",
                   "in bytes", "out bytes", co.stats ? "rmse / sqnr dB / max abs" : "why");
            for (size_t i = 0; i < rep->n; i++) {
                const struct cvt_decision *d = &rep->d[i];
                shape_str(d, sh, sizeof sh);
                printf("%-52s %-9s %-9s %-18s %12" PRIu64 " %12" PRIu64 "  ", d->name,
                       sb_dtype_name(d->from), sb_dtype_name(d->to), sh, d->in_bytes,
                       d->out_bytes);
                if (d->has_stats)
                    printf("%.3g / %.2f / %.3g\n", d->rmse, d->sqnr_db, d->max_abs);
                else
                    printf("%s\n", d->reason);
            }
        }
        printf("%s %s (%s): %zu tensors, %" PRIu64 " params, %s -> %s (%.3f bits/param)%s",
               co.dry_run ? "would write" : "wrote", out, fmt_container_name(rep->container), rep->n,
               rep->params, cli_fmt_bytes(rep->in_bytes, b1, sizeof b1),
               cli_fmt_bytes(rep->out_bytes, b2, sizeof b2),
               rep->params ? 8.0 * (double)rep->out_bytes / (double)rep->params : 0.0,
               co.dry_run ? " (variable-length sizes estimated at 2 bits/weight)" : "");
        if (!co.dry_run)
            printf(" in %.2f s", rep->seconds);
        printf("\n");
    }
    rc = CLI_OK;
done:
    cvt_report_free(rep);
    fmt_model_free(m);
    cli_conv_release(&cc);
    return rc;
usage_fail: /* the one-line message is out */
    cli_conv_release(&cc);
    return CLI_USAGE;
}
