"""Run records (``NAME.link.json``) are untrusted input: every reader (inspect, report, resume,
validate, apply over an earlier output) refuses a crafted one with one line naming it, status 2."""

from __future__ import annotations

import json

import pytest
from test_runner import random_vocab, write_shard

from link_fast.cli import main
from link_fast.runner import apply_shards
from link_fast.shards import load_record
from link_fast.text import substitute_files

DEEP = 100_000  # far over the recursion limit


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return random_vocab().save(tmp_path_factory.mktemp("vocab") / "v.lfv")


def _set(path: list, value):
    def change(record: dict) -> None:
        place = record
        for key in path[:-1]:
            place = place[key]
        place[path[-1]] = value

    return change


# name: (change to the parsed record, or a (marker, raw JSON) replacement in its text)
SHAPES = {
    "nan count": _set(["stats", "documents"], float("nan")),
    "infinite count": _set(["stats", "documents"], "INF"),
    "string count": _set(["stats", "documents"], "12"),
    "negative count": _set(["stats", "substitutions", "de"], -3),
    "vocab not an object": _set(["vocab"], ["de", "fr"]),
    "substitutions not an object": _set(["stats", "substitutions"], 7),
    "config a list": _set(["config"], [0.5, 1]),
    "deep nesting": _set(["config", "deep"], "DEEP"),
    "a count that is true": _set(["output_files", "a.bin"], True),
}
RAW = {'"INF"': "1e999", '"DEEP"': "[" * DEEP + "]" * DEEP}


def craft(record_path, shape: str) -> None:
    record = json.loads(record_path.read_text())
    SHAPES[shape](record)
    text = json.dumps(record)
    for marker, raw in RAW.items():
        text = text.replace(marker, raw)
    record_path.write_text(text)


@pytest.fixture
def run(tmp_path, vocab_path):
    """A finished run with a mask: in/a -> out/a, out/a_mask, out/a.link.json."""
    write_shard(tmp_path / "in" / "a", n_docs=30)
    apply_shards(vocab_path, [tmp_path / "in" / "a"], tmp_path / "out", ratio=0.5, mask=True, progress=False)
    return tmp_path


def commands(root, vocab_path) -> dict[str, list]:
    out = root / "out"
    apply = ["apply", "--vocab", vocab_path, "--ratio", "0.5", "--mask", "-q"]
    return {
        "inspect": ["inspect", out / "a", "--doc", "0"],
        "report": ["report", out, "-o", root / "report.html"],
        "resume": [*apply, "--resume", "-o", out, root / "in" / "a"],
        "validate": ["validate", out],
        "apply over an earlier output": [*apply, "-o", root / "second", out],
    }


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("reader", ["inspect", "report", "resume", "validate", "apply over an earlier output"])
def test_a_crafted_record_is_one_line_naming_it(run, vocab_path, capsys, shape, reader):
    if reader == "report":
        pytest.importorskip("matplotlib")
    record_path = run / "out" / "a.link.json"
    craft(record_path, shape)
    crafted = record_path.read_bytes()
    capsys.readouterr()
    status = main([str(a) for a in commands(run, vocab_path)[reader]])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert f"{record_path}: not a valid link-fast run record" in err[0], err
    assert record_path.read_bytes() == crafted  # resume did not write over it
    assert not (run / "second").exists() and not (run / "report.html").exists()


def test_the_problem_is_named(run):
    record_path = run / "out" / "a.link.json"
    for shape, problem in (
        ("negative count", 'stats.substitutions["de"] must be a count (an integer >= 0), not -3'),
        ("string count", 'stats.documents must be a count (an integer >= 0), not "12"'),
        ("config a list", "config must be an object, not [0.5, 1]"),
        ("infinite count", "1e999 is not a finite number"),
        ("deep nesting", "nested"),
    ):
        good = record_path.read_bytes()
        craft(record_path, shape)
        with pytest.raises(ValueError, match="not a valid link-fast run record") as error:
            load_record(record_path)
        assert problem in str(error.value)
        record_path.write_bytes(good)


def test_records_link_fast_writes_pass_the_check(run, vocab_path, tmp_path):
    assert load_record(run / "out" / "a.link.json")["mask_shard"] == "a_mask"
    source = tmp_path / "t.jsonl"
    source.write_text('{"text": "1 2 3"}\n{"text": 4}\n', encoding="utf-8")
    substitute_files(vocab_path, [source], tmp_path / "t_out.jsonl", ratio=0.5, on_error="skip", progress=False)
    assert load_record(tmp_path / "t_out.jsonl.link.json")["skipped_lines"] == 1
