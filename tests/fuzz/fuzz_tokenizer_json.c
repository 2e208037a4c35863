/* fuzz_tokenizer_json.c: a Hugging Face tokenizer.json, every way it is read:
 * back to SentencePiece pieces (HF -> GGUF), a byte-level one to GGUF "gpt2"
 * keys and back to tokenizer.json (HF -> GGUF -> HF), and as a tokenizer for
 * ppl/run (byte-level or SentencePiece-style BPE) that then encodes and decodes
 * a text. */
#include <stdbool.h>
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
    struct fmt_hftok_file *f = NULL;
    if (fmt_hftok_parse(&f, text, n, &err) == SB_OK && f->kind == FMT_HFTOK_BYTE_LEVEL) {
        struct fmt_hftok_gpt2 g;
        struct fmt_hftok_specials sp;
        if (fmt_hftok_gpt2_from_file(&g, f, 0, &err) == SB_OK &&
            fmt_hftok_specials(&sp, f, text, n, -1, -1, g.n) == SB_OK) {
            bool exact;
            struct fmt_hftok_gguf k = {
                .tokens = g.tokens, .lens = g.lens, .n = g.n, .types = g.types,
                .merges = g.merges, .merge_lens = g.merge_lens, .n_merges = g.n_merges,
                .pre = fmt_hftok_pre_name(f, &exact), .chat_template = sp.chat_template,
                .bos = sp.bos, .eos = sp.eos, .unk = sp.unk, .sep = sp.sep, .pad = sp.pad,
                .add_bos = sp.add_bos, .add_eos = sp.add_eos };
            char *js, *cfg;
            size_t lj, lc;
            struct fmt_hftok_file *back = NULL;
            if (fmt_hftok_gguf_json(&k, "fuzz", &js, &lj, &cfg, &lc, &err) == SB_OK) {
                fmt_hftok_parse(&back, js, lj, &err);
                fmt_hftok_file_free(back);
                sb_free(js);
                sb_free(cfg);
            }
            sb_free(sp.chat_template);
        }
        fmt_hftok_gpt2_release(&g);
    }
    fmt_hftok_file_free(f);
    memset(&v, 0, sizeof v);
    v.kind = FMT_VOCAB_HF_JSON;
    v.hf_json = text; /* owned by v from here */
    v.hf_json_len = n;
    v.bos_id = v.eos_id = v.unk_id = -1;
    fuzz_use_vocab(&v);
    fmt_vocab_release(&v);
    return 0;
}
