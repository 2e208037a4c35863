/* qnt_cast.h: exact float casts between f32, f16 (IEEE binary16) and bf16
 * (formats.md §6.2, §6.3). Knows bits, not tensors.
 *
 * Rules (the `_ref` functions define them; every fast kernel is bit-identical
 * for all 2^32 / 2^16 inputs, tests/unit/quant/test_cast.c checks it):
 * - f32 -> f16: round to nearest, ties to even; |x| >= 65520 -> ±inf;
 *   subnormal results rounded (never flushed); |x| <= 2^-25 -> ±0.
 *   NaN -> sign kept, quiet bit 0x0200 set, top 10 payload bits kept:
 *   `sign | 0x7E00 | ((u >> 13) & 0x3FF)` (what x86 F16C and numpy do).
 * - f32 -> bf16: round to nearest, ties to even (overflow -> ±inf, subnormals
 *   kept). NaN -> `(u >> 16) | 0x0040` (ggml's and gguf-py's rule: sign and
 *   top 7 payload bits kept, quiet bit forced).
 * - f16 -> f32: exact, subnormals included. A NaN keeps sign and payload and
 *   gets the f32 quiet bit 0x00400000 (an IEEE conversion quiets a signaling
 *   NaN; F16C does the same).
 * - bf16 -> f32: exact, `u = h << 16` (NaNs unchanged).
 * The fast kernels assume the default MXCSR (no DAZ/FTZ); we never set it.
 *
 * Array entry points are thread-safe; x and y must not overlap. */
#ifndef QNT_CAST_H
#define QNT_CAST_H

#include <stddef.h>
#include <stdint.h>

uint16_t qnt_f32_to_f16_ref(float x);
float qnt_f16_to_f32_ref(uint16_t h);
uint16_t qnt_f32_to_bf16_ref(float x);
float qnt_bf16_to_f32_ref(uint16_t h);

/* Scalar loops over the `_ref` functions (the answer the fast kernels must give). */
void qnt_f32_to_f16_array_ref(const float *restrict x, uint16_t *restrict y, size_t n);
void qnt_f16_to_f32_array_ref(const uint16_t *restrict x, float *restrict y, size_t n);
void qnt_f32_to_bf16_array_ref(const float *restrict x, uint16_t *restrict y, size_t n);
void qnt_bf16_to_f32_array_ref(const uint16_t *restrict x, float *restrict y, size_t n);

/* The fastest kernel this CPU runs (sb_cpu.h; SUBBIT_REF_KERNELS=1 in the
 * environment forces the `_ref` loops). n elements, any n. */
void qnt_f32_to_f16(const float *restrict x, uint16_t *restrict y, size_t n);
void qnt_f16_to_f32(const uint16_t *restrict x, float *restrict y, size_t n);
void qnt_f32_to_bf16(const float *restrict x, uint16_t *restrict y, size_t n);
void qnt_bf16_to_f32(const uint16_t *restrict x, float *restrict y, size_t n);

/*! qnt_cast_kernel_name() : "avx512", "f16c" or "ref": the kernel set the
 *  array entry points use. */
const char *qnt_cast_kernel_name(void);

#endif
