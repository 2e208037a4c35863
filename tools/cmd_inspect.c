/* cmd_inspect.c: `subbit inspect` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_inspect(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit inspect ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("inspect", "not implemented yet");
}
