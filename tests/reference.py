"""A plain-Python implementation of docs/DESIGN.md §3–§5, the oracle the kernel is tested against.

It shares no code with the implementation and imports nothing from link_fast: no trie (keys
are a dict of token tuples, tried longest first), no C, its own draws and stream base
(tests/data/*_kat.csv pin both to the kernel's, see tests/test_kernel.py), its own integer
language weights, derived from the user-facing ``languages=`` mapping as §5 words it, and
its own flag bits (the .lfv format's, pinned to link_fast.tokenizer's by a test).
"""

from __future__ import annotations

import hashlib

# The per-token flag bits of a vocabulary's flags table (DESIGN §3's table, in its order).
FLAG_WS_START, FLAG_GLUE_LEFT, FLAG_END_WORD, FLAG_SPECIAL, FLAG_HAS_WORD, FLAG_FUSES_RIGHT = 1, 2, 4, 8, 16, 32
# The joiner flags of a vocabulary's joiner_flags table (DESIGN §3): the token's text is only
# joiners; starts with joiners, then a word character; ends with a word character, then joiners;
# starts with joiners or none, then a backtick; ends with a backtick, then joiners or none.
JOINER_ONLY, JOINER_THEN_WORD, WORD_THEN_JOINER, JOINERS_THEN_BACKTICK, BACKTICK_THEN_JOINERS = 1, 2, 4, 8, 16
WEIGHT_SCALE = 1 << 24

DOMAIN_DOCUMENT, DOMAIN_DOC_LANG, DOMAIN_REPLACE, DOMAIN_LANG, DOMAIN_TRANSLATE = 1, 2, 3, 4, 5
TWO_53 = 1 << 53
MASK64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def draw(base, domain, doc, cand):
    h = mix64(base ^ ((domain * 0x9E3779B97F4A7C15) & MASK64))
    h = mix64((h + doc) & MASK64)
    return mix64((h + cand) & MASK64)


def stream_base(seed, stream_key):
    digest = hashlib.blake2b(stream_key.encode("utf-8"), digest_size=8).digest()
    return mix64(seed ^ mix64(int.from_bytes(digest, "little")))


def chance(h, p):
    threshold = TWO_53 if p >= 1.0 else int(p * TWO_53)
    return (h >> 11) < threshold


def below(h, n):
    return ((h >> 32) * n) >> 32


def integer_weights(names, languages):
    """DESIGN §5: {language index: integer weight} of the languages in play, from the
    user-facing mapping (None: every language of ``names``, equally; weight 0: not in play).
    Each weight divided by the largest, times 2**24, rounded, at least 1."""
    if languages is None:
        languages = dict.fromkeys(names, 1.0)
    top = max(languages.values())
    return {names.index(l): max(1, round(w / top * WEIGHT_SCALE)) for l, w in languages.items() if w > 0}


def pick(h, weights):
    """weights: list of (lang, integer weight) in language order."""
    r = below(h, sum(w for _, w in weights))
    for lang, w in weights:
        if r < w:
            return lang
        r -= w
    raise AssertionError("unreachable")


class Reference:
    """``lexicon``: {key tokens tuple: {lang index: [translation, ...]}}, a translation being its
    tokens tuple (weight 1) or (tokens tuple, integer weight);
    ``names``: the vocabulary's languages, in order; ``languages``: the user-facing
    {name: weight} mapping (``Substituter(languages=...)``), None for all equally;
    ``joiners``: the joiner flags of each token (None: no token has a joiner)."""

    def __init__(
        self,
        flags,
        lexicon,
        names,
        *,
        ratio,
        portion,
        seed,
        languages=None,
        ratio_basis="candidates",
        lang_scope="word",
        stream_key="",
        joiners=None,
    ):
        self.flags = [int(f) for f in flags]
        self.joiners = [0] * len(self.flags) if joiners is None else [int(j) for j in joiners]
        self.n_languages = len(names)
        self.weights = integer_weights(list(names), languages)  # lang index -> int weight > 0
        self.lexicon = {k: v for k, v in lexicon.items() if any(l in self.weights and v.get(l) for l in v)}
        self.longest = max((len(k) for k in self.lexicon), default=0)
        self.ratio, self.portion = ratio, portion
        self.ratio_basis, self.lang_scope = ratio_basis, lang_scope
        self.base = stream_base(seed, stream_key)

    def words(self, doc):
        f = self.flags
        return sum(
            1
            for p, t in enumerate(doc)
            if f[t] & FLAG_HAS_WORD and (f[t] & FLAG_WS_START or p == 0 or not f[doc[p - 1]] & FLAG_END_WORD)
        )

    def joined_right(self, doc, j):
        """DESIGN §3: the tokens from j on spell one or more joiners, then a word character; or
        joiners or none, then a backtick."""
        g, k = self.joiners, j
        while k < len(doc) and g[doc[k]] & JOINER_ONLY:
            k += 1
        if k == len(doc):
            return False
        if g[doc[k]] & JOINERS_THEN_BACKTICK:
            return True
        return bool(g[doc[k]] & JOINER_THEN_WORD or (k > j and self.flags[doc[k]] & FLAG_GLUE_LEFT))

    def joined_left(self, doc, i):
        """DESIGN §3: the tokens before i spell a word character, then one or more joiners; or a
        backtick, then joiners or none."""
        g, k = self.joiners, i
        while k > 0 and g[doc[k - 1]] & JOINER_ONLY:
            k -= 1
        if k == 0:
            return False
        if g[doc[k - 1]] & BACKTICK_THEN_JOINERS:
            return True
        return bool(g[doc[k - 1]] & WORD_THEN_JOINER or (k < i and self.flags[doc[k - 1]] & FLAG_END_WORD))

    def matches(self, doc):
        f, out, i = self.flags, [], 0
        while i < len(doc):
            left_ok = i == 0 or f[doc[i]] & FLAG_WS_START or not f[doc[i - 1]] & (FLAG_END_WORD | FLAG_FUSES_RIGHT)
            if left_ok and not f[doc[i]] & FLAG_WS_START and self.joined_left(doc, i):
                left_ok = False
            found = None
            if left_ok:
                for j in range(min(len(doc), i + self.longest), i, -1):
                    key = tuple(doc[i:j])
                    if (
                        key in self.lexicon
                        and (j == len(doc) or not f[doc[j]] & FLAG_GLUE_LEFT)
                        and not self.joined_right(doc, j)
                    ):
                        found = (i, j, key)
                        break
            if found:
                out.append(found)
                i = found[1]
            else:
                i += 1
        return out

    def apply_doc(self, doc, doc_index, stats):
        doc = [int(t) for t in doc]
        words = self.words(doc)
        matches = self.matches(doc)
        stats["words"] += words
        stats["candidates"] += len(matches)
        edits = []
        if chance(draw(self.base, DOMAIN_DOCUMENT, doc_index, 0), self.portion):
            stats["eligible_documents"] += 1
            stats["eligible_candidates"] += len(matches)
            p = self.ratio
            if self.ratio_basis == "words" and matches:
                p = min(1.0, self.ratio * words / len(matches))
            doc_lang = None
            if self.lang_scope == "document":
                doc_lang = pick(draw(self.base, DOMAIN_DOC_LANG, doc_index, 0), sorted(self.weights.items()))
            for m, (i, j, key) in enumerate(matches):
                if not chance(draw(self.base, DOMAIN_REPLACE, doc_index, m), p):
                    continue
                options = self.lexicon[key]
                if doc_lang is not None:
                    if not options.get(doc_lang):
                        continue
                    lang = doc_lang
                else:
                    available = [(l, w) for l, w in sorted(self.weights.items()) if options.get(l)]
                    lang = pick(draw(self.base, DOMAIN_LANG, doc_index, m), available)
                # DESIGN 5: the first translation whose running sum of weights exceeds the draw
                weighted = [t if t and isinstance(t[0], tuple) else (t, 1) for t in options[lang]]
                index = pick(draw(self.base, DOMAIN_TRANSLATE, doc_index, m), list(enumerate(w for _, w in weighted)))
                chosen = weighted[index][0]
                edits.append((i, j, chosen))
                stats["substitutions"][lang] += 1
        out, mask, pos = [], [], 0
        for i, j, chosen in edits:
            out += doc[pos:i]
            mask += [0] * (i - pos)
            out += list(chosen)
            mask += [1] * len(chosen)
            pos = j
        out += doc[pos:]
        mask += [0] * (len(doc) - pos)
        return out, mask

    def apply(self, docs, first_doc=0):
        stats = {
            "words": 0,
            "candidates": 0,
            "eligible_documents": 0,
            "eligible_candidates": 0,
            "substitutions": [0] * self.n_languages,
        }
        outs, masks = [], []
        for d, doc in enumerate(docs):
            out, mask = self.apply_doc(doc, first_doc + d, stats)
            outs.append(out)
            masks.append(mask)
        return outs, masks, stats
