/* cli_util.c: shared CLI plumbing (see cli.h). */
#include "cli.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "par_comm.h"
#include "sb_alloc.h"
#include "vfy_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* "subbit CMD: " + the message with control bytes escaped (it may quote names
 * from a file) + newline, on stderr */
static void vsay(const char *cmd, const char *what, const char *fmt, va_list ap)
{
    char raw[2048], esc[2048];
    if (par_rank() != 0)   /* an MPI job's messages come from rank 0 */
        return;
    vsnprintf(raw, sizeof raw, fmt, ap);
    sb_escape(esc, sizeof esc, raw);
    fprintf(stderr, "subbit %s: %s%s\n", cmd, what, esc);
}

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(cmd, "", fmt, ap);
    va_end(ap);
    return CLI_ERR;
}

static bool quiet_flag;

void cli_set_quiet(bool quiet)
{
    quiet_flag = quiet;
}

bool cli_quiet(void)
{
    return quiet_flag;
}

void cli_note(const char *cmd, const char *fmt, ...)
{
    if (quiet_flag)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsay(cmd, "", fmt, ap);
    va_end(ap);
}

/* a note that -q does not silence */
static void note_always(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(cmd, "", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(cmd, "warning: ", fmt, ap);
    va_end(ap);
}

void cli_model_notes(const char *cmd, const struct vfy_model *vm)
{
    const struct vfy_model_info *in = vfy_model_info(vm);
    for (int i = 0; i < in->n_notes; i++)
        cli_warn(cmd, "%s", in->notes[i]);
}

int cli_fail(const char *cmd, const struct sb_err *err)
{
    if (par_rank() != 0)
        return err->code == SB_EINTR ? CLI_INTERRUPTED : CLI_ERR;
    fprintf(stderr, "subbit %s: %s\n", cmd, err->msg[0] ? err->msg : sb_status_name(err->code));
    return err->code == SB_EINTR ? CLI_INTERRUPTED : CLI_ERR;
}

int cli_fail_job(const char *cmd, struct sb_err *err)
{
    par_settle(err->code ? err->code : SB_EIO, err);
    return cli_fail(cmd, err);
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    (void)usage;
    char raw[2048], esc[2048];
    va_list ap;
    if (par_rank() != 0)
        return CLI_USAGE;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sb_escape(esc, sizeof esc, raw);   /* it may quote an argument: a name from a file */
    fprintf(stderr, "subbit %s: %s (try 'subbit %s --help')\n", cmd, esc, cmd);
    return CLI_USAGE;
}

int cli_stdin_in_job(const char *cmd, const char *usage, const char *opt, const char *path)
{
    /* mpirun hands standard input to rank 0 alone */
    if (path && !strcmp(path, "-") && par_size() > 1)
        return cli_usage_error(cmd, usage, "%s - (standard input) runs as one process; give a "
                               "file under mpirun", opt);
    return 0;
}

int cli_read_input(const char *path, char **out, size_t *len, struct sb_err *err)
{
    if (strcmp(path, "-") != 0)
        return fmt_read_file(path, out, len, err);
    size_t n = 0, cap = 1 << 16;
    char *b = sb_malloc(cap);
    for (;;) {
        if (!b)
            return sb_err_set(err, SB_ENOMEM, "stdin: out of memory");
        n += fread(b + n, 1, cap - n - 1, stdin);
        if (ferror(stdin)) {
            sb_free(b);
            return sb_err_set(err, SB_EIO, "stdin: %s", strerror(errno));
        }
        if (feof(stdin))
            break;
        if (n + 1 == cap) {
            char *nb = cap < SIZE_MAX / 2 ? sb_realloc(b, cap * 2) : NULL;
            if (!nb)
                sb_free(b);
            b = nb;
            cap *= 2;
        }
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return SB_OK;
}

int cli_getopt_error(const char *cmd, int c, int argc, char **argv)
{
    const char *a = optind >= 1 && optind <= argc ? argv[optind - 1] : "";
    const char *eq = strchr(a, '=');
    /* a long option, unless getopt stopped inside a cluster of short ones
     * (then argv[optind - 1] is the argument before, and optopt the letter) */
    const bool is_long = !strncmp(a, "--", 2) && (optopt == 0 || optopt > 127 || eq || c == ':');
    char name[80];
    if (is_long)
        snprintf(name, sizeof name, "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
    else
        snprintf(name, sizeof name, "-%c", optopt > 32 && optopt < 127 ? optopt : '?');
    if (c == ':')
        return cli_usage_error(cmd, NULL, "option '%s' needs a value", name);
    if (is_long && optopt != 0 && eq)
        return cli_usage_error(cmd, NULL, "option '%s' takes no value", name);
    return cli_usage_error(cmd, NULL, "unknown option '%s'", name);
}

bool cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, NULL, "%s expects an integer in [%ld, %ld], got '%s'", opt, lo, hi,
                        s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        cli_usage_error(cmd, NULL, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_size(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (!errno && end != s && v >= 0) {
        const char *u = end;
        static const struct { const char *suf; double mul; } units[] = {
            { "", 1 }, { "B", 1 },
            { "K", 1024.0 }, { "KiB", 1024.0 }, { "KB", 1e3 }, { "k", 1024.0 },
            { "M", 1048576.0 }, { "MiB", 1048576.0 }, { "MB", 1e6 },
            { "G", 1073741824.0 }, { "GiB", 1073741824.0 }, { "GB", 1e9 },
            { "T", 1099511627776.0 }, { "TiB", 1099511627776.0 }, { "TB", 1e12 },
        };
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (!strcmp(u, units[i].suf)) {
                mul = units[i].mul;
                double b = v * mul;
                if (b < 1.8e19) {
                    *out = (uint64_t)b;
                    return true;
                }
            }
        }
    }
    cli_usage_error(cmd, NULL, "%s expects a size such as 4096, 500M or 2G, got '%s'", opt, s);
    return false;
}

static const char *sig_cmd = "";

/* write(2) of s with control bytes as \xNN: async-signal-safe */
static void put_escaped(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char b[256];
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (n + 4 > sizeof b) {
            ssize_t w = write(2, b, n);
            (void)w;
            n = 0;
        }
        if (c < 0x20 || c == 0x7f) {
            b[n++] = '\\';
            b[n++] = 'x';
            b[n++] = hex[c >> 4];
            b[n++] = hex[c & 15];
        } else {
            b[n++] = (char)c;
        }
    }
    ssize_t w = write(2, b, n);
    (void)w;
}

static volatile sig_atomic_t signal_says = 1;   /* rank 0 (or one process) says it */

static void on_signal(int sig)
{
    if (fmt_out_signal_defer(sig))
        return; /* raised again once the files being moved are in place */
    fmt_out_signal_cleanup();
    static const char msg[] = "\nsubbit: interrupted; partial output removed\n";
    if (signal_says) {
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
    }
    _exit(CLI_INTERRUPTED);
}

/* Reading a mapped input that another program truncated raises SIGBUS at the
 * first page past the new end: name the file, remove temp outputs, exit 1. */
static void put_raw(const char *s)
{
    ssize_t w = write(2, s, strlen(s));
    (void)w;
}

/* Reading a mapped input that another program truncated raises SIGBUS at the
 * first page past the new end: name the file, remove temp outputs, exit 1. */
static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    const char *path = si ? fmt_map_signal_path(si->si_addr) : NULL;
    fmt_out_signal_cleanup();
    put_raw("subbit ");
    put_escaped(sig_cmd);
    put_raw(": ");
    if (path) {
        put_escaped(path);
        put_raw(": changed while being read (truncated by another program?); "
                "partial output removed\n");
        _exit(CLI_ERR);
    }
    put_raw("bus error; partial output removed\n");
    signal(sig, SIG_DFL); /* not one of our inputs: crash as the bug it is */
    raise(sig);
}

static void on_notice(void *ctx, enum fmt_out_event ev, const char *path)
{
    const char *cmd = ctx;
    /* what happened to a file that was there is always said, even with -q */
    if (ev == FMT_OUT_REPLACED)
        note_always(cmd, "replaced %s", path);
    else if (ev == FMT_OUT_REMOVED)
        note_always(cmd, "removed %s (a weight file of the model it replaces)", path);
    else
        note_always(cmd, "removed stale temp %s (its writer is gone)", path);
}

void cli_start(const char *cmd)
{
    sig_cmd = cmd;
    cli_install_signals();
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    /* mpirun ends the other ranks with SIGTERM once one exits with an error */
    signal_says = par_rank() == 0;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    fmt_out_set_notice(on_notice, (void *)sig_cmd);
    /* fault injection for the CLI tests where no small file system can be
     * mounted: the Nth write of every output fails with ENOSPC */
    const char *f = getenv("SUBBIT_TEST_FAIL_WRITE_AFTER");
    if (f && *f)
        fmt_out_fail_write_after(strtol(f, NULL, 10));
}

void cli_signals_quiet(void)
{
    signal_says = 0;
}

void cli_set_threads(int n)
{
#ifdef _OPENMP
    if (n > 0)
        omp_set_num_threads(n);
#else
    (void)n;
#endif
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t cli_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

uint64_t cli_peak_rss_job(void)
{
    struct sb_err e = { 0 };
    uint64_t max = 0;
    if (par_fault("peak-rss")) {   /* tests: this rank's peak 64 MiB above the others' */
        const size_t n = (size_t)64 << 20;
        volatile char *big = sb_malloc(n);
        for (size_t k = 0; big && k < n; k += 4096)
            big[k] = 1;
        sb_free((void *)big);
    }
    par_max_u64(cli_peak_rss(), &max, &e);   /* on a failed MPI call: this rank's */
    return max;
}

void cli_progress_init(struct cli_progress *p, const char *cmd, const char *label, bool quiet,
                       bool bytes)
{
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->label = label;
    p->bytes = bytes;
    p->on = !quiet && !quiet_flag && isatty(2) && par_rank() == 0;
    p->t0 = p->last = cli_now();
}

void cli_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
    struct cli_progress *p = ctx;
    if (!p->on)
        return;
    double t = cli_now();
    if (t - p->last < 0.2 && done != total)
        return;
    p->last = t;
    /* ETA from the mean rate so far */
    char eta[32] = "";
    const double el = t - p->t0;
    if (total && done > 0 && done < total && el > 0) {
        const double left = el * (double)(total - done) / (double)done;
        snprintf(eta, sizeof eta, ", ETA %d:%02d", (int)(left / 60), (int)left % 60);
    }
    char more[96] = "";
    if (p->detail)
        p->detail(p->detail_ctx, el, more, sizeof more);
    if (p->bytes) {
        double mb = (double)done / 1048576.0, tot = (double)total / 1048576.0;
        double rate = el > 0 ? mb / el : 0;
        if (total)
            fprintf(stderr, "\r%s: %5.1f%% (%.1f / %.1f MiB, %.0f MiB/s%s)%s   ", p->label,
                    100.0 * (double)done / (double)total, mb, tot, rate, eta, more);
        else
            fprintf(stderr, "\r%s: %.1f MiB (%.0f MiB/s)%s   ", p->label, mb, rate, more);
    } else {
        const double rate = el > 0 ? (double)done / el : 0;
        if (total)
            fprintf(stderr, "\r%s: %5.1f%% (%llu / %llu, %.2f/s%s)%s   ", p->label,
                    100.0 * (double)done / (double)total, (unsigned long long)done,
                    (unsigned long long)total, rate, eta, more);
        else
            fprintf(stderr, "\r%s: %llu (%.2f/s)%s   ", p->label, (unsigned long long)done, rate,
                    more);
    }
    fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
    if (p->on)
        fprintf(stderr, "\r\033[K");
}

cJSON *cli_json_doc(const char *cmd)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "command", cmd);
    return d;
}

void cli_print_json(cJSON *doc)
{
    char *s = cJSON_Print(doc);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        cJSON_free(s);
    }
    cJSON_Delete(doc);
}

const char *cli_fmt_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, len, "%.2f %s", v, units[u]);
    return buf;
}
