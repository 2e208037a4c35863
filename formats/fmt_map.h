/* fmt_map.h: read-only file mappings. A mapping knows its path and size;
 * readers check every offset against size before forming a pointer. */
#ifndef FMT_MAP_H
#define FMT_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "sb_err.h"

struct fmt_map {
    char *path;            /* owned copy */
    const uint8_t *data;   /* NULL for an empty file */
    uint64_t size;
    int slot;              /* in the table fmt_map_signal_path() reads; -1 if none */
};

/*! fmt_map_open() : map path read-only (MAP_PRIVATE). An empty file maps to
 *  data NULL, size 0. @return SB_OK and *out, or SB_EIO naming the file. */
int fmt_map_open(struct fmt_map **out, const char *path, struct sb_err *err);
/* fmt_map_signal_path(): public, in fmt_model.h (the CLI's SIGBUS handler) */
/*! fmt_map_close() : unmap and free; NULL fine. */
void fmt_map_close(struct fmt_map *m);
/*! fmt_map_dontneed() : drop the pages of [off, off+len) from RSS (advisory). */
void fmt_map_dontneed(const struct fmt_map *m, uint64_t off, uint64_t len);
/*! fmt_map_willneed() : read-ahead hint for [off, off+len) (advisory). */
void fmt_map_willneed(const struct fmt_map *m, uint64_t off, uint64_t len);

#endif
