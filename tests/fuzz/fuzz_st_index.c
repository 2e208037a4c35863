/* fuzz_st_index.c: a sharded folder: model.safetensors.index.json, two
 * shards and config.json (the input's parts, FUZZ_SEP between). Opened as a
 * model, and headers only (what mem reads). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const char *const names[] = { "m/model.safetensors.index.json",
                                          "m/model-00001-of-00002.safetensors",
                                          "m/model-00002-of-00002.safetensors", "m/config.json" };
    fuzz_write_parts(d, n, names, 4);
    fuzz_open_model(fuzz_path("m"), 0);
    fuzz_open_model(fuzz_path("m"), 1);
    return 0;
}
