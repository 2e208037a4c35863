/* rpt_read.c: subbit's --json documents into the report's model. Knows which
 * command wrote a document ("command", else the fields only one command
 * writes) and where each number sits; tolerates missing fields (NAN). Knows
 * nothing of the page. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt_model.h"
#include "rpt_impl.h"
#include "sb_alloc.h"

static const char *const kind_names[] = { "convert", "quant", "inspect", "verify", "ppl", "mem" };

const char *rpt_kind_name(enum rpt_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "?";
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int classify(const cJSON *d, enum rpt_kind *k)
{
    if (!cJSON_IsObject(d))
        return -1;
    const char *cmd = str(d, "command");
    if (cmd) {
        for (int i = 0; i < (int)(sizeof kind_names / sizeof kind_names[0]); i++)
            if (!strcmp(cmd, kind_names[i]))
                return *k = (enum rpt_kind)i, 0;
        return -1;
    }
    if (get(d, "ppl_ref") && cJSON_IsObject(get(d, "kld")))
        *k = RPT_VERIFY;
    else if (cJSON_IsObject(get(d, "kv_cache")) && cJSON_IsObject(get(d, "params")))
        *k = RPT_MEM;
    else if (cJSON_IsArray(get(d, "tensors")))
        *k = get(d, "architecture") ? RPT_INSPECT
             : (get(d, "calib") || get(d, "method")) ? RPT_QUANT : RPT_CONVERT;
    else if (cJSON_IsNumber(get(d, "ppl")) && get(d, "tokens_scored"))
        *k = RPT_PPL;
    else
        return -1;
    return 0;
}

/* The number after `key` ("layers.") as a whole dotted component, or -1. */
static int index_after(const char *name, const char *key)
{
    for (const char *p = strstr(name, key); p; p = strstr(p + 1, key)) {
        if (p != name && p[-1] != '.' && p[-1] != '_')
            continue;
        const char *q = p + strlen(key);
        char *end;
        errno = 0;
        long v = isdigit((unsigned char)*q) ? strtol(q, &end, 10) : -1;
        if (v >= 0 && v < 1000000 && !errno && (*end == '.' || !*end))
            return (int)v;
    }
    return -1;
}

/* Make room in *pp (n elements of sz used) for one more. The capacity is
 * implicit: 8, then the next power of two, so growth happens at n = 0, 8, 16, ... */
static int grow(void *pp, size_t n, size_t sz, struct sb_err *err)
{
    void **p = pp;
    if (n != 0 && (n < 8 || (n & (n - 1))))
        return SB_OK;
    void *q = sb_realloc(*p, (n ? 2 * n : 8) * sz);
    if (!q)
        return sb_err_set(err, SB_ENOMEM, "out of memory");
    *p = q;
    return SB_OK;
}

static int add_run(struct rpt_report *r, const char *name, const cJSON *d, enum rpt_kind k,
                   struct sb_err *err)
{
    if (grow(&r->runs, r->n_runs, sizeof *r->runs, err))
        return err->code;
    struct rpt_run *u = &r->runs[r->n_runs++];   /* counted now: a failed add frees it */
    memset(u, 0, sizeof *u);
    u->kind = k;
    u->file = name;
    u->model = str(d, "output") ? str(d, "output") : str(d, "path");
    u->input = str(d, "input");
    u->method = str(d, "method");
    u->to = str(d, "to");
    const cJSON *tot = get(d, "totals");
    u->params = num(tot, "params");
    u->in_bytes = num(tot, "in_bytes");
    u->out_bytes = k == RPT_INSPECT ? num(tot, "bytes") : num(tot, "out_bytes");
    u->bits_per_param = num(tot, "bits_per_param");
    u->seconds = num(tot, "seconds");
    u->calib_tokens = num(get(d, "calib"), "tokens");
    const cJSON *ts = get(d, "tensors"), *t;
    size_t nt = (size_t)cJSON_GetArraySize(ts);
    if (nt && !(u->t = sb_calloc(nt, sizeof *u->t)))
        return sb_err_set(err, SB_ENOMEM, "out of memory");
    cJSON_ArrayForEach(t, ts) {
        struct rpt_tensor *x = &u->t[u->n_t++];
        x->name = str(t, "name") ? str(t, "name") : "?";
        x->enc = str(t, "to") ? str(t, "to") : str(t, "encoding") ? str(t, "encoding") : "?";
        x->layer = index_after(x->name, "layers.");
        if (x->layer < 0)
            x->layer = index_after(x->name, "blk.");
        x->expert = index_after(x->name, "experts.");
        const cJSON *s, *sh = get(t, "shape");
        x->params = cJSON_IsArray(sh) ? 1 : NAN;
        cJSON_ArrayForEach(s, sh)
            x->params *= cJSON_IsNumber(s) ? s->valuedouble : NAN;
        x->bits = num(t, "bits_per_weight");
        if (isnan(x->bits))
            x->bits = num(t, "bits_per_param");
        if (isnan(x->bits) && x->params > 0)
            x->bits = 8 * num(t, "out_bytes") / x->params;
        x->rmse = num(t, "rmse");
        x->sqnr_db = num(t, "sqnr_db");
        if (cJSON_IsNull(get(t, "sqnr_db")) && x->rmse == 0)
            x->sqnr_db = INFINITY;
        x->zero_fraction = num(t, "zero_fraction");
        x->tokens = num(t, "tokens");
    }
    const cJSON *ls = get(d, "layers"), *l, *e;
    cJSON_ArrayForEach(l, ls) {
        cJSON_ArrayForEach(e, get(l, "experts")) {
            if (grow(&u->routes, u->n_routes, sizeof *u->routes, err))
                return err->code;
            struct rpt_route *ro = &u->routes[u->n_routes++];
            ro->layer = (int)num(l, "layer");
            ro->expert = (int)num(e, "expert");
            ro->tokens = num(e, "tokens");
            ro->fallback = cJSON_IsTrue(get(e, "fallback"));
            if (isnan(num(l, "layer")) || isnan(num(e, "expert")))
                u->n_routes--;            /* nowhere to draw it */
        }
    }
    return SB_OK;
}

static void mem_part(struct rpt_mem *m, const char *label, double bytes)
{
    if (m->n_parts < RPT_MEM_PARTS && bytes > 0) {
        m->label[m->n_parts] = label;
        m->bytes[m->n_parts++] = bytes;
    }
}

static int add_mem(struct rpt_report *r, const char *name, const cJSON *d, struct sb_err *err)
{
    const cJSON *kv = get(d, "kv_cache"), *rt = get(d, "runtime"), *tr = get(d, "train");
    for (int train = 0; train <= (tr != NULL); train++) {
        if (grow(&r->mems, r->n_mems, sizeof *r->mems, err))
            return err->code;
        struct rpt_mem *m = &r->mems[r->n_mems++];
        memset(m, 0, sizeof *m);
        m->file = name;
        m->model = str(d, "model") ? str(d, "model") : name;
        m->encoding = str(d, "weights_encoding");
        if (m->encoding && !strcmp(m->encoding, "stored"))
            m->encoding = str(get(d, "stored"), "encoding");
        m->ctx = num(kv, "ctx");
        m->params = num(get(d, "params"), "total");
        m->measured = train ? NAN : num(get(d, "measured"), "peak_rss");
        if (train) {
            m->total = num(tr, "total");
            mem_part(m, "weights", num(tr, "weights"));
            mem_part(m, "gradients", num(tr, "gradients"));
            mem_part(m, "optimizer", num(tr, "optimizer"));
            mem_part(m, "activations", num(tr, "activations"));
        } else {
            m->total = num(d, "total");
            mem_part(m, "weights", num(d, "weights_bytes"));
            mem_part(m, "KV cache", num(kv, "bytes"));
            mem_part(m, "activations", num(rt, "activations"));
            mem_part(m, "logits", num(rt, "logits"));
            mem_part(m, "scratch", num(rt, "scratch"));
            mem_part(m, "attention scores", num(rt, "attention_scores")); /* --runtime hf */
            mem_part(m, "process", num(rt, "process_baseline"));
        }
        double sum = 0;
        for (int i = 0; i < m->n_parts; i++)
            sum += m->bytes[i];
        if (m->total > sum * (1 + 1e-9) && m->n_parts < RPT_MEM_PARTS)
            mem_part(m, "other", m->total - sum);   /* a term this reader does not know */
        if (isnan(m->total))
            m->total = sum;
    }
    return SB_OK;
}

static int add_model(struct rpt_report *r, const char *name, const cJSON *d, enum rpt_kind k,
                     struct sb_err *err)
{
    switch (k) {
    case RPT_CONVERT:
    case RPT_QUANT:
    case RPT_INSPECT:
        return add_run(r, name, d, k, err);
    case RPT_MEM:
        return add_mem(r, name, d, err);
    case RPT_VERIFY: {
        if (grow(&r->cmps, r->n_cmps, sizeof *r->cmps, err))
            return err->code;
        struct rpt_cmp *c = &r->cmps[r->n_cmps++];
        const cJSON *checks = get(d, "checks");
        c->file = name;
        c->ref = str(d, "ref");
        c->model = str(d, "model") ? str(d, "model") : name;
        c->protocol = str(d, "protocol");
        c->tokens = num(d, "tokens_scored");
        c->ppl_ref = num(d, "ppl_ref");
        c->ppl_model = num(d, "ppl_model");
        c->ppl_delta_pct = num(d, "ppl_delta_pct");
        c->kld_mean = num(get(d, "kld"), "mean");
        c->kld_p99 = num(get(d, "kld"), "p99");
        c->top1 = num(d, "top1_agreement");
        c->pass = cJSON_GetArraySize(checks) > 0 ? cJSON_IsTrue(get(d, "pass")) : -1;
        return SB_OK;
    }
    case RPT_PPL: {
        if (grow(&r->ppls, r->n_ppls, sizeof *r->ppls, err))
            return err->code;
        struct rpt_ppl *p = &r->ppls[r->n_ppls++];
        p->file = name;
        p->model = str(d, "model") ? str(d, "model") : name;
        p->protocol = str(d, "protocol");
        p->tokens = num(d, "tokens_scored");
        p->ppl = num(d, "ppl");
        p->ppl_se = num(d, "ppl_stderr");
        return SB_OK;
    }
    }
    return SB_OK;
}

int rpt_report_new(struct rpt_report **r, struct sb_err *err)
{
    if (!(*r = sb_calloc(1, sizeof **r)))
        return sb_err_set(err, SB_ENOMEM, "out of memory");
    return SB_OK;
}

void rpt_report_free(struct rpt_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_runs; i++) {
        sb_free(r->runs[i].t);
        sb_free(r->runs[i].routes);
    }
    for (size_t i = 0; i < r->n_docs; i++) {
        sb_free(r->docs[i].name);
        cJSON_Delete(r->docs[i].owned);
    }
    sb_free(r->runs);
    sb_free(r->cmps);
    sb_free(r->ppls);
    sb_free(r->mems);
    sb_free(r->docs);
    sb_free(r);
}

enum rpt_kind rpt_report_doc(const struct rpt_report *r, size_t i, const char **name)
{
    if (name)
        *name = r->docs[i].name;
    return r->docs[i].kind;
}

/* Forget everything added after the counts in `keep` (a failed add). */
static void rollback(struct rpt_report *r, const struct rpt_report *keep)
{
    for (size_t i = keep->n_runs; i < r->n_runs; i++) {
        sb_free(r->runs[i].t);
        sb_free(r->runs[i].routes);
    }
    for (size_t i = keep->n_docs; i < r->n_docs; i++) {
        sb_free(r->docs[i].name);
        cJSON_Delete(r->docs[i].owned);
    }
    r->n_runs = keep->n_runs;
    r->n_cmps = keep->n_cmps;
    r->n_ppls = keep->n_ppls;
    r->n_mems = keep->n_mems;
    r->n_docs = keep->n_docs;
}

/* Add one document; owned (or NULL) is freed with the report, even on failure. */
static int add_one(struct rpt_report *r, const char *name, int index, const cJSON *d,
                   cJSON *owned, struct sb_err *err)
{
    enum rpt_kind k = RPT_CONVERT;
    char sub[32] = "";
    if (index > 0)
        snprintf(sub, sizeof sub, "document %d ", index);
    if (classify(d, &k))
        return cJSON_Delete(owned),
               sb_err_set(err, SB_EFORMAT, "%s: %sis not the --json output of subbit verify, "
                          "quant, convert, mem, ppl or inspect", name, sub);
    if (grow(&r->docs, r->n_docs, sizeof *r->docs, err))
        return cJSON_Delete(owned), err->code;
    struct rpt_doc *doc = &r->docs[r->n_docs];
    char *dname = sb_malloc(strlen(name) + sizeof sub + 2);
    if (!dname)
        return cJSON_Delete(owned), sb_err_set(err, SB_ENOMEM, "out of memory");
    if (index > 0)
        sprintf(dname, "%s #%d", name, index);
    else
        strcpy(dname, name);
    *doc = (struct rpt_doc){ dname, owned, d, k };
    r->n_docs++;
    return add_model(r, dname, d, k, err);
}

int rpt_report_add_doc(struct rpt_report *r, const char *name, const cJSON *doc,
                       struct sb_err *err)
{
    struct rpt_report keep = *r;
    int rc = add_one(r, name ? name : "document", 0, doc, NULL, err);
    if (rc)
        rollback(r, &keep);
    return rc;
}

int rpt_report_add_json(struct rpt_report *r, const char *name, const char *text, size_t len,
                        struct sb_err *err)
{
    struct rpt_report keep = *r;
    const char *p = text, *end = text + len;
    cJSON **list = NULL;
    size_t n = 0, i = 0;
    int rc = SB_OK;
    for (;;) {                            /* parse every document first */
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p == end)
            break;
        const char *stop = NULL;
        cJSON *d = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &stop, 0);
        if (!d) {
            size_t off = stop ? (size_t)(stop - text) : (size_t)(p - text), line = 1;
            for (size_t k = 0; k < off && k < len; k++)
                line += text[k] == '\n';
            rc = sb_err_set(err, SB_EFORMAT, "%s: not valid JSON (line %zu, byte %zu)", name,
                            line, off);
            goto out;
        }
        if ((rc = grow(&list, n, sizeof *list, err))) {
            cJSON_Delete(d);
            goto out;
        }
        list[n++] = d;
        p = stop;
    }
    const bool many = n > 1 || (n == 1 && cJSON_IsArray(list[0]));
    int index = 0;
    for (; i < n && rc == SB_OK; i++) {
        cJSON *d = list[i];
        if (!cJSON_IsArray(d)) {
            rc = add_one(r, name, many ? ++index : 0, d, d, err);
            continue;
        }
        const cJSON *it;
        bool first = true;
        cJSON_ArrayForEach(it, d) {       /* the first item's entry owns the array */
            if ((rc = add_one(r, name, ++index, it, first ? d : NULL, err)))
                break;
            first = false;
        }
        if (first && rc == SB_OK)
            cJSON_Delete(d);              /* an empty array */
    }
    if (rc == SB_OK && index == 0 && !n)
        rc = sb_err_set(err, SB_EFORMAT, "%s: empty, no JSON document", name);
    if (rc == SB_OK && many && index == 0)
        rc = sb_err_set(err, SB_EFORMAT, "%s: an empty array, no JSON document", name);
out:
    for (; i < n; i++)                    /* parsed, never handed to add_one */
        cJSON_Delete(list[i]);
    sb_free(list);
    if (rc)
        rollback(r, &keep);
    return rc;
}

int rpt_report_add_file(struct rpt_report *r, const char *path, struct sb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (!strcmp(path, "-")) {
        size_t cap = 0;
        for (;;) {
            if (len + 65536 > cap) {
                char *q = sb_realloc(text, cap = 2 * cap + 65536);
                if (!q)
                    return sb_free(text), sb_err_set(err, SB_ENOMEM, "stdin: out of memory");
                text = q;
            }
            ssize_t got = read(0, text + len, cap - len - 1);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                return sb_free(text), sb_err_set(err, SB_EIO, "stdin: %s", strerror(errno));
            if (got == 0)
                break;
            len += (size_t)got;
        }
        text[len] = 0;
        path = "stdin";
    } else {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return sb_err_set(err, SB_EIO, "%s: is a directory", path);
        if (fmt_read_file(path, &text, &len, err) != SB_OK)
            return err->code;
    }
    int rc = rpt_report_add_json(r, path, text, len, err);
    sb_free(text);
    return rc;
}
