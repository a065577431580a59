"""Hostile folders and shared clusters (issue 27, items 1-5 and 12): what an attacker who can
write the output folder, or craft a record, a vocabulary, a document or a file name, can make
link-fast do. Each test makes the attacker's move: markup in every field the report shows,
links planted at temporary and final names, terminal control sequences, outputs named like
inputs, FIFOs named like records, and another host's temporaries in a shared folder."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from real_runs import write_shard as write_text_shard
from test_runner import random_vocab, write_shard

from link_fast import apply_shards
from link_fast.cli import main
from link_fast.io import temporary_path
from link_fast.text import substitute_files

VICTIM = b"a file outside the output folder\n"


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory) -> Path:
    return random_vocab().save(tmp_path_factory.mktemp("vocab") / "v.lfv")


def one_error_line(capsys, code: int) -> str:
    """The run's one line on stderr, after it returned ``code`` 2."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("link-fast: error: "), err
    return lines[0]


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def regular_files(folder: Path) -> dict[str, bool]:
    return {p.name: p.is_file() and not p.is_symlink() for p in folder.iterdir()}


# -- 1. markup in the report -------------------------------------------------------------------

LANG_SCRIPT = 'x"><script>alert(1)</script>'
LANG_TEX = "$\\notacommand$&'</style>"  # mathtext would fail to draw it
HOSTILE_DOCUMENT = (
    'The house "><script>alert(2)</script> and the dog </style><style>* {display:none}</style> '
    "saw the cat: $\\alpha$ & 'quotes' \"too\" <img src=x onerror=alert(3)>. "
)


class Tags(HTMLParser):
    """Every element with its attributes, the text of each, and the SVG text, as a browser's
    parser sees them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.svg_text: list[str] = []
        self._in_svg_text = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_svg_text = tag == "text" or (self._in_svg_text and tag == "tspan")

    def handle_endtag(self, tag):
        if tag == "text":
            self._in_svg_text = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_svg_text:
            self.svg_text.append(data)


def _run(root: Path, languages: list[str], names: dict[str, str]) -> tuple[Path, Path, Path]:
    """(output folder, vocabulary, input folder) of a run of a small Tekken vocabulary (the
    dictionary's translations are markup) on documents that are markup."""
    pytest.importorskip("matplotlib")
    from link_fast import compile_vocab
    from link_fast.demo import demo_tokenizer_path
    from link_fast.lexicon import CleaningOptions
    from link_fast.tokenizer import load_tokenizer

    pairs = root / "pairs.txt"
    pairs.write_text(
        "house\t\"><b onmouseover=alert()>Haus\nhouse\tH&use\ndog\tHu'nd\ncat\t$\\alpha$\n", encoding="utf-8"
    )
    tokenizer = load_tokenizer(demo_tokenizer_path())
    vocab = compile_vocab(
        tokenizer, dict.fromkeys(languages, pairs), cleaning=CleaningOptions(drop_brackets=False), progress=False
    )
    vocab_file = vocab.save(root / names["vocab"])
    inputs = root / names["inputs"]
    write_text_shard(inputs / names["shard"], tokenizer, [HOSTILE_DOCUMENT * 3] * 6)
    out = root / names["out"]
    apply_shards(vocab_file, [inputs], out, ratio=1.0, seed=1, mask=True, progress=False)
    return out, vocab_file, inputs


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A run whose every name is markup too: the languages, the shard, vocabulary and folders."""
    names = {
        "vocab": "v'<b>&.lfv",
        "inputs": 'in"><i>',
        "shard": "s'><img src=x onerror=alert(4)>",
        "out": "out<script>alert(5)<",
    }
    return _run(tmp_path_factory.mktemp("hostile"), [LANG_SCRIPT, LANG_TEX], names)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    names = {"vocab": "v.lfv", "inputs": "in", "shard": "s", "out": "out"}
    return _run(tmp_path_factory.mktemp("plain"), ["de", "fr"], names)


def test_the_report_escapes_every_field(hostile_run, tmp_path, capsys):
    out, vocab_file, _ = hostile_run
    page_path = tmp_path / "report.html"
    assert main(["report", str(out), "-o", str(page_path), "--samples", "6"]) == 0, capsys.readouterr().err
    text = page_path.read_text(encoding="utf-8")
    page = Tags(text)
    names = [tag for tag, _ in page.tags]
    # nothing but the page's own elements and attributes: no script, no handler, one style
    assert "script" not in names and "img" not in names and "b" not in names and "i" not in names
    assert names.count("style") == 1 + names.count("svg")  # the page's and each chart's
    assert not [(tag, a) for tag, attrs in page.tags for a in attrs if a.startswith("on")]
    keys = {attrs["data-key"] for tag, attrs in page.tags if "data-key" in attrs}
    assert {f"substitutions_{LANG_SCRIPT}", f"substitutions_{LANG_TEX}"} <= keys
    # every value shown as the text it is
    shown = "".join(page.text)
    for value in (LANG_SCRIPT, LANG_TEX, str(out), vocab_file.name, "s'><img src=x onerror=alert(4)>", "H&use"):
        assert value in shown, value
    assert "</style><style>* {display:none}</style>" in shown  # the document, as text
    titles = [attrs["title"] for tag, attrs in page.tags if tag == "mark" and attrs.get("title")]
    assert any('"><b onmouseover=alert()>Haus' in t and LANG_SCRIPT in t for t in titles)
    # the chart's labels are the names as written, not mathtext
    assert LANG_TEX in page.svg_text and LANG_SCRIPT in page.svg_text


# -- 2. links planted at temporary and final names ---------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_apply_never_writes_through_a_planted_link(tmp_path, vocab_path, workers):
    target = victim(tmp_path)
    write_shard(tmp_path / "in" / "a", n_docs=50)
    out = tmp_path / "out"
    out.mkdir()
    finals = ["a.bin", "a.idx", "a_mask.bin", "a_mask.idx", "a.link.json"]
    for name in finals:
        os.symlink(target, temporary_path(out / name))
    os.symlink(target, temporary_path(out / "a", ".sizes"))  # the workers' shared sizes
    apply_shards(vocab_path, [tmp_path / "in"], out, ratio=0.5, mask=True, workers=workers, progress=False)
    assert target.read_bytes() == VICTIM
    assert regular_files(out) == dict.fromkeys(finals, True)  # no link left, under any name


def test_apply_refuses_a_link_at_an_output_name(tmp_path, vocab_path, capsys):
    target = victim(tmp_path)
    write_shard(tmp_path / "in" / "a", n_docs=50)
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(target, out / "a.link.json")
    code = main(["apply", "--vocab", str(vocab_path), "--ratio", "0.5", "-q", "-o", str(out), str(tmp_path / "in")])
    assert f"{out / 'a.link.json'}: is a symbolic link" in one_error_line(capsys, code)
    assert target.read_bytes() == VICTIM and sorted(p.name for p in out.iterdir()) == ["a.link.json"]


def _text_input(tmp_path: Path) -> Path:
    source = tmp_path / "a.jsonl"
    source.write_text("".join(json.dumps({"text": f"1 2 3 {i}"}) + "\n" for i in range(20)), encoding="utf-8")
    return source


def test_text_never_writes_through_a_planted_link(tmp_path, vocab_path, capsys):
    target, source = victim(tmp_path), _text_input(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.jsonl", "a.jsonl.link.json"):
        os.symlink(target, temporary_path(out / name))
    substitute_files(vocab_path, [source], out, ratio=0.5, progress=False)
    assert target.read_bytes() == VICTIM
    assert regular_files(out) == {"a.jsonl": True, "a.jsonl.link.json": True}
    for name in ("a.jsonl", "a.jsonl.link.json"):  # a link at a final name: refused before any work
        (out / name).unlink()
        os.symlink(target, out / name)
        code = main(["text", "--vocab", str(vocab_path), "--ratio", "0.5", "-q", "-o", str(out), str(source)])
        assert f"{out / name}: is a symbolic link" in one_error_line(capsys, code)
        assert target.read_bytes() == VICTIM
        (out / name).unlink()


def test_compile_and_report_never_write_through_a_planted_link(tmp_path, plain_run, capsys):
    target = victim(tmp_path)
    vocab = random_vocab(n_keys=20)
    os.symlink(target, temporary_path(tmp_path / "v.lfv"))
    vocab.save(tmp_path / "v.lfv")  # what `compile -o` writes with
    page = tmp_path / "report.html"
    os.symlink(target, temporary_path(page))
    assert main(["report", str(plain_run[0]), "-o", str(page), "--samples", "2"]) == 0
    capsys.readouterr()
    assert target.read_bytes() == VICTIM
    assert regular_files(tmp_path) == {"victim.txt": True, "v.lfv": True, "report.html": True}
    page.unlink()
    os.symlink(target, page)
    code = main(["report", str(plain_run[0]), "-o", str(page), "--samples", "2"])
    assert f"{page}: is a symbolic link" in one_error_line(capsys, code)
    assert target.read_bytes() == VICTIM


# -- 3. terminal control sequences -------------------------------------------------------------

TITLE, CLEAR, CLIPBOARD = "\x1b]0;pwned\x07", "\x1b[2J", "\x1b]52;c;cHduZWQ=\x07"
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
OUR_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def assert_printable(text: str, colours: bool = False) -> None:
    if colours:
        text = OUR_COLOURS.sub("", text.replace(CLEAR, "<clear>"))
    assert not CONTROLS.search(text), repr(text)


def _hostile_text_output(tmp_path: Path) -> Path:
    """A text output and its record as an attacker writes them: control sequences in the
    documents, a translation and a language's name (inspect checks only that they agree)."""
    before = f"the cream {TITLE} and {CLEAR} then {CLIPBOARD} \u202eevil\u202c\tend\x9b31m"
    translation, lang = f"Sa{CLEAR}hne", f"de{TITLE}"
    start = before.index("cream")
    after = before[:start] + translation + before[start + len("cream") :]
    sub = {"start": start, "end": start + len(translation), "source": "cream", "translation": translation}
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"text": before}) + "\n", encoding="utf-8")
    output.write_text(json.dumps({"text": after, "subs": [dict(sub, language=lang)]}) + "\n", encoding="utf-8")
    record = {
        "input": str(source),
        "output": str(output),
        "field": "text",
        "substitutions_field": "subs",
        "stats": {"documents": 1},
        "vocab": {"languages": [lang]},
        "skipped_lines": 0,
        "skipped": [],
    }
    Path(f"{output}.link.json").write_text(json.dumps(record), encoding="utf-8")
    return output


@pytest.mark.parametrize("color", ["never", "always"])
@pytest.mark.parametrize("layout", ["interleaved", "side-by-side"])
def test_inspect_escapes_control_characters(tmp_path, capsys, color, layout):
    output = _hostile_text_output(tmp_path)
    assert main(["inspect", str(output), "--color", color, "--layout", layout]) == 0
    shown = capsys.readouterr().out
    assert_printable(shown, colours=color == "always")
    assert "\\u001b]0;pwned\\u0007" in shown and "\\u202eevil" in shown  # shown, escaped
    if layout == "interleaved":
        assert "\tend" in shown  # a document's own tabs and line breaks are kept


def test_validate_info_logs_and_errors_escape_names(tmp_path, capsys):
    name = f"a{TITLE}b{CLIPBOARD}"
    write_shard(tmp_path / "in" / name, n_docs=20)
    assert main(["validate", str(tmp_path / "in")]) == 0
    captured = capsys.readouterr()
    assert_printable(captured.out + captured.err)
    assert "\\u001b]0;pwned" in captured.out
    vocab = random_vocab(n_keys=20)
    vocab.meta["languages"] = [f"de{CLEAR}", "fr\u202e"]  # a crafted header
    vocab_file = vocab.save(tmp_path / f"v{CLEAR}.lfv")
    for args in (["info", str(vocab_file)], ["info", "--json", str(vocab_file)]):
        assert main(args) == 0
        captured = capsys.readouterr()
        assert_printable(captured.out + captured.err)
    json.loads(captured.out)  # --json stays JSON
    assert (
        main(["apply", "--vocab", str(vocab_file), "--ratio", "0.5", "-o", str(tmp_path / "out"), str(tmp_path / "in")])
        == 0
    )
    captured = capsys.readouterr()
    assert_printable(captured.out + captured.err)
    assert "substitutions" in captured.err  # the log lines are there, escaped
    code = main(["inspect", str(tmp_path / f"gone{CLIPBOARD}")])
    assert_printable(one_error_line(capsys, code))


# -- 4. outputs that would replace what the run reads ------------------------------------------


@pytest.mark.parametrize("what", ["input", "record", "vocabulary"])
def test_report_never_replaces_what_it_reads(plain_run, capsys, what):
    out, vocab_file, inputs = plain_run
    target = {
        "input": next(inputs.glob("*.bin")),
        "record": next(out.glob("*.link.json")),
        "vocabulary": vocab_file,
    }[what]
    before = target.read_bytes()
    code = main(["report", str(out), "-o", str(target), "--samples", "2"])
    assert "the report would overwrite" in one_error_line(capsys, code)
    assert target.read_bytes() == before


def test_apply_and_text_never_replace_the_vocabulary(tmp_path, vocab_path, capsys):
    write_shard(tmp_path / "in" / "a", n_docs=20)
    out = tmp_path / "out"
    out.mkdir()
    vocab = out / "a.bin"  # a vocabulary where apply's output goes
    vocab.write_bytes(Path(vocab_path).read_bytes())
    code = main(["apply", "--vocab", str(vocab), "--ratio", "0.5", "-q", "-o", str(out), str(tmp_path / "in")])
    assert "would overwrite the vocabulary" in one_error_line(capsys, code)
    assert vocab.read_bytes() == Path(vocab_path).read_bytes()
    source = _text_input(tmp_path)
    vocab = tmp_path / "v.jsonl"  # a vocabulary named like text's output
    vocab.write_bytes(Path(vocab_path).read_bytes())
    code = main(["text", "--vocab", str(vocab), "--ratio", "0.5", "-q", "-o", str(vocab), str(source)])
    assert f"{vocab}: the output would overwrite {vocab}" in one_error_line(capsys, code)
    assert vocab.read_bytes() == Path(vocab_path).read_bytes()


# -- 5. FIFOs named like records or inputs -----------------------------------------------------


def run_briefly(*args) -> subprocess.CompletedProcess:
    """``link-fast ARGS`` in a subprocess that may not hang: a FIFO waited on fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "link_fast", *map(str, args)], capture_output=True, text=True, timeout=60
    )


def assert_refused_fifo(proc: subprocess.CompletedProcess, fifo: Path) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"{fifo}: not a regular file" in lines[0], proc.stderr


def test_a_fifo_named_like_a_record_is_refused_not_waited_on(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=20)
    out = tmp_path / "out"
    assert (
        run_briefly("apply", "--vocab", vocab_path, "--ratio", "0.5", "-q", "-o", out, tmp_path / "in").returncode == 0
    )
    record = out / "a.link.json"
    record.unlink()
    os.mkfifo(record)
    assert_refused_fifo(run_briefly("report", out, "-o", tmp_path / "r.html"), record)
    assert_refused_fifo(run_briefly("inspect", out / "a"), record)
    resumed = run_briefly(
        "apply", "--vocab", vocab_path, "--ratio", "0.5", "-q", "--resume", "-o", out, tmp_path / "in"
    )
    assert_refused_fifo(resumed, record)
    # an input X_mask next to a FIFO X.link.json: is X_mask a mask link-fast wrote?
    write_shard(tmp_path / "in2" / "b_mask", n_docs=20)
    os.mkfifo(tmp_path / "in2" / "b.link.json")
    proc = run_briefly(
        "apply", "--vocab", vocab_path, "--ratio", "0.5", "-q", "-o", tmp_path / "out2", tmp_path / "in2"
    )
    assert_refused_fifo(proc, tmp_path / "in2" / "b.link.json")


def test_a_text_record_naming_a_fifo_as_its_input_is_refused(tmp_path, vocab_path):
    source = _text_input(tmp_path)
    out = tmp_path / "out.jsonl"
    done = run_briefly(
        "text", "--vocab", vocab_path, "--ratio", "0.5", "-q", "--substitutions-field", "s", "-o", out, source
    )
    assert done.returncode == 0, done.stderr
    source.unlink()
    os.mkfifo(source)
    assert_refused_fifo(run_briefly("inspect", out), source)


# -- 12. job arrays sharing an output folder ---------------------------------------------------


def _dead_pid() -> int:
    """A pid no process of this machine has now."""
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_cleanup_leaves_other_hosts_temporaries(tmp_path, vocab_path, monkeypatch):
    for name in ("a", "ab"):  # rank 0 rewrites a, rank 1 ab; ".a*" also matches ab's names
        write_shard(tmp_path / "in" / name, n_docs=30, seed=len(name))
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    with monkeypatch.context() as patch:
        patch.setattr(os, "getpid", lambda: dead)
        ours = [temporary_path(out / name) for name in ("a.bin", "ab.idx")]  # a dead run of this host
        patch.setattr(socket, "gethostname", lambda: "another-host")
        theirs = [temporary_path(out / name) for name in ("ab.bin", "ab.link.json", "a_mask.bin", "a.idx")]
    assert not set(ours) & set(theirs)
    for path in ours + theirs:
        path.write_bytes(b"in progress")
    for rank in (0, 1):
        apply_shards(vocab_path, [tmp_path / "in"], out, ratio=0.5, rank=rank, world_size=2, progress=False)
    assert all(path.exists() for path in theirs), sorted(p.name for p in out.iterdir())
    assert not any(path.exists() for path in ours)
    assert {"a.link.json", "ab.link.json"} <= {p.name for p in out.iterdir()}
