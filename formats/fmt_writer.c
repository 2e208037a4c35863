/* fmt_writer.c: dispatch to the container writers; checks the put order. */
#include "fmt_writer.h"

#include <string.h>
#include <strings.h>

/* any case: x.GGUF is as clear as x.gguf */
static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

enum fmt_container fmt_container_from_path(const char *path)
{
    if (ends_with(path, ".gguf"))
        return FMT_CONT_GGUF;
    if (ends_with(path, ".subbit"))
        return FMT_CONT_SUBBIT;
    return FMT_CONT_SAFETENSORS;
}

int fmt_container_for_output(const char *path, enum fmt_container *c, struct sb_err *err)
{
    if (!path || !*path)
        return sb_err_set(err, SB_EINVAL, "empty output name");
    if (!strcmp(path, "-"))
        return sb_err_set(err, SB_EINVAL, "-: a model cannot be written to standard output; "
                                          "name a .gguf, .subbit or .safetensors file or a folder");
    *c = fmt_container_from_path(path);
    size_t n = strlen(path);
    if (*c != FMT_CONT_SAFETENSORS || ends_with(path, ".safetensors") || path[n - 1] == '/')
        return SB_OK;
    /* a folder name has no extension: "out.txt" or "model.bin" is a typo or a
     * guess, not a request for a folder of that name */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base && strcmp(base, "..") != 0)
        return sb_err_set(err, SB_EINVAL, "%s: unknown output extension '%s' (use .gguf, "
                                          ".subbit, .safetensors, or a folder: a name without "
                                          "one, or ending in '/')", path, dot);
    return SB_OK;
}

int fmt_writer_open(struct fmt_writer **w, enum fmt_container c, const char *path,
                    const struct fmt_tensor *plan, size_t n, const struct fmt_write_opts *o,
                    struct sb_err *err)
{
    static const struct fmt_write_opts dflt;
    *w = NULL;
    if (!o)
        o = &dflt;
    switch (c) {
    case FMT_CONT_SAFETENSORS: return fmt_st_writer_open(w, path, plan, n, o, err);
    case FMT_CONT_GGUF: return fmt_gguf_writer_open(w, path, plan, n, o, err);
    case FMT_CONT_SUBBIT: return fmt_sbc_writer_open(w, path, plan, n, o, err);
    default:
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: cannot write %s files", path,
                          fmt_container_name(c));
    }
}

size_t fmt_writer_order(const struct fmt_writer *w, size_t k)
{
    return w->order ? w->order[k] : k;
}

bool fmt_writer_streams(const struct fmt_writer *w, size_t i)
{
    return w->ops->put_piece && w->ops->streams && w->ops->streams(w, i);
}

bool fmt_container_streams(enum fmt_container c, enum sb_dtype dt)
{
    return c == FMT_CONT_GGUF || (c == FMT_CONT_SAFETENSORS && dt != SB_DTYPE_INT8);
}

int fmt_writer_put_piece(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                         uint64_t total, struct sb_err *err)
{
    if (w->next >= w->n || fmt_writer_order(w, w->next) != i)
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu put out of order", i);
    if (!fmt_writer_streams(w, i))
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu cannot be put in pieces", i);
    if (n > total - w->piece_off)
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu: pieces past its %llu bytes", i,
                          (unsigned long long)total);
    int r = w->ops->put_piece(w, i, data, n, w->piece_off, total, err);
    if (r != SB_OK)
        return r;
    w->piece_off += n;
    if (w->piece_off == total) {
        w->piece_off = 0;
        w->next++;
    }
    return SB_OK;
}

int fmt_writer_put(struct fmt_writer *w, size_t i, const void *data, uint64_t nbytes,
                   struct sb_err *err)
{
    if (w->next >= w->n || fmt_writer_order(w, w->next) != i)
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu put out of order", i);
    if (w->piece_off)
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu put while pieces are pending", i);
    int r = w->ops->put(w, i, data, nbytes, err);
    if (r == SB_OK)
        w->next++;
    return r;
}

int fmt_writer_place(struct fmt_writer *w, size_t i, const struct fmt_placed *p, uint64_t *off,
                     struct sb_err *err)
{
    if (w->next >= w->n || fmt_writer_order(w, w->next) != i)
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu placed out of order", i);
    if (w->piece_off)
        return sb_err_set(err, SB_EINVAL, "writer: tensor %zu placed while pieces are pending", i);
    if (!w->ops->place)
        return sb_err_set(err, SB_EUNSUPPORTED, "writer: this container cannot place tensors");
    int r = w->ops->place(w, i, p, off, err);
    if (r == SB_OK)
        w->next++;
    return r;
}

const char *fmt_writer_file(const struct fmt_writer *w)
{
    return w->ops->place && w->ops->file ? w->ops->file(w) : NULL;
}

int fmt_writer_commit(struct fmt_writer *w, struct sb_err *err)
{
    if (w->next != w->n) {
        int r = sb_err_set(err, SB_EINVAL, "writer: %zu of %zu tensors written", w->next, w->n);
        w->ops->abort(w);
        return r;
    }
    return w->ops->commit(w, err);
}

void fmt_writer_abort(struct fmt_writer *w)
{
    if (w)
        w->ops->abort(w);
}
