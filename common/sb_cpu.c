/* sb_cpu.c: the CPU probe and the forced-reference switch (sb_cpu.h). */
#include "sb_cpu.h"

#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned features;   /* written once, under `once` */
static int env_ref;         /* SUBBIT_REF_KERNELS, read once */
static int forced = -1;     /* sb_cpu_force_ref: -1 none (atomic) */

static void probe(void)
{
    const char *e = getenv("SUBBIT_REF_KERNELS");
    env_ref = e && *e && strcmp(e, "0") != 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned f = 0;
    __builtin_cpu_init();
    /* __builtin_cpu_supports takes only a string literal: one line a feature */
    f |= __builtin_cpu_supports("sse4.2") ? SB_CPU_SSE42 : 0;
    f |= __builtin_cpu_supports("popcnt") ? SB_CPU_POPCNT : 0;
    f |= __builtin_cpu_supports("avx2") ? SB_CPU_AVX2 : 0;
    f |= __builtin_cpu_supports("fma") ? SB_CPU_FMA : 0;
    /* F16C (CPUID.1:ECX bit 29) asked of the CPU itself: clang before 16
     * knows no "f16c" for __builtin_cpu_supports (the fuzz build is clang 14) */
    unsigned a, b, c, d;
    f |= __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? SB_CPU_F16C : 0;
    f |= __builtin_cpu_supports("bmi2") ? SB_CPU_BMI2 : 0;
    f |= __builtin_cpu_supports("avx512f") ? SB_CPU_AVX512F : 0;
    f |= __builtin_cpu_supports("avx512bw") ? SB_CPU_AVX512BW : 0;
    f |= __builtin_cpu_supports("avx512vl") ? SB_CPU_AVX512VL : 0;
    f |= __builtin_cpu_supports("avx512vbmi2") ? SB_CPU_AVX512VBMI2 : 0;
    f |= __builtin_cpu_supports("avx512dq") ? SB_CPU_AVX512DQ : 0;
    f |= __builtin_cpu_supports("avx512vnni") ? SB_CPU_AVX512VNNI : 0;
    /* AVX512_BF16: CPUID.(7,1):EAX bit 5, asked of the CPU (clang 14 has no name for it) */
    f |= (f & SB_CPU_AVX512F) && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))
             ? SB_CPU_AVX512BF16
             : 0;
    features = f;
#endif
}

unsigned sb_cpu_features(void)
{
    pthread_once(&once, probe);
    return features;
}

bool sb_cpu_ref(void)
{
    pthread_once(&once, probe);
    const int f = __atomic_load_n(&forced, __ATOMIC_ACQUIRE);
    return f >= 0 ? f != 0 : env_ref != 0;
}

bool sb_cpu_has(unsigned mask)
{
    return !sb_cpu_ref() && (sb_cpu_features() & mask) == mask;
}

void sb_cpu_force_ref(int on)
{
    __atomic_store_n(&forced, on < 0 ? -1 : on != 0, __ATOMIC_RELEASE);
}
