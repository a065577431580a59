"""Behaviour a small change would otherwise alter unseen: every CLI option's default against the
documented one (and the manual's statements of them), every limit at its boundary (just under,
at, just over), and the report's numbers against the run records.

Each test here was checked by making the change it guards against by hand and seeing it fail:
the CLI's default ``--lang-scope`` as ``document``, a token id equal to the vocabulary size
accepted by the vocabulary checks, a line of exactly ``--max-line-bytes`` refused, the report
counting all documents as eligible, its language columns sorted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from test_kernel import make_vocab
from test_vocab_safety import split_file

import link_fast.text.files as files_module
from link_fast.cli import build_parser
from link_fast.errors import InputError, VocabError
from link_fast.substituter import Substituter
from link_fast.text import DEFAULT_MAX_LINE_BYTES, LongLine, TextError, iter_lines, substitute_files
from link_fast.vocab import Entry, Vocab

ROOT = Path(__file__).resolve().parent.parent

# -- CLI defaults ---------------------------------------------------------------------------------

# Each subcommand's required arguments, so that it parses with nothing else given.
REQUIRED = {
    "compile": ["--tokenizer", "T", "--dict", "de=D", "-o", "V"],
    "apply": ["IN", "--vocab", "V", "-o", "OUT", "--ratio", "0.3"],
    "text": ["IN", "--vocab", "V", "-o", "OUT", "--ratio", "0.3"],
    "validate": ["IN"],
    "info": ["V"],
    "lookup": ["V", "house"],
    "pairs": ["CORPUS", "--vocab", "V"],
    "bench": [],
    "demo": [],
    "inspect": ["OUT"],
    "report": ["OUT", "-o", "R"],
}
SAMPLING = {  # apply's and text's, as --help, README.md's option table and DESIGN §5 state them
    "portion": 1.0,
    "seed": 0,
    "languages": None,  # all the vocabulary's languages, equal weights
    "ratio_basis": "candidates",
    "lang_scope": "word",
    "stream_key": None,  # each shard's name (apply), each file's name without extensions (text)
}
# The documented default of every option that is not required, per subcommand.
DOCUMENTED = {
    "compile": {
        "cases": ("lower", "title", "upper"),
        "spacings": ("space", "bare"),
        "translation_weights": "sense",
        "function_words": "table",
        "max_translations": 3,
        "max_translation_words": 3,
        "max_source_words": 3,
        "min_source_length": 2,
        "keep_identity": False,
        "keep_digits": False,
        "keep_brackets": False,
        "keep_abbreviations": False,
        "keep_notation": False,
        "keep_glued": False,
        "no_normalize": False,
        "skip_words": [],
        "deny": [],
        "no_default_deny": False,  # the shipped deny lists apply
        "quiet": False,
    },
    "apply": {
        **SAMPLING,
        "workers": 1,
        "chunk_tokens": 4_000_000,
        "mask": False,
        "out_dtype": "auto",  # the input's
        "resume": False,
        "rank": 0,
        "world_size": 1,
        "quiet": False,
    },
    "text": {
        **SAMPLING,
        "field": "text",
        "substitutions_field": None,
        "on_error": "fail",
        "max_line_bytes": None,  # DEFAULT_MAX_LINE_BYTES, 64M (EFFECTIVE)
        "tokenizer": None,
        "workers": 1,
        "quiet": False,
    },
    "validate": {},
    "info": {"json": False},
    "lookup": {"lang": None, "phrases": 10},  # lang: all
    "pairs": {
        "ratio": 0.3,
        "portion": 1.0,
        "languages": None,
        "ratio_basis": "candidates",
        "field": "text",
        "tokenizer": None,
        "top": 50,
        "format": "table",
        "quiet": False,
    },
    "bench": {
        "tokenizer": None,  # the demo's Tekken
        "dict": None,  # the bundled demo dictionaries
        "vocab": None,
        "compare_vocab": [],
        "shard": None,  # the bundled fables, repeated to --min-tokens
        "min_tokens": 2_000_000,
        "apply_tokens": 20_000_000,
        "workers": (1, 2) if (os.cpu_count() or 1) > 1 else (1,),  # 1,2 (1 on a single core)
        "ratio": 0.3,
        "seed": 0,
        "repeat": 3,
        "json": False,
    },
    "demo": {"ratio": 0.5, "seed": 0, "color": "auto"},
    "inspect": {
        "input": None,  # as NAME.link.json records
        "vocab": None,
        "tokenizer": None,
        "substitutions_field": None,
        "doc": [],
        "random": None,
        "seed": 0,
        "grep": None,
        "limit": None,  # 3, or as many as --doc or --random name (EFFECTIVE)
        "layout": "interleaved",
        "color": "auto",
    },
    "report": {"samples": 200, "seed": 0, "input": None, "vocab": None, "tokenizer": None},  # as the records say
}
# Options whose parser default is None and whose help states the value used in its place.
EFFECTIVE = {("text", "max_line_bytes"): DEFAULT_MAX_LINE_BYTES, ("inspect", "limit"): 3}
HELP_DEFAULT = re.compile(r"\(default ([^):;]+)\)")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def optional_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not a.required and a.dest != "help"]


def test_every_subcommand_is_pinned():
    assert set(subparsers()) == set(REQUIRED) == set(DOCUMENTED)


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_default_is_the_documented_one(command):
    parser = subparsers()[command]
    parsed = vars(build_parser().parse_args([command, *REQUIRED[command]]))
    options = {a.dest for a in optional_actions(parser)}
    assert options == set(DOCUMENTED[command]), "an option without a documented default here, or one gone"
    for dest, documented in DOCUMENTED[command].items():
        assert parsed[dest] == documented and type(parsed[dest]) is type(documented), (command, dest, parsed[dest])


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_help_states_the_defaults_it_names(command):
    """Each ``(default X)`` of --help is the value the option takes when not given."""
    stated = 0
    for action in optional_actions(subparsers()[command]):
        found = HELP_DEFAULT.search(" ".join((action.help or "").split()))
        if not found:
            continue
        text = found.group(1)
        value = action.type(text) if callable(action.type) else text
        expected = EFFECTIVE.get((command, action.dest), action.default)
        if command == "bench" and action.dest == "workers":
            expected = (1, 2)  # what --help says: the default on any machine of more than one core
        assert value == expected, (command, action.dest, text)
        stated += 1
    assert stated or command in ("validate", "info")


def test_the_default_line_limit():
    assert DEFAULT_MAX_LINE_BYTES == 64 << 20  # text --help: (default 64M)


# (file, the sentence stating a default with the value in a group, subcommand, option, reading of the value)
MANUAL_DEFAULTS = [
    ("README.md", r"tokens each chunk of work holds \(default (\d+)M\)", "apply", "chunk_tokens", "million"),
    (
        "README.md",
        r"`--languages de=0\.7,fr=0\.3` \| languages in play and their weights \(default: (all), equal\)",
        "apply",
        "languages",
        None,
    ),
    ("README.md", r"the stream key (defaults) to the shard's name", "apply", "stream_key", None),
    (
        "README.md",
        r"each word keeps the (\d+) translations likeliest in its\s+usual sense",
        "compile",
        "max_translations",
        int,
    ),
    ("docs/DESIGN.md", r"or more than (\d+) words are dropped", "compile", "max_translation_words", int),
    ("docs/DESIGN.md", r"sources of at most (\d+) words", "compile", "max_source_words", int),
    ("docs/DESIGN.md", r"and at least (\d+) characters", "compile", "min_source_length", int),
    ("docs/DESIGN.md", r"each word keeps its (\d+) best translations", "compile", "max_translations", int),
    ("docs/DESIGN.md", r"by the weight mode \(`--translation-weights\s+(\w+)`", "compile", "translation_weights", str),
    ("docs/QUALITY.md", r"`--phrases N`, default (\d+)\)", "lookup", "phrases", int),
    ("docs/QUALITY.md", r"at `--ratio` \(default ([\d.]+)\)", "pairs", "ratio", float),
    ("docs/QUALITY.md", r"`--top N` shows N rows \(default\s+(\d+),", "pairs", "top", int),
]


@pytest.mark.parametrize(("name", "pattern", "command", "dest", "read"), MANUAL_DEFAULTS, ids=lambda v: str(v)[:30])
def test_the_manual_states_the_defaults_the_parser_has(name, pattern, command, dest, read):
    text = (ROOT / name).read_text(encoding="utf-8")
    found = re.search(pattern, text)
    assert found, f"{name} no longer says: {pattern}"
    documented = DOCUMENTED[command][dest]
    if read is None:  # a default that stands for something the option is not given as
        assert documented is None
    elif read == "million":
        assert int(found.group(1)) * 1_000_000 == documented
    else:
        assert read(found.group(1)) == documented


# -- limits at their boundary ---------------------------------------------------------------------


def lines_of(path: Path, limit: int) -> list:
    return [line if isinstance(line, LongLine) else len(line) for _, line in iter_lines(path, limit)]


@pytest.mark.parametrize("read_size", [1 << 20, 7], ids=["line within a read", "line across reads"])
@pytest.mark.parametrize("ending", [b"\n", b""], ids=["ended", "last, unended"])
def test_max_line_bytes_at_its_boundary(tmp_path, monkeypatch, read_size, ending):
    """A line of exactly the limit's bytes passes; one byte more is a long line."""
    monkeypatch.setattr(files_module, "READ_SIZE", read_size)
    limit = 20
    for size, passes in ((limit - 1, True), (limit, True), (limit + 1, False)):
        path = tmp_path / f"{size}.txt"
        path.write_bytes(b"a\n" + b"x" * size + ending)
        expected = [1, size] if passes else [1, LongLine(size, limit)]
        assert lines_of(path, limit) == expected, (size, read_size, ending)


def test_max_line_bytes_at_its_boundary_through_a_run(tmp_path):
    """The same through ``substitute_files``, on a line longer than one read of the file."""
    line = json.dumps({"text": "the cat " * 200_000}).encode()
    src = tmp_path / "in.jsonl"
    src.write_bytes(line + b"\n")
    vocab = make_vocab([1 | 4 | 16] * 10, {(1,): {0: [(2,)]}}, 1)
    assert len(line) > files_module.READ_SIZE
    assert substitute_files(vocab, [src], tmp_path / "at.jsonl", ratio=0.5, max_line_bytes=len(line))
    with pytest.raises(TextError, match=rf"in\.jsonl:1: line of {len(line)} bytes exceeds --max-line-bytes"):
        substitute_files(vocab, [src], tmp_path / "under.jsonl", ratio=0.5, max_line_bytes=len(line) - 1)


def tiny_vocab(translation_token: int) -> Vocab:
    flags = np.full(10, 1 | 4 | 16, dtype=np.uint8)  # a vocabulary of 10 ids: 0..9
    return Vocab.from_entries(flags, [Entry((8, 9), "the cat", {0: [((translation_token,), "die Katze")]})], ["de"])


def test_a_vocabulary_file_holds_ids_below_its_size(tmp_path):
    """The last id (size - 1) is accepted in every table; the size itself is refused on load."""
    path = tiny_vocab(9).save(tmp_path / "last.lfv")  # the key's second token, its edge, the translation: id 9
    loaded = Vocab.load(path)
    assert loaded.tables["key_tokens"].tolist() == [8, 9]
    assert loaded.tables["edge_token"].tolist() == loaded.tables["trans_tokens"].tolist() == [9]
    header, data = split_file(path)
    raw = bytearray(path.read_bytes())
    start = len(raw) - len(data) + header["arrays"]["trans_tokens"]["offset"]
    assert int(np.frombuffer(raw, dtype=np.uint32, count=1, offset=start)[0]) == 9
    raw[start : start + 4] = np.array([10], dtype=np.uint32).tobytes()
    (tmp_path / "size.lfv").write_bytes(raw)
    with pytest.raises(VocabError, match="table 'trans_tokens' has token ids outside the vocabulary of 10"):
        Vocab.load(tmp_path / "size.lfv")


def test_a_vocabulary_is_built_from_ids_below_its_size():
    flags = np.full(10, 1 | 4 | 16, dtype=np.uint8)
    Vocab.from_entries(flags, [Entry((9,), "cat", {0: [((1,), "Katze")]})], ["de"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Vocab.from_entries(flags, [Entry((10,), "cat", {0: [((1,), "Katze")]})], ["de"])


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.uint32])
def test_input_ids_below_the_vocabulary_size(dtype):
    """In ``apply`` (the kernel's check) and ``cuts`` (long documents): id size - 1 passes, size not."""
    sub = Substituter(tiny_vocab(1), ratio=1.0)
    offsets = np.array([0, 3])
    assert sub.apply(np.array([9, 8, 9], dtype=dtype), offsets).stats.documents == 1
    assert len(sub.cuts(np.array([9, 8, 9], dtype=dtype), 0, 3, every=1)) >= 1
    for call in (lambda t: sub.apply(t, offsets), lambda t: sub.cuts(t, 0, 3, every=1)):
        with pytest.raises(InputError, match="token id 10 at position 1 is outside the vocabulary of 10 ids"):
            call(np.array([9, 10, 9], dtype=dtype))


# -- the report against the records ---------------------------------------------------------------


@pytest.fixture(scope="module")
def half_eligible_run(tmp_path_factory, tekken):
    """A run at portion 0.5 (eligible < documents) with a vocabulary whose languages are not in
    alphabetical order (fr, then de), and its report."""
    from real_runs import make_run
    from test_report import Page

    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES, demo_documents
    from link_fast.report import write_report

    root = tmp_path_factory.mktemp("report_pinned")
    vocab = compile_vocab(tekken, {"fr": DEMO_LANGUAGES["fr"], "de": DEMO_LANGUAGES["de"]}).save(root / "fr-de.lfv")
    out = make_run(root, tekken, vocab, demo_documents() * 5, shards=1, mask=True, portion=0.5, ratio=0.5)
    page = write_report(out, root / "report.html", samples=10, seed=0)
    record = json.loads((out / "shard_0.link.json").read_text(encoding="utf-8"))
    return Page(page.read_text(encoding="utf-8")), record


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_report_counts_the_eligible_documents(half_eligible_run):
    page, record = half_eligible_run
    stats = record["stats"]
    assert 0 < stats["eligible_documents"] < stats["documents"] == 40
    (row,) = [row for row in page.tables["shards"] if row]
    assert number(row["eligible_documents"]) == stats["eligible_documents"]
    assert number(row["documents"]) == stats["documents"]
    for key in ("tokens_in", "tokens_out"):
        assert number(row[key]) == stats[key]
    assert number(row["substitutions"]) == stats["total_substitutions"]


def test_report_keeps_the_vocabulary_order_of_languages(half_eligible_run):
    page, record = half_eligible_run
    assert record["vocab"]["languages"] == ["fr", "de"]
    (row,) = [row for row in page.tables["shards"] if row]
    columns = [key for key in row if key.startswith("substitutions_")]
    assert columns == ["substitutions_fr", "substitutions_de"]
    for lang in ("fr", "de"):
        assert number(row[f"substitutions_{lang}"]) == record["stats"]["substitutions"][lang] > 0
    rows = [(r["language"], number(r["substitutions"])) for r in page.tables["languages"] if r]
    subs = record["stats"]["substitutions"]
    assert rows == [("fr", subs["fr"]), ("de", subs["de"]), ("all", record["stats"]["total_substitutions"])]
