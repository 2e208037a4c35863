/* cvt_quant.c: calibrated quantization (cvt_quant.h): the layer-by-layer
 * calibration over the reference core's layer primitives (vfy_model.h), GPTQ
 * per matrix (quant/qnt_gptq.h), then the ordinary streaming writer
 * (cvt_convert) over a view of the model whose quantized tensors are
 * replaced by GPTQ's blobs. Knows the order of the work, not the numerics. */
#include "cvt_quant.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fmt_map.h"
#include "fmt_model.h"
#include "fmt_writer.h"
#include "par_comm.h"
#include "qnt_encode.h"
#include "qnt_int8.h"
#include "qnt_matvec.h"
#include "qnt_qmoe.h"
#include "qnt_stats.h"
#include "qnt_sub1.h"
#include "sb_alloc.h"
#include "sb_math.h"
#include "vfy_model.h"

#define CH 256u   /* tokens gathered, normed and multiplied at a time */

void cvt_quant_opts_init(struct cvt_quant_opts *o)
{
    memset(o, 0, sizeof *o);
    cvt_opts_init(&o->conv);
    o->conv.keep_embeddings = true;   /* issue 10: embeddings are never quantized by default */
    o->method = CVT_QUANT_GPTQ;
    qnt_gptq_opts_init(&o->gptq);
    o->min_expert_tokens = 1;
    o->rtn_error = true;
}

const char *cvt_quant_role_name(int role)
{
    static const char *const n[VFY_ROLE_COUNT] = { "q", "k", "v", "o", "gate", "up", "down",
                                                   "router", "shared_gate", "shared_up",
                                                   "shared_down", "output" };
    return role >= 0 && role < VFY_ROLE_COUNT ? n[role] : "?";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* one quantized matrix's bytes until the tensors are assembled */
struct qbuf {
    size_t src;                   /* source tensor index */
    size_t row0, nrows, cols;
    enum sb_dtype enc;
    void *blob;                   /* NULL once spilled to the held file (held_flush) */
    uint64_t nbytes;
};

/* Why a matrix was not GPTQ'd, for its report line; in an MPI job the reason
 * travels as an index into this table (pointers differ by process). */
enum { WHY_GPTQ, WHY_RTN, WHY_FACTOR, WHY_NO_TOKENS, WHY_FEW_TOKENS };
static const char *const why_text[] = { [WHY_GPTQ] = "", [WHY_RTN] = "--method rtn",
                                        [WHY_FACTOR] = "every factorization failed",
                                        [WHY_NO_TOKENS] = "no calibration tokens routed",
                                        [WHY_FEW_TOKENS] = "fewer tokens than --min-expert-tokens" };
#define N_WHY (sizeof why_text / sizeof why_text[0])

struct state {
    const struct fmt_model *src;
    const struct cvt_quant_opts *o;
    struct vfy_model *vm;
    struct vfy_ctx *ctx;
    int *to;                      /* [n_tensors]: output encoding (cvt_decide_sources) */
    size_t N, dim, qd, E, K, maxc, maxrows, ctx_len;
    size_t *wrow;                 /* [n_windows + 1]: first row of each window in X */
    size_t n_win;
    float *X, *A;                 /* (N, dim) residual stream; (N, max(qd, dim)) layer output */
    float *xn, *g, *h1, *h2, *y;  /* chunk buffers */
    int *sel, *idx;               /* (N, K) routing; (N * K) its tokens by expert */
    float *selw, *wt;             /* their weights, alike */
    size_t *eoff;                 /* [E + 1]: expert e's tokens are idx[eoff[e] .. eoff[e+1]) */
    float *xo;                    /* in a job: (N * K, dim) weighted outputs of this rank's experts */
    double *H, *hs;               /* Hessian (maxc^2); hessian_add scratch */
    double *D, *E2;               /* act_fit: sum e xt^T (full) and sum e e^T (upper),
                                     fit_maxc^2 each (qnt_gptq_hessian_add_q8x) */
    bool asym_on;                 /* act_fit and some matrix meets 8-bit activations */
    size_t fit_maxc;              /* the widest such matrix that can see enough tokens */
    bool asym;                    /* H, D, E2 are of the current group's rounded activations */
    void *gscr;                   /* GPTQ scratch */
    size_t gscr_cap;
    float *W, *Q;                 /* f32 weights / decoded result of the current matrix */
    void *rtn_blob;               /* blob_cap bytes: the largest quantized matrix */
    void *pack;                   /* pack_cap bytes: a q8_0/q4_0 matrix packed for one product */
    size_t pack_cap;
    size_t blob_cap;
    struct qbuf *qb;
    size_t n_qb, cap_qb, cap_m;
    float **f32;                  /* f32 copies of this layer's ternary matrices */
    size_t n_f32, cap_f32;
    struct cvt_quant_report *rep;
    size_t done, total;
    struct sb_err *err;
    /* the memory cap: X and A in one scratch mapping when they spill */
    bool capped;
    uint8_t *act_map;
    size_t act_map_len;
    /* ... and the finished quantized matrices in a scratch file when they
     * spill: each tensor's whole blob at held_off[tensor] */
    int held_fd;                  /* -1: they stay in memory */
    uint64_t *held_off;           /* [n_tensors]: UINT64_MAX for a tensor not quantized */
    uint64_t held_len;
    size_t n_flushed;             /* S->qb[0 .. n_flushed) are in the file */
    char held_dir[4096];
};

/* ---- helpers ---------------------------------------------------------------- */

static int oom(struct state *S)
{
    return sb_err_set(S->err, SB_ENOMEM, "%s: out of memory for the calibration", S->src->path);
}

/* the grid GPTQ writes for output encoding to, or -1 (a float or kept tensor) */
static int grid_of(int to)
{
    if (to == SB_DTYPE_SUB1 || to == SB_DTYPE_SUB1_QMOE)
        return SB_DTYPE_TERN;
    return to >= 0 && qnt_gptq_supported((enum sb_dtype)to) ? to : -1;
}

/* grid g's kernel meets 8-bit activations (qnt_q8mm) */
static bool q8x_grid(int g)
{
    return g == SB_DTYPE_Q8_0 || g == SB_DTYPE_Q4_0;
}

/* the quantization parameters of grid enc (int8's come from the options) */
static struct sb_qparams qp_of(const struct state *S, int enc)
{
    return enc == SB_DTYPE_INT8 ? S->o->conv.qp : (struct sb_qparams){ 0, 0 };
}

/* bytes of a rows x cols (ndim 2) or shape (ndim > 0) tensor in grid enc; 0 when it cannot be */
static uint64_t grid_bytes(const struct state *S, int enc, const int64_t *shape, int ndim)
{
    const struct sb_qparams qp = qp_of(S, enc);
    uint64_t nb = 0;
    return sb_dtype_nbytes((enum sb_dtype)enc, shape, ndim, &qp, &nb) == SB_OK ? nb : 0;
}

static long tensor_index(const struct fmt_model *m, const char *name)
{
    const struct fmt_tensor *t = fmt_model_find(m, name);
    return t ? (long)(t - m->tensors) : -1;
}

/* The grid (layer, role, expert) gets, or -1; *ref filled when the matrix exists. */
static int mat_grid(const struct state *S, int l, int role, int e, struct vfy_matref *ref)
{
    if (!vfy_model_mat(S->vm, l, (enum vfy_role)role, e, ref))
        return -1;
    if (role == VFY_ROLE_ROUTER)
        return -1;   /* the policy keeps routers f32 anyway */
    if (role == VFY_ROLE_OUTPUT && vfy_model_info(S->vm)->tied_output)
        return -1;   /* the embedding: never quantized here */
    const long ti = tensor_index(S->src, ref->name);
    return ti < 0 ? -1 : grid_of(S->to[ti]);
}

/* In a job, the rank that quantizes dense matrix (l, role): owners rotate with
 * layer and role (an expert's matrices are its rank's: experts_job) */
static int owner_of(int l, int role)
{
    return (int)(((unsigned)(l + 1) * VFY_ROLE_COUNT + (unsigned)role) % (unsigned)par_size());
}

/* (layer, role, expert) is quantized, by this rank: only then is its Hessian needed here */
static bool quantized_here(const struct state *S, int l, int role, int e)
{
    struct vfy_matref ref;
    return mat_grid(S, l, role, e, &ref) >= 0 &&
           (e >= 0 || par_size() == 1 || owner_of(l, role) == par_rank());
}

static void progress(struct state *S)
{
    S->done++;
    sb_progress_report(&S->o->progress, S->done, S->total);
}

/* rows x cols f32 of rows row0.. of tensor t */
static int tensor_rows_f32(const struct state *S, const struct fmt_tensor *t, size_t rows,
                           size_t cols, size_t row0, size_t nrows, float *dst)
{
    int r;
    if (t->dtype == SB_DTYPE_SUB1) {
        qnt_sub1_dequantize_rows(t->data, t->nbytes, cols, row0, nrows, dst);
        r = SB_OK;
    } else if (t->dtype == SB_DTYPE_SUB1_QMOE) {
        qnt_qmoe_dequantize_rows(t->data, t->nbytes, cols, row0, nrows, dst);
        r = SB_OK;
    } else {
        r = qnt_dequantize_rows(t->dtype, t->data, rows, cols, &t->qp, row0, nrows, dst);
    }
    if (r != SB_OK)
        return sb_err_set(S->err, r, "%s: tensor '%s': cannot decode %s", S->src->path, t->name,
                          sb_dtype_name(t->dtype));
    return SB_OK;
}

/* Spilled activations: drop the pages of X and A this process has mapped
 * (the file keeps them; the next touch reads them back), so at most a chunk's
 * rows are resident at a time. Called at the start of every chunk and window,
 * and every GATHER_TRIM rows where rows are gathered from all over: a read
 * fault maps the kernel's fault-around (64 KiB) with the page, so 256
 * scattered rows kept 16 MiB of X resident (tinymoe-like, 49 Ki tokens). */
#define GATHER_TRIM 16u

static void spill_trim(struct state *S)
{
    if (S->act_map)
        madvise(S->act_map, S->act_map_len, MADV_DONTNEED);
}

/* norm (which) of rows idx[0..m) of X (idx NULL: rows i0 .. i0+m) into S->xn */
static void gather_norm(struct state *S, int l, enum vfy_norm which, const int *idx, size_t i0,
                        size_t m)
{
    const size_t dim = S->dim;
    spill_trim(S);
    if (!idx) {
        vfy_layer_norm(S->vm, l, which, S->X + i0 * dim, m, S->xn);
        return;
    }
    for (size_t i = 0; i < m; i++) {
        if (i % GATHER_TRIM == 0)
            spill_trim(S);
        memcpy(S->y + i * dim, S->X + (size_t)idx[i0 + i] * dim, dim * sizeof(float));
    }
    vfy_layer_norm(S->vm, l, which, S->y, m, S->xn);
}

/* S->qb takes q (and its blob, freed here when it cannot) */
static int push_qbuf(struct state *S, struct qbuf q)
{
    if (S->n_qb == S->cap_qb) {
        size_t c = S->cap_qb ? 2 * S->cap_qb : 64;
        struct qbuf *nq = sb_realloc(S->qb, c * sizeof *nq);
        if (!nq) {
            sb_free(q.blob);
            return SB_ENOMEM;
        }
        S->qb = nq;
        S->cap_qb = c;
    }
    S->qb[S->n_qb++] = q;
    return SB_OK;
}

static int push_qmat(struct state *S, struct cvt_qmat **out)
{
    struct cvt_quant_report *R = S->rep;
    if (R->n_m == S->cap_m) {
        size_t c = S->cap_m ? 2 * S->cap_m : 64;
        struct cvt_qmat *m = sb_realloc(R->m, c * sizeof *m);
        if (!m)
            return oom(S);
        R->m = m;
        S->cap_m = c;
    }
    *out = &R->m[R->n_m++];
    memset(*out, 0, sizeof **out);
    return SB_OK;
}

/* Where q's bytes go in its tensor's blob (rows x cols of its grid): one
 * piece of whole rows, or for int8 two (the values, then the row scales).
 * @return the number of pieces; at[k], from[k], len[k]: offset in the
 * tensor, offset in q->blob, bytes. */
static int row_pieces(const struct state *S, const struct qbuf *q, uint64_t rows, uint64_t at[2],
                      uint64_t from[2], uint64_t len[2])
{
    if (q->enc == SB_DTYPE_INT8) {
        const struct sb_qparams qp = qp_of(S, q->enc);
        const uint64_t groups = qnt_int8_groups(q->cols, &qp);
        const uint64_t sb = qp.scale_dtype == SB_DTYPE_F16 ? 2 : 4;
        at[0] = (uint64_t)q->row0 * q->cols;
        from[0] = 0;
        len[0] = (uint64_t)q->nrows * q->cols;
        at[1] = rows * q->cols + q->row0 * groups * sb;
        from[1] = len[0];
        len[1] = q->nrows * groups * sb;
        return 2;
    }
    const uint64_t rb = q->nrows ? q->nbytes / q->nrows : 0;   /* row-contiguous blobs */
    at[0] = q->row0 * rb;
    from[0] = 0;
    len[0] = q->nrows * rb;
    return 1;
}

/* Under a cap that spills them: the finished matrices S->qb[n_flushed ..)
 * go to their places in the held file and leave memory (their records stay,
 * blob NULL). Called where nothing computes with them any more: after each
 * expert, each layer, the classifier. */
static int held_flush(struct state *S)
{
    for (; S->held_fd >= 0 && S->n_flushed < S->n_qb; S->n_flushed++) {
        struct qbuf *q = &S->qb[S->n_flushed];
        const struct fmt_tensor *t = &S->src->tensors[q->src];
        uint64_t rows, cols, at[2], from[2], len[2];
        sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
        const int np = row_pieces(S, q, rows, at, from, len);
        for (int k = 0; k < np; k++)
            for (uint64_t done = 0; done < len[k];) {
                const ssize_t w = pwrite(S->held_fd, (uint8_t *)q->blob + from[k] + done,
                                         (size_t)(len[k] - done),
                                         (off_t)(S->held_off[q->src] + at[k] + done));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    return sb_err_set(S->err, SB_EIO, "%s: cannot write the spilled matrices: "
                                      "%s", S->held_dir, w < 0 ? strerror(errno) : "no room");
                done += (uint64_t)w;
            }
        sb_free(q->blob);
        q->blob = NULL;
    }
    return SB_OK;
}

/* ---- one matrix ---------------------------------------------------------------- */

/* Quantize (l, role, e) with the Hessian S->H (H_valid; else round-to-nearest
 * for `why`) and compute with it from now on. */
static int adopt(struct state *S, int l, int role, int e, enum sb_dtype enc, const void *blob,
                 uint64_t nb, const struct sb_qparams *qpp, const char *name);

/* The output error of S->Q against S->W over the current Hessian's tokens:
 * ||W x - Q xt||^2 where the group's activations are rounded (asym), else
 * ||W x - Q x||^2 */
static double out_err(struct state *S, bool asym, size_t rows, size_t cols)
{
    return asym ? qnt_gptq_output_error_q8x(S->H, S->D, S->E2, S->W, S->Q, rows, cols, S->gscr)
                : qnt_gptq_output_error(S->H, S->W, S->Q, rows, cols, S->gscr);
}

static int quant_matrix_here(struct state *S, int l, int role, int e, bool H_valid,
                             uint64_t tokens, const char *why)
{
    struct vfy_matref ref;
    const int grid = mat_grid(S, l, role, e, &ref);
    if (grid < 0)
        return SB_OK;
    const double t0 = now_s();
    const long ti = tensor_index(S->src, ref.name);
    const struct fmt_tensor *t = &S->src->tensors[ti];
    const enum sb_dtype enc = (enum sb_dtype)grid;
    const struct sb_qparams qp = enc == SB_DTYPE_INT8 ? S->o->conv.qp : (struct sb_qparams){ 0, 0 };
    const size_t rows = ref.nrows, cols = ref.cols;
    int rc;
    if ((rc = tensor_rows_f32(S, t, ref.rows, cols, ref.row0, rows, S->W)) != SB_OK)
        return rc;
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t nb = 0;
    if (sb_dtype_nbytes(enc, shape, 2, &qp, &nb) != SB_OK)
        return sb_err_set(S->err, SB_EFORMAT, "%s: tensor '%s' cannot be stored as %s",
                          S->src->path, ref.name, sb_dtype_name(enc));
    void *blob = sb_malloc(nb ? nb : 1);
    if (!blob || push_qbuf(S, (struct qbuf){ (size_t)ti, ref.row0, rows, cols, enc, blob, nb }))
        return oom(S);

    const bool use_h = H_valid && S->o->method == CVT_QUANT_GPTQ;
    struct qnt_gptq_stats st;
    /* act_fit: GPTQ rounds the weights that best reproduce W x from the
     * activations the kernel rounds (qnt_gptq.h), fitted in S->Q */
    const bool asym = H_valid && S->asym && q8x_grid(enc);
    const float *Wq = S->W;
    bool fitted = false;
    if (use_h && asym) {
        memcpy(S->Q, S->W, rows * cols * sizeof *S->Q);
        fitted = qnt_gptq_asym_correct(S->Q, rows, cols, S->H, S->D, S->o->gptq.damp,
                                       S->gscr) == SB_OK;
        if (fitted)
            Wq = S->Q;
    }
    rc = qnt_gptq_quantize(enc, &qp, Wq, rows, cols, use_h ? S->H : NULL, &S->o->gptq, S->gscr,
                           blob, &st);
    if (rc == SB_EFORMAT)
        return sb_err_set(S->err, rc, "%s: tensor '%s' holds a non-finite weight", S->src->path,
                          ref.name);
    if (rc != SB_OK)
        return sb_err_set(S->err, rc, "%s: tensor '%s': GPTQ cannot write %s", S->src->path,
                          ref.name, sb_dtype_name(enc));
    struct cvt_qmat *m = NULL;
    if ((rc = push_qmat(S, &m)) != SB_OK)
        return rc;
    snprintf(m->name, sizeof m->name, "%s", ref.name);
    m->layer = role == VFY_ROLE_OUTPUT ? -1 : l;
    m->role = role;
    m->expert = e;
    m->rows = rows;
    m->cols = cols;
    m->row0 = ref.row0;
    m->enc = enc;
    m->tokens = tokens;
    m->gptq = use_h && !st.rtn;
    m->why = m->gptq ? why_text[WHY_GPTQ] : S->o->method == CVT_QUANT_RTN ? why_text[WHY_RTN]
             : use_h ? why_text[WHY_FACTOR] : why;
    m->damp = m->gptq ? st.damp : 0.0;
    m->act_fit = m->gptq && fitted;
    m->zero_frac = (double)st.zeros / (double)(rows * cols);
    m->err_rtn = -1.0;
    /* the decoded result: weight error, and output errors where a Hessian exists */
    if ((rc = qnt_dequantize_rows(enc, blob, rows, cols, &qp, 0, rows, S->Q)) != SB_OK)
        return sb_err_set(S->err, rc, "tensor '%s': cannot decode %s", ref.name, sb_dtype_name(enc));
    struct qnt_err_stats es;
    memset(&es, 0, sizeof es);
    qnt_err_stats_add(&es, S->W, S->Q, rows * cols);
    qnt_err_stats_finish(&es);
    m->rmse = es.rmse;
    m->sqnr_db = es.sqnr_db;
    if (H_valid) {
        /* GPTQ's own figures where its objective is the one reported; else
           measured on S->Q: the decoded result, round to nearest's, zero */
        const bool own = use_h && !asym;
        m->err = own ? st.err : out_err(S, asym, rows, cols);
        if (S->o->rtn_error) {
            if (m->gptq) {
                qnt_quantize_rows(enc, S->W, rows, cols, &qp, S->rtn_blob);
                qnt_dequantize_rows(enc, S->rtn_blob, rows, cols, &qp, 0, rows, S->Q);
                m->err_rtn = out_err(S, asym, rows, cols);
            } else {
                m->err_rtn = m->err;
            }
        }
        if (own) {
            m->ref = st.ref;
        } else {
            for (size_t i = 0; i < rows * cols; i++)
                S->Q[i] = 0.0f;
            m->ref = out_err(S, asym, rows, cols);
        }
    }
    if ((rc = adopt(S, l, role, e, enc, blob, nb, &qp, ref.name)) != SB_OK)
        return rc;
    m->seconds = now_s() - t0;
    progress(S);
    return SB_OK;
}

/* Compute with (l, role, e)'s quantized blob from now on. Ternary matrices
 * compute from their exact f32 values while their layer is calibrated: the
 * tern kernel's exact sums differ from the f32 kernel's by rounding only, and
 * it decodes per token. */
static int adopt(struct state *S, int l, int role, int e, enum sb_dtype enc, const void *blob,
                 uint64_t nb, const struct sb_qparams *qpp, const char *name)
{
    struct vfy_matref ref;
    const struct sb_qparams qp = *qpp;
    int rc;
    if (!vfy_model_mat(S->vm, l, (enum vfy_role)role, e, &ref))
        return sb_err_set(S->err, SB_EINVAL, "tensor '%s': no such matrix", name);
    const size_t rows = ref.nrows, cols = ref.cols;
    if (enc == SB_DTYPE_TERN) {
        float *f = sb_malloc_aligned(rows * cols * sizeof *f);
        if (!f || S->n_f32 == S->cap_f32) {
            size_t c = S->cap_f32 ? 2 * S->cap_f32 : 64;
            float **nf = f ? sb_realloc(S->f32, c * sizeof *nf) : NULL;
            if (!nf) {
                sb_free_aligned(f);
                return oom(S);
            }
            S->f32 = nf;
            S->cap_f32 = c;
        }
        S->f32[S->n_f32++] = f;
        if ((rc = qnt_dequantize_rows(enc, blob, rows, cols, &qp, 0, rows, f)) != SB_OK)
            return sb_err_set(S->err, rc, "tensor '%s': cannot decode", name);
        return vfy_model_set_mat(S->vm, l, (enum vfy_role)role, e, SB_DTYPE_F32, f,
                                 rows * cols * sizeof *f, NULL, S->err);
    }
    return vfy_model_set_mat(S->vm, l, (enum vfy_role)role, e, enc, blob, nb, &qp, S->err);
}

static int quant_matrix(struct state *S, int l, int role, int e, bool H_valid, uint64_t tokens,
                        const char *why);

/* the Hessian of n tokens' inputs (cols wide) begins: of the rounded
 * activations, with D and E2, where they will be fitted (q8x: every matrix of
 * the group meets 8-bit activations; CVT_QUANT_FIT_TOKENS a column) */
static void hess_begin(struct state *S, size_t cols, size_t n, bool q8x)
{
    S->asym = q8x && S->asym_on && n >= CVT_QUANT_FIT_TOKENS * cols && cols <= S->fit_maxc;
    memset(S->H, 0, cols * cols * sizeof *S->H);
    if (S->asym) {
        memset(S->D, 0, cols * cols * sizeof *S->D);
        memset(S->E2, 0, cols * cols * sizeof *S->E2);
    }
}

static void hess_add(struct state *S, size_t cols, const float *X, size_t m, size_t ldx)
{
    if (S->asym)
        qnt_gptq_hessian_add_q8x(S->H, S->D, S->E2, cols, X, m, ldx, S->hs);
    else
        qnt_gptq_hessian_add(S->H, cols, X, m, ldx, S->hs);
}

/* every matrix (l, roles[i], e) quantized here meets 8-bit activations: their
 * Hessian is of the rounded activations, and D, E2 are summed (act_fit) */
static bool group_q8x(const struct state *S, int l, const int *roles, int nr, int e)
{
    bool any = false;
    for (int i = 0; i < nr; i++) {
        struct vfy_matref ref;
        if (!quantized_here(S, l, roles[i], e))
            continue;
        const int g = mat_grid(S, l, roles[i], e, &ref);
        if (!q8x_grid(g))
            return false;
        any = true;
    }
    return any;
}

/* H = sum of x x^T over rows idx (NULL: all N) after norm `which` (q8x:
 * hess_begin) */
static void hessian_inputs(struct state *S, int l, enum vfy_norm which, const int *idx, size_t n,
                           size_t cols, bool q8x)
{
    hess_begin(S, cols, n, q8x);
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        const size_t m = n - i0 < CH ? n - i0 : CH;
        gather_norm(S, l, which, idx, i0, m);
        hess_add(S, cols, S->xn, m, cols);
    }
}

/* Y = X W^T, n rows, with (layer l, role, expert e): a q8_0/q4_0 matrix quant
 * made is packed into S->pack for the product (the packed kernels: the same
 * bits, for a pass over the blob a product; at 1 thread, 32,768 tokens,
 * moe25m's quant q4_0 29.2 -> 20.7 CPU s, q8_0 35.1 -> 24.0, tinymoe's q4_0
 * 6.1 -> 3.6); a few rows go unpacked. */
static void qmm(struct state *S, int l, int role, int e, const float *X, size_t n, float *Y)
{
    const bool packed = n >= 16 && vfy_model_pack_mat(S->vm, l, (enum vfy_role)role, e, S->pack,
                                                      S->pack_cap);
    vfy_layer_matmul(S->vm, l, (enum vfy_role)role, e, X, n, Y);
    if (packed)
        vfy_model_unpack_mat(S->vm, l, (enum vfy_role)role, e);
}

/* h1 = silu(gate xn) * (up xn) for the m rows in S->xn */
static void ffn_hidden(struct state *S, int l, int rg, int ru, int e, size_t m, size_t F)
{
    qmm(S, l, rg, e, S->xn, m, S->h1);
    qmm(S, l, ru, e, S->xn, m, S->h2);
    vfy_swiglu_act(S->h1, S->h2, m * F);
}

/* A SwiGLU FFN (dense, expert e, or the shared expert) over tokens idx[0..n)
 * (NULL: all N): quantize gate/up on their inputs, down on its own, then add
 * weight * output into S->A (wt NULL: weight 1; shared: its sigmoid gate), or
 * with out, write those products there, (n, dim), for the caller to add. */
static int ffn_block(struct state *S, int l, int rg, int ru, int rd, int e, const int *idx,
                     const float *wt, size_t n, bool shared, float *out)
{
    struct vfy_matref gref;
    if (!vfy_model_mat(S->vm, l, (enum vfy_role)rg, e, &gref))
        return SB_OK;
    const size_t dim = S->dim, F = gref.nrows;
    const bool expert = e >= 0;
    const char *why = n == 0 ? why_text[WHY_NO_TOKENS]
                      : expert && n < S->o->min_expert_tokens ? why_text[WHY_FEW_TOKENS]
                                                              : NULL;
    const bool gptq = S->o->method == CVT_QUANT_GPTQ && !why;
    const bool need_in = gptq && (quantized_here(S, l, rg, e) || quantized_here(S, l, ru, e));
    int rc;
    if (need_in)
        hessian_inputs(S, l, VFY_NORM_FFN, idx, n, dim,
                       group_q8x(S, l, (const int[]){ rg, ru }, 2, e));
    if ((rc = quant_matrix(S, l, rg, e, need_in, n, why)) ||
        (rc = quant_matrix(S, l, ru, e, need_in, n, why)))
        return rc;
    const bool need_h = gptq && quantized_here(S, l, rd, e);
    if (need_h) {
        hess_begin(S, F, n, group_q8x(S, l, &rd, 1, e));
        for (size_t i0 = 0; i0 < n; i0 += CH) {
            const size_t m = n - i0 < CH ? n - i0 : CH;
            gather_norm(S, l, VFY_NORM_FFN, idx, i0, m);
            ffn_hidden(S, l, rg, ru, e, m, F);
            hess_add(S, F, S->h1, m, F);
        }
    }
    if ((rc = quant_matrix(S, l, rd, e, need_h, n, why)))
        return rc;
    /* the block's output with its quantized matrices */
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        const size_t m = n - i0 < CH ? n - i0 : CH;
        gather_norm(S, l, VFY_NORM_FFN, idx, i0, m);
        ffn_hidden(S, l, rg, ru, e, m, F);
        qmm(S, l, rd, e, S->h1, m, S->y);
        if (shared)
            vfy_layer_shared_gate(S->vm, l, S->xn, m, S->g);
        for (size_t i = 0; i < m; i++) {
            if (idx && i % GATHER_TRIM == 0)
                spill_trim(S);
            const size_t row = idx ? (size_t)idx[i0 + i] : i0 + i;
            const float w = shared ? S->g[i] : wt ? wt[i0 + i] : 1.0f;
            float *a = S->A + row * dim;
            const float *yy = S->y + i * dim;
            if (out) {   /* an expert's weighted outputs, added into A by the caller */
                float *o = out + (i0 + i) * dim;
                for (size_t d = 0; d < dim; d++)
                    o[d] = w * yy[d];
                continue;
            }
            if (!wt && !shared && !expert)
                memcpy(a, yy, dim * sizeof(float));
            else
                for (size_t d = 0; d < dim; d++)
                    a[d] += w * yy[d];
        }
    }
    return SB_OK;
}

/* the layer's routing by expert, in one pass (a counting sort): expert e's
 * tokens in order, S->idx[S->eoff[e] ..), their weights in S->wt */
static void route_index(struct state *S)
{
    const size_t N = S->N, K = S->K, E = S->E;
    memset(S->eoff, 0, (E + 1) * sizeof *S->eoff);
    for (size_t i = 0; i < N * K; i++)
        if (S->sel[i] >= 0 && (size_t)S->sel[i] < E)
            S->eoff[S->sel[i] + 1]++;
    for (size_t e = 0; e < E; e++)
        S->eoff[e + 1] += S->eoff[e];
    size_t *at = S->eoff + E + 1;   /* E more: each expert's next slot */
    memcpy(at, S->eoff, E * sizeof *at);
    for (size_t i = 0; i < N * K; i++)
        if (S->sel[i] >= 0 && (size_t)S->sel[i] < E) {
            const size_t j = at[S->sel[i]]++;
            S->idx[j] = (int)(i / K);
            S->wt[j] = S->selw[i];
        }
}

/* expert e's token count; *idx, *wt its tokens and routing weights */
static size_t routed(const struct state *S, size_t e, const int **idx, const float **wt)
{
    *idx = S->idx + S->eoff[e];
    *wt = S->wt + S->eoff[e];
    return S->eoff[e + 1] - S->eoff[e];
}

/* ---- a layer's experts across the ranks of an MPI job ----------------------------- */

/* Every rank runs the layer's dense part itself (the same inputs, the same
 * bits), so the calibration activations and the routing are on every rank
 * without a message. The experts are split into contiguous shares balanced
 * by routed tokens; each rank quantizes its own, their weighted outputs into
 * S->xo (spilled with the activations under a cap), their matrices and report
 * lines into a pack. Then expert by expert, in order, the expert's rank
 * broadcasts them and every rank adds the outputs into A and records the
 * matrices: the float sums, blobs and report of one process, with one
 * expert's matrices and CH of its output rows in flight at a time. */

struct xpack_mat {                /* one matrix; then nbytes of blob */
    struct cvt_qmat m;            /* why: NULL, see why */
    uint64_t src, row0, nrows, cols, enc, nbytes, why;
};

static int pack_put(struct state *S, uint8_t **buf, size_t *len, size_t *cap, const void *p,
                    size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 1 << 16;
        while (c < *len + n)
            c *= 2;
        uint8_t *b = sb_realloc(*buf, c);
        if (!b)
            return oom(S);
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return SB_OK;
}

/* a matrix (S->qb[j], its report line S->rep->m[mi]) as it travels */
static void xpack_of(const struct state *S, size_t j, size_t mi, struct xpack_mat *x)
{
    const struct qbuf *q = &S->qb[j];
    memset(x, 0, sizeof *x);
    x->m = S->rep->m[mi];
    x->m.why = NULL;
    x->why = N_WHY;
    for (size_t k = 0; k < N_WHY; k++)
        if (S->rep->m[mi].why && !strcmp(S->rep->m[mi].why, why_text[k]))
            x->why = k;
    x->src = q->src;
    x->row0 = q->row0;
    x->nrows = q->nrows;
    x->cols = q->cols;
    x->enc = (uint64_t)q->enc;
    x->nbytes = q->nbytes;
}

/* a travelled matrix recorded: S->qb takes blob (freed here when it cannot) */
static int xpack_take(struct state *S, const struct xpack_mat *x, void *blob, struct cvt_qmat **out)
{
    if (push_qbuf(S, (struct qbuf){ (size_t)x->src, (size_t)x->row0, (size_t)x->nrows,
                                    (size_t)x->cols, (enum sb_dtype)x->enc, blob, x->nbytes }))
        return oom(S);
    struct cvt_qmat *m = NULL;
    int rc = push_qmat(S, &m);
    if (rc != SB_OK)
        return rc;
    *m = x->m;
    m->why = x->why < N_WHY ? why_text[x->why] : NULL;
    *out = m;
    progress(S);
    return SB_OK;
}

/* this rank's experts [lo, hi) of layer l: their weighted outputs into S->xo,
 * their matrices and report lines into a pack (per expert: the count, then
 * each matrix's xpack_mat and blob), out of S->qb and the report until taken
 * back in expert order */
static int experts_mine(struct state *S, int l, size_t lo, size_t hi, uint8_t **pk, size_t *len)
{
    size_t cap = 0;
    int rc = SB_OK;
    for (size_t e = lo; e < hi && rc == SB_OK; e++) {
        const int *idx;
        const float *wt;
        const size_t n = routed(S, e, &idx, &wt), qb0 = S->n_qb, m0 = S->rep->n_m;
        float *out = S->xo + (S->eoff[e] - S->eoff[lo]) * S->dim;
        if ((rc = ffn_block(S, l, VFY_ROLE_GATE, VFY_ROLE_UP, VFY_ROLE_DOWN, (int)e, idx, wt, n,
                            false, out)))
            break;
        const uint64_t n_mat = S->n_qb - qb0;
        if (n_mat != S->rep->n_m - m0)
            rc = sb_err_set(S->err, SB_EINVAL, "layer %d expert %zu: matrices and report lines "
                            "differ", l, e);
        if (rc == SB_OK)
            rc = pack_put(S, pk, len, &cap, &n_mat, sizeof n_mat);
        for (size_t j = 0; rc == SB_OK && j < n_mat; j++) {
            const struct qbuf *q = &S->qb[qb0 + j];
            struct xpack_mat x;
            xpack_of(S, qb0 + j, m0 + j, &x);
            if ((rc = pack_put(S, pk, len, &cap, &x, sizeof x)) == SB_OK)
                rc = pack_put(S, pk, len, &cap, q->blob, (size_t)q->nbytes);
        }
        for (size_t j = qb0; j < S->n_qb; j++)
            sb_free(S->qb[j].blob);
        S->n_qb = qb0;
        S->done -= S->rep->n_m - m0;   /* counted again when taken back */
        S->rep->n_m = m0;
    }
    return rc;
}

/* n bytes at *at of the owner's pack into p (a pack shorter than its walk: a bug, said) */
static int pack_get(struct state *S, const uint8_t *pk, size_t len, size_t *at, void *p, size_t n)
{
    if (len - *at < n)
        return sb_err_set(S->err, SB_EINVAL, "%s: an expert pack is shorter than its matrices",
                          S->src->path);
    memcpy(p, pk + *at, n);
    *at += n;
    return SB_OK;
}

/* Expert e from its rank, owner (collective): its token and matrix counts,
 * agreed on (with any rank's failure so far), then its outputs added into A,
 * CH rows at a time, and its matrices recorded. xo, pk, *at: the owner's
 * outputs and pack. A failure after the agreement (*lrc) keeps the rank in the
 * broadcasts, to the next expert's agreement or the caller's. */
static int expert_take(struct state *S, int l, size_t e, int owner, const float *xo,
                       const uint8_t *pk, size_t len, size_t *at, int *lrc)
{
    const size_t dim = S->dim;
    const bool me = owner == par_rank();
    const int *idx;
    const float *wt;
    const size_t n = routed(S, e, &idx, &wt);
    uint64_t head[2] = { n, 0 };   /* tokens, matrices */
    int rc;
    if (me && *lrc == SB_OK)
        *lrc = pack_get(S, pk, len, at, &head[1], sizeof head[1]);
    if ((rc = par_bcast(head, sizeof head, owner, S->err)) != SB_OK)
        return rc;
    if (*lrc == SB_OK && head[0] != n)   /* every rank routes alike: a bug, not a hang */
        *lrc = sb_err_set(S->err, SB_EINVAL, "layer %d expert %zu: %llu tokens here, %llu on "
                          "rank %d", l, e, (unsigned long long)n, (unsigned long long)head[0],
                          owner);
    if ((rc = par_agree(*lrc, S->err)) != SB_OK)
        return rc;
    S->rep->expert_tokens[(size_t)l * S->E + e] = n;
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        const size_t m = n - i0 < CH ? n - i0 : CH;
        spill_trim(S);
        if (me)
            memcpy(S->y, xo + i0 * dim, m * dim * sizeof(float));
        if ((rc = par_bcast(S->y, m * dim * sizeof(float), owner, S->err)) != SB_OK)
            return rc;
        for (size_t i = 0; i < m; i++) {
            if (i % GATHER_TRIM == 0)
                spill_trim(S);
            float *a = S->A + (size_t)idx[i0 + i] * dim;
            const float *y = S->y + i * dim;
            for (size_t d = 0; d < dim; d++)
                a[d] += y[d];
        }
    }
    for (uint64_t j = 0; j < head[1]; j++) {
        struct xpack_mat x;
        memset(&x, 0, sizeof x);
        if (me && *lrc == SB_OK)
            *lrc = pack_get(S, pk, len, at, &x, sizeof x);
        if ((rc = par_bcast(&x, sizeof x, owner, S->err)) != SB_OK)
            return rc;
        if (x.nbytes > S->blob_cap)   /* every rank has the same x: they all stop here */
            return sb_err_set(S->err, SB_EINVAL, "layer %d expert %zu: a matrix of %llu bytes, "
                              "above the largest planned", l, e, (unsigned long long)x.nbytes);
        if (me && *lrc == SB_OK)
            *lrc = pack_get(S, pk, len, at, S->rtn_blob, (size_t)x.nbytes);
        if ((rc = par_bcast(S->rtn_blob, x.nbytes, owner, S->err)) != SB_OK)
            return rc;
        void *blob = *lrc == SB_OK ? sb_malloc(x.nbytes ? (size_t)x.nbytes : 1) : NULL;
        struct cvt_qmat *qm;
        if (*lrc == SB_OK && !blob)
            *lrc = oom(S);
        if (*lrc == SB_OK) {
            memcpy(blob, S->rtn_blob, (size_t)x.nbytes);
            *lrc = xpack_take(S, &x, blob, &qm);
        }
    }
    if (*lrc == SB_OK)
        *lrc = held_flush(S);   /* nothing computes with them again */
    return SB_OK;
}

static int experts_job(struct state *S, int l)
{
    const size_t E = S->E, dim = S->dim;
    const int size = par_size(), rank = par_rank();
    uint64_t *cum = sb_malloc((E + 1) * sizeof *cum), lo = 0, hi = 0;
    int *owner = sb_malloc((E ? E : 1) * sizeof *owner);
    uint8_t *mine = NULL;
    size_t len = 0, at = 0;
    int rc = cum && owner ? SB_OK : oom(S), lrc = SB_OK;
    if (rc == SB_OK) {
        cum[0] = 0;
        for (size_t e = 0; e < E; e++)   /* +1: an expert without tokens still counts */
            cum[e + 1] = cum[e] + (S->eoff[e + 1] - S->eoff[e]) + 1;
        for (int q = 0; q < size; q++) {
            par_split(E, cum, q, size, &lo, &hi);
            for (uint64_t e = lo; e < hi; e++)
                owner[e] = q;
        }
        par_split(E, cum, rank, size, &lo, &hi);
        rc = experts_mine(S, l, (size_t)lo, (size_t)hi, &mine, &len);
    }
    if (rc == SB_OK && par_fault("quant"))
        rc = sb_err_set(S->err, SB_EIO, "%s: fault injected (SUBBIT_PAR_FAULT)", S->src->path);
    /* after a failure is agreed on, no rank calls another collective: a rank that
     * failed alone before this layer's experts has left (par_settle) */
    if ((rc = par_agree(rc, S->err)) == SB_OK) {
        for (size_t e = 0; e < E && rc == SB_OK; e++) {
            const float *xo = owner[e] == rank ? S->xo + (S->eoff[e] - S->eoff[lo]) * dim : NULL;
            rc = expert_take(S, l, e, owner[e], xo, mine, len, &at, &lrc);
        }
        if (rc == SB_OK)
            rc = par_agree(lrc, S->err);
    }
    sb_free(cum);
    sb_free(owner);
    sb_free(mine);
    return rc;
}

/* the model's mapped pages go back to the OS after each layer (a later touch
 * reads them again, from the page cache; only the classifier and the writer
 * do), capped or not: what mem_plan predicts */
static void release_source(struct state *S)
{
    for (size_t i = 0; i < S->src->n_tensors; i++)
        fmt_model_release_data(S->src, &S->src->tensors[i]);
}

/* A matrix every rank calibrates (attention, a dense or shared FFN, the
 * classifier: every rank has its Hessian): in a job one rank, its owner, runs
 * GPTQ and sends the blob and report line; every rank then computes with it.
 * GPTQ is deterministic, so the bytes are the ones every rank would have made;
 * the owners rotate with layer and role. An expert's matrix (e >= 0) is its
 * rank's alone (experts_job). */
static int quant_matrix(struct state *S, int l, int role, int e, bool H_valid, uint64_t tokens,
                        const char *why)
{
    struct vfy_matref ref;
    const int size = par_size(), rank = par_rank();
    if (e >= 0 || size == 1)
        return quant_matrix_here(S, l, role, e, H_valid, tokens, why);
    const int grid = mat_grid(S, l, role, e, &ref);
    if (grid < 0)
        return SB_OK;
    const int owner = owner_of(l, role);
    const size_t qb0 = S->n_qb, m0 = S->rep->n_m;
    struct xpack_mat x;
    uint8_t *blob = NULL;
    int rc = SB_OK;
    memset(&x, 0, sizeof x);
    if (rank == owner && par_fault("quant-dense"))
        rc = sb_err_set(S->err, SB_EIO, "%s: tensor '%s': fault injected (SUBBIT_PAR_FAULT)",
                        S->src->path, ref.name);
    if (rc == SB_OK && rank == owner &&
        (rc = quant_matrix_here(S, l, role, e, H_valid, tokens, why)) == SB_OK) {
        xpack_of(S, qb0, m0, &x);
        blob = S->qb[qb0].blob;
    }
    if ((rc = par_agree(rc, S->err)) != SB_OK ||
        (rc = par_bcast(&x, sizeof x, owner, S->err)) != SB_OK)
        return rc;
    if (rank != owner && !(blob = sb_malloc(x.nbytes ? (size_t)x.nbytes : 1)))
        rc = oom(S);
    if ((rc = par_agree(rc, S->err)) != SB_OK) {
        if (rank != owner)
            sb_free(blob);
        return rc;
    }
    if ((rc = par_bcast(blob, x.nbytes, owner, S->err)) != SB_OK || rank == owner) {
        if (rank != owner)
            sb_free(blob);
        return rc;
    }
    const struct sb_qparams qp = x.enc == SB_DTYPE_INT8 ? S->o->conv.qp : (struct sb_qparams){ 0, 0 };
    struct cvt_qmat *m;
    if ((rc = xpack_take(S, &x, blob, &m)) != SB_OK)
        return rc;
    return adopt(S, l, role, e, (enum sb_dtype)x.enc, blob, x.nbytes, &qp, m->name);
}

/* ---- one layer ------------------------------------------------------------------ */

static int do_layer(struct state *S, int l)
{
    const size_t N = S->N, dim = S->dim, qd = S->qd;
    const bool gptq = S->o->method == CVT_QUANT_GPTQ;
    struct vfy_matref ref;
    int rc;
    if (par_fault("quant-layer"))   /* one rank failing in the part every rank computes */
        return sb_err_set(S->err, SB_EIO, "%s: layer %d: fault injected (SUBBIT_PAR_FAULT)",
                          S->src->path, l);
    /* attention: q/k/v share the normed input's Hessian */
    const bool need_qkv = gptq && (quantized_here(S, l, VFY_ROLE_Q, -1) ||
                                   quantized_here(S, l, VFY_ROLE_K, -1) ||
                                   quantized_here(S, l, VFY_ROLE_V, -1));
    if (need_qkv)
        hessian_inputs(S, l, VFY_NORM_ATTN, NULL, N, dim,
                       group_q8x(S, l, (const int[]){ VFY_ROLE_Q, VFY_ROLE_K, VFY_ROLE_V }, 3, -1));
    for (int r = VFY_ROLE_Q; r <= VFY_ROLE_V; r++)
        if ((rc = quant_matrix(S, l, r, -1, need_qkv, N, why_text[WHY_GPTQ])))
            return rc;
    for (size_t w = 0; w < S->n_win; w++) {
        const size_t r0 = S->wrow[w], n = S->wrow[w + 1] - r0;
        spill_trim(S);
        vfy_layer_norm(S->vm, l, VFY_NORM_ATTN, S->X + r0 * dim, n, S->xn);
        if ((rc = vfy_layer_attention(S->ctx, l, S->xn, n, S->A + r0 * qd, S->err)))
            return rc;
    }
    const bool need_o = gptq && quantized_here(S, l, VFY_ROLE_O, -1);
    if (need_o) {   /* in chunks of QNT_GPTQ_HCHUNK rows: the sums of one call over all */
        const int ro = VFY_ROLE_O;
        hess_begin(S, qd, N, group_q8x(S, l, &ro, 1, -1));
        for (size_t i0 = 0; i0 < N; i0 += CH) {
            spill_trim(S);
            hess_add(S, qd, S->A + i0 * qd, N - i0 < CH ? N - i0 : CH, qd);
        }
    }
    if ((rc = quant_matrix(S, l, VFY_ROLE_O, -1, need_o, N, why_text[WHY_GPTQ])))
        return rc;
    for (size_t i0 = 0; i0 < N; i0 += CH) {
        const size_t m = N - i0 < CH ? N - i0 : CH;
        spill_trim(S);
        qmm(S, l, VFY_ROLE_O, -1, S->A + i0 * qd, m, S->y);
        float *x = S->X + i0 * dim;
        for (size_t i = 0; i < m * dim; i++)
            x[i] += S->y[i];
    }

    /* FFN */
    if (!vfy_model_mat(S->vm, l, VFY_ROLE_ROUTER, -1, &ref)) {
        if ((rc = ffn_block(S, l, VFY_ROLE_GATE, VFY_ROLE_UP, VFY_ROLE_DOWN, -1, NULL, NULL, N,
                            false, NULL)))
            return rc;
    } else {
        const size_t E = S->E, K = S->K;
        for (size_t i0 = 0; i0 < N; i0 += CH) {
            const size_t m = N - i0 < CH ? N - i0 : CH;
            gather_norm(S, l, VFY_NORM_FFN, NULL, i0, m);
            vfy_layer_route(S->ctx, l, S->xn, m, S->sel + i0 * K, S->selw + i0 * K);
        }
        route_index(S);
        for (size_t i0 = 0; i0 < N; i0 += CH) {
            spill_trim(S);
            memset(S->A + i0 * dim, 0, (N - i0 < CH ? N - i0 : CH) * dim * sizeof *S->A);
        }
        if (par_size() > 1 && (rc = experts_job(S, l)))
            return rc;
        for (size_t e = 0; e < E && par_size() == 1; e++) {
            const int *idx;
            const float *wt;
            const size_t n = routed(S, e, &idx, &wt);
            S->rep->expert_tokens[(size_t)l * E + e] = n;
            if ((rc = ffn_block(S, l, VFY_ROLE_GATE, VFY_ROLE_UP, VFY_ROLE_DOWN, (int)e, idx, wt,
                                n, false, NULL)) ||
                (rc = held_flush(S)))   /* nothing computes with them again */
                return rc;
        }
        if ((rc = ffn_block(S, l, VFY_ROLE_SH_GATE, VFY_ROLE_SH_UP, VFY_ROLE_SH_DOWN, -1, NULL,
                            NULL, N, true, NULL)))
            return rc;
    }
    for (size_t i0 = 0; i0 < N; i0 += CH) {
        spill_trim(S);
        for (size_t i = i0 * dim; i < (N - i0 < CH ? N : i0 + CH) * dim; i++)
            S->X[i] += S->A[i];
    }
    return SB_OK;
}

/* ---- setup --------------------------------------------------------------------- */

/* Every (layer, role, expert) the model has, the classifier last (layer -1):
 * fn(S, l, role, e, ref) for each. */
static void for_each_mat(struct state *S, void (*fn)(struct state *, int, int, int,
                                                     const struct vfy_matref *, void *),
                         void *arg)
{
    const struct vfy_model_info *in = vfy_model_info(S->vm);
    struct vfy_matref ref;
    for (int l = 0; l <= in->n_layers; l++)
        for (int r = 0; r < VFY_ROLE_COUNT; r++) {
            const int ll = l == in->n_layers ? -1 : l;
            if ((ll < 0) != (r == VFY_ROLE_OUTPUT))
                continue;
            const bool ex = r >= VFY_ROLE_GATE && r <= VFY_ROLE_DOWN;
            for (int e = -1; e < (ex ? in->n_experts : 0); e++)
                if (vfy_model_mat(S->vm, ll, (enum vfy_role)r, e, &ref))
                    fn(S, ll, r, e, &ref, arg);
        }
}

struct sizes {
    size_t gscr, blob;
    size_t pack;                  /* the largest q8_0/q4_0 matrix's pack (qmm) */
    uint64_t held;                /* every quantized matrix's grid bytes */
};

/* widest input, most rows, matrices to quantize, largest GPTQ scratch and blob */
static void survey_one(struct state *S, int l, int r, int e, const struct vfy_matref *ref, void *arg)
{
    struct sizes *z = arg;
    struct vfy_matref m;
    S->maxc = ref->cols > S->maxc ? ref->cols : S->maxc;
    S->maxrows = ref->nrows > S->maxrows ? ref->nrows : S->maxrows;
    const int g = mat_grid(S, l, r, e, &m);
    if (g < 0)
        return;
    S->total++;
    const struct sb_qparams qp = qp_of(S, g);
    const size_t b = qnt_gptq_scratch_bytes((enum sb_dtype)g, &qp, ref->nrows, ref->cols,
                                            &S->o->gptq);
    z->gscr = b > z->gscr ? b : z->gscr;
    if (q8x_grid(g) && S->o->act_fit && S->o->method == CVT_QUANT_GPTQ &&
        S->N >= CVT_QUANT_FIT_TOKENS * ref->cols) {   /* it may be fitted (hess_begin) */
        const size_t a = qnt_gptq_asym_scratch_bytes(ref->nrows, ref->cols);
        z->gscr = a > z->gscr ? a : z->gscr;
        S->fit_maxc = ref->cols > S->fit_maxc ? ref->cols : S->fit_maxc;
        S->asym_on = true;
    }
    const int64_t sh[2] = { (int64_t)ref->nrows, (int64_t)ref->cols };
    const uint64_t nb = grid_bytes(S, g, sh, 2);
    z->blob = nb > z->blob ? (size_t)nb : z->blob;
    z->held += nb;
    if (q8x_grid(g)) {
        const uint64_t pk = qnt_matmul_pack_bytes((enum sb_dtype)g, ref->cols, ref->nrows);
        z->pack = pk > z->pack ? (size_t)pk : z->pack;
    }
}

/* ---- the memory cap ------------------------------------------------------------- */

/* the Hessians' scratch: plain sums up to maxc wide, fitted ones up to fit_maxc */
static size_t hs_doubles(const struct state *S, size_t maxc)
{
    const size_t p = QNT_GPTQ_HCHUNK * maxc, f = (2 * QNT_GPTQ_HCHUNK + 1) * S->fit_maxc;
    return p > f ? p : f;
}

struct weigh {
    uint64_t *layer;              /* [n_layers + 1]: source bytes of each layer's matrices
                                     (+ f32 copies of ternary ones); the last: the classifier */
    uint64_t *dense, *expert, *experts;   /* [n_layers + 1]: quantized bytes of the dense
                                     matrices; the largest expert matrix; all experts' */
    uint64_t qlargest;            /* the largest quantized tensor, whole */
    uint8_t *seen;                /* [n_tensors] */
};

static void weigh_one(struct state *S, int l, int r, int e, const struct vfy_matref *ref, void *arg)
{
    struct weigh *w = arg;
    struct vfy_matref m;
    const long ti = tensor_index(S->src, ref->name);
    const size_t b = l < 0 ? (size_t)vfy_model_info(S->vm)->n_layers : (size_t)l;
    if (ti >= 0 && !w->seen[ti] && S->src->tensors[ti].map_index >= 0) {
        w->seen[ti] = 1;
        w->layer[b] += S->src->tensors[ti].nbytes;
    }
    const int g = mat_grid(S, l, r, e, &m);
    if (g == SB_DTYPE_TERN)
        w->layer[b] += (uint64_t)ref->nrows * ref->cols * sizeof(float);
    if (g < 0)
        return;
    const int64_t sh[2] = { (int64_t)ref->nrows, (int64_t)ref->cols };
    const uint64_t nb = grid_bytes(S, g, sh, 2);
    const struct fmt_tensor *t = &S->src->tensors[ti];
    const uint64_t whole = grid_bytes(S, g, t->shape, t->ndim);
    w->qlargest = whole > w->qlargest ? whole : w->qlargest;
    if (e < 0)
        w->dense[b] += nb;
    else
        w->expert[b] = nb > w->expert[b] ? nb : w->expert[b];
    if (e >= 0)
        w->experts[b] += nb;
}

/* S after the survey (N, widths, the sizes z): what it holds resident. Every
 * buffer of alloc_state and the core's context, as they are allocated there;
 * of the mapped model, the largest layer (released after each under a cap);
 * every other source tensor (embedding, norms, anything on the heap) whole. */
static int mem_plan(struct state *S, const struct sizes *z, struct cvt_quant_mem *m)
{
    const struct fmt_model *src = S->src;
    const struct vfy_model_info *in = vfy_model_info(S->vm);
    const uint64_t N = S->N, dim = S->dim, wide = S->qd > dim ? S->qd : dim;
    const uint64_t maxc = S->maxc > wide ? S->maxc : wide, K = S->K ? S->K : 1;
    const uint64_t rowsz = S->ctx_len > CH ? S->ctx_len : CH;
    memset(m, 0, sizeof *m);
    m->tokens = N;
    m->fixed = CVT_MEM_FIXED / 2;
    m->work = rowsz * maxc * 4 + rowsz * wide * 4 + 2 * CH * maxc * 4 + CH * 4 +
              2 * N * K * 8 + (2 * S->E + 1) * 8 + maxc * maxc * 8 + hs_doubles(S, maxc) * 8 +
              2 * S->fit_maxc * S->fit_maxc * 8 + z->gscr +
              2 * (S->maxrows * maxc * 4 + 64) + z->blob + z->pack;
    struct vfy_ctx_shape sh;
    struct vfy_ctx_size cs;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    vfy_model_ctx_shape(S->vm, &sh);
    if (vfy_ctx_bytes(&sh, S->ctx_len, S->ctx_len, (size_t)nt, &cs) != SB_OK)
        return sb_err_set(S->err, SB_EINVAL, "%s: the calibration context overflows", src->path);
    m->work += cs.kv + cs.buffers;
    const size_t nl = (size_t)in->n_layers + 1;
    struct weigh w = { sb_calloc(nl, sizeof *w.layer), sb_calloc(nl, sizeof *w.dense),
                       sb_calloc(nl, sizeof *w.expert), sb_calloc(nl, sizeof *w.experts), 0,
                       sb_calloc(src->n_tensors ? src->n_tensors : 1, 1) };
    const bool job = par_size() > 1;
    int rc = SB_OK;
    if (!w.layer || !w.dense || !w.expert || !w.experts || !w.seen) {
        rc = oom(S);
        goto out;
    }
    for_each_mat(S, weigh_one, &w);
    for (size_t l = 0; l < nl; l++) {
        m->weights = w.layer[l] > m->weights ? w.layer[l] : m->weights;
        /* spilled after each expert (its three matrices) and each layer; in a
         * job, a rank holds its share of the layer's experts (at most all of
         * them) until each is taken back in order */
        const uint64_t h = w.dense[l] + 3 * w.expert[l] + (job ? w.experts[l] : 0);
        m->held_window = h > m->held_window ? h : m->held_window;
    }
    uint64_t largest = w.qlargest;
    for (size_t i = 0; i < src->n_tensors; i++) {
        if (!w.seen[i])
            m->weights += src->tensors[i].nbytes;
        largest = src->tensors[i].nbytes > largest ? src->tensors[i].nbytes : largest;
    }
    m->held = z->held;
    m->act = N * (dim + wide) * 4 + (job && S->E ? N * K * dim * 4 : 0);   /* X, A, xo */
    /* a chunk's rows of X and A with the kernel's fault-around (64 KiB) at each
     * end, or GATHER_TRIM scattered rows of each, 64 KiB around each row */
    m->spill_window = rowsz * (dim + wide) * 4 + 4 * GATHER_TRIM * 65536 + 4 * 65536;
    /* under a cap, the quantized matrices spill first (written once, read
     * once by the write), then the activations (read again by every layer) */
    const uint64_t cap = S->o->conv.max_memory, base = m->fixed + m->work + m->weights;
    m->spill_held = cap && (base + m->held + m->act > cap || m->held + CVT_MEM_FIXED + largest > cap);
    const uint64_t held = m->spill_held ? m->held_window : m->held;
    m->spill = cap && base + held + m->act > cap && m->spill_window < m->act;
    m->write = (m->spill_held ? 0 : m->held) + CVT_MEM_FIXED + largest;
    m->peak = base + held + (m->spill ? m->spill_window : m->act);
    m->peak = m->write > m->peak ? m->write : m->peak;
    if (cap && m->peak > cap)
        rc = sb_err_set(S->err, SB_ENOMEM, "%s: --max-memory %llu MiB is below what one layer "
                        "needs: %llu MiB (its weights %llu, work buffers %llu, the quantized "
                        "matrices held %llu, the activations %llu%s, the process %llu; the "
                        "write %llu)", src->path, (unsigned long long)(cap >> 20),
                        (unsigned long long)((m->peak + (1 << 20) - 1) >> 20),
                        (unsigned long long)(m->weights >> 20),
                        (unsigned long long)(m->work >> 20), (unsigned long long)(held >> 20),
                        (unsigned long long)((m->spill ? m->spill_window : m->act) >> 20),
                        m->spill ? " (a window of them, spilled)" : "",
                        (unsigned long long)(m->fixed >> 20),
                        (unsigned long long)(m->write >> 20));
out:
    sb_free(w.layer);
    sb_free(w.dense);
    sb_free(w.expert);
    sb_free(w.experts);
    sb_free(w.seen);
    return rc;
}

/* the folder spilled activations go to: the option, else the output's */
static void scratch_folder(const char *opt, const char *out_path, char *dir, size_t cap)
{
    if (opt) {
        snprintf(dir, cap, "%s", opt);
        return;
    }
    size_t len = strlen(out_path);
    while (len > 1 && out_path[len - 1] == '/')
        len--;
    while (len > 0 && out_path[len - 1] != '/')
        len--;
    if (len == 0)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", (int)(len > 1 ? len - 1 : 1), out_path);
}

/* A scratch file of len bytes in dir for `what`: removed from the folder at
 * once (nothing is left whatever happens), its blocks reserved up front so a
 * full disk is an error here rather than a fault later. @return its fd, or -1
 * with S->err set. */
static int scratch_file(struct state *S, const char *dir, const char *what, uint64_t len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/subbit-%s.subbit-tmp-%ld-XXXXXX", dir, what, (long)getpid());
    int fd = mkstemp(path);
    if (fd < 0) {
        sb_err_set(S->err, SB_EIO, "%s: cannot create a scratch file for the spilled %s: %s", dir,
                   what, strerror(errno));
        return -1;
    }
    unlink(path);
    const int e = len ? posix_fallocate(fd, 0, (off_t)len) : 0;
    if (e) {
        close(fd);
        sb_err_set(S->err, SB_EIO, "%s: cannot hold %llu MiB of spilled %s: %s", dir,
                   (unsigned long long)(len >> 20), what, strerror(e));
        return -1;
    }
    return fd;
}

/* X, A and (in a job) xo in one scratch file of dir, mapped shared */
static int spill_open(struct state *S, const char *dir, size_t nx, size_t na, size_t nxo)
{
    const size_t offa = (nx + 4095) / 4096 * 4096, offo = offa + (na + 4095) / 4096 * 4096;
    const size_t len = offo + nxo;
    const int fd = scratch_file(S, dir, "activations", len);
    if (fd < 0)
        return SB_EIO;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return sb_err_set(S->err, SB_EIO, "%s: cannot map %llu MiB of spilled activations: %s",
                          dir, (unsigned long long)(len >> 20), strerror(e));
    S->act_map = p;
    S->act_map_len = len;
    S->X = (float *)p;
    S->A = (float *)(S->act_map + offa);
    S->xo = nxo ? (float *)(S->act_map + offo) : NULL;
    return SB_OK;
}

/* each quantized tensor's place in the held file, in the order they come */
static void held_place(struct state *S, int l, int r, int e, const struct vfy_matref *ref, void *arg)
{
    (void)arg;
    struct vfy_matref m;
    const int g = mat_grid(S, l, r, e, &m);
    const long ti = g < 0 ? -1 : tensor_index(S->src, ref->name);
    if (ti < 0 || S->held_off[ti] != UINT64_MAX)
        return;
    const struct fmt_tensor *t = &S->src->tensors[ti];
    S->held_off[ti] = S->held_len;
    S->held_len += (grid_bytes(S, g, t->shape, t->ndim) + 4095) / 4096 * 4096;
}

static int held_open(struct state *S, const char *dir)
{
    const size_t n = S->src->n_tensors;
    if (!(S->held_off = sb_malloc((n ? n : 1) * sizeof *S->held_off)))
        return oom(S);
    for (size_t i = 0; i < n; i++)
        S->held_off[i] = UINT64_MAX;
    for_each_mat(S, held_place, NULL);
    snprintf(S->held_dir, sizeof S->held_dir, "%s", dir);
    S->held_fd = scratch_file(S, dir, "matrices", S->held_len);
    return S->held_fd < 0 ? SB_EIO : SB_OK;
}

static int alloc_state(struct state *S, const struct vfy_plan *p, const char *out_path)
{
    const struct vfy_model_info *in = vfy_model_info(S->vm);
    S->dim = (size_t)in->dim;
    S->qd = (size_t)in->n_heads * (size_t)in->head_dim;
    S->E = (size_t)in->n_experts;
    S->K = (size_t)in->n_experts_used;
    S->n_win = p->n_win;
    if (!(S->wrow = sb_malloc((p->n_win + 1) * sizeof *S->wrow)))
        return oom(S);
    S->N = 0;
    for (size_t w = 0; w < p->n_win; w++) {
        S->wrow[w] = S->N;
        S->N += p->win[w].n;
        if (p->win[w].n > S->ctx_len)
            S->ctx_len = p->win[w].n;
    }
    S->wrow[p->n_win] = S->N;
    struct sizes z = { 0, 0, 0, 0 };
    for_each_mat(S, survey_one, &z);
    const size_t N = S->N, dim = S->dim, wide = S->qd > dim ? S->qd : dim;
    const size_t maxc = S->maxc > wide ? S->maxc : wide, rowsz = (S->ctx_len > CH ? S->ctx_len : CH);
    const size_t gs = z.gscr, mx = z.blob;
    S->gscr_cap = gs;
    size_t nd, na, no = 0;   /* no: in a job, this rank's expert outputs (at most N * K rows) */
    if (sb_mul_size(N, dim, &nd) || sb_mul_size(N, wide, &na) ||
        (par_size() > 1 && S->E && sb_mul_size(N * S->K, dim, &no)))
        return oom(S);
    int rc = mem_plan(S, &z, &S->rep->mem);
    if (rc != SB_OK)
        return rc;
    char dir[4096];
    scratch_folder(S->o->scratch_dir, out_path, dir, sizeof dir);
    if (S->rep->mem.spill_held && (rc = held_open(S, dir)) != SB_OK)
        return rc;
    if (S->rep->mem.spill) {
        if ((rc = spill_open(S, dir, nd * sizeof(float) + 64, na * sizeof(float) + 64,
                             no ? no * sizeof(float) + 64 : 0)) != SB_OK)
            return rc;
    } else {
        S->X = sb_malloc_aligned(nd * sizeof(float) + 64);
        S->A = sb_malloc_aligned(na * sizeof(float) + 64);
        if (no && !(S->xo = sb_malloc_aligned(no * sizeof(float) + 64)))
            return oom(S);
    }
    S->xn = sb_malloc_aligned(rowsz * maxc * sizeof(float));
    S->y = sb_malloc_aligned(rowsz * wide * sizeof(float));
    S->h1 = sb_malloc_aligned(CH * maxc * sizeof(float));
    S->h2 = sb_malloc_aligned(CH * maxc * sizeof(float));
    S->g = sb_malloc(CH * sizeof(float));
    S->sel = sb_malloc((N * (S->K ? S->K : 1)) * sizeof(int));
    S->selw = sb_malloc((N * (S->K ? S->K : 1)) * sizeof(float));
    S->idx = sb_malloc((N * (S->K ? S->K : 1)) * sizeof(int) + sizeof(int));
    S->wt = sb_malloc((N * (S->K ? S->K : 1)) * sizeof(float) + sizeof(float));
    S->eoff = sb_malloc((2 * S->E + 1) * sizeof *S->eoff);
    S->H = sb_malloc_aligned(maxc * maxc * sizeof(double));
    S->hs = sb_malloc_aligned(hs_doubles(S, maxc) * sizeof(double));
    if (S->asym_on) {
        S->D = sb_malloc_aligned(S->fit_maxc * S->fit_maxc * sizeof(double));
        S->E2 = sb_malloc_aligned(S->fit_maxc * S->fit_maxc * sizeof(double));
        if (!S->D || !S->E2)
            return oom(S);
    }
    S->gscr = gs ? sb_malloc_aligned(gs) : NULL;
    S->W = sb_malloc_aligned(S->maxrows * maxc * sizeof(float) + 64);
    S->Q = sb_malloc_aligned(S->maxrows * maxc * sizeof(float) + 64);
    S->rtn_blob = sb_malloc(mx ? mx : 1);
    S->blob_cap = mx;
    S->pack = z.pack ? sb_malloc_aligned(z.pack) : NULL;   /* none: unpacked, the same bits */
    S->pack_cap = S->pack ? z.pack : 0;
    if (!S->X || !S->A || !S->xn || !S->y || !S->h1 || !S->h2 || !S->g || !S->sel || !S->selw ||
        !S->idx || !S->wt || !S->eoff || !S->H || !S->hs || (gs && !S->gscr) || !S->W || !S->Q || !S->rtn_blob)
        return oom(S);
    return SB_OK;
}

static void free_f32(struct state *S)
{
    for (size_t i = 0; i < S->n_f32; i++)
        sb_free_aligned(S->f32[i]);
    S->n_f32 = 0;
}

/* every buffer of the calibration (not the quantized matrices, nor the model) */
static void free_work(struct state *S)
{
    sb_free(S->wrow);
    if (S->act_map)
        munmap(S->act_map, S->act_map_len);
    else {
        sb_free_aligned(S->X);
        sb_free_aligned(S->A);
        sb_free_aligned(S->xo);
    }
    S->act_map = NULL;
    S->wrow = NULL;
    S->X = S->A = S->xo = NULL;
    sb_free_aligned(S->xn);
    sb_free_aligned(S->y);
    sb_free_aligned(S->h1);
    sb_free_aligned(S->h2);
    sb_free_aligned(S->pack);
    S->pack = NULL;
    sb_free(S->g);
    sb_free(S->sel);
    sb_free(S->selw);
    sb_free(S->idx);
    sb_free(S->wt);
    sb_free(S->eoff);
    S->eoff = NULL;
    sb_free_aligned(S->H);
    sb_free_aligned(S->hs);
    sb_free_aligned(S->D);
    sb_free_aligned(S->E2);
    S->D = S->E2 = NULL;
    sb_free_aligned(S->gscr);
    sb_free_aligned(S->W);
    sb_free_aligned(S->Q);
    sb_free(S->rtn_blob);
    S->xn = S->y = S->h1 = S->h2 = S->g = S->selw = S->wt = S->W = S->Q = NULL;
    S->sel = S->idx = NULL;
    S->H = S->hs = NULL;
    S->gscr = S->rtn_blob = NULL;
}

static void free_state(struct state *S)
{
    free_work(S);
    for (size_t i = 0; i < S->n_qb; i++)
        sb_free(S->qb[i].blob);
    sb_free(S->qb);
    if (S->held_fd >= 0)
        close(S->held_fd);
    S->held_fd = -1;
    sb_free(S->held_off);
    free_f32(S);
    sb_free(S->f32);
    sb_free(S->to);
    vfy_ctx_free(S->ctx);
    vfy_model_free(S->vm);
}

void cvt_quant_report_free(struct cvt_quant_report *rep)
{
    if (!rep)
        return;
    cvt_report_free(rep->conv);
    sb_free(rep->m);
    sb_free(rep->expert_tokens);
    sb_free(rep->layer_seconds);
    sb_free(rep);
}

/* ---- assembling and writing ------------------------------------------------------- */

/* place a matrix's rows into its tensor's blob (rows x cols of its grid) */
static void place_rows(const struct state *S, const struct qbuf *q, uint64_t rows, uint8_t *full)
{
    uint64_t at[2], from[2], len[2];
    const int np = row_pieces(S, q, rows, at, from, len);
    for (int k = 0; k < np; k++)
        memcpy(full + at[k], (const uint8_t *)q->blob + from[k], (size_t)len[k]);
}

/* The write: a view of the model whose quantized tensors are assembled from
 * S->qb in memory, or, when they spilled, read from the held file, mapped as
 * one more of the model's mappings (its pages released after each tensor). */
static int write_out(struct state *S, const char *out_path, struct cvt_report **conv)
{
    const struct fmt_model *src = S->src;
    struct fmt_model sub = *src;
    const size_t nt = src->n_tensors ? src->n_tensors : 1;
    void **bufs = sb_calloc(nt, sizeof *bufs);
    struct fmt_tensor *ts = sb_malloc(nt * sizeof *ts);
    uint64_t *covered = sb_calloc(nt, sizeof *covered);
    struct fmt_map **maps = sb_malloc((src->n_maps + 1) * sizeof *maps);
    struct fmt_map held = { S->held_dir, NULL, S->held_len, -1 };
    int rc = SB_OK;
    if (!bufs || !ts || !covered || !maps) {
        rc = oom(S);
        goto out;
    }
    if ((rc = held_flush(S)) != SB_OK)
        goto out;
    if (S->held_fd >= 0 && S->held_len) {
        void *p = mmap(NULL, (size_t)S->held_len, PROT_READ, MAP_SHARED, S->held_fd, 0);
        if (p == MAP_FAILED) {
            rc = sb_err_set(S->err, SB_EIO, "%s: cannot map the spilled matrices: %s",
                            S->held_dir, strerror(errno));
            goto out;
        }
        held.data = p;
    }
    memcpy(ts, src->tensors, src->n_tensors * sizeof *ts);
    for (size_t i = 0; i < S->n_qb; i++) {
        const struct qbuf *q = &S->qb[i];
        struct fmt_tensor *t = &ts[q->src];
        const struct sb_qparams qp = qp_of(S, q->enc);
        uint64_t rows, cols;
        sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols);
        if (!covered[q->src]) {
            uint64_t nb;
            if (sb_dtype_nbytes(q->enc, t->shape, t->ndim, &qp, &nb) != SB_OK) {
                rc = sb_err_set(S->err, SB_EFORMAT, "%s: tensor '%s' cannot be stored as %s",
                                src->path, t->name, sb_dtype_name(q->enc));
                goto out;
            }
            t->dtype = q->enc;
            t->qp = qp;
            t->nbytes = nb;
            t->owned = NULL;
            t->checksum = 0;
            t->map_index = -1;
            if (held.data) {   /* spilled: the tensor is whole in the file */
                t->data = held.data + S->held_off[q->src];
                t->map_index = (int)src->n_maps;
                t->file_offset = S->held_off[q->src];
            } else if (!(t->data = bufs[q->src] = sb_malloc_aligned(nb ? nb : 64))) {
                rc = oom(S);
                goto out;
            }
        }
        if (q->blob)
            place_rows(S, q, rows, bufs[q->src]);
        covered[q->src] += q->nrows;
        sb_free(S->qb[i].blob);
        S->qb[i].blob = NULL;
    }
    for (size_t i = 0; i < src->n_tensors; i++) {
        uint64_t rows, cols;
        sb_shape_rows_cols(ts[i].shape, ts[i].ndim, &rows, &cols);
        if (covered[i] && covered[i] != rows) {
            rc = sb_err_set(S->err, SB_EUNSUPPORTED, "%s: tensor '%s': only %llu of %llu rows are "
                            "matrices the core computes with", src->path, ts[i].name,
                            (unsigned long long)covered[i], (unsigned long long)rows);
            goto out;
        }
    }
    sub.tensors = ts;
    if (src->n_maps)
        memcpy(maps, src->maps, src->n_maps * sizeof *maps);
    maps[src->n_maps] = &held;
    sub.maps = maps;
    sub.n_maps = src->n_maps + 1;
    struct cvt_opts co = S->o->conv;
    const uint64_t resident = S->rep->mem.spill_held ? 0 : S->rep->mem.held;
    if (co.max_memory)   /* the quantized matrices stay resident while it writes, unless spilled */
        co.max_memory = co.max_memory > resident ? co.max_memory - resident : 1;
    co.stats = false;    /* re-encoding to compare would redo the scales: cvt_qmat has the errors */
    co.report_src = src;
    rc = cvt_convert(&sub, out_path, &co, conv, S->err);
out:
    for (size_t i = 0; bufs && i < src->n_tensors; i++)
        sb_free_aligned(bufs[i]);
    if (held.data)
        munmap((void *)held.data, (size_t)S->held_len);
    sb_free(bufs);
    sb_free(ts);
    sb_free(covered);
    sb_free(maps);
    return rc;
}

int cvt_quant(const struct fmt_model *src, const struct vfy_plan *plan, const char *out_path,
              const struct cvt_quant_opts *o, struct cvt_quant_report **rep_out,
              struct sb_err *err)
{
    *rep_out = NULL;
    struct state S;
    memset(&S, 0, sizeof S);
    S.src = src;
    S.o = o;
    S.err = err;
    S.held_fd = -1;
    const double t0 = now_s();
    /* the calibration computes bf16 weights with f32 activations on every CPU, so the
     * bytes written do not depend on whether it has AVX512-BF16 (qnt_matvec.h) */
    const bool bf16_act = qnt_matvec_bf16_activations(false);
    int rc;
    struct cvt_quant_report *R = sb_calloc(1, sizeof *R);
    S.rep = R;
    if (!R || !(S.to = sb_malloc((src->n_tensors ? src->n_tensors : 1) * sizeof *S.to))) {
        rc = oom(&S);
        goto fail;
    }
    if (!plan || plan->n_win == 0) {
        rc = sb_err_set(err, SB_EINVAL, "%s: no calibration windows", src->path);
        goto fail;
    }
    enum fmt_container cont;
    if ((rc = fmt_container_for_output(out_path, &cont, err)) != SB_OK ||
        (rc = cvt_decide_sources(src, cont, &o->conv, S.to, NULL, err)) != SB_OK)
        goto fail;
    S.capped = o->conv.max_memory > 0;
    if ((rc = vfy_model_new_opts(&S.vm, src, VFY_MODEL_NO_PACK, err)) != SB_OK)
        goto fail;
    if ((rc = alloc_state(&S, plan, out_path)) != SB_OK)
        goto fail;
    const struct vfy_model_info *in = vfy_model_info(S.vm);
    if ((rc = vfy_ctx_new(&S.ctx, S.vm, S.ctx_len, S.ctx_len, err)) != SB_OK)
        goto fail;
    R->n_layers = in->n_layers;
    R->n_experts = in->n_experts;
    R->calib_tokens = S.N;
    R->calib_windows = plan->n_win;
    R->expert_tokens = sb_calloc((size_t)in->n_layers * (S.E ? S.E : 1), sizeof *R->expert_tokens);
    R->layer_seconds = sb_calloc((size_t)in->n_layers, sizeof *R->layer_seconds);
    if (!R->expert_tokens || !R->layer_seconds) {
        rc = oom(&S);
        goto fail;
    }
    for (size_t w = 0; w < plan->n_win; w++) {
        const struct vfy_window *win = &plan->win[w];
        for (size_t i = 0; i < win->n; i++) {
            const int32_t id = plan->tok[win->off + i];
            if (id < 0 || id >= in->vocab) {
                rc = sb_err_set(err, SB_EINVAL, "%s: calibration token id %ld out of range "
                                "(vocab %d)", src->path, (long)id, in->vocab);
                goto fail;
            }
        }
        spill_trim(&S);
        vfy_embed(S.vm, plan->tok + win->off, win->n, S.X + S.wrow[w] * S.dim);
    }
    sb_progress_report(&o->progress, 0, S.total);
    release_source(&S);
    for (int l = 0; l < in->n_layers; l++) {
        const double tl = now_s();
        if ((rc = do_layer(&S, l)) != SB_OK || (rc = held_flush(&S)) != SB_OK)
            goto fail;
        R->layer_seconds[l] = now_s() - tl;
        free_f32(&S);   /* later layers never compute with this one's matrices */
        release_source(&S);
    }
    /* the classifier: on the final normed hidden states */
    const bool need_out = o->method == CVT_QUANT_GPTQ && quantized_here(&S, -1, VFY_ROLE_OUTPUT, -1);
    if (need_out)
        hessian_inputs(&S, 0, VFY_NORM_OUT, NULL, S.N, S.dim,
                       group_q8x(&S, -1, (const int[]){ VFY_ROLE_OUTPUT }, 1, -1));
    if ((rc = quant_matrix(&S, -1, VFY_ROLE_OUTPUT, -1, need_out, S.N, why_text[WHY_GPTQ])) != SB_OK)
        goto fail;
    R->seconds_calib = now_s() - t0;
    vfy_ctx_free(S.ctx);
    S.ctx = NULL;
    vfy_model_free(S.vm);   /* it points into the blobs write_out frees */
    S.vm = NULL;
    free_work(&S);   /* the writer's room */
    const double tw = now_s();
    if ((rc = write_out(&S, out_path, &R->conv)) != SB_OK)
        goto fail;
    R->seconds_write = now_s() - tw;
    free_state(&S);
    qnt_matvec_bf16_activations(bf16_act);
    *rep_out = R;
    return SB_OK;
fail:
    /* a rank that failed alone (its share of a layer, its memory) meets the others
     * at their next agreement: the layer's experts, or the writer's plan */
    rc = par_settle(rc, err);
    free_state(&S);
    cvt_quant_report_free(R);
    qnt_matvec_bf16_activations(bf16_act);
    return rc;
}

int cvt_quant_memory(const struct fmt_model *src, size_t n_tokens, size_t ctx_len,
                     const char *out_path, const struct cvt_quant_opts *o,
                     struct cvt_quant_mem *m, struct sb_err *err)
{
    struct state S;
    struct cvt_quant_report R;
    memset(&S, 0, sizeof S);
    memset(&R, 0, sizeof R);
    memset(m, 0, sizeof *m);
    S.src = src;
    S.o = o;
    S.err = err;
    S.rep = &R;
    S.N = n_tokens;
    S.ctx_len = ctx_len;
    enum fmt_container cont;
    int rc;
    if (!(S.to = sb_malloc((src->n_tensors ? src->n_tensors : 1) * sizeof *S.to)))
        return oom(&S);
    if ((rc = fmt_container_for_output(out_path, &cont, err)) == SB_OK &&
        (rc = cvt_decide_sources(src, cont, &o->conv, S.to, NULL, err)) == SB_OK &&
        (rc = vfy_model_new_opts(&S.vm, src, VFY_MODEL_NO_PACK, err)) == SB_OK) {
        const struct vfy_model_info *in = vfy_model_info(S.vm);
        S.dim = (size_t)in->dim;
        S.qd = (size_t)in->n_heads * (size_t)in->head_dim;
        S.K = (size_t)in->n_experts_used;
        S.E = (size_t)in->n_experts;
        struct sizes z = { 0, 0, 0, 0 };
        for_each_mat(&S, survey_one, &z);
        rc = mem_plan(&S, &z, m);
    }
    vfy_model_free(S.vm);
    sb_free(S.to);
    return rc;
}
