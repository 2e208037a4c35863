/* fmt_out.c: atomic outputs: temp file/folder beside the target, fsync,
 * rename, fsync of the parent folder (redis rdbSave, git lockfile). Temps are
 * named TARGET.subbit-tmp-PID-XXXXXX, so that one whose writer is gone (kill -9,
 * power loss) can be told from one being written and removed later. */
#define _GNU_SOURCE 1 /* sync_file_range */
#include "fmt_out.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

/* The write buffer. Full buffers start at a multiple of OUT_BUF in the file, so
 * on Linux they go out with O_DIRECT: straight from this buffer to the disk,
 * no page-cache copy (on the machine we measure, buffered writes of a 640 MiB
 * output cost 0.4-1.8 s in the kernel's copy and page allocation; direct ones
 * a steady ~0.3 s: tools/bench convert). The tail and header patches are
 * buffered writes; fsync at commit covers both. From the first full buffer
 * on, a background thread writes it while the caller fills a second one. */
#define OUT_BUF ((size_t)8 << 20)
#define DIO_ALIGN 4096
#define N_SLOTS 64

/* Signal-cleanup registry: fixed storage, no allocation, read by the handler. */
static char slot_path[N_SLOTS][PATH_MAX];
static volatile sig_atomic_t slot_kind[N_SLOTS]; /* 0 free, 1 file, 2 folder */
static long write_fail_countdown = -1;

void fmt_out_fail_write_after(long n) { write_fail_countdown = n; }

static int slot_take(const char *path, int kind)
{
    if (strlen(path) >= PATH_MAX)
        return -1;
    for (int i = 0; i < N_SLOTS; i++) {
        if (slot_kind[i] == 0) {
            memcpy(slot_path[i], path, strlen(path) + 1);
            slot_kind[i] = kind;
            return i;
        }
    }
    return -1; /* table full: still correct, only Ctrl-C cleanup is lost */
}

/* Creating a temp and registering it happen with the cleanup signals blocked
 * in this thread, so a Ctrl-C or an mpirun SIGTERM between the two (it left a
 * temp folder behind in one of seven runs of t0920) is delivered after the
 * temp is registered, and removes it. */
static void cleanup_signals_block(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void cleanup_signals_restore(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

static void slot_drop(int slot)
{
    if (slot >= 0 && slot < N_SLOTS)
        slot_kind[slot] = 0;
}

/* Empty folder path and remove it, with system calls only (async-signal-safe:
 * no opendir, which allocates). Our temp folders are flat. */
static void rm_flat_signal_safe(const char *path)
{
#ifdef __linux__
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[4096] __attribute__((aligned(8)));
        for (;;) {
            long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
            if (n <= 0)
                break;
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
                unsigned short reclen;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                const char *name = buf + off + 19;
                if (strcmp(name, ".") && strcmp(name, "..") && unlinkat(fd, name, 0) != 0)
                    unlinkat(fd, name, AT_REMOVEDIR);
                off += reclen;
            }
        }
        close(fd);
    }
#endif
    rmdir(path);
}

void fmt_out_signal_cleanup(void)
{
    /* files first (newest first), then folders with whatever was committed
     * inside them */
    for (int i = N_SLOTS - 1; i >= 0; i--)
        if (slot_kind[i] == 1)
            unlink(slot_path[i]);
    for (int i = N_SLOTS - 1; i >= 0; i--)
        if (slot_kind[i] == 2)
            rm_flat_signal_safe(slot_path[i]);
}

static volatile sig_atomic_t merging, deferred_sig;

int fmt_out_signal_defer(int sig)
{
    if (!merging)
        return 0;
    deferred_sig = sig;
    return 1;
}

/* A signal that came while files moved is acted on once they are in place. */
static void raise_deferred(void)
{
    int sig = deferred_sig;
    if (sig) {
        deferred_sig = 0;
        raise(sig);
    }
}

int fmt_out_temp_register(const char *path, bool folder)
{
    return slot_take(path, folder ? 2 : 1);
}

void fmt_out_temp_unregister(int slot)
{
    slot_drop(slot);
}

/* ---- what happened to files that were there before ------------------------ */

static fmt_out_notice_fn notice_fn;
static void *notice_ctx;

void fmt_out_set_notice(fmt_out_notice_fn fn, void *ctx)
{
    notice_fn = fn;
    notice_ctx = ctx;
}

static void notice(enum fmt_out_event ev, const char *path)
{
    if (notice_fn)
        notice_fn(notice_ctx, ev, path);
}

/* ---- temp names ------------------------------------------------------------ */

#define TMP_MARK ".subbit-tmp-"

int fmt_out_temp_name(char *buf, size_t cap, const char *base)
{
    int n = snprintf(buf, cap, "%s" TMP_MARK "%ld-XXXXXX", base, (long)getpid());
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

long fmt_out_temp_owner(const char *name, size_t *base_len)
{
    /* the last TMP_MARK, then decimal digits, '-', six characters of mkstemp's set */
    const char *m = NULL;
    for (const char *p = strstr(name, TMP_MARK); p; p = strstr(p + 1, TMP_MARK))
        m = p;
    if (!m || m == name)
        return 0;
    const char *d = m + strlen(TMP_MARK);
    long pid = 0;
    const char *q = d;
    while (*q >= '0' && *q <= '9' && q - d < 10)
        pid = pid * 10 + (*q++ - '0');
    if (q == d || *q != '-' || pid <= 0 || strlen(q + 1) != 6)
        return 0;
    for (const char *c = q + 1; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    if (base_len)
        *base_len = (size_t)(m - name);
    return pid;
}

/* The writer is gone: no process has that id (one that reuses it keeps the
 * temp, which is the safe side). */
static bool owner_gone(long pid)
{
    return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void rm_tree(const char *path);

/* Remove stale temps in folder dir: those named BASE.subbit-tmp-PID-XXXXXX
 * (BASE = base if given, else any BASE starting with prefix, if given) whose
 * writer is gone. Each is reported to cb (or the notice hook). */
static int sweep(const char *dir, const char *base, const char *prefix, bool dry_run,
                 fmt_out_notice_fn cb, void *ctx, struct sb_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return err ? sb_err_set(err, SB_EIO, "%s: cannot read folder: %s", dir, strerror(errno))
                   : SB_EIO;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        size_t bl;
        long pid = fmt_out_temp_owner(e->d_name, &bl);
        if (!pid)
            continue;
        if (base && (strlen(base) != bl || strncmp(e->d_name, base, bl)))
            continue;
        if (prefix && strncmp(e->d_name, prefix, strlen(prefix)))
            continue;
        if (!owner_gone(pid))
            continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= sizeof p)
            continue;
        if (!dry_run) {
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_tree(p);
            else
                unlink(p);
        }
        if (cb)
            cb(ctx, FMT_OUT_STALE_REMOVED, p);
        else
            notice(FMT_OUT_STALE_REMOVED, p);
    }
    closedir(d);
    return SB_OK;
}

int fmt_out_clean(const char *dir, const char *prefix, bool dry_run, fmt_out_notice_fn cb,
                  void *ctx, struct sb_err *err)
{
    return sweep(dir, NULL, prefix, dry_run, cb, ctx, err);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return sb_strdup(".");
    if (slash == path)
        return sb_strdup("/");
    return sb_strndup(path, (size_t)(slash - path));
}

static int fsync_dir(const char *path)
{
    char *d = dir_of(path);
    if (!d)
        return -1;
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sb_free(d);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Stale temps of this same target (an earlier run killed mid-write) go first. */
static void sweep_beside(const char *path)
{
    char *d = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (d && *base)
        sweep(d, base, NULL, false, NULL, NULL, NULL);
    sb_free(d);
}

int fmt_out_open(struct fmt_out *o, const char *path, unsigned flags, struct sb_err *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->dfd = -1;
    o->slot = -1;
    if (!(flags & FMT_OUT_FORCE) && exists(path))
        return sb_err_set(err, SB_EIO, "%s: already exists (use --force to replace it)", path);
    size_t n = strlen(path) + sizeof TMP_MARK + 32;
    o->path = sb_strdup(path);
    o->tmp = sb_malloc(n);
    o->dfd = -1;
    o->buf = sb_malloc_align(DIO_ALIGN, OUT_BUF);
    if (!o->path || !o->tmp || !o->buf) {
        fmt_out_abort(o);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    }
    sweep_beside(path);
    fmt_out_temp_name(o->tmp, n, path);
    sigset_t sigs;
    cleanup_signals_block(&sigs);
    o->fd = mkstemp(o->tmp);
    const int e = errno;
    if (o->fd >= 0)
        o->slot = slot_take(o->tmp, 1);
    cleanup_signals_restore(&sigs);
    if (o->fd < 0) {
        sb_free(o->tmp);
        o->tmp = NULL;
        fmt_out_abort(o);
        return sb_err_set(err, SB_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    fchmod(o->fd, 0644);
#if defined(__linux__) && defined(O_DIRECT)
    /* -1 where the file system has no O_DIRECT (then every write is buffered) */
    if (((uintptr_t)o->buf % DIO_ALIGN) == 0)
        o->dfd = open(o->tmp, O_WRONLY | O_DIRECT | O_CLOEXEC);
#endif
    o->flags = flags;
    return SB_OK;
}

/* pwrite all of buf at off on fd; 0 or an errno (the test hook counts calls) */
static int raw_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w;
        if (write_fail_countdown == 0) {
            errno = ENOSPC;
            w = -1;
        } else {
            if (write_fail_countdown > 0)
                write_fail_countdown--;
            w = pwrite(fd, p, n, (off_t)off);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (w == 0)
            return EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Write one buffer at off: directly when it is whole blocks at a block offset
 * and O_DIRECT is open (*dfd; closed and set to -1 if the kernel refuses it
 * after all), else buffered. Starts writeback of buffered data so that the
 * fsync at commit waits for the tail only. 0 or an errno. */
static int write_block(int fd, int *dfd, uint64_t *synced, const uint8_t *b, size_t n,
                       uint64_t off)
{
    int e;
    if (*dfd >= 0 && n % DIO_ALIGN == 0 && off % DIO_ALIGN == 0) {
        e = raw_pwrite(*dfd, b, n, off);
        if (e == EINVAL) {
            close(*dfd);
            *dfd = -1;
            e = raw_pwrite(fd, b, n, off);
        }
    } else {
        e = raw_pwrite(fd, b, n, off);
    }
#ifdef __linux__
    if (!e && *dfd < 0 && off + n - *synced >= (64u << 20)) {
        sync_file_range(fd, (off_t)*synced, (off_t)(off + n - *synced), SYNC_FILE_RANGE_WRITE);
        *synced = off + n;
    }
#else
    (void)synced;
#endif
    return e;
}

/* ---- background writer --------------------------------------------------- */

struct out_aio {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fmt_out *o;       /* fd, dfd and synced are the writer's while a job runs */
    const uint8_t *job;      /* buffer being written; NULL when idle */
    size_t job_len;
    uint64_t job_off;
    int err;                 /* first errno, sticky */
    int quit;
};

static void *aio_main(void *arg)
{
    struct out_aio *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->job && !a->quit)
            pthread_cond_wait(&a->cv, &a->mu);
        if (!a->job)
            break;
        const uint8_t *b = a->job;
        size_t n = a->job_len;
        uint64_t off = a->job_off;
        pthread_mutex_unlock(&a->mu);
        int e = a->err ? 0 : write_block(a->o->fd, &a->o->dfd, &a->o->synced, b, n, off);
        pthread_mutex_lock(&a->mu);
        if (e && !a->err)
            a->err = e;
        a->job = NULL;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Wait until the writer is idle; its first error (an errno) or 0. */
static int aio_wait(struct fmt_out *o)
{
    struct out_aio *a = o->aio;
    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    while (a->job)
        pthread_cond_wait(&a->cv, &a->mu);
    int e = a->err;
    pthread_mutex_unlock(&a->mu);
    return e;
}

static void aio_stop(struct fmt_out *o)
{
    struct out_aio *a = o->aio;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->quit = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    sb_free(a);
    o->aio = NULL;
}

/* Start the writer for a large output; on any failure stay synchronous. */
static void aio_start(struct fmt_out *o)
{
    struct out_aio *a = sb_calloc(1, sizeof *a);
    o->spare = a ? sb_malloc_align(DIO_ALIGN, OUT_BUF) : NULL;
    if (!o->spare) {
        sb_free(a);
        return;
    }
    a->o = o;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        sb_free(a);
        return;
    }
    if (pthread_cond_init(&a->cv, NULL) != 0) {
        pthread_mutex_destroy(&a->mu);
        sb_free(a);
        return;
    }
    if (pthread_create(&a->th, NULL, aio_main, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        sb_free(a);
        return;
    }
    o->aio = a;
}

static int write_error(struct fmt_out *o, int e, struct sb_err *err)
{
    return sb_err_set(err, SB_EIO, "%s: write failed: %s", o->path, strerror(e));
}

/* Write out the buffer at o->flushed. A full buffer goes to the background
 * writer (after the previous one is done) and the caller goes on filling the
 * spare; a partial one (the tail) is written here once the writer is idle. */
static int flush(struct fmt_out *o, struct sb_err *err)
{
    if (o->buf_len == 0)
        return SB_OK;
    if (o->buf_len == OUT_BUF && !o->aio && !o->spare)
        aio_start(o);
    int e = aio_wait(o);
    if (e)
        return write_error(o, e, err);
    struct out_aio *a = o->aio;
    if (a && o->buf_len == OUT_BUF) {
        pthread_mutex_lock(&a->mu);
        a->job = o->buf;
        a->job_len = o->buf_len;
        a->job_off = o->flushed;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        uint8_t *t = o->buf;
        o->buf = o->spare;
        o->spare = t;
    } else if ((e = write_block(o->fd, &o->dfd, &o->synced, o->buf, o->buf_len, o->flushed))) {
        return write_error(o, e, err);
    }
    o->flushed += o->buf_len;
    o->buf_len = 0;
    return SB_OK;
}

int fmt_out_write(struct fmt_out *o, const void *buf, size_t n, struct sb_err *err)
{
    const uint8_t *p = buf;
    if (o->fd < 0)
        return sb_err_set(err, SB_EINVAL, "output not open");
    while (n > 0) {
        size_t k = OUT_BUF - o->buf_len < n ? OUT_BUF - o->buf_len : n;
        memcpy(o->buf + o->buf_len, p, k);
        o->buf_len += k;
        o->pos += k;
        p += k;
        n -= k;
        if (o->buf_len == OUT_BUF) {
            int r = flush(o, err);
            if (r)
                return r;
        }
    }
    return SB_OK;
}

int fmt_out_zeros(struct fmt_out *o, uint64_t n, struct sb_err *err)
{
    static const uint8_t z[4096];
    while (n > 0) {
        size_t k = n > sizeof z ? sizeof z : (size_t)n;
        int r = fmt_out_write(o, z, k, err);
        if (r)
            return r;
        n -= k;
    }
    return SB_OK;
}

int fmt_out_pwrite(struct fmt_out *o, const void *buf, size_t n, uint64_t off,
                   struct sb_err *err)
{
    if (o->fd < 0)
        return sb_err_set(err, SB_EINVAL, "output not open");
    if (off > o->pos || n > o->pos - off)
        return sb_err_set(err, SB_EINVAL, "%s: patch past the written end", o->path);
    int e = aio_wait(o); /* the patch may fall in the buffer being written */
    if (e)
        return write_error(o, e, err);
    const uint8_t *p = buf;
    if (off < o->flushed) { /* the part already in the file: a buffered write */
        size_t k = o->flushed - off < n ? (size_t)(o->flushed - off) : n;
        if ((e = raw_pwrite(o->fd, p, k, off)))
            return write_error(o, e, err);
        p += k;
        n -= k;
        off += k;
    }
    if (n > 0) /* the part still in the buffer */
        memcpy(o->buf + (off - o->flushed), p, n);
    return SB_OK;
}

int fmt_out_write_at(int fd, const void *buf, size_t n, uint64_t off, const char *path,
                     struct sb_err *err)
{
    const int e = raw_pwrite(fd, buf, n, off);
    return e ? sb_err_set(err, SB_EIO, "%s: write failed: %s", path, strerror(e)) : SB_OK;
}

int fmt_out_skip(struct fmt_out *o, uint64_t n, struct sb_err *err)
{
    if (o->fd < 0)
        return sb_err_set(err, SB_EINVAL, "output not open");
    int r = flush(o, err), e = r == SB_OK ? aio_wait(o) : 0;
    if (e)
        return write_error(o, e, err);
    if (r != SB_OK)
        return r;
    uint64_t end;
    if (sb_add_u64(o->pos, n, &end) || end > (uint64_t)INT64_MAX)
        return sb_err_set(err, SB_EINVAL, "%s: file too large", o->path);
    /* the file covers the range now (zeros until written), so a tail of
     * padding nobody writes is there at commit */
    if (n && ftruncate(o->fd, (off_t)end) != 0)
        return write_error(o, errno, err);
    o->pos = o->flushed = end;
    return SB_OK;
}

int fmt_out_sync(struct fmt_out *o, struct sb_err *err)
{
    if (o->fd < 0)
        return sb_err_set(err, SB_EINVAL, "output not open");
    int r = flush(o, err), e = r == SB_OK ? aio_wait(o) : 0;
    if (e)
        r = write_error(o, e, err);
    if (r == SB_OK && fsync(o->fd) != 0)
        r = sb_err_set(err, SB_EIO, "%s: fsync failed: %s", o->path, strerror(errno));
    return r;
}

static void release(struct fmt_out *o)
{
    aio_stop(o);
    sb_free_aligned(o->spare);
    o->spare = NULL;
    if (o->path && o->fd >= 0) /* a zeroed struct (never opened) owns no fds */
        close(o->fd);
    if (o->path && o->dfd >= 0)
        close(o->dfd);
    o->fd = o->dfd = -1;
    if (o->tmp) /* a zeroed struct holds slot 0 of nobody's */
        slot_drop(o->slot);
    o->slot = -1;
    sb_free(o->path);
    sb_free(o->tmp);
    sb_free_aligned(o->buf);
    o->path = o->tmp = NULL;
    o->buf = NULL;
}

int fmt_out_commit(struct fmt_out *o, struct sb_err *err)
{
    int r = flush(o, err);
    int e = r == SB_OK ? aio_wait(o) : 0;
    if (e)
        r = write_error(o, e, err);
    aio_stop(o);
    if (r == SB_OK && fsync(o->fd) != 0)
        r = sb_err_set(err, SB_EIO, "%s: fsync failed: %s", o->path, strerror(errno));
    if (r == SB_OK && close(o->fd) != 0)
        r = sb_err_set(err, SB_EIO, "%s: close failed: %s", o->path, strerror(errno));
    o->fd = -1;
    if (r == SB_OK && !(o->flags & FMT_OUT_FORCE) && exists(o->path))
        r = sb_err_set(err, SB_EIO, "%s: already exists (use --force to replace it)", o->path);
    if (r == SB_OK && rename(o->tmp, o->path) != 0)
        r = sb_err_set(err, SB_EIO, "%s: cannot rename into place: %s", o->path, strerror(errno));
    if (r != SB_OK) {
        fmt_out_abort(o);
        return r;
    }
    fsync_dir(o->path);
    release(o);
    return SB_OK;
}

void fmt_out_abort(struct fmt_out *o)
{
    if (!o)
        return;
    aio_stop(o);
    if (o->tmp)
        unlink(o->tmp);
    release(o);
}

/* ---- folders ------------------------------------------------------------ */

/* No allocation here: this runs on error paths, including out-of-memory ones. */
static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if ((size_t)snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= sizeof p)
                continue;
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

int fmt_outdir_open(struct fmt_outdir *d, const char *path, unsigned flags, struct sb_err *err)
{
    memset(d, 0, sizeof *d);
    d->slot = -1;
    if (!(flags & FMT_OUT_FORCE) && exists(path))
        return sb_err_set(err, SB_EIO, "%s: already exists (use --force to replace it)", path);
    size_t n = strlen(path);
    /* strip trailing slashes so the temp folder lands beside, not inside */
    while (n > 1 && path[n - 1] == '/')
        n--;
    d->path = sb_strndup(path, n);
    d->tmp = sb_malloc(n + sizeof TMP_MARK + 32);
    if (!d->path || !d->tmp) {
        fmt_outdir_abort(d);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    }
    struct stat st;
    if ((flags & FMT_OUT_FORCE) && lstat(d->path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        sb_free(d->tmp); /* not made yet: nothing to remove */
        d->tmp = NULL;
        fmt_outdir_abort(d);
        return sb_err_set(err, SB_EIO, "%s: exists and is not a folder (not replaced)", path);
    }
    sweep_beside(d->path);
    fmt_out_temp_name(d->tmp, n + sizeof TMP_MARK + 32, d->path);
    sigset_t sigs;
    cleanup_signals_block(&sigs);
    const bool made = mkdtemp(d->tmp) != NULL;
    const int e = errno;
    if (made)
        d->slot = slot_take(d->tmp, 2);
    cleanup_signals_restore(&sigs);
    if (!made) {
        sb_free(d->tmp);
        d->tmp = NULL;
        fmt_outdir_abort(d);
        return sb_err_set(err, SB_EIO, "%s: cannot create folder: %s", path, strerror(e));
    }
    chmod(d->tmp, 0755);
    d->flags = flags;
    return SB_OK;
}

char *fmt_outdir_file(const struct fmt_outdir *d, const char *name)
{
    size_t n = strlen(d->tmp) + strlen(name) + 2;
    char *p = sb_malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", d->tmp, name);
    return p;
}

/* A model file a folder output writes: a previous model's copy that the new
 * output does not replace would describe another model (a stale index or
 * shard), so --force removes it; no other file of the folder is touched. */
static bool is_model_file(const char *name)
{
    unsigned a, b;
    int end = 0;
    if (!strcmp(name, "model.safetensors") || !strcmp(name, "model.safetensors.index.json"))
        return true;
    return sscanf(name, "model-%5u-of-%5u.safetensors%n", &a, &b, &end) == 2 &&
           end == (int)strlen(name) && strlen(name) == 32;
}

struct name_list {
    char **v;
    size_t n, cap;
};

static void names_free(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        sb_free(l->v[i]);
    sb_free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int names_read(struct name_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return SB_EIO;
    struct dirent *e;
    int r = SB_OK;
    while (r == SB_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 16;
            char **v = sb_realloc(l->v, cap * sizeof *v);
            if (!v) {
                r = SB_ENOMEM;
                break;
            }
            l->v = v;
            l->cap = cap;
        }
        if (!(l->v[l->n] = sb_strdup(e->d_name)))
            r = SB_ENOMEM;
        else
            l->n++;
    }
    closedir(d);
    if (r == SB_OK && l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cmp_str); /* messages in a stable order */
    return r;
}

static bool names_has(const struct name_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], name))
            return true;
    return false;
}

/* Model files sort before the index and config, so that a reader never sees
 * an index naming shards that are not there yet. */
static int merge_rank(const char *name)
{
    return is_model_file(name) && strcmp(name, "model.safetensors.index.json") ? 0
           : !strcmp(name, "model.safetensors.index.json")                     ? 1
                                                                                : 2;
}

/* --force onto an existing folder: move each new file over its old copy (one
 * atomic rename each), then remove the previous model's files the new output
 * does not have. Everything else in the folder stays. Ctrl-C is held off
 * while files move (fmt_out_signal_defer), so the folder ends up whole. */
static int outdir_merge(struct fmt_outdir *d, struct sb_err *err)
{
    struct name_list nw = { 0 }, old = { 0 };
    char src[PATH_MAX], dst[PATH_MAX];
    int r = names_read(&nw, d->tmp);
    if (r == SB_OK)
        r = names_read(&old, d->path);
    if (r != SB_OK) {
        names_free(&nw);
        names_free(&old);
        return sb_err_set(err, r, "%s: cannot read folder: %s", d->path,
                          r == SB_ENOMEM ? "out of memory" : strerror(errno));
    }
    /* refuse before anything moves: a folder where a file goes */
    for (size_t i = 0; i < nw.n; i++) {
        struct stat st;
        if ((size_t)snprintf(dst, sizeof dst, "%s/%s", d->path, nw.v[i]) >= sizeof dst) {
            r = sb_err_set(err, SB_EIO, "%s: path too long", d->path);
            goto out;
        }
        if (lstat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
            r = sb_err_set(err, SB_EIO, "%s: is a folder, not replaced by a file", dst);
            goto out;
        }
    }
    merging = 1;
    for (int rank = 0; rank < 3 && r == SB_OK; rank++) {
        for (size_t i = 0; i < nw.n && r == SB_OK; i++) {
            if (merge_rank(nw.v[i]) != rank)
                continue;
            snprintf(src, sizeof src, "%s/%s", d->tmp, nw.v[i]);
            snprintf(dst, sizeof dst, "%s/%s", d->path, nw.v[i]);
            bool had = names_has(&old, nw.v[i]);
            if (rename(src, dst) != 0)
                r = sb_err_set(err, SB_EIO, "%s: cannot rename into place: %s", dst,
                               strerror(errno));
            else if (had)
                notice(FMT_OUT_REPLACED, dst);
        }
    }
    for (size_t i = 0; i < old.n && r == SB_OK; i++) {
        if (!is_model_file(old.v[i]) || names_has(&nw, old.v[i]))
            continue;
        if ((size_t)snprintf(dst, sizeof dst, "%s/%s", d->path, old.v[i]) >= sizeof dst)
            continue;
        if (unlink(dst) == 0)
            notice(FMT_OUT_REMOVED, dst);
    }
    merging = 0;
out:
    names_free(&nw);
    names_free(&old);
    return r;
}

int fmt_outdir_commit(struct fmt_outdir *d, struct sb_err *err)
{
    int fd = open(d->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    struct stat st;
    bool merge = false;
    if (lstat(d->path, &st) == 0) {
        if (!(d->flags & FMT_OUT_FORCE)) {
            int r = sb_err_set(err, SB_EIO, "%s: already exists (use --force to replace it)",
                               d->path);
            fmt_outdir_abort(d);
            return r;
        }
        if (!S_ISDIR(st.st_mode)) {
            int r = sb_err_set(err, SB_EIO, "%s: exists and is not a folder (not replaced)",
                               d->path);
            fmt_outdir_abort(d);
            return r;
        }
        merge = true;
    }
    int r = merge ? outdir_merge(d, err) : SB_OK;
    if (!merge && rename(d->tmp, d->path) != 0)
        r = sb_err_set(err, SB_EIO, "%s: cannot rename into place: %s", d->path,
                       strerror(errno));
    if (r != SB_OK) {
        fmt_outdir_abort(d);
        raise_deferred();
        return r;
    }
    if (merge) {
        rm_tree(d->tmp);  /* empty now */
        char *inner = sb_malloc(strlen(d->path) + 3);
        if (inner) {      /* the target folder itself holds the renamed entries */
            snprintf(inner, strlen(d->path) + 3, "%s/.", d->path);
            fsync_dir(inner);
            sb_free(inner);
        }
    }
    fsync_dir(d->path);
    slot_drop(d->slot);
    sb_free(d->path);
    sb_free(d->tmp);
    memset(d, 0, sizeof *d);
    d->slot = -1;
    raise_deferred();
    return SB_OK;
}

void fmt_outdir_abort(struct fmt_outdir *d)
{
    if (!d)
        return;
    if (d->tmp) {
        rm_tree(d->tmp);
        slot_drop(d->slot);
    }
    sb_free(d->path);
    sb_free(d->tmp);
    memset(d, 0, sizeof *d);
    d->slot = -1;
}

int fmt_out_copy_file(const char *src, const char *dst, unsigned flags, struct sb_err *err)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", src, strerror(errno));
    struct fmt_out o;
    int r = fmt_out_open(&o, dst, flags, err);
    if (r) {
        close(fd);
        return r;
    }
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = sb_err_set(err, SB_EIO, "%s: read failed: %s", src, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if ((r = fmt_out_write(&o, buf, (size_t)n, err)) != SB_OK)
            break;
    }
    close(fd);
    if (r) {
        fmt_out_abort(&o);
        return r;
    }
    return fmt_out_commit(&o, err);
}
