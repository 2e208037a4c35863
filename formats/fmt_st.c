/* fmt_st.c: helpers shared by the safetensors reader (fmt_st_read.c) and
 * writer (fmt_st_write.c): the compressed-tensors int8 packing (formats.md
 * §5.2) and the writer's dtype sort classes (§1.3). */
#include "fmt_st.h"

void fmt_st_pack_int8_row(const int8_t *q, size_t cols, uint8_t *words)
{
    size_t nw = (cols + 3) / 4;
    for (size_t k = 0; k < nw * 4; k++)
        words[k] = k < cols ? (uint8_t)((int)q[k] + 128) : 0;
}

void fmt_st_unpack_int8_row(const uint8_t *words, size_t cols, int8_t *q)
{
    for (size_t k = 0; k < cols; k++)
        q[k] = (int8_t)((int)words[k] - 128);
}

int fmt_st_dtype_align(enum sb_dtype dt)
{
    const struct sb_dtype_info *d = sb_dtype_get(dt);
    if (!d || !d->st_name)
        return -2;
    if (dt == SB_DTYPE_BOOL)
        return -1;
    return (int)d->type_size; /* 0 for sub-byte scalars */
}
