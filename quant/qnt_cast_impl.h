/* qnt_cast_impl.h: the cast kernel table (quant/ and its tests only). */
#ifndef QNT_CAST_IMPL_H
#define QNT_CAST_IMPL_H

#include <stddef.h>
#include <stdint.h>

struct qnt_cast_kernels {
    const char *name;
    void (*f32_to_f16)(const float *restrict, uint16_t *restrict, size_t);
    void (*f16_to_f32)(const uint16_t *restrict, float *restrict, size_t);
    void (*f32_to_bf16)(const float *restrict, uint16_t *restrict, size_t);
    void (*bf16_to_f32)(const uint16_t *restrict, float *restrict, size_t);
};

/* Every kernel set this CPU can run, fastest first, the `_ref` set last;
 * returns the count (at most 3). */
int qnt_cast_kernels_available(const struct qnt_cast_kernels **out, int max);

#if defined(__x86_64__) || defined(__i386__)
#define QNT_HAVE_X86 1
extern const struct qnt_cast_kernels qnt_cast_kernels_f16c;
extern const struct qnt_cast_kernels qnt_cast_kernels_avx512;
#endif

#endif
