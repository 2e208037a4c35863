/* qnt_encode.c: the encoding switch over the row kernels (qnt_cast, qnt_ggml,
 * qnt_int8, qnt_tern), parallel over blocks of rows. */
#include "qnt_encode.h"
#include "qnt_cast.h"
#include "qnt_ggml.h"
#include "qnt_int8.h"
#include "qnt_tern.h"
#include "sb_err.h"

#include <math.h>
#include <string.h>

/* rows per parallel chunk: about 64K elements, at least one row */
static size_t chunk_rows(size_t cols)
{
    const size_t c = cols ? 65536 / cols : 65536;
    return c ? c : 1;
}

/* ---- plain conversions ---- */

/* f64 -> f32 rounded to odd: truncate, then set the lsb if anything was lost.
 * Rounding that to f16/bf16 (RNE) equals rounding the f64 directly. */
static float f64_to_f32_odd(double d)
{
    float f = (float)d;
    if (d != d || (double)f == d)
        return f;
    if (fabs((double)f) > fabs(d))            /* RNE went up: step back toward zero */
        f = nextafterf(f, 0.0f);
    uint32_t u;
    memcpy(&u, &f, 4);
    u |= 1;
    memcpy(&f, &u, 4);
    return f;
}

static int plain(enum sb_dtype dt)
{
    return dt == SB_DTYPE_F32 || dt == SB_DTYPE_F16 || dt == SB_DTYPE_BF16 || dt == SB_DTYPE_F64;
}

static size_t plain_size(enum sb_dtype dt)
{
    return dt == SB_DTYPE_F64 ? 8 : dt == SB_DTYPE_F32 ? 4 : 2;
}

/* n <= 256 elements through an f32 buffer on the stack */
static void convert_small(enum sb_dtype from, const unsigned char *src, enum sb_dtype to,
                          unsigned char *dst, size_t n)
{
    float tmp[256];
    const int odd = from == SB_DTYPE_F64 && to != SB_DTYPE_F32;
    switch (from) {
    case SB_DTYPE_F32: memcpy(tmp, src, n * 4); break;
    case SB_DTYPE_F16: qnt_f16_to_f32((const uint16_t *)(const void *)src, tmp, n); break;
    case SB_DTYPE_BF16: qnt_bf16_to_f32((const uint16_t *)(const void *)src, tmp, n); break;
    default:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            tmp[i] = odd ? f64_to_f32_odd(d) : (float)d;
        }
        break;
    }
    switch (to) {
    case SB_DTYPE_F32: memcpy(dst, tmp, n * 4); break;
    case SB_DTYPE_F16: qnt_f32_to_f16(tmp, (uint16_t *)(void *)dst, n); break;
    case SB_DTYPE_BF16: qnt_f32_to_bf16(tmp, (uint16_t *)(void *)dst, n); break;
    default:
        for (size_t i = 0; i < n; i++) {
            double d = tmp[i];
            memcpy(dst + 8 * i, &d, 8);
        }
        break;
    }
}

int qnt_convert_plain(enum sb_dtype from, const void *src, enum sb_dtype to, void *dst, size_t n)
{
    if (!plain(from) || !plain(to))
        return SB_EUNSUPPORTED;
    const size_t fs = plain_size(from), ts = plain_size(to);
    if (from == to) {
        memcpy(dst, src, n * fs);
        return SB_OK;
    }
    const unsigned char *s = src;
    unsigned char *d = dst;
    /* direct kernels where one side is f32 (no staging copy) */
    if (from == SB_DTYPE_F32 && to == SB_DTYPE_F16)
        qnt_f32_to_f16(src, dst, n);
    else if (from == SB_DTYPE_F32 && to == SB_DTYPE_BF16)
        qnt_f32_to_bf16(src, dst, n);
    else if (from == SB_DTYPE_F16 && to == SB_DTYPE_F32)
        qnt_f16_to_f32(src, dst, n);
    else if (from == SB_DTYPE_BF16 && to == SB_DTYPE_F32)
        qnt_bf16_to_f32(src, dst, n);
    else
        for (size_t i = 0; i < n; i += 256)
            convert_small(from, s + i * fs, to, d + i * ts, n - i < 256 ? n - i : 256);
    return SB_OK;
}

/* ---- row kernels ---- */

static int block_type(enum sb_dtype dt)
{
    return dt == SB_DTYPE_Q8_0 || dt == SB_DTYPE_Q4_0 || dt == SB_DTYPE_TQ1_0 || dt == SB_DTYPE_TQ2_0;
}

/* rows [r0, r1) of a block or plain encoding: x + r0*cols -> dst row r0 */
static void quant_range(enum sb_dtype dt, const float *x, size_t cols, size_t row_bytes,
                        unsigned char *dst, size_t r0, size_t r1)
{
    const float *xr = x + r0 * cols;
    void *y = dst + r0 * row_bytes;
    const size_t n = (r1 - r0) * cols;
    switch (dt) {
    case SB_DTYPE_Q8_0: qnt_q8_0_quantize(xr, y, n); break;
    case SB_DTYPE_Q4_0: qnt_q4_0_quantize(xr, y, n); break;
    case SB_DTYPE_TQ1_0: qnt_tq1_0_quantize(xr, y, n); break;
    case SB_DTYPE_TQ2_0: qnt_tq2_0_quantize(xr, y, n); break;
    default: qnt_convert_plain(SB_DTYPE_F32, xr, dt, y, n); break;
    }
}

static void dequant_range(enum sb_dtype dt, const unsigned char *src, size_t cols,
                          size_t row_bytes, float *dst, size_t r0, size_t r1)
{
    const void *b = src + r0 * row_bytes;
    const size_t n = (r1 - r0) * cols;
    switch (dt) {
    case SB_DTYPE_Q8_0: qnt_q8_0_dequantize(b, dst, n); break;
    case SB_DTYPE_Q4_0: qnt_q4_0_dequantize(b, dst, n); break;
    case SB_DTYPE_TQ1_0: qnt_tq1_0_dequantize(b, dst, n); break;
    case SB_DTYPE_TQ2_0: qnt_tq2_0_dequantize(b, dst, n); break;
    default: qnt_convert_plain(dt, b, SB_DTYPE_F32, dst, n); break;
    }
}

/* bytes per row for block and plain encodings; 0 on a bad block multiple or overflow */
static size_t row_bytes_of(enum sb_dtype dt, size_t cols)
{
    const struct sb_dtype_info *d = sb_dtype_get(dt);
    size_t rb;
    if (cols % d->blck || __builtin_mul_overflow(cols / d->blck, (size_t)d->type_size, &rb))
        return 0;
    return rb ? rb : (cols ? 0 : 1);
}

int qnt_quantize_rows(enum sb_dtype dt, const float *restrict x, size_t rows, size_t cols,
                      const struct sb_qparams *qp, void *restrict dst)
{
    size_t n;
    if (__builtin_mul_overflow(rows, cols, &n))
        return SB_EINVAL;
    if (dt == SB_DTYPE_INT8) {
        qnt_int8_quantize_rows(x, rows, cols, qp, dst);
        return SB_OK;
    }
    if (dt == SB_DTYPE_TERN) {
        qnt_tern_quantize_rows(x, rows, cols, dst);
        return SB_OK;
    }
    if (!block_type(dt) && !plain(dt))
        return SB_EUNSUPPORTED;
    const size_t rb = row_bytes_of(dt, cols);
    if (!rb)
        return SB_EINVAL;
    if (cols == 0)
        return SB_OK;
    const size_t per = chunk_rows(cols);
    const long nchunk = (long)((rows + per - 1) / per);
#pragma omp parallel for schedule(static) if (nchunk > 1)
    for (long c = 0; c < nchunk; c++) {
        const size_t r0 = (size_t)c * per, r1 = r0 + per < rows ? r0 + per : rows;
        quant_range(dt, x, cols, rb, dst, r0, r1);
    }
    return SB_OK;
}

int qnt_dequantize_rows(enum sb_dtype dt, const void *restrict src, size_t rows, size_t cols,
                        const struct sb_qparams *qp, size_t row0, size_t nrows,
                        float *restrict dst)
{
    size_t n, end;
    if (__builtin_mul_overflow(rows, cols, &n) || __builtin_add_overflow(row0, nrows, &end) ||
        end > rows)
        return SB_EINVAL;
    if (dt == SB_DTYPE_INT8) {
        qnt_int8_dequantize_rows(src, rows, cols, qp, row0, nrows, dst);
        return SB_OK;
    }
    if (dt == SB_DTYPE_TERN) {
        qnt_tern_dequantize_rows(src, cols, row0, nrows, dst);
        return SB_OK;
    }
    if (!block_type(dt) && !plain(dt))
        return SB_EUNSUPPORTED;
    const size_t rb = row_bytes_of(dt, cols);
    if (!rb)
        return SB_EINVAL;
    if (cols == 0)
        return SB_OK;
    const unsigned char *s = (const unsigned char *)src + row0 * rb;
    const size_t per = chunk_rows(cols);
    const long nchunk = (long)((nrows + per - 1) / per);
#pragma omp parallel for schedule(static) if (nchunk > 1)
    for (long c = 0; c < nchunk; c++) {
        const size_t r0 = (size_t)c * per, r1 = r0 + per < nrows ? r0 + per : nrows;
        dequant_range(dt, s, cols, rb, dst + r0 * cols, r0, r1);
    }
    return SB_OK;
}
