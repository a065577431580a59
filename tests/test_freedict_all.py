"""Every English->X FreeDict dictionary Debian ships loads, fully, and without English glosses.

The 30 dictionaries (GPL, never committed) are fetched by scripts/fetch_fixtures.sh into
``.fixtures/freedict`` (or ``$LINK_FAST_FIXTURES/freedict``). A missing one skips its test
locally and fails it in CI (``CI`` or ``LINK_FAST_REQUIRE_FIXTURES`` set), as conftest.py does
for the other real data.

What is checked for each, against a reading of the raw files written here, independently of
link_fast.lexicon (no helper of it is imported):

- it loads with the default cleaning;
- at least 80% of the headwords that have a translation and that the cleaning accepts as
  sources (letters, hyphens, apostrophes, at most three words) are kept;
- fewer than 1% of the kept translations are one of the English gloss lines of their own
  entry (the WikDict-made dictionaries follow every translation line with one, as
  "cinnamon ... 1. kanelinruskea / color / 2. kaneli ... / flavor");
- for the dictionaries in a non-Latin script, fewer than 1% of the kept translations consist
  only of English words (the words of the English headwords of all 30 dictionaries). The
  Latin-script ones are exempt from this last check, as no word list can tell a gloss from
  the many target words that are also English words ("over" in Dutch and Norwegian, "horror"
  in Spanish and Portuguese, "student" in Afrikaans and Swedish: between 0.9% and 26% of
  their translations with this word list); the gloss-line check covers them instead.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest

from link_fast.lexicon import FREEDICT_LANGUAGES, Lexicon, load_lexicon

# Every English->X FreeDict dictionary Debian ships: the 30 dict-freedict-eng-* packages,
# written out here rather than taken from the code under test.
LANGUAGES = (
    "afr", "ara", "bul", "ces", "cym", "dan", "deu", "ell", "fin", "fra",
    "gle", "hin", "hrv", "hun", "ind", "ita", "jpn", "lat", "lit", "nld",
    "nor", "pol", "por", "rom", "rus", "spa", "srp", "swe", "swh", "tur",
)  # fmt: skip
NON_LATIN = {"ara", "bul", "ell", "hin", "jpn", "rus", "srp"}

B64 = {ch: value for value, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
# A body line that is not a translation: an example, a cross-reference, a note.
NOT_TRANSLATION = ('"', "Synonym", "see:", "See also:", "Note:", "Antonym")
# "1. ...", and eng-pol's parts of speech: "I.  <N>  ulica", "II.  <Adj> 1.  uliczny".
NUMBERED = re.compile(r"[IVX]+\.\s+(?:<[^>]*>\s*)?(?:\d+\.(?:\s|$))?|\d+\.(?:\s|$)")
MARKUP = re.compile(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}")
# What the cleaning keeps as a source: letters (and marks) with ' ’ - and spaces, 1-3 words.
SOURCE = re.compile(r"(?:[^\W\d_]|['’-])+(?: (?:[^\W\d_]|['’-])+){0,2}")


def required() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in ("CI", "LINK_FAST_REQUIRE_FIXTURES"))


@pytest.fixture(scope="module")
def dictionaries(fixtures_dir) -> Path:
    return fixtures_dir / "freedict"


def files(directory: Path, lang: str) -> tuple[Path, Path]:
    index, data = directory / f"freedict-eng-{lang}.index", directory / f"freedict-eng-{lang}.dict.dz"
    missing = [path.name for path in (index, data) if not path.is_file()]
    if missing:
        message = f"{directory} lacks {', '.join(missing)}: run scripts/fetch_fixtures.sh"
        if required():
            pytest.fail(message)
        pytest.skip(message)
    return index, data


def number(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + B64[ch]
    return value


_readings: dict[str, list[tuple[str, list[str], list[str]]]] = {}


def readings(directory: Path, lang: str) -> list[tuple[str, list[str], list[str]]]:
    """The reading() of every distinct entry, computed once per dictionary."""
    if lang not in _readings:
        _readings[lang] = [reading(text) for text in raw_entries(directory, lang)]
    return _readings[lang]


def raw_entries(directory: Path, lang: str) -> list[str]:
    """The text of every distinct entry, metadata entries left out."""
    index, data_path = files(directory, lang)
    data = gzip.decompress(data_path.read_bytes())
    seen = set()
    texts = []
    for line in index.read_text(encoding="utf-8").splitlines():
        key, offset, length = line.split("\t")
        if key.startswith("00") or offset in seen:
            continue
        seen.add(offset)
        start = number(offset)
        texts.append(data[start : start + number(length)].decode("utf-8"))
    return texts


def reading(text: str) -> tuple[str, list[str], list[str]]:
    """(headword, translation lines, other lines) of one entry, simply."""
    first, *body = text.split("\n")
    headword = " ".join(re.split(r" /| <| \(", first, maxsplit=1)[0].split())
    lines = [line.strip() for line in body if line.strip()]
    translations, others = [], []
    for position, line in enumerate(lines):
        numbered = NUMBERED.match(line)
        if numbered:
            translations.append(line[numbered.end() :])
        elif position == 0 and not line.startswith(NOT_TRANSLATION):
            translations.append(line)
        elif not line.startswith(NOT_TRANSLATION):
            others.append(line)
    return headword, translations, others


def has_letters(line: str) -> bool:
    return any(ch.isalpha() for ch in MARKUP.sub("", line))


_lexicons: dict[str, Lexicon] = {}
# The two that conftest.py's real_lexicons loads for the other real-data tests (default
# cleaning, as here): taken from there, so that a whole-suite run reads eng-deu once.
SHARED = {"deu": "de", "fra": "fr"}


def lexicon_of(directory: Path, lang: str, request: pytest.FixtureRequest) -> Lexicon:
    if lang not in _lexicons:
        index, _ = files(directory, lang)
        if lang in SHARED:
            _lexicons[lang] = request.getfixturevalue("real_lexicons")[SHARED[lang]]
        else:
            _lexicons[lang] = load_lexicon(index, lang)
    return _lexicons[lang]


@pytest.fixture(scope="module")
def english_words(dictionaries) -> frozenset[str]:
    """Every word of every English headword of the dictionaries that are there."""
    words: set[str] = set()
    for lang in LANGUAGES:
        index = dictionaries / f"freedict-eng-{lang}.index"
        if index.is_file():
            for line in index.read_text(encoding="utf-8").splitlines():
                words.update(line.split("\t", 1)[0].casefold().split())
    return frozenset(words)


def definition(line: str) -> bool:
    """A translation line that is a sentence (docs/DICTIONARIES.md): two comma-separated pieces
    of six words or more, or a first one that long opening with a capital."""
    pieces = [piece.strip() for piece in line.split(",")]
    long = [i for i, piece in enumerate(pieces) if len(piece.split()) >= 6]
    return len(long) >= 2 or (long == [0] and pieces[0][:1].isupper())


@pytest.mark.parametrize("lang", LANGUAGES)
def test_loads_fully(dictionaries, lang, request):
    lexicon = lexicon_of(dictionaries, lang, request)
    assert len(lexicon) > 0
    expected = set()
    for headword, translations, _ in readings(dictionaries, lang):
        if not any(has_letters(line) and not definition(line) for line in translations):
            continue  # nothing to translate with, or only definitions (dropped on purpose)
        if len(headword) >= 2 and SOURCE.fullmatch(headword):
            expected.add(headword.casefold())
    kept = {source.casefold() for source in lexicon.entries}
    share = len(expected & kept) / len(expected)
    assert share >= 0.8, f"{lang}: kept {len(expected & kept)} of {len(expected)} headwords with a translation"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_gloss_lines(dictionaries, lang, request):
    lexicon = lexicon_of(dictionaries, lang, request)
    glosses: dict[str, set[str]] = {}
    for headword, _, others in readings(dictionaries, lang):
        parts = glosses.setdefault(headword.casefold(), set())
        for line in others:
            parts.update(part.strip().casefold() for part in MARKUP.sub("", line).split(","))
    pairs = [(source, t) for source, kept in lexicon.entries.items() for t in kept]
    bad = [(source, t) for source, t in pairs if t.casefold() in glosses.get(source.casefold(), ())]
    assert len(bad) < 0.01 * len(pairs), f"{lang}: {len(bad)} of {len(pairs)} are gloss lines: {bad[:10]}"


@pytest.mark.parametrize("lang", sorted(NON_LATIN))
def test_no_english_translations(dictionaries, english_words, lang, request):
    lexicon = lexicon_of(dictionaries, lang, request)
    pairs = [(source, t) for source, kept in lexicon.entries.items() for t in kept]
    bad = [
        (source, t)
        for source, t in pairs
        if all(word in english_words for word in t.casefold().replace("-", " ").split())
    ]
    assert len(bad) < 0.01 * len(pairs), f"{lang}: {len(bad)} of {len(pairs)} are English: {bad[:10]}"


def test_every_debian_freedict_english_dictionary_is_listed():
    assert len(LANGUAGES) == len(set(LANGUAGES)) == 30
    assert FREEDICT_LANGUAGES == LANGUAGES  # what resolve_dictionary and fetch_fixtures.sh know


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiles_for_a_real_tokenizer(dictionaries, lang, request, tekken):
    """Every dictionary's words become keys: its first 2,000 sources, for Tekken (the whole of
    each, and all 30 in one vocabulary, are measured in docs/PERFORMANCE.md)."""
    from link_fast.compiler import compile_vocab

    lexicon = lexicon_of(dictionaries, lang, request)
    head = Lexicon(lang, lexicon.path, dict(list(lexicon.entries.items())[:2000]), dict(lexicon.report))
    vocab = compile_vocab(tekken, {lang: head}, progress=False, workers=1)
    assert vocab.n_keys >= min(len(head.entries), 300)
    assert vocab.meta["report"]["languages"][lang]["keys"] == vocab.n_keys
