"""Rewriting one shard into one output (``rewrite_shard``): hand its chunks to the pool through
a bounded window, account their results strictly in order, then commit the output."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io import open_exclusive, temporary_path
from ..mapped import MappedFiles, fault_count
from ..pool import WorkerDied
from ..shards import ShardError, ShardWriter
from ..shards.records import relocatable
from ..shards.writer import FlagWriter
from ..substituter import Piece, Stats, Substituter
from .chunks import KERNEL_DTYPES, chunk_bounds, run_chunk
from .commit import commit_output
from .memory import memory_mb

# A stretch of a long document holds at least this many tokens whatever the chunk size, so that
# a small --chunk-tokens does not make a long document thousands of tiny tasks.
MIN_STRETCH = 1 << 12


class _Output:
    """The writers of one output and what its chunks have added up to."""

    def __init__(self, shard, paths: dict, options: dict):
        dtype = np.dtype(options["out_dtype"])
        self.data = ShardWriter(
            paths["data"],
            dtype,
            format=shard.format,
            document_indices=shard.document_indices,
            tokenizer_name=shard.tokenizer_name,  # the input's, checked against the vocabulary's (apply)
        )
        self.mask = (
            ShardWriter(paths["mask"], np.uint8, format=shard.format, document_indices=shard.document_indices)
            if options["mask"]
            else None
        )
        # datatrove's loss mask, moved with the substitutions (Substituter.apply's ``loss``)
        self.loss = FlagWriter(f"{paths['data']}.ds.loss") if shard.loss is not None else None
        self.writers: list = [w for w in (self.data, self.mask, self.loss) if w is not None]
        self.stats = None
        self.worker_memory: dict[str, float] = {}

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()


def account_chunk(output: _Output, result: tuple, continues: bool = False) -> int:
    """Add one chunk's result, in order, to its output; the number of input tokens it covered.
    ``continues``: the chunk is a stretch of a document after its first (``plan_chunks``)."""
    _start, tokens, offsets, mask, chunk_stats, written, memory, loss = result
    for key, value in memory.items():
        output.worker_memory[key] = max(output.worker_memory.get(key, 0.0), value)
    if written:  # the worker wrote the chunk into the writers' files itself
        for writer in output.writers:
            writer.extend_written(np.diff(offsets), continues=continues)
    else:
        output.data.write(tokens, offsets, continues=continues)
        if output.mask is not None:
            output.mask.write(mask, offsets, continues=continues)
        if output.loss is not None:
            output.loss.write(loss, offsets, continues=continues)
    output.stats = chunk_stats if output.stats is None else output.stats + chunk_stats
    return chunk_stats.tokens_in


def plan_chunks(
    shard, chunk_tokens: int, substituter: Callable[[], Substituter]
) -> list[tuple[int, int, Piece | None]]:
    """The chunks of ``shard``, (start, stop, piece): sequences [start, stop) of about
    ``chunk_tokens`` tokens (``chunk_bounds``), and for each sequence longer than
    ``chunk_tokens`` (and ``MIN_STRETCH``) one chunk per stretch of it, cut by
    ``Substituter.cuts`` (``substituter()`` makes one): memory follows the chunk size, not the
    longest document, and the output is the same."""
    sizes = np.asarray(shard.sizes)
    bounds = chunk_bounds(sizes, chunk_tokens).tolist()
    every = max(chunk_tokens, MIN_STRETCH)
    long = np.flatnonzero(sizes > every)
    if not len(long):
        return [(a, b, None) for a, b in zip(bounds[:-1], bounds[1:])]
    cutter = substituter()
    chunks: list[tuple[int, int, Piece | None]] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        for sequence in long[np.searchsorted(long, a) : np.searchsorted(long, b)].tolist():
            if a < sequence:
                chunks.append((a, sequence, None))
            chunks += [(sequence, sequence + 1, piece) for piece in _stretches(shard, sequence, every, cutter)]
            a = sequence + 1
        if a < b:
            chunks.append((a, b, None))
    return chunks


def _stretches(shard, sequence: int, every: int, cutter: Substituter) -> list[Piece]:
    """Sequence ``sequence`` of ``shard`` cut into stretches of about ``every`` tokens."""
    first, last = (int(x) for x in shard.offsets(sequence, sequence + 1))
    if shard.tokens.dtype not in KERNEL_DTYPES:  # widened a chunk at a time, so held whole
        raise ShardError(
            shard.paths[0],
            f"sequence {sequence} holds {last - first:,} tokens, more than a chunk ({every:,}); sequences of "
            f"{shard.dtype} tokens are not cut: give a larger --chunk-tokens",
        )
    try:
        return cutter.cuts(shard.tokens, first, last, every, release=shard.release_tokens)
    except InputError as exc:
        raise ShardError(shard.paths[0], f"{exc} (in sequence {sequence})") from None


def _direct_options(output: _Output, paths: dict, sizes_path: Path, n_chunks: int) -> dict:
    """Where pool workers write their chunks (``WorkerState.run_chunk``)."""
    with open_exclusive(sizes_path) as f:
        f.write(np.full(n_chunks, -1, dtype="<i8").tobytes())
    return {
        "sizes": str(sizes_path),
        "data": output.data.temp_data_path,
        "mask": output.mask.temp_data_path if output.mask else None,
        "loss": output.loss.temp_data_path if output.loss else None,
        "name": str(paths["data"]),
    }


def _run_chunks(shard, output: _Output, tasks: list, pool, workers: int, bar) -> None:
    """Submit the tasks, at most ``2 x workers`` ahead, and account their results in order."""
    window: deque = deque()
    next_task = 0
    while next_task < len(tasks) or window:
        try:
            while next_task < len(tasks) and len(window) < 2 * workers:
                window.append((next_task, pool.submit(next_task, run_chunk, tasks[next_task])))
                next_task += 1
            result = pool.result(window[0][1])
        except WorkerDied as died:  # the pool is stopped already: name the chunk the worker held
            lost = died.task if died.task is not None else window[0][0] if window else next_task
            raise ShardError(
                shard.paths[0],
                f"a worker process died ({died.how}) while rewriting sequences "
                f"{tasks[lost][1]}..{tasks[lost][2] - 1} (chunk {lost + 1} of {len(tasks)}); "
                "--resume continues from this shard",
            ) from None
        piece = tasks[window.popleft()[0]][5]
        bar.update(account_chunk(output, result, piece is not None and piece.part > 0), shard.name)


def _record(shard, paths: dict, output: _Output, outputs: dict, expected: dict, started: float) -> dict:
    stats = output.stats
    if stats is None:  # an empty shard
        stats = Stats.zero(tuple(expected["vocab"]["languages"]))
    record = dict(
        expected,
        inputs=list(shard.paths),
        outputs=[str(p) for p in outputs],
        output_files={Path(p).name: size for p, size in outputs.items()},
        mask_shard=paths["mask"].name if output.mask is not None else None,
        stats=stats.to_dict(),
        seconds=round(time.perf_counter() - started, 3),
        memory_mb={"main": memory_mb(), "worker": output.worker_memory or memory_mb()},
        link_fast_version=__version__,
    )
    return relocatable(record, paths["stats"])


def rewrite_shard(
    shard, paths: dict, options: dict, expected: dict, pool, workers: int, chunk_tokens: int, bar, vocab
) -> dict:
    """Rewrite ``shard`` into the output at ``paths`` and commit it; its record. Nothing is
    committed unless ``vocab``'s file is still the one loaded (``Vocab.check_unchanged``)."""
    started = time.perf_counter()
    mapped, faults = MappedFiles.of(shard.paths), fault_count()  # this process reads the index's maps
    output = _Output(shard, paths, options)
    sizes_path = temporary_path(paths["data"], ".sizes")
    try:
        chunks = plan_chunks(shard, chunk_tokens, lambda: Substituter(vocab, **options["substituter"]))
        if workers > 1:  # workers write their chunks into the writers' files
            options = dict(options, direct=_direct_options(output, paths, sizes_path, len(chunks)))
        tasks = [(shard.prefix, a, b, options, i, piece) for i, (a, b, piece) in enumerate(chunks)]
        _run_chunks(shard, output, tasks, pool, workers, bar)
        mapped.check(faults)  # nothing read from an input truncated meanwhile is committed
        outputs = {}
        for writer in output.writers:  # complete and synced under temporary names; commit_output renames
            outputs.update(writer.prepare())
    except BaseException:  # workers still writing write into removed files, then are stopped (apply_shards)
        output.abort()
        mapped.check()  # a failure caused by what a truncated input read as is named for it
        raise
    finally:
        sizes_path.unlink(missing_ok=True)
    try:
        record = _record(shard, paths, output, outputs, expected, started)
        vocab.check_unchanged()
        commit_output(paths, output.writers, record)
    except BaseException:
        output.abort()
        raise
    return record
