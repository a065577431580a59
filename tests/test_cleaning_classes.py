"""Each class of bad substitution issue 24 saw ("What was seen"), checked over whole FreeDict
dictionaries rather than on its examples.

The dictionaries are read as the compile reads them (default cleaning, no limit on the number
of translations: every pair the compile could keep), then curated as ``compiler._curate`` does
where the class is handled there (function-word tables, glued words, sense weights). What a
translation should not be is worked out from the raw dictd files, with the readers of
tests/test_freedict_all.py and a few rules written here, independently of link_fast.lexicon.

Classes: function-word entries (1), multi-word headwords filed under their first word (2),
glued translations (3), definitions read as translations (4), characters a writer does not
use (5), dictionary notation (6), homographs and rare senses (7), and the counts of all of
them in ``link-fast info`` (8).
"""

from __future__ import annotations

import functools
import gzip
import inspect
import json
import math
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TOKENIZER_FILES, mistral_data
from test_freedict_all import LANGUAGES, files, number, reading, readings

from link_fast.cli import build_parser
from link_fast.compiler import compile_vocab
from link_fast.function_words import english_function_words, load_table, replace_function_words, table_for
from link_fast.lexicon import CleaningOptions, Lexicon, load_lexicon
from link_fast.weights import keep_best, translation_score, wordfreq_language
from link_fast.wordlist import drop_glued, glued_check

# What the compile reads (compiler._load_inputs): every translation, the limit applied later.
READING = CleaningOptions(max_translations=0)
# The 8 languages of the benchmark, each with a shipped function-word table.
TABLE_LANGUAGES = ("deu", "fra", "spa", "ita", "por", "nld", "rus", "jpn")
ROMANCE = ("spa", "ita", "fra", "por", "rom")
FUNCTION_WORD_TABLES = Path(__file__).resolve().parent.parent / "link_fast" / "data" / "function_words"


@pytest.fixture(scope="module")
def dictionaries(fixtures_dir) -> Path:
    return fixtures_dir / "freedict"


@pytest.fixture(scope="module")
def lexicons(dictionaries) -> Iterator:
    """lexicon(lang): the dictionary read as the compile reads it, once per module."""
    loaded: dict[str, Lexicon] = {}

    def lexicon(lang: str) -> Lexicon:
        if lang not in loaded:
            index, _ = files(dictionaries, lang)
            loaded[lang] = load_lexicon(index, lang, READING)
        return loaded[lang]

    yield lexicon
    loaded.clear()


def pairs(lexicon: Lexicon) -> Iterator[tuple[str, str]]:
    for source, translations in lexicon.entries.items():
        for translation in translations:
            yield source, translation


# ---------------------------------------------------------------------------------------------
# The raw reading (tests/test_freedict_all.py's, and the rules below)

MARKUP = re.compile(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}")
# Domain labels opening a line, as eng-tur's "(zool.) memeli", "(fiz.), (kim.) faz".
LABELS = re.compile(r"^(?:\([^()]*\)[\s,]*)+")
# A term's abbreviation and its pronunciation (eng-deu: "Bundesamt ... [Ös.] BEV,  /bˈɛv/").
SPOKEN_ABBREVIATION = re.compile(r"\S*,\s+/[^/]*/")
# What a piece says in brackets, closed or not, is no word of the piece itself.
BRACKETED = re.compile(r"\([^()]*\)|\(.*")
CYRILLIC_VOWELS = "аеиоуыэюяёіїєъАЕИОУЫЭЮЯЁІЇЄЪ"  # ъ: a vowel in Bulgarian ("отсъ́ствие")
CYRILLIC_STRESS = re.compile(f"[{CYRILLIC_VOWELS}]\u0301")


def spelled(text: str) -> str:
    """A raw piece as the cleaning spells its translations, to compare the two."""
    text = unicodedata.normalize("NFKC", text).replace("\u2010", "-").replace("\u2011", "-")
    return text.replace("\u0301", "")


def top_level_split(line: str) -> list[str]:
    """The pieces of a line between the commas outside brackets, whitespace collapsed."""
    pieces, depth, start = [], 0, 0
    for at, ch in enumerate(line):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            pieces.append(line[start:at])
            start = at + 1
    pieces.append(line[start:])
    return [" ".join(piece.split()) for piece in pieces if piece.strip()]


def line_pieces(line: str) -> list[str]:
    """The comma-separated pieces of a translation line, without markup, labels, a term's
    spoken abbreviation or the full stop that ends the line."""
    line = LABELS.sub("", line.strip()).rstrip(" .")
    return top_level_split(SPOKEN_ABBREVIATION.sub(" ", MARKUP.sub(" ", line)))


def words(piece: str) -> int:
    return len(BRACKETED.sub(" ", piece).split())


def entry_pieces(text: str) -> set[str]:
    """Every translation piece of one raw entry, spelled as the cleaning spells them."""
    _, lines, _ = reading(text)
    return {spelled(piece) for line in lines for piece in line_pieces(line)}


def index_key(source: str) -> str:
    """The key dictfmt files a headword under: lowercase, letters, digits and spaces."""
    return " ".join(re.sub(r"[^\w\s]|_", "", source.lower()).split())


def metadata(directory: Path, lang: str) -> str:
    """The text of the dictionary's metadata entries (00-database-info, ...)."""
    index, data_path = files(directory, lang)
    data = gzip.decompress(data_path.read_bytes())
    texts = []
    for line in index.read_text(encoding="utf-8").splitlines():
        key, offset, length = line.split("\t")
        if key.startswith("00"):
            start = number(offset)
            texts.append(data[start : start + number(length)].decode("utf-8"))
    return "\n".join(texts)


def made_from_ergane(directory: Path, lang: str) -> bool:
    return "ergane" in metadata(directory, lang).lower()


def entries_by_key(directory: Path, lang: str) -> dict[str, list[str]]:
    """{index key: the texts of the distinct entries filed under it}, metadata left out."""
    index, data_path = files(directory, lang)
    data = gzip.decompress(data_path.read_bytes())
    by_key: dict[str, dict[int, str]] = {}
    for line in index.read_text(encoding="utf-8").splitlines():
        key, offset, length = line.split("\t")
        if not key.startswith("00"):
            start = number(offset)
            by_key.setdefault(key, {})[start] = data[start : start + number(length)].decode("utf-8")
    return {key: list(texts.values()) for key, texts in by_key.items()}


def kept_by_key(lexicon: Lexicon) -> dict[str, set[str]]:
    kept: dict[str, set[str]] = {}
    for source, translations in lexicon.entries.items():
        kept.setdefault(index_key(source), set()).update(translations)
    return kept


# ---------------------------------------------------------------------------------------------
# 1. Function-word entries: the reviewed tables, not the dictionaries' idioms and rare senses


def sources_of(lexicon: Lexicon, word: str) -> dict[str, list[str]]:
    """The entries of ``word`` in lower or Title case ("US" and "IT" are abbreviations)."""
    return {form: lexicon.entries[form] for form in (word, word.capitalize()) if form in lexicon.entries}


@pytest.mark.parametrize("lang", TABLE_LANGUAGES)
def test_function_words_translate_from_the_table_only(lexicons, lang):
    dictionary = lexicons(lang)
    table = table_for(lang, "table")
    assert table, f"{lang}: no shipped table"
    replaced = replace_function_words(dictionary, table)
    wrong, different, dropped = [], 0, 0
    for word in sorted(english_function_words()):
        theirs = sources_of(dictionary, word)
        # a word the dictionary lacks (or drops, as "a": too short) stays out
        expected = {word: table[word]} if theirs and table[word] else {}
        if sources_of(replaced, word) != expected:
            wrong.append((word, sources_of(replaced, word), table[word]))
        different += bool({t for kept in theirs.values() for t in kept} - set(table[word]))
        dropped += sum(map(len, theirs.values()))
    assert not wrong, f"{lang}: {len(wrong)} function words not as the table says: {wrong[:5]}"
    assert different >= 10, f"{lang}: the dictionary's own function-word entries are hardly different"
    # a phrase of function words only ("to the", "it is") is translated word by word: it goes
    words = english_function_words()
    phrases = [
        s
        for s in dictionary.entries
        if " " in s and s in (s.casefold(), s.casefold().capitalize()) and all(w in words for w in s.casefold().split())
    ]
    assert not [s for s in phrases if s in replaced.entries]
    dropped += sum(len(dictionary.entries[s]) for s in phrases)
    assert replaced.report["dropped_function_word"] == dropped
    # other spellings ("US", "IT", "AM") are other words: left as the dictionary has them
    others = [s for s in dictionary.entries if s.casefold() in english_function_words() and s != s.capitalize()]
    others = [s for s in others if s != s.casefold()]
    assert {s: replaced.entries.get(s) for s in others} == {s: dictionary.entries[s] for s in others}


@pytest.mark.parametrize("lang", TABLE_LANGUAGES)
def test_function_words_from_the_dictionary_on_request(lexicons, lang):
    dictionary = lexicons(lang)
    kept = replace_function_words(dictionary, table_for(lang, "dictionary"))
    assert kept.entries == dictionary.entries
    assert any(sources_of(kept, word) for word in english_function_words())


def test_every_shipped_table_covers_every_function_word_and_translates_it():
    words = english_function_words()
    tables = sorted(FUNCTION_WORD_TABLES.glob("*.tsv"))
    assert {path.stem for path in tables} >= {"de", "fr", "es", "it", "pt", "nl", "ru", "ja"}
    for path in tables:
        table = load_table(path)
        assert set(table) == words, path.name
        same = [(word, t) for word, translations in table.items() for t in translations if t.casefold() == word]
        # a translation spelled as its source substitutes nothing: the cleaning drops those as "identity"
        assert not same, f"{path.name}: translations equal to their English word: {same}"


# ---------------------------------------------------------------------------------------------
# 2. Multi-word headwords filed under their first word (the dictionaries made from Ergane)

PRONUNCIATION = re.compile(r" /([^/]*)/")


def spoken(text: str) -> str | None:
    """An entry's pronunciation, without stress marks; None when it has none."""
    match = PRONUNCIATION.search(text.split("\n", 1)[0])
    return match.group(1).replace("ˈ", "").replace("ˌ", "") if match else None


def is_combining_form(text: str) -> bool:
    """An entry headed by a combining form: "water‐ /wˈɔːtə/" beside "water /wɔːtər/"."""
    head = PRONUNCIATION.split(text.split("\n", 1)[0])[0].rstrip()
    return head[-1:] in "-‐"


def longer_entries(texts: list[str]) -> list[str]:
    """The entries whose pronunciation strictly extends another's: "the /ðhəg/" (The Hague)
    beside "the /ð/"; a combining form's pronunciation is no word's."""
    said = [None if is_combining_form(text) else spoken(text) for text in texts]
    return [
        text
        for text, mine in zip(texts, said)
        if mine and any(other is not None and len(mine) > len(other) and mine.startswith(other) for other in said)
    ]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_cut_headwords_are_not_read_as_the_word(dictionaries, lexicons, lang):
    lexicon = lexicons(lang)
    if not made_from_ergane(dictionaries, lang):
        assert lexicon.report["dropped_truncated_headword"] == 0
        return
    assert lexicon.report["dropped_truncated_headword"] > 0
    kept = kept_by_key(lexicon)
    phrases, wrong, mixed = 0, [], []
    for key, texts in entries_by_key(dictionaries, lang).items():
        if len(texts) < 2:
            continue
        mine = kept.get(key, set())
        longer = longer_entries(texts)
        if longer:
            phrases += 1
            theirs = set().union(*map(entry_pieces, longer)) - set().union(
                *(entry_pieces(text) for text in texts if text not in longer)
            )
            if mine & theirs:
                wrong.append((key, sorted(mine & theirs)))
        # several entries under one key: the word and phrases cut to it, of which one is kept
        if not any(mine <= entry_pieces(text) for text in texts):
            mixed.append((key, sorted(mine)))
    assert not wrong, f"{lang}: {len(wrong)} keys keep a longer phrase's translations: {wrong[:5]}"
    assert not mixed, f"{lang}: {len(mixed)} keys keep translations of several entries: {mixed[:5]}"
    if lang in ("spa", "swe"):
        assert phrases > 100  # the class is there: "the /ð/" and "the /ðhəg/" (The Hague)


def headword(text: str) -> str:
    return " ".join(re.split(r" /| <| \(", text.split("\n", 1)[0], maxsplit=1)[0].split())


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_combining_form_does_not_hide_its_word(dictionaries, lexicons, lang):
    """Ergane files the combining form "water‐ /wˈɔːtə/" (aquatique) and the word "water
    /wɔːtər/" (eau) under one key: the form's shorter pronunciation makes it no cut phrase,
    and the word keeps its translations."""
    if not made_from_ergane(dictionaries, lang):
        return
    kept = kept_by_key(lexicons(lang))
    lost = []
    for key, texts in entries_by_key(dictionaries, lang).items():
        heads = [headword(text) for text in texts]
        if key in heads and any(head[-1:] in "-‐" and head[:-1].lower() == key for head in heads):
            pieces = set().union(*(entry_pieces(text) for text, head in zip(texts, heads) if head == key))
            translations = {piece for piece in pieces if piece.casefold() != key}  # "atlas": identity
            if translations and not kept.get(key, set()) & translations:
                lost.append((key, sorted(translations)[:4]))
    assert not lost, f"{lang}: {len(lost)} words lost beside their combining form: {lost[:5]}"


# ---------------------------------------------------------------------------------------------
# 3. Glued translations ("LaHaya", "porlaizquierda")

# A name's prefix, written so in every language: "ruisseau McDiarmid".
NAME_PREFIX = re.compile(r"\bMa?c(?=[A-Z])")


def case_step(translation: str) -> bool:
    """A lowercase letter followed by an uppercase one inside a word."""
    return any(a.islower() and b.isupper() for a, b in zip(translation, translation[1:]))


def curated_glued(lexicon: Lexicon, lang: str) -> Lexicon:
    """``lexicon`` without its glued translations, as compiler._curate drops them."""
    check = glued_check(wordfreq_language(lang))
    assert check is not None
    return drop_glued(lexicon, check)


@functools.cache
def run_of_words_test(code: str):
    """Whether a translation is a run of words, brute force: one word wordfreq does not know,
    that splits into two or more parts, each a common word of two letters or more (or a
    very common single letter inside), one of them a very common short word (``de``, ``la``,
    ``que``, ``y``). Tried over every split, not as link_fast.wordlist walks them."""
    import wordfreq

    table = wordfreq.get_frequency_dict(code)

    def zipf(word: str) -> float:
        frequency = table.get(word, 0.0)
        return math.log10(frequency * 1e9) if frequency > 0 else 0.0

    def very_common_short(part: str) -> bool:
        return len(part) <= 3 and zipf(part) >= 5.5

    def known(part: str, inside: bool) -> bool:
        return (very_common_short(part) and (len(part) > 1 or inside)) or (len(part) >= 3 and zipf(part) >= 4.0)

    def splits(word: str, start: int) -> Iterator[list[str]]:
        if start == len(word):
            yield []
        for end in range(start + 1, len(word) + 1):
            part = word[start:end]
            if known(part, inside=start > 0 and end < len(word)):
                for rest in splits(word, end):
                    yield [part, *rest]

    def is_run(translation: str) -> bool:
        word = translation.casefold()
        if not word.isalpha() or word in table:
            return False
        return any(len(parts) >= 2 and any(map(very_common_short, parts)) for parts in splits(word, 0))

    return is_run


@pytest.mark.parametrize("lang", ROMANCE)
def test_no_glued_translation_has_a_case_step(lexicons, lang):
    curated = curated_glued(lexicons(lang), lang)
    stepped = sorted({t for _, t in pairs(curated) if case_step(NAME_PREFIX.sub("", t))})
    assert not stepped, f"{lang}: {len(stepped)} translations with a case step: {stepped[:10]}"


# The runs of words the brute force still finds after the curation: runs of two short words
# ("serde", "terque", "hoydía") that link_fast.wordlist, which wants a longer word in the
# run, leaves. At most this share of a language's distinct translations (without the
# curation: eng-spa 3%, eng-por 1.4%, eng-rom 2%, eng-ita 0.3%).
RUNS_OF_WORDS_LEFT = 0.002


@pytest.mark.parametrize("lang", ROMANCE)
def test_few_runs_of_words_are_left(lexicons, lang):
    curated = curated_glued(lexicons(lang), lang)
    translations = {t for _, t in pairs(curated)}
    is_run = run_of_words_test(wordfreq_language(lang))
    runs = sorted(t for t in translations if is_run(t))
    bound = max(2, RUNS_OF_WORDS_LEFT * len(translations))  # a small dictionary may keep two
    assert len(runs) <= bound, f"{lang}: {len(runs)} runs of words: {runs[:20]}"


def test_german_compounds_are_not_glued_words(lexicons):
    lexicon = lexicons("deu")
    curated = curated_glued(lexicon, "deu")
    dropped = [(s, t) for s, kept in lexicon.entries.items() for t in kept if t not in curated.entries.get(s, ())]
    assert dropped and curated.report["dropped_glued"] == len(dropped)
    compounds = [(s, t) for s, t in dropped if not case_step(t)]
    assert not compounds, f"{len(compounds)} dropped without a case step: {compounds[:10]}"


# ---------------------------------------------------------------------------------------------
# 4. Definitions read as translations (eng-por's "Linux": "Sistema operacional ..., e que, ...")

DEFINITION_WORDS = 6  # two pieces this long, or a first one with a capital: the line is a sentence


def is_definition(pieces: list[str]) -> bool:
    long = [i for i, piece in enumerate(pieces) if words(piece) >= DEFINITION_WORDS]
    return len(long) >= 2 or (long == [0] and pieces[0][:1].isupper())


def definition_pieces(directory: Path, lang: str) -> dict[str, set[str]]:
    """{headword casefolded: the pieces of its definition lines that none of its other
    translation lines has}."""
    definitions: dict[str, set[str]] = {}
    translations: dict[str, set[str]] = {}
    for head, lines, _ in readings(directory, lang):
        for line in lines:
            pieces = line_pieces(line)
            target = definitions if is_definition(pieces) else translations
            target.setdefault(head.casefold(), set()).update(map(spelled, pieces))
    return {head: pieces - translations.get(head, set()) for head, pieces in definitions.items()}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_translation_is_a_piece_of_a_definition(dictionaries, lexicons, lang):
    definitions = definition_pieces(dictionaries, lang)
    found = [(s, t) for s, t in pairs(lexicons(lang)) if t in definitions.get(s.casefold(), ())]
    # this reading splits at every comma, the reader not inside brackets: eng-tur's bracketed
    # notes make a handful of lines long here and not there
    assert len(found) <= 10, f"{lang}: {len(found)} translations cut from definitions: {found[:10]}"


def test_eng_por_linux_keeps_nothing_of_its_definition(dictionaries, lexicons):
    definition = definition_pieces(dictionaries, "por")["linux"]
    assert {"e que", "desde então"} <= definition
    assert not set(lexicons("por").entries.get("Linux", ())) & definition


# ---------------------------------------------------------------------------------------------
# 5. Characters a writer of the language does not use


def needs_respelling(text: str) -> bool:
    return (
        not unicodedata.is_normalized("NFKC", text)
        or "\u2010" in text
        or "\u2011" in text
        or bool(CYRILLIC_STRESS.search(unicodedata.normalize("NFD", text)))
    )


@pytest.mark.parametrize("lang", LANGUAGES)
def test_words_are_spelled_as_writers_spell_them(dictionaries, lexicons, lang):
    lexicon = lexicons(lang)
    odd = sorted({text for source, t in pairs(lexicon) for text in (source, t) if needs_respelling(text)})
    assert not odd, f"{lang}: {len(odd)} sources or translations to respell: {odd[:10]}"
    # the raw lines of the headwords kept (not of "either … or", "re‐": sources dropped before)
    raw = sum(
        needs_respelling(line)
        for head, lines, _ in readings(dictionaries, lang)
        if spelled(head) in lexicon.entries
        for line in lines
    )
    if raw:
        assert lexicon.report["normalized"] > 0, f"{lang}: {raw} raw lines to respell, none counted"


@pytest.mark.parametrize(
    "lang, character",
    [("nld", "\u0133"), ("fra", "\u2010"), ("rus", "\u2010"), ("bul", "\u0301")],
    ids=["nld-ij-ligature", "fra-U+2010", "rus-U+2010", "bul-stress"],
)
def test_the_odd_characters_seen_are_respelled(dictionaries, lexicons, lang, character):
    raw = [line for _, lines, _ in readings(dictionaries, lang) for line in lines if character in line]
    assert raw, f"{lang}: no {character!r} in the raw data"
    lexicon = lexicons(lang)
    assert lexicon.report["normalized"] > 0
    assert not [t for _, t in pairs(lexicon) if character in t]


# ---------------------------------------------------------------------------------------------
# 6. Dictionary notation: slash alternatives, affix and combining forms, clitics

NOTATION = re.compile(r"[/~|]|^['’-]|['’-]$")
AFFIX_OR_CLITIC = re.compile(r"^['’-]|['’-]$")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_notation_is_kept(lexicons, lang):
    lexicon = lexicons(lang)
    translations = sorted({t for _, t in pairs(lexicon) if NOTATION.search(t)})
    sources = sorted(source for source in lexicon.entries if AFFIX_OR_CLITIC.search(source))
    assert not translations, f"{lang}: {len(translations)} translations in notation: {translations[:10]}"
    assert not sources, f"{lang}: {len(sources)} sources in notation: {sources[:10]}"


def test_every_slash_alternative_of_eng_deu_is_dropped(dictionaries, lexicons):
    slashed = {
        spelled(piece)
        for _, lines, _ in readings(dictionaries, "deu")
        for line in lines
        for piece in line_pieces(line)
        if "/" in piece
    }
    assert len(slashed) > 1000  # "ein/e einzige/r/s", "welche/r/s", "in/an/zu dem", ...
    lexicon = lexicons("deu")
    kept = slashed & {t for _, t in pairs(lexicon)}
    assert not kept, f"{len(kept)} slash alternatives kept: {sorted(kept)[:10]}"
    assert lexicon.report["dropped_notation"] > 0


# ---------------------------------------------------------------------------------------------
# 7. Homographs of another lexeme and rare senses

MODALS_AND_AUXILIARIES = ("can", "must", "may", "will", "are")


@pytest.mark.parametrize("lang", TABLE_LANGUAGES)
def test_no_homograph_of_a_modal_or_auxiliary_survives(lexicons, lang):
    """``must → Traubenmost``, ``can → lata / Klo``, ``are → Ar``: the tables replace them."""
    dictionary = lexicons(lang)
    table = table_for(lang, "table")
    replaced = replace_function_words(dictionary, table)
    homographs = 0
    for word in MODALS_AND_AUXILIARIES:
        assert word in english_function_words()
        theirs = {t for kept in sources_of(dictionary, word).values() for t in kept}
        homographs += len(theirs - set(table[word]))
        left = {t for kept in sources_of(replaced, word).values() for t in kept}
        assert left == (set(table[word]) if theirs else set()), (lang, word, sorted(left))
    assert homographs, f"{lang}: the dictionary has no other translation of the modals"


@pytest.mark.parametrize("lang", ["deu", "fra"])
def test_the_best_scored_translations_are_kept(lexicons, lang):
    """``bird → Federball, Mieze, Biene, Katz, Vogel``: the default weights keep each word's
    best scored translations, best first, not its first ones."""
    lexicon = replace_function_words(lexicons(lang), table_for(lang, "table"))
    lexicon = curated_glued(lexicon, lang)
    sense = translation_score("sense", lexicon, lang)
    assert sense is not None
    score = functools.cache(sense)
    limit = CleaningOptions().max_translations
    kept = keep_best(lexicon, score, limit)
    disordered, choices, others = [], 0, 0
    for source, translations in lexicon.entries.items():
        best = kept.entries[source]
        scores = [score(source, t) for t in best]
        cut = [score(source, t) for t in translations if t not in best]
        if scores != sorted(scores, reverse=True) or (cut and max(cut) > scores[-1]):
            disordered.append((source, best))
        if cut:
            choices += 1
            others += set(best) != set(translations[:limit])
    assert not disordered, f"{lang}: {len(disordered)} words not best first: {disordered[:5]}"
    # most words with more translations than kept keep others than their first ones
    assert others > 0.5 * choices, (lang, choices, others)


def test_sense_weights_are_the_default():
    assert inspect.signature(compile_vocab).parameters["translation_weights"].default == "sense"
    args = build_parser().parse_args(["compile", "--tokenizer", "t.json", "--dict", "de=d.txt", "-o", "v.lfv"])
    assert args.translation_weights == "sense" and args.function_words == "table"


# ---------------------------------------------------------------------------------------------
# 8. link-fast info counts each class

CLEANING_COUNTS = ("notation", "definition", "glued", "truncated_headword", "function_word", "denied")


def link_fast(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "link_fast", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_info_shows_the_cleaning_counts(dictionaries, tmp_path):
    pytest.importorskip("mistral_common")
    (tmp_path / "deny.tsv").write_text("it\tapple\tmela\n", encoding="utf-8")
    tokenizer = str(mistral_data() / TOKENIZER_FILES["tekken"])
    dicts = {"it": "ita", "pt": "por"}  # small, and between them every count is above zero
    args = [arg for lang, code in dicts.items() for arg in ("--dict", f"{lang}={files(dictionaries, code)[0]}")]
    compiled = link_fast(
        "compile", "--tokenizer", tokenizer, *args, "--deny", "deny.tsv", "-o", "v.lfv", "-q", cwd=tmp_path
    )
    assert compiled.returncode == 0, compiled.stderr
    info = link_fast("info", "v.lfv", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    reports = json.loads(link_fast("info", "--json", "v.lfv", cwd=tmp_path).stdout)["report"]["lexicons"]
    for lang in dicts:
        line = next(line for line in info.stdout.splitlines() if re.match(rf"  {lang} +dictionary:", line))
        dropped = dict(item.rsplit(" ", 1) for item in line.split("dropped: ", 1)[1].split(";")[0].split(", "))
        for reason in CLEANING_COUNTS:
            count = reports[lang][f"dropped_{reason}"]
            assert dropped.get(reason) == (f"{count:,}" if count else None), (lang, reason, count, line)
        assert f"{reports[lang]['normalized']:,} respelled (normalized)" in line, line
    for reason in CLEANING_COUNTS:
        assert any(reports[lang][f"dropped_{reason}"] for lang in dicts), reason
    assert all(reports[lang]["normalized"] > 0 for lang in dicts)
