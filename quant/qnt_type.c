/* qnt_type.c: the encoding table (qnt_type.h: what an entry holds and how to
 * add one) and the queries every caller uses instead of a switch. */
#include "qnt_type.h"

#include <string.h>

#include "qnt_cast.h"
#include "qnt_encode.h"
#include "qnt_ggml.h"
#include "qnt_ggml_types.h"
#include "qnt_int8.h"
#include "qnt_matvec_impl.h"
#include "qnt_q8mm_impl.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "sb_alloc.h"
#include "sb_err.h"

/* ---- plain floats: casts (qnt_cast.h), alignment-safe through the stack ---- */

static void f32_copy(const float *restrict x, void *restrict y, size_t n)
{
    memcpy(y, x, n * sizeof *x);
}

static void f32_load(const void *restrict x, float *restrict y, size_t n)
{
    memcpy(y, x, n * sizeof *y);
}

/* 16-bit codes may sit at any byte offset of a mapping: copy them to an
 * aligned buffer (or from one) a slice at a time */
#define CAST16_FNS(name, to16, from16)                                                           \
    static void name##_from(const float *restrict x, void *restrict y, size_t n)                 \
    {                                                                                            \
        uint16_t h[256];                                                                         \
        for (size_t i = 0; i < n; i += 256) {                                                    \
            const size_t k = n - i < 256 ? n - i : 256;                                          \
            to16(x + i, h, k);                                                                   \
            memcpy((uint8_t *)y + 2 * i, h, 2 * k);                                              \
        }                                                                                        \
    }                                                                                            \
    static void name##_to(const void *restrict x, float *restrict y, size_t n)                   \
    {                                                                                            \
        uint16_t h[256];                                                                         \
        for (size_t i = 0; i < n; i += 256) {                                                    \
            const size_t k = n - i < 256 ? n - i : 256;                                          \
            memcpy(h, (const uint8_t *)x + 2 * i, 2 * k);                                        \
            from16(h, y + i, k);                                                                 \
        }                                                                                        \
    }

CAST16_FNS(f16_ref, qnt_f32_to_f16_array_ref, qnt_f16_to_f32_array_ref)
CAST16_FNS(f16, qnt_f32_to_f16, qnt_f16_to_f32)
CAST16_FNS(bf16_ref, qnt_f32_to_bf16_array_ref, qnt_bf16_to_f32_array_ref)
CAST16_FNS(bf16, qnt_f32_to_bf16, qnt_bf16_to_f32)

static void f64_from(const float *restrict x, void *restrict y, size_t n)
{
    qnt_convert_plain(SB_DTYPE_F32, x, SB_DTYPE_F64, y, n);
}

static void f64_to(const void *restrict x, float *restrict y, size_t n)
{
    qnt_convert_plain(SB_DTYPE_F64, x, SB_DTYPE_F32, y, n);
}

/* ---- ggml blocks (qnt_ggml.h): the block pointer types as void ------------- */

#define BLOCK_FNS(name)                                                                          \
    static void name##_from_ref(const float *restrict x, void *restrict y, size_t n)             \
    {                                                                                            \
        qnt_##name##_quantize_ref(x, (struct qnt_block_##name *)y, n);                           \
    }                                                                                            \
    static void name##_from(const float *restrict x, void *restrict y, size_t n)                 \
    {                                                                                            \
        qnt_##name##_quantize(x, (struct qnt_block_##name *)y, n);                               \
    }                                                                                            \
    static void name##_to(const void *restrict x, float *restrict y, size_t n)                   \
    {                                                                                            \
        qnt_##name##_dequantize((const struct qnt_block_##name *)x, y, n);                       \
    }

BLOCK_FNS(q8_0)
BLOCK_FNS(q4_0)
BLOCK_FNS(tq1_0)
BLOCK_FNS(tq2_0)
BLOCK_FNS(q4_1)
BLOCK_FNS(q5_0)
BLOCK_FNS(q5_1)
BLOCK_FNS(q2_K)
BLOCK_FNS(q3_K)
BLOCK_FNS(q4_K)
BLOCK_FNS(q5_K)
BLOCK_FNS(q6_K)
BLOCK_FNS(q8_K)
BLOCK_FNS(iq4_nl)
BLOCK_FNS(iq4_xs)

/* ---- how the blocked matvec kernel reads them in place --------------------- */

static void mm_f32(struct qnt_mm_args *a) { a->enc = QNT_MM_F32; }
static void mm_f16(struct qnt_mm_args *a) { a->enc = QNT_MM_F16; }
static void mm_bf16(struct qnt_mm_args *a) { a->enc = QNT_MM_BF16; }

/* ---- tern's fused kernels take no byte count (the shape gives it) ----------- */

static void tern_mv_ref(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                        const float *restrict x, float *restrict y)
{
    (void)nbytes;
    qnt_tern_matvec_ref(w, rows, cols, x, y);
}

static void tern_mv(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                    const float *restrict x, float *restrict y)
{
    (void)nbytes;
    qnt_tern_matvec(w, rows, cols, x, y);
}

/* ---- the ternary family's batched kernels (qnt_tmm_impl.h) ----------------
 * One token over the whole tensor: the fused matvec. Otherwise the batched
 * kernel with its scratch made here, outside any parallel region (the
 * table's signature has none); when that allocation fails the kernels go
 * token by token, the same bits. */

static void *tmm_ws(size_t need, size_t *have)
{
    void *ws = need ? sb_malloc_aligned(need) : NULL;
    *have = ws ? need : 0;
    return ws;
}

static int tmm_one(size_t rows, size_t row0, size_t nrows, size_t n)
{
    return n == 1 && row0 == 0 && nrows == rows;
}

static void tern_mm(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                    size_t row0, size_t nrows, const float *restrict X, size_t n,
                    float *restrict Y)
{
    (void)nbytes;
    if (tmm_one(rows, row0, nrows, n)) {
        qnt_tern_matvec(w, rows, cols, X, Y);
        return;
    }
    size_t have;
    void *ws = tmm_ws(qnt_tern_matmul_ws_size(cols, nrows, n), &have);
    qnt_tern_matmul(w, rows, cols, row0, nrows, X, n, Y, ws, have);
    sb_free_aligned(ws);
}

static void tern_mm_ref(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                        size_t row0, size_t nrows, const float *restrict X, size_t n,
                        float *restrict Y)
{
    (void)nbytes;
    qnt_tern_matmul_ref(w, rows, cols, row0, nrows, X, n, Y);
}

static void sub1_mm(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                    size_t row0, size_t nrows, const float *restrict X, size_t n,
                    float *restrict Y)
{
    if (tmm_one(rows, row0, nrows, n)) {
        qnt_sub1_matvec(w, nbytes, rows, cols, X, Y);
        return;
    }
    size_t have;
    void *ws = tmm_ws(qnt_sub1_matmul_ws_size(w, nbytes, rows, cols, n), &have);
    qnt_sub1_matmul(w, nbytes, rows, cols, row0, nrows, X, n, Y, ws, have);
    sb_free_aligned(ws);
}

static void qmoe_mm(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                    size_t row0, size_t nrows, const float *restrict X, size_t n,
                    float *restrict Y)
{
    if (tmm_one(rows, row0, nrows, n)) {
        qnt_qmoe_matvec(w, nbytes, rows, cols, X, Y);
        return;
    }
    size_t have;
    void *ws = tmm_ws(qnt_qmoe_matmul_ws_size(cols, nrows, n), &have);
    qnt_qmoe_matmul(w, nbytes, rows, cols, row0, nrows, X, n, Y, ws, have);
    sb_free_aligned(ws);
}

/* ---- variable-length: the row decoders without the shape argument ---------- */

static void sub1_dequant(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                         const struct sb_qparams *qp, size_t row0, size_t nrows,
                         float *restrict dst)
{
    (void)rows, (void)qp;
    qnt_sub1_dequantize_rows(w, nbytes, cols, row0, nrows, dst);
}

static void qmoe_dequant(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                         const struct sb_qparams *qp, size_t row0, size_t nrows,
                         float *restrict dst)
{
    (void)rows, (void)qp;
    qnt_qmoe_dequantize_rows(w, nbytes, cols, row0, nrows, dst);
}

/* ---- the table ---------------------------------------------------------------- */

#define PLAIN(fr, f, tr, t, mm)                                                                  \
    .flags = QNT_T_ROWS | QNT_T_MATVEC, .from_float_ref = fr, .from_float = f,                   \
    .to_float_ref = tr, .to_float = t, .mm_prepare = mm
#define BLOCK(name, ftype)                                                                       \
    .flags = QNT_T_ROWS | QNT_T_MATVEC, .gguf_ftype = ftype, .from_float_ref = name##_from_ref,  \
    .from_float = name##_from, .to_float_ref = name##_to, .to_float = name##_to

static const struct qnt_type table[SB_DTYPE_COUNT] = {
    [SB_DTYPE_F32] = { SB_DTYPE_F32, PLAIN(f32_copy, f32_copy, f32_load, f32_load, mm_f32),
                       .gguf_ftype = 0 },
    [SB_DTYPE_F16] = { SB_DTYPE_F16, PLAIN(f16_ref_from, f16_from, f16_ref_to, f16_to, mm_f16),
                       .gguf_ftype = 1 },
    [SB_DTYPE_BF16] = { SB_DTYPE_BF16,
                        PLAIN(bf16_ref_from, bf16_from, bf16_ref_to, bf16_to, mm_bf16),
                        .gguf_ftype = 32 },
    [SB_DTYPE_F64] = { SB_DTYPE_F64, .flags = QNT_T_ROWS, .gguf_ftype = -1,
                       .from_float_ref = f64_from, .from_float = f64_from, .to_float_ref = f64_to,
                       .to_float = f64_to },
    /* q8_0 and q4_0 meet 8-bit activations (qnt_q8mm_impl.h) */
    [SB_DTYPE_Q8_0] = { SB_DTYPE_Q8_0, BLOCK(q8_0, 7),
                        .matmul_ref = qnt_q8_0_matmul_ref, .matmul = qnt_q8_0_matmul },
    [SB_DTYPE_Q4_0] = { SB_DTYPE_Q4_0, BLOCK(q4_0, 2), .matmul_ref = qnt_q4_0_matmul_ref,
                        .matmul = qnt_q4_0_matmul },
    [SB_DTYPE_TQ1_0] = { SB_DTYPE_TQ1_0, BLOCK(tq1_0, 36) },
    [SB_DTYPE_TQ2_0] = { SB_DTYPE_TQ2_0, BLOCK(tq2_0, 37) },
    /* qnt_ggml_types.h; the file types of the k-quants are llama-quantize's
     * _M mixes' (Q3_K_M 12, Q4_K_M 15, Q5_K_M 17): convert's mixes by name
     * (Q4_K_S 14, ...) set their own. q8_K exists in GGUF but no llama.cpp
     * file type is mostly q8_K. */
    [SB_DTYPE_Q4_1] = { SB_DTYPE_Q4_1, BLOCK(q4_1, 3) },
    [SB_DTYPE_Q5_0] = { SB_DTYPE_Q5_0, BLOCK(q5_0, 8) },
    [SB_DTYPE_Q5_1] = { SB_DTYPE_Q5_1, BLOCK(q5_1, 9) },
    [SB_DTYPE_Q2_K] = { SB_DTYPE_Q2_K, BLOCK(q2_K, 10) },
    [SB_DTYPE_Q3_K] = { SB_DTYPE_Q3_K, BLOCK(q3_K, 12) },
    [SB_DTYPE_Q4_K] = { SB_DTYPE_Q4_K, BLOCK(q4_K, 15) },
    [SB_DTYPE_Q5_K] = { SB_DTYPE_Q5_K, BLOCK(q5_K, 17) },
    [SB_DTYPE_Q6_K] = { SB_DTYPE_Q6_K, BLOCK(q6_K, 18) },
    [SB_DTYPE_Q8_K] = { SB_DTYPE_Q8_K, BLOCK(q8_K, -1) },
    [SB_DTYPE_IQ4_NL] = { SB_DTYPE_IQ4_NL, BLOCK(iq4_nl, 25) },
    [SB_DTYPE_IQ4_XS] = { SB_DTYPE_IQ4_XS, BLOCK(iq4_xs, 30) },
    [SB_DTYPE_INT8] = { SB_DTYPE_INT8, .flags = QNT_T_MATVEC, .gguf_ftype = -1,
                        .quantize_rows = qnt_int8_quantize_range,
                        .dequantize_rows = qnt_int8_dequantize_range, .decode = qnt_int8_decode,
                        .mm_prepare = qnt_int8_mm_prepare },
    [SB_DTYPE_TERN] = { SB_DTYPE_TERN, .flags = QNT_T_ROWS | QNT_T_MATVEC, .gguf_ftype = -1,
                        .quantize_rows = qnt_tern_quantize_range,
                        .dequantize_rows = qnt_tern_dequantize_range, .decode = qnt_tern_decode,
                        .matvec_ref = tern_mv_ref, .matvec = tern_mv,
                        .matmul_ref = tern_mm_ref, .matmul = tern_mm },
    [SB_DTYPE_SUB1] = { SB_DTYPE_SUB1, .flags = QNT_T_MATVEC | QNT_T_VARLEN, .gguf_ftype = -1,
                        .dequantize_rows = sub1_dequant, .matvec_ref = qnt_sub1_matvec_ref,
                        .matvec = qnt_sub1_matvec, .matmul_ref = qnt_sub1_matmul_ref,
                        .matmul = sub1_mm, .encode_bound = qnt_sub1_encode_bound,
                        .encode = qnt_sub1_encode, .validate = qnt_sub1_validate },
    [SB_DTYPE_SUB1_QMOE] = { SB_DTYPE_SUB1_QMOE, .flags = QNT_T_MATVEC | QNT_T_VARLEN,
                             .gguf_ftype = -1, .dequantize_rows = qmoe_dequant,
                             .matvec_ref = qnt_qmoe_matvec_ref, .matvec = qnt_qmoe_matvec,
                             .matmul_ref = qnt_qmoe_matmul_ref, .matmul = qmoe_mm,
                             .encode_bound = qnt_qmoe_encode_bound, .encode = qnt_qmoe_encode,
                             .validate = qnt_qmoe_validate },
};

#undef PLAIN
#undef BLOCK

const struct qnt_type *qnt_type_get(enum sb_dtype dt)
{
    if ((unsigned)dt >= SB_DTYPE_COUNT || !table[dt].flags)
        return NULL;
    return &table[dt];
}

bool qnt_type_can_encode(enum sb_dtype dt)
{
    const struct qnt_type *t = qnt_type_get(dt);
    return t && (t->from_float || t->quantize_rows || t->encode);
}

bool qnt_type_can_decode(enum sb_dtype dt)
{
    const struct qnt_type *t = qnt_type_get(dt);
    return t && (t->to_float || t->dequantize_rows);
}

size_t qnt_type_row_bytes(enum sb_dtype dt, size_t cols, const struct sb_qparams *qp)
{
    const struct qnt_type *t = qnt_type_get(dt);
    int64_t shape[2] = { 1, (int64_t)cols };
    uint64_t n;
    if (!t || !(t->flags & QNT_T_ROWS) || cols > INT64_MAX ||
        sb_dtype_nbytes(dt, shape, 2, qp, &n) != SB_OK || n > SIZE_MAX)
        return 0;
    return (size_t)n;
}

int qnt_type_validate(enum sb_dtype dt, const void *blob, uint64_t nbytes, size_t rows,
                      size_t cols, const struct sb_qparams *qp)
{
    const struct qnt_type *t = qnt_type_get(dt);
    if (!t)
        return SB_EUNSUPPORTED;
    if (t->validate)
        return t->validate(blob, nbytes, rows, cols) == SB_OK ? SB_OK : SB_EFORMAT;
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t need;
    if (rows > INT64_MAX || cols > INT64_MAX ||
        sb_dtype_nbytes(dt, shape, 2, qp, &need) != SB_OK || need > nbytes)
        return SB_EFORMAT;
    return SB_OK;
}

uint32_t qnt_type_gguf_ftype(enum sb_dtype dt)
{
    const struct qnt_type *t = qnt_type_get(dt);
    return t && t->gguf_ftype > 0 ? (uint32_t)t->gguf_ftype : 0;
}
