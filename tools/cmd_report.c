/* cmd_report.c: `subbit report RUN.json... -o report.html`: one self-contained
 * HTML page from the --json documents of the other commands (report/). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fmt_out.h"
#include "rpt_report.h"

static const char usage[] =
    "usage: subbit report FILE.json... -o REPORT.html [options]\n"
    "\n"
    "One HTML page (inline SVG charts, no script, nothing fetched) from the\n"
    "--json output of subbit verify, quant, convert --stats, mem, ppl and\n"
    "inspect: quality against the reference, perplexity, bits per weight by\n"
    "encoding and tensor, error per layer and tensor, ternary zero fraction and\n"
    "calibration tokens per expert, the memory estimate. A file may hold several\n"
    "documents one after another, or an array of them; '-' reads stdin.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE    the page to write (required)\n"
    "      --title TEXT     the page's title (default 'subbit report')\n"
    "  -f, --force          replace FILE if it exists\n"
    "      --json           one JSON document on stdout: what went in\n"
    "  -q, --quiet          no progress or notes on stderr, nor the summary line\n"
    "  -h, --help           this text\n";

int cmd_report(int argc, char **argv)
{
    enum { O_TITLE = 256, O_JSON };
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "title", required_argument, 0, O_TITLE },
        { "force", no_argument, 0, 'f' }, { "json", no_argument, 0, O_JSON },
        { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *out = NULL, *title = NULL;
    unsigned flags = 0;
    bool json = false, quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":o:fqh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_TITLE: title = optarg; break;
        case 'f': flags |= FMT_OUT_FORCE; break;
        case O_JSON: json = true; break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("report", c, argc, argv);
        }
    }
    cli_set_quiet(quiet);
    if (!out)
        return cli_usage_error("report", usage, "-o FILE is required");
    if (optind == argc)
        return cli_usage_error("report", usage, "no JSON file given");

    struct sb_err err = { 0 };
    struct rpt_report *r = NULL;
    int rc = rpt_report_new(&r, &err);
    for (int i = optind; rc == SB_OK && i < argc; i++)
        rc = rpt_report_add_file(r, argv[i], &err);
    if (rc == SB_OK) {
        r->title = title;
        rc = rpt_report_write(r, out, flags, &err);
    }
    if (rc != SB_OK) {
        rpt_report_free(r);
        return cli_fail("report", &err);
    }
    if (json) {
        cJSON *d = cli_json_doc("report"), *a = cJSON_AddArrayToObject(d, "documents");
        cJSON_AddStringToObject(d, "output", out);
        for (size_t i = 0; i < r->n_docs; i++) {
            const char *name;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", rpt_kind_name(rpt_report_doc(r, i, &name)));
            cJSON_AddStringToObject(o, "file", name);
            cJSON_AddItemToArray(a, o);
        }
        cli_print_json(d);
    } else if (!quiet) {
        printf("wrote %s from %zu document%s\n", out, r->n_docs, r->n_docs == 1 ? "" : "s");
    }
    rpt_report_free(r);
    return CLI_OK;
}
