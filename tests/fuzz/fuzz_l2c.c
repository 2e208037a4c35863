/* fuzz_l2c.c: a llama2.c checkpoint and the tokenizer.bin beside it (two
 * parts, FUZZ_SEP between; no second part: no tokenizer). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const char *const names[] = { "model.bin", "tokenizer.bin" };
    fuzz_write_parts(d, n, names, 2);
    fuzz_open_model(fuzz_path("model.bin"), 0);
    return 0;
}
