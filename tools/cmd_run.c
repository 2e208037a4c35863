/* cmd_run.c: `subbit run` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_run(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit run ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("run", "not implemented yet");
}
