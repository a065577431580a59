"""Substitution kernel: find dictionary words in token-id documents, sample, rewrite.

Two passes, both without the GIL. ``plan_edits`` scans every document, finds leftmost-longest
matches in the trie, draws the counter-based random decisions and records the edits;
``render_edits`` copies the tokens with the edits applied into an output array sized exactly
from the plan. Options are validated in Python (link_fast/substituter.py) before either runs.
"""

from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset
import numpy as np

cdef uint64_t ALWAYS = 1ULL << 53


cdef int spans_push(Spans *spans, int64_t start, int64_t end, int64_t value, int32_t lang) except -1 nogil:
    cdef Span *grown
    cdef int64_t capacity
    if spans.size == spans.capacity:
        capacity = spans.capacity * 2 if spans.capacity else 1024
        grown = <Span *> realloc(spans.data, capacity * sizeof(Span))
        if grown == NULL:
            with gil:
                raise MemoryError("link_fast kernel: out of memory for the edit list")
        spans.data = grown
        spans.capacity = capacity
    spans.data[spans.size] = Span(start, end, value, lang)
    spans.size += 1
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


cdef int64_t count_words(const Tables *t, const token_in *tokens, int64_t start, int64_t end,
                         Counters *c) noexcept nogil:
    """Words in one document; records the first id outside the vocabulary and returns -1 on it."""
    cdef int64_t p, words = 0
    cdef uint64_t token
    cdef uint8_t flag, previous = 0
    for p in range(start, end):
        token = <uint64_t> <uint32_t> tokens[p]
        if token >= <uint64_t> t.vocab_size:
            c.bad_token_position = p
            return -1
        flag = t.flags[token]
        if (flag & LF_HAS_WORD) and ((flag & LF_WS_START) or p == start or not (previous & LF_END_WORD)):
            words += 1
        previous = flag
    return words


cdef int find_matches(const Tables *t, uint32_t selected, const token_in *tokens,
                      int64_t start, int64_t end, Spans *matches) except -1 nogil:
    """Leftmost-longest, non-overlapping matches of keys in play, with word boundaries.

    The first token is resolved through two dense per-token tables, so a single-token word
    with no phrase continuing it costs two lookups and never touches the trie's node arrays.
    """
    cdef int64_t i = start, j, best_end, edge
    cdef int32_t node, key, best_key
    cdef uint32_t token
    while i < end:
        token = <uint32_t> tokens[i]
        best_key = t.root_key[token]
        node = t.root_descend[token]
        # A form without a leading space needs a word boundary on its left that re-tokenizing
        # the translation will keep: not after a word character, nor after a token that fuses.
        if (best_key < 0 and node < 0) or (i > start and not (t.flags[token] & LF_WS_START)
                                           and (t.flags[<uint32_t> tokens[i - 1]] & (LF_END_WORD | LF_FUSES_RIGHT))):
            i += 1
            continue
        j = i + 1
        best_end = j
        if best_key >= 0 and j < end and (t.flags[<uint32_t> tokens[j]] & LF_GLUE_LEFT):
            best_key = -1
        while node >= 0 and j < end:
            edge = lf_find_child(t.edge_token, t.node_edge_start[node], t.node_edge_count[node],
                                 <uint32_t> tokens[j])
            if edge < 0:
                break
            node = t.edge_node[edge]
            j += 1
            key = t.node_key[node]
            if key >= 0 and (t.key_lang_mask[key] & selected) and (
                    j == end or not (t.flags[<uint32_t> tokens[j]] & LF_GLUE_LEFT)):
                best_key = key
                best_end = j
            if t.node_edge_count[node] == 0:
                break
        if best_key < 0:
            i += 1
        else:
            spans_push(matches, i, best_end, best_key, -1)
            i = best_end
    return 0


cdef int plan_edits(const Tables *t, const Sampling *s, const token_in *tokens, const int64_t *offsets,
                    int64_t n_docs, int64_t first_doc, Spans *edits, int64_t *out_offsets,
                    Counters *c) except -1 nogil:
    cdef Spans matches = Spans(NULL, 0, 0)
    cdef int64_t d, doc, m, words, start, end, trans, n_trans, length
    cdef int64_t out_length = 0
    cdef uint64_t threshold, h
    cdef double p
    cdef int32_t doc_lang = -1, lang, key
    cdef uint32_t available
    cdef Span match
    cdef int64_t q
    out_offsets[0] = 0
    try:
        for d in range(n_docs):
            start = offsets[d]
            end = offsets[d + 1]
            doc = first_doc + d
            out_length += end - start
            words = count_words(t, tokens, start, end, c)
            if words < 0:
                return 0
            c.words += words
            matches.size = 0
            find_matches(t, s.selected_mask, tokens, start, end, &matches)
            c.candidates += matches.size
            if lf_bernoulli(lf_draw(s.base, LF_DOMAIN_DOCUMENT, doc, 0), s.portion_threshold):
                c.eligible_documents += 1
                c.eligible_candidates += matches.size
                threshold = s.ratio_threshold
                if s.ratio_basis_words and matches.size:
                    p = s.ratio * <double> words / <double> matches.size
                    threshold = ALWAYS if p >= 1.0 else <uint64_t> (p * 9007199254740992.0)
                if s.lang_scope_document:
                    doc_lang = pick_language(s, t.n_languages, s.selected_mask,
                                             lf_draw(s.base, LF_DOMAIN_DOC_LANG, doc, 0))
                for m in range(matches.size):
                    if not lf_bernoulli(lf_draw(s.base, LF_DOMAIN_REPLACE, doc, m), threshold):
                        continue
                    match = matches.data[m]
                    key = <int32_t> match.value
                    if s.lang_scope_document:
                        if not (t.key_lang_mask[key] & (1u << doc_lang)):
                            continue
                        lang = doc_lang
                    else:
                        available = t.key_lang_mask[key] & s.selected_mask
                        lang = pick_language(s, t.n_languages, available,
                                             lf_draw(s.base, LF_DOMAIN_LANG, doc, m))
                    n_trans = t.key_trans_start[key * t.n_languages + lang + 1] - t.key_trans_start[key * t.n_languages + lang]
                    trans = t.key_trans[t.key_trans_start[key * t.n_languages + lang] + <int64_t> lf_below(
                        lf_draw(s.base, LF_DOMAIN_TRANSLATE, doc, m), <uint64_t> n_trans)]
                    length = t.trans_offsets[trans + 1] - t.trans_offsets[trans]
                    for q in range(t.trans_offsets[trans], t.trans_offsets[trans + 1]):
                        if t.trans_tokens[q] > c.max_emitted_id:
                            c.max_emitted_id = t.trans_tokens[q]
                    spans_push(edits, match.start, match.end, trans, lang)
                    c.substitutions[lang] += 1
                    out_length += length - (match.end - match.start)
            out_offsets[d + 1] = out_length
        c.tokens_out = out_length
    finally:
        free(matches.data)
    return 0


cdef void render_edits(const Tables *t, const token_in *tokens, int64_t begin, int64_t finish,
                       const Spans *edits, token_out *out, uint8_t *mask) noexcept nogil:
    """Copy tokens[begin:finish] to out with every edit applied; mark emitted ids in mask."""
    cdef int64_t e, p, q, w = 0, pos = begin
    cdef Span edit
    for e in range(edits.size):
        edit = edits.data[e]
        for p in range(pos, edit.start):
            out[w] = <token_out> tokens[p]
            w += 1
        if mask != NULL:
            memset(mask + w, 1, t.trans_offsets[edit.value + 1] - t.trans_offsets[edit.value])
        for q in range(t.trans_offsets[edit.value], t.trans_offsets[edit.value + 1]):
            out[w] = <token_out> t.trans_tokens[q]
            w += 1
        pos = edit.end
    for p in range(pos, finish):
        out[w] = <token_out> tokens[p]
        w += 1


cdef class KernelTables:
    """Holds a Vocab's arrays (keeping them alive) and the C view of them."""

    cdef Tables tables
    cdef object _keep

    def __cinit__(self, dict arrays, int n_languages, uint32_t selected_mask):
        cdef const uint8_t[::1] flags = arrays["flags"]
        cdef const int32_t[::1] root_child = arrays["root_child"]
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
        # The first-token tables depend on which languages are in play: one pair per Substituter.
        root = np.asarray(arrays["root_child"])
        has_node = root >= 0
        node_of = np.where(has_node, root, 0)
        first_key = np.where(has_node, np.asarray(arrays["node_key"])[node_of], -1)
        in_play = (first_key >= 0) & ((np.asarray(arrays["key_lang_mask"])[np.maximum(first_key, 0)]
                                       & selected_mask) != 0) if len(arrays["key_lang_mask"]) else has_node & False
        root_key_array = np.ascontiguousarray(np.where(in_play, first_key, -1), dtype=np.int32)
        root_descend_array = np.ascontiguousarray(
            np.where(has_node & (np.asarray(arrays["node_edge_count"])[node_of] > 0), root, -1), dtype=np.int32)
        cdef const int32_t[::1] root_key = root_key_array
        cdef const int32_t[::1] root_descend = root_descend_array
        self._keep = (arrays, root_key_array, root_descend_array)
        self.tables.root_key = &root_key[0]
        self.tables.root_descend = &root_descend[0]
        self.tables.flags = &flags[0]
        self.tables.vocab_size = flags.shape[0]
        self.tables.root_child = &root_child[0]
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
    """Run both passes. Returns (out_tokens, out_offsets, mask or None, counters dict).

    ``offsets`` must be non-decreasing and within ``tokens`` (checked by the caller). Bad data
    is reported through the counters, for the caller to raise on: a token id outside the
    vocabulary (``bad_token_position`` >= 0) or an emitted id too large for ``out_dtype``
    (``max_emitted_id``). In both cases nothing is rendered and the arrays are None.
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
    c.bad_token_position = -1
    cdef Spans edits = Spans(NULL, 0, 0)
    cdef const token_in *token_ptr = &tokens[0] if tokens.shape[0] else NULL
    cdef int64_t begin = offsets[0], finish = offsets[n_docs]
    try:
        with nogil:
            plan_edits(&tables.tables, &s, token_ptr, &offsets[0], n_docs, first_doc, &edits,
                       &out_offsets_view[0], &c)
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
        # Nothing is rendered for bad input: no truncated ids can escape.
        if c.bad_token_position >= 0 or c.max_emitted_id > <uint64_t> np.iinfo(out_dtype).max:
            return None, None, None, counters
        out = np.empty(c.tokens_out, dtype=out_dtype)
        mask = np.zeros(c.tokens_out, dtype=np.uint8) if want_mask else None
        _render(&tables.tables, token_ptr, begin, finish, &edits, out, mask)
        return out, out_offsets, mask, counters
    finally:
        free(edits.data)


cdef _render(const Tables *t, const token_in *tokens, int64_t begin, int64_t finish,
             const Spans *edits, object out, object mask):
    cdef uint8_t[::1] mask_view
    cdef uint8_t *mask_ptr = NULL
    cdef uint16_t[::1] out16
    cdef int32_t[::1] out32
    cdef uint32_t[::1] outu32
    if mask is not None and len(mask):
        mask_view = mask
        mask_ptr = &mask_view[0]
    if len(out) == 0:
        return
    if out.dtype == np.uint16:
        out16 = out
        with nogil:
            render_edits(t, tokens, begin, finish, edits, &out16[0], mask_ptr)
    elif out.dtype == np.int32:
        out32 = out
        with nogil:
            render_edits(t, tokens, begin, finish, edits, &out32[0], mask_ptr)
    else:
        outu32 = out
        with nogil:
            render_edits(t, tokens, begin, finish, edits, &outu32[0], mask_ptr)
