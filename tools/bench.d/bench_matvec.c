/* bench_matvec.c: subbit-bench-matvec [REPS]: speed of the dense kernels of
 * qnt_matvec.h. Times qnt_matvec (y = W x) for f32, bf16, f16, q8_0 and int8
 * (per-row f32 scales) on a W of 4096 rows x 14336 cols, and qnt_matmul
 * (Y = X W^T) for 128 tokens on a 4096 x 4096 W (f32, bf16, q8_0), at 1 and 2
 * threads, best of REPS (default 7) after one warm-up call. Prints a table
 * (ms, GB/s of W read for matvec, GFLOP/s for matmul); not a test. Other load
 * on the machine slows every row alike, so compare ratios from one run. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qnt_cast.h"
#include "qnt_matvec.h"
#include "sb_dtype.h"

#include "bench_util.h"

struct wmat {
    enum sb_dtype dt;
    struct sb_qparams qp;
    void *w;
    uint64_t nbytes;
};

/* W [rows, cols] with entries uniform in [-1, 1) in encoding dt. */
static int make_w(struct wmat *m, enum sb_dtype dt, size_t rows, size_t cols, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->dt = dt;
    m->qp.scale_dtype = SB_DTYPE_F32;
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    if (sb_dtype_nbytes(dt, shape, 2, &m->qp, &m->nbytes) != 0)
        return -1;
    uint8_t *w = malloc(m->nbytes);
    float *row = malloc(cols * sizeof *row);
    if (!w || !row) {
        free(w);
        free(row);
        return -1;
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < cols; j++)
            row[j] = urand(&seed);
        switch (dt) {
        case SB_DTYPE_F32:
            memcpy(w + r * cols * 4, row, cols * 4);
            break;
        case SB_DTYPE_F16:
        case SB_DTYPE_BF16:
            for (size_t j = 0; j < cols; j++) {
                uint16_t h = dt == SB_DTYPE_F16 ? qnt_f32_to_f16_ref(row[j])
                                                : qnt_f32_to_bf16_ref(row[j]);
                memcpy(w + (r * cols + j) * 2, &h, 2);
            }
            break;
        case SB_DTYPE_Q8_0:
            for (size_t b = 0; b < cols / 32; b++) {
                uint8_t *blk = w + (r * cols / 32 + b) * 34;
                uint16_t d = qnt_f32_to_f16_ref(1.0f / 127.0f);
                memcpy(blk, &d, 2);
                for (int e = 0; e < 32; e++)
                    blk[2 + e] = (uint8_t)(int8_t)(int)(row[b * 32 + e] * 127.0f);
            }
            break;
        case SB_DTYPE_INT8: {
            float s = 1.0f / 127.0f;
            for (size_t j = 0; j < cols; j++)
                w[r * cols + j] = (uint8_t)(int8_t)(int)(row[j] * 127.0f);
            memcpy(w + rows * cols + r * 4, &s, 4);
            break;
        }
        default:
            break;
        }
    }
    free(row);
    m->w = w;
    return 0;
}

#define REPS_DEFAULT 7

static double best_matvec(const struct wmat *m, size_t rows, size_t cols, const float *x,
                          float *y, int reps)
{
    qnt_matvec(m->dt, m->w, m->nbytes, &m->qp, rows, cols, x, y);   /* warm-up */
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        qnt_matvec(m->dt, m->w, m->nbytes, &m->qp, rows, cols, x, y);
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

static double best_matmul(const struct wmat *m, size_t rows, size_t cols, const float *X,
                          size_t n, float *Y, int reps)
{
    qnt_matmul(m->dt, m->w, m->nbytes, &m->qp, rows, cols, X, n, Y);
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        qnt_matmul(m->dt, m->w, m->nbytes, &m->qp, rows, cols, X, n, Y);
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : REPS_DEFAULT;
    if (reps < 1)
        reps = REPS_DEFAULT;
    printf("subbit-bench-matvec: fast path '%s', best of %d\n", qnt_matvec_fast_name(), reps);

    static const enum sb_dtype mv_dt[] = { SB_DTYPE_F32, SB_DTYPE_BF16, SB_DTYPE_F16,
                                           SB_DTYPE_Q8_0, SB_DTYPE_INT8 };
    const size_t rows = 4096, cols = 14336;
    float *x = malloc(cols * sizeof *x), *y = malloc(rows * sizeof *y);
    uint64_t s = 42;
    for (size_t j = 0; j < cols; j++)
        x[j] = urand(&s);
    printf("\nqnt_matvec, W %zu x %zu\n%-6s %8s %8s %8s %8s\n", rows, cols, "dtype", "1t ms",
           "1t GB/s", "2t ms", "2t GB/s");
    for (size_t i = 0; i < sizeof mv_dt / sizeof mv_dt[0]; i++) {
        struct wmat m;
        if (make_w(&m, mv_dt[i], rows, cols, 1 + i) != 0) {
            fprintf(stderr, "subbit-bench-matvec: out of memory\n");
            return 1;
        }
        double t[2];
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            t[th - 1] = best_matvec(&m, rows, cols, x, y, reps);
        }
        printf("%-6s %8.2f %8.2f %8.2f %8.2f\n", sb_dtype_name(m.dt), t[0] * 1e3,
               (double)m.nbytes / t[0] * 1e-9, t[1] * 1e3, (double)m.nbytes / t[1] * 1e-9);
        free(m.w);
    }

    static const enum sb_dtype mm_dt[] = { SB_DTYPE_F32, SB_DTYPE_BF16, SB_DTYPE_Q8_0 };
    const size_t mr = 4096, mc = 4096, n = 128;
    float *X = malloc(n * mc * sizeof *X), *Y = malloc(n * mr * sizeof *Y);
    for (size_t j = 0; j < n * mc; j++)
        X[j] = urand(&s);
    const double flop = 2.0 * (double)n * (double)mr * (double)mc;
    printf("\nqnt_matmul, W %zu x %zu, %zu tokens\n%-6s %8s %8s %8s %8s\n", mr, mc, n, "dtype",
           "1t ms", "1t GF/s", "2t ms", "2t GF/s");
    for (size_t i = 0; i < sizeof mm_dt / sizeof mm_dt[0]; i++) {
        struct wmat m;
        if (make_w(&m, mm_dt[i], mr, mc, 11 + i) != 0) {
            fprintf(stderr, "subbit-bench-matvec: out of memory\n");
            return 1;
        }
        double t[2];
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            t[th - 1] = best_matmul(&m, mr, mc, X, n, Y, reps < 3 ? reps : 3);
        }
        printf("%-6s %8.2f %8.2f %8.2f %8.2f\n", sb_dtype_name(m.dt), t[0] * 1e3,
               flop / t[0] * 1e-9, t[1] * 1e3, flop / t[1] * 1e-9);
        free(m.w);
    }
    free(x);
    free(y);
    free(X);
    free(Y);
    return 0;
}
