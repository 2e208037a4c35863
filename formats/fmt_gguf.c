/* fmt_gguf.c: GGUF reader/writer (stub until implemented). */
#include "fmt_model.h"

int fmt_gguf_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                     struct sb_err *err)
{
    (void)m;
    (void)o;
    return sb_err_set(err, SB_EUNSUPPORTED, "%s: GGUF reading is not implemented yet", path);
}
