/* cvt_quant.h: calibrated quantization, the way GPTQ and QMoE run it
 * (qmoe-gptq.md §3-4, issue 10):
 *
 * Layer by layer, the calibration activations entering layer l come from the
 * already quantized layers before it. Within a layer: q/k/v share one
 * Hessian (their common input); o_proj gets its own (the attention output,
 * computed with the quantized q/k/v); the router runs on the quantized
 * attention's output; each expert's gate/up Hessian uses only the tokens
 * routed to that expert (top-k, as the model routes), and its down Hessian
 * the expert's own intermediate activations computed with its quantized
 * gate/up; shared experts and dense FFNs see every token; the classifier sees
 * the final normed hidden states. An expert routed fewer than
 * min_expert_tokens tokens (or none) is rounded to nearest, and reported.
 * Routers, norms and embeddings are never quantized by default (the policy
 * of cvt_convert decides which matrix gets which encoding; GPTQ runs for the
 * grids qnt_gptq_supported() knows, sub1/sub1-qmoe code GPTQ's tern symbols).
 *
 * Memory: the calibration activations of one layer at a time (tokens x
 * hidden x 4 bytes, twice: the residual stream and the attention / FFN
 * output), a Hessian, GPTQ's scratch for one matrix, and the quantized
 * matrices until they are written (the size of the output).
 *
 * Calling sequence:
 *   struct cvt_quant_opts o; cvt_quant_opts_init(&o); o.conv.to = SB_DTYPE_SUB1; ...
 *   cvt_quant(model, calib_plan, "out.subbit", &o, &rep, err);
 *   ... print rep ...; cvt_quant_report_free(rep); */
#ifndef CVT_QUANT_H
#define CVT_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cvt_convert.h"
#include "qnt_gptq.h"
#include "vfy_ppl.h"

enum cvt_qmethod { CVT_QUANT_GPTQ = 0, CVT_QUANT_RTN };

/* act_fit's least-squares fit needs many tokens per input column: on tinymoe's
 * q4_0 it made the held-out KL divergence worse with 3 and 8 tokens a column
 * (an expert's share of 1,536 and 4,096 calibration tokens), about even at 32,
 * better at 256 (131,072). Below this the matrix gets plain GPTQ. */
#define CVT_QUANT_FIT_TOKENS 32u

struct cvt_quant_opts {
    struct cvt_opts conv;          /* the output: target, rules, experts_only, dense_to, qp,
                                      shard size, force (stats is ignored: see cvt_qmat) */
    enum cvt_qmethod method;
    struct qnt_gptq_opts gptq;
    size_t min_expert_tokens;      /* fewer routed tokens: round-to-nearest (default 1) */
    bool rtn_error;                /* also measure round-to-nearest's output error (default on) */
    bool act_fit;                  /* q8_0/q4_0 (8-bit activations): fit the weights to the
                                      rounded activations (qnt_gptq_hessian_add_q8x; default
                                      off) where a matrix saw CVT_QUANT_FIT_TOKENS a column */
    struct sb_progress progress;   /* calibration: matrices done / total */
    /* The memory cap is conv.max_memory (0: none): activations and work
     * buffers are sized against it; when they do not fit, the finished
     * quantized matrices, then the calibration activations, are spilled to
     * files in scratch_dir (NULL: the output's folder); a cap below one
     * layer's need is refused (cvt_quant_memory). */
    const char *scratch_dir;
};

/* What cvt_quant holds resident, in bytes (cvt_quant_memory). The peak is the
 * larger of the calibration's, fixed + work + weights + (spill_held ?
 * held_window : held) + (spill ? spill_window : act), and the write's. */
struct cvt_quant_mem {
    uint64_t fixed;                /* the process: half of CVT_MEM_FIXED (the writer's
                                      buffers, the other half, come after the calibration) */
    uint64_t work;                 /* GPTQ's buffers, the core's context, routing lists */
    uint64_t weights;              /* the largest layer's source bytes (the model's mapped pages
                                      are released after each layer under a cap), with f32
                                      copies of its ternary-grid matrices; plus any source
                                      tensor not mapped from its file (on the heap throughout) */
    uint64_t held;                 /* the quantized matrices, held until the file is written */
    uint64_t held_window;          /* when they spill: the most held at once (a layer's dense
                                      matrices and one expert's, or the classifier) */
    uint64_t act;                  /* the calibration activations: 2 x tokens x width x 4 */
    uint64_t spill_window;         /* activation pages resident at once when spilled */
    uint64_t write;                /* the write, after the calibration's buffers are freed:
                                      held (0 when spilled) + CVT_MEM_FIXED + the largest
                                      tensor, source or quantized */
    uint64_t peak;                 /* the predicted peak (of the formula above) */
    uint64_t tokens;
    bool spill;                    /* act did not fit the cap: spilled to a scratch file */
    bool spill_held;               /* held did not fit: each finished matrix goes to a
                                      scratch file, read back by the write */
};

/* One quantized matrix. Errors are sums over the calibration tokens of the
 * squared output difference, ||W x - Q x||^2 (= tr((W-Q) H (W-Q)^T)/2 with H = 2XX^T),
 * and energy ||W x||^2, so err / ref is the relative output error. Where the
 * matrix meets 8-bit activations (q8_0, q4_0) under GPTQ with act_fit, it is
 * ||W x - Q xt||^2, xt the activations as the kernel rounds them (the
 * rounding's own error included, the same for every Q). */
struct cvt_qmat {
    char name[160];                /* the tensor */
    int layer, role, expert;       /* role: enum vfy_role; expert -1 if none */
    size_t rows, cols, row0;       /* rows row0 .. row0+rows-1 of the tensor */
    enum sb_dtype enc;             /* the grid written (tern for sub1/sub1-qmoe targets) */
    uint64_t tokens;               /* calibration tokens it saw */
    bool gptq;                     /* false: round-to-nearest (why says why) */
    const char *why;
    double err, ref, err_rtn;      /* err_rtn < 0: not measured */
    double rmse, sqnr_db;          /* weights: Q against W */
    double zero_frac;              /* weights that became exactly 0 */
    double damp;                   /* relative dampening used */
    bool act_fit;                  /* GPTQ of the weights fitted to the rounded activations */
    double seconds;
};

struct cvt_quant_report {
    struct cvt_report *conv;       /* what was written (decisions, sizes) */
    struct cvt_qmat *m;
    size_t n_m;
    uint64_t *expert_tokens;       /* [n_layers * n_experts]: tokens routed in calibration */
    int n_layers, n_experts;
    double *layer_seconds;         /* [n_layers] */
    size_t calib_tokens, calib_windows;
    double seconds_calib, seconds_write;
    struct cvt_quant_mem mem;      /* the plan for the memory cap (all of it without one) */
};

void cvt_quant_opts_init(struct cvt_quant_opts *o);

/*! cvt_quant() : quantize src into out_path (container from the name, as
 *  cvt_convert), calibrated on the windows of plan (token ids; each window is
 *  run from position 0, so a window must fit the model's context).
 *  @return SB_OK and *rep (cvt_quant_report_free); on failure nothing is left
 *  at out_path and *rep is NULL. In an MPI job (par_comm.h) it is collective:
 *  layers stay in order and every rank runs the dense part of the forward
 *  itself (each dense matrix quantized by one rank and sent); each layer's
 *  experts are split across ranks (balanced by routed tokens), their outputs
 *  broadcast expert by expert and added in expert order; then cvt_convert's
 *  job writes. o->conv.max_memory is each rank's cap. File and report equal
 *  one process's (timings and the memory plan aside). */
int cvt_quant(const struct fmt_model *src, const struct vfy_plan *plan, const char *out_path,
              const struct cvt_quant_opts *o, struct cvt_quant_report **rep, struct sb_err *err);
void cvt_quant_report_free(struct cvt_quant_report *rep);

/*! cvt_quant_memory() : what cvt_quant of src into out_path with o holds
 *  resident for n_tokens calibration tokens in windows of up to ctx_len, and
 *  whether the quantized matrices and the activations spill under
 *  o->conv.max_memory (what `subbit mem --for quant` prints; one process's
 *  plan). @return SB_OK; SB_ENOMEM with a one-line message naming the parts
 *  when a cap cannot hold one layer's need (its weights, the work buffers,
 *  the quantized matrices held, the activations or a window of them); the
 *  model's and the policy's errors as cvt_quant's. */
int cvt_quant_memory(const struct fmt_model *src, size_t n_tokens, size_t ctx_len,
                     const char *out_path, const struct cvt_quant_opts *o,
                     struct cvt_quant_mem *m, struct sb_err *err);

/*! cvt_quant_role_name() : "q", "k", "v", "o", "gate", "up", "down", "router",
 *  "shared_gate", "shared_up", "shared_down", "output". */
const char *cvt_quant_role_name(int role);

#endif
