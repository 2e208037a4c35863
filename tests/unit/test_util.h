/* test_util.h: helpers shared by the Check suites: fixtures and temp files,
 * random data, the suite boilerplate (TEST_SUITE), small models. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"

/* ---- suites -------------------------------------------------------------------- */

/* One entry of a TEST_SUITE: a test run once, or `loops` times (_i = 0 .. loops-1). */
struct test_entry {
    const TTest *test;
    int loops;
};
#define TEST(t) { (t), 0 }
#define TEST_LOOP(t, n) { (t), (n) }

/* A suite of one test case, both named name, holding the entries in order;
 * timeout in seconds (0: Check's default), setup / teardown around each test
 * (NULL: none). */
Suite *test_suite_new(const char *name, double timeout, void (*setup)(void),
                      void (*teardown)(void), const struct test_entry *e, size_t n);

/* TEST_SUITE(module_topic, timeout, setup, teardown, TEST(t), TEST_LOOP(t, n), ...):
 * defines Suite *module_topic_suite(void), what the generated runner calls
 * (tests/CMakeLists.txt). */
#define TEST_SUITE(name, timeout, setup, teardown, ...)                                        \
    Suite *name##_suite(void)                                                                  \
    {                                                                                          \
        const struct test_entry entries_[] = { __VA_ARGS__ };                                  \
        return test_suite_new(#name, (timeout), (setup), (teardown), entries_,                 \
                              sizeof entries_ / sizeof entries_[0]);                           \
    }

/* ---- models ---------------------------------------------------------------------- */

/* fmt_model_open() that must succeed (the message names the path otherwise). */
struct fmt_model *test_model_open(const char *path, const struct fmt_open_opts *o);
/* A tensor of m holding a copy of nbytes of data (owned by m): name, encoding,
 * shape[ndim]. */
struct fmt_tensor *test_model_add(struct fmt_model *m, const char *name, enum sb_dtype dt,
                                  int ndim, const int64_t *shape, const void *data,
                                  size_t nbytes);
struct cvt_layout;
/* A model holding every target of l gathered from src as bytes (no re-encoding),
 * in container c, with src's architecture. */
struct fmt_model *test_materialize(const struct cvt_layout *l, const struct fmt_model *src,
                                   enum fmt_container c);
/* A synthetic model (cvt_synth) written to test_tmpfile(name) and opened: the
 * kind's defaults with dim, 4 heads, 2 KV heads and an FFN of 96. */
struct fmt_model *test_synth_model(enum fmt_arch_kind kind, int dim, const char *name);

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
