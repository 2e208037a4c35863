/* cmd_convert.c: `subbit convert IN -o OUT --to ENC`. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cvt_convert.h"
#include "fmt_model.h"
#include "fmt_out.h"

static const char usage[] =
    "usage: subbit convert IN -o OUT --to ENC [options]\n"
    "\n"
    "Re-encode a model and/or change its container. The container comes from\n"
    "OUT: *.gguf, *.subbit, *.safetensors, or a folder (Hugging Face layout).\n"
    "ENC: f32 f16 bf16 int8 q8_0 q4_0 tq1_0 tq2_0 tern sub1 sub1-qmoe, or 'keep'.\n"
    "\n"
    "options:\n"
    "  -o, --output OUT        where to write (required)\n"
    "      --to ENC            target encoding (default: keep, container change only)\n"
    "      --keep GLOB         tensors matching GLOB stay as stored (repeatable)\n"
    "      --rule GLOB=ENC     tensors matching GLOB get ENC (repeatable; first match wins)\n"
    "      --fallback ENC      for tensors that cannot take ENC: 1-D, row not a block\n"
    "                          multiple, non-Linear for int8 (default f16)\n"
    "      --experts-only      tern/sub1/sub1-qmoe: only expert matrices take ENC\n"
    "      --dense-to ENC      what the other matrices get then (default bf16)\n"
    "      --group G           int8: one scale per G elements of a row (default: per row)\n"
    "      --scale-dtype T     int8 scales: f32 (default) or f16\n"
    "      --shard-size SIZE   safetensors folder output in shards of SIZE (e.g. 2G)\n"
    "      --config FILE       config.json for a lone .safetensors input\n"
    "      --tokenizer FILE    llama2.c tokenizer.bin (default: beside the model)\n"
    "      --dry-run           print every decision and the output size; write nothing\n"
    "      --stats             per-tensor error: RMSE, SQNR dB, max abs error\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "  -f, --force             replace OUT if it exists\n"
    "  -q, --quiet             no progress bar\n"
    "      --json              one JSON document on stdout\n"
    "  -h, --help              this text\n";

static int parse_enc(const char *s, const char *opt, int *out)
{
    if (!strcmp(s, "keep")) {
        *out = -1;
        return 1;
    }
    int d = sb_dtype_from_name(s);
    if (d < 0) {
        fprintf(stderr, "subbit convert: %s: unknown encoding '%s'\n", opt, s);
        return 0;
    }
    *out = d;
    return 1;
}

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
    enum { O_TO = 256, O_KEEP, O_RULE, O_FALLBACK, O_EXPERTS, O_DENSE, O_GROUP, O_SCALE, O_SHARD,
           O_CONFIG, O_TOK, O_DRY, O_STATS, O_JSON, O_PROGRESS, O_NOPROGRESS };
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "to", required_argument, 0, O_TO },
        { "keep", required_argument, 0, O_KEEP }, { "rule", required_argument, 0, O_RULE },
        { "fallback", required_argument, 0, O_FALLBACK },
        { "experts-only", no_argument, 0, O_EXPERTS },
        { "dense-to", required_argument, 0, O_DENSE }, { "group", required_argument, 0, O_GROUP },
        { "scale-dtype", required_argument, 0, O_SCALE },
        { "shard-size", required_argument, 0, O_SHARD },
        { "config", required_argument, 0, O_CONFIG }, { "tokenizer", required_argument, 0, O_TOK },
        { "dry-run", no_argument, 0, O_DRY }, { "stats", no_argument, 0, O_STATS },
        { "threads", required_argument, 0, 't' }, { "force", no_argument, 0, 'f' },
        { "quiet", no_argument, 0, 'q' }, { "json", no_argument, 0, O_JSON },
        { "progress", no_argument, 0, O_PROGRESS }, { "no-progress", no_argument, 0, O_NOPROGRESS },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    struct cvt_opts co;
    cvt_opts_init(&co);
    struct fmt_open_opts oo = { 0 };
    const char *out = NULL;
    bool json = false, quiet = false;
    struct cvt_rule *rules = NULL;
    size_t n_rules = 0;
    long threads = 0, group = 0;
    int c, enc, rc = CLI_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:t:fqh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_TO:
            if (!parse_enc(optarg, "--to", &co.to))
                goto usage_fail;
            break;
        case O_KEEP:
        case O_RULE: {
            struct cvt_rule *nr = realloc(rules, (n_rules + 1) * sizeof *rules);
            if (!nr)
                goto usage_fail;
            rules = nr;
            rules[n_rules].glob = optarg;
            rules[n_rules].to = -1;
            if (c == O_RULE) {
                char *eq = strrchr(optarg, '=');
                if (!eq) {
                    fprintf(stderr, "subbit convert: --rule expects GLOB=ENC, got '%s'\n", optarg);
                    goto usage_fail;
                }
                *eq = '\0';
                if (!parse_enc(eq + 1, "--rule", &rules[n_rules].to))
                    goto usage_fail;
            }
            n_rules++;
            break;
        }
        case O_FALLBACK:
        case O_DENSE:
            if (!parse_enc(optarg, c == O_FALLBACK ? "--fallback" : "--dense-to", &enc) || enc < 0)
                goto usage_fail;
            if (c == O_FALLBACK)
                co.fallback = (enum sb_dtype)enc;
            else
                co.dense_to = (enum sb_dtype)enc;
            break;
        case O_EXPERTS: co.experts_only = true; break;
        case O_GROUP:
            if (!cli_parse_long("convert", "--group", optarg, 1, 1L << 30, &group))
                goto usage_fail;
            co.qp.group = (uint32_t)group;
            break;
        case O_SCALE:
            if (!strcmp(optarg, "f16"))
                co.qp.scale_dtype = SB_DTYPE_F16;
            else if (!strcmp(optarg, "f32"))
                co.qp.scale_dtype = SB_DTYPE_F32;
            else {
                fprintf(stderr, "subbit convert: --scale-dtype expects f32 or f16\n");
                goto usage_fail;
            }
            break;
        case O_SHARD:
            if (!cli_parse_size("convert", "--shard-size", optarg, &co.shard_size) ||
                co.shard_size == 0)
                goto usage_fail;
            break;
        case O_CONFIG: oo.config_path = optarg; break;
        case O_TOK: oo.tokenizer_path = optarg; break;
        case O_DRY: co.dry_run = true; break;
        case O_STATS: co.stats = true; break;
        case 't':
            if (!cli_parse_long("convert", "--threads", optarg, 1, 1024, &threads))
                goto usage_fail;
            break;
        case 'f': co.out_flags |= FMT_OUT_FORCE; break;
        case 'q': quiet = true; break;
        case O_JSON: json = true; break;
        case O_PROGRESS: quiet = false; break;
        case O_NOPROGRESS: quiet = true; break;
        case 'h': fputs(usage, stdout); free(rules); return CLI_OK;
        default: goto usage_fail;
        }
    }
    if (optind + 1 != argc) {
        free(rules);
        return cli_usage_error("convert", usage, "expected one input model");
    }
    if (!out) {
        free(rules);
        return cli_usage_error("convert", usage, "-o/--output is required");
    }
    co.rules = rules;
    co.n_rules = n_rules;
    cli_set_threads((int)threads);

    const char *in = argv[optind];
    struct sb_err err = { 0 };
    struct fmt_model *m = NULL;
    struct cvt_report *rep = NULL;
    if (fmt_model_open(&m, in, &oo, &err) != SB_OK) {
        rc = cli_fail("convert", &err);
        free(rules);
        return rc;
    }
    struct cli_progress pg;
    cli_progress_init(&pg, "convert", "convert", quiet || json || co.dry_run, true);
    co.progress = cli_progress_hook(&pg);
    int r = cvt_convert(m, out, &co, &rep, &err);
    cli_progress_end(&pg);
    if (r != SB_OK) {
        rc = cli_fail("convert", &err);
        goto done;
    }
    char b1[32], b2[32], sh[96];
    bool show_rows = co.dry_run || co.stats;
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "input", in);
        cJSON_AddStringToObject(doc, "output", out);
        cJSON_AddStringToObject(doc, "container", fmt_container_name(rep->container));
        cJSON_AddBoolToObject(doc, "dry_run", co.dry_run);
        cJSON *arr = cJSON_AddArrayToObject(doc, "tensors");
        for (size_t i = 0; i < rep->n; i++) {
            const struct cvt_decision *d = &rep->d[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", d->name);
            cJSON *s = cJSON_AddArrayToObject(o, "shape");
            for (int k = 0; k < d->ndim; k++)
                cJSON_AddItemToArray(s, cJSON_CreateNumber((double)d->shape[k]));
            cJSON_AddStringToObject(o, "from", sb_dtype_name(d->from));
            cJSON_AddStringToObject(o, "to", sb_dtype_name(d->to));
            cJSON_AddStringToObject(o, "reason", d->reason);
            cJSON_AddNumberToObject(o, "in_bytes", (double)d->in_bytes);
            cJSON_AddNumberToObject(o, "out_bytes", (double)d->out_bytes);
            if (d->has_stats) {
                cJSON_AddNumberToObject(o, "rmse", d->rmse);
                if (d->sqnr_db < 1e300)
                    cJSON_AddNumberToObject(o, "sqnr_db", d->sqnr_db);
                else
                    cJSON_AddNullToObject(o, "sqnr_db"); /* exact: infinite SQNR */
                cJSON_AddNumberToObject(o, "max_abs_err", d->max_abs);
            }
            cJSON_AddItemToArray(arr, o);
        }
        cJSON *tot = cJSON_AddObjectToObject(doc, "totals");
        cJSON_AddNumberToObject(tot, "tensors", (double)rep->n);
        cJSON_AddNumberToObject(tot, "params", (double)rep->params);
        cJSON_AddNumberToObject(tot, "in_bytes", (double)rep->in_bytes);
        cJSON_AddNumberToObject(tot, "out_bytes", (double)rep->out_bytes);
        cJSON_AddNumberToObject(tot, "bits_per_param",
                                rep->params ? 8.0 * (double)rep->out_bytes / (double)rep->params : 0);
        cJSON_AddNumberToObject(tot, "seconds", rep->seconds);
        cJSON_AddNumberToObject(tot, "peak_rss_bytes", (double)cli_peak_rss());
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
    free(rules);
    return rc;
usage_fail:
    free(rules);
    fputs(usage, stderr);
    return CLI_USAGE;
}
