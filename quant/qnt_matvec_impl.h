/* qnt_matvec_impl.h: the matvec kernels' private parts (quant/ and its tests only). */
#ifndef QNT_MATVEC_IMPL_H
#define QNT_MATVEC_IMPL_H

#include <stddef.h>

/* Dot product of two float arrays, summed in float lanes in a fixed order
 * (independent of threads and of the data's alignment). */
typedef float (*qnt_dot_fn)(const float *a, const float *b, size_t n);

float qnt_dot_f32_scalar(const float *a, const float *b, size_t n);
#if defined(__x86_64__) || defined(__i386__)
#define QNT_MATVEC_HAVE_X86 1
int qnt_matvec_cpu_has_avx2(void);   /* avx2 + fma */
float qnt_dot_f32_avx2(const float *a, const float *b, size_t n);
#endif

#endif
