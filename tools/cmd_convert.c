/* cmd_convert.c: `subbit convert` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_convert(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit convert ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("convert", "not implemented yet");
}
