/* vfy_tok.c: the tokenizer object, its hash maps, the pair-merge engine both
 * BPE flavours share, decode, and pre-tokenized ids files. Knows nothing of
 * how a vocab is scored or split: vfy_tok_spm.c and vfy_tok_bpe.c do that. */
#include "vfy_tok_impl.h"

#include "sb_alloc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- hashing and maps ---------------------------------------------------- */

uint32_t vfy_hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u;               /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    h ^= h >> 15;
    h *= 0x2c1b3c6dU;
    h ^= h >> 12;
    return h;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t c = 16;
    while (c < n && c < (1u << 30))
        c <<= 1;
    return c;
}

int vfy_strmap_init(struct vfy_strmap *m, uint32_t n)
{
    uint32_t cap = pow2_at_least((uint64_t)n * 2);   /* load <= 1/2 */
    m->slots = sb_malloc((size_t)cap * sizeof *m->slots);
    if (!m->slots)
        return SB_ENOMEM;
    memset(m->slots, 0xff, (size_t)cap * sizeof *m->slots);
    m->mask = cap - 1;
    return SB_OK;
}

void vfy_strmap_release(struct vfy_strmap *m)
{
    sb_free(m->slots);
    memset(m, 0, sizeof *m);
}

void vfy_strmap_put(struct vfy_strmap *m, const struct vfy_tok *t, int32_t id)
{
    const char *s = t->key[id];
    uint32_t len = t->key_len[id];
    for (uint32_t i = vfy_hash_bytes(s, len) & m->mask;; i = (i + 1) & m->mask) {
        int32_t o = m->slots[i];
        if (o < 0) {
            m->slots[i] = id;
            return;
        }
        if (t->key_len[o] == len && memcmp(t->key[o], s, len) == 0)
            return;                         /* duplicate piece: the lower id wins */
    }
}

int32_t vfy_strmap_get(const struct vfy_strmap *m, const struct vfy_tok *t, const char *s,
                       size_t len)
{
    if (!m->slots)
        return -1;
    for (uint32_t i = vfy_hash_bytes(s, len) & m->mask;; i = (i + 1) & m->mask) {
        int32_t o = m->slots[i];
        if (o < 0)
            return -1;
        if (t->key_len[o] == len && memcmp(t->key[o], s, len) == 0)
            return o;
    }
}

/* ---- UTF-8 --------------------------------------------------------------- */

size_t vfy_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* ---- id buffers ---------------------------------------------------------- */

int vfy_ids_reserve(struct vfy_ids *b, size_t extra)
{
    if (extra <= b->cap - b->n)
        return SB_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->n < extra) {
        if (cap > SIZE_MAX / 2 / sizeof *b->v)
            return SB_ENOMEM;
        cap *= 2;
    }
    int32_t *v = sb_realloc(b->v, cap * sizeof *v);
    if (!v)
        return SB_ENOMEM;
    b->v = v;
    b->cap = cap;
    return SB_OK;
}

int vfy_ids_push(struct vfy_ids *b, int32_t id)
{
    if (b->n == b->cap && vfy_ids_reserve(b, 1))
        return SB_ENOMEM;
    b->v[b->n++] = id;
    return SB_OK;
}

/* ---- the merge engine ---------------------------------------------------- */

void vfy_merge_release(struct vfy_merge *m)
{
    sb_free(m->sym);
    sb_free(m->heap);
    memset(m, 0, sizeof *m);
}

static bool ent_before(const struct vfy_merge_ent *x, const struct vfy_merge_ent *y)
{
    return x->prio > y->prio || (x->prio == y->prio && x->left < y->left);
}

static int heap_push(struct vfy_merge *m, const struct vfy_merge_ent *e)
{
    if (m->heap_n == m->heap_cap) {
        size_t cap = m->heap_cap ? m->heap_cap * 2 : 64;
        struct vfy_merge_ent *h = sb_realloc(m->heap, cap * sizeof *h);
        if (!h)
            return SB_ENOMEM;
        m->heap = h;
        m->heap_cap = cap;
    }
    size_t i = m->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_before(e, &m->heap[p]))
            break;
        m->heap[i] = m->heap[p];
        i = p;
    }
    m->heap[i] = *e;
    return SB_OK;
}

static void heap_pop(struct vfy_merge *m, struct vfy_merge_ent *top)
{
    *top = m->heap[0];
    struct vfy_merge_ent last = m->heap[--m->heap_n];
    size_t n = m->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && ent_before(&m->heap[c + 1], &m->heap[c]))
            c++;
        if (!ent_before(&m->heap[c], &last))
            break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n)
        m->heap[i] = last;
}

static int try_pair(struct vfy_merge *m, const struct vfy_tok *t, vfy_pair_fn pair,
                    int32_t l, int32_t r)
{
    struct vfy_merge_ent e = { 0, l, r, m->sym[l].id, m->sym[r].id, -1 };
    if (!pair(t, e.a, e.b, &e.prio, &e.merged))
        return SB_OK;
    return heap_push(m, &e);
}

int vfy_merge_run(struct vfy_merge *m, const struct vfy_tok *t, vfy_pair_fn pair,
                  int32_t *ids, size_t n, size_t *n_out)
{
    *n_out = n;
    if (n < 2)
        return SB_OK;
    if (n > INT32_MAX)
        return SB_ENOMEM;
    if (m->sym_cap < n) {
        struct vfy_merge_sym *s = sb_realloc(m->sym, n * sizeof *s);
        if (!s)
            return SB_ENOMEM;
        m->sym = s;
        m->sym_cap = n;
    }
    m->heap_n = 0;
    for (size_t i = 0; i < n; i++) {
        m->sym[i].id = ids[i];
        m->sym[i].prev = (int32_t)i - 1;
        m->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        if (try_pair(m, t, pair, (int32_t)i, (int32_t)i + 1))
            return SB_ENOMEM;
    while (m->heap_n) {
        struct vfy_merge_ent e;
        heap_pop(m, &e);
        struct vfy_merge_sym *L = &m->sym[e.left];
        /* Stale if either side changed since the push: a merge always gives the
         * left symbol a new (longer) id and kills the right one. */
        if (L->id != e.a || L->next != e.right || m->sym[e.right].id != e.b)
            continue;
        int32_t nx = m->sym[e.right].next;
        L->id = e.merged;
        L->next = nx;
        if (nx >= 0)
            m->sym[nx].prev = e.left;
        m->sym[e.right].id = -1;
        m->sym[e.right].prev = m->sym[e.right].next = -1;
        if (L->prev >= 0 && try_pair(m, t, pair, L->prev, e.left))
            return SB_ENOMEM;
        if (nx >= 0 && try_pair(m, t, pair, e.left, nx))
            return SB_ENOMEM;
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = m->sym[i].next)
        ids[k++] = m->sym[i].id;
    *n_out = k;
    return SB_OK;
}

int vfy_merge_words(struct vfy_merge *m, const struct vfy_tok *t, vfy_pair_fn pair,
                    int32_t space, int32_t *ids, size_t n, size_t *n_out)
{
    if (!t->split_words || space < 0)
        return vfy_merge_run(m, t, pair, ids, n, n_out);
    size_t w = 0, seg = 0, kept;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && !(ids[i] == space && ids[i - 1] != space))
            continue;
        int rc = vfy_merge_run(m, t, pair, ids + seg, i - seg, &kept);
        if (rc)
            return rc;
        memmove(ids + w, ids + seg, kept * sizeof *ids);
        w += kept;
        seg = i;
    }
    *n_out = w;
    return SB_OK;
}

void vfy_tok_check_words(struct vfy_tok *t, const char *sp, size_t sp_len)
{
    t->split_words = true;
    for (uint32_t id = 0; id < t->n_vocab && t->split_words; id++) {
        const char *k = t->key[id];
        size_t n = t->key_len[id];
        if (!k || (t->flags[id] & VFY_TF_NOMERGE))
            continue;
        size_t j = 0;
        while (j + sp_len <= n && memcmp(k + j, sp, sp_len) == 0)
            j += sp_len;                            /* a leading run is fine */
        for (; j + sp_len <= n; j++)
            if (memcmp(k + j, sp, sp_len) == 0) {
                t->split_words = false;
                break;
            }
    }
}

/* ---- the object ---------------------------------------------------------- */

int vfy_tok_alloc_ids(struct vfy_tok *t, uint32_t n)
{
    t->n_vocab = n;
    t->dec = sb_calloc(n ? n : 1, sizeof *t->dec);
    t->dec_len = sb_calloc(n ? n : 1, sizeof *t->dec_len);
    t->key = sb_calloc(n ? n : 1, sizeof *t->key);
    t->key_len = sb_calloc(n ? n : 1, sizeof *t->key_len);
    t->flags = sb_calloc(n ? n : 1, 1);
    if (!t->dec || !t->dec_len || !t->key || !t->key_len || !t->flags)
        return SB_ENOMEM;
    return SB_OK;
}

void vfy_tok_free(struct vfy_tok *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->key && t->key[i] && (!t->dec || t->key[i] != t->dec[i]))
            sb_free(t->key[i]);
        if (t->dec)
            sb_free(t->dec[i]);
    }
    sb_free(t->dec);
    sb_free(t->dec_len);
    sb_free(t->key);
    sb_free(t->key_len);
    sb_free(t->flags);
    sb_free(t->scores);
    sb_free(t->added);
    vfy_strmap_release(&t->map);
    sb_free(t->pairs.keys);
    sb_free(t->pairs.rank);
    sb_free(t->pairs.merged);
    sb_free(t);
}

int vfy_tok_new(struct vfy_tok **out, const struct fmt_vocab *v, struct sb_err *err)
{
    *out = NULL;
    if (!v || v->kind == FMT_VOCAB_NONE)
        return sb_err_set(err, SB_EINVAL, "model has no tokenizer");
    struct vfy_tok *t = sb_calloc(1, sizeof *t);
    if (!t)
        return sb_err_set(err, SB_ENOMEM, "out of memory building the tokenizer");
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    int rc;
    if (v->kind == FMT_VOCAB_SPM)
        rc = vfy_tok_spm_build(t, v, err);
    else if (v->kind == FMT_VOCAB_HF_JSON)
        rc = vfy_tok_hf_build(t, v, err);
    else
        rc = sb_err_set(err, SB_EUNSUPPORTED, "unknown tokenizer kind %d", (int)v->kind);
    if (rc) {
        vfy_tok_free(t);
        return rc;
    }
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->dec_len[i] > t->max_dec)
            t->max_dec = t->dec_len[i];
    *out = t;
    return SB_OK;
}

int vfy_tok_encode(const struct vfy_tok *t, const char *text, size_t len, bool add_bos,
                   int32_t **ids, size_t *n, struct sb_err *err)
{
    *ids = NULL;
    *n = 0;
    struct vfy_ids b = { 0 };
    int rc = SB_OK;
    if (add_bos) {
        if (t->bos < 0)
            return sb_err_set(err, SB_EUNSUPPORTED, "the tokenizer has no BOS token");
        if ((rc = vfy_ids_push(&b, t->bos)))
            goto fail;
    }
    if (len) {
        rc = t->kind == VFY_TOK_SPM ? vfy_tok_spm_encode(t, text, len, &b, err)
                                    : vfy_tok_hf_encode(t, text, len, &b, err);
        if (rc)
            goto fail;
    }
    if (!b.v && (rc = vfy_ids_reserve(&b, 1)))
        goto fail;
    *ids = b.v;
    *n = b.n;
    return SB_OK;
fail:
    sb_free(b.v);
    if (rc == SB_ENOMEM)
        sb_err_set(err, rc, "out of memory encoding %zu bytes of text", len);
    return rc;
}

size_t vfy_tok_decode(const struct vfy_tok *t, int32_t prev, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab || (t->flags[id] & VFY_TF_CONTROL))
        return 0;
    const char *s = t->dec[id];
    size_t n = t->dec_len[id];
    /* SentencePiece drops the dummy-prefix space of the first piece (run.c);
     * a <0x20> byte token is not a piece and keeps its space. */
    if (t->strip_after_bos && prev >= 0 && prev == t->bos && n && s[0] == ' ' &&
        !(t->flags[id] & VFY_TF_BYTE))
        s++, n--;
    if (n > cap)
        n = cap;
    memcpy(buf, s, n);
    return n;
}

size_t vfy_tok_max_piece_len(const struct vfy_tok *t) { return t->max_dec; }
int vfy_tok_bos(const struct vfy_tok *t) { return t->bos; }
int vfy_tok_eos(const struct vfy_tok *t) { return t->eos; }
uint32_t vfy_tok_n_vocab(const struct vfy_tok *t) { return t->n_vocab; }

/* ---- ids files ----------------------------------------------------------- */

static bool is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           c == ',' || c == '[' || c == ']';
}

int vfy_tok_read_ids(const char *path, int32_t **ids, size_t *n, uint32_t n_vocab,
                     struct sb_err *err)
{
    *ids = NULL;
    *n = 0;
    char *buf;
    size_t len;
    int rc = fmt_read_file(path, &buf, &len, err);
    if (rc)
        return rc;
    struct vfy_ids b = { 0 };
    size_t line = 1, i = 0;
    while (i < len) {
        if (is_sep(buf[i])) {
            line += buf[i++] == '\n';
            continue;
        }
        size_t s = i;
        while (i < len && !is_sep(buf[i]))
            i++;
        size_t tl = i - s;
        size_t d = buf[s] == '-' ? 1 : 0;
        bool ok = tl > d && tl - d <= 18;
        for (size_t k = s + d; ok && k < i; k++)
            ok = buf[k] >= '0' && buf[k] <= '9';
        if (!ok) {
            rc = sb_err_set(err, SB_EFORMAT, "%s:%zu: '%.*s' is not a token id", path, line,
                            (int)(tl > 40 ? 40 : tl), buf + s);
            goto fail;
        }
        long long v = 0;
        for (size_t k = s + d; k < i; k++)
            v = v * 10 + (buf[k] - '0');
        if (d)
            v = -v;
        if (v < 0 || v > INT32_MAX || (n_vocab && v >= (long long)n_vocab)) {
            rc = sb_err_set(err, SB_EFORMAT,
                            "%s:%zu: token id %lld is out of range (vocab size %u)", path, line,
                            v, n_vocab);
            goto fail;
        }
        if (vfy_ids_push(&b, (int32_t)v)) {
            rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
    }
    if (!b.n) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: no token ids", path);
        goto fail;
    }
    sb_free(buf);
    *ids = b.v;
    *n = b.n;
    return SB_OK;
fail:
    sb_free(buf);
    sb_free(b.v);
    return rc;
}
