"""The worker side of ``apply``: rewriting one chunk of a shard.

A task is ``(prefix, start, stop, options, index, stretch)``: sequences [start, stop) of the
shard ``prefix``, chunk ``index`` of its output; or, with a ``stretch``, a piece of the one long
sequence ``start`` (rewrite.plan_chunks). Each process that runs tasks holds one
``WorkerState`` (the vocabulary, the shards and substituters it opened, the output files it
writes into): a pool worker's is made by the pool's initializer (``init_worker``), the
in-process runner (``InProcess``, one worker) makes its own.

With ``options["direct"]`` (a pool), a worker writes its rewritten chunk into the output
itself, at the offset the chunks before it leave: it learns their sizes through a small shared
file of int64 sizes (-1: not known yet). Sending the tokens back through the pool's pipe, or
through a file of its own that the parent appends, would cost a copy and the parent's core.
"""

from __future__ import annotations

import json
import os
import struct
import time

import numpy as np

from ..errors import InputError
from ..mapped import MappedFiles, catch_sigbus_for_good, fault_count, vocab_files
from ..shards import ShardError, open_shard
from ..substituter import Piece, Substituter
from ..vocab import FileIdentity, Vocab
from .memory import memory_mb

KERNEL_DTYPES = (np.dtype(np.uint16), np.dtype(np.int32), np.dtype(np.uint32))


def chunk_bounds(sizes: np.ndarray, chunk_tokens: int) -> np.ndarray:
    """Sequence indices cutting a shard into chunks of about ``chunk_tokens`` tokens."""
    n = len(sizes)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    ends = np.cumsum(sizes, dtype=np.int64)
    cuts = np.searchsorted(ends, np.arange(chunk_tokens, int(ends[-1]), chunk_tokens, dtype=np.int64), side="left") + 1
    return np.unique(np.concatenate(([0], np.minimum(cuts, n), [n]))).astype(np.int64)


class WorkerState:
    """What one process that rewrites chunks keeps between them."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.shards: dict = {}  # the one shard open now, by prefix
        self.substituters: dict[str, Substituter] = {}  # by their options
        self.fds: tuple[str, dict[str, int]] | None = None  # (sizes file, descriptors) of the output written
        self.known_sizes = (0, 0)  # this output's first chunks whose sizes are all known: count, tokens
        self.mapped = vocab_files(vocab)  # the files read through maps: the vocabulary's, the open shard's

    def run_chunk(self, task: tuple) -> tuple:
        """Rewrite one chunk; (start, tokens, offsets, mask, stats, written, memory, loss flags):
        ``written`` when the worker wrote the tokens, mask and flags into the output itself (then
        they are None)."""
        prefix, start, stop, options, index, stretch = task
        direct = options.get("direct")
        # A chunk that fails publishes no size: the chunks after it wait until the parent, which
        # collects results in order, meets the error and stops the pool.
        result = self.checked_substitute(prefix, start, stop, options, stretch)
        if direct is None:
            return start, result.tokens, result.offsets, result.mask, result.stats, False, memory_mb(), result.loss
        try:
            self.publish_size(direct, index, len(result.tokens))
            before = self.wait_for_sizes(direct, index)
            for kind, array in (("data", result.tokens), ("mask", result.mask), ("loss", result.loss)):
                if array is not None:
                    self.write_at(self.output_fds(direct)[kind], array, before)
        except OSError as exc:
            raise ShardError(direct["name"], f"cannot write: {exc.strerror or exc}") from None
        return start, None, result.offsets, None, result.stats, True, memory_mb(), None

    def checked_substitute(self, prefix: str, start: int, stop: int, options: dict, stretch: Piece | None = None):
        """``substitute``, refused with an error naming the file when a file it reads through a
        map was truncated before or while it ran (what it read past the file's end was zeros)."""
        self.shard(prefix)
        faults = fault_count()
        self.mapped.check()
        try:
            if stretch is None:
                result = self.substitute(prefix, start, stop, options)
            else:
                result = self.substitute_stretch(prefix, start, options, stretch)
        except BaseException:
            self.mapped.check(faults)  # a failure caused by what a shrunk file read as is named for it
            raise
        self.mapped.check(faults)
        return result

    def substitute_stretch(self, prefix: str, sequence: int, options: dict, stretch: Piece):
        """The kernel's result for ``stretch`` of the long sequence ``sequence`` (rewrite.plan_chunks)."""
        shard = self.shard(prefix)
        try:
            result = self.substituter(options["substituter"]).apply_piece(
                shard.tokens,
                stretch,
                doc=sequence,
                mask=options["mask"],
                out_dtype=options["out_dtype"],
                loss=shard.loss,
            )
        except InputError as exc:
            raise ShardError(shard.paths[0], f"{exc} (in sequence {sequence})") from None
        shard.release_tokens(stretch.start, stretch.stop)
        return result

    def substitute(self, prefix: str, start: int, stop: int, options: dict):
        """The kernel's result for sequences [start, stop) of the shard ``prefix``."""
        shard = self.shard(prefix)
        substituter = self.substituter(options["substituter"])
        offsets = shard.offsets(start, stop)
        tokens, loss = shard.tokens, shard.loss
        if tokens.dtype not in KERNEL_DTYPES:  # e.g. int64 or uint8 shards: widen this chunk only
            piece = np.asarray(tokens[offsets[0] : offsets[-1]])
            if len(piece) and (piece.min() < 0 or piece.max() > np.iinfo(np.int32).max):
                at = int(np.argmax((piece < 0) | (piece > np.iinfo(np.int32).max)))
                sequence = start + int(np.searchsorted(offsets, offsets[0] + at, side="right")) - 1
                raise ShardError(
                    shard.paths[0], f"token id {piece[at]} ({shard.dtype}) in sequence {sequence} is not a token id"
                )
            loss = None if loss is None else loss[offsets[0] : offsets[-1]]
            tokens, offsets = piece.astype(np.int32), offsets - offsets[0]
        try:
            result = substituter.apply(
                tokens, offsets, first_doc=start, mask=options["mask"], out_dtype=options["out_dtype"], loss=loss
            )
        except InputError as exc:
            # name the file and the sequence: the kernel only knows positions in the chunk
            raise ShardError(shard.paths[0], f"{exc} (in sequences {start}..{stop - 1})") from None
        shard.release(start, stop)
        return result

    def shard(self, prefix: str):
        shard = self.shards.get(prefix)
        if shard is None:
            self.close_shards()
            shard = self.shards[prefix] = open_shard(prefix)
            self.mapped = vocab_files(self.vocab) + MappedFiles.of(shard.paths)
        return shard

    def substituter(self, options: dict) -> Substituter:
        key = json.dumps(options, sort_keys=True)
        substituter = self.substituters.get(key)
        if substituter is None:
            substituter = self.substituters[key] = Substituter(self.vocab, **options)
        return substituter

    def output_fds(self, direct: dict) -> dict[str, int]:
        """Descriptors of the files of the output being written, opened once per output. Never
        O_CREAT: a file the parent has removed (the run failed) is not brought back; never through
        a link planted in its place."""
        if self.fds is None or self.fds[0] != direct["sizes"]:
            self.close_fds()
            fds = {}
            try:
                for kind in ("sizes", "data", "mask", "loss"):
                    if direct.get(kind):
                        fds[kind] = os.open(direct[kind], os.O_RDWR | os.O_NOFOLLOW)
            except OSError:
                for fd in fds.values():
                    os.close(fd)
                raise
            self.fds = (direct["sizes"], fds)
            self.known_sizes = (0, 0)
        return self.fds[1]

    def publish_size(self, direct: dict, index: int, n_tokens: int) -> None:
        os.pwrite(self.output_fds(direct)["sizes"], struct.pack("<q", n_tokens), 8 * index)

    def wait_for_sizes(self, direct: dict, index: int) -> int:
        """The number of tokens the chunks before ``index`` write, once they all know it. They
        were handed out before this one and publish their size before they wait, so this ends,
        unless one fails: then the parent, collecting results in order, meets its error and
        stops the pool; or a worker dies: that breaks the pool, which kills the other workers
        (pool.py). A worker's chunks of one output come in rising order, so what it learnt for
        an earlier one (``known_sizes``) is a prefix of what it needs now."""
        fd, pause = self.output_fds(direct)["sizes"], 0.0001
        known, total = self.known_sizes
        while True:
            sizes = np.frombuffer(os.pread(fd, 8 * (index - known), 8 * known), dtype="<i8")
            unknown = np.flatnonzero(sizes < 0)
            settled = len(sizes) if len(unknown) == 0 else int(unknown[0])
            known, total = known + settled, total + int(sizes[:settled].sum())
            self.known_sizes = (known, total)
            if known == index:
                return total
            time.sleep(pause)
            pause = min(2 * pause, 0.005)

    @staticmethod
    def write_at(fd: int, array: np.ndarray, before: int) -> None:
        """Write ``array`` little-endian into ``fd`` after ``before`` items."""
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).data.cast("B")
        position = before * array.dtype.itemsize
        while len(data):
            written = os.pwrite(fd, data, position)
            data, position = data[written:], position + written

    def close_shards(self) -> None:
        for shard in self.shards.values():
            shard.close()
        self.shards.clear()

    def close_fds(self) -> None:
        if self.fds is not None:
            for fd in self.fds[1].values():
                os.close(fd)
        self.fds = None

    def close(self) -> None:
        self.close_shards()
        self.close_fds()
        self.substituters.clear()


_state: WorkerState | None = None  # a pool worker's, made by init_worker; never set in the parent


def init_worker(vocab_path: str, identity: FileIdentity) -> None:
    """A pool worker's initializer: map the vocabulary file the parent loaded and checked again
    (refused if it changed since)."""
    global _state
    catch_sigbus_for_good()
    _state = WorkerState(Vocab.load(vocab_path, validated=identity))


def run_chunk(task: tuple) -> tuple:
    """A pool worker's task: ``WorkerState.run_chunk`` on the state ``init_worker`` made."""
    if _state is None:
        raise RuntimeError("run_chunk runs in a pool worker set up by init_worker")
    return _state.run_chunk(task)


class InProcess:
    """The pool interface (``pool.Pool``), run in this process (workers=1): no start-up, easy
    to debug. A task runs, or raises, when it is submitted, on this runner's own state."""

    def __init__(self, vocab: Vocab):
        self.state = WorkerState(vocab)

    def submit(self, task: int, fn, *args):
        if fn is run_chunk:
            return self.state.run_chunk(*args)
        return fn(*args)

    def result(self, done):
        return done

    def close(self):
        self.state.close()

    def stop(self):
        self.close()
