"""English function words: translated from the reviewed tables, not the dictionaries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from link_fast.errors import DictionaryError
from link_fast.function_words import english_function_words, load_table, replace_function_words, table_for
from link_fast.lexicon import Lexicon

SHIPPED = ("de", "fr", "es", "it", "pt", "nl", "ru", "ja")


@pytest.fixture(scope="module")
def tekken_path() -> str:
    from importlib import resources

    return str(resources.files("mistral_common") / "data" / "tekken_240911.json")


def test_english_list_has_the_word_classes_the_tables_cover() -> None:
    words = english_function_words()
    assert len(words) >= 100
    assert {"the", "a", "of", "to", "and", "you", "can", "must", "will", "although"} <= words


@pytest.mark.parametrize("code", SHIPPED)
def test_every_shipped_table_is_complete_and_never_translates_a_word_to_itself(code) -> None:
    table = table_for(code, "table")
    assert table is not None and set(table) == english_function_words()
    for word, translations in table.items():
        assert word not in {t.casefold() for t in translations}
        assert len(translations) <= 3  # never cut by --max-translations


def test_table_replaces_the_dictionary_entries_of_the_words_it_has() -> None:
    lexicon = Lexicon("de", "d", {"the": ["zum"], "must": ["Most"], "that": ["dass"], "US": ["USA"], "cat": ["Katze"]})
    replaced = replace_function_words(lexicon, table_for("deu", "table"))
    assert replaced.entries["the"] == ["der", "die", "das"]
    assert replaced.entries["must"] == ["muss"]
    assert "that" not in replaced.entries  # '-': never substituted
    assert replaced.entries["US"] == ["USA"]  # an abbreviation, not the pronoun
    assert replaced.entries["cat"] == ["Katze"]
    assert "and" not in replaced.entries  # a word the dictionary lacks stays out
    assert replaced.report["dropped_function_word"] == 3 and replaced.report["function_word_pairs"] == 4
    assert {"the", "must"} <= replaced.no_upper


def test_modes() -> None:
    lexicon = Lexicon("xx", "d", {"the": ["zum"], "cat": ["Katze"]})
    assert replace_function_words(lexicon, table_for("xx", "dictionary")) is lexicon
    assert replace_function_words(lexicon, table_for("xx", "skip")).entries == {"cat": ["Katze"]}
    # a language without a shipped table: function words are not substituted
    assert replace_function_words(lexicon, table_for("xx", "table")).entries == {"cat": ["Katze"]}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("the", "expected 'word<TAB>translations'"),
        ("the\t", "expected 'word<TAB>translations'"),
        ("cat\tKatze", "'cat' is not one of the English function words"),
        ("the\tder||das", "an empty or unprintable translation"),
        ("the\tder\x1b[2J", "an empty or unprintable translation"),
    ],
)
def test_a_bad_table_line_is_one_error_naming_file_and_line(tmp_path, line, problem) -> None:
    path = tmp_path / "t.tsv"
    path.write_text(f"# comment\n{line}\n", encoding="utf-8")
    with pytest.raises(DictionaryError, match=problem) as info:
        load_table(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_an_incomplete_table_is_refused(tmp_path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("the\tder\n", encoding="utf-8")
    with pytest.raises(DictionaryError, match="no row for"):
        load_table(path)


def test_no_all_capital_form_is_compiled_for_a_table_word(tmp_path, tekken) -> None:
    from link_fast.compiler import compile_vocab

    pairs = tmp_path / "en-de.txt"
    pairs.write_text("it\tes\ncat\tKatze\n", encoding="utf-8")
    vocab = compile_vocab(tekken, {"de": pairs}, progress=False)
    keys = {vocab.key_text(k).strip() for k in range(vocab.n_keys)}
    assert {"it", "It", "cat", "Cat", "CAT"} <= keys and "IT" not in keys


def test_cli_takes_a_table_file_and_refuses_a_bad_one_with_exit_2(tmp_path, tekken_path) -> None:
    pairs = tmp_path / "en-de.txt"
    pairs.write_text("the\tzum\ncat\tKatze\n", encoding="utf-8")
    table = tmp_path / "table.tsv"
    table.write_text("".join(f"{word}\t-\n" for word in sorted(english_function_words())), encoding="utf-8")
    command = [sys.executable, "-m", "link_fast.cli", "compile", "--tokenizer", tekken_path, "--dict", f"de={pairs}"]
    ok = subprocess.run([*command, "--function-words", str(table), "-o", str(tmp_path / "v.lfv")], capture_output=True)
    assert ok.returncode == 0, ok.stderr
    table.write_text("the\tder\n", encoding="utf-8")
    bad = subprocess.run(
        [*command, "--function-words", str(table), "-o", str(tmp_path / "w.lfv")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no row for" in bad.stderr
    assert not (tmp_path / "w.lfv").exists()
