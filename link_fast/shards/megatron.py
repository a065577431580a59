"""Megatron indexed datasets (``NAME.bin`` + ``NAME.idx``, docs/DESIGN.md §8), little-endian.

``NAME.idx``: magic ``MMIDIDX\\x00\\x00``, ``<Q`` version 1, ``<B`` dtype code, ``<Q`` sequence
count N, ``<Q`` length of document_indices (D+1), then int32 sizes[N], int64 pointers[N] (byte
offsets into ``.bin``) and int64 document_indices[D+1] (0 ... N), without padding.
``NAME.bin``: the tokens of every sequence, concatenated.
"""

from __future__ import annotations

import struct

import numpy as np

from .base import CHECK_BLOCK, Shard, ShardError, check_document_indices, file_size, map_file

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_VERSION = 1
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequence count, document_indices length
HEADER_SIZE = HEADER.size  # 34

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
FLOAT_CODES = (6, 7)
# What the writer emits for each dtype. 4-byte unsigned tokens go out as code 4 (int32), the only
# 4-byte integer code megatron-core knows; ids below 2**31 have the same bytes either way.
MEGATRON_WRITE_CODES: dict[np.dtype, int] = {
    np.dtype("<u1"): 1,
    np.dtype("<i1"): 2,
    np.dtype("<i2"): 3,
    np.dtype("<i4"): 4,
    np.dtype("<i8"): 5,
    np.dtype("<u2"): 8,
    np.dtype("<u4"): 4,
}

MEGATRON_SUFFIXES = (".bin", ".idx")


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


def inspect_megatron(prefix: str) -> tuple[Shard | None, list[ShardError]]:
    """Open and check a Megatron shard: (the shard, or None; every problem found)."""
    idx_path, bin_path = prefix + ".idx", prefix + ".bin"
    idx_size, bin_size = file_size(idx_path), file_size(bin_path)
    problems: list[ShardError] = []
    if idx_size is None:
        problems.append(ShardError(idx_path, "missing (the .bin has no index)"))
    if bin_size is None:
        problems.append(ShardError(bin_path, "missing (the .idx has no data file)"))
    if problems or idx_size is None or bin_size is None:
        return None, problems
    header = _read_header(idx_path, idx_size)
    if isinstance(header, ShardError):  # header problems make the rest unreadable: report them alone
        return None, [header]
    dtype, n, n_doc_idx, problems = header
    sizes = map_file(idx_path, np.dtype("<i4"), n, HEADER_SIZE)
    pointers = map_file(idx_path, np.dtype("<i8"), n, HEADER_SIZE + 4 * n)
    doc_idx = map_file(idx_path, np.dtype("<i8"), n_doc_idx, HEADER_SIZE + 12 * n)
    negative = np.flatnonzero(sizes < 0)
    if len(negative):
        i = int(negative[0])
        problems.append(ShardError(idx_path, f"negative size {int(sizes[i])} of sequence {i}"))
        return None, problems  # sums and pointers are meaningless from here
    total = int(np.sum(sizes, dtype=np.int64))
    problems += _check_data_size(bin_path, bin_size, total, dtype)
    bad = _first_bad_pointer(sizes, pointers, dtype.itemsize)
    if bad is not None:
        i, got, want = bad
        problems.append(
            ShardError(
                idx_path,
                f"sequence pointers disagree with sizes from sequence {i} "
                f"(pointer {got}, expected {want}): not contiguous or out of order",
            )
        )
    problems += check_document_indices(idx_path, doc_idx, n)
    if problems:
        return None, problems
    tokens = map_file(bin_path, dtype, total)
    shard = Shard(
        format="megatron",
        prefix=prefix,
        paths=[bin_path, idx_path],
        dtype=dtype,
        tokens=tokens,
        sizes=sizes,
        document_indices=doc_idx,
        starts=pointers,
    )
    return shard, []


def _read_header(idx_path: str, idx_size: int) -> ShardError | tuple[np.dtype, int, int, list[ShardError]]:
    """The index's header: (dtype, sequence count, document_indices length, problems that leave
    the rest readable), or the problem that makes the index unreadable."""
    with open(idx_path, "rb") as f:
        head = f.read(HEADER_SIZE)
    if len(head) < 9 or head[:9] != MEGATRON_MAGIC:
        if len(head) < 9 and MEGATRON_MAGIC.startswith(head):
            return ShardError(idx_path, f"truncated: {idx_size} bytes, the header alone is {HEADER_SIZE}")
        return ShardError(idx_path, f"not a Megatron index: wrong magic {head[:9]!r} (expected {MEGATRON_MAGIC!r})")
    if len(head) < HEADER_SIZE:
        return ShardError(idx_path, f"truncated: {idx_size} bytes, the header alone is {HEADER_SIZE}")
    _, version, code, n, n_doc_idx = HEADER.unpack(head)
    if version != MEGATRON_VERSION:
        return ShardError(idx_path, f"unsupported version {version} (only {MEGATRON_VERSION} is known)")
    if code in FLOAT_CODES:
        return ShardError(idx_path, f"dtype code {code} ({MEGATRON_DTYPES[code]}) is floating point, not token ids")
    if code not in MEGATRON_DTYPES:
        return ShardError(idx_path, f"unknown dtype code {code}")
    need = HEADER_SIZE + 12 * n + 8 * n_doc_idx  # Python ints: no overflow whatever the header says
    if idx_size < need:
        return ShardError(
            idx_path,
            f"truncated: {idx_size} bytes, the header ({n} sequences, {n_doc_idx} document indices) needs {need}",
        )
    problems = []
    if idx_size > need:
        # megatron-core's multimodal indexes append one int8 mode per sequence; we do not read them.
        problems.append(
            ShardError(
                idx_path, f"{idx_size - need} extra bytes after document_indices (multimodal indexes are not supported)"
            )
        )
    return MEGATRON_DTYPES[code], n, n_doc_idx, problems


def _check_data_size(bin_path: str, bin_size: int, total: int, dtype: np.dtype) -> list[ShardError]:
    want_bytes = total * dtype.itemsize
    if bin_size < want_bytes:
        return [
            ShardError(
                bin_path,
                f"truncated: {bin_size} bytes, the index needs {want_bytes} ({total} tokens x {dtype.itemsize} bytes)",
            )
        ]
    if bin_size > want_bytes:
        return [
            ShardError(
                bin_path,
                f"{bin_size - want_bytes} extra bytes: {bin_size} bytes, the index "
                f"covers {want_bytes} ({total} tokens x {dtype.itemsize} bytes)",
            )
        ]
    return []


def _first_bad_pointer(sizes: np.ndarray, pointers: np.ndarray, itemsize: int) -> tuple[int, int, int] | None:
    """(sequence, pointer, expected pointer) of the first pointer that is not the running sum."""
    base = 0
    for a in range(0, len(sizes), CHECK_BLOCK):
        block = sizes[a : a + CHECK_BLOCK]
        want = pointers_from_sizes(block, itemsize) + np.int64(base)
        wrong = np.flatnonzero(want != pointers[a : a + CHECK_BLOCK])
        if len(wrong):
            i = int(wrong[0])
            return a + i, int(pointers[a + i]), int(want[i])
        base += int(np.sum(block, dtype=np.int64)) * itemsize
    return None


def index_bytes(sizes: np.ndarray, doc_idx: np.ndarray, dtype: np.dtype) -> bytes:
    """The ``.idx`` of sequences of ``sizes`` tokens of ``dtype`` (one the writer emits)."""
    code = MEGATRON_WRITE_CODES[np.dtype(dtype).newbyteorder("<")]
    header = HEADER.pack(MEGATRON_MAGIC, MEGATRON_VERSION, code, len(sizes), len(doc_idx))
    pointers = pointers_from_sizes(sizes, np.dtype(dtype).itemsize)
    return b"".join(
        [header, sizes.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(), doc_idx.astype("<i8").tobytes()]
    )
