/* test_unaligned.c: casts read tensors where a file put them (issue 12 item
 * 3): safetensors data starts wherever the JSON header ends, so an f32 tensor
 * may sit at an address = 2 (mod 4) and f16/bf16 at an odd one. The answers
 * must equal those from aligned copies of the same bytes, and UBSan (the
 * sanitizer pass of tools/test) must see no misaligned load: the scalar tails
 * of 17 elements go through the _ref loops. */
#include <check.h>
#include <string.h>

#include "qnt_cast.h"
#include "test_util.h"

#define N 17

START_TEST(test_casts_at_every_misalignment)
{
    const size_t off = (size_t)_i; /* 1, 2, 3 bytes past an aligned address */
    static float x[N], want32[N], got32[N];
    static uint16_t h[N], want16[N], got16[N];
    static _Alignas(64) unsigned char raw[4 * N + 64];
    test_fill_normal(x, N, 77);
    for (int k = 0; k < 2; k++) {
        void (*to16)(const float *restrict, uint16_t *restrict, size_t) =
            k ? qnt_f32_to_bf16_array_ref : qnt_f32_to_f16_array_ref;
        void (*to16d)(const float *restrict, uint16_t *restrict, size_t) =
            k ? qnt_f32_to_bf16 : qnt_f32_to_f16;
        void (*to32)(const uint16_t *restrict, float *restrict, size_t) =
            k ? qnt_bf16_to_f32 : qnt_f16_to_f32;
        to16(x, want16, N);
        memcpy(raw + off, x, sizeof x);
        to16((const float *)(const void *)(raw + off), got16, N);
        ck_assert_mem_eq(got16, want16, sizeof want16);
        to16d((const float *)(const void *)(raw + off), got16, N);
        ck_assert_mem_eq(got16, want16, sizeof want16);
        memcpy(h, want16, sizeof h);
        to32(h, want32, N);
        memcpy(raw + off, h, sizeof h);
        to32((const uint16_t *)(const void *)(raw + off), got32, N);
        ck_assert_mem_eq(got32, want32, sizeof want32);
    }
    /* the _ref readers themselves, f16 and bf16 at an odd address */
    memcpy(raw + off, h, sizeof h);
    qnt_bf16_to_f32_array_ref((const uint16_t *)(const void *)(raw + off), got32, N);
    ck_assert_mem_eq(got32, want32, sizeof want32);
    qnt_f16_to_f32_array_ref((const uint16_t *)(const void *)(raw + off), got32, N);
    qnt_f16_to_f32_array_ref(h, want32, N);
    ck_assert_mem_eq(got32, want32, sizeof want32);
}
END_TEST

Suite *quant_unaligned_suite(void)
{
    Suite *s = suite_create("quant_unaligned");
    TCase *tc = tcase_create("unaligned");
    tcase_add_loop_test(tc, test_casts_at_every_misalignment, 1, 4);
    suite_add_tcase(s, tc);
    return s;
}
