/* fuzz_tokenizer_json.c: a Hugging Face tokenizer.json, both ways it is read:
 * back to SentencePiece pieces (HF -> GGUF), and as a tokenizer for ppl/run
 * (byte-level or SentencePiece-style BPE) that then encodes and decodes a
 * text. */
#include <stdlib.h>
#include <string.h>

#include "fmt_hftok.h"
#include "fuzz_util.h"
#include "sb_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    char *text = sb_malloc(n + 1);
    memcpy(text, d, n);
    text[n] = '\0';
    struct fmt_vocab v;
    memset(&v, 0, sizeof v);
    struct sb_err err = { 0 };
    if (fmt_hftok_to_spm(&v, text, n, 0, &err) == SB_OK)
        fuzz_use_vocab(&v);
    fmt_vocab_release(&v);
    memset(&v, 0, sizeof v);
    v.kind = FMT_VOCAB_HF_JSON;
    v.hf_json = text; /* owned by v from here */
    v.hf_json_len = n;
    v.bos_id = v.eos_id = v.unk_id = -1;
    fuzz_use_vocab(&v);
    fmt_vocab_release(&v);
    return 0;
}
