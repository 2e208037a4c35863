/* fuzz_safetensors.c: one .safetensors file (JSON header, offsets, dtypes),
 * opened as a model and used as the commands use it. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    fuzz_write("in.safetensors", d, n);
    fuzz_open_model(fuzz_path("in.safetensors"), 0);
    return 0;
}
