/* cmd_mem.c: `subbit mem` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_mem(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit mem ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("mem", "not implemented yet");
}
