/* fmt_map.c: mmap wrappers. */
#include "fmt_map.h"
#include "sb_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    }
    close(fd);
    *out = m;
    return SB_OK;
}

void fmt_map_close(struct fmt_map *m)
{
    if (!m)
        return;
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
