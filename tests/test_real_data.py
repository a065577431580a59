"""Acceptance tests on real material (docs/DESIGN.md §3): Mistral's Tekken and SentencePiece v1
tokenizers, FreeDict eng-deu / eng-fra, and ~400 documents of English prose from the Python
documentation. Needs ``LINK_FAST_FIXTURES`` (see ``scripts/fetch_fixtures.sh`` and conftest.py).

Every substitution of a ``ratio=1`` run is traced back to its dictionary entry: the mask and the
source tokens align input and output, and each replaced span must be a whole dictionary word in
one case form whose output is one of its translations in the same form. On the same run we
measure recall (whole-word occurrences of dictionary words that were found) and how many
substitutions leave the token sequence canonical (what the tokenizer itself would produce).
The figures are printed; run with ``-s`` or read the captured output to see them.
"""

from __future__ import annotations

import bisect
import itertools
import shutil
import struct
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from link_fast import InputError, Substituter, Vocab, VocabError

pytestmark = pytest.mark.real_data

NAMES = ("tekken", "sp_v1")
# Token dtype each corpus is stored in, as a Megatron shard of that tokenizer would be.
DTYPES = {"tekken": np.uint32, "sp_v1": np.uint16}


# ---------------------------------------------------------------------------------------------
# Helpers


def is_word_char(ch: str) -> bool:
    """The word-character definition of the boundary flags: letter, number or combining mark
    (``_`` is not one, unlike in Python's ``\\w``)."""
    return unicodedata.category(ch)[0] in "LNM"


def apply_case(text: str, case: str) -> str:
    if case == "title":
        return text[:1].upper() + text[1:]
    if case == "upper":
        return text.upper()
    return text  # "lower" and "exact" keep the dictionary's spelling


def case_forms(word: str, entries) -> list[tuple[str, str]]:
    """(source, case) pairs of a dictionary whose case form spells ``word``."""
    out = []
    for source in {word, word.lower(), word[:1] + word[1:].lower()}:
        if source in entries:
            for case in ("exact", "title", "upper"):
                if apply_case(source, case) == word:
                    out.append((source, case))
    return out


def word_runs(text: str) -> list[tuple[int, int]]:
    """(start, end) character ranges of the maximal runs of word characters."""
    runs, start = [], None
    for i, ch in enumerate(text):
        if is_word_char(ch):
            if start is None:
                start = i
        elif start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(text)))
    return runs


def byte_to_char(data: bytes, text: str):
    """Function mapping a byte offset at a character boundary of ``data`` to a character offset."""
    if len(data) == len(text):
        return lambda b: b
    table = {}
    position = 0
    for i, ch in enumerate(text):
        table[position] = i
        position += len(ch.encode("utf-8"))
    table[position] = len(text)
    return table.__getitem__


def show(text: str, limit: int = 70) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


class AlignmentError(AssertionError):
    pass


@dataclass
class Piece:
    """One substitution: input tokens [i0, i1) of a document became output tokens [o0, o1)."""

    doc: int
    i0: int
    i1: int
    o0: int
    o1: int
    key: int
    lang: int
    text: str  # the translation's text as the vocabulary stores it


@dataclass(repr=False)
class Real:
    """One tokenizer's corpus and vocabulary, with the lookups the checks need."""

    name: str
    tok: object
    vocab: Vocab
    lexicons: dict  # lang -> Lexicon, in vocabulary language order
    documents: list[str]
    ids: list[tuple[int, ...]]  # tokens of each document
    tokens: np.ndarray
    offsets: np.ndarray
    token_len: list[int]  # bytes of each token id
    keys: dict = field(default_factory=dict)  # key token ids -> key index
    max_key_tokens: int = 0
    _translations: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # not the 1.8M keys
        return (
            f"<Real {self.name}: {len(self.documents)} documents, {len(self.tokens):,} tokens, "
            f"{self.vocab.n_keys:,} keys>"
        )

    def translations(self, key: int) -> list[tuple[int, tuple[int, ...], str]]:
        """(lang index, ids, text) of every translation of ``key``, languages in order."""
        found = self._translations.get(key)
        if found is None:
            found = [
                (lang, ids, text)
                for lang in range(len(self.vocab.languages))
                for ids, text in self.vocab.translations(key, lang)
            ]
            self._translations[key] = found
        return found

    def byte_offsets(self, ids) -> list[int]:
        tl = self.token_len
        return [0, *itertools.accumulate(tl[t] for t in ids)]

    def decode_bytes(self, ids) -> bytes:
        tb = self.tok.token_bytes
        return b"".join(tb(t) for t in ids)

    def substituter(self, **options) -> Substituter:
        return Substituter(self.vocab, **options)

    # -- alignment of input and output through the mask ----------------------------------
    def decompose(self, span: tuple[int, ...], run: tuple[int, ...]):
        """Split an input span and the output run that replaced it into consecutive
        (key, translation) pairs, longest key first; None if impossible."""
        memo = {}
        keys = self.keys

        def go(s: int, r: int):
            if s == len(span):
                return [] if r == len(run) else None
            if (s, r) in memo:
                return memo[(s, r)]
            result = None
            for length in range(min(self.max_key_tokens, len(span) - s), 0, -1):
                key = keys.get(span[s : s + length])
                if key is None:
                    continue
                for lang, ids, text in self.translations(key):
                    if run[r : r + len(ids)] == ids:
                        rest = go(s + length, r + len(ids))
                        if rest is not None:
                            result = [(s, s + length, r, r + len(ids), key, lang, text), *rest]
                            break
                if result is not None:
                    break
            memo[(s, r)] = result
            return result

        return go(0, 0)

    def align(self, doc: int, a: tuple[int, ...], b: tuple[int, ...], m: list[int]) -> list[Piece]:
        """The substitutions of one document, from its input ``a``, output ``b`` and mask ``m``.

        Unmasked output tokens are input tokens, in order; a masked run replaces one input span
        (several adjacent substitutions merge into one run: ``decompose`` splits it). The span
        ends where the next unmasked segment resumes in the input.
        """
        pieces = []
        i = p = 0
        n, nb = len(a), len(b)
        while p < nb or i < n:
            if p < nb and not m[p]:
                if i >= n or a[i] != b[p]:
                    raise AlignmentError(f"doc {doc}: unmasked output token {p} ({b[p]}) is not input token {i}")
                i += 1
                p += 1
                continue
            if p >= nb:
                raise AlignmentError(f"doc {doc}: input tokens {i}.. are missing from the output")
            q = p
            while q < nb and m[q]:
                q += 1
            r = q
            while r < nb and not m[r]:
                r += 1
            resume = b[q:r]
            run = b[p:q]
            if r == nb:
                ends = [n - len(resume)]
            else:
                ends = range(i + 1, min(n - len(resume), i + self.max_key_tokens * len(run)) + 1)
            for e in ends:
                if e <= i or a[e : e + len(resume)] != resume:
                    continue
                parts = self.decompose(a[i:e], run)
                if parts:
                    pieces.extend(
                        Piece(doc, i + s0, i + s1, p + r0, p + r1, key, lang, text)
                        for s0, s1, r0, r1, key, lang, text in parts
                    )
                    i, p = e, q
                    break
            else:
                raise AlignmentError(
                    f"doc {doc}: masked output run {p}:{q} {show(self.tok.decode(run))} is no sequence of "
                    f"dictionary translations of input tokens from {i} {show(self.tok.decode(a[i : i + 8]))}"
                )
        return pieces


_REAL: dict[str, Real] = {}


def get_real(name: str, request) -> Real:
    if name not in _REAL:
        tok = request.getfixturevalue(name)
        vocab = request.getfixturevalue(f"{name}_vocab")
        lexicons = request.getfixturevalue("real_lexicons")
        documents = request.getfixturevalue("pydoc_documents")
        ids = [tuple(x) for x in tok.encode_batch(documents)]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in ids], out=offsets[1:])
        tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=DTYPES[name], count=int(offsets[-1]))
        # The key lookup, from the vocabulary's key_tokens (vocab.key_tokens(k) for every k,
        # read from the flat tables: the same data, 20x faster for 1.8M keys).
        ko = vocab.tables["key_offsets"].tolist()
        kt = vocab.tables["key_tokens"].tolist()
        keys = {tuple(kt[ko[k] : ko[k + 1]]): k for k in range(vocab.n_keys)}
        assert len(keys) == vocab.n_keys, "two keys have the same token ids"
        _REAL[name] = Real(
            name,
            tok,
            vocab,
            {lang: lexicons[lang] for lang in vocab.languages},
            documents,
            ids,
            tokens,
            offsets,
            [len(tok.token_bytes(i)) for i in range(tok.vocab_size)],
            keys,
            max(map(len, keys)),
        )
    return _REAL[name]


@pytest.fixture(scope="module", params=NAMES)
def real(request) -> Real:
    return get_real(request.param, request)


@pytest.fixture(scope="module")
def tekken_real(request) -> Real:
    return get_real("tekken", request)


def run_and_align(real: Real, **options):
    """Apply with a mask and trace every substitution: (result, output ids per doc, pieces)."""
    result = real.substituter(**options).apply(real.tokens, real.offsets, mask=True)
    out_ids, pieces = [], []
    for d, a in enumerate(real.ids):
        lo, hi = int(result.offsets[d]), int(result.offsets[d + 1])
        b = tuple(result.tokens[lo:hi].tolist())
        out_ids.append(b)
        pieces.append(real.align(d, a, b, result.mask[lo:hi].tolist()))
    return result, out_ids, pieces


@dataclass
class FullRun:
    result: object
    out_ids: list
    pieces: list  # per document: [Piece]


_FULL: dict[str, FullRun] = {}


@pytest.fixture(scope="module")
def full(real) -> FullRun:
    """``ratio=1, portion=1``: every candidate is replaced, so the pieces are all the matches."""
    if real.name not in _FULL:
        _FULL[real.name] = FullRun(*run_and_align(real, ratio=1.0, portion=1.0, seed=0))
    return _FULL[real.name]


def report(capsys, line: str) -> None:
    """Print a figure so that it shows in the test output even when output is captured."""
    with capsys.disabled():
        print(f"\n[real data] {line}", end="")


# ---------------------------------------------------------------------------------------------
# 0. The compiled vocabularies


def test_compile_report(real, capsys):
    meta = real.vocab.meta
    assert meta["tokenizer"]["fingerprint"] == real.tok.fingerprint
    assert real.vocab.languages == tuple(real.lexicons)
    for lang, counts in meta["report"]["languages"].items():
        lost = counts["forms_not_context_free"] / counts["forms"]
        report(
            capsys,
            f"{real.name} {lang}: {counts['sources']:,} sources, {counts['keys']:,} keys, "
            f"{counts['forms_not_context_free']:,} forms not context-free ({lost:.2%})",
        )
        assert counts["sources"] == len(real.lexicons[lang])
        assert lost < 0.01
        assert counts["keys"] > counts["sources"]


# ---------------------------------------------------------------------------------------------
# 1. Whole-word replacements


def test_every_replacement_is_a_whole_dictionary_word_and_its_translation(real, full, capsys):
    stats = full.result.stats
    n_pieces = sum(map(len, full.pieces))
    assert stats.documents == len(real.documents)
    assert stats.eligible_documents == stats.documents
    assert stats.candidates == stats.eligible_candidates == stats.total_substitutions == n_pieces > 0
    assert stats.tokens_in == len(real.tokens) and stats.tokens_out == len(full.result.tokens)
    # (a translation both dictionaries give is attributed to the first language here)
    by_lang = Counter(real.vocab.languages[p.lang] for doc in full.pieces for p in doc)

    vocab, tok = real.vocab, real.tok
    problems: list[str] = []
    kinds = Counter()
    for d, pieces in enumerate(full.pieces):
        a, b = real.ids[d], full.out_ids[d]
        data = real.decode_bytes(a)
        starts = real.byte_offsets(a)
        for piece in pieces:
            span, run = a[piece.i0 : piece.i1], b[piece.o0 : piece.o1]
            key = real.keys[span]
            assert key == piece.key
            key_text = vocab.key_text(key)
            span_text = tok.decode(span)
            where = f"{real.name} doc {d} tokens {piece.i0}:{piece.i1}"
            if span_text != key_text:
                problems.append(f"{where}: span decodes to {span_text!r}, its key is {key_text!r}")
                continue
            spaced = key_text.startswith(" ")
            word = key_text[1:] if spaced else key_text
            kinds["phrase" if " " in word else "word"] += 1
            if not word or word != word.strip() or "  " in word:
                problems.append(f"{where}: key {key_text!r} is not one space + a word or phrase")
                continue
            # Bounded by non-word characters (or the document edge) in the decoded text: the
            # character before the word is the key's own space, or the one before the span.
            lo, hi = starts[piece.i0], starts[piece.i1]
            before = " " if spaced else data[max(0, lo - 4) : lo].decode("utf-8", "replace")[-1:]
            after = data[hi : hi + 4].decode("utf-8", "replace")[:1]
            if (before and is_word_char(before)) or (after and is_word_char(after)):
                context = data[max(0, lo - 20) : hi + 20].decode("utf-8", "replace")
                problems.append(f"{where}: {key_text!r} is part of a longer word in {context!r}")
                continue
            # One case form of a dictionary source, in a language the key is translated to.
            lang_code = vocab.languages[piece.lang]
            entries = real.lexicons[lang_code].entries
            forms = case_forms(word, entries)
            if not forms:
                problems.append(f"{where}: {word!r} is no case form of a {lang_code} dictionary source")
                continue
            # The output is a translation of that key, in the same case form and spacing.
            out_text = tok.decode(run)
            stored = [(ids, text) for ids, text in vocab.translations(key, piece.lang)]
            if (run, out_text) not in stored:
                problems.append(f"{where}: {key_text!r} -> {out_text!r} is not among {stored[:5]}")
                continue
            if out_text.startswith(" ") != spaced or (out_text[1:] if spaced else out_text) != out_text.strip():
                problems.append(f"{where}: {key_text!r} -> {out_text!r}: spacing not carried over")
                continue
            target = out_text.strip()
            allowed = {apply_case(t, case) for source, case in forms for t in entries[source]}
            if target not in allowed:
                problems.append(
                    f"{where}: {key_text!r} -> {out_text!r}: not a {lang_code} translation of "
                    f"{[s for s, _ in forms]} in the same case ({sorted(allowed)[:6]})"
                )
    report(
        capsys,
        f"{real.name}: {n_pieces:,} substitutions at ratio=1 checked "
        f"({kinds['word']:,} words, {kinds['phrase']:,} phrases; by language {dict(by_lang)}), "
        f"{len(problems)} problems",
    )
    assert not problems, f"{len(problems)} bad substitutions, e.g.:\n" + "\n".join(problems[:25])


# ---------------------------------------------------------------------------------------------
# 2. Recall


def test_recall_of_dictionary_words(real, full, capsys):
    """Whole-word occurrences (lower, Title, UPPER) of single-word dictionary sources found."""
    words = set()
    for lexicon in real.lexicons.values():
        words.update(s for s in lexicon.entries if len(s) >= 3 and s == s.lower() and all(map(is_word_char, s)))
    occurrences = covered = 0
    missed = Counter()
    examples: dict[str, str] = {}
    for d, a in enumerate(real.ids):
        data = real.decode_bytes(a)
        text = data.decode("utf-8")
        to_char = byte_to_char(data, text)
        starts = real.byte_offsets(a)
        spans = [(to_char(starts[p.i0]), to_char(starts[p.i1])) for p in full.pieces[d]]
        span_starts = [s for s, _ in spans]
        for s, e in word_runs(text):
            w = text[s:e]
            source = w.lower()
            if source not in words or w not in (source, apply_case(source, "title"), source.upper()):
                continue
            occurrences += 1
            k = bisect.bisect_right(span_starts, s) - 1
            if k >= 0 and spans[k][1] >= e:
                covered += 1
            else:
                missed[w] += 1
                examples.setdefault(w, text[max(0, s - 25) : e + 25])
    recall = covered / occurrences
    report(
        capsys,
        f"{real.name}: recall {recall:.2%} ({covered:,} of {occurrences:,} whole-word occurrences "
        f"of {len(words):,} single-word sources)",
    )
    top = ", ".join(f"{w!r}x{n} in {examples[w]!r}" for w, n in missed.most_common(12)) or "none"
    report(capsys, f"{real.name}: most missed: {top}")
    assert occurrences > 10_000
    assert recall >= 0.90, f"recall {recall:.2%}; most missed: {top}"


# ---------------------------------------------------------------------------------------------
# 3. Canonical tokenization


def test_substitutions_leave_canonical_tokenization(real, full, capsys):
    """Re-encoding the rewritten text gives back the emitted ids around each substitution."""
    tok = real.tok
    total = canonical = with_neighbours = 0
    baseline_off = 0
    examples: list[str] = []
    categories = Counter()
    for d, (a, b) in enumerate(zip(real.ids, full.out_ids)):
        original = tok.decode(a)
        # SentencePiece adds a dummy leading space that our decode keeps: re-encode without it.
        strip = 1 if original.startswith(" ") and not real.documents[d].startswith(" ") else 0
        if tuple(tok.encode(original[strip:])) != a:
            baseline_off += 1  # the original itself is not canonical: nothing to measure here
            continue
        data = real.decode_bytes(b)
        text = data.decode("utf-8")
        again = tok.encode(text[strip:])
        if tok.decode(again) != text:
            raise AssertionError(f"{real.name} doc {d}: re-encoding does not round-trip the rewritten text")
        out_starts = real.byte_offsets(b)
        again_starts = real.byte_offsets(again)
        position = {byte: k for k, byte in enumerate(again_starts)}
        for piece in full.pieces[d]:
            total += 1
            lo, hi = out_starts[piece.o0], out_starts[piece.o1]
            k = position.get(lo)
            same = (
                k is not None
                and tuple(again[k : k + piece.o1 - piece.o0]) == b[piece.o0 : piece.o1]
                and again_starts[k + piece.o1 - piece.o0] == hi
            )
            if same:
                canonical += 1
                k0, k1 = max(0, piece.o0 - 1), min(len(b), piece.o1 + 1)
                j = position.get(out_starts[k0])
                if j is not None and tuple(again[j : j + k1 - k0]) == b[k0:k1]:
                    with_neighbours += 1
                continue
            # Show what the tokenizer does instead, with a little context.
            c0, c1 = max(0, piece.o0 - 2), min(len(b), piece.o1 + 2)
            j0 = max(0, bisect.bisect_right(again_starts, out_starts[c0]) - 1)
            j1 = bisect.bisect_left(again_starts, out_starts[c1])
            emitted = [tok.decode([t]) for t in b[c0:c1]]
            wanted = [tok.decode([t]) for t in again[j0:j1]]
            before = data[max(0, lo - 1) : lo].decode("utf-8", "replace")
            after = data[hi : hi + 1].decode("utf-8", "replace")
            categories[f"{before!r}+translation+{after!r}"] += 1
            if len(examples) < 30:
                examples.append(
                    f"doc {d}: {real.vocab.key_text(piece.key)!r} -> {piece.text!r}: "
                    f"emitted {emitted} / canonical {wanted}"
                )
    share = canonical / total
    report(
        capsys,
        f"{real.name}: canonical {share:.3%} ({canonical:,} of {total:,} substitutions; "
        f"{with_neighbours / total:.3%} with the tokens on both sides unchanged too; "
        f"{baseline_off} documents not canonical before substitution)",
    )
    if examples:
        report(capsys, f"{real.name}: non-canonical by neighbouring characters: {dict(categories.most_common(10))}")
        report(capsys, f"{real.name}: non-canonical examples:\n  " + "\n  ".join(examples[:15]))
    assert baseline_off <= len(real.documents) // 100
    assert share >= 0.999, f"only {share:.3%} canonical; e.g.:\n" + "\n".join(examples)


# ---------------------------------------------------------------------------------------------
# 3b. Code, URLs and paths

JOINERS = "_./:=(@\\'\u2019"  # DESIGN §3
APOSTROPHES = "'\u2019"


def joined(text: str, start: int, end: int) -> bool:
    """DESIGN §3, restated: ``text[start:end]`` has one or more joiners, then a word character,
    on one side or the other."""
    after, before = end, start
    while after < len(text) and text[after] in JOINERS:
        after += 1
    while before > 0 and text[before - 1] in JOINERS:
        before -= 1
    return (end < after < len(text) and is_word_char(text[after])) or (
        0 < before < start and is_word_char(text[before - 1])
    )


def next_to_backtick(text: str, start: int, end: int) -> bool:
    """DESIGN §3, restated: a backtick next to ``text[start:end]``, directly or past joiners
    (inline code: ``os``, ``:mod:`os```)."""
    after, before = end, start
    while after < len(text) and text[after] in JOINERS:
        after += 1
    while before > 0 and text[before - 1] in JOINERS:
        before -= 1
    return (after < len(text) and text[after] == "`") or (before > 0 and text[before - 1] == "`")


def in_contraction(text: str, start: int, end: int) -> bool:
    """``text[start:end]`` and a word character on either side of one apostrophe: ``don't``, ``it's``."""
    return (end + 1 < len(text) and text[end] in APOSTROPHES and is_word_char(text[end + 1])) or (
        start >= 2 and text[start - 1] in APOSTROPHES and is_word_char(text[start - 2])
    )


def candidates_where(real: Real, full: FullRun, predicate) -> tuple[list[str], int]:
    """The candidates of token mode (at ratio 1 every candidate is replaced) and text mode with
    the tokenizer for which ``predicate(text, start, end)`` holds, shown in context; and the
    number of text-mode candidates."""
    from link_fast.text import TextSubstituter

    problems: list[str] = []
    for d, pieces in enumerate(full.pieces):
        data = real.decode_bytes(real.ids[d])
        text = data.decode("utf-8")
        to_char = byte_to_char(data, text)
        starts = real.byte_offsets(real.ids[d])
        for piece in pieces:
            start, end = to_char(starts[piece.i0]), to_char(starts[piece.i1])
            start += real.vocab.key_text(piece.key).startswith(" ")  # the word, after its space
            if predicate(text, start, end):
                problems.append(f"token mode, doc {d}: {text[max(0, start - 20) : end + 20]!r}")
    text_sub = TextSubstituter(real.vocab, ratio=1.0, tokenizer=real.tok)
    text_candidates = 0
    for d, document in enumerate(real.documents):
        matches = text_sub.matches(document)
        text_candidates += len(matches)
        problems += [
            f"text mode, doc {d}: {document[max(0, start - 20) : end + 20]!r}"
            for start, end, _ in matches
            if predicate(document, start, end)
        ]
    return problems, text_candidates


def test_no_substitution_inside_code_urls_or_paths(real, full, capsys):
    """The Python docs name modules, functions, files and URLs (``os.path``, ``sys.argv``,
    ``https://...``): no word of them is a candidate, in token mode nor in text mode; and the
    documents have such words to leave alone."""
    problems, text_candidates = candidates_where(real, full, joined)
    joined_words = sum(joined(doc, s, e) for doc in real.documents for s, e in word_runs(doc))
    report(
        capsys,
        f"{real.name}: {joined_words:,} words of the documents joined to another by joiners, none replaced "
        f"among {sum(map(len, full.pieces)):,} token-mode and {text_candidates:,} text-mode candidates",
    )
    assert joined_words > 100
    assert not problems, f"{len(problems)} candidates inside code, URLs or paths, e.g.:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize(
    ("what", "predicate", "least"),
    [("next to a backtick (inline code)", next_to_backtick, 2000), ("inside a contraction", in_contraction, 500)],
)
def test_no_substitution_in_inline_code_or_contractions(real, full, capsys, what, predicate, least):
    """The reST sources of the Python docs quote code in backticks (````None````, ``:func:`open```)
    and write contractions (``don't``, ``Python's``): no word there is a candidate, in token mode
    nor in text mode; and the documents have many such words to leave alone."""
    problems, text_candidates = candidates_where(real, full, predicate)
    words = sum(predicate(doc, s, e) for doc in real.documents for s, e in word_runs(doc))
    report(
        capsys,
        f"{real.name}: {words:,} words of the documents {what}, none replaced among "
        f"{sum(map(len, full.pieces)):,} token-mode and {text_candidates:,} text-mode candidates",
    )
    assert words > least
    assert not problems, f"{len(problems)} candidates {what}, e.g.:\n" + "\n".join(problems[:20])


# ---------------------------------------------------------------------------------------------
# 4. Sampling rates


def test_portion_and_ratio_rates(real, capsys):
    documents = eligible = candidates = substitutions = 0
    per_seed = []
    for seed in range(16):
        stats = real.substituter(ratio=0.3, portion=0.5, seed=seed).apply(real.tokens, real.offsets).stats
        assert stats.eligible_candidates <= stats.candidates
        documents += stats.documents
        eligible += stats.eligible_documents
        candidates += stats.eligible_candidates
        substitutions += stats.total_substitutions
        per_seed.append(stats.total_substitutions / stats.eligible_candidates)
        # per run: thousands of eligible candidates, so 1 point is several standard deviations
        assert abs(per_seed[-1] - 0.3) <= 0.01, f"seed {seed}: ratio {per_seed[-1]:.4f}"
    portion = eligible / documents
    ratio = substitutions / candidates
    report(
        capsys,
        f"{real.name}: portion 0.5 -> {portion:.4f} eligible ({eligible:,} of {documents:,} documents, "
        f"16 seeds); ratio 0.3 -> {ratio:.4f} ({substitutions:,} of {candidates:,} eligible candidates; "
        f"per seed {min(per_seed):.4f}..{max(per_seed):.4f})",
    )
    assert abs(portion - 0.5) <= 0.03
    assert abs(ratio - 0.3) <= 0.01


def test_ratio_of_words(real, capsys):
    """``ratio_basis="words"``: substitutions are ``ratio`` of all words of the eligible documents."""
    sub = real.substituter(ratio=0.1, portion=0.5, seed=3, ratio_basis="words")
    words = substitutions = candidates = eligible = 0
    total = None
    for d in range(len(real.ids)):  # one document at a time, to know which ones were eligible
        stats = sub.apply(real.tokens, real.offsets[d : d + 2], first_doc=d).stats
        total = stats if total is None else total + stats
        if stats.eligible_documents:
            eligible += 1
            words += stats.words
            candidates += stats.candidates
            substitutions += stats.total_substitutions
        else:
            assert stats.total_substitutions == 0
    whole = sub.apply(real.tokens, real.offsets).stats
    assert whole.to_dict() == total.to_dict()
    share = substitutions / words
    report(
        capsys,
        f"{real.name}: ratio 0.1 of words -> {share:.4f} ({substitutions:,} of {words:,} words in "
        f"{eligible} eligible documents; {candidates / words:.2f} candidates per word)",
    )
    assert candidates >= 0.1 * words  # the ratio is reachable
    assert abs(share - 0.1) <= 0.01


def test_language_weights(tekken_real, capsys):
    """``{"de": 0.7, "fr": 0.3}``: among words both dictionaries have, 70% go to German."""
    real = tekken_real
    de, fr = real.vocab.languages.index("de"), real.vocab.languages.index("fr")
    result, _, pieces = run_and_align(real, ratio=1.0, portion=1.0, seed=5, languages={"de": 0.7, "fr": 0.3})
    counts = Counter()
    for piece in itertools.chain.from_iterable(pieces):
        ids = {lang: {t for t, _ in real.vocab.translations(piece.key, lang)} for lang in (de, fr)}
        # Keys whose German and French translations share a token sequence are left out: which
        # language was drawn cannot be told from the output (decided per key, not per outcome).
        if ids[de] and ids[fr] and not ids[de] & ids[fr]:
            counts[piece.lang] += 1
        else:
            counts["single"] += 1
    both = counts[de] + counts[fr]
    share = counts[de] / both
    report(
        capsys,
        f"tekken: de share {share:.4f} among {both:,} substitutions of words in both dictionaries "
        f"(weights de 0.7, fr 0.3; {counts['single']:,} others)",
    )
    assert result.stats.substitutions["de"] + result.stats.substitutions["fr"] == sum(counts.values())
    assert both >= 2_000
    assert abs(share - 0.7) <= 0.03


# ---------------------------------------------------------------------------------------------
# 5. Determinism


def test_batching_does_not_change_the_output(real):
    options = dict(ratio=0.3, portion=0.5, seed=11, stream_key="shard_00000")
    sub = real.substituter(**options)
    whole = sub.apply(real.tokens, real.offsets, mask=True)
    assert whole.stats.total_substitutions > 1000
    n = len(real.ids)
    for size in (1, 7, 50):
        tokens, masks, lengths, total = [], [], [], None
        for start in range(0, n, size):
            stop = min(n, start + size)
            if size == 7:  # a slice of the shard: offsets into the whole token array
                batch = sub.apply(real.tokens, real.offsets[start : stop + 1], first_doc=start, mask=True)
            else:  # a copy, offsets from 0
                lo, hi = real.offsets[start], real.offsets[stop]
                batch = sub.apply(
                    real.tokens[lo:hi].copy(), real.offsets[start : stop + 1] - lo, first_doc=start, mask=True
                )
            tokens.append(batch.tokens)
            masks.append(batch.mask)
            lengths.append(np.diff(batch.offsets))
            total = batch.stats if total is None else total + batch.stats
        assert np.array_equal(np.concatenate(tokens), whole.tokens), f"batches of {size}"
        assert np.array_equal(np.concatenate(masks), whole.mask), f"batches of {size}"
        assert np.array_equal(np.concatenate(lengths), np.diff(whole.offsets)), f"batches of {size}"
        assert total.to_dict() == whole.stats.to_dict(), f"batches of {size}"
    again = real.substituter(**options).apply(real.tokens, real.offsets, mask=True)
    assert np.array_equal(again.tokens, whole.tokens) and np.array_equal(again.mask, whole.mask)
    for other in (dict(options, seed=12), dict(options, stream_key="shard_00001")):
        changed = real.substituter(**other).apply(real.tokens, real.offsets)
        assert not np.array_equal(changed.tokens, whole.tokens), other


# ---------------------------------------------------------------------------------------------
# 6. Fingerprints and bad input on real files


def test_vocab_of_another_tokenizer_is_refused(tekken_vocab_path, sp_v1, tekken):
    with pytest.raises(VocabError) as caught:
        Vocab.load(tekken_vocab_path, tokenizer=sp_v1)
    message = str(caught.value)
    assert "tekken_240911.json" in message and "tokenizer.model.v1" in message
    Vocab.load(tekken_vocab_path, tokenizer=tekken)  # the right one is accepted


def test_damaged_vocab_files_are_refused(tekken_vocab_path, tmp_path):
    data = tekken_vocab_path.read_bytes()
    (version,) = struct.unpack_from("<I", data, 8)
    patched = tmp_path / "version.lfv"
    patched.write_bytes(data[:8] + struct.pack("<I", version + 1) + data[12:])
    with pytest.raises(VocabError, match="version"):
        Vocab.load(patched)
    (header_length,) = struct.unpack_from("<Q", data, 16)
    for size in (24 + header_length // 2, len(data) // 2, len(data) - 4096):
        truncated = tmp_path / f"truncated-{size}.lfv"
        truncated.write_bytes(data[:size])
        with pytest.raises(VocabError, match="truncated"):
            Vocab.load(truncated)
        truncated.unlink()
    copy = tmp_path / "copy.lfv"
    shutil.copyfile(tekken_vocab_path, copy)
    assert Vocab.load(copy).n_keys > 1_000_000


def test_token_ids_outside_the_vocabulary_are_refused(real):
    sub = real.substituter(ratio=0.3, seed=0)
    for bad in (real.tok.vocab_size, np.iinfo(real.tokens.dtype).max):
        tokens = real.tokens.copy()
        position = int(real.offsets[200]) + 5
        tokens[position] = bad
        with pytest.raises(InputError, match=f"{bad}.*position {position}"):
            sub.apply(tokens, real.offsets)
