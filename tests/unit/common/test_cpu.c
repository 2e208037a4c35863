/* test_cpu.c: the CPU probe (sb_cpu.h): features match what the compiler's
 * own probe says, every thread sees the same answer, and the forced-reference
 * switch overrides it at once and can be handed back to the environment. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "sb_cpu.h"
#include "test_util.h"

START_TEST(test_cpu_features_match_builtin)
{
    const unsigned f = sb_cpu_features();
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    ck_assert_int_eq(!!(f & SB_CPU_AVX2), !!__builtin_cpu_supports("avx2"));
    ck_assert_int_eq(!!(f & SB_CPU_F16C), !!__builtin_cpu_supports("f16c"));
    ck_assert_int_eq(!!(f & SB_CPU_AVX512F), !!__builtin_cpu_supports("avx512f"));
    ck_assert_int_eq(!!(f & SB_CPU_AVX512VBMI2), !!__builtin_cpu_supports("avx512vbmi2"));
    ck_assert_int_eq(!!(f & SB_CPU_SSE42), !!__builtin_cpu_supports("sse4.2"));
#else
    ck_assert_uint_eq(f, 0);
#endif
    /* the probe is filled once: every thread reads the same bits */
    unsigned seen[64] = { 0 };
    int n = 1;
#pragma omp parallel num_threads(4)
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num();
#pragma omp single
        n = omp_get_num_threads();
#else
        const int t = 0;
#endif
        seen[t] = sb_cpu_features();
    }
    for (int t = 0; t < n; t++)
        ck_assert_uint_eq(seen[t], f);
}
END_TEST

START_TEST(test_cpu_force_ref)
{
    const unsigned f = sb_cpu_features();
    sb_cpu_force_ref(1);
    ck_assert(sb_cpu_ref());
    ck_assert(!sb_cpu_has(0));          /* forced: no fast kernel, whatever it needs */
    ck_assert(!sb_cpu_has(f));
    sb_cpu_force_ref(0);
    ck_assert(!sb_cpu_ref());
    ck_assert(sb_cpu_has(0));
    ck_assert(sb_cpu_has(f));
    ck_assert(!sb_cpu_has(f | (1u << 30)));   /* a feature no CPU has */
    sb_cpu_force_ref(-1);                /* back to what SUBBIT_REF_KERNELS said */
    const char *e = getenv("SUBBIT_REF_KERNELS");
    ck_assert_int_eq(sb_cpu_ref(), e && *e && strcmp(e, "0") != 0);
}
END_TEST

TEST_SUITE(common_cpu, 0, NULL, NULL,
    TEST(test_cpu_features_match_builtin), TEST(test_cpu_force_ref))
