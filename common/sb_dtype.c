/* sb_dtype.c: the static half of the encoding table (names, ids, size rules;
 * formats.md §1.2, §2.4); the kernels are in quant/qnt_type.c. */
#include "sb_dtype.h"
#include "sb_err.h"
#include "sb_math.h"

#include <string.h>
#include <strings.h>

#define F SB_DT_FLOAT
#define I SB_DT_INT
#define B SB_DT_BLOCK

static const struct sb_dtype_info table[SB_DTYPE_COUNT] = {
    [SB_DTYPE_F32] = { "f32", "F32", 0, 1, 4, 32, F },
    [SB_DTYPE_F16] = { "f16", "F16", 1, 1, 2, 16, F },
    [SB_DTYPE_BF16] = { "bf16", "BF16", 30, 1, 2, 16, F },
    [SB_DTYPE_F64] = { "f64", "F64", 28, 1, 8, 64, F },
    [SB_DTYPE_I8] = { "i8", "I8", 24, 1, 1, 8, I },
    [SB_DTYPE_U8] = { "u8", "U8", -1, 1, 1, 8, I },
    [SB_DTYPE_I16] = { "i16", "I16", 25, 1, 2, 16, I },
    [SB_DTYPE_U16] = { "u16", "U16", -1, 1, 2, 16, I },
    [SB_DTYPE_I32] = { "i32", "I32", 26, 1, 4, 32, I },
    [SB_DTYPE_U32] = { "u32", "U32", -1, 1, 4, 32, I },
    [SB_DTYPE_I64] = { "i64", "I64", 27, 1, 8, 64, I },
    [SB_DTYPE_U64] = { "u64", "U64", -1, 1, 8, 64, I },
    [SB_DTYPE_BOOL] = { "bool", "BOOL", -1, 1, 1, 8, I },
    [SB_DTYPE_C64] = { "c64", "C64", -1, 1, 8, 64, 0 },
    [SB_DTYPE_F8_E4M3] = { "f8_e4m3", "F8_E4M3", -1, 1, 1, 8, F },
    [SB_DTYPE_F8_E5M2] = { "f8_e5m2", "F8_E5M2", -1, 1, 1, 8, F },
    [SB_DTYPE_F8_E4M3FNUZ] = { "f8_e4m3fnuz", "F8_E4M3FNUZ", -1, 1, 1, 8, F },
    [SB_DTYPE_F8_E5M2FNUZ] = { "f8_e5m2fnuz", "F8_E5M2FNUZ", -1, 1, 1, 8, F },
    [SB_DTYPE_F8_E8M0] = { "f8_e8m0", "F8_E8M0", -1, 1, 1, 8, F },
    [SB_DTYPE_F4] = { "f4", "F4", -1, 1, 0, 4, F },
    [SB_DTYPE_F6_E2M3] = { "f6_e2m3", "F6_E2M3", -1, 1, 0, 6, F },
    [SB_DTYPE_F6_E3M2] = { "f6_e3m2", "F6_E3M2", -1, 1, 0, 6, F },
    [SB_DTYPE_Q8_0] = { "q8_0", NULL, 8, 32, 34, 0, B },
    [SB_DTYPE_Q4_0] = { "q4_0", NULL, 2, 32, 18, 0, B },
    [SB_DTYPE_TQ1_0] = { "tq1_0", NULL, 34, 256, 54, 0, B },
    [SB_DTYPE_TQ2_0] = { "tq2_0", NULL, 35, 256, 66, 0, B },
    [SB_DTYPE_Q4_1] = { "q4_1", NULL, 3, 32, 20, 0, B },
    [SB_DTYPE_Q5_0] = { "q5_0", NULL, 6, 32, 22, 0, B },
    [SB_DTYPE_Q5_1] = { "q5_1", NULL, 7, 32, 24, 0, B },
    [SB_DTYPE_Q8_1] = { "q8_1", NULL, 9, 32, 36, 0, B },
    [SB_DTYPE_Q2_K] = { "q2_k", NULL, 10, 256, 84, 0, B },
    [SB_DTYPE_Q3_K] = { "q3_k", NULL, 11, 256, 110, 0, B },
    [SB_DTYPE_Q4_K] = { "q4_k", NULL, 12, 256, 144, 0, B },
    [SB_DTYPE_Q5_K] = { "q5_k", NULL, 13, 256, 176, 0, B },
    [SB_DTYPE_Q6_K] = { "q6_k", NULL, 14, 256, 210, 0, B },
    [SB_DTYPE_Q8_K] = { "q8_k", NULL, 15, 256, 292, 0, B },
    [SB_DTYPE_IQ2_XXS] = { "iq2_xxs", NULL, 16, 256, 66, 0, B },
    [SB_DTYPE_IQ2_XS] = { "iq2_xs", NULL, 17, 256, 74, 0, B },
    [SB_DTYPE_IQ3_XXS] = { "iq3_xxs", NULL, 18, 256, 98, 0, B },
    [SB_DTYPE_IQ1_S] = { "iq1_s", NULL, 19, 256, 50, 0, B },
    [SB_DTYPE_IQ4_NL] = { "iq4_nl", NULL, 20, 32, 18, 0, B },
    [SB_DTYPE_IQ3_S] = { "iq3_s", NULL, 21, 256, 110, 0, B },
    [SB_DTYPE_IQ2_S] = { "iq2_s", NULL, 22, 256, 82, 0, B },
    [SB_DTYPE_IQ4_XS] = { "iq4_xs", NULL, 23, 256, 136, 0, B },
    [SB_DTYPE_IQ1_M] = { "iq1_m", NULL, 29, 256, 56, 0, B },
    [SB_DTYPE_MXFP4] = { "mxfp4", NULL, 39, 32, 17, 0, B },
    [SB_DTYPE_INT8] = { "int8", NULL, -1, 1, 0, 0, SB_DT_ROWQ },
    [SB_DTYPE_TERN] = { "tern", NULL, -1, 1, 0, 0, SB_DT_ROWQ | SB_DT_TERNARY },
    [SB_DTYPE_SUB1] = { "sub1", NULL, -1, 1, 0, 0, SB_DT_VARLEN | SB_DT_TERNARY },
    [SB_DTYPE_SUB1_QMOE] = { "sub1-qmoe", NULL, -1, 1, 0, 0, SB_DT_VARLEN | SB_DT_TERNARY },
};

#undef F
#undef I
#undef B

const struct sb_dtype_info *sb_dtype_get(enum sb_dtype dt)
{
    if ((int)dt < 0 || dt >= SB_DTYPE_COUNT)
        return NULL;
    return &table[dt];
}

const char *sb_dtype_name(enum sb_dtype dt)
{
    const struct sb_dtype_info *d = sb_dtype_get(dt);
    return d ? d->name : "?";
}

const char *sb_dtype_torch_name(enum sb_dtype dt)
{
    switch (dt) {
    case SB_DTYPE_F32: return "float32";
    case SB_DTYPE_F16: return "float16";
    case SB_DTYPE_BF16: return "bfloat16";
    case SB_DTYPE_F64: return "float64";
    default: return NULL;
    }
}

int sb_dtype_from_name(const char *name)
{
    static const struct { const char *alias; enum sb_dtype dt; } aliases[] = {
        { "fp32", SB_DTYPE_F32 }, { "float32", SB_DTYPE_F32 }, { "float", SB_DTYPE_F32 },
        { "fp16", SB_DTYPE_F16 }, { "float16", SB_DTYPE_F16 }, { "half", SB_DTYPE_F16 },
        { "bfloat16", SB_DTYPE_BF16 }, { "ternary", SB_DTYPE_TERN },
        { "sub1_qmoe", SB_DTYPE_SUB1_QMOE }, { "qmoe", SB_DTYPE_SUB1_QMOE },
    };
    /* case-insensitive: ggml spells the k-quants q4_K, llama.cpp's tools Q4_K */
    for (int i = 0; i < SB_DTYPE_COUNT; i++)
        if (strcasecmp(table[i].name, name) == 0)
            return i;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(aliases[i].alias, name) == 0)
            return (int)aliases[i].dt;
    return -1;
}

int sb_dtype_from_st(const char *st_name)
{
    for (int i = 0; i < SB_DTYPE_COUNT; i++)
        if (table[i].st_name && strcmp(table[i].st_name, st_name) == 0)
            return i;
    return -1;
}

int sb_dtype_from_ggml(int ggml_type)
{
    if (ggml_type < 0)
        return -1;
    for (int i = 0; i < SB_DTYPE_COUNT; i++)
        if (table[i].ggml_type == ggml_type)
            return i;
    return -1;
}

int sb_shape_rows_cols(const int64_t *shape, int ndim, uint64_t *rows, uint64_t *cols)
{
    if (ndim == 0) {
        *rows = 1;
        *cols = 1;
        return 0;
    }
    if (sb_shape_numel(shape, ndim - 1, rows))
        return 1;
    if (shape[ndim - 1] < 0)
        return 1;
    *cols = (uint64_t)shape[ndim - 1];
    return 0;
}

int sb_dtype_nbytes(enum sb_dtype dt, const int64_t *shape, int ndim,
                    const struct sb_qparams *qp, uint64_t *out)
{
    const struct sb_dtype_info *d = sb_dtype_get(dt);
    uint64_t n, rows, cols, t;
    if (!d || ndim < 0 || ndim > SB_MAX_DIMS)
        return SB_EINVAL;
    if (d->flags & SB_DT_VARLEN)
        return SB_EUNSUPPORTED;
    if (sb_shape_numel(shape, ndim, &n) || sb_shape_rows_cols(shape, ndim, &rows, &cols))
        return SB_EFORMAT;
    if (d->flags & SB_DT_ROWQ) {
        if (dt == SB_DTYPE_INT8) {
            uint32_t g = qp ? qp->group : 0;
            uint64_t groups = (g == 0 || cols == 0) ? 1 : (cols + g - 1) / g;
            enum sb_dtype sd = (qp && qp->scale_dtype == SB_DTYPE_F16) ? SB_DTYPE_F16 : SB_DTYPE_F32;
            uint64_t sbytes = sd == SB_DTYPE_F16 ? 2 : 4;
            if (sb_mul_u64(rows, groups, &t) || sb_mul_u64(t, sbytes, &t) || sb_add_u64(n, t, out))
                return SB_EFORMAT;
            return SB_OK;
        }
        /* tern: per row, two bf16 (min, max) then ceil(cols/4) bytes of 2-bit codes */
        uint64_t per_row = (cols + 3) / 4 + 4;
        if (sb_mul_u64(rows, per_row, out))
            return SB_EFORMAT;
        return SB_OK;
    }
    if (d->blck > 1) {
        if (cols % d->blck)
            return SB_EFORMAT;
        if (sb_mul_u64(n / d->blck, d->type_size, out))
            return SB_EFORMAT;
        return SB_OK;
    }
    if (d->type_size == 0) { /* sub-byte scalars */
        if (sb_mul_u64(n, d->bits, &t) || t % 8)
            return SB_EFORMAT;
        *out = t / 8;
        return SB_OK;
    }
    if (sb_mul_u64(n, d->type_size, out))
        return SB_EFORMAT;
    return SB_OK;
}
