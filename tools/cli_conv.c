/* cli_conv.c: the output options `convert` and `quant` share (cli_conv.h). */
#include "cli_conv.h"
#include "fmt_out.h"
#include "vfy_mem.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cli_parse_enc(const char *cmd, const char *opt, const char *s, int *out)
{
    if (!strcasecmp(s, "keep")) {
        *out = -1;
        return true;
    }
    int d = sb_dtype_from_name(s);
    if (d < 0) {
        cli_usage_error(cmd, NULL, "%s: unknown encoding '%s'", opt, s);
        return false;
    }
    *out = d;
    return true;
}

/* one more of convert's rules (cvt_rule); false when out of memory */
static bool rule_add(struct cli_conv *cc, struct cvt_opts *co, const char *glob, int to, int part)
{
    struct cvt_rule *nr = realloc(cc->rules, (cc->n_rules + 1) * sizeof *cc->rules);
    if (!nr)
        return false;
    cc->rules = nr;
    nr[cc->n_rules++] = (struct cvt_rule){ glob, to, part };
    co->rules = cc->rules;
    co->n_rules = cc->n_rules;
    return true;
}

bool cli_conv_option(const char *cmd, int c, char *arg, struct cli_conv *cc, struct cvt_opts *co,
                     struct fmt_open_opts *oo, int *rc)
{
    long group;
    int enc;
    *rc = CLI_OK;
    switch (c) {
    case CLI_O_TO:
        /* llama-quantize's mixes by their upper-case names first: Q4_K_M, ...,
         * Q6_K, IQ4_NL (q6_K, iq4_nl: every matrix that one encoding) */
        if ((co->mix = cvt_mix_from_name(arg))) {
            co->to = -1;
            return true;
        }
        if (!cli_parse_enc(cmd, "--to", arg, &co->to))
            *rc = CLI_USAGE;
        return true;
    case CLI_O_KEEP:
        /* one syntax with mem's: a comma-separated list (repeatable), each a
         * component mem reports or a glob over the output tensor names */
        for (char *save = NULL, *t = strtok_r(arg, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (strcmp(t, "none") && !rule_add(cc, co, t, -1, vfy_mem_part_from_word(t) + 1)) {
                *rc = cli_error(cmd, "out of memory");
                return true;
            }
        return true;
    case CLI_O_RULE: {
        char *eq = strrchr(arg, '=');
        if (!eq) {
            cli_usage_error(cmd, NULL, "--rule expects GLOB=ENC, got '%s'", arg);
            *rc = CLI_USAGE;
            return true;
        }
        *eq = '\0';
        int to;
        if (!cli_parse_enc(cmd, "--rule", eq + 1, &to))
            *rc = CLI_USAGE;
        else if (!rule_add(cc, co, arg, to, 0))
            *rc = cli_error(cmd, "out of memory");
        return true;
    }
    case CLI_O_FALLBACK:
    case CLI_O_DENSE:
        if (!cli_parse_enc(cmd, c == CLI_O_FALLBACK ? "--fallback" : "--dense-to", arg, &enc) ||
            enc < 0) {
            *rc = CLI_USAGE;
            return true;
        }
        if (c == CLI_O_FALLBACK)
            co->fallback = (enum sb_dtype)enc;
        else
            co->dense_to = (enum sb_dtype)enc;
        return true;
    case CLI_O_EXPERTS: co->experts_only = true; return true;
    case CLI_O_REQUANT: co->allow_requantize = true; return true;
    case CLI_O_NONFINITE: co->allow_nonfinite = true; return true;
    case CLI_O_GROUP:
        if (!cli_parse_long(cmd, "--group", arg, 1, 1L << 30, &group))
            *rc = CLI_USAGE;
        co->qp.group = (uint32_t)group;
        return true;
    case CLI_O_SCALE:
        if (!strcmp(arg, "f16"))
            co->qp.scale_dtype = SB_DTYPE_F16;
        else if (!strcmp(arg, "f32"))
            co->qp.scale_dtype = SB_DTYPE_F32;
        else {
            cli_usage_error(cmd, NULL, "--scale-dtype expects f32 or f16, got '%s'", arg);
            *rc = CLI_USAGE;
        }
        return true;
    case CLI_O_SHARD:
        if (!cli_parse_size(cmd, "--shard-size", arg, &co->shard_size) || co->shard_size == 0)
            *rc = CLI_USAGE;
        return true;
    case 'o': cc->out = arg; return true;
    case 't':
        if (!cli_parse_long(cmd, "--threads", arg, 1, CLI_MAX_THREADS, &cc->threads))
            *rc = CLI_USAGE;
        return true;
    case 'f': co->out_flags |= FMT_OUT_FORCE; return true;
    case 'q': case CLI_O_NOPROGRESS: cc->quiet = true; return true;
    case CLI_O_PROGRESS: cc->quiet = false; return true;
    case CLI_O_JSON: cc->json = true; return true;
    case CLI_O_CONFIG: oo->config_path = arg; return true;
    case CLI_O_TOK: oo->tokenizer_path = arg; return true;
    default: return false;
    }
}

void cli_conv_release(struct cli_conv *cc)
{
    free(cc->rules);
    cc->rules = NULL;
    cc->n_rules = 0;
}

int cli_conv_check(const char *cmd, const char *usage, struct cli_conv *cc, int argc)
{
    const char *why = optind + 1 != argc ? "expected one input model"
                      : !cc->out ? "-o/--output is required" : NULL;
    struct sb_err err = { 0 };
    enum fmt_container cont;
    if (!why && fmt_container_for_output(cc->out, &cont, &err) != SB_OK)
        why = err.msg;
    if (!why)
        return CLI_OK;
    cli_conv_release(cc);
    return cli_usage_error(cmd, usage, "%s", why);
}

cJSON *cli_conv_report_json(cJSON *doc, const struct cvt_report *rep)
{
    cJSON *arr = cJSON_AddArrayToObject(doc, "tensors");
    for (size_t i = 0; i < rep->n; i++) {
        const struct cvt_decision *d = &rep->d[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", d->name);
        cJSON *s = cJSON_AddArrayToObject(o, "shape");
        double n = 1;
        for (int k = 0; k < d->ndim; k++) {
            cJSON_AddItemToArray(s, cJSON_CreateNumber((double)d->shape[k]));
            n *= (double)d->shape[k];
        }
        cJSON_AddStringToObject(o, "from", sb_dtype_name(d->from));
        cJSON_AddStringToObject(o, "to", sb_dtype_name(d->to));
        cJSON_AddStringToObject(o, "reason", d->reason);
        cJSON_AddNumberToObject(o, "in_bytes", (double)d->in_bytes);
        cJSON_AddNumberToObject(o, "out_bytes", (double)d->out_bytes);
        cJSON_AddNumberToObject(o, "bits_per_weight", n > 0 ? 8.0 * (double)d->out_bytes / n : 0);
        if (d->has_stats) {
            cJSON_AddNumberToObject(o, "rmse", d->rmse);
            if (d->sqnr_db < 1e300)
                cJSON_AddNumberToObject(o, "sqnr_db", d->sqnr_db);
            else
                cJSON_AddNullToObject(o, "sqnr_db"); /* exact: infinite SQNR */
            cJSON_AddNumberToObject(o, "max_abs_err", d->max_abs);
            /* ternary values: how many are 0 (QMoE's sparsity; what sub1 codes) */
            if (sb_dtype_get(d->to)->flags & SB_DT_TERNARY || d->to == SB_DTYPE_TQ1_0 ||
                d->to == SB_DTYPE_TQ2_0)
                cJSON_AddNumberToObject(o, "zero_fraction", d->zero_fraction);
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
    return tot;
}

void cli_conv_tokenizer_warn(const char *cmd, const char *in, const struct cvt_report *rep)
{
    if (rep->tokenizer_note[0])
        cli_warn(cmd, "%s: %s", in, rep->tokenizer_note);
}
