/* bench_sub1.c: subbit-bench-sub1 [TINYMOE_DIR]: storage rate of sub1,
 * sub1-qmoe, zstd -19 and xz -9e on ternary weights vs the order-0 entropy,
 * decode speed, and fused matvec time vs f32 / bf16 / int8 matvecs of the same
 * 4096 x 14336 matrix (ternary, ~88.5% zeros); then the batched matmul of
 * many tokens against the core's bf16 kernel, and the encoders (f32 in, GB/s)
 * against q4_0's, at 1 and 2 threads (SUBBIT_BENCH_THREADS=N: 1 and N). Prints
 * tables; not a test.
 * The bf16 baseline is the fastest bf16 kernel we have (mv_bf16_eo, ~15%
 * faster than the plain two-accumulator one, ~3x faster than qnt_matvec's
 * generic decode-then-dot path); both others are printed too. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "fmt_model.h"
#include "qnt_cast.h"
#include "qnt_encode.h"
#include "qnt_matvec.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"

/* the second thread count: $SUBBIT_BENCH_THREADS, else 2 */
static int bench_threads(void)
{
    const char *e = getenv("SUBBIT_BENCH_THREADS");
    const int n = e ? atoi(e) : 2;
    return n >= 2 ? n : 2;
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void iid(float *x, size_t n, double p0, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rng(&seed) >> 11) / 9007199254740992.0;
        x[i] = u < p0 ? 0.0f : (u < p0 + (1 - p0) / 2 ? -1.0f : 1.0f);
    }
}

struct rate { double n, ent, sub1, sub1_code, qmoe, zstd, xz; };

static double xz_bytes(const void *p, size_t n)
{
    char tmp[] = "/tmp/subbit-bench-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0)
        return NAN;
    if (write(fd, p, n) != (ssize_t)n) {
        close(fd);
        unlink(tmp);
        return NAN;
    }
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "xz -9e -c %s 2>/dev/null | wc -c", tmp);
    FILE *f = popen(cmd, "r");
    double v = NAN;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = NAN;
        pclose(f);
    }
    unlink(tmp);
    return v > 0 ? v : NAN;
}

static void rate_add(struct rate *R, const uint8_t *tern, size_t rows, size_t cols, int gen)
{
    size_t rb = qnt_tern_row_bytes(cols), tb = rows * rb;
    uint64_t c[4] = { 0 };
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            c[(tern[r * rb + 4 + j / 4] >> (2 * (j % 4))) & 3]++;
    double n = (double)rows * cols;
    for (int k = 0; k < 3; k++)
        if (c[k])
            R->ent -= (double)c[k] * log2((double)c[k] / n);
    R->n += n;
    size_t cap = qnt_sub1_encode_bound(rows, cols);
    uint8_t *b = malloc(cap);
    uint64_t nb;
    qnt_sub1_encode(tern, rows, cols, b, cap, &nb);
    R->sub1 += 8.0 * nb;
    R->sub1_code += 8.0 * (nb - 4 * rows);
    free(b);
    cap = qnt_qmoe_encode_bound(rows, cols);
    b = malloc(cap);
    qnt_qmoe_encode(tern, rows, cols, b, cap, &nb);
    R->qmoe += 8.0 * nb;
    free(b);
    if (gen) {
        /* generic compressors see the tern blob (2 bits a weight + levels) */
        size_t zc = ZSTD_compressBound(tb);
        b = malloc(zc);
        size_t z = ZSTD_compress(b, zc, tern, tb, 19);
        R->zstd += ZSTD_isError(z) ? NAN : 8.0 * z;
        free(b);
        R->xz += 8.0 * xz_bytes(tern, tb);
    }
}

static void rate_print(const char *what, const struct rate *R)
{
    double h = R->ent / R->n;
    printf("%-16s %6.4f | %6.4f %6.4f (%5.3fx) | %6.4f (%5.3fx) | %6.4f (%5.3fx) | %6.4f (%5.3fx)\n",
           what, h, R->sub1 / R->n, R->sub1_code / R->n, R->sub1_code / R->ent, R->qmoe / R->n,
           R->qmoe / R->ent, R->zstd / R->n, R->zstd / R->ent, R->xz / R->n, R->xz / R->ent);
}

/* ---- baseline matvecs (AVX2, OpenMP over rows) --------------------------- */

__attribute__((target("avx2,fma"))) static void mv_f32(const float *w, size_t rows, size_t cols,
                                                      const float *x, float *y)
{
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)rows; r++) {
        const float *p = w + (size_t)r * cols;
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 16 <= cols; j += 16) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(x + j), a);
            b = _mm256_fmadd_ps(_mm256_loadu_ps(p + j + 8), _mm256_loadu_ps(x + j + 8), b);
        }
        float t[8];
        _mm256_storeu_ps(t, _mm256_add_ps(a, b));
        float s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
        for (; j < cols; j++)
            s += p[j] * x[j];
        y[r] = s;
    }
}

__attribute__((target("avx2,fma"))) static void mv_bf16(const uint16_t *w, size_t rows, size_t cols,
                                                       const float *x, float *y)
{
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)rows; r++) {
        const uint16_t *p = w + (size_t)r * cols;
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(p + j));
            __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)), 16));
            __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1)), 16));
            a = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + j), a);
            b = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + j + 8), b);
        }
        float t[8];
        _mm256_storeu_ps(t, _mm256_add_ps(a, b));
        float s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
        for (; j < cols; j++)
            s += qnt_tern_bf16_to_f32(p[j]) * x[j];
        y[r] = s;
    }
}

/* bf16 with four accumulators: each 32-bit lane holds two bf16 (even in the low
 * half, odd in the high half); (v << 16) and (v & 0xffff0000) are those two as
 * exact floats, paired with x split the same way once per call (xe, xo). */
__attribute__((target("avx2,fma"))) static void mv_bf16_eo(const uint16_t *w, size_t rows,
                                                          size_t cols, const float *x,
                                                          float *xeo, float *y)
{
    for (size_t j = 0; j + 16 <= cols; j += 16)
        for (int k = 0; k < 8; k++) {
            xeo[j + k] = x[j + 2 * k];
            xeo[j + 8 + k] = x[j + 2 * k + 1];
        }
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)rows; r++) {
        const uint16_t *p = w + (size_t)r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t j = 0;
        for (; j + 32 <= cols; j += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(p + j));
            __m256i u = _mm256_loadu_si256((const __m256i *)(p + j + 16));
            a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(xeo + j), a0);
            a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), _mm256_loadu_ps(xeo + j + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)), _mm256_loadu_ps(xeo + j + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(u, hi)), _mm256_loadu_ps(xeo + j + 24), a3);
        }
        float t[8];
        _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        float s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
        for (; j < cols; j++)
            s += qnt_tern_bf16_to_f32(p[j]) * x[j];
        y[r] = s;
    }
}

/* int8 weights with one f32 scale per row, f32 activations */
__attribute__((target("avx2,fma"))) static void mv_int8(const int8_t *w, const float *sc, size_t rows,
                                                       size_t cols, const float *x, float *y)
{
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)rows; r++) {
        const int8_t *p = w + (size_t)r * cols;
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + j));
            __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
            __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
            a = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + j), a);
            b = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + j + 8), b);
        }
        float t[8];
        _mm256_storeu_ps(t, _mm256_add_ps(a, b));
        float s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
        for (; j < cols; j++)
            s += p[j] * x[j];
        y[r] = s * sc[r];
    }
}

#define TIME(label, reps, expr)                                                            \
    do {                                                                                   \
        expr;                                                                              \
        double best_ = 1e30;                                                               \
        for (int k_ = 0; k_ < (reps); k_++) {                                              \
            double t0_ = omp_get_wtime();                                                  \
            expr;                                                                          \
            double t_ = omp_get_wtime() - t0_;                                             \
            if (t_ < best_)                                                                \
                best_ = t_;                                                                \
        }                                                                                  \
        label = best_;                                                                     \
    } while (0)

int main(int argc, char **argv)
{
    printf("storage, bits per weight (sub1: total incl. per-row bf16 levels, then code only vs entropy)\n");
    printf("%-16s %6s | %-22s | %-15s | %-15s | %-15s\n", "data", "H", "sub1 total code", "sub1-qmoe",
           "zstd -19", "xz -9e");
    const double p0s[] = { 0.80, 0.885, 0.95 };
    for (int k = 0; k < 3; k++) {
        size_t rows = 1024, cols = 4096;
        float *x = malloc(rows * cols * sizeof *x);
        uint8_t *t = malloc(rows * qnt_tern_row_bytes(cols));
        iid(x, rows * cols, p0s[k], 1 + (uint64_t)k);
        qnt_tern_quantize_rows(x, rows, cols, t);
        struct rate R = { 0 };
        rate_add(&R, t, rows, cols, 1);
        char what[64];
        snprintf(what, sizeof what, "iid p0=%.3f", p0s[k]);
        rate_print(what, &R);
        free(x);
        free(t);
    }
    if (argc > 1) {
        struct fmt_model *m;
        struct sb_err err = { 0 };
        if (fmt_model_open(&m, argv[1], NULL, &err)) {
            fprintf(stderr, "subbit-bench-sub1: %s\n", err.msg);
            return 1;
        }
        struct rate R = { 0 };
        for (size_t i = 0; i < m->n_tensors; i++) {
            const struct fmt_tensor *t = &m->tensors[i];
            if (!strstr(t->name, "experts") || t->ndim != 2 ||
                (t->dtype != SB_DTYPE_F32 && t->dtype != SB_DTYPE_BF16))
                continue;
            size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
            uint8_t *tb = malloc(rows * qnt_tern_row_bytes(cols));
            float *wf = NULL;   /* bf16 (the repository's built-in copy): widened, exact */
            if (t->dtype == SB_DTYPE_BF16) {
                wf = malloc(rows * cols * sizeof *wf);
                qnt_bf16_to_f32(t->data, wf, rows * cols);
            }
            qnt_tern_quantize_rows(wf ? wf : (const float *)t->data, rows, cols, tb);
            rate_add(&R, tb, rows, cols, 1);
            free(wf);
            free(tb);
        }
        if (R.n > 0)
            rate_print("tinymoe experts", &R);
        else
            printf("tinymoe experts: no f32 or bf16 expert matrices in %s\n", argv[1]);
        fmt_model_free(m);
    }

    /* speed: 4096 x 14336, ternary at 88.5% zeros */
    const size_t rows = 4096, cols = 14336, n = rows * cols;
    float *w = malloc(n * sizeof *w), *x = malloc(cols * sizeof *x), *y = malloc(rows * sizeof *y);
    uint8_t *tern = malloc(rows * qnt_tern_row_bytes(cols));
    uint16_t *wb = malloc(n * 2);
    int8_t *wi = malloc(n);
    float *sc = malloc(rows * sizeof *sc);
    iid(w, n, 0.885, 99);
    for (size_t j = 0; j < cols; j++)
        x[j] = (float)((double)(j % 97) / 97.0 - 0.5);
    qnt_tern_quantize_rows(w, rows, cols, tern);
    for (size_t i = 0; i < n; i++) {
        wb[i] = qnt_tern_f32_to_bf16(w[i]);
        wi[i] = (int8_t)(w[i] * 127);
    }
    for (size_t r = 0; r < rows; r++)
        sc[r] = 1.0f / 127;
    size_t cap = qnt_sub1_encode_bound(rows, cols);
    uint8_t *s1 = malloc(cap);
    uint64_t s1n, qn;
    qnt_sub1_encode(tern, rows, cols, s1, cap, &s1n);
    cap = qnt_qmoe_encode_bound(rows, cols);
    uint8_t *qm = malloc(cap);
    qnt_qmoe_encode(tern, rows, cols, qm, cap, &qn);
    float *dec = malloc((size_t)64 * cols * sizeof *dec);
    float *xeo = malloc(cols * sizeof *xeo);
    double t_dec, t_s1, t_qm, t_tern, t_f32, t_bf16, t_bf16p, t_bf16q, t_i8;
    TIME(t_dec, 5, for (size_t r0 = 0; r0 < rows; r0 += 64) qnt_sub1_dequantize_rows(s1, s1n, cols, r0, 64, dec));
    TIME(t_qm, 10, qnt_qmoe_matvec(qm, qn, rows, cols, x, y));
    TIME(t_tern, 10, qnt_tern_matvec(tern, rows, cols, x, y));
    TIME(t_f32, 10, mv_f32(w, rows, cols, x, y));
    TIME(t_bf16p, 10, mv_bf16(wb, rows, cols, x, y));
    TIME(t_bf16q, 5, qnt_matvec(SB_DTYPE_BF16, wb, n * 2, NULL, rows, cols, x, y));
    TIME(t_i8, 10, mv_int8(wi, sc, rows, cols, x, y));
    /* the comparison that matters: sub1 and the fastest bf16 kernel timed
       alternately (other load on the machine hits both alike), best of 30 each */
    qnt_sub1_matvec(s1, s1n, rows, cols, x, y);
    mv_bf16_eo(wb, rows, cols, x, xeo, y);
    t_s1 = t_bf16 = 1e30;
    for (int k = 0; k < 30; k++) {
        double t0 = omp_get_wtime();
        qnt_sub1_matvec(s1, s1n, rows, cols, x, y);
        double t1 = omp_get_wtime();
        mv_bf16_eo(wb, rows, cols, x, xeo, y);
        double t2 = omp_get_wtime();
        t_s1 = t1 - t0 < t_s1 ? t1 - t0 : t_s1;
        t_bf16 = t2 - t1 < t_bf16 ? t2 - t1 : t_bf16;
    }
    printf("\nspeed, %zu x %zu, p0 0.885, %d threads (best of 10; sub1 and bf16: best of 30, alternating)\n",
           rows, cols, omp_get_max_threads());
    printf("sub1 decode to f32 (qnt_sub1_dequantize_rows, 64 rows a call, 1 thread): %.2f G weights/s (target >= 1.9)\n",
           n / t_dec / 1e9);
    printf("%-10s %10s %10s %12s %10s\n", "matvec", "ms", "MB", "Gweights/s", "vs bf16");
    struct { const char *name; double t, mb; } rs[] = {
        { "sub1", t_s1, s1n / 1e6 }, { "sub1-qmoe", t_qm, qn / 1e6 },
        { "tern", t_tern, rows * qnt_tern_row_bytes(cols) / 1e6 }, { "f32", t_f32, n * 4 / 1e6 },
        { "bf16", t_bf16, n * 2 / 1e6 }, { "bf16-2acc", t_bf16p, n * 2 / 1e6 },
        { "bf16-qnt", t_bf16q, n * 2 / 1e6 }, { "int8", t_i8, n / 1e6 },
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        printf("%-10s %10.3f %10.2f %12.2f %9.2fx\n", rs[i].name, rs[i].t * 1e3, rs[i].mb,
               n / rs[i].t / 1e9, t_bf16 / rs[i].t);

    /* batched: Y = X W^T for n tokens, every encoding through qnt_matmul (the
       core's entry point), alternating, best of a few; bf16 = the core's kernel */
    printf("\nbatched matmul Y = X W^T, %zu x %zu, p0 0.885, through qnt_matmul (ms; x = bf16 / it, same run)\n",
           rows, cols);
    printf("%-8s %4s %10s %16s %16s %16s\n", "threads", "n", "bf16", "sub1", "tern", "sub1-qmoe");
    const size_t nmax = 64;
    float *X = malloc(nmax * cols * sizeof *X), *Y = malloc(nmax * rows * sizeof *Y);
    for (size_t i = 0; i < nmax * cols; i++)
        X[i] = (float)((double)((i * 7919) % 1009) / 1009.0 - 0.5);
    const int nth0 = omp_get_max_threads(), thv[3] = { 0, 1, bench_threads() };
    for (int ti = 1; ti <= 2; ti++) {
        const int th = thv[ti];
        omp_set_num_threads(th);
        const size_t nsz[] = { 1, 8, 64 };
        for (size_t q = 0; q < 3; q++) {
            const size_t nn = nsz[q];
            const struct { enum sb_dtype dt; const void *p; uint64_t nb; } e[4] = {
                { SB_DTYPE_BF16, wb, n * 2 }, { SB_DTYPE_SUB1, s1, s1n },
                { SB_DTYPE_TERN, tern, rows * qnt_tern_row_bytes(cols) }, { SB_DTYPE_SUB1_QMOE, qm, qn } };
            double bt[4] = { 1e30, 1e30, 1e30, 1e30 };
            const int reps = nn == 64 ? 3 : 5;
            for (int k = 0; k < reps; k++)
                for (int m = 0; m < 4; m++) {
                    double t0 = omp_get_wtime();
                    qnt_matmul(e[m].dt, e[m].p, e[m].nb, NULL, rows, cols, X, nn, Y);
                    double t1 = omp_get_wtime() - t0;
                    bt[m] = t1 < bt[m] ? t1 : bt[m];
                }
            printf("%-8d %4zu %10.2f %9.2f (%4.2fx) %9.2f (%4.2fx) %9.2f (%4.2fx)\n", th, nn,
                   bt[0] * 1e3, bt[1] * 1e3, bt[0] / bt[1], bt[2] * 1e3, bt[0] / bt[2], bt[3] * 1e3,
                   bt[0] / bt[3]);
        }
    }
    free(X);
    free(Y);

    /* encoders: the same matrix of N(0, 1) f32 weights (round to nearest
       ternary: ~95% zeros at this width), GB/s of f32 in; sub1 and sub1-qmoe
       include the tern step they start from */
    uint64_t gs = 7;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(rng(&gs) >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(rng(&gs) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        w[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n)
            w[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
    uint8_t *q4 = malloc(n / 32 * 18);
    size_t s1cap = qnt_sub1_encode_bound(rows, cols), qmcap = qnt_qmoe_encode_bound(rows, cols);
    s1 = realloc(s1, s1cap);
    qm = realloc(qm, qmcap);
    double enc[3][5];   /* [threads][q4_0, tern, sub1 code, qmoe code, sub1 ref code] */
    for (int th = 1; th <= 2; th++) {   /* th: 1, then the second count */
        omp_set_num_threads(thv[th]);
        for (int k = 0; k < 5; k++)
            enc[th][k] = 1e30;
        for (int k = 0; k < 3; k++) {
            double t[6];
            t[0] = omp_get_wtime();
            qnt_quantize_rows(SB_DTYPE_Q4_0, w, rows, cols, NULL, q4);
            t[1] = omp_get_wtime();
            qnt_tern_quantize_rows(w, rows, cols, tern);
            t[2] = omp_get_wtime();
            qnt_sub1_encode(tern, rows, cols, s1, s1cap, &s1n);
            t[3] = omp_get_wtime();
            qnt_qmoe_encode(tern, rows, cols, qm, qmcap, &qn);
            t[4] = omp_get_wtime();
            if (th == 1 && k == 0)
                qnt_sub1_encode_ref(tern, rows, cols, s1, s1cap, &s1n, 1);
            t[5] = omp_get_wtime();
            for (int m = 0; m < 5; m++)
                if (t[m + 1] - t[m] < enc[th][m] && (m < 4 || (th == 1 && k == 0)))
                    enc[th][m] = t[m + 1] - t[m];
        }
    }
    uint64_t z = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            z += ((tern[r * qnt_tern_row_bytes(cols) + 4 + j / 4] >> (2 * (j % 4))) & 3) == 0;
    const double gb = (double)n * 4 / 1e9;
    printf("\nencoders, %zu x %zu f32 N(0,1) (%.1f%% zeros as ternary), GB/s of f32 in (best of 3)\n",
           rows, cols, 100.0 * (double)z / (double)n);
    printf("%-10s %10s %10s %10s %12s\n", "", "q4_0", "tern", "sub1", "sub1-qmoe");
    for (int th = 1; th <= 2; th++)
        printf("%2d %-7s %10.2f %10.2f %10.2f %12.2f\n", thv[th], th == 1 ? "thread" : "threads",
               gb / enc[th][0], gb / enc[th][1], gb / (enc[th][1] + enc[th][2]),
               gb / (enc[th][1] + enc[th][3]));
    printf("sub1 at 1 thread: %.2fx of q4_0's rate (target >= 0.5x); %d threads / 1: q4_0 %.2fx, "
           "tern %.2fx, sub1 %.2fx, sub1-qmoe %.2fx (target at 2: >= 1.8x)\n",
           enc[1][0] / (enc[1][1] + enc[1][2]), thv[2], enc[1][0] / enc[2][0], enc[1][1] / enc[2][1],
           (enc[1][1] + enc[1][2]) / (enc[2][1] + enc[2][2]),
           (enc[1][1] + enc[1][3]) / (enc[2][1] + enc[2][3]));
    printf("sub1 code alone, 1 thread: %.3f s (the serial reference coder: %.3f s, %.1fx)\n",
           enc[1][2], enc[1][4], enc[1][4] / enc[1][2]);
    /* what the second count can give on this machine right now: an embarrassingly
       parallel loop of arithmetic (no memory traffic), same run */
    double ceil_t[3] = { 0, 1e30, 1e30 };
    for (int k = 0; k < 3; k++)
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(thv[th]);
            double t0 = omp_get_wtime();
            uint64_t acc = 0;
#pragma omp parallel for schedule(static) reduction(^ : acc)
            for (long i = 0; i < 400000000L; i++)
                acc ^= ((uint64_t)i * 0x9e3779b97f4a7c15ull) >> 17;
            double t1 = omp_get_wtime() - t0;
            ceil_t[th] = t1 < ceil_t[th] ? t1 : ceil_t[th];
            if (acc == 42)
                printf(" ");   /* keep the loop */
        }
    printf("this machine now: an embarrassingly parallel loop runs %.2fx faster at %d threads "
           "(the ceiling for the ratios above)\n", ceil_t[1] / ceil_t[2], thv[2]);
    omp_set_num_threads(nth0);
    free(q4);
    free(w); free(x); free(y); free(tern); free(wb); free(wi); free(sc); free(s1); free(qm); free(dec); free(xeo);
    return 0;
}
