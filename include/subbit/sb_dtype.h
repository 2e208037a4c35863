/* sb_dtype.h: the static half of the encoding table. An encoding names how a tensor's elements
 * are laid out in bytes: plain scalars (f32, bf16, i8, ...), ggml blocks
 * (q8_0, q4_0, tq1_0, tq2_0, and the other ggml ids, opaque), our row-wise
 * quantized forms (int8 with scales, tern) and variable-length entropy-coded
 * forms (sub1, sub1-qmoe) whose byte size is not a function of the shape.
 *
 * Shapes are in PyTorch order (outermost first, the last dim is the row and
 * varies fastest). Row-wise encodings treat a tensor of shape [..., cols] as
 * rows = product of the leading dims, each row cols elements long.
 *
 * Knows sizes and names, never values: what an encoding does (its kernels)
 * is the other half, quant/qnt_type.h, which formats/ cannot link. */
#ifndef SB_DTYPE_H
#define SB_DTYPE_H

#include <stdint.h>

#define SB_MAX_DIMS 4

enum sb_dtype {
    /* plain scalars (safetensors dtypes) */
    SB_DTYPE_F32 = 0,
    SB_DTYPE_F16,
    SB_DTYPE_BF16,
    SB_DTYPE_F64,
    SB_DTYPE_I8,
    SB_DTYPE_U8,
    SB_DTYPE_I16,
    SB_DTYPE_U16,
    SB_DTYPE_I32,
    SB_DTYPE_U32,
    SB_DTYPE_I64,
    SB_DTYPE_U64,
    SB_DTYPE_BOOL,
    SB_DTYPE_C64,
    SB_DTYPE_F8_E4M3,
    SB_DTYPE_F8_E5M2,
    SB_DTYPE_F8_E4M3FNUZ,
    SB_DTYPE_F8_E5M2FNUZ,
    SB_DTYPE_F8_E8M0,
    SB_DTYPE_F4,          /* 4 bits, two per byte */
    SB_DTYPE_F6_E2M3,     /* 6 bits */
    SB_DTYPE_F6_E3M2,
    /* ggml block types (kernels: quant/qnt_type.c says which) */
    SB_DTYPE_Q8_0,
    SB_DTYPE_Q4_0,
    SB_DTYPE_TQ1_0,
    SB_DTYPE_TQ2_0,
    SB_DTYPE_Q4_1,
    SB_DTYPE_Q5_0,
    SB_DTYPE_Q5_1,
    SB_DTYPE_Q8_1,
    SB_DTYPE_Q2_K,
    SB_DTYPE_Q3_K,
    SB_DTYPE_Q4_K,
    SB_DTYPE_Q5_K,
    SB_DTYPE_Q6_K,
    SB_DTYPE_Q8_K,
    SB_DTYPE_IQ2_XXS,
    SB_DTYPE_IQ2_XS,
    SB_DTYPE_IQ3_XXS,
    SB_DTYPE_IQ1_S,
    SB_DTYPE_IQ4_NL,
    SB_DTYPE_IQ3_S,
    SB_DTYPE_IQ2_S,
    SB_DTYPE_IQ4_XS,
    SB_DTYPE_IQ1_M,
    SB_DTYPE_MXFP4,
    /* ours: row-wise quantized, fixed size given shape and params */
    SB_DTYPE_INT8,        /* int8 codes [rows, cols], then scales [rows, groups] (f32 or f16) */
    SB_DTYPE_TERN,        /* QMoE grid per row, 2 bits a weight + two bf16 per row */
    /* ours: variable length (size stored, not computed) */
    SB_DTYPE_SUB1,        /* our entropy code for ternary rows */
    SB_DTYPE_SUB1_QMOE,   /* QMoE dictionary code */
    SB_DTYPE_COUNT
};

enum sb_dtype_flags {
    SB_DT_FLOAT = 1 << 0,    /* plain floating point */
    SB_DT_INT = 1 << 1,      /* plain integer / bool */
    SB_DT_BLOCK = 1 << 2,    /* ggml block type: rows must be a multiple of blck */
    SB_DT_ROWQ = 1 << 3,     /* our row-quantized (int8, tern) */
    SB_DT_VARLEN = 1 << 4,   /* byte size not a function of shape */
    SB_DT_TERNARY = 1 << 6   /* values are ternary per row (tern, sub1, sub1-qmoe) */
};

struct sb_dtype_info {
    const char *name;      /* our CLI name: "f32", "bf16", "q8_0", "int8", "sub1-qmoe" */
    const char *st_name;   /* safetensors dtype string, or NULL */
    int ggml_type;         /* GGUF ggml_type id, or -1 */
    uint32_t blck;         /* elements per block (1 for scalars and row-wise/varlen) */
    uint32_t type_size;    /* bytes per block; sub-byte scalars: 0 (see bits) */
    uint32_t bits;         /* bits per element for scalars; 0 otherwise */
    unsigned flags;
};

/* Parameters of the row-wise encodings (int8, tern); zero-initialise for defaults. */
struct sb_qparams {
    uint32_t group;              /* int8: elements per scale along a row; 0 = whole row */
    enum sb_dtype scale_dtype;   /* int8: SB_DTYPE_F32 (default when 0 = F32) or SB_DTYPE_F16 */
};

/*! sb_dtype_get() : the table row for dt; NULL if dt is out of range. */
const struct sb_dtype_info *sb_dtype_get(enum sb_dtype dt);
/*! sb_dtype_name() : our name for dt, "?" if out of range. */
const char *sb_dtype_name(enum sb_dtype dt);
/*! sb_dtype_torch_name() : the PyTorch dtype name of a plain float encoding
 *  ("float32", "float16", "bfloat16", "float64": config.json torch_dtype), or
 *  NULL. */
const char *sb_dtype_torch_name(enum sb_dtype dt);
/*! sb_dtype_from_name() : parse our name in any case ("bf16", "q8_0", "Q4_K",
 *  "sub1-qmoe", also "fp16"/"float32" aliases); -1 if unknown. */
int sb_dtype_from_name(const char *name);
/*! sb_dtype_from_st() : parse a safetensors dtype string ("F32", "BF16", ...); -1 if unknown. */
int sb_dtype_from_st(const char *st_name);
/*! sb_dtype_from_ggml() : map a ggml_type id; -1 if unknown or removed. */
int sb_dtype_from_ggml(int ggml_type);

/*! sb_dtype_nbytes() : bytes of a tensor of shape[ndim] in encoding dt.
 *  @return SB_OK; SB_EFORMAT if the shape does not fit the encoding (row not a
 *  multiple of the block, sub-byte count not whole bytes) or overflows;
 *  SB_EUNSUPPORTED for variable-length encodings. Writes no message: callers
 *  name the file and tensor. */
int sb_dtype_nbytes(enum sb_dtype dt, const int64_t *shape, int ndim,
                    const struct sb_qparams *qp, uint64_t *out);

/*! sb_shape_rows_cols() : rows = product of all but the last dim, cols = last dim
 *  (a 0-d tensor is 1 x 1; a 1-d tensor is 1 x n). 1 on overflow. */
int sb_shape_rows_cols(const int64_t *shape, int ndim, uint64_t *rows, uint64_t *cols);

#endif
