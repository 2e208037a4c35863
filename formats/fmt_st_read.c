/* fmt_st_read.c: safetensors reader: single files, HF folders (plain or
 * sharded), config.json / tokenizer side files, and the compressed-tensors
 * int8 layouts (formats.md §1, §3, §5). Knows the container, not the values:
 * the only data it reads are int8 codes/scales it unpacks and weight_shape. */
#include "fmt_l2c.h"
#include "fmt_config.h"
#include "fmt_hftok.h"
#include "fmt_st.h"
#include "fmt_map.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_INT 9007199254740992.0 /* 2^53: larger integers are not exact in a double */

/* One tensor as a header declares it. */
struct st_raw {
    char *name;
    enum sb_dtype dt;
    int ndim;
    int64_t shape[SB_MAX_DIMS];
    uint64_t begin, end;      /* relative to the byte buffer */
    size_t file;              /* index into ctx.files */
    /* compressed-tensors int8 (set by classify): kind 1 plain I8 codes, 2
     * packed codes, -1 a scale/shape consumed by a group, 0 a plain tensor */
    int kind;
    struct st_raw *scale;
    uint64_t rows, cols;
    char *pname;              /* "P" of "P.weight" (owned) */
    uint64_t group_hint;      /* config.json group_size for P, 0 if none */
};

struct st_file {
    char *path;
    uint64_t size;
    uint64_t data_off;        /* 8 + N */
    int map_index;            /* -1 when headers_only */
};

struct st_ctx {
    struct fmt_model *m;
    const struct fmt_open_opts *o;
    struct st_raw *raw;
    size_t n_raw, cap_raw;
    struct st_file *files;
    size_t n_files;
    struct st_raw **by_name;  /* sorted by name, for lookups */
};

static void ctx_release(struct st_ctx *c)
{
    for (size_t i = 0; i < c->n_raw; i++) {
        sb_free(c->raw[i].name);
        sb_free(c->raw[i].pname);
    }
    sb_free(c->raw);
    for (size_t i = 0; i < c->n_files; i++)
        sb_free(c->files[i].path);
    sb_free(c->files);
    sb_free(c->by_name);
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sb_malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return sb_strdup(".");
    if (s == path)
        return sb_strdup("/");
    return sb_strndup(path, (size_t)(s - path));
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static uint64_t rd_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Offset of the first byte that is not valid UTF-8 or is a control character
 * JSON forbids (below 0x20, other than tab, LF, CR), or n if none. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return i;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (n - i < len)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return n;
}

/* A JSON number that is a non-negative integer below 2^53. 0 ok, -1 negative,
 * -2 not an integer / not a number. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -2;
    double d = v->valuedouble;
    if (d < 0)
        return -1;
    if (d > MAX_JSON_INT || d != (double)(uint64_t)d) /* range first: (uint64_t)inf is UB */
        return -2;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_raw_name(const void *a, const void *b)
{
    const struct st_raw *x = *(struct st_raw *const *)a, *y = *(struct st_raw *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_raw_off(const void *a, const void *b)
{
    const struct st_raw *x = *(struct st_raw *const *)a, *y = *(struct st_raw *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int add_kv_string(struct fmt_model *m, const char *key, const char *val)
{
    struct fmt_kv *kv = sb_realloc(m->kv, (m->n_kv + 1) * sizeof *kv);
    if (!kv)
        return SB_ENOMEM;
    m->kv = kv;
    kv = &m->kv[m->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->type = FMT_KV_STRING;
    kv->key = sb_strdup(key);
    kv->str = sb_strdup(val);
    if (!kv->key || !kv->str) {
        fmt_kv_release(kv);
        return SB_ENOMEM;
    }
    kv->len = strlen(val);
    m->n_kv++;
    return SB_OK;
}

static void shape_str(const struct st_raw *r, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < r->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)r->shape[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Parse one header entry (a tensor) into r. */
static int parse_entry(const char *path, const cJSON *e, struct st_raw *r, struct sb_err *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': entry is not a JSON object",
                          path, name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype") ? &dtype
                             : !strcmp(f->string, "shape") ? &shape
                             : !strcmp(f->string, "data_offsets") ? &offs : NULL;
        if (!slot)
            continue; /* unknown fields are ignored, as by the reference reader */
        if (*slot)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': duplicate field '%s'", path,
                              name, f->string);
        *slot = f;
    }
    if (!dtype || !shape || !offs)
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': missing field '%s'", path, name,
                          !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    int dt = cJSON_IsString(dtype) ? sb_dtype_from_st(dtype->valuestring) : -1;
    if (dt < 0)
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': unknown dtype %s%s%s", path, name,
                          cJSON_IsString(dtype) ? "'" : "(not a string)",
                          cJSON_IsString(dtype) ? dtype->valuestring : "",
                          cJSON_IsString(dtype) ? "'" : "");
    r->dt = (enum sb_dtype)dt;
    if (!cJSON_IsArray(shape))
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': shape is not an array", path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > SB_MAX_DIMS)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d "
                          "supported)", path, name, nd, SB_MAX_DIMS);
    r->ndim = nd;
    int d = 0;
    for (const cJSON *v = shape->child; v; v = v->next, d++) {
        uint64_t u;
        int k = json_uint(v, &u);
        if (k == -1)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': negative shape entry", path,
                              name);
        if (k)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': shape entry is not a "
                              "non-negative integer", path, name);
        r->shape[d] = (int64_t)u;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        json_uint(offs->child, &r->begin) || json_uint(offs->child->next, &r->end))
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': data_offsets is not two "
                          "non-negative integers", path, name);
    return SB_OK;
}

static int cmp_json_key(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* The children of obj sorted by key (sb_free the array); *dup is set to the
 * first key seen twice, or NULL. NULL with *n = 0 for an empty object;
 * returns NULL with *n != 0 on OOM. */
static cJSON **json_sorted_keys(const cJSON *obj, size_t *n, const char **dup)
{
    size_t k = 0;
    *dup = NULL;
    for (const cJSON *e = obj->child; e; e = e->next)
        k++;
    *n = k;
    if (!k)
        return NULL;
    cJSON **a = sb_malloc(k * sizeof *a);
    if (!a)
        return NULL;
    k = 0;
    for (cJSON *e = obj->child; e; e = e->next)
        a[k++] = e;
    qsort(a, k, sizeof *a, cmp_json_key);
    for (size_t i = 1; i < k && !*dup; i++)
        if (!strcmp(a[i]->string, a[i - 1]->string))
            *dup = a[i]->string;
    return a;
}

static int parse_metadata(const char *path, const cJSON *md, struct fmt_model *m, int keep,
                          struct sb_err *err)
{
    if (cJSON_IsNull(md))
        return SB_OK;
    if (!cJSON_IsObject(md))
        return sb_err_set(err, SB_EFORMAT, "%s: __metadata__ is not a JSON object", path);
    for (const cJSON *v = md->child; v; v = v->next)
        if (!cJSON_IsString(v))
            return sb_err_set(err, SB_EFORMAT, "%s: __metadata__ value '%s' is not a string",
                              path, v->string);
    size_t n;
    const char *dup;
    cJSON **keys = json_sorted_keys(md, &n, &dup);
    if (n && !keys)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    sb_free(keys);
    if (dup)
        return sb_err_set(err, SB_EFORMAT, "%s: duplicate __metadata__ key '%s'", path, dup);
    if (!keep) /* sharded: the first shard's metadata stands for the model */
        return SB_OK;
    for (const cJSON *v = md->child; v; v = v->next)
        if (add_kv_string(m, v->string, v->valuestring))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    return SB_OK;
}

/* Check offsets (rule 4), sizes (rule 5) and the buffer length (rule 6) of
 * the n entries in list (sorted here by (begin, end)). */
static int check_layout(const char *path, struct st_raw **list, size_t n, uint64_t buf_len,
                        struct sb_err *err)
{
    qsort(list, n, sizeof *list, cmp_raw_off);
    uint64_t cursor = 0;
    char sh[160];
    for (size_t i = 0; i < n; i++) {
        const struct st_raw *r = list[i];
        if (r->begin != cursor) {
            const char *why = r->begin < cursor ? "overlaps the previous tensor"
                              : i == 0 ? "does not start at 0" : "leaves a hole";
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] %s "
                              "(expected begin %llu)", path, r->name,
                              (unsigned long long)r->begin, (unsigned long long)r->end, why,
                              (unsigned long long)cursor);
        }
        if (r->end < r->begin)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end "
                              "before they begin", path, r->name,
                              (unsigned long long)r->begin, (unsigned long long)r->end);
        uint64_t numel, bits;
        shape_str(r, sh, sizeof sh);
        if (sb_shape_numel(r->shape, r->ndim, &numel) ||
            sb_mul_u64(numel, sb_dtype_get(r->dt)->bits, &bits))
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': shape %s overflows", path,
                              r->name, sh);
        if (bits % 8)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': %llu elements of %s are not "
                              "a whole number of bytes", path, r->name,
                              (unsigned long long)numel, sb_dtype_get(r->dt)->st_name);
        if (bits / 8 != r->end - r->begin)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': %llu bytes, but shape %s of "
                              "%s needs %llu", path, r->name,
                              (unsigned long long)(r->end - r->begin), sh,
                              sb_dtype_get(r->dt)->st_name, (unsigned long long)(bits / 8));
        if (r->end > buf_len)
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': ends at byte %llu of the data, "
                              "past end of file (%llu data bytes)", path, r->name,
                              (unsigned long long)r->end, (unsigned long long)buf_len);
        cursor = r->end;
    }
    if (cursor != buf_len)
        return sb_err_set(err, SB_EFORMAT, "%s: %llu trailing bytes after the last tensor", path,
                          (unsigned long long)(buf_len - cursor));
    return SB_OK;
}

static struct st_raw *raw_push(struct st_ctx *c)
{
    if (c->n_raw == c->cap_raw) {
        size_t cap = c->cap_raw ? c->cap_raw * 2 : 64;
        struct st_raw *r = sb_realloc(c->raw, cap * sizeof *r);
        if (!r)
            return NULL;
        c->raw = r;
        c->cap_raw = cap;
    }
    struct st_raw *r = &c->raw[c->n_raw];
    memset(r, 0, sizeof *r);
    return r;
}

/* Read and validate one safetensors file; append its tensors to c->raw
 * (in data order) and map it unless headers_only. shown: the name used in
 * messages (the path). */
static int read_one(struct st_ctx *c, const char *path, struct sb_err *err)
{
    int r = SB_OK;
    char *hdr = NULL;
    cJSON *root = NULL;
    struct st_raw **list = NULL;
    size_t first = c->n_raw, n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = sb_err_set(err, SB_EIO, "%s: not a regular file", path);
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t len8[8];
    if (size < 8) {
        r = sb_err_set(err, SB_EFORMAT, "%s: file too small for a safetensors header (%llu "
                       "bytes)", path, (unsigned long long)size);
        goto done;
    }
    if (pread_all(fd, len8, 8, 0)) {
        r = sb_err_set(err, SB_EIO, "%s: read failed", path);
        goto done;
    }
    uint64_t hn = rd_u64le(len8);
    if (hn > FMT_ST_MAX_HEADER) {
        r = sb_err_set(err, SB_EFORMAT, "%s: header length %llu exceeds the limit of "
                       "100000000 bytes", path, (unsigned long long)hn);
        goto done;
    }
    if (hn > size - 8) {
        r = sb_err_set(err, SB_EFORMAT, "%s: header length %llu runs past end of file (%llu "
                       "bytes)", path, (unsigned long long)hn, (unsigned long long)size);
        goto done;
    }
    if (!(hdr = sb_malloc((size_t)hn + 1))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (pread_all(fd, hdr, (size_t)hn, 8)) {
        r = sb_err_set(err, SB_EIO, "%s: read failed", path);
        goto done;
    }
    hdr[hn] = '\0';
    size_t bad = utf8_check((const uint8_t *)hdr, (size_t)hn);
    if (bad != hn) {
        r = sb_err_set(err, SB_EFORMAT, "%s: header is not valid UTF-8 JSON text (byte %zu)",
                       path, bad);
        goto done;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hn, &end, 0);
    if (!root) {
        r = sb_err_set(err, SB_EFORMAT, "%s: header is not valid JSON", path);
        goto done;
    }
    for (const char *p = end; p && p < hdr + hn; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            r = sb_err_set(err, SB_EFORMAT, "%s: header is not valid JSON (text after the "
                           "object at byte %zu)", path, (size_t)(p - hdr));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        r = sb_err_set(err, SB_EFORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    const cJSON *md = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (md) {
                r = sb_err_set(err, SB_EFORMAT, "%s: duplicate __metadata__", path);
                goto done;
            }
            md = e;
            continue;
        }
        struct st_raw *t = raw_push(c);
        if (!t) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        if ((r = parse_entry(path, e, t, err)) != SB_OK)
            goto done;
        if (!(t->name = sb_strdup(e->string))) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        t->file = c->n_files;
        c->n_raw++;
    }
    if (md && (r = parse_metadata(path, md, c->m, c->n_files == 0, err)) != SB_OK)
        goto done;
    n = c->n_raw - first;
    if (n && !(list = sb_malloc(n * sizeof *list))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        list[i] = &c->raw[first + i];
    if (n) {
        qsort(list, n, sizeof *list, cmp_raw_name);
        for (size_t i = 1; i < n; i++)
            if (!strcmp(list[i]->name, list[i - 1]->name)) {
                r = sb_err_set(err, SB_EFORMAT, "%s: duplicate tensor name '%s'", path,
                               list[i]->name);
                goto done;
            }
    }
    if (n && (r = check_layout(path, list, n, size - 8 - hn, err)) != SB_OK)
        goto done;
    if (!n && size - 8 - hn != 0) {
        r = sb_err_set(err, SB_EFORMAT, "%s: %llu trailing bytes after the header", path,
                       (unsigned long long)(size - 8 - hn));
        goto done;
    }
    /* keep the tensors in data order (what "file order" means here) */
    if (n) {
        struct st_raw *tmp = sb_malloc(n * sizeof *tmp);
        if (!tmp) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            tmp[i] = *list[i];
        memcpy(&c->raw[first], tmp, n * sizeof *tmp);
        sb_free(tmp);
    }
    struct st_file *f = sb_realloc(c->files, (c->n_files + 1) * sizeof *f);
    if (!f) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    c->files = f;
    f = &c->files[c->n_files];
    memset(f, 0, sizeof *f);
    f->size = size;
    f->data_off = 8 + hn;
    f->map_index = -1;
    if (!(f->path = sb_strdup(path))) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    c->n_files++;
    if (!c->o->headers_only) {
        struct fmt_map **maps = sb_realloc(c->m->maps, (c->m->n_maps + 1) * sizeof *maps);
        if (!maps) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        c->m->maps = maps;
        struct fmt_map *map;
        if ((r = fmt_map_open(&map, path, err)) != SB_OK)
            goto done;
        if (map->size != size) {
            fmt_map_close(map);
            r = sb_err_set(err, SB_EIO, "%s: file changed while reading", path);
            goto done;
        }
        f->map_index = (int)c->m->n_maps;
        maps[c->m->n_maps++] = map;
    }
done:
    if (r != SB_OK) { /* drop this file's partial entries; ctx_release frees the rest */
        for (size_t i = first; i < c->n_raw; i++)
            sb_free(c->raw[i].name);
        c->n_raw = first;
    }
    sb_free(list);
    cJSON_Delete(root);
    sb_free(hdr);
    close(fd);
    return r;
}

/* ---- compressed-tensors int8 ------------------------------------------- */

static struct st_raw *find_raw(struct st_ctx *c, const char *name)
{
    struct st_raw key = { .name = (char *)name }, *kp = &key;
    struct st_raw **hit = bsearch(&kp, c->by_name, c->n_raw, sizeof *c->by_name, cmp_raw_name);
    return hit ? *hit : NULL;
}

static char *str_cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = sb_malloc(n);
    if (p)
        snprintf(p, n, "%s%s", a, b);
    return p;
}

/* Read a small tensor's bytes (from the mapping, or by pread when headers_only). */
static int raw_bytes(struct st_ctx *c, const struct st_raw *r, void *buf, struct sb_err *err)
{
    const struct st_file *f = &c->files[r->file];
    uint64_t off = f->data_off + r->begin, n = r->end - r->begin;
    if (f->map_index >= 0) {
        memcpy(buf, c->m->maps[f->map_index]->data + off, (size_t)n);
        return SB_OK;
    }
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", f->path, strerror(errno));
    int k = pread_all(fd, buf, (size_t)n, off);
    close(fd);
    return k ? sb_err_set(err, SB_EIO, "%s: read failed", f->path) : SB_OK;
}

static const uint8_t *raw_data(struct st_ctx *c, const struct st_raw *r)
{
    const struct st_file *f = &c->files[r->file];
    if (f->map_index < 0)
        return NULL;
    return c->m->maps[f->map_index]->data + f->data_off + r->begin;
}

/* The group size that gives G scales per row of cols elements (0 = one per
 * row). Several sizes can (9 columns in 3 groups: 3 or 4): config.json's
 * group_size (hint, 0 if none) decides, else the exact divisor. */
static int group_from_scales(uint64_t cols, uint64_t G, uint64_t hint, uint32_t *group)
{
    if (G == 1 || cols == 0) {
        *group = 0;
        return G == 1 || (cols == 0 && G <= 1) ? 0 : -1;
    }
    if (G == 0 || G > cols)
        return -1;
    uint64_t g = hint && (cols + hint - 1) / hint == G ? hint
                 : cols % G == 0 ? cols / G : (cols + G - 1) / G;
    if ((cols + g - 1) / g != G || g > UINT32_MAX)
        return -1;
    *group = (uint32_t)g;
    return 0;
}

/* config.json's group_size for module P (quantization_config.config_groups:
 * a group naming P in its targets, else one targeting "Linear"); 0 if none. */
static uint64_t config_group_size(const struct fmt_config *cfg, const char *module)
{
    uint64_t linear = 0;
    for (size_t i = 0; cfg && i < cfg->n_qgroups; i++) {
        const struct fmt_cfg_qgroup *g = &cfg->qgroups[i];
        const struct fmt_cfg_val *gs = &g->group_size;
        uint64_t v = gs->kind == FMT_CFG_NUMBER && gs->num >= 1 && gs->num < 4294967296.0
                         ? (uint64_t)gs->num : 0;
        for (size_t k = 0; k < g->n_targets; k++) {
            if (!strcmp(g->targets[k], module))
                return v;
            if (!strcmp(g->targets[k], "Linear"))
                linear = v;
        }
    }
    return linear;
}

/* Fill t as SB_DTYPE_INT8 from codes (packed: 4 per int32 word, offset binary;
 * else plain I8) and scales. */
static int make_int8(struct st_ctx *c, struct fmt_tensor *t, const struct st_raw *codes,
                     int packed, const struct st_raw *scale, uint64_t rows, uint64_t cols,
                     const char *path, struct sb_err *err)
{
    uint64_t G = (uint64_t)scale->shape[1];
    if (scale->ndim != 2 || (uint64_t)scale->shape[0] != rows ||
        group_from_scales(cols, G, codes->group_hint, &t->qp.group))
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': shape does not fit %llu x %llu "
                          "int8 weights", path, scale->name, (unsigned long long)rows,
                          (unsigned long long)cols);
    if (scale->dt != SB_DTYPE_F32 && scale->dt != SB_DTYPE_F16 && scale->dt != SB_DTYPE_BF16)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s': scales of dtype %s are not "
                          "supported (F32, F16, BF16)", path, scale->name,
                          sb_dtype_get(scale->dt)->st_name);
    t->dtype = SB_DTYPE_INT8;
    t->ndim = 2;
    t->shape[0] = (int64_t)rows;
    t->shape[1] = (int64_t)cols;
    t->qp.scale_dtype = scale->dt == SB_DTYPE_F16 ? SB_DTYPE_F16 : SB_DTYPE_F32;
    t->file_offset = c->files[codes->file].data_off + codes->begin;
    t->map_index = -1;
    if (sb_dtype_nbytes(SB_DTYPE_INT8, t->shape, 2, &t->qp, &t->nbytes))
        return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': size overflows", path, t->name);
    const uint8_t *cd = raw_data(c, codes), *sd = raw_data(c, scale);
    if (!cd || !sd)
        return SB_OK; /* headers only */
    uint8_t *blob = sb_malloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (!blob)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    int8_t *q = (int8_t *)blob;
    uint64_t wcols = packed ? (cols + 3) / 4 * 4 : cols;
    for (uint64_t i = 0; i < rows; i++) {
        if (packed)
            fmt_st_unpack_int8_row(cd + i * wcols, (size_t)cols, q + i * cols);
        else
            memcpy(q + i * cols, cd + i * cols, (size_t)cols);
    }
    uint8_t *s = blob + rows * cols;
    uint64_t ns = rows * G;
    if (scale->dt == SB_DTYPE_BF16) {
        for (uint64_t k = 0; k < ns; k++) { /* bf16 -> f32 is exact: the high half */
            uint8_t lo = sd[2 * k], hi = sd[2 * k + 1];
            s[4 * k] = 0;
            s[4 * k + 1] = 0;
            s[4 * k + 2] = lo;
            s[4 * k + 3] = hi;
        }
    } else {
        memcpy(s, sd, (size_t)(scale->end - scale->begin));
    }
    t->owned = blob;
    t->data = blob;
    return SB_OK;
}

/* Does config.json rule out 8-bit codes (e.g. a W4A16 pack-quantized model)? */
static int config_not_int8(const struct fmt_config *cfg)
{
    for (size_t i = 0; cfg && i < cfg->n_qgroups; i++)
        if (cfg->qgroups[i].num_bits.kind == FMT_CFG_NUMBER && cfg->qgroups[i].num_bits.num != 8)
            return 1;
    return 0;
}

static int has_suffix_base(const char *name, const char *suffix, size_t *base)
{
    size_t n = strlen(name), k = strlen(suffix);
    if (n <= k || strcmp(name + n - k, suffix))
        return 0;
    *base = n - k;
    return 1;
}

/* Is r the codes of a compressed-tensors int8 weight? Fills r->kind, scale,
 * shp, rows, cols and marks the scale / shape as consumed. */
static int classify(struct st_ctx *c, struct st_raw *r, const struct fmt_config *cfg,
                    const char *path,
                    struct sb_err *err)
{
    size_t base;
    int packed;
    if (r->dt == SB_DTYPE_I32 && r->ndim == 2 && has_suffix_base(r->name, ".weight_packed", &base))
        packed = 1;
    else if (r->dt == SB_DTYPE_I8 && r->ndim == 2 && has_suffix_base(r->name, ".weight", &base))
        packed = 0;
    else
        return SB_OK;
    char *pfx = sb_strndup(r->name, base);
    char *sn = pfx ? str_cat(pfx, ".weight_scale") : NULL;
    char *hn = pfx ? str_cat(pfx, ".weight_shape") : NULL;
    char *zn = pfx ? str_cat(pfx, ".weight_zero_point") : NULL;
    char *gn = pfx ? str_cat(pfx, ".weight_g_idx") : NULL;
    int res = SB_OK;
    if (!sn || !hn || !zn || !gn) {
        res = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    struct st_raw *scale = find_raw(c, sn), *shp = packed ? find_raw(c, hn) : NULL;
    /* asymmetric or act-order weights keep their raw tensors */
    if (!scale || scale->ndim != 2 || (packed && !shp) || find_raw(c, zn) || find_raw(c, gn))
        goto done;
    uint64_t rows = (uint64_t)r->shape[0], cols = (uint64_t)r->shape[1];
    if (packed) {
        if (!(shp->ndim == 1 && shp->shape[0] == 2 &&
              (shp->dt == SB_DTYPE_I64 || shp->dt == SB_DTYPE_I32))) {
            res = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': expected 2 integers (I64 or "
                             "I32)", c->files[shp->file].path, shp->name);
            goto done;
        }
        uint8_t b[16];
        int64_t dims[2];
        if ((res = raw_bytes(c, shp, b, err)) != SB_OK)
            goto done;
        for (int d = 0; d < 2; d++) {
            if (shp->dt == SB_DTYPE_I64) {
                dims[d] = (int64_t)rd_u64le(b + 8 * d);
            } else {
                uint32_t u = (uint32_t)b[4 * d] | (uint32_t)b[4 * d + 1] << 8 |
                             (uint32_t)b[4 * d + 2] << 16 | (uint32_t)b[4 * d + 3] << 24;
                dims[d] = (int32_t)u;
            }
        }
        if (dims[0] < 0 || dims[1] < 0 || (uint64_t)dims[0] != rows) {
            res = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': shape [%lld, %lld] does not "
                             "match '%s'", c->files[shp->file].path, shp->name,
                             (long long)dims[0], (long long)dims[1], r->name);
            goto done;
        }
        cols = (uint64_t)dims[1];
        if ((cols + 3) / 4 != (uint64_t)r->shape[1])
            goto done; /* another bit width: leave the raw tensors */
    }
    r->kind = packed ? 2 : 1;
    r->scale = scale;
    r->rows = rows;
    r->cols = cols;
    r->group_hint = config_group_size(cfg, pfx);
    r->pname = pfx;
    pfx = NULL;
    scale->kind = -1;
    if (shp)
        shp->kind = -1;
done:
    sb_free(pfx), sb_free(sn), sb_free(hn), sb_free(zn), sb_free(gn);
    return res;
}

/* Turn c->raw into m->tensors, folding int8 groups into one INT8 tensor. */
static int build_tensors(struct st_ctx *c, const char *path, struct sb_err *err)
{
    struct fmt_model *m = c->m;
    if (c->n_raw) {
        if (!(c->by_name = sb_malloc(c->n_raw * sizeof *c->by_name)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        for (size_t i = 0; i < c->n_raw; i++)
            c->by_name[i] = &c->raw[i];
        qsort(c->by_name, c->n_raw, sizeof *c->by_name, cmp_raw_name);
    }
    if (!config_not_int8(m->config)) {
        for (size_t i = 0; i < c->n_raw; i++) {
            int r = classify(c, &c->raw[i], m->config, path, err);
            if (r)
                return r;
        }
    }
    for (size_t i = 0; i < c->n_raw; i++) {
        struct st_raw *r = &c->raw[i];
        if (r->kind < 0)
            continue;
        struct fmt_tensor *t;
        if (r->kind > 0) {
            char *wn = str_cat(r->pname, ".weight");
            t = wn ? fmt_model_add_tensor(m, wn) : NULL;
            sb_free(wn);
            if (!t)
                return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            int k = make_int8(c, t, r, r->kind == 2, r->scale, r->rows, r->cols,
                              c->files[r->file].path, err);
            if (k)
                return k;
            continue;
        }
        if (!(t = fmt_model_add_tensor(m, r->name)))
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        const struct st_file *f = &c->files[r->file];
        t->dtype = r->dt;
        t->ndim = r->ndim;
        memcpy(t->shape, r->shape, sizeof t->shape);
        t->nbytes = r->end - r->begin;
        t->file_offset = f->data_off + r->begin;
        t->map_index = f->map_index;
        t->data = raw_data(c, r);
    }
    return SB_OK;
}

/* ---- side files, config, tokenizer -------------------------------------- */

static const char *const side_names[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "tokenizer.model",
};

static int load_config(struct fmt_model *m, const char *cfg, struct sb_err *err)
{
    char *text;
    size_t len;
    int r = fmt_read_file(cfg, &text, &len, err);
    if (r)
        return r;
    if ((r = fmt_config_parse(&m->config, text, len, cfg, err)) != SB_OK) {
        sb_free(text);
        return r;
    }
    m->config_json = text;
    struct sb_err e2 = { 0 };
    /* a config we cannot read an architecture from (e.g. an encoder-decoder)
     * still travels with the weights; has_arch says whether it was understood */
    m->has_arch = fmt_arch_from_config(&m->arch, m->config, cfg, &e2) == SB_OK;
    if (!m->has_arch) {
        snprintf(m->arch_error, sizeof m->arch_error, "%s", e2.msg);
        memset(&m->arch, 0, sizeof m->arch);
        m->arch.bos_id = m->arch.eos_id = -1;
    }
    return SB_OK;
}

static int load_side(struct fmt_model *m, const char *dir, bool parse, struct sb_err *err)
{
    int cfg_add_bos = -1;     /* tokenizer_config.json add_bos_token, if it says */
    for (size_t i = 0; i < sizeof side_names / sizeof side_names[0]; i++) {
        char *p = path_join(dir, side_names[i]);
        if (!p)
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", dir);
        if (!is_file(p)) {
            sb_free(p);
            continue;
        }
        char **sf = sb_realloc(m->side_files, (m->n_side_files + 1) * sizeof *sf);
        if (!sf) {
            sb_free(p);
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", dir);
        }
        m->side_files = sf;
        sf[m->n_side_files++] = p;
        if (i == 0) {
            int r = fmt_read_file(p, &m->vocab.hf_json, &m->vocab.hf_json_len, err);
            if (r)
                return r;
            m->vocab.kind = FMT_VOCAB_HF_JSON;
            /* parsed once, here; a file that does not parse still travels, and
             * whoever needs the tokenizer reports why (fmt_vocab_hftok) */
            struct sb_err pe = { 0 };
            if (parse && fmt_hftok_parse(&m->vocab.hf, m->vocab.hf_json, m->vocab.hf_json_len,
                                         &pe) == SB_ENOMEM)
                return sb_err_set(err, SB_ENOMEM, "%s: out of memory", p);
        } else if (i == 1) {
            char *text;
            size_t len;
            int r = fmt_read_file(p, &text, &len, err);
            if (r)
                return r;
            cJSON *root = cJSON_ParseWithLength(text, len);
            sb_free(m->vocab.hf_config_json);
            m->vocab.hf_config_json = text;   /* HF -> GGUF reads the special tokens there */
            m->vocab.hf_config_json_len = len;
            const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "add_bos_token");
            if (cJSON_IsBool(ab)) {
                cfg_add_bos = cJSON_IsTrue(ab) ? 1 : 0;
                m->vocab.add_bos = cfg_add_bos;
            }
            cJSON_Delete(root);
        }
    }
    if (m->has_arch && m->vocab.kind == FMT_VOCAB_HF_JSON) {
        m->vocab.bos_id = m->arch.bos_id;
        m->vocab.eos_id = m->arch.eos_id;
    }
    /* An SPM vocab converted from GGUF or llama2.c travels as tokenizer.bin, next
     * to the tokenizer.json made from it. With both, tokenizer.bin wins: it has
     * the exact SentencePiece scores and token types (tokenizer.json only has merge
     * ranks), so HF -> GGUF gives back the original tokenizer.ggml.* and both
     * tokenize alike (tests/unit/fixtures/test_hftok_fixtures.c). A tokenizer.bin
     * that does not fit the config leaves a tokenizer.json in charge. */
    char *tb = path_join(dir, "tokenizer.bin");
    if (!tb)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", dir);
    if ((m->vocab.kind == FMT_VOCAB_NONE || m->vocab.kind == FMT_VOCAB_HF_JSON) &&
        m->has_arch && is_file(tb)) {
        struct fmt_vocab bin = { 0 };
        struct sb_err e = { 0 };
        int r = fmt_l2c_read_tokenizer(&bin, tb, (uint32_t)m->arch.vocab_size, &e);
        char **sf = r ? NULL : sb_realloc(m->side_files, (m->n_side_files + 1) * sizeof *sf);
        if (!r && !sf)
            r = sb_err_set(&e, SB_ENOMEM, "%s: out of memory", dir);
        if (r) {
            fmt_vocab_release(&bin);
            sb_free(tb);
            if (m->vocab.kind == FMT_VOCAB_HF_JSON && r != SB_ENOMEM)
                return SB_OK;
            return sb_err_set(err, r, "%s", e.msg);
        }
        m->side_files = sf;
        sf[m->n_side_files++] = tb;
        fmt_vocab_release(&m->vocab);
        m->vocab = bin;
        /* tokenizer.bin has no ids for BOS / EOS (the reader assumes 1, 2) */
        if (m->arch.bos_id >= 0 && (uint32_t)m->arch.bos_id < m->vocab.n_tokens)
            m->vocab.bos_id = m->arch.bos_id;
        if (m->arch.eos_id >= 0 && (uint32_t)m->arch.eos_id < m->vocab.n_tokens)
            m->vocab.eos_id = m->arch.eos_id;
        if (cfg_add_bos >= 0)
            m->vocab.add_bos = cfg_add_bos;
        return SB_OK;
    }
    sb_free(tb);
    return SB_OK;
}

/* ---- sharded folders ----------------------------------------------------- */

static const cJSON *wm_find(cJSON **keys, size_t n, const char *name)
{
    cJSON key = { 0 }, *kp = &key;
    key.string = (char *)name;
    cJSON **hit = n ? bsearch(&kp, keys, n, sizeof *keys, cmp_json_key) : NULL;
    return hit ? *hit : NULL;
}

static int read_sharded(struct st_ctx *c, const char *dir, const char *index,
                        struct sb_err *err)
{
    char *text = NULL;
    size_t len;
    int r = fmt_read_file(index, &text, &len, err);
    if (r)
        return r;
    cJSON *root = cJSON_ParseWithLength(text, len);
    sb_free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    char **shards = NULL;
    size_t n_shards = 0, n_map = 0;
    cJSON **keys = NULL;
    struct st_raw **names = NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        r = sb_err_set(err, SB_EFORMAT, "%s: no \"weight_map\" object", index);
        goto done;
    }
    const char *dup;
    keys = json_sorted_keys(wm, &n_map, &dup);
    if (n_map && !keys) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", index);
        goto done;
    }
    if (dup) {
        r = sb_err_set(err, SB_EFORMAT, "%s: weight_map lists tensor '%s' twice", index, dup);
        goto done;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            r = sb_err_set(err, SB_EFORMAT, "%s: weight_map entry '%s' is not a string", index,
                           e->string);
            goto done;
        }
        const char *s = e->valuestring;
        if (!*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..")) {
            r = sb_err_set(err, SB_EFORMAT, "%s: weight_map names shard '%s' outside the "
                           "folder", index, s);
            goto done;
        }
        size_t k;
        for (k = n_shards; k > 0; k--) /* shards usually repeat the latest one */
            if (!strcmp(shards[k - 1], s))
                break;
        if (k == 0) {
            char **ns = sb_realloc(shards, (n_shards + 1) * sizeof *ns);
            if (!ns) {
                r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", index);
                goto done;
            }
            shards = ns;
            shards[n_shards++] = (char *)s;
        }
    }
    for (size_t k = 0; k < n_shards; k++) {
        char *p = path_join(dir, shards[k]);
        if (!p) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", index);
            goto done;
        }
        if (!is_file(p)) {
            r = sb_err_set(err, SB_EIO, "%s: shard '%s' named by the index is missing", index,
                           shards[k]);
            sb_free(p);
            goto done;
        }
        size_t first = c->n_raw;
        r = read_one(c, p, err);
        sb_free(p);
        if (r)
            goto done;
        /* every tensor of the shard must be assigned to it by the index */
        for (size_t i = first; i < c->n_raw; i++) {
            const cJSON *v = wm_find(keys, n_map, c->raw[i].name);
            if (!v || strcmp(v->valuestring, shards[k])) {
                r = sb_err_set(err, SB_EFORMAT, "%s: shard '%s' holds tensor '%s', which the "
                               "index %s", index, shards[k], c->raw[i].name,
                               v ? "assigns to another shard" : "does not list");
                goto done;
            }
        }
    }
    /* every tensor the index lists must be in its shard; with the check
     * above, equal counts mean equal sets */
    if (c->n_raw != n_map) {
        if (!(names = sb_malloc(c->n_raw ? c->n_raw * sizeof *names : 1))) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", index);
            goto done;
        }
        for (size_t i = 0; i < c->n_raw; i++)
            names[i] = &c->raw[i];
        if (c->n_raw)
            qsort(names, c->n_raw, sizeof *names, cmp_raw_name);
        for (const cJSON *e = wm->child; e; e = e->next) {
            struct st_raw key = { .name = e->string }, *kp = &key;
            if (!c->n_raw || !bsearch(&kp, names, c->n_raw, sizeof *names, cmp_raw_name)) {
                r = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' is not in shard '%s'", index,
                               e->string, e->valuestring);
                goto done;
            }
        }
    }
done:
    sb_free(names);
    sb_free(keys);
    sb_free(shards);
    cJSON_Delete(root);
    return r;
}

/* ---- entry point ---------------------------------------------------------- */

/* A folder with no safetensors: the one .gguf or .subbit in it, or NULL. */
static int find_single(const char *dir, const char *ext, char **out, struct sb_err *err)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return sb_err_set(err, SB_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ext))
            continue;
        char *p = path_join(dir, e->d_name);
        if (!p) {
            closedir(d);
            sb_free(*out);
            *out = NULL;
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", dir);
        }
        if (!is_file(p)) {
            sb_free(p);
            continue;
        }
        if (++count > 1) {
            closedir(d);
            sb_free(p);
            sb_free(*out);
            *out = NULL;
            return sb_err_set(err, SB_EFORMAT, "%s: more than one %s file; name the one to use",
                              dir, ext);
        }
        *out = p;
    }
    closedir(d);
    return SB_OK;
}

int fmt_st_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                      struct sb_err *err)
{
    static const struct fmt_open_opts dflt;
    if (!o)
        o = &dflt;
    struct st_ctx c = { .m = m, .o = o };
    char *dir = NULL, *weights = NULL, *index = NULL, *cfg = NULL;
    int r = SB_OK;
    struct stat st;
    if (stat(path, &st) != 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
    m->container = FMT_CONT_SAFETENSORS;
    if (S_ISDIR(st.st_mode)) {
        if (!(dir = sb_strdup(path)) || !(index = path_join(path, "model.safetensors.index.json")) ||
            !(weights = path_join(path, "model.safetensors"))) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        if (!is_file(index)) {
            sb_free(index);
            index = NULL;
        }
        if (!index && !is_file(weights)) {
            sb_free(weights);
            weights = NULL;
            static const char *const exts[] = { ".safetensors", ".gguf", ".subbit" };
            for (int k = 0; k < 3 && !weights; k++)
                if ((r = find_single(path, exts[k], &weights, err)) != SB_OK)
                    goto done;
            if (!weights) {
                r = sb_err_set(err, SB_EFORMAT, "%s: no model.safetensors, "
                               "model.safetensors.index.json, .gguf or .subbit in the folder",
                               path);
                goto done;
            }
            if (ends_with(weights, ".gguf")) {
                r = fmt_gguf_open_model(m, weights, o, err);
                goto done;
            }
            if (ends_with(weights, ".subbit")) {
                r = fmt_sbc_open_model(m, weights, o, err);
                goto done;
            }
        }
        cfg = o->config_path ? sb_strdup(o->config_path) : path_join(path, "config.json");
    } else {
        if (!(dir = dir_of(path)) || !(weights = sb_strdup(path))) {
            r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        if (o->config_path) {
            cfg = sb_strdup(o->config_path);
        } else {
            cfg = path_join(dir, "config.json");
            if (cfg && !is_file(cfg) && ends_with(path, ".safetensors")) {
                /* fixtures-style "<stem>_config.json" beside "<stem>.safetensors" */
                sb_free(cfg);
                size_t n = strlen(path) - strlen(".safetensors");
                char *stem = sb_strndup(path, n);
                cfg = stem ? str_cat(stem, "_config.json") : NULL;
                sb_free(stem);
            }
        }
    }
    if (!cfg) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (o->config_path || is_file(cfg))
        if ((r = load_config(m, cfg, err)) != SB_OK)
            goto done;
    if (index)
        r = read_sharded(&c, dir, index, err);
    else
        r = read_one(&c, weights, err);
    if (r == SB_OK)
        r = build_tensors(&c, path, err);
    if (r == SB_OK)
        r = load_side(m, dir, !o->headers_only, err);
done:
    ctx_release(&c);
    sb_free(dir);
    sb_free(weights);
    sb_free(index);
    sb_free(cfg);
    return r;
}
