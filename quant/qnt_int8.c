/* qnt_int8.c: symmetric int8 with f32/f16 scales per row or group (rules:
 * qnt_int8.h). Knows the blob layout, not files. */
#include "qnt_int8.h"
#include "qnt_cast.h"
#include "qnt_matvec_impl.h"

#include <math.h>
#include <string.h>

size_t qnt_int8_groups(size_t cols, const struct sb_qparams *qp)
{
    const size_t g = qp ? qp->group : 0;
    return (g == 0 || cols == 0) ? 1 : (cols + g - 1) / g;
}

static int f16_scales(const struct sb_qparams *qp)
{
    return qp && qp->scale_dtype == SB_DTYPE_F16;
}

/* elements per scale */
static size_t group_len(size_t cols, const struct sb_qparams *qp)
{
    return (qp && qp->group) ? qp->group : (cols ? cols : 1);
}

/* scale gi of a row's scales sc (unaligned) */
static float scale_at(const unsigned char *sc, size_t gi, int f16)
{
    if (f16) {
        uint16_t h;
        memcpy(&h, sc + 2 * gi, 2);
        return qnt_f16_to_f32_ref(h);
    }
    float s;
    memcpy(&s, sc + 4 * gi, 4);
    return s;
}

/* One row: codes q[cols], scales sc (groups entries, unaligned) */
static void quant_row(const float *restrict x, size_t cols, size_t glen, int f16,
                      int8_t *restrict q, unsigned char *restrict sc)
{
    for (size_t g0 = 0, gi = 0; g0 < cols; g0 += glen, gi++) {
        const size_t g1 = g0 + glen < cols ? g0 + glen : cols;
        float amax = 0.0f;
        for (size_t j = g0; j < g1; j++)
            amax = fmaxf(amax, fabsf(x[j]));    /* fmaxf ignores NaN */
        float s = amax / 127.0f;
        if (f16) {
            uint16_t h = qnt_f32_to_f16_ref(s);
            if ((h & 0x7FFF) > 0x7BFF)          /* inf: cap at the largest finite, 65504 */
                h = 0x7BFF;
            s = qnt_f16_to_f32_ref(h);
            memcpy(sc + 2 * gi, &h, 2);
        } else
            memcpy(sc + 4 * gi, &s, 4);
        for (size_t j = g0; j < g1; j++) {
            float v = s != 0.0f ? roundf(x[j] / s) : 0.0f;
            if (!(fabsf(v) <= 127.0f))          /* clamp; NaN (x NaN, or inf/inf) -> 0 */
                v = v > 0.0f ? 127.0f : v < 0.0f ? -127.0f : 0.0f;
            q[j] = (int8_t)v;
        }
    }
}

void qnt_int8_quantize_range(const float *restrict x, size_t row0, size_t nrows, size_t rows,
                             size_t cols, const struct sb_qparams *qp, void *restrict blob)
{
    const size_t groups = qnt_int8_groups(cols, qp);
    const size_t glen = group_len(cols, qp);
    const int f16 = f16_scales(qp);
    const size_t sbytes = f16 ? 2 : 4;
    int8_t *codes = (int8_t *)blob + row0 * cols;
    unsigned char *scales = (unsigned char *)blob + rows * cols + row0 * groups * sbytes;
    if (cols == 0) {                              /* one (zero) scale a row, no codes */
        memset(scales, 0, nrows * sbytes);
        return;
    }
    const long n = (long)nrows;
#pragma omp parallel for schedule(static) if (nrows * cols >= 65536)
    for (long r = 0; r < n; r++)
        quant_row(x + (size_t)r * cols, cols, glen, f16, codes + (size_t)r * cols,
                  scales + (size_t)r * groups * sbytes);
}

void qnt_int8_quantize_rows(const float *restrict x, size_t rows, size_t cols,
                            const struct sb_qparams *qp, void *restrict dst)
{
    qnt_int8_quantize_range(x, 0, rows, rows, cols, qp, dst);
}

void qnt_int8_dequantize_rows(const void *restrict blob, size_t rows, size_t cols,
                              const struct sb_qparams *qp, size_t row0, size_t nrows,
                              float *restrict dst)
{
    const size_t groups = qnt_int8_groups(cols, qp);
    const size_t glen = group_len(cols, qp);
    const int f16 = f16_scales(qp);
    const size_t sbytes = f16 ? 2 : 4;
    const int8_t *codes = blob;
    const unsigned char *scales = (const unsigned char *)blob + rows * cols;
    for (size_t r = row0; r < row0 + nrows; r++) {
        const int8_t *q = codes + r * cols;
        const unsigned char *sc = scales + r * groups * sbytes;
        float *y = dst + (r - row0) * cols;
        for (size_t g0 = 0, gi = 0; g0 < cols; g0 += glen, gi++) {
            const size_t g1 = g0 + glen < cols ? g0 + glen : cols;
            const float s = scale_at(sc, gi, f16);
            for (size_t j = g0; j < g1; j++)
                y[j] = (float)q[j] * s;
        }
    }
}

void qnt_int8_dequantize_range(const void *restrict blob, uint64_t nbytes, size_t rows,
                               size_t cols, const struct sb_qparams *qp, size_t row0,
                               size_t nrows, float *restrict dst)
{
    (void)nbytes;
    qnt_int8_dequantize_rows(blob, rows, cols, qp, row0, nrows, dst);
}

void qnt_int8_decode(const void *restrict blob, size_t rows, size_t cols,
                     const struct sb_qparams *qp, size_t r, size_t j0, size_t len,
                     float *restrict out)
{
    const size_t groups = qnt_int8_groups(cols, qp);
    const size_t glen = group_len(cols, qp);
    const int f16 = f16_scales(qp);
    const int8_t *q = (const int8_t *)blob + r * cols;
    const unsigned char *sc = (const unsigned char *)blob + rows * cols + r * groups * (f16 ? 2 : 4);
    for (size_t i = 0; i < len; i++)
        out[i] = (float)q[j0 + i] * scale_at(sc, (j0 + i) / glen, f16);
}

void qnt_int8_mm_prepare(struct qnt_mm_args *a)
{
    const size_t glen = group_len(a->cols, a->qp);
    const int f16 = f16_scales(a->qp);
    a->enc = QNT_MM_DECODE;
    if (glen % 16)
        return;                 /* a group would split a vector of 8 or 16: decode */
    a->enc = f16 ? QNT_MM_I8_F16 : QNT_MM_I8_F32;
    a->row_bytes = a->cols;
    a->group = glen;
    a->scales = a->w + a->rows * a->cols;
    a->scale_row_bytes = qnt_int8_groups(a->cols, a->qp) * (f16 ? 2 : 4);
}
