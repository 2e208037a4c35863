/* fmt_writer.h: the one streaming-writer shape every container implements
 * (safetensors, GGUF, .subbit), so convert/ can stream any model into any
 * container with bounded memory.
 *
 * Calling sequence:
 *   fmt_writer_open(&w, FMT_CONT_GGUF, "out.gguf", plan, n, &opts, err);
 *   for (k = 0; k < n; k++) {
 *       size_t i = fmt_writer_order(w, k);          which plan entry comes next
 *       ... produce the bytes of plan[i] ...
 *       fmt_writer_put(w, i, data, nbytes, err);    exactly plan[i].nbytes bytes
 *   }                                               (variable-length encodings:
 *                                                    the real size, plan nbytes = 0)
 *   fmt_writer_commit(w, err);                      atomic: all or nothing
 *   (on any failure) fmt_writer_abort(w);           no output file remains
 *
 * The plan is an array of struct fmt_tensor whose data fields are unused:
 * name, dtype, ndim, shape, qp and nbytes say what will be written. The writer
 * copies what it needs; the plan may be freed after open. */
#ifndef FMT_WRITER_H
#define FMT_WRITER_H

#include "fmt_model.h"
#include "fmt_out.h"

struct fmt_write_opts {
    unsigned flags;                       /* FMT_OUT_FORCE */
    uint64_t shard_size;                  /* safetensors: max data bytes per shard; 0 = one file */
    const char *config_json;              /* folder outputs: written as config.json (NULL: none) */
    const char *const *side_files;        /* folder outputs: files copied in (tokenizer.json, ...) */
    size_t n_side_files;
    const struct fmt_kv *kv;              /* GGUF metadata; safetensors __metadata__ (strings only) */
    size_t n_kv;
    const struct fmt_arch *arch;          /* for containers that record the config (GGUF, .subbit) */
    const struct fmt_vocab *vocab;        /* tokenizer to embed (GGUF, .subbit), or NULL */
    uint32_t alignment;                   /* GGUF general.alignment (0 = 32) */
};

struct fmt_writer;

/* A tensor's bytes as another process writes them into a one-file container
 * (GGUF, .subbit) at the offset the writer plans (fmt_writer_place). */
struct fmt_placed {
    uint64_t nbytes;      /* the tensor's bytes (what fmt_writer_put would be given) */
    uint64_t stored;      /* bytes in the file: nbytes, or .subbit's zstd frame */
    uint32_t crc32c;      /* .subbit: of the stored bytes */
    uint32_t zstd;        /* .subbit: 1 when stored compressed */
};

struct fmt_writer_ops {
    int (*put)(struct fmt_writer *w, size_t i, const void *data, uint64_t nbytes,
               struct sb_err *err);
    int (*commit)(struct fmt_writer *w, struct sb_err *err);   /* frees w */
    void (*abort)(struct fmt_writer *w);                        /* frees w */
    /* optional (NULL: tensors only whole): the next n bytes of plan[i], of which
     * off were given before, total in all */
    int (*put_piece)(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                     uint64_t off, uint64_t total, struct sb_err *err);
    bool (*streams)(const struct fmt_writer *w, size_t i);     /* may plan[i] come in pieces */
    /* optional (NULL: no placing): one-file containers */
    int (*place)(struct fmt_writer *w, size_t i, const struct fmt_placed *p, uint64_t *off,
                 struct sb_err *err);
    const char *(*file)(const struct fmt_writer *w);
};

/* Containers embed this as their first member. */
struct fmt_writer {
    const struct fmt_writer_ops *ops;
    size_t n;              /* plan entries */
    size_t *order;         /* [n]: order[k] = plan index written k-th (owned by the container) */
    size_t next;           /* k of the next put */
    uint64_t piece_off;    /* bytes of plan[order[next]] given so far in pieces */
};

/*! fmt_writer_open() : start writing a model in container c at path.
 *  A path ending in '/' or naming a folder, or a safetensors output with
 *  shard_size, gives a Hugging Face folder. */
int fmt_writer_open(struct fmt_writer **w, enum fmt_container c, const char *path,
                    const struct fmt_tensor *plan, size_t n, const struct fmt_write_opts *o,
                    struct sb_err *err);
/*! fmt_writer_order() : the plan index to put k-th. */
size_t fmt_writer_order(const struct fmt_writer *w, size_t k);
/*! fmt_writer_streams() : whether plan[i] may be given in pieces
 *  (fmt_writer_put_piece), so that a caller can produce and write a large
 *  tensor a slice at a time. */
bool fmt_writer_streams(const struct fmt_writer *w, size_t i);
/*! fmt_container_streams() : what fmt_writer_streams says of a tensor of
 *  encoding dt in container c's writer, without opening one (GGUF: always;
 *  safetensors: all but int8, whose scales follow its codes; .subbit: never,
 *  a tensor is compressed and checksummed whole). */
bool fmt_container_streams(enum fmt_container c, enum sb_dtype dt);
/*! fmt_writer_put_piece() : the next n bytes of plan[i] (total = plan[i].nbytes
 *  in all); the tensor is complete once total bytes were given. Only where
 *  fmt_writer_streams(w, i). */
int fmt_writer_put_piece(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                         uint64_t total, struct sb_err *err);
/*! fmt_writer_put() : the bytes of plan[i]; i must equal fmt_writer_order(w, next). */
int fmt_writer_put(struct fmt_writer *w, size_t i, const void *data, uint64_t nbytes,
                   struct sb_err *err);
/*! fmt_writer_place() : instead of fmt_writer_put, in the same order: the
 *  bytes of plan[i] (p->stored of them) will be written by someone else at
 *  *off of fmt_writer_file(w), with pwrite, before commit; the writer records
 *  them (GGUF: p->stored must be the planned size; .subbit: p from
 *  fmt_sbc_stored) and moves past. So several processes write one file at
 *  offsets planned before the bytes move (convert's MPI job). */
int fmt_writer_place(struct fmt_writer *w, size_t i, const struct fmt_placed *p, uint64_t *off,
                     struct sb_err *err);
/*! fmt_writer_file() : the temp file the output is written as (for
 *  fmt_writer_place's writers to open), or NULL where the container cannot
 *  place (folders, safetensors). */
const char *fmt_writer_file(const struct fmt_writer *w);
int fmt_writer_commit(struct fmt_writer *w, struct sb_err *err);
void fmt_writer_abort(struct fmt_writer *w);

/*! fmt_container_from_path() : the container an output name asks for:
 *  .gguf → GGUF, .subbit → subbit (any case), anything else (.safetensors or
 *  a folder) → safetensors. */
enum fmt_container fmt_container_from_path(const char *path);

/* per-container openers (fmt_st.c, fmt_gguf.c, fmt_sbc.c) */
int fmt_st_writer_open(struct fmt_writer **w, const char *path, const struct fmt_tensor *plan,
                       size_t n, const struct fmt_write_opts *o, struct sb_err *err);
int fmt_gguf_writer_open(struct fmt_writer **w, const char *path, const struct fmt_tensor *plan,
                         size_t n, const struct fmt_write_opts *o, struct sb_err *err);
int fmt_sbc_writer_open(struct fmt_writer **w, const char *path, const struct fmt_tensor *plan,
                        size_t n, const struct fmt_write_opts *o, struct sb_err *err);

#endif
