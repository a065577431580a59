"""Throughput of the kernel and of ``link-fast apply``, as ratios to what users would otherwise
run, all measured in one run on the same documents (``link-fast bench``, ``benches/``).

Baselines:

- ``text pipeline``: decode each document, replace whole words found in a word -> translation
  dict (one random draw per dictionary word), re-encode. What a LINK script on text does.
- ``python id loop``: a per-token Python loop over ids: the longest key first, one tuple
  lookup per length, the kernel's word-boundary flags. The usual id-level script.
- ``numpy copy``: ``tokens.copy()`` of the same array, the memory-bandwidth reference.

The slow baselines run on a prefix of the documents (``SAMPLE_TOKENS``) and are reported as
rates; every figure is the best of ``repeat`` runs, but for apply's large-shard rate: the
median of ``repeat`` pairs of runs (see ``run_bench``).
"""

from __future__ import annotations

import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .vocab import Vocab

SAMPLE_TOKENS = 200_000  # tokens the slow baselines run on
APPLY_TOKENS = 20_000_000  # the shard apply runs on: the corpus repeated, so start-up is amortised
_WORD = re.compile(r"\w+")


@dataclass
class Corpus:
    """Documents as one token array with offsets, and their text when a tokenizer is known."""

    name: str
    tokens: np.ndarray
    offsets: np.ndarray
    texts: list[str] | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    def head(self, n_tokens: int) -> Corpus:
        """The first documents, at least ``n_tokens`` tokens of them (all if fewer)."""
        n_docs = int(min(len(self.offsets) - 1, np.searchsorted(self.offsets, self.offsets[0] + n_tokens) + 1))
        offsets = self.offsets[: n_docs + 1]
        texts = self.texts[:n_docs] if self.texts is not None else None
        return Corpus(self.name, self.tokens[: offsets[-1]], offsets, texts)


@dataclass
class Row:
    name: str
    tokens: int
    seconds: float
    note: str = ""

    @property
    def mtok_s(self) -> float:
        return self.tokens / self.seconds / 1e6 if self.seconds > 0 else float("inf")


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls: the least disturbed by the rest of the machine."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


# -- baselines ------------------------------------------------------------------------------


def id_table(vocab: Vocab, corpus: Corpus, lang: int = 0) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Keys as id tuples -> the token ids of their first translation in language ``lang``.

    Only keys whose every token occurs in ``corpus``: the others cannot match there, and a
    dict of all 1.8M eng-deu keys would cost the baseline gigabytes it does not need.
    """
    t = vocab.tables
    n_languages = len(vocab.languages)
    key_offsets = np.asarray(t["key_offsets"])
    key_tokens = np.asarray(t["key_tokens"])
    starts = np.asarray(t["key_trans_start"])
    n_keys = len(key_offsets) - 1
    present = np.isin(key_tokens, np.unique(corpus.tokens[corpus.offsets[0] : corpus.offsets[-1]]))
    missing = np.add.reduceat(~present, key_offsets[:-1]) if n_keys and len(key_tokens) else np.zeros(n_keys, int)
    slots = np.arange(n_keys) * n_languages + lang
    keys = np.flatnonzero((missing == 0) & (np.diff(key_offsets) > 0) & (starts[slots + 1] > starts[slots]))
    trans = np.asarray(t["key_trans"])[starts[keys * n_languages + lang]]
    offsets = np.asarray(t["trans_offsets"])
    blob = np.asarray(t["trans_tokens"])
    return {
        tuple(key_tokens[key_offsets[k] : key_offsets[k + 1]].tolist()): tuple(
            blob[offsets[r] : offsets[r + 1]].tolist()
        )
        for k, r in zip(keys.tolist(), trans.tolist())
    }


def word_table(vocab: Vocab, lang: int = 0) -> dict[str, str]:
    """Single-word key texts -> their first translation in language ``lang`` (the text pipeline's dict)."""
    t = vocab.tables
    n_languages = len(vocab.languages)
    starts = np.asarray(t["key_trans_start"])
    key_offsets, key_text = np.asarray(t["key_text_offsets"]), bytes(np.asarray(t["key_text"]))
    trans_offsets, trans_text = np.asarray(t["trans_text_offsets"]), bytes(np.asarray(t["trans_text"]))
    key_trans = np.asarray(t["key_trans"])
    table: dict[str, str] = {}
    for key in range(vocab.n_keys):
        lo, hi = starts[key * n_languages + lang], starts[key * n_languages + lang + 1]
        if lo == hi:
            continue
        word = key_text[key_offsets[key] : key_offsets[key + 1]].decode("utf-8").strip()
        if word and " " not in word and word not in table:
            r = key_trans[lo]
            table[word] = trans_text[trans_offsets[r] : trans_offsets[r + 1]].decode("utf-8").strip()
    return table


def python_id_loop(
    corpus: Corpus, table: dict[tuple[int, ...], tuple[int, ...]], flags: np.ndarray, ratio: float, seed: int = 0
) -> list[int]:
    """Baseline (b): the id-level script one would write. At each token, try the longest key
    first (one tuple lookup per length), with the same word-boundary flags as the kernel."""
    from .tokenizer import FLAG_END_WORD, FLAG_GLUE_LEFT, FLAG_WS_START

    rng = random.Random(seed)
    longest = max((len(k) for k in table), default=0)
    flag = flags.tolist()
    out: list[int] = []
    for d in range(len(corpus.offsets) - 1):
        ids = corpus.tokens[corpus.offsets[d] : corpus.offsets[d + 1]].tolist()
        i, n = 0, len(ids)
        while i < n:
            if i and not flag[ids[i]] & FLAG_WS_START and flag[ids[i - 1]] & FLAG_END_WORD:
                out.append(ids[i])
                i += 1
                continue
            for length in range(min(longest, n - i), 0, -1):
                translation = table.get(tuple(ids[i : i + length]))
                if translation is not None and (i + length == n or not flag[ids[i + length]] & FLAG_GLUE_LEFT):
                    break
            else:
                out.append(ids[i])
                i += 1
                continue
            out.extend(translation if rng.random() < ratio else ids[i : i + length])
            i += length
    return out


def text_pipeline(corpus: Corpus, tokenizer, table: dict[str, str], ratio: float, seed: int = 0) -> list[list[int]]:
    """Baseline (a): decode, substitute whole words found in ``table``, re-encode."""
    rng = random.Random(seed)

    def replace(match: re.Match) -> str:
        word = match.group(0)
        translation = table.get(word)
        return translation if translation is not None and rng.random() < ratio else word

    out = []
    for d in range(len(corpus.offsets) - 1):
        text = tokenizer.decode(corpus.tokens[corpus.offsets[d] : corpus.offsets[d + 1]].tolist())
        out.append(tokenizer.encode(_WORD.sub(replace, text)))
    return out


# -- the run --------------------------------------------------------------------------------


def run_bench(
    vocab: Vocab,
    corpus: Corpus,
    *,
    tokenizer=None,
    shard: str | None = None,
    workers: Sequence[int] = (1,),
    ratio: float = 0.3,
    seed: int = 0,
    repeat: int = 3,
    sample_tokens: int = SAMPLE_TOKENS,
    apply_tokens: int = APPLY_TOKENS,
    log: Callable[[str], None] = lambda message: None,
    compare: Sequence[Vocab] = (),
) -> dict:
    """Measure everything on ``corpus``; returns {"rows": [...], "ratios": {...}, "memory_mb": {...}, ...}.

    ``shard``: the corpus as a shard on disk, for ``apply``; when None, the corpus repeated to
    ``apply_tokens`` and to a quarter of that is written to a temporary directory, and
    ``apply Nw large`` is the rate between the two: what a large shard sees, once the workers
    (about 0.35 s each to start) are up. Apply's chunks are cut smaller than its default when
    needed for the large shard to make 4 chunks per worker (of the most ``workers``), so that
    the quarter still gives every worker one: with idle workers in the small run, the
    difference would overstate the rate. ``tokenizer`` enables the text pipeline baseline and
    text mode. ``compare``: other vocabularies for the same tokenizer (more languages, say),
    each a kernel row on the same corpus and a ratio to ``vocab``'s kernel.
    """
    if not 0.0 <= ratio <= 1.0:
        raise InputError(f"ratio must be in [0, 1], got {ratio}")
    if any(not isinstance(w, int) or w < 1 for w in workers):
        raise InputError(f"workers must be positive integers, got {list(workers)}")
    rows: dict[str, Row] = {}
    memory: dict[str, float] = {}
    # apply first: this process's peak memory is then apply's, not the baselines'.
    with tempfile.TemporaryDirectory(prefix="link_fast_bench_") as tmp:
        shards, sizes, out_bytes = _bench_shards(Path(tmp), vocab, corpus, shard, apply_tokens)
        vocab_path = vocab.path if vocab.path is not None else vocab.save(Path(tmp) / "vocab.lfv")
        _bench_disk(rows, Path(tmp), out_bytes, sizes["large"], repeat, log)
        bench = _ApplyBench(
            Path(tmp),
            vocab_path,
            shards,
            sizes,
            ratio,
            seed,
            repeat,
            log,
            chunk_tokens=_chunk_tokens(sizes["large"], workers),
        )
        for w in workers:
            bench.run(w, rows, memory)
    stats = _bench_kernel(rows, vocab, corpus, ratio, seed, repeat, log)
    for other in compare:
        _bench_kernel(rows, other, corpus, ratio, seed, repeat, log, name=kernel_row_name(other))
    _bench_baselines(rows, vocab, corpus.head(sample_tokens), tokenizer, ratio, seed, log)
    _bench_training(rows, vocab, corpus, ratio, seed, repeat, log)
    return {
        "corpus": {"name": corpus.name, "documents": len(corpus.offsets) - 1, "tokens": corpus.n_tokens},
        "vocab": {"path": str(vocab.path or ""), "keys": vocab.n_keys, "languages": list(vocab.languages)},
        "ratio": ratio,
        "substituted_share": stats.total_substitutions / max(1, stats.eligible_candidates),
        "machine": machine(),
        "rows": [
            {"name": r.name, "tokens": r.tokens, "seconds": r.seconds, "mtok_s": r.mtok_s, "note": r.note}
            for r in sorted(rows.values(), key=lambda r: r.name.startswith(("write", "apply")))
        ],
        "ratios": _ratios(rows, workers),
        "memory_mb": memory,
    }


def _bench_shards(
    tmp: Path, vocab: Vocab, corpus: Corpus, shard: str | None, apply_tokens: int
) -> tuple[dict[str, str], dict[str, int], int]:
    """The shards apply runs on ({label: prefix}, {label: tokens}, the large output's bytes).
    Two sizes of the same documents: the difference of their times is the rate of a large
    shard, without the fixed cost of starting workers and mapping the vocabulary."""
    from .shards import ShardWriter, open_shard

    n = corpus.n_tokens
    if shard is not None and n >= apply_tokens:
        shards = {"large": shard}
    else:
        dtype = np.uint16 if vocab.vocab_size <= 65536 else np.int32
        tokens = corpus.tokens[corpus.offsets[0] : corpus.offsets[-1]].astype(dtype)
        copies = max(4, -(-apply_tokens // n))
        shards = {}
        for label, count in (("small", copies // 4), ("large", copies)):
            shards[label] = os.path.join(tmp, f"corpus_{label}")
            with ShardWriter(shards[label], dtype) as writer:
                for _ in range(count):
                    writer.write(tokens, corpus.offsets - corpus.offsets[0])
    sizes = {}
    for label, prefix in shards.items():
        with open_shard(prefix) as opened:
            sizes[label] = opened.n_tokens
            out_bytes = opened.n_tokens * np.dtype(opened.dtype).itemsize
    return shards, sizes, out_bytes


def _chunk_tokens(large: int, workers: Sequence[int]) -> int:
    """Apply's chunks: its default, or smaller so the large shard makes 4 per worker."""
    from .runner import DEFAULT_CHUNK_TOKENS

    return max(1, min(DEFAULT_CHUNK_TOKENS, large // (4 * max(workers, default=1))))


def _bench_disk(rows: dict, tmp: Path, out_bytes: int, tokens: int, repeat: int, log) -> None:
    log(f"write and fsync {out_bytes / 1e6:,.0f} MB (the disk's share of file to file)")
    junk = np.zeros(out_bytes, dtype=np.uint8)  # 100s of MB: freed before apply runs

    def write_and_sync():
        with open(tmp / "disk", "wb") as f:
            f.write(junk.data)
            f.flush()
            os.fsync(f.fileno())

    rows["write + fsync"] = Row(
        "write + fsync", tokens, best_of(write_and_sync, repeat), note="the output's bytes, for the disk's ceiling"
    )


class _ApplyBench:
    """``link-fast apply``, file to file, on the bench's shards."""

    def __init__(
        self,
        tmp: Path,
        vocab_path,
        shards: dict,
        sizes: dict,
        ratio: float,
        seed: int,
        repeat: int,
        log,
        *,
        chunk_tokens: int,
    ):
        self.tmp, self.vocab_path, self.shards, self.sizes = tmp, vocab_path, shards, sizes
        self.ratio, self.seed, self.repeat, self.log, self.chunk_tokens = ratio, seed, repeat, log, chunk_tokens

    def once(self, workers: int, label: str, memory: dict) -> float:
        from .runner import apply_shards

        started = time.perf_counter()
        out_dir = self.tmp / f"out{workers}{label}"
        records = apply_shards(
            self.vocab_path,
            [self.shards[label]],
            out_dir,
            ratio=self.ratio,
            seed=self.seed,
            workers=workers,
            chunk_tokens=self.chunk_tokens,
            progress=False,
        )
        for record in records.values():
            for role, usage in record["memory_mb"].items():
                for key, value in usage.items():
                    name = f"apply {workers}w {role} {key}"
                    memory[name] = max(memory.get(name, 0.0), value)
        seconds = time.perf_counter() - started
        for path in out_dir.iterdir():
            path.unlink()
        return seconds

    def run(self, w: int, rows: dict, memory: dict) -> None:
        self.log(f"link-fast apply, {w} worker{'s' if w > 1 else ''}, file to file")
        for label in self.shards:
            self.once(w, label, memory)  # warms the page cache
        # The two sizes run in pairs, one right after the other, and the rate comes from the
        # median pair: the machine's speed drifts less within a pair than across the run.
        pairs = [{label: self.once(w, label, memory) for label in self.shards} for _ in range(max(1, self.repeat))]
        large = self.sizes["large"]
        rows[f"apply {w}w"] = Row(
            f"apply {w}w",
            large,
            min(pair["large"] for pair in pairs),
            note=f"file to file, warm cache, with start-up, {self.chunk_tokens:,}-token chunks",
        )
        if "small" not in self.shards:
            return
        difference = statistics.median(pair["large"] - pair["small"] for pair in pairs)
        if difference > 0:
            rows[f"apply {w}w large"] = Row(
                f"apply {w}w large",
                large - self.sizes["small"],
                difference,
                note="the same, less start-up: the rate on a large shard",
            )
        else:
            self.log(
                f"apply {w}w: the two sizes took as long as each other (start-up dominates), "
                f"no large-shard rate: raise --apply-tokens"
            )


def kernel_row_name(vocab: Vocab) -> str:
    """The row of a compared vocabulary's kernel: its languages, all drawn."""
    return f"kernel, {len(vocab.languages)} languages"


def _bench_kernel(
    rows: dict, vocab: Vocab, corpus: Corpus, ratio: float, seed: int, repeat: int, log, name: str = "kernel"
):
    """The kernel on the whole corpus (and first the numpy copy); the kernel's statistics."""
    from .substituter import Substituter

    n = corpus.n_tokens
    if "numpy copy" not in rows:
        log(f"numpy copy of {n:,} tokens")
        rows["numpy copy"] = Row("numpy copy", n, best_of(lambda: corpus.tokens.copy(), repeat * 3))
    log(f"{name} (Substituter.apply, one core, {', '.join(vocab.languages)})")
    substituter = Substituter(vocab, ratio=ratio, seed=seed)
    # 3x the runs, as the numpy copy: every ratio rests on this figure, and a run takes 0.1 s
    rows[name] = Row(
        name,
        n,
        best_of(lambda: substituter.apply(corpus.tokens, corpus.offsets), repeat * 3),
        note=f"ratio {ratio}, {vocab.n_keys:,} keys",
    )
    return substituter.apply(corpus.tokens, corpus.offsets).stats


def _bench_baselines(rows: dict, vocab: Vocab, sample: Corpus, tokenizer, ratio: float, seed: int, log) -> None:
    """The python id loop, and with a tokenizer the text pipeline and text mode, on ``sample``."""
    log(f"python id loop on {sample.n_tokens:,} tokens")
    ids = id_table(vocab, sample)
    flags = np.asarray(vocab.tables["flags"])
    rows["python id loop"] = Row(
        "python id loop",
        sample.n_tokens,
        best_of(lambda: python_id_loop(sample, ids, flags, ratio, seed), 1),
        note=f"longest key first, {len(ids):,} keys that can occur",
    )
    if tokenizer is None or sample.texts is None:
        return
    log(f"text pipeline on {sample.n_tokens:,} tokens")
    words = word_table(vocab)
    rows["text pipeline"] = Row(
        "text pipeline",
        sample.n_tokens,
        best_of(lambda: text_pipeline(sample, tokenizer, words, ratio, seed), 1),
        note=f"decode, {len(words):,} words, re-encode",
    )
    from .text import TextSubstituter

    log("text mode (TextSubstituter)")
    texter = TextSubstituter(vocab, ratio=ratio, seed=seed, tokenizer=tokenizer)
    texts = sample.texts  # not None (checked above), for the lambda
    rows["text mode"] = Row(
        "text mode",
        sample.n_tokens,
        best_of(lambda: texter.apply_batch(texts), 1),
        note="link-fast text, per token of the same documents",
    )
    from .text.bench import text_rows

    log("link-fast text and the naive text script, file to file")
    text_rows(rows, vocab, texts, sample.n_tokens, ratio=ratio, seed=seed, repeat=2, log=log)


def _bench_training(rows: dict, vocab: Vocab, corpus: Corpus, ratio: float, seed: int, repeat: int, log) -> None:
    """LINK in the data loader against a plain GPTDataset read of the same samples
    (link_fast.training.bench), when torch and megatron-core are installed."""
    from .training import bench as training_bench

    if not training_bench.available():
        log("training rows skipped: they need torch and megatron-core")
        return
    if corpus.n_tokens < training_bench.SEQ:
        log(f"training rows skipped: the corpus holds less than one {training_bench.SEQ}-token sample")
        return
    log(f"training: GPTDataset of {training_bench.SEQ}-token samples, plain and through LinkGPTDataset")
    seconds, samples = training_bench.training_seconds(
        vocab, corpus.tokens, corpus.offsets, ratio=ratio, seed=seed, rounds=repeat
    )
    notes = {
        "GPTDataset read": f"megatron-core, {samples} samples of {training_bench.SEQ} tokens, ds[i]",
        "GPTDataset read + default_collate": f"the same, in batches of {training_bench.BATCH}",
        "LinkGPTDataset, per sample": f"ratio {ratio}, link[i]",
        "LinkGPTDataset, batched": f"batched=True and its collate_fn, batches of {training_bench.BATCH}",
    }
    for name, note in notes.items():
        rows[name] = Row(name, samples * training_bench.SEQ, seconds[name], note=note)


def _ratios(rows: dict, workers: Sequence[int]) -> dict[str, float]:
    kernel = rows["kernel"].mtok_s
    ratios = {
        "kernel / python id loop": kernel / rows["python id loop"].mtok_s,
        "kernel / numpy copy": kernel / rows["numpy copy"].mtok_s,
    }
    for name in rows:
        if name.startswith("kernel, "):
            ratios[f"{name} / kernel"] = rows[name].mtok_s / kernel
    if "text pipeline" in rows:
        ratios["kernel / text pipeline"] = kernel / rows["text pipeline"].mtok_s
        ratios["text mode / text pipeline"] = rows["text mode"].mtok_s / rows["text pipeline"].mtok_s
    for ours, naive in (
        ("link-fast text", "naive text script"),
        ("link-fast text + start-up", "naive text + start-up"),
    ):
        if ours in rows:
            ratios[f"{ours} / {naive}"] = rows[ours].mtok_s / rows[naive].mtok_s
    for ours, plain in (
        ("LinkGPTDataset, per sample", "GPTDataset read"),
        ("LinkGPTDataset, batched", "GPTDataset read + default_collate"),
    ):
        if ours in rows:
            ratios[f"{ours} / {plain}"] = rows[ours].mtok_s / rows[plain].mtok_s
    suffix = " large" if f"apply {workers[0]}w large" in rows else ""
    first = f"apply {workers[0]}w{suffix}"
    for w in workers:
        name = f"apply {w}w{suffix}"
        if name not in rows:
            continue
        ratios[f"{name} / kernel"] = rows[name].mtok_s / kernel
        if w != workers[0] and first in rows:
            ratios[f"{name} / {first}"] = rows[name].mtok_s / rows[first].mtok_s
    return ratios


# ``python -c`` puts the working folder first on sys.path: run from a folder holding a clone of
# this repository, its source folder link_fast/ (no compiled extensions) would be imported in
# place of the installed package. The child drops that entry before importing anything.
_INSTALLED_ONLY = """
import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
"""


def python_child(code: str, *args: str) -> list[str]:
    """The command running ``code`` with ``args`` in a fresh interpreter that imports the
    installed link_fast, never a folder of that name where it runs."""
    return [sys.executable, "-c", _INSTALLED_ONLY + code, *args]


_COMPILE_PROBE = """
import json, resource, sys, time
from link_fast.compiler import compile_vocab, form_texts
from link_fast.lexicon import load_lexicon
from link_fast.runner.memory import memory_mb
from link_fast.tokenizer import load_tokenizer
tokenizer_path, dictionaries, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
started = time.perf_counter()
vocab = compile_vocab(tokenizer_path, dictionaries, progress=False)
seconds = time.perf_counter() - started
peak = memory_mb()["peak_rss"]
workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
vocab.save(output)
tokenizer = load_tokenizer(tokenizer_path)
texts = form_texts(tokenizer, [load_lexicon(path, lang) for lang, path in dictionaries.items()])
started = time.perf_counter()
tokenizer.encode_batch(texts)
print(json.dumps({"seconds": seconds, "encode_seconds": time.perf_counter() - started, "forms": len(texts),
                  "keys": vocab.n_keys, "peak_rss_mb": peak, "workers_peak_rss_mb": workers_peak}))
"""


def compile_row(tokenizer_path, dictionaries: dict, log: Callable[[str], None] = lambda message: None) -> dict:
    """Compile ``dictionaries`` ({language: path}) for the tokenizer in a fresh process: its
    time, as a ratio to the tokenizer's own batch encoding of the same forms (in one process,
    after the compile), its peak RSS (and its encoding workers'), and the vocabulary (in
    memory, under ``"vocab"``). A fresh process, so that the peak is the compile's alone."""
    import json
    import subprocess

    log(f"compiling {', '.join(dictionaries)} in a fresh process, then encoding its forms alone")
    with tempfile.TemporaryDirectory(prefix="link_fast_bench_") as tmp:
        output = Path(tmp) / "vocab.lfv"
        paths = {lang: str(path) for lang, path in dictionaries.items()}
        done = subprocess.run(
            python_child(_COMPILE_PROBE, str(tokenizer_path), json.dumps(paths), str(output)),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise InputError(f"compiling for the bench failed: {done.stderr.strip().splitlines()[-1:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["size"] = output.stat().st_size
        loaded = Vocab.load(output)
        row["vocab"] = Vocab({name: np.array(table) for name, table in loaded.tables.items()}, loaded.meta)
    row["ratio"] = row["seconds"] / max(row["encode_seconds"], 1e-9)
    return row


def format_compile_row(row: dict) -> str:
    return (
        f"compile         {row['seconds']:.1f} s for {row['forms']:,} forms, {row['keys']:,} keys "
        f"({row['ratio']:.2f}x the tokenizer's batch encoding of the forms, {row['encode_seconds']:.1f} s); "
        f"peak RSS {row['peak_rss_mb']:,.0f} MB (encoding workers {row['workers_peak_rss_mb']:,.0f} MB); "
        f"file {row['size'] / 1e6:,.1f} MB"
    )


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or "unknown", "cores": os.cpu_count(), "python": sys.version.split()[0]}


def format_report(report: dict) -> str:
    c, m = report["corpus"], report["machine"]
    lines = [
        f"corpus {c['name']}: {c['documents']:,} documents, {c['tokens']:,} tokens; "
        f"vocabulary {report['vocab']['keys']:,} keys ({', '.join(report['vocab']['languages'])}); "
        f"ratio {report['ratio']} ({report['substituted_share']:.1%} substituted)",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}",
        "",
    ]
    # columns as wide as the longest name, so the figures line up
    width = max(len(r["name"]) for r in report["rows"]) + 2
    lines.append(f"{'':<{width}}{'M tokens/s':>12}  {'tokens':>12}  note")
    for r in report["rows"]:
        lines.append(f"{r['name']:<{width}}{r['mtok_s']:>12.2f}  {r['tokens']:>12,}  {r['note']}")
    lines.append("")
    width = max(map(len, report["ratios"]), default=0) + 2
    for name, value in report["ratios"].items():
        lines.append(f"{name:<{width}}{value:>10.2f}x" if value >= 1 else f"{name:<{width}}{value:>10.3f}x")
    lines.append("")
    lines.append(
        "memory of link-fast apply, MB (peak_rss: peak resident, mapped files included; "
        "anon_rss: the heap, at the end of a chunk)"
    )
    for name, value in report["memory_mb"].items():
        lines.append(f"  {name:<34}{value:>8.0f}")
    return "\n".join(lines)


def corpus_from_texts(name: str, texts: Sequence[str], tokenizer, min_tokens: int = 0) -> Corpus:
    """Tokenize ``texts`` (repeated until ``min_tokens``) into a corpus."""
    encoded = [np.asarray(ids, dtype=np.uint32) for ids in tokenizer.encode_batch(list(texts))]
    if not encoded or not sum(len(e) for e in encoded):
        raise InputError(f"{name}: no tokens to measure on")
    all_texts = list(texts)
    total = sum(len(e) for e in encoded)
    copies = max(1, -(-min_tokens // total))
    encoded, all_texts = encoded * copies, all_texts * copies
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return Corpus(name, np.concatenate(encoded), offsets, all_texts)


def corpus_from_shard(prefix: str, tokenizer=None) -> Corpus:
    """A shard's tokens (mapped, then read into memory once) as a corpus."""
    from .shards import open_shard

    shard = open_shard(prefix)
    offsets = shard.offsets(0, shard.n_sequences)
    tokens = np.array(shard.tokens[offsets[0] : offsets[-1]])
    offsets = offsets - offsets[0]
    texts = None
    if tokenizer is not None:
        texts = [tokenizer.decode(tokens[offsets[d] : offsets[d + 1]].tolist()) for d in range(shard.n_sequences)]
    return Corpus(shard.name, tokens, offsets, texts)
