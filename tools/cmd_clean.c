/* cmd_clean.c: `subbit clean`: remove the temps a killed subbit left behind. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fmt_out.h"

static const char usage[] =
    "usage: subbit clean [DIR...] [options]\n"
    "\n"
    "Remove the temp files and folders that a subbit killed mid-write (kill -9,\n"
    "a crash, power loss) left behind: names TARGET.subbit-tmp-PID-XXXXXX whose\n"
    "process PID is gone. Temps of a subbit still running, and every other\n"
    "file, stay. With no DIR: the current folder and $TMPDIR (or /tmp), where\n"
    "only subbit-* temps are looked at. Run it on the machine that wrote them.\n"
    "\n"
    "options:\n"
    "  -n, --dry-run   list what would be removed, remove nothing\n"
    "  -q, --quiet     no progress or notes on stderr; nothing on stdout either\n"
    "      --json      one JSON document on stdout\n"
    "  -h, --help      this text\n";

struct clean_ctx {
    bool quiet, json, dry_run;
    cJSON *list;
    size_t n;
};

static void on_stale(void *ctx, enum fmt_out_event ev, const char *path)
{
    struct clean_ctx *c = ctx;
    (void)ev;
    c->n++;
    if (c->json)
        cJSON_AddItemToArray(c->list, cJSON_CreateString(path));
    else if (!c->quiet)
        printf("%s %s\n", c->dry_run ? "would remove" : "removed", path);
}

int cmd_clean(int argc, char **argv)
{
    enum { O_JSON = 256 };
    static const struct option opts[] = {
        { "dry-run", no_argument, 0, 'n' }, { "quiet", no_argument, 0, 'q' },
        { "json", no_argument, 0, O_JSON }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    struct clean_ctx c = { 0 };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":nqh", opts, NULL)) != -1) {
        switch (ch) {
        case 'n': c.dry_run = true; break;
        case 'q': c.quiet = true; break;
        case O_JSON: c.json = true; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_getopt_error("clean", ch, argc, argv);
        }
    }
    cli_set_quiet(c.quiet);
    cJSON *doc = NULL;
    if (c.json) {
        doc = cli_json_doc("clean");
        cJSON_AddBoolToObject(doc, "dry_run", c.dry_run);
        c.list = cJSON_AddArrayToObject(doc, c.dry_run ? "would_remove" : "removed");
    }
    int rc = CLI_OK;
    struct sb_err err = { 0 };
    if (optind < argc) {
        for (int i = optind; i < argc; i++) {
            sb_err_clear(&err);
            if (fmt_out_clean(argv[i], NULL, c.dry_run, on_stale, &c, &err) != SB_OK)
                rc = cli_fail("clean", &err);
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        if (fmt_out_clean(".", NULL, c.dry_run, on_stale, &c, &err) != SB_OK)
            rc = cli_fail("clean", &err);
        sb_err_clear(&err);
        if (fmt_out_clean(tmp && *tmp ? tmp : "/tmp", "subbit-", c.dry_run, on_stale, &c, &err) !=
            SB_OK)
            rc = cli_fail("clean", &err);
    }
    if (c.json) {
        cJSON_AddNumberToObject(doc, "count", (double)c.n);
        cli_print_json(doc);
    } else if (!c.quiet && c.n == 0 && rc == CLI_OK) {
        printf("no stale temps\n");
    }
    return rc;
}
