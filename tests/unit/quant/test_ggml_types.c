/* test_ggml_types.c: the other ggml block types (qnt_ggml_types.h).
 * - golden hashes from ggml itself: for 11 types x 14 input kinds (below), the
 *   bytes of ggml_quantize_chunk(type, x, ..., imatrix = NULL) - llama-quantize's
 *   call - and of dequantize_row_<type> on those bytes, taken from libggml-base
 *   of ggml-org/llama.cpp 81ff7abe5 built outside the repository (CPU, Release, no
 *   AMX) by a separate C program (not in the repo) that fills x with a copy of
 *   fill_kind() below and hashes with FNV-1a 64 (q8_K, which llama-quantize never
 *   writes, through quantize_row_q8_K_ref; its output buffer zeroed first, as ggml
 *   leaves the bsums of an all-zero q8_K block untouched and we write zeros). The
 *   same program also ran our kernels
 *   on 120 more input sets per type, and on random block bytes (NaN and inf
 *   scales included) for the dequantizers: all equal;
 * - blocks worked out by hand from the rules in qnt_ggml_types.h;
 * - the fast quantizers (AVX2 group fits) write the `_ref` bytes;
 * - dots: the scalar-lane, AVX2 and AVX-512 kernels give the same float, within
 *   1e-5 * sum |w||x| of the double `_ref`; a matvec does not depend on threads;
 * - dequantize(quantize(x)) within a per-type error bound. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qnt_ggml_types.h"
#include "qnt_ggml_types_impl.h"
#include "test_util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define GN 2048   /* elements per golden input: 8 super-blocks, 64 blocks of 32 */
#define NKIND 14

/* Input kind k (the oracle program holds a copy of this function). */
static void fill_kind(float *x, size_t n, int k)
{
    test_fill_normal(x, n, 1000u + (unsigned)k);
    switch (k) {
    case 0: break;                                                  /* N(0,1) */
    case 1: for (size_t i = 0; i < n; i++) x[i] *= 0.02f; break;    /* weight-like */
    case 2: test_fill_uniform(x, n, 77u, -1.0f, 1.0f); break;
    case 3:                                                         /* outliers */
        for (size_t i = 0; i < n; i++)
            x[i] *= i % 97 == 0 ? 40.0f : 0.01f;
        break;
    case 4:                                                         /* zero super-blocks 0, 3, 6 */
        for (size_t i = 0; i < n; i++)
            if ((i / 256) % 3 == 0)
                x[i] = 0.0f;
        break;
    case 5:                                                         /* every 5th group of 16 zero */
        for (size_t i = 0; i < n; i++)
            if ((i / 16) % 5 == 0)
                x[i] = 0.0f;
        break;
    case 6: for (size_t i = 0; i < n; i++) x[i] = roundf(x[i] * 4.0f) / 4.0f; break;   /* ties */
    case 7: for (size_t i = 0; i < n; i++) x[i] *= 1e-20f; break;   /* scales below fp16 */
    case 8: for (size_t i = 0; i < n; i++) x[i] *= 1e4f; break;     /* large, fp16 still finite */
    case 9: for (size_t i = 0; i < n; i++) x[i] = -fabsf(x[i]) - 0.5f; break;   /* all negative */
    case 10:                                                        /* constant blocks of 32 */
        for (size_t i = 0; i < n; i++)
            x[i] = (i / 32) % 4 == 1 ? 3.0f : fabsf(x[i]);
        break;
    case 11:                                                        /* a small grid: exact levels */
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((int)(fabsf(x[i]) * 1000.0f) % 17 - 8) * 0.125f;
        break;
    case 12: memset(x, 0, n * sizeof *x); break;                    /* all zero */
    case 13:                                                        /* a negative extreme per 16 */
        for (size_t i = 0; i < n; i++)
            if (i % 16 == 3)
                x[i] = -6.0f;
        break;
    }
}

static const struct {
    enum sb_dtype dt;
    uint64_t q[NKIND], dq[NKIND];
} golden[] = {
    { SB_DTYPE_Q4_1,
      { 0x4f2a78bdc21a6d72ull, 0x5f6c1e78dc04f3a2ull, 0x5ea94043228fd20bull,
        0x2e9c967806c5f2adull, 0x24d0130c6dfc5f73ull, 0xc81f7330adc872faull,
        0x09240d46b7a2aa93ull, 0xc919b654555d4f29ull, 0xfdbeff4d3f110328ull,
        0xa0a85a975d1b9f80ull, 0xf9883f01cb668d46ull, 0xe191fe69d00cdabfull,
        0x963548a7b7b20725ull, 0x5023324cecfa81a0ull, },
      { 0xc57d775d9b3b65ccull, 0xd38ccf764bc456f0ull, 0x21d3f79420b07f31ull,
        0x93e51130ea71abfdull, 0x79d6b9164af1aee7ull, 0x08d6c28ac23ee69cull,
        0x5aa272f490b3a1b4ull, 0xb9d103fd6854a325ull, 0x2c3f852d5d314baeull,
        0x0eaa4f1ed3344c42ull, 0x1a6cdbb20379d235ull, 0xdda19ad4dc88b636ull,
        0xb9d103fd6854a325ull, 0x5818a8503d7481a3ull, } },
    { SB_DTYPE_Q5_0,
      { 0x18d086449dd19dc9ull, 0x0f242a57599f8a1eull, 0xd9d0eeb8e5f37c05ull,
        0xf943961ece694923ull, 0x5fe28c3409ea4ccdull, 0xe4a02c6768416130ull,
        0x8fe821297531b446ull, 0x6f7525d17da68915ull, 0x1f89abbde3d7b976ull,
        0x41cb433daf9a5bf0ull, 0xcaeefe59fa74dc46ull, 0xfd0bf9761f6559c7ull,
        0xea001e5ae1603e25ull, 0xb139f728f410ed1dull, },
      { 0x92f613db20f23b3full, 0x2a218f7101ce2ec9ull, 0x54c8635a3c7902c3ull,
        0x4124261d2d6c4ae7ull, 0x4b1b3e055efdede6ull, 0x8e0848d5d9da4246ull,
        0x43e9e7fb08593df8ull, 0x3df05bb8a6bb3b25ull, 0xeb4170c7a4db4838ull,
        0x9f3d00c866f830f2ull, 0x4201cab9a3fbe6b2ull, 0x49fd2eabc4e94ed2ull,
        0xa7fe97a26854a325ull, 0x061f53b8d2400ba5ull, } },
    { SB_DTYPE_Q5_1,
      { 0x2d4c7ad05373e697ull, 0x3438cadce700900aull, 0xdf0667452b4c3726ull,
        0xa0681c6d3b9f38b3ull, 0xba869e175389a388ull, 0x0d3818c6f9cee62full,
        0xcb0718c4b784937eull, 0x208e7db628d31bafull, 0x1b3d66a69ca625dfull,
        0x0bd829e6e7b5e46full, 0x027b3a92a4296df4ull, 0x1623ebbf4bd786c2ull,
        0x6ab05ef9aa8b9b25ull, 0xc0bfd7340cd6d7a8ull, },
      { 0x6ace27c96fc41bbcull, 0x19cda54ce4687b27ull, 0x54680754e4c1d399ull,
        0x8019ffd9d4bb7f7cull, 0x5b1613bf20604e04ull, 0x723d441ea00ae76full,
        0x2b0cda3d85fdbd4cull, 0xb9d103fd6854a325ull, 0x1c603b58c4a88107ull,
        0xe08d8fbb396b9ce3ull, 0x8363a13de303cd95ull, 0x97318ef80d7f4233ull,
        0xb9d103fd6854a325ull, 0x54249e6a4f20d84cull, } },
    { SB_DTYPE_Q2_K,
      { 0xac0d04cf1027fb53ull, 0x659758de570291faull, 0x1558f356fe2d5302ull,
        0x7bed445c08e53a75ull, 0x25dda44f9f9a8240ull, 0x4664d11b426ecf99ull,
        0xa0f6c798ffada839ull, 0xa33c0877c15c3c82ull, 0xba55718a1db836bdull,
        0xaac4871f32c451cfull, 0xcf981233d65fb996ull, 0x46caf7ce92b05a12ull,
        0x82342c0a6891e7a5ull, 0x40f57488e0033de5ull, },
      { 0x69a11378cd021d9eull, 0x9a4f1e831c870de4ull, 0x29a54b9d0a2e9e42ull,
        0x41de929be12b001aull, 0x290a1c5fb57ff305ull, 0x17dd025cc19aeaddull,
        0x3c14c926a85e5ea6ull, 0xb9d103fd6854a325ull, 0xec636c2598ac87c3ull,
        0x790d7ae6e0c348d8ull, 0x914f37a325cfd3e6ull, 0xaad3e97dc3312274ull,
        0xb9d103fd6854a325ull, 0x233749cadcf95824ull, } },
    { SB_DTYPE_Q3_K,
      { 0xf2a989c79b649accull, 0xa1fefb99353e2e80ull, 0xdaa87f9d49d750efull,
        0x9016b531c072e167ull, 0x939da0d5b7ca9182ull, 0xb8cf7aab9b99035bull,
        0x549e4a3968625ba9ull, 0x064bd2022b6d37e5ull, 0x3f158bca70b1e398ull,
        0x8d36c2ce83765c40ull, 0xa89db5d9bec4a2cdull, 0x633cdb8727660ae0ull,
        0x064bd2022b6d37e5ull, 0xb1e18d3372370c26ull, },
      { 0x4cea2d221d3bfcf1ull, 0xe85d6a3d4ebf82ebull, 0x42721da4885551ffull,
        0xd55ec463cfe541bcull, 0xee4c0a9cfc58c8bcull, 0x290bbfba1fe9a9e5ull,
        0x2b5eb4236ad4d145ull, 0xb9d103fd6854a325ull, 0x77c6c6284cebaa03ull,
        0x1ad6088cd2dfd70dull, 0xa34a4437ea1013bdull, 0x49a67bb1cb26efc5ull,
        0xb9d103fd6854a325ull, 0xb6b9cd06d4471b79ull, } },
    { SB_DTYPE_Q4_K,
      { 0x2493a8a8b4992097ull, 0x896b672b2eb1261bull, 0xd9a22d48d3ff1939ull,
        0xbf217f350bad7719ull, 0x1e62e4bdaeabfcdaull, 0x0284ec7ce170fb6eull,
        0x3f0105ecff5e3f1cull, 0x1fbd56184cdfe4f0ull, 0xb7a458a320263274ull,
        0xcb0fab9f8fe0ce5full, 0x567bb4039ed6e880ull, 0xe7ea68334f380c62ull,
        0x36fe4d3f1c233d25ull, 0xb4c9fc5658f16fdcull, },
      { 0x93ccc21d20ab1e88ull, 0xac8cb57ebe02f87bull, 0x1b10125024ac89a9ull,
        0x0517ffdf2603435bull, 0x26209e017197bb89ull, 0x509cb39c65fd8011ull,
        0xfa796b91ae9ee05bull, 0xb9d103fd6854a325ull, 0x729cfe9f75e62984ull,
        0x93fbb10c002de5e2ull, 0xc4a1b1633508f005ull, 0x95b15b236b8c2099ull,
        0xb9d103fd6854a325ull, 0xf1efa824bff59940ull, } },
    { SB_DTYPE_Q5_K,
      { 0x6fdca123be44b85eull, 0x7d6580b72bec870cull, 0x7ea12d6e41ce220eull,
        0xdf9acf99a4c4a6c4ull, 0xd408729dba4005afull, 0x78167a2aa27d8282ull,
        0xcd9965e4926def0eull, 0x3ec607b5cd161352ull, 0x3ce2cb12142f1bb4ull,
        0xb53203456e68a900ull, 0xd384c69e2eeb6341ull, 0xaaab92f1c2c3a610ull,
        0x5135e870d9d4d125ull, 0xb304a637565c1702ull, },
      { 0xbb94b9df6269235bull, 0x621d5253be701ad7ull, 0xf35c78116e0dece7ull,
        0x1236d9112ce5a463ull, 0x104da9c992a6cbedull, 0xd30d309452339a21ull,
        0x9c191c5b8077b6dfull, 0xb9d103fd6854a325ull, 0xcf41e16687622489ull,
        0xd76cf66047419c82ull, 0x56dddd396af603d4ull, 0x10413639418ecfd7ull,
        0xb9d103fd6854a325ull, 0xa56422ca832c2835ull, } },
    { SB_DTYPE_Q6_K,
      { 0x297a7963465b3cffull, 0xa55bc0646f27b29aull, 0x900ad473761baa92ull,
        0x73cceb2cc38b7b34ull, 0x80d898a00e1c2a2dull, 0xf80706b161c4e926ull,
        0x2bcfb94c508eb2c7ull, 0x26dfcaf1ebf42665ull, 0xc6f15498b30cf5daull,
        0x8e2f592b5a8d7462ull, 0xf57560b347109565ull, 0x303aca7a20d2b589ull,
        0x26dfcaf1ebf42665ull, 0xa5734bcc82baa917ull, },
      { 0x2ca5a0ad45ff853bull, 0xd2c62eefc0b37577ull, 0x95980448b8323618ull,
        0x31e83fe7c9ebc07bull, 0xe620e84879d114d2ull, 0x564004696fa860deull,
        0x5dd8dccd7b972c91ull, 0xa7fe97a26854a325ull, 0xedffe811974b3e8dull,
        0xc4473cadca861225ull, 0xb728a6b0bf501777ull, 0xc2a2278278414bfdull,
        0xa7fe97a26854a325ull, 0x5b0a2c8794e0df85ull, } },
    { SB_DTYPE_Q8_K,
      { 0x7e932f2add0d0c14ull, 0x96fcd0d48a27b110ull, 0xa0b020b90d02b7c5ull,
        0x85a59f9f602e9d2dull, 0x7da92a0de6712992ull, 0x10796913cbe4b423ull,
        0xc568737ddb7ffe99ull, 0xc30ef2148cfab416ull, 0x5b856e00fefe7016ull,
        0x2f98aabd369ca782ull, 0xfedbc9c72bfd6209ull, 0x5e4f39d7cdc4452aull,
        0x39e9fbae5a7b29a5ull, 0x99b7cdedaa3cdc26ull, },
      { 0x6fdf6598bc1bed69ull, 0xe0e911e8c79a9205ull, 0x8bcb2634a4ecaec3ull,
        0x82a643d495f29687ull, 0x7f244b512aa676eaull, 0x60524d06e8177343ull,
        0x1046dbb77d99d45bull, 0x266d2956e0d14d91ull, 0x17fb35523d41fbd7ull,
        0xb5cf636c22df305full, 0x463a61ea243f6d51ull, 0x9eefbcba30e156f4ull,
        0xb9d103fd6854a325ull, 0x44da006eaa8c2f87ull, } },
    { SB_DTYPE_IQ4_NL,
      { 0xea66b12a62538f2aull, 0x1ba7af73eeccb014ull, 0x49b6df9b8ca13f61ull,
        0xe5956083e786a3a7ull, 0xfa690cfb1c1ef659ull, 0x7d0c0aca4b11ac10ull,
        0x27a1e379f9cc4e33ull, 0x1101150a1a6f3d25ull, 0xa5dc0094a1cd5e32ull,
        0xfee850c3adc0fa2full, 0x15c7956445deba3cull, 0x29602b700f5236eeull,
        0x1101150a1a6f3d25ull, 0x6ab207ab1e745e53ull, },
      { 0x7395973b4fb900deull, 0x5026b4e1ce5ba67eull, 0x834a7130480f83c8ull,
        0x85c7a3cb26a70de6ull, 0xf1a1021b87431623ull, 0xa1d9b4c1287342a1ull,
        0x3e433ebaba562160ull, 0xb9d103fd6854a325ull, 0x73a7efbc15cd0223ull,
        0xcedff18c6f21022bull, 0xb7032f06cda43707ull, 0xca8f8376b64975e7ull,
        0xb9d103fd6854a325ull, 0x9f466da9013def3cull, } },
    { SB_DTYPE_IQ4_XS,
      { 0x9b0dc67393f771d5ull, 0xd241159f9b0f787aull, 0x4eb0b11e76319671ull,
        0x54e4d398d2ae2631ull, 0x74c1a4c2245772e8ull, 0x90ed1233a2db10deull,
        0x40e00f5782deb256ull, 0x7c9267de8244cbe5ull, 0xd1aba94294d55f24ull,
        0x7d6b3101a74b0286ull, 0x2772f4acad61d62aull, 0x77c95de9b39190b4ull,
        0x7c9267de8244cbe5ull, 0xb3c7d9b6c9153d38ull, },
      { 0xe45a54b89a813810ull, 0x9b076beefe4591a7ull, 0x599bd23afdbd54fbull,
        0x2c935d67f23656e0ull, 0x95de6343e84de70aull, 0x5c130b80606e992bull,
        0x763d474d77934e50ull, 0xa7fe97a26854a325ull, 0x82d00032adf46ef0ull,
        0xbdcb4aff0462b134ull, 0x996dbd4c5cc3ada3ull, 0x08173525be3558d7ull,
        0xa7fe97a26854a325ull, 0xd80508dcb22ed3c7ull, } },
};

START_TEST(test_golden_ggml)
{
    const struct qnt_ggml_type *t = qnt_ggml_type_get(golden[_i].dt);
    ck_assert_ptr_nonnull(t);
    static float x[GN], y[GN];
    static uint8_t q[GN * 2], q2[GN * 2];
    const size_t bytes = GN / t->blck * t->block_bytes;
    for (int k = 0; k < NKIND; k++) {
        fill_kind(x, GN, k);
        memset(q, 0xA5, sizeof q);
        t->quantize_ref(x, q, GN);
        const uint64_t hq = test_fnv1a64(q, bytes);
        t->quantize(x, q2, GN);
        ck_assert_msg(memcmp(q, q2, bytes) == 0, "%s kind %d: quantize != quantize_ref", t->name, k);
        t->dequantize(q, y, GN);
        const uint64_t hd = test_fnv1a64(y, sizeof y);
        if (getenv("SUBBIT_PRINT_GOLDEN"))
            printf("%s kind %d 0x%016llxull 0x%016llxull\n", t->name, k, (unsigned long long)hq,
                   (unsigned long long)hd);
        ck_assert_msg(hq == golden[_i].q[k], "%s kind %d: quantized bytes 0x%016llx, ggml 0x%016llx",
                      t->name, k, (unsigned long long)hq, (unsigned long long)golden[_i].q[k]);
        ck_assert_msg(hd == golden[_i].dq[k], "%s kind %d: dequantized 0x%016llx, ggml 0x%016llx",
                      t->name, k, (unsigned long long)hd, (unsigned long long)golden[_i].dq[k]);
    }
}
END_TEST

/* Worked by hand from the rules (qnt_ggml_types.h, ggml's quantize_row_*_ref). */
START_TEST(test_handworked)
{
    float x[256] = { 0 }, y[256];
    /* q5_0: m = -16 (first of the two magnitudes 16) -> d = 1, codes trunc(x + 16.5) capped at 31 */
    x[0] = -16.0f; x[1] = 15.0f; x[2] = 16.0f; x[3] = 0.5f; x[4] = -0.5f; x[5] = 2.25f;
    struct qnt_block_q5_0 b5;
    qnt_q5_0_quantize_ref(x, &b5, 32);
    ck_assert_uint_eq(b5.d, 0x3C00);
    static const uint8_t qs5[16] = { 0x00, 0x0F, 0x0F, 0x01, 0x00, 0x02 };  /* codes 0,31,31,17,16,18,16.. */
    ck_assert_mem_eq(b5.qs, qs5, 16);
    static const uint8_t qh5[4] = { 0xFE, 0xFF, 0xFF, 0xFF };   /* 5th bits: every code but the first */
    ck_assert_mem_eq(b5.qh, qh5, 4);
    qnt_q5_0_dequantize(&b5, y, 32);
    ck_assert(y[0] == -16.0f && y[1] == 15.0f && y[2] == 15.0f && y[3] == 1.0f && y[4] == 0.0f);

    /* q8_K: max = -127 -> iscale 1, d = 1 (f32); codes round half to EVEN (ggml's nearest_int) */
    memset(x, 0, sizeof x);
    x[0] = -127.0f; x[1] = 2.5f; x[2] = 3.5f; x[3] = -2.5f; x[20] = 0.5f; x[21] = 1.5f;
    struct qnt_block_q8_K b8;
    qnt_q8_K_quantize_ref(x, &b8, 256);
    ck_assert(b8.d == 1.0f);
    ck_assert_int_eq(b8.qs[0], -127);
    ck_assert_int_eq(b8.qs[1], 2);
    ck_assert_int_eq(b8.qs[2], 4);
    ck_assert_int_eq(b8.qs[3], -2);
    ck_assert_int_eq(b8.qs[20], 0);
    ck_assert_int_eq(b8.qs[21], 2);
    ck_assert_int_eq(b8.bsums[0], -127 + 2 + 4 - 2);
    ck_assert_int_eq(b8.bsums[1], 2);

    /* all-zero input: q6_K is all zero bytes; iq4_nl d = 0 and every index 8 (level 1,
     * the nearest to 0); iq4_xs d = -0/32 = -0 (0x8000), sub-scales 0 stored as 32
     * (low nibbles 0, high bits 2), indices 8 */
    memset(x, 0, sizeof x);
    struct qnt_block_q6_K b6;
    memset(&b6, 0x5A, sizeof b6);
    qnt_q6_K_quantize_ref(x, &b6, 256);
    static const uint8_t zero[210];
    ck_assert_mem_eq(&b6, zero, sizeof b6);
    struct qnt_block_iq4_nl bn;
    qnt_iq4_nl_quantize_ref(x, &bn, 32);
    ck_assert_uint_eq(bn.d, 0);
    for (int j = 0; j < 16; j++)
        ck_assert_uint_eq(bn.qs[j], 0x88);
    struct qnt_block_iq4_xs bx;
    qnt_iq4_xs_quantize_ref(x, &bx, 256);
    ck_assert_uint_eq(bx.d, 0x8000);
    ck_assert_uint_eq(bx.scales_h, 0xAAAA);
    for (int j = 0; j < 4; j++)
        ck_assert_uint_eq(bx.scales_l[j], 0);
    for (int j = 0; j < 128; j++)
        ck_assert_uint_eq(bx.qs[j], 0x88);
    qnt_iq4_xs_dequantize(&bx, y, 256);
    for (int j = 0; j < 256; j++)
        ck_assert(y[j] == 0.0f);
}
END_TEST

static const enum sb_dtype all_types[] = {
    SB_DTYPE_Q4_1, SB_DTYPE_Q5_0, SB_DTYPE_Q5_1, SB_DTYPE_Q2_K, SB_DTYPE_Q3_K, SB_DTYPE_Q4_K,
    SB_DTYPE_Q5_K, SB_DTYPE_Q6_K, SB_DTYPE_Q8_K, SB_DTYPE_IQ4_NL, SB_DTYPE_IQ4_XS,
};
#define NTYPES ((int)(sizeof all_types / sizeof all_types[0]))

/* The unsuffixed quantizers (AVX2 group fits for q2_K, q4_K, q5_K, q6_K) write
 * the `_ref` bytes: 40 inputs per type, every input kind, with random scales
 * per super-block so that trials win at different steps in different lanes. */
START_TEST(test_quantize_fast_is_ref)
{
    const struct qnt_ggml_type *t = qnt_ggml_type_get(all_types[_i]);
    enum { N = 4096 };
    static float x[N];
    static uint8_t a[N / 256 * 292], b[N / 256 * 292];
    const size_t bytes = N / t->blck * t->block_bytes;
    for (int seed = 0; seed < 40; seed++) {
        fill_kind(x, N, seed % NKIND);
        uint64_t st = 77u + (unsigned)seed;
        for (size_t blk = 0; blk < N / 256; blk++) {
            const float sc = (float)(1 + test_rand_u64(&st) % 1000) * 0.003f;
            for (size_t j = 0; j < 256; j++)
                x[256 * blk + j] *= sc;
        }
        if (seed % 5 == 4)                      /* one flat group of 16 and 32 */
            for (size_t j = 512; j < 560; j++)
                x[j] = 0.75f;
        t->quantize_ref(x, a, N);
        t->quantize(x, b, N);
        ck_assert_msg(memcmp(a, b, bytes) == 0, "%s seed %d: quantize != quantize_ref", t->name, seed);
    }
}
END_TEST

START_TEST(test_type_table)
{
    static const struct { const char *name; size_t blck, bytes; } want[] = {
        { "q4_1", 32, 20 }, { "q5_0", 32, 22 }, { "q5_1", 32, 24 }, { "q2_K", 256, 84 },
        { "q3_K", 256, 110 }, { "q4_K", 256, 144 }, { "q5_K", 256, 176 }, { "q6_K", 256, 210 },
        { "q8_K", 256, 292 }, { "iq4_nl", 32, 18 }, { "iq4_xs", 256, 136 },
    };
    for (int i = 0; i < NTYPES; i++) {
        const struct qnt_ggml_type *t = qnt_ggml_type_get(all_types[i]);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->dt, all_types[i]);
        ck_assert_str_eq(t->name, want[i].name);
        ck_assert_uint_eq(t->blck, want[i].blck);
        ck_assert_uint_eq(t->block_bytes, want[i].bytes);
    }
    ck_assert_ptr_null(qnt_ggml_type_get(SB_DTYPE_Q8_0));
    ck_assert_ptr_null(qnt_ggml_type_get(SB_DTYPE_IQ2_XXS));
    ck_assert_ptr_null(qnt_ggml_type_get(SB_DTYPE_F32));
}
END_TEST

/* Dots: every ISA this CPU has gives the same float; all within 1e-5 of `_ref`
 * relative to sum |w||x|. _i picks the type. */
START_TEST(test_dot_isas)
{
    const struct qnt_ggml_type *t = qnt_ggml_type_get(all_types[_i]);
    const struct qnt_gx_layout *l = qnt_gx_layout_get(all_types[_i]);
    static const size_t ns[] = { 256, 2048, 65536 };
    const size_t nmax = 65536;
    float *x = malloc(nmax * sizeof *x), *w = malloc(nmax * sizeof *w), *wd = malloc(nmax * sizeof *wd);
    uint8_t *q = malloc(nmax / t->blck * t->block_bytes);
    for (int s = 0; s < 3; s++) {
        const size_t n = ns[s];
        test_fill_normal(w, n, 500u + (unsigned)s);
        test_fill_normal(x, n, 600u + (unsigned)s);
        for (size_t j = 0; j < n; j += 7)
            w[j] *= 5.0f;                               /* some spread in the scales */
        t->quantize_ref(w, q, n);
        t->dequantize(q, wd, n);
        double mag = 0;
        for (size_t j = 0; j < n; j++)
            mag += fabs((double)wd[j] * x[j]);
        const float ref = t->dot_ref(q, x, n);
        const float sc = qnt_gx_dot_scalar(l, q, x, n);
        ck_assert_msg(fabs((double)sc - ref) <= 1e-5 * mag, "%s n %zu scalar %g ref %g", t->name, n,
                      (double)sc, (double)ref);
        static const char *isas[] = { "scalar", "avx2", "avx512" };
        for (int k = 0; k < 3; k++) {
            if (qnt_ggml_types_set_isa(isas[k]) != 0)
                continue;
            const float f = t->dot(q, x, n);
            ck_assert_msg(f == sc, "%s n %zu %s %.9g != scalar %.9g", t->name, n, isas[k], (double)f,
                          (double)sc);
        }
        qnt_ggml_types_set_isa(NULL);
    }
    free(q);
    free(wd);
    free(w);
    free(x);
}
END_TEST

START_TEST(test_matvec_threads)
{
    const struct qnt_ggml_type *t = qnt_ggml_type_get(all_types[_i]);
    enum { R = 37, C = 1024 };
    static float w[R * C], x[C], y1[R], y4[R], yr[R];
    static uint8_t q[R * C / 256 * 292];
    test_fill_normal(w, R * C, 41);
    test_fill_normal(x, C, 42);
    t->quantize_ref(w, q, R * C);
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    qnt_ggml_type_matvec(t, q, R, C, x, y1, 0);
#ifdef _OPENMP
    omp_set_num_threads(4);
#endif
    qnt_ggml_type_matvec(t, q, R, C, x, y4, 0);
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
    ck_assert_mem_eq(y1, y4, sizeof y1);
    qnt_ggml_type_matvec(t, q, R, C, x, yr, 1);
    const size_t rb = C / t->blck * t->block_bytes;
    for (int r = 0; r < R; r++) {
        ck_assert(y1[r] == t->dot(q + (size_t)r * rb, x, C));
        ck_assert(yr[r] == t->dot_ref(q + (size_t)r * rb, x, C));
    }
}
END_TEST

/* RMS error of dequantize(quantize(x)) over N(0,1) data, relative to rms(x): a
 * sanity bound about 1.3x what these kernels give (measured: q4_1 .079, q5_0
 * .043, q5_1 .038, q2_K .298, q3_K .152, q4_K .072, q5_K .036, q6_K .018, q8_K
 * .0069, iq4_nl .077, iq4_xs .077); the bytes themselves are pinned by the
 * golden test. */
START_TEST(test_roundtrip_bounds)
{
    static const double bound[] = { 0.10, 0.056, 0.05, 0.39, 0.20, 0.095, 0.047, 0.024, 0.009,
                                    0.10, 0.10 };
    const struct qnt_ggml_type *t = qnt_ggml_type_get(all_types[_i]);
    enum { N = 16384 };
    static float x[N], y[N];
    static uint8_t q[N / 256 * 292];
    test_fill_normal(x, N, 9);
    t->quantize_ref(x, q, N);
    t->dequantize(q, y, N);
    double e2 = 0, x2 = 0;
    for (int i = 0; i < N; i++) {
        e2 += (double)(y[i] - x[i]) * (y[i] - x[i]);
        x2 += (double)x[i] * x[i];
    }
    const double rel = sqrt(e2 / x2);
    if (getenv("SUBBIT_PRINT_GOLDEN"))
        printf("%s relative rms error %.4f\n", t->name, rel);
    ck_assert_msg(rel < bound[_i], "%s: relative rms error %.4f >= %.3f", t->name, rel, bound[_i]);
}
END_TEST

Suite *quant_ggml_types_suite(void)
{
    Suite *s = suite_create("quant_ggml_types");
    TCase *tc = tcase_create("ggml_types");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_golden_ggml, 0, (int)(sizeof golden / sizeof golden[0]));
    tcase_add_test(tc, test_handworked);
    tcase_add_test(tc, test_type_table);
    tcase_add_loop_test(tc, test_quantize_fast_is_ref, 0, NTYPES);
    tcase_add_loop_test(tc, test_dot_isas, 0, NTYPES);
    tcase_add_loop_test(tc, test_matvec_threads, 0, NTYPES);
    tcase_add_loop_test(tc, test_roundtrip_bounds, 0, NTYPES);
    suite_add_tcase(s, tc);
    return s;
}
