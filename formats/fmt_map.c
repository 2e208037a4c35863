/* fmt_map.c: mmap wrappers, and a table of live mappings so that a SIGBUS
 * (the file shrank under the mapping) can be traced to its file. */
#include "fmt_map.h"
#include "sb_alloc.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Live mappings, read by fmt_map_signal_path() in a signal handler: fixed
 * storage, a slot is filled before it is marked used and marked free before
 * its mapping goes. */
#define N_MAP_SLOTS 1024
static struct {
    const uint8_t *start;
    uint64_t len;
    const char *path;
    volatile sig_atomic_t used;
} map_slot[N_MAP_SLOTS];

static int map_slot_take(const struct fmt_map *m)
{
    for (int i = 0; i < N_MAP_SLOTS; i++) {
        if (!__atomic_load_n(&map_slot[i].used, __ATOMIC_ACQUIRE)) {
            int z = 0;
            /* claim it (maps may be opened from several threads) */
            if (!__atomic_compare_exchange_n(&map_slot[i].used, &z, 2, false, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE))
                continue;
            map_slot[i].start = m->data;
            map_slot[i].len = m->size;
            map_slot[i].path = m->path;
            __atomic_store_n(&map_slot[i].used, 1, __ATOMIC_RELEASE);
            return i;
        }
    }
    return -1; /* full: a SIGBUS is then reported without the file's name */
}

const char *fmt_map_signal_path(const void *addr)
{
    const uint8_t *a = addr;
    for (int i = 0; i < N_MAP_SLOTS; i++)
        if (map_slot[i].used == 1 && a >= map_slot[i].start &&
            (uint64_t)(a - map_slot[i].start) < map_slot[i].len)
            return map_slot[i].path;
    return NULL;
}

int fmt_map_open(struct fmt_map **out, const char *path, struct sb_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sb_err_set(err, SB_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sb_err_set(err, SB_EIO, "%s: not a regular file", path);
    }
    struct fmt_map *m = sb_calloc(1, sizeof *m);
    if (!m || !(m->path = sb_strdup(path))) {
        sb_free(m);
        close(fd);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    }
    m->slot = -1;
    m->size = (uint64_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            sb_free(m->path);
            sb_free(m);
            return sb_err_set(err, SB_EIO, "%s: cannot map: %s", path, strerror(e));
        }
        m->data = p;
        m->slot = map_slot_take(m);
    }
    close(fd);
    *out = m;
    return SB_OK;
}

void fmt_map_close(struct fmt_map *m)
{
    if (!m)
        return;
    if (m->data && m->slot >= 0)
        __atomic_store_n(&map_slot[m->slot].used, 0, __ATOMIC_RELEASE);
    if (m->data)
        munmap((void *)m->data, (size_t)m->size);
    sb_free(m->path);
    sb_free(m);
}

static void advise(const struct fmt_map *m, uint64_t off, uint64_t len, int how)
{
    if (!m || !m->data || off >= m->size || len == 0)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t start = off & ~((uint64_t)pg - 1);
    uint64_t end = off + len;
    if (end > m->size)
        end = m->size;
    madvise((void *)(m->data + start), (size_t)(end - start), how);
}

void fmt_map_dontneed(const struct fmt_map *m, uint64_t off, uint64_t len)
{
    advise(m, off, len, MADV_DONTNEED);
}

void fmt_map_willneed(const struct fmt_map *m, uint64_t off, uint64_t len)
{
    advise(m, off, len, MADV_WILLNEED);
}
