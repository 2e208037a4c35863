/* vfy_tok_spm.c: SentencePiece-BPE as llama2.c run.c encodes it: a dummy-prefix
 * space, one piece per UTF-8 codepoint, byte fallback to <0xXX>, then merges of
 * the adjacent pair whose concatenation is a piece with the best score (leftmost
 * on ties) until none is left. Pieces may spell the space '▁' (GGUF) or ' '
 * (tokenizer.bin); both are read as ' '.
 *
 * Differences from run.c, all outside what real vocabs and valid UTF-8 hit:
 * invalid UTF-8 is split byte by byte (run.c glues a stray continuation byte to
 * the codepoint before it), and control / unknown / unused / byte tokens are never
 * a codepoint match or a merge result (run.c would match their text, e.g. "<s>"). */
#include "vfy_tok_impl.h"

#include "sb_alloc.h"

#include <string.h>

/* GGUF token types (formats.md §2.6) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "<0xHH>" -> HH, else -1 */
static int byte_piece(const char *s, size_t n)
{
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static int find_piece(const struct fmt_vocab *v, const char *a, const char *b)
{
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        const char *s = v->tokens[i];
        if (s && (strcmp(s, a) == 0 || strcmp(s, b) == 0))
            return (int)i;
    }
    return -1;
}

static int pick_id(int given, uint32_t n, int found)
{
    return given >= 0 && (uint32_t)given < n ? given : found;
}

int vfy_tok_spm_build(struct vfy_tok *t, const struct fmt_vocab *v, struct sb_err *err)
{
    uint32_t n = v->n_tokens;
    if (!n || !v->tokens)
        return sb_err_set(err, SB_EFORMAT, "tokenizer: the vocab has no tokens");
    t->kind = VFY_TOK_SPM;
    t->strip_after_bos = true;
    if (vfy_tok_alloc_ids(t, n))
        goto oom;
    t->scores = sb_calloc(n, sizeof *t->scores);
    if (!t->scores)
        goto oom;
    if (v->scores)
        memcpy(t->scores, v->scores, (size_t)n * sizeof *t->scores);
    t->bos = pick_id(v->bos_id, n, find_piece(v, "<s>", "\n<s>\n"));
    t->eos = pick_id(v->eos_id, n, find_piece(v, "</s>", "\n</s>\n"));
    t->unk = pick_id(v->unk_id, n, find_piece(v, "<unk>", "<unk>"));

    for (uint32_t i = 0; i < n; i++) {
        const char *raw = v->tokens[i] ? v->tokens[i] : "";
        size_t len = v->lens ? v->lens[i] : strlen(raw);
        int type = v->types ? v->types[i] : TT_NORMAL;
        int byte = byte_piece(raw, len);
        if (byte >= 0 && (type == TT_BYTE || type == TT_NORMAL)) {
            t->flags[i] = VFY_TF_BYTE | VFY_TF_NOMERGE;
            if (t->byte_id[byte] < 0)
                t->byte_id[byte] = (int32_t)i;
            if (!(t->key[i] = sb_strndup(raw, len)) || !(t->dec[i] = sb_malloc(1))) {
                goto oom;
            }
            t->key_len[i] = (uint32_t)len;
            t->dec[i][0] = (char)byte;
            t->dec_len[i] = 1;
            continue;
        }
        if (type == TT_CONTROL || (int)i == t->bos || (int)i == t->eos)
            t->flags[i] |= VFY_TF_CONTROL | VFY_TF_NOMERGE;
        if (type == TT_UNKNOWN || type == TT_UNUSED || type == TT_BYTE || (int)i == t->unk)
            t->flags[i] |= VFY_TF_NOMERGE;
        /* '▁' (E2 96 81) -> ' ' */
        char *s = sb_malloc(len + 1);
        if (!s)
            goto oom;
        size_t k = 0;
        for (size_t j = 0; j < len; j++) {
            if (j + 2 < len && (unsigned char)raw[j] == 0xE2 && (unsigned char)raw[j + 1] == 0x96 &&
                (unsigned char)raw[j + 2] == 0x81) {
                s[k++] = ' ';
                j += 2;
            } else {
                s[k++] = raw[j];
            }
        }
        s[k] = '\0';
        t->key[i] = t->dec[i] = s;
        t->key_len[i] = t->dec_len[i] = (uint32_t)k;
        if (k > t->max_key)
            t->max_key = (uint32_t)k;
    }
    if (vfy_strmap_init(&t->map, n))
        goto oom;
    for (uint32_t i = 0; i < n; i++)
        if (!(t->flags[i] & VFY_TF_NOMERGE) && t->key_len[i])
            vfy_strmap_put(&t->map, t, (int32_t)i);
    vfy_tok_check_words(t, " ", 1);
    return SB_OK;
oom:
    return sb_err_set(err, SB_ENOMEM, "out of memory building the tokenizer");
}

static bool spm_pair(const struct vfy_tok *t, int32_t a, int32_t b, double *prio, int32_t *merged)
{
    if ((t->flags[a] | t->flags[b]) & VFY_TF_NOMERGE)
        return false;
    uint32_t la = t->key_len[a], lb = t->key_len[b];
    char buf[512];
    if (la + lb > t->max_key || la + lb > sizeof buf)
        return false;
    memcpy(buf, t->key[a], la);
    memcpy(buf + la, t->key[b], lb);
    int32_t id = vfy_strmap_get(&t->map, t, buf, la + lb);
    if (id < 0)
        return false;
    *prio = t->scores[id];
    *merged = id;
    return true;
}

static int push_bytes(const struct vfy_tok *t, const unsigned char *s, size_t n,
                      struct vfy_ids *out, struct sb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]] >= 0 ? t->byte_id[s[i]] : t->unk;
        if (id < 0)
            return sb_err_set(err, SB_EUNSUPPORTED,
                              "tokenizer: no piece for byte 0x%02x, no byte fallback and no "
                              "unknown token", s[i]);
        if (vfy_ids_push(out, id))
            return SB_ENOMEM;
    }
    return SB_OK;
}

int vfy_tok_spm_encode(const struct vfy_tok *t, const char *text, size_t len,
                       struct vfy_ids *out, struct sb_err *err)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t first = out->n;
    int rc;
    if ((rc = vfy_ids_reserve(out, len + 1)))
        return rc;
    /* the dummy prefix: text is read as " " + text */
    int32_t sp = vfy_strmap_get(&t->map, t, " ", 1);
    if (sp >= 0)
        out->v[out->n++] = sp;
    else if ((rc = push_bytes(t, (const unsigned char *)" ", 1, out, err)))
        return rc;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = vfy_utf8_next(s + i, len - i, &cp);
        int32_t id = k ? vfy_strmap_get(&t->map, t, text + i, k) : -1;
        if (id >= 0) {
            if ((rc = vfy_ids_push(out, id)))
                return rc;
        } else if ((rc = push_bytes(t, s + i, k ? k : 1, out, err))) {
            return rc;
        }
        i += k ? k : 1;
    }
    struct vfy_merge m = { 0 };
    size_t kept;
    rc = vfy_merge_words(&m, t, spm_pair, sp, out->v + first, out->n - first, &kept);
    vfy_merge_release(&m);
    if (rc)
        return rc;
    out->n = first + kept;
    return SB_OK;
}
