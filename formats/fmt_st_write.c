/* fmt_st_write.c: streaming safetensors writer: one .safetensors file, or a
 * Hugging Face folder (model.safetensors or model-0000k-of-0000n shards plus
 * model.safetensors.index.json, config.json and side files), all atomic via
 * fmt_out (formats.md §1.3, §1.5). INT8 tensors are written in the
 * compressed-tensors pack-quantized layout with a quantization_config block
 * (§5.2, §5.3). Knows layouts and sizes, never values. */
#include "fmt_buf_impl.h"
#include "fmt_st.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCRATCH_MIN (1u << 16)

/* One tensor as it appears in a file. */
struct st_phys {
    char *name;               /* owned */
    enum sb_dtype dt;
    int ndim;
    int64_t shape[SB_MAX_DIMS];
    uint64_t nbytes;
    uint64_t begin;           /* in its shard's byte buffer */
    int shard;
};

/* One plan entry. */
struct st_item {
    enum sb_dtype dt;
    struct sb_qparams qp;
    uint64_t nbytes;          /* bytes put() receives */
    uint64_t rows, cols;      /* INT8, and 2-d tensors (rows = 0 otherwise) */
    size_t phys;              /* its first physical tensor (INT8: packed, then scale) */
    size_t shape_phys;        /* INT8: the weight_shape tensor */
    int rank;                 /* sort class */
    int shard;
};

struct st_shard {
    char *file;               /* name inside the folder (folder mode) */
    char *header;             /* padded JSON header */
    size_t header_len;
    uint64_t data_bytes;
    size_t first_item;        /* k range in the order */
    size_t end_item;
};

struct st_writer {
    struct fmt_writer base;   /* first: fmt_writer.h */
    char *path;
    unsigned flags;
    int folder;
    struct fmt_outdir dir;
    struct fmt_out out;
    int cur;                  /* shard open in out, -1 none */
    struct st_item *items;
    char **names;             /* plan names (owned) */
    struct st_phys *phys;
    size_t n_phys;
    struct st_shard *shards;
    size_t n_shards;
    uint8_t *scratch;
    size_t scratch_len;
    char *config;             /* config.json to write (owned), or NULL */
    char **side;              /* side files to copy (owned paths) */
    size_t n_side;
    uint64_t total_size;
};

/* ---- release -------------------------------------------------------------- */

static void w_free(struct st_writer *w)
{
    if (!w)
        return;
    sb_free(w->path);
    sb_free(w->items);
    if (w->names)
        for (size_t i = 0; i < w->base.n; i++)
            sb_free(w->names[i]);
    sb_free(w->names);
    for (size_t i = 0; i < w->n_phys; i++)
        sb_free(w->phys[i].name);
    sb_free(w->phys);
    for (size_t i = 0; i < w->n_shards; i++) {
        sb_free(w->shards[i].file);
        sb_free(w->shards[i].header);
    }
    sb_free(w->shards);
    sb_free(w->base.order);
    sb_free(w->scratch);
    sb_free(w->config);
    for (size_t i = 0; i < w->n_side; i++)
        sb_free(w->side[i]);
    sb_free(w->side);
    sb_free(w);
}

/* Remove name from the temp folder without allocating: abort runs after
 * out-of-memory too, and fmt_outdir_abort's own sweep needs memory. */
static void unlink_in_tmp(const struct st_writer *w, const char *name)
{
    char p[PATH_MAX];
    if (w->dir.tmp && (size_t)snprintf(p, sizeof p, "%s/%s", w->dir.tmp, name) < sizeof p)
        unlink(p);
}

static void st_abort(struct fmt_writer *base)
{
    struct st_writer *w = (struct st_writer *)base;
    fmt_out_abort(&w->out);
    if (w->folder) {
        for (size_t s = 0; s < w->n_shards; s++)
            if (w->shards[s].file)
                unlink_in_tmp(w, w->shards[s].file);
        unlink_in_tmp(w, "model.safetensors.index.json");
        unlink_in_tmp(w, "config.json");
        for (size_t i = 0; i < w->n_side; i++) {
            const char *bn = strrchr(w->side[i], '/');
            unlink_in_tmp(w, bn ? bn + 1 : w->side[i]);
        }
        fmt_outdir_abort(&w->dir);
    }
    w_free(w);
}

/* ---- planning ------------------------------------------------------------- */

struct order_key {
    int rank;
    const char *name;
    size_t i;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Sort class: the reference writer's alignment order, descending (§1.3).
 * INT8 (packed I32 codes + scales) sits with the 4-byte types when its
 * scales are F32, after them when they are F16. */
static int rank_of(const struct st_item *it)
{
    if (it->dt == SB_DTYPE_INT8)
        return it->qp.scale_dtype == SB_DTYPE_F16 ? 2 : 1;
    switch (fmt_st_dtype_align(it->dt)) {
    case 8: return 0;
    case 4: return 1;
    case 2: return 3;
    case 1: return 4;
    case 0: return 5;
    default: return 6; /* BOOL */
    }
}

static int add_phys(struct st_writer *w, const char *name, const char *suffix, enum sb_dtype dt,
                    int ndim, const int64_t *shape, uint64_t nbytes)
{
    struct st_phys *p = &w->phys[w->n_phys];
    memset(p, 0, sizeof *p);
    size_t n = strlen(name) + strlen(suffix) + 1;
    if (!(p->name = sb_malloc(n)))
        return SB_ENOMEM;
    snprintf(p->name, n, "%s%s", name, suffix);
    p->dt = dt;
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->nbytes = nbytes;
    w->n_phys++;
    return SB_OK;
}

/* "P" for "P.weight" (the module name), as a new string. */
static char *module_of(const char *name)
{
    size_t n = strlen(name);
    if (n > 7 && !strcmp(name + n - 7, ".weight"))
        n -= 7;
    return sb_strndup(name, n);
}

static int json_add_str_array(cJSON *obj, const char *key, char **v, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    if (!a)
        return -1;
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!s)
            return -1;
        cJSON_AddItemToArray(a, s);
    }
    return 0;
}

/* config.json with the compressed-tensors quantization_config (§5.3). */
static int make_quant_config(struct st_writer *w, const char *config_json, struct sb_err *err)
{
    const size_t n = w->base.n;
    cJSON *root = config_json ? cJSON_Parse(config_json) : cJSON_CreateObject();
    char **ignore = NULL, **targets = NULL;
    uint32_t *groups = NULL;
    size_t n_ignore = 0, n_groups = 0;
    cJSON *qc, *cg = NULL;
    char *text;
    int r = SB_OK;
    if (!root || !cJSON_IsObject(root)) {
        r = sb_err_set(err, config_json ? SB_EINVAL : SB_ENOMEM, "%s: %s", w->path,
                       config_json ? "config.json to write is not a JSON object"
                                   : "out of memory");
        goto done;
    }
    ignore = sb_calloc(n ? n : 1, sizeof *ignore);
    targets = sb_calloc(n ? n : 1, sizeof *targets);
    groups = sb_calloc(n ? n : 1, sizeof *groups);
    if (!ignore || !targets || !groups)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct st_item *it = &w->items[i];
        const char *nm = w->names[i];
        size_t len = strlen(nm);
        if (it->dt == SB_DTYPE_INT8) {
            uint32_t g = it->qp.group >= it->cols ? 0 : it->qp.group;
            size_t k;
            for (k = 0; k < n_groups && groups[k] != g; k++)
                ;
            if (k == n_groups)
                groups[n_groups++] = g;
        } else if (len > 7 && !strcmp(nm + len - 7, ".weight") && it->rows > 0 &&
                   !strstr(nm, "embed") && !strstr(nm, "norm")) {
            /* an unquantized 2-d weight of a Linear (lm_head, routers): ignore it */
            if (!(ignore[n_ignore++] = module_of(nm)))
                goto oom;
        }
    }
    if (!(qc = cJSON_CreateObject()))
        goto oom;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    cJSON_AddItemToObject(root, "quantization_config", qc);
    if (!cJSON_AddStringToObject(qc, "quant_method", "compressed-tensors") ||
        !cJSON_AddStringToObject(qc, "format", "pack-quantized") ||
        !cJSON_AddStringToObject(qc, "quantization_status", "compressed") ||
        !(cg = cJSON_AddObjectToObject(qc, "config_groups")))
        goto oom;
    for (size_t k = 0; k < n_groups; k++) {
        char gname[32];
        snprintf(gname, sizeof gname, "group_%zu", k);
        cJSON *g = cJSON_AddObjectToObject(cg, gname), *wt;
        if (!g)
            goto oom;
        if (n_groups == 1) {
            char *lin = "Linear";
            if (json_add_str_array(g, "targets", &lin, 1))
                goto oom;
        } else {
            size_t nt = 0;
            for (size_t i = 0; i < n; i++) {
                const struct st_item *it = &w->items[i];
                uint32_t gi = it->qp.group >= it->cols ? 0 : it->qp.group;
                if (it->dt == SB_DTYPE_INT8 && gi == groups[k] &&
                    !(targets[nt++] = module_of(w->names[i])))
                    goto oom;
            }
            int bad = json_add_str_array(g, "targets", targets, nt);
            for (size_t i = 0; i < nt; i++) {
                sb_free(targets[i]);
                targets[i] = NULL;
            }
            if (bad)
                goto oom;
        }
        if (!cJSON_AddStringToObject(g, "format", "pack-quantized") ||
            !(wt = cJSON_AddObjectToObject(g, "weights")) ||
            !cJSON_AddNumberToObject(wt, "num_bits", 8) ||
            !cJSON_AddStringToObject(wt, "type", "int") ||
            !cJSON_AddTrueToObject(wt, "symmetric") ||
            !cJSON_AddStringToObject(wt, "strategy", groups[k] ? "group" : "channel") ||
            !(groups[k] ? cJSON_AddNumberToObject(wt, "group_size", groups[k])
                        : cJSON_AddNullToObject(wt, "group_size")) ||
            !cJSON_AddFalseToObject(wt, "dynamic") || !cJSON_AddNullToObject(wt, "actorder") ||
            !cJSON_AddNullToObject(wt, "block_structure") ||
            !cJSON_AddStringToObject(wt, "observer", "minmax") ||
            !cJSON_AddObjectToObject(wt, "observer_kwargs") ||
            !cJSON_AddNullToObject(g, "input_activations") ||
            !cJSON_AddNullToObject(g, "output_activations"))
            goto oom;
    }
    if (json_add_str_array(qc, "ignore", ignore, n_ignore) ||
        !cJSON_AddNullToObject(qc, "kv_cache_scheme") ||
        !cJSON_AddNullToObject(qc, "global_compression_ratio") ||
        !cJSON_AddObjectToObject(qc, "sparsity_config") ||
        !cJSON_AddObjectToObject(qc, "transform_config") ||
        !cJSON_AddStringToObject(qc, "version", "0.10.2"))
        goto oom;
    if (!(text = cJSON_Print(root)))
        goto oom;
    w->config = sb_strdup(text);
    cJSON_free(text);
    if (!w->config)
        goto oom;
    goto done;
oom:
    r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
done:
    if (ignore)
        for (size_t i = 0; i < n_ignore; i++)
            sb_free(ignore[i]);
    sb_free(ignore);
    if (targets)
        for (size_t i = 0; i < n; i++)
            sb_free(targets[i]);
    sb_free(targets);
    sb_free(groups);
    cJSON_Delete(root);
    return r;
}

/* The padded header of shard s: __metadata__ first, then its tensors in
 * offset order (the shard's weight_shape tensors, then its items' tensors). */
static int make_header(struct st_writer *w, struct st_shard *sh, const size_t *list, size_t n,
                       const struct fmt_write_opts *o, struct sb_err *err)
{
    struct fmt_buf b = { 0 };
    int have_format = 0;
    fmt_buf_puts(&b, "{\"__metadata__\":{");
    for (size_t i = 0; i < o->n_kv; i++)
        if (o->kv[i].type == FMT_KV_STRING && o->kv[i].key && !strcmp(o->kv[i].key, "format"))
            have_format = 1;
    int first = 1;
    if (!have_format) {
        fmt_buf_puts(&b, "\"format\":\"pt\"");
        first = 0;
    }
    /* __metadata__ holds strings only: other metadata (GGUF numbers, arrays)
     * has no place there and is left out */
    for (size_t i = 0; i < o->n_kv; i++) {
        const struct fmt_kv *kv = &o->kv[i];
        if (kv->type != FMT_KV_STRING || !kv->key || !kv->str)
            continue;
        size_t j;
        for (j = 0; j < i; j++)
            if (o->kv[j].type == FMT_KV_STRING && o->kv[j].key && !strcmp(o->kv[j].key, kv->key))
                break;
        if (j < i)
            continue;
        if (!first)
            fmt_buf_puts(&b, ",");
        first = 0;
        fmt_buf_json_str(&b, kv->key);
        fmt_buf_puts(&b, ":");
        fmt_buf_json_str(&b, kv->str);
    }
    fmt_buf_puts(&b, "}");
    for (size_t k = 0; k < n; k++) {
        const struct st_phys *p = &w->phys[list[k]];
        fmt_buf_puts(&b, ",");
        fmt_buf_json_str(&b, p->name);
        fmt_buf_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", sb_dtype_get(p->dt)->st_name);
        for (int d = 0; d < p->ndim; d++)
            fmt_buf_printf(&b, "%s%lld", d ? "," : "", (long long)p->shape[d]);
        fmt_buf_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)p->begin,
                  (unsigned long long)(p->begin + p->nbytes));
        if (b.len > FMT_ST_MAX_HEADER)
            break;
    }
    fmt_buf_puts(&b, "}");
    while (!b.oom && b.len % 8)
        fmt_buf_puts(&b, " ");
    if (b.oom) {
        sb_free(b.p);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    }
    if (b.len > FMT_ST_MAX_HEADER) {
        sb_free(b.p);
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: safetensors header would exceed 100000000 "
                          "bytes; use a smaller shard size", w->path);
    }
    sh->header = b.p;
    sh->header_len = b.len;
    return SB_OK;
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Open shard s for writing: header, then its weight_shape tensors. */
static int shard_begin(struct st_writer *w, size_t s, struct sb_err *err)
{
    struct st_shard *sh = &w->shards[s];
    int r;
    if (w->folder) {
        char *p = fmt_outdir_file(&w->dir, sh->file);
        if (!p)
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
        r = fmt_out_open(&w->out, p, 0, err);
        sb_free(p);
    } else {
        r = fmt_out_open(&w->out, w->path, w->flags, err);
    }
    if (r)
        return r;
    w->cur = (int)s;
    uint8_t len8[8];
    le64(len8, sh->header_len);
    if ((r = fmt_out_write(&w->out, len8, 8, err)) ||
        (r = fmt_out_write(&w->out, sh->header, sh->header_len, err)))
        return r;
    for (size_t k = sh->first_item; k < sh->end_item; k++) {
        const struct st_item *it = &w->items[w->base.order[k]];
        if (it->dt != SB_DTYPE_INT8)
            continue;
        uint8_t b[16];
        le64(b, it->rows);
        le64(b + 8, it->cols);
        if ((r = fmt_out_write(&w->out, b, 16, err)))
            return r;
    }
    return SB_OK;
}

static int shard_end(struct st_writer *w, struct sb_err *err)
{
    const struct st_shard *sh = &w->shards[w->cur];
    uint64_t want = 8 + sh->header_len + sh->data_bytes;
    w->cur = -1;
    if (fmt_out_tell(&w->out) != want) {
        int r = sb_err_set(err, SB_EINVAL, "%s: wrote %llu bytes, planned %llu", w->out.path,
                           (unsigned long long)fmt_out_tell(&w->out), (unsigned long long)want);
        fmt_out_abort(&w->out);
        return r;
    }
    return fmt_out_commit(&w->out, err);
}

/* before the first byte of tensor i: its size, and the shard it lives in */
static int st_begin(struct st_writer *w, size_t i, const void *data, uint64_t nbytes,
                    struct sb_err *err)
{
    const struct st_item *it = &w->items[i];
    int r;
    if (nbytes != it->nbytes)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': %llu bytes given, %s needs %llu",
                          w->path, w->names[i], (unsigned long long)nbytes,
                          sb_dtype_name(it->dt), (unsigned long long)it->nbytes);
    if (nbytes && !data)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': no data", w->path, w->names[i]);
    if (w->cur != it->shard) {
        if (w->cur >= 0 && (r = shard_end(w, err)))
            return r;
        if ((r = shard_begin(w, (size_t)it->shard, err)))
            return r;
    }
    return SB_OK;
}

/* int8 is repacked on the way out, so it comes whole; everything else may stream */
static bool st_streams(const struct fmt_writer *base, size_t i)
{
    const struct st_writer *w = (const struct st_writer *)base;
    return fmt_container_streams(FMT_CONT_SAFETENSORS, w->items[i].dt);
}

static int st_put_piece(struct fmt_writer *base, size_t i, const void *data, uint64_t n,
                        uint64_t off, uint64_t total, struct sb_err *err)
{
    struct st_writer *w = (struct st_writer *)base;
    int r;
    if (off == 0 && (r = st_begin(w, i, data, total, err)))
        return r;
    if (n && !data)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': no data", w->path, w->names[i]);
    return fmt_out_write(&w->out, data, (size_t)n, err);
}

static int st_put(struct fmt_writer *base, size_t i, const void *data, uint64_t nbytes,
                  struct sb_err *err)
{
    struct st_writer *w = (struct st_writer *)base;
    const struct st_item *it = &w->items[i];
    int r;
    if ((r = st_begin(w, i, data, nbytes, err)))
        return r;
    if (it->dt != SB_DTYPE_INT8)
        return fmt_out_write(&w->out, data, (size_t)nbytes, err);
    /* codes [rows, cols] -> packed I32 [rows, ceil(cols/4)], then the scales as they are */
    const int8_t *q = data;
    size_t row_bytes = (size_t)((it->cols + 3) / 4 * 4), fill = 0;
    for (uint64_t row = 0; row < it->rows; row++) {
        if (fill + row_bytes > w->scratch_len) {
            if ((r = fmt_out_write(&w->out, w->scratch, fill, err)))
                return r;
            fill = 0;
        }
        fmt_st_pack_int8_row(q + row * it->cols, (size_t)it->cols, w->scratch + fill);
        fill += row_bytes;
    }
    if (fill && (r = fmt_out_write(&w->out, w->scratch, fill, err)))
        return r;
    uint64_t codes = it->rows * it->cols;
    return fmt_out_write(&w->out, (const uint8_t *)data + codes, (size_t)(nbytes - codes), err);
}

static int write_text(struct st_writer *w, const char *name, const char *text,
                      struct sb_err *err)
{
    char *p = fmt_outdir_file(&w->dir, name);
    if (!p)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    struct fmt_out o;
    int r = fmt_out_open(&o, p, 0, err);
    sb_free(p);
    if (r)
        return r;
    if ((r = fmt_out_write(&o, text, strlen(text), err))) {
        fmt_out_abort(&o);
        return r;
    }
    return fmt_out_commit(&o, err);
}

static int cmp_phys_name(const void *a, const void *b)
{
    return strcmp((*(struct st_phys *const *)a)->name, (*(struct st_phys *const *)b)->name);
}

static int write_index(struct st_writer *w, struct sb_err *err)
{
    struct st_phys **sorted = sb_malloc((w->n_phys ? w->n_phys : 1) * sizeof *sorted);
    if (!sorted)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < w->n_phys; i++)
        sorted[i] = &w->phys[i];
    qsort(sorted, w->n_phys, sizeof *sorted, cmp_phys_name);
    struct fmt_buf b = { 0 };
    fmt_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
              (unsigned long long)w->total_size);
    for (size_t i = 0; i < w->n_phys; i++) {
        fmt_buf_puts(&b, i ? ",\n    " : "\n    ");
        fmt_buf_json_str(&b, sorted[i]->name);
        fmt_buf_puts(&b, ": ");
        fmt_buf_json_str(&b, w->shards[sorted[i]->shard].file);
    }
    fmt_buf_puts(&b, "\n  }\n}\n");
    sb_free(sorted);
    if (b.oom) {
        sb_free(b.p);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    }
    int r = write_text(w, "model.safetensors.index.json", b.p, err);
    sb_free(b.p);
    return r;
}

static int st_commit(struct fmt_writer *base, struct sb_err *err)
{
    struct st_writer *w = (struct st_writer *)base;
    int r = SB_OK;
    r = shard_end(w, err);
    if (!r && w->folder) {
        if (w->n_shards > 1)
            r = write_index(w, err);
        if (!r && w->config)
            r = write_text(w, "config.json", w->config, err);
        for (size_t i = 0; !r && i < w->n_side; i++) {
            const char *bn = strrchr(w->side[i], '/');
            bn = bn ? bn + 1 : w->side[i];
            char *dst = fmt_outdir_file(&w->dir, bn);
            if (!dst) {
                r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
                break;
            }
            r = fmt_out_copy_file(w->side[i], dst, 0, err);
            sb_free(dst);
        }
        if (!r)
            r = fmt_outdir_commit(&w->dir, err);
    }
    if (r) {
        st_abort(base);
        return r;
    }
    w_free(w);
    return SB_OK;
}

static const struct fmt_writer_ops st_ops = { st_put, st_commit, st_abort, st_put_piece,
                                              st_streams, NULL, NULL };

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int plan_items(struct st_writer *w, const struct fmt_tensor *plan, size_t n,
                      struct sb_err *err)
{
    size_t n_phys = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fmt_tensor *t = &plan[i];
        struct st_item *it = &w->items[i];
        const char *nm = t->name ? t->name : "";
        if (!(w->names[i] = sb_strdup(nm)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
        it->dt = t->dtype;
        it->qp = t->qp;
        if (t->ndim < 0 || t->ndim > SB_MAX_DIMS)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': %d dimensions", w->path, nm,
                              t->ndim);
        if (t->dtype == SB_DTYPE_INT8) {
            size_t len = strlen(nm);
            if (t->ndim != 2 || len <= 7 || strcmp(nm + len - 7, ".weight"))
                return sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s': int8 is written as "
                                  "compressed-tensors, which needs a 2-d 'P.weight'; write "
                                  ".gguf or .subbit instead", w->path, nm);
            if (it->qp.scale_dtype != SB_DTYPE_F16)
                it->qp.scale_dtype = SB_DTYPE_F32;
            n_phys += 3;
        } else if (fmt_st_dtype_align(t->dtype) < -1) {
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s': safetensors cannot hold "
                              "%s; write .gguf or .subbit instead", w->path, nm,
                              sb_dtype_name(t->dtype));
        } else {
            n_phys += 1;
        }
        if (t->ndim == 2) {
            it->rows = (uint64_t)(t->shape[0] < 0 ? 0 : t->shape[0]);
            it->cols = (uint64_t)(t->shape[1] < 0 ? 0 : t->shape[1]);
        }
        int k = sb_dtype_nbytes(t->dtype, t->shape, t->ndim, &it->qp, &it->nbytes);
        if (k)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': shape does not fit %s", w->path,
                              nm, sb_dtype_name(t->dtype));
        if (t->nbytes && t->nbytes != it->nbytes)
            return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': plan says %llu bytes, %s needs "
                              "%llu", w->path, nm, (unsigned long long)t->nbytes,
                              sb_dtype_name(t->dtype), (unsigned long long)it->nbytes);
        it->rank = rank_of(it);
    }
    if (!(w->phys = sb_calloc(n_phys ? n_phys : 1, sizeof *w->phys)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    /* the order: by sort class, then name */
    struct order_key *keys = sb_malloc((n ? n : 1) * sizeof *keys);
    if (!keys)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct order_key){ w->items[i].rank, w->names[i], i };
    qsort(keys, n, sizeof *keys, cmp_order);
    for (size_t k = 0; k < n; k++)
        w->base.order[k] = keys[k].i;
    sb_free(keys);
    /* physical tensors, in put order */
    for (size_t k = 0; k < n; k++) {
        size_t i = w->base.order[k];
        const struct fmt_tensor *t = &plan[i];
        struct st_item *it = &w->items[i];
        it->phys = w->n_phys;
        int r;
        if (it->dt == SB_DTYPE_INT8) {
            uint64_t groups = it->qp.group == 0 || it->cols == 0
                                  ? 1 : (it->cols + it->qp.group - 1) / it->qp.group;
            int64_t pk[2] = { (int64_t)it->rows, (int64_t)((it->cols + 3) / 4) };
            int64_t sc[2] = { (int64_t)it->rows, (int64_t)groups };
            int64_t two = 2;
            uint64_t pb = (uint64_t)pk[0] * (uint64_t)pk[1] * 4;
            size_t base = strlen(w->names[i]) - 7;
            char *pfx = sb_strndup(w->names[i], base);
            if (!pfx)
                return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
            r = add_phys(w, pfx, ".weight_packed", SB_DTYPE_I32, 2, pk, pb);
            if (!r)
                r = add_phys(w, pfx, ".weight_scale", it->qp.scale_dtype, 2, sc,
                             it->nbytes - it->rows * it->cols);
            if (!r) {
                it->shape_phys = w->n_phys;
                r = add_phys(w, pfx, ".weight_shape", SB_DTYPE_I64, 1, &two, 16);
            }
            sb_free(pfx);
            if ((it->cols + 3) / 4 * 4 > w->scratch_len)
                w->scratch_len = (size_t)((it->cols + 3) / 4 * 4);
        } else {
            r = add_phys(w, w->names[i], "", it->dt, t->ndim, t->shape, it->nbytes);
        }
        if (r)
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    }
    /* names must be unique, generated ones included */
    struct st_phys **sorted = sb_malloc((w->n_phys ? w->n_phys : 1) * sizeof *sorted);
    if (!sorted)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < w->n_phys; i++)
        sorted[i] = &w->phys[i];
    qsort(sorted, w->n_phys, sizeof *sorted, cmp_phys_name);
    for (size_t i = 1; i < w->n_phys; i++)
        if (!strcmp(sorted[i]->name, sorted[i - 1]->name)) {
            int r = sb_err_set(err, SB_EINVAL, "%s: tensor '%s' appears twice", w->path,
                               sorted[i]->name);
            sb_free(sorted);
            return r;
        }
    sb_free(sorted);
    return SB_OK;
}

static uint64_t item_bytes(const struct st_item *it)
{
    if (it->dt != SB_DTYPE_INT8)
        return it->nbytes;
    return it->rows * ((it->cols + 3) / 4 * 4) + (it->nbytes - it->rows * it->cols) + 16;
}

static int plan_shards(struct st_writer *w, const struct fmt_write_opts *o, struct sb_err *err)
{
    const size_t n = w->base.n;
    size_t cap = n ? n : 1, *list = NULL;
    if (!(w->shards = sb_calloc(cap, sizeof *w->shards)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    w->n_shards = 1;
    uint64_t cur = 0;
    for (size_t k = 0; k < n; k++) {
        struct st_item *it = &w->items[w->base.order[k]];
        uint64_t b = item_bytes(it);
        if (o->shard_size && cur > 0 && (cur + b > o->shard_size || cur + b < cur)) {
            w->shards[w->n_shards - 1].end_item = k;
            w->shards[w->n_shards].first_item = k;
            w->n_shards++;
            cur = 0;
        }
        cur += b;
        it->shard = (int)(w->n_shards - 1);
        w->total_size += b;
    }
    w->shards[w->n_shards - 1].end_item = n;
    if (!(list = sb_malloc((w->n_phys ? w->n_phys : 1) * sizeof *list)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    int r = SB_OK;
    for (size_t s = 0; s < w->n_shards && !r; s++) {
        struct st_shard *sh = &w->shards[s];
        size_t m = 0;
        for (size_t k = sh->first_item; k < sh->end_item; k++) {
            const struct st_item *it = &w->items[w->base.order[k]];
            if (it->dt == SB_DTYPE_INT8)
                list[m++] = it->shape_phys;
        }
        for (size_t k = sh->first_item; k < sh->end_item; k++) {
            const struct st_item *it = &w->items[w->base.order[k]];
            list[m++] = it->phys;
            if (it->dt == SB_DTYPE_INT8)
                list[m++] = it->phys + 1;
        }
        uint64_t off = 0;
        for (size_t j = 0; j < m; j++) {
            w->phys[list[j]].begin = off;
            w->phys[list[j]].shard = (int)s;
            off += w->phys[list[j]].nbytes;
        }
        sh->data_bytes = off;
        char name[64];
        if (w->n_shards == 1)
            snprintf(name, sizeof name, "model.safetensors");
        else
            snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, w->n_shards);
        if (!(sh->file = sb_strdup(name)))
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
        if (!r)
            r = make_header(w, sh, list, m, o, err);
    }
    sb_free(list);
    return r;
}

static int plan_side(struct st_writer *w, const struct fmt_write_opts *o, struct sb_err *err)
{
    if (!(w->side = sb_calloc(o->n_side_files ? o->n_side_files : 1, sizeof *w->side)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < o->n_side_files; i++) {
        const char *p = o->side_files[i];
        const char *bn = strrchr(p, '/');
        bn = bn ? bn + 1 : p;
        /* what this writer makes itself is never copied over */
        if (!*bn || !strcmp(bn, "config.json") || !strncmp(bn, "model.safetensors", 17) ||
            !strncmp(bn, "model-", 6))
            continue;
        size_t j;
        for (j = 0; j < w->n_side; j++) {
            const char *b2 = strrchr(w->side[j], '/');
            if (!strcmp(b2 ? b2 + 1 : w->side[j], bn))
                break;
        }
        if (j < w->n_side)
            continue;
        if (!(w->side[w->n_side] = sb_strdup(p)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", w->path);
        w->n_side++;
    }
    return SB_OK;
}

int fmt_st_writer_open(struct fmt_writer **out, const char *path, const struct fmt_tensor *plan,
                       size_t n, const struct fmt_write_opts *o, struct sb_err *err)
{
    static const struct fmt_write_opts dflt;
    *out = NULL;
    if (!o)
        o = &dflt;
    struct st_writer *w = sb_calloc(1, sizeof *w);
    if (!w)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    w->base.ops = &st_ops;
    w->base.n = n;
    w->cur = -1;
    w->out.fd = -1;
    w->out.slot = -1;
    w->dir.slot = -1;
    w->flags = o->flags;
    size_t len = strlen(path);
    w->folder = o->shard_size > 0 || len < 12 || strcmp(path + len - 12, ".safetensors") ||
                is_dir(path);
    int r = SB_OK;
    if (!(w->path = sb_strdup(path)) || !(w->items = sb_calloc(n ? n : 1, sizeof *w->items)) ||
        !(w->names = sb_calloc(n ? n : 1, sizeof *w->names)) ||
        !(w->base.order = sb_malloc((n ? n : 1) * sizeof *w->base.order))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    int any_int8 = 0;
    for (size_t i = 0; i < n; i++)
        any_int8 |= plan[i].dtype == SB_DTYPE_INT8;
    w->scratch_len = SCRATCH_MIN;
    if ((r = plan_items(w, plan, n, err)) || (r = plan_shards(w, o, err)))
        goto fail;
    if (any_int8 && !(w->scratch = sb_malloc(w->scratch_len))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (w->folder) {
        if (any_int8)
            r = make_quant_config(w, o->config_json, err);
        else if (o->config_json && !(w->config = sb_strdup(o->config_json)))
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        if (!r)
            r = plan_side(w, o, err);
        if (!r)
            r = fmt_outdir_open(&w->dir, path, o->flags, err);
        if (r)
            goto fail;
    }
    if ((r = shard_begin(w, 0, err)))
        goto fail;
    *out = &w->base;
    return SB_OK;
fail:
    st_abort(&w->base);
    return r;
}
