/* vfy_model_impl.h: the bound model and the context (verify/ only). */
#ifndef VFY_MODEL_IMPL_H
#define VFY_MODEL_IMPL_H

#include "vfy_model.h"

/* The pack arena (vfy_model.c) asks for transparent huge pages from this
 * size on: a huge page is resident whole, and below it the 4 KiB pages'
 * TLB reach covers the packs (vfy_mem.c counts the 2 MiB rounding from
 * the same size on) */
#define VFY_PACK_HUGE_MIN ((uint64_t)16 << 20)

/* A matrix view: rows row0 .. row0+nrows-1 of a [rows, cols] tensor, in
 * its stored encoding. y = W x maps cols inputs to nrows outputs. */
struct vfy_mat {
    enum sb_dtype dt;
    const void *w;
    uint64_t nbytes;
    struct sb_qparams qp;
    size_t rows, cols;
    size_t row0, nrows;
    const char *name;            /* the tensor's name (borrowed from the fmt_model) */
    bool replaced;               /* vfy_model_set_mat: w holds this matrix's rows only */
    void *pack;                  /* its rows repacked (in the model's pack arena), or NULL */
    size_t orig_rows, orig_row0; /* where it was in its tensor before */
};

struct vfy_expert {
    struct vfy_mat gate, up, down;   /* (F, dim), (F, dim), (dim, F) */
};

struct vfy_layer {
    float *attn_norm, *ffn_norm;     /* (dim) */
    struct vfy_mat wq, wk, wv, wo;   /* (nh*hd, dim), (nkv*hd, dim) x2, (dim, nh*hd) */
    float *bq, *bk, *bv;             /* biases or NULL */
    bool moe;
    struct vfy_mat gate, up, down;   /* dense FFN (F, dim), (F, dim), (dim, F) */
    int ffn_dim;                     /* F of the dense FFN */
    struct vfy_mat router;           /* (E, dim) */
    struct vfy_expert *experts;      /* [E] */
    int moe_dim;                     /* F of each expert */
    bool has_shared;
    struct vfy_mat sh_gate, sh_up, sh_down;
    float *sh_gate_inp;              /* (dim): sigmoid gate of the shared expert */
    int sh_dim;
};

struct vfy_model {
    const struct fmt_model *m;
    struct vfy_model_info info;
    struct vfy_mat embd;             /* (vocab, dim) */
    struct vfy_mat out;              /* (vocab, dim); the embedding when tied */
    float *out_norm;                 /* (dim) */
    struct vfy_layer *layers;        /* [n_layers] */
    float eps;
    double rope_theta;
    bool renorm_topk;                /* Mixtral: renormalise the chosen k weights */
    int max_ffn;                     /* widest FFN of any kind */
    bool ffn_noted;                  /* a note on the FFN width made already */
    void *pack_arena;                /* every matrix's pack (vfy_model.c), or NULL */
    uint64_t pack_bytes, pack_used;  /* its size; bytes placed while packing */
};

/* Y[n, nrows] = X m^T: the packed rows where there are, else the tensor's. */
void vfy_mat_mul(const struct vfy_mat *m, const float *X, size_t n, float *Y);

#endif
