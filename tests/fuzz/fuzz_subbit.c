/* fuzz_subbit.c: one .subbit container. Its checksums would stop nearly every
 * mutation at the first check, so the input is repaired first: each tensor's
 * crc32c in the JSON header is recomputed over its bytes, and the header's own
 * CRC in the prologue. The tensors are then decoded as convert decodes them
 * (sub1, sub1-qmoe and tern blobs included: fuzz_use_model gathers them). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_sbc.h"
#include "fuzz_util.h"

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void wr(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* d with checksums made right; NULL if it has no header to repair */
static uint8_t *repair(const uint8_t *d, size_t n, size_t *out_n)
{
    if (n < FMT_SBC_PROLOGUE)
        return NULL;
    uint64_t hoff = rd64(d + 8), hlen = rd64(d + 16);
    if (hoff < FMT_SBC_PROLOGUE || hoff > n || hlen > n - hoff)
        return NULL;
    char *text = NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)d + hoff, (size_t)hlen);
    cJSON *tens = root ? cJSON_GetObjectItemCaseSensitive(root, "tensors") : NULL, *t;
    cJSON_ArrayForEach(t, tens) {
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(t, "offset");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(t, "stored");
        if (!cJSON_IsNumber(of) || !cJSON_IsNumber(st) || of->valuedouble < 0 ||
            st->valuedouble < 0 || of->valuedouble > (double)hoff ||
            st->valuedouble > (double)hoff - of->valuedouble)
            continue;
        uint32_t crc = fmt_sbc_crc32c(0, d + (size_t)of->valuedouble, (size_t)st->valuedouble);
        cJSON *c = cJSON_CreateNumber(crc);
        if (!cJSON_ReplaceItemInObjectCaseSensitive(t, "crc32c", c))
            cJSON_Delete(c); /* no such field (or t is no object): leave it so */
    }
    if (root)
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t tl = text ? strlen(text) : (size_t)hlen;
    uint8_t *b = malloc((size_t)hoff + tl + 1);
    memcpy(b, d, (size_t)hoff);
    memcpy(b + hoff, text ? (const uint8_t *)text : d + hoff, tl);
    cJSON_free(text);
    wr(b + 16, tl, 8);
    wr(b + 24, fmt_sbc_crc32c(0, b + hoff, tl), 4);
    *out_n = (size_t)hoff + tl;
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    size_t rn = 0;
    uint8_t *r = repair(d, n, &rn);
    fuzz_write("in.subbit", r ? r : d, r ? rn : n);
    free(r);
    fuzz_open_model(fuzz_path("in.subbit"), 0);
    return 0;
}
