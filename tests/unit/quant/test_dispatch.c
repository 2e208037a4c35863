/* test_dispatch.c: every quant/ dispatcher asks the one CPU probe: forcing the
 * reference (sb_cpu_force_ref, what SUBBIT_REF_KERNELS does) reaches the casts,
 * the ggml quantizers and the matvec at once, and letting the fast kernels run
 * again gives the pick the probe's features imply. */
#include <check.h>
#include <string.h>

#include "qnt_cast.h"
#include "qnt_ggml.h"
#include "qnt_matvec.h"
#include "sb_cpu.h"
#include "test_util.h"

START_TEST(test_dispatch_follows_probe)
{
    sb_cpu_force_ref(1);
    ck_assert_str_eq(qnt_cast_kernel_name(), "ref");
    ck_assert_str_eq(qnt_ggml_kernel_name(), "ref");
    ck_assert_str_eq(qnt_matvec_fast_name(), "ref");
    sb_cpu_force_ref(0);
    const unsigned f = sb_cpu_features();
    const unsigned f16c = SB_CPU_AVX2 | SB_CPU_F16C, fma = f16c | SB_CPU_FMA;
    const unsigned c512 = f16c | SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512VL;
    ck_assert_str_eq(qnt_cast_kernel_name(), (f & c512) == c512   ? "avx512"
                                             : (f & f16c) == f16c ? "f16c"
                                                                  : "ref");
    ck_assert_str_eq(qnt_ggml_kernel_name(), (f & f16c) == f16c ? "avx2" : "ref");
    const unsigned bf = fma | SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512BF16;
    ck_assert_str_eq(qnt_matvec_fast_name(), (f & bf) == bf ? "avx512bf16"
                                             : (f & (fma | SB_CPU_AVX512F)) == (fma | SB_CPU_AVX512F)
                                                 ? "avx512"
                                             : (f & fma) == fma ? "avx2"
                                                                : "scalar");
    sb_cpu_force_ref(-1);
}
END_TEST

TEST_SUITE(quant_dispatch, 0, NULL, NULL,
    TEST(test_dispatch_follows_probe))
