/* subbit.c: the entry point and the subcommand table (git.c style). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "par_comm.h"

static const struct cli_cmd commands[] = {
    { "inspect", cmd_inspect, false, "list a model's architecture, tensors, sizes and bits/param" },
    { "convert", cmd_convert, true, "re-encode a model and/or change its container" },
    { "quant", cmd_quant, true, "calibrated quantization: GPTQ, each MoE expert on its routed tokens" },
    { "mem", cmd_mem, false, "estimate the memory a model needs, from headers alone" },
    { "ppl", cmd_ppl, true, "perplexity of a model on a text, with a stated protocol" },
    { "verify", cmd_verify, true, "compare a model against a reference: dPPL, KLD, top-1 (CI gate)" },
    { "report", cmd_report, false, "one HTML page of charts from the other commands' --json output" },
    { "run", cmd_run, false, "generate text from a prompt" },
    { "synth", cmd_synth, false, "write a deterministic random model (for tests and benchmarks)" },
    { "clean", cmd_clean, false, "remove temp files left by a subbit that was killed" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: subbit [--version] [--help] <command> [<args>]\n\n"
               "subbit shrinks large language models and proves the shrunk model still works.\n\n"
               "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "   %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'subbit help <command>' or 'subbit <command> --help' for a command's options.\n");
}

static const struct cli_cmd *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Damerau-Levenshtein distance (adjacent swaps count 1) of two short names,
 * capped at 9: how far a typo is from a command. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 30 || m > 30)
        return 9;
    int d[32][32];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m] < 9 ? d[n][m] : 9;
}

/* "subbit: 'convfert' is not a subbit command; did you mean 'convert'?": the
 * nearest command within 2 edits (or one the name starts), else the list hint */
static int not_a_command(const char *name)
{
    const struct cli_cmd *best = NULL;
    int bd = 3;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        int d = edit_distance(name, commands[i].name);
        if (strlen(name) >= 2 && !strncmp(commands[i].name, name, strlen(name)))
            d = 1;
        if (d < bd) {
            bd = d;
            best = &commands[i];
        }
    }
    if (best)
        fprintf(stderr, "subbit: '%s' is not a subbit command; did you mean '%s'?\n", name,
                best->name);
    else
        fprintf(stderr, "subbit: '%s' is not a subbit command (see 'subbit --help')\n", name);
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    opterr = 0; /* the commands word getopt's complaints (cli_getopt_error) */
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V") || !strcmp(name, "version")) {
        printf("subbit %s%s\n", SUBBIT_VERSION, par_have_mpi() ? " (mpi)" : "");
        return CLI_OK;
    }
    if (!strcmp(name, "help")) {
        if (argc < 3) {
            usage(stdout);
            return CLI_OK;
        }
        const struct cli_cmd *c = find(argv[2]);
        if (!c)
            return not_a_command(argv[2]);
        char *args[] = { (char *)c->name, "--help", NULL };
        return c->fn(2, args);
    }
    const struct cli_cmd *c = find(name);
    if (!c)
        return not_a_command(name);
    /* under mpirun/srun every rank runs the command; ranks above 0 print no
     * results (stdout goes nowhere) and the CLI's messages come from rank 0 */
    struct sb_err err = { 0 };
    if (par_init(&argc, &argv, &err) != SB_OK) {
        fprintf(stderr, "subbit %s: %s\n", name, err.msg);
        return CLI_ERR;
    }
    int rc;
    if (par_size() > 1 && !c->mpi) {
        rc = cli_error(name, "runs as one process; convert, quant, ppl and verify run under "
                       "mpirun (this job has %d ranks)", par_size());
    } else {
        if (par_rank() != 0 && !freopen("/dev/null", "w", stdout))
            fclose(stdout);
        cli_start(c->name);
        rc = c->fn(argc - 1, argv + 1);
    }
    cli_signals_quiet();
    fflush(stdout);
    par_finalize();
    return rc;
}
