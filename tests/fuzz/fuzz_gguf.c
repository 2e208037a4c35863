/* fuzz_gguf.c: one GGUF file: metadata of every type, tensor infos, the
 * llama / qwen2moe config and the SentencePiece vocabulary. Mapped, and
 * headers only through the pread window (mem). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    fuzz_write("in.gguf", d, n);
    fuzz_open_model(fuzz_path("in.gguf"), 0);
    fuzz_open_model(fuzz_path("in.gguf"), 1);
    return 0;
}
