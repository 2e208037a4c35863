/* qnt_matvec.c: matvec / matmul over weights in their stored encoding
 * (qnt_matvec.h). Knows no encoding: how to decode one, read it in place or
 * run its fused kernel is asked of the encoding table (qnt_type.h).
 *
 * _ref: a row is cut into chunks of QNT_CH elements; each chunk is decoded to
 * f32 on the stack and dotted with the matching slice of each input vector,
 * in double. The fast path is the blocked kernel of qnt_matvec_tile_impl.h
 * (summation order: qnt_matvec_impl.h), for what the CPU probe (sb_cpu.h)
 * reports: AVX-512F, AVX2+FMA+F16C, or the scalar-lane instance compiled here. */
#include "qnt_matvec.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qnt_bf16mm_impl.h"
#include "qnt_cast.h"
#include "qnt_matvec_impl.h"
#include "qnt_q8mm_impl.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "qnt_type.h"
#include "sb_err.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define QNT_CH 256   /* elements per chunk: a multiple of every block size (32, 256) */
#define QNT_TB 8     /* input vectors handled per pass over a row */

/* ---- element layout: asked of the encoding table ------------------------- */

/* Elements j0 .. j0+len-1 of row r to f32: the encoding's own decoder, or its
 * to_float over the row's blocks (rb bytes a row; j0 is a multiple of QNT_CH,
 * hence of every block length). fast picks the fast to_float (same values). */
static void decode_chunk(const struct qnt_type *t, const void *w, size_t rows, size_t cols,
                         const struct sb_qparams *qp, size_t rb, size_t r, size_t j0, size_t len,
                         float *out, int fast)
{
    if (t->decode) {
        t->decode(w, rows, cols, qp, r, j0, len, out);
        return;
    }
    const struct sb_dtype_info *d = sb_dtype_get(t->dt);
    const uint8_t *p = (const uint8_t *)w + r * rb + j0 / d->blck * d->type_size;
    (fast ? t->to_float : t->to_float_ref)(p, out, len);
}

/* ---- checks -------------------------------------------------------------- */

int qnt_matvec_check(enum sb_dtype dt, uint64_t nbytes, const struct sb_qparams *qp, size_t rows,
                     size_t cols, size_t row0, size_t nrows)
{
    if (row0 > rows || nrows > rows - row0)
        return SB_EINVAL;
    const struct qnt_type *t = qnt_type_get(dt);
    if (!t || !(t->flags & QNT_T_MATVEC))
        return SB_EUNSUPPORTED;
    if (t->flags & QNT_T_VARLEN)   /* a row range needs the batched kernel */
        return t->matmul || (row0 == 0 && nrows == rows) ? SB_OK : SB_EUNSUPPORTED;
    return qnt_type_validate(dt, NULL, nbytes, rows, cols, qp);
}

/* ---- kernel selection ---------------------------------------------------- */

typedef void (*qnt_mm_fn)(const struct qnt_mm_args *a);

struct mv_isa {
    const char *name;
    qnt_mm_fn mm;
    int bf16dp;   /* bf16 weights meet bf16 activations (qnt_bf16mm_impl.h) */
};

static const struct mv_isa mv_isa_scalar = { "scalar", qnt_mm_scalar, 0 };
#ifdef QNT_MATVEC_HAVE_X86
static const struct mv_isa mv_isa_avx2 = { "avx2", qnt_mm_avx2, 0 };
static const struct mv_isa mv_isa_avx512 = { "avx512", qnt_mm_avx512, 0 };
static const struct mv_isa mv_isa_avx512bf16 = { "avx512bf16", qnt_mm_avx512, 1 };
#endif

static const struct mv_isa *mv_forced;   /* qnt_matvec_set_isa (tests) */
static bool mv_bf16_off;   /* qnt_matvec_bf16_activations(false), or SUBBIT_BF16_ACTIVATIONS=0 */
static pthread_once_t mv_bf16_once = PTHREAD_ONCE_INIT;

static void bf16_env(void)
{
    const char *e = getenv("SUBBIT_BF16_ACTIVATIONS");
    if (e && strcmp(e, "0") == 0)
        __atomic_store_n(&mv_bf16_off, true, __ATOMIC_RELEASE);
}

static bool bf16_off(void)
{
    pthread_once(&mv_bf16_once, bf16_env);
    return __atomic_load_n(&mv_bf16_off, __ATOMIC_ACQUIRE);
}

bool qnt_matvec_bf16_activations(bool on)
{
    pthread_once(&mv_bf16_once, bf16_env);
    return !__atomic_exchange_n(&mv_bf16_off, !on, __ATOMIC_ACQ_REL);
}

/* The fast path this CPU runs (the probe's features; forcing the reference is
 * decided by the callers, before they get here). */
static const struct mv_isa *pick_isa(void)
{
    const struct mv_isa *f = __atomic_load_n(&mv_forced, __ATOMIC_ACQUIRE);
    if (f)
        return f;
#ifdef QNT_MATVEC_HAVE_X86
    const unsigned feat = sb_cpu_features();
    if ((feat & QNT_MATVEC_AVX512_FEATURES) == QNT_MATVEC_AVX512_FEATURES)
        return qnt_bf16mm_available() ? &mv_isa_avx512bf16 : &mv_isa_avx512;
    if ((feat & QNT_MATVEC_AVX2_FEATURES) == QNT_MATVEC_AVX2_FEATURES)
        return &mv_isa_avx2;
#endif
    return &mv_isa_scalar;
}

int qnt_matvec_set_isa(const char *name)
{
    const struct mv_isa *f = NULL;
    if (!name) {
        __atomic_store_n(&mv_forced, f, __ATOMIC_RELEASE);
        return 0;
    }
    if (strcmp(name, "scalar") == 0)
        f = &mv_isa_scalar;
#ifdef QNT_MATVEC_HAVE_X86
    else if (strcmp(name, "avx2") == 0 &&
             (sb_cpu_features() & QNT_MATVEC_AVX2_FEATURES) == QNT_MATVEC_AVX2_FEATURES)
        f = &mv_isa_avx2;
    else if (strcmp(name, "avx512") == 0 &&
             (sb_cpu_features() & QNT_MATVEC_AVX512_FEATURES) == QNT_MATVEC_AVX512_FEATURES)
        f = &mv_isa_avx512;
    else if (strcmp(name, "avx512bf16") == 0 &&
             (sb_cpu_features() & QNT_MATVEC_AVX512_FEATURES) == QNT_MATVEC_AVX512_FEATURES &&
             qnt_bf16mm_available())
        f = &mv_isa_avx512bf16;
#endif
    if (!f)
        return -1;
    __atomic_store_n(&mv_forced, f, __ATOMIC_RELEASE);
    return 0;
}

const char *qnt_matvec_fast_name(void)
{
    if (sb_cpu_ref())
        return "ref";
    return pick_isa()->name;
}

/* ---- the blocked kernel in scalar lanes (8, like AVX2) -------------------- */

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

struct mv_v8 {
    float v[8];
};

static inline struct mv_v8 mv8_zero(void)
{
    struct mv_v8 r = { { 0 } };
    return r;
}

static inline struct mv_v8 mv8_loadf(const uint8_t *p)
{
    struct mv_v8 r;
    memcpy(r.v, p, sizeof r.v);
    return r;
}

static inline struct mv_v8 mv8_fma(struct mv_v8 a, struct mv_v8 b, struct mv_v8 c)
{
    for (int l = 0; l < 8; l++)
        c.v[l] += a.v[l] * b.v[l];   /* two roundings, the same at every call */
    return c;
}

static inline struct mv_v8 mv8_add(struct mv_v8 a, struct mv_v8 b)
{
    for (int l = 0; l < 8; l++)
        a.v[l] += b.v[l];
    return a;
}

static inline struct mv_v8 mv8_mul(struct mv_v8 a, struct mv_v8 b)
{
    for (int l = 0; l < 8; l++)
        a.v[l] *= b.v[l];
    return a;
}

static inline struct mv_v8 mv8_set1(float f)
{
    struct mv_v8 r;
    for (int l = 0; l < 8; l++)
        r.v[l] = f;
    return r;
}

static inline struct mv_v8 mv8_bf16(const uint8_t *p)
{
    struct mv_v8 r;
    for (int l = 0; l < 8; l++)
        r.v[l] = qnt_bf16_to_f32_ref(rd16(p + 2 * l));
    return r;
}

static inline struct mv_v8 mv8_f16(const uint8_t *p)
{
    struct mv_v8 r;
    for (int l = 0; l < 8; l++)
        r.v[l] = qnt_f16_to_f32_ref(rd16(p + 2 * l));
    return r;
}

static inline struct mv_v8 mv8_i8(const uint8_t *p)
{
    struct mv_v8 r;
    for (int l = 0; l < 8; l++)
        r.v[l] = (float)(int8_t)p[l];
    return r;
}

static inline float mv8_hsum(struct mv_v8 s)
{
    const float *v = s.v;
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

static inline void mv8_storef(float *p, struct mv_v8 v)
{
    memcpy(p, v.v, sizeof v.v);
}

#define MV_TARGET
#define MV_NAME(x) x##_scalar
#define V struct mv_v8
#define VL 8
#define V_ZERO() mv8_zero()
#define V_LOADF(p) mv8_loadf(p)
#define V_STOREF(p, v) mv8_storef((p), (v))
#define V_FMA(a, b, c) mv8_fma((a), (b), (c))
#define V_ADD(a, b) mv8_add((a), (b))
#define V_MUL(a, b) mv8_mul((a), (b))
#define V_SET1(f) mv8_set1(f)
#define V_BF16(p) mv8_bf16(p)
#define V_F16(p) mv8_f16(p)
#define V_I8(p) mv8_i8(p)
#define V_HSUM(v) mv8_hsum(v)
#define MV_F16S(p) qnt_f16_to_f32_ref(rd16(p))

#include "qnt_matvec_tile_impl.h"

static double dot_f64(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

/* ---- reference: one output row against up to QNT_TB inputs ---------- */

static void row_ref(const struct qnt_type *t, const void *w, size_t rows, size_t cols,
                    const struct sb_qparams *qp, size_t rb, size_t r, const float *X, size_t nt,
                    double *acc)
{
    float buf[QNT_CH];
    for (size_t k = 0; k < nt; k++)
        acc[k] = 0.0;
    for (size_t j0 = 0; j0 < cols; j0 += QNT_CH) {
        const size_t len = cols - j0 < QNT_CH ? cols - j0 : QNT_CH;
        decode_chunk(t, w, rows, cols, qp, rb, r, j0, len, buf, 0);
        for (size_t k = 0; k < nt; k++)
            acc[k] += dot_f64(buf, X + k * cols + j0, len);
    }
}

/* qnt_mm_decode_fn for every encoding: exact f32 of row r, j0 .. j0+len-1. */
static void mm_decode(const struct qnt_mm_args *a, size_t r, size_t j0, size_t len, float *out)
{
    decode_chunk(qnt_type_get(a->dt), a->w, a->rows, a->cols, a->qp, a->row_bytes, r, j0, len,
                 out, 1);
}

/* ---- public entry points ------------------------------------------------- */

/* What the fast path and the reference share: a batched kernel, or a fused
 * kernel for the whole tensor. 1 when it handled the call (or when nothing
 * can: a variable-length encoding reaches the blocked kernel never). */
static int matmul_special(const struct qnt_type *t, int ref, const void *w, uint64_t nbytes,
                          size_t rows, size_t cols, size_t row0, size_t nrows, const float *X,
                          size_t n, float *Y)
{
    qnt_matmul_fn *mm = ref ? t->matmul_ref : t->matmul;
    if (mm) {
        mm(w, nbytes, rows, cols, row0, nrows, X, n, Y);
        return 1;
    }
    qnt_matvec_fn *mv = ref ? t->matvec_ref : t->matvec;
    if (mv && row0 == 0 && nrows == rows) {
        /* the fused kernel; Y is [n, rows], one call per input vector */
        for (size_t k = 0; k < n; k++)
            mv(w, nbytes, rows, cols, X + k * cols, Y + k * rows);
        return 1;
    }
    return (t->flags & QNT_T_VARLEN) != 0;   /* refused by qnt_matvec_check */
}

void qnt_matmul_rows(enum sb_dtype dt, const void *w, uint64_t nbytes,
                     const struct sb_qparams *qp, size_t rows, size_t cols, size_t row0,
                     size_t nrows, const float *X, size_t n, float *Y)
{
    if (sb_cpu_ref()) {
        qnt_matmul_rows_ref(dt, w, nbytes, qp, rows, cols, row0, nrows, X, n, Y);
        return;
    }
    const struct qnt_type *t = qnt_type_get(dt);
    if (!t || matmul_special(t, 0, w, nbytes, rows, cols, row0, nrows, X, n, Y))
        return;   /* no kernel: refused by qnt_matvec_check */
    const struct mv_isa *isa = pick_isa();
    if (dt == SB_DTYPE_BF16 && isa->bf16dp && !bf16_off() &&
        cols % QNT_BF16MM_QK == 0 &&
        qnt_bf16mm_rows(QNT_BF16MM_AVX512BF16, w, cols, row0, nrows, X, n, Y) == 0)
        return;
    struct qnt_mm_args a;
    memset(&a, 0, sizeof a);
    a.w = w;
    a.rows = rows;
    a.cols = cols;
    a.row0 = row0;
    a.nrows = nrows;
    a.X = X;
    a.n = n;
    a.Y = Y;
    a.decode = mm_decode;
    a.dt = dt;
    a.qp = qp;
    a.row_bytes = qnt_type_row_bytes(dt, cols, qp);
    a.enc = QNT_MM_DECODE;
    if (t->mm_prepare)
        t->mm_prepare(&a);
    isa->mm(&a);
}

void qnt_matmul_rows_ref(enum sb_dtype dt, const void *w, uint64_t nbytes,
                         const struct sb_qparams *qp, size_t rows, size_t cols, size_t row0,
                         size_t nrows, const float *X, size_t n, float *Y)
{
    const struct qnt_type *t = qnt_type_get(dt);
    if (!t || matmul_special(t, 1, w, nbytes, rows, cols, row0, nrows, X, n, Y))
        return;
    const size_t rb = qnt_type_row_bytes(dt, cols, qp);
    for (size_t i = 0; i < nrows; i++) {
        double acc[QNT_TB];
        for (size_t t0 = 0; t0 < n; t0 += QNT_TB) {
            const size_t nt = n - t0 < QNT_TB ? n - t0 : QNT_TB;
            row_ref(t, w, rows, cols, qp, rb, row0 + i, X + t0 * cols, nt, acc);
            for (size_t k = 0; k < nt; k++)
                Y[(t0 + k) * nrows + i] = (float)acc[k];
        }
    }
}

static int mv_repack = -1;   /* SUBBIT_REPACK=0 turns the packing off */
static pthread_once_t mv_repack_once = PTHREAD_ONCE_INIT;

static void repack_env(void)
{
    const char *e = getenv("SUBBIT_REPACK");
    __atomic_store_n(&mv_repack, e && strcmp(e, "0") == 0 ? 0 : 1, __ATOMIC_RELEASE);
}

/* f32, f16 and bf16 rows are read in place by the blocked kernel: their pack
 * is a copy of the rows (in the caller's memory, e.g. the core's arena in
 * huge pages, rather than the file's mapping in 4 KiB pages of page cache) */
static bool pack_dense(enum sb_dtype dt)
{
    return dt == SB_DTYPE_F32 || dt == SB_DTYPE_F16 || dt == SB_DTYPE_BF16;
}

uint64_t qnt_matmul_pack_bytes(enum sb_dtype dt, size_t cols, size_t nrows)
{
    pthread_once(&mv_repack_once, repack_env);
    if (sb_cpu_ref() || !nrows || !__atomic_load_n(&mv_repack, __ATOMIC_ACQUIRE))
        return 0;
    if (pack_dense(dt)) {
        const struct sb_qparams qp = { 0 };
        const size_t rb = qnt_type_row_bytes(dt, cols, &qp);
        return rb && nrows <= UINT64_MAX / rb ? (uint64_t)nrows * rb : 0;
    }
    if ((dt != SB_DTYPE_Q8_0 && dt != SB_DTYPE_Q4_0) || !qnt_q8mm_pack_available(cols))
        return 0;
    return qnt_q8mm_packed_bytes(dt == SB_DTYPE_Q4_0, nrows, cols);
}

int qnt_matmul_pack_into(enum sb_dtype dt, const void *w, const struct sb_qparams *qp,
                         size_t cols, size_t row0, size_t nrows, void *out)
{
    const uint64_t nb = qnt_matmul_pack_bytes(dt, cols, nrows);
    if (!nb || nb > SIZE_MAX)
        return -1;
    const size_t rb = qnt_type_row_bytes(dt, cols, qp);
    if (pack_dense(dt)) {
        memcpy(out, (const uint8_t *)w + row0 * rb, (size_t)nb);
        return 0;
    }
    return qnt_q8mm_pack(dt == SB_DTYPE_Q4_0, (const uint8_t *)w + row0 * rb, rb, nrows, cols, out);
}

int qnt_matmul_packed(enum sb_dtype dt, const void *pack, size_t cols, size_t nrows,
                      const float *X, size_t n, float *Y)
{
    if (sb_cpu_ref())
        return -1;
    if (pack_dense(dt)) {
        const struct sb_qparams qp = { 0 };
        qnt_matmul_rows(dt, pack, (uint64_t)nrows * qnt_type_row_bytes(dt, cols, &qp), &qp, nrows,
                        cols, 0, nrows, X, n, Y);
        return 0;
    }
    if (dt != SB_DTYPE_Q8_0 && dt != SB_DTYPE_Q4_0)
        return -1;
    return qnt_q8mm_packed_rows(dt == SB_DTYPE_Q4_0, pack, nrows, cols, X, n, Y);
}

void qnt_matmul(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                size_t rows, size_t cols, const float *X, size_t n, float *Y)
{
    qnt_matmul_rows(dt, w, nbytes, qp, rows, cols, 0, rows, X, n, Y);
}

void qnt_matmul_ref(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                    size_t rows, size_t cols, const float *X, size_t n, float *Y)
{
    qnt_matmul_rows_ref(dt, w, nbytes, qp, rows, cols, 0, rows, X, n, Y);
}

void qnt_matvec(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                size_t rows, size_t cols, const float *x, float *y)
{
    qnt_matmul_rows(dt, w, nbytes, qp, rows, cols, 0, rows, x, 1, y);
}

void qnt_matvec_ref(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                    size_t rows, size_t cols, const float *x, float *y)
{
    qnt_matmul_rows_ref(dt, w, nbytes, qp, rows, cols, 0, rows, x, 1, y);
}

void qnt_matvec_get_row(enum sb_dtype dt, const void *w, uint64_t nbytes,
                        const struct sb_qparams *qp, size_t rows, size_t cols, size_t r,
                        float *dst)
{
    const struct qnt_type *t = qnt_type_get(dt);
    if (!t)
        return;
    if (t->flags & QNT_T_VARLEN) {
        t->dequantize_rows(w, nbytes, rows, cols, qp, r, 1, dst);
        return;
    }
    const size_t rb = qnt_type_row_bytes(dt, cols, qp);
    for (size_t j0 = 0; j0 < cols; j0 += QNT_CH) {
        const size_t len = cols - j0 < QNT_CH ? cols - j0 : QNT_CH;
        decode_chunk(t, w, rows, cols, qp, rb, r, j0, len, dst + j0, 0);
    }
}
