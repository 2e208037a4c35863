/* sb_math.h: checked size arithmetic. Every product of sizes read from a file
 * goes through these; they return 1 on overflow (and leave *out unspecified). */
#ifndef SB_MATH_H
#define SB_MATH_H

#include <stddef.h>
#include <stdint.h>

static inline int sb_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline int sb_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}
static inline int sb_mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline int sb_add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}
/* A number read from a file (JSON numbers are doubles) as an integer without
 * undefined behaviour: out of range saturates, NaN gives 0, so the caller's
 * range checks see a value that is plainly wrong, never a wrapped one. */
static inline int32_t sb_f64_to_i32(double v)
{
    return v != v ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN
                                                                          : (int32_t)v;
}
static inline int64_t sb_f64_to_i64(double v)
{
    return v != v ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                      : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
}
/* Round x up to a multiple of a (a a power of two); 1 on overflow. */
static inline int sb_align_u64(uint64_t x, uint64_t a, uint64_t *out)
{
    uint64_t t;
    if (__builtin_add_overflow(x, a - 1, &t))
        return 1;
    *out = t & ~(a - 1);
    return 0;
}
/* Product of n dims; 1 on overflow or a negative dim. */
static inline int sb_shape_numel(const int64_t *shape, int n, uint64_t *out)
{
    uint64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(p, (uint64_t)shape[i], &p))
            return 1;
    }
    *out = p;
    return 0;
}

#endif
