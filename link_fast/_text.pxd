# C-level interface of text mode's native matcher (link_fast/_text.pyx). The draws are the
# kernel's, from csrc/link_fast.h.
from libc.stdint cimport int8_t, uint8_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t

cdef extern from "link_fast.h" nogil:
    uint64_t LF_DOMAIN_DOCUMENT, LF_DOMAIN_DOC_LANG, LF_DOMAIN_REPLACE, LF_DOMAIN_LANG, LF_DOMAIN_TRANSLATE
    uint64_t LF_ALWAYS
    enum: LF_MAX_LANGUAGES
    uint64_t lf_draw(uint64_t base, uint64_t domain, uint64_t doc, uint64_t cand) noexcept
    uint64_t lf_draw_stream(uint64_t base, uint64_t domain, uint64_t doc) noexcept
    uint64_t lf_draw_at(uint64_t stream, uint64_t cand) noexcept
    bint lf_bernoulli(uint64_t h, uint64_t threshold) noexcept
    uint64_t lf_below(uint64_t h, uint64_t n) noexcept
    int32_t lf_pick_language(const uint32_t *weight, int32_t n, uint32_t available, uint64_t h) noexcept
    int64_t lf_pick_cumulated(const uint32_t *cum, int64_t first, int64_t stop, uint64_t h) noexcept
    void lf_prefetch(const void *p) noexcept
    bint lf_is_joiner(uint32_t c) noexcept
    uint32_t LF_BACKTICK

# A node of the character trie of the patterns (keys' surface texts without their leading
# space): its children are nodes first .. first + count - 1, sorted by the code point that leads
# to them (ch); term indexes term_spaced / term_bare (the spaced and bare key of the pattern
# ending there, -1 where that form is absent), -1 where no pattern ends. 16 bytes, read at once.
cdef struct Node:
    int32_t first
    int32_t count
    int32_t ch
    int32_t term

# A slot of the word table (made by TextIndex from the trie): the node reached by a word, a
# maximal run of word characters, from the root; node -1 where the slot is empty. start indexes
# the table's characters: the word's length, then its code points, compared before node is
# trusted (a hash alone could send a word to another word's node).
cdef struct WordSlot:
    uint64_t hash
    int32_t node
    uint32_t start

# Read-only views of arrays owned by a TextIndex.
cdef struct Trie:
    const Node *nodes
    const int32_t *term_spaced
    const int32_t *term_bare
    const int32_t *root_child      # ROOT_DIRECT entries: the root's child by code point, or -1
    const uint8_t *word_bits       # bit c: code point c is a letter, number or mark
    int64_t n_nodes
    const WordSlot *words          # open addressing, word_mask + 1 slots
    const uint32_t *word_chars
    uint64_t word_mask
    int word_shift                 # 64 - log2(slots): a hash's slot is its top bits, mixed

# A match of a key over characters [start, start + length) of a text; once drawn, a replaced
# match holds its translation's id in place of the key. 16 bytes: a long document has millions.
cdef struct Match:
    int64_t start
    int32_t length
    int32_t key

cdef struct Matches:
    Match *data
    int64_t size
    int64_t capacity
