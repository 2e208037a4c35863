/* test_gptq.c: GPTQ (qnt_gptq.h) against a float64 reference written plainly
 * here from the GPTQ paper's equations (explicit inverse of the damped
 * Hessian by Gauss-Jordan, its upper Cholesky factor by the textbook
 * recurrence, then one column at a time with no lazy batches), and the
 * properties that make the fast path trustworthy: an identity (or diagonal)
 * Hessian gives the round-to-nearest bytes of every encoding; the error GPTQ
 * reports is the error of the bytes it wrote as the ggml/int8/tern decoders
 * read them; GPTQ's output error is below round-to-nearest's; the bytes do
 * not depend on the thread count; dead columns and failed factorizations. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_cast.h"
#include "qnt_encode.h"
#include "qnt_ggml.h"
#include "qnt_ggml_types_impl.h"
#include "qnt_gptq.h"
#include "qnt_tern.h"
#include "sb_dtype.h"
#include "sb_err.h"
#include "test_util.h"

/* Correlated inputs: X = Z M (n x cols), M a random mixing with a strong
 * diagonal, so H = X^T X is far from diagonal and GPTQ has work to do. */
static float *make_inputs(size_t n, size_t cols, uint64_t seed)
{
    float *Z = malloc(n * cols * sizeof *Z), *M = malloc(cols * cols * sizeof *M);
    float *X = malloc(n * cols * sizeof *X);
    test_fill_normal(Z, n * cols, seed);
    test_fill_normal(M, cols * cols, seed + 1);
    for (size_t i = 0; i < cols; i++)
        M[i * cols + i] += 3.0f;
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < cols; j++) {
            double s = 0;
            for (size_t k = 0; k < cols; k++)
                s += (double)Z[t * cols + k] * M[k * cols + j] * 0.3;
            X[t * cols + j] = (float)s;
        }
    free(Z);
    free(M);
    return X;
}

/* Full symmetric H = sum x x^T in double, plainly. */
static double *plain_hessian(const float *X, size_t n, size_t cols)
{
    double *H = calloc(cols * cols, sizeof *H);
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j < cols; j++)
                H[i * cols + j] += (double)X[t * cols + i] * X[t * cols + j];
    return H;
}

static double *lib_hessian(const float *X, size_t n, size_t cols)
{
    double *H = calloc(cols * cols, sizeof *H);
    double *s = malloc(QNT_GPTQ_HCHUNK * cols * sizeof *s);
    qnt_gptq_hessian_add(H, cols, X, n, cols, s);
    free(s);
    return H;
}

static void *gptq(enum sb_dtype dt, const struct sb_qparams *qp, const float *W, size_t rows,
                  size_t cols, const double *H, const struct qnt_gptq_opts *o,
                  struct qnt_gptq_stats *st)
{
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t nb = 0;
    ck_assert_int_eq(sb_dtype_nbytes(dt, shape, 2, qp, &nb), 0);
    void *dst = calloc(1, nb), *scr = malloc(qnt_gptq_scratch_bytes(dt, qp, rows, cols, o));
    ck_assert_int_eq(qnt_gptq_quantize(dt, qp, W, rows, cols, H, o, scr, dst, st), 0);
    free(scr);
    return dst;
}

static float *decode(enum sb_dtype dt, const struct sb_qparams *qp, const void *blob, size_t rows,
                     size_t cols)
{
    float *q = malloc(rows * cols * sizeof *q);
    ck_assert_int_eq(qnt_dequantize_rows(dt, blob, rows, cols, qp, 0, rows, q), 0);
    return q;
}

/* ---- the float64 reference (GPTQ paper, Algorithm 1 without lazy batches) ---- */

enum ref_grid { REF_TERN, REF_INT8_ROW };

/* grid value of x for a row with params a, b (tern: lo, hi; int8: scale) */
static double ref_quant(enum ref_grid g, double w, float a, float b)
{
    const float x = (float)w;
    if (g == REF_TERN)
        return (b > 0 && x > 0.5f * b) ? b : (a < 0 && x < 0.5f * a) ? a : 0.0;
    float v = a != 0.0f ? roundf(x / a) : 0.0f;
    v = v > 127 ? 127 : v < -127 ? -127 : v;
    return v * a;
}

static void ref_gptq(enum ref_grid grid, const float *W, size_t rows, size_t cols,
                     const double *Hin, double damp, bool act_order, float *Q)
{
    const size_t n = cols;
    double *H = malloc(n * n * sizeof *H), *Hinv = calloc(n * n, sizeof *Hinv);
    double *U = calloc(n * n, sizeof *U), *w = malloc(n * sizeof *w);
    size_t *perm = malloc(n * sizeof *perm);
    float *pa = malloc(rows * sizeof *pa), *pb = malloc(rows * sizeof *pb);
    /* grid parameters from the original rows */
    for (size_t r = 0; r < rows; r++) {
        float mn = 0, mx = 0, amax = 0;
        for (size_t j = 0; j < n; j++) {
            float x = W[r * n + j];
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
            amax = fabsf(x) > amax ? fabsf(x) : amax;
        }
        if (grid == REF_TERN) {
            pa[r] = qnt_tern_bf16_to_f32(qnt_tern_f32_to_bf16(mn));
            pb[r] = qnt_tern_bf16_to_f32(qnt_tern_f32_to_bf16(mx));
        } else {
            pa[r] = amax / 127.0f;
            pb[r] = 0;
        }
    }
    /* order, dead columns, damping on the mean diagonal (dead ones count as 1) */
    for (size_t j = 0; j < n; j++)
        perm[j] = j;
    if (act_order)   /* stable selection by descending diagonal */
        for (size_t i = 0; i < n; i++)
            for (size_t j = n - 1; j > i; j--)
                if (Hin[perm[j] * n + perm[j]] > Hin[perm[j - 1] * n + perm[j - 1]]) {
                    size_t t = perm[j];
                    perm[j] = perm[j - 1];
                    perm[j - 1] = t;
                }
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            const size_t a = perm[i], b = perm[j];
            const bool dead = Hin[a * n + a] == 0 || Hin[b * n + b] == 0;
            H[i * n + j] = (a == b && Hin[a * n + a] == 0) ? 1.0 : dead ? 0.0 : Hin[a * n + b];
        }
    for (size_t i = 0; i < n; i++)
        mean += H[i * n + i] / (double)n;
    for (size_t i = 0; i < n; i++)
        H[i * n + i] += damp * mean;
    /* Gauss-Jordan inverse */
    for (size_t i = 0; i < n; i++)
        Hinv[i * n + i] = 1.0;
    for (size_t c = 0; c < n; c++) {
        const double p = H[c * n + c];
        for (size_t j = 0; j < n; j++) {
            H[c * n + j] /= p;
            Hinv[c * n + j] /= p;
        }
        for (size_t r = 0; r < n; r++)
            if (r != c) {
                const double f = H[r * n + c];
                for (size_t j = 0; j < n; j++) {
                    H[r * n + j] -= f * H[c * n + j];
                    Hinv[r * n + j] -= f * Hinv[c * n + j];
                }
            }
    }
    /* upper Cholesky: Hinv = U^T U */
    for (size_t i = 0; i < n; i++) {
        double s = Hinv[i * n + i];
        for (size_t k = 0; k < i; k++)
            s -= U[k * n + i] * U[k * n + i];
        U[i * n + i] = sqrt(s);
        for (size_t j = i + 1; j < n; j++) {
            double t = Hinv[i * n + j];
            for (size_t k = 0; k < i; k++)
                t -= U[k * n + i] * U[k * n + j];
            U[i * n + j] = t / U[i * n + i];
        }
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < n; j++)
            w[j] = Hin[perm[j] * n + perm[j]] == 0 ? 0.0 : W[r * n + perm[j]];
        for (size_t j = 0; j < n; j++) {
            const double q = ref_quant(grid, w[j], pa[r], pb[r]);
            const double e = (w[j] - q) / U[j * n + j];
            for (size_t k = j + 1; k < n; k++)
                w[k] -= e * U[j * n + k];
            Q[r * n + perm[j]] = (float)q;
        }
    }
    free(H); free(Hinv); free(U); free(w); free(perm); free(pa); free(pb);
}

START_TEST(test_gptq_matches_reference)
{
    static const struct { size_t rows, cols, block; bool act; int grid; } c[] = {
        { 24, 64, 128, false, REF_TERN }, { 40, 96, 16, false, REF_TERN },
        { 33, 80, 32, true, REF_TERN }, { 24, 64, 16, false, REF_INT8_ROW },
        { 17, 48, 128, true, REF_INT8_ROW },
    };
    const size_t rows = c[_i].rows, cols = c[_i].cols, n = 6 * cols;
    float *W = malloc(rows * cols * sizeof *W), *X = make_inputs(n, cols, 100 + (uint64_t)_i);
    test_fill_normal(W, rows * cols, 200 + (uint64_t)_i);
    double *H = lib_hessian(X, n, cols);
    struct qnt_gptq_opts o;
    qnt_gptq_opts_init(&o);
    o.block = c[_i].block;
    o.act_order = c[_i].act;
    const enum sb_dtype dt = c[_i].grid == REF_TERN ? SB_DTYPE_TERN : SB_DTYPE_INT8;
    struct qnt_gptq_stats st;
    void *blob = gptq(dt, NULL, W, rows, cols, H, &o, &st);
    float *Q = decode(dt, NULL, blob, rows, cols), *R = malloc(rows * cols * sizeof *R);
    double *Hfull = plain_hessian(X, n, cols);
    ref_gptq((enum ref_grid)c[_i].grid, W, rows, cols, Hfull, o.damp, o.act_order, R);
    /* the same decisions: the two paths round differently only if a weight
     * lands within ~1e-12 of a threshold, which these seeds do not hit */
    size_t diff = 0;
    for (size_t i = 0; i < rows * cols; i++)
        diff += Q[i] != R[i];
    ck_assert_msg(diff == 0, "case %d: %zu of %zu weights differ from the reference", _i, diff,
                  rows * cols);
    ck_assert(!st.rtn);
    ck_assert(st.err > 0 && st.err < st.ref);
    free(W); free(X); free(H); free(Hfull); free(blob); free(Q); free(R);
}
END_TEST

/* every encoding GPTQ writes, with the parameters that change its grid */
static const struct { enum sb_dtype dt; uint32_t group; enum sb_dtype sdt; size_t cols; } enc[] = {
    { SB_DTYPE_TERN, 0, 0, 200 },       { SB_DTYPE_INT8, 0, 0, 200 },
    { SB_DTYPE_INT8, 64, 0, 200 },      { SB_DTYPE_INT8, 48, SB_DTYPE_F16, 200 },
    { SB_DTYPE_Q8_0, 0, 0, 256 },       { SB_DTYPE_Q4_0, 0, 0, 256 },
    { SB_DTYPE_TQ1_0, 0, 0, 512 },      { SB_DTYPE_TQ2_0, 0, 0, 512 },
};

static struct sb_qparams enc_qp(int i)
{
    struct sb_qparams qp = { enc[i].group, enc[i].sdt ? enc[i].sdt : SB_DTYPE_F32 };
    return qp;
}

START_TEST(test_gptq_identity_is_rtn)
{
    const size_t rows = 37, cols = enc[_i].cols;
    const struct sb_qparams qp = enc_qp(_i);
    float *W = malloc(rows * cols * sizeof *W);
    test_fill_normal(W, rows * cols, 300 + (uint64_t)_i);
    W[3] = 0.0f;
    W[7] = 2.5f * W[8];    /* a few repeated magnitudes for the first-max rules */
    W[9] = -W[7];
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t nb;
    sb_dtype_nbytes(enc[_i].dt, shape, 2, &qp, &nb);
    void *rtn = malloc(nb);
    ck_assert_int_eq(qnt_quantize_rows(enc[_i].dt, W, rows, cols, &qp, rtn), 0);
    struct qnt_gptq_stats st;
    void *g = gptq(enc[_i].dt, &qp, W, rows, cols, NULL, NULL, &st);
    ck_assert(st.rtn);
    ck_assert_mem_eq(g, rtn, nb);
    /* a diagonal Hessian couples no columns: still round-to-nearest */
    double *H = calloc(cols * cols, sizeof *H);
    for (size_t j = 0; j < cols; j++)
        H[j * cols + j] = 0.5 + (double)(j % 7);
    void *d = gptq(enc[_i].dt, &qp, W, rows, cols, H, NULL, &st);
    ck_assert(!st.rtn);
    ck_assert_mem_eq(d, rtn, nb);
    free(W); free(rtn); free(g); free(H); free(d);
}
END_TEST

START_TEST(test_gptq_beats_rtn_and_decodes)
{
    const size_t rows = 48, cols = enc[_i].cols, n = 4 * cols;
    const struct sb_qparams qp = enc_qp(_i);
    float *W = malloc(rows * cols * sizeof *W), *X = make_inputs(n, cols, 400 + (uint64_t)_i);
    test_fill_normal(W, rows * cols, 500 + (uint64_t)_i);
    double *H = lib_hessian(X, n, cols);
    double *scr = malloc(2 * rows * cols * sizeof *scr);
    for (int act = 0; act < 2; act++) {
        struct qnt_gptq_opts o;
        qnt_gptq_opts_init(&o);
        o.act_order = act;
        struct qnt_gptq_stats st;
        void *g = gptq(enc[_i].dt, &qp, W, rows, cols, H, &o, &st);
        void *r = gptq(enc[_i].dt, &qp, W, rows, cols, NULL, &o, NULL);
        float *Qg = decode(enc[_i].dt, &qp, g, rows, cols), *Qr = decode(enc[_i].dt, &qp, r, rows, cols);
        /* what GPTQ reports is the error of the bytes as the decoders read them */
        const double eg = qnt_gptq_output_error(H, W, Qg, rows, cols, scr);
        const double er = qnt_gptq_output_error(H, W, Qr, rows, cols, scr);
        ck_assert_msg(fabs(eg - st.err) <= 1e-9 * st.err, "reported %g, decoded %g", st.err, eg);
        /* the block-absmax ternary grids (tq1_0, tq2_0) leave GPTQ little room (~5 %) */
        const bool tq = enc[_i].dt == SB_DTYPE_TQ1_0 || enc[_i].dt == SB_DTYPE_TQ2_0;
        ck_assert_msg(eg < (tq ? 0.98 : 0.8) * er, "%s act %d: gptq %g vs rtn %g",
                      sb_dtype_name(enc[_i].dt), act, eg, er);
        free(g); free(r); free(Qg); free(Qr);
    }
    free(W); free(X); free(H); free(scr);
}
END_TEST

START_TEST(test_gptq_thread_independent)
{
#ifdef _OPENMP
    const size_t rows = 150, cols = enc[_i].cols, n = 700;
    const struct sb_qparams qp = enc_qp(_i);
    float *W = malloc(rows * cols * sizeof *W), *X = make_inputs(n, cols, 600 + (uint64_t)_i);
    test_fill_normal(W, rows * cols, 700 + (uint64_t)_i);
    const int nt = omp_get_max_threads();
    void *b[2];
    double *H[2];
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t nb;
    sb_dtype_nbytes(enc[_i].dt, shape, 2, &qp, &nb);
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k == 0 ? 1 : 3);
        H[k] = lib_hessian(X, n, cols);
        struct qnt_gptq_opts o;
        qnt_gptq_opts_init(&o);
        o.act_order = _i % 2;
        b[k] = gptq(enc[_i].dt, &qp, W, rows, cols, H[k], &o, NULL);
    }
    omp_set_num_threads(nt);
    ck_assert_mem_eq(H[0], H[1], cols * cols * sizeof(double));
    ck_assert_mem_eq(b[0], b[1], nb);
    free(W); free(X); free(b[0]); free(b[1]); free(H[0]); free(H[1]);
#endif
}
END_TEST

START_TEST(test_gptq_dead_and_fallback)
{
    const size_t rows = 20, cols = 64, n = 300;
    float *W = malloc(rows * cols * sizeof *W), *X = make_inputs(n, cols, 800);
    test_fill_normal(W, rows * cols, 801);
    for (size_t t = 0; t < n; t++)   /* inputs 5 and 40 are always 0 */
        X[t * cols + 5] = X[t * cols + 40] = 0.0f;
    double *H = lib_hessian(X, n, cols);
    struct qnt_gptq_stats st;
    void *g = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, H, NULL, &st);
    ck_assert_uint_eq(st.dead_cols, 2);
    float *Q = decode(SB_DTYPE_TERN, NULL, g, rows, cols);
    for (size_t r = 0; r < rows; r++)
        ck_assert(Q[r * cols + 5] == 0.0f && Q[r * cols + 40] == 0.0f);
    /* an indefinite "Hessian" no dampening fixes: round-to-nearest, said so */
    double *B = calloc(cols * cols, sizeof *B);
    for (size_t i = 0; i < cols; i++)
        for (size_t j = i; j < cols; j++)
            B[i * cols + j] = i == j ? 1.0 : 1e6;
    void *f = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, B, NULL, &st);
    void *r = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, NULL, NULL, NULL);
    ck_assert(st.rtn);
    ck_assert_mem_eq(f, r, rows * qnt_tern_row_bytes(cols));
    /* non-finite weights are refused */
    W[11] = NAN;
    void *scr = malloc(qnt_gptq_scratch_bytes(SB_DTYPE_TERN, NULL, rows, cols, NULL));
    ck_assert_int_eq(qnt_gptq_quantize(SB_DTYPE_TERN, NULL, W, rows, cols, H, NULL, scr, g, NULL),
                     SB_EFORMAT);
    free(W); free(X); free(H); free(g); free(Q); free(B); free(f); free(r); free(scr);
}
END_TEST


/* The rate knobs: a wider zero band or a larger code-length weight gives more
 * zeros (and a larger output error); QMoE's band 0.5 is the default bytes. */
START_TEST(test_gptq_rate_knobs)
{
    const size_t rows = 64, cols = 128, n = 600;
    float *W = malloc(rows * cols * sizeof *W), *X = make_inputs(n, cols, 900);
    test_fill_normal(W, rows * cols, 901);
    double *H = lib_hessian(X, n, cols);
    struct qnt_gptq_opts o;
    qnt_gptq_opts_init(&o);
    struct qnt_gptq_stats s0, s1;
    void *b0 = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, H, &o, &s0);
    o.zero_band = 0.5;
    void *b05 = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, H, &o, NULL);
    ck_assert_mem_eq(b0, b05, rows * qnt_tern_row_bytes(cols));
    size_t prev_z = s0.zeros;
    double prev_e = s0.err;
    static const double zb[] = { 0.6, 0.7 };
    for (int i = 0; i < 2; i++) {
        o.zero_band = zb[i];
        void *b = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, H, &o, &s1);
        ck_assert_msg(s1.zeros > prev_z && s1.err > prev_e, "zero band %g: zeros %zu err %g", zb[i],
                      s1.zeros, s1.err);
        prev_z = s1.zeros;
        prev_e = s1.err;
        free(b);
    }
    o.zero_band = 0.5;
    prev_z = s0.zeros;
    static const double lam[] = { 0.05, 0.5, 1e6 };
    for (int i = 0; i < 3; i++) {
        o.ec_lambda = lam[i];
        void *b = gptq(SB_DTYPE_TERN, NULL, W, rows, cols, H, &o, &s1);
        ck_assert_msg(s1.zeros > prev_z, "lambda %g: zeros %zu", lam[i], s1.zeros);
        prev_z = s1.zeros;
        free(b);
    }
    ck_assert_uint_eq(prev_z, rows * cols);   /* infinitely dear non-zeros: all zero */
    free(W); free(X); free(H); free(b0); free(b05);
}
END_TEST

/* ---- fitting the weights to 8-bit activations (act_fit) ---------------------- */

/* The q8_0/q4_0 kernels' rounding of one token, written here from its rule:
 * blocks of 32, scale amax / 127 (f32), codes lrintf(x / scale) */
static void ref_round_q8x(const float *x, size_t cols, double *xt)
{
    for (size_t b = 0; b < cols; b += 32) {
        float amax = 0.0f;
        for (size_t j = b; j < b + 32; j++)
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (size_t j = b; j < b + 32; j++)
            xt[j] = (double)lrintf(x[j] * id) * (double)d;
    }
}

/* Plain sums: H = sum xt xt^T, D = sum e xt^T, E2 = sum e e^T (full) */
static void ref_q8x_sums(const float *X, size_t n, size_t cols, double *H, double *D, double *E2)
{
    double *xt = malloc(cols * sizeof *xt), *e = malloc(cols * sizeof *e);
    memset(H, 0, cols * cols * sizeof *H);
    memset(D, 0, cols * cols * sizeof *D);
    memset(E2, 0, cols * cols * sizeof *E2);
    for (size_t t = 0; t < n; t++) {
        ref_round_q8x(X + t * cols, cols, xt);
        for (size_t j = 0; j < cols; j++)
            e[j] = (double)X[t * cols + j] - xt[j];
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j < cols; j++) {
                H[i * cols + j] += xt[i] * xt[j];
                D[i * cols + j] += e[i] * xt[j];
                E2[i * cols + j] += e[i] * e[j];
            }
    }
    free(xt);
    free(e);
}

static double *q8x_scratch(size_t cols)
{
    return malloc((2 * QNT_GPTQ_HCHUNK + 1) * cols * sizeof(double));
}

/* inputs whose 8-bit rounding matters: one block of each token scaled up 40x
 * (an outlier channel block, as in LLM activations), one token all zero */
static float *q8x_inputs(size_t n, size_t cols, uint64_t seed)
{
    float *X = make_inputs(n, cols, seed);
    for (size_t t = 0; t < n; t++)
        X[t * cols + (t * 7) % cols] *= 40.0f;
    memset(X + 3 * cols, 0, cols * sizeof *X);
    return X;
}

START_TEST(test_gptq_q8x_sums)
{
    const size_t n = 300, cols = 96;   /* two chunks of QNT_GPTQ_HCHUNK; 3 blocks */
    float *X = q8x_inputs(n, cols, 900);
    double *H = malloc(cols * cols * sizeof *H), *D = malloc(cols * cols * sizeof *D);
    double *E2 = malloc(cols * cols * sizeof *E2);
    ref_q8x_sums(X, n, cols, H, D, E2);
    double *sc = q8x_scratch(cols);
    double *L[2][3];
    const int nt =
#ifdef _OPENMP
        omp_get_max_threads();
#else
        1;
#endif
    for (int k = 0; k < 2; k++) {
#ifdef _OPENMP
        omp_set_num_threads(k == 0 ? 1 : 3);
#endif
        for (int a = 0; a < 3; a++)
            L[k][a] = calloc(cols * cols, sizeof(double));
        /* two calls add up: 100 tokens, then 200 (a stride wider than cols is not used here) */
        qnt_gptq_hessian_add_q8x(L[k][0], L[k][1], L[k][2], cols, X, 100, cols, sc);
        qnt_gptq_hessian_add_q8x(L[k][0], L[k][1], L[k][2], cols, X + 100 * cols, n - 100, cols, sc);
    }
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
    double hmax = 0, emax = 0;
    for (size_t i = 0; i < cols * cols; i++) {
        hmax = fabs(H[i]) > hmax ? fabs(H[i]) : hmax;
        emax = fabs(E2[i]) > emax ? fabs(E2[i]) : emax;
    }
    ck_assert(emax > 1e-6 * hmax);   /* the rounding is not negligible here */
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < cols; j++) {
            const size_t ij = i * cols + j;
            if (j >= i) {
                ck_assert_msg(fabs(L[0][0][ij] - H[ij]) <= 1e-12 * hmax, "H(%zu,%zu) %.17g vs %.17g",
                              i, j, L[0][0][ij], H[ij]);
                ck_assert_msg(fabs(L[0][2][ij] - E2[ij]) <= 1e-12 * emax, "E2(%zu,%zu) %.17g vs %.17g",
                              i, j, L[0][2][ij], E2[ij]);
            }
            ck_assert_msg(fabs(L[0][1][ij] - D[ij]) <= 1e-10 * sqrt(hmax * emax),
                          "D(%zu,%zu) %.17g vs %.17g", i, j, L[0][1][ij], D[ij]);
        }
    for (int a = 0; a < 3; a++) {
        ck_assert_mem_eq(L[0][a], L[1][a], cols * cols * sizeof(double));
        free(L[0][a]);
        free(L[1][a]);
    }
    /* with no E2 wanted, H and D are the same */
    double *h = calloc(cols * cols, sizeof *h), *d = calloc(cols * cols, sizeof *d);
    qnt_gptq_hessian_add_q8x(h, d, NULL, cols, X, n, cols, sc);
    for (size_t i = 0; i < cols * cols; i++) {
        ck_assert(fabs(d[i] - D[i]) <= 1e-10 * sqrt(hmax * emax));
        ck_assert(i % cols < i / cols || fabs(h[i] - H[i]) <= 1e-12 * hmax);
    }
    free(h); free(d);
    free(X); free(H); free(D); free(E2); free(sc);
}
END_TEST

/* sum over the tokens of ||W x - Q xt||^2, plainly */
static double ref_out_err_q8x(const float *W, const float *Q, size_t rows, size_t cols,
                              const float *X, size_t n)
{
    double *xt = malloc(cols * sizeof *xt), tot = 0;
    for (size_t t = 0; t < n; t++) {
        ref_round_q8x(X + t * cols, cols, xt);
        for (size_t r = 0; r < rows; r++) {
            double a = 0;
            for (size_t j = 0; j < cols; j++)
                a += (double)W[r * cols + j] * X[t * cols + j] - (double)Q[r * cols + j] * xt[j];
            tot += a * a;
        }
    }
    free(xt);
    return tot;
}

/* x = solution of A x = b (n x n, A destroyed), Gaussian elimination with pivoting */
static void ref_solve(double *A, double *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[p * n + k]))
                p = i;
        for (size_t j = 0; j < n; j++) {
            const double t = A[k * n + j];
            A[k * n + j] = A[p * n + j];
            A[p * n + j] = t;
        }
        const double tb = b[k];
        b[k] = b[p];
        b[p] = tb;
        for (size_t i = k + 1; i < n; i++) {
            const double f = A[i * n + k] / A[k * n + k];
            for (size_t j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (size_t k = n; k-- > 0;) {
        double v = b[k];
        for (size_t j = k + 1; j < n; j++)
            v -= A[k * n + j] * b[j];
        b[k] = v / A[k * n + k];
    }
}

START_TEST(test_gptq_asym_correct)
{
    const size_t rows = 7, cols = 64, n = 400;
    float *X = q8x_inputs(n, cols, 910), *W = malloc(rows * cols * sizeof *W);
    test_fill_normal(W, rows * cols, 911);
    double *H = calloc(cols * cols, sizeof *H), *D = calloc(cols * cols, sizeof *D);
    double *E2 = calloc(cols * cols, sizeof *E2), *sc = q8x_scratch(cols);
    qnt_gptq_hessian_add_q8x(H, D, E2, cols, X, n, cols, sc);
    const double damp = 1e-4;
    double *cs = malloc(qnt_gptq_asym_scratch_bytes(rows, cols));
    float *Wf = malloc(rows * cols * sizeof *Wf);
    memcpy(Wf, W, rows * cols * sizeof *Wf);
    ck_assert_int_eq(qnt_gptq_asym_correct(Wf, rows, cols, H, D, damp, cs), SB_OK);
    /* the reference: the normal equations of min ||W X - W' Xt||^2 + l ||W' - W||^2,
     * (Xt Xt^T + l I) w'_r = Xt X^T w_r + l w_r, from the plain sums */
    double *Hr = malloc(cols * cols * sizeof *Hr), *Dr = malloc(cols * cols * sizeof *Dr);
    double *E2r = malloc(cols * cols * sizeof *E2r);
    ref_q8x_sums(X, n, cols, Hr, Dr, E2r);
    double tr = 0;
    for (size_t j = 0; j < cols; j++)
        tr += Hr[j * cols + j];
    const double lam = damp * tr / (double)cols;
    double *A = malloc(cols * cols * sizeof *A), *b = malloc(cols * sizeof *b);
    double wmax = 0, moved = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t i = 0; i < cols * cols; i++)
            A[i] = Hr[i] + (i % (cols + 1) == 0 ? lam : 0.0);
        for (size_t i = 0; i < cols; i++) {   /* (Xt X^T w)_i = sum_j (H + D^T)_ij w_j */
            double v = lam * W[r * cols + i];
            for (size_t j = 0; j < cols; j++)
                v += (Hr[i * cols + j] + Dr[j * cols + i]) * W[r * cols + j];
            b[i] = v;
        }
        ref_solve(A, b, cols);
        for (size_t i = 0; i < cols; i++) {
            wmax = fabs(b[i]) > wmax ? fabs(b[i]) : wmax;
            moved = fabs(Wf[r * cols + i] - W[r * cols + i]) > moved
                        ? fabs(Wf[r * cols + i] - W[r * cols + i]) : moved;
            ck_assert_msg(fabs(Wf[r * cols + i] - b[i]) <= 1e-5 * (fabs(b[i]) + 1e-2),
                          "W'(%zu,%zu) %.9g vs reference %.9g", r, i, Wf[r * cols + i], b[i]);
        }
    }
    ck_assert_msg(moved > 1e-4 * wmax, "the fit did not move W (%g)", moved);
    /* it reproduces W x from the rounded activations better than W does */
    const double e_w = ref_out_err_q8x(W, W, rows, cols, X, n);
    const double e_f = ref_out_err_q8x(W, Wf, rows, cols, X, n);
    ck_assert_msg(e_f < 0.9 * e_w, "fitted %g vs unfitted %g", e_f, e_w);
    /* and qnt_gptq_output_error_q8x says so, as the plain sum does */
    double *oe = malloc(2 * rows * cols * sizeof *oe);
    const double l_w = qnt_gptq_output_error_q8x(H, D, E2, W, W, rows, cols, oe);
    const double l_f = qnt_gptq_output_error_q8x(H, D, E2, W, Wf, rows, cols, oe);
    ck_assert_msg(fabs(l_w - e_w) <= 1e-8 * e_w, "%.17g vs %.17g", l_w, e_w);
    ck_assert_msg(fabs(l_f - e_f) <= 1e-6 * e_w, "%.17g vs %.17g", l_f, e_f);
    /* activations already on the grid (every block holds +-127 and integers):
     * nothing to fit, W unchanged to the bit */
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < cols; j++)
            X[t * cols + j] = j % 32 == 0 ? 127.0f : (float)((int)((t * 31 + j * 17) % 255) - 127);
    memset(H, 0, cols * cols * sizeof *H);
    memset(D, 0, cols * cols * sizeof *D);
    qnt_gptq_hessian_add_q8x(H, D, NULL, cols, X, n, cols, sc);
    memcpy(Wf, W, rows * cols * sizeof *Wf);
    ck_assert_int_eq(qnt_gptq_asym_correct(Wf, rows, cols, H, D, damp, cs), SB_OK);
    ck_assert_mem_eq(Wf, W, rows * cols * sizeof *W);
    /* an empty Hessian is refused, W untouched */
    memset(H, 0, cols * cols * sizeof *H);
    ck_assert_int_eq(qnt_gptq_asym_correct(Wf, rows, cols, H, D, damp, cs), SB_EINVAL);
    ck_assert_mem_eq(Wf, W, rows * cols * sizeof *W);
    free(X); free(W); free(Wf); free(H); free(D); free(E2); free(sc); free(cs);
    free(Hr); free(Dr); free(E2r); free(A); free(b); free(oe);
}
END_TEST

/* GPTQ of the fitted weights on the rounded activations' Hessian beats plain
 * GPTQ (exact activations) and round to nearest in the error the kernel makes */
START_TEST(test_gptq_act_fit_beats_plain)
{
    const enum sb_dtype dt = _i ? SB_DTYPE_Q4_0 : SB_DTYPE_Q8_0;
    const struct sb_qparams qp = { 0, 0 };
    const size_t rows = 48, cols = 128, n = 600;
    float *X = q8x_inputs(n, cols, 920 + (uint64_t)_i), *W = malloc(rows * cols * sizeof *W);
    test_fill_normal(W, rows * cols, 921);
    double *H = calloc(cols * cols, sizeof *H), *D = calloc(cols * cols, sizeof *D);
    double *E2 = calloc(cols * cols, sizeof *E2), *sc = q8x_scratch(cols);
    qnt_gptq_hessian_add_q8x(H, D, E2, cols, X, n, cols, sc);
    double *Hx = lib_hessian(X, n, cols);
    struct qnt_gptq_opts o;
    qnt_gptq_opts_init(&o);
    double *cs = malloc(qnt_gptq_asym_scratch_bytes(rows, cols));
    float *Wf = malloc(rows * cols * sizeof *Wf);
    memcpy(Wf, W, rows * cols * sizeof *Wf);
    ck_assert_int_eq(qnt_gptq_asym_correct(Wf, rows, cols, H, D, o.damp, cs), SB_OK);
    void *bf = gptq(dt, &qp, Wf, rows, cols, H, &o, NULL);
    void *bp = gptq(dt, &qp, W, rows, cols, Hx, &o, NULL);
    void *br = gptq(dt, &qp, W, rows, cols, NULL, &o, NULL);
    float *Qf = decode(dt, &qp, bf, rows, cols), *Qp = decode(dt, &qp, bp, rows, cols);
    float *Qr = decode(dt, &qp, br, rows, cols);
    double *oe = malloc(2 * rows * cols * sizeof *oe);
    const double ef = qnt_gptq_output_error_q8x(H, D, E2, W, Qf, rows, cols, oe);
    const double ep = qnt_gptq_output_error_q8x(H, D, E2, W, Qp, rows, cols, oe);
    const double er = qnt_gptq_output_error_q8x(H, D, E2, W, Qr, rows, cols, oe);
    /* q4_0: the weights' own error dominates, the fit's gain is small (0.4 % here) */
    ck_assert_msg(ef < (_i ? 1.0 : 0.9) * ep && ep < er, "%s: fitted %g, plain %g, rtn %g",
                  sb_dtype_name(dt), ef, ep, er);
    free(X); free(W); free(Wf); free(H); free(D); free(E2); free(Hx); free(sc); free(cs);
    free(bf); free(bp); free(br); free(Qf); free(Qp); free(Qr); free(oe);
}
END_TEST

/* ggml's make_qx_quants on one q4_0 block, without and with importances:
 * the expected scales and codes come from a float32 emulation of ggml's C
 * (every operation rounded to float, nearest_int half to even), run
 * outside the project; the weights move the scale (-0.28949 -> -0.25705). */
START_TEST(test_make_qx_golden)
{
    float x[32], qw[32];
    for (int i = 0; i < 32; i++) {
        x[i] = (float)((i * 37) % 23 - 11) / 16.0f;
        qw[i] = 1.0f + (float)((i * 13) % 7) * 3.0f;
    }
    x[5] = 2.3125f;
    qw[5] = 0.03125f;
    static const uint8_t L0[32] = { 10, 7, 9, 6, 8, 0, 7, 9, 6, 8, 10, 7, 9, 6, 8, 10,
                                    7, 9, 6, 8, 10, 6, 8, 10, 7, 9, 6, 8, 10, 7, 9, 6 };
    static const uint8_t L1[32] = { 11, 7, 9, 6, 8, 0, 7, 9, 6, 8, 10, 7, 9, 6, 8, 10,
                                    7, 9, 5, 8, 10, 6, 8, 11, 7, 9, 6, 8, 10, 7, 9, 6 };
    int8_t L[32];
    uint32_t b;
    float d = qnt_gx_make_qx(32, 8, x, L, NULL);
    memcpy(&b, &d, 4);
    ck_assert_uint_eq(b, 0xbe943802u);
    ck_assert_mem_eq(L, L0, 32);
    d = qnt_gx_make_qx(32, 8, x, L, qw);
    memcpy(&b, &d, 4);
    ck_assert_uint_eq(b, 0xbe839b9cu);
    ck_assert_mem_eq(L, L1, 32);
}
END_TEST

/* q4_0 with imatrix_scales: under a diagonal Hessian (no error feedback)
 * every block's scale is ggml's imatrix rule on the row's own weights with
 * importance H_jj * sqrt(s2 + x^2) (s2 the row's mean square, as
 * quantize_row_q4_0_impl), and each code the nearest level of that scale
 * (ggml's q4_0 rounding); the same with act order (static groups). Without
 * a Hessian (round to nearest) and for q8_0 the option changes nothing. */
START_TEST(test_gptq_imatrix_scales)
{
    const size_t rows = 13, cols = 256, nb = cols / 32;
    float *W = malloc(rows * cols * sizeof *W);
    test_fill_normal(W, rows * cols, 77);
    W[40] = 6.0f;   /* an outlier the weights can give up on */
    double *H = calloc(cols * cols, sizeof *H);
    for (size_t j = 0; j < cols; j++)
        H[j * cols + j] = j == 40 ? 1e-3 : 0.5 + (double)(j * 7 % 11);
    struct qnt_gptq_opts o;
    qnt_gptq_opts_init(&o);
    o.imatrix_scales = true;
    size_t moved = 0;
    for (int act = 0; act < 2; act++) {
        o.act_order = act;
        struct qnt_gptq_stats st;
        struct qnt_block_q4_0 *q = gptq(SB_DTYPE_Q4_0, NULL, W, rows, cols, H, &o, &st);
        ck_assert(!st.rtn);
        for (size_t r = 0; r < rows; r++) {
            const float *w = W + r * cols;
            float sx2 = 0.0f;
            for (size_t c = 0; c < cols; c++)
                sx2 += w[c] * w[c];
            const float s2 = sx2 / (float)cols;
            for (size_t b = 0; b < nb; b++) {
                float qw[32];
                int8_t L[32];
                for (size_t j = 0; j < 32; j++)
                    qw[j] = (float)H[(32 * b + j) * (cols + 1)] *
                            sqrtf(s2 + w[32 * b + j] * w[32 * b + j]);
                const uint16_t h = qnt_f32_to_f16_ref(qnt_gx_make_qx(32, 8, w + 32 * b, L, qw));
                const struct qnt_block_q4_0 *k = &q[r * nb + b];
                ck_assert_msg(k->d == h, "act %d row %zu block %zu: d %04x, expected %04x", act,
                              r, b, k->d, h);
                const float dd = qnt_f16_to_f32_ref(h), id = dd != 0.0f ? 1.0f / dd : 0.0f;
                for (size_t j = 0; j < 32; j++) {
                    const float v = w[32 * b + j] * id + 8.5f;
                    const int e = v >= 15.0f ? 15 : v <= 0.0f ? 0 : (int)v;
                    const int got = j < 16 ? k->qs[j] & 15 : k->qs[j - 16] >> 4;
                    ck_assert_int_eq(got, e);
                }
            }
        }
        /* the importances changed some scales from the plain rule */
        void *plain = gptq(SB_DTYPE_Q4_0, NULL, W, rows, cols, NULL, NULL, NULL);
        for (size_t i = 0; i < rows * nb; i++)
            moved += q[i].d != ((struct qnt_block_q4_0 *)plain)[i].d;
        free(plain);
        free(q);
    }
    ck_assert_uint_gt(moved, rows * nb / 2);
    /* importances past float's range: the plain rule's finite scales (here,
     * under a diagonal Hessian, round to nearest's bytes), never inf or NaN */
    {
        double *Hbig = calloc(cols * cols, sizeof *Hbig);
        for (size_t j = 0; j < cols; j++)
            Hbig[j * cols + j] = 1e300;
        uint64_t n4;
        int64_t sh[2] = { (int64_t)rows, (int64_t)cols };
        sb_dtype_nbytes(SB_DTYPE_Q4_0, sh, 2, NULL, &n4);
        o.act_order = false;
        void *big = gptq(SB_DTYPE_Q4_0, NULL, W, rows, cols, Hbig, &o, NULL);
        void *plain = gptq(SB_DTYPE_Q4_0, NULL, W, rows, cols, NULL, NULL, NULL);
        ck_assert_mem_eq(big, plain, n4);
        free(big);
        free(plain);
        free(Hbig);
    }
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    const enum sb_dtype same[2] = { SB_DTYPE_Q4_0, SB_DTYPE_Q8_0 };
    for (int i = 0; i < 2; i++) {
        uint64_t n;
        sb_dtype_nbytes(same[i], shape, 2, NULL, &n);
        o.act_order = false;
        void *a = gptq(same[i], NULL, W, rows, cols, i ? H : NULL, &o, NULL);
        o.imatrix_scales = false;
        void *c = gptq(same[i], NULL, W, rows, cols, i ? H : NULL, &o, NULL);
        o.imatrix_scales = true;
        ck_assert_mem_eq(a, c, n);
        free(a);
        free(c);
    }
    free(W);
    free(H);
}
END_TEST

Suite *quant_gptq_suite(void)
{
    Suite *s = suite_create("gptq");
    TCase *tc = tcase_create("gptq");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gptq_matches_reference, 0, 5);
    tcase_add_loop_test(tc, test_gptq_identity_is_rtn, 0, (int)(sizeof enc / sizeof enc[0]));
    tcase_add_loop_test(tc, test_gptq_beats_rtn_and_decodes, 0, (int)(sizeof enc / sizeof enc[0]));
    tcase_add_loop_test(tc, test_gptq_thread_independent, 0, (int)(sizeof enc / sizeof enc[0]));
    tcase_add_test(tc, test_gptq_dead_and_fallback);
    tcase_add_test(tc, test_gptq_rate_knobs);
    tcase_add_test(tc, test_gptq_q8x_sums);
    tcase_add_test(tc, test_gptq_asym_correct);
    tcase_add_loop_test(tc, test_gptq_act_fit_beats_plain, 0, 2);
    tcase_add_test(tc, test_make_qx_golden);
    tcase_add_test(tc, test_gptq_imatrix_scales);
    suite_add_tcase(s, tc);
    return s;
}
