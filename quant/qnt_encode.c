/* qnt_encode.c: whole tensors to and from f32 through the encoding table
 * (qnt_type.h), parallel over blocks of rows; the plain float conversions. */
#include "qnt_encode.h"
#include "qnt_cast.h"
#include "qnt_type.h"
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

/* ---- row kernels: asked of the encoding table ---- */

/* nrows whole rows of a block or plain encoding between f32 (x, cols a row)
 * and its bytes (b, rb a row), in parallel chunks of about 64K elements:
 * encode x into b (from_float), or with dec decode b into x (to_float) */
static void rows_blocks(const struct qnt_type *t, int dec, const float *x_in, float *x_out,
                        const unsigned char *b_in, unsigned char *b_out, size_t nrows,
                        size_t cols, size_t rb)
{
    const size_t per = chunk_rows(cols);
    const long nchunk = (long)((nrows + per - 1) / per);
#pragma omp parallel for schedule(static) if (nchunk > 1)
    for (long c = 0; c < nchunk; c++) {
        const size_t r0 = (size_t)c * per, r1 = r0 + per < nrows ? r0 + per : nrows;
        if (dec)
            t->to_float(b_in + r0 * rb, x_out + r0 * cols, (r1 - r0) * cols);
        else
            t->from_float(x_in + r0 * cols, b_out + r0 * rb, (r1 - r0) * cols);
    }
}

/* bytes per row of a block or plain encoding; 0 on a bad block multiple or
 * overflow (1 for an empty row, which needs no bytes but is not an error) */
static size_t row_bytes_of(enum sb_dtype dt, size_t cols)
{
    if (cols == 0)
        return 1;
    return qnt_type_row_bytes(dt, cols, NULL);
}

int qnt_quantize_rows(enum sb_dtype dt, const float *restrict x, size_t rows, size_t cols,
                      const struct sb_qparams *qp, void *restrict dst)
{
    size_t n;
    const struct qnt_type *t = qnt_type_get(dt);
    if (__builtin_mul_overflow(rows, cols, &n))
        return SB_EINVAL;
    if (!t || !(t->from_float || t->quantize_rows))
        return SB_EUNSUPPORTED;
    if (t->quantize_rows) {
        t->quantize_rows(x, 0, rows, rows, cols, qp, dst);
        return SB_OK;
    }
    const size_t rb = row_bytes_of(dt, cols);
    if (!rb)
        return SB_EINVAL;
    if (cols)
        rows_blocks(t, 0, x, NULL, NULL, dst, rows, cols, rb);
    return SB_OK;
}

int qnt_quantize_rows_at(enum sb_dtype dt, const float *restrict x, size_t row0, size_t nrows,
                         size_t rows, size_t cols, const struct sb_qparams *qp,
                         void *restrict blob)
{
    const struct qnt_type *t = qnt_type_get(dt);
    size_t end;
    if (__builtin_add_overflow(row0, nrows, &end) || end > rows)
        return SB_EINVAL;
    if (t && t->quantize_rows) {
        t->quantize_rows(x, row0, nrows, rows, cols, qp, blob);
        return SB_OK;
    }
    const size_t rb = row_bytes_of(dt, cols);
    if (t && t->from_float && !rb)
        return SB_EINVAL;
    /* rows back to back: the rows are a tensor of their own at their place */
    return qnt_quantize_rows(dt, x, nrows, cols, qp, (unsigned char *)blob + (t ? row0 * rb : 0));
}

int qnt_dequantize_rows(enum sb_dtype dt, const void *restrict src, size_t rows, size_t cols,
                        const struct sb_qparams *qp, size_t row0, size_t nrows,
                        float *restrict dst)
{
    size_t n, end;
    const struct qnt_type *t = qnt_type_get(dt);
    if (__builtin_mul_overflow(rows, cols, &n) || __builtin_add_overflow(row0, nrows, &end) ||
        end > rows)
        return SB_EINVAL;
    if (!t || (t->flags & QNT_T_VARLEN) || !(t->to_float || t->dequantize_rows))
        return SB_EUNSUPPORTED;
    if (t->dequantize_rows) {
        t->dequantize_rows(src, UINT64_MAX, rows, cols, qp, row0, nrows, dst);
        return SB_OK;
    }
    const size_t rb = row_bytes_of(dt, cols);
    if (!rb)
        return SB_EINVAL;
    if (cols)
        rows_blocks(t, 1, NULL, dst, (const unsigned char *)src + row0 * rb, NULL, nrows, cols,
                    rb);
    return SB_OK;
}

int qnt_decode_rows(enum sb_dtype dt, const void *restrict src, uint64_t nbytes, size_t rows,
                    size_t cols, const struct sb_qparams *qp, size_t row0, size_t nrows,
                    float *restrict dst)
{
    const struct qnt_type *t = qnt_type_get(dt);
    size_t end;
    if (!t || !(t->flags & QNT_T_VARLEN))
        return qnt_dequantize_rows(dt, src, rows, cols, qp, row0, nrows, dst);
    if (__builtin_add_overflow(row0, nrows, &end) || end > rows)
        return SB_EINVAL;
    if (t->validate(src, nbytes, rows, cols) != SB_OK)
        return SB_EFORMAT;
    t->dequantize_rows(src, nbytes, rows, cols, qp, row0, nrows, dst);
    return SB_OK;
}
