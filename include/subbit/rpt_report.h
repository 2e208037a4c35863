/* rpt_report.h: one self-contained HTML page (inline SVG charts, no script,
 * nothing fetched) from the JSON documents that `verify`, `quant`, `convert`
 * (with --stats), `mem`, `ppl` and `inspect` print with --json.
 *
 * Calling sequence:
 *   struct rpt_report *r;
 *   rpt_report_new(&r, err);
 *   rpt_report_add_file(r, "run.json", err) ...   or rpt_report_add_doc()
 *   rpt_report_write(r, "report.html", flags, err)  (or rpt_report_html())
 *   rpt_report_free(r);
 * rpt_render() does all of it for one command's --report FILE.
 *
 * The model (the arrays below) is what the page shows, before any layout:
 * tests read it to check what was understood from a document. Values a
 * document lacks are NAN; the page leaves out a section without data.
 * Strings are borrowed from the documents, which the report keeps alive.
 * Not thread-safe on one report. */
#ifndef RPT_REPORT_H
#define RPT_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct cJSON;

enum rpt_kind { RPT_CONVERT, RPT_QUANT, RPT_INSPECT, RPT_VERIFY, RPT_PPL, RPT_MEM };

struct rpt_tensor {
    const char *name;
    const char *enc;          /* encoding written (inspect: stored) */
    int layer, expert;        /* from the name ("layers.N.", "blk.N.", "experts.E."); -1: none */
    double params;            /* elements (product of the shape) */
    double bits;              /* bits per weight */
    double rmse;              /* NAN: not measured */
    double sqnr_db;           /* +INF: exact (JSON null beside an rmse); NAN: not measured */
    double zero_fraction;     /* of the written values (ternary encodings) */
    double tokens;            /* calibration tokens seen (quant) */
};

struct rpt_route {            /* quant: tokens routed to one expert while calibrating */
    int layer, expert;
    double tokens;
    bool fallback;            /* too few tokens: quantized without calibration */
};

struct rpt_run {              /* convert, quant or inspect: one model's tensors */
    enum rpt_kind kind;
    const char *file;         /* the document's name */
    const char *model;        /* output (convert, quant) or path (inspect) */
    const char *input, *method, *to;    /* NULL when absent */
    struct rpt_tensor *t;
    size_t n_t;
    struct rpt_route *routes;
    size_t n_routes;
    double params, in_bytes, out_bytes, bits_per_param, seconds, calib_tokens;
};

struct rpt_cmp {              /* verify: one copy against its reference */
    const char *file, *ref, *model, *protocol;
    double tokens, ppl_ref, ppl_model, ppl_delta_pct, kld_mean, kld_p99, top1;
    int pass;                 /* 1 passed its gates, 0 failed, -1 no gate given */
};

struct rpt_ppl {
    const char *file, *model, *protocol;
    double tokens, ppl, ppl_se;
};

#define RPT_MEM_PARTS 6
struct rpt_mem {              /* mem: the estimate's parts, which add up to total */
    const char *file, *model, *encoding;
    double ctx, total, params;
    double measured;          /* mem --measure: peak RSS in bytes */
    const char *label[RPT_MEM_PARTS];
    double bytes[RPT_MEM_PARTS];
    int n_parts;
};

struct rpt_report {
    const char *title;        /* NULL: "subbit report" */
    struct rpt_run *runs;
    size_t n_runs;
    struct rpt_cmp *cmps;
    size_t n_cmps;
    struct rpt_ppl *ppls;
    size_t n_ppls;
    struct rpt_mem *mems;
    size_t n_mems;
    size_t n_docs;
    struct rpt_doc *docs;     /* private: the documents, their names and kinds */
};

/*! rpt_report_new() : an empty report; free with rpt_report_free(). */
int rpt_report_new(struct rpt_report **r, struct sb_err *err);
/*! rpt_report_free() : NULL is fine. */
void rpt_report_free(struct rpt_report *r);

/*! rpt_report_add_json() : add the documents in text (one JSON object, several
 *  one after another, or an array of them); name is used in messages
 *  ("run.json: not valid JSON near byte 17", "x.json: document 2 is not
 *  subbit --json output ..."). On error nothing of text is added. */
int rpt_report_add_json(struct rpt_report *r, const char *name, const char *text, size_t len,
                        struct sb_err *err);
/*! rpt_report_add_file() : rpt_report_add_json() of a file ("-": stdin). */
int rpt_report_add_file(struct rpt_report *r, const char *path, struct sb_err *err);
/*! rpt_report_add_doc() : add a parsed document, borrowed: it must outlive r. */
int rpt_report_add_doc(struct rpt_report *r, const char *name, const struct cJSON *doc,
                       struct sb_err *err);
/*! rpt_report_doc() : the kind of document i (in the order added) and its name. */
enum rpt_kind rpt_report_doc(const struct rpt_report *r, size_t i, const char **name);
/*! rpt_kind_name() : "verify", "quant", ... */
const char *rpt_kind_name(enum rpt_kind k);

/*! rpt_report_html() : render the page. *html (NUL-terminated, *len bytes
 *  before the NUL) is the caller's, to sb_free(). */
int rpt_report_html(const struct rpt_report *r, char **html, size_t *len, struct sb_err *err);
/*! rpt_report_write() : render and write the page atomically (fmt_out);
 *  flags: FMT_OUT_FORCE replaces an existing file, else that is an error. */
int rpt_report_write(const struct rpt_report *r, const char *path, unsigned flags,
                     struct sb_err *err);

/*! rpt_render() : a command's --report FILE in one call: the page for n
 *  documents (borrowed; names[i] may be NULL, or names NULL) written to path
 *  as rpt_report_write() does. */
int rpt_render(const struct cJSON *const *docs, const char *const *names, size_t n,
               const char *path, unsigned flags, struct sb_err *err);

#endif
