/* cli_proto.h: the evaluation-protocol options shared by `ppl` and `verify`. */
#ifndef CLI_PROTO_H
#define CLI_PROTO_H

#include <getopt.h>
#include <stdbool.h>

#include "cli.h"
#include "vfy_ppl.h"

enum { CLI_O_PROTO = 1000, CLI_O_CTX, CLI_O_STRIDE, CLI_O_MAXC, CLI_O_MAXB, CLI_O_SEP };

/* getopt_long table entries for them */
#define CLI_PROTO_LONGOPTS                                                                         \
    { "protocol", required_argument, 0, CLI_O_PROTO }, { "ctx", required_argument, 0, CLI_O_CTX }, \
        { "stride", required_argument, 0, CLI_O_STRIDE },                                          \
        { "max-chunks", required_argument, 0, CLI_O_MAXC },                                        \
        { "max-blocks", required_argument, 0, CLI_O_MAXB },                                        \
        { "block-sep", required_argument, 0, CLI_O_SEP }

/* If c is one of the protocol options, apply arg to po and return true; *rc is
 * CLI_OK, or CLI_USAGE after a one-line usage error was printed. */
bool cli_proto_option(const char *cmd, const char *usage, int c, const char *arg,
                      struct vfy_ppl_opts *po, bool *ctx_given, int *rc);

#endif
