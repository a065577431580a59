"""Reading, checking and writing tokenized shards: Megatron ``.bin/.idx`` and datatrove ``.ds``.

Formats (``DESIGN.md`` §4), all little-endian:

- Megatron indexed dataset. ``NAME.idx``: magic ``MMIDIDX\\x00\\x00``, ``<Q`` version 1, ``<B``
  dtype code, ``<Q`` sequence count N, ``<Q`` length of document_indices (D+1), then int32
  sizes[N], int64 pointers[N] (byte offsets into ``.bin``) and int64 document_indices[D+1]
  (0 ... N), without padding. ``NAME.bin``: the tokens of every sequence, concatenated.
- datatrove. ``NAME.ds``: the tokens (2 or 4 bytes each); ``NAME.ds.index``: uint64 end offset
  (in tokens) of every document, no header; optional ``NAME.ds.loss`` (one byte per token) and
  ``NAME.ds.metadata`` (``tokenizer|token_size``, token count, token count humanised).

Reading memory-maps the files: nothing proportional to the token count is loaded, and the
checks ``open_shard`` runs are vectorised passes over the index only, never over the tokens.
Every problem is a ``ShardError`` naming the file. Writing (``ShardWriter``) streams into
temporary files in the target directory and renames them into place only when complete.
"""

from __future__ import annotations

import concurrent.futures
import glob
import json
import mmap
import os
import struct
from collections.abc import Sequence

import numpy as np

from .errors import FileError
from .io import fsync_dir, temporary_path


class ShardError(FileError):
    """A shard is missing, malformed, inconsistent, or cannot be written."""


MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_VERSION = 1
_HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequence count, document_indices length
HEADER_SIZE = _HEADER.size  # 34

# Explicit little-endian dtypes: the files are little-endian whatever the host is.
MEGATRON_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<i1"),
    3: np.dtype("<i2"),
    4: np.dtype("<i4"),
    5: np.dtype("<i8"),
    6: np.dtype("<f8"),
    7: np.dtype("<f4"),
    8: np.dtype("<u2"),
    9: np.dtype("<u4"),  # not in megatron-core; accepted when reading, never written
}
_FLOAT_CODES = (6, 7)
# What the writer emits for each dtype. 4-byte unsigned tokens go out as code 4 (int32), the only
# 4-byte integer code megatron-core knows; ids below 2**31 have the same bytes either way.
_MEGATRON_WRITE_CODES: dict[np.dtype, int] = {
    np.dtype("<u1"): 1, np.dtype("<i1"): 2, np.dtype("<i2"): 3, np.dtype("<i4"): 4,
    np.dtype("<i8"): 5, np.dtype("<u2"): 8, np.dtype("<u4"): 4,
}
TOKEN_DTYPES = (np.uint16, np.int32, np.uint32)  # the ones the kernel takes

# datatrove token sizes: 2 and 4 are what datatrove writes; 1 only for our own uint8 mask
# outputs, and only when the metadata file says so.
_DATATROVE_DTYPES: dict[int, np.dtype] = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4")}
_DATATROVE_WRITE_SIZES: dict[np.dtype, int] = {
    np.dtype("<u1"): 1, np.dtype("<u2"): 2, np.dtype("<u4"): 4, np.dtype("<i4"): 4,
}
DATATROVE_DEFAULT_TOKENIZER = "Unknown Tokenizer"  # what datatrove itself writes without a name

_MEGATRON_SUFFIXES = (".bin", ".idx")
_DATATROVE_SUFFIXES = (".ds.index", ".ds.loss", ".ds.metadata", ".ds")  # longest first
# Pointer checks run in blocks so a 100M-sequence index does not need GBs of temporaries.
_CHECK_BLOCK = 1 << 22


def pointers_from_sizes(sizes: np.ndarray, itemsize: int) -> np.ndarray:
    """Byte offset of each sequence in ``.bin``: the exclusive cumulative sum of sizes x itemsize.

    Computed in int64 throughout: int32 arithmetic wraps past 2 GiB, a classic cause of
    corrupt Megatron indexes.
    """
    sizes64 = np.asarray(sizes).astype(np.int64, copy=False)
    pointers = np.zeros(len(sizes64), dtype=np.int64)
    if len(sizes64) > 1:
        np.cumsum(sizes64[:-1], out=pointers[1:])
    pointers *= np.int64(itemsize)
    return pointers


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _map(path: str, dtype: np.dtype, count: int | None = None, offset: int = 0) -> np.ndarray:
    """A read-only memory map of ``path`` as ``dtype`` (an empty array for an empty range:
    mmap cannot map zero bytes)."""
    if count == 0 or (count is None and os.stat(path).st_size <= offset):
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,) if count is not None else None)


# -- reading -------------------------------------------------------------------------------------


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

    def __init__(self, *, format: str, prefix: str, paths: list[str], dtype: np.dtype,
                 tokens: np.ndarray, sizes: np.ndarray, document_indices: np.ndarray,
                 starts: np.ndarray, tokenizer_name: str | None = None):
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
        tokens = self.tokens
        mm = getattr(tokens, "_mmap", None)
        if mm is None or not hasattr(mmap, "MADV_DONTNEED") or stop <= start:
            return
        first, last = self.offsets(start, stop)[[0, -1]]
        base = tokens.offset % mmap.ALLOCATIONGRANULARITY  # where np.memmap's array starts in its map
        begin = base + int(first) * tokens.itemsize
        end = base + int(last) * tokens.itemsize
        begin -= begin % mmap.PAGESIZE
        if end > begin:
            mm.madvise(mmap.MADV_DONTNEED, begin, min(end - begin, len(mm) - begin))

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
        self.sizes = np.empty(0, dtype=np.int64)
        self._starts = np.empty(0, dtype=np.int64)
        self.document_indices = np.zeros(1, dtype=np.int64)
        self.n_sequences = 0

    def __enter__(self) -> Shard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Shard({self.format}, {self.prefix!r}, {self.n_sequences} sequences, "
                f"{self.n_tokens} tokens, {self.dtype})")


def _split(path) -> tuple[str, str | None]:
    """(prefix, format) of a path naming a shard file or prefix; format None if undetectable."""
    p = os.fspath(path)
    if os.path.isfile(p):
        for suffix in _DATATROVE_SUFFIXES:
            if p.endswith(suffix):
                return p[: -len(suffix)], "datatrove"
        for suffix in _MEGATRON_SUFFIXES:
            if p.endswith(suffix):
                return p[: -len(suffix)], "megatron"
    megatron = any(os.path.exists(p + s) for s in _MEGATRON_SUFFIXES)
    datatrove = any(os.path.exists(p + s) for s in (".ds", ".ds.index"))
    if megatron and datatrove:
        raise ShardError(p, "both a Megatron (.bin/.idx) and a datatrove (.ds) shard have this name; name the file")
    if megatron:
        return p, "megatron"
    if datatrove:
        return p, "datatrove"
    # A file name that does not exist yet: strip a known suffix so the error names the real file.
    for suffix in _DATATROVE_SUFFIXES:
        if p.endswith(suffix):
            return p[: -len(suffix)], "datatrove"
    for suffix in _MEGATRON_SUFFIXES:
        if p.endswith(suffix):
            return p[: -len(suffix)], "megatron"
    return p, None


def _inspect(path) -> tuple[Shard | None, list[ShardError]]:
    """Open and check a shard: (the shard, or None if unreadable; every problem found).

    Raises ShardError only when there is no shard at all under that name.
    """
    prefix, fmt = _split(path)
    if fmt is None:
        raise ShardError(prefix, "no shard here: none of .bin/.idx/.ds/.ds.index exists")
    try:
        if fmt == "megatron":
            return _inspect_megatron(prefix)
        return _inspect_datatrove(prefix)
    except OSError as exc:  # unreadable (permissions, I/O error): a problem, not a crash of `validate`
        return None, [ShardError(exc.filename or prefix, f"cannot read: {exc.strerror or exc}")]


def _inspect_megatron(prefix: str) -> tuple[Shard | None, list[ShardError]]:
    idx_path, bin_path = prefix + ".idx", prefix + ".bin"
    idx_size, bin_size = _file_size(idx_path), _file_size(bin_path)
    problems: list[ShardError] = []
    if idx_size is None:
        problems.append(ShardError(idx_path, "missing (the .bin has no index)"))
    if bin_size is None:
        problems.append(ShardError(bin_path, "missing (the .idx has no data file)"))
    if problems:
        return None, problems

    # Header problems make the rest unreadable: report them alone.
    with open(idx_path, "rb") as f:
        head = f.read(HEADER_SIZE)
    if len(head) < 9 or head[:9] != MEGATRON_MAGIC:
        if len(head) < 9 and MEGATRON_MAGIC.startswith(head):
            return None, [ShardError(idx_path, f"truncated: {idx_size} bytes, the header alone is {HEADER_SIZE}")]
        return None, [ShardError(idx_path, f"not a Megatron index: wrong magic {head[:9]!r} (expected {MEGATRON_MAGIC!r})")]
    if len(head) < HEADER_SIZE:
        return None, [ShardError(idx_path, f"truncated: {idx_size} bytes, the header alone is {HEADER_SIZE}")]
    _, version, code, n, n_doc_idx = _HEADER.unpack(head)
    if version != MEGATRON_VERSION:
        return None, [ShardError(idx_path, f"unsupported version {version} (only {MEGATRON_VERSION} is known)")]
    if code in _FLOAT_CODES:
        return None, [ShardError(idx_path, f"dtype code {code} ({MEGATRON_DTYPES[code]}) is floating point, not token ids")]
    if code not in MEGATRON_DTYPES:
        return None, [ShardError(idx_path, f"unknown dtype code {code}")]
    dtype = MEGATRON_DTYPES[code]
    need = HEADER_SIZE + 12 * n + 8 * n_doc_idx  # Python ints: no overflow whatever the header says
    if idx_size < need:
        return None, [ShardError(idx_path, f"truncated: {idx_size} bytes, the header ({n} sequences, "
                                           f"{n_doc_idx} document indices) needs {need}")]
    if idx_size > need:
        # megatron-core's multimodal indexes append one int8 mode per sequence; we do not read them.
        problems.append(ShardError(idx_path, f"{idx_size - need} extra bytes after document_indices "
                                             f"(multimodal indexes are not supported)"))

    sizes = _map(idx_path, np.dtype("<i4"), n, HEADER_SIZE)
    pointers = _map(idx_path, np.dtype("<i8"), n, HEADER_SIZE + 4 * n)
    doc_idx = _map(idx_path, np.dtype("<i8"), n_doc_idx, HEADER_SIZE + 12 * n)

    negative = np.flatnonzero(sizes < 0)
    if len(negative):
        i = int(negative[0])
        problems.append(ShardError(idx_path, f"negative size {int(sizes[i])} of sequence {i}"))
        return None, problems  # sums and pointers are meaningless from here

    total = int(np.sum(sizes, dtype=np.int64))
    want_bytes = total * dtype.itemsize
    if bin_size < want_bytes:
        problems.append(ShardError(bin_path, f"truncated: {bin_size} bytes, the index needs {want_bytes} "
                                             f"({total} tokens x {dtype.itemsize} bytes)"))
    elif bin_size > want_bytes:
        problems.append(ShardError(bin_path, f"{bin_size - want_bytes} extra bytes: {bin_size} bytes, the index "
                                             f"covers {want_bytes} ({total} tokens x {dtype.itemsize} bytes)"))

    bad = _first_bad_pointer(sizes, pointers, dtype.itemsize)
    if bad is not None:
        i, got, want = bad
        problems.append(ShardError(idx_path, f"sequence pointers disagree with sizes from sequence {i} "
                                             f"(pointer {got}, expected {want}): not contiguous or out of order"))

    problems += _check_document_indices(idx_path, doc_idx, n)

    if problems:
        return None, problems
    tokens = _map(bin_path, dtype, total)
    shard = Shard(format="megatron", prefix=prefix, paths=[bin_path, idx_path], dtype=dtype, tokens=tokens,
                  sizes=sizes, document_indices=doc_idx, starts=pointers)
    return shard, []


def _first_bad_pointer(sizes: np.ndarray, pointers: np.ndarray, itemsize: int) -> tuple[int, int, int] | None:
    """(sequence, pointer, expected pointer) of the first pointer that is not the running sum."""
    base = 0
    for a in range(0, len(sizes), _CHECK_BLOCK):
        block = sizes[a:a + _CHECK_BLOCK]
        want = pointers_from_sizes(block, itemsize) + np.int64(base)
        wrong = np.flatnonzero(want != pointers[a:a + _CHECK_BLOCK])
        if len(wrong):
            i = int(wrong[0])
            return a + i, int(pointers[a + i]), int(want[i])
        base += int(np.sum(block, dtype=np.int64)) * itemsize
    return None


def _check_document_indices(path: str, doc_idx: np.ndarray, n: int) -> list[ShardError]:
    if len(doc_idx) == 0:
        return [ShardError(path, "document_indices is empty (it must hold at least [0])")]
    problems = []
    if doc_idx[0] != 0:
        problems.append(ShardError(path, f"document_indices start at {int(doc_idx[0])}, not 0"))
    down = np.flatnonzero(np.diff(doc_idx) < 0)
    if len(down):
        i = int(down[0]) + 1
        problems.append(ShardError(path, f"document_indices decrease at position {i} "
                                         f"({int(doc_idx[i - 1])} then {int(doc_idx[i])})"))
    if doc_idx[-1] != n:
        problems.append(ShardError(path, f"document_indices end at {int(doc_idx[-1])}, not at the sequence count {n}"))
    return problems


def _read_datatrove_metadata(path: str) -> tuple[str | None, int | None, ShardError | None]:
    """(tokenizer name, token size, problem) from ``.ds.metadata``; all None if there is none.

    datatrove writes ``tokenizer|token_size`` on the first line (older versions only the
    tokenizer, meaning 2-byte tokens); the tokenizer name itself may hold '|', so split on the last.
    """
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
    except FileNotFoundError:
        return None, None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, None, ShardError(path, f"cannot read: {getattr(exc, 'strerror', None) or exc}")
    if "|" not in first:
        return first, 2, None
    name, size = first.rsplit("|", 1)
    try:
        return name, int(size), None
    except ValueError:
        return name, None, ShardError(path, f"token size {size!r} is not a number")


def _inspect_datatrove(prefix: str) -> tuple[Shard | None, list[ShardError]]:
    ds_path, index_path = prefix + ".ds", prefix + ".ds.index"
    loss_path, meta_path = prefix + ".ds.loss", prefix + ".ds.metadata"
    ds_size, index_size = _file_size(ds_path), _file_size(index_path)
    problems: list[ShardError] = []
    if ds_size is None:
        problems.append(ShardError(ds_path, "missing (the index has no data file)"))
    if index_size is None:
        problems.append(ShardError(index_path, "missing (document boundaries are needed)"))
    if problems:
        return None, problems

    tokenizer, token_size, problem = _read_datatrove_metadata(meta_path)
    if problem is not None:
        return None, [problem]
    if index_size % 8:
        return None, [ShardError(index_path, f"{index_size} bytes is not a whole number of uint64 offsets (truncated?)")]
    ends = _map(index_path, np.dtype("<u8"), index_size // 8)
    last = int(ends[-1]) if len(ends) else 0
    if token_size is None:
        # No metadata: the file sizes tell the token size (datatrove's default is 2).
        token_size = ds_size // last if last and ds_size % last == 0 and ds_size // last in (2, 4) else 2
    elif token_size not in _DATATROVE_DTYPES:  # 2 or 4; 1 only for our masks, declared in metadata
        return None, [ShardError(meta_path, f"token size {token_size} is not 2 or 4")]
    dtype = _DATATROVE_DTYPES[token_size]
    if ds_size % token_size:
        problems.append(ShardError(ds_path, f"{ds_size} bytes is not a whole number of {token_size}-byte tokens"))
    n_tokens = ds_size // token_size

    # uint64 offsets above 2**63 would be garbage anyway; view as int64 so they show as negative.
    ends64 = ends.view(np.dtype("<i8"))
    down = np.flatnonzero(np.diff(ends64, prepend=np.int64(0)) < 0)
    if len(down):
        i = int(down[0])
        problems.append(ShardError(index_path, f"document end offsets decrease at document {i} "
                                               f"({int(ends[i - 1]) if i else 0} then {int(ends[i])})"))
    elif last > n_tokens:
        problems.append(ShardError(ds_path, f"truncated: {n_tokens} tokens, the index's last document ends at {last}"))
    elif last < n_tokens:
        problems.append(ShardError(index_path, f"last document ends at token {last} but {ds_path} holds "
                                               f"{n_tokens} tokens ({n_tokens - last} after the last document)"))
    loss_size = _file_size(loss_path)
    if loss_size is not None and loss_size != n_tokens:
        problems.append(ShardError(loss_path, f"{loss_size} bytes, expected one per token ({n_tokens})"))
    if problems:
        return None, problems

    paths = [ds_path, index_path] + [p for p in (loss_path, meta_path) if os.path.exists(p)]
    sizes = np.diff(ends64, prepend=np.int64(0))
    shard = Shard(format="datatrove", prefix=prefix, paths=paths, dtype=dtype, tokens=_map(ds_path, dtype, n_tokens),
                  sizes=sizes, document_indices=np.arange(len(ends) + 1, dtype=np.int64), starts=ends64,
                  tokenizer_name=tokenizer)
    return shard, []


def open_shard(path) -> Shard:
    """Open a shard by prefix or by any of its files, detecting the format; checks it fully.

    Raises ShardError on the first problem (missing file, bad header, inconsistent index,
    data file of the wrong size, ...).
    """
    shard, problems = _inspect(path)
    if problems or shard is None:
        raise problems[0]
    return shard


def validate_shard(path) -> list[str]:
    """Every problem found in the shard (``"FILE: problem"``), [] if it is valid.

    Raises ShardError only if there is no shard at all under that name.
    """
    shard, problems = _inspect(path)
    if shard is not None:
        try:
            problems = _check_against_records(shard)
        finally:
            shard.close()
    return [str(p) for p in problems]


# -- link-fast's own outputs ----------------------------------------------------------------------

LINK_RECORD_SUFFIX = ".link.json"  # NAME.link.json: the record of a finished `link-fast apply` output
SHARD_SUFFIXES = _MEGATRON_SUFFIXES + _DATATROVE_SUFFIXES  # every file a shard NAME may have


def read_link_record(prefix) -> dict | None:
    """The record ``PREFIX.link.json`` that ``link-fast apply`` writes next to an output, or None."""
    try:
        with open(os.fspath(prefix) + LINK_RECORD_SUFFIX, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def recorded_mask(record: dict, name: str) -> str | None:
    """The name of the mask shard that the record of output ``name`` describes; None: no mask."""
    if "mask_shard" in record:
        return record["mask_shard"] if isinstance(record["mask_shard"], str) else None
    # a record of an earlier link-fast, without "mask_shard": its mask is NAME_mask, among its outputs
    outputs = record.get("outputs") if isinstance(record.get("outputs"), list) else []
    if record.get("mask") is True and any(os.path.basename(str(p)).startswith(f"{name}_mask.") for p in outputs):
        return f"{name}_mask"
    return None


def mask_owner(prefix) -> str | None:
    """The prefix of the output whose record names the shard ``prefix`` as its mask, or None.
    ``X_mask`` is a mask written by link-fast when ``X.link.json`` next to it says so."""
    prefix = os.fspath(prefix)
    name = os.path.basename(prefix)
    if not name.endswith("_mask") or name == "_mask":
        return None
    owner = prefix[: -len("_mask")]
    record = read_link_record(owner)
    if record is None or recorded_mask(record, os.path.basename(owner)) != name:
        return None
    return owner


def _check_against_records(shard: Shard) -> list[ShardError]:
    """A valid shard's problems with the link-fast records next to it: a mask whose sequences
    are not its data shard's, a ``X_mask`` that ``X.link.json`` does not list (left over from an
    earlier run), a mask a record lists that is missing."""
    problems = []
    record = read_link_record(shard.prefix)
    if record is not None:
        mask = recorded_mask(record, shard.name)
        if mask is not None and _split(os.path.join(os.path.dirname(shard.prefix), mask))[1] is None:
            problems.append(ShardError(shard.prefix + LINK_RECORD_SUFFIX, f"lists the mask {mask}, which is missing"))
    if not shard.name.endswith("_mask") or shard.name == "_mask":
        return problems
    owner = shard.prefix[: -len("_mask")]
    owner_name = os.path.basename(owner)
    owner_record = read_link_record(owner)
    if owner_record is None:
        return problems
    if recorded_mask(owner_record, owner_name) == shard.name:
        return problems + _compare_mask(shard, owner)
    if record is None:
        problems.append(ShardError(shard.paths[1], f"named as the mask of {owner_name}, but {owner_name}"
                                                   f"{LINK_RECORD_SUFFIX} lists no such mask: left over from an earlier run?"))
    return problems


def _compare_mask(mask: Shard, owner: str) -> list[ShardError]:
    """A mask must have its data shard's sequences: same count, same lengths, same documents."""
    where, owner_name = mask.paths[1], os.path.basename(owner)
    problems = []
    if mask.dtype != np.dtype(np.uint8):
        problems.append(ShardError(where, f"a mask of {mask.dtype}, not uint8"))
    try:
        data, data_problems = _inspect(owner)
    except ShardError:
        return problems + [ShardError(where, f"the mask of {owner_name}, which is missing")]
    if data is None:
        return problems + [ShardError(where, f"cannot be checked against its data shard: {data_problems[0]}")]
    try:
        if data.n_sequences != mask.n_sequences:
            return problems + [ShardError(where, f"{mask.n_sequences} sequences, its data shard {owner_name} "
                                                 f"has {data.n_sequences}")]
        for a in range(0, mask.n_sequences, _CHECK_BLOCK):
            got = np.asarray(mask.sizes[a:a + _CHECK_BLOCK], dtype=np.int64)
            want = np.asarray(data.sizes[a:a + _CHECK_BLOCK], dtype=np.int64)
            wrong = np.flatnonzero(got != want)
            if len(wrong):
                i = int(wrong[0])
                return problems + [ShardError(where, f"sequence {a + i} has {int(got[i])} tokens, "
                                                     f"{int(want[i])} in its data shard {owner_name}")]
        if not np.array_equal(mask.document_indices, data.document_indices):
            problems.append(ShardError(where, f"document_indices differ from its data shard {owner_name}'s"))
    finally:
        data.close()
    return problems


def _prefixes_in(paths: Sequence[str]) -> list[str]:
    """Shard prefixes named by existing files (hidden files, e.g. our temporaries, skipped)."""
    found = []
    for p in paths:
        if os.path.basename(p).startswith(".") or not os.path.isfile(p):
            continue
        for suffix in _DATATROVE_SUFFIXES + _MEGATRON_SUFFIXES:
            if p.endswith(suffix):
                found.append(p[: -len(suffix)])
                break
    return found


def find_shards(inputs: Sequence[str]) -> list[str]:
    """Sorted unique shard prefixes named by ``inputs``.

    Each input is a prefix, a file of a shard, a directory (its shards, not recursive) or a glob.
    Raises ShardError for an input that names no shard.
    """
    found: set[str] = set()
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            names = sorted(os.listdir(item))
            got = _prefixes_in([os.path.join(item, name) for name in names])
            if not got:
                raise ShardError(item, "no shards in this directory (no .bin/.idx/.ds files)")
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
            got = _prefixes_in(matches)
            for m in matches:
                if os.path.isdir(m):
                    got += _prefixes_in([os.path.join(m, name) for name in sorted(os.listdir(m))])
            if not got:
                raise ShardError(item, "matches no shard files")
        else:
            prefix, fmt = _split(item)
            if fmt is None or not any(os.path.exists(prefix + s) for s in _DATATROVE_SUFFIXES + _MEGATRON_SUFFIXES):
                raise ShardError(item, "no shard here: not a directory, and none of .bin/.idx/.ds/.ds.index exists")
            got = [prefix]
        found.update(got)
    return sorted(found)


# -- writing -------------------------------------------------------------------------------------


def _humanize_tokens(count: int) -> str:
    """Like ``humanize.metric(count, unit="T")`` (three significant digits), which datatrove
    writes as the metadata's third line; reimplemented to avoid the dependency."""
    if count == 0:
        return "0.00 T"
    exponent = len(str(abs(count))) - 1  # exact, unlike log10 on floats
    group = min(max(exponent // 3, 0), 8)
    value = count / 10 ** (3 * group)
    decimals = max(0, 2 - (exponent - 3 * group))
    return f"{value:.{decimals}f} {' kMGTPEZY'[group].strip()}T"


SYNC_EVERY_BYTES = 64 << 20  # a background fdatasync after this much new data


class ShardWriter:
    """Streams sequences into a new shard; nothing appears under the final names until commit().

    ``with ShardWriter(prefix, np.uint16) as w: w.write(tokens, offsets)`` commits on a clean
    exit and removes the temporary files on an exception.
    """

    def __init__(self, prefix, dtype, *, format: str = "megatron", document_indices: np.ndarray | None = None,
                 tokenizer_name: str | None = None):
        self.prefix = os.fspath(prefix)
        self.format = format
        self.dtype = np.dtype(dtype)
        self.tokenizer_name = tokenizer_name
        self._document_indices = None if document_indices is None else np.asarray(document_indices, dtype=np.int64)
        if format == "megatron":
            if self.dtype.newbyteorder("<") not in _MEGATRON_WRITE_CODES:
                raise ShardError(self.prefix + ".idx", f"cannot write {self.dtype} tokens to a Megatron shard")
            self._code = _MEGATRON_WRITE_CODES[self.dtype.newbyteorder("<")]
            self._finals = [self.prefix + ".bin", self.prefix + ".idx"]  # data first, index last
        elif format == "datatrove":
            if self.dtype.newbyteorder("<") not in _DATATROVE_WRITE_SIZES:
                raise ShardError(self.prefix + ".ds", f"cannot write {self.dtype} tokens to a datatrove shard "
                                                      f"(uint16, uint32 or int32)")
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
        # Data is flushed to disk in the background as it accumulates, so that commit's fsync
        # waits for the last stretch only, not for the whole file (disk, not compute, bounds a
        # file-to-file rewrite otherwise: ~0.65 s per 320 MB on the 2-core VM).
        self._unsynced = 0
        self._syncing = None
        try:
            # Like `-o DIR` elsewhere: a missing output directory is created, not an error.
            os.makedirs(os.path.dirname(self._data_path) or ".", exist_ok=True)
            self._data = open(self._temps[0], "wb")
        except OSError as exc:
            raise ShardError(self._data_path, f"cannot write: {exc.strerror or exc}") from None

    @property
    def n_sequences(self) -> int:
        return sum(len(s) for s in self._sizes)

    def write(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        """Append sequences ``tokens[offsets[i]:offsets[i+1]]`` (``offsets[0]`` may be > 0)."""
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
        chunk = tokens[int(offsets[0]):int(offsets[-1])]
        # Reinterpreting uint32 as int32 (Megatron) or int32 as uint32 (datatrove) keeps only
        # ids in [0, 2**31) intact: check, cheaply, on this in-memory chunk.
        if len(chunk) and self.format == "megatron" and self.dtype == np.uint32 and chunk.max() > 2**31 - 1:
            raise ShardError(self._data_path, f"token id {int(chunk.max())} does not fit the int32 of a Megatron shard")
        if len(chunk) and self.format == "datatrove" and self.dtype == np.int32 and chunk.min() < 0:
            raise ShardError(self._data_path, f"negative token id {int(chunk.min())} in a datatrove shard")
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype.newbyteorder("<"))
        try:
            self._data.write(memoryview(chunk).cast("B"))
            self._sync_in_background(chunk.nbytes)
        except OSError as exc:
            self._fail(self._data_path, exc)
        self._sizes.append(sizes)
        self._n_tokens += len(chunk)

    @property
    def temp_data_path(self) -> str:
        """The file the data goes to until commit(), for extend_written's writers."""
        return self._temps[0]

    def extend_written(self, sizes: np.ndarray) -> None:
        """Append sequences of ``sizes`` tokens whose bytes, this shard's dtype little-endian,
        another process has written into ``temp_data_path`` right after the sequences this
        writer holds (a pool worker, at the offset the chunks before its own leave). Unlike
        ``write`` this does not read the ids: the kernel that produced them checked they fit
        the dtype. Do not mix with ``write``."""
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
            self._sync_in_background(n_tokens * self.dtype.itemsize)
        except OSError as exc:
            self._fail(self._data_path, exc)
        self._sizes.append(sizes)
        self._n_tokens += n_tokens

    def _sync_in_background(self, n_bytes: int) -> None:
        self._unsynced += n_bytes
        if self._unsynced < SYNC_EVERY_BYTES or (self._syncing is not None and not self._syncing.done()):
            return
        if self._syncing is not None:
            self._syncing.result()  # raises the OSError of a failed earlier sync
        else:
            self._syncer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="link_fast-fdatasync")
        self._data.flush()
        self._unsynced = 0
        self._syncing = self._syncer.submit(os.fdatasync, self._data.fileno())

    def _finish_syncing(self, check: bool) -> None:
        if self._syncing is None:
            return
        try:
            if check:
                self._syncing.result()
            else:
                concurrent.futures.wait([self._syncing])
        finally:
            self._syncer.shutdown(wait=True)
            self._syncing = None

    def _fail(self, path: str, exc: OSError):
        self.abort()
        raise ShardError(path, f"cannot write: {exc.strerror or exc}") from None

    def _index_bytes(self, sizes: np.ndarray, doc_idx: np.ndarray) -> list[bytes]:
        if self.format == "megatron":
            header = _HEADER.pack(MEGATRON_MAGIC, MEGATRON_VERSION, self._code, len(sizes), len(doc_idx))
            pointers = pointers_from_sizes(sizes, self.dtype.itemsize)
            index = b"".join([header, sizes.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                              doc_idx.astype("<i8").tobytes()])
            return [index]
        ends = np.cumsum(sizes, dtype=np.int64).astype("<u8")
        token_size = _DATATROVE_WRITE_SIZES[self.dtype.newbyteorder("<")]
        name = self.tokenizer_name or DATATROVE_DEFAULT_TOKENIZER
        metadata = f"{name}|{token_size}\n{self._n_tokens}\n{_humanize_tokens(self._n_tokens)}"
        return [metadata.encode("utf-8"), ends.tobytes()]

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
        problems = _check_document_indices(index_path, doc_idx, n)
        if not problems and self.format == "datatrove" and not np.array_equal(doc_idx, np.arange(n + 1)):
            problems = [ShardError(index_path, "datatrove shards have one sequence per document; "
                                               "document_indices must be 0, 1, ..., N")]
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
            self._finish_syncing(check=True)
            os.fsync(self._data.fileno())
            self._data.close()
            prepared = {self._finals[0]: expected}
            for path, temp, blob in zip(self._finals[1:], self._temps[1:], self._index_bytes(sizes, doc_idx)):
                with open(temp, "wb") as f:
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
                os.replace(temp, path)
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
            self._finish_syncing(check=False)
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
