"""Compile bilingual dictionaries, for one tokenizer, into a token-id ``Vocab``.

For each source word (or phrase) and each case variant (lower, Title, UPPER), two surface
forms are built: with a leading space (`` cat``) and without (``cat``, as after a newline or a
bracket). Each form is encoded *in running-text context* (``CONTEXTS``) and kept only if that
encoding is context-free: the whole splits into the context's ids and the form's own ids. The translation is
emitted in the same form: leading space and case carried over, and encoded the same way.

Case variants follow the source's own spelling, so that abbreviations and names do not
swallow common words: an all-lowercase source (``cat``) gives lower, Title and UPPER forms; a
Title-case source (``Easter``) gives Title and UPPER; any other spelling (``US``, ``iPhone``)
gives itself only. When two sources produce the same surface form (``US`` from ``us`` in
UPPER and from ``US`` as spelled), the source spelled that way wins; equal claims merge.
"""

from __future__ import annotations

import functools
import gc
import itertools
import multiprocessing as mp
import os
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError
from .lexicon import CleaningOptions, Lexicon, load_lexicon
from .pool import Pool, WorkerDied
from .tokenizer import Tokenizer, load_tokenizer, token_flags
from .vocab import MAX_LANGUAGES, Vocab, tables_from_arrays

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
_FORK_STATE: tuple | None = None  # (tokenizer, texts, frames) inherited by forked encoders


def _encode_range(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts[start:stop] of the inherited state; (lengths with -1 for rejected, ids)."""
    if _FORK_STATE is None:
        raise RuntimeError("_encode_range runs in a worker forked after _FORK_STATE is set")
    tokenizer, texts, frames, spacings = _FORK_STATE
    start, stop = bounds
    specials = tokenizer.special_ids
    lengths = np.full(stop - start, -1, dtype=np.int32)
    kept: list[list[int]] = []
    for i, full in enumerate(tokenizer.encode_batch(texts[start:stop])):
        n_before, before, after = frames[spacings[start + i]]
        end = len(full) - len(after)
        if end > n_before and full[:n_before] == before and full[end:] == after:
            ids = full[n_before:end]
            if not specials or specials.isdisjoint(ids):
                lengths[i] = len(ids)
                kept.append(ids)
    flat = np.fromiter(itertools.chain.from_iterable(kept), dtype=np.uint32, count=int(lengths[lengths > 0].sum()))
    return lengths, flat


def encode_forms(
    tokenizer: Tokenizer, spacings: Sequence[str], surfaces: Sequence[str], workers: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Context-free ids of each form (``spacings[i]``, ``surfaces[i]``).

    Returns ``(ok, offsets, tokens)``: ``ok[i]`` is False where the form's ids depend on their
    context (or contain a special id); otherwise its ids are ``tokens[offsets[i]:offsets[i+1]]``.
    Large batches are encoded by forked worker processes, which return compact arrays.
    """
    global _FORK_STATE
    frames = {}
    for spacing, (prefix, suffix) in CONTEXTS.items():
        before = tokenizer.encode(prefix)
        with_suffix = tokenizer.encode(prefix + suffix)
        if with_suffix[: len(before)] != before:
            raise InputError(f"{tokenizer.name}: context {prefix!r}+{suffix!r} is not stable for this tokenizer")
        frames[spacing] = (len(before), before, with_suffix[len(before) :])
    texts = [
        f"{CONTEXTS[sp][0]} {surface}{CONTEXTS[sp][1]}"
        if sp == "space"
        else f"{CONTEXTS[sp][0]}{surface}{CONTEXTS[sp][1]}"
        for sp, surface in zip(spacings, surfaces)
    ]
    n = len(texts)
    parallel = workers > 1 and n >= PARALLEL_MIN_FORMS and "fork" in mp.get_all_start_methods()
    step = -(-n // (workers * 4)) if parallel else max(n, 1)
    ranges = [(i, min(n, i + step)) for i in range(0, n, step)]
    _FORK_STATE = (tokenizer, texts, frames, spacings)
    try:
        if parallel:  # a pool whose dead worker fails the compile instead of hanging it
            pool = Pool(workers, context="fork")
            try:
                futures = [pool.submit(i, _encode_range, r) for i, r in enumerate(ranges)]
                parts = [pool.result(f) for f in futures]
            except WorkerDied as died:
                a, b = ranges[died.task if died.task is not None else 0]
                raise WorkerDied(
                    died.how,
                    died.task,
                    f"a worker process died ({died.how}) while encoding dictionary forms {a}..{b - 1}",
                ) from None
            except BaseException:
                pool.stop()
                raise
            pool.close()
        else:
            parts = [_encode_range(r) for r in ranges]
    finally:
        _FORK_STATE = None
    lengths = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int32)
    tokens = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.uint32)
    ok = lengths >= 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.where(ok, lengths, 0), out=offsets[1:])
    return ok, offsets, tokens


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
    progress: Callable[[str], None] | None = None,
) -> Vocab:
    """Compile ``dictionaries`` ({language: lexicon or dictionary path}) for ``tokenizer``.

    ``cases`` and ``spacings`` choose the surface forms (module docstring); ``cleaning`` applies
    to dictionaries given as paths; ``workers`` processes encode the forms (default: the
    machine's cores, at most 8); ``progress`` receives one line per stage. The vocabulary's
    ``meta["report"]`` says, per language, how many source words were used, how many surface
    forms were kept, how many were dropped as not context-free, and how many
    keys and phrases resulted.
    """
    with _gc_paused():
        return _compile(tokenizer, dictionaries, cases, spacings, cleaning or CleaningOptions(), workers, progress)


def _compile(tokenizer, dictionaries, cases, spacings, cleaning, workers, progress) -> Vocab:
    started = time.perf_counter()
    say = progress or (lambda message: None)
    _check_options(dictionaries, cases, spacings)
    tokenizer, lexicons = _load_inputs(tokenizer, dictionaries, cleaning, say)
    languages = list(dictionaries)
    records = _FormRecords.of(lexicons, cases, spacings)
    workers = max(1, min(8, os.cpu_count() or 1)) if workers is None else workers
    say(f"encoding {len(records.forms):,} surface forms with {tokenizer.name} ({workers} processes)")
    ok, form_offsets, form_tokens = encode_forms(
        tokenizer, [f[0] for f in records.forms], [f[1] for f in records.forms], workers
    )
    say("building the trie")
    kept = records.keep(ok)
    rec_key, key_source_form, kept = records.keys(kept, form_offsets, form_tokens)
    key_trans_start, key_trans, distinct = records.translations(kept, rec_key, len(key_source_form), len(languages))
    key_offsets, key_tokens = _gather(form_offsets, form_tokens, key_source_form)
    trans_offsets, trans_tokens = _gather(form_offsets, form_tokens, distinct)
    key_texts = [records.text(f) for f in key_source_form.tolist()]
    tables = tables_from_arrays(
        token_flags(tokenizer),
        len(languages),
        key_offsets,
        key_tokens,
        key_texts,
        key_trans_start,
        key_trans.astype(np.int32),
        trans_offsets,
        trans_tokens,
        [records.text(f) for f in distinct.tolist()],
    )
    if not len(key_source_form):
        raise InputError(f"no dictionary word has a context-free encoding with {tokenizer.name}")
    report = records.report(languages, [len(lex.entries) for lex in lexicons], kept, key_trans_start, key_texts)
    vocab = Vocab.from_tables(
        tables,
        languages,
        tokenizer={
            "name": tokenizer.name,
            "kind": tokenizer.kind,
            "fingerprint": tokenizer.fingerprint,
            "vocab_size": tokenizer.vocab_size,
        },
        options={
            "cases": list(cases),
            "spacings": list(spacings),
            "cleaning": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in asdict(cleaning).items()},
            "dictionaries": {lang: lex.path for lang, lex in zip(languages, lexicons)},
        },
        report={
            "languages": report,
            "lexicons": {lang: lex.report for lang, lex in zip(languages, lexicons)},
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    say(f"compiled {len(key_source_form):,} keys in {time.perf_counter() - started:.1f} s")
    return vocab


def _check_options(dictionaries, cases, spacings) -> None:
    if set(cases) - set(CASES) or not cases:
        raise InputError(f"cases must be a non-empty subset of {CASES}, got {tuple(cases)}")
    if set(spacings) - set(SPACINGS) or not spacings:
        raise InputError(f"spacings must be a non-empty subset of {SPACINGS}, got {tuple(spacings)}")
    if not dictionaries:
        raise InputError("at least one dictionary is needed")
    if len(dictionaries) > MAX_LANGUAGES:
        raise InputError(f"at most {MAX_LANGUAGES} languages per vocabulary, got {len(dictionaries)}")


def _load_inputs(tokenizer, dictionaries, cleaning, say) -> tuple[Tokenizer, list[Lexicon]]:
    """The tokenizer and the lexicons, read where they were given as paths."""
    if not isinstance(tokenizer, Tokenizer):
        say(f"loading tokenizer {tokenizer}")
        tokenizer = load_tokenizer(tokenizer)
    lexicons = []
    for lang, source in dictionaries.items():
        if not isinstance(source, Lexicon):
            say(f"loading {lang} dictionary {source}")
            source = load_lexicon(source, lang, cleaning)
        lexicons.append(source)
    return tokenizer, lexicons


@dataclass
class _FormRecords:
    """Every form a source or translation takes, numbered; and one record per (source form,
    language) listing the form ids of its translations in the same form."""

    forms: list[tuple[str, str]]  # (spacing, surface) per form id
    source: np.ndarray  # per record: the source form
    lang: np.ndarray  # per record: the language index
    natural: np.ndarray  # per record: the form is the source's own spelling
    trans: np.ndarray  # the records' translation forms, concatenated
    trans_count: np.ndarray  # per record: how many of them
    ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per form: context-free

    @classmethod
    def of(cls, lexicons: Sequence[Lexicon], cases, spacings) -> _FormRecords:
        form_id: dict[tuple[str, str], int] = {}
        source, lang, natural = array("q"), array("b"), array("b")
        trans, trans_count = array("q"), array("q")
        for lang_index, lexicon in enumerate(lexicons):
            for word, translations in lexicon.entries.items():
                for case, surface, is_natural in source_cases(word, cases):
                    cased = [apply_case(t, case) for t in translations]
                    for spacing in spacings:
                        source.append(form_id.setdefault((spacing, surface), len(form_id)))
                        lang.append(lang_index)
                        natural.append(is_natural)
                        trans.extend([form_id.setdefault((spacing, t), len(form_id)) for t in cased])
                        trans_count.append(len(cased))
        return cls(
            list(form_id),
            np.frombuffer(source, dtype=np.int64),
            np.frombuffer(lang, dtype=np.int8).astype(np.int64),
            np.frombuffer(natural, dtype=np.int8).astype(bool),
            np.frombuffer(trans, dtype=np.int64),
            np.frombuffer(trans_count, dtype=np.int64),
        )

    def text(self, form: int) -> str:
        spacing, surface = self.forms[form]
        return " " + surface if spacing == "space" else surface

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

    def keys(self, kept, form_offsets, form_tokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys: distinct token sequences of kept source forms, numbered in order of appearance.
        Returns each record's key, each key's source form, and the records kept once a source
        spelled exactly like a form has taken it from the derived case variants."""
        raw = form_tokens.tobytes()
        key_of_form: dict[bytes, int] = {}
        form_key = np.full(len(self.forms), -1, dtype=np.int64)
        for f in np.unique(self.source[kept]).tolist() if kept.any() else []:
            form_key[f] = key_of_form.setdefault(raw[form_offsets[f] * 4 : form_offsets[f + 1] * 4], len(key_of_form))
        rec_key = form_key[self.source]
        owned = np.zeros(len(key_of_form), dtype=bool)
        owned[rec_key[kept & self.natural]] = True
        kept = kept & (self.natural | ~owned[np.maximum(rec_key, 0)])
        key_source_form = np.zeros(len(key_of_form), dtype=np.int64)
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
        _, first_seen = np.unique(slot * len(self.forms) + trans_form, return_index=True)
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
