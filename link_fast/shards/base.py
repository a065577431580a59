"""What both shard formats share: the error, the memory-mapped ``Shard``, and the checks and
file helpers the readers use."""

from __future__ import annotations

import mmap
import os
from typing import cast

import numpy as np

from ..errors import FileError


class ShardError(FileError):
    """A shard is missing, malformed, inconsistent, or cannot be written."""


TOKEN_DTYPES = (np.uint16, np.int32, np.uint32)  # the ones the kernel takes
# Pointer checks run in blocks so a 100M-sequence index does not need GBs of temporaries.
CHECK_BLOCK = 1 << 22


def file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def map_file(path: str, dtype: np.dtype, count: int | None = None, offset: int = 0) -> np.ndarray:
    """A read-only memory map of ``path`` as ``dtype`` (an empty array for an empty range:
    mmap cannot map zero bytes)."""
    if count == 0 or (count is None and os.stat(path).st_size <= offset):
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,) if count is not None else None)


class Shard:
    """A memory-mapped shard of either format. Make one with ``open_shard``."""

    format: str
    prefix: str
    name: str
    paths: list[str]
    dtype: np.dtype
    tokens: np.ndarray
    n_sequences: int
    document_indices: np.ndarray
    sizes: np.ndarray
    tokenizer_name: str | None
    loss: np.ndarray | None  # datatrove's .ds.loss: a flag per token (uint8), when the shard has one

    def __init__(
        self,
        *,
        format: str,
        prefix: str,
        paths: list[str],
        dtype: np.dtype,
        tokens: np.ndarray,
        sizes: np.ndarray,
        document_indices: np.ndarray,
        starts: np.ndarray,
        tokenizer_name: str | None = None,
        loss: np.ndarray | None = None,
    ):
        self.format = format
        self.prefix = prefix
        self.name = os.path.basename(prefix)
        self.paths = paths
        self.dtype = dtype
        self.tokens = tokens
        self.sizes = sizes
        self.document_indices = document_indices
        self.n_sequences = len(sizes)
        self.tokenizer_name = tokenizer_name
        self.loss = loss
        # Megatron: byte pointers; datatrove: document end offsets. Kept as mapped, converted
        # per range in offsets().
        self._starts = starts

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def release(self, start: int, stop: int) -> None:
        """Drop this process's mapped pages of sequences [start, stop) once they are done.

        The pages stay in the page cache; without this a worker's resident memory would grow
        with every chunk it reads, up to the whole shard.
        """
        if stop > start:
            first, last = self.offsets(start, stop)[[0, -1]]
            self.release_tokens(int(first), int(last))

    def release_tokens(self, first: int, last: int) -> None:
        """``release`` for tokens [first, last) of ``self.tokens`` (a stretch of a document), and
        of their loss flags."""
        for mapped in (self.tokens, self.loss):
            _drop_pages(mapped, first, last)

    def offsets(self, start: int, stop: int) -> np.ndarray:
        """int64[stop - start + 1]: token positions in ``self.tokens`` of sequences [start, stop)."""
        if not 0 <= start <= stop <= self.n_sequences:
            raise IndexError(f"{self.prefix}: sequence range [{start}, {stop}) outside [0, {self.n_sequences}]")
        out = np.empty(stop - start + 1, dtype=np.int64)
        if self.format == "megatron":
            # Pointers were checked to be contiguous, so the first one fixes the rest.
            first = int(self._starts[start]) // self.dtype.itemsize if start < self.n_sequences else self.n_tokens
            out[0] = first
            np.cumsum(self.sizes[start:stop], dtype=np.int64, out=out[1:])
            out[1:] += first
        else:
            out[0] = int(self._starts[start - 1]) if start > 0 else 0
            out[1:] = self._starts[start:stop]
        return out

    def close(self) -> None:
        # np.memmap unmaps when the last view goes away; dropping our references is all we can
        # do safely (closing the mmap under a caller's live view would crash it).
        self.tokens = np.empty(0, dtype=self.dtype)
        self.loss = None if self.loss is None else np.empty(0, dtype=np.uint8)
        self.sizes = np.empty(0, dtype=np.int64)
        self._starts = np.empty(0, dtype=np.int64)
        self.document_indices = np.zeros(1, dtype=np.int64)
        self.n_sequences = 0

    def __enter__(self) -> Shard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Shard({self.format}, {self.prefix!r}, {self.n_sequences} sequences, {self.n_tokens} tokens, {self.dtype})"
        )


def _drop_pages(array: np.ndarray | None, first: int, last: int) -> None:
    """Drop this process's pages of items [first, last) of a mapped array (``Shard.release``)."""
    mm = getattr(array, "_mmap", None)
    if array is None or mm is None or not hasattr(mmap, "MADV_DONTNEED") or last <= first:
        return
    base = cast(np.memmap, array).offset % mmap.ALLOCATIONGRANULARITY  # where np.memmap's array starts in its map
    begin = base + first * array.itemsize
    end = base + last * array.itemsize
    begin -= begin % mmap.PAGESIZE
    if end > begin:
        mm.madvise(mmap.MADV_DONTNEED, begin, min(end - begin, len(mm) - begin))


def check_document_indices(path: str, doc_idx: np.ndarray, n: int) -> list[ShardError]:
    if len(doc_idx) == 0:
        return [ShardError(path, "document_indices is empty (it must hold at least [0])")]
    problems = []
    if doc_idx[0] != 0:
        problems.append(ShardError(path, f"document_indices start at {int(doc_idx[0])}, not 0"))
    down = np.flatnonzero(np.diff(doc_idx) < 0)
    if len(down):
        i = int(down[0]) + 1
        problems.append(
            ShardError(
                path, f"document_indices decrease at position {i} ({int(doc_idx[i - 1])} then {int(doc_idx[i])})"
            )
        )
    if doc_idx[-1] != n:
        problems.append(ShardError(path, f"document_indices end at {int(doc_idx[-1])}, not at the sequence count {n}"))
    return problems
