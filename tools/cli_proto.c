/* cli_proto.c: the evaluation-protocol options `ppl` and `verify` share
 * (--protocol --ctx --stride --max-chunks --max-blocks --block-sep). */
#include "cli_proto.h"

bool cli_proto_option(const char *cmd, const char *usage, int c, const char *arg,
                      struct vfy_ppl_opts *po, bool *ctx_given, int *rc)
{
    long v;
    *rc = CLI_OK;
    switch (c) {
    case CLI_O_PROTO:
        if ((v = vfy_protocol_from_name(arg)) < 0)
            *rc = cli_usage_error(cmd, usage, "unknown protocol '%s'", arg);
        else
            po->protocol = (enum vfy_protocol)v;
        return true;
    case CLI_O_CTX:
        if (!cli_parse_long(cmd, "--ctx", arg, 2, 1 << 20, &v))
            *rc = CLI_USAGE;
        else {
            po->n_ctx = (size_t)v;
            *ctx_given = true;
        }
        return true;
    case CLI_O_STRIDE:
        if (!cli_parse_long(cmd, "--stride", arg, 1, 1 << 20, &v))
            *rc = CLI_USAGE;
        else
            po->stride = (size_t)v;
        return true;
    case CLI_O_MAXC:
    case CLI_O_MAXB:
        if (!cli_parse_long(cmd, c == CLI_O_MAXC ? "--max-chunks" : "--max-blocks", arg, 1,
                            1L << 40, &v))
            *rc = CLI_USAGE;
        else
            po->max_units = (size_t)v;
        return true;
    case CLI_O_SEP:
        if (!*arg)
            *rc = cli_usage_error(cmd, usage, "--block-sep must not be empty");
        else
            po->block_sep = arg;
        return true;
    default:
        return false;
    }
}
