/* test_matvec.c: qnt_matvec / qnt_matmul per encoding (qnt_matvec.h).
 * - each encoding's bytes are packed here from known values, following the
 *   layouts in formats.md §2.5 / qnt_tern.h / sb_dtype.h (an independent
 *   writer), and _ref must give the double dot of those values (q8_0 and
 *   q4_0: within the bound of their 8-bit activations, qnt_q8mm_impl.h);
 * - fast within 1e-5 of _ref relative to sum |w||x|, for each instruction set
 *   this CPU has (scalar lanes, AVX2, AVX-512, and AVX-512 with AVX512-BF16,
 *   whose bf16 activations allow 2^-9 + 1e-5 for bf16 weights; qnt_matvec_set_isa);
 * - 1 thread and 4 threads give the same bytes, and so does a call whose
 *   first allocation fails (the kernels' fallbacks); matmul == matvec per vector,
 *   bit for bit, for n across the kernel's tile and block sizes (4, 32
 *   tokens); a row range == the same rows of the whole. Shapes cover the
 *   kernel's edges: cols % 16 tails, several 256-column chunks, short row
 *   groups, int8 groups that do and do not split a vector. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_cast.h"
#include "qnt_matvec.h"
#include "qnt_matvec_impl.h"
#include "qnt_q8mm_impl.h"
#include "qnt_tern.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "sb_dtype.h"
#include "sb_err.h"
#include "test_util.h"

#define ROWS 37
#define COLS 768   /* a multiple of 256 (tq blocks) and of 32 */

struct packed {
    enum sb_dtype dt;
    struct sb_qparams qp;
    size_t rows, cols;
    uint8_t *w;
    uint64_t nbytes;
    float *val;   /* [rows, cols] the exact values the bytes stand for */
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint64_t rng = 12345;
static int rint_in(int lo, int hi)
{
    return lo + (int)(test_rand_u64(&rng) % (uint64_t)(hi - lo + 1));
}

/* d = 2^-k, exact in f16 */
static uint16_t f16_pow2(int k)
{
    return (uint16_t)((15 - k) << 10);
}

static void pack(struct packed *P, enum sb_dtype dt, size_t rows, size_t cols, uint32_t group,
                 enum sb_dtype sdt)
{
    memset(P, 0, sizeof *P);
    P->dt = dt;
    P->rows = rows;
    P->cols = cols;
    P->qp.group = group;
    P->qp.scale_dtype = sdt;
    P->val = malloc(rows * cols * sizeof(float));
    size_t cap = rows * cols * 4 + rows * cols + 1024;
    P->w = calloc(1, cap);
    uint8_t *w = P->w;
    size_t off = 0;
    for (size_t r = 0; r < rows; r++) {
        float *v = P->val + r * cols;
        switch (dt) {
        case SB_DTYPE_F32:
            test_fill_normal(v, cols, 100 + r);
            memcpy(w + r * cols * 4, v, cols * 4);
            off = rows * cols * 4;
            break;
        case SB_DTYPE_F16:
        case SB_DTYPE_BF16:
            for (size_t j = 0; j < cols; j++) {
                int k = rint_in(-2000, 2000);      /* k/256: exact in both */
                v[j] = (float)k / 256.0f;
                uint16_t h;
                if (dt == SB_DTYPE_BF16) {
                    uint32_t u;
                    memcpy(&u, &v[j], 4);
                    h = (uint16_t)(u >> 16);
                    float back;
                    u = (uint32_t)h << 16;
                    memcpy(&back, &u, 4);
                    v[j] = back;                   /* bf16 keeps 8 bits: truncate k */
                } else {
                    h = qnt_f32_to_f16_ref(v[j]);
                }
                put16(w + (r * cols + j) * 2, h);
            }
            off = rows * cols * 2;
            break;
        case SB_DTYPE_Q8_0:
            for (size_t b = 0; b < cols / 32; b++) {
                uint8_t *blk = w + (r * cols / 32 + b) * 34;
                int k = rint_in(1, 6);
                put16(blk, f16_pow2(k));
                for (int e = 0; e < 32; e++) {
                    int q = rint_in(-128, 127);
                    blk[2 + e] = (uint8_t)(int8_t)q;
                    v[b * 32 + e] = (float)q * ldexpf(1.0f, -k);
                }
            }
            off = rows * cols / 32 * 34;
            break;
        case SB_DTYPE_Q4_0:
            for (size_t b = 0; b < cols / 32; b++) {
                uint8_t *blk = w + (r * cols / 32 + b) * 18;
                int k = rint_in(1, 6);
                put16(blk, f16_pow2(k));
                for (int e = 0; e < 32; e++) {
                    int q = rint_in(0, 15);
                    if (e < 16)
                        blk[2 + e] = (uint8_t)((blk[2 + e] & 0xF0) | q);
                    else
                        blk[2 + e - 16] = (uint8_t)((blk[2 + e - 16] & 0x0F) | (q << 4));
                    v[b * 32 + e] = (float)(q - 8) * ldexpf(1.0f, -k);
                }
            }
            off = rows * cols / 32 * 18;
            break;
        case SB_DTYPE_TQ2_0:
            for (size_t b = 0; b < cols / 256; b++) {
                uint8_t *blk = w + (r * cols / 256 + b) * 66;
                int k = rint_in(0, 5);
                put16(blk + 64, f16_pow2(k));
                for (int e = 0; e < 256; e++) {
                    int t = rint_in(0, 2), c = e / 128, rr = e % 128, l = rr / 32, kk = rr % 32;
                    blk[32 * c + kk] |= (uint8_t)(t << (2 * l));
                    v[b * 256 + e] = (float)(t - 1) * ldexpf(1.0f, -k);
                }
            }
            off = rows * cols / 256 * 66;
            break;
        case SB_DTYPE_TQ1_0:
            for (size_t b = 0; b < cols / 256; b++) {
                uint8_t *blk = w + (r * cols / 256 + b) * 54;
                int k = rint_in(0, 5);
                put16(blk + 52, f16_pow2(k));
                int trit[256];
                for (int e = 0; e < 256; e++) {
                    trit[e] = rint_in(0, 2);
                    v[b * 256 + e] = (float)(trit[e] - 1) * ldexpf(1.0f, -k);
                }
                /* byte -> its trits, big end first, per the table in formats.md */
                int val[52] = { 0 }, cnt[52] = { 0 };
                for (int e = 0; e < 256; e++) {
                    int byte, n;
                    if (e < 160) { byte = e % 32; n = e / 32; }
                    else if (e < 240) { byte = 32 + (e - 160) % 16; n = (e - 160) / 16; }
                    else { byte = 48 + (e - 240) % 4; n = (e - 240) / 4; }
                    int p3 = 1;
                    for (int i = 0; i < 4 - n; i++)
                        p3 *= 3;
                    val[byte] += trit[e] * p3;
                    cnt[byte]++;
                }
                for (int i = 0; i < 52; i++)
                    blk[i] = (uint8_t)((val[i] * 256 + 242) / 243);
            }
            off = rows * cols / 256 * 54;
            break;
        case SB_DTYPE_INT8: {
            size_t g = group ? group : cols, groups = (cols + g - 1) / g;
            size_t sb = sdt == SB_DTYPE_F16 ? 2 : 4;
            uint8_t *sc = w + rows * cols + r * groups * sb;
            for (size_t gi = 0; gi < groups; gi++) {
                float s = ldexpf((float)rint_in(1, 7), -rint_in(4, 8));
                if (sb == 2)
                    put16(sc + gi * 2, qnt_f32_to_f16_ref(s));
                else
                    memcpy(sc + gi * 4, &s, 4);
                for (size_t j = gi * g; j < cols && j < (gi + 1) * g; j++) {
                    int q = rint_in(-127, 127);
                    w[r * cols + j] = (uint8_t)(int8_t)q;
                    v[j] = (float)q * s;
                }
            }
            off = rows * cols + rows * groups * sb;
            break;
        }
        case SB_DTYPE_TERN: {
            uint8_t *row = w + r * qnt_tern_row_bytes(cols);
            float lo = -ldexpf(1.0f, -rint_in(1, 4)), hi = ldexpf(3.0f, -rint_in(2, 5));
            put16(row, qnt_f32_to_bf16_ref(lo));
            put16(row + 2, qnt_f32_to_bf16_ref(hi));
            for (size_t j = 0; j < cols; j++) {
                int s = rint_in(0, 2);
                row[4 + j / 4] |= (uint8_t)(s << (2 * (j % 4)));
                v[j] = s == 1 ? lo : s == 2 ? hi : 0.0f;
            }
            off = rows * qnt_tern_row_bytes(cols);
            break;
        }
        default:
            ck_abort_msg("no packer");
        }
    }
    P->nbytes = off;
}

static void unpack(struct packed *P)
{
    free(P->w);
    free(P->val);
}

static const struct { enum sb_dtype dt; size_t cols; uint32_t group; enum sb_dtype sdt; } cases[] = {
    { SB_DTYPE_F32, COLS, 0, 0 },   { SB_DTYPE_F32, 100, 0, 0 },
    { SB_DTYPE_F16, COLS, 0, 0 },   { SB_DTYPE_F16, 77, 0, 0 },
    { SB_DTYPE_BF16, COLS, 0, 0 },  { SB_DTYPE_BF16, 300, 0, 0 },
    { SB_DTYPE_Q8_0, COLS, 0, 0 },  { SB_DTYPE_Q8_0, 96, 0, 0 },
    { SB_DTYPE_Q4_0, COLS, 0, 0 },  { SB_DTYPE_TQ1_0, COLS, 0, 0 },
    { SB_DTYPE_TQ2_0, COLS, 0, 0 }, { SB_DTYPE_TQ2_0, 512, 0, 0 },
    { SB_DTYPE_INT8, COLS, 0, SB_DTYPE_F32 }, { SB_DTYPE_INT8, 100, 7, SB_DTYPE_F16 },
    { SB_DTYPE_INT8, COLS, 128, SB_DTYPE_F16 },
    { SB_DTYPE_TERN, COLS, 0, 0 },  { SB_DTYPE_TERN, 101, 0, 0 },
    /* several chunks of 256 plus a tail of 8 (AVX-512) / 0 (8 lanes) */
    { SB_DTYPE_F32, 1000, 0, 0 },   { SB_DTYPE_BF16, 1030, 0, 0 },
    { SB_DTYPE_F16, 520, 0, 0 },    { SB_DTYPE_Q8_0, 1056, 0, 0 },
    { SB_DTYPE_INT8, 1040, 32, SB_DTYPE_F16 }, { SB_DTYPE_INT8, 528, 48, SB_DTYPE_F32 },
    { SB_DTYPE_INT8, 520, 0, SB_DTYPE_F32 },   { SB_DTYPE_Q4_0, 544, 0, 0 },
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* _ref == the double dot of the values the packer meant */
START_TEST(test_ref_is_exact_dot)
{
    struct packed P;
    pack(&P, cases[_i].dt, ROWS, cases[_i].cols, cases[_i].group, cases[_i].sdt);
    ck_assert_int_eq(qnt_matvec_check(P.dt, P.nbytes, &P.qp, P.rows, P.cols, 0, P.rows), 0);
    float *x = malloc(P.cols * sizeof *x), y[ROWS];
    test_fill_normal(x, P.cols, 7 + (uint64_t)_i);
    qnt_matvec_ref(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, x, y);
    /* q8_0 / q4_0 meet 8-bit activations (qnt_q8mm_impl.h): their rounding's bound */
    const int q8x = P.dt == SB_DTYPE_Q8_0 || P.dt == SB_DTYPE_Q4_0;
    int8_t *xq = malloc(P.cols);
    float *xd = malloc(P.cols / 4 * sizeof *xd);
    if (q8x)
        qnt_q8x_quantize(x, P.cols, xq, xd);
    for (size_t r = 0; r < P.rows; r++) {
        double want = 0, mag = 0, bound = 0;
        for (size_t j = 0; j < P.cols; j++) {
            want += (double)P.val[r * P.cols + j] * x[j];
            mag += fabs((double)P.val[r * P.cols + j] * x[j]);
            bound += q8x ? fabs((double)P.val[r * P.cols + j]) * xd[j / 32 * 8] / 2 : 0;
        }
        ck_assert_msg(fabs(y[r] - want) <= bound + (q8x ? 1e-5 : 1e-7) * mag + 1e-30,
                      "%s row %zu: %.9g vs %.9g",
                      sb_dtype_name(P.dt), r, (double)y[r], want);
    }
    /* row decode is exact */
    float *row = malloc(P.cols * sizeof *row);
    for (size_t r = 0; r < P.rows; r += 5) {
        qnt_matvec_get_row(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, r, row);
        ck_assert_mem_eq(row, P.val + r * P.cols, P.cols * sizeof *row);
    }
    free(row);
    free(x);
    free(xq);
    free(xd);
    unpack(&P);
}
END_TEST

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512bf16" };
#define N_ISAS 4
static const size_t ns[] = { 11, 37 };   /* 4+4+3 tokens; a block of 32 then 4+1 */
#define N_NS 2

/* fast within 1e-5 of ref (relative to sum |w||x|); threads never change
 * bytes; matvec == matmul row bit for bit. _i: case, then n, then ISA. */
START_TEST(test_fast_vs_ref_and_threads)
{
    const int ci = _i % N_CASES, ni = _i / N_CASES % N_NS, ii = _i / N_CASES / N_NS;
    if (qnt_matvec_set_isa(isas[ii]) != 0)
        return;   /* this CPU lacks it */
    ck_assert_str_eq(qnt_matvec_fast_name(), sb_cpu_ref() ? "ref" : isas[ii]);
    struct packed P;
    pack(&P, cases[ci].dt, ROWS, cases[ci].cols, cases[ci].group, cases[ci].sdt);
    const size_t n = ns[ni];
    float *X = malloc(n * P.cols * sizeof *X);
    float *Yr = malloc(n * P.rows * sizeof *Yr), *Y1 = malloc(n * P.rows * sizeof *Y1);
    float *Y4 = malloc(n * P.rows * sizeof *Y4), *yv = malloc(P.rows * sizeof *yv);
    test_fill_normal(X, n * P.cols, 99 + (uint64_t)_i);
    qnt_matmul_ref(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, X, n, Yr);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    qnt_matmul(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, X, n, Y1);
    /* the call's first allocation failing (the blocked kernel's decoded rows
     * where it makes them, else the activations' buffer): the same bits */
    sb_alloc_fail_after(0);
    qnt_matmul(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, X, n, Y4);
    sb_alloc_fail_after(-1);
    ck_assert_mem_eq(Y1, Y4, n * P.rows * sizeof *Y1);
#ifdef _OPENMP
    omp_set_num_threads(4);
#endif
    qnt_matmul(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, X, n, Y4);
    ck_assert_mem_eq(Y1, Y4, n * P.rows * sizeof *Y1);
    for (size_t t = 0; t < n; t++) {
        qnt_matvec(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, X + t * P.cols, yv);
        ck_assert_msg(memcmp(yv, Y4 + t * P.rows, P.rows * sizeof *yv) == 0,
                      "%s cols %zu n %zu %s: matvec != matmul row %zu", sb_dtype_name(P.dt),
                      P.cols, n, isas[ii], t);
        for (size_t r = 0; r < P.rows; r++) {
            double mag = 0;
            for (size_t j = 0; j < P.cols; j++)
                mag += fabs((double)P.val[r * P.cols + j] * X[t * P.cols + j]);
            /* avx512bf16 rounds bf16 weights' activations to bf16 (qnt_bf16mm_impl.h) */
            const double tol = P.dt == SB_DTYPE_BF16 && ii == 3 && P.cols % 32 == 0
                                   ? 0x1p-9 + 1e-5 : 1e-5;
            ck_assert_msg(fabs((double)Y4[t * P.rows + r] - Yr[t * P.rows + r]) <= tol * mag,
                          "%s: fast %.9g ref %.9g", sb_dtype_name(P.dt),
                          (double)Y4[t * P.rows + r], (double)Yr[t * P.rows + r]);
        }
    }
    /* rows 5..5+18 of the tensor, on their own (19 rows: a last group of 3
     * rows; the tensor's own 37 end with a group of 1) */
    enum { SUBR = 19 };
    float *Ys = malloc(n * SUBR * sizeof *Ys);
    qnt_matmul_rows(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, 5, SUBR, X, n, Ys);
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < SUBR; r++) {
            float a = Ys[t * SUBR + r], b = Y4[t * P.rows + 5 + r];
            ck_assert_mem_eq(&a, &b, sizeof a);   /* tern too: its exact sums on any range */
        }
    qnt_matmul_rows_ref(P.dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, 5, SUBR, X, n, Ys);
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < SUBR; r++)
            ck_assert_float_eq_tol(Ys[t * SUBR + r], Yr[t * P.rows + 5 + r],
                                   1e-6f * (1 + fabsf(Ys[t * SUBR + r])));
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    qnt_matvec_set_isa(NULL);
    free(Ys);
    free(X);
    free(Yr);
    free(Y1);
    free(Y4);
    free(yv);
    unpack(&P);
}
END_TEST

/* The fast path is a function of W and x: a row's output does not change
 * when the other rows of its tile, or the other tokens of its tile, change
 * (guards against lanes or accumulators shared across outputs). */
START_TEST(test_fast_output_independent_of_neighbours)
{
    if (qnt_matvec_set_isa(isas[_i]) != 0)
        return;
    const size_t rows = 9, cols = 1000, n = 6;
    float *W = malloc(rows * cols * sizeof *W), *X = malloc(n * cols * sizeof *X);
    float Y[6 * 9], Z[6 * 9];
    test_fill_normal(W, rows * cols, 5);
    test_fill_normal(X, n * cols, 6);
    qnt_matmul(SB_DTYPE_F32, W, rows * cols * 4, NULL, rows, cols, X, n, Y);
    for (size_t j = 0; j < cols; j++) {
        W[1 * cols + j] *= 1e6f;   /* rows 1 and 3, tokens 0 and 5 */
        W[3 * cols + j] = -W[3 * cols + j];
        X[0 * cols + j] *= -1e6f;
        X[5 * cols + j] = 0.0f;
    }
    qnt_matmul(SB_DTYPE_F32, W, rows * cols * 4, NULL, rows, cols, X, n, Z);
    for (size_t t = 1; t < 5; t++)
        for (size_t r = 0; r < rows; r++)
            if (r != 1 && r != 3)
                ck_assert_mem_eq(&Y[t * rows + r], &Z[t * rows + r], sizeof(float));
    qnt_matvec_set_isa(NULL);
    free(W);
    free(X);
}
END_TEST

/* f32 / f16 / bf16 "packs" are copies of the rows (qnt_matmul_pack_bytes):
 * rows 3 .. 3+29 of a tensor packed give the bits of those rows computed in
 * place, batched and one token at a time */
START_TEST(test_dense_packs)
{
    static const enum sb_dtype dts[] = { SB_DTYPE_F32, SB_DTYPE_F16, SB_DTYPE_BF16 };
    const enum sb_dtype dt = dts[_i];
    struct packed P;
    pack(&P, dt, ROWS, 520, 0, 0);
    const size_t r0 = 3, nr = 29, es = dt == SB_DTYPE_F32 ? 4 : 2;
    const uint64_t nb = qnt_matmul_pack_bytes(dt, P.cols, nr);
    if (sb_cpu_ref()) {
        ck_assert_uint_eq(nb, 0);   /* the reference reads the file's bytes */
        unpack(&P);
        return;
    }
    ck_assert_uint_eq(nb, nr * P.cols * es);
    uint8_t *pk = malloc(nb);
    ck_assert_int_eq(qnt_matmul_pack_into(dt, P.w, &P.qp, P.cols, r0, nr, pk), 0);
    ck_assert_mem_eq(pk, P.w + r0 * P.cols * es, nb);
    for (size_t n = 1; n <= 9; n += 8) {
        float *X = malloc(n * P.cols * sizeof *X), *A = malloc(n * nr * sizeof *A),
              *B = malloc(n * nr * sizeof *B);
        test_fill_normal(X, n * P.cols, 7 + n);
        qnt_matmul_rows(dt, P.w, P.nbytes, &P.qp, P.rows, P.cols, r0, nr, X, n, A);
        ck_assert_int_eq(qnt_matmul_packed(dt, pk, P.cols, nr, X, n, B), 0);
        ck_assert_mem_eq(A, B, n * nr * sizeof *A);
        free(X);
        free(A);
        free(B);
    }
    free(pk);
    unpack(&P);
}
END_TEST

START_TEST(test_check_rejects)
{
    struct sb_qparams qp = { 0 };
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_Q8_0, 34 * 4, &qp, 4, 33, 0, 4), SB_EFORMAT);
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_Q8_0, 34 * 3, &qp, 4, 32, 0, 4), SB_EFORMAT);
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_Q8_0, 34 * 4, &qp, 4, 32, 0, 4), SB_OK);
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_F32, 64, &qp, 4, 4, 2, 3), SB_EINVAL);
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_IQ2_XXS, 1 << 20, &qp, 4, 256, 0, 4),
                     SB_EUNSUPPORTED);
    /* any row range of the variable-length encodings (no row buffer any more) */
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_SUB1, 100, &qp, 4, 1 << 20, 0, 2), SB_OK);
    ck_assert_int_eq(qnt_matvec_check(SB_DTYPE_SUB1_QMOE, 100, &qp, 4, 1 << 20, 1, 4),
                     SB_EINVAL);
    ck_assert_int_eq(qnt_matvec_set_isa("avx9000"), -1);
    ck_assert_int_eq(qnt_matvec_set_isa("scalar"), 0);
    ck_assert_str_eq(qnt_matvec_fast_name(), sb_cpu_ref() ? "ref" : "scalar");
    ck_assert_int_eq(qnt_matvec_set_isa(NULL), 0);
}
END_TEST

TEST_SUITE(quant_matvec, 30, NULL, NULL,
    TEST_LOOP(test_ref_is_exact_dot, N_CASES),
    TEST_LOOP(test_fast_vs_ref_and_threads, N_CASES * N_NS * N_ISAS),
    TEST_LOOP(test_fast_output_independent_of_neighbours, N_ISAS), TEST_LOOP(test_dense_packs, 3),
    TEST(test_check_rejects))
