"""Text mode's native path: the character trie of the patterns, and one document's matching,
sampling and output (docs/DESIGN.md §4, §5, §7).

``build_trie`` makes the trie's arrays from the sorted patterns (link_fast/text/native.py
caches them next to the vocabulary); ``TextIndex`` checks arrays read back from disk before
any is used as an index; ``TextSampler.rewrite`` finds the leftmost-longest valid matches of
one document, counts its words and draws its substitutions, and ``render`` writes the output
text. The semantics are link_fast/text/matcher.py's and substituter.py's, which stay as the
reference (tests compare the two byte for byte). _text.pyi types it.
"""

cimport cython
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset

import numpy as np

from link_fast.errors import InputError

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, const void *data, Py_ssize_t index) nogil
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_UCS4 PyUnicode_MAX_CHAR_VALUE(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void PyUnicode_WRITE(int kind, void *data, Py_ssize_t index, Py_UCS4 value) nogil
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyBytes_FromStringAndSize(const char *v, Py_ssize_t size)

cdef enum:
    AHEAD = 16                     # edits ahead that render_json prefetches a translation's data
    ROOT_DIRECT = 1 << 16          # the root's children by code point below this: one load, no search
    MAX_CODE_POINT = 0x110000
    LINEAR_CHILDREN = 8            # children scanned in order up to this many, else binary search

# How json.dumps(ensure_ascii=False) writes each ASCII character inside a string: 0 as itself,
# a letter c as backslash c, 1 as the 6-byte \\u00XX form (the other control characters).
cdef char JSON_ESCAPE[128]
cdef const char *JSON_HEX_DIGITS = b"0123456789abcdef"


cdef void set_json_escapes() noexcept:
    cdef int c
    for c in range(128):
        JSON_ESCAPE[c] = 1 if c < 32 else 0
    for c, e in ((ord('"'), ord('"')), (ord("\\"), ord("\\")), (8, ord("b")), (12, ord("f")),
                 (10, ord("n")), (13, ord("r")), (9, ord("t"))):
        JSON_ESCAPE[c] = e


set_json_escapes()

cdef uint64_t FNV_OFFSET = 0xcbf29ce484222325ULL
cdef uint64_t FNV_PRIME = 0x100000001b3ULL
cdef uint64_t GOLDEN = 0x9e3779b97f4a7c15ULL  # spreads FNV's low-entropy top bits over the slots

ROOT_CHILDREN = ROOT_DIRECT
BACKTICK = chr(LF_BACKTICK)
WORD_BITS_BYTES = MAX_CODE_POINT // 8


def word_bits():
    """Bit c set where code point c is a letter, number or mark (link_fast.text.words.is_word_char)."""
    import unicodedata

    bits = np.zeros(WORD_BITS_BYTES, dtype=np.uint8)
    cdef uint8_t[::1] out = bits
    cdef int c
    for c in range(MAX_CODE_POINT):
        if unicodedata.category(chr(c))[0] in "LNM":
            out[c >> 3] |= 1 << (c & 7)
    return bits


def joiners():
    """The joiner characters of csrc/link_fast.h's lf_is_joiner (link_fast.tokenizer.JOINERS), as a str."""
    return "".join(chr(c) for c in range(MAX_CODE_POINT) if lf_is_joiner(c))


def build_trie(list patterns):
    """The trie of ``patterns`` (distinct non-empty str, sorted): {name: array}; the pattern at
    index t ends at the node whose term is t."""
    cdef Py_ssize_t n_patterns = len(patterns), p, i, n, lcp, longest = 0, total = 1
    for p in range(n_patterns):
        n = len(<str>patterns[p])
        total += n
        longest = max(longest, n)
    if total >= (1 << 31) - 1:
        raise InputError("text mode: the patterns hold too many characters for one trie")
    cdef int32_t *first = <int32_t *>malloc(total * sizeof(int32_t))
    cdef int32_t *sibling = <int32_t *>malloc(total * sizeof(int32_t))
    cdef int32_t *last = <int32_t *>malloc(total * sizeof(int32_t))
    cdef int32_t *path = <int32_t *>malloc((longest + 1) * sizeof(int32_t))
    cdef int32_t *order = <int32_t *>malloc(total * sizeof(int32_t))
    if first == NULL or sibling == NULL or last == NULL or path == NULL or order == NULL:
        free(first); free(sibling); free(last); free(path); free(order)
        raise MemoryError()
    chars = np.zeros(total, dtype=np.uint32)
    terms = np.full(total, -1, dtype=np.int32)
    cdef uint32_t[::1] ch = chars
    cdef int32_t[::1] term = terms
    cdef int32_t count = 1, node, new
    cdef str s, previous = ""
    cdef int kind, pkind
    cdef const void *data
    cdef const void *pdata
    try:
        first[0] = sibling[0] = last[0] = -1
        path[0] = 0
        for p in range(n_patterns):
            s = patterns[p]
            n = len(s)
            kind, data = PyUnicode_KIND(s), PyUnicode_DATA(s)
            pkind, pdata = PyUnicode_KIND(previous), PyUnicode_DATA(previous)
            lcp = 0
            while lcp < n and lcp < len(previous) and PyUnicode_READ(kind, data, lcp) == PyUnicode_READ(pkind, pdata, lcp):
                lcp += 1
            if n == 0 or (p and (lcp == n or (lcp < len(previous) and PyUnicode_READ(kind, data, lcp) < PyUnicode_READ(pkind, pdata, lcp)))):
                raise ValueError("build_trie needs distinct non-empty patterns in sorted order")
            node = path[lcp]
            for i in range(lcp, n):
                new = count
                count += 1
                ch[new] = PyUnicode_READ(kind, data, i)
                first[new] = sibling[new] = last[new] = -1
                if last[node] < 0:
                    first[node] = new
                else:
                    sibling[last[node]] = new
                last[node] = new
                path[i + 1] = new
                node = new
            term[node] = p
            previous = s
        return _breadth_first(count, first, sibling, order, chars, terms)
    finally:
        free(first); free(sibling); free(last); free(path); free(order)


cdef dict _breadth_first(int32_t count, const int32_t *first, const int32_t *sibling, int32_t *order,
                         chars, terms):
    """The trie renumbered for TextIndex: a node's children get consecutive numbers when the
    node is reached depth first, so a chain of single children (the tail of most words) lies
    in consecutive nodes, one cache line for four of them."""
    nodes = np.zeros((count, 4), dtype=np.int32)
    root_child = np.full(ROOT_DIRECT, -1, dtype=np.int32)
    cdef int32_t[:, ::1] nd = nodes
    cdef int32_t[::1] rc = root_child, term = terms
    cdef uint32_t[::1] ch = chars
    cdef int32_t *old_of = <int32_t *>malloc(count * sizeof(int32_t))  # new number -> old
    if old_of == NULL:
        raise MemoryError()
    cdef int32_t top = 0, given = 1, node, old, child, k
    try:
        old_of[0] = 0
        order[0] = 0  # a stack of new numbers still to reach
        top = 1
        while top:
            top -= 1
            node = order[top]
            old = old_of[node]
            nd[node, 2], nd[node, 3] = ch[old], term[old]
            nd[node, 0], k = given, 0
            child = first[old]
            while child >= 0:
                old_of[given] = child
                if node == 0 and ch[child] < ROOT_DIRECT:
                    rc[ch[child]] = given
                given += 1
                k += 1
                child = sibling[child]
            nd[node, 1] = k
            for child in range(nd[node, 0] + k - 1, nd[node, 0] - 1, -1):  # first child reached first
                order[top] = child
                top += 1
    finally:
        free(old_of)
    nd[0, 2] = 0
    return {"nodes": nodes.reshape(-1), "root_child": root_child}


cdef class TextIndex:
    """The trie's arrays and the word-character bits, checked: every index in them is in range
    and the children of each node come after it, sorted, so a walk always ends."""

    cdef Trie trie
    cdef object arrays  # keeps the buffers alive
    cdef readonly int64_t n_nodes, n_terms, n_words
    cdef WordSlot *words
    cdef uint32_t *word_chars

    def __dealloc__(self):
        free(self.words)
        free(self.word_chars)

    def __init__(self, nodes, term_spaced, term_bare, root_child, word_bits, int64_t n_keys):
        cdef const int32_t[::1] nd = nodes, sp = term_spaced, ba = term_bare, rc = root_child
        cdef const uint8_t[::1] wb = word_bits
        cdef int64_t n = nd.shape[0] // 4, t = sp.shape[0], i, c
        cdef const Node *node
        if n < 1 or nd.shape[0] != 4 * n or ba.shape[0] != t or rc.shape[0] != ROOT_DIRECT:
            raise ValueError("the trie's arrays do not have matching lengths")
        if wb.shape[0] != WORD_BITS_BYTES or n >= (1 << 31):
            raise ValueError("the word-character bits or the node count are out of range")
        node = <const Node *>&nd[0]
        for i in range(n):
            if node[i].count < 0 or (node[i].count and (node[i].first <= i or node[i].first > n - node[i].count)):
                raise ValueError(f"node {i} of the trie has children out of range")
            if not -1 <= node[i].term < t or (i and not 0 <= node[i].ch < MAX_CODE_POINT):
                raise ValueError(f"node {i} of the trie is out of range")
            for c in range(node[i].first + 1, node[i].first + node[i].count):
                if node[c].ch <= node[c - 1].ch:
                    raise ValueError(f"the children of node {i} are not sorted")
        for i in range(t):
            if not (-1 <= sp[i] < n_keys and -1 <= ba[i] < n_keys):
                raise ValueError(f"pattern {i} names a key out of range")
        for c in range(ROOT_DIRECT):
            if rc[c] != -1 and (rc[c] < node[0].first or rc[c] >= node[0].first + node[0].count or node[rc[c]].ch != c):
                raise ValueError(f"the root's child for code point {c} is out of range")
        for i in range(node[0].first, node[0].first + node[0].count):
            if node[i].ch < ROOT_DIRECT and rc[node[i].ch] != i:
                raise ValueError("the root's direct children do not match its children")
        self.arrays = (nodes, term_spaced, term_bare, root_child, word_bits)
        self.n_nodes, self.n_terms = n, t
        self.trie.nodes = node
        self.trie.term_spaced = &sp[0] if t else NULL
        self.trie.term_bare = &ba[0] if t else NULL
        self.trie.root_child, self.trie.word_bits, self.trie.n_nodes = &rc[0], &wb[0], n
        self.make_words()

    cdef int make_words(self) except -1:
        """The word table: a scan looks a whole word up in it rather than walking the trie a
        character at a time (a node per character, most of them cache misses in a large
        trie). Made here from the checked trie, so the cache's format does not change."""
        cdef int64_t n = self.n_nodes, count = 0, chars = 0, slots = 2, i
        cdef int shift = 63
        cdef uint8_t *seen = <uint8_t *>malloc(n)
        cdef int32_t *stack = <int32_t *>malloc(2 * n * sizeof(int32_t))
        cdef uint32_t *path = <uint32_t *>malloc(n * sizeof(uint32_t))
        try:
            if seen == NULL or stack == NULL or path == NULL:
                raise MemoryError()
            word_walk(&self.trie, seen, stack, path, NULL, NULL, &count, &chars)
            while slots < 2 * count:  # at most half full: short probes
                slots, shift = slots * 2, shift - 1
            if chars >= 0xFFFFFFFF:  # the slots' start is 32 bits
                raise ValueError("the trie's words hold too many characters for the word table")
            free(self.words); free(self.word_chars)  # __init__ called again
            self.words, self.word_chars = NULL, NULL
            self.words = <WordSlot *>malloc(slots * sizeof(WordSlot))
            self.word_chars = <uint32_t *>malloc((chars + 1) * sizeof(uint32_t))
            if self.words == NULL or self.word_chars == NULL:
                raise MemoryError()
            for i in range(slots):
                self.words[i].node = -1
            self.trie.word_mask, self.trie.word_shift = slots - 1, shift
            word_walk(&self.trie, seen, stack, path, self.words, self.word_chars, &count, &chars)
        finally:
            free(seen); free(stack); free(path)
        self.trie.words, self.trie.word_chars, self.n_words = self.words, self.word_chars, count
        return 0


cdef int word_walk(Trie *trie, uint8_t *seen, int32_t *stack, uint32_t *path, WordSlot *slots,
                   uint32_t *blob, int64_t *count, int64_t *chars) except -1:
    """Counts (``slots`` NULL) or files the trie's words: the nodes reached from the root by
    word characters alone where a match can end or go on past the word (a pattern ends there,
    or a child is not a word character); the others cannot be on a match's path once the word
    ends. A node met twice is a corrupt trie (its walks could multiply), refused. The stack
    holds (node, depth) pairs; path[d] is the character that leads to the node at depth d + 1."""
    cdef const Node *nodes = trie.nodes
    cdef int64_t top = 0, node = 0, c, depth = 0, k, slot
    cdef uint64_t h
    cdef bint ends
    memset(seen, 0, trie.n_nodes)
    count[0] = chars[0] = 0
    while True:
        ends = node and nodes[node].term >= 0
        for c in range(nodes[node].first + nodes[node].count - 1, nodes[node].first - 1, -1):
            if is_word(trie.word_bits, nodes[c].ch):
                if seen[c]:  # marked when pushed: the stack never holds more than the nodes
                    raise ValueError(f"node {c} of the trie has two parents")
                seen[c] = 1
                stack[top], stack[top + 1] = <int32_t>c, <int32_t>(depth + 1)
                top += 2
            else:
                ends = True
        if ends and node:
            if slots != NULL:
                h = FNV_OFFSET
                for k in range(depth):
                    h = (h ^ path[k]) * FNV_PRIME
                slot = (h * GOLDEN) >> trie.word_shift
                while slots[slot].node >= 0:
                    slot = (slot + 1) & trie.word_mask
                slots[slot].hash, slots[slot].node, slots[slot].start = h, <int32_t>node, <uint32_t>chars[0]
                blob[chars[0]] = <uint32_t>depth
                memcpy(blob + chars[0] + 1, path, depth * sizeof(uint32_t))
            count[0] += 1
            chars[0] += depth + 1
        if not top:
            return 0
        top -= 2
        node, depth = stack[top], stack[top + 1]
        path[depth - 1] = <uint32_t>nodes[node].ch


cdef inline bint is_word(const uint8_t *bits, Py_UCS4 c) noexcept nogil:
    cdef uint32_t code = <uint32_t>c
    return (bits[code >> 3] >> (code & 7)) & 1


cdef inline int64_t child_of(const Trie *trie, int64_t node, Py_UCS4 c) noexcept nogil:
    cdef int64_t lo, hi, mid, end
    cdef int32_t code = <int32_t>c
    if node == 0 and c < ROOT_DIRECT:
        return trie.root_child[c]
    lo = trie.nodes[node].first
    end = hi = lo + trie.nodes[node].count
    if hi - lo <= LINEAR_CHILDREN:
        while lo < hi:
            if trie.nodes[lo].ch == code:
                return lo
            if trie.nodes[lo].ch > code:
                return -1
            lo += 1
        return -1
    while lo < hi:
        mid = (lo + hi) >> 1
        if trie.nodes[mid].ch < code:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and trie.nodes[lo].ch == code else -1


ctypedef fused char_t:
    uint8_t
    uint16_t
    uint32_t


cdef inline int64_t word_node(const Trie *trie, uint64_t h, const char_t *data, int64_t i, int64_t e) noexcept nogil:
    """The node the word data[i:e] reaches from the root, if the word table has it, else -1."""
    cdef uint64_t slot = (h * GOLDEN) >> trie.word_shift
    cdef const uint32_t *chars
    cdef int64_t k
    while trie.words[slot].node >= 0:
        if trie.words[slot].hash == h:
            chars = trie.word_chars + trie.words[slot].start
            if chars[0] == <uint64_t>(e - i):
                k = 0
                while k < e - i and chars[k + 1] == <uint32_t>data[i + k]:
                    k += 1
                if k == e - i:
                    return trie.words[slot].node
        slot = (slot + 1) & trie.word_mask
    return -1


cdef inline bint joined_right(const uint8_t *bits, const char_t *data, int64_t n, int64_t j) noexcept nogil:
    """Whether data[j:] starts with one or more joiners, then a word character, or with no joiner
    or some, then a backtick (DESIGN §3)."""
    cdef int64_t k = j
    while k < n and lf_is_joiner(data[k]):
        k += 1
    return k < n and (data[k] == LF_BACKTICK or (k > j and is_word(bits, data[k])))


cdef inline bint joined_left(const uint8_t *bits, const char_t *data, int64_t i) noexcept nogil:
    """Whether data[:i] ends with a word character, then one or more joiners, or with a backtick,
    then no joiner or some: joined_right's mirror."""
    cdef int64_t k = i
    while k > 0 and lf_is_joiner(data[k - 1]):
        k -= 1
    return k > 0 and (data[k - 1] == LF_BACKTICK or (k < i and is_word(bits, data[k - 1])))


cdef int scan_chars(TextSampler self, const char_t *data, int64_t n, Matches *out, int64_t *words,
                    object drop) except -1:
    """TextSampler.scan over the characters of one string kind. A match starts where the
    character before is not a word character and ends before one that is not: at a word's
    start the walk goes to the word's end in one look-up in the word table (no pattern ends
    inside a word), then on a character at a time. Nor is a match joined to a word on either
    side (joined_left, joined_right)."""
    cdef const Trie *trie = &self.index.trie
    cdef const uint8_t *bits = trie.word_bits
    cdef int64_t i = 0, e, position = 0, node
    cdef uint64_t h
    cdef Py_UCS4 c
    while i < n:
        c = data[i]
        if is_word(bits, c):
            words[0] += 1
            e = i + 1
            h = (FNV_OFFSET ^ <uint64_t>c) * FNV_PRIME
            while e < n and is_word(bits, data[e]):
                h = (h ^ <uint64_t>data[e]) * FNV_PRIME
                e += 1
            if i >= position:
                node = word_node(trie, h, data, i, e)
                if node >= 0:
                    walk(self, data, n, i, e, node, out, &position, drop)
            i = e + 1  # no match starts inside the word, nor right after it
            continue
        if i >= position:
            node = child_of(trie, 0, c)
            if node >= 0:
                walk(self, data, n, i, i + 1, node, out, &position, drop)
        i += 1
    return 0


cdef int walk(TextSampler self, const char_t *data, int64_t n, int64_t i, int64_t j, int64_t node,
              Matches *out, int64_t *position, object drop) except -1:
    """The longest valid match from ``i`` on, ``node`` reached by data[i:j]: pushed, and
    ``position`` moved past it."""
    cdef const Trie *trie = &self.index.trie
    cdef int64_t best_end = -1
    cdef int32_t best_key = -1, key, t
    cdef Py_UCS4 d
    if joined_left(trie.word_bits, data, i):
        return 0
    while True:
        d = data[j] if j < n else 0
        t = trie.nodes[node].term
        if t >= 0 and (j == n or not (is_word(trie.word_bits, d) or joined_right(trie.word_bits, data, n, j))):
            key = self.resolve(t, i, j, i > 0 and data[i - 1] == 32, drop)
            if key >= 0:
                best_end, best_key = j, key
        if j >= n:
            break
        node = child_of(trie, node, d)
        if node < 0:
            break
        j += 1
    if best_end >= 0:
        push(out, i, best_end, best_key)
        position[0] = best_end
    return 0


cdef int push(Matches *matches, int64_t start, int64_t end, int32_t key) except -1:
    cdef Match *grown
    if matches.size == matches.capacity:
        grown = <Match *>realloc(matches.data, (2 * matches.capacity + 64) * sizeof(Match))
        if grown == NULL:
            raise MemoryError()
        matches.data, matches.capacity = grown, 2 * matches.capacity + 64
    matches.data[matches.size].start = start
    matches.data[matches.size].length = <int32_t>(end - start)
    matches.data[matches.size].key = key
    matches.size += 1
    return 0


cdef int64_t flip_matches(Matches *matches, uint64_t replace, uint64_t threshold, int64_t *cand) noexcept nogil:
    """The coin flips: the replaced matches compacted to the front of ``matches``, each one's
    candidate number (which numbers its other draws) into ``cand``; returns how many. Without
    branches: which candidates are replaced is data the branch predictor cannot learn."""
    cdef int64_t m, kept = 0
    for m in range(matches.size):
        matches.data[kept] = matches.data[m]
        cand[kept] = m
        kept += lf_bernoulli(lf_draw_at(replace, m), threshold)
    return kept


cdef bint utf8_valid(const uint8_t *s, int64_t n) noexcept nogil:
    """Whether s[:n] is UTF-8 as Python's strict decoder takes it: no overlong forms, no
    surrogates, nothing above U+10FFFF, no sequence cut short."""
    cdef int64_t i = 0
    cdef uint8_t b, lo, hi
    cdef int more, k
    while i < n:
        b = s[i]
        i += 1
        if b < 0x80:
            continue
        lo, hi = 0x80, 0xBF  # the range of the sequence's second byte
        if 0xC2 <= b <= 0xDF:
            more = 1
        elif 0xE0 <= b <= 0xEF:
            more = 2
            if b == 0xE0:
                lo = 0xA0
            elif b == 0xED:
                hi = 0x9F
        elif 0xF0 <= b <= 0xF4:
            more = 3
            if b == 0xF0:
                lo = 0x90
            elif b == 0xF4:
                hi = 0x8F
        else:
            return False
        if i + more > n or not lo <= s[i] <= hi:
            return False
        for k in range(1, more):
            if not 0x80 <= s[i + k] <= 0xBF:
                return False
        i += more
    return True


def find_surrogate(str text):
    """The index of the first lone surrogate (U+D800..U+DFFF) in ``text``, or -1: json reads
    ``"\\ud800"`` as one, and no UTF-8 output can hold it. A str of one byte a character
    holds none, so most texts are settled without a look."""
    cdef int kind = PyUnicode_KIND(text)
    cdef const void *data = PyUnicode_DATA(text)
    cdef int64_t i, n = PyUnicode_GET_LENGTH(text)
    cdef Py_UCS4 c
    if kind == 1:
        return -1
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if 0xD800 <= c <= 0xDFFF:
            return i
    return -1


@cython.final  # its methods are then called directly, and inlined in the scan's loops
cdef class TextSampler:
    """One vocabulary's tables and one sampling's integers (resolved in Python, as
    TextSubstituter's): ``rewrite`` does a document's matching and draws."""

    cdef TextIndex index
    cdef object arrays
    cdef const uint32_t *lang_mask
    cdef const int64_t *trans_start
    cdef const int32_t *trans
    cdef const uint32_t *trans_cum
    cdef const int64_t *text_offsets
    cdef const uint8_t *text_blob
    cdef int64_t n_keys, n_trans_slots, n_translations, n_text
    cdef uint32_t selected
    cdef uint32_t weights[LF_MAX_LANGUAGES]
    cdef int n_languages
    cdef uint64_t portion_threshold, ratio_threshold
    cdef double ratio
    cdef bint words_basis, doc_scope, strict, all_in_play
    cdef list texts  # translation id -> its text (leading space removed), made when first written
    cdef object checked_array  # owns checked
    cdef uint8_t *checked      # per translation: 1 once its text's range and UTF-8 are checked

    def __init__(self, TextIndex index, key_lang_mask, key_trans_start, key_trans, key_trans_cum,
                 trans_text_offsets, trans_text, weights, *, uint64_t portion_threshold, uint64_t ratio_threshold, double ratio, bint words_basis,
                 bint doc_scope, bint strict, bint all_in_play=False):
        cdef const uint32_t[::1] lm = key_lang_mask
        cdef const int64_t[::1] ts = key_trans_start, to = trans_text_offsets
        cdef const int32_t[::1] kt = key_trans
        cdef const uint32_t[::1] kc = key_trans_cum
        cdef const uint8_t[::1] tb = trans_text
        cdef int l
        if len(weights) > LF_MAX_LANGUAGES or not len(weights):
            raise ValueError("between 1 and 32 languages")
        if ts.shape[0] != lm.shape[0] * len(weights) + 1 or to.shape[0] < 1:
            raise ValueError("the vocabulary's tables do not match its keys and languages")
        if kc.shape[0] != kt.shape[0]:
            raise ValueError("the vocabulary's translation weights do not match its translations")
        self.index = index
        self.arrays = (key_lang_mask, key_trans_start, key_trans, key_trans_cum, trans_text_offsets, trans_text)
        self.lang_mask, self.trans_start, self.text_offsets = &lm[0] if lm.shape[0] else NULL, &ts[0], &to[0]
        self.trans = &kt[0] if kt.shape[0] else NULL
        self.trans_cum = &kc[0] if kc.shape[0] else NULL
        self.text_blob = &tb[0] if tb.shape[0] else NULL
        self.n_keys, self.n_trans_slots, self.n_translations = lm.shape[0], kt.shape[0], to.shape[0] - 1
        self.n_text = tb.shape[0]
        self.n_languages = len(weights)
        self.selected = 0
        for l in range(self.n_languages):
            self.weights[l] = weights[l]
            if weights[l]:
                self.selected |= 1u << l
        self.portion_threshold, self.ratio_threshold, self.ratio = portion_threshold, ratio_threshold, ratio
        self.words_basis, self.doc_scope, self.strict = words_basis, doc_scope, strict
        self.all_in_play = all_in_play  # every key has a language in play: no check per match
        self.texts = None  # made on first use: a list of millions costs milliseconds a run
        self.checked_array = np.zeros(max(self.n_translations, 1), dtype=np.uint8)
        cdef uint8_t[::1] checked = self.checked_array
        self.checked = &checked[0]

    cdef inline int32_t in_play(self, int32_t key) noexcept:
        return key if key >= 0 and self.lang_mask[key] & self.selected else -1

    cdef int scan(self, str text, Matches *out, int64_t *words, object drop) except -1:
        """The leftmost-longest valid matches of ``text`` into ``out``; its words into ``words``.
        ``drop(start, end)``, with token boundaries, says whether a bare match after text of a
        token that fuses right is not one (matcher.Matcher._separate)."""
        cdef int kind = PyUnicode_KIND(text)
        cdef const void *data = PyUnicode_DATA(text)
        cdef int64_t n = PyUnicode_GET_LENGTH(text)
        # one loop per string kind: a character is then one load, not a switch on the kind
        if kind == 1:
            return scan_chars(self, <const uint8_t *>data, n, out, words, drop)
        if kind == 2:
            return scan_chars(self, <const uint16_t *>data, n, out, words, drop)
        return scan_chars(self, <const uint32_t *>data, n, out, words, drop)

    cdef inline int32_t resolve(self, int32_t t, int64_t start, int64_t end, bint after_space, object drop) except -2:
        """The key a whole-word occurrence of pattern ``t`` at [start, end) stands for, or -1."""
        cdef const Trie *trie = &self.index.trie
        cdef int32_t spaced = trie.term_spaced[t], bare = trie.term_bare[t]
        if not self.all_in_play:
            spaced, bare = self.in_play(spaced), self.in_play(bare)
        if after_space:
            return spaced if spaced >= 0 or self.strict else bare
        if self.strict:
            if bare >= 0 and start > 0 and drop is not None and drop(start, end):
                return -1
            return bare
        return bare if bare >= 0 else spaced

    def scan_text(self, str text, drop=None):
        """(words, starts, ends, keys) of ``text``: its word count and its matches."""
        cdef Matches matches
        cdef int64_t words = 0, m
        matches.data, matches.size, matches.capacity = NULL, 0, 0
        try:
            self.scan(text, &matches, &words, drop)
            starts = np.empty(matches.size, dtype=np.int64)
            ends = np.empty(matches.size, dtype=np.int64)
            keys = np.empty(matches.size, dtype=np.int32)
            for m in range(matches.size):
                starts[m], keys[m] = matches.data[m].start, matches.data[m].key
                ends[m] = matches.data[m].start + matches.data[m].length
            return words, starts, ends, keys
        finally:
            free(matches.data)

    def rewrite(self, str text, uint64_t doc, uint64_t base, drop=None):
        """One document's decisions: (words, candidates, eligible, substitutions per language,
        edits), edits (starts, ends, languages, translation ids) in text order, None if none."""
        cdef Matches matches
        cdef int64_t words = 0
        matches.data, matches.size, matches.capacity = NULL, 0, 0
        try:
            self.scan(text, &matches, &words, drop)
            counts = [0] * self.n_languages
            if not lf_bernoulli(lf_draw(base, LF_DOMAIN_DOCUMENT, doc, 0), self.portion_threshold):
                return words, matches.size, False, counts, None
            return words, matches.size, True, counts, self.draw_edits(&matches, words, doc, base, counts)
        finally:
            free(matches.data)

    cdef object draw_edits(self, Matches *matches, int64_t words, uint64_t doc, uint64_t base, list counts):
        """The replaced matches of an eligible document (starts, lengths, languages, translation
        ids), compacted in place in ``matches``. The coin flips come first; then each step of
        the replaced matches' look-ups (language mask, translation range, weights, translation)
        is a pass of its own, prefetching AHEAD matches on, as the token kernel's resolve_edits:
        the tables are large and the look-ups of different matches independent."""
        cdef int64_t n = matches.size, kept, m
        cdef int l
        cdef uint64_t threshold = self.ratio_threshold
        cdef double p
        cdef int64_t *cand = NULL
        cdef int64_t tally[LF_MAX_LANGUAGES]
        if not n:
            return None
        if self.words_basis:
            p = self.ratio * <double>words / <double>n
            threshold = LF_ALWAYS if p >= 1.0 else <uint64_t>(p * <double>LF_ALWAYS)
        threshold = min(threshold, LF_ALWAYS)
        langs = np.empty(n, dtype=np.int8)
        cdef int8_t[::1] g = langs
        cand = <int64_t *>malloc(3 * n * sizeof(int64_t))  # and the entries of choose_translations
        if cand == NULL:
            raise MemoryError()
        try:
            kept = flip_matches(matches, lf_draw_stream(base, LF_DOMAIN_REPLACE, doc), threshold, cand)
            kept = self.choose_languages(matches, kept, cand, &g[0], doc, base)
            self.choose_translations(matches, kept, cand, &g[0], lf_draw_stream(base, LF_DOMAIN_TRANSLATE, doc),
                                     cand + n)
        finally:
            free(cand)
        if not kept:
            return None
        memset(tally, 0, sizeof(tally))
        for m in range(kept):
            tally[g[m]] += 1
        for l in range(self.n_languages):
            counts[l] += tally[l]
        starts = np.empty(kept, dtype=np.int64)
        lengths = np.empty(kept, dtype=np.int32)
        chosen = np.empty(kept, dtype=np.int32)
        cdef int64_t[::1] s = starts
        cdef int32_t[::1] e = lengths, c = chosen
        for m in range(kept):
            s[m], e[m], c[m] = matches.data[m].start, matches.data[m].length, matches.data[m].key
        return starts, lengths, langs[:kept].copy(), chosen

    cdef int64_t choose_languages(self, Matches *matches, int64_t n, int64_t *cand, int8_t *langs, uint64_t doc,
                                  uint64_t base) except -1:
        """The language of each of the first ``n`` (replaced) matches into ``langs``; with one
        language per document, the matches whose key lacks it are dropped. Returns how many
        are left, compacted with their ``cand``."""
        cdef uint64_t lang_stream = lf_draw_stream(base, LF_DOMAIN_LANG, doc)
        cdef int doc_lang = -1, lang
        cdef int64_t k, kept = 0
        cdef uint32_t mask
        if self.doc_scope:
            doc_lang = lf_pick_language(self.weights, self.n_languages, self.selected,
                                        lf_draw(base, LF_DOMAIN_DOC_LANG, doc, 0))
        for k in range(n):
            if k + AHEAD < n:
                lf_prefetch(&self.lang_mask[matches.data[k + AHEAD].key])
            mask = self.lang_mask[matches.data[k].key]
            if doc_lang >= 0:
                if not mask >> doc_lang & 1:
                    continue
                lang = doc_lang
            else:
                lang = lf_pick_language(self.weights, self.n_languages, mask & self.selected,
                                        lf_draw_at(lang_stream, cand[k]))
            matches.data[kept], cand[kept], langs[kept] = matches.data[k], cand[k], <int8_t>lang
            kept += 1
        return kept

    cdef int choose_translations(self, Matches *matches, int64_t n, const int64_t *cand, const int8_t *langs,
                                 uint64_t translate, int64_t *entry) except -1:
        """Each of the first ``n`` matches' key replaced by its drawn translation's id, in three
        passes: the range of its (key, language) slot into entry[2k], entry[2k + 1]; the
        weighted pick in it into entry[2k]; the id."""
        cdef int64_t k, slot, lo, hi, t
        cdef int32_t key
        for k in range(n):
            if k + AHEAD < n:
                lf_prefetch(&self.trans_start[<int64_t>matches.data[k + AHEAD].key * self.n_languages + langs[k + AHEAD]])
            key = matches.data[k].key
            if langs[k] < 0:
                raise InputError(f"the vocabulary has no translation of key {key} in a language in play")
            slot = <int64_t>key * self.n_languages + langs[k]
            lo, hi = self.trans_start[slot], self.trans_start[slot + 1]
            if not 0 <= lo < hi <= self.n_trans_slots:
                raise InputError(f"the vocabulary has no translation of key {key} in language {langs[k]}")
            entry[2 * k], entry[2 * k + 1] = lo, hi
        for k in range(n):
            if k + AHEAD < n:
                lf_prefetch(&self.trans_cum[entry[2 * (k + AHEAD)]])
            entry[2 * k] = lf_pick_cumulated(self.trans_cum, entry[2 * k], entry[2 * k + 1], lf_draw_at(translate, cand[k]))
        for k in range(n):
            if k + AHEAD < n:
                lf_prefetch(&self.trans[entry[2 * (k + AHEAD)]])
            t = self.trans[entry[2 * k]]
            if not 0 <= t < self.n_translations:
                raise InputError(f"the vocabulary's key {matches.data[k].key} names translation {t}, out of range")
            matches.data[k].key = <int32_t>t
        return 0

    cdef int check_translation(self, int64_t t) except -1:
        """That translation t's text lies in the table and is UTF-8 (as ``translation`` finds
        when it decodes it), without making its str; marked in ``checked``, done once."""
        cdef int64_t lo = self.text_offsets[t], hi = self.text_offsets[t + 1]
        if not 0 <= lo <= hi <= self.n_text:
            raise InputError(f"the vocabulary's translation {t} has its text out of range")
        if not utf8_valid(self.text_blob + lo, hi - lo):
            raise InputError(f"the vocabulary's translation {t} is not UTF-8")
        self.checked[t] = 1
        return 0

    def translation(self, int64_t t):
        """The text written for translation ``t`` (its leading space removed)."""
        cdef int64_t lo, hi
        if self.texts is None:
            self.texts = [None] * self.n_translations
        got = self.texts[t]
        if got is None:
            lo, hi = self.text_offsets[t], self.text_offsets[t + 1]
            if not 0 <= lo <= hi <= self.n_text:
                raise InputError(f"the vocabulary's translation {t} has its text out of range")
            if hi > lo and self.text_blob[lo] == 32:
                lo += 1
            try:
                got = PyUnicode_DecodeUTF8(<const char *>self.text_blob + lo, hi - lo, NULL)
            except UnicodeDecodeError as exc:
                raise InputError(f"the vocabulary's translation {t} is not UTF-8: {exc.reason}") from None
            self.texts[t] = got
        return got

    def render(self, str text, const int64_t[::1] starts, const int32_t[::1] lengths, const int32_t[::1] chosen,
               int64_t first, int64_t stop, int64_t lo, int64_t hi):
        """``text[lo:hi]`` with edits ``first`` .. ``stop - 1`` (inside it, in order) applied."""
        cdef int64_t m, length = hi - lo, at, position = lo
        cdef Py_UCS4 top = 127 if PyUnicode_IS_ASCII(text) else 0
        check_edits(text, starts, lengths, chosen, first, stop, lo, hi, self.n_translations)
        if self.texts is None:
            self.texts = [None] * self.n_translations
        pieces = []
        for m in range(first, stop):
            piece = self.texts[chosen[m]]
            if piece is None:
                piece = self.translation(chosen[m])
            pieces.append(piece)
            length += len(piece) - lengths[m]
            top = max(top, PyUnicode_MAX_CHAR_VALUE(piece))
        if not PyUnicode_IS_ASCII(text) and top < PyUnicode_MAX_CHAR_VALUE(text):
            # the output's kind is that of its largest character: the input's kept parts may
            # have lost the characters that made the input's
            position = lo
            for m in range(first, stop):
                top = max(top, max_char(text, position, starts[m]))
                position = starts[m] + lengths[m]
            top = max(top, max_char(text, position, hi))
        out = PyUnicode_New(length, top)
        at, position = 0, lo
        for m in range(first, stop):
            copy_chars(out, at, text, position, starts[m] - position)
            at += starts[m] - position
            piece = pieces[m - first]
            copy_chars(out, at, piece, 0, len(piece))
            at += len(piece)
            position = starts[m] + lengths[m]
        copy_chars(out, at, text, position, hi - position)
        return out


    def render_json(self, str text, const int64_t[::1] starts, const int32_t[::1] lengths,
                    const int32_t[::1] chosen, int64_t first, int64_t stop, int64_t lo, int64_t hi):
        """``render``'s output as it stands inside a JSON string, in UTF-8, and its length in
        characters: (``json.dumps(render(...), ensure_ascii=False)[1:-1].encode()``,
        ``len(render(...))``), made in one pass without the output str."""
        cdef int kind = PyUnicode_KIND(text)
        cdef const void *data = PyUnicode_DATA(text)
        cdef int64_t m, t, a, b, position = lo, size = 0, bound = 6 * (hi - lo), length = hi - lo
        check_edits(text, starts, lengths, chosen, first, stop, lo, hi, self.n_translations)
        # Two passes over the edits, each prefetching AHEAD edits on: a translation's offsets,
        # then its text, are far apart in tables of millions
        for m in range(first, stop):
            if m + AHEAD < stop:
                lf_prefetch(&self.text_offsets[chosen[m + AHEAD]])
                lf_prefetch(&self.checked[chosen[m + AHEAD]])
            t = chosen[m]
            if not self.checked[t]:
                self.check_translation(t)
            bound += 6 * (self.text_offsets[t + 1] - self.text_offsets[t])
        cdef char *w = <char *>malloc(bound + 1)
        if w == NULL:
            raise MemoryError()
        try:
            for m in range(first, stop):
                if m + AHEAD < stop:
                    lf_prefetch(&self.text_blob[self.text_offsets[chosen[m + AHEAD]]])
                size = json_text(kind, data, position, starts[m], w, size)
                t = chosen[m]
                a, b = self.text_offsets[t], self.text_offsets[t + 1]
                if b > a and self.text_blob[a] == 32:
                    a += 1
                size = json_utf8(self.text_blob + a, b - a, w, size, &length)
                length -= lengths[m]
                position = starts[m] + lengths[m]
            size = json_text(kind, data, position, hi, w, size)
            return PyBytes_FromStringAndSize(w, size), length
        finally:
            free(w)


cdef int check_edits(str text, const int64_t[::1] starts, const int32_t[::1] lengths, const int32_t[::1] chosen,
                     int64_t first, int64_t stop, int64_t lo, int64_t hi, int64_t n_translations) except -1:
    """That edits ``first`` .. ``stop - 1`` lie in order inside ``text[lo:hi]`` and name
    translations that exist: what render and render_json index by."""
    cdef int64_t m, position = lo
    if not 0 <= lo <= hi <= PyUnicode_GET_LENGTH(text) or not 0 <= first <= stop <= starts.shape[0]:
        raise ValueError("render: range out of the text or the edits")
    if lengths.shape[0] != starts.shape[0] or chosen.shape[0] != starts.shape[0]:
        raise ValueError("render: the edits' arrays differ in length")
    for m in range(first, stop):
        if not position <= starts[m] <= starts[m] + lengths[m] <= hi:
            raise ValueError("render: edits out of order or out of range")
        position = starts[m] + lengths[m]
        if not 0 <= chosen[m] < n_translations:
            raise ValueError("render: a translation out of range")
    return 0


cdef inline int64_t json_ascii(uint32_t c, char *w, int64_t size) noexcept:
    """ASCII character c written as json.dumps writes it inside a string; returns the new size."""
    cdef char e = JSON_ESCAPE[c]
    if e == 0:
        w[size] = <char>c
        return size + 1
    w[size] = 92  # backslash
    if e != 1:
        w[size + 1] = e
        return size + 2
    w[size + 1], w[size + 2], w[size + 3] = 117, 48, 48  # u00
    w[size + 4], w[size + 5] = JSON_HEX_DIGITS[c >> 4], JSON_HEX_DIGITS[c & 15]
    return size + 6


cdef int64_t json_chars(const char_t *data, int64_t lo, int64_t hi, char *w, int64_t size) except -1:
    """data[lo:hi], code points, escaped as in a JSON string and encoded in UTF-8 into w."""
    cdef int64_t i = lo, run, k
    cdef uint32_t c
    while i < hi:
        # the run of ASCII characters written as they are, copied at once: most of a text
        run = i
        while run < hi and data[run] < 0x80 and JSON_ESCAPE[data[run]] == 0:
            run += 1
        if char_t is uint8_t:
            memcpy(w + size, data + i, run - i)
            size += run - i
        else:
            for k in range(i, run):
                w[size] = <char>data[k]
                size += 1
        if run == hi:
            break
        i = run + 1
        c = data[run]
        if c < 0x80:
            size = json_ascii(c, w, size)
        elif c < 0x800:
            w[size], w[size + 1] = <char>(0xC0 | c >> 6), <char>(0x80 | c & 0x3F)
            size += 2
        elif c < 0x10000:
            if 0xD800 <= c < 0xE000:
                raise ValueError(f"a lone surrogate U+{c:04X} has no UTF-8 form")
            w[size], w[size + 1], w[size + 2] = <char>(0xE0 | c >> 12), <char>(0x80 | c >> 6 & 0x3F), <char>(0x80 | c & 0x3F)
            size += 3
        else:
            w[size], w[size + 1] = <char>(0xF0 | c >> 18), <char>(0x80 | c >> 12 & 0x3F)
            w[size + 2], w[size + 3] = <char>(0x80 | c >> 6 & 0x3F), <char>(0x80 | c & 0x3F)
            size += 4
    return size


cdef int64_t json_text(int kind, const void *data, int64_t lo, int64_t hi, char *w, int64_t size) except -1:
    """json_chars over a str's data of either kind."""
    if kind == 1:
        return json_chars(<const uint8_t *>data, lo, hi, w, size)
    if kind == 2:
        return json_chars(<const uint16_t *>data, lo, hi, w, size)
    return json_chars(<const uint32_t *>data, lo, hi, w, size)


cdef int64_t json_utf8(const uint8_t *text, int64_t n, char *w, int64_t size, int64_t *chars) noexcept:
    """UTF-8 text (checked already) escaped as in a JSON string into w: only ASCII changes.
    Adds its characters (the bytes that start one) to ``chars``."""
    cdef int64_t i
    for i in range(n):
        if text[i] < 0x80:
            size = json_ascii(text[i], w, size)
        else:
            w[size] = <char>text[i]
            size += 1
        chars[0] += (text[i] & 0xC0) != 0x80
    return size


cdef void copy_chars(str out, int64_t at, str source, int64_t start, int64_t count) noexcept:
    """source[start:start + count] into the new string ``out`` at ``at``, whose kind holds
    them (PyUnicode_CopyCharacters refuses a Latin-1 string's ASCII part into an ASCII one)."""
    cdef int kind = PyUnicode_KIND(out), source_kind = PyUnicode_KIND(source)
    cdef void *data = PyUnicode_DATA(out)
    cdef const void *source_data = PyUnicode_DATA(source)
    cdef int64_t i
    if kind == source_kind:
        memcpy(<char *>data + at * kind, <const char *>source_data + start * kind, count * kind)
        return
    for i in range(count):
        PyUnicode_WRITE(kind, data, at + i, PyUnicode_READ(source_kind, source_data, start + i))


cdef Py_UCS4 max_char(str text, int64_t lo, int64_t hi):
    """The largest code point of text[lo:hi], or the first one past the kind below text's
    (which settles the output's kind)."""
    cdef int kind = PyUnicode_KIND(text)
    cdef const void *data = PyUnicode_DATA(text)
    cdef Py_UCS4 top = 0, c
    cdef Py_UCS4 below = 127 if kind == 1 else 255 if kind == 2 else 65535
    cdef int64_t i
    for i in range(lo, hi):
        c = PyUnicode_READ(kind, data, i)
        if c > top:
            top = c
            if top > below:
                break
    return top
