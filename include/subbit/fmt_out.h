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
 * A folder output onto an existing folder (FMT_OUT_FORCE) replaces only the
 * files it writes, and removes the previous model's weight files
 * (model.safetensors, model-NNNNN-of-NNNNN.safetensors, the index) that it
 * does not replace; every other file stays. The notice hook hears of each.
 *
 * Temps are named TARGET.subbit-tmp-PID-XXXXXX. Their paths are registered
 * in a fixed table so the CLI's SIGINT handler can remove them with
 * fmt_out_signal_cleanup() (async-signal-safe); one left by a writer that is
 * gone (kill -9) is removed by the next output to the same target, or by
 * fmt_out_clean(). */
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
/*! fmt_out_skip() : move the position n bytes on, over bytes another
 *  process writes into the temp file (o->tmp, with pwrite) before commit;
 *  what is buffered goes out first, and the file is extended to the new
 *  position (zeros where nobody writes). Writes after it follow the gap. */
int fmt_out_skip(struct fmt_out *o, uint64_t n, struct sb_err *err);
/*! fmt_out_write_at() : pwrite all n bytes at off of fd (a temp file another
 *  process made, opened by path for writing), EINTR and short writes
 *  retried; path names it in the message. The failure hook counts it. */
int fmt_out_write_at(int fd, const void *buf, size_t n, uint64_t off, const char *path,
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
/*! fmt_outdir_commit() : fsync and rename the temp folder into place. An
 *  existing folder is written into only with FMT_OUT_FORCE, file by file (see
 *  above); an existing file of that name is never replaced by a folder. */
int fmt_outdir_commit(struct fmt_outdir *d, struct sb_err *err);
/*! fmt_outdir_abort() : remove the temp folder and everything in it. */
void fmt_outdir_abort(struct fmt_outdir *d);

/*! fmt_out_copy_file() : copy src to dst (a path inside an outdir), atomically. */
int fmt_out_copy_file(const char *src, const char *dst, unsigned flags, struct sb_err *err);

/*! fmt_out_signal_cleanup() : unlink every registered temp file and remove
 *  registered temp folders with what is in them. Async-signal-safe: for
 *  SIGINT handlers only. */
void fmt_out_signal_cleanup(void);
/*! fmt_out_signal_defer() : for the same handlers, first: 1 if files are
 *  being moved into an existing folder right now; the signal is then raised
 *  again once they are in place, and the handler should return. */
int fmt_out_signal_defer(int sig);

/*! fmt_out_temp_name() : "BASE.subbit-tmp-PID-XXXXXX" into buf (for mkstemp or
 *  mkdtemp), so a temp made outside fmt_out is recognised as ours too.
 *  @return 0, or -1 if cap is too small. */
int fmt_out_temp_name(char *buf, size_t cap, const char *base);
/*! fmt_out_temp_owner() : the PID in a temp name made by fmt_out_temp_name
 *  (a file name, no folder), and *base_len = length of BASE; 0 if name
 *  is not one. */
long fmt_out_temp_owner(const char *name, size_t *base_len);
/*! fmt_out_temp_register() : add a temp made outside fmt_out to the table
 *  fmt_out_signal_cleanup() empties (folder: removed with its files).
 *  @return a slot for fmt_out_temp_unregister(), or -1 if the table is full. */
int fmt_out_temp_register(const char *path, bool folder);
void fmt_out_temp_unregister(int slot);

/* What happened to a file that was there before; for the CLI to say so. */
enum fmt_out_event {
    FMT_OUT_REPLACED,       /* replaced by a file of the new output (--force) */
    FMT_OUT_REMOVED,        /* a previous model's weight file the new output does not have */
    FMT_OUT_STALE_REMOVED   /* a temp whose writer is gone */
};
typedef void (*fmt_out_notice_fn)(void *ctx, enum fmt_out_event ev, const char *path);
/*! fmt_out_set_notice() : process-wide hook told of each such file (NULL: none). */
void fmt_out_set_notice(fmt_out_notice_fn fn, void *ctx);

/*! fmt_out_clean() : remove the temps in folder dir whose writer is gone
 *  (names from fmt_out_temp_name; only those starting with prefix if given),
 *  folders with their contents; each goes to cb (FMT_OUT_STALE_REMOVED).
 *  dry_run: report only. Temps of running writers, and every other file,
 *  stay. @return SB_OK, or SB_EIO if dir cannot be read. */
int fmt_out_clean(const char *dir, const char *prefix, bool dry_run, fmt_out_notice_fn cb,
                  void *ctx, struct sb_err *err);

/*! fmt_out_fail_write_after() : test hook: the write after the next n fails
 *  with ENOSPC; -1 turns it off. */
void fmt_out_fail_write_after(long n);

#endif
