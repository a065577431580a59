"""The review loop (docs/QUALITY.md, "Review loop"): what a vocabulary says for a word, and
which pairs a corpus would get.

``lookup`` finds every compiled form of a word (its case variants, with and without a leading
space, and the phrases that hold it) and the translations of each, with their shares of the
language's draws. ``count_pairs`` runs text mode's matcher (the same candidates as
``link-fast text``) over a corpus and gives each (language, source, translation) its expected
count per run and its expected share of all substitutions (docs/DESIGN.md §5: a candidate's
language, then its translation, drawn by weight). The case forms of one dictionary pair are
counted as one pair, spelled as the dictionary spells it where a lower-case form of the source
was compiled: the spelling a deny list (``link_fast.deny``) names.

Everything printed goes through ``terminal.printable``: words, translations and names come from files.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .compiler import apply_case
from .errors import InputError
from .languages import language_code
from .sampling import Sampling
from .terminal import printable
from .vocab import Vocab

__all__ = [
    "Form",
    "PairReport",
    "PairRow",
    "corpus_texts",
    "count_pairs",
    "format_lookup",
    "format_pairs",
    "lookup",
    "select_languages",
    "summary",
]

PAIR_FORMATS = ("table", "tsv")
FOLD_OCCURRENCES = 1 << 20  # candidates held before they are summed per key
SPACINGS = ("spaced", "bare")


class KeyTable:
    """A vocabulary's keys as text: each key's surface (leading space included), and its
    translations in a language (leading space removed) with their weights."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.n_languages = len(vocab.languages)
        blob = bytes(np.asarray(vocab.tables["key_text"]))
        offsets = np.asarray(vocab.tables["key_text_offsets"]).tolist()
        self.raw = [blob[a:b] for a, b in zip(offsets, offsets[1:])]  # UTF-8, decoded when asked
        self._texts: dict[int, str] = {}
        self._translations: dict[tuple[int, int], list[str]] = {}

    def text(self, key: int) -> str:
        got = self._texts.get(key)
        if got is None:
            got = self._texts[key] = self.raw[key].decode("utf-8")
        return got

    def keys_of(self, wanted: Iterable[str]) -> dict[str, int]:
        """The key of each of the texts ``wanted`` that is a key's."""
        encoded = {text.encode("utf-8") for text in wanted}
        return {raw.decode("utf-8"): key for key, raw in enumerate(self.raw) if raw in encoded}

    def translations(self, key: int, lang: int) -> list[str]:
        got = self._translations.get((key, lang))
        if got is None:
            tables = self.vocab.tables
            start, stop = self._range(key, lang)
            offsets, blob = tables["trans_text_offsets"], tables["trans_text"]
            got = []
            for t in tables["key_trans"][start:stop].tolist():
                a, b = offsets[t : t + 2].tolist()
                got.append(bytes(blob[a:b]).decode("utf-8").removeprefix(" "))
            self._translations[(key, lang)] = got
        return got

    def weights(self, key: int, lang: int) -> list[int]:
        """The weight of each of ``translations(key, lang)`` (docs/DESIGN.md §5)."""
        start, stop = self._range(key, lang)
        cumulated = self.vocab.tables["key_trans_cum"][start:stop].tolist()
        return [b - a for a, b in zip([0, *cumulated], cumulated)]

    def _range(self, key: int, lang: int) -> tuple[int, int]:
        slot = key * self.n_languages + lang
        start, stop = self.vocab.tables["key_trans_start"][slot : slot + 2].tolist()
        return start, stop


def select_languages(vocab: Vocab, names: Sequence[str] | None) -> list[int]:
    """Indices of the vocabulary's languages ``names`` asks for (all when empty), each name
    matched as spelled or by its code (``de`` finds ``deu``)."""
    if not names:
        return list(range(len(vocab.languages)))
    chosen: list[int] = []
    for name in names:
        found = [i for i, lang in enumerate(vocab.languages) if lang == name]
        code = language_code(name)
        if not found and code:
            found = [i for i, lang in enumerate(vocab.languages) if language_code(lang) == code]
        if not found:
            raise InputError(
                f"'{printable(name)}' is not a language of the vocabulary (it has "
                f"{printable(', '.join(vocab.languages))})"
            )
        chosen += [i for i in found if i not in chosen]
    return sorted(chosen)


# -- lookup -------------------------------------------------------------------------------------


@dataclass
class Form:
    """One compiled form of a word (``spacings``: with a leading space, without, or both when
    they translate alike) and, per language, its translations with their shares."""

    text: str
    spacings: tuple[str, ...]
    translations: list[tuple[str, list[tuple[str, float]]]]


@dataclass
class Lookup:
    word: str
    forms: list[Form]
    phrases: list[Form]  # at most the number asked for
    n_phrases: int  # how many phrases hold the word
    languages: list[str]  # those looked in
    every_language: bool  # no language was asked for: all of the vocabulary's


def lookup(vocab: Vocab, word: str, languages: Sequence[str] | None = None, max_phrases: int = 10) -> Lookup:
    """The forms of ``word`` in ``vocab`` (lower, Title, UPPER and as given; spaced and bare),
    and up to ``max_phrases`` phrases holding it, with their translations in ``languages``."""
    word = " ".join(unicodedata.normalize("NFC", word).split())
    if not word:
        raise InputError("the word to look up is empty")
    if max_phrases < 0:
        raise InputError(f"the number of phrases shown must be >= 0, got {max_phrases}")
    langs = select_languages(vocab, languages)
    table = KeyTable(vocab)
    variants = _case_variants(word)
    keys = table.keys_of([" " + v for v in variants] + variants)
    forms = []
    for surface in variants:
        forms += _forms_of(table, langs, surface, [keys.get(" " + surface), keys.get(surface)])
    phrases = _phrases_with(table, langs, word)
    chosen = [vocab.languages[l] for l in langs]
    return Lookup(word, forms, phrases[:max_phrases], len(phrases), chosen, not languages)


def _case_variants(word: str) -> list[str]:
    """The spellings a compiled form of ``word`` may have (docs/DESIGN.md §3), lower first."""
    lower = word.lower()
    each_word = " ".join(apply_case(part, "title") for part in lower.split(" "))
    return list(dict.fromkeys([lower, apply_case(lower, "title"), each_word, word.upper(), word]))


def _forms_of(table: KeyTable, langs: list[int], surface: str, keys: list[int | None]) -> list[Form]:
    """The forms of one surface: its spaced and bare keys, as one when they translate alike."""
    found = [(spacing, _translations(table, key, langs)) for spacing, key in zip(SPACINGS, keys) if key is not None]
    found = [(spacing, translations) for spacing, translations in found if translations]
    if len(found) == 2 and found[0][1] == found[1][1]:
        return [Form(surface, SPACINGS, found[0][1])]
    return [Form(surface, (spacing,), translations) for spacing, translations in found]


def _translations(table: KeyTable, key: int, langs: list[int]) -> list[tuple[str, list[tuple[str, float]]]]:
    """Per language of ``langs`` that translates ``key``: (language, [(translation, share)])."""
    out = []
    for l in langs:
        texts = table.translations(key, l)
        if texts:
            weights = table.weights(key, l)
            total = sum(weights)
            out.append((table.vocab.languages[l], [(t, w / total) for t, w in zip(texts, weights)]))
    return out


def _phrases_with(table: KeyTable, langs: list[int], word: str) -> list[Form]:
    """One form of each phrase that holds ``word`` as whole words (its lowest-case, spaced form
    where there are several), in alphabetical order."""
    needle = word.casefold().split(" ")
    best: dict[str, tuple[tuple, int]] = {}
    # an ASCII word is looked for in the keys' bytes first: decoding every key costs seconds
    ascii_word = word.lower().encode("utf-8") if word.isascii() else b""
    for key, raw in enumerate(table.raw):
        if b" " not in raw[1:] or ascii_word not in raw.lower():
            continue
        text = table.text(key)
        bare = text.removeprefix(" ")
        folded = bare.casefold()
        parts = folded.split(" ")
        if folded == word.casefold() or not _holds(parts, needle):
            continue
        rank = (sum(ch.isupper() for ch in bare), not text.startswith(" "), bare)
        if folded not in best or rank < best[folded][0]:
            best[folded] = (rank, key)
    forms = []
    for folded in sorted(best):
        key = best[folded][1]
        translations = _translations(table, key, langs)
        if translations:
            text = table.text(key)
            forms.append(
                Form(text.removeprefix(" "), (SPACINGS[0] if text.startswith(" ") else SPACINGS[1],), translations)
            )
    return forms


def _holds(parts: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(parts[i : i + n] == needle for i in range(len(parts) - n + 1))


def format_lookup(result: Lookup, vocab_name: str) -> str:
    """``result`` for a terminal: a heading per form, a line per language."""
    if not result.forms and not result.phrases:
        where = "" if result.every_language else f" in {', '.join(result.languages)}"
        return f"{printable(result.word)}: not in {printable(vocab_name)}{printable(where)}"
    lines: list[str] = []
    for form in result.forms:
        lines += _form_lines(form)
    if result.n_phrases:
        more = f" (the first {len(result.phrases)})" if result.n_phrases > len(result.phrases) else ""
        lines.append(f"phrases with {printable(result.word)}: {result.n_phrases}{more}")
        for form in result.phrases:
            lines += _form_lines(form)
    return "\n".join(lines)


def _form_lines(form: Form) -> list[str]:
    lines = [f"{printable(form.text)} [{', '.join(form.spacings)}]"]
    width = max(len(lang) for lang, _ in form.translations)
    for lang, options in form.translations:
        items = "  ".join(f"{printable(text)} {_share(share)}" for text, share in options)
        lines.append(f"  {printable(lang):<{width}}  {items}")
    return lines


def _share(share: float) -> str:
    """Two decimals; a share that would show as 0.00 but is drawn says so."""
    return f"{share:.2f}" if share >= 0.005 or share == 0 else "<0.01"


# -- pairs --------------------------------------------------------------------------------------


@dataclass
class PairRow:
    lang: str
    source: str
    translation: str
    expected: float  # substitutions per run
    share: float  # of all substitutions
    cumulative: float  # share of this row and those before it


@dataclass
class PairReport:
    rows: list[PairRow]  # most frequent first
    sampling: Sampling
    documents: int = 0
    words: int = 0
    candidates: int = 0
    expected: float = 0.0  # substitutions per run

    def half(self) -> int:
        """How many of the first rows make half of all substitutions."""
        return next((i + 1 for i, row in enumerate(self.rows) if row.cumulative >= 0.5), len(self.rows))


def corpus_texts(paths: Sequence[str], field_name: str = "text") -> Iterator[str]:
    """The documents of text files, as ``link-fast text`` reads them (``.txt``: a line each;
    ``.jsonl``: ``field_name`` of each record, blank lines skipped; ``.gz``, ``.zst``); a bad
    line raises ``TextError`` naming the file and line."""
    from .text.files import DEFAULT_MAX_LINE_BYTES, TextError, iter_lines, split_name

    for path in paths:
        _, fmt, _ = split_name(path)
        for number, raw in iter_lines(path, DEFAULT_MAX_LINE_BYTES):
            if not isinstance(raw, bytes):
                raise TextError(path, raw.problem, number)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TextError(path, f"not UTF-8: {exc.reason} at byte {exc.start}", number) from None
            if fmt == ".txt":
                yield line
            elif line.strip():
                yield _record_text(path, number, line, field_name)


def _record_text(path: str, number: int, line: str, field_name: str) -> str:
    from .text.files import TextError

    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise TextError(path, f"malformed JSON: {exc}", number) from None
    text = record.get(field_name) if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise TextError(path, f"no text in field {field_name!r} (a JSON object with a string there)", number)
    return text


def count_pairs(vocab: Vocab, texts: Iterable[str], sampling: Sampling, tokenizer=None) -> PairReport:
    """The pairs the documents ``texts`` would get under ``sampling`` (its ratio, portion,
    languages and ratio basis; one language drawn per word), most frequent first.

    A pair's expected count is the sum, over the candidates whose key it translates, of
    P(replaced) x P(language | candidate) x P(translation | language); its share is that
    count over the expected number of substitutions (with ``ratio_basis="candidates"``: the
    sum of P(language) x P(translation) over the number of candidates; where nothing would be
    replaced, that sum still ranks the pairs)."""
    from .text import TextSubstituter, count_words

    if sampling.lang_scope != "word":
        raise InputError("pairs counts the per-word language draw only (lang_scope='word')")
    sub = TextSubstituter(vocab, sampling, tokenizer=tokenizer)
    report = PairReport([], sub.sampling)
    occurrences = np.zeros(vocab.n_keys, dtype=np.float64)  # candidates of each key
    expected = np.zeros(vocab.n_keys, dtype=np.float64)  # of them replaced, per run
    held_keys: list[np.ndarray] = []
    held_p: list[np.ndarray] = []
    held = 0
    for text in texts:
        keys = np.fromiter((m[2] for m in sub.matches(text)), dtype=np.int64)
        words = count_words(text)
        report.documents += 1
        report.words += words
        report.candidates += len(keys)
        held_keys.append(keys)
        held_p.append(np.full(len(keys), _replace_probability(sub.sampling, words, len(keys))))
        held += len(keys)
        if held >= FOLD_OCCURRENCES:
            _fold(held_keys, held_p, occurrences, expected)
            held = 0
    _fold(held_keys, held_p, occurrences, expected)
    report.expected = float(expected.sum())
    basis = expected if report.expected > 0 else occurrences
    report.rows = _rows(vocab, sub.sampling, occurrences, expected, basis)
    return report


def _replace_probability(sampling: Sampling, words: int, candidates: int) -> float:
    """P(a candidate of a document is replaced): portion x its ratio (docs/DESIGN.md §5)."""
    if sampling.ratio_basis == "words" and candidates:
        return sampling.portion * min(1.0, sampling.ratio * words / candidates)
    return sampling.portion * sampling.ratio


def _fold(keys: list[np.ndarray], p: list[np.ndarray], occurrences: np.ndarray, expected: np.ndarray) -> None:
    """Sum the held candidates per key into ``occurrences`` and ``expected``; empty the lists."""
    if keys:
        flat = np.concatenate(keys)
        occurrences += np.bincount(flat, minlength=len(occurrences))
        expected += np.bincount(flat, weights=np.concatenate(p), minlength=len(expected))
    keys.clear()
    p.clear()


def _rows(vocab: Vocab, sampling: Sampling, occurrences, expected, basis) -> list[PairRow]:
    """Each key's candidates spread over its (language, translation) draws, summed per pair."""
    from .draws import integer_weights

    weights = integer_weights(vocab.languages, dict(sampling.languages or {}))
    masks = np.asarray(vocab.tables["key_lang_mask"])
    seen = np.flatnonzero(occurrences).tolist()
    spelling = _Spelling(KeyTable(vocab), seen)
    sums: dict[tuple[int, str, str], list] = {}  # (language, source casefolded, translation) -> sums
    for key in seen:
        mask = int(masks[key])
        in_play = [(l, w) for l, w in enumerate(weights) if w and mask >> l & 1]
        total = sum(w for _, w in in_play)
        for l, w in in_play:
            options = spelling.pairs(key, l)
            draws = spelling.table.weights(key, l)
            range_total = sum(draws)
            for (source, translation), weight in zip(options, draws):
                p = w / total * weight / range_total
                slot = sums.setdefault((l, source.casefold(), translation), [0.0, 0.0, source])
                slot[0] += expected[key] * p
                slot[1] += basis[key] * p
                if source != slot[2]:
                    slot[2] = min(slot[2], source, key=_case_rank)
    all_basis = sum(slot[1] for slot in sums.values()) or 1.0
    ordered = sorted(sums.items(), key=lambda item: (-item[1][1], item[0]))
    rows, cumulative = [], 0.0
    for (l, _, translation), (count, weight, source) in ordered:
        cumulative += weight / all_basis
        rows.append(PairRow(vocab.languages[l], source, translation, count, weight / all_basis, cumulative))
    return rows


def _case_rank(text: str) -> tuple[int, str]:
    """Lower-case spellings first: the one a pair is shown with."""
    return sum(ch.isupper() for ch in text), text


class _Spelling:
    """The pairs of a key as the dictionary spells them: a Title or UPPER form's translations
    are cased (docs/DESIGN.md §3), so each is taken back to the translation of the source's
    lower-case (else Title) form that casing gives, where that form was compiled."""

    def __init__(self, table: KeyTable, keys: Sequence[int]):
        self.table = table
        variants = {v for key in keys for v in _lower_variants(table.text(key).removeprefix(" "))}
        self.keys = table.keys_of([*variants, *(" " + v for v in variants)])

    def pairs(self, key: int, lang: int) -> list[tuple[str, str]]:
        """(source, translation) of each of the key's translations in ``lang``."""
        source = self.table.text(key).removeprefix(" ")
        own = self.table.translations(key, lang)
        base = self._base_key(key, lang)
        if base is None or base == key:
            return [(source, text) for text in own]
        base_source, plain = self.table.text(base).removeprefix(" "), self.table.translations(base, lang)
        out = []
        for text in own:
            uncased = _uncased(text, plain)
            out.append((base_source, uncased) if uncased is not None else (source, text))
        return out

    def _base_key(self, key: int, lang: int) -> int | None:
        """The key of the source's lowest-case form translated in ``lang``, same spacing first."""
        text = self.table.text(key)
        lead = " " if text.startswith(" ") else ""
        bare = text.removeprefix(" ")
        for variant in _lower_variants(bare):
            if variant == bare:
                return key
            for prefix in (lead, " " if not lead else ""):
                other = self.keys.get(prefix + variant)
                if other is not None and self.table.translations(other, lang):
                    return other
        return None


def _lower_variants(text: str) -> list[str]:
    """The lower-case and Title spellings of ``text``, the forms a source's own may be."""
    lower = text.lower()
    return list(dict.fromkeys([lower, apply_case(lower, "title")]))


def _uncased(text: str, plain: list[str]) -> str | None:
    """The translation of ``plain`` that ``text`` is a case form of (itself, Title, UPPER), or None."""
    for cased in (lambda t: t, lambda t: apply_case(t, "title"), str.upper):
        for candidate in plain:
            if cased(candidate) == text:
                return candidate
    return None


def format_pairs(report: PairReport, top: int = 0, fmt: str = "table") -> str:
    """The first ``top`` rows (0: all) as an aligned table or as TSV whose first three columns
    are a deny list's (its header is a ``#`` comment)."""
    if top < 0:
        raise InputError(f"the number of pairs shown must be >= 0, got {top}")
    rows = report.rows[:top] if top else report.rows
    header = ("lang", "source", "translation", "expected", "share", "cumulative")
    if fmt == "tsv":
        lines = ["#" + "\t".join(header)]
        for r in rows:
            fields = (r.lang, r.source, r.translation, f"{r.expected:.3f}", f"{r.share:.6f}", f"{r.cumulative:.6f}")
            lines.append("\t".join(printable(x) for x in fields))
        return "\n".join(lines)
    table = [header] + [
        (
            printable(r.lang),
            printable(r.source),
            printable(r.translation),
            f"{r.expected:,.1f}",
            f"{r.share:.2%}",
            f"{r.cumulative:.2%}",
        )
        for r in rows
    ]
    widths = [max(_width(row[i]) for row in table) for i in range(len(header))]
    right = (False, False, False, True, True, True)
    return "\n".join(
        "  ".join(_pad(cell, width, r) for cell, width, r in zip(row, widths, right)).rstrip() for row in table
    )


def summary(report: PairReport) -> str:
    """One line on the corpus and the run the counts are for."""
    s = report.sampling
    return (
        f"{report.documents:,} documents, {report.words:,} words, {report.candidates:,} candidates: "
        f"{report.expected:,.1f} substitutions expected per run (ratio {s.ratio:g}, portion {s.portion:g}, "
        f"ratio basis {s.ratio_basis}); {len(report.rows):,} pairs, the first {report.half():,} make half of them"
    )


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide East Asian characters two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space
