"""Run records travel with their output folder (issue 26, item 3): the paths a record holds are
relative to its own folder, with the folder it was written in to fall back on, never to the
folder a reader runs in; ``report`` takes ``inspect``'s overrides, writes a page without charts
when matplotlib is missing, and shows bounded excerpts that wrap at any width.

Each run is real: a small Tekken vocabulary (the demo tokenizer) and Megatron shards of English
documents, applied from a working folder with the paths a user types."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from real_runs import write_shard
from test_report import _browser

from link_fast.cli import main
from link_fast.highlight import Mark, Piece
from link_fast.report import EXCERPT_CONTEXT, EXCERPT_SUBSTITUTIONS, excerpt
from link_fast.shards import load_record, open_shard, validate_shard
from link_fast.shards.records import RECORD_VERSION, recorded_paths

SENTENCE = "The house by the river has a dog and a cat, and the dog sleeps in the house all day. "
DOCUMENTS = [SENTENCE * (1 + i % 4) + f"Document {i} ends here." for i in range(12)]
LONG_WORD = "y" * 600  # one unbreakable run of text
LONG_DOCUMENT = SENTENCE * 2 + LONG_WORD + " " + SENTENCE * 2000  # about 170 KB, 8,000 candidates


@pytest.fixture(scope="module")
def tokenizer():
    from link_fast.demo import demo_tokenizer_path
    from link_fast.tokenizer import load_tokenizer

    return load_tokenizer(demo_tokenizer_path())


@pytest.fixture(scope="module")
def vocab_file(tokenizer, tmp_path_factory) -> Path:
    from link_fast import compile_vocab
    from link_fast.lexicon import CleaningOptions

    folder = tmp_path_factory.mktemp("vocab")
    pairs = folder / "pairs.txt"
    pairs.write_text("house\tHaus\ndog\tHund\ncat\tKatze\nriver\tFluss\nday\tTag\n", encoding="utf-8")
    vocab = compile_vocab(
        tokenizer, {"de": pairs}, cleaning=CleaningOptions(drop_brackets=False), default_deny=False, progress=False
    )
    return vocab.save(folder / "v.lfv")


def at(folder: Path):
    """A context in which the working folder is ``folder``."""

    class Chdir:
        def __enter__(self):
            self.back = os.getcwd()
            os.chdir(folder)

        def __exit__(self, *exc):
            os.chdir(self.back)

    return Chdir()


def run_apply(work: Path, tokenizer, vocab_file: Path, documents=DOCUMENTS, absolute=False) -> Path:
    """``link-fast apply`` run in ``work`` on its shard ``in/s`` into ``out``, with the paths a user
    types there (relative ones, or ``absolute``); the output folder."""
    write_shard(work / "in" / "s", tokenizer, documents)
    shutil.copy(vocab_file, work / "v.lfv")
    names = [work / "v.lfv", work / "in", work / "out"] if absolute else ["v.lfv", "in", "out"]
    args = ["apply", "--vocab", str(names[0]), "--ratio", "0.5", "--mask", "-q", "-o", str(names[2]), str(names[1])]
    with at(work):
        assert main(args) == 0
    return work / "out"


def decoy(folder: Path, tokenizer) -> Path:
    """``in/s`` in ``folder``: a shard of the same name and document count, other documents."""
    write_shard(folder / "in" / "s", tokenizer, [f"Another document {i}." for i in range(len(DOCUMENTS))])
    return folder


def growth_of(out: Path, source: Path) -> str:
    """The mean growth the report must print, from the shards themselves."""
    with open_shard(source) as before, open_shard(out / "s") as after:
        a, b = np.asarray(before.sizes, dtype=np.int64), np.asarray(after.sizes, dtype=np.int64)
    return f"mean {100 * (b / a - 1).mean():+.2f}%"


def report(out: Path, page: Path, *options: str) -> tuple[int, str]:
    code = main(["report", str(out), "-o", str(page), *options])
    return code, page.read_text(encoding="utf-8") if code == 0 else ""


def one_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("absolute", [False, True])
def test_report_and_inspect_from_another_folder_read_the_recorded_input(tmp_path, tokenizer, vocab_file, absolute):
    out = run_apply(tmp_path / "work", tokenizer, vocab_file, absolute=absolute)
    elsewhere = decoy(tmp_path / "elsewhere", tokenizer)  # in/s there is another shard
    with at(elsewhere):
        for samples in ("0", "4"):
            code, page = report(out, tmp_path / f"r{samples}.html", "--samples", samples)
            assert code == 0 and growth_of(out, tmp_path / "work" / "in" / "s") in page
    assert "[Haus]de" in inspected(out / "s", cwd=elsewhere)


def inspected(output: Path, cwd: Path) -> str:
    """What ``link-fast inspect OUTPUT --doc 1`` prints, run in ``cwd``."""
    proc = subprocess.run(
        [sys.executable, "-m", "link_fast", "inspect", str(output), "--doc", "1", "--color", "never"],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_records_hold_paths_relative_to_their_folder(tmp_path, tokenizer, vocab_file):
    out = run_apply(tmp_path / "work", tokenizer, vocab_file)
    record = load_record(out / "s.link.json")
    assert record["record_version"] == RECORD_VERSION and record["folder"] == str(out)
    assert record["inputs"] == ["../in/s.bin", "../in/s.idx"] and record["vocab_path"] == "../v.lfv"
    assert record["outputs"] == ["s.bin", "s.idx", "s_mask.bin", "s_mask.idx"]
    assert json.loads((out / "s.link.json").read_text()) == record
    # from where the record is first, then from where it was written; an absolute path as it is
    assert recorded_paths(tmp_path / "moved" / "s.link.json", record, "../in/s.bin") == [
        str(tmp_path / "in" / "s.bin"),
        str(tmp_path / "work" / "in" / "s.bin"),
    ]
    assert recorded_paths(out / "s.link.json", record, "/x/s.bin") == ["/x/s.bin"]


@pytest.mark.parametrize("absolute", [False, True])
def test_a_moved_output_folder_finds_its_inputs_and_vocabulary(tmp_path, tokenizer, vocab_file, absolute):
    work = tmp_path / "work"
    out = run_apply(work, tokenizer, vocab_file, absolute=absolute)
    want = growth_of(out, work / "in" / "s")
    # the output folder alone, elsewhere: the inputs where the record was written
    alone = tmp_path / "alone" / "out"
    alone.parent.mkdir()
    shutil.copytree(out, alone)
    decoy(tmp_path, tokenizer)  # ../in/s from the copy's folder is another shard: never read as the input
    code, page = report(alone, tmp_path / "r1.html", "--samples", "3")
    assert code == 0 and want in page
    # the whole tree moved: found from where the record is now
    moved = tmp_path / "moved"
    work.rename(moved)
    code, page = report(moved / "out", tmp_path / "r2.html", "--samples", "3")
    assert code == 0 and want in page
    assert validate_shard(moved / "out" / "s") == []
    # validate finds the vocabulary where it moved, and tells when it holds other contents now
    other = tmp_path / "other.lfv"
    (tmp_path / "pairs.txt").write_text("house\tmaison\n", encoding="utf-8")
    from link_fast import compile_vocab

    compile_vocab(tokenizer, {"fr": tmp_path / "pairs.txt"}, default_deny=False, progress=False).save(other)
    other.replace(moved / "v.lfv")
    problems = validate_shard(moved / "out" / "s")
    assert len(problems) == 1 and f"vocabulary {moved / 'v.lfv'} when it held" in problems[0]


def test_report_takes_the_overrides_of_inspect(tmp_path, tokenizer, vocab_file, capsys):
    from link_fast.demo import demo_tokenizer_path

    work = tmp_path / "work"
    out = run_apply(work, tokenizer, vocab_file)
    want = growth_of(out, work / "in" / "s")
    (work / "in").rename(work / "inputs")
    (work / "v.lfv").rename(work / "renamed.lfv")
    code = main(["report", str(out), "-o", str(tmp_path / "r.html")])
    assert "s.link.json: the vocabulary it records, ../v.lfv, is gone: give --vocab" in one_error(capsys, code)
    code = main(["report", str(out), "-o", str(tmp_path / "r.html"), "--vocab", str(work / "renamed.lfv")])
    assert "the input it records, ../in/s.bin, is gone: give --input" in one_error(capsys, code)
    given = ["--vocab", str(work / "renamed.lfv"), "--tokenizer", str(demo_tokenizer_path())]
    for source in (work / "inputs", work / "inputs" / "s", work / "inputs" / "s.idx"):  # the folder, or the shard
        code, page = report(out, tmp_path / "r.html", "--samples", "3", "--input", str(source), *given)
        assert code == 0 and want in page and capsys.readouterr().err.startswith("wrote ")
    # another shard of the same name is not the input
    decoy(tmp_path / "d", tokenizer)
    code = main(["report", str(out), "-o", str(tmp_path / "r.html"), "--input", str(tmp_path / "d" / "in"), *given])
    assert f"{tmp_path / 'd' / 'in' / 's'}: not the input s.link.json was made from" in one_error(capsys, code)
    code = main(["inspect", str(out / "s"), "--input", str(tmp_path / "d" / "in" / "s"), *given])
    assert "not the input s.link.json was made from" in one_error(capsys, code)
    # one input for a folder of two outputs is refused
    shutil.copy(out / "s.link.json", out / "t.link.json")
    code = main(["report", str(out), "-o", str(tmp_path / "r.html"), "--input", str(work / "inputs" / "s"), *given])
    assert "one input for 2 outputs: give the folder of the inputs as --input" in one_error(capsys, code)


def test_without_matplotlib_the_page_has_no_charts_and_says_so(tmp_path, tokenizer, vocab_file):
    out = run_apply(tmp_path / "work", tokenizer, vocab_file)
    page = tmp_path / "r.html"
    script = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if the report extra were not installed
        "from link_fast.cli import main\n"
        f"sys.exit(main(['report', {str(out)!r}, '-o', {str(page)!r}, '--samples', '3']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no charts" in proc.stderr and "pip install 'link_fast[report]'" in proc.stderr
    text = page.read_text(encoding="utf-8")
    assert 'id="no-charts"' in text and "pip install &#x27;link_fast[report]&#x27;" in text
    assert "<svg" not in text and '<table id="shards">' in text and "<mark" in text


def pieces_of(text: str, every: int) -> list[Piece]:
    """``text`` with every ``every``-th word marked."""
    out: list[Piece] = []
    for i, word in enumerate(text.split(" ")):
        out.append(Piece(word, Mark(i, i + 1, "de", word)) if i % every == 0 else Piece(word))
        out.append(Piece(" "))
    return out


def test_an_excerpt_is_the_text_around_the_first_substitutions(tmp_path):
    document = pieces_of("word " * 200_000, every=7)  # 1 MB, 28,572 marks
    shown = excerpt(document)
    marks = [p for p in shown if p.mark is not None]
    assert marks == [p for p in document if p.mark is not None][: len(marks)]
    assert len(marks) >= EXCERPT_SUBSTITUTIONS
    assert sum(len(p.text) for p in shown) <= EXCERPT_SUBSTITUTIONS * (2 * EXCERPT_CONTEXT + 10) + 10
    assert shown[-1].text.strip() == "\u2026"
    # far-apart substitutions: one window each, an ellipsis between them and at each end
    sparse = [Piece("a" * 5000), Piece("X", Mark(0, 1)), Piece("b" * 5000), Piece("Y", Mark(1, 2)), Piece("c" * 5000)]
    text = "".join(p.text for p in excerpt(sparse))
    ctx = EXCERPT_CONTEXT
    assert text == f" \u2026 {'a' * ctx}X{'b' * ctx} \u2026 {'b' * ctx}Y{'c' * ctx} \u2026 "
    # a short document is shown whole
    short = pieces_of("a b c d", every=2)
    assert excerpt(short) == short


def test_the_examples_of_a_long_document_are_excerpts(tmp_path, tokenizer, vocab_file):
    out = run_apply(tmp_path / "work", tokenizer, vocab_file, documents=[LONG_DOCUMENT] + DOCUMENTS[:3])
    code, page = report(out, tmp_path / "r.html", "--samples", "4")
    assert code == 0
    examples = page[page.index("<h2>Examples</h2>") : page.index("<h2>Shards</h2>")]
    assert "document 0:" in examples and "substitutions, the first 5 shown" in examples
    assert len(examples) < 30_000 and len(page) < 200_000  # the document alone is 170 KB, twice
    assert examples.count("<mark") >= 2 * EXCERPT_SUBSTITUTIONS


def overflow(browser: str, page: Path, width: int) -> int:
    """How many pixels the page is wider than a window ``width`` pixels wide, as chromium lays it out."""
    probe = page.with_name(f"probe{width}.html")
    text = page.read_text(encoding="utf-8")
    script = (
        "<script>document.body.dataset.overflow = "
        "document.documentElement.scrollWidth - document.documentElement.clientWidth;</script>"
    )
    probe.write_text(text.replace("</body>", script + "</body>"), encoding="utf-8")
    flags = ["--headless", "--disable-gpu", "--no-sandbox", f"--window-size={width},1000", "--virtual-time-budget=2000"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", probe.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=page.parent,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-overflow="(-?\d+)"', dom.stdout)
    assert found, dom.stdout[-2000:]
    return int(found.group(1))


def test_the_page_fits_common_widths(tmp_path, tokenizer, vocab_file):
    browser = _browser()
    if browser is None:
        if os.environ.get("CI") or os.environ.get("LINK_FAST_REQUIRE_FIXTURES", "") not in ("", "0"):
            pytest.fail("no chromium: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium installed")
    long_line = "The house " + LONG_WORD + " and the dog. "  # a long unbreakable run beside a substitution
    out = run_apply(tmp_path / ("w" * 150), tokenizer, vocab_file, documents=[long_line * 3] + DOCUMENTS)
    code, _ = report(out, tmp_path / "r.html", "--samples", "13")
    assert code == 0
    for width in (1400, 800):
        assert overflow(browser, tmp_path / "r.html", width) <= 0, width


def test_a_record_of_version_1_is_read_as_version_2(tmp_path, tokenizer, vocab_file, capsys):
    """A record as link-fast wrote it before version 2: paths as the run named them, relative
    to the folder it ran in, the vocabulary's absolute."""
    from link_fast import apply_shards

    work = tmp_path / "work"
    out = run_apply(work, tokenizer, vocab_file)
    want = growth_of(out, work / "in" / "s")
    record = json.loads((out / "s.link.json").read_text())
    old = {k: v for k, v in record.items() if k not in ("record_version", "folder")}
    old.update(
        inputs=["in/s.bin", "in/s.idx"],
        outputs=[f"out/{name}" for name in record["outputs"]],
        vocab_path=str(work / "v.lfv"),
    )
    (out / "s.link.json").write_text(json.dumps(old), encoding="utf-8")
    upgraded = load_record(out / "s.link.json")
    assert upgraded["record_version"] == 2 and upgraded["folder"] == str(out)
    assert upgraded["inputs"] == ["../in/s.bin", "../in/s.idx"] and upgraded["vocab_path"] == "../v.lfv"
    elsewhere = decoy(tmp_path / "elsewhere", tokenizer)
    with at(elsewhere):
        code, page = report(out, tmp_path / "r.html", "--samples", "0")
        assert code == 0 and want in page
    # resume still knows the output as finished, and leaves its record as it was
    done = apply_shards(work / "v.lfv", [work / "in"], out, ratio=0.5, mask=True, resume=True, progress=False)
    assert done["s"]["resumed"] is True and json.loads((out / "s.link.json").read_text()) == old
    # outputs named by an absolute path: the folder it ran in is not known, and the current one is
    # only taken when the input found there is the recorded one
    old["outputs"] = [str(out / name) for name in record["outputs"]]
    (out / "s.link.json").write_text(json.dumps(old), encoding="utf-8")
    with at(work):
        code, page = report(out, tmp_path / "r.html", "--samples", "0")
        assert code == 0 and want in page
    capsys.readouterr()
    with at(elsewhere):
        code = main(["report", str(out), "-o", str(tmp_path / "r.html"), "--samples", "0"])
    assert f"is another shard at {elsewhere / 'in' / 's.bin'} (its fingerprint differs)" in one_error(capsys, code)


def test_text_records_are_relative_too(tmp_path, vocab_file):
    work = tmp_path / "work"
    work.mkdir()
    source = work / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCUMENTS), encoding="utf-8")
    shutil.copy(vocab_file, work / "v.lfv")
    with at(work):
        args = ["text", "--vocab", "v.lfv", "--ratio", "0.5", "--substitutions-field", "subs", "-q", "-o", "out"]
        assert main([*args, "docs.jsonl"]) == 0
    record = load_record(work / "out" / "docs.jsonl.link.json")
    assert (
        record["input"] == "../docs.jsonl" and record["output"] == "docs.jsonl" and record["vocab_path"] == "../v.lfv"
    )
    moved = tmp_path / "moved"
    work.rename(moved)
    assert "[Haus]de" in inspected(moved / "out" / "docs.jsonl", cwd=tmp_path)
