/* cvt_convert.c: the streaming conversion loop and its per-tensor policy.
 * Knows which encoding each tensor gets and in what order bytes flow; the
 * container layouts live in formats/ and cvt_layout.c, the numerics in quant/. */
#include "cvt_convert.h"
#include "cvt_layout.h"
#include "fmt_config.h"
#include "fmt_gguf.h"
#include "fmt_hftok.h"
#include "fmt_l2c.h"
#include "fmt_out.h"
#include "fmt_writer.h"
#include "qnt_cast.h"
#include "qnt_encode.h"
#include "qnt_stats.h"
#include "qnt_tern.h"
#include "qnt_type.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void cvt_opts_init(struct cvt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->to = -1;
    o->fallback = SB_DTYPE_F16;
    o->dense_to = SB_DTYPE_BF16;
    o->qp.scale_dtype = SB_DTYPE_F32;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool cvt_is_expert(const char *name)
{
    return strstr(name, ".experts.") || strstr(name, "_exps.") ||
           (strstr(name, "mlp.experts") != NULL);
}

static bool is_norm(const char *name)
{
    return strstr(name, "norm") != NULL;
}

static bool is_embedding(const char *name)
{
    return strstr(name, "embed_tokens") || strstr(name, "token_embd") || strstr(name, "wte.");
}

static bool is_output(const char *name)
{
    return !strcmp(name, "lm_head.weight") || !strcmp(name, "output.weight");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool is_router(const char *name)
{
    return strstr(name, "ffn_gate_inp") || strstr(name, "shared_expert_gate") ||
           ends_with(name, "mlp.gate.weight") || ends_with(name, "block_sparse_moe.gate.weight");
}

static bool is_float(enum sb_dtype dt)
{
    const struct sb_dtype_info *d = sb_dtype_get(dt);
    return d && ((d->flags & SB_DT_FLOAT) || qnt_type_can_decode(dt));
}

static bool is_plain_float(enum sb_dtype dt)
{
    return dt == SB_DTYPE_F32 || dt == SB_DTYPE_F16 || dt == SB_DTYPE_BF16 || dt == SB_DTYPE_F64;
}

/* GGUF holds no int8 with scales: its int8 path is q8_0 */
static enum sb_dtype gguf_target(enum sb_dtype to)
{
    return to == SB_DTYPE_INT8 ? SB_DTYPE_Q8_0 : to;
}

/* The policy: which encoding target t gets, and why (static strings). */
static enum sb_dtype decide(const struct cvt_target *t, enum sb_dtype from,
                            enum fmt_container cont, const struct cvt_opts *o,
                            const char **why)
{
    for (size_t i = 0; i < o->n_rules; i++) {
        if (fnmatch(o->rules[i].glob, t->name, 0) == 0) {
            *why = o->rules[i].to < 0 ? "--keep" : "--rule";
            return o->rules[i].to < 0 ? from : (enum sb_dtype)o->rules[i].to;
        }
    }
    if (o->to < 0) {
        *why = "as stored";
        return from;
    }
    enum sb_dtype to = (enum sb_dtype)o->to;
    if (!is_float(from)) {
        *why = "not a float tensor";
        return from;
    }
    if (cont == FMT_CONT_GGUF)
        to = gguf_target(to);
    const struct sb_dtype_info *di = sb_dtype_get(to);
    if (di->flags & SB_DT_FLOAT) {
        if (cont == FMT_CONT_GGUF && t->keep_f32) {
            *why = "GGUF keeps norms and routers f32";
            return SB_DTYPE_F32;
        }
        *why = "target";
        return to;
    }
    /* quantized targets */
    uint64_t rows, cols;
    sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
    if (t->ndim < 2 || rows < 2) {
        if (is_norm(t->name)) {
            *why = "norms stay f32";
            return SB_DTYPE_F32;
        }
        *why = "1-D tensor (--fallback)";
        return o->fallback;
    }
    if (t->keep_f32 || is_router(t->name)) {
        *why = "routers stay f32";
        return SB_DTYPE_F32;
    }
    if (di->flags & SB_DT_TERNARY) {
        if (o->experts_only && !(t->is_expert || cvt_is_expert(t->name))) {
            *why = "not an expert (--experts-only)";
            return o->dense_to;
        }
        if (is_embedding(t->name) || is_output(t->name)) {
            *why = "embeddings/output stay dense";
            return o->dense_to;
        }
    }
    if (to == SB_DTYPE_INT8 && (is_embedding(t->name) || is_output(t->name))) {
        /* compressed-tensors quantizes Linear modules; lm_head is in `ignore` by convention */
        *why = "not a Linear (compressed-tensors ignore)";
        return o->fallback;
    }
    if (di->blck > 1 && cols % di->blck) {
        *why = "row not a block multiple (--fallback)";
        return o->fallback;
    }
    *why = "target";
    return to;
}

static int plain_cast_parallel(enum sb_dtype from, const void *src, enum sb_dtype to, void *dst,
                               uint64_t n)
{
    const size_t chunk = 1u << 20;
    const size_t fs = sb_dtype_get(from)->type_size, ts = sb_dtype_get(to)->type_size;
    int64_t nchunks = (int64_t)((n + chunk - 1) / chunk);
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int64_t c = 0; c < nchunks; c++) {
        uint64_t i0 = (uint64_t)c * chunk;
        uint64_t k = n - i0 < chunk ? n - i0 : chunk;
        bad |= qnt_convert_plain(from, (const uint8_t *)src + i0 * fs, to,
                                 (uint8_t *)dst + i0 * ts, (size_t)k) != SB_OK;
    }
    return bad ? SB_EUNSUPPORTED : SB_OK;
}

/* Encode f32 rows x[rows, cols] into dst (cap bytes) as `to`; for variable-length
 * encodings (made from tern bytes, in tern_scratch) *nbytes becomes the size
 * written (fixed sizes are known beforehand). */
static int encode(enum sb_dtype to, const float *x, uint64_t rows, uint64_t cols,
                  const struct sb_qparams *qp, void *dst, uint64_t cap, uint64_t *nbytes,
                  void *tern_scratch, const char *name, struct sb_err *err)
{
    const struct qnt_type *qt = qnt_type_get(to);
    if (qt && (qt->flags & QNT_T_VARLEN)) {
        qnt_tern_quantize_rows(x, rows, cols, tern_scratch);
        int r = qt->encode(tern_scratch, rows, cols, dst, cap, nbytes);
        if (r != SB_OK)
            return sb_err_set(err, r, "tensor '%s': %s encoding failed", name, sb_dtype_name(to));
        return SB_OK;
    }
    if (is_plain_float(to)) {
        int r = plain_cast_parallel(SB_DTYPE_F32, x, to, dst, rows * cols);
        if (r)
            return sb_err_set(err, r, "tensor '%s': cannot cast to %s", name, sb_dtype_name(to));
        return SB_OK; /* fixed size: *nbytes is already the planned size */
    }
    int r = qnt_quantize_rows(to, x, rows, cols, qp, dst);
    if (r != SB_OK)
        return sb_err_set(err, r, "tensor '%s': cannot encode as %s", name, sb_dtype_name(to));
    return SB_OK;
}

void cvt_report_free(struct cvt_report *rep)
{
    if (!rep)
        return;
    for (size_t i = 0; i < rep->n; i++)
        sb_free(rep->d[i].name);
    sb_free(rep->d);
    sb_free(rep);
}

static bool any_quantized(const struct cvt_report *rep)
{
    for (size_t i = 0; i < rep->n; i++)
        if (sb_dtype_get(rep->d[i].to)->flags & (SB_DT_BLOCK | SB_DT_ROWQ | SB_DT_VARLEN))
            return true;
    return false;
}

static int kv_set_u32(struct fmt_kv **kv, size_t *n, const char *key, uint32_t v)
{
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp((*kv)[i].key, key)) {
            (*kv)[i].type = FMT_KV_U32;
            (*kv)[i].u = v;
            (*kv)[i].i = v;
            return SB_OK;
        }
    }
    struct fmt_kv *k = sb_realloc(*kv, (*n + 1) * sizeof **kv);
    if (!k)
        return SB_ENOMEM;
    *kv = k;
    memset(&k[*n], 0, sizeof k[*n]);
    if (!(k[*n].key = sb_strdup(key)))
        return SB_ENOMEM;
    k[*n].type = FMT_KV_U32;
    k[*n].u = v;
    k[*n].i = v;
    (*n)++;
    return SB_OK;
}

/* ---- tokenizer files for an HF folder ------------------------------------ */

/* An SPM vocab (GGUF tokenizer.ggml.model "llama", llama2.c tokenizer.bin) goes
 * into an HF folder as three files, made in a temp folder and copied in by the
 * writer with the source's own side files (those come first and win by name):
 *  - tokenizer.json + tokenizer_config.json: what HF users load (LlamaTokenizerFast);
 *    merges are derived from the scores (formats/fmt_hftok.h).
 *  - tokenizer.bin: the llama2.c tokenizer, which keeps the exact SentencePiece
 *    scores that tokenizer.json cannot hold (it only has merge ranks), so that
 *    HF -> GGUF gives back the original tokenizer.ggml.scores; subbit's reader
 *    prefers it to tokenizer.json in a folder that has both (fmt_st_read.c). */
struct tok_side {
    char dir[128];
    char path[3][160];
    const char **list;        /* side files for the writer */
    size_t n;
};

static void tok_side_release(struct tok_side *ts)
{
    for (int i = 0; i < 3; i++)
        if (ts->path[i][0])
            unlink(ts->path[i]);
    if (ts->dir[0])
        rmdir(ts->dir);
    sb_free(ts->list);
    memset(ts, 0, sizeof *ts);
}

static bool has_side(const struct fmt_model *src, const char *name)
{
    for (size_t i = 0; i < src->n_side_files; i++) {
        const char *bn = strrchr(src->side_files[i], '/');
        if (!strcmp(bn ? bn + 1 : src->side_files[i], name))
            return true;
    }
    return false;
}

static int tok_side_make(struct tok_side *ts, const struct fmt_model *src, const char *out_path,
                         struct sb_err *err)
{
    static const char *const names[3] = { "tokenizer.bin", "tokenizer.json",
                                          "tokenizer_config.json" };
    bool need[3];
    int r;
    for (int i = 0; i < 3; i++)
        need[i] = !has_side(src, names[i]);
    if (!need[0] && !need[1] && !need[2])
        return SB_OK;
    if (!(ts->list = sb_calloc(src->n_side_files + 3, sizeof *ts->list)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
    for (size_t i = 0; i < src->n_side_files; i++)
        ts->list[ts->n++] = src->side_files[i];
    const char *tmp = getenv("TMPDIR");
    snprintf(ts->dir, sizeof ts->dir, "%s/subbit-tok-XXXXXX",
             tmp && strlen(tmp) < 100 ? tmp : "/tmp");
    if (!mkdtemp(ts->dir)) {
        ts->dir[0] = '\0';
        return sb_err_set(err, SB_EIO, "%s: cannot make a temp folder", out_path);
    }
    for (int i = 0; i < 3; i++) {
        if (!need[i])
            continue;
        snprintf(ts->path[i], sizeof ts->path[i], "%s/%s", ts->dir, names[i]);
        struct sb_err e = { 0 };
        if (i == 0)
            r = fmt_l2c_write_tokenizer(&src->vocab, ts->path[i], FMT_OUT_FORCE, &e);
        else if (i == 1)
            r = fmt_hftok_write_json(&src->vocab, ts->path[i], FMT_OUT_FORCE, &e);
        else
            r = fmt_hftok_write_config(&src->vocab, ts->path[i], FMT_OUT_FORCE, &e);
        if (r == SB_EUNSUPPORTED && i > 0) {
            /* a piece JSON cannot hold (not UTF-8): tokenizer.bin alone carries it */
            ts->path[i][0] = '\0';
            continue;
        }
        if (r != SB_OK) {
            ts->path[i][0] = '\0';
            return sb_err_set(err, r, "%s", e.msg);
        }
        ts->list[ts->n++] = ts->path[i];
    }
    return SB_OK;
}

int cvt_convert(const struct fmt_model *src, const char *out_path, const struct cvt_opts *o,
                struct cvt_report **rep_out, struct sb_err *err)
{
    *rep_out = NULL;
    double t0 = now_s();
    enum fmt_container cont = fmt_container_from_path(out_path);
    struct cvt_layout *lay = NULL;
    struct cvt_report *rep = NULL;
    struct fmt_tensor *plan = NULL;
    struct fmt_writer *w = NULL;
    struct fmt_kv *kv = NULL;
    size_t n_kv = 0;
    char *config = NULL;
    float *fbuf = NULL, *sbuf = NULL;
    void *obuf = NULL, *tbuf = NULL;
    struct tok_side ts;
    int r;

    memset(&ts, 0, sizeof ts);

    if ((r = cvt_layout_plan(src, cont, &lay, err)) != SB_OK)
        goto fail;
    rep = sb_calloc(1, sizeof *rep);
    plan = sb_calloc(lay->n ? lay->n : 1, sizeof *plan);
    if (!rep || !plan || !(rep->d = sb_calloc(lay->n ? lay->n : 1, sizeof *rep->d))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
        goto fail;
    }
    rep->n = lay->n;
    rep->container = cont;

    /* 1. decide every tensor's encoding and size */
    uint64_t max_elems = 0, max_out = 0, max_tern = 0;
    for (size_t i = 0; i < lay->n; i++) {
        const struct cvt_target *t = &lay->t[i];
        const struct fmt_tensor *s0 = &src->tensors[t->pieces[0].src];
        struct cvt_decision *d = &rep->d[i];
        if (!(d->name = sb_strdup(t->name))) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
            goto fail;
        }
        d->ndim = t->ndim;
        memcpy(d->shape, t->shape, sizeof d->shape);
        d->from = s0->dtype;
        d->to = decide(t, s0->dtype, cont, o, &d->reason);
        for (size_t p = 0; p < t->n_pieces; p++) {
            const struct fmt_tensor *s = &src->tensors[t->pieces[p].src];
            uint64_t rows, cols;
            sb_shape_rows_cols(s->shape, s->ndim, &rows, &cols);
            d->in_bytes += rows ? s->nbytes / rows * t->pieces[p].nrows : 0;
        }
        if (d->to != d->from && !qnt_type_can_decode(d->from)) {
            r = sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s' is %s, which subbit cannot "
                           "re-encode (use --keep '%s')", src->path, t->name,
                           sb_dtype_name(d->from), t->name);
            goto fail;
        }
        struct fmt_tensor *pt = &plan[i];
        pt->name = d->name; /* borrowed: the writer copies */
        pt->dtype = d->to;
        pt->ndim = t->ndim;
        memcpy(pt->shape, t->shape, sizeof pt->shape);
        if (d->to == SB_DTYPE_INT8)
            pt->qp = o->qp;
        pt->map_index = -1;
        uint64_t rows = 0, cols = 0, elems = 0;
        sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
        sb_shape_numel(t->shape, t->ndim, &elems);
        if (elems > max_elems)
            max_elems = elems;
        if (sb_dtype_get(d->to)->flags & SB_DT_VARLEN) {
            uint64_t bound = qnt_type_get(d->to)->encode_bound(rows, cols);
            uint64_t tb;
            sb_dtype_nbytes(SB_DTYPE_TERN, t->shape, t->ndim, NULL, &tb);
            if (tb > max_tern)
                max_tern = tb;
            if (bound > max_out)
                max_out = bound;
            pt->nbytes = 0;
            d->out_bytes = 0;
        } else {
            r = sb_dtype_nbytes(d->to, t->shape, t->ndim, &pt->qp, &pt->nbytes);
            if (r != SB_OK) {
                r = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' cannot be stored as %s",
                               src->path, t->name, sb_dtype_name(d->to));
                goto fail;
            }
            d->out_bytes = pt->nbytes;
            if (pt->nbytes > max_out)
                max_out = pt->nbytes;
        }
        rep->in_bytes += d->in_bytes;
        rep->out_bytes += d->out_bytes;
        rep->params += elems;
    }
    if (o->dry_run) {
        /* variable-length sizes are estimates in a dry run: report the 2-bit tern size */
        for (size_t i = 0; i < rep->n; i++)
            if (sb_dtype_get(rep->d[i].to)->flags & SB_DT_VARLEN) {
                sb_dtype_nbytes(SB_DTYPE_TERN, rep->d[i].shape, rep->d[i].ndim, NULL,
                                &rep->d[i].out_bytes);
                rep->out_bytes += rep->d[i].out_bytes;
            }
        goto done;
    }

    /* 2. metadata for the destination */
    struct fmt_write_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.flags = o->out_flags;
    wo.shard_size = o->shard_size;
    wo.arch = src->has_arch ? &src->arch : NULL;
    /* GGUF: fmt_gguf_kv_build already carries the tokenizer.ggml.* keys */
    wo.vocab = (src->vocab.kind != FMT_VOCAB_NONE && cont != FMT_CONT_GGUF) ? &src->vocab : NULL;
    wo.alignment = src->gguf_alignment;
    if (cont == FMT_CONT_GGUF) {
        if ((r = fmt_gguf_kv_build(src, &kv, &n_kv, err)) != SB_OK)
            goto fail;
        if (kv_set_u32(&kv, &n_kv, "general.file_type",
                       o->to < 0 ? 0 : qnt_type_gguf_ftype(gguf_target((enum sb_dtype)o->to))) ||
            (any_quantized(rep) &&
             kv_set_u32(&kv, &n_kv, "general.quantization_version", 2))) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
            goto fail;
        }
        wo.kv = kv;
        wo.n_kv = n_kv;
    } else {
        if (src->has_arch || src->config_json) {
            if ((r = fmt_config_json_from_model(src, &config, err)) != SB_OK)
                goto fail;
        }
        /* config.json's torch_dtype follows a float target (transformers loads in it) */
        if (config && o->to >= 0 && is_plain_float((enum sb_dtype)o->to) &&
            (r = fmt_config_json_set_dtype(&config, sb_dtype_torch_name((enum sb_dtype)o->to),
                                           out_path, err)) != SB_OK)
            goto fail;
        wo.config_json = config;
        wo.side_files = (const char *const *)src->side_files;
        wo.n_side_files = src->n_side_files;
        if (src->vocab.kind == FMT_VOCAB_SPM) {
            if ((r = tok_side_make(&ts, src, out_path, err)) != SB_OK)
                goto fail;
            if (ts.n) {
                wo.side_files = ts.list;
                wo.n_side_files = ts.n;
            }
        }
        if (src->container == FMT_CONT_SAFETENSORS) {
            wo.kv = src->kv;   /* __metadata__ travels */
            wo.n_kv = src->n_kv;
        }
    }

    /* 3. buffers sized by the largest tensor, then stream */
    size_t fcap, ocap = (size_t)max_out;
    if (sb_mul_size((size_t)max_elems, sizeof(float), &fcap)) {
        r = sb_err_set(err, SB_ENOMEM, "%s: tensor too large", src->path);
        goto fail;
    }
    fbuf = sb_malloc_aligned(fcap);
    obuf = sb_malloc_aligned(ocap ? ocap : 64);
    if (o->stats)
        sbuf = sb_malloc_aligned(fcap);
    if (max_tern)
        tbuf = sb_malloc_aligned((size_t)max_tern);
    if (!fbuf || !obuf || (o->stats && !sbuf) || (max_tern && !tbuf)) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory for a %llu-element tensor", src->path,
                       (unsigned long long)max_elems);
        goto fail;
    }
    if ((r = fmt_writer_open(&w, cont, out_path, plan, lay->n, &wo, err)) != SB_OK)
        goto fail;

    uint64_t done = 0;
    for (size_t k = 0; k < lay->n; k++) {
        size_t i = fmt_writer_order(w, k);
        const struct cvt_target *t = &lay->t[i];
        struct cvt_decision *d = &rep->d[i];
        struct fmt_tensor *pt = &plan[i];
        uint64_t rows = 0, cols = 0, elems = 0, nbytes = pt->nbytes;
        sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
        sb_shape_numel(t->shape, t->ndim, &elems);
        const struct fmt_tensor *s0 = &src->tensors[t->pieces[0].src];
        const void *out = obuf;
        bool streamed = false; /* given to the writer in pieces already */
        bool same = d->to == d->from;
        for (size_t p = 1; p < t->n_pieces; p++)
            same = same && src->tensors[t->pieces[p].src].dtype == d->from;
        if (same && !o->stats) {
            if (t->n_pieces == 1 && t->perm == CVT_PERM_NONE && t->pieces[0].row0 == 0 &&
                s0->nbytes == nbytes) {
                out = s0->data; /* straight from the map: byte-identical, no copy */
            } else if ((r = cvt_layout_gather_bytes(lay, i, src, obuf, ocap, err)) != SB_OK) {
                goto fail;
            }
        } else if (!o->stats && t->n_pieces == 1 && t->perm == CVT_PERM_NONE &&
                   t->pieces[0].row0 == 0 && is_plain_float(d->from) && is_plain_float(d->to)) {
            /* plain float cast straight from the map (the common bf16/f16 job); where
             * the container takes pieces, a slice at a time, so that casting the
             * next slice overlaps writing this one (fmt_out writes in the background) */
            const bool pieces = elems > 0 && fmt_writer_streams(w, i);
            const uint64_t step = pieces ? (uint64_t)1 << 21 : elems;
            const size_t fsz = sb_dtype_get(d->from)->type_size;
            const size_t tsz = sb_dtype_get(d->to)->type_size;
            for (uint64_t e0 = 0; e0 < elems; e0 += step) {
                uint64_t m = elems - e0 < step ? elems - e0 : step;
                if ((r = plain_cast_parallel(d->from, (const uint8_t *)s0->data + e0 * fsz, d->to,
                                             obuf, m)) != SB_OK) {
                    r = sb_err_set(err, r, "tensor '%s': cannot cast %s to %s", t->name,
                                   sb_dtype_name(d->from), sb_dtype_name(d->to));
                    goto fail;
                }
                if (pieces && (r = fmt_writer_put_piece(w, i, obuf, m * tsz, nbytes, err)) != SB_OK)
                    goto fail;
            }
            streamed = pieces;
        } else {
            if ((r = cvt_layout_gather_f32(lay, i, src, fbuf, err)) != SB_OK)
                goto fail;
            if ((r = encode(d->to, fbuf, rows, cols, &pt->qp, obuf, ocap, &nbytes, tbuf,
                            t->name, err)) != SB_OK)
                goto fail;
            if (o->stats) {
                struct qnt_err_stats st;
                memset(&st, 0, sizeof st);
                if (qnt_decode_rows(d->to, obuf, nbytes, rows, cols, &pt->qp, 0, rows, sbuf) ==
                    SB_OK) {
                    qnt_err_stats_add(&st, fbuf, sbuf, (size_t)elems);
                    qnt_err_stats_finish(&st);
                    d->has_stats = true;
                    d->rmse = st.rmse;
                    d->sqnr_db = st.sqnr_db;
                    d->max_abs = st.max_abs;
                }
            }
        }
        if (!streamed && (r = fmt_writer_put(w, i, out, nbytes, err)) != SB_OK)
            goto fail;
        if (sb_dtype_get(d->to)->flags & SB_DT_VARLEN) {
            d->out_bytes = nbytes;
            rep->out_bytes += nbytes;
        }
        for (size_t p = 0; p < t->n_pieces; p++)
            fmt_model_release_data(src, &src->tensors[t->pieces[p].src]);
        done += d->out_bytes;
        sb_progress_report(&o->progress, done, rep->out_bytes);
    }
    r = fmt_writer_commit(w, err);
    w = NULL;
    if (r != SB_OK)
        goto fail;

done:
    rep->seconds = now_s() - t0;
    *rep_out = rep;
    rep = NULL;
    r = SB_OK;
fail:
    if (w)
        fmt_writer_abort(w);
    cvt_report_free(rep);
    cvt_layout_free(lay);
    sb_free(plan);
    for (size_t i = 0; i < n_kv; i++)
        fmt_kv_release(&kv[i]);
    sb_free(kv);
    sb_free(config);
    sb_free_aligned(fbuf);
    sb_free_aligned(sbuf);
    sb_free_aligned(obuf);
    sb_free_aligned(tbuf);
    tok_side_release(&ts);
    return r;
}
