"""Deny lists: word pairs a vocabulary must not hold, whatever the dictionary says.

A deny list is a UTF-8 file, one pair a line, ``lang<TAB>source<TAB>translation``; blank lines
and lines starting with ``#`` are skipped, and each field loses the spaces around it. ``lang``
is matched through :func:`link_fast.languages.language_code`, so ``de`` also names a vocabulary
language called ``deu``; the source is compared casefolded, the translation exactly, both after
NFC. A malformed line is a :class:`~link_fast.errors.FileError` naming the file and line.

link_fast ships reviewed lists, ``link_fast/data/deny/CODE.tsv``: the list of each vocabulary
language's code is applied unless the caller turns the defaults off. Denied pairs are dropped
from the cleaned dictionary before ``max_translations`` keeps its N, and counted as
``dropped_denied`` in the dictionary's report (docs/QUALITY.md, "Review loop").
"""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DictionaryError, FileError
from .io import refuse_special_file
from .languages import language_code
from .lexicon import Lexicon

__all__ = ["DENY_DIR", "DenyList", "default_deny_files", "drop_denied", "load_deny_lists", "read_deny_file"]

DENY_DIR = Path(__file__).parent / "data" / "deny"
FIELDS = ("lang", "source", "translation")

Pair = tuple[str, str]  # (source casefolded, translation), both NFC


@dataclass(frozen=True)
class DenyList:
    """Denied pairs by language code, and the files they were read from (as named to the
    user: a shipped list by its path inside the package)."""

    pairs: Mapping[str, frozenset[Pair]] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(self.pairs.values())

    def for_language(self, lang: str) -> frozenset[Pair]:
        """The pairs denied for vocabulary language ``lang`` (by its code)."""
        code = language_code(lang)
        return self.pairs.get(code, frozenset()) if code else frozenset()


def source_key(source: str) -> str:
    """How a source is compared: NFC, whitespace collapsed, casefolded."""
    return " ".join(unicodedata.normalize("NFC", source).split()).casefold()


def translation_key(translation: str) -> str:
    """How a translation is compared: NFC, exactly."""
    return unicodedata.normalize("NFC", translation)


def default_deny_files(languages: Iterable[str]) -> list[Path]:
    """The shipped deny lists of ``languages``' codes, where link_fast has one."""
    codes = dict.fromkeys(code for code in map(language_code, languages) if code)
    return [DENY_DIR / f"{code}.tsv" for code in codes if (DENY_DIR / f"{code}.tsv").is_file()]


def load_deny_lists(
    paths: Sequence[str | os.PathLike] = (), languages: Iterable[str] = (), *, defaults: bool = True
) -> DenyList:
    """The pairs of the deny lists ``paths``, plus (``defaults``) the shipped lists of ``languages``."""
    files = [*(default_deny_files(languages) if defaults else []), *(Path(p) for p in paths)]
    merged: dict[str, set[Pair]] = {}
    for path in files:
        for code, pairs in read_deny_file(path).items():
            merged.setdefault(code, set()).update(pairs)
    return DenyList({code: frozenset(pairs) for code, pairs in merged.items()}, tuple(map(_shown_name, files)))


def read_deny_file(path: str | os.PathLike) -> dict[str, set[Pair]]:
    """{language code: pairs} of one deny list; a malformed line raises ``FileError`` naming it."""
    refuse_special_file(path, lambda problem: FileError(path, problem))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FileError(path, f"cannot read: {exc.strerror or exc}") from None
    pairs: dict[str, set[Pair]] = {}
    codes: dict[str, str | None] = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = _decoded(path, number, raw).removeprefix("\ufeff" if number == 1 else "")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lang, source, translation = _fields(path, number, line)
        code = codes[lang] if lang in codes else codes.setdefault(lang, language_code(lang))
        if code is None:
            raise FileError(path, f"{lang!r} is not a language code (de, fra, pt-BR...)", number)
        pairs.setdefault(code, set()).add((source_key(source), translation_key(translation)))
    return pairs


def drop_denied(lexicon: Lexicon, denied: frozenset[Pair]) -> Lexicon:
    """``lexicon`` without the ``denied`` pairs, counted as ``dropped_denied``; a source left
    without translations goes. Raises ``DictionaryError`` when nothing is left."""
    if not denied:
        return lexicon
    sources = {source for source, _ in denied}
    entries: dict[str, list[str]] = {}
    dropped = 0
    for source, translations in lexicon.entries.items():
        folded = source_key(source)
        if folded in sources:
            kept = [t for t in translations if (folded, translation_key(t)) not in denied]
            dropped += len(translations) - len(kept)
            if not kept:
                continue
            translations = kept
        entries[source] = translations
    if not dropped:
        return lexicon
    if not entries:
        raise DictionaryError(lexicon.path, f"no word pairs left: the deny lists drop all {dropped}")
    report = dict(lexicon.report)
    report["dropped_denied"] = report.get("dropped_denied", 0) + dropped
    report["pairs_kept"] = report.get("pairs_kept", 0) - dropped
    report["sources"] = len(entries)
    report["phrases"] = sum(" " in source for source in entries)
    return dataclasses.replace(lexicon, entries=entries, report=report)


def _decoded(path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError as exc:
        raise FileError(path, f"not UTF-8: {exc.reason} at byte {exc.start}", number) from None


def _fields(path, number: int, line: str) -> tuple[str, str, str]:
    parts = [part.strip(" ") for part in line.split("\t")]
    if len(parts) != len(FIELDS):
        raise FileError(path, f"expected lang<TAB>source<TAB>translation, got {len(parts)} field(s)", number)
    for name, part in zip(FIELDS, parts):
        if not part:
            raise FileError(path, f"empty {name} field", number)
    return parts[0], parts[1], parts[2]


def _shown_name(path: Path) -> str:
    """A shipped list by its place in the package (the same on every machine), others as given."""
    if path.parent == DENY_DIR:
        return f"link_fast/data/deny/{path.name}"
    return str(path)
