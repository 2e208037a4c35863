/* fmt_out.h: every output file is written atomically (style.md §5).
 *
 * Calling sequence:
 *   struct fmt_out o;
 *   fmt_out_open(&o, "model.gguf", 0, err);    temp file beside the target
 *   fmt_out_write(&o, buf, n, err) ...          buffered sequential writes
 *   fmt_out_commit(&o, err)                     flush, fsync, rename, fsync dir
 *   (on any failure) fmt_out_abort(&o)          unlink the temp file
 *
 * A folder output (sharded safetensors, HF folders) is built in a temp folder
 * beside the target and renamed into place by fmt_outdir_commit(); the files
 * inside it are written with fmt_out too.
 *
 * Temp paths are registered in a fixed table so the CLI's SIGINT handler can
 * remove them with fmt_out_signal_cleanup() (async-signal-safe). */
#ifndef FMT_OUT_H
#define FMT_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

enum fmt_out_flags {
    FMT_OUT_FORCE = 1 << 0    /* replace an existing target */
};

struct fmt_out {
    char *path;               /* target */
    char *tmp;                /* temp file beside it */
    int fd;
    unsigned flags;
    uint8_t *buf;             /* write buffer */
    size_t buf_len;
    uint64_t pos;             /* bytes written so far (logical) */
    uint64_t flushed;         /* bytes in the file; buf holds pos - flushed more */
    uint64_t synced;          /* writeback started up to here */
    int dfd;                  /* the same temp file opened O_DIRECT, or -1 */
    uint8_t *spare;           /* second buffer, filled while the writer writes buf */
    void *aio;                /* background writer (fmt_out.c), NULL until needed */
    int slot;                 /* signal-cleanup table slot, -1 if none */
};

struct fmt_outdir {
    char *path;               /* target folder */
    char *tmp;                /* temp folder beside it: write files here */
    unsigned flags;
    int slot;
};

/*! fmt_out_open() : create a temp file beside path. Fails with SB_EIO if path
 *  exists and FMT_OUT_FORCE is not set ("exists (use --force to replace)"). */
int fmt_out_open(struct fmt_out *o, const char *path, unsigned flags, struct sb_err *err);
/*! fmt_out_write() : append n bytes. */
int fmt_out_write(struct fmt_out *o, const void *buf, size_t n, struct sb_err *err);
/*! fmt_out_zeros() : append n zero bytes (padding). */
int fmt_out_zeros(struct fmt_out *o, uint64_t n, struct sb_err *err);
/*! fmt_out_pwrite() : overwrite n bytes at an earlier offset (headers patched
 *  after the data is known); off + n must be <= the current position. */
int fmt_out_pwrite(struct fmt_out *o, const void *buf, size_t n, uint64_t off,
                   struct sb_err *err);
/*! fmt_out_tell() : the current write position. */
static inline uint64_t fmt_out_tell(const struct fmt_out *o) { return o->pos; }
/*! fmt_out_sync() : every byte written so far is in the temp file (o->tmp),
 *  fsynced, for another process to read (convert's MPI ranks); the output
 *  stays open and uncommitted. */
int fmt_out_sync(struct fmt_out *o, struct sb_err *err);
/*! fmt_out_commit() : flush, fsync, rename over the target, fsync the folder.
 *  On failure the temp file is removed. The struct is released either way. */
int fmt_out_commit(struct fmt_out *o, struct sb_err *err);
/*! fmt_out_abort() : remove the temp file and release; safe on a zeroed or
 *  already committed/aborted struct. */
void fmt_out_abort(struct fmt_out *o);

/*! fmt_outdir_open() : make a temp folder beside path; write into d->tmp. */
int fmt_outdir_open(struct fmt_outdir *d, const char *path, unsigned flags, struct sb_err *err);
/*! fmt_outdir_file() : path of `name` inside the temp folder (sb_free it). */
char *fmt_outdir_file(const struct fmt_outdir *d, const char *name);
/*! fmt_outdir_commit() : fsync and rename the temp folder into place (an
 *  existing target is replaced only with FMT_OUT_FORCE). */
int fmt_outdir_commit(struct fmt_outdir *d, struct sb_err *err);
/*! fmt_outdir_abort() : remove the temp folder and everything in it. */
void fmt_outdir_abort(struct fmt_outdir *d);

/*! fmt_out_copy_file() : copy src to dst (a path inside an outdir), atomically. */
int fmt_out_copy_file(const char *src, const char *dst, unsigned flags, struct sb_err *err);

/*! fmt_out_signal_cleanup() : unlink every registered temp file and remove
 *  registered temp folders. Async-signal-safe: for SIGINT handlers only. */
void fmt_out_signal_cleanup(void);

/*! fmt_out_fail_write_after() : test hook: the write after the next n fails
 *  with ENOSPC; -1 turns it off. */
void fmt_out_fail_write_after(long n);

#endif
