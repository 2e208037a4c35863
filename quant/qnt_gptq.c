/* qnt_gptq.c: GPTQ onto subbit's grids (qnt_gptq.h). Knows the grids' float
 * rules (the same as the round-to-nearest quantizers of qnt_ggml.c,
 * qnt_int8.c, qnt_tern.c) and the blob layouts it packs into; the linear
 * algebra is OpenBLAS/LAPACK (dsyrk, dpotrf, dtrtri, dgemm, dsymm). */
#include "qnt_gptq.h"

#include <cblas.h>
#include <lapack.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_cast.h"
#include "qnt_ggml.h"
#include "qnt_ggml_impl.h"
#include "qnt_ggml_types_impl.h"
#include "qnt_int8.h"
#include "qnt_q8mm_impl.h"
#include "qnt_tern.h"
#include "sb_err.h"

void qnt_gptq_opts_init(struct qnt_gptq_opts *o)
{
    memset(o, 0, sizeof *o);
    o->damp = 0.01;
    o->block = 128;
    o->zero_band = 0.5;
    o->ec_p0 = 0.885;
}

bool qnt_gptq_supported(enum sb_dtype dt)
{
    switch (dt) {
    case SB_DTYPE_INT8: case SB_DTYPE_Q8_0: case SB_DTYPE_Q4_0: case SB_DTYPE_TQ1_0:
    case SB_DTYPE_TQ2_0: case SB_DTYPE_TERN:
        return true;
    default:
        return false;
    }
}

void qnt_gptq_hessian_add(double *H, size_t cols, const float *X, size_t n, size_t ldx,
                          double *scratch)
{
    for (size_t t0 = 0; t0 < n; t0 += QNT_GPTQ_HCHUNK) {
        const size_t m = n - t0 < QNT_GPTQ_HCHUNK ? n - t0 : QNT_GPTQ_HCHUNK;
        for (size_t t = 0; t < m; t++) {
            const float *x = X + (t0 + t) * ldx;
            double *d = scratch + t * cols;
            for (size_t j = 0; j < cols; j++)
                d[j] = x[j];
        }
        /* C = A^T A for A (m x cols) row-major */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)m, 1.0, scratch,
                    (int)cols, 1.0, H, (int)cols);
    }
}

void qnt_gptq_hessian_add_q8x(double *H, double *D, double *E2, size_t cols, const float *X,
                              size_t n, size_t ldx, double *scratch)
{
    double *xt = scratch, *er = scratch + QNT_GPTQ_HCHUNK * cols;
    int8_t *q = (int8_t *)(er + QNT_GPTQ_HCHUNK * cols);
    float *d8 = (float *)(void *)(q + cols);
    for (size_t t0 = 0; t0 < n; t0 += QNT_GPTQ_HCHUNK) {
        const size_t m = n - t0 < QNT_GPTQ_HCHUNK ? n - t0 : QNT_GPTQ_HCHUNK;
        for (size_t t = 0; t < m; t++) {
            const float *x = X + (t0 + t) * ldx;
            double *a = xt + t * cols, *e = er + t * cols;
            /* the kernel's rounding (qnt_q8mm_impl.h); a block's value is code * scale */
            qnt_q8x_quantize(x, cols, q, d8);
            for (size_t j = 0; j < cols; j++) {
                a[j] = (double)q[j] * (double)d8[(j / QNT_Q8MM_QK) * 8];
                e[j] = (double)x[j] - a[j];
            }
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)m, 1.0, xt,
                    (int)cols, 1.0, H, (int)cols);
        /* D += E^T Xt: D[i][j] = sum_t e_t[i] xt_t[j] */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, (int)cols, (int)m, 1.0,
                    er, (int)cols, xt, (int)cols, 1.0, D, (int)cols);
        if (E2)
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)m, 1.0, er,
                        (int)cols, 1.0, E2, (int)cols);
    }
}

size_t qnt_gptq_asym_scratch_bytes(size_t rows, size_t cols)
{
    return (cols * cols + 2 * rows * cols) * sizeof(double);
}

int qnt_gptq_asym_correct(float *W, size_t rows, size_t cols, const double *H, const double *D,
                          double damp, double *scratch)
{
    double *M = scratch, *P = scratch + cols * cols, *Wd = P + rows * cols;
    double tr = 0.0;
    for (size_t j = 0; j < cols; j++)
        tr += H[j * cols + j];
    const double mean_diag = tr / (double)cols;
    if (!(mean_diag > 0.0) || !isfinite(mean_diag))
        return SB_EINVAL;
    for (size_t i = 0; i < rows * cols; i++)
        Wd[i] = W[i];
    /* P = W D (rows x cols); then P (H + l I)^-1 by the Cholesky factor of the
     * symmetric H + l I: row-major P is P^T column-major, so dpotrs solves
     * (H + l I) Z^T = P^T in place. H's row-major upper triangle is the
     * column-major lower one. */
    int nn = (int)cols, nr = (int)rows, info = -1;
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);   /* one thread: the solve must not depend on the thread count */
#endif
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0,
                Wd, (int)cols, D, (int)cols, 0.0, P, (int)cols);
    for (int tries = 0; tries < 6 && info != 0; tries++, damp *= 10.0) {
        memcpy(M, H, cols * cols * sizeof *M);
        for (size_t j = 0; j < cols; j++)   /* a dead column (never active): 1, as GPTQ does */
            M[j * cols + j] = (M[j * cols + j] > 0.0 ? M[j * cols + j] : 1.0) + damp * mean_diag;
        LAPACK_dpotrf("L", &nn, M, &nn, &info);
    }
    if (info == 0)
        LAPACK_dpotrs("L", &nn, &nr, M, &nn, P, &nn, &info);
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
    if (info != 0)
        return SB_EINVAL;
    for (size_t i = 0; i < rows * cols; i++) {
        const float v = (float)(Wd[i] + P[i]);
        if (!isfinite(v))
            return SB_EINVAL;
    }
    for (size_t i = 0; i < rows * cols; i++)
        W[i] = (float)(Wd[i] + P[i]);
    return SB_OK;
}

/* ---- grids ------------------------------------------------------------------ */

/* Columns sharing one scale: the ggml block, the int8 group, or the whole row. */
static size_t grid_group(enum sb_dtype dt, const struct sb_qparams *qp, size_t cols)
{
    switch (dt) {
    case SB_DTYPE_Q8_0: return QNT_QK8_0;
    case SB_DTYPE_Q4_0: return QNT_QK4_0;
    case SB_DTYPE_TQ1_0: case SB_DTYPE_TQ2_0: return QNT_QK_K;
    case SB_DTYPE_INT8: return qp && qp->group && qp->group < cols ? qp->group : cols;
    default: return cols;   /* tern: per row */
    }
}

/* One scale group's parameters: code = rule(x, id), value = code * dd. */
struct grp {
    float id;        /* what x is multiplied (ggml) or divided (int8: s) by */
    float dd;        /* the decoded scale */
    uint16_t h;      /* the stored fp16 bits (ggml, int8 f16) */
};

/* Tern levels of one row. */
struct trow {
    float lo, hi, tlo, thi;
    uint16_t lo16, hi16;
    double inv_s2;   /* 1 / mean(w^2) of the original row, for entropy-constrained rounding */
};

struct job {
    enum sb_dtype dt;
    const struct sb_qparams *qp;
    size_t rows, cols, g, ngroups, B;
    bool f16scale;
    const struct qnt_gptq_opts *o;
    const size_t *perm;        /* processing position -> original column */
    const double *U;           /* (cols, cols) row-major upper, in processing order */
    double *W;                 /* (rows, cols) working weights in processing order; becomes Q */
    double *E;                 /* (rows, B) */
    uint8_t *codes;            /* (rows, cols) in processing order */
    struct grp *gp;            /* (rows, ngroups) */
    struct trow *tr;           /* (rows) */
    bool dynamic;              /* fit groups on the updated weights at their first column */
    double ec_bits[3];         /* code length of symbols 0, 1 (lo), 2 (hi) */
    double ec_scale;           /* 1 / mean diag(H) */
    const double *hd;          /* q4_0 --imatrix-scales: diag(H) by original column, else NULL */
    const double *s2;          /* with hd: each row's mean square weight (original) */
};

/* Fit a group's scale from the n weights at w, each taken as the float the
 * round-to-nearest quantizer would see (the encoding's own rule; q4_0 with
 * importances imp (diag(H) of these columns) and the row's mean square s2:
 * ggml's rule given an importance matrix, quantize_row_q4_0_impl). */
static void fit_group(const struct job *J, const double *w, size_t n, const double *imp, double s2,
                      struct grp *g)
{
    float amax = 0.0f, max = 0.0f, x[QNT_QK_K];
    if (J->dt != SB_DTYPE_INT8) {
        for (size_t j = 0; j < n; j++)
            x[j] = (float)w[j];
    }
    switch (J->dt) {
    case SB_DTYPE_Q8_0: {
        for (size_t j = 0; j < n; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        g->id = d != 0.0f ? 1.0f / d : 0.0f;
        g->h = qnt_f32_to_f16_ref(d);
        g->dd = qnt_f16_to_f32_ref(g->h);
        break;
    }
    case SB_DTYPE_Q4_0: {
        if (imp) {
            float qw[QNT_QK4_0];
            int8_t L[QNT_QK4_0];
            for (size_t j = 0; j < n; j++)
                qw[j] = (float)imp[j] * sqrtf((float)s2 + x[j] * x[j]);
            const float d = qnt_gx_make_qx((int)n, 8, x, L, qw);
            g->h = qnt_f32_to_f16_ref(d);
            g->dd = qnt_f16_to_f32_ref(g->h);
            g->id = g->dd != 0.0f ? 1.0f / g->dd : 0.0f;
            if (isfinite(g->dd) && isfinite(g->id))
                break;
            /* importances past float's range (inf / NaN sums): the plain rule,
             * never a scale the block cannot hold */
        }
        for (size_t j = 0; j < n; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;
        g->id = d != 0.0f ? 1.0f / d : 0.0f;
        g->h = qnt_f32_to_f16_ref(d);
        g->dd = qnt_f16_to_f32_ref(g->h);
        break;
    }
    case SB_DTYPE_TQ1_0: case SB_DTYPE_TQ2_0:
        for (size_t j = 0; j < n; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        g->h = qnt_f32_to_f16_ref(amax);
        g->id = amax != 0.0f ? 1.0f / amax : 0.0f;
        g->dd = qnt_f16_to_f32_ref(g->h);
        break;
    case SB_DTYPE_INT8: {   /* any group length: read w directly */
        for (size_t j = 0; j < n; j++)
            amax = fmaxf(amax, fabsf((float)w[j]));
        float s = amax / 127.0f;
        if (J->f16scale) {
            uint16_t h = qnt_f32_to_f16_ref(s);
            if ((h & 0x7FFF) > 0x7BFF)
                h = 0x7BFF;
            s = qnt_f16_to_f32_ref(h);
            g->h = h;
        }
        g->id = s;
        g->dd = s;
        break;
    }
    default:
        break;
    }
}

static void set_tern_levels(const struct job *J, float lo, float hi, struct trow *t)
{
    t->lo16 = qnt_tern_f32_to_bf16(lo);
    t->hi16 = qnt_tern_f32_to_bf16(hi);
    t->lo = qnt_tern_bf16_to_f32(t->lo16);
    t->hi = qnt_tern_bf16_to_f32(t->hi16);
    const double zb = J->o->zero_band;
    t->tlo = zb == 0.5 ? t->lo * 0.5f : (float)(zb * t->lo);
    t->thi = zb == 0.5 ? t->hi * 0.5f : (float)(zb * t->hi);
}

/* QMoE's levels: the row's min and max (with 0), bf16 */
static void fit_tern_row(const struct job *J, const float *x, struct trow *t)
{
    float mn = 0.0f, mx = 0.0f;
    double ss = 0.0;
    for (size_t j = 0; j < J->cols; j++) {
        if (x[j] < mn)
            mn = x[j];
        if (x[j] > mx)
            mx = x[j];
        ss += (double)x[j] * x[j];
    }
    set_tern_levels(J, mn, mx, t);
    t->inv_s2 = ss > 0 ? (double)J->cols / ss : 0.0;
}

/* The symbol of x under levels (lo, hi) minimising (x - q)^2 * k + lambda * bits. */
static inline unsigned ec_pick(double x, double lo, double hi, double k, double lambda,
                               const double bits[3])
{
    double best = x * x * k + lambda * bits[0];
    unsigned s = 0;
    if (hi > 0) {
        const double c = (x - hi) * (x - hi) * k + lambda * bits[2];
        if (c < best) {
            best = c;
            s = 2;
        }
    }
    if (lo < 0 && (x - lo) * (x - lo) * k + lambda * bits[1] < best)
        s = 1;
    return s;
}

/* The grid value of w for row r at original column c; *code gets its code. */
static inline double quant1(const struct job *J, size_t r, size_t c, double w, double ujj,
                            uint8_t *code)
{
    const float x = (float)w;
    if (J->dt == SB_DTYPE_TERN) {
        const struct trow *t = &J->tr[r];
        if (J->o->ec_lambda > 0.0) {
            /* entropy-constrained: the distortion GPTQ charges for this column,
             * (w - q)^2 / U_jj^2, in units of the matrix's mean input energy and
             * the row's mean square weight, plus lambda * bits */
            const double k = J->ec_scale * t->inv_s2 / (ujj * ujj);
            const unsigned s = ec_pick(w, t->lo, t->hi, k, J->o->ec_lambda, J->ec_bits);
            *code = (uint8_t)s;
            return s == 2 ? t->hi : s == 1 ? t->lo : 0.0;
        }
        if (t->hi > 0.0f && x > t->thi) {
            *code = 2;
            return t->hi;
        }
        if (t->lo < 0.0f && x < t->tlo) {
            *code = 1;
            return t->lo;
        }
        *code = 0;
        return 0.0;
    }
    const struct grp *g = &J->gp[r * J->ngroups + c / J->g];
    switch (J->dt) {
    case SB_DTYPE_Q8_0: {
        float v = roundf(x * g->id);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        *code = (uint8_t)(int8_t)v;
        return (double)(v * g->dd);
    }
    case SB_DTYPE_Q4_0: {
        const float v = x * g->id + 8.5f;
        int q = v >= 15.0f ? 15 : v <= 0.0f ? 0 : (int)v;   /* ggml truncates, then caps at 15 */
        *code = (uint8_t)q;
        return (double)((float)(q - 8) * g->dd);
    }
    case SB_DTYPE_TQ1_0: case SB_DTYPE_TQ2_0: {
        long t = lroundf(x * g->id);
        t = t > 1 ? 1 : t < -1 ? -1 : t;
        *code = (uint8_t)(t + 1);
        return (double)((float)t * g->dd);
    }
    case SB_DTYPE_INT8: {
        float v = g->id != 0.0f ? roundf(x / g->id) : 0.0f;
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        *code = (uint8_t)(int8_t)v;
        return (double)(v * g->dd);
    }
    default:
        *code = 0;
        return 0.0;
    }
}

/* GPTQ over rows r0 .. r1-1 (one chunk; independent of every other chunk). */
static void run_chunk(const struct job *J, size_t r0, size_t r1)
{
    const size_t n = J->cols, B = J->B;
    for (size_t i1 = 0; i1 < n; i1 += B) {
        const size_t i2 = i1 + B < n ? i1 + B : n, nb = i2 - i1;
        for (size_t j = i1; j < i2; j++) {
            const size_t c = J->perm[j];
            if (J->dynamic && c % J->g == 0) {
                /* fit each row's group on its updated weights (all inside this batch) */
                const size_t gl = n - c < J->g ? n - c : J->g;
                for (size_t r = r0; r < r1; r++)
                    fit_group(J, J->W + r * n + j, gl, J->hd ? J->hd + c : NULL,
                              J->hd ? J->s2[r] : 0.0, &J->gp[r * J->ngroups + c / J->g]);
            }
            const double *Uj = J->U + j * n;
            const double ujj = Uj[j];
            for (size_t r = r0; r < r1; r++) {
                double *w = J->W + r * n;
                const double wj = w[j];
                const double q = quant1(J, r, c, wj, ujj, &J->codes[r * n + j]);
                w[j] = q;
                const double e = (wj - q) / ujj;
                J->E[r * B + (j - i1)] = e;
                for (size_t k = j + 1; k < i2; k++)
                    w[k] -= e * Uj[k];
            }
        }
        if (i2 < n)   /* W[:, i2:] -= E U[i1:i2, i2:] */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)(n - i2),
                        (int)nb, -1.0, J->E + r0 * B, (int)B, J->U + i1 * n + i2, (int)n, 1.0,
                        J->W + r0 * n + i2, (int)n);
    }
}

/* ---- scratch ----------------------------------------------------------------- */

struct layout {
    size_t A, U, W, E, codes, gp, tr, perm, fx, hd, s2, total;
};

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

static size_t eff_block(const struct qnt_gptq_opts *o, size_t g, size_t cols)
{
    size_t B = o && o->block ? o->block : 128;
    if (g < cols)
        B = (B + g - 1) / g * g;
    return B;
}

static void plan(enum sb_dtype dt, const struct sb_qparams *qp, size_t rows, size_t cols,
                 const struct qnt_gptq_opts *o, struct layout *L)
{
    const size_t g = grid_group(dt, qp, cols), ng = cols ? (cols + g - 1) / g : 1;
    const size_t B = eff_block(o, g, cols);
    size_t off = 0;
    L->perm = off; off += al64(2 * cols * sizeof(size_t));
    L->A = off; off += al64(cols * cols * sizeof(double));
    L->U = off; off += al64(cols * cols * sizeof(double));
    L->W = off; off += al64(rows * cols * sizeof(double));
    L->E = off; off += al64(rows * B * sizeof(double));
    L->codes = off; off += al64(rows * cols);
    L->gp = off; off += al64(rows * ng * sizeof(struct grp));
    L->tr = off; off += al64(rows * sizeof(struct trow));
    L->fx = off; off += al64(cols * sizeof(double));
    L->hd = off; off += al64(cols * sizeof(double));
    L->s2 = off; off += al64(rows * sizeof(double));
    /* the output error needs 2 rows x cols doubles after perm (everything else is
     * free by then) */
    const size_t err = L->A + 2 * rows * cols * sizeof(double);
    L->total = off > err ? off : err;
}

size_t qnt_gptq_scratch_bytes(enum sb_dtype dt, const struct sb_qparams *qp, size_t rows,
                              size_t cols, const struct qnt_gptq_opts *o)
{
    struct layout L;
    plan(dt, qp, rows, cols, o, &L);
    return L.total;
}

/* ---- factorization ------------------------------------------------------------- */

static int lapack_serial_chol_inv(double *A, size_t n)
{
    int nn = (int)n, info = 0;
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);   /* one thread: the factor must not depend on the thread count */
#endif
    LAPACK_dpotrf("L", &nn, A, &nn, &info);
    if (info == 0)
        LAPACK_dtrtri("L", "N", &nn, A, &nn, &info);
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
    return info;
}

static double h_at(const double *H, size_t n, size_t i, size_t j)
{
    return i <= j ? H[i * n + j] : H[j * n + i];
}

/* U (row-major upper, processing order) from H with damping; 0 on success. */
static int factor(const double *H, size_t n, const size_t *perm, const bool *dead, double damp,
                  double mean_diag, double *A, double *U)
{
    const double add = damp * mean_diag;
    /* A(a, b) = Hp(n-1-a, n-1-b), column-major, lower triangle */
    for (size_t b = 0; b < n; b++) {
        const size_t pj = perm[n - 1 - b];
        for (size_t a = b; a < n; a++) {
            const size_t pi = perm[n - 1 - a];
            double v = h_at(H, n, pi, pj);
            if (pi == pj)
                v = (dead[pi] ? 1.0 : v) + add;
            else if (dead[pi] || dead[pj])
                v = 0.0;
            A[a + b * n] = v;
        }
    }
    if (lapack_serial_chol_inv(A, n) != 0)
        return -1;
    for (size_t j = 0; j < n; j++) {
        double *u = U + j * n;
        for (size_t k = 0; k < j; k++)
            u[k] = 0.0;
        for (size_t k = j; k < n; k++)
            u[k] = A[(n - 1 - j) + (n - 1 - k) * n];
    }
    return 0;
}

/* ---- packing ------------------------------------------------------------------- */

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* code of row r at original column c */
static inline uint8_t code_at(const struct job *J, const size_t *inv, size_t r, size_t c)
{
    return J->codes[r * J->cols + inv[c]];
}

static void pack(const struct job *J, const size_t *inv, void *dst)
{
    const size_t rows = J->rows, cols = J->cols;
    uint8_t *o = dst;
    switch (J->dt) {
    case SB_DTYPE_Q8_0: {
        struct qnt_block_q8_0 *y = dst;
        for (size_t r = 0; r < rows; r++)
            for (size_t b = 0; b < J->ngroups; b++) {
                struct qnt_block_q8_0 *k = &y[r * J->ngroups + b];
                k->d = J->gp[r * J->ngroups + b].h;
                for (size_t e = 0; e < QNT_QK8_0; e++)
                    k->qs[e] = (int8_t)code_at(J, inv, r, b * QNT_QK8_0 + e);
            }
        break;
    }
    case SB_DTYPE_Q4_0: {
        struct qnt_block_q4_0 *y = dst;
        for (size_t r = 0; r < rows; r++)
            for (size_t b = 0; b < J->ngroups; b++) {
                struct qnt_block_q4_0 *k = &y[r * J->ngroups + b];
                k->d = J->gp[r * J->ngroups + b].h;
                for (size_t e = 0; e < QNT_QK4_0 / 2; e++)
                    k->qs[e] = (uint8_t)(code_at(J, inv, r, b * QNT_QK4_0 + e) |
                                         code_at(J, inv, r, b * QNT_QK4_0 + e + 16) << 4);
            }
        break;
    }
    case SB_DTYPE_TQ1_0: case SB_DTYPE_TQ2_0: {
        uint8_t t[QNT_QK_K];
        for (size_t r = 0; r < rows; r++)
            for (size_t b = 0; b < J->ngroups; b++) {
                for (size_t e = 0; e < QNT_QK_K; e++)
                    t[e] = code_at(J, inv, r, b * QNT_QK_K + e);
                const size_t bi = r * J->ngroups + b;
                if (J->dt == SB_DTYPE_TQ1_0) {
                    struct qnt_block_tq1_0 *k = (struct qnt_block_tq1_0 *)dst + bi;
                    qnt_tq1_0_pack(t, k);
                    k->d = J->gp[bi].h;
                } else {
                    struct qnt_block_tq2_0 *k = (struct qnt_block_tq2_0 *)dst + bi;
                    qnt_tq2_0_pack(t, k);
                    k->d = J->gp[bi].h;
                }
            }
        break;
    }
    case SB_DTYPE_INT8: {
        const size_t sb = J->f16scale ? 2 : 4;
        uint8_t *sc = o + rows * cols;
        for (size_t r = 0; r < rows; r++) {
            for (size_t c = 0; c < cols; c++)
                o[r * cols + c] = code_at(J, inv, r, c);
            for (size_t g = 0; g < J->ngroups; g++) {
                const struct grp *gp = &J->gp[r * J->ngroups + g];
                if (J->f16scale)
                    memcpy(sc + (r * J->ngroups + g) * sb, &gp->h, 2);
                else
                    memcpy(sc + (r * J->ngroups + g) * sb, &gp->dd, 4);
            }
        }
        break;
    }
    case SB_DTYPE_TERN: {
        const size_t rb = qnt_tern_row_bytes(cols);
        for (size_t r = 0; r < rows; r++) {
            uint8_t *p = o + r * rb;
            wr16(p, J->tr[r].lo16);
            wr16(p + 2, J->tr[r].hi16);
            uint8_t *s = p + QNT_TERN_ROW_HDR;
            memset(s, 0, (cols + 3) / 4);
            for (size_t c = 0; c < cols; c++)
                s[c >> 2] |= (uint8_t)(code_at(J, inv, r, c) << (2 * (c & 3)));
        }
        break;
    }
    default:
        break;
    }
}

/* ---- the whole matrix ------------------------------------------------------------ */

static double trace_err(const double *H, const double *D, size_t rows, size_t cols, double *T)
{
    /* T = D H (H symmetric, upper stored); sum of D .* T, rows in order */
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)rows, (int)cols, 1.0, H, (int)cols,
                D, (int)cols, 0.0, T, (int)cols);
    double tot = 0.0;
    for (size_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (size_t c = 0; c < cols; c++)
            s += D[r * cols + c] * T[r * cols + c];
        tot += s;
    }
    return tot;
}

double qnt_gptq_output_error(const double *H, const float *W, const float *Q, size_t rows,
                             size_t cols, double *scratch)
{
    double *D = scratch, *T = scratch + rows * cols;
    for (size_t i = 0; i < rows * cols; i++)
        D[i] = (double)W[i] - (double)Q[i];
    return trace_err(H, D, rows, cols, T);
}

double qnt_gptq_output_error_q8x(const double *H, const double *D, const double *E2, const float *W,
                                 const float *Q, size_t rows, size_t cols, double *scratch)
{
    /* W x - Q xt = (W - Q) xt + W e: tr((W-Q) H (W-Q)^T) + 2 sum (W-Q) .* (W D) + tr(W E2 W^T) */
    const double tot = qnt_gptq_output_error(H, W, Q, rows, cols, scratch);
    double *A = scratch, *T = scratch + rows * cols;
    for (size_t i = 0; i < rows * cols; i++)
        A[i] = W[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0,
                A, (int)cols, D, (int)cols, 0.0, T, (int)cols);
    double cross = 0.0;
    for (size_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (size_t c = 0; c < cols; c++)
            s += ((double)W[r * cols + c] - (double)Q[r * cols + c]) * T[r * cols + c];
        cross += s;
    }
    return tot + 2.0 * cross + trace_err(E2, A, rows, cols, T);
}

int qnt_gptq_quantize(enum sb_dtype dt, const struct sb_qparams *qp, const float *W, size_t rows,
                      size_t cols, const double *H, const struct qnt_gptq_opts *o, void *scratch,
                      void *dst, struct qnt_gptq_stats *st)
{
    struct qnt_gptq_opts defo;
    if (!o) {
        qnt_gptq_opts_init(&defo);
        o = &defo;
    }
    struct qnt_gptq_stats dummy;
    if (!st)
        st = &dummy;
    memset(st, 0, sizeof *st);
    if (!qnt_gptq_supported(dt))
        return SB_EINVAL;
    const size_t g = grid_group(dt, qp, cols);
    if (cols == 0 || rows == 0 || (dt != SB_DTYPE_INT8 && dt != SB_DTYPE_TERN && cols % g))
        return SB_EINVAL;
    for (size_t i = 0; i < rows * cols; i++)
        if (!isfinite(W[i]))
            return SB_EFORMAT;

    struct layout L;
    plan(dt, qp, rows, cols, o, &L);
    uint8_t *base = scratch;
    double *A = (double *)(base + L.A), *U = (double *)(base + L.U);
    double *Wd = (double *)(base + L.W);
    size_t *perm = (size_t *)(base + L.perm), *inv = perm + cols;
    double *fx = (double *)(base + L.fx);
    bool *dead = (bool *)(base + L.codes);   /* borrowed before the codes are written */

    struct job J;
    memset(&J, 0, sizeof J);
    J.dt = dt;
    J.qp = qp;
    J.rows = rows;
    J.cols = cols;
    J.g = g;
    J.ngroups = (cols + g - 1) / g;
    J.B = eff_block(o, g, cols);
    J.f16scale = qp && qp->scale_dtype == SB_DTYPE_F16;
    J.o = o;
    J.perm = perm;
    J.U = U;
    J.W = Wd;
    J.E = (double *)(base + L.E);
    J.codes = base + L.codes;
    J.gp = (struct grp *)(base + L.gp);
    J.tr = (struct trow *)(base + L.tr);

    /* the grid's fixed parameters come from the original rows */
    if (dt == SB_DTYPE_TERN)
        for (size_t r = 0; r < rows; r++)
            fit_tern_row(&J, W + r * cols, &J.tr[r]);
    if (o->ec_lambda > 0.0) {
        const double p0 = o->ec_p0 > 0 && o->ec_p0 < 1 ? o->ec_p0 : 0.885;
        J.ec_bits[0] = -log2(p0);
        J.ec_bits[1] = J.ec_bits[2] = -log2((1.0 - p0) / 2.0);
    }

    /* Hessian: dead columns, mean diagonal, order */
    double mean_diag = 0.0;
    for (size_t j = 0; j < cols; j++) {
        const double d = H ? H[j * cols + j] : 1.0;
        dead[j] = H && !(d > 0.0);
        st->dead_cols += dead[j];
        mean_diag += dead[j] ? 1.0 : d;   /* GPTQ: dead entries are set to 1 first */
        perm[j] = j;
    }
    mean_diag /= (double)cols;
    if (H && o->act_order) {
        /* descending diag(H), ties by index: insertion sort on a copy keeps it stable */
        for (size_t j = 1; j < cols; j++) {
            const size_t p = perm[j];
            const double dp = dead[p] ? 0.0 : H[p * cols + p];
            size_t k = j;
            while (k > 0) {
                const size_t q = perm[k - 1];
                const double dq = dead[q] ? 0.0 : H[q * cols + q];
                if (dq >= dp)
                    break;
                perm[k] = q;
                k--;
            }
            perm[k] = p;
        }
    }
    for (size_t j = 0; j < cols; j++)
        inv[perm[j]] = j;

    /* working weights in processing order; dead columns are zero */
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            Wd[r * cols + j] = dead[perm[j]] ? 0.0 : (double)W[r * cols + perm[j]];

    st->rtn = H == NULL;
    st->damp = o->damp;
    if (H) {
        int ok = -1;
        for (int tries = 0; tries < 5 && ok != 0; tries++) {
            ok = factor(H, cols, perm, dead, st->damp, mean_diag, A, U);
            if (ok != 0)
                st->damp *= 10.0;
        }
        if (ok != 0) {
            st->rtn = true;
            st->damp = 0.0;
        }
    }
    if (st->rtn) {
        /* identity Hessian: U = I (a positive scale would change nothing) */
        for (size_t j = 0; j < cols; j++)
            for (size_t k = 0; k < cols; k++)
                U[j * cols + k] = j == k ? 1.0 : 0.0;
        for (size_t j = 0; j < cols; j++)
            perm[j] = inv[j] = j;
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < cols; j++)
                Wd[r * cols + j] = (double)W[r * cols + j];
    }
    J.ec_scale = 1.0 / (st->rtn || mean_diag <= 0 ? 1.0 : mean_diag);
    if (dt == SB_DTYPE_Q4_0 && o->imatrix_scales && !st->rtn) {
        double *hd = (double *)(base + L.hd), *s2 = (double *)(base + L.s2);
        for (size_t c = 0; c < cols; c++)
            hd[c] = dead[c] ? 0.0 : H[c * cols + c];
        for (size_t r = 0; r < rows; r++) {
            float sx2 = 0.0f;   /* ggml: sum_x2 / n_per_row, in float */
            for (size_t c = 0; c < cols; c++)
                sx2 += W[r * cols + c] * W[r * cols + c];
            s2[r] = sx2 / (float)cols;
        }
        J.hd = hd;
        J.s2 = s2;
    }

    /* groups: static (act order, or one group a row) from the original weights,
     * else fitted as GPTQ reaches them */
    if (dt != SB_DTYPE_TERN) {
        J.dynamic = !(o->act_order && !st->rtn) && g < cols;
        if (!J.dynamic)
            for (size_t r = 0; r < rows; r++)
                for (size_t gi = 0; gi < J.ngroups; gi++) {
                    const size_t c0 = gi * g, n = cols - c0 < g ? cols - c0 : g;
                    for (size_t k = 0; k < n; k++)
                        fx[k] = dead[c0 + k] && !st->rtn ? 0.0 : (double)W[r * cols + c0 + k];
                    fit_group(&J, fx, n, J.hd ? J.hd + c0 : NULL, J.hd ? J.s2[r] : 0.0,
                              &J.gp[r * J.ngroups + gi]);
                }
    }

    const long nchunks = (long)((rows + QNT_GPTQ_ROW_CHUNK - 1) / QNT_GPTQ_ROW_CHUNK);
#pragma omp parallel for schedule(dynamic, 1)
    for (long ci = 0; ci < nchunks; ci++) {
        const size_t r0 = (size_t)ci * QNT_GPTQ_ROW_CHUNK;
        const size_t r1 = r0 + QNT_GPTQ_ROW_CHUNK < rows ? r0 + QNT_GPTQ_ROW_CHUNK : rows;
        run_chunk(&J, r0, r1);
    }

    /* Wd now holds Q (processing order) */
    for (size_t i = 0; i < rows * cols; i++)
        st->zeros += Wd[i] == 0.0;
    pack(&J, inv, dst);

    if (H) {
        /* the output error with the caller's (undamped) H, in original column
         * order. D and T start where A does (plan() reserved 2 * rows * cols
         * doubles there), overlapping A, U and Wd: Q moves from Wd to T first
         * (memmove), then D = W - Q fills the front. */
        double *D = A, *T = D + rows * cols;
        memmove(T, Wd, rows * cols * sizeof(double));
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                D[r * cols + c] = (double)W[r * cols + c] - T[r * cols + inv[c]];
        st->err = trace_err(H, D, rows, cols, T);
        for (size_t i = 0; i < rows * cols; i++)
            D[i] = (double)W[i];
        st->ref = trace_err(H, D, rows, cols, T);
    }
    return SB_OK;
}
