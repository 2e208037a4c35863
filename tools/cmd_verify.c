/* cmd_verify.c: `subbit verify` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_verify(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit verify ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("verify", "not implemented yet");
}
