/* fuzz_st_folder.c: a Hugging Face folder: config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json (the input's parts, FUZZ_SEP between;
 * a missing part is a missing file). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const char *const names[] = { "m/config.json", "m/model.safetensors",
                                          "m/tokenizer.json", "m/tokenizer_config.json" };
    fuzz_write_parts(d, n, names, 4);
    fuzz_open_model(fuzz_path("m"), 0);
    return 0;
}
