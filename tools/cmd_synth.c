/* cmd_synth.c: `subbit synth` (not implemented yet). */
#include <string.h>

#include "cli.h"

int cmd_synth(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: subbit synth ... (not implemented yet)\n");
        return CLI_OK;
    }
    return cli_error("synth", "not implemented yet");
}
