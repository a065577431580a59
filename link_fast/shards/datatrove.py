"""datatrove shards (docs/DESIGN.md §8), little-endian: ``NAME.ds``, the tokens (2 or 4 bytes
each); ``NAME.ds.index``, the uint64 end offset (in tokens) of every document, no header;
optional ``NAME.ds.loss`` (one byte per token) and ``NAME.ds.metadata`` (``tokenizer|token_size``,
token count, token count humanised)."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import numpy as np

from .base import Shard, ShardError, file_size, map_file

# datatrove token sizes: 2 and 4 are what datatrove writes; 1 only for our own uint8 mask
# outputs, and only when the metadata file says so.
DATATROVE_DTYPES: dict[int, np.dtype] = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4")}
DATATROVE_WRITE_SIZES: dict[np.dtype, int] = {
    np.dtype("<u1"): 1,
    np.dtype("<u2"): 2,
    np.dtype("<u4"): 4,
    np.dtype("<i4"): 4,
}
DATATROVE_DEFAULT_TOKENIZER = "Unknown Tokenizer"  # what datatrove itself writes without a name

DATATROVE_SUFFIXES = (".ds.index", ".ds.loss", ".ds.metadata", ".ds")  # longest first


def read_metadata(path: str) -> tuple[str | None, int | None, ShardError | None]:
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


def may_name_tokenizer(recorded: str | None, tokenizer: dict) -> bool:
    """Whether the tokenizer name a datatrove shard records (datatrove's ``tokenizer_name_or_path``:
    a file, a model folder or a Hub repo id) may name ``tokenizer``, a vocabulary's (its header's
    ``path`` and ``name``). Refused only when it cannot: the name must be the end of the
    tokenizer file's path or of its folder's (``smollm2/tokenizer.json``, ``smollm2``), or the repo
    id of the Hub cache folder the file lies in (``HuggingFaceTB/SmolLM2-135M``). No name, or a
    vocabulary that records no tokenizer file, is nothing to compare."""
    where = str(tokenizer.get("path") or tokenizer.get("name") or "")
    if not recorded or recorded == DATATROVE_DEFAULT_TOKENIZER or not where:
        return True
    parts = [p for p in PurePosixPath(where).parts if p != "/"]
    named = [p for p in PurePosixPath(recorded).parts if p not in ("/", ".", "..")]
    for candidate in (parts, parts[:-1]):
        if named and candidate[len(candidate) - len(named) :] == named:
            return True
    repos = {p[len("models--") :].replace("--", "/") for p in parts if p.startswith("models--")}
    return recorded.strip("/") in repos


def inspect_datatrove(prefix: str) -> tuple[Shard | None, list[ShardError]]:
    ds_path, index_path = prefix + ".ds", prefix + ".ds.index"
    loss_path, meta_path = prefix + ".ds.loss", prefix + ".ds.metadata"
    ds_size, index_size = file_size(ds_path), file_size(index_path)
    problems: list[ShardError] = []
    if ds_size is None:
        problems.append(ShardError(ds_path, "missing (the index has no data file)"))
    if index_size is None:
        problems.append(ShardError(index_path, "missing (document boundaries are needed)"))
    if problems or ds_size is None or index_size is None:
        return None, problems

    tokenizer, token_size, problem = read_metadata(meta_path)
    if problem is not None:
        return None, [problem]
    if index_size % 8:
        return None, [
            ShardError(index_path, f"{index_size} bytes is not a whole number of uint64 offsets (truncated?)")
        ]
    ends = map_file(index_path, np.dtype("<u8"), index_size // 8)
    last = int(ends[-1]) if len(ends) else 0
    if token_size is None:
        # No metadata: the file sizes tell the token size (datatrove's default is 2).
        token_size = ds_size // last if last and ds_size % last == 0 and ds_size // last in (2, 4) else 2
    elif token_size not in DATATROVE_DTYPES:  # 2 or 4; 1 only for our masks, declared in metadata
        return None, [ShardError(meta_path, f"token size {token_size} is not 2 or 4")]
    dtype = DATATROVE_DTYPES[token_size]
    if ds_size % token_size:
        problems.append(ShardError(ds_path, f"{ds_size} bytes is not a whole number of {token_size}-byte tokens"))
    n_tokens = ds_size // token_size

    # uint64 offsets above 2**63 would be garbage anyway; view as int64 so they show as negative.
    ends64 = ends.view(np.dtype("<i8"))
    down = np.flatnonzero(np.diff(ends64, prepend=np.int64(0)) < 0)
    if len(down):
        i = int(down[0])
        problems.append(
            ShardError(
                index_path,
                f"document end offsets decrease at document {i} ({int(ends[i - 1]) if i else 0} then {int(ends[i])})",
            )
        )
    elif last > n_tokens:
        problems.append(ShardError(ds_path, f"truncated: {n_tokens} tokens, the index's last document ends at {last}"))
    elif last < n_tokens:
        problems.append(
            ShardError(
                index_path,
                f"last document ends at token {last} but {ds_path} holds "
                f"{n_tokens} tokens ({n_tokens - last} after the last document)",
            )
        )
    loss_size = file_size(loss_path)
    if loss_size is not None and loss_size != n_tokens:
        problems.append(ShardError(loss_path, f"{loss_size} bytes, expected one per token ({n_tokens})"))
    if problems:
        return None, problems

    paths = [ds_path, index_path] + [p for p in (loss_path, meta_path) if os.path.exists(p)]
    sizes = np.diff(ends64, prepend=np.int64(0))
    tokens = map_file(ds_path, dtype, n_tokens)
    shard = Shard(
        format="datatrove",
        prefix=prefix,
        paths=paths,
        dtype=dtype,
        tokens=tokens,
        sizes=sizes,
        document_indices=np.arange(len(ends) + 1, dtype=np.int64),
        starts=ends64,
        tokenizer_name=tokenizer,
        loss=None if loss_size is None else map_file(loss_path, np.dtype(np.uint8), n_tokens),
    )
    return shard, []


def humanize_tokens(count: int) -> str:
    """Like ``humanize.metric(count, unit="T")`` (three significant digits), which datatrove
    writes as the metadata's third line; reimplemented to avoid the dependency."""
    if count == 0:
        return "0.00 T"
    exponent = len(str(abs(count))) - 1  # exact, unlike log10 on floats
    group = min(max(exponent // 3, 0), 8)
    value = count / 10 ** (3 * group)
    decimals = max(0, 2 - (exponent - 3 * group))
    return f"{value:.{decimals}f} {' kMGTPEZY'[group].strip()}T"


def index_bytes(sizes: np.ndarray, dtype: np.dtype, tokenizer_name: str | None) -> list[bytes]:
    """``.ds.metadata`` and ``.ds.index`` of sequences of ``sizes`` tokens of ``dtype``."""
    n_tokens = int(np.sum(sizes, dtype=np.int64))
    ends = np.cumsum(sizes, dtype=np.int64).astype("<u8")
    token_size = DATATROVE_WRITE_SIZES[np.dtype(dtype).newbyteorder("<")]
    name = tokenizer_name or DATATROVE_DEFAULT_TOKENIZER
    metadata = f"{name}|{token_size}\n{n_tokens}\n{humanize_tokens(n_tokens)}"
    return [metadata.encode("utf-8"), ends.tobytes()]
