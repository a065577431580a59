"""Compile bilingual dictionaries, for one tokenizer, into a token-id ``Vocab``.

For each source word (or phrase) and each case variant (lower, Title, UPPER), two surface
forms are built: with a leading space (`` cat``) and without (``cat``, as after a newline or a
bracket). Each form is encoded *in running-text context* (``CONTEXTS``) and kept only if that
encoding is context-free: the whole splits into the context's ids and the form's own ids. The translation is
emitted in the same form: leading space and case carried over, and encoded the same way.

Case variants follow the source's own spelling, so that abbreviations and names do not
swallow common words: an all-lowercase source (``cat``) gives lower, Title and UPPER forms; a
Title-case source (``Easter``) gives Title and UPPER; any other spelling (``US``, ``iPhone``)
gives itself only. When two sources of one language produce the same surface form (``US``
from ``us`` in UPPER and from ``US`` as spelled), the source spelled that way wins; equal
claims merge. Languages never compete: each keeps the translations it would have if compiled
alone, so applying a subset of a vocabulary's languages gives what a vocabulary of that subset
gives (docs/DESIGN.md §2).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import multiprocessing as mp
import os
import sys
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from .deny import DenyList, drop_denied, load_deny_lists
from .errors import InputError
from .function_words import FUNCTION_WORD_MODES, load_table, replace_function_words, table_for
from .lexicon import CleaningOptions, Lexicon, load_lexicon
from .pool import Pool, WorkerDied
from .progress import Progress
from .terminal import printable
from .tokenizer import Tokenizer, load_tokenizer, token_flags, token_joiners
from .vocab import MAX_LANGUAGES, Vocab, tables_from_arrays
from .weights import TRANSLATION_WEIGHTS, Score, entry_weights, keep_best, translation_score, wordfreq_language
from .wordlist import drop_glued, glued_check

CASES = ("lower", "title", "upper")
SPACINGS = ("space", "bare")

# The (prefix, suffix) a form is encoded between, as in running text: a space form follows a
# word, a bare form starts a line. The form is kept only if the encoding of the whole splits
# into prefix ids + form ids + suffix ids, i.e. the form's ids do not depend on its neighbours.
CONTEXTS = {"space": ("a", "."), "bare": ("\n", ".")}


def apply_case(text: str, case: str) -> str:
    """``text`` in case variant ``case``; "lower" and "exact" keep the dictionary's spelling."""
    if case == "title":
        return text[:1].upper() + text[1:]
    if case == "upper":
        return text.upper()
    return text


def source_cases(source: str, wanted: Sequence[str]) -> list[tuple[str, str, bool]]:
    """(case, surface, natural) for each case variant a source takes; natural = as spelled."""
    if source == source.lower():
        natural = "lower"
    elif source == source[:1].upper() + source[1:].lower():
        natural = "title"
    else:
        return [("exact", source, True)]
    out = []
    for case in CASES:
        if case not in wanted or (natural == "title" and case == "lower"):
            continue
        out.append((case, apply_case(source, case), case == natural))
    return out


PARALLEL_MIN_FORMS = 100_000  # below this, starting worker processes costs more than it saves
ENCODE_CHUNK = 65_536  # forms encoded at a time: bounds the tokenizer's per-form Python lists
_FORK_STATE: _Encoding | None = None  # what forked encoders inherit


@dataclass
class _Encoding:
    """What encoding a range of forms needs: the forms (numbered as ``_FormRecords`` numbers
    them), the text around each spacing's forms and the ids that text encodes to."""

    tokenizer: Tokenizer
    surfaces: list[str]
    form_surface: np.ndarray
    form_spacing: np.ndarray
    heads: list[str]  # per spacing: the text before the form
    tails: list[str]  # per spacing: the text after it
    frames: list[tuple[list[int], list[int]]]  # per spacing: the ids of head and tail
    special: np.ndarray | None  # per token id: special, or None where there are none


def _encode_range(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Encode forms start..stop-1 of the inherited state; (lengths with -1 for rejected, ids).

    The checks run on the flat ids of the whole range at once: a Python comparison per form
    cost as much as the tokenizer itself."""
    state = _FORK_STATE
    if state is None:
        raise RuntimeError("_encode_range runs in a worker forked after _FORK_STATE is set")
    start, stop = bounds
    codes = state.form_spacing[start:stop]
    surfaces, heads, tails = state.surfaces, state.heads, state.tails
    texts = [heads[c] + surfaces[s] + tails[c] for c, s in zip(codes.tolist(), state.form_surface[start:stop].tolist())]
    encoded = state.tokenizer.encode_batch(texts)
    del texts
    full_len = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    ends = np.cumsum(full_len)
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(ends[-1]) if len(ends) else 0)
    del encoded
    begins = ends - full_len
    inner_start, inner_end = begins.copy(), ends.copy()
    ok = np.zeros(len(codes), dtype=bool)
    for code, (before, after) in enumerate(state.frames):
        mine = codes == code
        fits = mine & (full_len - len(after) > len(before))
        for j, token in enumerate(before):  # the context's own ids first ...
            fits[fits] &= flat[begins[fits] + j] == token
        for j, token in enumerate(after):  # ... and last
            fits[fits] &= flat[ends[fits] - len(after) + j] == token
        inner_start[mine] += len(before)
        inner_end[mine] -= len(after)
        ok |= fits
    if state.special is not None:  # a special id in a form: not text a document can hold
        seen = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum(state.special[flat], out=seen[1:])
        ok[ok] &= seen[inner_end[ok]] == seen[inner_start[ok]]
    lengths = np.where(ok, inner_end - inner_start, -1).astype(np.int32)
    offsets = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum(np.maximum(lengths, 0), out=offsets[1:])
    inner = np.repeat(inner_start - offsets[:-1], np.maximum(lengths, 0)) + np.arange(offsets[-1])
    return lengths, flat[inner].astype(np.uint32)


def _encoding(tokenizer: Tokenizer, records: _FormRecords) -> _Encoding:
    """The encoding state of ``records``' forms, each spacing's context checked to be stable."""
    heads, tails, frames = [], [], []
    for spacing in records.spacing_names:
        prefix, suffix = CONTEXTS[spacing]
        before = tokenizer.encode(prefix)
        with_suffix = tokenizer.encode(prefix + suffix)
        if with_suffix[: len(before)] != before:
            raise InputError(f"{tokenizer.name}: context {prefix!r}+{suffix!r} is not stable for this tokenizer")
        heads.append(prefix + " " if spacing == "space" else prefix)
        tails.append(suffix)
        frames.append((before, with_suffix[len(before) :]))
    special = None
    if tokenizer.special_ids:
        special = np.zeros(tokenizer.vocab_size, dtype=bool)
        special[sorted(tokenizer.special_ids)] = True
    return _Encoding(
        tokenizer, records.surfaces, records.form_surface, records.form_spacing, heads, tails, frames, special
    )


def encode_forms(
    tokenizer: Tokenizer, records: _FormRecords, workers: int = 1, progress: _Say | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Context-free ids of each of ``records``' forms.

    Returns ``(ok, offsets, tokens)``: ``ok[i]`` is False where the form's ids depend on their
    context (or contain a special id); otherwise its ids are ``tokens[offsets[i]:offsets[i+1]]``.
    Forms are encoded ``ENCODE_CHUNK`` at a time, large batches by forked worker processes,
    which return compact arrays.
    """
    global _FORK_STATE
    n = records.n_forms
    parallel = workers > 1 and n >= PARALLEL_MIN_FORMS and "fork" in mp.get_all_start_methods()
    ranges = [(i, min(n, i + ENCODE_CHUNK)) for i in range(0, n, ENCODE_CHUNK)]
    _FORK_STATE = _encoding(tokenizer, records)
    tally = (progress or _Say(False)).tally(n, "form")
    try:
        if parallel:
            parts = _run_ranges(ranges, workers, tally)
        else:
            parts = []
            for r in ranges:
                parts.append(_encode_range(r))
                tally.update(r[1] - r[0])
    finally:
        _FORK_STATE = None
        tally.close()
    lengths = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int32)
    tokens = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.uint32)
    ok = lengths >= 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.where(ok, lengths, 0), out=offsets[1:])
    return ok, offsets, tokens


def _run_ranges(ranges, workers: int, tally: _Tally) -> list[tuple[np.ndarray, np.ndarray]]:
    """``_encode_range`` of each range in forked workers, in order; a pool whose dead worker
    fails the compile instead of hanging it."""
    pool = Pool(workers, context="fork")
    parts = []
    try:
        futures = [pool.submit(i, _encode_range, r) for i, r in enumerate(ranges)]
        for r, future in zip(ranges, futures):
            parts.append(pool.result(future))
            tally.update(r[1] - r[0])
    except WorkerDied as died:
        a, b = ranges[died.task if died.task is not None else 0]
        raise WorkerDied(
            died.how, died.task, f"a worker process died ({died.how}) while encoding dictionary forms {a}..{b - 1}"
        ) from None
    except BaseException:
        pool.stop()
        raise
    pool.close()
    return parts


def _number_sequences(offsets: np.ndarray, tokens: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, int]:
    """Number the distinct token sequences among those ``index`` selects (each at least one
    token), in order of first appearance: (the number of each, how many distinct).

    Sequences are grouped by a 64-bit hash of their tokens, then every member is compared
    with its group's first: equal hashes of different sequences fall back to exact bytes.
    Both passes go ``ENCODE_CHUNK`` sequences at a time, to bound their temporary arrays."""
    chunks = [(a, a + ENCODE_CHUNK) for a in range(0, len(index), ENCODE_CHUNK)]
    digest = np.concatenate([_digest(offsets, tokens, index[a:b]) for a, b in chunks] or [np.zeros(0, np.uint64)])
    _, first, group = np.unique(digest, return_index=True, return_inverse=True)
    del digest
    representative = index[first[group]]
    if not all(_same(offsets, tokens, index[a:b], representative[a:b]) for a, b in chunks):
        raw = tokens.tobytes()
        bounds = zip((offsets[index] * 4).tolist(), (offsets[index + 1] * 4).tolist())
        seen: dict[bytes, int] = {}
        return np.array([seen.setdefault(raw[a:b], len(seen)) for a, b in bounds], dtype=np.int64), len(seen)
    rank = np.empty(len(first), dtype=np.int64)  # groups numbered by their first member
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[group], len(first)


def _digest(offsets: np.ndarray, tokens: np.ndarray, index: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each sequence ``index`` selects (each at least one token)."""
    lengths = offsets[index + 1] - offsets[index]
    starts = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    place = np.arange(starts[-1], dtype=np.int64) - np.repeat(starts[:-1], lengths)
    mixed = tokens[place + np.repeat(offsets[index], lengths)].astype(np.uint64)
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64 is the point
        mixed += np.uint64(1)
        mixed *= _HASH_POWERS[place % len(_HASH_POWERS)]
        mixed ^= (place.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        digest = np.add.reduceat(mixed, starts[:-1]) if len(index) else np.zeros(0, dtype=np.uint64)
        digest ^= lengths.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    return digest


def _same(offsets: np.ndarray, tokens: np.ndarray, index: np.ndarray, other: np.ndarray) -> bool:
    """Whether each sequence ``index`` selects equals the one ``other`` selects."""
    lengths = offsets[index + 1] - offsets[index]
    if not np.array_equal(lengths, offsets[other + 1] - offsets[other]):
        return False
    place = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return bool(
        np.array_equal(
            tokens[place + np.repeat(offsets[index], lengths)], tokens[place + np.repeat(offsets[other], lengths)]
        )
    )


_HASH_POWERS = np.array(
    [pow(0x100000001B3, i + 1, 2**64) for i in range(64)], dtype=np.uint64
)  # FNV's prime, position by position


def _gather(offsets: np.ndarray, tokens: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, tokens) of the sequences ``index`` selects, concatenated in that order."""
    lengths = offsets[index + 1] - offsets[index]
    new_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    positions = np.repeat(offsets[index] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return new_offsets, tokens[positions]


@contextmanager
def _gc_paused():
    """Compiling creates millions of small tuples; each triggers cyclic GC passes over the whole
    heap, which more than doubles the compile time. Nothing compiled forms cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_vocab(
    tokenizer: Tokenizer | str | os.PathLike,
    dictionaries: Mapping[str, Lexicon | str | os.PathLike],
    *,
    cases: Sequence[str] = CASES,
    spacings: Sequence[str] = SPACINGS,
    cleaning: CleaningOptions | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | bool | None = None,
    translation_weights: str = "sense",
    deny: Sequence[str | os.PathLike] = (),
    default_deny: bool = True,
    function_words: str = "table",
) -> Vocab:
    """Compile ``dictionaries`` ({language: lexicon or dictionary path}) for ``tokenizer``.

    ``cases`` and ``spacings`` choose the surface forms (module docstring); ``cleaning`` applies
    to dictionaries given as paths (read with no limit on translations), and its
    ``max_translations`` and ``drop_glued``, the weights, deny lists and function words to
    every dictionary (:func:`curate`); ``workers`` processes encode the forms (default: the
    machine's cores, at most 8). ``progress``: a callable receives one line per stage (and a
    few while encoding); True prints those lines on stderr, with a bar over the encoding on a
    terminal; None (the default) does that only when stderr is a terminal; False is quiet.
    The vocabulary's ``meta["report"]`` says, per language, how many source words were used,
    how many surface forms were kept, how many were dropped as not context-free, and how many
    keys and phrases resulted. ``translation_weights``: how often each of a word's translations
    is drawn (``link_fast.weights``): ``"sense"`` (by word frequency and how specific the
    translation is to the word; then ``cleaning.max_translations`` keeps the best scored),
    ``"frequency"`` (by word frequency alone) or ``"uniform"`` (equally; the first ones kept).
    ``function_words``: where the English function words' translations come from
    (``link_fast.function_words``): ``"table"``, ``"dictionary"``, ``"skip"`` or a table's path.
    The same inputs and options give a byte-identical vocabulary, whatever ``workers`` is.
    ``deny``: deny lists (``link_fast.deny``), whose pairs are dropped from the dictionaries, as
    are those of the lists link_fast ships for the vocabulary's languages unless ``default_deny``
    is False; ``meta["options"]["deny"]`` names the lists applied.
    """
    if translation_weights not in TRANSLATION_WEIGHTS:
        raise InputError(f"translation_weights must be one of {TRANSLATION_WEIGHTS}, got {translation_weights!r}")
    if function_words in FUNCTION_WORD_MODES:
        for lang in dictionaries:
            table_for(lang, function_words)  # a damaged shipped table fails here, before any work
    else:
        load_table(function_words)
    curation = _Curation(
        cleaning or CleaningOptions(),
        translation_weights,
        load_deny_lists(deny, dictionaries, defaults=default_deny),
        function_words,
    )
    with _gc_paused():
        return _compile(tokenizer, dictionaries, cases, spacings, workers, _Say(progress), curation)


@dataclass(frozen=True)
class _Curation:
    """What is made of each dictionary before its words are compiled (:func:`_curate`)."""

    cleaning: CleaningOptions
    weights: str  # one of TRANSLATION_WEIGHTS
    denied: DenyList
    function_words: str  # one of FUNCTION_WORD_MODES, or a table's path


def _compile(tokenizer, dictionaries, cases, spacings, workers, say: _Say, curation: _Curation) -> Vocab:
    _check_options(dictionaries, cases, spacings)
    weights, cleaning = curation.weights, curation.cleaning
    tokenizer, lexicons, scores = _load_inputs(tokenizer, dictionaries, say, curation)
    languages = list(dictionaries)
    say(f"listing the surface forms of {sum(len(lex.entries) for lex in lexicons):,} source words")
    records = _FormRecords.of(lexicons, cases, spacings)
    # what the vocabulary keeps of the lexicons; the lexicons this call read are freed here
    lexicon_info = {lang: (len(lex.entries), lex.path, lex.report) for lang, lex in zip(languages, lexicons)}
    del lexicons
    workers = max(1, min(8, os.cpu_count() or 1)) if workers is None else workers
    say(f"encoding {records.n_forms:,} surface forms with {tokenizer.name} ({workers} processes)")
    ok, form_offsets, form_tokens = encode_forms(tokenizer, records, workers, say)
    say("building the trie")
    selected = _select(records, ok, form_offsets, form_tokens, tokenizer, languages, lexicon_info)
    del records, ok  # the surface strings and per-record arrays go before the tables are built
    entry_weight, weighting = entry_weights(
        weights, languages, selected[2], selected[3], selected[1], selected[5], scores
    )
    tables = _tables(selected, form_offsets, form_tokens, tokenizer, len(languages), entry_weight)
    report = selected[-1]
    for lang, how in weighting.items():
        report[lang]["translation_weights"] = how
    del selected, form_offsets, form_tokens
    vocab = Vocab.from_tables(
        tables,
        languages,
        tokenizer={
            "name": tokenizer.name,
            "kind": tokenizer.kind,
            "fingerprint": tokenizer.fingerprint,
            "vocab_size": tokenizer.vocab_size,
            # where it was, so that `link-fast inspect` can decode without being told
            "path": os.path.abspath(tokenizer.path),
        },
        options={
            "cases": list(cases),
            "spacings": list(spacings),
            "cleaning": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in asdict(cleaning).items()},
            "dictionaries": {lang: info[1] for lang, info in lexicon_info.items()},
            "translation_weights": weights,
            "deny": list(curation.denied.files),
            "function_words": curation.function_words,
        },
        # no compile time in it: the same inputs must give the same bytes
        report={"languages": report, "lexicons": {lang: info[2] for lang, info in lexicon_info.items()}},
    )
    say(f"compiled {vocab.n_keys:,} keys in {say.elapsed():.1f} s")
    return vocab


def _select(records, ok, form_offsets, form_tokens, tokenizer, languages, lexicon_info) -> tuple:
    """What the tables are built from, once ``ok`` says which forms are context-free: the keys'
    and distinct translations' forms and texts, the translations of each (key, language), and
    the per-language report. Nothing of ``records`` is needed after it."""
    kept = records.keep(ok)
    rec_key, key_source_form, kept = records.keys(kept, form_offsets, form_tokens, len(languages))
    if not len(key_source_form):
        raise InputError(f"no dictionary word has a context-free encoding with {tokenizer.name}")
    key_trans_start, key_trans, distinct = records.translations(kept, rec_key, len(key_source_form), len(languages))
    del rec_key
    key_texts = records.texts(key_source_form)
    sources = [info[0] for info in lexicon_info.values()]
    report = records.report(languages, sources, kept, key_trans_start, key_texts)
    return key_source_form, key_texts, key_trans_start, key_trans, distinct, records.texts(distinct), report


def _tables(selected: tuple, form_offsets, form_tokens, tokenizer, n_languages: int, entry_weight) -> dict:
    """The vocabulary's tables from what ``_select`` chose, with ``key_trans``'s weights."""
    key_source_form, key_texts, key_trans_start, key_trans, distinct, trans_texts, _ = selected
    key_offsets, key_tokens = _gather(form_offsets, form_tokens, key_source_form)
    trans_offsets, trans_tokens = _gather(form_offsets, form_tokens, distinct)
    return tables_from_arrays(
        token_flags(tokenizer),
        n_languages,
        key_offsets,
        key_tokens,
        key_texts,
        key_trans_start,
        key_trans.astype(np.int32),
        trans_offsets,
        trans_tokens,
        trans_texts,
        entry_weight,
        token_joiners(tokenizer),
    )


class _Tally:
    """Forms encoded so far: a bar, or a line at each quarter, or nothing."""

    def __init__(self, say: Callable[[str], None] | None, total: int, unit: str, bar: bool):
        self.say, self.total, self.unit, self.done, self.next_line = say, total, unit, 0, max(1, total // 4)
        self.progress = Progress(total, True, unit=unit) if bar else None
        if self.progress is not None and self.progress.bar is None:  # no tqdm: lines instead
            self.progress = None

    def update(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress.update(n, "encoding")
        elif self.say is not None and self.next_line <= self.done < self.total:
            self.say(f"encoded {self.done:,} of {self.total:,} {self.unit}s")
            self.next_line += max(1, self.total // 4)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


class _Say:
    """Where ``compile_vocab``'s progress goes (its ``progress`` parameter)."""

    def __init__(self, progress: Callable[[str], None] | bool | None):
        self.started = time.perf_counter()
        self.sink: Callable[[str], None] | None = None
        self.terminal = sys.stderr.isatty()
        if callable(progress):
            self.sink, self.terminal = progress, False
        elif progress or (progress is None and self.terminal):
            self.sink = self._print

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _print(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {printable(message)}", file=sys.stderr, flush=True)

    def __call__(self, message: str) -> None:
        if self.sink is not None:
            self.sink(message)

    def tally(self, total: int, unit: str) -> _Tally:
        return _Tally(self.sink, total, unit, bar=self.sink is not None and self.terminal)


def form_texts(
    tokenizer: Tokenizer, lexicons: Sequence[Lexicon], cases: Sequence[str] = CASES, spacings: Sequence[str] = SPACINGS
) -> list[str]:
    """The texts ``compile_vocab`` has the tokenizer encode for ``lexicons``, one per surface
    form in context: what encoding them costs is the part of a compile no design avoids
    (``link-fast bench`` reports compile time as a ratio to it)."""
    records = _FormRecords.of(lexicons, cases, spacings)
    state = _encoding(tokenizer, records)
    return [
        state.heads[c] + state.surfaces[s] + state.tails[c]
        for c, s in zip(records.form_spacing.tolist(), records.form_surface.tolist())
    ]


def _check_options(dictionaries, cases, spacings) -> None:
    if set(cases) - set(CASES) or not cases:
        raise InputError(f"cases must be a non-empty subset of {CASES}, got {tuple(cases)}")
    if set(spacings) - set(SPACINGS) or not spacings:
        raise InputError(f"spacings must be a non-empty subset of {SPACINGS}, got {tuple(spacings)}")
    if not dictionaries:
        raise InputError("at least one dictionary is needed")
    if len(dictionaries) > MAX_LANGUAGES:
        raise InputError(f"at most {MAX_LANGUAGES} languages per vocabulary, got {len(dictionaries)}")


def _load_inputs(tokenizer, dictionaries, say, curation: _Curation) -> tuple[Tokenizer, list[Lexicon], dict]:
    """The tokenizer and the lexicons, read where they were given as paths, then curated one
    language at a time (:func:`_curate`); and each language's translation score."""
    if not isinstance(tokenizer, Tokenizer):
        say(f"loading tokenizer {tokenizer}")
        tokenizer = load_tokenizer(tokenizer)
    reading = dataclasses.replace(curation.cleaning, max_translations=0)
    lexicons, scores = [], {}
    for lang, source in dictionaries.items():
        if not isinstance(source, Lexicon):
            say(f"loading {lang} dictionary {source}")
            source = load_lexicon(source, lang, reading)
        lexicon, scores[lang] = _curate(source, lang, curation)
        lexicons.append(lexicon)
    return tokenizer, lexicons, scores


def curate(
    lexicon: Lexicon,
    lang: str,
    *,
    max_translations: int = CleaningOptions.max_translations,
    translation_weights: str = "sense",
    deny: Sequence[str | os.PathLike] = (),
    default_deny: bool = True,
    function_words: str = "table",
    drop_glued: bool = True,
) -> Lexicon:
    """What :func:`compile_vocab` keeps of ``lexicon`` as vocabulary language ``lang``, with the
    same options: its function words from their table, its denied and glued pairs dropped,
    each word's best ``max_translations``. For tests and reviews that need the pairs a
    vocabulary was compiled from."""
    cleaning = dataclasses.replace(CleaningOptions(), max_translations=max_translations, drop_glued=drop_glued)
    denied = load_deny_lists(deny, {lang: lexicon}, defaults=default_deny)
    return _curate(lexicon, lang, _Curation(cleaning, translation_weights, denied, function_words))[0]


def _curate(lexicon: Lexicon, lang: str, curation: _Curation) -> tuple[Lexicon, Score | None]:
    """One language's lexicon, read with no limit on translations, made what the vocabulary
    keeps: function words from their table, denied pairs and glued words dropped, then each
    word's ``cleaning.max_translations`` best scored translations (``link_fast.weights``), or
    first ones; and the score. What wordfreq lacks is not checked: such a language keeps its
    glued words and its first translations."""
    lexicon = replace_function_words(lexicon, table_for(lang, curation.function_words))
    lexicon = drop_denied(lexicon, curation.denied.for_language(lang))
    code = wordfreq_language(lang)
    glued = glued_check(code) if code and curation.cleaning.drop_glued else None
    if glued is not None:
        lexicon = drop_glued(lexicon, glued)
    score = translation_score(curation.weights, lexicon, lang)
    kept = keep_best(lexicon, score, curation.cleaning.max_translations)
    return kept, score


# case variant -> how a translation is spelled in it (0: as in the dictionary, 1: Title, 2: UPPER)
_CASE_CODES = {"lower": 0, "exact": 0, "title": 1, "upper": 2}


@dataclass
class _Blocks:
    """One block per (language, source word, case variant): the surface ids of the source's
    form, then of its translations' in the same case, concatenated in ``sequence``. Surface
    ids are in no particular order; ``_FormRecords`` numbers forms by first occurrence."""

    surfaces: list[str]  # by surface id
    sequence: np.ndarray
    start: np.ndarray  # per block: where it starts in ``sequence``
    count: np.ndarray  # per block: how many translations follow the source
    lang: np.ndarray  # per block: the language index
    natural: np.ndarray  # per block: the case variant is the source's own spelling

    @classmethod
    def of(cls, lexicons: Sequence[Lexicon], cases) -> _Blocks:
        ids: dict[str, int] = {}
        parts = [cls._lexicon(lexicon, lang_index, cases, ids) for lang_index, lexicon in enumerate(lexicons)]
        counts = np.concatenate([p[1] for p in parts])
        return cls(
            list(ids),
            np.concatenate([p[0] for p in parts]),
            np.cumsum(counts + 1) - (counts + 1),
            counts,
            np.concatenate([np.full(len(p[1]), i, dtype=np.int64) for i, p in enumerate(parts)]),
            np.concatenate([p[2] for p in parts]),
        )

    @staticmethod
    def _lexicon(lexicon: Lexicon, lang_index: int, cases, ids: dict[str, int]):
        """(sequence, translation count, natural) of one lexicon's blocks, new surfaces added
        to ``ids``. Each distinct translation is cased and interned once per case it takes,
        not once per occurrence."""
        intern = ids.setdefault
        local: dict[str, int] = {}
        entries = lexicon.entries
        trans_local = np.fromiter(
            (local.setdefault(t, len(local)) for ts in entries.values() for t in ts), dtype=np.int64
        )
        entry_count = np.fromiter(map(len, entries.values()), dtype=np.int64, count=len(entries))
        block_entry, block_case, block_source, natural = array("q"), array("b"), array("q"), array("b")
        no_upper = [case for case in cases if case != "upper"]
        for entry, word in enumerate(entries):
            for case, surface, is_natural in source_cases(word, no_upper if word in lexicon.no_upper else cases):
                block_entry.append(entry)
                block_case.append(_CASE_CODES[case])
                block_source.append(intern(surface, len(ids)))
                natural.append(is_natural)
        entries_of = np.frombuffer(block_entry, dtype=np.int64)
        case_of = np.frombuffer(block_case, dtype=np.int8).astype(np.int64)
        count = entry_count[entries_of]
        # each block's translations: its entry's slice of trans_local
        first = np.repeat((np.cumsum(entry_count) - entry_count)[entries_of] - (np.cumsum(count) - count), count)
        block_trans = trans_local[first + np.arange(len(first))]
        trans_case = np.repeat(case_of, count)
        surface_of = np.full((3, len(local)), -1, dtype=np.int64)  # (case, translation) -> surface id
        texts = list(local)
        for code, case in enumerate(("lower", "title", "upper")):
            used = np.unique(block_trans[trans_case == code]).tolist()
            surface_of[code, used] = [intern(apply_case(texts[t], case), len(ids)) for t in used]
        starts = np.cumsum(count + 1) - (count + 1)
        sequence = np.empty(len(count) + len(block_trans), dtype=np.int64)
        is_source = np.zeros(len(sequence), dtype=bool)
        is_source[starts] = True
        sequence[starts] = np.frombuffer(block_source, dtype=np.int64)
        sequence[~is_source] = surface_of[trans_case, block_trans]
        return sequence, count, np.frombuffer(natural, dtype=np.int8).astype(bool)


@dataclass
class _FormRecords:
    """Every form a source or translation takes, numbered; and one record per (source form,
    language) listing the form ids of its translations in the same form.

    Forms are numbered in the order the records first use them (records go by language,
    source word, case, spacing; a record uses its source's form, then its translations'):
    key and translation numbers follow from it, so it must not change."""

    surfaces: list[str]  # each distinct surface string once
    spacing_names: list[str]  # the distinct spacings, in the order given
    form_surface: np.ndarray  # per form: its surface
    form_spacing: np.ndarray  # per form: its spacing (an index of spacing_names)
    source: np.ndarray  # per record: the source form
    lang: np.ndarray  # per record: the language index
    natural: np.ndarray  # per record: the form is the source's own spelling
    trans: np.ndarray  # the records' translation forms, concatenated
    trans_count: np.ndarray  # per record: how many of them
    ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per form: context-free

    @classmethod
    def of(cls, lexicons: Sequence[Lexicon], cases, spacings) -> _FormRecords:
        """Records of ``lexicons``. One pass in Python interns each case variant's surface
        string (a string per occurrence, not a tuple per form and spacing); the spacings, the
        form numbers and the records are then spread out with numpy."""
        blocks = _Blocks.of(lexicons, cases)
        spacing_names = list(dict.fromkeys(spacings))
        record_spacing = np.array([spacing_names.index(s) for s in spacings], dtype=np.int64)
        n_surfaces, n_spacings = len(blocks.surfaces), len(spacing_names)
        # a surface's forms are first used by the block where the surface first occurs, all of
        # the first spacing's in the order of the block, then the next spacing's
        block_of = np.repeat(np.arange(len(blocks.count), dtype=np.int64), blocks.count + 1)
        _, first_at = np.unique(blocks.sequence, return_index=True)
        form_first = np.tile(block_of[first_at], n_spacings)
        del block_of
        form_spacing = np.repeat(np.arange(n_spacings, dtype=np.int64), n_surfaces)
        order = np.lexsort((np.tile(first_at, n_spacings), form_spacing, form_first))
        del form_first, form_spacing, first_at
        form_of = np.empty(len(order), dtype=np.int64)  # (spacing * n_surfaces + surface) -> form
        form_of[order] = np.arange(len(order), dtype=np.int64)
        n_blocks, per_block = len(blocks.count), len(record_spacing)
        rec_block = np.repeat(np.arange(n_blocks, dtype=np.int64), per_block)
        rec_spacing = np.tile(record_spacing, n_blocks)
        trans_count = blocks.count[rec_block]
        # each record's translations: the slice of its block after the source
        trans_block_pos = np.repeat(blocks.start[rec_block] + 1 - (np.cumsum(trans_count) - trans_count), trans_count)
        trans_block_pos += np.arange(len(trans_block_pos))
        trans = form_of[np.repeat(rec_spacing, trans_count) * n_surfaces + blocks.sequence[trans_block_pos]]
        source = form_of[rec_spacing * n_surfaces + blocks.sequence[blocks.start[rec_block]]]
        return cls(
            blocks.surfaces,
            spacing_names,
            (order % n_surfaces).astype(np.int64),
            (order // n_surfaces).astype(np.int8),
            source,
            blocks.lang[rec_block],
            blocks.natural[rec_block],
            trans,
            trans_count,
        )

    @property
    def n_forms(self) -> int:
        return len(self.form_surface)

    def texts(self, forms: np.ndarray) -> list[str]:
        """The text of each form: its surface, after a space for the "space" spacing."""
        surfaces = self.surfaces
        lead = [" " if name == "space" else "" for name in self.spacing_names]
        return [
            lead[c] + surfaces[s] for c, s in zip(self.form_spacing[forms].tolist(), self.form_surface[forms].tolist())
        ]

    @functools.cached_property
    def record_of_trans(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.source)), self.trans_count)

    def ok_translations(self) -> np.ndarray:
        """Per record: how many of its translations are context-free."""
        return np.bincount(self.record_of_trans[self.ok[self.trans]], minlength=len(self.source))

    def keep(self, ok: np.ndarray) -> np.ndarray:
        """Records whose source form is context-free and that have a context-free translation."""
        self.ok = ok
        return ok[self.source] & (self.ok_translations() > 0)

    def keys(self, kept, form_offsets, form_tokens, n_langs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys: distinct token sequences of kept source forms, numbered in order of appearance.
        Returns each record's key, each key's source form, and the records kept once, within
        each language, a source spelled exactly like a form has taken it from the derived case
        variants (another language's claim never removes one)."""
        forms = np.unique(self.source[kept])
        form_key = np.full(self.n_forms, -1, dtype=np.int64)
        number, n_keys = _number_sequences(form_offsets, form_tokens, forms)
        form_key[forms] = number
        rec_key = form_key[self.source]
        if not n_keys:  # nothing kept: the caller says so
            return rec_key, np.zeros(0, dtype=np.int64), kept
        slot = np.maximum(rec_key, 0) * n_langs + self.lang  # (key, language) of each record
        owned = np.zeros(n_keys * n_langs, dtype=bool)
        owned[slot[kept & self.natural]] = True
        kept = kept & (self.natural | ~owned[slot])
        key_source_form = np.zeros(n_keys, dtype=np.int64)
        first = np.unique(rec_key[kept], return_index=True)
        key_source_form[first[0]] = self.source[kept][first[1]]
        return rec_key, key_source_form, kept

    def translations(self, kept, rec_key, n_keys: int, n_langs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Translations of each (key, language), in record order, duplicates removed: the
        ranges (key_trans_start), the distinct translation of each entry, the distinct forms."""
        rec_of_trans = self.record_of_trans
        use = kept[rec_of_trans] & self.ok[self.trans]
        slot = rec_key[rec_of_trans[use]] * n_langs + self.lang[rec_of_trans[use]]
        trans_form = self.trans[use]
        _, first_seen = np.unique(slot * self.n_forms + trans_form, return_index=True)
        first_seen.sort()
        slot, trans_form = slot[first_seen], trans_form[first_seen]
        order = np.argsort(slot, kind="stable")
        slot, trans_form = slot[order], trans_form[order]
        key_trans_start = np.zeros(n_keys * n_langs + 1, dtype=np.int64)
        np.cumsum(np.bincount(slot, minlength=n_keys * n_langs), out=key_trans_start[1:])
        distinct, key_trans = np.unique(trans_form, return_inverse=True)
        return key_trans_start, key_trans, distinct

    def report(self, languages, sources_per_lang, kept, key_trans_start, key_texts) -> dict:
        """The compile report, per language: forms kept and dropped by reason, keys, phrases."""
        n_keys = len(key_texts)
        source_ok, ok_translations = self.ok[self.source], self.ok_translations()
        trans_ok, rec_of_trans = self.ok[self.trans], self.record_of_trans
        key_langs = np.diff(key_trans_start).reshape(n_keys, len(languages)) > 0
        is_phrase = np.array([" " in t.strip() for t in key_texts], dtype=bool)
        report = {}
        for lang_index, lang in enumerate(languages):
            mine = self.lang == lang_index
            report[lang] = {
                "sources": sources_per_lang[lang_index],
                "forms": int(mine.sum()),
                "forms_kept": int((mine & kept).sum()),
                "forms_not_context_free": int((mine & ~source_ok).sum()),
                "forms_without_translation": int((mine & source_ok & (ok_translations == 0)).sum()),
                "forms_owned_by_another_source": int((mine & source_ok & (ok_translations > 0) & ~kept).sum()),
                "translation_forms_not_context_free": int((mine[rec_of_trans] & ~trans_ok).sum()),
                "keys": int(key_langs[:, lang_index].sum()),
                "phrases": int((key_langs[:, lang_index] & is_phrase).sum()),
            }
        return report
