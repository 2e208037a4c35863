/* test_util.c: helpers shared by the Check suites. */
#include "test_util.h"

#include "cvt_layout.h"
#include "cvt_synth.h"
#include "sb_alloc.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *test_fixtures_dir(void)
{
    const char *e = getenv("SUBBIT_FIXTURES");
    if (e && is_dir(e))
        return e;
    if (is_dir(SUBBIT_FIXTURES_DEFAULT))
        return SUBBIT_FIXTURES_DEFAULT;
    return NULL;
}

static char ring[8][4096];
static int ring_i;

const char *test_fixture(const char *rel)
{
    char *b = ring[ring_i++ & 7];
    const char *d = test_fixtures_dir();
    snprintf(b, 4096, "%s/%s", d ? d : "(no fixtures)", rel);
    return b;
}

static char tmpdir[4096];

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/subbit-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            abort();
        }
    }
    return tmpdir;
}

const char *test_tmpfile(const char *name)
{
    char *b = ring[ring_i++ & 7];
    snprintf(b, 4096, "%s/%s", test_tmpdir(), name);
    return b;
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) /* never through a link */
                rm_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

void test_tmpdir_cleanup(void)
{
    if (tmpdir[0])
        rm_tree(tmpdir);
    tmpdir[0] = '\0';
}

/* The runner's own folder: every test's test_tmpdir() and everything the
 * programs they start put in $TMPDIR lands inside it, and it goes at the end
 * whatever the tests did (a failed or killed test skips its own cleanup). */
static char run_dir[4096];

static void on_term(int sig)
{
    test_run_end();
    signal(sig, SIG_DFL);
    raise(sig);
}

void test_run_begin(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(run_dir, sizeof run_dir, "%s/subbit-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        abort();
    }
    setenv("TMPDIR", run_dir, 1);
    signal(SIGTERM, on_term); /* ctest's timeout */
    signal(SIGINT, on_term);
}

void test_run_end(void)
{
    if (run_dir[0])
        rm_tree(run_dir);
    run_dir[0] = '\0';
}

uint64_t test_rand_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double u01(uint64_t *s) { return ((test_rand_u64(s) >> 11) + 0.5) * 0x1p-53; }

void test_fill_normal(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u = u01(&s), v = u01(&s);
        x[i] = (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
}

void test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)u01(&s);
}

int test_write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(buf, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

int test_file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int test_dir_count(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

uint64_t test_fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

Suite *test_suite_new(const char *name, double timeout, void (*setup)(void),
                      void (*teardown)(void), const struct test_entry *e, size_t n)
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    if (timeout > 0)
        tcase_set_timeout(tc, timeout);
    if (setup || teardown)
        tcase_add_checked_fixture(tc, setup, teardown);
    for (size_t i = 0; i < n; i++) {
        if (e[i].loops)
            tcase_add_loop_test(tc, e[i].test, 0, e[i].loops);
        else
            tcase_add_test(tc, e[i].test);
    }
    suite_add_tcase(s, tc);
    return s;
}

struct fmt_model *test_model_open(const char *path, const struct fmt_open_opts *o)
{
    struct fmt_model *m = NULL;
    struct sb_err err = { 0 };
    int r = fmt_model_open(&m, path, o, &err);
    ck_assert_msg(r == SB_OK, "%s: %s", path, err.msg);
    return m;
}

struct fmt_tensor *test_model_add(struct fmt_model *m, const char *name, enum sb_dtype dt,
                                  int ndim, const int64_t *shape, const void *data,
                                  size_t nbytes)
{
    struct fmt_tensor *t = fmt_model_add_tensor(m, name);
    ck_assert_ptr_nonnull(t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->owned = sb_malloc(nbytes ? nbytes : 1);
    ck_assert_ptr_nonnull(t->owned);
    if (data && nbytes)
        memcpy(t->owned, data, nbytes);
    t->data = t->owned;
    t->nbytes = nbytes;
    t->map_index = -1;
    return t;
}

struct fmt_model *test_materialize(const struct cvt_layout *l, const struct fmt_model *src,
                                   enum fmt_container c)
{
    struct fmt_model *m = fmt_model_new();
    ck_assert_ptr_nonnull(m);
    m->container = c;
    m->arch = src->arch;
    m->has_arch = src->has_arch;
    for (size_t i = 0; i < l->n; i++) {
        struct sb_err err = { 0 };
        uint64_t nb = 0;
        ck_assert_msg(cvt_layout_src_nbytes(l, i, src, &nb, &err) == SB_OK, "%s", err.msg);
        struct fmt_tensor *t = test_model_add(m, l->t[i].name, l->t[i].src_dtype, l->t[i].ndim,
                                              l->t[i].shape, NULL, (size_t)nb);
        ck_assert_msg(cvt_layout_gather_bytes(l, i, src, t->owned, nb, &err) == SB_OK, "%s",
                      err.msg);
    }
    return m;
}

struct fmt_model *test_synth_model(enum fmt_arch_kind kind, int dim, const char *name)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, kind);
    o.dim = dim;
    o.heads = 4;
    o.kv_heads = 2;
    o.hidden = 96;
    struct sb_err err = { 0 };
    const char *dir = test_tmpfile(name);
    ck_assert_msg(cvt_synth(&o, dir, &err) == SB_OK, "%s", err.msg);
    return test_model_open(dir, NULL);
}
