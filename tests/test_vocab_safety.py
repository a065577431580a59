"""A compiled vocabulary is untrusted input: ``Vocab.load`` checks every invariant the kernel
relies on, so a damaged or crafted file is one ``VocabError`` line, never a crash.

The mutation test damages every table and header field of a real compiled vocabulary (the demo
dictionaries for Mistral's Tekken: small, so each run is quick) in structured ways, and runs
``link-fast info``, ``apply`` and ``text`` on each: never a signal, a hang or a traceback.
The runs are batched into a few child processes that call the CLI's ``main`` in turn, so that
hundreds of them take seconds; a child that dies names the run it was in.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from test_kernel import make_vocab, worlds

from link_fast.errors import VocabError
from link_fast.vocab import _ALIGN, _PREFIX, ARRAY_DTYPES, FORMAT_VERSION, HEADER_FIELDS, Entry, Vocab

CHILD_TIMEOUT_S = 240  # a child still running after this has hung
# Tables where any change breaks an invariant: the trie's numbering, the masks, the key lengths.
STRUCTURAL = {
    "root_child",
    "node_key",
    "node_edge_start",
    "node_edge_count",
    "edge_node",
    "key_lang_mask",
    "key_offsets",
}
# Damage no table survives: an entry far out of range, negative, or every bit set.
ALWAYS_CAUGHT = {"middle_max", "middle_negative", "all_bits"}
# Except in the weights: a huge last weight of a key's translations is a weight like any other.
WEIGHTS = {"key_trans_cum"}


# -- material ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def material(tmp_path_factory, tekken):
    """The demo vocabulary compiled for Tekken, the demo fables as a Megatron shard and as JSONL."""
    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES, demo_documents
    from link_fast.shards import ShardWriter

    pytest.importorskip("ahocorasick")  # text mode's
    root = tmp_path_factory.mktemp("vocab_safety")
    vocab_path = compile_vocab(tekken, DEMO_LANGUAGES).save(root / "demo.lfv")
    documents = demo_documents()
    encoded = [np.asarray(tekken.encode(d), dtype=np.int32) for d in documents]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    with ShardWriter(root / "fables", np.int32) as writer:
        writer.write(np.concatenate(encoded), offsets)
    text = root / "fables.jsonl"
    text.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents), encoding="utf-8")
    return {"root": root, "vocab": vocab_path, "shard": root / "fables", "text": text}


def split_file(path: Path) -> tuple[dict, bytes]:
    """(header, the arrays' bytes) of a saved vocabulary."""
    raw = path.read_bytes()
    _, _, _, header_length = _PREFIX.unpack_from(raw, 0)
    header = json.loads(raw[_PREFIX.size : _PREFIX.size + header_length])
    data_start = -(-(_PREFIX.size + header_length) // _ALIGN) * _ALIGN
    return header, raw[data_start:]


def join_file(
    header_bytes: bytes, data: bytes, version: int = 2, reserved: int = 0, length: int | None = None
) -> bytes:
    """A vocabulary file from raw header bytes and the arrays' bytes (offsets relative to them)."""
    length = len(header_bytes) if length is None else length
    prefix = _PREFIX.pack(b"LINKFAST", version, reserved, length) + header_bytes
    return prefix + b"\0" * (-len(prefix) % _ALIGN) + data


# -- mutations --------------------------------------------------------------------------------


def _set(index, value):
    def mutate(a):
        a[index if index >= 0 else len(a) + index] = np.array(value).astype(a.dtype)
        return a

    return mutate


def _swap_middle(a):
    m = len(a) // 2
    a[m], a[m + 1] = a[m + 1].copy(), a[m].copy()
    return a


def _middle_plus(step):
    def mutate(a):
        a[len(a) // 2 : len(a) // 2 + 1] += np.array([step]).astype(a.dtype)  # wraps around, as in C
        return a

    return mutate


def table_mutations(a: np.ndarray) -> dict:
    """label -> damaged copy of table ``a``: past the end, negative, reversed, shuffled, all bits..."""
    info = np.iinfo(a.dtype)
    m = len(a) // 2
    mutations = {
        "first_past_end": _set(0, len(a)),
        "middle_past_end": _set(m, len(a)),
        "last_past_end": _set(-1, len(a) + 1),
        "middle_max": _set(m, info.max),
        "middle_negative": _set(m, -1 if info.min < 0 else info.max),  # an unsigned -1 is its max
        "middle_min": _set(m, info.min),
        "last_min": _set(-1, info.min),
        "middle_plus_one": _middle_plus(1),
        "middle_minus_one": _middle_plus(-1 if info.min < 0 else info.max),  # wraps around
        "swap_middle": _swap_middle,
        "reversed": lambda a: a[::-1].copy(),
        "shuffled": lambda a: np.random.default_rng(0).permutation(a),
        "all_bits": lambda a: np.full_like(a, -1 if info.min < 0 else info.max),
        "zeros": np.zeros_like,
    }
    out = {}
    for label, mutate in mutations.items():
        damaged = mutate(a.copy()) if len(a) >= 2 else None
        if damaged is not None and not np.array_equal(damaged, a):  # a mutation that changes nothing is skipped
            out[label] = damaged
    return out


def table_files(material) -> list[tuple[str, Path, bool]]:
    """(label, damaged file, whether the validator must refuse it) for every table mutation."""
    header, data = split_file(material["vocab"])
    raw = material["vocab"].read_bytes()
    data_start = len(raw) - len(data)
    out = []
    for name, dtype in ARRAY_DTYPES.items():
        entry = header["arrays"][name]
        start = data_start + entry["offset"]
        table = np.frombuffer(raw, dtype=dtype, count=entry["count"], offset=start)
        for label, damaged in table_mutations(table).items():
            path = material["root"] / "tables" / f"{name}.{label}.lfv"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(raw[:start] + damaged.tobytes() + raw[start + damaged.nbytes :])
            refuse = name in STRUCTURAL or (label in ALWAYS_CAUGHT and name not in WEIGHTS)
            out.append((f"{name}.{label}", path, refuse))
    return out


def header_mutations(header: dict) -> dict:
    """label -> (damaged header as JSON-ready value or raw bytes, whether it must be refused)."""

    def edit(path: str, value=None, delete=False):
        h = json.loads(json.dumps(header))
        *parents, last = path.split(".")
        node = h
        for key in parents:
            node = node[key]
        if delete:
            del node[last]
        else:
            node[last] = value
        return h

    out = {
        "not_json": b"{not json",
        "not_utf8": b'{"a": "\xff"}',
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "list": [],
        "string": "x",
        "null": None,
    }
    for field in HEADER_FIELDS:
        out[f"{field}.deleted"] = edit(field, delete=True)
        for label, value in (
            ("null", None),
            ("string", "x"),
            ("list", []),
            ("object", {}),
            ("float", 1.5),
            ("true", True),
            ("negative", -1),
            ("huge", 2**70),
        ):
            out[f"{field}.{label}"] = edit(field, value)
    V = header["vocab_size"]
    for label, value in (("zero", 0), ("smaller", V - 1), ("larger", V + 1), ("float", float(V)), ("string", str(V))):
        out[f"vocab_size.{label}"] = edit("vocab_size", value)
    for label, value in (("old", 1), ("new", 3), ("string", "2"), ("float", 2.0)):
        out[f"format_version.{label}"] = edit("format_version", value)
    languages = header["languages"]
    for label, value in (
        ("empty", []),
        ("one", languages[:1]),
        ("three", languages + ["es"]),
        ("twice", [languages[0]] * 2),
        ("number", [languages[0], 3]),
        ("blank", [languages[0], ""]),
        ("many", [f"l{i}" for i in range(33)]),
    ):
        out[f"languages.{label}"] = edit("languages", value)
    for field in ("name", "kind", "fingerprint"):
        out[f"tokenizer.{field}.number"] = edit(f"tokenizer.{field}", 5)
    lang = languages[0]
    out["report.languages.list"] = edit("report.languages", [])
    out["report.languages.unknown"] = edit("report.languages", {"xx": header["report"]["languages"][lang]})
    out["report.languages.lang.empty"] = edit(f"report.languages.{lang}", {})
    out["report.languages.lang.list"] = edit(f"report.languages.{lang}", [])
    out["report.languages.lang.sources.string"] = edit(f"report.languages.{lang}.sources", "x")
    out["report.languages.lang.keys.deleted"] = edit(f"report.languages.{lang}.keys", delete=True)
    for count in header["counts"]:
        out[f"counts.{count}.plus_one"] = edit(f"counts.{count}", header["counts"][count] + 1)
    arrays = header["arrays"]
    out["arrays.swapped"] = edit("arrays.key_offsets", arrays["key_text_offsets"])
    out["arrays.table.deleted"] = edit("arrays.trans_offsets", delete=True)
    out["arrays.table.number"] = edit("arrays.trans_offsets", 5)
    for field, values in (("offset", (-_ALIGN, 1, 2**62, 1.0, "0", None)), ("count", (-1, 2**62, 1.5, None, 0, 1))):
        for value in values:
            out[f"arrays.trans_offsets.{field}.{value}"] = edit(f"arrays.trans_offsets.{field}", value)
        out[f"arrays.node_key.{field}.plus"] = edit(f"arrays.node_key.{field}", arrays["node_key"][field] + _ALIGN)
    may_pass = {"options.object", "tokenizer.object", "report.object"}  # empty, as from_tables writes them
    return {label: (value, label not in may_pass) for label, value in out.items()}


def header_files(material) -> list[tuple[str, Path, bool]]:
    """(label, damaged file, must be refused) for every header mutation and damaged prefix."""
    header, data = split_file(material["vocab"])
    folder = material["root"] / "header"
    folder.mkdir(exist_ok=True)
    files = {}
    for label, (value, refuse) in header_mutations(header).items():
        raw = value if isinstance(value, bytes) else json.dumps(value).encode("utf-8")
        files[label] = (join_file(raw, data), refuse)
    good = json.dumps(header).encode("utf-8")
    files["prefix.version"] = (join_file(good, data, version=FORMAT_VERSION + 1), True)
    files["prefix.reserved"] = (join_file(good, data, reserved=7), False)
    files["prefix.length.huge"] = (join_file(good, data, length=2**63), True)
    files["prefix.length.zero"] = (join_file(good, data, length=0), True)
    files["prefix.magic"] = (b"LINKSLOW" + join_file(good, data)[8:], True)
    whole = join_file(good, data)
    for size in (0, 10, _PREFIX.size, len(whole) // 2, len(whole) - _ALIGN - 1):  # the last cuts into the last table
        files[f"truncated.{size}"] = (whole[:size], True)
    out = []
    for label, (raw, refuse) in files.items():
        path = folder / f"{label}.lfv"
        path.write_bytes(raw)
        out.append((f"header.{label}", path, refuse))
    return out


# -- running the CLI on each damaged file -----------------------------------------------------

_CHILD = r"""
import contextlib, io, json, sys, traceback
from link_fast.cli import main

for job in json.load(open(sys.argv[1])):
    print(json.dumps({"start": job["id"]}), flush=True)
    out, err = io.StringIO(), io.StringIO()
    crash = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(job["argv"])
    except SystemExit as exc:
        rc = exc.code
    except BaseException:
        rc, crash = None, traceback.format_exc()
    print(json.dumps({"done": job["id"], "rc": rc, "stderr": err.getvalue(), "crash": crash}), flush=True)
"""


def commands(material, path: Path, n: int) -> dict[str, list[str]]:
    out = material["root"] / "out" / str(n)
    return {
        "info": ["info", str(path)],
        "apply": [
            "apply",
            str(material["shard"]),
            "--vocab",
            str(path),
            "-o",
            str(out / "shards"),
            "--ratio",
            "1",
            "-q",
        ],
        "text": [
            "text",
            str(material["text"]),
            "--vocab",
            str(path),
            "-o",
            str(out / "fables.jsonl"),
            "--ratio",
            "1",
            "-q",
        ],
    }


def run_batches(material, jobs: list[dict], n_children: int) -> dict[str, dict]:
    """Run the jobs in ``n_children`` child processes; {id: result}. A child killed by a signal
    or hung fails the test, naming the job it was running."""
    children = []
    for k in range(n_children):
        jobs_file = material["root"] / f"jobs-{k}.json"
        jobs_file.write_text(json.dumps(jobs[k::n_children]))
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(jobs_file)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = {}
    for child in children:
        try:
            stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        for line in lines:
            if "done" in line:
                results[line["done"]] = line
        running = [line["start"] for line in lines if "start" in line and line["start"] not in results]
        assert child.returncode == 0, (
            f"child exited {child.returncode} (a signal or a hang) during {running}:\n{stderr[-3000:]}"
        )
    return results


def check_results(cases: list[tuple[str, Path, bool]], jobs: list[dict], results: dict) -> list[str]:
    """Problems: a traceback, an exit code other than 0 or 2, a refusal that is not one line
    naming the file, or damage the validator should have refused and did not."""
    problems = []
    refuse = {label: must for label, _, must in cases}
    paths = {label: path for label, path, _ in cases}
    for job in jobs:
        job_id = job["id"]
        label = job_id.rsplit(":", 1)[0]
        result = results[job_id]
        if result["crash"]:
            problems.append(f"{job_id}: traceback\n{result['crash']}")
        elif result["rc"] not in (0, 2):
            problems.append(f"{job_id}: exit {result['rc']}: {result['stderr'][-500:]}")
        elif result["rc"] == 2:
            lines = result["stderr"].splitlines()
            if len(lines) != 1 or not lines[0].startswith("link-fast: error: ") or str(paths[label]) not in lines[0]:
                problems.append(f"{job_id}: not one line naming the file: {result['stderr'][-500:]!r}")
        elif refuse[label]:
            problems.append(f"{job_id}: accepted (exit 0), but the damage should be refused")
    return problems


@pytest.mark.slow
def test_every_damaged_table_and_header_field_is_refused_cleanly(material):
    cases = table_files(material) + header_files(material)
    jobs = [
        {"id": f"{label}:{command}", "argv": argv}
        for n, (label, path, _) in enumerate(cases)
        for command, argv in commands(material, path, n).items()
    ]
    results = run_batches(material, jobs, n_children=max(1, min(4, os.cpu_count() or 1)))
    problems = check_results(cases, jobs, results)
    assert not problems, f"{len(problems)} of {len(jobs)} runs:\n" + "\n".join(problems[:30])
    # The undamaged file works: the runs above test the damage, not a broken setup.
    good = run_batches(
        material, [{"id": f"good:{c}", "argv": a} for c, a in commands(material, material["vocab"], -1).items()], 1
    )
    assert all(r["rc"] == 0 and not r["crash"] for r in good.values()), good


def test_refusal_names_the_file_and_table_through_a_real_subprocess(material, tmp_path):
    header, data = split_file(material["vocab"])
    raw = bytearray(material["vocab"].read_bytes())
    start = len(raw) - len(data) + header["arrays"]["trans_offsets"]["offset"]
    struct.pack_into("<q", raw, start + 8 * 3, 10**15)  # a translation far past the end
    damaged = tmp_path / "damaged.lfv"
    damaged.write_bytes(raw)
    env = dict(os.environ, NO_COLOR="1")
    for argv in (
        ["info", str(damaged)],
        ["apply", str(material["shard"]), "--vocab", str(damaged), "-o", str(tmp_path / "out"), "--ratio", "1"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "link_fast", *argv],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert (
            proc.stderr == f"link-fast: error: {damaged}: corrupt vocabulary: table 'trans_offsets' "
            "is not strictly rising (an empty slice)\n"
        )


# -- direct checks of Vocab.load --------------------------------------------------------------


def test_invalid_utf8_and_split_characters_are_refused(tmp_path):
    flags = np.full(10, 1 | 4 | 16, dtype=np.uint8)
    entries = [Entry((1,), " Käse", {0: [((2,), " cheese")]}), Entry((3,), " Brot", {0: [((4,), " bread")]})]
    vocab = Vocab.from_entries(flags, entries, ["en"])
    path = vocab.save(tmp_path / "v.lfv")
    Vocab.load(path)
    header, data = split_file(path)
    raw = path.read_bytes()
    base = len(raw) - len(data)
    text_start = base + header["arrays"]["key_text"]["offset"]
    bad = bytearray(raw)
    bad[text_start + 3] = 0xFF  # the second byte of ä
    (tmp_path / "bad.lfv").write_bytes(bad)
    with pytest.raises(VocabError, match=r"bad\.lfv: corrupt vocabulary: table 'key_text' is not UTF-8"):
        Vocab.load(tmp_path / "bad.lfv")
    split = bytearray(raw)  # keys " K\xc3" and "\xa4se Brot": the blob stays UTF-8, the offset splits ä
    struct.pack_into("<q", split, base + header["arrays"]["key_text_offsets"]["offset"] + 8, 3)
    (tmp_path / "split.lfv").write_bytes(split)
    with pytest.raises(VocabError, match="table 'key_text_offsets' splits a UTF-8 character"):
        Vocab.load(tmp_path / "split.lfv")


@pytest.mark.parametrize(
    ("translation", "code"),
    [(" li\nne", "000A"), (" a\rb", "000D"), (" \x1b]0;title\x07", "001B"), (" x\u202ey", "202E")],
)
def test_a_translation_with_a_control_character_is_refused(tmp_path, translation, code):
    """A crafted vocabulary whose translation holds a line break would add lines to a .txt output
    (and shift every later document); other controls act on a terminal. Refused at load."""
    flags = np.full(10, 1 | 4 | 16, dtype=np.uint8)
    entries = [Entry((1,), " cat", {0: [((2,), " Katze")]}), Entry((3,), " dog", {0: [((4,), translation)]})]
    path = Vocab.from_entries(flags, entries, ["de"]).save(tmp_path / "crafted.lfv")
    with pytest.raises(VocabError) as caught:
        Vocab.load(path)
    assert str(caught.value) == (
        f"{path}: corrupt vocabulary: table 'trans_text' holds the control character U+{code} (in string 1)"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "link_fast", "info", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(path) in proc.stderr, proc.stderr


def test_a_crafted_chain_fails_fast(tmp_path):
    """A trie deeper than its longest key (a chain of nodes) is refused before it is walked."""
    flags = np.full(10, 1 | 4 | 16, dtype=np.uint8)
    vocab = Vocab.from_entries(flags, [Entry((1, 2, 3), "abc", {0: [((4,), "d")]})], ["en"])
    t = dict(vocab.tables)
    # re-point the one key from depth 3 to depth 1: the trie is now deeper than the longest key
    t["key_offsets"] = np.array([0, 1], dtype=np.int64)
    t["key_tokens"] = np.array([1], dtype=np.uint32)
    Vocab(t, dict(vocab.meta, counts=dict(vocab.meta["counts"], max_key_tokens=1))).save(tmp_path / "deep.lfv")
    with pytest.raises(VocabError, match="deeper than its longest key"):
        Vocab.load(tmp_path / "deep.lfv")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_every_vocabulary_the_builder_makes_is_accepted(world, tmp_path):
    flags, lexicon, n_languages, _, joiners = world
    vocab = make_vocab(flags, lexicon, n_languages, joiners)
    loaded = Vocab.load(vocab.save(tmp_path / "v.lfv"))
    assert list(loaded.entries()) == list(vocab.entries())


def test_an_empty_vocabulary_is_accepted(tmp_path):
    flags = np.full(10, 1 | 4 | 16, dtype=np.uint8)
    loaded = Vocab.load(Vocab.from_entries(flags, [], ["en"]).save(tmp_path / "empty.lfv"))
    assert loaded.n_keys == 0
