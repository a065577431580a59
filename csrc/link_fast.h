/* Small C helpers for the link_fast kernel. Everything here is static inline and
 * side-effect free, so the Cython loop compiles to straight-line code.
 *
 * The random draws are counter-based: a draw is a pure function of
 * (stream base, domain, document index, candidate index). That makes the output
 * independent of how documents are split into batches, chunks or workers.
 * tests/reference.py mirrors these functions in Python, and tests/data/draws_kat.csv pins
 * both to the same known answers. */
#ifndef LINK_FAST_H
#define LINK_FAST_H

#include <stdint.h>

/* Token flag bits: link_fast/tokenizer.py's FLAG_* are these, exported by the kernel. */
#define LF_WS_START  1u
#define LF_GLUE_LEFT 2u
#define LF_END_WORD  4u
#define LF_SPECIAL   8u
#define LF_HAS_WORD  16u
#define LF_FUSES_RIGHT 32u
/* Set in the kernel's own copy of the flags only: the token may start a match (it forms a
 * single-token key in play, or has phrase children). */
#define LF_KEY_START 64u
/* Set in the kernel's own copy of the flags only: the token is LF_JOINER_ONLY,
 * LF_JOINER_THEN_WORD or LF_JOINERS_THEN_BACKTICK, so a match just before it may be joined to
 * a following word or code. */
#define LF_MAY_JOIN 128u

/* Joiner bits, per token (the vocabulary's joiner_flags; link_fast/tokenizer.py's JOINER_* and
 * *_BACKTICK* are these): where the token's text has the characters that join words into code,
 * URLs, e-mail addresses, paths and contractions, or the backtick that marks inline code
 * (DESIGN §3). */
#define LF_JOINER_ONLY 1u             /* every character is a joiner */
#define LF_JOINER_THEN_WORD 2u        /* one or more joiners, then a word character */
#define LF_WORD_THEN_JOINER 4u        /* a word character, then one or more joiners that end the text */
#define LF_JOINERS_THEN_BACKTICK 8u   /* no joiner or some, then a backtick */
#define LF_BACKTICK_THEN_JOINERS 16u  /* a backtick, then no joiner or some, ending the text */

/* The backtick of Markdown's and reST's inline code (link_fast/tokenizer.py's BACKTICK). */
#define LF_BACKTICK 0x60u

/* The joiner characters: _ . / : = ( @ \ ' and U+2019 (link_fast/tokenizer.py's JOINERS). */
static inline int lf_is_joiner(uint32_t c) {
    switch (c) {
    case '_': case '.': case '/': case ':': case '=': case '(': case '@': case '\\': case '\'': case 0x2019u:
        return 1;
    default:
        return 0;
    }
}

/* Languages are the bits of a uint32 mask (link_fast/vocab.py's MAX_LANGUAGES is pinned to this). */
#define LF_MAX_LANGUAGES 32

/* Draws keep their top 53 bits for a Bernoulli test; a threshold of 2^53 always succeeds. */
#define LF_DRAW_BITS 53
#define LF_ALWAYS (1ULL << LF_DRAW_BITS)

/* Draw domains: one per independent decision, so decisions never share a number
 * (link_fast/draws.py's DOMAIN_* are pinned to these). */
#define LF_DOMAIN_DOCUMENT  1u
#define LF_DOMAIN_DOC_LANG  2u
#define LF_DOMAIN_REPLACE   3u
#define LF_DOMAIN_LANG      4u
#define LF_DOMAIN_TRANSLATE 5u

/* SplitMix64's finaliser: a bijection on 64 bits with full avalanche. */
static inline uint64_t lf_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A draw in two steps, so that a document's loop over its candidates mixes once per draw:
 * lf_draw(base, domain, doc, cand) == lf_draw_at(lf_draw_stream(base, domain, doc), cand). */
static inline uint64_t lf_draw_stream(uint64_t base, uint64_t domain, uint64_t doc) {
    return lf_mix64(lf_mix64(base ^ (domain * 0x9e3779b97f4a7c15ULL)) + doc);
}

static inline uint64_t lf_draw_at(uint64_t stream, uint64_t cand) {
    return lf_mix64(stream + cand);
}

static inline uint64_t lf_draw(uint64_t base, uint64_t domain, uint64_t doc, uint64_t cand) {
    return lf_draw_at(lf_draw_stream(base, domain, doc), cand);
}

/* True with probability threshold / 2^53; threshold LF_ALWAYS is "always". Integer
 * comparison keeps C and the Python reference bit-identical. */
static inline int lf_bernoulli(uint64_t h, uint64_t threshold) {
    return (h >> (64 - LF_DRAW_BITS)) < threshold;
}

/* Uniform integer in [0, n) for n < 2^32, by multiply-shift (no division). */
static inline uint64_t lf_below(uint64_t h, uint64_t n) {
    return ((h >> 32) * n) >> 32;
}

/* A language among the `available` bits, with probability proportional to weight[lang]: the
 * first whose cumulated weight exceeds a draw below the total, found as the number of
 * cumulated weights at or below the draw. Without branches: which languages a key has is data
 * the branch predictor cannot learn. -1 when no available language has a weight. The token
 * kernel and text mode both pick with this. */
static inline int32_t lf_pick_language(const uint32_t *weight, int32_t n, uint32_t available, uint64_t h) {
    uint64_t total = 0, cumulative = 0, r;
    int32_t lang, picked = 0;
    for (lang = 0; lang < n; lang++)
        total += (uint64_t)weight[lang] * ((available >> lang) & 1u);
    if (!total)
        return -1;
    r = lf_below(h, total);
    for (lang = 0; lang < n; lang++) {
        cumulative += (uint64_t)weight[lang] * ((available >> lang) & 1u);
        picked += cumulative <= r;
    }
    return picked;
}

/* The entry of [first, stop) drawn with the range's cumulated weights `cum` (rising strictly,
 * checked when a vocabulary loads): the first whose cumulated weight exceeds a uniform draw
 * below the range's total. Weights 1, 2, 3... make it the plain multiply-shift index. */
static inline int64_t lf_pick_cumulated(const uint32_t *cum, int64_t first, int64_t stop, uint64_t h) {
    uint64_t target = lf_below(h, cum[stop - 1]);
    int64_t i = first;
    while (cum[i] <= target)
        i++;
    return i;
}

/* Index of the edge with this token among a node's children (sorted ascending), or -1. */
static inline int64_t lf_find_child(const uint32_t *edge_token, int64_t start, int64_t count,
                                    uint32_t token) {
    int64_t lo = start, hi = start + count;
    while (lo < hi) {
        int64_t mid = lo + ((hi - lo) >> 1);
        uint32_t t = edge_token[mid];
        if (t < token) lo = mid + 1;
        else if (t > token) hi = mid;
        else return mid;
    }
    return -1;
}

/* Slot of the edge table: the trie edge from `node` by `token`, for the nodes one or two
 * tokens deep. child is (child node << 1 | 1 if the child has edges), or -1 in an empty slot;
 * child_key is the key ending at the child. An empty slot has node = token = 0xffffffff,
 * which no edge has. */
typedef struct {
    uint32_t node;
    uint32_t token;
    int32_t child;
    int32_t child_key;
} lf_edge_slot;

/* The table is 2^bits buckets of LF_BUCKET_SLOTS slots: one 64-byte cache line each (the
 * table starts on a line, see build_edge_table), filled from slot 0 on. An edge lives in its home bucket or, when that is full, in the next bucket
 * that was not full: a lookup reads one line in the common case. */
#define LF_BUCKET_SLOTS 4

static inline uint64_t lf_edge_hash(uint32_t bits, uint32_t node, uint32_t token) {
    return ((((uint64_t)node) << 32) | token) * 0x9e3779b97f4a7c15ULL >> (64 - bits);
}

/* The slot of edge (node, token), or NULL. Each bucket is compared whole, without branches:
 * which slot matches, if any, is data the branch predictor cannot learn. */
static inline const lf_edge_slot *lf_find_edge(const lf_edge_slot *table, uint32_t bits,
                                               uint32_t node, uint32_t token) {
    uint64_t mask = (1ULL << bits) - 1, bucket = lf_edge_hash(bits, node, token);
    for (;; bucket = (bucket + 1) & mask) {
        const lf_edge_slot *slots = &table[bucket * LF_BUCKET_SLOTS];
        int found = -1;
        for (int s = LF_BUCKET_SLOTS - 1; s >= 0; s--)
            found = (slots[s].node == node) & (slots[s].token == token) ? s : found;
        if (found >= 0) return &slots[found];
        if (slots[LF_BUCKET_SLOTS - 1].child < 0) return 0;  /* not full: the edge would be here */
    }
}

static inline void lf_prefetch_edge(const lf_edge_slot *table, uint32_t bits, uint32_t node, uint32_t token) {
    __builtin_prefetch(&table[lf_edge_hash(bits, node, token) * LF_BUCKET_SLOTS], 0, 3);
}

/* Does a token with these flags start a word, after a token with flags `previous`? A
 * document's first token sees previous = 0. */
static inline int lf_starts_word(uint32_t flag, uint32_t previous) {
    /* Bit arithmetic rather than && and ||, which compile to branches on data the branch
     * predictor cannot learn. */
    return ((flag & LF_HAS_WORD) != 0) & (((flag & LF_WS_START) != 0) | ((previous & LF_END_WORD) == 0));
}

/* Start loading the cache line at p. Used where the kernel knows, many iterations ahead, which
 * random table entries it will read: independent misses then overlap instead of queueing. */
static inline void lf_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
