/* test_out.c: fmt_out, the atomic writer every output goes through.
 *
 * Outputs larger than the 8 MiB write buffer leave it in whole buffers at
 * buffer-multiple offsets (O_DIRECT where the file system has it) and the
 * rest buffered; header patches (fmt_out_pwrite) land either in the file or
 * in the buffer. The expected bytes are built independently in memory: the
 * same pseudo-random stream, with the patches applied by memcpy. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "fmt_out.h"
#include "sb_alloc.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)

static void teardown(void)
{
    sb_alloc_fail_after(-1);
    fmt_out_fail_write_after(-1);
    test_tmpdir_cleanup();
}

static uint8_t *pattern(size_t n, uint64_t seed)
{
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(test_rand_u64(&seed) >> 56);
    return b;
}

/* sizes around the buffer and block edges; writes in pieces of odd sizes */
static const size_t sizes[] = { 0, 1, 4095, 4096, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1,
                                16 * MiB + 4096, 21 * MiB + 12345 };
#define N_SIZES (sizeof sizes / sizeof sizes[0])

START_TEST(test_write_patch_readback)
{
    const size_t n = sizes[_i % N_SIZES];
    const int big_writes = _i >= (int)N_SIZES;
    uint8_t *want = pattern(n ? n : 1, 42 + n);
    const char *path = test_tmpfile("out.bin");
    struct fmt_out o;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_out_open(&o, path, 0, &err), SB_OK);
    size_t off = 0, step = big_writes ? 3 * MiB + 7 : 777;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        ck_assert_int_eq(fmt_out_write(&o, want + off, k, &err), SB_OK);
        off += k;
        /* patch 5 bytes at a few earlier places: start, just below and at the
         * flush boundary, and near the current end */
        size_t at[4] = { 0, off > 8 * MiB ? 8 * MiB - 3 : 0, off > 8 * MiB ? 8 * MiB : 0,
                         off > 5 ? off - 5 : 0 };
        for (int j = 0; j < 4; j++) {
            if (at[j] + 5 > off)
                continue;
            uint8_t patch[5] = { (uint8_t)off, (uint8_t)(off >> 8), (uint8_t)j, 0xA5, 0x5A };
            memcpy(want + at[j], patch, 5);
            ck_assert_int_eq(fmt_out_pwrite(&o, patch, 5, at[j], &err), SB_OK);
        }
        ck_assert_uint_eq(fmt_out_tell(&o), off);
    }
    uint8_t z = 0;
    ck_assert_int_eq(fmt_out_pwrite(&o, &z, 1, n, &err), SB_EINVAL); /* past the end */
    ck_assert_int_eq(fmt_out_commit(&o, &err), SB_OK);
    size_t len = 0;
    char *got = test_read_file(path, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, n);
    ck_assert_msg(memcmp(got, want, n) == 0, "bytes differ for size %zu", n);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1); /* no temp left beside it */
    free(got);
    free(want);
}
END_TEST

/* a write failure anywhere in a large output leaves no file behind */
START_TEST(test_fail_leaves_nothing)
{
    const size_t n = 20 * MiB + 100;
    uint8_t *b = pattern(n, 7);
    const char *path = test_tmpfile("f.bin");
    int done = 0;
    for (long k = 0; k < 20 && !done; k++) {
        struct fmt_out o;
        struct sb_err err = { 0 };
        ck_assert_int_eq(fmt_out_open(&o, path, 0, &err), SB_OK);
        fmt_out_fail_write_after(k);
        int r = SB_OK;
        for (size_t off = 0; off < n && r == SB_OK; off += MiB)
            r = fmt_out_write(&o, b + off, n - off < MiB ? n - off : MiB, &err);
        if (r == SB_OK)
            r = fmt_out_commit(&o, &err);
        else
            fmt_out_abort(&o);
        fmt_out_fail_write_after(-1);
        if (r == SB_OK) {
            done = 1;
            ck_assert_int_ge(k, 3); /* at least two full buffers and a tail were written */
        } else {
            ck_assert_int_eq(r, SB_EIO);
            ck_assert_msg(strstr(err.msg, "f.bin") != NULL, "message names the file: %s", err.msg);
            ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
        }
    }
    ck_assert(done);
    free(b);
}
END_TEST

/* an existing target is kept unless FMT_OUT_FORCE; a zeroed struct aborts safely */
START_TEST(test_exists_and_zeroed)
{
    const char *path = test_tmpfile("e.bin");
    ck_assert_int_eq(test_write_file(path, "old", 3), 0);
    struct fmt_out o;
    struct sb_err err = { 0 };
    ck_assert_int_ne(fmt_out_open(&o, path, 0, &err), SB_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, "--force"));
    ck_assert_int_eq(fmt_out_open(&o, path, FMT_OUT_FORCE, &err), SB_OK);
    ck_assert_int_eq(fmt_out_write(&o, "new!", 4, &err), SB_OK);
    ck_assert_int_eq(fmt_out_commit(&o, &err), SB_OK);
    size_t len = 0;
    char *got = test_read_file(path, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(got, "new!", 4);
    free(got);
    /* fd 0 open on /dev/null; aborting a never-opened (zeroed) struct must not close it */
    int nul = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(nul, 0);
    ck_assert_int_eq(dup2(nul, 0), 0);
    if (nul != 0)
        close(nul);
    struct fmt_out zero;
    memset(&zero, 0, sizeof zero);
    fmt_out_abort(&zero);
    ck_assert_int_ne(fcntl(0, F_GETFD), -1);
}
END_TEST

TEST_SUITE(formats_out, 60, NULL, teardown,
    TEST_LOOP(test_write_patch_readback, 2 * (int)N_SIZES), TEST(test_fail_leaves_nothing),
    TEST(test_exists_and_zeroed))
