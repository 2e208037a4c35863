/* cvt_convert.c: the streaming conversion loop and its per-tensor policy.
 * Knows which encoding each tensor gets and in what order bytes flow; the
 * container layouts live in formats/ and cvt_layout.c, the numerics in quant/. */
#include "cvt_convert.h"
#include "cvt_layout.h"
#include "fmt_config.h"
#include "fmt_gguf.h"
#include "fmt_hftok.h"
#include "fmt_l2c.h"
#include "fmt_map.h"
#include "fmt_out.h"
#include "fmt_sbc.h"
#include "fmt_writer.h"
#include "par_comm.h"
#include "qnt_cast.h"
#include "qnt_encode.h"
#include "vfy_mem.h"
#include "qnt_stats.h"
#include "qnt_tern.h"
#include "qnt_type.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

enum sb_dtype cvt_decide(const struct cvt_target *t, enum sb_dtype from, enum fmt_container cont,
                         const struct cvt_opts *o, const char **why)
{
    for (size_t i = 0; i < o->n_rules; i++) {
        bool hit = o->rules[i].part > 0 ? (int)vfy_mem_part_of(t->name) == o->rules[i].part - 1
                                        : fnmatch(o->rules[i].glob, t->name, 0) == 0;
        if (hit) {
            *why = o->rules[i].to < 0 ? "--keep" : "--rule";
            return o->rules[i].to < 0 ? from : (enum sb_dtype)o->rules[i].to;
        }
    }
    if (o->mix && cont == FMT_CONT_GGUF)
        return is_float(from) ? cvt_mix_decide(o, t->name, t->shape, t->ndim, from, why) : from;
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
    if (o->keep_embeddings && is_embedding(t->name)) {
        *why = "embeddings are not quantized";
        return from;
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

/* o with what a mix asks of the model filled in from src and its layout */
static void mix_opts(struct cvt_opts *lo, const struct cvt_opts *o, const struct fmt_model *src,
                     const struct cvt_layout *lay)
{
    *lo = *o;
    if (!o->mix)
        return;
    const struct fmt_arch *a = &src->arch;
    lo->mix_model.n_layer = src->has_arch ? a->n_layers : 0;
    lo->mix_model.n_gqa = src->has_arch && a->n_kv_heads > 0 ? a->n_heads / a->n_kv_heads : 1;
    lo->mix_model.n_expert = src->has_arch ? a->n_experts : 0;
    /* llama.cpp sizes a llama-arch model (the arch subbit writes for llama and
     * Mixtral) as 70B when it has 80 layers and fewer K/V heads than heads,
     * unless it has exactly 8 experts (then 8x7B / 8x22B); Qwen2-MoE has no
     * such case */
    lo->mix_model.llama_70b = src->has_arch && a->kind != FMT_ARCH_QWEN2_MOE && a->n_layers == 80 &&
                              a->n_kv_heads > 0 && a->n_kv_heads != a->n_heads && a->n_experts != 8;
    lo->mix_model.has_output = false;
    for (size_t i = 0; i < lay->n; i++)
        if (!strcmp(lay->t[i].name, "output.weight"))
            lo->mix_model.has_output = true;
}

int cvt_decide_sources(const struct fmt_model *src, enum fmt_container cont,
                       const struct cvt_opts *o, int *to, const char **why, struct sb_err *err)
{
    struct cvt_layout *lay = NULL;
    int r = cvt_layout_plan(src, cont, &lay, err);
    if (r != SB_OK)
        return r;
    for (size_t i = 0; i < src->n_tensors; i++) {
        to[i] = -1;
        if (why)
            why[i] = "not in the output";
    }
    struct cvt_opts lo;
    mix_opts(&lo, o, src, lay);
    for (size_t i = 0; i < lay->n; i++) {
        const struct cvt_target *t = &lay->t[i];
        const char *w = NULL;
        const enum sb_dtype d = cvt_decide(t, src->tensors[t->pieces[0].src].dtype, cont, &lo, &w);
        for (size_t p = 0; p < t->n_pieces; p++) {
            to[t->pieces[p].src] = (int)d;
            if (why)
                why[t->pieces[p].src] = w;
        }
    }
    cvt_layout_free(lay);
    return SB_OK;
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
    struct fmt_outdir dir;    /* $TMPDIR/subbit-tok.subbit-tmp-PID-XXXXXX: Ctrl-C removes it */
    char *path[3];
    const char **list;        /* side files for the writer */
    size_t n;
};

static void tok_side_release(struct tok_side *ts)
{
    for (int i = 0; i < 3; i++)
        sb_free(ts->path[i]);
    if (ts->dir.tmp)
        fmt_outdir_abort(&ts->dir); /* the folder and the files in it */
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
    /* a GGUF byte-level BPE (read as tokenizer.json text) travels as those two
     * files; tokenizer.bin is for SentencePiece vocabs only */
    const bool hf = src->vocab.kind == FMT_VOCAB_HF_JSON;
    for (int i = 0; i < 3; i++)
        need[i] = !has_side(src, names[i]) && !(hf && i == 0) &&
                  !(hf && i == 2 && !src->vocab.hf_config_json);
    if (!need[0] && !need[1] && !need[2])
        return SB_OK;
    if (!(ts->list = sb_calloc(src->n_side_files + 3, sizeof *ts->list)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
    for (size_t i = 0; i < src->n_side_files; i++)
        ts->list[ts->n++] = src->side_files[i];
    const char *tmp = getenv("TMPDIR");
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/subbit-tok", tmp && *tmp && strlen(tmp) < 4000 ? tmp : "/tmp");
    if ((r = fmt_outdir_open(&ts->dir, base, FMT_OUT_FORCE, err)) != SB_OK)
        return r;
    for (int i = 0; i < 3; i++) {
        if (!need[i])
            continue;
        if (!(ts->path[i] = fmt_outdir_file(&ts->dir, names[i])))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
        struct sb_err e = { 0 };
        if (hf)
            r = fmt_vocab_write_hf(&src->vocab, i == 1 ? ts->path[i] : NULL,
                                   i == 2 ? ts->path[i] : NULL, FMT_OUT_FORCE, &e);
        else if (i == 0)
            r = fmt_l2c_write_tokenizer(&src->vocab, ts->path[i], FMT_OUT_FORCE, &e);
        else if (i == 1)
            r = fmt_hftok_write_json(&src->vocab, ts->path[i], FMT_OUT_FORCE, &e);
        else
            r = fmt_hftok_write_config(&src->vocab, ts->path[i], FMT_OUT_FORCE, &e);
        if (r == SB_EUNSUPPORTED && i > 0)
            continue; /* a piece JSON cannot hold (not UTF-8): tokenizer.bin alone carries it */
        if (r != SB_OK)
            return sb_err_set(err, r, "%s", e.msg);
        ts->list[ts->n++] = ts->path[i];
    }
    return SB_OK;
}

/* ---- plan: every decision and size before any byte moves ------------------ */

struct plan {
    const struct fmt_model *src;
    const struct cvt_opts *o;    /* &lo */
    struct cvt_opts lo;          /* the caller's options, the mix's model filled in */
    enum fmt_container cont;
    struct cvt_layout *lay;
    struct cvt_report *rep;      /* the decisions (the caller's report) */
    struct fmt_tensor *out;      /* [lay->n] what the writer is told */
};

static void plan_release(struct plan *p)
{
    cvt_layout_free(p->lay);
    cvt_report_free(p->rep);
    sb_free(p->out);
    memset(p, 0, sizeof *p);
}

static int loader_order(const void *a, const void *b)
{
    const struct cvt_target *ta = a, *tb = b;
    return cvt_mix_order(ta->name, tb->name);
}

/* Quantizing what was quantized into fewer bits adds the second grid's error
 * to the first's; llama-quantize refuses it without --allow-requantize. Not
 * lossier: a plain float on either side, the same encoding, the ternary
 * family among itself (tern, sub1, sub1-qmoe hold the same values), and a
 * target with more bytes than the source for this tensor (varlen targets
 * counted at tern's 2 bits a weight): q4_K -> q4_0, same size, is lossier. */
static bool lossier(const struct fmt_model *src, const struct cvt_target *t,
                    const struct cvt_decision *d)
{
    const unsigned tf = SB_DT_TERNARY;
    if (d->to == d->from || is_plain_float(d->from) || is_plain_float(d->to) ||
        ((sb_dtype_get(d->from)->flags & tf) && (sb_dtype_get(d->to)->flags & tf)))
        return false;
    uint64_t out = 0;
    const enum sb_dtype to = sb_dtype_get(d->to)->flags & SB_DT_VARLEN ? SB_DTYPE_TERN : d->to;
    if (sb_dtype_nbytes(to, t->shape, t->ndim, NULL, &out) != SB_OK)
        return true;
    uint64_t in = 0;
    for (size_t k = 0; k < t->n_pieces; k++) {
        const struct fmt_tensor *st = &src->tensors[t->pieces[k].src];
        uint64_t rows, cols;
        sb_shape_rows_cols(st->shape, st->ndim, &rows, &cols);
        in += rows ? st->nbytes / rows * t->pieces[k].nrows : 0;
    }
    return out <= in;
}

static int plan_make(struct plan *p, const struct fmt_model *src, const char *out_path,
                     const struct cvt_opts *o, struct sb_err *err)
{
    int r;
    memset(p, 0, sizeof *p);
    p->src = src;
    p->o = o;
    if ((r = fmt_container_for_output(out_path, &p->cont, err)) != SB_OK)
        return r;
    if (o->mix && p->cont != FMT_CONT_GGUF)
        return sb_err_set(err, SB_EINVAL, "%s: llama.cpp's mix %s is for GGUF output (name it "
                          "*.gguf)", out_path, cvt_mix_name(o->mix));
    if (o->to >= 0 && !o->mix && !qnt_type_can_encode((enum sb_dtype)o->to)) {
        const char *what = (o->to >= SB_DTYPE_IQ2_XXS && o->to <= SB_DTYPE_IQ1_M &&
                            o->to != SB_DTYPE_IQ4_NL && o->to != SB_DTYPE_IQ4_XS)
                               ? "ggml's IQ1/IQ2/IQ3 lattice-codebook types are not implemented"
                               : "subbit has no encoder for it";
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: cannot write %s: %s", out_path,
                          sb_dtype_name((enum sb_dtype)o->to), what);
    }
    if ((r = cvt_layout_plan(src, p->cont, &p->lay, err)) != SB_OK)
        return r;
    if (p->lay->n == 0)   /* a header "{}", an index with an empty weight_map */
        return sb_err_set(err, SB_EFORMAT, "%s: holds no tensors; nothing to convert", src->path);
    mix_opts(&p->lo, o, src, p->lay);
    p->o = o = &p->lo;
    /* a mix writes its tensors in llama-quantize's order, so the file is its bytes */
    if (o->mix)
        qsort(p->lay->t, p->lay->n, sizeof *p->lay->t, loader_order);
    const size_t n = p->lay->n;
    p->rep = sb_calloc(1, sizeof *p->rep);
    p->out = sb_calloc(n ? n : 1, sizeof *p->out);
    if (!p->rep || !p->out || !(p->rep->d = sb_calloc(n ? n : 1, sizeof *p->rep->d)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
    struct cvt_report *rep = p->rep;
    rep->n = n;
    rep->container = p->cont;
    for (size_t i = 0; i < n; i++) {
        const struct cvt_target *t = &p->lay->t[i];
        const struct fmt_tensor *s0 = &src->tensors[t->pieces[0].src];
        struct cvt_decision *d = &rep->d[i];
        if (!(d->name = sb_strdup(t->name)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
        d->ndim = t->ndim;
        memcpy(d->shape, t->shape, sizeof d->shape);
        d->from = s0->dtype;
        d->to = cvt_decide(t, s0->dtype, p->cont, o, &d->reason);
        if (d->to == SB_DTYPE_COUNT)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': rows of %lld fit neither %s's "
                              "type nor a fallback (llama-quantize refuses it too)", src->path,
                              t->name, (long long)t->shape[t->ndim - 1], cvt_mix_name(o->mix));
        for (size_t k = 0; k < t->n_pieces; k++) {
            const struct fmt_model *rs = o->report_src ? o->report_src : src;
            const struct fmt_tensor *st = &rs->tensors[t->pieces[k].src];
            uint64_t rows, cols;
            sb_shape_rows_cols(st->shape, st->ndim, &rows, &cols);
            d->in_bytes += rows ? st->nbytes / rows * t->pieces[k].nrows : 0;
        }
        if (d->to != d->from && !qnt_type_can_decode(d->from))
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s' is %s, which subbit cannot "
                              "re-encode (use --keep '%s')", src->path, t->name,
                              sb_dtype_name(d->from), t->name);
        if (!o->allow_requantize && lossier(src, t, d))
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s' is already quantized (%s); "
                              "re-quantizing it to %s needs --allow-requantize", src->path,
                              t->name, sb_dtype_name(d->from), sb_dtype_name(d->to));
        struct fmt_tensor *pt = &p->out[i];
        pt->name = d->name; /* borrowed: the writer copies */
        pt->dtype = d->to;
        pt->ndim = t->ndim;
        memcpy(pt->shape, t->shape, sizeof pt->shape);
        if (d->to == SB_DTYPE_INT8)
            pt->qp = o->qp;
        pt->map_index = -1;
        uint64_t elems = 0;
        sb_shape_numel(t->shape, t->ndim, &elems);
        if (sb_dtype_get(d->to)->flags & SB_DT_VARLEN) {
            pt->nbytes = 0;   /* known once encoded */
            if (o->dry_run)   /* a dry run reports the 2-bit tern size instead */
                sb_dtype_nbytes(SB_DTYPE_TERN, t->shape, t->ndim, NULL, &d->out_bytes);
        } else {
            if (sb_dtype_nbytes(d->to, t->shape, t->ndim, &pt->qp, &pt->nbytes) != SB_OK)
                return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' cannot be stored as %s",
                                  src->path, t->name, sb_dtype_name(d->to));
            d->out_bytes = pt->nbytes;
        }
        rep->in_bytes += d->in_bytes;
        rep->out_bytes += d->out_bytes;
        rep->params += elems;
    }
    return SB_OK;
}

/* ---- stream_tensor: one target's bytes to the writer --------------------------- */

/* Elements of f32 a row block holds: 32 MiB, so a quantized target never needs
 * its whole tensor in f32. Not smaller: each block is an OpenMP region, and
 * between short regions the workers spin while the main thread gathers and
 * writes (on the 1.25 GiB q8_0 bench 2 Mi-element blocks took 2.3-2.7 s where
 * the whole-tensor code took 1.5-1.7 s; 8 Mi took 2.0 s against 2.1-2.3). */
#define CVT_BLOCK_ELEMS ((uint64_t)1 << 23)
/* Elements a plain cast converts before writing them: 2 Mi, so the next slice
 * is cast while fmt_out writes this one. */
#define CVT_SLICE_ELEMS ((uint64_t)1 << 21)

static uint64_t block_elems(const struct cvt_opts *o)
{
    return o->block_elems ? o->block_elems : CVT_BLOCK_ELEMS;
}

/* A 64-byte aligned scratch buffer that only grows (its contents are not kept). */
struct abuf {
    void *p;
    size_t cap;
};

static void *abuf_get(struct abuf *b, uint64_t n)
{
    if (n > SIZE_MAX)
        return NULL;
    if (!n)
        n = 64;
    if (b->cap < n) {
        sb_free_aligned(b->p);
        b->cap = 0;
        if (!(b->p = sb_malloc_aligned((size_t)n)))
            return NULL;
        b->cap = (size_t)n;
    }
    return b->p;
}

struct stream {
    const struct plan *p;
    struct fmt_writer *w;
    struct abuf f32, back, out, tern;
    uint64_t zeros;           /* --stats: zeros decoded so far in the current tensor */
};

static int oom(const struct stream *s, uint64_t bytes, struct sb_err *err)
{
    return sb_err_set(err, SB_ENOMEM, "%s: out of memory for %llu bytes of scratch",
                      s->p->src->path, (unsigned long long)bytes);
}

/* Whether every x[0 .. n-1] is finite: no element's exponent bits all ones,
 * OR-ed over 8 lanes (a compare and an OR a lane, which the compiler keeps
 * in vector registers; the element-by-element isfinite() took 29 % of a
 * q4_0 convert's time). */
static bool all_finite(const float *x, uint64_t n)
{
    uint32_t bad[8] = { 0 };
    uint64_t e = 0;
    for (; e + 8 <= n; e += 8)
        for (int l = 0; l < 8; l++) {
            uint32_t u;
            memcpy(&u, x + e + l, 4);
            bad[l] |= -(uint32_t)((u & 0x7F800000u) == 0x7F800000u);
        }
    for (; e < n; e++) {
        uint32_t u;
        memcpy(&u, x + e, 4);
        bad[0] |= -(uint32_t)((u & 0x7F800000u) == 0x7F800000u);
    }
    uint32_t any = 0;
    for (int l = 0; l < 8; l++)
        any |= bad[l];
    return !any;
}

/* Values the target cannot hold (issue 13): a NaN/Inf weight, or a finite
 * one that comes out non-finite (a block scale past f16's 65504, an f16 or
 * bf16 cast overflowing). `in` holds n f32 values of rows row0.., cols each;
 * `back` (or NULL) the same values as written, decoded. SB_OK, or SB_EINVAL
 * naming tensor and row unless --allow-nonfinite. */
static int nonfinite_check(const struct stream *s, size_t i, const float *in, const float *back,
                           uint64_t n, uint64_t cols, uint64_t row0, struct sb_err *err)
{
    const struct plan *p = s->p;
    if (p->o->allow_nonfinite || ((!in || all_finite(in, n)) && (!back || all_finite(back, n))))
        return SB_OK;
    for (uint64_t e = 0; e < n; e++) {
        const bool bad_in = in && !isfinite(in[e]), bad_out = back && !isfinite(back[e]);
        if (!bad_in && !bad_out)
            continue;
        const struct cvt_decision *d = &p->rep->d[i];
        const unsigned long long row = (unsigned long long)(row0 + (cols ? e / cols : 0));
        if (bad_in)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s' row %llu: %s weight (pass "
                              "--allow-nonfinite to write it)", p->src->path, d->name, row,
                              isnan(in[e]) ? "NaN" : "infinite");
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s' row %llu: %g does not fit %s (%s; "
                          "pass --allow-nonfinite to write it)", p->src->path, d->name, row,
                          in ? (double)in[e] : 0.0, sb_dtype_name(d->to),
                          is_plain_float(d->to) ? "the cast overflows"
                                                : "its block scale overflows f16");
    }
    return SB_OK;
}

/* A target that is one whole source tensor, unpermuted. */
static bool whole_source(const struct plan *p, const struct cvt_target *t)
{
    const struct fmt_tensor *s0 = &p->src->tensors[t->pieces[0].src];
    uint64_t rows = 0, cols = 0;
    sb_shape_rows_cols(s0->shape, s0->ndim, &rows, &cols);
    return t->n_pieces == 1 && t->perm == CVT_PERM_NONE && t->pieces[0].row0 == 0 &&
           t->pieces[0].nrows == rows;
}

/* The source bytes as they are (an unchanged encoding): straight from the map
 * when the target is one whole source tensor, else gathered (renamed, stacked
 * or permuted rows). A variable-length blob (sub1, sub1-qmoe) goes only whole:
 * its rows are not byte ranges (stream_tensor re-encodes the others). */
static int copy_tensor(struct stream *s, size_t i, struct sb_err *err)
{
    const struct plan *p = s->p;
    const struct cvt_target *t = &p->lay->t[i];
    const struct fmt_tensor *s0 = &p->src->tensors[t->pieces[0].src];
    struct cvt_decision *d = &p->rep->d[i];
    const uint64_t nbytes = p->out[i].nbytes;
    if (sb_dtype_get(d->to)->flags & SB_DT_VARLEN) {
        d->out_bytes = s0->nbytes;   /* known now */
        return fmt_writer_put(s->w, i, s0->data, s0->nbytes, err);
    }
    if (whole_source(p, t) && s0->nbytes == nbytes)
        return fmt_writer_put(s->w, i, s0->data, nbytes, err);
    void *out = abuf_get(&s->out, nbytes);
    int r;
    if (!out)
        return oom(s, nbytes, err);
    if ((r = cvt_layout_gather_bytes(p->lay, i, p->src, out, nbytes, err)) != SB_OK)
        return r;
    return fmt_writer_put(s->w, i, out, nbytes, err);
}

/* A plain float cast of one whole source tensor (the common bf16/f16 job):
 * straight from the map; where the container takes pieces, a slice at a time,
 * so that casting the next slice overlaps writing this one (fmt_out writes in
 * the background). */
/* the cast slice [e0, e0+m): a NaN in or an overflow makes an all-ones
 * exponent in the output, so the output codes are scanned (cheap) and only a
 * hit is decoded for the message (nonfinite_check) */
static bool code_nonfinite(enum sb_dtype dt, const uint8_t *p)
{
    uint16_t h;
    uint32_t u;
    uint64_t q;
    switch (dt) {
    case SB_DTYPE_F16: memcpy(&h, p, 2); return (h & 0x7C00u) == 0x7C00u;
    case SB_DTYPE_BF16: memcpy(&h, p, 2); return (h & 0x7F80u) == 0x7F80u;
    case SB_DTYPE_F32: memcpy(&u, p, 4); return (u & 0x7F800000u) == 0x7F800000u;
    case SB_DTYPE_F64:
        memcpy(&q, p, 8);
        return (q & 0x7FF0000000000000ull) == 0x7FF0000000000000ull;
    default: return false;
    }
}

static int cast_check(struct stream *s, size_t i, const void *in, const void *out, uint64_t e0,
                      uint64_t m, struct sb_err *err)
{
    const struct cvt_decision *d = &s->p->rep->d[i];
    const struct cvt_target *t = &s->p->lay->t[i];
    const uint64_t cols = t->ndim ? (uint64_t)t->shape[t->ndim - 1] : 1;
    const size_t fsz = sb_dtype_get(d->from)->type_size, tsz = sb_dtype_get(d->to)->type_size;
    /* the common case, no hit, in one vectorisable pass over aligned codes */
    unsigned hit = 0;
    if (tsz == 2) {
        const uint16_t *h = out, mask = d->to == SB_DTYPE_F16 ? 0x7C00u : 0x7F80u;
        for (uint64_t e = 0; e < m; e++)
            hit |= (h[e] & mask) == mask;
    } else if (tsz == 4) {
        const uint32_t *u = out;
        for (uint64_t e = 0; e < m; e++)
            hit |= (u[e] & 0x7F800000u) == 0x7F800000u;
    } else {
        hit = 1;
    }
    for (uint64_t e = 0; hit && e < m; e++)
        if (code_nonfinite(d->to, (const uint8_t *)out + e * tsz)) {
            float a, b;
            qnt_convert_plain(d->from, (const uint8_t *)in + e * fsz, SB_DTYPE_F32, &a, 1);
            qnt_convert_plain(d->to, (const uint8_t *)out + e * tsz, SB_DTYPE_F32, &b, 1);
            return nonfinite_check(s, i, &a, &b, 1, 1, cols ? (e0 + e) / cols : 0, err);
        }
    return SB_OK;
}

static int cast_tensor(struct stream *s, size_t i, struct sb_err *err)
{
    const struct plan *p = s->p;
    const struct cvt_target *t = &p->lay->t[i];
    const struct cvt_decision *d = &p->rep->d[i];
    const struct fmt_tensor *s0 = &p->src->tensors[t->pieces[0].src];
    const uint64_t nbytes = p->out[i].nbytes;
    uint64_t elems = 0;
    sb_shape_numel(t->shape, t->ndim, &elems);
    const bool pieces = elems > 0 && fmt_writer_streams(s->w, i);
    const uint64_t step = pieces ? (p->o->block_elems ? p->o->block_elems : CVT_SLICE_ELEMS)
                                 : elems;
    const size_t fsz = sb_dtype_get(d->from)->type_size, tsz = sb_dtype_get(d->to)->type_size;
    uint8_t *out = abuf_get(&s->out, step * tsz);
    int r;
    if (!out)
        return oom(s, step * tsz, err);
    for (uint64_t e0 = 0; e0 < elems; e0 += step) {
        uint64_t m = elems - e0 < step ? elems - e0 : step;
        if ((r = plain_cast_parallel(d->from, (const uint8_t *)s0->data + e0 * fsz, d->to, out,
                                     m)) != SB_OK)
            return sb_err_set(err, r, "tensor '%s': cannot cast %s to %s", t->name,
                              sb_dtype_name(d->from), sb_dtype_name(d->to));
        if (!p->o->allow_nonfinite && (r = cast_check(s, i, (const uint8_t *)s0->data + e0 * fsz,
                                                      out, e0, m, err)) != SB_OK)
            return r;
        if (pieces && (r = fmt_writer_put_piece(s->w, i, out, m * tsz, nbytes, err)) != SB_OK)
            return r;
    }
    return pieces ? SB_OK : fmt_writer_put(s->w, i, out, nbytes, err);
}

/* --stats: the block's f32 against the bytes written, decoded back */
static int stats_add(struct stream *s, struct qnt_err_stats *st, enum sb_dtype to,
                     const void *blob, uint64_t nbytes, uint64_t rows, uint64_t cols,
                     const struct sb_qparams *qp, uint64_t r0, uint64_t n, const float *ref)
{
    float *back = abuf_get(&s->back, n * cols * sizeof(float));
    if (!back)
        return SB_ENOMEM;
    if (qnt_decode_rows(to, blob, nbytes, (size_t)rows, (size_t)cols, qp, (size_t)r0, (size_t)n,
                        back) == SB_OK) {
        qnt_err_stats_add(st, ref, back, (size_t)(n * cols));
        for (uint64_t e = 0; e < n * cols; e++)   /* written values that are exactly 0 */
            s->zeros += back[e] == 0.0f;
    } else
        st->n = UINT64_MAX;   /* undecodable: no statistics */
    return SB_OK;
}

/* Any other target: f32 rows a block at a time (cvt_layout_gather_f32_rows),
 * each block encoded at once (the row-block encoder, qnt_quantize_rows_at):
 * row-contiguous encodings go to the writer block by block where the
 * container takes pieces; int8 (codes, then scales) fills the whole blob
 * first; variable-length ones collect tern bytes, then encode the tensor. */
/* rows at..at+n of the blob just written (rows r0.. of the tensor), decoded:
 * a finite input that comes back non-finite cannot be held */
static int written_check(struct stream *s, size_t i, const void *blob, uint64_t nbytes,
                         uint64_t rows, uint64_t cols, const struct sb_qparams *qp, uint64_t at,
                         uint64_t n, uint64_t r0, const float *in, struct sb_err *err)
{
    const enum sb_dtype to = s->p->rep->d[i].to;
    float *back = abuf_get(&s->back, n * cols * sizeof(float));
    if (!back)
        return oom(s, n * cols * sizeof(float), err);
    if (qnt_decode_rows(to, blob, nbytes, (size_t)rows, (size_t)cols, qp, (size_t)at, (size_t)n,
                        back) != SB_OK)
        return SB_OK;   /* nothing to compare */
    if (all_finite(back, n * cols))
        return SB_OK;
    for (uint64_t e = 0; e < n * cols; e++)
        if (!isfinite(back[e])) {
            /* the row's largest magnitude is what the scale could not hold */
            const float *row = in + e / cols * cols;
            float big = 0.0f;
            for (uint64_t j = 0; j < cols; j++)
                big = fabsf(row[j]) > fabsf(big) ? row[j] : big;
            return nonfinite_check(s, i, &big, back + e, 1, 1, r0 + e / cols, err);
        }
    return SB_OK;
}

/* Source pages are mapped in page-cache folios, and Linux maps a large folio
 * whole (up to PMD size, 2 MiB on x86-64; ext4 reads into them since 6.16
 * with readahead windows of MiB), so reading a tensor can bring in up to this
 * much of its neighbours at each end. */
#define CVT_MAP_FOLIO ((uint64_t)2 << 20)

/* source tensor st's pages given back (a later read maps them again), with
 * whatever a folio at each end brought in */
static void release_src(const struct fmt_model *src, const struct fmt_tensor *st)
{
    fmt_model_release_around(src, st, CVT_MAP_FOLIO);
}

static void release_target(const struct plan *p, size_t i)
{
    const struct cvt_target *t = &p->lay->t[i];
    for (size_t k = 0; k < t->n_pieces; k++)
        release_src(p->src, &p->src->tensors[t->pieces[k].src]);
}

/* Rows r0..r0+n of target i as f32 into f32 (n * cols floats). A stacked
 * target (GGUF's ffn_*_exps: one source tensor an expert) is read a piece at
 * a time, each piece given back once all its rows are read, so only one of
 * its sources is resident at once; *k is the first piece not yet given back,
 * *row its first target row (0, 0 before the first block). Permuted rows are
 * given back with the tensor. */
static int gather_rows(const struct plan *p, size_t i, uint64_t r0, uint64_t n, uint64_t cols,
                       float *f32, size_t *k, uint64_t *row, struct sb_err *err)
{
    const struct cvt_target *t = &p->lay->t[i];
    if (t->perm != CVT_PERM_NONE || t->n_pieces < 2)
        return cvt_layout_gather_f32_rows(p->lay, i, p->src, r0, n, f32, err);
    for (uint64_t at = r0; at < r0 + n;) {
        while (*k < t->n_pieces && *row + t->pieces[*k].nrows <= at) {
            release_src(p->src, &p->src->tensors[t->pieces[*k].src]);
            *row += t->pieces[(*k)++].nrows;
        }
        if (*k == t->n_pieces)
            return sb_err_set(err, SB_EINVAL, "tensor '%s': row %llu past its pieces", t->name,
                              (unsigned long long)at);
        const uint64_t pend = *row + t->pieces[*k].nrows, end = pend < r0 + n ? pend : r0 + n;
        const int r = cvt_layout_gather_f32_rows(p->lay, i, p->src, at, end - at,
                                                 f32 + (at - r0) * cols, err);
        if (r != SB_OK)
            return r;
        at = end;
    }
    return SB_OK;
}

static int encode_tensor(struct stream *s, size_t i, struct sb_err *err)
{
    const struct plan *p = s->p;
    const struct cvt_target *t = &p->lay->t[i];
    struct cvt_decision *d = &p->rep->d[i];
    const struct fmt_tensor *pt = &p->out[i];
    const struct qnt_type *qt = qnt_type_get(d->to);
    const bool varlen = qt && (qt->flags & QNT_T_VARLEN), stats = p->o->stats;
    uint64_t rows = 0, cols = 0, nbytes = pt->nbytes;
    sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
    const uint64_t rb = varlen ? 0 : qnt_type_row_bytes(d->to, (size_t)cols, &pt->qp);
    const bool pieces = rb && rows && fmt_writer_streams(s->w, i);
    uint64_t per = block_elems(p->o) / (cols ? cols : 1);
    per = per < 1 ? 1 : per > rows ? rows : per;
    const uint64_t trb = qnt_tern_row_bytes((size_t)cols);
    const uint64_t out_need = varlen ? qt->encode_bound((size_t)rows, (size_t)cols)
                              : pieces ? per * rb : nbytes;
    float *f32 = abuf_get(&s->f32, per * cols * sizeof(float));
    uint8_t *out = abuf_get(&s->out, out_need);
    uint8_t *tern = varlen ? abuf_get(&s->tern, rows * trb) : NULL;
    struct qnt_err_stats st;
    int r;
    size_t pk = 0;
    uint64_t prow = 0;
    memset(&st, 0, sizeof st);
    s->zeros = 0;
    if (!f32 || !out || (varlen && !tern))
        return oom(s, out_need, err);
    for (uint64_t r0 = 0; r0 < rows; r0 += per) {
        const uint64_t n = rows - r0 < per ? rows - r0 : per;
        if ((r = gather_rows(p, i, r0, n, cols, f32, &pk, &prow, err)) != SB_OK ||
            (r = nonfinite_check(s, i, f32, NULL, n * cols, cols, r0, err)) != SB_OK)
            return r;
        if (varlen) {
            qnt_tern_quantize_rows(f32, (size_t)n, (size_t)cols, tern + r0 * trb);
            continue;
        }
        /* a row-contiguous piece is a blob of its own rows; else rows in the whole blob */
        const uint64_t at = pieces ? 0 : r0, of = pieces ? n : rows;
        if ((r = qnt_quantize_rows_at(d->to, f32, (size_t)at, (size_t)n, (size_t)of,
                                      (size_t)cols, &pt->qp, out)) != SB_OK)
            return sb_err_set(err, r, "tensor '%s': cannot encode as %s", t->name,
                              sb_dtype_name(d->to));
        if (stats && stats_add(s, &st, d->to, out, pieces ? n * rb : nbytes, of, cols, &pt->qp,
                               at, n, f32))
            return oom(s, n * cols * sizeof(float), err);
        if (!p->o->allow_nonfinite && (r = written_check(s, i, out, pieces ? n * rb : nbytes, of,
                                                         cols, &pt->qp, at, n, r0, f32, err)))
            return r;
        if (pieces && (r = fmt_writer_put_piece(s->w, i, out, n * rb, nbytes, err)) != SB_OK)
            return r;
    }
    if (varlen) {
        if ((r = qt->encode(tern, (size_t)rows, (size_t)cols, out, (size_t)out_need,
                            &nbytes)) != SB_OK)
            return sb_err_set(err, r, "tensor '%s': %s encoding failed", t->name,
                              sb_dtype_name(d->to));
        d->out_bytes = nbytes;
        /* --stats decodes what was written: the f32 rows again, block by block */
        pk = 0;
        prow = 0;
        for (uint64_t r0 = 0; stats && r0 < rows; r0 += per) {
            const uint64_t n = rows - r0 < per ? rows - r0 : per;
            if ((r = gather_rows(p, i, r0, n, cols, f32, &pk, &prow, err)) != SB_OK)
                return r;
            if (stats_add(s, &st, d->to, out, nbytes, rows, cols, NULL, r0, n, f32))
                return oom(s, n * cols * sizeof(float), err);
        }
    }
    if (stats && st.n != UINT64_MAX) {
        qnt_err_stats_finish(&st);
        d->zero_fraction = rows && cols ? (double)s->zeros / ((double)rows * (double)cols) : 0;
        d->has_stats = true;
        d->rmse = st.rmse;
        d->sqnr_db = st.sqnr_db;
        d->max_abs = st.max_abs;
    }
    return pieces ? SB_OK : fmt_writer_put(s->w, i, out, nbytes, err);
}

/* Ternary symbols already chosen (by GPTQ, say) into sub1 / sub1-qmoe: coded
 * as they are, levels and all (decoding to f32 and re-rounding would give the
 * same values but could rewrite an unused level). */
static int recode_tern(struct stream *s, size_t i, struct sb_err *err)
{
    const struct plan *p = s->p;
    const struct cvt_target *t = &p->lay->t[i];
    struct cvt_decision *d = &p->rep->d[i];
    const struct fmt_tensor *s0 = &p->src->tensors[t->pieces[0].src];
    const struct qnt_type *qt = qnt_type_get(d->to);
    uint64_t rows = 0, cols = 0, nbytes = 0;
    sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
    const uint64_t need = qt->encode_bound((size_t)rows, (size_t)cols);
    uint8_t *out = abuf_get(&s->out, need);
    int r;
    if (!out)
        return oom(s, need, err);
    if ((r = qt->encode(s0->data, (size_t)rows, (size_t)cols, out, (size_t)need, &nbytes)) != SB_OK)
        return sb_err_set(err, r, "tensor '%s': %s encoding failed", t->name, sb_dtype_name(d->to));
    d->out_bytes = nbytes;
    return fmt_writer_put(s->w, i, out, nbytes, err);
}

/* how stream_tensor moves plan entry i */
enum stream_how { HOW_COPY, HOW_CAST, HOW_RECODE, HOW_ENCODE };

static enum stream_how stream_how(const struct plan *p, size_t i)
{
    const struct cvt_target *t = &p->lay->t[i];
    const struct cvt_decision *d = &p->rep->d[i];
    bool same = d->to == d->from;
    for (size_t k = 1; k < t->n_pieces; k++)
        same = same && p->src->tensors[t->pieces[k].src].dtype == d->from;
    /* a variable-length blob's rows are not byte ranges: unless it goes whole,
     * it is decoded and coded again, which is exact for ternary weights */
    if ((sb_dtype_get(d->to)->flags & SB_DT_VARLEN) && !whole_source(p, t))
        same = false;
    /* unchanged bytes are copied (--stats has nothing to compare when the
     * encoding cannot be decoded) */
    if (same && (!p->o->stats || !qnt_type_can_decode(d->from)))
        return HOW_COPY;
    const bool one = !p->o->stats && t->n_pieces == 1 && t->perm == CVT_PERM_NONE &&
                     t->pieces[0].row0 == 0;
    if (one && is_plain_float(d->from) && is_plain_float(d->to))
        return HOW_CAST;
    if (one && d->from == SB_DTYPE_TERN && (sb_dtype_get(d->to)->flags & SB_DT_VARLEN))
        return HOW_RECODE;
    return HOW_ENCODE;
}

static int stream_tensor(struct stream *s, size_t i, struct sb_err *err)
{
    switch (stream_how(s->p, i)) {
    case HOW_COPY: return copy_tensor(s, i, err);
    case HOW_CAST: return cast_tensor(s, i, err);
    case HOW_RECODE: return recode_tern(s, i, err);
    default: return encode_tensor(s, i, err);
    }
}

/* ---- the memory cap ------------------------------------------------------------- */

/* Row blocks sized to the cap: the f32 block, its encoded copy and (--stats)
 * its decoded copy are each at most a sixteenth of what the cap leaves. */
static uint64_t cap_block_elems(uint64_t cap)
{
    const uint64_t left = cap > CVT_MEM_FIXED ? cap - CVT_MEM_FIXED : 0;
    uint64_t b = left / 16 / sizeof(float);
    return b < 4096 ? 4096 : b > CVT_BLOCK_ELEMS ? CVT_BLOCK_ELEMS : b;
}

/* bytes of source piece k of target t */
static uint64_t piece_bytes(const struct plan *p, const struct cvt_target *t, size_t k)
{
    const struct fmt_tensor *st = &p->src->tensors[t->pieces[k].src];
    uint64_t rows = 0, cols = 0;
    sb_shape_rows_cols(st->shape, st->ndim, &rows, &cols);
    return rows ? st->nbytes / rows * t->pieces[k].nrows : 0;
}

/* Source bytes resident at once while target i is converted: a stacked
 * target's largest piece when it is encoded (gather_rows), else all of its
 * sources. Not counted: the folios the kernel maps around them
 * (CVT_MAP_FOLIO; release_src gives those back too), which CVT_MEM_FIXED's
 * allowance has absorbed in every run measured (t1230: peaks 15-30 % under
 * the prediction, on a kernel mapping 2 MiB folios with 8 MiB readahead). */
static uint64_t source_window(const struct plan *p, size_t i, bool encoded)
{
    const struct cvt_target *t = &p->lay->t[i];
    uint64_t all = 0, most = 0;
    for (size_t k = 0; k < t->n_pieces; k++) {
        const uint64_t b = piece_bytes(p, t, k);
        all += b;
        most = b > most ? b : most;
    }
    return encoded && t->perm == CVT_PERM_NONE && t->n_pieces > 1 ? most : all;
}

/* Bytes resident while plan entry i is converted: its source pages (mapped,
 * released after it; a stacked target's piece by piece), three row blocks,
 * and what must be whole: a variable-length code's ternary symbols and
 * encoding bound, the whole output where the writer takes it only whole, or
 * a copy gathered from several pieces. */
static uint64_t tensor_need(const struct plan *p, size_t i, bool streams)
{
    const struct cvt_target *t = &p->lay->t[i];
    const struct cvt_decision *d = &p->rep->d[i];
    const struct qnt_type *qt = qnt_type_get(d->to);
    const bool enc = stream_how(p, i) == HOW_ENCODE;
    uint64_t rows = 0, cols = 0;
    sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
    uint64_t per = block_elems(p->o) / (cols ? cols : 1);
    per = per < 1 ? 1 : per > rows ? rows : per;
    uint64_t need = CVT_MEM_FIXED + source_window(p, i, enc) +
                    3 * per * cols * sizeof(float);
    if (qt && (qt->flags & QNT_T_VARLEN))
        need += rows * qnt_tern_row_bytes((size_t)cols) +
                qt->encode_bound((size_t)rows, (size_t)cols);
    else if (!streams || !qnt_type_row_bytes(d->to, (size_t)cols, &p->out[i].qp) ||
             (!enc && !whole_source(p, t)))
        need += p->out[i].nbytes;
    return need;
}

/* The most any plan entry needs resident while it is converted (they are
 * converted one at a time), and which (*at): what --max-memory is checked
 * against and `subbit mem --for convert` predicts. w: the writer (NULL:
 * what the container's writer would do, fmt_container_streams). */
static uint64_t plan_peak(const struct plan *p, const struct fmt_writer *w, size_t *at)
{
    uint64_t most = 0;
    *at = 0;
    for (size_t i = 0; i < p->lay->n; i++) {
        const bool streams = w ? fmt_writer_streams(w, i)
                               : fmt_container_streams(p->cont, p->out[i].dtype);
        const uint64_t need = tensor_need(p, i, streams);
        if (need > most) {
            most = need;
            *at = i;
        }
    }
    return most;
}

/* the plan's peak against o->max_memory; w as for plan_peak */
static int cap_check(const struct plan *p, const struct fmt_writer *w, const char *out_path,
                     struct sb_err *err)
{
    const uint64_t cap = p->o->max_memory;
    size_t i;
    const uint64_t need = cap ? plan_peak(p, w, &i) : 0;
    if (need > cap)
        return sb_err_set(err, SB_ENOMEM, "%s: tensor '%s' needs %llu MiB resident (%s, "
                          "%llu MiB of source), above --max-memory %llu MiB", out_path,
                          p->lay->t[i].name, (unsigned long long)(need >> 20),
                          sb_dtype_name(p->rep->d[i].to),
                          (unsigned long long)(p->rep->d[i].in_bytes >> 20),
                          (unsigned long long)(cap >> 20));
    return SB_OK;
}

/* o with row blocks that fit its cap, in *capped where it has one */
static const struct cvt_opts *cap_opts(const struct cvt_opts *o, struct cvt_opts *capped)
{
    if (!o->max_memory || o->block_elems)
        return o;
    *capped = *o;
    capped->block_elems = cap_block_elems(o->max_memory);
    return capped;
}

int cvt_convert_memory(const struct fmt_model *src, const char *out_path,
                       const struct cvt_opts *o, struct cvt_convert_mem *m, struct sb_err *err)
{
    struct cvt_opts capped;
    struct plan p;
    memset(m, 0, sizeof *m);
    o = cap_opts(o, &capped);
    int r = plan_make(&p, src, out_path, o, err);
    if (r == SB_OK && p.lay->n) {
        size_t i;
        m->peak = plan_peak(&p, NULL, &i);
        m->block_elems = block_elems(p.o);
        m->fixed = CVT_MEM_FIXED;
        snprintf(m->tensor, sizeof m->tensor, "%s", p.lay->t[i].name);
        m->to = p.rep->d[i].to;
        m->out_bytes = p.out[i].nbytes;
        r = cap_check(&p, NULL, out_path, err);
    }
    plan_release(&p);
    return r;
}

/* ---- write: metadata, the writer, every tensor, commit --------------------------- */

/* general.file_type (llama.cpp's LLAMA_FTYPE_*) of what is written: a GGUF
 * source's own value when every tensor keeps its encoding; otherwise the
 * value of the encoding most matrices (tensors of 2 or more dims) get, more
 * parameters breaking a tie, as llama.cpp guesses a file type that is not
 * stored; 0 (all f32) when the matrices are f32 or have no GGUF file type. */
static uint32_t file_type(const struct plan *p)
{
    const struct cvt_report *rep = p->rep;
    if (p->o->mix)
        return cvt_mix_ftype(p->o->mix);
    bool same = true;
    for (size_t i = 0; i < rep->n; i++)
        same = same && rep->d[i].to == rep->d[i].from;
    const struct fmt_kv *ft = fmt_model_find_kv(p->src, "general.file_type");
    if (same && p->src->container == FMT_CONT_GGUF && ft &&
        (ft->type == FMT_KV_U32 || ft->type == FMT_KV_I32) && ft->u < 1024)
        return (uint32_t)ft->u;
    size_t count[SB_DTYPE_COUNT] = { 0 };
    uint64_t params[SB_DTYPE_COUNT] = { 0 };
    for (size_t i = 0; i < rep->n; i++) {
        const struct cvt_decision *d = &rep->d[i];
        uint64_t n = 0;
        if (d->ndim < 2 || (unsigned)d->to >= SB_DTYPE_COUNT)
            continue;
        sb_shape_numel(d->shape, d->ndim, &n);
        count[d->to]++;
        params[d->to] += n;
    }
    int best = -1;
    for (int dt = 0; dt < SB_DTYPE_COUNT; dt++)
        if (count[dt] && (best < 0 || count[dt] > count[best] ||
                          (count[dt] == count[best] && params[dt] > params[best])))
            best = dt;
    return best < 0 ? 0 : qnt_type_gguf_ftype((enum sb_dtype)best);
}

/* The destination's metadata in wo: GGUF kv (fmt_gguf_kv_build plus the file
 * type), or config.json, side files and safetensors __metadata__. */
static int write_meta(const struct plan *p, const char *out_path, struct fmt_write_opts *wo,
                      struct fmt_kv **kv, size_t *n_kv, char **config, struct tok_side *ts,
                      struct sb_err *err)
{
    const struct fmt_model *src = p->src;
    const struct cvt_opts *o = p->o;
    int r;
    memset(wo, 0, sizeof *wo);
    wo->flags = o->out_flags;
    wo->shard_size = o->shard_size;
    wo->arch = src->has_arch ? &src->arch : NULL;
    /* GGUF: fmt_gguf_kv_build already carries the tokenizer.ggml.* keys */
    wo->vocab = src->vocab.kind != FMT_VOCAB_NONE && p->cont != FMT_CONT_GGUF ? &src->vocab : NULL;
    wo->alignment = src->gguf_alignment;
    if (p->cont == FMT_CONT_GGUF) {
        if ((r = fmt_gguf_kv_build(src, kv, n_kv, err)) != SB_OK)
            return r;
        /* in llama-quantize's order */
        if ((any_quantized(p->rep) && kv_set_u32(kv, n_kv, "general.quantization_version", 2)) ||
            kv_set_u32(kv, n_kv, "general.file_type", file_type(p)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
        wo->kv = *kv;
        wo->n_kv = *n_kv;
        return SB_OK;
    }
    if ((src->has_arch || src->config_json) &&
        (r = fmt_config_json_from_model(src, config, err)) != SB_OK)
        return r;
    /* config.json's torch_dtype follows a float target (transformers loads in it) */
    if (*config && o->to >= 0 && is_plain_float((enum sb_dtype)o->to) &&
        (r = fmt_config_json_set_dtype(config, sb_dtype_torch_name((enum sb_dtype)o->to),
                                       out_path, err)) != SB_OK)
        return r;
    wo->config_json = *config;
    wo->side_files = (const char *const *)src->side_files;
    wo->n_side_files = src->n_side_files;
    if (src->vocab.kind == FMT_VOCAB_SPM ||
        (src->vocab.kind == FMT_VOCAB_HF_JSON && src->container == FMT_CONT_GGUF)) {
        if ((r = tok_side_make(ts, src, out_path, err)) != SB_OK)
            return r;
        if (ts->n) {
            wo->side_files = ts->list;
            wo->n_side_files = ts->n;
        }
    }
    if (src->container == FMT_CONT_SAFETENSORS) {
        wo->kv = src->kv;   /* __metadata__ travels */
        wo->n_kv = src->n_kv;
    }
    return SB_OK;
}

/* ---- as an MPI job: every rank encodes its share and writes it --------------- */

/* Ranks split the plan into contiguous shares balanced by source bytes, and
 * each encodes its share with the same stream_tensor as one process.
 *
 * One-file containers (GGUF, .subbit) are written by every rank into one file
 * (issue 16): rank 0 opens the output (its temp file beside the target,
 * registered for signal cleanup) and the container's writer plans where each
 * tensor goes (fmt_writer_place); every rank opens that temp file (the output
 * folder must be on a file system every rank shares) and pwrites its own
 * tensors' bytes at their offsets; after the agreement that every rank's
 * bytes are in and fsynced, rank 0 writes what comes last (.subbit's header),
 * fsyncs and renames the file into place.
 *  - GGUF: every size follows from the shape, so the offsets are planned
 *    before any tensor is encoded (the header rank 0 wrote at open holds
 *    them) and each rank streams its tensors straight to their place: no
 *    scratch file, no second copy.
 *  - .subbit: a tensor is stored zstd-compressed when that pays (and sub1's
 *    size is only known once coded), so sizes are known after encoding. Each
 *    rank encodes its share first and holds the stored bytes: in memory up to
 *    its budget (what --max-memory leaves beside its largest tensor's work,
 *    else CVT_JOB_HOLD), the rest in a scratch file beside the output
 *    (OUT.rankN.subbit-tmp-*); the sizes are gathered, rank 0's writer plans
 *    the offsets in order, they are broadcast, and each rank pwrites its
 *    bytes there (a spilled tensor is written twice: scratch, then file).
 * Safetensors (one file, or a folder of shards with its index) keeps the
 * first design: each rank encodes into a scratch file, rank 0 maps them all
 * and gives every tensor, in the writer's order, to the writer it opened
 * before any work began (the data is written twice, by rank 0 the second
 * time).
 *
 * The bytes are the one-process bytes by construction: the same encoder, the
 * same container code choosing sizes, compression and offsets (padding is
 * zeros either way). Every step ends in par_agree, so any rank's failure
 * stops all, and the scratch files and the uncommitted output are removed. */

/* What a rank holds in memory of its .subbit tensors' stored bytes before
 * their offsets are known, without --max-memory. */
#define CVT_JOB_HOLD ((uint64_t)1 << 30)

/* what a rank tells the others of one tensor it encoded */
struct job_rec {
    uint64_t i, off, size;       /* plan index; the tensor's size bytes at off in the
                                  * rank's scratch file (stored bytes for .subbit) */
    uint64_t has_stats;
    double rmse, sqnr_db, max_abs, zero_fraction;
    struct fmt_placed pl;        /* one-file containers: its bytes as stored */
};

/* the order of a writer for plan entries [lo, hi) */
static int job_order(struct fmt_writer *w, const struct fmt_writer_ops *ops, size_t lo, size_t hi,
                     struct job_rec **rec, const char *out_path, struct sb_err *err)
{
    const size_t m = hi - lo;
    if (!(w->order = sb_calloc(m ? m : 1, sizeof *w->order)) ||
        !(*rec = sb_calloc(m ? m : 1, sizeof **rec)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
    w->ops = ops;
    w->n = m;
    for (size_t k = 0; k < m; k++)
        w->order[k] = lo + k;
    return SB_OK;
}

/* OUT.rankN, beside the output (a folder output: beside the folder) */
static void rank_name(char *name, size_t cap, const char *out_path)
{
    size_t len = strlen(out_path);
    while (len > 1 && out_path[len - 1] == '/')
        len--;
    snprintf(name, cap, "%.*s.rank%d", (int)(len < 4000 ? len : 4000), out_path, par_rank());
}

/* -- one-file containers: every rank writes its tensors at their offsets -- */

struct place_writer {
    struct fmt_writer w;         /* first: the writer calls come through it */
    const struct plan *p;
    const char *out_path;
    struct job_rec *rec;         /* [w.n] */
    bool direct;                 /* GGUF: straight to the output (offsets known) */
    int fd;                      /* rank 0's temp output, opened for writing, or -1 */
    const char *file;            /* its name (for messages) */
    const uint64_t *off;         /* [plan n]: where each tensor goes */
    /* .subbit: the stored bytes held until the offsets are known */
    uint8_t **blob;              /* [w.n]: in memory, or NULL (in the scratch file) */
    uint64_t held, hold_cap;     /* bytes in memory; the budget for them */
    struct fmt_out scratch;      /* the rest (created when first needed) */
    void *zbuf;                  /* fmt_sbc_stored's compression buffer */
    size_t zcap;
};

static int place_put(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                     struct sb_err *err)
{
    struct place_writer *pw = (struct place_writer *)w;
    struct job_rec *rec = &pw->rec[w->next];
    const void *st = NULL;
    int r;
    rec->i = i;
    rec->size = n;
    if (pw->direct) {
        rec->pl.nbytes = rec->pl.stored = n;
        return n ? fmt_out_write_at(pw->fd, data, (size_t)n, pw->off[i], pw->file, err) : SB_OK;
    }
    if ((r = fmt_sbc_stored(&pw->p->out[i], data, n, &pw->zbuf, &pw->zcap, &st, &rec->pl,
                            pw->out_path, err)) != SB_OK)
        return r;
    const uint64_t m = rec->pl.stored;
    if (m == 0)
        return SB_OK;
    if (pw->held + m <= pw->hold_cap) {
        if (!(pw->blob[w->next] = sb_malloc((size_t)m)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory for %llu bytes", pw->out_path,
                              (unsigned long long)m);
        memcpy(pw->blob[w->next], st, (size_t)m);
        pw->held += m;
        return SB_OK;
    }
    if (!pw->scratch.tmp) {
        char name[4096];
        rank_name(name, sizeof name, pw->out_path);
        if ((r = fmt_out_open(&pw->scratch, name, FMT_OUT_FORCE, err)) != SB_OK)
            return r;
    }
    rec->off = fmt_out_tell(&pw->scratch);
    return fmt_out_write(&pw->scratch, st, (size_t)m, err);
}

static int place_piece(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                       uint64_t off, uint64_t total, struct sb_err *err)
{
    struct place_writer *pw = (struct place_writer *)w;
    struct job_rec *rec = &pw->rec[w->next];
    rec->i = i;
    rec->size = rec->pl.nbytes = rec->pl.stored = total;
    return n ? fmt_out_write_at(pw->fd, data, (size_t)n, pw->off[i] + off, pw->file, err) : SB_OK;
}

static bool place_streams(const struct fmt_writer *w, size_t i)
{
    (void)i;
    return ((const struct place_writer *)w)->direct;
}

static void place_release(struct place_writer *pw)
{
    if (pw->fd >= 0)
        close(pw->fd);
    for (size_t k = 0; pw->blob && k < pw->w.n; k++)
        sb_free(pw->blob[k]);
    fmt_out_abort(&pw->scratch);
    sb_free(pw->blob);
    sb_free(pw->rec);
    sb_free(pw->w.order);
    sb_free(pw->zbuf);
    memset(pw, 0, sizeof *pw);
    pw->fd = -1;
}

static int place_commit(struct fmt_writer *w, struct sb_err *err)
{
    return sb_err_set(err, SB_EINVAL, "place writer %p: never committed", (void *)w);
}

static void place_abort(struct fmt_writer *w)
{
    place_release((struct place_writer *)w);
}

static const struct fmt_writer_ops place_ops = { place_put, place_commit, place_abort,
                                                 place_piece, place_streams, NULL, NULL };

static int place_init(struct place_writer *pw, const struct plan *p, const char *out_path,
                      size_t lo, size_t hi, const uint64_t *off, const char *file,
                      struct sb_err *err)
{
    pw->p = p;
    pw->out_path = out_path;
    pw->direct = p->cont == FMT_CONT_GGUF;
    pw->off = off;
    pw->file = file;
    int r = job_order(&pw->w, &place_ops, lo, hi, &pw->rec, out_path, err);
    if (r != SB_OK || pw->direct)
        return r;
    if (!(pw->blob = sb_calloc(hi - lo ? hi - lo : 1, sizeof *pw->blob)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
    /* the held bytes sit beside the work of the largest tensor still to come */
    uint64_t need = 0;
    for (size_t i = lo; i < hi; i++) {
        const uint64_t t = tensor_need(p, i, false);
        need = t > need ? t : need;
    }
    const uint64_t cap = p->o->max_memory;
    pw->hold_cap = !cap ? CVT_JOB_HOLD : cap > need ? cap - need : 0;
    return SB_OK;
}

/* rank 0: where every tensor goes, from the writer (rec: the gathered
 * records, at[i] the one of plan entry i; NULL: the planned sizes) */
static int place_all(struct fmt_writer *w, const struct plan *p, const struct job_rec *rec,
                     const size_t *at, uint64_t *off, struct sb_err *err)
{
    int r = SB_OK;
    for (size_t k = 0; k < p->lay->n && r == SB_OK; k++) {
        const size_t i = fmt_writer_order(w, k);
        struct fmt_placed pl = { p->out[i].nbytes, p->out[i].nbytes, 0, 0 };
        r = fmt_writer_place(w, i, rec ? &rec[at[i]].pl : &pl, &off[i], err);
    }
    return r;
}

/* every rank: rank 0's temp file name and the offsets, then that file opened */
static int place_open(struct place_writer *pw, const struct fmt_writer *w, char *file,
                      uint64_t *off, size_t n, struct sb_err *err)
{
    if (w)
        snprintf(file, PATH_MAX, "%s", fmt_writer_file(w));
    int r = par_bcast(file, PATH_MAX, 0, err);
    if (r == SB_OK)
        r = par_bcast(off, n * sizeof *off, 0, err);
    if (r != SB_OK)
        return r;
    file[PATH_MAX - 1] = '\0';
    if ((pw->fd = open(file, O_WRONLY | O_CLOEXEC)) < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open rank 0's temp output for writing: %s "
                          "(is the output on a file system every rank shares?)", file,
                          strerror(errno));
    return SB_OK;
}

/* every rank: its bytes on disk, the file closed */
static int place_close(struct place_writer *pw, struct sb_err *err)
{
    const int fd = pw->fd;
    pw->fd = -1;
    if (fsync(fd) != 0) {
        const int e = errno;
        close(fd);
        return sb_err_set(err, SB_EIO, "%s: fsync failed: %s", pw->file, strerror(e));
    }
    if (close(fd) != 0)
        return sb_err_set(err, SB_EIO, "%s: close failed: %s", pw->file, strerror(errno));
    return SB_OK;
}

/* .subbit: every held tensor to its offset (from memory, or the scratch file
 * a buffer at a time) */
static int place_held(struct place_writer *pw, struct stream *s, struct sb_err *err)
{
    const uint64_t step = (uint64_t)8 << 20;
    uint8_t *buf = NULL;
    int r = pw->scratch.tmp ? fmt_out_sync(&pw->scratch, err) : SB_OK;
    for (size_t k = 0; k < pw->w.n && r == SB_OK; k++) {
        const struct job_rec *q = &pw->rec[k];
        const uint64_t at = pw->off[q->i];
        if (pw->blob[k]) {
            r = fmt_out_write_at(pw->fd, pw->blob[k], (size_t)q->pl.stored, at, pw->file, err);
            sb_free(pw->blob[k]);
            pw->blob[k] = NULL;
            continue;
        }
        for (uint64_t o = 0; o < q->pl.stored && r == SB_OK; o += step) {
            const size_t c = (size_t)(q->pl.stored - o < step ? q->pl.stored - o : step);
            if (!buf && !(buf = abuf_get(&s->out, step)))
                return oom(s, step, err);
            const ssize_t got = pread(pw->scratch.fd, buf, c, (off_t)(q->off + o));
            if (got != (ssize_t)c)
                return sb_err_set(err, SB_EIO, "%s: cannot read back rank %d's scratch file: %s",
                                  pw->scratch.tmp, par_rank(),
                                  got < 0 ? strerror(errno) : "short read");
            r = fmt_out_write_at(pw->fd, buf, c, at + o, pw->file, err);
        }
    }
    return r;
}

/* -- other containers: scratch files, rank 0 writes -- */

/* the scratch writer: this rank's tensors, appended to one temp file */
struct scratch_writer {
    struct fmt_writer w;         /* first: the writer calls come through it */
    struct fmt_out out;
    struct job_rec *rec;         /* [w.n] */
};

static int scratch_piece(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                         uint64_t off, uint64_t total, struct sb_err *err)
{
    struct scratch_writer *sw = (struct scratch_writer *)w;
    struct job_rec *r = &sw->rec[w->next];
    (void)total;
    if (off == 0) {
        r->i = i;
        r->off = fmt_out_tell(&sw->out);
    }
    r->size = off + n;
    return fmt_out_write(&sw->out, data, (size_t)n, err);
}

static int scratch_put(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                       struct sb_err *err)
{
    return scratch_piece(w, i, data, n, 0, n, err);
}

static bool scratch_streams(const struct fmt_writer *w, size_t i)
{
    (void)w;
    (void)i;
    return true;
}

static int scratch_commit(struct fmt_writer *w, struct sb_err *err)
{
    return sb_err_set(err, SB_EINVAL, "scratch writer %p: never committed", (void *)w);
}

static void scratch_abort(struct fmt_writer *w)
{
    fmt_out_abort(&((struct scratch_writer *)w)->out);
}

static const struct fmt_writer_ops scratch_ops = { scratch_put, scratch_commit, scratch_abort,
                                                   scratch_piece, scratch_streams, NULL, NULL };

/* this rank's share of the plan: [*lo, *hi) */
static int job_share(const struct plan *p, size_t *lo, size_t *hi, struct sb_err *err)
{
    const size_t n = p->lay->n;
    uint64_t *cum = sb_malloc((n + 1) * sizeof *cum), a, b;
    if (!cum)
        return sb_err_set(err, SB_ENOMEM, "out of memory for %zu tensors", n);
    cum[0] = 0;
    for (size_t i = 0; i < n; i++)   /* +1: tensors of no bytes still count */
        cum[i + 1] = cum[i] + p->rep->d[i].in_bytes + 1;
    par_split(n, cum, par_rank(), par_size(), &a, &b);
    sb_free(cum);
    *lo = (size_t)a;
    *hi = (size_t)b;
    return SB_OK;
}

/* this rank's tensors [lo, hi) through w (its records in rec) */
static int job_encode(struct stream *s, struct fmt_writer *w, struct job_rec *rec,
                      const char *out_path, size_t lo, size_t hi, struct sb_err *err)
{
    const struct plan *p = s->p;
    int r;
    if (par_fault("convert"))
        return sb_err_set(err, SB_EIO, "%s: fault injected (SUBBIT_PAR_FAULT)", out_path);
    uint64_t done = 0, total = 0;
    for (size_t i = lo; i < hi; i++)
        total += p->rep->d[i].out_bytes;
    s->w = w;
    for (size_t k = 0; k < hi - lo; k++) {
        const size_t i = lo + k;
        const struct cvt_decision *d = &p->rep->d[i];
        if ((r = stream_tensor(s, i, err)) != SB_OK)
            return r;
        struct job_rec *q = &rec[k];
        q->has_stats = d->has_stats;
        q->rmse = d->rmse;
        q->sqnr_db = d->sqnr_db;
        q->max_abs = d->max_abs;
        q->zero_fraction = d->zero_fraction;
        release_target(p, i);
        done += q->size;
        sb_progress_report(&p->o->progress, done, total);
    }
    return SB_OK;
}

/* every rank: what each tensor became, from the gathered records; at[i] =
 * the record of plan entry i */
static int job_apply(struct plan *p, const struct job_rec *rec, uint64_t n_rec, size_t *at,
                     const char *out_path, struct sb_err *err)
{
    const size_t n = p->lay->n;
    if (n_rec != n)
        return sb_err_set(err, SB_EINVAL, "%s: ranks encoded %llu of %zu tensors", out_path,
                          (unsigned long long)n_rec, n);
    for (size_t k = 0; k < n; k++) {
        const struct job_rec *q = &rec[k];
        struct cvt_decision *d = &p->rep->d[q->i];
        at[q->i] = k;
        d->out_bytes = q->size;
        if (sb_dtype_get(d->to)->flags & SB_DT_VARLEN)
            p->rep->out_bytes += q->size;   /* known now */
        d->has_stats = q->has_stats != 0;
        d->rmse = q->rmse;
        d->sqnr_db = q->sqnr_db;
        d->max_abs = q->max_abs;
        d->zero_fraction = q->zero_fraction;
    }
    return SB_OK;
}

/* rank 0: every tensor from the scratch files, in the writer's order */
static int job_write(struct fmt_writer *w, const struct job_rec *rec, const size_t *at, size_t n,
                     uint8_t *const *map, const int *owner, struct sb_err *err)
{
    const uint64_t step = (uint64_t)64 << 20;
    int r = SB_OK;
    for (size_t k = 0; k < n && r == SB_OK; k++) {
        const size_t i = fmt_writer_order(w, k);
        const struct job_rec *q = &rec[at[i]];
        const uint8_t *b = map[owner[i]] + q->off;
        if (!fmt_writer_streams(w, i) || q->size == 0) {
            r = fmt_writer_put(w, i, b, q->size, err);
            continue;
        }
        for (uint64_t o = 0; o < q->size && r == SB_OK; o += step)
            r = fmt_writer_put_piece(w, i, b + o, q->size - o < step ? q->size - o : step,
                                     q->size, err);
    }
    if (r != SB_OK) {   /* the caller takes the writer as committed or aborted */
        fmt_writer_abort(w);
        return r;
    }
    return fmt_writer_commit(w, err);
}

/* the scratch files of all ranks, mapped (rank 0) */
static int job_map(const char *paths, const uint64_t *plen, int size, uint8_t **map,
                   size_t *maplen, struct sb_err *err)
{
    const char *pth = paths;
    for (int r = 0; r < size; pth += plen[r], r++) {
        struct stat st;
        int fd = open(pth, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
            if (fd >= 0)
                close(fd);
            return sb_err_set(err, SB_EIO, "%s: rank %d's scratch file cannot be read (is the "
                              "output on a file system every rank shares?)", pth, r);
        }
        maplen[r] = (size_t)st.st_size;
        if (maplen[r]) {
            void *m = mmap(NULL, maplen[r], PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED) {
                close(fd);
                maplen[r] = 0;
                return sb_err_set(err, SB_EIO, "%s: cannot map rank %d's scratch file", pth, r);
            }
            map[r] = m;
        }
        close(fd);
    }
    return SB_OK;
}

/* after the records: rank 0 writes every rank's scratch into w and commits
 * (*w NULL after); every rank's scratch path is gathered first */
static int job_scratch_write(struct scratch_writer *sw, struct fmt_writer **w,
                             const struct job_rec *rec, const uint64_t *rcount, const size_t *at,
                             size_t n, const char *out_path, struct sb_err *err)
{
    const int size = par_size();
    char *paths = NULL;
    uint64_t n_paths = 0, *plen = sb_calloc((size_t)size, sizeof *plen);
    uint8_t **map = sb_calloc((size_t)size, sizeof *map);
    size_t *maplen = sb_calloc((size_t)size, sizeof *maplen);
    int *owner = sb_calloc(n ? n : 1, sizeof *owner);
    int r = plen && map && maplen && owner ? SB_OK
                                            : sb_err_set(err, SB_ENOMEM, "%s: out of memory",
                                                         out_path);
    /* every rank calls the gather (it agrees on failures of its own) */
    const int g = par_allgather(sw->out.tmp, strlen(sw->out.tmp) + 1, (void **)&paths, &n_paths,
                                plen, err);
    r = r == SB_OK ? g : r;
    /* the records came in rank order: rank q's are the next rcount[q] */
    for (int q = 0, k = 0; r == SB_OK && q < size; q++)
        for (uint64_t j = 0; j < rcount[q] / sizeof *rec; j++)
            owner[rec[k++].i] = q;
    if (r == SB_OK && par_rank() == 0 &&
        (r = job_map(paths, plen, size, map, maplen, err)) == SB_OK) {
        r = job_write(*w, rec, at, n, map, owner, err);
        *w = NULL;   /* committed or aborted */
    }
    for (int q = 0; q < size && map; q++)
        if (map[q])
            munmap(map[q], maplen[q]);
    sb_free(paths);
    sb_free(plen);
    sb_free(map);
    sb_free(maplen);
    sb_free(owner);
    return r;
}

static int convert_job(struct plan *p, struct stream *s, const char *out_path,
                       struct fmt_write_opts *wo, struct fmt_kv **kv, size_t *n_kv,
                       char **config, struct tok_side *ts, struct sb_err *err)
{
    const size_t n = p->lay->n;
    const int rank = par_rank();
    /* GGUF and .subbit: one file every rank writes into; GGUF's offsets first */
    const bool placed = p->cont == FMT_CONT_GGUF || p->cont == FMT_CONT_SUBBIT;
    const bool fixed = p->cont == FMT_CONT_GGUF;
    struct fmt_writer *w = NULL;
    struct place_writer pw;
    struct scratch_writer sw;
    struct job_rec *rec = NULL;
    uint64_t n_rec = 0, *rcount = sb_calloc((size_t)par_size(), sizeof *rcount);
    uint64_t *off = sb_calloc(n ? n : 1, sizeof *off);
    size_t lo = 0, hi = 0, *at = sb_calloc(n ? n : 1, sizeof *at);
    char *file = sb_calloc(1, PATH_MAX);
    int r = SB_OK;
    memset(&pw, 0, sizeof pw);
    pw.fd = -1;
    memset(&sw, 0, sizeof sw);
    if (!rcount || !off || !at || !file)
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", out_path);
    /* rank 0 opens the output first: one that exists stops every rank before work */
    if (r == SB_OK && rank == 0 &&
        (r = write_meta(p, out_path, wo, kv, n_kv, config, ts, err)) == SB_OK)
        r = fmt_writer_open(&w, p->cont, out_path, p->out, n, wo, err);
    if (r == SB_OK)
        r = job_share(p, &lo, &hi, err);
    if (r == SB_OK)
        r = placed ? place_init(&pw, p, out_path, lo, hi, off, file, err)
                   : job_order(&sw.w, &scratch_ops, lo, hi, &sw.rec, out_path, err);
    if (r == SB_OK)
        r = cap_check(p, placed ? &pw.w : &sw.w, out_path, err);
    /* GGUF: the offsets are the header's, planned now */
    if (r == SB_OK && rank == 0 && fixed)
        r = place_all(w, p, NULL, NULL, off, err);
    if ((r = par_agree(r, err)) != SB_OK)
        goto out;
    if (fixed) {   /* straight to the output */
        if ((r = place_open(&pw, w, file, off, n, err)) == SB_OK &&
            (r = job_encode(s, &pw.w, pw.rec, out_path, lo, hi, err)) == SB_OK)
            r = place_close(&pw, err);
    } else if (placed) {   /* held until the offsets are known */
        r = job_encode(s, &pw.w, pw.rec, out_path, lo, hi, err);
    } else {
        char name[4096];
        rank_name(name, sizeof name, out_path);
        if ((r = fmt_out_open(&sw.out, name, FMT_OUT_FORCE, err)) == SB_OK &&
            (r = job_encode(s, &sw.w, sw.rec, out_path, lo, hi, err)) == SB_OK)
            r = fmt_out_sync(&sw.out, err);
    }
    if ((r = par_agree(r, err)) != SB_OK)
        goto out;
    /* every rank learns what each tensor became; a failure from here on
     * still meets the others in the last par_agree */
    r = par_allgather(placed ? pw.rec : sw.rec, (hi - lo) * sizeof *rec, (void **)&rec, &n_rec,
                      rcount, err);
    if (r == SB_OK)
        r = job_apply(p, rec, n_rec / sizeof *rec, at, out_path, err);
    if (!placed) {
        r = job_scratch_write(&sw, &w, rec, rcount, at, n, out_path, err);
    } else if (!fixed) {
        /* .subbit: rank 0 plans the offsets from the stored sizes, every rank
         * writes its bytes there */
        if (r == SB_OK && rank == 0)
            r = place_all(w, p, rec, at, off, err);
        if ((r = par_agree(r, err)) != SB_OK)
            goto out;
        if ((r = place_open(&pw, w, file, off, n, err)) == SB_OK && par_fault("convert-write"))
            r = sb_err_set(err, SB_EIO, "%s: fault injected (SUBBIT_PAR_FAULT)", out_path);
        if (r == SB_OK && (r = place_held(&pw, s, err)) == SB_OK)
            r = place_close(&pw, err);
    }
    /* the output is committed only once every rank's bytes are in */
    if (placed && (r = par_agree(r, err)) != SB_OK)
        goto out;
    if (placed && rank == 0) {
        r = fmt_writer_commit(w, err);
        w = NULL;   /* committed or aborted */
    }
    r = par_agree(r, err);
out:
    if (w)
        fmt_writer_abort(w);
    place_release(&pw);
    fmt_out_abort(&sw.out);   /* every rank's scratch, after rank 0 read them all */
    sb_free(sw.w.order);
    sb_free(sw.rec);
    sb_free(rec);
    sb_free(rcount);
    sb_free(off);
    sb_free(at);
    sb_free(file);
    s->w = NULL;
    return r;
}

/* Whether the output carries the source's tokenizer, and what it must say
 * (never a silent drop, never a silent approximation):
 *  - GGUF output: the metadata has tokenizer.ggml.model (fmt_gguf_kv_build
 *    writes SentencePiece vocabs as "llama", byte-level BPEs as "gpt2"), and a
 *    byte-level pre-tokenizer llama.cpp does not implement is said;
 *  - other output from GGUF: a tokenizer.ggml.model the reader did not make a
 *    tokenizer of is dropped; a tokenizer.ggml.pre that tokenizer.json can only
 *    approximate is said. */
static int tokenizer_check(struct plan *p, const char *out_path, struct sb_err *err)
{
    const struct fmt_model *src = p->src;
    struct cvt_report *rep = p->rep;
    const struct fmt_kv *model = fmt_model_find_kv(src, "tokenizer.ggml.model");
    if (p->cont != FMT_CONT_GGUF) {
        const struct fmt_kv *pre = fmt_model_find_kv(src, "tokenizer.ggml.pre");
        const struct fmt_kv *mg = fmt_model_find_kv(src, "tokenizer.ggml.merges");
        if (src->container != FMT_CONT_GGUF || !model || model->type != FMT_KV_STRING)
            return SB_OK;
        if (src->vocab.kind == FMT_VOCAB_NONE) {
            rep->tokenizer_dropped = true;
            snprintf(rep->tokenizer_note, sizeof rep->tokenizer_note, "its tokenizer "
                     "(tokenizer.ggml.model '%.40s') cannot be carried: %s has no tokenizer",
                     model->str, out_path);
        } else if (!strcmp(model->str, "gpt2") &&
                   !fmt_hftok_pre_exact(pre && pre->type == FMT_KV_STRING ? pre->str : NULL,
                                        mg ? mg->n : 0)) {
            snprintf(rep->tokenizer_note, sizeof rep->tokenizer_note, "tokenizer.ggml.pre "
                     "'%.40s' is not a pre-tokenizer tokenizer.json can express: its text is "
                     "split by GPT-2's regex instead, so token ids may differ from llama.cpp's",
                     pre && pre->type == FMT_KV_STRING ? pre->str : "");
        }
        return SB_OK;
    }
    if (src->vocab.kind == FMT_VOCAB_NONE && !model)
        return SB_OK;
    struct fmt_kv *kv = NULL;
    size_t n = 0;
    int r = fmt_gguf_kv_build(src, &kv, &n, err);
    if (r != SB_OK)
        return r;
    bool has = false;
    for (size_t i = 0; i < n; i++) {
        has = has || !strcmp(kv[i].key, "tokenizer.ggml.model");
        fmt_kv_release(&kv[i]);
    }
    sb_free(kv);
    rep->tokenizer_dropped = !has;
    const struct fmt_hftok_file *f;
    struct fmt_hftok_file *tmp = NULL;
    struct sb_err e = { 0 };
    if (!has) {
        const bool hf = src->vocab.kind == FMT_VOCAB_HF_JSON;
        const bool parsed = hf && fmt_vocab_hftok(&src->vocab, &f, &tmp, &e) == SB_OK;
        fmt_hftok_file_free(tmp);
        snprintf(rep->tokenizer_note, sizeof rep->tokenizer_note, "its tokenizer (%.120s) cannot "
                 "be carried into GGUF: %s has no tokenizer (llama.cpp will not load it; score "
                 "it with --tokens)", !hf ? "a vocab GGUF cannot hold" : parsed ?
                 "a tokenizer.json that is neither a byte-level nor a SentencePiece-style BPE" :
                 e.msg, out_path);
        return SB_OK;
    }
    bool exact = true;
    const char *pre = NULL;
    if (src->container != FMT_CONT_GGUF && src->vocab.kind == FMT_VOCAB_HF_JSON &&
        fmt_vocab_hftok(&src->vocab, &f, &tmp, &e) == SB_OK && f->kind == FMT_HFTOK_BYTE_LEVEL)
        pre = fmt_hftok_pre_name(f, &exact);
    if (!exact)
        snprintf(rep->tokenizer_note, sizeof rep->tokenizer_note, "its byte-level tokenizer's "
                 "pre-tokenizer%s%.60s%s is not one llama.cpp implements: written as "
                 "tokenizer.ggml.pre '%s', so llama.cpp may split text otherwise than the "
                 "tokenizer.json", f->split_regex ? " (Split '" : "",
                 f->split_regex ? f->split_regex : "", f->split_regex ? "')" : "", pre);
    fmt_hftok_file_free(tmp);
    return SB_OK;
}

int cvt_convert(const struct fmt_model *src, const char *out_path, const struct cvt_opts *o,
                struct cvt_report **rep_out, struct sb_err *err)
{
    *rep_out = NULL;
    const double t0 = now_s();
    struct plan p;
    struct stream s;
    struct fmt_write_opts wo;
    struct fmt_kv *kv = NULL;
    size_t n_kv = 0;
    char *config = NULL;
    struct tok_side ts;
    int r;
    memset(&s, 0, sizeof s);
    memset(&ts, 0, sizeof ts);
    struct cvt_opts capped;
    o = cap_opts(o, &capped);   /* row blocks that fit the cap */
    if ((r = plan_make(&p, src, out_path, o, err)) == SB_OK)
        r = tokenizer_check(&p, out_path, err);
    if (r == SB_OK && par_fault("convert-plan"))
        r = sb_err_set(err, SB_EIO, "%s: fault injected (SUBBIT_PAR_FAULT)", out_path);
    /* a job agrees on every rank's plan (a dry run's too) before any work: the
     * first agreement, which a rank that failed before the call also meets */
    if (par_size() > 1 && (r = par_agree(r, err)) == SB_OK && !o->dry_run) {
        s.p = &p;
        r = convert_job(&p, &s, out_path, &wo, &kv, &n_kv, &config, &ts, err);
        goto done;
    }
    if (r != SB_OK || o->dry_run)
        goto done;
    if ((r = write_meta(&p, out_path, &wo, &kv, &n_kv, &config, &ts, err)) != SB_OK ||
        (r = fmt_writer_open(&s.w, p.cont, out_path, p.out, p.lay->n, &wo, err)) != SB_OK ||
        (r = cap_check(&p, s.w, out_path, err)) != SB_OK)
        goto done;
    s.p = &p;
    uint64_t read = 0;
    for (size_t k = 0; k < p.lay->n && r == SB_OK; k++) {
        const size_t i = fmt_writer_order(s.w, k);
        struct cvt_decision *d = &p.rep->d[i];
        if ((r = stream_tensor(&s, i, err)) != SB_OK)
            break;
        if (sb_dtype_get(d->to)->flags & SB_DT_VARLEN)
            p.rep->out_bytes += d->out_bytes;   /* known now */
        release_target(&p, i);
        /* input bytes: known in full before the first tensor, where a
         * variable-length output's total grows as it is encoded */
        read += d->in_bytes;
        sb_progress_report(&o->progress, read, p.rep->in_bytes);
    }
    if (r == SB_OK) {
        r = fmt_writer_commit(s.w, err);
        s.w = NULL;
    }
done:
    if (s.w)
        fmt_writer_abort(s.w);
    if (r == SB_OK) {
        if (o->report_src)   /* the report describes the model src stands in for */
            for (size_t i = 0; i < p.lay->n; i++)
                p.rep->d[i].from = o->report_src->tensors[p.lay->t[i].pieces[0].src].dtype;
        p.rep->seconds = now_s() - t0;
        *rep_out = p.rep;
        p.rep = NULL;
    }
    plan_release(&p);
    for (size_t i = 0; i < n_kv; i++)
        fmt_kv_release(&kv[i]);
    sb_free(kv);
    sb_free(config);
    sb_free_aligned(s.f32.p);
    sb_free_aligned(s.back.p);
    sb_free_aligned(s.out.p);
    sb_free_aligned(s.tern.p);
    tok_side_release(&ts);
    return r;
}
