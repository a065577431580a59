"""``substitute_files`` (``link-fast text``): text files rewritten, in this process or in a pool
of worker processes, each output with its record ``OUTPUT.link.json``.

A file is read in chunks of lines; a chunk is rewritten where it is sent (``ChunkRewriter``)
and the outputs are written in order, with at most 2 x ``workers`` chunks in flight. The
document index of a line is its 0-based line number in its file (blank ``.jsonl`` lines and
skipped bad lines keep their number); the stream key is the file name without its extensions;
so the output does not depend on ``workers`` or on the chunk size. Outputs are written under a
temporary name and renamed when complete: a failed run leaves no output behind.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from ..errors import InputError
from ..io import atomic_file, fsync_dir, json_bytes, overwritten, read_files, refuse_link
from ..pool import Pool, WorkerDied, check_workers_can_start
from ..progress import Progress
from ..sampling import Sampling
from ..shards import LINK_RECORD_SUFFIX
from ..shards.records import relocatable
from ..substituter import Stats
from ..vocab import Vocab
from .files import DEFAULT_MAX_LINE_BYTES, LongLine, TextError, Writer, iter_lines, output_path_for, split_name
from .native import SUFFIX as CACHE_SUFFIX
from .native import IndexInfo, text_index
from .records import rewrite_chunk
from .substituter import TextSubstituter

CHUNK_BYTES = 4 << 20  # a chunk of lines ends at this many bytes, or at lines_per_chunk lines


def substitute_files(
    vocab: Vocab | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    sampling: Sampling | None = None,
    *,
    field: str = "text",
    substitutions_field: str | None = None,
    on_error: Literal["skip", "fail"] = "fail",
    workers: int = 1,
    tokenizer: str | os.PathLike | None = None,
    lines_per_chunk: int = 1000,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, dict]:
    """Rewrite text files (see ``link_fast.text``); returns {output path: record}.

    ``sampling``, or its options as keywords (``Sampling``'s fields); ``stream_key`` None
    means each file's name without extensions. ``output``: a file for a single input (its
    extension picks format and compression, which must be the input's format), or a directory
    where each input keeps its name. Each output also gets ``OUTPUT.link.json`` with the
    options and statistics. ``progress``: None = a bar (characters, with throughput) when
    stderr is a terminal. ``max_line_bytes``: a longer line (0: no limit) is an error, or a
    skipped bad line with ``on_error="skip"``; it is never read whole.
    """
    sampling = Sampling.from_options(sampling, **options)
    _check_run_options(on_error, max_line_bytes, workers)
    check_workers_can_start(workers)  # before anything is read or written
    if substitutions_field is not None and substitutions_field == field:
        raise InputError(
            f"substitutions_field {field!r} would replace the text field it describes: choose another name"
        )
    targets = _planned_outputs(inputs, output, [vocab.path if isinstance(vocab, Vocab) else vocab, tokenizer])
    started = time.perf_counter()
    if not isinstance(vocab, Vocab):
        vocab = Vocab.load(vocab)
    vocab_seconds = time.perf_counter() - started
    sampling.for_languages(vocab.languages)  # checks the languages before any file is opened
    run = _Run(
        vocab,
        sampling,
        field,
        substitutions_field,
        on_error,
        None if tokenizer is None else str(tokenizer),
        lines_per_chunk,
        max_line_bytes,
        Progress(None, progress, unit="chr"),
        log,
    )
    results: dict[str, dict] = {}
    rewriters = None
    try:
        rewriters = _Rewriters(run, workers, first_key=run.stream_key(inputs[0]))
        run.timing = {"vocab_seconds": round(vocab_seconds, 3), **rewriters.index_timing}
        for source, target in zip(inputs, targets, strict=True):
            results[str(target)] = run.file(rewriters, source, target)
    except BaseException:
        if rewriters is not None:
            rewriters.stop()  # kills the workers and waits for them
        raise
    finally:
        run.bar.close()
        if rewriters is not None:
            rewriters.close()
    return results


def _check_run_options(on_error, max_line_bytes, workers) -> None:
    if on_error not in ("skip", "fail"):
        raise InputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if not isinstance(max_line_bytes, int) or isinstance(max_line_bytes, bool) or max_line_bytes < 0:
        raise InputError(f"max_line_bytes must be a non-negative integer (0: no limit), got {max_line_bytes!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")


def _planned_outputs(inputs: Sequence, output, also_read: Sequence = ()) -> list[Path]:
    """Each input's output path, checked (formats, collisions, no link at an output's or its
    record's name, nothing overwritten that the run reads: an input, ``also_read``), and the
    output directory made."""
    if not inputs:
        raise InputError("no input files")
    for path in inputs:
        split_name(path)
        if not Path(path).is_file():
            raise TextError(path, _not_a_file(path))
    targets = [output_path_for(p, output, len(inputs)) for p in inputs]
    if len(set(targets)) != len(targets):
        raise InputError("two inputs have the same name, their outputs would collide")
    read = read_files([*inputs, *also_read])
    for source, target in zip(inputs, targets, strict=True):
        if split_name(source)[1] != split_name(target)[1]:
            raise InputError(f"{target}: the output must have the input's format ({split_name(source)[1]})")
        for written in (target, Path(f"{target}{LINK_RECORD_SUFFIX}")):
            refuse_link(written)
            replaced = overwritten(written, read)
            if replaced is not None:
                same = replaced == os.fspath(source)
                raise InputError(f"{written}: the output would overwrite {'its input' if same else replaced}")
    try:
        (targets[0].parent if targets[0] == Path(output) else Path(output)).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TextError(output, f"cannot create the output directory: {exc.strerror or exc}") from None
    return targets


def _not_a_file(path) -> str:
    """Why an input that is not a regular file cannot be read."""
    if Path(path).is_dir():
        return "is a directory, not a text file"
    if Path(path).exists():
        return "not a regular file (a pipe, socket or device)"
    return "no such file"


@dataclass
class _Run:
    """What every file of one ``substitute_files`` call shares."""

    vocab: Vocab
    sampling: Sampling
    field: str
    substitutions_field: str | None
    on_error: str
    tokenizer: str | None
    lines_per_chunk: int
    max_line_bytes: int
    bar: Progress
    log: Callable[[str], None] | None
    timing: dict = dataclasses.field(default_factory=dict)  # vocabulary load, native index: how and how long

    def say(self, message: str) -> None:
        if self.log is not None:
            (self.bar.write if self.bar.bar is not None else self.log)(message)  # above the bar, not into it

    def stream_key(self, source) -> str:
        return split_name(source)[0] if self.sampling.stream_key is None else self.sampling.stream_key

    def file(self, rewriters: _Rewriters, source, target: Path) -> dict:
        """Rewrite one file into ``target``; writes and returns its record."""
        started = time.perf_counter()
        stats = Stats.zero(self.vocab.languages, unit="characters")
        skipped: list[tuple[int, str]] = []
        writer = Writer(target)
        try:
            for data, chunk_stats, errors in rewriters.results(source, self._tasks(source)):
                writer.write(data)
                stats = stats + chunk_stats
                self.bar.update(chunk_stats.size_in, Path(source).name)
                for number, problem in errors:
                    if len(skipped) < 10:
                        self.say(f"{source}:{number}: {problem} (skipped)")
                    skipped.append((number, problem))
            writer.prepare()
            record = self._record(source, target, stats, skipped, time.perf_counter() - started)
            self.vocab.check_unchanged()  # what was read from it is what was checked
            _commit(writer, Path(f"{target}.link.json"), record)
        except BaseException:
            writer.abort()
            raise
        self.say(
            f"{source} -> {target}: {stats.documents:,} documents, {stats.total_substitutions:,} substitutions"
            + (f", {len(skipped):,} bad lines skipped" if skipped else "")
        )
        return record

    def _tasks(self, source) -> Iterator[tuple]:
        _, fmt, _ = split_name(source)
        key = self.stream_key(source)
        for chunk in _chunks(str(source), self.lines_per_chunk, CHUNK_BYTES, self.max_line_bytes):
            yield (str(source), key, fmt, self.field, self.substitutions_field, self.on_error, chunk)

    def _record(self, source, target: Path, stats: Stats, skipped: list, seconds: float) -> dict:
        vocab = self.vocab
        record = {
            "config": dict(
                self.sampling.for_languages(vocab.languages, self.stream_key(source)).to_dict(),
                tokenizer=self.tokenizer,
            ),
            "vocab": {"fingerprint": vocab.fingerprint, "languages": list(vocab.languages), "keys": vocab.n_keys},
            "input": str(source),
            "output": str(target),
            "field": self.field,
            "substitutions_field": self.substitutions_field,
            "vocab_path": None if vocab.path is None else os.path.abspath(vocab.path),
            "stats": stats.to_dict(),
            "skipped_lines": len(skipped),
            "skipped": [{"line": n, "problem": p} for n, p in skipped[:100]],
            "input_bytes": Path(source).stat().st_size,
            "seconds": round(seconds, 3),
            "timing": self.timing,
        }
        return relocatable(record, f"{target}{LINK_RECORD_SUFFIX}")


def _commit(writer: Writer, record_path: Path, record: dict) -> None:
    """Put a prepared output and its record in place, the record last, as ``apply`` does
    (runner/commit.py): the record is written and synced under a temporary name before any final
    name changes, so a failure there (a full disk) leaves the earlier output and its record as
    they were; then the old record goes, the output is renamed into place, and the record after it."""
    try:
        with atomic_file(record_path) as f:
            f.write(json_bytes(record))
            f.flush()
            os.fsync(f.fileno())
            if os.path.lexists(record_path):
                os.unlink(record_path)
                fsync_dir(record_path.parent)
            writer.commit()
    except OSError as exc:
        raise TextError(record_path, f"cannot write: {exc.strerror or exc}") from None


def _chunks(
    path: str, lines_per_chunk: int, chars_per_chunk: int, max_line_bytes: int | None = None
) -> Iterator[list[tuple[int, bytes | LongLine]]]:
    chunk, size = [], 0
    item: tuple[int, bytes | LongLine] | None
    for item in iter_lines(path, max_line_bytes):
        chunk.append(item)
        size += 0 if isinstance(item[1], LongLine) else len(item[1])
        item = None  # the rewriter frees a long line once decoded: hold no reference here
        if len(chunk) >= lines_per_chunk or size >= chars_per_chunk:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class ChunkRewriter:
    """Rewrites chunks of lines (tasks made by ``_Run._tasks``) with one ``TextSubstituter``,
    built once and moved to each new stream: in this process, or in each worker."""

    def __init__(self, vocab: Vocab, sampling: Sampling, tokenizer: str | None):
        self.vocab, self.sampling, self.tokenizer = vocab, sampling, tokenizer
        self._current: TextSubstituter | None = None

    def substituter(self, stream_key: str) -> TextSubstituter:
        current = self._current
        if current is None:
            tokenizer = None
            if self.tokenizer is not None:
                from ..tokenizer import load_tokenizer

                tokenizer = load_tokenizer(self.tokenizer)
            current = TextSubstituter(self.vocab, self.sampling.replace(stream_key=stream_key), tokenizer=tokenizer)
        elif current.sampling.stream_key != stream_key:  # a new file: only the stream base changes
            current = current.for_stream(stream_key)
        self._current = current
        return current

    def __call__(self, task: tuple) -> tuple[bytes, Stats, list[tuple[int, str]]]:
        path, stream_key, fmt, field, subs_field, on_error, lines = task
        return rewrite_chunk(self.substituter(stream_key), path, fmt, field, subs_field, on_error, lines)


_WORKER: ChunkRewriter | None = None  # a worker process's, made by _worker_init


def _worker_init(vocab_path: str, identity, sampling: Sampling, tokenizer: str | None) -> None:
    """``identity``: the vocabulary file's as the parent checked it (``Vocab.load``), or None."""
    global _WORKER
    _WORKER = ChunkRewriter(Vocab.load(vocab_path, validated=identity), sampling, tokenizer)


def _worker_rewrite(task: tuple) -> tuple:
    if _WORKER is None:
        raise RuntimeError("_worker_rewrite runs in a pool worker set up by _worker_init")
    return _WORKER(task)


class _Rewriters:
    """Where chunks are rewritten: in this process (``workers=1``) or in a pool."""

    def __init__(self, run: _Run, workers: int, first_key: str):
        self.workers, self.pool, self.local = workers, None, None
        self._temporary_vocab: str | None = None
        self.index_timing: dict = {}
        if workers == 1:
            self.local = ChunkRewriter(run.vocab, run.sampling, run.tokenizer)
            # built (tokenizer checked) before any file is opened
            self._timed(self.local.substituter(first_key).index_info)
            return
        try:
            vocab_path, identity = self._vocab_file(run.vocab)
            # the index cached here first, so that the workers load it rather than each build it
            self._timed(text_index(run.vocab if identity is not None else Vocab.load(vocab_path))[1])
            self.pool = Pool(
                workers, initializer=_worker_init, initargs=(vocab_path, identity, run.sampling, run.tokenizer)
            )
        except BaseException:
            self.close()
            raise

    def _timed(self, info: IndexInfo | None) -> None:
        if info is not None:
            self.index_timing = {"index": info.how, "index_seconds": round(info.seconds, 3)}

    def _vocab_file(self, vocab: Vocab) -> tuple[str, Any]:
        """The vocabulary's file for the workers (a temporary one for a vocabulary built in
        memory) and its identity, or None where the workers must check it themselves."""
        if vocab.path is not None:
            return str(vocab.path), vocab.identity
        with tempfile.NamedTemporaryFile(prefix="link_fast-", suffix=".lfv", delete=False) as f:
            self._temporary_vocab = f.name
        vocab.save(self._temporary_vocab)
        return self._temporary_vocab, None

    def results(self, path, tasks: Iterator[tuple]) -> Iterator[tuple]:
        """The rewritten chunks, in order. In the pool at most 2 x ``workers`` chunks are in
        flight, so memory stays bounded whatever the file's size; a worker that dies fails the
        file, naming the lines it held."""
        if self.pool is None:
            yield from map(cast(ChunkRewriter, self.local), tasks)  # workers == 1: made in __init__
            return
        window: deque = deque()  # (task number, first line, last line, future)
        number = 0
        while True:
            try:
                while len(window) < 2 * self.workers:
                    task = next(tasks, None)
                    if task is None:
                        break
                    lines = task[-1]
                    window.append((number, lines[0][0], lines[-1][0], self.pool.submit(number, _worker_rewrite, task)))
                    number += 1
                if not window:
                    return
                result = self.pool.result(window[0][3])
            except WorkerDied as died:  # the pool is stopped already
                held = [w for w in window if w[0] == died.task] or list(window)[:1]
                where = f" while rewriting lines {held[0][1]}..{held[0][2]}" if held else ""
                raise TextError(path, f"a worker process died ({died.how}){where}") from None
            window.popleft()
            yield result

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop()
            self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self._temporary_vocab is not None:
            Path(self._temporary_vocab).unlink(missing_ok=True)
            Path(f"{self._temporary_vocab}{CACHE_SUFFIX}").unlink(missing_ok=True)
            self._temporary_vocab = None
        self.local = None
