/* test_util.h: helpers shared by the Check suites. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The fixtures folder ($SUBBIT_FIXTURES, else ../shared/fixtures beside the
 * checkout), or NULL if absent. */
const char *test_fixtures_dir(void);
/* Path of rel inside the fixtures folder, in a static rotating buffer (8 slots). */
const char *test_fixture(const char *rel);
/* A fresh empty temp folder for this test (removed by test_tmpdir_cleanup). */
const char *test_tmpdir(void);
/* Path of name inside test_tmpdir(), static rotating buffer. */
const char *test_tmpfile(const char *name);
void test_tmpdir_cleanup(void);
/* The runner's temp folder around all suites ($TMPDIR points into it while
 * they run); test_run_end() removes it with everything in it. */
void test_run_begin(void);
void test_run_end(void);
/* Deterministic pseudo-random numbers (splitmix64 seeded). */
uint64_t test_rand_u64(uint64_t *state);
void test_fill_normal(float *x, size_t n, uint64_t seed);   /* N(0,1) */
void test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Write buf to path (whole file). 0 on success. */
int test_write_file(const char *path, const void *buf, size_t n);
/* Read a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *test_read_file(const char *path, size_t *len);
int test_file_exists(const char *path);
/* Number of entries in a folder other than . and .. (-1 if it cannot be read). */
int test_dir_count(const char *path);
/* FNV-1a 64 over bytes (for golden hashes of our own outputs). */
uint64_t test_fnv1a64(const void *p, size_t n);

#endif
