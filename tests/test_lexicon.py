"""Tests of link_fast.lexicon: MUSE-style pair files, FreeDict dictd databases, cleaning.

The real FreeDict dictionaries are GPL and never committed: the tests that read them find
them through the `freedict_dir` fixture of conftest.py (skipped only when not fetched).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from link_fast.cli import main as cli_main
from link_fast.errors import DictionaryError
from link_fast.lexicon import (
    DROP_REASONS,
    FREEDICT_LANGUAGES,
    CleaningOptions,
    Lexicon,
    load_lexicon,
    load_stopwords,
    resolve_dictionary,
)

NO_LIMITS = CleaningOptions(
    drop_identity=False,
    max_translation_words=0,
    drop_digits=False,
    drop_brackets=False,
    drop_abbreviations=False,
    max_translations=0,
    min_source_length=0,
    max_source_words=0,
    max_entry_chars=0,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def pair_drops(lexicon: Lexicon) -> int:
    return sum(lexicon.report[f"dropped_{reason}"] for reason in DROP_REASONS)


def assert_balanced(lexicon: Lexicon) -> None:
    report = lexicon.report
    assert report["pairs_read"] == report["pairs_kept"] + pair_drops(lexicon)
    assert report["pairs_kept"] == sum(len(t) for t in lexicon.entries.values())
    assert report["sources"] == len(lexicon.entries)
    assert report["phrases"] == sum(1 for s in lexicon.entries if " " in s)


# ---------------------------------------------------------------------------------------------
# MUSE-style pairs


def test_tab_and_space_separated(tmp_path):
    path = write(tmp_path / "en-fr.txt", "cat\tchat\ndog chien\nice cream\tglace\nhouse   maison\n")
    lexicon = load_lexicon(path, "fr")
    assert lexicon.lang == "fr"
    assert lexicon.path == str(path)
    assert lexicon.entries == {"cat": ["chat"], "dog": ["chien"], "ice cream": ["glace"], "house": ["maison"]}
    assert lexicon.report["lines"] == 4
    assert lexicon.report["phrases"] == 1
    assert_balanced(lexicon)


def test_space_separated_source_is_one_word(tmp_path):
    lexicon = load_lexicon(write(tmp_path / "d.txt", "black cat chat noir\n"), "fr")
    assert lexicon.entries == {"black": ["cat chat noir"]}


def test_several_lines_per_source_merge_in_file_order(tmp_path):
    path = write(tmp_path / "d.txt", "cat\tchat\ndog\tchien\ncat\tmatou\ncat\tchat\ncat\tminet\n")
    lexicon = load_lexicon(path, "fr")
    assert lexicon.entries["cat"] == ["chat", "matou", "minet"]
    assert list(lexicon.entries) == ["cat", "dog"]
    assert lexicon.report["dropped_duplicate"] == 1
    assert_balanced(lexicon)


def test_whitespace_is_collapsed(tmp_path):
    lexicon = load_lexicon(write(tmp_path / "d.txt", "  ice   cream \t  crème   glacée \r\n"), "fr")
    assert lexicon.entries == {"ice cream": ["crème glacée"]}


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(1, ["a1"]), (2, ["a1", "a2"]), (5, ["a1", "a2", "a3", "a4", "a5"]), (0, [f"a{i}" for i in range(1, 8)])],
)
def test_max_translations(tmp_path, limit, expected):
    text = "".join(f"word\ta{i}\n" for i in range(1, 8))
    options = replace(NO_LIMITS, max_translations=limit)
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "xx", options)
    assert lexicon.entries == {"word": expected}
    assert lexicon.report["dropped_max_translations"] == 7 - len(expected)
    assert_balanced(lexicon)


# (line, options that enable only the filter under test, reason)
FILTER_CASES = [
    ("cat\tCAT", {"drop_identity": True}, "identity"),
    ("Straße\tSTRASSE", {"drop_identity": True}, "identity"),  # casefolded: ß == ss
    ("cat\tKatze2", {"drop_digits": True}, "digits"),
    ("square\tomega²-Test", {"drop_digits": True}, "digits"),
    ("cat\t(die) Katze", {"drop_brackets": True}, "brackets"),
    ("cat\tKatze [zool]", {"drop_brackets": True}, "brackets"),
    ("cat\tKatze <fem>", {"drop_brackets": True}, "brackets"),
    ("cat\tetw. Katze", {"drop_abbreviations": True}, "abbreviations"),
    ("cat\tz.B.", {"drop_abbreviations": True}, "abbreviations"),
    ("abdominal\tBauch…", {"drop_abbreviations": True}, "abbreviations"),
    ("cat\tdie kleine Hauskatze", {"max_translation_words": 2}, "translation_words"),
    ("cat.\tKatze", {}, "source_chars"),
    ("cat3\tKatze", {}, "source_chars"),
    ("c@t\tKatze", {}, "source_chars"),
    ("c_t\tKatze", {}, "source_chars"),
    ("a\tein", {"min_source_length": 2}, "source_length"),
    ("ice cream cone\tEistüte", {"max_source_words": 2}, "source_words"),
    ("The\tder", {"skip_words": frozenset({"the"})}, "skip_word"),
    ("the\tder", {"skip_words": frozenset({"THE"})}, "skip_word"),
    ("cat\t" + "K" * 201, {"max_entry_chars": 200}, "too_long"),
    ("c" * 201 + "\tKatze", {"max_entry_chars": 200}, "too_long"),
    ("cat\tKat\x00ze", {}, "control_chars"),
    ("c\x00at\tKatze", {}, "control_chars"),
    ("cat\tKatze\x1b[0m", {}, "control_chars"),
    ("cat\tKat\x9fze", {}, "control_chars"),  # C1
    ("cat\t\u202eeztaK", {}, "control_chars"),  # RIGHT-TO-LEFT OVERRIDE
    ("cat\tKatze\u2066", {}, "control_chars"),  # LEFT-TO-RIGHT ISOLATE
    ("cat\t\u200fKatze", {}, "control_chars"),  # RIGHT-TO-LEFT MARK
    ("ca\u061ct\tKatze", {}, "control_chars"),  # ARABIC LETTER MARK, in the source
    ("cat\t—", {}, "no_letters"),
    ("cat\t-!?", {}, "no_letters"),
    ("cat\t\u0301", {}, "no_letters"),  # a lone combining mark
    ("--\tStrich", {}, "no_letters"),
    ("'\tApostroph", {}, "no_letters"),
]
# Checks that no option turns off.
ALWAYS_ON = ("source_chars", "control_chars", "no_letters")


@pytest.mark.parametrize(("line", "enable", "reason"), FILTER_CASES)
def test_each_filter_drops_and_counts(tmp_path, line, enable, reason):
    text = f"{line}\nkeep\tbehalten\n"
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "de", replace(NO_LIMITS, **enable))
    assert lexicon.entries == {"keep": ["behalten"]}
    assert lexicon.report[f"dropped_{reason}"] == 1
    assert pair_drops(lexicon) == 1
    # With every filter off the same pair is kept (but for the checks always on).
    if reason not in ALWAYS_ON:
        assert len(load_lexicon(tmp_path / "d.txt", "de", NO_LIMITS).entries) == 2


def test_garbage_entries_are_dropped_with_default_options(tmp_path):
    """A source word of a million letters, punctuation-only entries, NUL and bidirectional
    controls: dropped and counted, whatever else the dictionary holds."""
    text = (
        "w" * 1_000_000 + "\tWort\n"
        "cat\t" + "K" * 300 + "\n"
        "--\tStrich\n"
        "dash\t—\n"
        "cat\tKat\x00ze\n"
        "evil\tb\u202eöse\n"
        "keep\tbehalten\n"
        "cat\tKatze\n"
    )
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "de")
    assert lexicon.entries == {"keep": ["behalten"], "cat": ["Katze"]}
    report = lexicon.report
    assert (report["dropped_too_long"], report["dropped_no_letters"], report["dropped_control_chars"]) == (2, 2, 2)
    assert_balanced(lexicon)


def test_compile_report_counts_the_new_reasons(tmp_path):
    """``link-fast compile`` drops them, ``link-fast info --json`` shows the counts."""
    pytest.importorskip("mistral_common")
    tekken = resources.files("mistral_common") / "data" / "tekken_240911.json"
    dictionary = write(
        tmp_path / "de.txt",
        "x" * 1_000_000 + "\tWort\n'\tApostroph\ncat\tKatze\x00\ncat\tKatze\nhouse\tHaus\u200e\nhouse\tHaus\n",
    )
    out = tmp_path / "v.lfv"
    assert cli_main(["compile", "--tokenizer", str(tekken), "--dict", f"de={dictionary}", "-o", str(out), "-q"]) == 0
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cli_main(["info", "--json", str(out)]) == 0
    report = json.loads(printed.getvalue())["report"]["lexicons"]["de"]
    assert (report["dropped_too_long"], report["dropped_no_letters"], report["dropped_control_chars"]) == (1, 1, 2)
    assert report["pairs_kept"] == 2


def test_limits_of_zero(tmp_path):
    text = "a\tein\nvery long source phrase here\tsehr lange Quelle hier und mehr\n"
    options = replace(NO_LIMITS, min_source_length=0, max_source_words=0, max_translation_words=0)
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "de", options)
    assert lexicon.entries == {"a": ["ein"], "very long source phrase here": ["sehr lange Quelle hier und mehr"]}


def test_filters_off_by_option(tmp_path):
    text = "cat\tCat\ncat\tKatze 2\ncat\t(die) Katze\ncat\tetw.\ncat\tdie kleine graue Hauskatze\n"
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "de", NO_LIMITS)
    assert lexicon.entries["cat"] == ["Cat", "Katze 2", "(die) Katze", "etw.", "die kleine graue Hauskatze"]


def test_source_characters_allowed(tmp_path):
    text = "don't\tnicht\ndon’t\tnicht\nwell-known\tbekannt\nnaïve\tnaiv\nnaı̈ve\tnaiv\nice cream\tEis\n"
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "de", NO_LIMITS)
    assert list(lexicon.entries) == ["don't", "don’t", "well-known", "naïve", "naı̈ve", "ice cream"]


def test_default_options(tmp_path):
    options = CleaningOptions()
    assert options.drop_identity and options.drop_digits and options.drop_brackets and options.drop_abbreviations
    assert (options.max_translation_words, options.max_translations) == (3, 3)
    assert options.drop_notation and options.normalize and options.drop_glued
    assert (options.min_source_length, options.max_source_words) == (2, 3)
    assert options.max_entry_chars == 200
    assert options.skip_words == frozenset()


def test_report_keys(tmp_path):
    lexicon = load_lexicon(write(tmp_path / "d.txt", "cat\tchat\n"), "fr")
    expected = ["lines", "pairs_read", "pairs_kept", "sources", "phrases", "normalized"]
    expected += [f"dropped_{reason}" for reason in DROP_REASONS]
    expected += ["dropped_headword_mismatch", "dropped_truncated_headword"]
    assert list(lexicon.report) == expected
    assert all(isinstance(v, int) for v in lexicon.report.values())


def test_bundled_stopwords():
    words = load_stopwords()
    assert load_stopwords("en") == words
    assert isinstance(words, frozenset)
    assert 100 <= len(words) <= 400
    assert {"the", "a", "an", "and", "of", "to", "is", "was", "he", "she", "it", "with"} <= words
    assert all(w == w.casefold() and w.strip() == w and w for w in words)
    assert not {"cat", "house", "water", "run"} & words


def test_stopwords_as_skip_words(tmp_path):
    text = "the\tder\nThe\tdie\nof\tvon\ncat\tKatze\nand\tund\n"
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "de", CleaningOptions(skip_words=load_stopwords()))
    assert lexicon.entries == {"cat": ["Katze"]}
    assert lexicon.report["dropped_skip_word"] == 4


def test_stopwords_from_file(tmp_path):
    path = write(tmp_path / "stop.txt", "# my list\nFoo\n\n  bar  # trailing comment\n#baz\n")
    assert load_stopwords(str(path)) == frozenset({"foo", "bar"})
    with pytest.raises(DictionaryError, match="no such file"):
        load_stopwords(str(tmp_path / "missing.txt"))


def test_blank_and_comment_lines_are_skipped(tmp_path):
    text = "\ufeff# a comment\n\n   \ncat\tchat\n  # indented comment\n\ndog\tchien"
    lexicon = load_lexicon(write(tmp_path / "d.txt", text), "fr")
    assert lexicon.entries == {"cat": ["chat"], "dog": ["chien"]}
    assert lexicon.report["lines"] == 7
    assert lexicon.report["pairs_read"] == 2


def compress(path: Path, suffix: str) -> Path:
    data = path.read_bytes()
    target = path.with_name(path.name + suffix)
    if suffix == ".gz":
        target.write_bytes(gzip.compress(data))
    else:
        target.write_bytes(zstandard.ZstdCompressor().compress(data))
    return target


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_round_trip(tmp_path, suffix):
    text = "".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}\tmot{i % 7}\n" for i in range(5000))
    text = "# header\n" + text.replace("0", "o").replace("1", "l") + "ice cream\tglace\n"
    plain = write(tmp_path / "d.txt", text)
    expected = load_lexicon(plain, "fr")
    packed = load_lexicon(compress(plain, suffix), "fr")
    assert packed.entries == expected.entries
    assert packed.report == expected.report
    assert "ice cream" in packed.entries


def test_multi_frame_zst(tmp_path):
    compressor = zstandard.ZstdCompressor()
    path = tmp_path / "d.txt.zst"
    path.write_bytes(compressor.compress(b"cat\tchat\n") + compressor.compress(b"dog\tchien\n"))
    assert load_lexicon(path, "fr").entries == {"cat": ["chat"], "dog": ["chien"]}


@pytest.mark.parametrize("bad", ["cat", "cat\t", "\tchat", "cat\t   "])
def test_malformed_line_names_file_and_line(tmp_path, bad):
    path = write(tmp_path / "d.txt", f"# comment\ndog\tchien\n{bad}\nbird\toiseau\n")
    with pytest.raises(DictionaryError) as info:
        load_lexicon(path, "fr")
    message = str(info.value)
    assert message.startswith(f"{path}:3: line has no translation: ")
    assert repr(bad.strip()) in message
    assert info.value.line == 3


def test_malformed_line_quote_is_shortened(tmp_path):
    path = write(tmp_path / "d.txt", "x" * 500 + "\n")
    with pytest.raises(DictionaryError, match=r":1: line has no translation: 'x+…'") as info:
        load_lexicon(path, "fr")
    assert len(str(info.value)) < 200


def test_invalid_utf8_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"cat\tchat\ndog\tch\xffien\n")
    with pytest.raises(DictionaryError, match=r"d\.txt:2: line is not valid UTF-8"):
        load_lexicon(path, "fr")


def test_empty_after_cleaning(tmp_path):
    path = write(tmp_path / "d.txt", "cat\tcat\ndog\tchien2\n")
    with pytest.raises(DictionaryError, match=r"no usable word pairs \(2 read; dropped: identity 1, digits 1\)"):
        load_lexicon(path, "fr")


def test_empty_file(tmp_path):
    with pytest.raises(DictionaryError, match=r"no usable word pairs \(0 read; dropped: none\)"):
        load_lexicon(write(tmp_path / "d.txt", "# nothing\n\n"), "fr")


def test_missing_file(tmp_path):
    with pytest.raises(DictionaryError, match=r"missing\.txt: no such file"):
        load_lexicon(tmp_path / "missing.txt", "fr")
    with pytest.raises(DictionaryError, match="directory"):
        load_lexicon(tmp_path, "fr")


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_compressed_file(tmp_path, suffix):
    text = "".join(f"word\tmot{i}\n" for i in range(20000))
    packed = compress(write(tmp_path / "d.txt", text), suffix)
    data = packed.read_bytes()
    packed.write_bytes(data[: len(data) // 2])
    with pytest.raises(DictionaryError, match=rf"d\.txt\{suffix}: (corrupt or )?truncated"):
        load_lexicon(packed, "fr")


def test_garbage_zst(tmp_path):
    path = tmp_path / "d.txt.zst"
    path.write_bytes(b"this is not zstd data at all")
    with pytest.raises(DictionaryError, match=r"d\.txt\.zst: corrupt zstd data"):
        load_lexicon(path, "fr")


words = st.text(alphabet="abcdefgh", min_size=2, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=40), st.integers(min_value=0, max_value=4))
def test_pairs_match_reference(tmp_path_factory, pairs, limit):
    path = tmp_path_factory.mktemp("prop") / "d.txt"
    write(path, "".join(f"{s}\t{t}\n" for s, t in pairs))
    options = replace(NO_LIMITS, drop_identity=True, max_translations=limit)
    expected: dict[str, list[str]] = {}
    for source, translation in pairs:
        kept = expected.get(source, [])
        if translation == source or translation in kept or (limit and len(kept) >= limit):
            continue
        expected[source] = kept + [translation]
    if not expected:
        with pytest.raises(DictionaryError, match="no usable word pairs"):
            load_lexicon(path, "xx", options)
        return
    lexicon = load_lexicon(path, "xx", options)
    assert lexicon.entries == expected
    assert lexicon.report["pairs_read"] == len(pairs)
    assert_balanced(lexicon)


# ---------------------------------------------------------------------------------------------
# FreeDict dictd databases, synthetic

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 64)
        digits = B64[digit] + digits
        if number == 0:
            return digits


def make_dictd(directory: Path, name: str, entries: list[tuple[list[str], str]], compressed: bool = True) -> Path:
    """Write NAME.index and NAME.dict.dz (or NAME.dict): each entry text filed under its keys.

    The index is sorted by key like dictfmt's, so an entry's keys scatter across it.
    """
    data = b""
    index = []
    for keys, text in entries:
        raw = text.encode("utf-8")
        for key in keys:
            index.append((key, len(data), len(raw)))
        data += raw
    index.sort(key=lambda row: row[0])  # stable: one key's entries stay in file order
    lines = "".join(f"{key}\t{b64(offset)}\t{b64(length)}\n" for key, offset, length in index)
    (directory / f"{name}.index").write_text(lines, encoding="utf-8")
    if compressed:
        (directory / f"{name}.dict.dz").write_bytes(gzip.compress(data))
    else:
        (directory / f"{name}.dict").write_bytes(data)
    return directory / f"{name}.index"


SYNTHETIC = [
    (["00databaseshort"], "00databaseshort\nEnglish - German test dictionary\n"),
    (["00-database-info"], "00-database-info\nInfo\n"),
    (["00databaseurl"], "https://example.org/\n"),
    (
        ["cat"],
        'cat /kˈat/\nKatze <fem> [zool.]\n      "long-hair cat"  - Langhaarkatze\n'
        "   Synonym: {feline}\n\n see: {cats}, {domestic cat}\n\n",
    ),
    (
        ["cat", "computed axial tomography"],
        "computed axial tomography /kəmpjˈuːtɪd ˈaksɪəl təmˈɒɡɹəfi/ (CAT /kˈat/)\n"
        "Schichtröntgen <neut>, Computertomografie <fem> [med.] CT,  /sˌiːtˈiː/\n",
    ),
    (["house"], "house /hˈaʊs/\nGeschlecht <neut>, Familie <fem>\n"),
    (
        ["house"],
        'house /hˈaʊs/\nHaus <neut>\n      "stay in the house (alone)"  - (allein) im Haus bleiben\n see: {houses}\n\n',
    ),
    (["ice cream"], "ice cream /ˈaɪs kɹˈiːm/\nEis <neut>, Speiseeis <neut>, Glace <fem> [Schw.]  [cook.]\n"),
    (["echo"], "echo /ekou/\n1. écho, répercussion\n2. résonner\n"),
    (["rub off on"], "rub off on /ɹˈʌb ˈɒf ɒn/\nauf etw. abfärben <v, intr>, (allein) im Haus, abfärben\n"),
    ([" and co"], "… and co. /and kˈəʊ/\n… und Konsorten\n   Synonym: {… and his gang}\n\n"),
    (["bobs your uncle"], "Bob's your uncle /bˈɒbz jɔː ˈʌŋkəl/\n [Br.]  [coll.] fertig\n"),
    (["abbreviation"], "abbreviation /ɐbɹˌiːvɪˈeɪʃən/ (abbr. /ˈabə/)\nAbkürzung <fem>Abk.,  /ˈabk/\n"),
    (["edit"], "edit /ˈɛdɪt/ <v>\naufbereiten <v, trans>, redigieren\n   Synonym: {work up}\n"),
    (["us"], "US (United States)\nUSA, Vereinigte Staaten <pl>\n"),
    (["easter"], "Easter <noun>\nOstern\n"),
    (["feline"], "feline /fˈiːlaɪn/\n   Synonym: {cat}\n\n"),
    (["lots"], "lots /lˈɒts/\n1. viele, eine Menge\n   Note: informal\n2. Lose <pl>\n"),
]
SYNTHETIC_INDEX_LINES = sum(len(keys) for keys, _ in SYNTHETIC)


@pytest.fixture
def synthetic(tmp_path) -> Path:
    return make_dictd(tmp_path, "freedict-eng-deu", SYNTHETIC)


def test_dictd_entries(synthetic):
    lexicon = load_lexicon(synthetic, "de")
    assert lexicon.entries == {
        "cat": ["Katze"],
        "computed axial tomography": ["Schichtröntgen", "Computertomografie"],
        "house": ["Geschlecht", "Familie", "Haus"],
        "ice cream": ["Eis", "Speiseeis", "Glace"],
        "echo": ["écho", "répercussion", "résonner"],
        "rub off on": ["abfärben"],
        "Bob's your uncle": ["fertig"],
        "abbreviation": ["Abkürzung"],
        "edit": ["aufbereiten", "redigieren"],
        "US": ["USA", "Vereinigte Staaten"],
        "Easter": ["Ostern"],
        # sense 2 comes after a note line: a numbered sense is read wherever it is
        "lots": ["viele", "eine Menge", "Lose"],
    }
    assert lexicon.path == str(synthetic)
    assert_balanced(lexicon)


def test_dictd_headword_mismatch_is_skipped(synthetic):
    lexicon = load_lexicon(synthetic, "de")
    assert "Schichtröntgen" not in lexicon.entries["cat"]
    assert lexicon.report["dropped_headword_mismatch"] == 1


def test_dictd_metadata_is_skipped(synthetic):
    lexicon = load_lexicon(synthetic, "de", NO_LIMITS)
    assert not any(source.startswith("00") for source in lexicon.entries)
    # Only the "… and co." entry has a bad source; "00databaseshort" would be a second one.
    assert lexicon.report["dropped_source_chars"] == 1
    assert lexicon.report["lines"] == SYNTHETIC_INDEX_LINES


def test_dictd_report(synthetic):
    report = load_lexicon(synthetic, "de").report
    assert report["dropped_abbreviations"] == 1  # auf etw. abfärben
    assert report["dropped_brackets"] == 1  # (allein) im Haus
    assert report["dropped_source_chars"] == 1  # … and co.
    assert report["phrases"] == 4


@pytest.mark.parametrize("name", ["freedict-eng-deu.index", "freedict-eng-deu.dict.dz", "freedict-eng-deu"])
def test_dictd_path_forms(synthetic, name):
    lexicon = load_lexicon(synthetic.parent / name, "de")
    assert lexicon.entries["cat"] == ["Katze"]
    assert lexicon.path == str(synthetic)


def test_dictd_uncompressed(tmp_path):
    index = make_dictd(tmp_path, "d", SYNTHETIC, compressed=False)
    assert load_lexicon(tmp_path / "d.dict", "de").entries == load_lexicon(index, "de").entries
    assert load_lexicon(tmp_path / "d", "de").entries["cat"] == ["Katze"]


def test_dictd_large_offsets(tmp_path):
    # Offsets of several base64 digits, and an entry filed under one key many times.
    filler = "".join(f"word{i} /x/\nWort\n" for i in range(3000))
    entries = [(["filler"], filler)] + [(["zebra", "zebra"], "zebra /zˈɛbɹə/\nSteppenzebra <neut>\n")]
    index = make_dictd(tmp_path, "d", entries)
    lexicon = load_lexicon(index, "de")
    assert lexicon.entries == {"zebra": ["Steppenzebra"]}
    assert lexicon.report["pairs_read"] == 1
    assert lexicon.report["dropped_headword_mismatch"] == 1  # "filler" files "word0 ..."


def test_dictd_missing_data(tmp_path):
    index = make_dictd(tmp_path, "d", SYNTHETIC)
    (tmp_path / "d.dict.dz").unlink()
    with pytest.raises(DictionaryError, match=r"d\.dict\.dz: no such file"):
        load_lexicon(index, "de")


def test_dictd_missing_index(tmp_path):
    make_dictd(tmp_path, "d", SYNTHETIC)
    (tmp_path / "d.index").unlink()
    with pytest.raises(DictionaryError, match=r"d\.index: no such file"):
        load_lexicon(tmp_path / "d.dict.dz", "de")


def test_dictd_bad_index_line(tmp_path):
    index = make_dictd(tmp_path, "d", SYNTHETIC)
    lines = index.read_text(encoding="utf-8").splitlines()
    lines.insert(4, "broken line without tabs")
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DictionaryError, match=r"d\.index:5: not an index line"):
        load_lexicon(index, "de")


def test_dictd_offset_past_end(tmp_path):
    index = make_dictd(tmp_path, "d", SYNTHETIC)
    with index.open("a", encoding="utf-8") as f:
        f.write(f"zzz\t{b64(10**6)}\t{b64(10)}\n")
    with pytest.raises(
        DictionaryError, match=rf"d\.index:{SYNTHETIC_INDEX_LINES + 1}: entry at offset 1000000\+10 lies past the end"
    ):
        load_lexicon(index, "de")


def test_dictd_truncated_data(tmp_path):
    index = make_dictd(tmp_path, "d", SYNTHETIC)
    data = (tmp_path / "d.dict.dz").read_bytes()
    (tmp_path / "d.dict.dz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DictionaryError, match=r"d\.dict\.dz: corrupt or truncated"):
        load_lexicon(index, "de")


def test_dictd_invalid_utf8_entry(tmp_path):
    index = make_dictd(tmp_path, "d", [(["cat"], "cat /kˈat/\nKatze\n")])
    data = gzip.decompress((tmp_path / "d.dict.dz").read_bytes()).replace(b"Katze", b"K\xfftze")
    (tmp_path / "d.dict.dz").write_bytes(gzip.compress(data))
    with pytest.raises(DictionaryError, match=r"d\.dict\.dz: entry at offset 0 is not valid UTF-8"):
        load_lexicon(index, "de")


def test_dictd_nothing_usable(tmp_path):
    index = make_dictd(tmp_path, "d", [(["cat"], "cat /kˈat/\nKatze2\n")])
    with pytest.raises(DictionaryError, match=r"d\.index: no usable word pairs \(1 read; dropped: digits 1\)"):
        load_lexicon(index, "de")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(words, min_size=1, max_size=3), words, st.lists(words, min_size=1, max_size=4)),
        min_size=1,
        max_size=30,
    )
)
def test_dictd_matches_reference(tmp_path_factory, raw_entries):
    """Random entries, each filed under its headword and some other keys."""
    entries = []
    expected: dict[str, list[str]] = {}
    for other_keys, headword, translations in raw_entries:
        keys = sorted({headword, *other_keys})
        entries.append((keys, f"{headword} /x/\n{', '.join(translations)} <n>\n see: {{{headword}s}}\n\n"))
    # The reference walks the index as make_dictd sorts it.
    index_order = sorted(
        ((key, position) for position, (keys, _) in enumerate(entries) for key in keys), key=lambda row: row[0]
    )
    used = set()
    for key, position in index_order:
        headword, translations = raw_entries[position][1], raw_entries[position][2]
        if key != headword or position in used:
            continue
        used.add(position)
        kept = expected.setdefault(headword, [])
        kept.extend(t for t in dict.fromkeys(translations) if t != headword and t not in kept)
    expected = {source: kept for source, kept in expected.items() if kept}
    index = make_dictd(tmp_path_factory.mktemp("dictd"), "d", entries)
    options = replace(NO_LIMITS, drop_identity=True)
    if not expected:
        with pytest.raises(DictionaryError, match="no usable word pairs"):
            load_lexicon(index, "xx", options)
        return
    lexicon = load_lexicon(index, "xx", options)
    assert lexicon.entries == expected
    assert_balanced(lexicon)


# The body layouts of the other FreeDict dictionaries, one entry each, as they write them.
LAYOUTS = [
    # eng-ell, eng-swh: a blank line between the headword and the translation
    (["battle"], "battle /bˈatəl/\n\nμάχη\n\n", {"battle": ["μάχη"]}),
    (["coin"], "coin /kˈɔɪn/ <n>\n\nsarafu\n\n", {"coin": ["sarafu"]}),
    # WikDict (eng-fin, -bul, -ind, -jpn, -nor): //pron// (several), an English gloss per sense
    (
        ["cinnamon"],
        "cinnamon //ˈsɪ.mɪn// //ˈsɪn.ə.mən// <adj>\n1. kanelinruskea\ncolor\n2. kaneli, kanelinmakuinen\nflavor\n",
        {"cinnamon": ["kanelinruskea", "kaneli", "kanelinmakuinen"]},
    ),
    (
        ["waffle"],
        "waffle //ˈwɑfəl// //ˈwɒfl// <n>\nгофрета\nflat pastry pressed with a grid pattern\n",
        {"waffle": ["гофрета"]},
    ),
    (
        ["button"],
        "button //ˈbʌ.tən// /[ˈbʌʔ.tən]/ <n>\n1. tombol, knop\nmechanical device\n",
        {"button": ["tombol", "knop"]},
    ),
    # WikDict: a "2." ends a translation line, senses without a translation (" 3.")
    (["banana"], "banana //bəˈnænə// <n>\npisang 2.\nfruit\n 3.\nplant\n", {"banana": ["pisang"]}),
    (
        ["able"],
        "able //ə.bl̩// <suffix>\n1. tava 2.\nable to be done\n 3.\ndue to be\n2. kelpoinen, tava\nfit to be\n",
        {"able": ["tava", "kelpoinen"]},
    ),
    # a date keeps its number (and is then dropped for its digits)
    (["flag day"], "flag day /flˈaɡ dˈeɪ/\njúnius 14.\n", {}),
    # eng-lit: numbered senses after "See also:" and blank lines
    (
        ["ease"],
        "ease /iːz/\n1. ramybė\n   See also: {rest}\n\n2. lengvumas, laisvumas\n",
        {"ease": ["ramybė", "lengvumas", "laisvumas"]},
    ),
    # eng-hin: a quoted example after each sense
    (
        ["creek"],
        'creek /kɹˈiːk/ <N>\n1. सँकरी\n      "The creek dried up."\n2. निवेशिका\n',
        {"creek": ["सँकरी", "निवेशिका"]},
    ),
    # eng-pol: senses grouped by part of speech under Roman numerals
    (
        ["inferior"],
        "inferior /ɪnˈfɪərɪə/\nI.  <Adj>  gorszy\nII.  <N> 1.  podwładny\n 2.  osoba o niższym statusie\n",
        {"inferior": ["gorszy", "podwładny"]},  # the third has four words
    ),
    (["laser"], "laser /ˈleɪzə/\nI.  <N>  laser\n", {"laser": ["laser"]}),
    (["Ivy"], "Ivy /ˈaɪvi/\nIvy, Efeu\n", {"Ivy": ["Ivy", "Efeu"]}),
    # eng-tur: a domain label in parentheses, a full stop ending the line
    (
        ["spikelet"],
        "spikelet /spˈaɪklɪt/\n1. (bot.) başakçık.\n2. füme balık.\n",
        {"spikelet": ["başakçık", "füme balık"]},
    ),
    # eng-ces: no pronunciation at all
    (["gryphon"], "gryphon\ngryf\n", {"gryphon": ["gryf"]}),
]


@pytest.mark.parametrize(("keys", "text", "expected"), LAYOUTS, ids=[keys[0] for keys, _, _ in LAYOUTS])
def test_dictd_layouts(tmp_path, keys, text, expected):
    index = make_dictd(
        tmp_path, "d", [(["00databaseshort"], "00databaseshort\nd\n"), (keys, text), (["x"], "x /x/\niks\n")]
    )
    options = replace(CleaningOptions(), drop_identity=False, max_translations=0, min_source_length=1)
    lexicon = load_lexicon(index, "xx", options)
    entries = {source: kept for source, kept in lexicon.entries.items() if source != "x"}
    assert entries == expected
    assert lexicon.report["dropped_headword_mismatch"] == 0


def test_dictd_gloss_lines_are_never_translations(tmp_path):
    text = "potency /pˈəʊtənsi/ <n>\n1. kyky, potenssi\nability\n2. valta\npower\n3. voima\nstrength\n"
    lexicon = load_lexicon(make_dictd(tmp_path, "d", [(["potency"], text)]), "fi", NO_LIMITS)
    assert lexicon.entries == {"potency": ["kyky", "potenssi", "valta", "voima"]}


# ---------------------------------------------------------------------------------------------
# FreeDict dictionaries by name


def test_freedict_name_resolves_in_the_env_dir(tmp_path, monkeypatch):
    make_dictd(tmp_path, "freedict-eng-deu", SYNTHETIC)
    monkeypatch.setenv("LINK_FAST_FREEDICT_DIR", str(tmp_path))
    assert resolve_dictionary("freedict:deu") == tmp_path / "freedict-eng-deu.index"
    lexicon = load_lexicon("freedict:deu", "de")
    assert lexicon.entries["cat"] == ["Katze"]
    assert lexicon.path == str(tmp_path / "freedict-eng-deu.index")
    # a path is a path, even one that looks like a name elsewhere
    assert resolve_dictionary(tmp_path / "x.txt") == tmp_path / "x.txt"


def test_freedict_name_not_installed_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LINK_FAST_FREEDICT_DIR", str(tmp_path))
    monkeypatch.setattr("link_fast.lexicon.FREEDICT_SYSTEM_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(
        DictionaryError, match=r"^freedict:swh: not installed .*: sudo apt-get install dict-freedict-eng-swh$"
    ):
        load_lexicon("freedict:swh", "sw")
    with pytest.raises(DictionaryError, match=r"^freedict:xyz: no FreeDict English->xyz dictionary .*known: afr ara"):
        load_lexicon("freedict:xyz", "xx")
    with pytest.raises(DictionaryError, match=r"^freedict:German: not a FreeDict name"):
        load_lexicon("freedict:German", "de")


def test_freedict_names_cover_the_fetched_dictionaries():
    assert len(FREEDICT_LANGUAGES) == 30 and "deu" in FREEDICT_LANGUAGES


def test_cli_freedict_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LINK_FAST_FREEDICT_DIR", str(tmp_path))
    monkeypatch.setattr("link_fast.lexicon.FREEDICT_SYSTEM_DIR", str(tmp_path / "nowhere"))
    pytest.importorskip("mistral_common")
    tekken = resources.files("mistral_common") / "data" / "tekken_240911.json"
    out = tmp_path / "v.lfv"
    code = cli_main(["compile", "--tokenizer", str(tekken), "--dict", "de=freedict:deu", "-o", str(out), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "sudo apt-get install dict-freedict-eng-deu" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_compile_vocab_takes_a_freedict_name(tmp_path, monkeypatch):
    pytest.importorskip("mistral_common")
    from link_fast import compile_vocab

    tekken = resources.files("mistral_common") / "data" / "tekken_240911.json"
    make_dictd(tmp_path, "freedict-eng-deu", SYNTHETIC)
    monkeypatch.setenv("LINK_FAST_FREEDICT_DIR", str(tmp_path))
    vocab = compile_vocab(str(tekken), {"de": "freedict:deu"})
    assert vocab.meta["options"]["dictionaries"] == {"de": str(tmp_path / "freedict-eng-deu.index")}
    assert vocab.meta["report"]["lexicons"]["de"]["sources"] == len(load_lexicon(tmp_path / "freedict-eng-deu", "de"))


def test_info_prints_how_each_dictionary_was_read(tmp_path):
    pytest.importorskip("mistral_common")
    tekken = resources.files("mistral_common") / "data" / "tekken_240911.json"
    make_dictd(tmp_path, "freedict-eng-deu", SYNTHETIC)
    out = tmp_path / "v.lfv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINK_FAST_FREEDICT_DIR", str(tmp_path))
        # the dictionary as read: no function-word table in between
        compile_args = ["--dict", "de=freedict:deu", "--function-words", "dictionary", "-o", str(out), "-q"]
        assert cli_main(["compile", "--tokenizer", str(tekken), *compile_args]) == 0
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cli_main(["info", str(out)]) == 0
    expected = load_lexicon(tmp_path / "freedict-eng-deu.index", "de").report
    line = next(line for line in printed.getvalue().splitlines() if "dictionary:" in line)
    assert (
        f"{expected['sources']:,} sources, {expected['pairs_kept']:,} of {expected['pairs_read']:,} translations kept"
        in line
    )
    assert f"headword_mismatch {expected['dropped_headword_mismatch']:,}" in line


# ---------------------------------------------------------------------------------------------
# FreeDict dictd databases, real (Debian's dict-freedict-eng-deu and -fra)


@pytest.fixture(scope="module")
def eng_deu(freedict_dir) -> Lexicon:
    return load_lexicon(freedict_dir / "freedict-eng-deu.index", "de")


@pytest.fixture(scope="module")
def eng_fra(freedict_dir) -> Lexicon:
    return load_lexicon(freedict_dir / "freedict-eng-fra.index", "fr")


def test_real_eng_deu(eng_deu):
    entries = eng_deu.entries
    assert len(entries) > 100_000
    assert "Katze" in entries["cat"]
    assert "Haus" in entries["house"]
    assert "Eis" in entries["ice cream"]
    assert "Schichtröntgen" not in entries["cat"]
    assert eng_deu.report["dropped_headword_mismatch"] > 0
    assert eng_deu.report["phrases"] > 10_000
    assert_balanced(eng_deu)


def test_real_eng_deu_is_clean(eng_deu):
    options = CleaningOptions()
    for source, translations in eng_deu.entries.items():
        assert 1 <= len(translations) <= options.max_translations
        assert len(set(translations)) == len(translations)
        for translation in translations:
            assert translation == translation.strip() and "  " not in translation
            assert not any(ch in translation for ch in "()[]{}<>.…0123456789²"), (source, translation)
            assert len(translation.split()) <= options.max_translation_words


def test_real_eng_fra(eng_fra):
    entries = eng_fra.entries
    assert len(entries) > 5_000
    assert "quelques" in entries["a few"]
    assert entries["echo"][:2] == ["écho", "répercussion"]
    assert_balanced(eng_fra)
