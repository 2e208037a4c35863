/* fmt_gguf.c: GGUF reader/writer (stub until implemented). */
#include "fmt_model.h"

int fmt_gguf_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                     struct sb_err *err)
{
    (void)m;
    (void)o;
    return sb_err_set(err, SB_EUNSUPPORTED, "%s: GGUF reading is not implemented yet", path);
}

#include "fmt_writer.h"

int fmt_gguf_writer_open(struct fmt_writer **w, const char *path, const struct fmt_tensor *plan,
                       size_t n, const struct fmt_write_opts *o, struct sb_err *err)
{
    (void)w;
    (void)plan;
    (void)n;
    (void)o;
    return sb_err_set(err, SB_EUNSUPPORTED, "%s: writing is not implemented yet", path);
}
