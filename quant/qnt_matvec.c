/* qnt_matvec.c: matvec / matmul over weights in their stored encoding
 * (qnt_matvec.h). Knows each encoding's element layout (formats.md §2.5 for
 * the ggml blocks, qnt_tern.h for tern, sb_dtype.h for int8); leaves sub1 and
 * sub1-qmoe to their own decoders and fused kernels.
 *
 * _ref: a row is cut into chunks of QNT_CH elements; each chunk is decoded to
 * f32 on the stack and dotted with the matching slice of each input vector,
 * in double. The fast path is the blocked kernel of qnt_matvec_tile_impl.h
 * (summation order: qnt_matvec_impl.h), picked once per process: AVX-512F,
 * AVX2+FMA+F16C, or the scalar-lane instance compiled here. */
#include "qnt_matvec.h"

#include <stdlib.h>
#include <string.h>

#include "qnt_cast.h"
#include "qnt_matvec_impl.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "qnt_tmm_impl.h"
#include "sb_err.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define QNT_CH 256   /* elements per chunk: a multiple of every block size (32, 256) */
#define QNT_TB 8     /* input vectors handled per pass over a row */

/* ---- element layout ---------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static float rd_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* int8: number of scale groups per row and the group width. */
static void int8_groups(const struct sb_qparams *qp, size_t cols, size_t *groups, size_t *g)
{
    size_t gw = (qp && qp->group) ? qp->group : cols;
    if (gw == 0)
        gw = 1;
    *g = gw;
    *groups = cols == 0 ? 1 : (cols + gw - 1) / gw;
}

static size_t int8_scale_bytes(const struct sb_qparams *qp)
{
    return (qp && qp->scale_dtype == SB_DTYPE_F16) ? 2 : 4;
}

/* Bytes of one row for the fixed-size encodings, 0 for others. */
static size_t row_bytes(enum sb_dtype dt, size_t cols)
{
    switch (dt) {
    case SB_DTYPE_F32: return cols * 4;
    case SB_DTYPE_F16:
    case SB_DTYPE_BF16: return cols * 2;
    case SB_DTYPE_Q8_0: return cols / 32 * 34;
    case SB_DTYPE_Q4_0: return cols / 32 * 18;
    case SB_DTYPE_TQ1_0: return cols / 256 * 54;
    case SB_DTYPE_TQ2_0: return cols / 256 * 66;
    case SB_DTYPE_TERN: return qnt_tern_row_bytes(cols);
    default: return 0;
    }
}

/* Where a row lives: its bytes, and for int8 its scales. */
struct row_at {
    const uint8_t *p;
    const uint8_t *scales;
};

static struct row_at locate_row(enum sb_dtype dt, const void *w, const struct sb_qparams *qp,
                                size_t rows, size_t cols, size_t r)
{
    struct row_at at = { 0, 0 };
    const uint8_t *b = w;
    if (dt == SB_DTYPE_INT8) {
        size_t groups, g;
        int8_groups(qp, cols, &groups, &g);
        at.p = b + r * cols;
        at.scales = b + rows * cols + r * groups * int8_scale_bytes(qp);
    } else {
        at.p = b + r * row_bytes(dt, cols);
    }
    return at;
}

/* TQ1_0: trit n of a packed byte (formats.md §2.5). */
static int tq1_trit(uint8_t byte, unsigned n)
{
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    uint8_t w = (uint8_t)(byte * pow3[n]);
    return (int)(((uint16_t)w * 3) >> 8);
}

/* Decode elements j0 .. j0+len-1 of a row into out; j0 is a multiple of
 * QNT_CH (hence of every block size). fast picks the array casts. */
static void decode_chunk(enum sb_dtype dt, const struct sb_qparams *qp, size_t cols,
                         struct row_at at, size_t j0, size_t len, float *out, int fast)
{
    const uint8_t *p = at.p;
    switch (dt) {
    case SB_DTYPE_F32:
        memcpy(out, p + j0 * 4, len * 4);
        break;
    case SB_DTYPE_F16: {
        uint16_t h[QNT_CH];
        memcpy(h, p + j0 * 2, len * 2);
        if (fast)
            qnt_f16_to_f32(h, out, len);
        else
            qnt_f16_to_f32_array_ref(h, out, len);
        break;
    }
    case SB_DTYPE_BF16: {
        uint16_t h[QNT_CH];
        memcpy(h, p + j0 * 2, len * 2);
        qnt_bf16_to_f32_array_ref(h, out, len);   /* exact: a shift */
        break;
    }
    case SB_DTYPE_Q8_0:
        for (size_t b = 0; b < len / 32; b++) {
            const uint8_t *blk = p + (j0 / 32 + b) * 34;
            const float d = qnt_f16_to_f32_ref(rd16(blk));
            for (int e = 0; e < 32; e++)
                out[b * 32 + e] = (float)(int8_t)blk[2 + e] * d;
        }
        break;
    case SB_DTYPE_Q4_0:
        for (size_t b = 0; b < len / 32; b++) {
            const uint8_t *blk = p + (j0 / 32 + b) * 18;
            const float d = qnt_f16_to_f32_ref(rd16(blk));
            for (int e = 0; e < 16; e++) {
                out[b * 32 + e] = (float)((blk[2 + e] & 0x0F) - 8) * d;
                out[b * 32 + e + 16] = (float)((blk[2 + e] >> 4) - 8) * d;
            }
        }
        break;
    case SB_DTYPE_TQ2_0:
        for (size_t b = 0; b < len / 256; b++) {
            const uint8_t *blk = p + (j0 / 256 + b) * 66;
            const float d = qnt_f16_to_f32_ref(rd16(blk + 64));
            for (int e = 0; e < 256; e++) {
                int c = e / 128, r = e % 128, l = r / 32, k = r % 32;
                int t = (blk[32 * c + k] >> (2 * l)) & 3;
                out[b * 256 + e] = (float)(t - 1) * d;
            }
        }
        break;
    case SB_DTYPE_TQ1_0:
        for (size_t b = 0; b < len / 256; b++) {
            const uint8_t *blk = p + (j0 / 256 + b) * 54;
            const float d = qnt_f16_to_f32_ref(rd16(blk + 52));
            for (int e = 0; e < 256; e++) {
                int t;
                if (e < 160)
                    t = tq1_trit(blk[e % 32], (unsigned)(e / 32));
                else if (e < 240)
                    t = tq1_trit(blk[32 + (e - 160) % 16], (unsigned)((e - 160) / 16));
                else
                    t = tq1_trit(blk[48 + (e - 240) % 4], (unsigned)((e - 240) / 4));
                out[b * 256 + e] = (float)(t - 1) * d;
            }
        }
        break;
    case SB_DTYPE_INT8: {
        size_t groups, g;
        int8_groups(qp, cols, &groups, &g);
        const int f16 = int8_scale_bytes(qp) == 2;
        for (size_t i = 0; i < len; i++) {
            size_t j = j0 + i, gi = j / g;
            float s = f16 ? qnt_f16_to_f32_ref(rd16(at.scales + gi * 2))
                          : rd_f32(at.scales + gi * 4);
            out[i] = (float)(int8_t)p[j] * s;
        }
        break;
    }
    case SB_DTYPE_TERN: {
        const float lo = qnt_tern_bf16_to_f32(rd16(p)), hi = qnt_tern_bf16_to_f32(rd16(p + 2));
        const uint8_t *sym = p + QNT_TERN_ROW_HDR;
        for (size_t i = 0; i < len; i++) {
            size_t j = j0 + i;
            int s = (sym[j / 4] >> (2 * (j % 4))) & 3;
            out[i] = s == 1 ? lo : s == 2 ? hi : 0.0f;
        }
        break;
    }
    default:
        memset(out, 0, len * sizeof *out);
        break;
    }
}

/* ---- checks -------------------------------------------------------------- */

int qnt_matvec_check(enum sb_dtype dt, uint64_t nbytes, const struct sb_qparams *qp, size_t rows,
                     size_t cols, size_t row0, size_t nrows)
{
    if (row0 > rows || nrows > rows - row0)
        return SB_EINVAL;
    switch (dt) {
    case SB_DTYPE_F32: case SB_DTYPE_F16: case SB_DTYPE_BF16: case SB_DTYPE_Q8_0:
    case SB_DTYPE_Q4_0: case SB_DTYPE_TQ1_0: case SB_DTYPE_TQ2_0: case SB_DTYPE_INT8:
    case SB_DTYPE_TERN: {
        const struct sb_dtype_info *d = sb_dtype_get(dt);
        if (d->blck > 1 && cols % d->blck)
            return SB_EFORMAT;
        int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
        uint64_t need;
        if (sb_dtype_nbytes(dt, shape, 2, qp, &need) != SB_OK || need > nbytes)
            return SB_EFORMAT;
        return SB_OK;
    }
    case SB_DTYPE_SUB1:
    case SB_DTYPE_SUB1_QMOE:
        return SB_OK;
    default:
        return SB_EUNSUPPORTED;
    }
}

/* ---- kernel selection ---------------------------------------------------- */

typedef void (*qnt_mm_fn)(const struct qnt_mm_args *a);

struct mv_isa {
    const char *name;
    qnt_mm_fn mm;
    qnt_dot_fn dot;
};

static const struct mv_isa mv_isa_scalar = { "scalar", qnt_mm_scalar, qnt_dot_f32_scalar };
#ifdef QNT_MATVEC_HAVE_X86
static const struct mv_isa mv_isa_avx2 = { "avx2", qnt_mm_avx2, qnt_dot_f32_avx2 };
static const struct mv_isa mv_isa_avx512 = { "avx512", qnt_mm_avx512, qnt_dot_f32_avx2 };
#endif

static const struct mv_isa *mv_forced;   /* qnt_matvec_set_isa (tests) */

static const struct mv_isa *pick_isa(void)
{
    static const struct mv_isa *picked;
    const struct mv_isa *f = __atomic_load_n(&mv_forced, __ATOMIC_ACQUIRE);
    if (f)
        return f;
    f = __atomic_load_n(&picked, __ATOMIC_ACQUIRE);
    if (!f) {
        f = &mv_isa_scalar;
#ifdef QNT_MATVEC_HAVE_X86
        if (qnt_matvec_cpu_has_avx512())
            f = &mv_isa_avx512;
        else if (qnt_matvec_cpu_has_avx2())
            f = &mv_isa_avx2;
#endif
        __atomic_store_n(&picked, f, __ATOMIC_RELEASE);
    }
    return f;
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
    else if (strcmp(name, "avx2") == 0 && qnt_matvec_cpu_has_avx2())
        f = &mv_isa_avx2;
    else if (strcmp(name, "avx512") == 0 && qnt_matvec_cpu_has_avx512())
        f = &mv_isa_avx512;
#endif
    if (!f)
        return -1;
    __atomic_store_n(&mv_forced, f, __ATOMIC_RELEASE);
    return 0;
}

const char *qnt_matvec_fast_name(void)
{
    if (qnt_ref_kernels_forced())
        return "ref";
    return pick_isa()->name;
}

/* Plain float dot in 8 lanes, then a fixed tree and a scalar tail; used by
 * the variable-length row-range path where AVX2 is absent. */
float qnt_dot_f32_scalar(const float *a, const float *b, size_t n)
{
    float s[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[i + l] * b[i + l];
    float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

/* ---- the blocked kernel in scalar lanes (8, like AVX2) -------------------- */

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

static void row_ref(enum sb_dtype dt, const struct sb_qparams *qp, size_t cols, struct row_at at,
                    const float *X, size_t nt, double *acc)
{
    float buf[QNT_CH];
    for (size_t t = 0; t < nt; t++)
        acc[t] = 0.0;
    for (size_t j0 = 0; j0 < cols; j0 += QNT_CH) {
        const size_t len = cols - j0 < QNT_CH ? cols - j0 : QNT_CH;
        decode_chunk(dt, qp, cols, at, j0, len, buf, 0);
        for (size_t t = 0; t < nt; t++)
            acc[t] += dot_f64(buf, X + t * cols + j0, len);
    }
}

/* ---- variable-length encodings ----------------------------------------- */

static void varlen_dequant_row(enum sb_dtype dt, const void *w, uint64_t nbytes, size_t cols,
                               size_t r, float *dst)
{
    if (dt == SB_DTYPE_SUB1)
        qnt_sub1_dequantize_rows(w, nbytes, cols, r, 1, dst);
    else
        qnt_qmoe_dequantize_rows(w, nbytes, cols, r, 1, dst);
}

/* qnt_mm_decode_fn for every encoding: exact f32 of row r, j0 .. j0+len-1. */
static void mm_decode(const struct qnt_mm_args *a, size_t r, size_t j0, size_t len, float *out)
{
    const struct row_at at = locate_row(a->dt, a->w, a->qp, a->rows, a->cols, r);
    decode_chunk(a->dt, a->qp, a->cols, at, j0, len, out, 1);
}

/* ---- public entry points ------------------------------------------------- */

void qnt_matmul_rows(enum sb_dtype dt, const void *w, uint64_t nbytes,
                     const struct sb_qparams *qp, size_t rows, size_t cols, size_t row0,
                     size_t nrows, const float *X, size_t n, float *Y)
{
    if (qnt_ref_kernels_forced()) {
        qnt_matmul_rows_ref(dt, w, nbytes, qp, rows, cols, row0, nrows, X, n, Y);
        return;
    }
    if (dt == SB_DTYPE_SUB1 || dt == SB_DTYPE_SUB1_QMOE || dt == SB_DTYPE_TERN) {
        qnt_ternary_matmul(dt, w, nbytes, rows, cols, row0, nrows, X, n, Y, 0);
        return;
    }
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
    a.row_bytes = row_bytes(dt, cols);
    switch (dt) {
    case SB_DTYPE_F32: a.enc = QNT_MM_F32; break;
    case SB_DTYPE_BF16: a.enc = QNT_MM_BF16; break;
    case SB_DTYPE_F16: a.enc = QNT_MM_F16; break;
    case SB_DTYPE_Q8_0: a.enc = QNT_MM_Q8_0; break;
    case SB_DTYPE_INT8: {
        size_t groups, g;
        int8_groups(qp, cols, &groups, &g);
        a.enc = QNT_MM_DECODE;
        if (g % 16 == 0) {   /* a group never splits a vector of 8 or 16 */
            a.enc = int8_scale_bytes(qp) == 2 ? QNT_MM_I8_F16 : QNT_MM_I8_F32;
            a.row_bytes = cols;
            a.group = g;
            a.scales = (const uint8_t *)w + rows * cols;
            a.scale_row_bytes = groups * int8_scale_bytes(qp);
        }
        break;
    }
    default: a.enc = QNT_MM_DECODE; break;
    }
    pick_isa()->mm(&a);
}

void qnt_matmul_rows_ref(enum sb_dtype dt, const void *w, uint64_t nbytes,
                         const struct sb_qparams *qp, size_t rows, size_t cols, size_t row0,
                         size_t nrows, const float *X, size_t n, float *Y)
{
    if (dt == SB_DTYPE_SUB1 || dt == SB_DTYPE_SUB1_QMOE || dt == SB_DTYPE_TERN) {
        qnt_ternary_matmul(dt, w, nbytes, rows, cols, row0, nrows, X, n, Y, 1);
        return;
    }
    for (size_t i = 0; i < nrows; i++) {
        const struct row_at at = locate_row(dt, w, qp, rows, cols, row0 + i);
        double acc[QNT_TB];
        for (size_t t0 = 0; t0 < n; t0 += QNT_TB) {
            const size_t nt = n - t0 < QNT_TB ? n - t0 : QNT_TB;
            row_ref(dt, qp, cols, at, X + t0 * cols, nt, acc);
            for (size_t t = 0; t < nt; t++)
                Y[(t0 + t) * nrows + i] = (float)acc[t];
        }
    }
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
    if (dt == SB_DTYPE_SUB1 || dt == SB_DTYPE_SUB1_QMOE) {
        varlen_dequant_row(dt, w, nbytes, cols, r, dst);
        return;
    }
    const struct row_at at = locate_row(dt, w, qp, rows, cols, r);
    for (size_t j0 = 0; j0 < cols; j0 += QNT_CH) {
        const size_t len = cols - j0 < QNT_CH ? cols - j0 : QNT_CH;
        decode_chunk(dt, qp, cols, at, j0, len, dst + j0, 0);
    }
}
