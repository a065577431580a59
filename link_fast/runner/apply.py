"""``apply_shards``: check the run, find the inputs, then rewrite each into its output."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..io import overwritten, read_files, refuse_link, remove_dead_temporaries
from ..mapped import sigbus_caught, vocab_files
from ..pool import Pool, check_workers_can_start
from ..progress import Progress
from ..sampling import Sampling
from ..shards import LINK_RECORD_SUFFIX, ShardError, find_shards, mask_owner, open_shard
from ..shards.datatrove import may_name_tokenizer
from ..vocab import Vocab
from .chunks import KERNEL_DTYPES, InProcess, init_worker
from .outputs import finished, input_identity, output_paths, refuse_overwriting_inputs, vocab_record
from .rewrite import rewrite_shard

DEFAULT_CHUNK_TOKENS = 4_000_000
OUT_DTYPES: dict[str, np.dtype] = {
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
}


def apply_shards(
    vocab: Vocab | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    sampling: Sampling | None = None,
    *,
    workers: int = 1,
    mask: bool = False,
    out_dtype: Literal["auto", "uint16", "int32", "uint32"] = "auto",
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    resume: bool = False,
    rank: int = 0,
    world_size: int = 1,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, dict]:
    """Rewrite every shard of ``inputs`` into ``output_dir``; returns {name: statistics record}
    (the record of a shard ``resume`` skipped carries ``resumed=True``).

    ``inputs``: shard prefixes, files, directories or globs. ``sampling``: a ``Sampling``, or
    its options as keywords (``ratio=0.3, seed=1, ...``); its ``stream_key`` defaults to each
    shard's name. ``rank``/``world_size`` take every ``world_size``-th input from ``rank`` of
    the sorted list (job arrays). ``resume`` skips inputs whose outputs were finished with the
    same options and vocabulary. ``progress``: None = a bar when stderr is a terminal.
    """
    sampling = Sampling.from_options(sampling, **options)
    say = log or (lambda message: None)
    _check_run_options(workers, chunk_tokens, rank, world_size, out_dtype)
    check_workers_can_start(workers)  # before anything is read or written
    every = _find_inputs(inputs, say)
    output_dir = Path(output_dir)
    refuse_overwriting_inputs(every, output_dir, mask)
    _refuse_unsafe_outputs(every, output_dir, vocab)
    created = not output_dir.exists()
    _check_output_dir(output_dir)
    try:
        with sigbus_caught(), _vocab_file(vocab) as vocab:
            sampling.for_languages(vocab.languages)  # checks the languages before any worker starts
            run = _Run(
                vocab,
                sampling,
                output_dir,
                {Path(p).name for p in every},
                workers=workers,
                mask=mask,
                out_dtype=out_dtype,
                chunk_tokens=chunk_tokens,
                resume=resume,
            )
            return run.all(every[rank::world_size], progress, log, say)
    except BaseException:
        if created:  # a failed run leaves no trace: remove the folder it made, if nothing is in it
            _remove_if_empty(output_dir)
        raise


def _refuse_unsafe_outputs(prefixes: list[str], output_dir: Path, vocab) -> None:
    """Before anything is written: no output's name (data, mask, record, or a stale file that
    committing removes) may be a symbolic link, or the vocabulary."""
    read = read_files([vocab.path if isinstance(vocab, Vocab) else vocab])
    names = {Path(p).name for p in prefixes}
    for prefix in prefixes:
        paths = output_paths(output_dir, Path(prefix).name, names)
        for path in (*paths["stale"], paths["stats"]):
            refuse_link(path)
            if overwritten(path, read) is not None:
                raise ShardError(path, "the output would overwrite the vocabulary")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (outputs finished before the failure stay), or already gone
        pass


def _check_run_options(workers, chunk_tokens, rank, world_size, out_dtype) -> None:
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise InputError(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise InputError(f"need 0 <= rank < world_size, got rank={rank!r} world_size={world_size!r}")
    if out_dtype != "auto" and out_dtype not in OUT_DTYPES:
        raise InputError(f"out_dtype must be auto, {', '.join(OUT_DTYPES)}; got {out_dtype!r}")


def _find_inputs(inputs: Sequence[str | os.PathLike], say: Callable[[str], None]) -> list[str]:
    """Every input shard's prefix, masks written by link-fast left out. Checked on every input,
    not only this rank's: the outputs of all ranks must not collide."""
    every = []
    for prefix in find_shards([str(p) for p in inputs]):
        owner = mask_owner(prefix)
        if owner is None:
            every.append(prefix)
        else:  # an earlier run's output folder given as input: its masks are not token shards
            say(
                f"{Path(prefix).name}: a mask written by link-fast ({Path(owner).name}{LINK_RECORD_SUFFIX} "
                f"lists it), skipped"
            )
    names = [Path(p).name for p in every]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two inputs have the same name, their outputs would collide: {', '.join(duplicates)}")
    return every


def _check_output_dir(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=output_dir, prefix=".link_fast-write-test-")
        probe.close()
    except OSError as exc:
        raise ShardError(output_dir, f"output directory cannot be written: {exc.strerror or exc}") from None


@contextmanager
def _vocab_file(vocab: Vocab | str | os.PathLike) -> Iterator[Vocab]:
    """The vocabulary, loaded from a file: workers map a file, so an in-memory vocabulary is
    saved once to a temporary one, removed at the end."""
    if not isinstance(vocab, Vocab):
        vocab = Vocab.load(vocab)
    if vocab.path is not None:
        yield vocab
        return
    temporary = tempfile.NamedTemporaryFile(prefix="link_fast-", suffix=".lfv", delete=False)
    temporary.close()
    try:
        vocab.save(temporary.name)
        yield Vocab.load(temporary.name)
    finally:
        Path(temporary.name).unlink(missing_ok=True)


def _check_tokenizer_name(shard, vocab: Vocab) -> None:
    """A datatrove shard records the tokenizer it was made with, and its output keeps the name:
    one that cannot name the vocabulary's tokenizer is refused (``may_name_tokenizer``)."""
    tokenizer = vocab.meta.get("tokenizer", {})
    if shard.format == "datatrove" and not may_name_tokenizer(shard.tokenizer_name, tokenizer):
        compiled_for = tokenizer.get("path") or tokenizer.get("name")
        raise ShardError(
            f"{shard.prefix}.ds.metadata",
            f"tokenized with {shard.tokenizer_name!r}, but the vocabulary {vocab.path} was compiled for "
            f"{compiled_for}: compile one with --tokenizer {shard.tokenizer_name}",
        )


def output_dtype(shard, requested: str) -> np.dtype:
    if requested != "auto":
        return OUT_DTYPES[requested]
    dtype = np.dtype(shard.dtype)
    return dtype if dtype in KERNEL_DTYPES else np.dtype(np.int32)


def _total_tokens(prefixes: list[str]) -> int:
    """The tokens of every input, for the progress bar. Each shard is opened, so checked, and
    closed again: a bad one is refused before any work, and no more than one is open at a time."""
    total = 0
    for prefix in prefixes:
        with open_shard(prefix) as shard:
            total += int(np.sum(shard.sizes, dtype=np.int64))
    return total


class _Run:
    """One ``apply_shards`` call once its options are checked: the shards of this rank, one
    after the other, through one pool started when the first needs it."""

    def __init__(
        self,
        vocab: Vocab,
        sampling: Sampling,
        output_dir: Path,
        input_names: set[str],
        *,
        workers: int,
        mask: bool,
        out_dtype: str,
        chunk_tokens: int,
        resume: bool,
    ):
        self.vocab, self.sampling, self.output_dir, self.input_names = vocab, sampling, output_dir, input_names
        self.workers, self.mask, self.out_dtype = workers, mask, out_dtype
        self.chunk_tokens, self.resume = chunk_tokens, resume
        self.vocab_record = vocab_record(vocab)  # reads every table: a vocabulary truncated by now is refused
        vocab_files(vocab).check()
        self.pool: InProcess | Pool | None = None

    def all(self, prefixes: list[str], progress: bool | None, log, say) -> dict[str, dict]:
        bar = Progress(_total_tokens(prefixes), progress)
        if log is not None and bar.bar is not None:  # print above the bar, not into it
            say = bar.write
        results: dict[str, dict] = {}
        try:
            for prefix in prefixes:  # one shard open at a time: its descriptors and its maps
                with open_shard(prefix) as shard:
                    results[shard.name] = self.one(shard, bar, say)
        except BaseException:
            if self.pool is not None:
                self.pool.stop()  # kills the workers and waits for them: after it, no chunk is written any more
                self.pool = None
            raise
        finally:
            if self.pool is not None:
                self.pool.close()
            bar.close()
        return results

    def one(self, shard, bar: Progress, say) -> dict:
        _check_tokenizer_name(shard, self.vocab)
        sampling = self.sampling.replace(stream_key=shard.name) if self.sampling.stream_key is None else self.sampling
        dtype = output_dtype(shard, self.out_dtype)
        options = {"substituter": sampling.to_dict(), "mask": self.mask, "out_dtype": dtype.str}
        expected = {
            "config": sampling.for_languages(self.vocab.languages).to_dict(),
            "vocab": self.vocab_record,
            "mask": self.mask,
            "out_dtype": dtype.name,
            "input": input_identity(shard),
        }
        paths = output_paths(self.output_dir, shard.name, self.input_names)
        if self.resume:
            done = finished(paths["stats"], expected)
            if done is not None:
                say(f"{shard.name}: already done, skipped")
                bar.update(int(np.sum(shard.sizes, dtype=np.int64)), shard.name)
                return dict(done, resumed=True)  # marked, so that summaries do not count it as work done now
        remove_dead_temporaries(self.output_dir, shard.name)
        if self.pool is None:
            self.pool = (
                InProcess(self.vocab)
                if self.workers == 1
                else Pool(self.workers, initializer=init_worker, initargs=(str(self.vocab.path), self.vocab.identity))
            )
        # the vocabulary's path is recorded for `link-fast inspect`, but is not part of `expected`:
        # moving the vocabulary does not make resume redo the shard
        where = {"vocab_path": os.path.abspath(self.vocab.path) if self.vocab.path is not None else None}
        record = rewrite_shard(
            shard, paths, options, dict(expected, **where), self.pool, self.workers, self.chunk_tokens, bar, self.vocab
        )
        say(f"{shard.name}: {record['stats']['total_substitutions']:,} substitutions")
        return record
