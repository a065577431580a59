"""Writing shards of either format: ``ShardWriter`` streams into temporary files in the target
directory and renames them into place only when complete."""

from __future__ import annotations

import os

import numpy as np

from ..io import fsync_dir, open_exclusive, refuse_link, replace_into, temporary_path
from . import datatrove, megatron
from .base import ShardError, check_document_indices
from .syncer import SYNC_EVERY_BYTES, BackgroundSync


class ShardWriter:
    """Streams sequences into a new shard; nothing appears under the final names until commit().

    ``with ShardWriter(prefix, np.uint16) as w: w.write(tokens, offsets)`` commits on a clean
    exit and removes the temporary files on an exception.
    """

    def __init__(
        self,
        prefix,
        dtype,
        *,
        format: str = "megatron",
        document_indices: np.ndarray | None = None,
        tokenizer_name: str | None = None,
    ):
        self.prefix = os.fspath(prefix)
        self.format = format
        self.dtype = np.dtype(dtype)
        self.tokenizer_name = tokenizer_name
        self._document_indices = None if document_indices is None else np.asarray(document_indices, dtype=np.int64)
        if format == "megatron":
            if self.dtype.newbyteorder("<") not in megatron.MEGATRON_WRITE_CODES:
                raise ShardError(self.prefix + ".idx", f"cannot write {self.dtype} tokens to a Megatron shard")
            self._finals = [self.prefix + ".bin", self.prefix + ".idx"]  # data first, index last
        elif format == "datatrove":
            if self.dtype.newbyteorder("<") not in datatrove.DATATROVE_WRITE_SIZES:
                raise ShardError(
                    self.prefix + ".ds",
                    f"cannot write {self.dtype} tokens to a datatrove shard (uint16, uint32 or int32)",
                )
            self._finals = [self.prefix + ".ds", self.prefix + ".ds.metadata", self.prefix + ".ds.index"]
        else:
            raise ShardError(self.prefix, f"unknown shard format {format!r} (megatron or datatrove)")
        self._data_path = self._finals[0]
        self._temps = [str(temporary_path(p)) for p in self._finals]  # hidden: find_shards ignores them
        self._sizes: list[np.ndarray] = []
        self._n_tokens = 0  # Python int: never overflows
        self._closed = False
        self._prepared: dict[str, int] | None = None  # by prepare(): {final path: bytes}
        self._written_elsewhere = False  # by extend_written: write() would overwrite it
        for final in self._finals:
            refuse_link(final)
        try:
            # Like `-o DIR` elsewhere: a missing output directory is created, not an error.
            os.makedirs(os.path.dirname(self._data_path) or ".", exist_ok=True)
            self._data = open_exclusive(self._temps[0])
            self._sync = BackgroundSync(self._data, SYNC_EVERY_BYTES)
        except OSError as exc:
            raise ShardError(self._data_path, f"cannot write: {exc.strerror or exc}") from None

    @property
    def finals(self) -> list[str]:
        """The files commit() puts in place, data first, index last."""
        return list(self._finals)

    @property
    def n_sequences(self) -> int:
        return sum(len(s) for s in self._sizes)

    def write(self, tokens: np.ndarray, offsets: np.ndarray, *, continues: bool = False) -> None:
        """Append sequences ``tokens[offsets[i]:offsets[i+1]]`` (``offsets[0]`` may be > 0); with
        ``continues`` the first one goes on the last sequence written (a document written in
        pieces)."""
        if self._closed or self._prepared is not None:
            raise ShardError(self._data_path, "writer already committed or aborted")
        if self._written_elsewhere:
            raise ShardError(self._data_path, "write() after extend_written(): the data is written by other processes")
        tokens = np.asarray(tokens)
        offsets = np.asarray(offsets)
        if tokens.dtype != self.dtype:
            raise ShardError(self._data_path, f"tokens are {tokens.dtype}, this shard is {self.dtype}")
        if tokens.ndim != 1 or offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
            raise ShardError(self._data_path, "need 1-D tokens and 1-D integer offsets with at least one entry")
        offsets = offsets.astype(np.int64, copy=False)
        sizes = np.diff(offsets)
        if offsets[0] < 0 or offsets[-1] > len(tokens) or (sizes < 0).any():
            raise ShardError(self._data_path, f"offsets must rise from >= 0 to <= {len(tokens)} tokens")
        if self.format == "megatron" and len(sizes) and sizes.max() > np.iinfo(np.int32).max:
            raise ShardError(self._data_path, "a sequence longer than 2**31-1 tokens does not fit a Megatron index")
        chunk = tokens[int(offsets[0]) : int(offsets[-1])]
        # Reinterpreting uint32 as int32 (Megatron) or int32 as uint32 (datatrove) keeps only
        # ids in [0, 2**31) intact: check, cheaply, on this in-memory chunk.
        if len(chunk) and self.format == "megatron" and self.dtype == np.uint32 and chunk.max() > 2**31 - 1:
            raise ShardError(self._data_path, f"token id {int(chunk.max())} does not fit the int32 of a Megatron shard")
        if len(chunk) and self.format == "datatrove" and self.dtype == np.int32 and chunk.min() < 0:
            raise ShardError(self._data_path, f"negative token id {int(chunk.min())} in a datatrove shard")
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype.newbyteorder("<"))
        try:
            self._data.write(chunk.data.cast("B"))
            self._sync.add(chunk.nbytes)
        except OSError as exc:
            self._fail(self._data_path, exc)
        self._add_sizes(sizes, continues)
        self._n_tokens += len(chunk)

    @property
    def temp_data_path(self) -> str:
        """The file the data goes to until commit(), for extend_written's writers."""
        return self._temps[0]

    def extend_written(self, sizes: np.ndarray, *, continues: bool = False) -> None:
        """Append sequences of ``sizes`` tokens whose bytes, this shard's dtype little-endian,
        another process has written into ``temp_data_path`` right after the sequences this
        writer holds (a pool worker, at the offset the chunks before its own leave); with
        ``continues`` as in ``write``. Unlike ``write`` this does not read the ids: the kernel
        that produced them checked they fit the dtype. Do not mix with ``write``."""
        if self._closed or self._prepared is not None:
            raise ShardError(self._data_path, "writer already committed or aborted")
        sizes = np.asarray(sizes, dtype=np.int64)
        if self.format == "megatron" and len(sizes) and sizes.max() > np.iinfo(np.int32).max:
            self.abort()
            raise ShardError(self._data_path, "a sequence longer than 2**31-1 tokens does not fit a Megatron index")
        self._written_elsewhere = True
        n_tokens = int(sizes.sum())
        end = (self._n_tokens + n_tokens) * self.dtype.itemsize
        try:
            actual = os.fstat(self._data.fileno()).st_size
            if actual < end:
                self.abort()
                raise ShardError(self._data_path, f"holds {actual} bytes where {end} were written")
            self._sync.add(n_tokens * self.dtype.itemsize)
        except OSError as exc:
            self._fail(self._data_path, exc)
        self._add_sizes(sizes, continues)
        self._n_tokens += n_tokens

    def _add_sizes(self, sizes: np.ndarray, continues: bool) -> None:
        """Record sequences of ``sizes`` tokens, the first added to the last one with ``continues``."""
        if continues and len(sizes):
            last = next((i for i in range(len(self._sizes) - 1, -1, -1) if len(self._sizes[i])), None)
            if last is None:
                self.abort()
                raise ShardError(self._data_path, "no sequence written yet to continue")
            grown = self._sizes[last].astype(np.int64)  # a copy: the caller's array stays as it was
            grown[-1] += sizes[0]
            if self.format == "megatron" and grown[-1] > np.iinfo(np.int32).max:
                self.abort()
                raise ShardError(self._data_path, "a sequence longer than 2**31-1 tokens does not fit a Megatron index")
            self._sizes[last] = grown
            sizes = sizes[1:]
        self._sizes.append(sizes)

    def _fail(self, path: str, exc: OSError):
        self.abort()
        raise ShardError(path, f"cannot write: {exc.strerror or exc}") from None

    def _index_bytes(self, sizes: np.ndarray, doc_idx: np.ndarray) -> list[bytes]:
        if self.format == "megatron":
            return [megatron.index_bytes(sizes, doc_idx, self.dtype)]
        return datatrove.index_bytes(sizes, self.dtype, self.tokenizer_name)

    def prepare(self) -> dict[str, int]:
        """Everything but the renames: flush and fsync the data, write and fsync the index under
        temporary names. Returns {final path: size in bytes}; ``commit()`` then only renames, so
        a caller that puts several files in place together (data, mask, record: the runner)
        can have every one of them complete on disk before it touches a final name."""
        if self._closed:
            raise ShardError(self._data_path, "writer already committed or aborted")
        if self._prepared is not None:
            return dict(self._prepared)
        sizes = np.concatenate(self._sizes) if self._sizes else np.zeros(0, dtype=np.int64)
        n = len(sizes)
        index_path = self._finals[-1]
        doc_idx = self._document_indices
        if doc_idx is None:
            doc_idx = np.arange(n + 1, dtype=np.int64)
        problems = check_document_indices(index_path, doc_idx, n)
        if not problems and self.format == "datatrove" and not np.array_equal(doc_idx, np.arange(n + 1)):
            problems = [
                ShardError(
                    index_path, "datatrove shards have one sequence per document; document_indices must be 0, 1, ..., N"
                )
            ]
        if problems:
            self.abort()
            raise problems[0]
        path = self._data_path
        try:
            self._data.flush()
            actual, expected = os.fstat(self._data.fileno()).st_size, self._n_tokens * self.dtype.itemsize
            if actual != expected:  # e.g. a chunk of extend_written's writers missing or too long
                self.abort()
                raise ShardError(self._data_path, f"holds {actual} bytes where {expected} were written")
            self._sync.finish(check=True)
            os.fsync(self._data.fileno())
            self._data.close()
            prepared = {self._finals[0]: expected}
            for path, temp, blob in zip(self._finals[1:], self._temps[1:], self._index_bytes(sizes, doc_idx)):
                with open_exclusive(temp) as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
                prepared[path] = len(blob)
        except OSError as exc:
            self._fail(path, exc)
        self._prepared = prepared
        return dict(prepared)

    def commit(self) -> list[str]:
        """Flush and fsync everything, write the index, rename into place; the final paths."""
        self.prepare()
        index_path = path = self._finals[-1]
        try:
            # An index that stays visible while its data file is replaced would describe the
            # wrong data: drop the old index first, put the new one in place last.
            if os.path.exists(index_path):
                os.unlink(index_path)
            for path, temp in zip(self._finals, self._temps):
                replace_into(temp, path)
            fsync_dir(os.path.dirname(self._data_path) or ".")
        except OSError as exc:
            self._fail(path, exc)
        self._closed = True
        return list(self._finals)

    def abort(self) -> None:
        """Remove the temporary files; a no-op after commit() or a previous abort()."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sync.finish(check=False)
            self._data.close()
        except OSError:
            pass  # a failing flush on close is the error we are already cleaning up after
        for temp in self._temps:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class FlagWriter:
    """Streams one byte per token into a file beside a shard's data: datatrove's ``NAME.ds.loss``.
    What the runner uses of a ``ShardWriter`` (``write``, ``extend_written``, ``temp_data_path``,
    ``prepare``, ``commit``, ``abort``, ``finals``), for a file without an index; nothing
    appears under the final name until commit()."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.finals = [self.path]
        self._temp = str(temporary_path(self.path))
        self._n_flags = 0
        self._closed = False
        self._prepared: dict[str, int] | None = None
        refuse_link(self.path)
        try:
            self._file = open_exclusive(self._temp)
        except OSError as exc:
            raise ShardError(self.path, f"cannot write: {exc.strerror or exc}") from None

    @property
    def temp_data_path(self) -> str:
        return self._temp

    def write(self, flags: np.ndarray, offsets: np.ndarray, *, continues: bool = False) -> None:
        """Append the flags of sequences ``flags[offsets[i]:offsets[i+1]]``; ``continues``: as
        ``ShardWriter.write`` takes it (a file of flags has no sequences to continue)."""
        chunk = np.ascontiguousarray(flags[int(offsets[0]) : int(offsets[-1])], dtype=np.uint8)
        try:
            self._file.write(chunk.data.cast("B"))
        except OSError as exc:
            self._fail(exc)
        self._n_flags += len(chunk)

    def extend_written(self, sizes: np.ndarray, *, continues: bool = False) -> None:
        """The flags of sequences of ``sizes`` tokens, written into ``temp_data_path`` by another process."""
        self._n_flags += int(np.sum(sizes, dtype=np.int64))

    def prepare(self) -> dict[str, int]:
        """The flags complete and synced under the temporary name: {final path: bytes}."""
        if self._prepared is None:
            try:
                self._file.flush()
                size = os.fstat(self._file.fileno()).st_size
                if size != self._n_flags:
                    self.abort()
                    raise ShardError(self.path, f"holds {size} bytes where {self._n_flags} were written")
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                self._fail(exc)
            self._prepared = {self.path: self._n_flags}
        return dict(self._prepared)

    def commit(self) -> list[str]:
        self.prepare()
        try:
            replace_into(self._temp, self.path)
        except OSError as exc:
            self._fail(exc)
        self._closed = True
        return list(self.finals)

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        except OSError:
            pass  # a failing flush on close is the error already being cleaned up after
        try:
            os.unlink(self._temp)
        except FileNotFoundError:
            pass

    def _fail(self, exc: OSError):
        self.abort()
        raise ShardError(self.path, f"cannot write: {exc.strerror or exc}") from None
