"""Text mode against the script users would write instead (``link-fast bench``, ``benches/``).

The naive script: read ``.jsonl.zst`` lines, ``json.loads``, ``re.sub`` over ``\\w+`` words
with a dict of single words (the vocabulary's single-word key texts -> their first
translation), one ``random.random()`` draw per dictionary word, ``json.dumps``, zstd. Both run
in this process on the same file, one after the other; each figure is the best of ``repeat``
runs. "With start-up" adds what each needs before its first line: the vocabulary loaded and,
for the naive script, its dict made; for text mode, its index loaded from the cache (warm:
made once before the runs).
"""

from __future__ import annotations

import functools
import io
import json
import random
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import zstandard

from ..bench import best_of
from ..errors import InputError
from ..vocab import Vocab
from . import native

_WORD = re.compile(r"\w+")


def naive_script(src: Path, dst: Path, table: dict[str, str], ratio: float, seed: int = 0) -> int:
    """The naive script, file to file; returns the documents written."""
    rng = random.Random(seed)

    def replace(match: re.Match) -> str:
        word = match.group(0)
        translation = table.get(word)
        return translation if translation is not None and rng.random() < ratio else word

    count = 0
    with open(src, "rb") as raw_in, open(dst, "wb") as raw_out:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw_in), encoding="utf-8")
        with zstandard.ZstdCompressor(level=3).stream_writer(raw_out) as writer:
            for line in reader:
                record = json.loads(line)
                record["text"] = _WORD.sub(replace, record["text"])
                writer.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
                count += 1
    return count


def pydoc_texts(root: str | Path, max_bytes: int = 5_000_000) -> list[str]:
    """Documents from the Python docs' reST sources (scripts/fetch_fixtures.sh), one per file
    in path order, up to ``max_bytes`` of UTF-8."""
    texts, size = [], 0
    for path in sorted(Path(root).rglob("*.rst.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        texts.append(text)
        size += len(text.encode("utf-8"))
        if size >= max_bytes:
            break
    if not texts:
        raise InputError(f"{root}: no .rst.txt files to measure on")
    return texts


def run_text_bench(
    vocab_or_path: Vocab | str | Path,
    texts: Sequence[str],
    *,
    ratio: float = 0.3,
    seed: int = 0,
    repeat: int = 3,
    workers: Sequence[int] = (1,),
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Text mode and the naive script on ``texts`` as one ``.jsonl.zst`` file; returns
    {"bytes", "documents", "seconds": {...}, "mb_s": {...}, "ratios": {...}, "index": {...}}."""
    from ..bench import word_table
    from .run import substitute_files

    with tempfile.TemporaryDirectory(prefix="link_fast_textbench_") as tmp:
        src, dst = Path(tmp) / "docs.jsonl.zst", Path(tmp) / "out.jsonl.zst"
        vocab_path = vocab_or_path if not isinstance(vocab_or_path, Vocab) else vocab_or_path.path
        if vocab_path is None:  # made in memory: a file, for the runs that load it (and its cache)
            vocab_path = cast(Vocab, vocab_or_path).save(Path(tmp) / "vocab.lfv")
        raw = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode("utf-8")
        src.write_bytes(zstandard.ZstdCompressor(level=3).compress(raw))
        size = sum(len(t.encode("utf-8")) for t in texts)
        seconds: dict[str, float] = {}
        log("vocabulary load, naive dict")
        started = time.perf_counter()
        vocab = Vocab.load(vocab_path)
        seconds["vocab load"] = time.perf_counter() - started
        started = time.perf_counter()
        table = word_table(vocab)
        seconds["naive dict"] = time.perf_counter() - started
        _, info = native.text_index(vocab)  # the cache made (warm) before anything is timed
        log(f"naive script on {size / 1e6:.1f} MB")
        seconds["naive"] = best_of(lambda: naive_script(src, dst, table, ratio, seed), repeat)
        options: dict[str, Any] = dict(ratio=ratio, seed=seed, progress=False)
        log("link-fast text, 1 worker")
        seconds["text"] = best_of(lambda: substitute_files(vocab, [src], dst, **options), repeat)

        def cold() -> None:
            native.forget()
            substitute_files(Vocab.load(vocab_path), [src], dst, **options)

        seconds["text with start-up"] = best_of(cold, repeat)
        started = time.perf_counter()
        native.forget()
        _, loaded = native.text_index(vocab)
        seconds["index load"] = time.perf_counter() - started
        for w in workers:
            if w > 1:
                log(f"link-fast text, {w} workers")
                run = functools.partial(substitute_files, vocab, [src], dst, workers=w, **options)
                seconds[f"text {w}w"] = best_of(run, repeat)
    seconds["naive with start-up"] = seconds["naive"] + seconds["vocab load"] + seconds["naive dict"]
    mb_s = {name: size / s / 1e6 for name, s in seconds.items() if name in _RATES or name.startswith("text ")}
    ratios = {
        "text / naive": seconds["naive"] / seconds["text"],
        "text / naive, with start-up": seconds["naive with start-up"] / seconds["text with start-up"],
    }
    for w in workers:
        if w > 1:
            ratios[f"text {w}w / text 1w"] = seconds["text"] / seconds[f"text {w}w"]
    return {
        "bytes": size,
        "documents": len(texts),
        "seconds": seconds,
        "mb_s": mb_s,
        "ratios": ratios,
        "index": {"cached as": info.how, "load": loaded.how, "nodes": loaded.nodes, "patterns": loaded.patterns},
    }


_RATES = ("naive", "naive with start-up", "text")
_ROWS = {  # link-fast bench's rows: name -> (seconds key, note)
    "naive text script": ("naive", "re.sub over words, dict of single words, json, zstd: file to file"),
    "naive text + start-up": ("naive with start-up", "the same, plus loading the vocabulary and making the dict"),
    "link-fast text": ("text", "1 worker, file to file, index cache warm"),
    "link-fast text + start-up": ("text with start-up", "the same, plus loading the vocabulary and the index"),
}


def text_rows(rows: dict, vocab: Vocab, texts: Sequence[str], n_tokens: int, **options: Any) -> None:
    """``link-fast bench``'s text-mode rows (per token of the same documents) into ``rows``."""
    from ..bench import Row

    seconds = run_text_bench(vocab, texts, **options)["seconds"]
    for name, (key, note) in _ROWS.items():
        rows[name] = Row(name, n_tokens, seconds[key], note=note)


def format_text_report(report: dict) -> str:
    lines = [
        f"text mode on {report['documents']:,} documents, {report['bytes'] / 1e6:.1f} MB (.jsonl.zst, file to file)"
    ]
    for name, rate in report["mb_s"].items():
        lines.append(f"  {name:<26}{rate:>8.2f} MB/s  {report['seconds'][name]:>7.2f} s")
    for name in ("vocab load", "naive dict", "index load"):
        lines.append(f"  {name:<26}{'':>8}       {report['seconds'][name]:>7.2f} s")
    for name, value in report["ratios"].items():
        lines.append(f"  {name:<34}{value:>7.2f}x")
    return "\n".join(lines)
