"""Text mode on bad and huge input (link_fast/text/): a one-line ``path:line`` error or a
counted skip, never a traceback; ``--max-line-bytes``, checked while the line streams past;
memory a few times a long line's size; the long-document path gives the short path's bytes."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_text import PIECES, synthetic_vocab

import link_fast.text.matcher as matcher_module
import link_fast.text.records as records_module
import link_fast.text.substituter as substituter_module
from link_fast.cli import main as cli_main
from link_fast.errors import InputError
from link_fast.text import DEFAULT_MAX_LINE_BYTES, LongLine, TextError, TextSubstituter, iter_lines, substitute_files

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def vocab():
    return synthetic_vocab()


@pytest.fixture(scope="module")
def vocab_file(vocab, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "v.lfv"
    vocab.save(path)
    return path


def _cli(*args) -> tuple[int, list[str]]:
    """``python -m link_fast ARGS`` in a child process: (exit code, stderr lines)."""
    proc = subprocess.run(
        [sys.executable, "-m", "link_fast", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    return proc.returncode, proc.stderr.splitlines()


def _deep(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


# (name, the bad line, --max-line-bytes or None, the problem the error names)
BAD_LINES = [
    (
        "lone_surrogate",
        b'{"text": "a \\ud800 cat"}',
        None,
        "field 'text' holds a lone surrogate U+D800 (not valid Unicode)",
    ),
    (
        "lone_low_surrogate",
        b'{"text": "cat \\udfff"}',
        None,
        "field 'text' holds a lone surrogate U+DFFF (not valid Unicode)",
    ),
    ("nested_array", b"[" * 100_000 + b"]" * 100_000, None, "malformed JSON: nested too deeply"),
    ("nested_in_a_field", b'{"text": "cat", "x": ' + _deep(100_000) + b"}", None, "malformed JSON: nested too deeply"),
    ("not_utf8", b'{"text": "caf\xe9"}', None, "not UTF-8: invalid continuation byte at byte 13"),
    ("not_an_object", b'["text", "cat"]', None, "malformed JSON: expected a JSON object, got list"),
    ("not_a_string", b'{"text": {"cat": 1}}', None, "field 'text' is not a string"),
    ("no_field", b'{"body": "cat"}', None, "no text field 'text'"),
    ("malformed", b'{"text": "cat"', None, "malformed JSON: Expecting ',' delimiter"),
    (
        "too_long",
        b'{"text": "' + b"cat " * 300_000 + b'"}',
        "1M",
        "line of 1200012 bytes exceeds --max-line-bytes 1048576",
    ),
]


@pytest.mark.parametrize(("name", "bad", "limit", "problem"), BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_a_bad_line_is_one_line_error(vocab_file, tmp_path, name, bad, limit, problem):
    src = tmp_path / f"{name}.jsonl"
    src.write_bytes(b'{"text": "the cat"}\n' + bad + b'\n{"text": "a dog"}\n')
    out = tmp_path / "out.jsonl"
    args = ["text", "--vocab", vocab_file, "--ratio", "1", src, "-o", out]
    code, err = _cli(*args, *(["--max-line-bytes", limit] if limit else []))
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"link-fast: error: {src}:2: {problem}"), err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_on_error_skip_counts_every_bad_line(vocab_file, tmp_path):
    src = tmp_path / "bad.jsonl"
    lines = [b'{"text": "the cat"}'] + [bad for _, bad, _, _ in BAD_LINES] + [b'{"text": "a cat"}']
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    code, err = _cli(
        "text",
        "--vocab",
        vocab_file,
        "--ratio",
        "1",
        "--languages",
        "de",
        "--on-error",
        "skip",
        "--max-line-bytes",
        "1M",
        src,
        "-o",
        out,
    )
    assert code == 0, err
    assert not any("Traceback" in line for line in err)
    n_bad = len(BAD_LINES)
    assert f"{n_bad} bad lines skipped" in err[-1]  # the summary
    record = json.loads(Path(f"{out}.link.json").read_text())
    assert record["skipped_lines"] == n_bad
    assert [s["line"] for s in record["skipped"]] == list(range(2, n_bad + 2))
    for skipped, (_, _, _, problem) in zip(record["skipped"], BAD_LINES):
        assert skipped["problem"].startswith(problem)
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["the Katze", "a Katze"]
    assert record["stats"]["documents"] == 2


def test_too_long_txt_line(vocab, tmp_path):
    src = tmp_path / "plain.txt"
    src.write_text("the cat\n" + "dog " * 1000 + "\nthe cat\n", encoding="utf-8")
    with pytest.raises(TextError, match=r"plain\.txt:2: line of 4000 bytes exceeds --max-line-bytes 1000$"):
        substitute_files(vocab, [src], tmp_path / "o.txt", ratio=1.0, max_line_bytes=1000)
    result = substitute_files(
        vocab, [src], tmp_path / "o.txt", ratio=1.0, languages={"de": 1.0}, max_line_bytes=1000, on_error="skip"
    )
    assert result[str(tmp_path / "o.txt")]["skipped_lines"] == 1
    assert (tmp_path / "o.txt").read_text(encoding="utf-8") == "the Katze\nthe Katze\n"
    # 0: no limit
    substitute_files(vocab, [src], tmp_path / "all.txt", ratio=1.0, max_line_bytes=0)
    assert len((tmp_path / "all.txt").read_text(encoding="utf-8").splitlines()) == 3


def test_max_line_bytes_option(vocab_file, tmp_path, capsys):
    assert DEFAULT_MAX_LINE_BYTES == 64 << 20
    from link_fast.cli import build_parser

    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["text"].format_help().split())
    assert "--max-line-bytes N" in help_text and "(default 64M)" in help_text
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "the cat"}\n')
    base = ["text", "--vocab", str(vocab_file), "--ratio", "1", str(src), "-o", str(tmp_path / "o.jsonl")]
    assert cli_main(base + ["--max-line-bytes", "19"]) == 0  # 19 bytes: within the limit
    assert cli_main(base + ["--max-line-bytes", "18"]) == 2
    assert "in.jsonl:1: line of 19 bytes exceeds --max-line-bytes 18" in capsys.readouterr().err
    assert cli_main(base + ["--max-line-bytes", "1k"]) == 0
    with pytest.raises(SystemExit):
        cli_main(base + ["--max-line-bytes", "-1"])
    assert "expected a number of bytes" in capsys.readouterr().err
    with pytest.raises(InputError, match="max_line_bytes must be a non-negative integer"):
        substitute_files(vocab_file, [src], tmp_path / "x.jsonl", ratio=1.0, max_line_bytes=-1)


def test_surrogates_elsewhere_are_kept_escaped(vocab, tmp_path):
    """A lone surrogate outside the text field (another value, a key) is the record's own
    business: written back escaped, as it came, the line still rewritten."""
    src = tmp_path / "s.jsonl"
    src.write_bytes(b'{"text": "the cat", "note": "a\\ud800b"}\n{"k\\udc00": 1, "text": "a cat"}\n')
    out = tmp_path / "o.jsonl"
    substitute_files(vocab, [src], out, ratio=1.0, languages={"de": 1.0})
    lines = out.read_bytes().splitlines()
    assert lines[0] == b'{"text": "the Katze", "note": "a\\ud800b"}'
    assert lines[1] == b'{"k\\udc00": 1, "text": "a Katze"}'


BIG = "9" * 5000  # over Python's 4,300-digit limit for int(str)
PASSED_THROUGH = [
    # (input line, output line): every byte but the text field's value (and the substitutions')
    (
        b'{"id": 1e999999, "text": "the cat", "n": ' + BIG.encode() + b', "f": 1.50, "e": "\\u00e9"}',
        b'{"id": 1e999999, "text": "the Katze", "n": ' + BIG.encode() + b', "f": 1.50, "e": "\\u00e9"}',
    ),
    (b'{"a":1,"a":2 , "text":"a cat"}', b'{"a":1,"a":2 , "text":"a Katze"}'),  # repeated keys, spacing
    (b' {"text": "cat", "text": "the cat"} ', b' {"text": "cat", "text": "the Katze"} '),  # the last is the field
    (b'{"text": "the cat", "meta": {"x": [1e400, -0.0]}}', b'{"text": "the Katze", "meta": {"x": [1e400, -0.0]}}'),
]


@pytest.mark.parametrize(("line", "want"), PASSED_THROUGH, ids=["numbers", "repeated_keys", "repeated_field", "nested"])
def test_other_fields_pass_through_byte_for_byte(vocab, tmp_path, line, want):
    src = tmp_path / "in.jsonl"
    src.write_bytes(line + b"\n")
    out = tmp_path / "out.jsonl"
    record = substitute_files(vocab, [src], out, ratio=1.0, languages={"de": 1.0}, on_error="skip")[str(out)]
    assert record["skipped_lines"] == 0
    assert out.read_bytes() == want + b"\n"


SUBS = b'[{"start": 4, "end": 9, "source": "cat", "translation": "Katze", "language": "de"}]'


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (b'{"text": "the cat", "n": 1e999999}', b'{"text": "the Katze", "n": 1e999999, "link": ' + SUBS + b"}"),
        (b'{"link": 0, "text": "the cat" }', b'{"link": ' + SUBS + b', "text": "the Katze" }'),
        (b'{"text": "the cat","link":{"old": 1},"z":2}', b'{"text": "the Katze","link":' + SUBS + b',"z":2}'),
    ],
    ids=["added", "replaced_before", "replaced_compact"],
)
def test_the_substitutions_field_is_added_or_replaced_in_place(vocab, tmp_path, line, want):
    src = tmp_path / "in.jsonl"
    src.write_bytes(line + b"\n")
    out = tmp_path / "out.jsonl"
    substitute_files(vocab, [src], out, ratio=1.0, languages={"de": 1.0}, substitutions_field="link")
    assert out.read_bytes() == want + b"\n"


# -- the reader ---------------------------------------------------------------------------------


def _compress(data: bytes, suffix: str) -> bytes:
    if suffix.endswith(".gz"):
        return gzip.compress(data)
    if suffix.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz", ".txt.zst"])
def test_iter_lines_across_chunks_and_over_the_limit(tmp_path, suffix):
    limit = (1 << 20) + 100  # lines above and below it span the reader's 1 MiB chunks
    rng = random.Random(3)
    sizes = [0, 5, limit - 1, limit, limit + 1, 3 << 20, 2, (1 << 20) - 1, 1 << 20, 7]
    lines = [bytes(rng.choice(b"abc ") for _ in range(size)) for size in sizes]
    lines[2] = lines[2][:-1] + b"\r"  # \r\n: the \r goes, and counted in the size
    data = b"\n".join(lines)  # the last line without a line break
    path = tmp_path / f"f{suffix}"
    path.write_bytes(_compress(data, suffix))
    got = list(iter_lines(path, limit))
    want = [
        (i + 1, LongLine(len(line), limit) if len(line) > limit else line.removesuffix(b"\r"))
        for i, line in enumerate(lines)
    ]
    assert [n for n, _ in got] == [n for n, _ in want]
    for (n, g), (_, w) in zip(got, want):
        assert g == w, n
    assert list(iter_lines(path)) == [(i + 1, line.removesuffix(b"\r")) for i, line in enumerate(lines)]


def test_iter_lines_holds_no_more_than_the_limit(tmp_path):
    """A 40 MB line over a 1 MiB limit is counted as it streams past, never held."""
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.write(b"short\n")
        for _ in range(40):
            f.write(b"word " * 200_000)
        f.write(b"\nafter\n")
    tracemalloc.start()
    try:
        got = [(n, line if isinstance(line, LongLine) else bytes(line)) for n, line in iter_lines(path, 1 << 20)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [(1, b"short"), (2, LongLine(40_000_000, 1 << 20)), (3, b"after")]
    assert peak < 6 << 20, peak  # the 1 MiB chunk, its split, the part of a line held: not 40 MB


# -- long documents ------------------------------------------------------------------------------


def _small_windows(monkeypatch):
    """Every long-document path on short texts: windows, settling, blocks, output pieces."""
    monkeypatch.setattr(records_module, "LONG_TEXT", 1)
    monkeypatch.setattr(matcher_module, "AUTOMATON_WINDOW", 4)
    monkeypatch.setattr(matcher_module, "SETTLE_AT", 1)
    monkeypatch.setattr(substituter_module, "CANDIDATE_BLOCK", 2)
    monkeypatch.setattr(substituter_module, "EMIT_CHARS", 3)


TEXTS = st.lists(st.sampled_from(PIECES + ["😀", "\u2028"]), max_size=60).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXTS, st.integers(0, 50), st.sampled_from(["candidates", "words"]), st.sampled_from(["word", "document"]))
def test_long_document_path_equals_the_short_one(vocab, monkeypatch, text, doc, basis, scope):
    options = dict(ratio=0.6, seed=doc, ratio_basis=basis, lang_scope=scope)
    want = TextSubstituter(vocab, **options).apply(text, doc)
    with monkeypatch.context() as m:
        _small_windows(m)
        sub = TextSubstituter(vocab, **options)
        got = sub.apply(text, doc)
        assert sub.matches(text) == TextSubstituter(vocab, **options).matches(text)
    assert got.text == want.text
    assert [s.to_dict() for s in got.substitutions] == [s.to_dict() for s in want.substitutions]
    assert got.stats.to_dict() == want.stats.to_dict()


@pytest.mark.parametrize("subs_field", [None, "link"])
def test_long_records_written_as_the_short_ones(vocab, tmp_path, monkeypatch, subs_field):
    rng = random.Random(5)
    records = [
        {"id": 1, "text": 'the dog and the cat " \\ \n\t\u0001 é 😀 cat', "meta": {"a": [1, 2.5, None, True]}},
        {"text": "nothing here", "z": 1e300, "é": "ü"},
        {"pre": "\u2028", "text": "".join(rng.choice(PIECES) for _ in range(400)), "link": "old"},
        {"text": ""},
        {"note": "a\ud800b", "text": "dog dog"},  # written escaped, the whole line
        {"x": 1, "text": "cat " * 50, "y": float("nan")},
    ]
    src = tmp_path / "r.jsonl"
    src.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    txt = tmp_path / "r.txt"
    txt.write_text("".join(r["text"].replace("\n", " ") + "\n" for r in records), encoding="utf-8")
    outputs = []
    for small in (False, True):
        with monkeypatch.context() as m:
            if small:
                _small_windows(m)
            out = tmp_path / f"o{small}"
            substitute_files(vocab, [src], out / "r.jsonl", ratio=0.5, seed=4, substitutions_field=subs_field)
            substitute_files(vocab, [txt], out / "r.txt", ratio=0.5, seed=4)
            outputs.append(
                [(out / name).read_bytes() for name in ("r.jsonl", "r.txt")]
                + [json.loads((out / f"{name}.link.json").read_text())["stats"] for name in ("r.jsonl", "r.txt")]
            )
    assert outputs[0] == outputs[1]


MEMORY_SCRIPT = textwrap.dedent("""
    import json, random, sys, time, tracemalloc
    sys.path.insert(0, sys.argv[1])
    from test_text import PIECES, synthetic_vocab
    from link_fast.text import substitute_files

    src, out, size = sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = random.Random(0)
    pieces = [p for p in PIECES if p != "\\n"] + ["cat ", "dog "] * 3
    parts, n = [], 0
    while n < size:
        parts.append(rng.choice(pieces))
        n += len(parts[-1].encode())
    text = "".join(parts)
    del parts
    with open(src, "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": 1, "text": text}, ensure_ascii=False) + "\\n" if src.endswith(".jsonl")
                else text + "\\n")
    del text
    vocab = synthetic_vocab()
    tracemalloc.start()
    started = time.perf_counter()
    result = substitute_files(vocab, [src], out, ratio=0.3)
    seconds = time.perf_counter() - started
    record = result[out]
    print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "seconds": seconds,
                      "candidates": record["stats"]["candidates"]}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_a_long_line_takes_memory_in_proportion(tmp_path, capsys, suffix):
    """One 5 MB document: the peak of memory Python allocates while the file is rewritten stays
    under 10x the line (it was 50-60x: a tuple, a Substitution and a list slot per match)."""
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT)
    src, out = tmp_path / f"long{suffix}", tmp_path / f"out{suffix}"
    proc = subprocess.run(
        [sys.executable, str(script), str(TESTS), str(src), str(out), str(5_000_000)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout.splitlines()[-1])
    size = src.stat().st_size
    with capsys.disabled():
        print(
            f"\none {size / 1e6:.1f} MB {suffix} line, {measured['candidates']:,} candidates: peak "
            f"{measured['peak'] / 1e6:.1f} MB traced ({measured['peak'] / size:.1f}x the line), "
            f"{measured['seconds']:.1f} s under tracemalloc"
        )
    assert measured["peak"] < 10 * size
    assert out.stat().st_size > size * 0.9
