/* cmd_ppl.c: `subbit ppl` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_ppl(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit ppl ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("ppl", "not implemented yet");
}
