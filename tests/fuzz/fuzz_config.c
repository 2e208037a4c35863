/* fuzz_config.c: a config.json, read as every command reads one: the
 * architecture for the core and convert, and mem's description and estimate
 * (sizes multiplied out: the place for overflow). */
#include <stdlib.h>
#include <string.h>

#include "fmt_model.h"
#include "fuzz_util.h"
#include "vfy_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    char *text = malloc(n + 1);
    memcpy(text, d, n);
    text[n] = '\0';
    struct fmt_arch a;
    memset(&a, 0, sizeof a);
    struct sb_err err = { 0 };
    fmt_arch_from_hf_config(&a, text, n, "config.json", &err);
    struct vfy_mem_model mm;
    memset(&mm, 0, sizeof mm);
    sb_err_clear(&err);
    if (vfy_mem_from_config(&mm, text, n, "config.json", &err) == SB_OK) {
        struct vfy_mem_opts o;
        struct vfy_mem_est e;
        vfy_mem_opts_init(&o);
        vfy_mem_estimate(&mm, &o, &e, &err);
        o.train = true;
        o.ctx = 1u << 20;
        o.batch = 64;
        sb_err_clear(&err);
        vfy_mem_estimate(&mm, &o, &e, &err);
        vfy_mem_model_release(&mm);
    }
    free(text);
    return 0;
}
