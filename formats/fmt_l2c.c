/* fmt_l2c.c: llama2.c reader/writer (stub until implemented). */
#include "fmt_model.h"

int fmt_l2c_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                     struct sb_err *err)
{
    (void)m;
    (void)o;
    return sb_err_set(err, SB_EUNSUPPORTED, "%s: llama2.c reading is not implemented yet", path);
}
