/* fmt_l2c.c: llama2.c .bin reader (versions 0 and 1) and tokenizer.bin
 * reader/writer (formats.md §4). Knows the fixed weight order of run.c and
 * export.py; never looks at the values. */
#include "fmt_l2c.h"
#include "fmt_map.h"
#include "fmt_out.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fmt_l2c.c assumes a little-endian host"
#endif

/* ---- the header ---------------------------------------------------------- */

struct l2c_hdr {
    int version;                      /* 0 legacy, 1 ak42 f32 */
    int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    bool shared;
    bool has_rope;                    /* v0: the RoPE tables are present */
    uint64_t data_off;                /* first weight byte */
};

/* The weight groups, and the order each version stores them in. */
enum grp { G_EMB, G_ATTN_NORM, G_Q, G_K, G_V, G_O, G_FFN_NORM, G_W1, G_W2, G_W3, G_FINAL,
           G_ROPE, G_CLS, G_END };

static const enum grp order_v0[] = { G_EMB, G_ATTN_NORM, G_Q, G_K, G_V, G_O, G_FFN_NORM,
                                     G_W1, G_W2, G_W3, G_FINAL, G_ROPE, G_CLS, G_END };
static const enum grp order_v1[] = { G_ATTN_NORM, G_FFN_NORM, G_FINAL, G_EMB, G_Q, G_K, G_V,
                                     G_O, G_W1, G_W2, G_W3, G_CLS, G_END };

/* Shape of one tensor of group g (PyTorch order); its name format; whether
 * it repeats per layer. Returns ndim (0 for the RoPE tables, no tensor). */
static int grp_shape(const struct l2c_hdr *h, enum grp g, int64_t shape[2], const char **name,
                     int *per_layer)
{
    int64_t dim = h->dim, hidden = h->hidden, V = h->vocab < 0 ? -(int64_t)h->vocab : h->vocab;
    int64_t kv = (int64_t)h->n_kv_heads * (h->dim / h->n_heads);
    *per_layer = 1;
    switch (g) {
    case G_EMB: *per_layer = 0; *name = "token_embd.weight"; shape[0] = V; shape[1] = dim; return 2;
    case G_ATTN_NORM: *name = "blk.%d.attn_norm.weight"; shape[0] = dim; return 1;
    case G_Q: *name = "blk.%d.attn_q.weight"; shape[0] = dim; shape[1] = dim; return 2;
    case G_K: *name = "blk.%d.attn_k.weight"; shape[0] = kv; shape[1] = dim; return 2;
    case G_V: *name = "blk.%d.attn_v.weight"; shape[0] = kv; shape[1] = dim; return 2;
    case G_O: *name = "blk.%d.attn_output.weight"; shape[0] = dim; shape[1] = dim; return 2;
    case G_FFN_NORM: *name = "blk.%d.ffn_norm.weight"; shape[0] = dim; return 1;
    case G_W1: *name = "blk.%d.ffn_gate.weight"; shape[0] = hidden; shape[1] = dim; return 2;
    case G_W2: *name = "blk.%d.ffn_down.weight"; shape[0] = dim; shape[1] = hidden; return 2;
    case G_W3: *name = "blk.%d.ffn_up.weight"; shape[0] = hidden; shape[1] = dim; return 2;
    case G_FINAL: *per_layer = 0; *name = "output_norm.weight"; shape[0] = dim; return 1;
    case G_CLS: *per_layer = 0; *name = "output.weight"; shape[0] = V; shape[1] = dim; return 2;
    default: *per_layer = 0; *name = NULL; return 0;
    }
}

/* Floats in group g (all layers). 1 on overflow. */
static int grp_floats(const struct l2c_hdr *h, enum grp g, uint64_t *out)
{
    int64_t shape[2] = { 1, 1 };
    const char *name;
    int per_layer;
    if (g == G_ROPE) {   /* freq_cis_real, freq_cis_imag: seq_len * head_size/2 each */
        return sb_mul_u64(2 * (uint64_t)h->seq_len, (uint64_t)(h->dim / h->n_heads / 2), out);
    }
    if (g == G_CLS && h->shared) {
        *out = 0;
        return 0;
    }
    int nd = grp_shape(h, g, shape, &name, &per_layer);
    uint64_t n;
    if (sb_shape_numel(shape, nd, &n))
        return 1;
    return sb_mul_u64(n, per_layer ? (uint64_t)h->n_layers : 1, out);
}

static int parse_header(struct l2c_hdr *h, const uint8_t *b, uint64_t got, uint64_t size,
                        const char *path, struct sb_err *err)
{
    int32_t f[7];
    uint32_t magic = 0;
    memset(h, 0, sizeof *h);
    if (got >= 4)
        memcpy(&magic, b, 4);
    if (magic == FMT_L2C_MAGIC) {
        int32_t version = 0;
        if (got < 8)
            return sb_err_set(err, SB_EFORMAT, "%s: llama2.c header cut short (%" PRIu64
                              " bytes)", path, size);
        memcpy(&version, b + 4, 4);
        if (version == 2)
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: llama2.c version 2 (int8 groups) is "
                              "not supported; export version 0 or 1", path);
        if (version != 1)
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: llama2.c version %" PRId32 " is not "
                              "supported", path, version);
        if (got < FMT_L2C_HEADER_V1)
            return sb_err_set(err, SB_EFORMAT, "%s: llama2.c v1 header cut short (%" PRIu64
                              " bytes, need %d)", path, size, FMT_L2C_HEADER_V1);
        memcpy(f, b + 8, sizeof f);
        h->version = 1;
        h->shared = b[36] != 0;
        h->data_off = FMT_L2C_HEADER_V1;
    } else {
        if (got < 28)
            return sb_err_set(err, SB_EFORMAT, "%s: too short for a llama2.c header (%" PRIu64
                              " bytes, need 28)", path, size);
        memcpy(f, b, sizeof f);
        h->version = 0;
        h->shared = f[5] > 0;
        h->data_off = 28;
    }
    h->dim = f[0];
    h->hidden = f[1];
    h->n_layers = f[2];
    h->n_heads = f[3];
    h->n_kv_heads = f[4];
    h->vocab = f[5];
    h->seq_len = f[6];
    if (h->dim <= 0 || h->hidden <= 0 || h->n_layers <= 0 || h->n_heads <= 0 ||
        h->n_kv_heads <= 0 || h->seq_len <= 0 || h->vocab == 0 || h->vocab == INT32_MIN ||
        (h->version == 1 && h->vocab < 0))
        return sb_err_set(err, SB_EFORMAT, "%s: bad llama2.c header (dim %" PRId32 ", hidden %"
                          PRId32 ", layers %" PRId32 ", heads %" PRId32 ", kv heads %" PRId32
                          ", vocab %" PRId32 ", seq_len %" PRId32 ")", path, h->dim, h->hidden,
                          h->n_layers, h->n_heads, h->n_kv_heads, h->vocab, h->seq_len);
    if (h->dim % h->n_heads || h->n_kv_heads > h->n_heads || h->n_heads % h->n_kv_heads)
        return sb_err_set(err, SB_EFORMAT, "%s: llama2.c header: %" PRId32 " heads do not "
                          "divide dim %" PRId32 " or are not a multiple of %" PRId32
                          " kv heads", path, h->n_heads, h->dim, h->n_kv_heads);

    /* the size must be exact: header, every group, nothing after */
    uint64_t total = 0, rope = 0, n;
    const enum grp *ord = h->version ? order_v1 : order_v0;
    for (int i = 0; ord[i] != G_END; i++) {
        if (grp_floats(h, ord[i], &n) || sb_add_u64(total, n, &total))
            goto overflow;
        if (ord[i] == G_ROPE)
            rope = n;
    }
    if (sb_mul_u64(total, 4, &total) || sb_add_u64(total, h->data_off, &total))
        goto overflow;
    h->has_rope = h->version == 0;
    if (size == total)
        return SB_OK;
    if (h->version == 0 && h->shared && size == total - 4 * rope) {
        h->has_rope = false;   /* left out: run.c never reads them with a shared classifier */
        return SB_OK;
    }
    return sb_err_set(err, SB_EFORMAT, "%s: llama2.c file is %" PRIu64 " bytes, but its header "
                      "(dim %" PRId32 ", hidden %" PRId32 ", %" PRId32 " layers, %" PRId32
                      " heads, %" PRId32 " kv heads, vocab %" PRId32 ", seq_len %" PRId32
                      ") needs %" PRIu64, path, size, h->dim, h->hidden, h->n_layers,
                      h->n_heads, h->n_kv_heads, h->vocab, h->seq_len, total);
overflow:
    return sb_err_set(err, SB_EFORMAT, "%s: llama2.c header sizes overflow", path);
}

/* ---- the model ----------------------------------------------------------- */

static int add_tensors(struct fmt_model *m, const struct l2c_hdr *h, const uint8_t *base,
                       const char *path, struct sb_err *err)
{
    const enum grp *ord = h->version ? order_v1 : order_v0;
    uint64_t off = h->data_off;
    for (int i = 0; ord[i] != G_END; i++) {
        int64_t shape[2] = { 1, 1 };
        const char *fmt;
        int per_layer;
        int nd = grp_shape(h, ord[i], shape, &fmt, &per_layer);
        uint64_t floats = 0, each = 0;
        grp_floats(h, ord[i], &floats);   /* checked in parse_header */
        if (ord[i] == G_ROPE) {
            off += h->has_rope ? floats * 4 : 0;
            continue;
        }
        if (floats == 0)
            continue;   /* shared classifier */
        sb_shape_numel(shape, nd, &each);
        for (int l = 0; l < (per_layer ? h->n_layers : 1); l++) {
            char name[64];
            snprintf(name, sizeof name, fmt, l);
            struct fmt_tensor *t = fmt_model_add_tensor(m, name);
            if (!t)
                return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            t->dtype = SB_DTYPE_F32;
            t->ndim = nd;
            t->shape[0] = shape[0];
            t->shape[1] = shape[1];
            t->nbytes = each * 4;
            t->file_offset = off;
            if (base) {
                t->data = base + off;
                t->map_index = 0;
            }
            off += t->nbytes;
        }
    }
    return SB_OK;
}

static void fill_arch(struct fmt_arch *a, const struct l2c_hdr *h)
{
    memset(a, 0, sizeof *a);
    a->kind = FMT_ARCH_LLAMA;
    snprintf(a->model_type, sizeof a->model_type, "llama");
    a->n_layers = h->n_layers;
    a->dim = h->dim;
    a->hidden_dim = h->hidden;
    a->n_heads = h->n_heads;
    a->n_kv_heads = h->n_kv_heads;
    a->head_dim = h->dim / h->n_heads;
    a->vocab_size = h->vocab < 0 ? -h->vocab : h->vocab;
    a->n_ctx = h->seq_len;
    a->norm_eps = 1e-5f;            /* run.c hard-codes both */
    a->rope_theta = 10000.0f;
    a->rope_layout = FMT_ROPE_INTERLEAVED;
    a->tied_embeddings = h->shared;
    a->bos_id = 1;
    a->eos_id = 2;
}

static char *beside(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path + 1) : 0, n = dl + strlen(name) + 1;
    char *s = sb_malloc(n);
    if (s) {
        memcpy(s, path, dl);
        memcpy(s + dl, name, strlen(name) + 1);
    }
    return s;
}

static int find_tokenizer(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                          uint32_t n_tokens, struct sb_err *err)
{
    if (o && o->tokenizer_path)
        return fmt_l2c_read_tokenizer(&m->vocab, o->tokenizer_path, n_tokens, err);
    char alt[32];
    snprintf(alt, sizeof alt, "tok%" PRIu32 ".bin", n_tokens);
    const char *names[2] = { "tokenizer.bin", alt };
    struct sb_err first = { 0 };   /* the first candidate's own error */
    for (int i = 0; i < 2; i++) {
        char *p = beside(path, names[i]);
        if (!p)
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        struct stat st;
        int rc = SB_EIO;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            struct sb_err e = { 0 };
            rc = fmt_l2c_read_tokenizer(&m->vocab, p, n_tokens, &e);
            if (rc == SB_ENOMEM) {
                sb_free(p);
                return sb_err_set(err, SB_ENOMEM, "%s", e.msg);
            }
            if (rc != SB_OK && !first.code)
                first = e;
        }
        sb_free(p);
        if (rc == SB_OK)
            return SB_OK;
    }
    /* none there: no vocab. One there but none fits: say why, rather than
     * let ppl report a model without a tokenizer (or convert drop it). */
    if (first.code)
        return sb_err_set(err, first.code, "%s (use --tokenizer FILE)", first.msg);
    return SB_OK;
}

int fmt_l2c_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                       struct sb_err *err)
{
    struct l2c_hdr h;
    uint8_t hdr[FMT_L2C_HEADER_V1];
    const uint8_t *b = hdr, *base = NULL;
    uint64_t size, got;
    int rc;
    m->container = FMT_CONT_L2C;
    if (o && o->headers_only) {
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return sb_err_set(err, SB_EIO, "%s: not a regular file", path);
        }
        size = (uint64_t)st.st_size;
        ssize_t k = pread(fd, hdr, sizeof hdr, 0);
        close(fd);
        if (k < 0)
            return sb_err_set(err, SB_EIO, "%s: read failed: %s", path, strerror(errno));
        got = (uint64_t)k;
    } else {
        struct fmt_map *map;
        if ((rc = fmt_map_open(&map, path, err)))
            return rc;
        if (!(m->maps = sb_malloc(sizeof *m->maps))) {
            fmt_map_close(map);
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        }
        m->maps[0] = map;
        m->n_maps = 1;
        b = base = map->data;
        size = got = map->size;
    }
    if ((rc = parse_header(&h, b, got, size, path, err)))
        return rc;
    if ((rc = add_tensors(m, &h, base, path, err)))
        return rc;
    fill_arch(&m->arch, &h);
    m->has_arch = true;
    return find_tokenizer(m, path, o, (uint32_t)m->arch.vocab_size, err);
}

/* ---- tokenizer.bin ------------------------------------------------------- */

int fmt_l2c_read_tokenizer(struct fmt_vocab *v, const char *path, uint32_t n_tokens,
                           struct sb_err *err)
{
    char *buf = NULL;
    size_t size = 0, pos = 4;
    uint32_t max_len;
    int rc;
    fmt_vocab_release(v);
    if ((rc = fmt_read_file(path, &buf, &size, err)))
        return rc;
    if (size < 4) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: too short for a tokenizer (%zu bytes)", path,
                        size);
        goto fail;
    }
    memcpy(&max_len, buf, 4);
    size_t cnt = n_tokens ? n_tokens : 1;
    if (n_tokens > (size - 4) / 8) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: %zu bytes cannot hold %" PRIu32 " tokens", path,
                        size, n_tokens);
        goto fail;
    }
    v->kind = FMT_VOCAB_SPM;
    v->tokens = sb_calloc(cnt, sizeof *v->tokens);
    v->lens = sb_calloc(cnt, sizeof *v->lens);
    v->scores = sb_calloc(cnt, sizeof *v->scores);
    if (!v->tokens || !v->lens || !v->scores) {
        rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    v->n_tokens = n_tokens;
    for (uint32_t i = 0; i < n_tokens; i++) {
        int32_t len;
        if (size - pos < 8) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: token %" PRIu32 " at byte %zu runs past end "
                            "of file (%zu)", path, i, pos, size);
            goto fail;
        }
        memcpy(&v->scores[i], buf + pos, 4);
        memcpy(&len, buf + pos + 4, 4);
        pos += 8;
        if (len < 0 || (uint32_t)len > max_len) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: token %" PRIu32 " has length %" PRId32
                            " (max_token_length %" PRIu32 ")", path, i, len, max_len);
            goto fail;
        }
        if ((size_t)len > size - pos) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: token %" PRIu32 " (%" PRId32 " bytes at byte "
                            "%zu) runs past end of file (%zu)", path, i, len, pos, size);
            goto fail;
        }
        if (!(v->tokens[i] = sb_strndup(buf + pos, (size_t)len))) {
            rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        v->lens[i] = (uint32_t)len;
        pos += (size_t)len;
    }
    if (pos != size) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: %zu bytes left after %" PRIu32 " tokens "
                        "(a tokenizer for a larger vocab?)", path, size - pos, n_tokens);
        goto fail;
    }
    v->max_token_len = max_len;
    v->unk_id = n_tokens > 0 ? 0 : -1;
    v->bos_id = n_tokens > 1 ? 1 : -1;
    v->eos_id = n_tokens > 2 ? 2 : -1;
    v->add_bos = true;
    sb_free(buf);
    return SB_OK;
fail:
    sb_free(buf);
    fmt_vocab_release(v);
    return rc;
}

/* Piece i as tokenizer.py writes it, into dst (room for lens[i] + 8 bytes). */
static uint32_t l2c_piece(const struct fmt_vocab *v, uint32_t i, char *dst)
{
    if ((int64_t)i == v->bos_id) {
        memcpy(dst, "\n<s>\n", 5);
        return 5;
    }
    if ((int64_t)i == v->eos_id) {
        memcpy(dst, "\n</s>\n", 6);
        return 6;
    }
    const char *s = v->tokens[i];
    uint32_t n = 0;
    for (uint32_t k = 0; k < v->lens[i]; k++) {
        if (k + 2 < v->lens[i] && (uint8_t)s[k] == 0xE2 && (uint8_t)s[k + 1] == 0x96 &&
            (uint8_t)s[k + 2] == 0x81) {
            dst[n++] = ' ';
            k += 2;
        } else {
            dst[n++] = s[k];
        }
    }
    return n;
}

int fmt_l2c_write_tokenizer(const struct fmt_vocab *v, const char *path, unsigned flags,
                            struct sb_err *err)
{
    struct fmt_out out;
    uint32_t max_len = 0, cap = 8;
    int rc;
    if (!v || v->kind != FMT_VOCAB_SPM || !v->tokens || !v->lens)
        return sb_err_set(err, SB_EINVAL, "%s: no SentencePiece vocab to write", path);
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->lens[i] > cap)
            cap = v->lens[i];
    if (cap > INT32_MAX - 8)
        return sb_err_set(err, SB_EINVAL, "%s: token too long", path);
    char *piece = sb_malloc((size_t)cap + 8);
    if (!piece)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        uint32_t n = l2c_piece(v, i, piece);
        if (n > max_len)
            max_len = n;
    }
    if ((rc = fmt_out_open(&out, path, flags, err))) {
        sb_free(piece);
        return rc;
    }
    rc = fmt_out_write(&out, &max_len, 4, err);
    for (uint32_t i = 0; i < v->n_tokens && rc == SB_OK; i++) {
        int32_t n = (int32_t)l2c_piece(v, i, piece);
        float s = v->scores ? v->scores[i] : 0.0f;
        if ((rc = fmt_out_write(&out, &s, 4, err)) || (rc = fmt_out_write(&out, &n, 4, err)))
            break;
        if (n > 0)
            rc = fmt_out_write(&out, piece, (size_t)n, err);
    }
    sb_free(piece);
    if (rc) {
        fmt_out_abort(&out);
        return rc;
    }
    return fmt_out_commit(&out, err);
}
