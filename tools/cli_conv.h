/* cli_conv.h: the output options `convert` and `quant` share (target
 * encoding, per-tensor rules, int8 parameters, shards, model opening). */
#ifndef CLI_CONV_H
#define CLI_CONV_H

#include <getopt.h>
#include <stdbool.h>

#include "cli.h"
#include "cvt_convert.h"
#include "fmt_model.h"

enum { CLI_O_TO = 1100, CLI_O_KEEP, CLI_O_RULE, CLI_O_FALLBACK, CLI_O_EXPERTS, CLI_O_DENSE,
       CLI_O_GROUP, CLI_O_SCALE, CLI_O_SHARD, CLI_O_CONFIG, CLI_O_TOK, CLI_O_JSON,
       CLI_O_PROGRESS, CLI_O_NOPROGRESS, CLI_O_REQUANT,
       CLI_O_NONFINITE };

/* short options they take: -o OUT -t N -f -q (getopt's optstring part) */
#define CLI_CONV_SHORT "o:t:fq"

#define CLI_CONV_LONGOPTS                                                                          \
    { "output", required_argument, 0, 'o' }, { "threads", required_argument, 0, 't' },            \
        { "force", no_argument, 0, 'f' }, { "quiet", no_argument, 0, 'q' },                        \
        { "json", no_argument, 0, CLI_O_JSON }, { "progress", no_argument, 0, CLI_O_PROGRESS },    \
        { "no-progress", no_argument, 0, CLI_O_NOPROGRESS },                                       \
        { "to", required_argument, 0, CLI_O_TO }, { "keep", required_argument, 0, CLI_O_KEEP },        \
        { "rule", required_argument, 0, CLI_O_RULE },                                              \
        { "fallback", required_argument, 0, CLI_O_FALLBACK },                                      \
        { "experts-only", no_argument, 0, CLI_O_EXPERTS },                                         \
        { "dense-to", required_argument, 0, CLI_O_DENSE },                                         \
        { "group", required_argument, 0, CLI_O_GROUP },                                            \
        { "scale-dtype", required_argument, 0, CLI_O_SCALE },                                      \
        { "shard-size", required_argument, 0, CLI_O_SHARD },                                       \
        { "config", required_argument, 0, CLI_O_CONFIG },                                          \
        { "tokenizer", required_argument, 0, CLI_O_TOK },                                          \
        { "allow-requantize", no_argument, 0, CLI_O_REQUANT },                                     \
        { "allow-nonfinite", no_argument, 0, CLI_O_NONFINITE }

/* The usage lines for them (after "options:"). */
#define CLI_CONV_USAGE                                                                             \
    "  -o, --output OUT        where to write (required)\n"                                      \
    "      --to ENC            target encoding (default: keep, container change only)\n"          \
    "      --keep LIST         kept as stored: comma-separated globs (blk.0.*) or\n"          \
    "                          mem's components (embed,output,attn,ffn,shared,experts)\n"                \
    "      --rule GLOB=ENC     tensors matching GLOB get ENC (repeatable; first match wins)\n"     \
    "      --fallback ENC      for tensors that cannot take ENC: 1-D, row not a block\n"           \
    "                          multiple, non-Linear for int8 (default f16)\n"                      \
    "      --experts-only      tern/sub1/sub1-qmoe: only expert matrices take ENC\n"               \
    "      --dense-to ENC      what the other matrices get then (default bf16)\n"                  \
    "      --group G           int8: one scale per G elements of a row (default: per row)\n"       \
    "      --scale-dtype T     int8 scales: f32 (default) or f16\n"                                \
    "      --shard-size SIZE   safetensors folder output in shards of SIZE (e.g. 2G)\n"            \
    "      --config FILE       config.json for a lone .safetensors input\n"                        \
    "      --tokenizer FILE    llama2.c tokenizer.bin (default: beside the model)\n"                \
    "      --allow-requantize  re-quantize already quantized tensors into as many or\n"       \
    "                          fewer bytes (q6_K -> q4_0); decoding needs no flag\n"             \
    "      --allow-nonfinite   write NaN/Inf weights and values the encoding cannot\n"         \
    "                          hold (f16 overflow, block scales) instead of refusing\n"        \
    "  -t, --threads N         threads (default: all cores)\n"                                    \
    "  -f, --force             replace OUT if it exists\n"                                        \
    "  -q, --quiet             no progress or notes on stderr\n"                                                     \
    "      --json              one JSON document on stdout\n"

/* What the shared options collected (rules freed by cli_conv_release). */
struct cli_conv {
    struct cvt_rule *rules;
    size_t n_rules;
    const char *out;       /* -o */
    long threads;          /* -t, 0 = default */
    bool json, quiet;
};

/* If c is one of the shared options, apply arg and return true; *rc is CLI_OK,
 * or CLI_USAGE after a one-line message was printed. */
bool cli_conv_option(const char *cmd, int c, char *arg, struct cli_conv *cc, struct cvt_opts *co,
                     struct fmt_open_opts *oo, int *rc);
void cli_conv_release(struct cli_conv *cc);
/* After getopt: exactly one input model and -o given, naming a container
 * (fmt_container_for_output); else a usage error (rules released) and CLI_USAGE. */
int cli_conv_check(const char *cmd, const char *usage, struct cli_conv *cc, int argc);

struct cJSON;
/* The "tensors" array (each decision: name, shape, from, to, reason, bytes,
 * bits per weight, and the error statistics when measured) and the "totals"
 * object of a conversion report, added to doc; returns totals (for more). */
struct cJSON *cli_conv_report_json(struct cJSON *doc, const struct cvt_report *rep);

/* "subbit CMD: warning: IN: ..." when rep says the tokenizer was dropped or is
 * approximated in the output (convert and quant alike) */
void cli_conv_tokenizer_warn(const char *cmd, const char *in, const struct cvt_report *rep);

/* "subbit CMD: OPT: unknown encoding 'x'" unless s names one (or 'keep' -> -1). */
bool cli_parse_enc(const char *cmd, const char *opt, const char *s, int *out);

#endif
