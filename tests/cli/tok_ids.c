/* tok_ids.c: the token ids subbit's tokenizer gives a text, for CLI tests that
 * compare them with llama.cpp's llama-tokenize (t1040, t1050):
 *   tok_ids MODEL TEXTFILE
 * prints "[id, id, ...]" (no BOS), as `llama-tokenize --ids --no-bos` does;
 * exits 1 with one line on stderr when the model or its tokenizer cannot be read. */
#include <stdio.h>

#include "fmt_model.h"
#include "sb_alloc.h"
#include "vfy_tok.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tok_ids MODEL TEXTFILE\n");
        return 2;
    }
    struct sb_err err = { 0 };
    struct fmt_model *m = NULL;
    struct vfy_tok *t = NULL;
    char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    if (fmt_model_open(&m, argv[1], NULL, &err) || vfy_tok_new(&t, &m->vocab, &err) ||
        fmt_read_file(argv[2], &text, &len, &err) ||
        vfy_tok_encode(t, text, len, false, &ids, &n, &err)) {
        fprintf(stderr, "tok_ids: %s\n", err.msg);
        return 1;
    }
    printf("[");
    for (size_t i = 0; i < n; i++)
        printf(i ? ", %d" : "%d", (int)ids[i]);
    printf("]\n");
    sb_free(ids);
    sb_free(text);
    vfy_tok_free(t);
    fmt_model_free(m);
    return 0;
}
