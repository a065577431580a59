# C-level interface of the substitution kernel. Helpers live in csrc/link_fast.h.
from libc.stdint cimport uint8_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t

cdef extern from "link_fast.h" nogil:
    uint32_t LF_WS_START, LF_GLUE_LEFT, LF_END_WORD, LF_SPECIAL, LF_HAS_WORD, LF_FUSES_RIGHT, LF_KEY_START
    uint32_t LF_MAY_JOIN, LF_JOINER_ONLY, LF_JOINER_THEN_WORD, LF_WORD_THEN_JOINER
    uint32_t LF_JOINERS_THEN_BACKTICK, LF_BACKTICK_THEN_JOINERS
    bint lf_is_joiner(uint32_t c) noexcept
    uint64_t LF_DOMAIN_DOCUMENT, LF_DOMAIN_DOC_LANG, LF_DOMAIN_REPLACE, LF_DOMAIN_LANG, LF_DOMAIN_TRANSLATE
    uint64_t LF_ALWAYS
    int LF_DRAW_BITS
    enum: LF_MAX_LANGUAGES
    uint64_t lf_mix64(uint64_t z) noexcept
    uint64_t lf_draw(uint64_t base, uint64_t domain, uint64_t doc, uint64_t cand) noexcept
    uint64_t lf_draw_stream(uint64_t base, uint64_t domain, uint64_t doc) noexcept
    uint64_t lf_draw_at(uint64_t stream, uint64_t cand) noexcept
    bint lf_bernoulli(uint64_t h, uint64_t threshold) noexcept
    uint64_t lf_below(uint64_t h, uint64_t n) noexcept
    int32_t lf_pick_language(const uint32_t *weight, int32_t n, uint32_t available, uint64_t h) noexcept
    int64_t lf_pick_cumulated(const uint32_t *cum, int64_t first, int64_t stop, uint64_t h) noexcept
    int64_t lf_find_child(const uint32_t *edge_token, int64_t start, int64_t count, uint32_t token) noexcept
    int LF_BUCKET_SLOTS
    ctypedef struct lf_edge_slot:
        uint32_t node
        uint32_t token
        int32_t child
        int32_t child_key
    uint64_t lf_edge_hash(uint32_t bits, uint32_t node, uint32_t token) noexcept
    const lf_edge_slot *lf_find_edge(const lf_edge_slot *table, uint32_t bits, uint32_t node, uint32_t token) noexcept
    void lf_prefetch_edge(const lf_edge_slot *table, uint32_t bits, uint32_t node, uint32_t token) noexcept
    bint lf_starts_word(uint32_t flag, uint32_t previous) noexcept
    void lf_prefetch(const void *p) noexcept

ctypedef fused token_in:
    uint16_t
    int32_t
    uint32_t

ctypedef fused token_out:
    uint16_t
    int32_t
    uint32_t

# What a document's token does at the root of the trie; one 8-byte entry, so one cache access.
cdef struct RootEntry:
    int32_t key                   # the single-token key in play it forms, or -1
    int32_t descend               # its trie node if that has children, else -1

# A position in a document where a key in play may start, and what the kernel learns of it.
cdef struct Start:
    int64_t position
    RootEntry entry               # of the token at position: read ahead of use
    const lf_edge_slot *edge      # the edge to the next token, if any: looked up ahead of use

# Read-only views of a Vocab's tables.
cdef struct Tables:
    const uint8_t *flags             # the vocabulary's, with LF_KEY_START and LF_MAY_JOIN (csrc/link_fast.h)
    const uint8_t *joiner_flags      # the vocabulary's: LF_JOINER_*, LF_WORD_THEN_JOINER, LF_*BACKTICK*
    int64_t vocab_size
    const RootEntry *root         # per token; depends on the languages in play
    const int32_t *node_key
    const int32_t *node_edge_start
    const int32_t *node_edge_count
    const uint32_t *edge_token
    const int32_t *edge_node
    const lf_edge_slot *edge_table  # Vocab.edge_table: the edges of nodes one or two tokens deep
    uint32_t edge_table_bits        # the table has 2^edge_table_bits buckets
    bint all_keys_in_play         # skip the language check of phrase keys
    const uint32_t *key_lang_mask
    const int64_t *key_trans_start
    const int32_t *key_trans
    const uint32_t *key_trans_cum     # beside key_trans: weights cumulated within each key-language range
    const int64_t *trans_offsets
    const uint32_t *trans_tokens
    int32_t n_languages

# Sampling options, resolved to integers in Python (link_fast/kernel_tables.py) so C and the
# reference agree bit for bit.
cdef struct SamplingParams:
    uint64_t base                 # stream base: mixes seed and stream key
    uint64_t portion_threshold    # document eligible iff lf_bernoulli(draw, threshold); LF_ALWAYS = always
    uint64_t ratio_threshold      # same for each candidate (ratio_basis="candidates")
    double ratio                  # for ratio_basis="words", where the threshold is per document
    bint ratio_basis_words
    bint lang_scope_document
    uint32_t selected_mask        # languages in play (weight > 0)
    const uint32_t *lang_weight   # integer weight per language

# What an Edit points at, one name per phase: a match's key; a planned edit's slot
# (key * n_languages + lang, into key_trans_start); while resolving, the index into key_trans
# and then the translation; a resolved edit's first token in trans_tokens. A union: the phases
# never overlap, and the edit stays 48 bytes.
cdef union EditTarget:
    int64_t key
    int64_t slot
    int64_t translation
    int64_t first_token

# A replaced match's index among its document's candidates, which numbers its draws; a planned
# edit's TRANSLATE draw, which picks among the slot's translations; once resolved, the
# translation's length.
cdef union EditLength:
    int64_t candidate
    uint64_t draw
    int64_t n_tokens

# A match of a key, or an edit, over source tokens [start, end). An edit's translation is
# resolved after planning, in batches, so that its table lookups can be prefetched.
cdef struct Edit:
    int64_t start
    int64_t end
    int64_t doc                   # document within the batch
    EditTarget target
    EditLength length
    int32_t lang

cdef struct Edits:
    Edit *data
    int64_t size
    int64_t capacity

cdef struct Counters:
    int64_t words
    int64_t candidates
    int64_t eligible_documents
    int64_t eligible_candidates
    int64_t tokens_out
    int64_t bad_token_position    # first token id outside the vocabulary, or -1
    uint64_t max_emitted_id
    int64_t substitutions[LF_MAX_LANGUAGES]
