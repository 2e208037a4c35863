/* bench_ggml_types.c: subbit-bench-ggml_types [REPS]: speed of the kernels of
 * qnt_ggml_types.h (q4_1 .. iq4_xs) against the core's f32 and q8_0 matvec
 * (qnt_matvec.h) measured in the same run. W is 4096 rows x 14336 cols; its
 * rows are 16 quantized rows of uniform [-1, 1) values repeated (the kernels'
 * speed does not depend on the values, and the reference quantizers of the
 * k-quants run at a few million elements a second). Prints, per type, the
 * matvec time at 1 and 2 threads (best of REPS, default 5, after a warm-up),
 * GB/s of W read, the ratio to f32 at 1 thread, and the single-thread speed of
 * quantize_ref and of the unsuffixed quantize (the same bytes; AVX2 group fits
 * for the k-quants and iq4). Not a test: compare ratios from one run. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qnt_ggml.h"
#include "qnt_ggml_types.h"
#include "qnt_matvec.h"
#include "sb_dtype.h"

#include "bench_util.h"

#define ROWS 4096
#define COLS 14336
#define SEED_ROWS 16

/* best time of reps calls of fn(ctx) after one warm-up */
static double best_of(int reps, void (*fn)(void *), void *ctx)
{
    fn(ctx);
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        const double t0 = now();
        fn(ctx);
        const double t = now() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

struct job {
    const struct qnt_ggml_type *t;   /* NULL: core matvec with dt */
    enum sb_dtype dt;
    const void *w;
    uint64_t nbytes;
    const float *x;
    float *y;
};

static void run_job(void *p)
{
    const struct job *j = p;
    if (j->t)
        qnt_ggml_type_matvec(j->t, j->w, ROWS, COLS, j->x, j->y, 0);
    else
        qnt_matvec(j->dt, j->w, j->nbytes, NULL, ROWS, COLS, j->x, j->y);
}

/* W of type t (or the core's f32 / q8_0 when t is NULL): 16 rows, repeated. */
static void *make_w(const struct qnt_ggml_type *t, enum sb_dtype dt, const float *seed_rows,
                    uint64_t *nbytes)
{
    const size_t rb = t ? COLS / t->blck * t->block_bytes
                        : dt == SB_DTYPE_F32 ? (size_t)COLS * 4 : COLS / 32 * 34;
    uint8_t *w = malloc(rb * ROWS);
    if (!w)
        return NULL;
    for (int r = 0; r < SEED_ROWS; r++) {
        const float *x = seed_rows + (size_t)r * COLS;
        uint8_t *o = w + (size_t)r * rb;
        if (t)
            t->quantize_ref(x, o, COLS);
        else if (dt == SB_DTYPE_F32)
            memcpy(o, x, rb);
        else
            qnt_q8_0_quantize_ref(x, (struct qnt_block_q8_0 *)(void *)o, COLS);
    }
    for (int r = SEED_ROWS; r < ROWS; r++)
        memcpy(w + (size_t)r * rb, w + (size_t)(r % SEED_ROWS) * rb, rb);
    *nbytes = (uint64_t)rb * ROWS;
    return w;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1)
        reps = 5;
    static const enum sb_dtype types[] = {
        SB_DTYPE_Q4_1, SB_DTYPE_Q5_0, SB_DTYPE_Q5_1, SB_DTYPE_Q2_K, SB_DTYPE_Q3_K, SB_DTYPE_Q4_K,
        SB_DTYPE_Q5_K, SB_DTYPE_Q6_K, SB_DTYPE_Q8_K, SB_DTYPE_IQ4_NL, SB_DTYPE_IQ4_XS,
    };
    float *seed_rows = malloc((size_t)SEED_ROWS * COLS * sizeof *seed_rows);
    float *x = malloc(COLS * sizeof *x), *y = malloc(ROWS * sizeof *y);
    if (!seed_rows || !x || !y) {
        fprintf(stderr, "subbit-bench-ggml_types: out of memory\n");
        return 1;
    }
    uint64_t s = 42;
    for (size_t j = 0; j < (size_t)SEED_ROWS * COLS; j++)
        seed_rows[j] = urand(&s);
    for (size_t j = 0; j < COLS; j++)
        x[j] = urand(&s);
    printf("subbit-bench-ggml_types: dots '%s', core matvec '%s', best of %d\n",
           qnt_ggml_types_dot_name(), qnt_matvec_fast_name(), reps);
    printf("\nmatvec, W %d x %d; quantize speed in Melem/s, one thread\n"
           "%-7s %8s %8s %8s %8s %9s %9s %9s\n", ROWS, COLS, "type", "1t ms", "1t GB/s", "2t ms",
           "2t GB/s", "1t/f32", "q _ref", "q fast");
    double f32_1t = 0;
    for (int i = -2; i < (int)(sizeof types / sizeof types[0]); i++) {
        const struct qnt_ggml_type *t = i >= 0 ? qnt_ggml_type_get(types[i]) : NULL;
        const enum sb_dtype dt = i == -2 ? SB_DTYPE_F32 : i == -1 ? SB_DTYPE_Q8_0 : types[i];
        struct job j = { t, dt, NULL, 0, x, y };
        void *w = make_w(t, dt, seed_rows, &j.nbytes);
        if (!w) {
            fprintf(stderr, "subbit-bench-ggml_types: out of memory\n");
            return 1;
        }
        j.w = w;
        double tm[2];
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            tm[th - 1] = best_of(reps, run_job, &j);
        }
        if (i == -2)
            f32_1t = tm[0];
        double qref = 0, qfast = 0;
        if (t) {   /* quantize speed on the 16 seed rows, one thread */
            double t0 = now();
            t->quantize_ref(seed_rows, w, (size_t)SEED_ROWS * COLS);
            qref = (double)SEED_ROWS * COLS / (now() - t0) * 1e-6;
            t0 = now();
            t->quantize(seed_rows, w, (size_t)SEED_ROWS * COLS);
            qfast = (double)SEED_ROWS * COLS / (now() - t0) * 1e-6;
        }
        printf("%-7s %8.2f %8.2f %8.2f %8.2f %8.2fx", t ? t->name : sb_dtype_name(dt), tm[0] * 1e3,
               (double)j.nbytes / tm[0] * 1e-9, tm[1] * 1e3, (double)j.nbytes / tm[1] * 1e-9,
               tm[0] / f32_1t);
        if (t)
            printf(" %9.1f %9.1f\n", qref, qfast);
        else
            printf(" %9s %9s\n", "-", "-");
        free(w);
    }
    free(seed_rows);
    free(x);
    free(y);
    return 0;
}
