/* sb_cpu.h: the one CPU probe. What this machine's CPU can run is read once
 * (the first call, from any thread) and every kernel dispatcher asks here:
 * quant/ (casts, ggml quantizers, matvec, tern, sub1, sub1-qmoe) and
 * formats/ (CRC-32C). Nothing else calls __builtin_cpu_supports or reads
 * the environment for kernel choice.
 *
 * The forced-reference switch: SUBBIT_REF_KERNELS set to a non-empty value
 * other than "0" when the probe runs makes every dispatcher take its `_ref`
 * (or portable) path; tests flip it with sb_cpu_force_ref().
 *
 * Thread safety: sb_cpu_has() and sb_cpu_ref() may be called from any thread
 * at any time (the probe is filled under pthread_once, the switch is an
 * atomic); sb_cpu_force_ref() is for tests, between kernel calls. */
#ifndef SB_CPU_H
#define SB_CPU_H

#include <stdbool.h>

/* Features, as bits; a kernel asks for all the ones its target attribute names. */
enum sb_cpu_feature {
    SB_CPU_SSE42 = 1u << 0,
    SB_CPU_POPCNT = 1u << 1,
    SB_CPU_AVX2 = 1u << 2,
    SB_CPU_FMA = 1u << 3,
    SB_CPU_F16C = 1u << 4,
    SB_CPU_BMI2 = 1u << 5,
    SB_CPU_AVX512F = 1u << 6,
    SB_CPU_AVX512BW = 1u << 7,
    SB_CPU_AVX512VL = 1u << 8,
    SB_CPU_AVX512VBMI2 = 1u << 9,
    SB_CPU_AVX512DQ = 1u << 10,
    SB_CPU_AVX512VNNI = 1u << 11,
    SB_CPU_AVX512BF16 = 1u << 12,
};

/*! sb_cpu_features() : the SB_CPU_* bits this CPU has (0 off x86), whatever
 *  the forced-reference switch says. */
unsigned sb_cpu_features(void);

/*! sb_cpu_ref() : true when the reference kernels are forced. */
bool sb_cpu_ref(void);

/*! sb_cpu_has() : true when the CPU has every feature in mask and the
 *  reference kernels are not forced: what a dispatcher asks before it picks
 *  a fast kernel. */
bool sb_cpu_has(unsigned mask);

/*! sb_cpu_force_ref() : tests only. 1 forces the reference kernels, 0 lets
 *  the fast ones run, -1 goes back to what SUBBIT_REF_KERNELS said. */
void sb_cpu_force_ref(int on);

#endif
