"""Deny lists (link_fast/deny.py): `compile --deny FILE`, the shipped lists applied by default,
`--no-default-deny`, and malformed files refused by file and line."""

from __future__ import annotations

import importlib.resources
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import link_fast.deny as deny_module
from link_fast.cli import main
from link_fast.compiler import compile_vocab
from link_fast.deny import DENY_DIR, drop_denied, load_deny_lists, read_deny_file
from link_fast.errors import FileError
from link_fast.languages import language_code
from link_fast.lexicon import CleaningOptions, Lexicon, load_lexicon, load_stopwords
from link_fast.vocab import ARRAY_DTYPES, Vocab

pytest.importorskip("mistral_common")

DICTIONARY = (
    "cat\tKatze\ncat\tMieze\ncat\tKater\nhouse\tHaus\nhouse\tGebäude\n"
    "bank\tUfer\nBank\tBankhaus\nBank\tUfer\ndog\tHund\n"
)
SHIPPED = ("de", "fr", "es", "it", "pt", "nl", "ru", "ja")


@pytest.fixture(scope="module")
def tekken_path() -> str:
    return str(importlib.resources.files("mistral_common") / "data" / "tekken_240911.json")


@pytest.fixture(scope="module")
def tekken(tekken_path):
    from link_fast.tokenizer import load_tokenizer

    return load_tokenizer(tekken_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def translations(vocab: Vocab) -> dict[tuple[str, str], list[str]]:
    """(language, key text) -> the key's translation texts."""
    out = {}
    for key in range(vocab.n_keys):
        for l, lang in enumerate(vocab.languages):
            texts = [text for _, text in vocab.translations(key, l)]
            if texts:
                out[(lang, vocab.key_text(key))] = texts
    return out


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- the file format -----------------------------------------------------------------------------


def test_a_deny_file_matches_languages_by_code_sources_casefolded_translations_after_nfc(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Gebäude")
    path = write(
        tmp_path / "d.tsv",
        f"\ufeff# a comment\n\n  # another\nde\tHOUSE\t{decomposed}\ndeu\tcat \t Mieze\r\nfra\tthe\tau\n",
    )
    pairs = read_deny_file(path)
    assert pairs == {"de": {("house", "Gebäude"), ("cat", "Mieze")}, "fr": {("the", "au")}}
    denied = load_deny_lists([path], ["deu"], defaults=False)
    assert denied.for_language("ger") == denied.for_language("de") == frozenset(pairs["de"])
    assert denied.for_language("es") == frozenset() and denied.files == (str(path),)


@pytest.mark.parametrize(
    "content, line, problem",
    [
        (b"de\tcat\tKatze\nde cat Katze\n", 2, "expected lang<TAB>source<TAB>translation, got 1 field(s)"),
        (b"de\tcat\tKatze\tx\n", 1, "got 4 field(s)"),
        (b"# ok\nde\tcat\t\xffKatze\n", 2, "not UTF-8"),
        (b"de\t\tKatze\n", 1, "empty source field"),
        (b"\tcat\tKatze\n", 1, "empty lang field"),
        (b"de\tcat\t  \n", 1, "empty translation field"),
        (b"\n\nGerman!\tcat\tKatze\n", 3, "'German!' is not a language code"),
    ],
)
def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path, content, line, problem):
    path = tmp_path / "deny.tsv"
    path.write_bytes(content)
    with pytest.raises(FileError) as error:
        read_deny_file(path)
    assert str(error.value).startswith(f"{path}:{line}: ") and problem in str(error.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ("de\tcat\n", "deny.tsv:1: expected lang<TAB>source<TAB>translation, got 2 field(s)"),
        (b"de\tcat\t\xc3\n", "deny.tsv:1: not UTF-8"),
        ("# header\nde\tcat\t\n", "deny.tsv:2: empty translation field"),
        (None, "deny.tsv: cannot read"),
    ],
)
def test_compile_refuses_a_malformed_deny_file_in_one_line_and_writes_nothing(
    capsys, tmp_path, tekken_path, content, message
):
    write(tmp_path / "de.txt", DICTIONARY)
    if isinstance(content, str):
        write(tmp_path / "deny.tsv", content)
    elif content is not None:
        (tmp_path / "deny.tsv").write_bytes(content)
    out = tmp_path / "v.lfv"
    args = ["--tokenizer", tekken_path, "--dict", f"de={tmp_path / 'de.txt'}", "--deny", tmp_path / "deny.tsv"]
    code, _, err = cli(capsys, "compile", *args, "-o", out, "-q")
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out.exists()


# -- dropping pairs ------------------------------------------------------------------------------


def test_deny_drops_exactly_the_listed_pairs_and_counts_them(tmp_path, tekken):
    dictionary = write(tmp_path / "de.txt", DICTIONARY)
    # "bank" and "Bank" are two sources: BANK, casefolded, denies the pair in both
    deny = write(tmp_path / "deny.tsv", "de\tcat\tMieze\nde\tBANK\tUfer\nde\tdog\tKöter\nfr\tcat\tchat\n")
    denied = compile_vocab(tekken, {"deu": dictionary}, deny=[deny], default_deny=False, progress=False)
    kept = "".join(
        line + "\n" for line in DICTIONARY.splitlines() if line not in ("cat\tMieze", "bank\tUfer", "Bank\tUfer")
    )
    plain = compile_vocab(tekken, {"deu": write(tmp_path / "kept.txt", kept)}, default_deny=False, progress=False)
    for name in ARRAY_DTYPES:  # the same tables as a dictionary without those lines
        assert np.array_equal(denied.tables[name], plain.tables[name]), name
    report, plain_report = denied.meta["report"]["lexicons"]["deu"], plain.meta["report"]["lexicons"]["deu"]
    assert report["dropped_denied"] == 3 and plain_report["dropped_denied"] == 0
    assert (report["pairs_kept"], report["sources"]) == (plain_report["pairs_kept"], plain_report["sources"])
    assert report["pairs_read"] == plain_report["pairs_read"] + 3  # read, then dropped as denied
    assert denied.meta["options"]["deny"] == [str(deny)]
    assert " Mieze" not in [t for texts in translations(denied).values() for t in texts]


def test_a_denied_pair_does_not_take_a_place_of_max_translations(tmp_path, tekken):
    dictionary = write(tmp_path / "de.txt", DICTIONARY)
    deny = write(tmp_path / "deny.tsv", "de\tcat\tKatze\n")
    options = CleaningOptions(max_translations=2)
    for weights in ("uniform", "frequency"):
        vocab = compile_vocab(
            tekken,
            {"de": dictionary},
            cleaning=options,
            deny=[deny],
            default_deny=False,
            translation_weights=weights,
            progress=False,
        )
        assert sorted(translations(vocab)[("de", " cat")]) == [" Kater", " Mieze"], weights
        assert vocab.meta["report"]["lexicons"]["de"]["dropped_denied"] == 1


def test_drop_denied_leaves_a_lexicon_it_does_not_touch_as_it_is_and_refuses_to_empty_one():
    lexicon = Lexicon("de", "x.txt", {"cat": ["Katze"]}, {"pairs_kept": 1, "dropped_denied": 0})
    assert drop_denied(lexicon, frozenset({("dog", "Hund")})) is lexicon
    with pytest.raises(FileError, match=r"x.txt: no word pairs left: the deny lists drop all 1"):
        drop_denied(lexicon, frozenset({("cat", "Katze")}))


def test_info_shows_the_pairs_denied_and_the_lists(capsys, tmp_path, tekken_path, shipped):
    write(tmp_path / "de.txt", DICTIONARY)
    write(tmp_path / "deny.tsv", "de\thouse\tGebäude\n")  # and the shipped list: cat -> Mieze
    out = tmp_path / "v.lfv"
    code, _, _ = cli(
        capsys,
        "compile",
        "--tokenizer",
        tekken_path,
        "--dict",
        f"de={tmp_path / 'de.txt'}",
        "--deny",
        tmp_path / "deny.tsv",
        "-o",
        out,
        "-q",
    )
    assert code == 0
    code, info, _ = cli(capsys, "info", out)
    assert code == 0 and "dropped: denied 2" in info
    assert f"deny lists  link_fast/data/deny/de.tsv, {tmp_path / 'deny.tsv'}" in info


# -- the shipped lists ---------------------------------------------------------------------------


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A folder of shipped lists in place of link_fast/data/deny, with a German one."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    write(folder / "de.tsv", "# shipped\nde\tcat\tMieze\n")
    monkeypatch.setattr(deny_module, "DENY_DIR", folder)
    return folder


def test_the_shipped_list_of_a_language_code_is_applied_by_default(capsys, tmp_path, tekken, tekken_path, shipped):
    dictionary = write(tmp_path / "de.txt", DICTIONARY)
    for lang in ("de", "deu", "ger"):  # any name of the language
        vocab = compile_vocab(tekken, {lang: dictionary, "fr": dictionary}, progress=False)
        assert vocab.meta["report"]["lexicons"][lang]["dropped_denied"] == 1
        assert vocab.meta["report"]["lexicons"]["fr"]["dropped_denied"] == 0
        assert vocab.meta["options"]["deny"] == ["link_fast/data/deny/de.tsv"]
    vocab = compile_vocab(tekken, {"de": dictionary}, default_deny=False, progress=False)
    assert vocab.meta["report"]["lexicons"]["de"]["dropped_denied"] == 0 and vocab.meta["options"]["deny"] == []
    args = ["compile", "--tokenizer", tekken_path, "--dict", f"de={dictionary}", "-q"]
    assert cli(capsys, *args, "-o", tmp_path / "a.lfv")[0] == 0
    assert cli(capsys, *args, "--no-default-deny", "-o", tmp_path / "b.lfv")[0] == 0
    assert " Mieze" not in translations(Vocab.load(tmp_path / "a.lfv"))[("de", " cat")]
    assert " Mieze" in translations(Vocab.load(tmp_path / "b.lfv"))[("de", " cat")]


def test_a_malformed_shipped_list_is_named(tmp_path, tekken, shipped):
    write(shipped / "de.tsv", "de\tcat\n")
    with pytest.raises(FileError, match=r"de.tsv:1: expected lang<TAB>source<TAB>translation"):
        compile_vocab(tekken, {"de": write(tmp_path / "de.txt", DICTIONARY)}, progress=False)


def test_link_fast_ships_a_list_for_each_benchmark_language_and_packages_it():
    assert sorted(p.stem for p in DENY_DIR.glob("*.tsv")) == sorted(SHIPPED)
    for code in SHIPPED:
        assert language_code(code) == code
        assert all(found == code for found in read_deny_file(DENY_DIR / f"{code}.tsv"))
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11's")
    import tomllib

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["link_fast"]
    package = root / "link_fast"
    packaged = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    data = {path for path in (package / "data").rglob("*") if path.is_file()}
    assert data <= packaged, sorted(str(p.relative_to(package)) for p in data - packaged)


# -- real data -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_deny_on_freedict_eng_deu(tmp_path, freedict_dir, tekken):
    """FreeDict eng-deu with a deny list of the first translation of a few real words (words of
    at most 5 translations: all kept without the list): those pairs are gone from the compiled
    vocabulary, the other translations of the words stay."""
    index = freedict_dir / "freedict-eng-deu.index"
    whole = load_lexicon(index, "de", CleaningOptions(max_translations=0))
    stopwords = load_stopwords("en")
    chosen = [
        (source, translations[0])
        for source, translations in whole.entries.items()
        if source.isalpha() and source.islower() and source not in stopwords and 3 <= len(translations) <= 5
    ][::499][:6]
    deny = write(tmp_path / "deny.tsv", "".join(f"de\t{s}\t{t}\n" for s, t in chosen))
    # the dictionary as compile reads it (no limit on translations), read once for the test and the compile
    vocab = compile_vocab(
        tekken, {"de": whole}, cases=("lower",), spacings=("space",), deny=[deny], default_deny=False, progress=False
    )
    denied = {(s.casefold(), t) for s, t in chosen}
    dropped = sum((s.casefold(), t) in denied for s, ts in whole.entries.items() for t in ts)
    assert vocab.meta["report"]["lexicons"]["de"]["dropped_denied"] == dropped >= len(chosen)
    table = translations(vocab)
    for source, translation in chosen:
        got = table.get(("de", " " + source), [])
        assert " " + translation not in got, (source, translation)
        assert got, f"{source}: its other translations are gone too"
