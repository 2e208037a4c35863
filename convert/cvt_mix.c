/* cvt_mix.c: llama-quantize's mixes by name (Q4_K_M, Q5_K_S, Q6_K, IQ4_XS,
 * ...): the per-tensor type rule of docs/ggml-mixes.md, section 4, for llama
 * and Mixtral without an importance matrix. Knows names and shapes, never
 * bytes (the quantizers are quant/qnt_ggml_types.h's, the bytes of record).
 * Not implemented: Falcon's exceptions, fused attn_qkv, --pure and the
 * IQ1/IQ2/IQ3 mixes. */
#include "cvt_convert.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    enum sb_dtype base;
    uint32_t ftype;
} mixes[] = {
    [CVT_MIX_Q2_K] = { "Q2_K", SB_DTYPE_Q2_K, 10 },
    [CVT_MIX_Q3_K_S] = { "Q3_K_S", SB_DTYPE_Q3_K, 11 },
    [CVT_MIX_Q3_K_M] = { "Q3_K_M", SB_DTYPE_Q3_K, 12 },
    [CVT_MIX_Q3_K_L] = { "Q3_K_L", SB_DTYPE_Q3_K, 13 },
    [CVT_MIX_Q4_K_S] = { "Q4_K_S", SB_DTYPE_Q4_K, 14 },
    [CVT_MIX_Q4_K_M] = { "Q4_K_M", SB_DTYPE_Q4_K, 15 },
    [CVT_MIX_Q5_K_S] = { "Q5_K_S", SB_DTYPE_Q5_K, 16 },
    [CVT_MIX_Q5_K_M] = { "Q5_K_M", SB_DTYPE_Q5_K, 17 },
    [CVT_MIX_Q6_K] = { "Q6_K", SB_DTYPE_Q6_K, 18 },
    [CVT_MIX_IQ4_NL] = { "IQ4_NL", SB_DTYPE_IQ4_NL, 25 },
    [CVT_MIX_IQ4_XS] = { "IQ4_XS", SB_DTYPE_IQ4_XS, 30 },
};

int cvt_mix_from_name(const char *s)
{
    for (int m = 1; m < CVT_MIX_COUNT; m++)
        if (!strcmp(mixes[m].name, s))
            return m;
    return 0;
}

const char *cvt_mix_name(int mix)
{
    return mix > 0 && mix < CVT_MIX_COUNT ? mixes[mix].name : "";
}

uint32_t cvt_mix_ftype(int mix)
{
    return mix > 0 && mix < CVT_MIX_COUNT ? mixes[mix].ftype : 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* use_more_bits(i, n) of llama-quant.cpp (integer division) */
static bool more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* the layer index of "blk.N....", -1 for tensors outside the layers */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4))
        return -1;
    return atoi(name + 4);
}

int cvt_mix_order(const char *a, const char *b)
{
    const int la = layer_of(a), lb = layer_of(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* the shape fallback (section 4, last paragraph): SB_DTYPE_COUNT when there is none */
static enum sb_dtype fallback(enum sb_dtype t, int64_t ne0)
{
    if (ne0 % (int64_t)sb_dtype_get(t)->blck == 0)
        return t;
    enum sb_dtype f;
    switch (t) {
    case SB_DTYPE_Q2_K: case SB_DTYPE_Q3_K: f = SB_DTYPE_Q4_0; break;
    case SB_DTYPE_Q4_K: f = SB_DTYPE_Q5_0; break;
    case SB_DTYPE_Q5_K: f = SB_DTYPE_Q5_1; break;
    case SB_DTYPE_Q6_K: f = SB_DTYPE_Q8_0; break;
    case SB_DTYPE_IQ4_XS: f = SB_DTYPE_IQ4_NL; break;
    default: return SB_DTYPE_COUNT;
    }
    return ne0 % (int64_t)sb_dtype_get(f)->blck == 0 ? f : SB_DTYPE_F16;
}

enum sb_dtype cvt_mix_decide(const struct cvt_opts *o, const char *name, const int64_t *shape,
                             int ndim, enum sb_dtype from, const char **why)
{
    const struct cvt_mix_model *mm = &o->mix_model;
    const int mix = o->mix;
    /* section 1: what is quantized at all */
    if (ndim < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight") ||
        strstr(name, "ffn_gate_inp.weight") || strstr(name, "position_embd") ||
        strstr(name, "token_types")) {
        *why = "not quantized by the mix";
        return from;
    }
    enum sb_dtype t = mixes[mix].base;
    const int64_t ne0 = shape[ndim - 1];
    const int i = layer_of(name), n = mm->n_layer;
    const bool eight = mm->n_expert == 8;
    *why = "mix base type";
    if (!strcmp(name, "output.weight") || (!mm->has_output && !strcmp(name, "token_embd.weight"))) {
        t = ne0 % (int64_t)sb_dtype_get(t)->blck ? SB_DTYPE_Q8_0 : SB_DTYPE_Q6_K;
        *why = "mix: output";
    } else if (!strcmp(name, "token_embd.weight")) {
        /* the base type */
    } else if (strstr(name, "attn_v.weight")) {
        switch (mix) {
        case CVT_MIX_Q2_K: t = mm->n_gqa >= 4 ? SB_DTYPE_Q4_K : SB_DTYPE_Q3_K; break;
        case CVT_MIX_Q3_K_M: t = i < 2 ? SB_DTYPE_Q5_K : SB_DTYPE_Q4_K; break;
        case CVT_MIX_Q3_K_L: t = SB_DTYPE_Q5_K; break;
        case CVT_MIX_IQ4_NL: case CVT_MIX_IQ4_XS:
            if (mm->n_gqa >= 4)
                t = SB_DTYPE_Q5_K;
            break;
        case CVT_MIX_Q4_K_M: case CVT_MIX_Q5_K_M:
            if (more_bits(i, n))
                t = SB_DTYPE_Q6_K;
            break;
        case CVT_MIX_Q4_K_S:
            if (i < 4)
                t = SB_DTYPE_Q5_K;
            break;
        default: break;
        }
        /* a 70B-class model's attn_v is 8x smaller than attn_q: more bits cost little */
        if (mm->llama_70b && (t == SB_DTYPE_Q3_K || t == SB_DTYPE_Q4_K))
            t = SB_DTYPE_Q5_K;
        if (eight)
            t = SB_DTYPE_Q8_0;
        *why = "mix: attn_v";
    } else if (strstr(name, "attn_k.weight")) {
        if (eight) {
            t = SB_DTYPE_Q8_0;
            *why = "mix: attn_k, 8 experts";
        }
    } else if (strstr(name, "ffn_down")) {
        switch (mix) {
        case CVT_MIX_Q2_K: t = SB_DTYPE_Q3_K; break;
        case CVT_MIX_Q3_K_M: t = i < n / 16 ? SB_DTYPE_Q5_K : SB_DTYPE_Q4_K; break;
        case CVT_MIX_Q3_K_L: t = SB_DTYPE_Q5_K; break;
        case CVT_MIX_Q4_K_M: case CVT_MIX_Q5_K_M:
            if (more_bits(i, n))
                t = SB_DTYPE_Q6_K;
            break;
        case CVT_MIX_IQ4_NL: case CVT_MIX_IQ4_XS: case CVT_MIX_Q4_K_S:
            if (i < n / 8)
                t = SB_DTYPE_Q5_K;
            break;
        default: break;
        }
        *why = "mix: ffn_down";
    } else if (strstr(name, "attn_output.weight")) {
        if (eight) {
            switch (mix) {
            case CVT_MIX_Q2_K: case CVT_MIX_Q3_K_S: case CVT_MIX_Q3_K_M: case CVT_MIX_Q4_K_S:
            case CVT_MIX_Q4_K_M: case CVT_MIX_IQ4_NL: case CVT_MIX_IQ4_XS:
                t = SB_DTYPE_Q5_K;
                break;
            default: break;
            }
        } else if (mix == CVT_MIX_Q2_K) {
            t = SB_DTYPE_Q3_K;
        } else if (mix == CVT_MIX_Q3_K_M) {
            t = SB_DTYPE_Q4_K;
        } else if (mix == CVT_MIX_Q3_K_L) {
            t = SB_DTYPE_Q5_K;
        }
        *why = "mix: attn_output";
    }
    const enum sb_dtype f = fallback(t, ne0);
    if (f != t && f != SB_DTYPE_COUNT)
        *why = "mix: row not a block multiple (llama-quantize's fallback)";
    return f;
}
