/* fuzz_l2c_tok.c: a llama2.c tokenizer.bin for a vocab size taken from the
 * input's first two bytes; if it reads, a tokenizer is built from it and
 * encodes and decodes a text, as ppl and run do. */
#include <string.h>

#include "fmt_l2c.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 2)
        return 0;
    uint32_t n_tokens = (uint32_t)d[0] | (uint32_t)d[1] << 8;
    fuzz_write("tokenizer.bin", d + 2, n - 2);
    struct fmt_vocab v;
    memset(&v, 0, sizeof v);
    struct sb_err err = { 0 };
    if (fmt_l2c_read_tokenizer(&v, fuzz_path("tokenizer.bin"), n_tokens, &err) == SB_OK)
        fuzz_use_vocab(&v);
    fmt_vocab_release(&v);
    return 0;
}
