/* cmd_quant.c: `subbit quant IN -o OUT --to ENC --calib FILE`: calibrated
 * (GPTQ) quantization, QMoE's way for MoE experts (convert/cvt_quant.h). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.h"
#include "cli_conv.h"
#include "cvt_quant.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "par_comm.h"
#include "rpt_report.h"
#include "sb_alloc.h"
#include "vfy_model.h"
#include "vfy_ppl.h"
#include "vfy_tok.h"

static const char usage[] =
    "usage: subbit quant IN -o OUT --to ENC --calib FILE [options]\n"
    "\n"
    "Calibrated quantization: GPTQ (Frantar et al. 2023) layer by layer, each layer\n"
    "calibrated on the outputs of the already quantized layers before it, each MoE\n"
    "expert on the tokens routed to it (QMoE). The container comes from OUT, as\n"
    "for convert. ENC: int8 q8_0 q4_0 tq1_0 tq2_0 tern sub1 sub1-qmoe (sub1 and\n"
    "sub1-qmoe code GPTQ's ternary symbols); float targets are cast, as convert.\n"
    "\n"
    "options:\n"
    CLI_CONV_USAGE
    "      --calib FILE        calibration text, tokenized by the model's tokenizer ('-':\n"
    "                          standard input)\n"
    "      --calib-tokens-file FILE  calibration token ids instead of --calib\n"
    "      --calib-tokens N    calibration tokens to use (default 131072)\n"
    "      --calib-ctx N       window length; windows as the chunks protocol: BOS, then\n"
    "                          the text's next N-1 tokens (default 512)\n"
    "      --method M          gptq (default) or rtn (round to nearest, for comparison)\n"
    "      --damp X            relative dampening of the Hessian (default 0.01; QMoE's\n"
    "                          0.1 gives ternary experts fewer bits)\n"
    "      --block N           GPTQ lazy-batch width (default 128)\n"
    "      --act-order         quantize columns by descending Hessian diagonal\n"
    "      --imatrix-scales    q4_0: block scales by ggml's imatrix rule, diag(H) weights\n"
    "      --act-fit           q8_0/q4_0: fit the weights to the 8-bit activations\n"
    "                          their kernel meets (needs 32 tokens a column)\n"
    "      --zero-band T       tern: |w| < T * level rounds to 0 (default 0.5, QMoE's)\n"
    "      --ec-lambda X       tern: entropy-constrained rounding, weighing each symbol's\n"
    "                          code length against its error (0 = off; try 0.05 .. 0.1)\n"
    "      --ec-p0 P           tern: zero probability the code lengths assume (default 0.885)\n"
    "      --min-expert-tokens N  experts routed fewer tokens are rounded to nearest\n"
    "                          (default 1: only experts that got none)\n"
    "      --report FILE       also write the result as an HTML page (subbit report);\n"
    "                          -f replaces it too\n"
    "      --max-memory SIZE   hold at most SIZE resident (e.g. 512M): finished matrices,\n"
    "                          then calibration activations spill to files; a cap\n"
    "                          below one layer's need fails before any work\n"
    "      --scratch DIR       where spilled data goes (default: the output's folder;\n"
    "                          unlinked at once)\n"
    "  -h, --help              this text\n";

enum { O_CALIB = 256, O_CALIB_IDS, O_CALIB_TOKENS, O_CALIB_CTX, O_METHOD, O_DAMP, O_BLOCK,
       O_ACT, O_IMX, O_FIT, O_ZB, O_ECL, O_ECP, O_MINTOK, O_REPORT, O_MAXMEM, O_SCRATCH };

static cJSON *report_json(const char *in, const char *out, const char *calib, bool calib_ids,
                          const struct cvt_quant_opts *qo, const struct cvt_quant_report *R,
                          size_t calib_ctx, int threads)
{
    const struct cvt_report *C = R->conv;
    cJSON *doc = cli_json_doc("quant");
    cJSON_AddStringToObject(doc, "model", in);
    cJSON_AddStringToObject(doc, "input", in);
    cJSON_AddStringToObject(doc, "output", out);
    cJSON_AddStringToObject(doc, "container", fmt_container_name(C->container));
    cJSON_AddBoolToObject(doc, "tokenizer_dropped", C->tokenizer_dropped);
    cJSON_AddStringToObject(doc, "method", qo->method == CVT_QUANT_GPTQ ? "gptq" : "rtn");
    cJSON_AddStringToObject(doc, "to", qo->conv.to >= 0 ? sb_dtype_name((enum sb_dtype)qo->conv.to)
                                                        : "keep");
    cJSON *cal = cJSON_AddObjectToObject(doc, calib_ids ? "calib_ids" : "calib");
    cJSON_AddStringToObject(cal, "file", calib);
    cJSON_AddNumberToObject(cal, "tokens", (double)R->calib_tokens);
    cJSON_AddNumberToObject(cal, "ctx", (double)calib_ctx);
    cJSON_AddNumberToObject(cal, "windows", (double)R->calib_windows);
    cJSON *g = cJSON_AddObjectToObject(doc, "gptq");
    cJSON_AddNumberToObject(g, "damp", qo->gptq.damp);
    cJSON_AddNumberToObject(g, "block", (double)qo->gptq.block);
    cJSON_AddBoolToObject(g, "act_order", qo->gptq.act_order);
    cJSON_AddBoolToObject(g, "act_fit", qo->act_fit);
    cJSON_AddBoolToObject(g, "imatrix_scales", qo->gptq.imatrix_scales);
    cJSON_AddNumberToObject(g, "zero_band", qo->gptq.zero_band);
    cJSON_AddNumberToObject(g, "ec_lambda", qo->gptq.ec_lambda);
    cJSON_AddNumberToObject(g, "ec_p0", qo->gptq.ec_p0);
    cJSON_AddNumberToObject(g, "min_expert_tokens", (double)qo->min_expert_tokens);
    cJSON *layers = cJSON_AddArrayToObject(doc, "layers");
    for (int l = 0; l < R->n_layers; l++) {
        cJSON *L = cJSON_CreateObject();
        cJSON_AddNumberToObject(L, "layer", l);
        cJSON_AddNumberToObject(L, "seconds", R->layer_seconds[l]);
        double e = 0, r = 0, er = 0;
        for (size_t i = 0; i < R->n_m; i++)
            if (R->m[i].layer == l && R->m[i].ref > 0) {
                e += R->m[i].err / R->m[i].ref;
                r += 1;
                er += R->m[i].err_rtn >= 0 ? R->m[i].err_rtn / R->m[i].ref : 0;
            }
        if (r > 0) {
            cJSON_AddNumberToObject(L, "mean_rel_err", e / r);
            cJSON_AddNumberToObject(L, "mean_rel_err_rtn", er / r);
        }
        if (R->n_experts) {
            cJSON *ex = cJSON_AddArrayToObject(L, "experts");
            for (int x = 0; x < R->n_experts; x++) {
                const uint64_t n = R->expert_tokens[(size_t)l * (size_t)R->n_experts + (size_t)x];
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "expert", x);
                cJSON_AddNumberToObject(o, "tokens", (double)n);
                bool fb = false;
                for (size_t i = 0; i < R->n_m; i++)
                    fb |= R->m[i].layer == l && R->m[i].expert == x && !R->m[i].gptq;
                cJSON_AddBoolToObject(o, "fallback", fb && qo->method == CVT_QUANT_GPTQ);
                cJSON_AddItemToArray(ex, o);
            }
        }
        cJSON_AddItemToArray(layers, L);
    }
    cJSON *mats = cJSON_AddArrayToObject(doc, "matrices");
    for (size_t i = 0; i < R->n_m; i++) {
        const struct cvt_qmat *m = &R->m[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddNumberToObject(o, "layer", m->layer);
        cJSON_AddStringToObject(o, "role", cvt_quant_role_name(m->role));
        if (m->expert >= 0)
            cJSON_AddNumberToObject(o, "expert", m->expert);
        cJSON_AddNumberToObject(o, "rows", (double)m->rows);
        cJSON_AddNumberToObject(o, "cols", (double)m->cols);
        cJSON_AddNumberToObject(o, "row0", (double)m->row0);
        cJSON_AddStringToObject(o, "grid", sb_dtype_name(m->enc));
        cJSON_AddStringToObject(o, "method", m->gptq ? "gptq" : "rtn");
        if (!m->gptq)
            cJSON_AddStringToObject(o, "why", m->why);
        cJSON_AddNumberToObject(o, "tokens", (double)m->tokens);
        if (m->ref > 0) {
            cJSON_AddNumberToObject(o, "rel_err", m->err / m->ref);
            if (m->err_rtn >= 0)
                cJSON_AddNumberToObject(o, "rel_err_rtn", m->err_rtn / m->ref);
        }
        cJSON_AddNumberToObject(o, "rmse", m->rmse);
        if (isfinite(m->sqnr_db))
            cJSON_AddNumberToObject(o, "sqnr_db", m->sqnr_db);
        cJSON_AddNumberToObject(o, "zero_fraction", m->zero_frac);
        if (m->gptq) {
            cJSON_AddNumberToObject(o, "damp", m->damp);
            cJSON_AddBoolToObject(o, "act_fit", m->act_fit);
        }
        cJSON_AddNumberToObject(o, "seconds", m->seconds);
        cJSON_AddItemToArray(mats, o);
    }
    const uint64_t peak = cli_peak_rss_job();   /* every rank: the job's largest */
    cJSON *tot = cli_conv_report_json(doc, C);
    cJSON_AddNumberToObject(tot, "seconds_calibration", R->seconds_calib);
    cJSON_AddNumberToObject(tot, "seconds_write", R->seconds_write);
    cJSON_AddNumberToObject(tot, "seconds", R->seconds_calib + R->seconds_write);
    cJSON_AddNumberToObject(tot, "threads", threads);
    cJSON_AddNumberToObject(tot, "peak_rss_bytes", (double)peak);
    cJSON *mem = cJSON_AddObjectToObject(doc, "memory");
    cJSON_AddNumberToObject(mem, "max_memory", (double)qo->conv.max_memory);
    cJSON_AddNumberToObject(mem, "predicted_peak_bytes", (double)R->mem.peak);
    cJSON_AddNumberToObject(mem, "activation_bytes", (double)R->mem.act);
    cJSON_AddBoolToObject(mem, "spilled", R->mem.spill);
    cJSON_AddNumberToObject(mem, "quantized_bytes", (double)R->mem.held);
    cJSON_AddBoolToObject(mem, "quantized_spilled", R->mem.spill_held);
    cJSON_AddNumberToObject(doc, "seconds", R->seconds_calib + R->seconds_write);
    cJSON_AddNumberToObject(doc, "peak_rss_bytes", (double)peak);
    return doc;
}

static void report_text(const char *out, const struct cvt_quant_opts *qo,
                        const struct cvt_quant_report *R, int threads)
{
    const struct cvt_report *C = R->conv;
    size_t n_g = 0, n_r = 0;
    double e = 0, er = 0, z = 0, zw = 0;
    size_t ne = 0;
    for (size_t i = 0; i < R->n_m; i++) {
        const struct cvt_qmat *m = &R->m[i];
        n_g += m->gptq;
        n_r += !m->gptq;
        if (m->ref > 0 && m->err_rtn >= 0) {
            e += m->err / m->ref;
            er += m->err_rtn / m->ref;
            ne++;
        }
        z += m->zero_frac * (double)(m->rows * m->cols);
        zw += (double)(m->rows * m->cols);
    }
    printf("calibration:   %zu tokens in %zu windows\n", R->calib_tokens, R->calib_windows);
    printf("matrices:      %zu quantized: %zu with GPTQ, %zu rounded to nearest\n", R->n_m, n_g,
           n_r);
    for (size_t i = 0; i < R->n_m; i++)
        if (!R->m[i].gptq && qo->method == CVT_QUANT_GPTQ)
            printf("  rounded to nearest: %s (rows %zu..%zu): %s\n", R->m[i].name, R->m[i].row0,
                   R->m[i].row0 + R->m[i].rows - 1, R->m[i].why);
    if (ne)
        printf("output error:  mean relative %.5f (round to nearest: %.5f)\n", e / (double)ne,
               er / (double)ne);
    if (zw > 0)
        printf("zero weights:  %.2f %% of the quantized matrices\n", 100.0 * z / zw);
    size_t n8 = 0, nf = 0;
    for (size_t i = 0; i < R->n_m; i++) {
        n8 += R->m[i].gptq && (R->m[i].enc == SB_DTYPE_Q8_0 || R->m[i].enc == SB_DTYPE_Q4_0);
        nf += R->m[i].act_fit;
    }
    if (n8 && qo->act_fit)
        printf("act fit:       %zu of %zu q8_0/q4_0 GPTQ matrices fitted to 8-bit activations "
               "(the others saw fewer than %u tokens a column)\n", nf, n8, CVT_QUANT_FIT_TOKENS);
    char b1[32], b2[32];
    printf("wrote %s (%s): %zu tensors, %" PRIu64 " params, %s -> %s (%.3f bits/param) in %.2f s "
           "(%.2f s calibration, %d threads)\n",
           out, fmt_container_name(C->container), C->n, C->params,
           cli_fmt_bytes(C->in_bytes, b1, sizeof b1), cli_fmt_bytes(C->out_bytes, b2, sizeof b2),
           C->params ? 8.0 * (double)C->out_bytes / (double)C->params : 0.0,
           R->seconds_calib + R->seconds_write, R->seconds_calib, threads);
}

/* the calibration input named before its problem */
static int calib_fail(const char *path, struct sb_err *err)
{
    char msg[sizeof err->msg];
    const int code = err->code ? err->code : SB_EINVAL;
    snprintf(msg, sizeof msg, "%s", err->msg);
    sb_err_clear(err);
    sb_err_set(err, code, "%s: %s", path, msg);
    return cli_fail_job("quant", err);
}

int cmd_quant(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_CONV_LONGOPTS,
        { "calib", required_argument, 0, O_CALIB },
        { "calib-tokens-file", required_argument, 0, O_CALIB_IDS },
        { "calib-tokens", required_argument, 0, O_CALIB_TOKENS },
        { "calib-ctx", required_argument, 0, O_CALIB_CTX },
        { "method", required_argument, 0, O_METHOD }, { "damp", required_argument, 0, O_DAMP },
        { "block", required_argument, 0, O_BLOCK }, { "act-order", no_argument, 0, O_ACT },
        { "act-fit", no_argument, 0, O_FIT }, { "imatrix-scales", no_argument, 0, O_IMX },
        { "zero-band", required_argument, 0, O_ZB }, { "ec-lambda", required_argument, 0, O_ECL },
        { "ec-p0", required_argument, 0, O_ECP },
        { "min-expert-tokens", required_argument, 0, O_MINTOK },
        { "report", required_argument, 0, O_REPORT },
        { "max-memory", required_argument, 0, O_MAXMEM },
        { "scratch", required_argument, 0, O_SCRATCH },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    struct cvt_quant_opts qo;
    cvt_quant_opts_init(&qo);
    struct fmt_open_opts oo = { 0 };
    struct cli_conv cc = { 0 };
    const char *calib = NULL, *calib_ids = NULL, *report = NULL;
    long calib_tokens = 131072, calib_ctx = 512, block = 128, mintok = 1;
    double v;
    int c, rc = CLI_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":" CLI_CONV_SHORT "h", opts, NULL)) != -1) {
        int crc;
        if (cli_conv_option("quant", c, optarg, &cc, &qo.conv, &oo, &crc)) {
            if (crc != CLI_OK)
                goto usage_fail;
            continue;
        }
        switch (c) {
        case O_CALIB: calib = optarg; break;
        case O_CALIB_IDS: calib_ids = optarg; break;
        case O_CALIB_TOKENS:
            if (!cli_parse_long("quant", "--calib-tokens", optarg, 1, 1L << 34, &calib_tokens))
                goto usage_fail;
            break;
        case O_CALIB_CTX:
            if (!cli_parse_long("quant", "--calib-ctx", optarg, 4, 1L << 20, &calib_ctx))
                goto usage_fail;
            break;
        case O_METHOD:
            if (!strcmp(optarg, "gptq"))
                qo.method = CVT_QUANT_GPTQ;
            else if (!strcmp(optarg, "rtn"))
                qo.method = CVT_QUANT_RTN;
            else {
                cli_usage_error("quant", NULL, "--method expects gptq or rtn, got '%s'", optarg);
                goto usage_fail;
            }
            break;
        case O_DAMP:
            if (!cli_parse_double("quant", "--damp", optarg, 1e-9, 1e6, &qo.gptq.damp))
                goto usage_fail;
            break;
        case O_BLOCK:
            if (!cli_parse_long("quant", "--block", optarg, 1, 1L << 20, &block))
                goto usage_fail;
            qo.gptq.block = (size_t)block;
            break;
        case O_ACT: qo.gptq.act_order = true; break;
        case O_FIT: qo.act_fit = true; break;
        case O_IMX: qo.gptq.imatrix_scales = true; break;
        case O_ZB:
            if (!cli_parse_double("quant", "--zero-band", optarg, 0.0, 1.0, &qo.gptq.zero_band))
                goto usage_fail;
            break;
        case O_ECL:
            if (!cli_parse_double("quant", "--ec-lambda", optarg, 0.0, 1e6, &qo.gptq.ec_lambda))
                goto usage_fail;
            break;
        case O_ECP:
            if (!cli_parse_double("quant", "--ec-p0", optarg, 1e-6, 1.0 - 1e-6, &v))
                goto usage_fail;
            qo.gptq.ec_p0 = v;
            break;
        case O_REPORT: report = optarg; break;
        case O_MAXMEM:
            if (!cli_parse_size("quant", "--max-memory", optarg, &qo.conv.max_memory))
                goto usage_fail;
            break;
        case O_SCRATCH: qo.scratch_dir = optarg; break;
        case O_MINTOK:
            if (!cli_parse_long("quant", "--min-expert-tokens", optarg, 0, 1L << 40, &mintok))
                goto usage_fail;
            qo.min_expert_tokens = (size_t)mintok;
            break;
        case 'h': fputs(usage, stdout); cli_conv_release(&cc); return CLI_OK;
        default: cli_conv_release(&cc); return cli_getopt_error("quant", c, argc, argv);
        }
    }
    cli_set_quiet(cc.quiet);
    if ((rc = cli_conv_check("quant", usage, &cc, argc)) != CLI_OK)
        return rc;
    const char *out = cc.out;
    const bool json = cc.json, quiet = cc.quiet;
    if (!calib == !calib_ids) {
        cli_conv_release(&cc);
        return cli_usage_error("quant", usage, "give one of --calib FILE or --calib-tokens-file FILE");
    }
    if (cli_stdin_in_job("quant", usage, "--calib", calib)) {
        cli_conv_release(&cc);
        return CLI_USAGE;
    }
    if (report && !(qo.conv.out_flags & FMT_OUT_FORCE) && access(report, F_OK) == 0) {
        cli_conv_release(&cc);
        return cli_error("quant", "%s: exists (use --force to replace)", report);
    }
    if (qo.scratch_dir && !qo.conv.max_memory)
        cli_warn("quant", "--scratch is ignored without --max-memory (nothing spills)");
    if (qo.gptq.ec_lambda > 0 && qo.gptq.zero_band != 0.5)
        cli_warn("quant", "--zero-band is ignored with --ec-lambda (the code lengths decide)");
    cli_set_threads((int)cc.threads);
    cli_install_signals();

    const char *in = argv[optind];
    struct sb_err err = { 0 };
    struct fmt_model *m = NULL;
    struct vfy_model *vm = NULL;
    struct vfy_tok *tok = NULL;
    struct vfy_plan plan = { 0 };
    struct cvt_quant_report *R = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0;
    rc = CLI_ERR;
    /* until cvt_quant, a failure on one rank is settled with the others (cli_fail_job) */
    if (calib && cli_read_input(calib, &text, &len, &err) != SB_OK) {
        rc = cli_fail_job("quant", &err);
        goto done;
    }
    if (fmt_model_open(&m, in, &oo, &err) != SB_OK ||
        vfy_model_new_opts(&vm, m, VFY_MODEL_NO_PACK, &err) != SB_OK) {
        rc = cli_fail_job("quant", &err);
        goto done;
    }
    if (par_fault("open")) {   /* a rank that cannot read what the others can */
        sb_err_set(&err, SB_EIO, "%s: fault injected (SUBBIT_PAR_FAULT)", in);
        rc = cli_fail_job("quant", &err);
        goto done;
    }
    cli_model_notes("quant", vm);
    const struct vfy_model_info *mi = vfy_model_info(vm);
    if (mi->n_ctx_train > 0 && calib_ctx > mi->n_ctx_train) {
        par_settle(SB_EINVAL, &err);   /* every rank: the same model */
        rc = cli_usage_error("quant", usage, "--calib-ctx %ld is above the model's context (%d)",
                             calib_ctx, mi->n_ctx_train);
        goto done;
    }
    struct vfy_ppl_opts po = { VFY_PROTO_CHUNKS, (size_t)calib_ctx, 0,
                               (size_t)((calib_tokens + calib_ctx - 1) / calib_ctx), NULL };
    if (calib) {
        if (vfy_tok_new(&tok, &m->vocab, &err) != SB_OK) {
            rc = cli_fail_job("quant", &err);
            goto done;
        }
        /* a prefix of the text is enough: no tokenizer makes fewer than one token
         * per 64 bytes of text */
        size_t want = (size_t)po.max_units * (size_t)calib_ctx * 64;
        if (vfy_plan_from_text(&plan, tok, text, len < want ? len : want, &po, &err) != SB_OK) {
            rc = calib_fail(calib, &err);
            goto done;
        }
    } else {
        if (vfy_tok_read_ids(calib_ids, &ids, &n_ids, (uint32_t)mi->vocab, &err) != SB_OK) {
            rc = cli_fail_job("quant", &err);
            goto done;
        }
        int bos = m->vocab.bos_id >= 0 ? m->vocab.bos_id : m->arch.bos_id;
        if (vfy_plan_from_ids(&plan, ids, n_ids, bos, &po, &err) != SB_OK) {
            rc = calib_fail(calib_ids, &err);
            goto done;
        }
    }
    vfy_model_free(vm);
    vm = NULL;
    if (plan.n_win * (size_t)calib_ctx < (size_t)calib_tokens)
        cli_warn("quant", "%s gives %zu calibration tokens, fewer than --calib-tokens %ld",
                 calib ? calib : calib_ids, plan.n_win * (size_t)calib_ctx, calib_tokens);
    struct cli_progress pg;
    cli_progress_init(&pg, "quant", "calibrate", quiet || json, false);
    qo.progress = cli_progress_hook(&pg);
    int r = cvt_quant(m, &plan, out, &qo, &R, &err);
    cli_progress_end(&pg);
    if (r != SB_OK) {
        rc = cli_fail("quant", &err);
        goto done;
    }
    cli_conv_tokenizer_warn("quant", in, R->conv);
    if (qo.act_fit) {   /* said when it changed nothing */
        bool fit = false;
        for (size_t i = 0; i < R->n_m; i++)
            fit |= R->m[i].act_fit;
        if (!fit)
            cli_warn("quant", "--act-fit is ignored: no q8_0 or q4_0 matrix (only their kernels "
                     "meet 8-bit activations) saw %u calibration tokens a column",
                     CVT_QUANT_FIT_TOKENS);
    }
    if (qo.gptq.imatrix_scales) {   /* said when it changed nothing */
        bool used = false;
        for (size_t i = 0; i < R->n_m; i++)
            used |= R->m[i].gptq && R->m[i].enc == SB_DTYPE_Q4_0;
        if (!used)
            cli_warn("quant", "--imatrix-scales is ignored: no q4_0 matrix was quantized with GPTQ");
    }
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    cJSON *doc = json || report ? report_json(in, out, calib ? calib : calib_ids, !calib, &qo, R,
                                              (size_t)calib_ctx, nt)
                                : NULL;
    if (!json)
        report_text(out, &qo, R, nt);
    rc = CLI_OK;
    if (report && par_rank() == 0) {   /* an MPI job's page: rank 0's */
        const cJSON *docs[1] = { doc };
        if (rpt_render(docs, NULL, 1, report, qo.conv.out_flags & FMT_OUT_FORCE, &err) != SB_OK)
            rc = cli_fail("quant", &err);
        else if (!json)
            printf("report:        %s\n", report);
    }
    if (json)
        cli_print_json(doc);   /* frees it */
    else
        cJSON_Delete(doc);
done:
    cvt_quant_report_free(R);
    vfy_plan_release(&plan);
    vfy_tok_free(tok);
    vfy_model_free(vm);
    fmt_model_free(m);
    sb_free(text);
    sb_free(ids);
    cli_conv_release(&cc);
    return rc;
usage_fail: /* the one-line message is out */
    cli_conv_release(&cc);
    return CLI_USAGE;
}
