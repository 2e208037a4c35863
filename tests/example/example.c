/* example.c: a program built against the installed libsubbit, the way a user
 * builds one (cc example.c $(pkg-config --cflags --libs subbit)); the suite
 * builds and runs it (tests/cli/t0900-install.sh). It converts MODEL to q8_0
 * GGUF at OUT with the library's convert, then scores both on TEXT (blocks
 * protocol) and compares them with verify's gates, printing
 *   ppl <reference> <converted> kld <mean> top1 <agreement>
 * and exiting 0 when ppl moved by at most 1 % and top-1 agreement is at
 * least 0.95, 3 when a gate failed, 1 on an error.
 *
 * usage: example MODEL OUT.gguf TEXT */
#include <stdio.h>
#include <string.h>

#include <subbit/subbit.h>

static int fail(const struct sb_err *err)
{
    fprintf(stderr, "example: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: example MODEL OUT.gguf TEXT\n");
        return 2;
    }
    struct sb_err err = { 0 };
    struct fmt_model *src = NULL, *q = NULL;   /* the model, and its q8_0 copy */
    struct vfy_model *va = NULL, *vb = NULL;
    struct vfy_tok *tok = NULL;
    struct vfy_ctx *ca = NULL, *cb = NULL;
    struct vfy_plan plan = { 0 };
    struct cvt_report *rep = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = 1;

    /* convert: every matrix whose rows fit q8_0 blocks becomes q8_0 */
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = SB_DTYPE_Q8_0;
    if (fmt_model_open(&src, argv[1], NULL, &err) || cvt_convert(src, argv[2], &o, &rep, &err))
        goto out;
    size_t n_q8 = 0;
    for (size_t i = 0; i < rep->n; i++)
        n_q8 += rep->d[i].to == SB_DTYPE_Q8_0;
    printf("converted %zu tensors, %zu to q8_0, %llu -> %llu bytes\n", rep->n, n_q8,
           (unsigned long long)rep->in_bytes, (unsigned long long)rep->out_bytes);

    /* score both on the same tokens */
    struct vfy_ppl_opts po = { VFY_PROTO_BLOCKS, 256, 0, 0, NULL };
    if (fmt_read_file(argv[3], &text, &len, &err) || vfy_model_new(&va, src, &err) ||
        vfy_tok_new(&tok, &src->vocab, &err) ||
        vfy_plan_from_text(&plan, tok, text, len, &po, &err) ||
        fmt_model_open(&q, argv[2], NULL, &err) || vfy_model_new(&vb, q, &err) ||
        vfy_ctx_new(&ca, va, po.n_ctx, 256, &err) || vfy_ctx_new(&cb, vb, po.n_ctx, 256, &err))
        goto out;
    struct vfy_verify_result r;
    if (vfy_verify_run(ca, cb, &plan, NULL, &r, &err))
        goto out;
    printf("ppl %.4f %.4f kld %.6f top1 %.4f (%zu tokens)\n", r.ref.ppl, r.model.ppl, r.kld.mean,
           r.kld.top1, r.ref.n_scored);
    const struct vfy_gates gates = { true, 1.0, true, -1, 0.95 };
    rc = vfy_verify_gates(&r, &gates, NULL) ? 0 : 3;
out:
    if (err.code)
        rc = fail(&err);
    vfy_plan_release(&plan);
    vfy_ctx_free(ca);
    vfy_ctx_free(cb);
    vfy_tok_free(tok);
    vfy_model_free(va);
    vfy_model_free(vb);
    fmt_model_free(q);
    fmt_model_free(src);
    cvt_report_free(rep);
    sb_free(text);
    return rc;
}
