/* subbit.h: the public API of libsubbit, in one include
 * (cc prog.c $(pkg-config --cflags --libs subbit); #include <subbit/subbit.h>).
 *
 * A program opens a checkpoint (fmt_model_open: safetensors files or Hugging
 * Face folders, GGUF, llama2.c, .subbit), converts it (cvt_convert, with the
 * per-tensor policy cvt_decide), estimates its memory (vfy_mem_*), runs the
 * reference inference core over it (vfy_model_new, vfy_ctx_new, vfy_forward),
 * tokenizes text (vfy_tok_*), scores perplexity under a named protocol
 * (vfy_plan_from_text, vfy_ppl_run), compares two models with verify's gates
 * (vfy_verify_run, vfy_verify_gates) and generates text (vfy_generate).
 *
 * Conventions (docs/style.md in the source tree): fallible functions return
 * an enum sb_status and fill a struct sb_err naming the file and the problem;
 * the library never prints or exits; progress goes through struct
 * sb_progress; whoever allocates frees, with the matching _free / _release.
 * The encoding names and sizes are in sb_dtype.h. */
#ifndef SUBBIT_H
#define SUBBIT_H

#include "sb_alloc.h"
#include "sb_dtype.h"
#include "sb_err.h"
#include "sb_math.h"
#include "sb_progress.h"

#include "fmt_config.h"
#include "fmt_model.h"
#include "fmt_out.h"

#include "cvt_convert.h"
#include "cvt_synth.h"

#include "vfy_gen.h"
#include "vfy_mem.h"
#include "vfy_metrics.h"
#include "vfy_model.h"
#include "vfy_ppl.h"
#include "vfy_sample.h"
#include "vfy_tok.h"

#endif
