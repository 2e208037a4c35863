/* par_comm.c: MPI_COMM_WORLD behind par_comm.h, or one process without it.
 * Knows ranks and bytes, nothing of models. */
#include "par_comm.h"

#include <stdlib.h>
#include <string.h>

#include "sb_alloc.h"

#ifdef SUBBIT_MPI
#include <mpi.h>
#endif

static int g_rank, g_size = 1;
static bool g_mpi;   /* MPI_Init was called by us */
static bool g_told;  /* the last par_agree gave every rank a failure */

bool par_have_mpi(void)
{
#ifdef SUBBIT_MPI
    return true;
#else
    return false;
#endif
}

/* started by a launcher: Open MPI's mpirun, or PMI/PMIx (srun) */
static long launched_size(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                        "SLURM_NTASKS" };
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_RANK") && !getenv("PMIX_RANK"))
        return 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *s = getenv(vars[i]);
        if (s && atol(s) > 0)
            return atol(s);
    }
    return 1;
}

int par_init(int *argc, char ***argv, struct sb_err *err)
{
    const long n = launched_size();
    if (n == 0)
        return SB_OK;
#ifdef SUBBIT_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return sb_err_set(err, SB_EUNSUPPORTED, "MPI_Init failed");
    g_mpi = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return SB_OK;
#else
    (void)argc;
    (void)argv;
    if (n > 1)
        return sb_err_set(err, SB_EUNSUPPORTED, "started as %ld ranks, but this subbit was built "
                          "without MPI (SUBBIT_MPI=OFF)", n);
    return SB_OK;
#endif
}

void par_finalize(void)
{
#ifdef SUBBIT_MPI
    if (g_mpi)
        MPI_Finalize();
#endif
    g_mpi = false;
    g_rank = 0;
    g_size = 1;
}

int par_rank(void) { return g_rank; }
int par_size(void) { return g_size; }

int par_agree(int rc, struct sb_err *err)
{
    if (g_size == 1)
        return rc;
#ifdef SUBBIT_MPI
    g_told = true;   /* unless every rank succeeded: a failed MPI call is one too */
    int mine = rc != SB_OK ? g_rank : g_size, first = g_size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return sb_err_set(err, SB_EIO, "MPI_Allreduce failed");
    if (first == g_size) {
        g_told = false;
        return SB_OK;
    }
    struct sb_err e = { 0 };
    if (g_rank == first) {
        e.code = rc;
        if (err && err->msg[0])
            memcpy(e.msg, err->msg, sizeof e.msg);
        else
            strcpy(e.msg, sb_status_name(rc));
    }
    if (MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, first, MPI_COMM_WORLD) != MPI_SUCCESS)
        return sb_err_set(err, SB_EIO, "MPI_Bcast failed");
    if (err && g_rank != first) {
        sb_err_clear(err);
        if (first > 0)
            sb_err_set(err, e.code, "rank %d: %s", first, e.msg);
        else
            sb_err_set(err, e.code, "%s", e.msg);
    }
    return e.code ? e.code : SB_EIO;
#else
    (void)err;
    return rc;
#endif
}

int par_settle(int rc, struct sb_err *err)
{
    if (rc == SB_OK || g_size == 1 || g_told)
        return rc;
    return par_agree(rc, err);
}

#ifdef SUBBIT_MPI
/* one root's bytes to all, in pieces an int count can hold */
static int bcast_big(void *buf, uint64_t n, int root, struct sb_err *err)
{
    const uint64_t step = (uint64_t)1 << 30;
    for (uint64_t off = 0; off < n; off += step) {
        const uint64_t k = n - off < step ? n - off : step;
        if (MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return sb_err_set(err, SB_EIO, "MPI_Bcast of %llu bytes from rank %d failed",
                              (unsigned long long)k, root);
    }
    return SB_OK;
}
#endif

int par_bcast(void *buf, uint64_t n, int root, struct sb_err *err)
{
    if (g_size == 1)
        return SB_OK;
#ifdef SUBBIT_MPI
    return bcast_big(buf, n, root, err);
#else
    (void)buf;
    (void)n;
    (void)root;
    (void)err;
    return SB_OK;
#endif
}

int par_allgather(const void *mine, uint64_t n_mine, void **all, uint64_t *n_all,
                  uint64_t *counts, struct sb_err *err)
{
    *all = NULL;
    *n_all = 0;
    uint64_t one = n_mine, *cnt = counts ? counts : sb_calloc((size_t)g_size, sizeof *cnt);
    int rc = cnt ? SB_OK : sb_err_set(err, SB_ENOMEM, "out of memory for %d counts", g_size);
    if ((rc = par_agree(rc, err)) != SB_OK)
        goto out;
    cnt[0] = one;
#ifdef SUBBIT_MPI
    if (g_size > 1 && MPI_Allgather(&one, 1, MPI_UINT64_T, cnt, 1, MPI_UINT64_T,
                                    MPI_COMM_WORLD) != MPI_SUCCESS) {
        rc = sb_err_set(err, SB_EIO, "MPI_Allgather failed");
        goto out;
    }
#endif
    uint64_t total = 0, off = 0;
    for (int r = 0; r < g_size; r++)
        total += cnt[r];
    if (total) {
        if (total > SIZE_MAX || !(*all = sb_malloc((size_t)total))) {
            rc = sb_err_set(err, SB_ENOMEM, "out of memory for %llu gathered bytes",
                            (unsigned long long)total);
        } else {
            for (int r = 0; r < g_rank; r++)
                off += cnt[r];
            if (n_mine)
                memcpy((char *)*all + off, mine, (size_t)n_mine);
        }
    }
    /* a rank without room stops them all before the broadcasts */
    if ((rc = par_agree(rc, err)) != SB_OK)
        goto out;
#ifdef SUBBIT_MPI
    off = 0;
    for (int r = 0; r < g_size && g_size > 1 && total; r++) {
        if ((rc = bcast_big((char *)*all + off, cnt[r], r, err)) != SB_OK)
            goto out;
        off += cnt[r];
    }
#endif
    *n_all = total;
out:
    if (rc != SB_OK) {
        sb_free(*all);
        *all = NULL;
    }
    if (cnt != counts)
        sb_free(cnt);   /* NULL when its allocation failed */
    return rc;
}

int par_max_u64(uint64_t v, uint64_t *max, struct sb_err *err)
{
    *max = v;
#ifdef SUBBIT_MPI
    if (g_size > 1 &&
        MPI_Allreduce(&v, max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) {
        *max = v;
        return sb_err_set(err, SB_EIO, "MPI_Allreduce failed");
    }
#else
    (void)err;
#endif
    return SB_OK;
}

void par_split(uint64_t n, const uint64_t *cum, int r, int size, uint64_t *lo, uint64_t *hi)
{
    /* rank r takes the items whose weight starts in [total*r/size, total*(r+1)/size) */
    const uint64_t total = cum ? cum[n] : n;
    uint64_t b[2];
    for (int k = 0; k < 2; k++) {
        const uint64_t m = (uint64_t)(r + k), sz = (uint64_t)size;
        const uint64_t t = total / sz * m + total % sz * m / sz;   /* total * m / size */
        uint64_t i = 0;
        if (!cum)
            i = t;
        else
            while (i < n && cum[i] < t)
                i++;
        b[k] = i;
    }
    *lo = b[0];
    *hi = r + 1 == size ? n : b[1];
}

bool par_fault(const char *point)
{
    const char *s = getenv("SUBBIT_PAR_FAULT");
    if (!s)
        return false;
    char *end;
    const long r = strtol(s, &end, 10);
    return end != s && *end == ':' && r == g_rank && !strcmp(end + 1, point);
}
