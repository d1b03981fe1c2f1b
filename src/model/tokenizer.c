/* Tokenizers: SentencePiece-style BPE by piece scores (llama2.c, GGUF
 * "llama") and GPT-2 byte-level BPE by merge ranks (GGUF "gpt2", Hugging
 * Face tokenizer.json). Merging uses a heap of candidate pairs, so long
 * texts cost O(n log n); the best pair wins, the leftmost among equals. */
#include "tokenizer.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

static const char SPM_SPACE[] = "\xe2\x96\x81"; /* U+2581 ▁ */

/* ---- construction -------------------------------------------------------- */

static const kvattn_tokenizer *sort_ctx;
static int cmp_piece(const void *a, const void *b) {
    const kvattn_tokenizer *t = sort_ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    int la = t->piece_len[ia], lb = t->piece_len[ib], m = la < lb ? la : lb;
    int c = memcmp(t->pieces[ia], t->pieces[ib], (size_t)m);
    return c ? c : (la > lb) - (la < lb);
}

int kv_tokenizer_find(const kvattn_tokenizer *t, const char *piece, int len) {
    int lo = 0, hi = t->n_vocab - 1, found = -1;
    while (lo <= hi) { /* lowest id among equal pieces: the first match in sorted order */
        int mid = (lo + hi) / 2, id = t->sorted[mid];
        int l = t->piece_len[id], m = l < len ? l : len;
        int c = memcmp(t->pieces[id], piece, (size_t)m);
        if (!c) c = (l > len) - (l < len);
        if (c < 0) lo = mid + 1;
        else {
            if (!c) found = id;
            hi = mid - 1;
        }
    }
    return found;
}

int kvattn_token_id(const kvattn_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    const size_t n = strlen(piece);
    return n > (size_t)KV_MAX_PIECE_BYTES ? -1 : kv_tokenizer_find(t, piece, (int)n);
}

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t hash_slot(uint64_t k, size_t cap) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static int merge_lookup(const kvattn_tokenizer *t, int a, int b, int *result) {
    if (!t->merge_cap) return -1;
    uint64_t k = pair_key(a, b) + 1; /* 0 marks an empty slot */
    for (size_t s = hash_slot(k, t->merge_cap);; s = (s + 1) & (t->merge_cap - 1)) {
        if (t->merge_keys[s] == 0) return -1;
        if (t->merge_keys[s] == k) {
            *result = t->merge_result[s];
            return t->merge_rank[s];
        }
    }
}

/* GPT-2's byte ↔ unicode map: printable bytes stand for themselves, the rest
 * for U+0100 + n. Writes the UTF-8 of byte b's stand-in; returns its length. */
static int byte_to_unicode(int b, char *out) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

void kvattn_tokenizer_free(kvattn_tokenizer *t) {
    if (!t) return;
    if (t->pieces)
        for (int i = 0; i < t->n_vocab; i++) free(t->pieces[i]);
    free(t->pieces), free(t->piece_len), free(t->scores), free(t->sorted), free(t->is_control);
    free(t->merge_keys), free(t->merge_rank), free(t->merge_result);
    kv_pretok_free(t->pretok);
    free(t->user_defined);
    free(t);
}

kvattn_status kv_tokenizer_build(const kv_vocab_spec *v, kvattn_tokenizer **out) {
    const kvattn_vocab_kind kind = v->kind;
    const int n_vocab = v->n_vocab, bos = v->bos, eos = v->eos, n_merges = v->n_merges;
    const char *const *pieces = v->pieces, *const *merges = v->merges, *source = v->source;
    const int *lens = v->lens, *merge_lens = v->merge_lens;
    const float *scores = v->scores;
    const int32_t *token_type = v->token_type;
    *out = NULL;
    if (n_vocab < 1 || n_vocab > KV_MAX_DIM)
        return kv_fail(KVATTN_ERR_FORMAT, "%s: vocabulary size %d is out of range", source, n_vocab);
    kvattn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory for the tokenizer", source);
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = bos >= 0 && bos < n_vocab ? bos : -1;
    t->eos = eos >= 0 && eos < n_vocab ? eos : -1;
    t->spm_marker = v->spm_marker;
    t->add_space_prefix = v->add_space_prefix;
    t->pre = v->pre;
    t->normalize = v->normalize;
    if (v->pre_name && v->pre_name_len)
        snprintf(t->pre_name, sizeof t->pre_name, "%.*s", (int)(v->pre_name_len < 63 ? v->pre_name_len : 63),
                 v->pre_name);
    t->pre_known = !t->pre_name[0] || kv_pretokenizer_by_name(t->pre_name, strlen(t->pre_name)) >= 0;
    t->pieces = calloc((size_t)n_vocab, sizeof *t->pieces);
    t->piece_len = calloc((size_t)n_vocab, sizeof *t->piece_len);
    t->scores = calloc((size_t)n_vocab, sizeof *t->scores);
    t->sorted = malloc((size_t)n_vocab * sizeof *t->sorted);
    t->is_control = calloc((size_t)n_vocab, 1);
    if (!t->pieces || !t->piece_len || !t->scores || !t->sorted || !t->is_control) goto nomem;
    for (int i = 0; i < n_vocab; i++) {
        int len = lens[i];
        if (len < 0 || len > KV_MAX_PIECE_BYTES || memchr(pieces[i], 0, (size_t)len)) {
            kvattn_tokenizer_free(t);
            return kv_fail(KVATTN_ERR_FORMAT, "%s: token %d has an invalid piece (length %d or a NUL byte)", source, i,
                           len);
        }
        if (!(t->pieces[i] = malloc((size_t)len + 1))) goto nomem;
        memcpy(t->pieces[i], pieces[i], (size_t)len);
        t->pieces[i][len] = '\0';
        t->piece_len[i] = len;
        t->scores[i] = scores ? scores[i] : 0.0f;
        t->sorted[i] = i;
        if (token_type) t->is_control[i] = token_type[i] == 3 || token_type[i] == 2 || token_type[i] == 5;
    }
    if (t->bos >= 0) t->is_control[t->bos] = 1;
    if (t->eos >= 0) t->is_control[t->eos] = 1;
    sort_ctx = t; /* qsort has no context argument in C11; loading is single-threaded per tokenizer */
    qsort(t->sorted, (size_t)n_vocab, sizeof *t->sorted, cmp_piece);
    for (int cp = 0; cp < 324; cp++) t->unicode_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int len = kind == KVATTN_VOCAB_SPM ? snprintf(buf, sizeof buf, "<0x%02X>", b) : byte_to_unicode(b, buf);
        t->byte_id[b] = kv_tokenizer_find(t, buf, len);
        if (kind == KVATTN_VOCAB_BPE) { /* the reverse map, for decoding */
            int cp = len == 1 ? (unsigned char)buf[0]
                              : (((unsigned char)buf[0] & 0x1f) << 6) | ((unsigned char)buf[1] & 0x3f);
            if (cp < 324) t->unicode_byte[cp] = (int16_t)b;
        }
    }
    if (kind == KVATTN_VOCAB_BPE && n_merges > 0) {
        size_t cap = 16;
        while (cap < (size_t)n_merges * 2) cap *= 2;
        t->merge_cap = cap;
        t->merge_keys = calloc(cap, sizeof *t->merge_keys);
        t->merge_rank = malloc(cap * sizeof *t->merge_rank);
        t->merge_result = malloc(cap * sizeof *t->merge_result);
        if (!t->merge_keys || !t->merge_rank || !t->merge_result) goto nomem;
        char joined[1024];
        for (int r = 0; r < n_merges; r++) {
            const char *m = merges[r], *sp = memchr(m, ' ', (size_t)merge_lens[r]);
            int ll = sp ? (int)(sp - m) : -1, rl = sp ? merge_lens[r] - ll - 1 : -1;
            int a = sp ? kv_tokenizer_find(t, m, ll) : -1, b = sp ? kv_tokenizer_find(t, sp + 1, rl) : -1;
            if (a < 0 || b < 0 || ll + rl >= (int)sizeof joined) continue; /* merges of unknown pieces never fire */
            memcpy(joined, m, (size_t)ll);
            memcpy(joined + ll, sp + 1, (size_t)rl);
            int res = kv_tokenizer_find(t, joined, ll + rl);
            if (res < 0) continue;
            uint64_t k = pair_key(a, b) + 1;
            size_t s = hash_slot(k, cap);
            while (t->merge_keys[s] && t->merge_keys[s] != k) s = (s + 1) & (cap - 1);
            if (t->merge_keys[s]) continue; /* a duplicate merge keeps its first (best) rank */
            t->merge_keys[s] = k;
            t->merge_rank[s] = r;
            t->merge_result[s] = res;
        }
    }
    if (kind == KVATTN_VOCAB_BPE) {
        t->ignore_merges = v->ignore_merges || kv_pretokenizer_ignores_merges(v->pre_name, v->pre_name_len);
        for (int i = 0; token_type && i < n_vocab; i++) t->n_user_defined += token_type[i] == 4 && t->piece_len[i] > 0;
        if (t->n_user_defined && !(t->user_defined = malloc(sizeof(int) * (size_t)t->n_user_defined))) goto nomem;
        for (int i = 0, k = 0; token_type && i < n_vocab; i++)
            if (token_type[i] == 4 && t->piece_len[i] > 0) {
                int j = k++; /* insertion by length, longest first, as llama.cpp matches them */
                while (j > 0 && t->piece_len[t->user_defined[j - 1]] < t->piece_len[i])
                    t->user_defined[j] = t->user_defined[j - 1], j--;
                t->user_defined[j] = i;
            }
        const kvattn_status st = kv_pretok_create(t->pre, &t->pretok);
        if (st != KVATTN_OK) {
            kvattn_tokenizer_free(t);
            return st;
        }
    }
    *out = t;
    return KVATTN_OK;
nomem:
    kvattn_tokenizer_free(t);
    return kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory for the tokenizer", source);
}

kvattn_status kvattn_tokenizer_load_llama2c(const char *path, int vocab_size, kvattn_tokenizer **out) {
    if (!path || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    if (vocab_size < 1 || vocab_size > KV_MAX_DIM)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: vocab_size = %d is out of range", path, vocab_size);
    kvattn_status open_st;
    FILE *f = kv_fopen_regular(path, &open_st);
    if (!f) return open_st;
    char **pieces = calloc((size_t)vocab_size, sizeof *pieces);
    int *lens = calloc((size_t)vocab_size, sizeof *lens);
    float *scores = calloc((size_t)vocab_size, sizeof *scores);
    kvattn_status st = KVATTN_OK;
    int32_t max_len;
    if (!pieces || !lens || !scores) st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", path);
    else if (fread(&max_len, 4, 1, f) != 1 || max_len < 1 || max_len > KV_MAX_PIECE_BYTES)
        st = kv_fail(KVATTN_ERR_FORMAT, "%s: max_token_length missing or out of range", path);
    for (int i = 0; st == KVATTN_OK && i < vocab_size; i++) {
        int32_t len;
        if (fread(&scores[i], 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1) {
            st = kv_fail(KVATTN_ERR_FORMAT,
                         "%s: ends at token %d, the model has %d: a smaller vocabulary than the model's, or a "
                         "truncated file",
                         path, i, vocab_size);
        } else if (len < 0 || len > max_len) {
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: token %d: length %d is outside [0, max_token_length = %d]", path, i,
                         len, max_len);
        } else if (!(pieces[i] = malloc((size_t)len + 1)) || fread(pieces[i], 1, (size_t)len, f) != (size_t)len) {
            st = kv_fail(pieces[i] ? KVATTN_ERR_FORMAT : KVATTN_ERR_NOMEM, "%s: truncated in the piece of token %d",
                         path, i);
        } else {
            lens[i] = len;
        }
    }
    /* More entries after the model's last: another model's vocabulary (llama2.c would read the first ones and
     * print garbage). */
    int extra = 0;
    for (int32_t len; st == KVATTN_OK && extra < KV_MAX_DIM; extra++) {
        float score;
        if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > max_len ||
            fseek(f, len, SEEK_CUR) != 0)
            break;
    }
    if (st == KVATTN_OK && (extra > 0 || fgetc(f) != EOF))
        st = kv_fail(KVATTN_ERR_FORMAT,
                     "%s: holds %s%d tokens, the model %d: not this model's vocabulary (give its tokenizer with -z)",
                     path, extra > 0 ? "" : "more than ", vocab_size + extra, vocab_size);
    fclose(f);
    /* llama2.c's conventions: BOS 1, EOS 2, dummy-prefix " ", pieces with plain spaces. */
    if (st == KVATTN_OK)
        st = kv_tokenizer_build(&(kv_vocab_spec){.kind = KVATTN_VOCAB_SPM,
                                                 .n_vocab = vocab_size,
                                                 .pieces = (const char *const *)pieces,
                                                 .lens = lens,
                                                 .scores = scores,
                                                 .bos = vocab_size > 1 ? 1 : -1,
                                                 .eos = vocab_size > 2 ? 2 : -1,
                                                 .add_space_prefix = 1,
                                                 .pre = KV_PRE_GPT2,
                                                 .source = path},
                                out);
    for (int i = 0; pieces && i < vocab_size; i++) free(pieces[i]);
    free(pieces), free(lens), free(scores);
    return st;
}

int kvattn_tokenizer_vocab_size(const kvattn_tokenizer *t) { return t ? t->n_vocab : 0; }
kvattn_vocab_kind kvattn_tokenizer_kind(const kvattn_tokenizer *t) { return t ? t->kind : KVATTN_VOCAB_SPM; }
int kvattn_tokenizer_bos(const kvattn_tokenizer *t) { return t ? t->bos : -1; }
int kvattn_tokenizer_eos(const kvattn_tokenizer *t) { return t ? t->eos : -1; }
const char *kvattn_tokenizer_piece(const kvattn_tokenizer *t, int id, int *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->piece_len[id];
    return t->pieces[id];
}
const char *kvattn_tokenizer_pre(const kvattn_tokenizer *t, int *known) {
    if (known) *known = !t || t->kind != KVATTN_VOCAB_BPE || t->pre_known;
    if (!t || t->kind != KVATTN_VOCAB_BPE) return "";
    return t->pre_known ? kv_pretokenizer_name(t->pre) : t->pre_name;
}

/* ---- merging ------------------------------------------------------------- */

typedef struct {
    int id;         /* current token of this symbol, -1 once merged away */
    int prev, next; /* neighbours in the list, -1 at the ends           */
} symbol;

typedef struct {
    float score; /* higher merges first */
    int left;    /* symbol index                       */
    int left_id, right_id, result;
} candidate;

typedef struct {
    candidate *a;
    int n, cap;
} heap;

static int better(const candidate *x, const candidate *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(heap *h, candidate c) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        candidate *a = realloc(h->a, (size_t)cap * sizeof *a);
        if (!a) return -1;
        h->a = a, h->cap = cap;
    }
    int i = h->n++;
    while (i > 0 && better(&c, &h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = c;
    return 0;
}

static candidate heap_pop(heap *h) {
    candidate top = h->a[0], last = h->a[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && better(&h->a[c + 1], &h->a[c])) c++;
        if (!better(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* The merge of two tokens, if any: its priority and resulting id. */
static int pair_merge(const kvattn_tokenizer *t, int a, int b, float *score, int *result) {
    if (t->kind == KVATTN_VOCAB_BPE) {
        int rank = merge_lookup(t, a, b, result);
        if (rank < 0) return 0;
        *score = -(float)rank;
        return 1;
    }
    char buf[512];
    int la = t->piece_len[a], lb = t->piece_len[b];
    if (la + lb > (int)sizeof buf) return 0;
    memcpy(buf, t->pieces[a], (size_t)la);
    memcpy(buf + la, t->pieces[b], (size_t)lb);
    int id = kv_tokenizer_find(t, buf, la + lb);
    if (id < 0) return 0;
    *score = t->scores[id];
    *result = id;
    return 1;
}

static int try_pair(const kvattn_tokenizer *t, heap *h, const symbol *s, int left) {
    int right = s[left].next;
    if (right < 0) return 0;
    candidate c = {0, left, s[left].id, s[right].id, 0};
    if (!pair_merge(t, c.left_id, c.right_id, &c.score, &c.result)) return 0;
    return heap_push(h, c);
}

/* Merges the symbols in place; appends the resulting ids to out. */
static int merge_symbols(const kvattn_tokenizer *t, symbol *s, int n, int32_t *out, int max, int *count) {
    heap h = {0};
    int rc = 0;
    for (int i = 0; i + 1 < n && rc == 0; i++) rc = try_pair(t, &h, s, i);
    while (rc == 0 && h.n) {
        candidate c = heap_pop(&h);
        int r = s[c.left].next;
        if (s[c.left].id != c.left_id || r < 0 || s[r].id != c.right_id) continue; /* stale */
        s[c.left].id = c.result;
        s[c.left].next = s[r].next;
        if (s[r].next >= 0) s[s[r].next].prev = c.left;
        s[r].id = -1;
        if (s[c.left].prev >= 0) rc = try_pair(t, &h, s, s[c.left].prev);
        if (rc == 0) rc = try_pair(t, &h, s, c.left);
    }
    free(h.a);
    if (rc) return -1;
    for (int i = 0; n > 0 && i >= 0; i = s[i].next) {
        if (*count >= max) return -2;
        out[(*count)++] = s[i].id;
    }
    return 0;
}

/* SentencePiece-style: code points (or their bytes) as symbols, then merges by score. */
static int encode_spm(const kvattn_tokenizer *t, const char *text, size_t len, symbol *s, int32_t *out, int max,
                      int *count) {
    int n = 0;
    for (size_t i = 0; i < len;) {
        int cl = kv_utf8_len((unsigned char)text[i]);
        if (i + (size_t)cl > len) cl = 1;
        int id = kv_tokenizer_find(t, text + i, cl);
        if (id >= 0) {
            s[n] = (symbol){id, n - 1, n + 1};
            n++;
        } else {
            for (int b = 0; b < cl; b++) {
                int bid = t->byte_id[(unsigned char)text[i + b]];
                if (bid < 0) bid = 0; /* no byte piece: <unk> */
                s[n] = (symbol){bid, n - 1, n + 1};
                n++;
            }
        }
        i += (size_t)cl;
    }
    if (n) s[n - 1].next = -1;
    return merge_symbols(t, s, n, out, max, count);
}

/* One pre-token through BPE: the whole piece when it is a token and the
 * vocabulary says so (ignore_merges), else byte stand-ins merged by rank. */
static int encode_piece(const kvattn_tokenizer *t, const char *text, size_t len, symbol *s, int32_t *out, int max,
                        int *count) {
    if (t->ignore_merges && len <= KV_MAX_PIECE_BYTES / 2) {
        char standin[KV_MAX_PIECE_BYTES + 2];
        int sl = 0;
        for (size_t b = 0; b < len; b++) sl += byte_to_unicode((unsigned char)text[b], standin + sl);
        const int id = kv_tokenizer_find(t, standin, sl);
        if (id >= 0) {
            if (*count >= max) return -2;
            out[(*count)++] = id;
            return 0;
        }
    }
    int n = 0;
    for (size_t b = 0; b < len; b++) {
        const int id = t->byte_id[(unsigned char)text[b]];
        if (id < 0) return -3;
        s[n] = (symbol){id, n - 1, n + 1};
        n++;
    }
    if (n) s[n - 1].next = -1;
    return merge_symbols(t, s, n, out, max, count);
}

/* Raw text (no user-defined token in it) through pre-tokenization and BPE. */
static int encode_raw(const kvattn_tokenizer *t, const char *text, size_t len, symbol *s, int32_t *out, int max,
                      int *count) {
    size_t *ends = NULL, cap = 0;
    const int pieces = kv_pretok_split(t->pretok, text, len, &ends, &cap);
    if (pieces < 0) return -4;
    int rc = 0;
    for (int k = 0, i = 0; k < pieces && !rc; i = (int)ends[k++])
        rc = encode_piece(t, text + i, ends[k] - (size_t)i, s, out, max, count);
    free(ends);
    return rc;
}

/* Byte-level BPE: user-defined tokens are cut out of the text first (the
 * longest at its leftmost place, then the rest of the text either side), as
 * llama.cpp does whether or not special tokens are parsed. The text left of
 * a match holds no token before it in the list; the text right of it is
 * taken on by the loop, so the recursion is at most the list's length deep. */
static int encode_bpe_from(const kvattn_tokenizer *t, int first_ud, const char *text, size_t len, symbol *s,
                           int32_t *out, int max, int *count) {
    for (;;) {
        int hit = -1;
        size_t at = 0;
        for (int u = first_ud; u < t->n_user_defined && hit < 0; u++) {
            const int id = t->user_defined[u];
            const size_t pl = (size_t)t->piece_len[id];
            for (size_t i = 0; pl <= len && i + pl <= len; i++)
                if (!memcmp(text + i, t->pieces[id], pl)) {
                    hit = u, at = i;
                    break;
                }
        }
        if (hit < 0) return encode_raw(t, text, len, s, out, max, count);
        const int id = t->user_defined[hit];
        const int rc = encode_bpe_from(t, hit + 1, text, at, s, out, max, count);
        if (rc) return rc;
        if (*count >= max) return -2;
        out[(*count)++] = id;
        text += at + (size_t)t->piece_len[id], len -= at + (size_t)t->piece_len[id];
        first_ud = hit;
    }
}

static int encode_bpe(const kvattn_tokenizer *t, const char *text, size_t len, symbol *s, int32_t *out, int max,
                      int *count) {
    return encode_bpe_from(t, 0, text, len, s, out, max, count);
}

kvattn_status kvattn_tokenize(const kvattn_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max, int *n) {
    if (!t || !text || !ids || !n || max < 0) return kv_fail(KVATTN_ERR_INVALID_ARG, "tokenize: NULL argument");
    *n = 0;
    if (add_bos && t->bos >= 0) {
        if (max < 1) return kv_fail(KVATTN_ERR_INVALID_ARG, "tokenize: no room for BOS");
        ids[(*n)++] = t->bos;
    }
    size_t len = strlen(text);
    if (len == 0) return KVATTN_OK;
    char *normalized = NULL;
    if (t->normalize != KV_NORM_NONE) {
        if (!(normalized = kv_normalize(t->normalize, text, len, &len)))
            return kv_fail(KVATTN_ERR_NOMEM, "tokenize: out of memory for %zu bytes", len);
        text = normalized;
    }
    /* SentencePiece normalization: the dummy prefix, and "▁" for spaces where the vocabulary uses it. */
    size_t cap = (len + 1) * 3 + 1;
    char *norm = malloc(cap);
    symbol *s = malloc(sizeof(symbol) * (cap + 1));
    if (!norm || !s) {
        free(norm), free(s), free(normalized);
        return kv_fail(KVATTN_ERR_NOMEM, "tokenize: out of memory for %zu bytes", len);
    }
    size_t m = 0;
    if (t->kind == KVATTN_VOCAB_SPM) {
        if (t->add_space_prefix) {
            const char *sp = t->spm_marker ? SPM_SPACE : " ";
            memcpy(norm + m, sp, strlen(sp));
            m += strlen(sp);
        }
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ' && t->spm_marker) memcpy(norm + m, SPM_SPACE, 3), m += 3;
            else norm[m++] = text[i];
        }
    } else {
        memcpy(norm, text, len);
        m = len;
    }
    int rc =
        t->kind == KVATTN_VOCAB_SPM ? encode_spm(t, norm, m, s, ids, max, n) : encode_bpe(t, norm, m, s, ids, max, n);
    free(norm), free(s), free(normalized);
    if (rc == -2) return kv_fail(KVATTN_ERR_INVALID_ARG, "tokenize: the text needs more than %d tokens", max);
    if (rc == -3) return kv_fail(KVATTN_ERR_FORMAT, "tokenize: the vocabulary lacks a byte token");
    if (rc) return kv_fail(KVATTN_ERR_NOMEM, "tokenize: out of memory");
    return KVATTN_OK;
}

/* ---- decoding ------------------------------------------------------------ */

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

int kvattn_token_to_bytes(const kvattn_tokenizer *t, int prev, int id, char *buf, int size) {
    if (!t || id < 0 || id >= t->n_vocab || !buf || size < 0) return -1;
    const char *p = t->pieces[id];
    int len = t->piece_len[id], o = 0;
    if (t->is_control[id]) return 0;
    if (t->kind == KVATTN_VOCAB_BPE) { /* undo the byte ↔ unicode map */
        for (int i = 0; i < len;) {
            int cl;
            uint32_t cp = kv_utf8_decode(p + i, (size_t)(len - i), &cl);
            int b = cp < 324 ? t->unicode_byte[cp] : -1;
            if (b < 0) { /* not a byte stand-in (added tokens): copy as is */
                for (int j = 0; j < cl && o < size; j++) buf[o++] = p[i + j];
            } else if (o < size) {
                buf[o++] = (char)b;
            }
            i += cl;
        }
        return o;
    }
    if (len == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' && hexval(p[3]) >= 0 &&
        hexval(p[4]) >= 0) {
        if (size > 0) buf[0] = (char)(hexval(p[3]) * 16 + hexval(p[4]));
        return size > 0 ? 1 : 0;
    }
    int i = 0;
    /* After BOS, SentencePiece drops the dummy prefix's space. */
    int strip = prev >= 0 && prev == t->bos;
    while (i < len && o < size) {
        if (t->spm_marker && len - i >= 3 && !memcmp(p + i, SPM_SPACE, 3)) {
            if (!(strip && o == 0 && i == 0)) buf[o++] = ' ';
            i += 3;
        } else if (strip && o == 0 && i == 0 && p[0] == ' ') {
            i++;
        } else {
            buf[o++] = p[i++];
        }
    }
    return o;
}
