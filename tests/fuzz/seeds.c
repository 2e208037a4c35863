/* seeds.c: subbit-fuzz-seeds OUTDIR: seed inputs no CLI command writes as
 * files of their own: sub1 / sub1-qmoe / tern blobs in fuzz_blob's framing
 * (from the encoders, on ternary rows at a few sparsities and shapes), and
 * fuzz_layout's structured models (a llama and a Mixtral layer set, each
 * container). Deterministic; tools/fuzz runs it while building the corpora. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "sb_alloc.h"

static void put(const char *dir, const char *name, const void *a, size_t an, const void *b,
                size_t bn)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(a, 1, an, f) != an || (bn && fwrite(b, 1, bn, f) != bn) || fclose(f)) {
        perror(p);
        exit(1);
    }
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void blobs(const char *dir)
{
    static const size_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 8, 64 }, { 16, 300 }, { 40, 128 } };
    static const double zeros[] = { 0.5, 0.885, 0.99 };
    uint64_t s = 12;
    int k = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (size_t z = 0; z < 3; z++) {
            size_t rows = shapes[i][0], cols = shapes[i][1];
            float *x = malloc(rows * cols * sizeof *x);
            for (size_t j = 0; j < rows * cols; j++) {
                double u = (double)(rnd(&s) >> 11) * 0x1p-53;
                x[j] = u < zeros[z] ? 0.0f : (rnd(&s) & 1 ? 0.5f : -0.75f);
            }
            size_t tb = qnt_tern_row_bytes(cols) * rows;
            uint8_t *t = malloc(tb);
            qnt_tern_quantize_rows(x, rows, cols, t);
            size_t cap = qnt_sub1_encode_bound(rows, cols) + qnt_qmoe_encode_bound(rows, cols);
            uint8_t *b = malloc(cap);
            uint8_t hdr[5] = { 0, (uint8_t)((rows - 1) & 255), (uint8_t)((rows - 1) >> 8),
                               (uint8_t)((cols - 1) & 255), (uint8_t)((cols - 1) >> 8) };
            uint64_t n;
            char name[64];
            if (qnt_sub1_encode(t, rows, cols, b, cap, &n) == 0) {
                snprintf(name, sizeof name, "sub1-%d", k);
                put(dir, name, hdr, 5, b, (size_t)n);
            }
            hdr[0] = 1;
            if (qnt_qmoe_encode(t, rows, cols, b, cap, &n) == 0) {
                snprintf(name, sizeof name, "qmoe-%d", k);
                put(dir, name, hdr, 5, b, (size_t)n);
            }
            hdr[0] = 2;
            snprintf(name, sizeof name, "tern-%d", k);
            put(dir, name, hdr, 5, t, tb);
            free(b);
            free(t);
            free(x);
            k++;
        }
    }
}

/* fuzz_layout.c's framing: container, flags, layers, heads, kv heads,
 * experts + 1, dim, vocab, tensor count, then per tensor a name index, layer,
 * expert, dtype index, ndim, dims, and for a variable-length encoding a size
 * in 4-byte units (names[] and dtypes[] there). */
static void layouts(const char *dir)
{
    static const uint8_t llama[] = {
        0, 3, 1, 4, 2, 0, 8, 32, 9,
        0, 0, 0, 0, 2, 16, 8,          /* embed_tokens [16, 8] f32 */
        1, 0, 0, 0, 2, 16, 8,          /* lm_head */
        2, 0, 0, 0, 1, 8,              /* norm */
        3, 0, 0, 0, 1, 8,              /* input_layernorm */
        5, 0, 0, 1, 2, 8, 8,           /* q_proj f16 */
        6, 0, 0, 2, 2, 4, 8,           /* k_proj bf16 */
        7, 0, 0, 0, 2, 4, 8,           /* v_proj */
        8, 0, 0, 0, 2, 8, 8,           /* o_proj */
        12, 0, 0, 6, 2, 16, 8,         /* gate_proj tern */
    };
    static const uint8_t mixtral[] = {
        0, 5, 1, 4, 2, 3, 8, 32, 8,
        15, 0, 0, 0, 2, 2, 8,          /* block_sparse_moe.gate */
        16, 0, 0, 0, 2, 16, 8,         /* experts.0.w1 */
        16, 0, 1, 0, 2, 16, 8,         /* experts.1.w1 */
        17, 0, 0, 0, 2, 8, 16,
        17, 0, 1, 0, 2, 8, 16,
        18, 0, 0, 7, 2, 16, 8, 10,     /* w3 sub1, 40 bytes */
        18, 0, 1, 7, 2, 16, 8, 10,
        9, 0, 0, 0, 1, 8,              /* q_proj.bias */
    };
    static const uint8_t gguf[] = {
        1, 3, 1, 2, 1, 0, 8, 32, 5,
        30, 0, 0, 0, 2, 16, 8, 35, 0, 0, 0, 2, 8, 8, 36, 0, 0, 0, 2, 4, 8,
        46, 0, 0, 0, 3, 2, 16, 8, 53, 1, 2, 0, 2, 16, 8,
    };
    for (int c = 0; c < 4; c++) {
        char name[32];
        uint8_t b[sizeof llama > sizeof mixtral ? sizeof llama : sizeof mixtral];
        memcpy(b, llama, sizeof llama);
        b[0] = (uint8_t)c;
        snprintf(name, sizeof name, "llama-%d", c);
        put(dir, name, b, sizeof llama, NULL, 0);
        memcpy(b, mixtral, sizeof mixtral);
        b[0] = (uint8_t)c;
        snprintf(name, sizeof name, "mixtral-%d", c);
        put(dir, name, b, sizeof mixtral, NULL, 0);
    }
    put(dir, "gguf", gguf, sizeof gguf, NULL, 0);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "blob") && strcmp(argv[1], "layout"))) {
        fprintf(stderr, "usage: subbit-fuzz-seeds blob|layout OUTDIR\n");
        return 2;
    }
    if (!strcmp(argv[1], "blob"))
        blobs(argv[2]);
    else
        layouts(argv[2]);
    return 0;
}
