"""Substitution kernel: find dictionary words in token-id documents, sample, rewrite.

All without the GIL. ``plan_edits`` checks the ids, scans each document in two passes
(``find_starts`` counts words and lists where keys may start; ``match_starts`` finds the
leftmost-longest matches among them in the trie), draws the counter-based random decisions
and records the edits; ``resolve_edits`` looks up the chosen translations for the whole batch
with prefetching; ``render_edits`` copies the tokens with the edits applied into an output
array sized exactly from the plan. The tables and the sampling parameters are prepared in
Python (link_fast/kernel_tables.py); this module only takes typed arrays and integers, and
raises link_fast.errors.InputError for bad data. _kernel.pyi types it.
"""

from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from collections import namedtuple

import numpy as np

from link_fast.errors import InputError

# What substitute counted over a batch.
Counts = namedtuple("Counts", "words candidates eligible_documents eligible_candidates tokens_in tokens_out substitutions")

# The C constants, for Python: tokenizer.py's FLAG_* are these, the others are pinned by tests.
FLAG_WS_START = LF_WS_START
FLAG_GLUE_LEFT = LF_GLUE_LEFT
FLAG_END_WORD = LF_END_WORD
FLAG_SPECIAL = LF_SPECIAL
FLAG_HAS_WORD = LF_HAS_WORD
FLAG_FUSES_RIGHT = LF_FUSES_RIGHT
FLAG_KEY_START = LF_KEY_START
FLAG_MAY_JOIN = LF_MAY_JOIN
JOINER_ONLY = LF_JOINER_ONLY
JOINER_THEN_WORD = LF_JOINER_THEN_WORD
WORD_THEN_JOINER = LF_WORD_THEN_JOINER
JOINERS_THEN_BACKTICK = LF_JOINERS_THEN_BACKTICK
BACKTICK_THEN_JOINERS = LF_BACKTICK_THEN_JOINERS
MAX_LANGUAGES = LF_MAX_LANGUAGES
ALWAYS = LF_ALWAYS
DOMAINS = {"document": LF_DOMAIN_DOCUMENT, "doc_lang": LF_DOMAIN_DOC_LANG, "replace": LF_DOMAIN_REPLACE,
           "lang": LF_DOMAIN_LANG, "translate": LF_DOMAIN_TRANSLATE}
# The most trie nodes the edge table can hold: a slot keeps (node << 1 | has children) in an
# int32. Vocab.load refuses a larger trie.
MAX_NODES = 1 << 30

# Compile-time constants (an enum, not module variables the hot loops would reload):
cdef enum:
    # how many edits ahead the resolve and render loops prefetch: enough to cover a memory
    # latency with a few edits' work
    AHEAD = 16
    # how many start positions ahead the scan prefetches a root entry (ROOT_AHEAD), reads it
    # and prefetches its edge-table bucket (PREFETCH_AHEAD), and looks the edge up once the
    # bucket is cached (LOOKUP_AHEAD): far enough to cover a memory latency, near enough that
    # the lines are still cached at use (docs/PERFORMANCE.md has the distances tried). ROOT_AHEAD
    # only needs to stay ahead of PREFETCH_AHEAD
    ROOT_AHEAD = 24
    PREFETCH_AHEAD = 16
    LOOKUP_AHEAD = 6
    # a document is scanned in blocks of this many tokens, so that the start positions take
    # 1.5 MB whatever the document's length
    SCAN_BLOCK = 1 << 16


cdef inline int push_match(Edits *matches, int64_t start, int64_t end, int64_t doc, int32_t key) except -1 nogil:
    cdef Edit *match
    if matches.size == matches.capacity:
        edits_reserve(matches, matches.size + 1)
    match = &matches.data[matches.size]
    match.start = start
    match.end = end
    match.doc = doc
    match.target.key = key
    match.lang = -1
    matches.size += 1
    return 0


cdef int edits_reserve(Edits *edits, int64_t size) except -1 nogil:
    """Room for at least ``size`` edits, growing the capacity geometrically."""
    cdef Edit *grown
    cdef int64_t capacity = edits.capacity if edits.capacity else 1024
    if size <= edits.capacity:
        return 0
    while capacity < size:
        capacity *= 2
    grown = <Edit *> realloc(edits.data, capacity * sizeof(Edit))
    if grown == NULL:
        with gil:
            raise MemoryError("link_fast kernel: out of memory for the edit list")
    edits.data = grown
    edits.capacity = capacity
    return 0


cdef int64_t first_bad_token(const token_in *tokens, int64_t begin, int64_t finish, int64_t vocab_size) noexcept nogil:
    """Position of the first id outside the vocabulary, or -1. The scan trusts the ids after this."""
    cdef int64_t p
    cdef uint64_t largest = 0
    for p in range(begin, finish):
        largest = max(largest, <uint64_t> <uint32_t> tokens[p])
    if largest < <uint64_t> vocab_size:
        return -1
    for p in range(begin, finish):
        if <uint64_t> <uint32_t> tokens[p] >= <uint64_t> vocab_size:
            return p
    return -1


cdef int64_t find_starts(const Tables *t, const token_in *tokens, int64_t start, int64_t end,
                         uint32_t previous, Start *starts, int64_t *n_starts) noexcept nogil:
    """First pass over a block [start, end) of a document: count its words and list, in order,
    the positions where a key in play may start (the token starts a key, with a word boundary
    on its left). ``previous`` is the flags of the token before the block, 0 at the document's
    start. Returns the number of words.

    Branch-free on purpose: whether a prose token starts a key is a coin flip the branch
    predictor loses, and this pass is what every token pays. It reads only the flags (128 KB
    for Tekken, cached); the root entries (1 MB) are read in match_starts, prefetched.
    """
    cdef const uint8_t *flags = t.flags
    cdef int64_t i, n = 0, words = 0
    cdef uint32_t flag
    for i in range(start, end):
        flag = flags[<uint32_t> tokens[i]]
        words += lf_starts_word(flag, previous)
        starts[n].position = i
        # A form without a leading space needs a word boundary on its left that re-tokenizing
        # the translation will keep: not after a word character, nor after a token that fuses.
        n += ((flag & LF_KEY_START) != 0) & (
            ((flag & LF_WS_START) != 0) | ((previous & (LF_END_WORD | LF_FUSES_RIGHT)) == 0))
        previous = flag
    n_starts[0] = n
    return words


cdef inline void look_ahead(const Tables *t, const token_in *tokens, int64_t end, Start *starts,
                            int64_t n_starts, int64_t k) noexcept nogil:
    """The three stages of the pipeline that runs ahead of match_starts at start k: prefetch
    the root entry of start k + ROOT_AHEAD; read the root entry of start k + PREFETCH_AHEAD and
    prefetch its edge-table bucket; look up the edge of start k + LOOKUP_AHEAD, whose bucket is
    cached by now, and when its phrase may go on, prefetch the bucket of the next edge, which
    match_starts looks up at start k."""
    cdef int64_t ahead = k + ROOT_AHEAD, position
    cdef const lf_edge_slot *edge
    if ahead < n_starts:
        lf_prefetch(&t.root[<uint32_t> tokens[starts[ahead].position]])
    ahead = k + PREFETCH_AHEAD
    if 0 <= ahead < n_starts:
        starts[ahead].entry = t.root[<uint32_t> tokens[starts[ahead].position]]
        if starts[ahead].entry.descend >= 0 and starts[ahead].position + 1 < end:
            lf_prefetch_edge(t.edge_table, t.edge_table_bits, starts[ahead].entry.descend,
                             <uint32_t> tokens[starts[ahead].position + 1])
    ahead = k + LOOKUP_AHEAD
    if 0 <= ahead < n_starts:
        edge = NULL
        position = starts[ahead].position
        if starts[ahead].entry.descend >= 0 and position + 1 < end:
            edge = lf_find_edge(t.edge_table, t.edge_table_bits, starts[ahead].entry.descend,
                                <uint32_t> tokens[position + 1])
            if edge != NULL and (edge.child & 1) and position + 2 < end:
                lf_prefetch_edge(t.edge_table, t.edge_table_bits, <uint32_t> (edge.child >> 1),
                                 <uint32_t> tokens[position + 2])
        starts[ahead].edge = edge


cdef bint joined_right(const Tables *t, const token_in *tokens, int64_t j, int64_t end) noexcept nogil:
    """Whether the text from token j on is one or more joiners, then a word character, or no
    joiner or some, then a backtick (DESIGN §3): a match ending before j would be part of code,
    a URL, a path or a contraction. The joiners may run over any number of tokens that are
    nothing else."""
    cdef uint8_t joiner = t.joiner_flags[<uint32_t> tokens[j]]
    if joiner & (LF_JOINER_THEN_WORD | LF_JOINERS_THEN_BACKTICK):
        return True
    if not (joiner & LF_JOINER_ONLY):
        return False
    j += 1
    while j < end and (t.joiner_flags[<uint32_t> tokens[j]] & LF_JOINER_ONLY):
        j += 1
    return j < end and ((t.flags[<uint32_t> tokens[j]] & LF_GLUE_LEFT) != 0 or (
        t.joiner_flags[<uint32_t> tokens[j]] & (LF_JOINER_THEN_WORD | LF_JOINERS_THEN_BACKTICK)) != 0)


cdef bint joined_left(const Tables *t, const token_in *tokens, int64_t i, int64_t begin) noexcept nogil:
    """Whether the text before token i (back to the document's start ``begin``) ends with a word
    character, then one or more joiners, or with a backtick, then no joiner or some:
    joined_right's mirror."""
    cdef uint8_t joiner
    if i == begin:
        return False
    joiner = t.joiner_flags[<uint32_t> tokens[i - 1]]
    if joiner & (LF_WORD_THEN_JOINER | LF_BACKTICK_THEN_JOINERS):
        return True
    if not (joiner & LF_JOINER_ONLY):
        return False
    i -= 1
    while i > begin and (t.joiner_flags[<uint32_t> tokens[i - 1]] & LF_JOINER_ONLY):
        i -= 1
    return i > begin and ((t.flags[<uint32_t> tokens[i - 1]] & LF_END_WORD) != 0 or (
        t.joiner_flags[<uint32_t> tokens[i - 1]] & (LF_WORD_THEN_JOINER | LF_BACKTICK_THEN_JOINERS)) != 0)


cdef inline bint word_ends_before(const Tables *t, const token_in *tokens, int64_t end, int64_t j) noexcept nogil:
    """Whether a match may end before position j: the next token neither continues the word
    nor joins it to a following one. The flags say at once for almost every token; only a
    token that starts with a joiner or a backtick needs a closer look."""
    cdef uint8_t flag
    if j == end:
        return True
    flag = t.flags[<uint32_t> tokens[j]]
    if flag & LF_GLUE_LEFT:
        return False
    return not (flag & LF_MAY_JOIN) or not joined_right(t, tokens, j, end)


cdef inline bint key_fits(const Tables *t, uint32_t selected, const token_in *tokens, int64_t end,
                          int32_t key, int64_t j) noexcept nogil:
    """Whether a match of ``key`` may end before position j: the key is in play and the word
    ends there."""
    return key >= 0 and (t.all_keys_in_play or (t.key_lang_mask[key] & selected) != 0) and (
        word_ends_before(t, tokens, end, j))


cdef int match_starts(const Tables *t, uint32_t selected, const token_in *tokens, int64_t begin, int64_t end,
                      Start *starts, int64_t n_starts, int64_t doc, Edits *matches,
                      int64_t *covered) except -1 nogil:
    """Second pass: the leftmost-longest, non-overlapping matches of keys in play among a
    block's start positions, appended to ``matches``. A match may run past the block, up to
    the document's ``end``; ``covered`` is where the last match so far ends, block to block.
    A match joined on its left to a word (joined_left; ``begin`` is the document's start) is
    none: whether it is does not depend on its length, so it is asked once, of the longest.

    Edges to the next token come from the edge table, looked up a few starts ahead (see
    look_ahead); only phrases of four tokens or more binary-search the trie.
    """
    cdef const uint8_t *flags = t.flags
    cdef int64_t k, i, j, best_end, edge
    cdef int32_t node, best_key
    cdef const lf_edge_slot *slot
    for k in range(-ROOT_AHEAD, 0):
        look_ahead(t, tokens, end, starts, n_starts, k)
    for k in range(n_starts):
        look_ahead(t, tokens, end, starts, n_starts, k)
        i = starts[k].position
        if i < covered[0]:  # inside the previous match
            continue
        best_key = starts[k].entry.key
        best_end = i + 1
        if best_key >= 0 and not word_ends_before(t, tokens, end, i + 1):
            best_key = -1
        # The first edge was looked up ahead (look_ahead), the second's bucket prefetched; both
        # come from the edge table. Deeper ones, rare, binary-search the trie.
        node = -1
        j = i + 1
        slot = starts[k].edge
        if slot != NULL:
            j += 1
            if key_fits(t, selected, tokens, end, slot.child_key, j):
                best_key = slot.child_key
                best_end = j
            if (slot.child & 1) and j < end:
                slot = lf_find_edge(t.edge_table, t.edge_table_bits, <uint32_t> (slot.child >> 1),
                                    <uint32_t> tokens[j])
                if slot != NULL:
                    j += 1
                    if key_fits(t, selected, tokens, end, slot.child_key, j):
                        best_key = slot.child_key
                        best_end = j
                    if slot.child & 1:
                        node = slot.child >> 1
        while node >= 0 and j < end:
            edge = lf_find_child(t.edge_token, t.node_edge_start[node], t.node_edge_count[node],
                                 <uint32_t> tokens[j])
            if edge < 0:
                break
            node = t.edge_node[edge]
            j += 1
            if key_fits(t, selected, tokens, end, t.node_key[node], j):
                best_key = t.node_key[node]
                best_end = j
            if t.node_edge_count[node] == 0:
                break
        if best_key < 0:
            continue
        if not (flags[<uint32_t> tokens[i]] & LF_WS_START) and joined_left(t, tokens, i, begin):
            continue
        push_match(matches, i, best_end, doc, best_key)
        if not t.all_keys_in_play or t.n_languages > 1:
            lf_prefetch(&t.key_lang_mask[best_key])  # read when sampling this match
        covered[0] = best_end
    return 0


# One stretch of a long document, substituted on its own (DESIGN §4): ``substitute`` with a
# piece takes one "document", tokens [start, stop) of the document [begin, end), cut where
# document_cuts says no match crosses.
cdef struct Piece:
    int64_t begin                 # the whole document: boundaries and matches look this far
    int64_t end
    int64_t first_candidate       # the document's candidates before the stretch
    int64_t words                 # the whole document's words and candidates, for ratio_basis="words"
    int64_t candidates
    int64_t covered               # out: where the stretch's last match ends


cdef int plan_edits(const Tables *t, const SamplingParams *s, const token_in *tokens, const int64_t *offsets,
                    int64_t n_docs, int64_t first_doc, const int64_t *doc_ids, Piece *piece, Edits *edits,
                    Counters *c) except -1 nogil:
    """Scan and sample every document; append the edits, translations not yet resolved.
    Document d draws as document doc_ids[d], or first_doc + d when doc_ids is NULL. With a
    ``piece`` the one document is a stretch of a longer one, which its scan sees whole."""
    cdef Edits matches = Edits(NULL, 0, 0)
    cdef int64_t d, words, n_starts, block, block_end, covered, begin, end
    cdef Start *starts = NULL
    try:
        starts = <Start *> malloc(SCAN_BLOCK * sizeof(Start))
        if starts == NULL:
            with gil:
                raise MemoryError("link_fast kernel: out of memory for the start positions")
        for d in range(n_docs):
            matches.size = 0
            words = covered = 0
            if piece != NULL:
                begin, end = piece.begin, piece.end
            else:
                begin, end = offsets[d], offsets[d + 1]
            block = offsets[d]
            while block < offsets[d + 1]:
                block_end = min(block + SCAN_BLOCK, offsets[d + 1])
                words += find_starts(t, tokens, block, block_end,
                                     t.flags[<uint32_t> tokens[block - 1]] if block > begin else 0,
                                     starts, &n_starts)
                match_starts(t, s.selected_mask, tokens, begin, end, starts, n_starts, d, &matches, &covered)
                block = block_end
            c.words += words
            c.candidates += matches.size
            if piece != NULL:
                piece.covered = covered
                sample_document(t, s, &matches, doc_ids[d] if doc_ids != NULL else first_doc + d, d,
                                piece.first_candidate, piece.words, piece.candidates, edits, c)
            else:
                sample_document(t, s, &matches, doc_ids[d] if doc_ids != NULL else first_doc + d, d,
                                0, words, matches.size, edits, c)
    finally:
        free(matches.data)
        free(starts)
    return 0


cdef int64_t find_cuts(const Tables *t, uint32_t selected, const token_in *tokens, int64_t begin, int64_t end,
                       int64_t every, int64_t start, int64_t stop, int64_t *cuts, int64_t *firsts,
                       int64_t *state) except -1 nogil:
    """Scan the document [begin, end) as plan_edits does, without sampling, from ``start`` (its
    beginning, or a cut), and cut it into stretches of at least ``every`` tokens (the last may
    be shorter) at positions no match crosses, until the first cut at or past ``stop``. Returns
    the number of cuts; cut k is at cuts[k], with firsts[k] of the candidates counted from
    ``start``. ``state`` gets where the scan ended (the last cut, or ``end``) and the words
    and candidates of [start, there). Block ends are not part of the semantics, so a block ends
    wherever a stretch could end."""
    cdef Edits matches = Edits(NULL, 0, 0)
    cdef Start *starts = NULL
    cdef int64_t block = start, block_end, n_starts, covered = 0, next_cut = start + every, n = 0
    cdef int64_t words = 0, candidates = 0
    try:
        starts = <Start *> malloc(SCAN_BLOCK * sizeof(Start))
        if starts == NULL:
            with gil:
                raise MemoryError("link_fast kernel: out of memory for the start positions")
        while block < end:
            block_end = min(block + SCAN_BLOCK, next_cut, end)
            words += find_starts(t, tokens, block, block_end,
                                 t.flags[<uint32_t> tokens[block - 1]] if block > begin else 0, starts, &n_starts)
            match_starts(t, selected, tokens, begin, end, starts, n_starts, 0, &matches, &covered)
            candidates += matches.size
            matches.size = 0
            block = block_end
            if block < next_cut:
                continue
            next_cut = max(block, covered)  # after the match that runs past the block, if one does
            if next_cut >= end:
                next_cut = end
                continue
            cuts[n] = next_cut
            firsts[n] = candidates
            n += 1
            if next_cut >= stop:
                while block < next_cut:  # the words inside that match, before the cut
                    block_end = min(block + SCAN_BLOCK, next_cut)
                    words += find_starts(t, tokens, block, block_end, t.flags[<uint32_t> tokens[block - 1]],
                                         starts, &n_starts)
                    block = block_end
                break
            next_cut += every
    finally:
        free(matches.data)
        free(starts)
    state[0] = block
    state[1] = words
    state[2] = candidates
    return n


cdef int sample_document(const Tables *t, const SamplingParams *s, const Edits *matches, int64_t doc,
                         int64_t d, int64_t first_candidate, int64_t words, int64_t candidates, Edits *edits,
                         Counters *c) except -1 nogil:
    """A document's draws: whether it is eligible, which of its matches are replaced, then the
    language and the translation draw of each replaced one. ``doc`` numbers the document for
    the draws, ``d`` within the batch; its matches are its candidates from ``first_candidate``
    on, of ``candidates`` in all among ``words`` words (a stretch of it has more before it)."""
    cdef int64_t m, first = edits.size
    cdef uint64_t threshold, replace
    cdef double p
    cdef int32_t doc_lang = -1, key
    cdef uint32_t take
    cdef Edit *edit
    if not lf_bernoulli(lf_draw(s.base, LF_DOMAIN_DOCUMENT, doc, 0), s.portion_threshold):
        return 0
    c.eligible_documents += 1
    c.eligible_candidates += matches.size
    threshold = s.ratio_threshold
    if s.ratio_basis_words and candidates:
        p = s.ratio * <double> words / <double> candidates
        threshold = LF_ALWAYS if p >= 1.0 else <uint64_t> (p * <double> LF_ALWAYS)
    if s.lang_scope_document:
        doc_lang = lf_pick_language(s.lang_weight, t.n_languages, s.selected_mask,
                                    lf_draw(s.base, LF_DOMAIN_DOC_LANG, doc, 0))
    # Candidate first_candidate + m draws at stream + first_candidate + m (lf_draw_at): the
    # streams start at the first candidate, and the loops count from 0.
    replace = lf_draw_stream(s.base, LF_DOMAIN_REPLACE, doc) + <uint64_t> first_candidate
    # Without branches: which candidates are replaced is a coin flip per candidate. Each
    # candidate is written at the end of the edit list, which grows only if it is taken.
    edits_reserve(edits, edits.size + matches.size)
    for m in range(matches.size):
        take = lf_bernoulli(lf_draw_at(replace, m), threshold)
        key = <int32_t> matches.data[m].target.key
        if s.lang_scope_document:
            take &= (t.key_lang_mask[key] >> doc_lang) & 1
        edit = &edits.data[edits.size]
        edit.start = matches.data[m].start
        edit.end = matches.data[m].end
        edit.doc = d
        edit.target.key = key
        edit.length.candidate = m
        edits.size += take
    choose_languages(t, s, edits.data + first, edits.size - first, doc, first_candidate, doc_lang, c)
    return 0


cdef void choose_languages(const Tables *t, const SamplingParams *s, Edit *edits, int64_t n, int64_t doc,
                           int64_t first_candidate, int32_t doc_lang, Counters *c) noexcept nogil:
    """Each of a document's replaced matches gets its language and its TRANSLATE draw: its
    (target.key, length.candidate) become (target.slot, length.draw). Only the replaced ones
    are drawn for, after the coin flips: the language pick reads the key's language mask and
    costs as much as a flip. Candidates are counted from ``first_candidate`` (sample_document)."""
    cdef uint64_t choose_lang = lf_draw_stream(s.base, LF_DOMAIN_LANG, doc) + <uint64_t> first_candidate
    cdef uint64_t translate = lf_draw_stream(s.base, LF_DOMAIN_TRANSLATE, doc) + <uint64_t> first_candidate
    cdef int64_t e, m
    cdef int32_t lang, key
    for e in range(n):
        key = <int32_t> edits[e].target.key
        m = edits[e].length.candidate
        if s.lang_scope_document:
            lang = doc_lang
        elif t.n_languages == 1:
            lang = 0  # a match is of a key in play: the one language
        else:
            lang = lf_pick_language(s.lang_weight, t.n_languages, t.key_lang_mask[key] & s.selected_mask,
                                    lf_draw_at(choose_lang, m))
        edits[e].target.slot = <int64_t> key * t.n_languages + lang
        edits[e].length.draw = lf_draw_at(translate, m)
        edits[e].lang = lang
        c.substitutions[lang] += 1


cdef void resolve_edits(const Tables *t, Edit *edits, int64_t n) noexcept nogil:
    """Turn each edit's (target.slot, length.draw) into (target.first_token, length.n_tokens).

    One pass per dependent lookup, each prefetching AHEAD edits on: the lookups of different
    edits are independent, so their cache misses overlap instead of adding up.
    """
    cdef int64_t e, first, slot, trans
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.key_trans_start[edits[e + AHEAD].target.slot])
        if e + AHEAD // 2 < n:  # its key_trans_start entry was fetched AHEAD // 2 edits ago
            lf_prefetch(&t.key_trans_cum[t.key_trans_start[edits[e + AHEAD // 2].target.slot]])
        slot = edits[e].target.slot
        first = t.key_trans_start[slot]
        edits[e].target.translation = lf_pick_cumulated(t.key_trans_cum, first, t.key_trans_start[slot + 1],
                                                        edits[e].length.draw)
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.key_trans[edits[e + AHEAD].target.translation])
        edits[e].target.translation = t.key_trans[edits[e].target.translation]
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.trans_offsets[edits[e + AHEAD].target.translation])
        trans = edits[e].target.translation
        edits[e].target.first_token = t.trans_offsets[trans]
        edits[e].length.n_tokens = t.trans_offsets[trans + 1] - t.trans_offsets[trans]


cdef int64_t output_offsets(const int64_t *offsets, int64_t n_docs, const Edit *edits, int64_t n,
                            int64_t *out_offsets) noexcept nogil:
    """Each document's output offsets from its input offsets and its edits' length changes."""
    cdef int64_t d, e = 0, change = 0
    out_offsets[0] = 0
    for d in range(n_docs):
        while e < n and edits[e].doc == d:
            change += edits[e].length.n_tokens - (edits[e].end - edits[e].start)
            e += 1
        out_offsets[d + 1] = offsets[d + 1] - offsets[0] + change
    return out_offsets[n_docs]


cdef inline uint8_t all_set(const uint8_t *flags, int64_t begin, int64_t end) noexcept nogil:
    """1 if every one of flags[begin:end] is non-zero, else 0."""
    cdef int64_t p
    for p in range(begin, end):
        if flags[p] == 0:
            return 0
    return 1


cdef uint64_t render_edits(const Tables *t, const token_in *tokens, int64_t begin, int64_t finish,
                           const Edit *edits, int64_t n, token_out *out, uint8_t *mask,
                           const uint8_t *loss, uint8_t *loss_out) noexcept nogil:
    """Copy tokens[begin:finish] to out with every resolved edit applied; mark emitted ids in
    mask. With ``loss`` (a flag per input token, datatrove's loss mask) fill ``loss_out`` as the
    ids move: a copied token keeps its flag, a translation's tokens are flagged when every token
    of the word it replaces was. Returns the largest emitted translation id, for the caller's
    overflow check."""
    cdef int64_t e, p, q, w = 0, pos = begin
    cdef uint64_t largest = 0
    cdef uint32_t token
    cdef Edit edit
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.trans_tokens[edits[e + AHEAD].target.first_token])
        edit = edits[e]
        if loss_out != NULL:
            memcpy(loss_out + w, loss + pos, edit.start - pos)
            memset(loss_out + w + edit.start - pos, all_set(loss, edit.start, edit.end), edit.length.n_tokens)
        if sizeof(token_in) == sizeof(token_out):  # same width: ids < vocab size are the same bits
            memcpy(out + w, tokens + pos, (edit.start - pos) * sizeof(token_out))
            w += edit.start - pos
        else:
            for p in range(pos, edit.start):
                out[w] = <token_out> tokens[p]
                w += 1
        if mask != NULL:
            memset(mask + w, 1, edit.length.n_tokens)
        for q in range(edit.target.first_token, edit.target.first_token + edit.length.n_tokens):
            token = t.trans_tokens[q]
            largest = max(largest, <uint64_t> token)
            out[w] = <token_out> token
            w += 1
        pos = edit.end
    if loss_out != NULL:
        memcpy(loss_out + w, loss + pos, finish - pos)
    for p in range(pos, finish):
        out[w] = <token_out> tokens[p]
        w += 1
    return largest


cdef class KernelTables:
    """The C view of a vocabulary's tables for one set of languages in play, keeping the arrays
    alive. Built by link_fast.kernel_tables.kernel_tables, which prepares the arrays."""

    cdef Tables tables
    cdef object _keep

    def __cinit__(self, *, const uint8_t[::1] scan_flags, const uint8_t[::1] joiner_flags, const int32_t[:, ::1] root,
                  const int32_t[::1] node_key, const int32_t[::1] node_edge_start,
                  const int32_t[::1] node_edge_count, const uint32_t[::1] edge_token,
                  const int32_t[::1] edge_node, const int32_t[:, ::1] edge_table, uint32_t edge_table_bits,
                  const uint32_t[::1] key_lang_mask, const int64_t[::1] key_trans_start,
                  const int32_t[::1] key_trans, const uint32_t[::1] key_trans_cum,
                  const int64_t[::1] trans_offsets,
                  const uint32_t[::1] trans_tokens, int32_t n_languages, bint all_keys_in_play):
        if not 1 <= n_languages <= LF_MAX_LANGUAGES:
            raise ValueError(f"between 1 and {LF_MAX_LANGUAGES} languages are supported, got {n_languages}")
        if root.shape[0] != scan_flags.shape[0] or root.shape[1] != 2:
            raise ValueError("root must have one (key, descend) row per token of scan_flags")
        if joiner_flags.shape[0] != scan_flags.shape[0]:
            raise ValueError("joiner_flags must have one entry per token of scan_flags")
        if edge_table.shape[0] != (<int64_t> 1 << edge_table_bits) * LF_BUCKET_SLOTS or edge_table.shape[1] != 4:
            raise ValueError("edge_table must have 2**edge_table_bits buckets of LF_BUCKET_SLOTS (node, token, child, child_key) rows")
        if key_trans_cum.shape[0] != key_trans.shape[0]:
            raise ValueError("key_trans_cum must have one entry per key_trans entry")
        self._keep = (scan_flags, joiner_flags, root, node_key, node_edge_start, node_edge_count, edge_token, edge_node,
                      edge_table, key_lang_mask, key_trans_start, key_trans, key_trans_cum, trans_offsets,
                      trans_tokens)
        self.tables.flags = &scan_flags[0] if scan_flags.shape[0] else NULL
        self.tables.joiner_flags = &joiner_flags[0] if joiner_flags.shape[0] else NULL
        self.tables.vocab_size = scan_flags.shape[0]
        self.tables.root = <const RootEntry *> &root[0, 0] if root.shape[0] else NULL
        self.tables.node_key = &node_key[0] if node_key.shape[0] else NULL
        self.tables.node_edge_start = &node_edge_start[0] if node_edge_start.shape[0] else NULL
        self.tables.node_edge_count = &node_edge_count[0] if node_edge_count.shape[0] else NULL
        self.tables.edge_token = &edge_token[0] if edge_token.shape[0] else NULL
        self.tables.edge_node = &edge_node[0] if edge_node.shape[0] else NULL
        self.tables.edge_table = <const lf_edge_slot *> &edge_table[0, 0]
        self.tables.edge_table_bits = edge_table_bits
        self.tables.all_keys_in_play = all_keys_in_play
        self.tables.key_lang_mask = &key_lang_mask[0] if key_lang_mask.shape[0] else NULL
        self.tables.key_trans_start = &key_trans_start[0]
        self.tables.key_trans = &key_trans[0] if key_trans.shape[0] else NULL
        self.tables.key_trans_cum = &key_trans_cum[0] if key_trans_cum.shape[0] else NULL
        self.tables.trans_offsets = &trans_offsets[0]
        self.tables.trans_tokens = &trans_tokens[0] if trans_tokens.shape[0] else NULL
        self.tables.n_languages = n_languages

    @property
    def vocab_size(self):
        return self.tables.vocab_size

    @property
    def n_languages(self):
        return self.tables.n_languages


cdef class KernelSampling:
    """The sampling parameters as the kernel reads them, resolved to integers by
    link_fast.kernel_tables.kernel_sampling."""

    cdef SamplingParams params
    cdef Py_ssize_t n_weights
    cdef object _keep

    def __cinit__(self, *, uint64_t base, uint64_t portion_threshold, uint64_t ratio_threshold, double ratio,
                  bint ratio_basis_words, bint lang_scope_document, uint32_t selected_mask,
                  const uint32_t[::1] lang_weight):
        if lang_weight.shape[0] == 0 or lang_weight.shape[0] > LF_MAX_LANGUAGES:
            raise ValueError(f"lang_weight needs 1 to {LF_MAX_LANGUAGES} weights, got {lang_weight.shape[0]}")
        cdef Py_ssize_t lang, n = lang_weight.shape[0]
        if selected_mask == 0 or (n < 32 and selected_mask >> n):
            raise ValueError("selected_mask must select some of the lang_weight languages and no others")
        for lang in range(n):
            if (selected_mask >> lang) & 1 and lang_weight[lang] == 0:
                raise ValueError(f"selected language {lang} has weight 0")
        self._keep = lang_weight
        self.n_weights = n
        self.params.base = base
        self.params.portion_threshold = portion_threshold
        self.params.ratio_threshold = ratio_threshold
        self.params.ratio = ratio
        self.params.ratio_basis_words = ratio_basis_words
        self.params.lang_scope_document = lang_scope_document
        self.params.selected_mask = selected_mask
        self.params.lang_weight = &lang_weight[0]

    @property
    def base(self):
        return self.params.base

    @property
    def lang_weight(self):
        return np.asarray(self._keep)


def substitute(KernelTables tables not None, KernelSampling sampling not None, const token_in[::1] tokens,
               const int64_t[::1] offsets, int64_t first_doc, object out_dtype, bint want_mask,
               const int64_t[::1] doc_ids=None, tuple piece=None, const uint8_t[::1] loss=None):
    """Plan, resolve, render. Returns (out_tokens, out_offsets, mask or None, counters), and with
    ``loss`` (a flag per token of ``tokens``: datatrove's loss mask) the output's flags after them
    (``render_edits`` says how they move).

    ``offsets`` must be non-decreasing and within ``tokens`` (checked by the caller). Document
    d draws as document ``first_doc + d``, or ``doc_ids[d]`` (one per document, >= 0, checked
    by the caller) when given. Raises InputError for a token id outside the vocabulary or an
    emitted translation id that does not fit ``out_dtype``: no truncated ids can escape.

    ``piece``: (begin, end, first candidate, words, candidates) when the one document is a
    stretch of the document tokens[begin:end] that ``document_cuts`` cut (and whose ids it
    checked); the stretch's ids are checked again, the rest are read as they are.
    """
    if sampling.n_weights != tables.tables.n_languages:
        raise ValueError(f"the sampling weighs {sampling.n_weights} languages, the tables have {tables.tables.n_languages}")
    cdef int64_t n_docs = offsets.shape[0] - 1
    if doc_ids is not None and doc_ids.shape[0] != n_docs:
        raise ValueError(f"{doc_ids.shape[0]} document indices for {n_docs} documents")
    cdef Piece piece_params
    cdef Piece *piece_ptr = NULL
    if piece is not None:
        piece_params.begin, piece_params.end, piece_params.first_candidate, piece_params.words, \
            piece_params.candidates = piece
        piece_params.covered = 0
        if n_docs != 1 or not (0 <= piece_params.begin <= offsets[0] <= offsets[1] <= piece_params.end
                               <= tokens.shape[0]) or min(piece_params.first_candidate, piece_params.words,
                                                          piece_params.candidates) < 0:
            raise ValueError("a piece is one stretch of its document, within tokens, with counts >= 0")
        piece_ptr = &piece_params
    cdef const int64_t *doc_ptr = &doc_ids[0] if doc_ids is not None and n_docs else NULL
    if loss is not None and loss.shape[0] != tokens.shape[0]:
        raise ValueError(f"{loss.shape[0]} loss flags for {tokens.shape[0]} tokens")
    cdef const uint8_t *loss_ptr = &loss[0] if loss is not None and loss.shape[0] else NULL
    out_offsets = np.empty(n_docs + 1, dtype=np.int64)
    cdef int64_t[::1] out_offsets_view = out_offsets
    cdef Counters c
    memset(&c, 0, sizeof(Counters))
    cdef Edits edits = Edits(NULL, 0, 0)
    cdef const token_in *token_ptr = &tokens[0] if tokens.shape[0] else NULL
    cdef int64_t begin = offsets[0], finish = offsets[n_docs]
    try:
        with nogil:
            c.bad_token_position = first_bad_token(token_ptr, begin, finish, tables.tables.vocab_size)
            if c.bad_token_position < 0:
                plan_edits(&tables.tables, &sampling.params, token_ptr, &offsets[0], n_docs, first_doc, doc_ptr,
                           piece_ptr, &edits, &c)
                resolve_edits(&tables.tables, edits.data, edits.size)
                c.tokens_out = output_offsets(&offsets[0], n_docs, edits.data, edits.size, &out_offsets_view[0])
        if c.bad_token_position >= 0:
            raise InputError(f"token id {tokens[c.bad_token_position]} at position {c.bad_token_position} is "
                             f"outside the vocabulary of {tables.tables.vocab_size} ids")
        if piece_ptr != NULL and piece_params.covered > offsets[1]:  # rendering it would overrun the output
            raise InputError(f"a match runs past the end of the stretch at {offsets[1]}: cut where document_cuts says")
        out = np.empty(c.tokens_out, dtype=out_dtype)
        mask = np.zeros(c.tokens_out, dtype=np.uint8) if want_mask else None
        loss_out = np.empty(c.tokens_out, dtype=np.uint8) if loss is not None else None
        c.max_emitted_id = _render(&tables.tables, token_ptr, begin, finish, &edits, out, mask, loss_ptr, loss_out)
        if c.max_emitted_id > <uint64_t> np.iinfo(out.dtype).max:
            raise InputError(f"a translation token id ({c.max_emitted_id}) does not fit {out.dtype}: "
                             f"choose a wider output dtype (--out-dtype int32)")
        counters = Counts(c.words, c.candidates, c.eligible_documents, c.eligible_candidates, finish - begin,
                          c.tokens_out, [c.substitutions[i] for i in range(tables.tables.n_languages)])
        if loss is not None:
            return out, out_offsets, mask, counters, loss_out
        return out, out_offsets, mask, counters
    finally:
        free(edits.data)


def document_cuts(KernelTables tables not None, KernelSampling sampling not None, const token_in[::1] tokens,
                  int64_t begin, int64_t end, int64_t every, int64_t start, int64_t stop):
    """Where the document tokens[begin:end] may be cut so that ``substitute`` with a ``piece``
    gives, stretch by stretch, what it gives for the whole, scanned from ``start`` (``begin``
    or a cut) to the first cut at or past ``stop`` (find_cuts): (the cuts, candidates from
    ``start`` before each, where the scan ended, words and candidates from ``start`` to
    there). Every id of the document must be below the vocabulary size, checked by the
    caller (Substituter.cuts checks them a window at a time, to keep few pages mapped in)."""
    if not (0 <= begin <= start <= end <= tokens.shape[0] and every >= 1):
        raise ValueError("need 0 <= begin <= start <= end <= len(tokens) and every >= 1")
    cdef int64_t most = (end - start) // every + 1
    cuts, firsts = np.empty(most, dtype=np.int64), np.empty(most, dtype=np.int64)
    cdef int64_t[::1] cuts_view = cuts, firsts_view = firsts
    cdef int64_t state[3]
    cdef int64_t n = 0
    cdef const token_in *token_ptr = &tokens[0] if tokens.shape[0] else NULL
    state[0], state[1], state[2] = start, 0, 0
    with nogil:
        n = find_cuts(&tables.tables, sampling.params.selected_mask, token_ptr, begin, end, every, start, stop,
                      &cuts_view[0], &firsts_view[0], state)
    return cuts[:n], firsts[:n], state[0], state[1], state[2]


cdef uint64_t _render(const Tables *t, const token_in *tokens, int64_t begin, int64_t finish,
                      const Edits *edits, object out, object mask, const uint8_t *loss, object loss_out):
    cdef uint8_t[::1] mask_view, loss_view
    cdef uint8_t *mask_ptr = NULL
    cdef uint8_t *loss_ptr = NULL
    cdef uint16_t[::1] out16
    cdef int32_t[::1] out32
    cdef uint32_t[::1] outu32
    cdef uint64_t largest = 0
    if mask is not None and len(mask):
        mask_view = mask
        mask_ptr = &mask_view[0]
    if loss_out is not None and len(loss_out):
        loss_view = loss_out
        loss_ptr = &loss_view[0]
    if len(out) == 0:
        return 0
    if out.dtype == np.uint16:
        out16 = out
        with nogil:
            largest = render_edits(t, tokens, begin, finish, edits.data, edits.size, &out16[0], mask_ptr, loss,
                                   loss_ptr)
    elif out.dtype == np.int32:
        out32 = out
        with nogil:
            largest = render_edits(t, tokens, begin, finish, edits.data, edits.size, &out32[0], mask_ptr, loss,
                                   loss_ptr)
    else:
        outu32 = out
        with nogil:
            largest = render_edits(t, tokens, begin, finish, edits.data, edits.size, &outu32[0], mask_ptr, loss,
                                   loss_ptr)
    return largest


def _cache_line_aligned(shape, dtype):
    """An empty C-contiguous array starting on a 64-byte boundary: numpy only promises 16, and
    a bucket that straddles two cache lines costs the lookup a second, unprefetched line."""
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(n_bytes + 64, dtype=np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip : skip + n_bytes].view(dtype).reshape(shape)


def build_edge_table(dict arrays):
    """The edge table of a vocabulary's trie: the edges of every node one or two tokens deep,
    keyed by (node, token), in a bucketed hash table at most half full (csrc/link_fast.h
    describes the layout). These are the lookups that common words (` the`, with hundreds of
    phrase children) make at almost every occurrence, and that the scan can prefetch: the
    first edge a few starts ahead, the second once the first is known. Deeper nodes, reached
    rarely, keep the binary search.

    Returns (int32 array of shape (2^bits * LF_BUCKET_SLOTS, 4), bits): rows are lf_edge_slot.
    """
    root = np.asarray(arrays["root_child"])
    count = np.asarray(arrays["node_edge_count"])
    if len(count) >= MAX_NODES:
        raise ValueError(f"a trie of {len(count):,} nodes is too large for the edge table (under {MAX_NODES:,})")
    first_nodes = root[root >= 0]
    first_nodes = first_nodes[count[first_nodes] > 0]
    # The children of the first nodes: each node's edge range, concatenated without a Python loop.
    counts = count[first_nodes].astype(np.int64)
    range_starts = np.asarray(arrays["node_edge_start"])[first_nodes] - (counts.cumsum() - counts)
    second_nodes = np.asarray(arrays["edge_node"])[np.repeat(range_starts, counts) + np.arange(counts.sum())]
    second_nodes = second_nodes[count[second_nodes] > 0]
    hashed_nodes = np.ascontiguousarray(np.concatenate([first_nodes, second_nodes]), dtype=np.int32)
    cdef int64_t n_edges = int(count[hashed_nodes].sum())
    cdef uint32_t bits = max(2, int(2 * n_edges // LF_BUCKET_SLOTS).bit_length())
    table = _cache_line_aligned(((1 << bits) * LF_BUCKET_SLOTS, 4), np.int32)
    table.fill(-1)
    cdef int32_t[:, ::1] slots = table
    cdef const int32_t[::1] nodes = hashed_nodes
    cdef const int32_t[::1] node_key = arrays["node_key"]
    cdef const int32_t[::1] edge_start = arrays["node_edge_start"]
    cdef const int32_t[::1] edge_count = arrays["node_edge_count"]
    cdef const uint32_t[::1] edge_token = arrays["edge_token"]
    cdef const int32_t[::1] edge_node = arrays["edge_node"]
    cdef int64_t n, e, bucket, slot, mask = (<int64_t> 1 << bits) - 1
    cdef int32_t node, child
    with nogil:
        for n in range(nodes.shape[0]):
            node = nodes[n]
            for e in range(edge_start[node], edge_start[node] + edge_count[node]):
                child = edge_node[e]
                bucket = <int64_t> lf_edge_hash(bits, <uint32_t> node, edge_token[e])
                while slots[bucket * LF_BUCKET_SLOTS + LF_BUCKET_SLOTS - 1, 2] >= 0:
                    bucket = (bucket + 1) & mask
                slot = bucket * LF_BUCKET_SLOTS
                while slots[slot, 2] >= 0:
                    slot += 1
                slots[slot, 0] = node
                slots[slot, 1] = <int32_t> edge_token[e]
                slots[slot, 2] = (child << 1) | (edge_count[child] > 0)
                slots[slot, 3] = node_key[child]
    return table, bits


def draws(uint64_t base, uint64_t domain, uint64_t doc, int64_t count, uint64_t first=0):
    """``lf_draw(base, domain, doc, c)`` for c in range(first, first + count), as uint64: the
    draws text mode makes, from the same C as token mode's."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    out = np.empty(count, dtype=np.uint64)
    cdef uint64_t[::1] view = out
    cdef uint64_t stream = lf_draw_stream(base, domain, doc)
    cdef int64_t i
    with nogil:
        for i in range(count):
            view[i] = lf_draw_at(stream, first + <uint64_t> i)
    return out


def draws_at(uint64_t base, uint64_t domain, uint64_t doc, const uint64_t[::1] candidates):
    """``lf_draw(base, domain, doc, c)`` for each c of ``candidates``, as uint64."""
    out = np.empty(candidates.shape[0], dtype=np.uint64)
    cdef uint64_t[::1] view = out
    cdef uint64_t stream = lf_draw_stream(base, domain, doc)
    cdef Py_ssize_t i
    with nogil:
        for i in range(candidates.shape[0]):
            view[i] = lf_draw_at(stream, candidates[i])
    return out


def draw(uint64_t base, uint64_t domain, uint64_t doc, uint64_t cand):
    """``lf_draw``: one 64-bit draw."""
    return lf_draw(base, domain, doc, cand)


def mix64(uint64_t z):
    """``lf_mix64``: SplitMix64's finaliser."""
    return lf_mix64(z)
