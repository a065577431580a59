"""Substitution kernel: find dictionary words in token-id documents, sample, rewrite.

All without the GIL. ``plan_edits`` checks the ids, scans each document in two passes
(``find_starts`` counts words and lists where keys may start; ``match_starts`` finds the
leftmost-longest matches among them in the trie), draws the counter-based random decisions
and records the edits; ``resolve_edits`` looks up the chosen translations for the whole batch
with prefetching; ``render_edits`` copies the tokens with the edits applied into an output
array sized exactly from the plan. Options are validated in Python (link_fast/substituter.py).
"""

from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
import numpy as np

cdef uint64_t ALWAYS = 1ULL << 53
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
    # bucket is cached (LOOKUP_AHEAD). PREFETCH_AHEAD / LOOKUP_AHEAD at 8 / 4, 24 / 12, 12 / 6
    # and 16 / 10 measured no faster; ROOT_AHEAD only needs to stay ahead of PREFETCH_AHEAD
    ROOT_AHEAD = 24
    PREFETCH_AHEAD = 16
    LOOKUP_AHEAD = 6
    # a document is scanned in blocks of this many tokens, so that the start positions take
    # 1.5 MB whatever the document's length
    SCAN_BLOCK = 1 << 16


cdef inline int edits_push(Edits *edits, int64_t start, int64_t end, int64_t doc, int64_t target,
                           uint64_t choice, int32_t lang) except -1 nogil:
    if edits.size == edits.capacity:
        edits_reserve(edits, edits.size + 1)
    edits.data[edits.size] = Edit(start, end, doc, target, choice, lang)
    edits.size += 1
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


cdef inline int32_t pick_language(const Sampling *s, int32_t n_languages, uint32_t available, uint64_t h) noexcept nogil:
    """A language among the ``available`` bits, with probability proportional to its weight."""
    cdef uint64_t total = 0, cumulative = 0, r
    cdef int32_t lang
    for lang in range(n_languages):
        if available & (1u << lang):
            total += s.lang_weight[lang]
    r = lf_below(h, total)
    for lang in range(n_languages):
        if available & (1u << lang):
            cumulative += s.lang_weight[lang]
            if r < cumulative:
                return lang
    return -1  # unreachable: every available language has weight > 0


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


cdef inline bint key_fits(const Tables *t, uint32_t selected, const token_in *tokens, int64_t end,
                          int32_t key, int64_t j) noexcept nogil:
    """Whether a match of ``key`` may end before position j: the key is in play and the next
    token does not glue onto it."""
    return key >= 0 and (t.all_keys_in_play or (t.key_lang_mask[key] & selected) != 0) and (
        j == end or not (t.flags[<uint32_t> tokens[j]] & LF_GLUE_LEFT))


cdef int match_starts(const Tables *t, uint32_t selected, const token_in *tokens, int64_t end,
                      Start *starts, int64_t n_starts, int64_t doc, Edits *matches,
                      int64_t *covered) except -1 nogil:
    """Second pass: the leftmost-longest, non-overlapping matches of keys in play among a
    block's start positions, appended to ``matches``. A match may run past the block, up to
    the document's ``end``; ``covered`` is where the last match so far ends, block to block.

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
        if best_key >= 0 and i + 1 < end and (flags[<uint32_t> tokens[i + 1]] & LF_GLUE_LEFT):
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
        edits_push(matches, i, best_end, doc, best_key, 0, -1)
        if not t.all_keys_in_play or t.n_languages > 1:
            lf_prefetch(&t.key_lang_mask[best_key])  # read when sampling this match
        covered[0] = best_end
    return 0


cdef int plan_edits(const Tables *t, const Sampling *s, const token_in *tokens, const int64_t *offsets,
                    int64_t n_docs, int64_t first_doc, Edits *edits, Counters *c) except -1 nogil:
    """Scan and sample every document; append the edits, translations not yet resolved."""
    cdef Edits matches = Edits(NULL, 0, 0)
    cdef int64_t d, doc, m, words, n_starts, block, block_end, covered
    cdef Start *starts = NULL
    cdef uint64_t threshold, replace, choose_lang, translate
    cdef double p
    cdef int32_t doc_lang = -1, lang, key
    cdef uint32_t available, take
    cdef Edit match
    try:
        starts = <Start *> malloc(SCAN_BLOCK * sizeof(Start))
        if starts == NULL:
            with gil:
                raise MemoryError("link_fast kernel: out of memory for the start positions")
        for d in range(n_docs):
            doc = first_doc + d
            matches.size = 0
            words = covered = 0
            block = offsets[d]
            while block < offsets[d + 1]:
                block_end = min(block + SCAN_BLOCK, offsets[d + 1])
                words += find_starts(t, tokens, block, block_end,
                                     t.flags[<uint32_t> tokens[block - 1]] if block > offsets[d] else 0,
                                     starts, &n_starts)
                match_starts(t, s.selected_mask, tokens, offsets[d + 1], starts, n_starts, d, &matches, &covered)
                block = block_end
            c.words += words
            c.candidates += matches.size
            if not lf_bernoulli(lf_draw(s.base, LF_DOMAIN_DOCUMENT, doc, 0), s.portion_threshold):
                continue
            c.eligible_documents += 1
            c.eligible_candidates += matches.size
            threshold = s.ratio_threshold
            if s.ratio_basis_words and matches.size:
                p = s.ratio * <double> words / <double> matches.size
                threshold = ALWAYS if p >= 1.0 else <uint64_t> (p * 9007199254740992.0)
            if s.lang_scope_document:
                doc_lang = pick_language(s, t.n_languages, s.selected_mask,
                                         lf_draw(s.base, LF_DOMAIN_DOC_LANG, doc, 0))
            replace = lf_draw_stream(s.base, LF_DOMAIN_REPLACE, doc)
            choose_lang = lf_draw_stream(s.base, LF_DOMAIN_LANG, doc)
            translate = lf_draw_stream(s.base, LF_DOMAIN_TRANSLATE, doc)
            # Without branches: which candidates are replaced is a coin flip per candidate. Each
            # candidate is written at the end of the edit list, which grows only if it is taken.
            edits_reserve(edits, edits.size + matches.size)
            for m in range(matches.size):
                take = lf_bernoulli(lf_draw_at(replace, m), threshold)
                match = matches.data[m]
                key = <int32_t> match.target
                if s.lang_scope_document:
                    take &= (t.key_lang_mask[key] >> doc_lang) & 1
                    lang = doc_lang
                elif t.n_languages == 1:
                    lang = 0  # a match is of a key in play: the one language
                else:
                    available = t.key_lang_mask[key] & s.selected_mask
                    lang = pick_language(s, t.n_languages, available, lf_draw_at(choose_lang, m))
                edits.data[edits.size] = Edit(match.start, match.end, d, <int64_t> key * t.n_languages + lang,
                                              lf_draw_at(translate, m), lang)
                edits.size += take
                c.substitutions[lang] += take
    finally:
        free(matches.data)
        free(starts)
    return 0


cdef void resolve_edits(const Tables *t, Edit *edits, int64_t n) noexcept nogil:
    """Turn each edit's (slot, draw) into (first translation token, length).

    One pass per dependent lookup, each prefetching AHEAD edits on: the lookups of different
    edits are independent, so their cache misses overlap instead of adding up.
    """
    cdef int64_t e, first, trans
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.key_trans_start[edits[e + AHEAD].target])
        first = t.key_trans_start[edits[e].target]
        edits[e].target = first + <int64_t> lf_below(
            edits[e].choice, <uint64_t> (t.key_trans_start[edits[e].target + 1] - first))
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.key_trans[edits[e + AHEAD].target])
        edits[e].target = t.key_trans[edits[e].target]
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.trans_offsets[edits[e + AHEAD].target])
        trans = edits[e].target
        edits[e].target = t.trans_offsets[trans]
        edits[e].choice = <uint64_t> (t.trans_offsets[trans + 1] - t.trans_offsets[trans])


cdef int64_t output_offsets(const int64_t *offsets, int64_t n_docs, const Edit *edits, int64_t n,
                            int64_t *out_offsets) noexcept nogil:
    """Each document's output offsets from its input offsets and its edits' length changes."""
    cdef int64_t d, e = 0, change = 0
    out_offsets[0] = 0
    for d in range(n_docs):
        while e < n and edits[e].doc == d:
            change += <int64_t> edits[e].choice - (edits[e].end - edits[e].start)
            e += 1
        out_offsets[d + 1] = offsets[d + 1] - offsets[0] + change
    return out_offsets[n_docs]


cdef uint64_t render_edits(const Tables *t, const token_in *tokens, int64_t begin, int64_t finish,
                           const Edit *edits, int64_t n, token_out *out, uint8_t *mask) noexcept nogil:
    """Copy tokens[begin:finish] to out with every resolved edit applied; mark emitted ids in
    mask. Returns the largest emitted translation id, for the caller's overflow check."""
    cdef int64_t e, p, q, w = 0, pos = begin
    cdef uint64_t largest = 0
    cdef uint32_t token
    cdef Edit edit
    for e in range(n):
        if e + AHEAD < n:
            lf_prefetch(&t.trans_tokens[edits[e + AHEAD].target])
        edit = edits[e]
        if sizeof(token_in) == sizeof(token_out):  # same width: ids < vocab size are the same bits
            memcpy(out + w, tokens + pos, (edit.start - pos) * sizeof(token_out))
            w += edit.start - pos
        else:
            for p in range(pos, edit.start):
                out[w] = <token_out> tokens[p]
                w += 1
        if mask != NULL:
            memset(mask + w, 1, edit.choice)
        for q in range(edit.target, edit.target + <int64_t> edit.choice):
            token = t.trans_tokens[q]
            largest = max(largest, <uint64_t> token)
            out[w] = <token_out> token
            w += 1
        pos = edit.end
    for p in range(pos, finish):
        out[w] = <token_out> tokens[p]
        w += 1
    return largest


cdef class KernelTables:
    """Holds a Vocab's arrays (keeping them alive) and the C view of them."""

    cdef Tables tables
    cdef object _keep

    def __cinit__(self, dict arrays, tuple edge_table, int n_languages, uint32_t selected_mask):
        cdef const uint8_t[::1] flags
        cdef const int32_t[::1] node_key = arrays["node_key"]
        cdef const int32_t[::1] node_edge_start = arrays["node_edge_start"]
        cdef const int32_t[::1] node_edge_count = arrays["node_edge_count"]
        cdef const uint32_t[::1] edge_token = arrays["edge_token"]
        cdef const int32_t[::1] edge_node = arrays["edge_node"]
        cdef const uint32_t[::1] key_lang_mask = arrays["key_lang_mask"]
        cdef const int64_t[::1] key_trans_start = arrays["key_trans_start"]
        cdef const int32_t[::1] key_trans = arrays["key_trans"]
        cdef const int64_t[::1] trans_offsets = arrays["trans_offsets"]
        cdef const uint32_t[::1] trans_tokens = arrays["trans_tokens"]
        cdef const int32_t[:, ::1] edge_slots = edge_table[0]
        # The root entries depend on which languages are in play: one table per Substituter.
        root = np.asarray(arrays["root_child"])
        has_node = root >= 0
        node_of = np.where(has_node, root, 0)
        first_key = np.where(has_node, np.asarray(arrays["node_key"])[node_of], -1)
        in_play = (first_key >= 0) & ((np.asarray(arrays["key_lang_mask"])[np.maximum(first_key, 0)]
                                       & selected_mask) != 0) if len(arrays["key_lang_mask"]) else has_node & False
        entries = np.empty((len(root), 2), dtype=np.int32)
        entries[:, 0] = np.where(in_play, first_key, -1)
        entries[:, 1] = np.where(has_node & (np.asarray(arrays["node_edge_count"])[node_of] > 0), root, -1)
        cdef const int32_t[:, ::1] entries_view = entries
        # The kernel's own copy of the flags marks the tokens that may start a match (a
        # single-token key in play, or phrase children), so that the first pass of the scan
        # reads one small table. A vocabulary's own flags never use that bit: cleared anyway.
        may_start = (entries[:, 0] >= 0) | (entries[:, 1] >= 0)
        scan_flags = (np.asarray(arrays["flags"]) & np.uint8(0xFF ^ LF_KEY_START)) | np.where(
            may_start, np.uint8(LF_KEY_START), np.uint8(0))
        flags = scan_flags
        self._keep = (arrays, entries, edge_table, scan_flags)
        self.tables.edge_table = <const lf_edge_slot *> &edge_slots[0, 0]
        self.tables.edge_table_bits = edge_table[1]
        self.tables.all_keys_in_play = bool(np.all(np.asarray(arrays["key_lang_mask"]) & selected_mask))
        self.tables.root = <const RootEntry *> &entries_view[0, 0]
        self.tables.flags = &flags[0]
        self.tables.vocab_size = flags.shape[0]
        self.tables.node_key = &node_key[0]
        self.tables.node_edge_start = &node_edge_start[0]
        self.tables.node_edge_count = &node_edge_count[0]
        self.tables.edge_token = &edge_token[0] if edge_token.shape[0] else NULL
        self.tables.edge_node = &edge_node[0] if edge_node.shape[0] else NULL
        self.tables.key_lang_mask = &key_lang_mask[0] if key_lang_mask.shape[0] else NULL
        self.tables.key_trans_start = &key_trans_start[0]
        self.tables.key_trans = &key_trans[0] if key_trans.shape[0] else NULL
        self.tables.trans_offsets = &trans_offsets[0]
        self.tables.trans_tokens = &trans_tokens[0] if trans_tokens.shape[0] else NULL
        self.tables.n_languages = n_languages


def substitute(KernelTables tables, const token_in[::1] tokens, const int64_t[::1] offsets,
               int64_t first_doc, dict sampling, object out_dtype, bint want_mask):
    """Plan, resolve, render. Returns (out_tokens, out_offsets, mask or None, counters dict).

    ``offsets`` must be non-decreasing and within ``tokens`` (checked by the caller). Bad data
    is reported through the counters, for the caller to raise on: a token id outside the
    vocabulary (``bad_token_position`` >= 0) or an emitted id too large for ``out_dtype``
    (``max_emitted_id``). In both cases the arrays are None: no truncated ids can escape.
    """
    cdef const uint32_t[::1] weights = sampling["lang_weight"]
    cdef Sampling s
    s.base = sampling["base"]
    s.portion_threshold = sampling["portion_threshold"]
    s.ratio_threshold = sampling["ratio_threshold"]
    s.ratio = sampling["ratio"]
    s.ratio_basis_words = sampling["ratio_basis_words"]
    s.lang_scope_document = sampling["lang_scope_document"]
    s.selected_mask = sampling["selected_mask"]
    s.lang_weight = &weights[0]

    cdef int64_t n_docs = offsets.shape[0] - 1
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
                plan_edits(&tables.tables, &s, token_ptr, &offsets[0], n_docs, first_doc, &edits, &c)
                resolve_edits(&tables.tables, edits.data, edits.size)
                c.tokens_out = output_offsets(&offsets[0], n_docs, edits.data, edits.size, &out_offsets_view[0])
        out = mask = None
        if c.bad_token_position < 0:
            out = np.empty(c.tokens_out, dtype=out_dtype)
            mask = np.zeros(c.tokens_out, dtype=np.uint8) if want_mask else None
            c.max_emitted_id = _render(&tables.tables, token_ptr, begin, finish, &edits, out, mask)
        counters = {
            "words": c.words,
            "candidates": c.candidates,
            "eligible_documents": c.eligible_documents,
            "eligible_candidates": c.eligible_candidates,
            "tokens_in": finish - begin,
            "tokens_out": c.tokens_out,
            "max_emitted_id": c.max_emitted_id,
            "bad_token_position": c.bad_token_position,
            "substitutions": [c.substitutions[i] for i in range(tables.tables.n_languages)],
        }
        if c.bad_token_position >= 0 or c.max_emitted_id > <uint64_t> np.iinfo(out_dtype).max:
            return None, None, None, counters
        return out, out_offsets, mask, counters
    finally:
        free(edits.data)


cdef uint64_t _render(const Tables *t, const token_in *tokens, int64_t begin, int64_t finish,
                      const Edits *edits, object out, object mask):
    cdef uint8_t[::1] mask_view
    cdef uint8_t *mask_ptr = NULL
    cdef uint16_t[::1] out16
    cdef int32_t[::1] out32
    cdef uint32_t[::1] outu32
    cdef uint64_t largest = 0
    if mask is not None and len(mask):
        mask_view = mask
        mask_ptr = &mask_view[0]
    if len(out) == 0:
        return 0
    if out.dtype == np.uint16:
        out16 = out
        with nogil:
            largest = render_edits(t, tokens, begin, finish, edits.data, edits.size, &out16[0], mask_ptr)
    elif out.dtype == np.int32:
        out32 = out
        with nogil:
            largest = render_edits(t, tokens, begin, finish, edits.data, edits.size, &out32[0], mask_ptr)
    else:
        outu32 = out
        with nogil:
            largest = render_edits(t, tokens, begin, finish, edits.data, edits.size, &outu32[0], mask_ptr)
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


def lookup_edges(tuple edge_table, const uint32_t[::1] nodes, const uint32_t[::1] tokens):
    """The (child, child_key) of each edge (nodes[i], tokens[i]) in a build_edge_table table,
    or (-1, -1) where there is none. For tests: the kernel makes the same lookups inline."""
    cdef const int32_t[:, ::1] slots = edge_table[0]
    cdef uint32_t bits = edge_table[1]
    if nodes.shape[0] != tokens.shape[0]:
        raise ValueError("nodes and tokens differ in length")
    found = np.full((nodes.shape[0], 2), -1, dtype=np.int32)
    cdef int32_t[:, ::1] out = found
    cdef const lf_edge_slot *slot
    cdef Py_ssize_t i
    for i in range(nodes.shape[0]):
        slot = lf_find_edge(<const lf_edge_slot *> &slots[0, 0], bits, nodes[i], tokens[i])
        if slot != NULL:
            out[i, 0] = slot.child
            out[i, 1] = slot.child_key
    return found
