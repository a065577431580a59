"""Compile bilingual dictionaries, for one tokenizer, into a token-id ``Vocab``.

For each source word (or phrase) and each case variant (lower, Title, UPPER), two surface
forms are built: with a leading space (`` cat``) and without (``cat``, as after a newline or a
bracket). Each form is encoded *in running-text context* and kept only if that encoding is
context-free: the same ids whatever text surrounds it (``CONTEXTS``). The translation is
emitted in the same form: leading space and case carried over, and encoded the same way.

Case variants follow the source's own spelling, so that abbreviations and names do not
swallow common words: an all-lowercase source (``cat``) gives lower, Title and UPPER forms; a
Title-case source (``Easter``) gives Title and UPPER; any other spelling (``US``, ``iPhone``)
gives itself only. When two sources produce the same surface form (``US`` from ``us`` in
UPPER and from ``US`` as spelled), the source spelled that way wins; equal claims merge.
"""

from __future__ import annotations

import gc
import os
import time
from contextlib import contextmanager
from dataclasses import asdict
from typing import Callable, Mapping, Sequence

from .errors import InputError
from .lexicon import CleaningOptions, Lexicon, load_lexicon
from .tokenizer import Tokenizer, load_tokenizer, token_flags
from .vocab import MAX_LANGUAGES, Entry, Vocab

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


def encode_forms(tokenizer: Tokenizer, forms: Sequence[tuple[str, str]]) -> list[tuple[int, ...] | None]:
    """Context-free ids of each (spacing, surface) form, or None where there are none."""
    frames = {}
    for spacing, (prefix, suffix) in CONTEXTS.items():
        before = tokenizer.encode(prefix)
        with_suffix = tokenizer.encode(prefix + suffix)
        if with_suffix[: len(before)] != before:
            raise InputError(f"{tokenizer.name}: context {prefix!r}+{suffix!r} is not stable for this tokenizer")
        frames[spacing] = (prefix, suffix, len(before), before, with_suffix[len(before) :])
    texts = []
    for spacing, surface in forms:
        prefix, suffix = frames[spacing][:2]
        texts.append(f"{prefix} {surface}{suffix}" if spacing == "space" else f"{prefix}{surface}{suffix}")
    encoded = tokenizer.encode_batch(texts)
    specials = tokenizer.special_ids
    out: list[tuple[int, ...] | None] = []
    for (spacing, _), full in zip(forms, encoded):
        _, _, n_before, before, after = frames[spacing]
        stop = len(full) - len(after)
        if stop > n_before and full[:n_before] == before and full[stop:] == after:
            ids = tuple(full[n_before:stop])
            out.append(None if specials and not specials.isdisjoint(ids) else ids)
        else:
            out.append(None)
    return out


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
    cleaning: CleaningOptions = CleaningOptions(),
    progress: Callable[[str], None] | None = None,
) -> Vocab:
    """Compile ``dictionaries`` ({language: lexicon or dictionary path}) for ``tokenizer``.

    The vocabulary's ``meta["report"]`` says, per language, how many source words were used,
    how many surface forms were kept, how many were dropped as not context-free, and how many
    keys and phrases resulted.
    """
    with _gc_paused():
        return _compile(tokenizer, dictionaries, cases, spacings, cleaning, progress)


def _compile(tokenizer, dictionaries, cases, spacings, cleaning, progress) -> Vocab:
    started = time.perf_counter()
    say = progress or (lambda message: None)
    bad_cases = set(cases) - set(CASES)
    bad_spacings = set(spacings) - set(SPACINGS)
    if bad_cases or not cases:
        raise InputError(f"cases must be a non-empty subset of {CASES}, got {tuple(cases)}")
    if bad_spacings or not spacings:
        raise InputError(f"spacings must be a non-empty subset of {SPACINGS}, got {tuple(spacings)}")
    if not dictionaries:
        raise InputError("at least one dictionary is needed")
    if len(dictionaries) > MAX_LANGUAGES:
        raise InputError(f"at most {MAX_LANGUAGES} languages per vocabulary, got {len(dictionaries)}")
    if not isinstance(tokenizer, Tokenizer):
        say(f"loading tokenizer {tokenizer}")
        tokenizer = load_tokenizer(tokenizer)
    languages = list(dictionaries)
    lexicons = []
    for lang, source in dictionaries.items():
        if not isinstance(source, Lexicon):
            say(f"loading {lang} dictionary {source}")
            source = load_lexicon(source, lang, cleaning)
        lexicons.append(source)

    # Every surface form to encode, sources and translations alike.
    forms: set[tuple[str, str]] = set()
    plans = []  # per language: [(source, [(case, surface, natural)], translations)]
    for lexicon in lexicons:
        plan = []
        for source, translations in lexicon.entries.items():
            variants = source_cases(source, cases)
            plan.append((source, variants, translations))
            for case, surface, _ in variants:
                for spacing in spacings:
                    forms.add((spacing, surface))
                    for translation in translations:
                        forms.add((spacing, apply_case(translation, case)))
        plans.append(plan)
    say(f"encoding {len(forms):,} surface forms with {tokenizer.name}")
    form_list = list(forms)
    form_ids = dict(zip(form_list, encode_forms(tokenizer, form_list)))

    say("building the trie")
    # key ids -> [text, natural, {lang: [(ids, text)]}]
    keys: dict[tuple[int, ...], list] = {}
    report: dict[str, dict[str, int]] = {}
    for lang_index, (lexicon, plan) in enumerate(zip(lexicons, plans)):
        counts = dict.fromkeys(
            ("sources", "forms", "forms_kept", "forms_not_context_free", "forms_without_translation",
             "translation_forms_not_context_free", "keys", "phrases"), 0)
        counts["sources"] = len(plan)
        for source, variants, translations in plan:
            for case, surface, natural in variants:
                for spacing in spacings:
                    counts["forms"] += 1
                    ids = form_ids[(spacing, surface)]
                    if ids is None:
                        counts["forms_not_context_free"] += 1
                        continue
                    emitted = []
                    for translation in translations:
                        text = apply_case(translation, case)
                        target = form_ids[(spacing, text)]
                        if target is None:
                            counts["translation_forms_not_context_free"] += 1
                        else:
                            emitted.append((target, " " + text if spacing == "space" else text))
                    if not emitted:
                        counts["forms_without_translation"] += 1
                        continue
                    counts["forms_kept"] += 1
                    shown = " " + surface if spacing == "space" else surface
                    slot = keys.get(ids)
                    if slot is None or (natural and not slot[1]):
                        slot = keys[ids] = [shown, natural, {}]
                    elif slot[1] and not natural:
                        continue  # a source spelled this way already owns the form
                    merged = slot[2].setdefault(lang_index, [])
                    seen = {t for t, _ in merged}
                    merged.extend(e for e in emitted if e[0] not in seen)
        report[lexicon.lang] = counts
    for key_ids, (text, _, per_lang) in keys.items():
        for lang_index in per_lang:
            counts = report[languages[lang_index]]
            counts["keys"] += 1
            counts["phrases"] += " " in text.strip()
    entries = [Entry(ids, text, per_lang) for ids, (text, _, per_lang) in keys.items()]
    if not entries:
        raise InputError(f"no dictionary word has a context-free encoding with {tokenizer.name}")
    flags = token_flags(tokenizer)
    vocab = Vocab.from_entries(
        flags,
        entries,
        languages,
        tokenizer={"name": tokenizer.name, "kind": tokenizer.kind, "fingerprint": tokenizer.fingerprint,
                   "vocab_size": tokenizer.vocab_size},
        options={"cases": list(cases), "spacings": list(spacings),
                 "cleaning": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in asdict(cleaning).items()},
                 "dictionaries": {lex.lang: lex.path for lex in lexicons}},
        report={"languages": report, "lexicons": {lex.lang: lex.report for lex in lexicons},
                "seconds": round(time.perf_counter() - started, 3)},
    )
    say(f"compiled {len(entries):,} keys in {time.perf_counter() - started:.1f} s")
    return vocab
