/* cli.h: what every subcommand shares: error wording, number parsing,
 * progress drawing, signal cleanup, JSON printing. Holds no logic a test
 * would want to call (that lives in the libraries). */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_err.h"
#include "sb_progress.h"

struct cJSON;

/* -t/--threads takes 1..CLI_MAX_THREADS in every command */
#define CLI_MAX_THREADS 4096

/* exit codes (style.md §11) */
enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2, CLI_CHECK_FAILED = 3, CLI_INTERRUPTED = 130 };

/* The subcommand table entry (tools/subbit.c). */
struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    bool mpi;              /* may run as an MPI job of several ranks */
    const char *summary;
};

/* "subbit CMD: message" on stderr, one line. Returns CLI_ERR. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "subbit CMD: message" on stderr, for what the user should know that is not
 * an error (files an output replaced). */
void cli_note(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* -q/--quiet, the same in every command: no progress, no notes (cli_note) and
 * no summary lines on stderr; warnings, errors and what happened to a file
 * that was there (replaced, removed) still print. Each command calls it once
 * its options are read. */
void cli_set_quiet(bool quiet);
bool cli_quiet(void);
/* "subbit CMD: warning: message" on stderr. */
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct vfy_model;
/* the core's notes on configuration values it did not take as given, as warnings */
void cli_model_notes(const char *cmd, const struct vfy_model *vm);
/* Print err's message as "subbit CMD: msg"; returns CLI_ERR (CLI_INTERRUPTED for SB_EINTR). */
int cli_fail(const char *cmd, const struct sb_err *err);
/* cli_fail for a rank of an MPI job that failed before the command's first
 * agreement (reading its input, say): it meets the other ranks at their next
 * par_agree (par_settle), so they stop rather than wait for it, and the job's
 * one line (rank 0's) names this rank and its message. One process: cli_fail. */
int cli_fail_job(const char *cmd, struct sb_err *err);
/* Bad usage: one line on stderr, "subbit CMD: msg (try 'subbit CMD --help')";
 * returns CLI_USAGE. The usage text is not printed (a new user's error would
 * scroll away above it); the argument stays so callers keep one signature. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* getopt_long returned c ('?' or ':'; optstrings start with ':' and opterr is
 * 0, set in main): name the option and the problem in one usage line
 * ("unknown option '--x'", "option '-o' needs a value", "option '--json'
 * takes no value"); returns CLI_USAGE. */
int cli_getopt_error(const char *cmd, int c, int argc, char **argv);

/* fmt_read_file(), and "-" reads standard input (to its end) into the same
 * kind of buffer (sb_free; NUL-terminated); the message then says "stdin". */
int cli_read_input(const char *path, char **out, size_t *len, struct sb_err *err);
/* 0, or a usage error when PATH is "-" (standard input) in an MPI job */
int cli_stdin_in_job(const char *cmd, const char *usage, const char *opt, const char *path);

/* Parse numbers with range checks; on error print a usage error and return 0. */
bool cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out);
/* Sizes like 4096, 500M, 2G, 1.5GiB, 10MB (K/M/G/T powers of 1024; KB/MB/GB powers of 1000). */
bool cli_parse_size(const char *cmd, const char *opt, const char *s, uint64_t *out);

/* Install SIGINT/SIGTERM handlers that remove temp outputs and exit 130, a
 * SIGBUS handler that names the input file that shrank and exits 1, and the
 * notice hook that says on stderr which existing files an output replaced. */
void cli_install_signals(void);
/* Before a subcommand runs: its name for those messages, then the above. */
void cli_start(const char *cmd);
/* After the command's work: a signal still removes temp outputs and exits
 * 130, without the message (mpirun ends a job's ranks with SIGTERM once one
 * exits with an error, while the others leave MPI). */
void cli_signals_quiet(void);
/* Set OpenMP threads (0 = leave the default). */
void cli_set_threads(int n);

/* Progress on stderr: drawn only when stderr is a TTY and not quiet; at most
 * 5 redraws a second; cli_progress_end() clears the line. */
struct cli_progress {
    const char *cmd;
    const char *label;
    bool on;
    bool bytes;          /* units are bytes: print MiB */
    double t0, last;
    /* optional: more on the line after the rate and ETA (", 1520 tokens/s,
     * ppl 3.07"), written into buf by detail(detail_ctx, seconds so far) */
    void (*detail)(void *detail_ctx, double seconds, char *buf, size_t len);
    void *detail_ctx;
};
void cli_progress_init(struct cli_progress *p, const char *cmd, const char *label, bool quiet,
                       bool bytes);
void cli_progress_cb(void *ctx, uint64_t done, uint64_t total);   /* an sb_progress_fn */
void cli_progress_end(struct cli_progress *p);
static inline struct sb_progress cli_progress_hook(struct cli_progress *p)
{
    struct sb_progress h = { p->on ? cli_progress_cb : 0, p };
    return h;
}

/* A command's --json document: an object whose first field is "command": cmd
 * (docs/json.md: the fields every command names the same way). */
struct cJSON *cli_json_doc(const char *cmd);
/* Print a cJSON document to stdout (formatted) and free it. */
void cli_print_json(struct cJSON *doc);
/* Human sizes: "1.23 GiB"; buffer of at least 32 bytes. */
const char *cli_fmt_bytes(uint64_t n, char *buf, size_t len);
/* Monotonic seconds. */
double cli_now(void);
/* Peak resident set size of this process in bytes (getrusage). */
uint64_t cli_peak_rss(void);
/* The same over an MPI job's ranks: the largest (collective: every rank calls
 * it at the same point; one process: cli_peak_rss()). */
uint64_t cli_peak_rss_job(void);

/* Subcommands (tools/cmd_<name>.c). */
int cmd_inspect(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quant(int argc, char **argv);
int cmd_mem(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_clean(int argc, char **argv);

#endif
