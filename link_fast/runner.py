"""Rewrite whole shards: ``apply_shards`` and ``link-fast apply``.

Each input shard is cut into chunks of whole sequences (about ``chunk_tokens`` tokens each).
Worker processes memory-map the shard and the vocabulary themselves, so a task is a few
integers. A worker writes its rewritten chunk into the output itself, at the offset the
chunks before it leave (it learns their sizes through a small shared file); the parent
accounts the chunks strictly in order through a bounded window, which keeps memory at about
``chunk_tokens x workers`` whatever the shard size, and writes the index. With one worker
everything runs in this process. A Megatron sequence is one document for sampling: its
index in the shard is the document index, and the shard's name is the default stream key, so
output bytes do not depend on the number of workers or the chunk size.

Outputs per input ``NAME``: ``NAME.bin/.idx`` (or ``.ds`` files for datatrove input),
optionally ``NAME_mask.*`` (uint8, same sequence lengths) and ``NAME.link.json`` (config,
vocabulary, the input's identity, the output files and their sizes, statistics, seconds). All
files are written under temporary names and put in place together (``_commit_output``): the
old record goes first, ``NAME.link.json`` comes last and marks a finished output. ``resume=True``
skips an input only when that record matches the options, the vocabulary, the input as it is
now and the output files as they are now. No output path may be an input file, and masks
written by link-fast (their ``NAME.link.json`` lists them) are skipped as inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

import numpy as np

from . import __version__
from .errors import InputError
from .io import fsync_dir, json_bytes, remove_dead_temporaries, temporary_path
from .pool import Pool, WorkerDied
from .progress import Progress
from .shards import LINK_RECORD_SUFFIX, SHARD_SUFFIXES, ShardError, ShardWriter, find_shards, mask_owner, open_shard
from .substituter import Stats, Substituter, checked_config
from .vocab import FileIdentity, Vocab

DEFAULT_CHUNK_TOKENS = 4_000_000
# Fault injection for the crash-safety tests: kill this process with SIGKILL after writing this
# many chunks (0 = never). Lets a test stop a run at a known point instead of racing a timer.
FAULT_AFTER_CHUNKS = int(os.environ.get("LINK_FAST_FAULT_AFTER_CHUNKS", "0") or 0)
OUT_DTYPES = {"uint16": np.dtype(np.uint16), "int32": np.dtype(np.int32), "uint32": np.dtype(np.uint32)}
KERNEL_DTYPES = (np.dtype(np.uint16), np.dtype(np.int32), np.dtype(np.uint32))


def chunk_bounds(sizes: np.ndarray, chunk_tokens: int) -> np.ndarray:
    """Sequence indices cutting a shard into chunks of about ``chunk_tokens`` tokens."""
    n = len(sizes)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    ends = np.cumsum(sizes, dtype=np.int64)
    cuts = np.searchsorted(ends, np.arange(chunk_tokens, int(ends[-1]), chunk_tokens, dtype=np.int64), side="left") + 1
    return np.unique(np.concatenate(([0], np.minimum(cuts, n), [n]))).astype(np.int64)


# -- worker side ---------------------------------------------------------------------------------

_WORKER: dict = {}


def memory_mb() -> dict[str, float]:
    """This process's peak resident set (VmHWM: heap plus mapped file pages) and its anonymous
    resident memory now (RssAnon: what the page cache cannot take back), in MB. Linux; elsewhere
    the peak from getrusage and no RssAnon."""
    found = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "RssAnon"):
                    found[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    if "VmHWM" not in found:
        import resource

        found["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)
    return {"peak_rss": round(found["VmHWM"], 1), "anon_rss": round(found.get("RssAnon", 0.0), 1)}


def _worker_init(vocab: Vocab | tuple[str, FileIdentity]) -> None:
    """Set up a worker: the parent's vocabulary in-process, or in a worker process the file the
    parent loaded and checked, mapped again (and refused if it changed since)."""
    _WORKER.clear()
    if not isinstance(vocab, Vocab):
        path, identity = vocab
        vocab = Vocab.load(path, validated=identity)
    _WORKER["vocab"] = vocab
    _WORKER["shards"] = {}
    _WORKER["substituters"] = {}


def _run_chunk(task: tuple) -> tuple:
    """Rewrite sequences [start, stop) of one shard, chunk ``index`` of its output. Runs in a
    worker (or in-process)."""
    prefix, start, stop, options, index = task
    direct = options.get("direct")
    # A chunk that fails publishes no size: the chunks after it wait until the parent, which
    # collects results in order, meets the error and stops the pool.
    result = _substitute_chunk(prefix, start, stop, options)
    if direct is None:
        return start, result.tokens, result.offsets, result.mask, result.stats, False, memory_mb()
    # In a pool, each worker writes its chunk into the output itself, at the offset the chunks
    # before it leave: sending it back through the pool's pipe, or through a file of its own
    # that the parent appends, would cost a copy and the parent's core.
    try:
        _publish_size(direct, index, len(result.tokens))
        before = _wait_for_sizes(direct, index)
        for kind, array in (("data", result.tokens), ("mask", result.mask)):
            if array is None:
                continue
            data = memoryview(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))).cast("B")
            position = before * array.dtype.itemsize
            fd = _worker_fds(direct)[kind]
            while len(data):
                written = os.pwrite(fd, data, position)
                data, position = data[written:], position + written
    except OSError as exc:
        raise ShardError(direct["name"], f"cannot write: {exc.strerror or exc}") from None
    return start, None, result.offsets, None, result.stats, True, memory_mb()


def _substitute_chunk(prefix: str, start: int, stop: int, options: dict):
    shards = _WORKER["shards"]
    shard = shards.get(prefix)
    if shard is None:
        for old in shards.values():
            old.close()
        shards.clear()
        shard = shards[prefix] = open_shard(prefix)
    key = json.dumps(options["substituter"], sort_keys=True)
    substituter = _WORKER["substituters"].get(key)
    if substituter is None:
        substituter = _WORKER["substituters"][key] = Substituter(_WORKER["vocab"], **options["substituter"])
    offsets = shard.offsets(start, stop)
    tokens = shard.tokens
    if tokens.dtype not in KERNEL_DTYPES:  # e.g. int64 or uint8 shards: widen this chunk only
        piece = np.asarray(tokens[offsets[0] : offsets[-1]])
        if len(piece) and (piece.min() < 0 or piece.max() > np.iinfo(np.int32).max):
            raise InputError(f"token ids of {shard.dtype} do not fit int32")
        tokens, offsets = piece.astype(np.int32), offsets - offsets[0]
    try:
        result = substituter.apply(tokens, offsets, first_doc=start, mask=options["mask"],
                                   out_dtype=options["out_dtype"])
    except InputError as exc:
        # name the file and the sequence: the kernel only knows positions in the chunk
        raise ShardError(shard.paths[0], f"{exc} (in sequences {start}..{stop - 1})") from None
    shard.release(start, stop)
    return result


def _worker_fds(direct: dict) -> dict[str, int]:
    """A worker's descriptors of the files of the output being written, opened once per
    output. Never O_CREAT: a file the parent has removed (the run failed) is not brought back."""
    cached = _WORKER.get("fds")
    if cached is None or cached[0] != direct["sizes"]:
        if cached is not None:
            for fd in cached[1].values():
                os.close(fd)
        _WORKER["fds"] = None
        fds = {}
        try:
            for kind in ("sizes", "data", "mask"):
                if direct.get(kind):
                    fds[kind] = os.open(direct[kind], os.O_RDWR)
        except OSError:
            for fd in fds.values():
                os.close(fd)
            raise
        cached = _WORKER["fds"] = (direct["sizes"], fds)
        _WORKER["known_sizes"] = (0, 0)  # this output's first chunks whose sizes are all known: count, tokens
    return cached[1]


def _publish_size(direct: dict, index: int, n_tokens: int) -> None:
    os.pwrite(_worker_fds(direct)["sizes"], struct.pack("<q", n_tokens), 8 * index)


def _wait_for_sizes(direct: dict, index: int) -> int:
    """The number of tokens the chunks before ``index`` write, once they all know it. They were
    handed out before this one and publish their size before they wait, so this ends, unless
    one fails: then the parent, collecting results in order, meets its error and stops the pool;
    or a worker dies: that breaks the pool, which kills the other workers (pool.py).
    A worker's chunks of one output come in rising order, so what it learnt for an earlier one
    (``known_sizes``) is a prefix of what it needs now."""
    fd, pause = _worker_fds(direct)["sizes"], 0.0001
    known, total = _WORKER["known_sizes"]
    while True:
        sizes = np.frombuffer(os.pread(fd, 8 * (index - known), 8 * known), dtype="<i8")  # -1: not known yet
        unknown = np.flatnonzero(sizes < 0)
        settled = len(sizes) if len(unknown) == 0 else int(unknown[0])
        known, total = known + settled, total + int(sizes[:settled].sum())
        _WORKER["known_sizes"] = (known, total)
        if known == index:
            return total
        time.sleep(pause)
        pause = min(2 * pause, 0.005)


class _InProcess:
    """The pool interface (``pool.Pool``), run in this process (workers=1): no start-up, easy
    to debug. A task runs, or raises, when it is submitted."""

    def __init__(self, vocab: Vocab):
        _worker_init(vocab)

    def submit(self, task: int, fn, *args):
        return fn(*args)

    def result(self, done):
        return done

    def close(self):
        for shard in _WORKER.get("shards", {}).values():
            shard.close()
        _WORKER.clear()

    def stop(self):
        self.close()


# -- parent side ----------------------------------------------------------------------------------


def _output_paths(output_dir: Path, name: str) -> dict[str, Path]:
    return {"data": output_dir / name, "mask": output_dir / f"{name}_mask",
            "stats": output_dir / f"{name}{LINK_RECORD_SUFFIX}"}


def _finished(stats_path: Path, expected: dict) -> dict | None:
    """The record of a finished output, or None. Finished: the record exists, says the same
    as ``expected`` (options, vocabulary, mask, dtype, and the input's identity: its files'
    sizes and mtimes and a fingerprint), and every file it lists is there with its recorded size."""
    try:
        done = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(done, dict) or any(done.get(k) != v for k, v in expected.items()):
        return None
    files = done.get("output_files")
    if not isinstance(files, dict) or not files:  # a record of an earlier link-fast: nothing to verify with
        return None
    for name, size in files.items():
        try:
            if os.stat(stats_path.parent / name).st_size != size:
                return None
        except (OSError, TypeError, ValueError):
            return None
    return done


_FINGERPRINT_SAMPLE = 1 << 16  # bytes at each end of a data file that the fingerprint covers


def _input_identity(shard) -> dict:
    """What resume compares to tell that an input is the one an output was made from: each
    file's size and mtime, and a fingerprint: a hash of the whole index (.idx / .ds.index,
    small next to the data) and of the data file's first and last 64 KiB."""
    files, digest = {}, hashlib.sha256()
    index = shard.paths[1]  # Megatron: [.bin, .idx]; datatrove: [.ds, .ds.index, ...]
    path = index
    try:
        for path in shard.paths:
            stat = os.stat(path)
            files[os.path.basename(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        path = index
        with open(index, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        path = shard.paths[0]
        with open(path, "rb") as f:
            digest.update(f.read(_FINGERPRINT_SAMPLE))
            size = os.fstat(f.fileno()).st_size
            if size > _FINGERPRINT_SAMPLE:
                f.seek(max(_FINGERPRINT_SAMPLE, size - _FINGERPRINT_SAMPLE))
                digest.update(f.read(_FINGERPRINT_SAMPLE))
    except OSError as exc:
        raise ShardError(path, f"cannot read: {exc.strerror or exc}") from None
    return {"files": files, "fingerprint": f"sha256:{digest.hexdigest()}"}


def _vocab_contents(vocab: Vocab) -> str:
    """A hash of the vocabulary's tables: what it substitutes, whatever its header says (the
    tokenizer fingerprint alone does not tell two vocabularies of one tokenizer apart)."""
    digest = hashlib.sha256()
    for name in sorted(vocab.tables):
        array = np.ascontiguousarray(vocab.tables[name])
        digest.update(f"{name}:{array.dtype.str}:{array.size};".encode())
        digest.update(memoryview(array).cast("B"))
    return f"sha256:{digest.hexdigest()}"


def _refuse_overwriting_inputs(prefixes: Sequence[str], output_dir: Path, mask: bool) -> None:
    """Raise before anything is written when an output path (data, mask, record, or a stale
    file of the same name that committing removes) is one of the input files: the same file
    (device and inode) through the same directory, a symbolic link or a hard link."""
    inputs: dict[tuple[int, int], str] = {}
    for prefix in prefixes:
        for suffix in SHARD_SUFFIXES:
            try:
                stat = os.stat(prefix + suffix)
            except OSError:
                continue
            inputs[(stat.st_dev, stat.st_ino)] = prefix + suffix
    names = {os.path.basename(p) for p in prefixes}
    for prefix in prefixes:
        name = os.path.basename(prefix)
        if mask and f"{name}_mask" in names:
            raise InputError(f"{name}_mask is an input and the mask of {name}: their outputs would collide")
        for stem in (name, f"{name}_mask"):
            for suffix in SHARD_SUFFIXES + (LINK_RECORD_SUFFIX,):
                target = output_dir / f"{stem}{suffix}"
                try:
                    stat = os.stat(target)
                except OSError:
                    continue
                source = inputs.get((stat.st_dev, stat.st_ino))
                if source is not None:
                    same = os.path.abspath(target) == os.path.abspath(source)
                    raise ShardError(target, "the output would overwrite its input" if same else
                                             f"the output would overwrite the input {source} (the same file)")


def apply_shards(
    vocab: Vocab | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    ratio: float = 0.3,
    portion: float = 1.0,
    seed: int = 0,
    languages: Mapping[str, float] | None = None,
    ratio_basis: Literal["candidates", "words"] = "candidates",
    lang_scope: Literal["word", "document"] = "word",
    stream_key: str | None = None,
    workers: int = 1,
    mask: bool = False,
    out_dtype: Literal["auto", "uint16", "int32", "uint32"] = "auto",
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    resume: bool = False,
    rank: int = 0,
    world_size: int = 1,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Rewrite every shard of ``inputs`` into ``output_dir``; returns {name: statistics record}.

    ``inputs``: shard prefixes, files, directories or globs. ``stream_key`` defaults to each
    shard's name. ``rank``/``world_size`` take every ``world_size``-th input from ``rank`` of
    the sorted list (job arrays). ``resume`` skips inputs whose outputs were finished with the
    same options and vocabulary. ``progress``: None = a bar when stderr is a terminal.
    """
    say = log or (lambda message: None)
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise InputError(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise InputError(f"need 0 <= rank < world_size, got rank={rank!r} world_size={world_size!r}")
    if out_dtype != "auto" and out_dtype not in OUT_DTYPES:
        raise InputError(f"out_dtype must be auto, {', '.join(OUT_DTYPES)}; got {out_dtype!r}")
    every = []
    for prefix in find_shards([str(p) for p in inputs]):
        owner = mask_owner(prefix)
        if owner is None:
            every.append(prefix)
        else:  # an earlier run's output folder given as input: its masks are not token shards
            say(f"{Path(prefix).name}: a mask written by link-fast ({Path(owner).name}{LINK_RECORD_SUFFIX} "
                f"lists it), skipped")
    # Checked on every input, not only this rank's: the outputs of all ranks must not collide.
    names = [Path(p).name for p in every]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two inputs have the same name, their outputs would collide: {', '.join(duplicates)}")
    output_dir = Path(output_dir)
    _refuse_overwriting_inputs(every, output_dir, mask)
    prefixes = every[rank::world_size]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=output_dir, prefix=".link_fast-write-test-")
        probe.close()
    except OSError as exc:
        raise ShardError(output_dir, f"output directory cannot be written: {exc.strerror or exc}") from None

    temporary_vocab = None
    if not isinstance(vocab, Vocab):
        vocab = Vocab.load(vocab)
    if vocab.path is None:  # workers map a file: save an in-memory vocabulary once
        temporary_vocab = tempfile.NamedTemporaryFile(prefix="link_fast-", suffix=".lfv", delete=False)
        temporary_vocab.close()
        vocab.save(temporary_vocab.name)
        vocab = Vocab.load(temporary_vocab.name)
    # Validates every option once here, before any worker starts.
    base_options = dict(ratio=ratio, portion=portion, seed=seed, languages=languages,
                        ratio_basis=ratio_basis, lang_scope=lang_scope)
    checked_config(vocab.languages, **base_options)
    vocab_contents = _vocab_contents(vocab)
    # Another input's data output of the name NAME_mask is not a stale mask of NAME.
    input_names = {Path(p).name for p in every}

    shards = [open_shard(p) for p in prefixes]
    total = sum(int(np.sum(s.sizes, dtype=np.int64)) for s in shards)
    pool = None
    bar = Progress(total, progress)
    if log is not None and bar.bar is not None:  # print above the bar, not into it
        say = bar.write
    results: dict[str, dict] = {}
    options = None
    try:
        for shard in shards:
            key = shard.name if stream_key is None else stream_key
            dtype = _output_dtype(shard, out_dtype)
            options = {"substituter": dict(base_options, stream_key=key), "mask": mask, "out_dtype": dtype.str}
            expected = {
                "config": checked_config(vocab.languages, **options["substituter"]),
                "vocab": {"fingerprint": vocab.fingerprint, "languages": list(vocab.languages),
                          "format_version": vocab.meta["format_version"], "keys": vocab.n_keys,
                          "contents": vocab_contents},
                "mask": mask,
                "out_dtype": dtype.name,
                "input": _input_identity(shard),
            }
            paths = _output_paths(output_dir, shard.name)
            # committing this output removes the files of the same name it does not write
            paths["stale"] = [output_dir / f"{stem}{suffix}" for suffix in SHARD_SUFFIXES
                              for stem in (shard.name, f"{shard.name}_mask")
                              if stem == shard.name or stem not in input_names]
            if resume:
                done = _finished(paths["stats"], expected)
                if done is not None:
                    say(f"{shard.name}: already done, skipped")
                    results[shard.name] = done
                    bar.update(int(np.sum(shard.sizes, dtype=np.int64)), shard.name)
                    continue
            remove_dead_temporaries(output_dir, shard.name)
            if pool is None:
                pool = (_InProcess(vocab) if workers == 1 else
                        Pool(workers, initializer=_worker_init, initargs=((str(vocab.path), vocab.identity),)))
            results[shard.name] = _rewrite_shard(shard, paths, options, expected, pool, workers, chunk_tokens, bar)
            say(f"{shard.name}: {results[shard.name]['stats']['total_substitutions']:,} substitutions")
    except BaseException:
        if pool is not None:
            pool.stop()  # kills the workers and waits for them: after it, no chunk is written any more
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()
        bar.close()
        for shard in shards:
            shard.close()
        if temporary_vocab is not None:
            Path(temporary_vocab.name).unlink(missing_ok=True)
    return results


def _output_dtype(shard, requested: str) -> np.dtype:
    if requested != "auto":
        return OUT_DTYPES[requested]
    dtype = np.dtype(shard.dtype)
    return dtype if dtype in KERNEL_DTYPES else np.dtype(np.int32)


_chunks_written = [0]


def _rewrite_shard(shard, paths, options, expected, pool, workers, chunk_tokens, bar) -> dict:
    started = time.perf_counter()
    bounds = chunk_bounds(np.asarray(shard.sizes), chunk_tokens)
    dtype = np.dtype(options["out_dtype"])
    data = ShardWriter(paths["data"], dtype, format=shard.format, document_indices=shard.document_indices)
    mask_writer = (ShardWriter(paths["mask"], np.uint8, format=shard.format, document_indices=shard.document_indices)
                   if options["mask"] else None)
    writers = [w for w in (data, mask_writer) if w is not None]
    sizes_path = temporary_path(paths["data"], ".sizes")
    stats = None
    try:
        if workers > 1:  # workers write their chunks into the writers' files (_run_chunk)
            np.full(len(bounds) - 1, -1, dtype="<i8").tofile(sizes_path)
            options = dict(options, direct={
                "sizes": str(sizes_path), "data": data.temp_data_path,
                "mask": mask_writer.temp_data_path if mask_writer else None, "name": str(paths["data"]),
            })
        tasks = [(shard.prefix, int(a), int(b), options, i) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        window: deque = deque()
        next_task = 0
        worker_memory: dict[str, float] = {}
        while next_task < len(tasks) or window:
            try:
                while next_task < len(tasks) and len(window) < 2 * workers:
                    window.append((next_task, pool.submit(next_task, _run_chunk, tasks[next_task])))
                    next_task += 1
                start, tokens, offsets, mask, chunk_stats, written, memory = pool.result(window[0][1])
            except WorkerDied as died:  # the pool is stopped already: name the chunk the worker held
                lost = died.task if died.task is not None else window[0][0] if window else next_task
                raise ShardError(shard.paths[0], f"a worker process died ({died.how}) while rewriting sequences "
                                 f"{tasks[lost][1]}..{tasks[lost][2] - 1} (chunk {lost + 1} of {len(tasks)}); "
                                 "--resume continues from this shard") from None
            window.popleft()
            for key, value in memory.items():
                worker_memory[key] = max(worker_memory.get(key, 0.0), value)
            if written:
                for writer in writers:
                    writer.extend_written(np.diff(offsets))
            else:
                data.write(tokens, offsets)
                if mask_writer is not None:
                    mask_writer.write(mask, offsets)
            stats = chunk_stats if stats is None else stats + chunk_stats
            bar.update(chunk_stats.tokens_in, shard.name)
            _chunks_written[0] += 1
            if FAULT_AFTER_CHUNKS and _chunks_written[0] >= FAULT_AFTER_CHUNKS:
                os.kill(os.getpid(), signal.SIGKILL)
        outputs = {}
        for writer in writers:  # complete and synced under temporary names; _commit_output renames
            outputs.update(writer.prepare())
    except BaseException:  # workers still writing write into removed files, then are stopped (apply_shards)
        for writer in writers:
            writer.abort()
        raise
    finally:
        sizes_path.unlink(missing_ok=True)
    if stats is None:  # an empty shard
        stats = Stats(tuple(expected["vocab"]["languages"]),
                      substitutions={lang: 0 for lang in expected["vocab"]["languages"]})
    try:
        record = dict(expected, inputs=list(shard.paths), outputs=[str(p) for p in outputs],
                      output_files={Path(p).name: size for p, size in outputs.items()},
                      mask_shard=paths["mask"].name if mask_writer is not None else None,
                      stats=stats.to_dict(), seconds=round(time.perf_counter() - started, 3),
                      memory_mb={"main": memory_mb(), "worker": worker_memory or memory_mb()},
                      link_fast_version=__version__)
        _commit_output(paths, writers, record)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return record


# Fault injection for the tests of _commit_output: SIGKILL this process at one of its steps.
FAULT_IN_COMMIT = os.environ.get("LINK_FAST_FAULT_IN_COMMIT", "")


def _commit_output(paths: dict, writers: list, record: dict) -> None:
    """Put one output in place, all its files together. Every file is complete and synced under
    a temporary name (``ShardWriter.prepare``) before the first final name changes; then:

    1. the new record is written, synced, under a temporary name;
    2. the old record is removed, durably: from here until 5. the output is not finished,
       whatever a crash or a full disk leaves, so resume redoes it;
    3. the data files, then the mask's, are renamed into place (each index last);
    4. files of the same name the new output does not have are removed (``NAME_mask`` of an
       earlier ``--mask`` run, the other format's files), so none is read as part of it;
    5. the record is renamed into place: only now does the output look finished.
    """
    record_path = paths["stats"]
    directory = str(record_path.parent)
    temp = temporary_path(record_path)
    keep = {Path(p).name for p in record["outputs"]}
    mask_stem = paths["mask"].name
    mask_owned_elsewhere = (record["mask_shard"] is None
                            and (record_path.parent / f"{mask_stem}{LINK_RECORD_SUFFIX}").exists())
    path = temp
    try:
        with open(temp, "wb") as f:
            f.write(json_bytes(record))
            f.flush()
            os.fsync(f.fileno())
        path = record_path
        if os.path.lexists(record_path):
            os.unlink(record_path)
            fsync_dir(directory)
        for writer in writers:
            writer.commit()
            if FAULT_IN_COMMIT == "after-data":
                os.kill(os.getpid(), signal.SIGKILL)
        for path in paths["stale"]:
            if path.name in keep or (mask_owned_elsewhere and path.name.startswith(f"{mask_stem}.")):
                continue
            if os.path.lexists(path):
                os.unlink(path)
        if FAULT_IN_COMMIT == "before-record":
            os.kill(os.getpid(), signal.SIGKILL)
        path = record_path
        os.replace(temp, record_path)
        fsync_dir(directory)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ShardError(path, f"cannot write: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
