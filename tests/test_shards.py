"""link_fast.shards: round trips, the megatron-core and datatrove oracles, corrupt shards,
crash safety of the writer (a full disk simulated with RLIMIT_FSIZE) and int64 pointers."""

from __future__ import annotations

import itertools
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from link_fast.errors import LinkFastError
from link_fast.shards import (
    MEGATRON_DTYPES,
    TOKEN_DTYPES,
    Shard,
    ShardError,
    ShardWriter,
    find_shards,
    open_shard,
    pointers_from_sizes,
    validate_shard,
)


def make_sequences(n: int, dtype, seed: int = 0, max_len: int = 50, top: int = 60_000):
    """Random sequences (some empty) as (tokens, offsets)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_len, n)
    lengths[rng.random(n) < 0.1] = 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = rng.integers(0, top, int(offsets[-1])).astype(dtype)
    return tokens, offsets


def write(prefix, tokens, offsets, dtype=None, *, batches: int = 3, **kwargs) -> None:
    """Write through ShardWriter in several batches, each with offsets[0] > 0 where possible."""
    dtype = np.dtype(dtype or tokens.dtype)
    n = len(offsets) - 1
    cuts = np.linspace(0, n, batches + 1).astype(int)
    with ShardWriter(prefix, dtype, **kwargs) as writer:
        for a, b in itertools.pairwise(cuts):
            # Pass the whole token array and a slice of offsets: offsets[0] > 0 after batch one.
            writer.write(tokens, offsets[a : b + 1])


def sequences(shard: Shard) -> list[np.ndarray]:
    off = shard.offsets(0, shard.n_sequences)
    return [np.asarray(shard.tokens[off[i] : off[i + 1]]) for i in range(shard.n_sequences)]


def expected_sequences(tokens, offsets) -> list[np.ndarray]:
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def assert_same(shard: Shard, tokens, offsets) -> None:
    assert shard.n_sequences == len(offsets) - 1
    got = sequences(shard)
    for a, b in zip(got, expected_sequences(tokens, offsets)):
        assert np.array_equal(a, b.astype(np.int64))
    assert np.array_equal(np.asarray(shard.sizes, dtype=np.int64), np.diff(offsets))


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,dtype,stored",
    [
        ("megatron", np.uint16, np.uint16),
        ("megatron", np.int32, np.int32),
        ("megatron", np.uint32, np.int32),  # written as code 4, the only 4-byte code megatron-core knows
        ("megatron", np.uint8, np.uint8),  # the runner's masks
        ("datatrove", np.uint16, np.uint16),
        ("datatrove", np.uint32, np.uint32),
        ("datatrove", np.uint8, np.uint8),
    ],
)
def test_round_trip(tmp_path, fmt, dtype, stored):
    top = 200 if dtype == np.uint8 else 60_000
    tokens, offsets = make_sequences(200, dtype, seed=1, top=top)
    prefix = tmp_path / "s"
    write(prefix, tokens, offsets, format=fmt)
    with open_shard(prefix) as shard:
        assert shard.format == fmt and shard.name == "s" and shard.prefix == str(prefix)
        assert shard.dtype == np.dtype(stored)
        assert len(shard.tokens) == offsets[-1]
        assert_same(shard, tokens, offsets)
        assert np.array_equal(shard.document_indices, np.arange(201))
        # A sub-range: offsets[0] > 0 and positions into the whole token array.
        sub = shard.offsets(50, 120)
        assert np.array_equal(sub, offsets[50:121]) and sub.dtype == np.int64
        assert np.array_equal(shard.offsets(200, 200), [offsets[-1]])
        for p in shard.paths:
            assert os.path.exists(p)
    assert validate_shard(prefix) == []


def test_megatron_uint32_is_written_as_code_4(tmp_path):
    tokens, offsets = make_sequences(10, np.uint32)
    write(tmp_path / "s", tokens, offsets)
    assert (tmp_path / "s.idx").read_bytes()[17] == 4


@pytest.mark.parametrize("fmt", ["megatron", "datatrove"])
def test_empty_shard(tmp_path, fmt):
    paths = ShardWriter(tmp_path / "e", np.uint16, format=fmt).commit()
    assert sorted(paths) == [str(tmp_path / name) for name in listing(tmp_path)]
    with open_shard(tmp_path / "e") as shard:
        assert shard.n_sequences == 0 and len(shard.tokens) == 0 and shard.dtype == np.uint16
        assert np.array_equal(shard.offsets(0, 0), [0])
        assert np.array_equal(shard.document_indices, [0])
    assert validate_shard(tmp_path / "e") == []


def test_empty_sequences_only(tmp_path):
    tokens = np.zeros(0, np.uint16)
    offsets = np.zeros(6, np.int64)
    write(tmp_path / "z", tokens, offsets, batches=2)
    with open_shard(tmp_path / "z") as shard:
        assert shard.n_sequences == 5 and np.array_equal(shard.offsets(2, 5), [0, 0, 0, 0])


def test_document_indices_preserved(tmp_path):
    tokens, offsets = make_sequences(30, np.int32)
    doc_idx = np.array([0, 3, 3, 10, 29, 30])
    write(tmp_path / "d", tokens, offsets, document_indices=doc_idx)
    with open_shard(tmp_path / "d") as shard:
        assert np.array_equal(shard.document_indices, doc_idx) and shard.document_indices.dtype == np.int64


def test_open_by_any_file_name(tmp_path):
    tokens, offsets = make_sequences(5, np.uint16)
    write(tmp_path / "m", tokens, offsets)
    write(tmp_path / "t", tokens, offsets, format="datatrove")
    for name in ("m", "m.bin", "m.idx"):
        assert open_shard(tmp_path / name).format == "megatron"
    for name in ("t", "t.ds", "t.ds.index", "t.ds.metadata"):
        assert open_shard(str(tmp_path / name)).prefix == str(tmp_path / "t")


def test_datatrove_metadata_format(tmp_path):
    tokens, offsets = make_sequences(20, np.uint32)
    write(tmp_path / "t", tokens, offsets, format="datatrove", tokenizer_name="gpt2")
    lines = (tmp_path / "t.ds.metadata").read_text().split("\n")
    assert lines[0] == "gpt2|4" and lines[1] == str(offsets[-1]) and lines[2].endswith("T")
    assert open_shard(tmp_path / "t").tokenizer_name == "gpt2"


def test_datatrove_without_metadata_infers_token_size(tmp_path):
    tokens, offsets = make_sequences(20, np.uint32)
    write(tmp_path / "t", tokens, offsets, format="datatrove")
    (tmp_path / "t.ds.metadata").unlink()
    with open_shard(tmp_path / "t") as shard:
        assert shard.dtype == np.uint32
        assert_same(shard, tokens, offsets)


# -- the writer ----------------------------------------------------------------------------------


def test_nothing_visible_before_commit(tmp_path):
    tokens, offsets = make_sequences(20, np.uint16)
    writer = ShardWriter(tmp_path / "w", np.uint16)
    writer.write(tokens, offsets)
    assert all(name.startswith(".") and ".tmp-" in name for name in listing(tmp_path))
    with pytest.raises(ShardError, match="no shards in this directory"):  # temporaries are hidden
        find_shards([str(tmp_path)])
    paths = writer.commit()
    assert paths == [str(tmp_path / "w.bin"), str(tmp_path / "w.idx")]
    assert listing(tmp_path) == ["w.bin", "w.idx"]
    writer.abort()  # after commit: a no-op
    assert listing(tmp_path) == ["w.bin", "w.idx"]


def test_abort_and_exception_leave_nothing(tmp_path):
    tokens, offsets = make_sequences(20, np.uint16)
    writer = ShardWriter(tmp_path / "a", np.uint16, format="datatrove")
    writer.write(tokens, offsets)
    writer.abort()
    assert listing(tmp_path) == []
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "b", np.uint16) as w:
        w.write(tokens, offsets)
        raise RuntimeError("boom")
    assert listing(tmp_path) == []


def test_commit_replaces_an_existing_shard(tmp_path):
    tokens, offsets = make_sequences(20, np.uint16, seed=1)
    write(tmp_path / "r", tokens, offsets)
    tokens2, offsets2 = make_sequences(7, np.uint16, seed=2)
    write(tmp_path / "r", tokens2, offsets2)
    assert listing(tmp_path) == ["r.bin", "r.idx"]
    with open_shard(tmp_path / "r") as shard:
        assert_same(shard, tokens2, offsets2)


def test_bytes_written_by_other_processes_are_accounted_and_checked(tmp_path):
    """extend_written: what pool workers wrote at their offsets becomes the shard; a file too
    short or too long for the chunks accounted fails cleanly, and write() after it is refused."""
    tokens = np.arange(10, dtype=np.uint16)
    writer = ShardWriter(tmp_path / "s", np.uint16)
    with open(writer.temp_data_path, "r+b") as f:  # chunks land out of order, as from workers
        f.seek(6 * 2)
        f.write(tokens[6:].tobytes())
        f.seek(0)
        f.write(tokens[:6].tobytes())
    writer.extend_written(np.array([2, 4]))
    writer.extend_written(np.array([4]))
    with pytest.raises(LinkFastError, match="after extend_written"):
        writer.write(tokens, np.array([0, 1]))
    writer.commit()
    shard = open_shard(tmp_path / "s")
    assert np.array_equal(shard.tokens, tokens) and list(shard.sizes) == [2, 4, 4]

    short = ShardWriter(tmp_path / "t", np.uint16)
    Path(short.temp_data_path).write_bytes(tokens[:6].tobytes())
    with pytest.raises(LinkFastError, match="holds 12 bytes where 20 were written"):
        short.extend_written(np.array([10]))
    long = ShardWriter(tmp_path / "u", np.uint16)
    Path(long.temp_data_path).write_bytes(tokens.tobytes() + tokens.tobytes())
    long.extend_written(np.array([10]))  # a chunk too long is only seen once all are in
    with pytest.raises(LinkFastError, match="holds 40 bytes where 20 were written"):
        long.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.bin", "s.idx"]


def test_writer_rejects_bad_input(tmp_path):
    tokens, offsets = make_sequences(5, np.uint16)
    with ShardWriter(tmp_path / "x", np.uint16) as w:
        with pytest.raises(ShardError, match="tokens are int64, this shard is uint16"):
            w.write(tokens.astype(np.int64), offsets)
        with pytest.raises(ShardError, match="offsets"):
            w.write(tokens, offsets[::-1].copy())
        with pytest.raises(ShardError, match="offsets"):
            w.write(tokens, offsets + 1000)
        w.write(tokens, offsets)
    with pytest.raises(ShardError, match="cannot write float32"):
        ShardWriter(tmp_path / "f", np.float32)
    with pytest.raises(ShardError, match="cannot write int64 tokens to a datatrove shard"):
        ShardWriter(tmp_path / "f", np.int64, format="datatrove")
    with pytest.raises(ShardError, match="does not fit the int32"), ShardWriter(tmp_path / "big", np.uint32) as w:
        w.write(np.array([1, 2**31], np.uint32), np.array([0, 2]))
    with pytest.raises(ShardError, match=r"document_indices end at 4, not at the sequence count 5"):
        write(tmp_path / "di", tokens, offsets, document_indices=[0, 2, 4])
    with pytest.raises(ShardError, match="cannot write: Not a directory"):
        ShardWriter(tmp_path / "x.bin" / "sub" / "y", np.uint16)
    assert listing(tmp_path) == ["x.bin", "x.idx"]
    ShardWriter(tmp_path / "new" / "dir" / "y", np.uint16).commit()  # directories are created
    assert listing(tmp_path / "new" / "dir") == ["y.bin", "y.idx"]
    assert issubclass(ShardError, LinkFastError) and issubclass(ShardError, ValueError)


_FULL_DISK = textwrap.dedent("""
    import os, resource, signal, sys
    import numpy as np
    from link_fast.shards import ShardError, ShardWriter
    # The kernel enforces RLIMIT_FSIZE with SIGXFSZ; ignored, the write fails with EFBIG instead,
    # just as it would with ENOSPC on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = 1 << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    directory, case = sys.argv[1], sys.argv[2]
    try:
        if case == "data":  # fails while streaming tokens
            with ShardWriter(os.path.join(directory, "s"), np.uint16, format=sys.argv[3]) as w:
                for _ in range(8):
                    w.write(np.ones(200_000, np.uint16), np.array([0, 100_000, 200_000]))
        else:  # the tokens fit, the index (12 bytes a sequence) does not: fails in commit()
            with ShardWriter(os.path.join(directory, "s"), np.uint16) as w:
                w.write(np.zeros(0, np.uint16), np.zeros(200_001, np.int64))
    except ShardError as exc:
        print("ShardError:", exc)
        sys.exit(3)
    sys.exit(0)
""")


@pytest.mark.parametrize("case,fmt", [("data", "megatron"), ("data", "datatrove"), ("index", "megatron")])
def test_full_disk_aborts_cleanly(tmp_path, case, fmt):
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path), case, fmt],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot write: File too large" in proc.stdout
    assert str(tmp_path / "s") in proc.stdout
    assert listing(tmp_path) == []  # neither final nor temporary files


# -- > 2 GiB: pointer arithmetic in int64 --------------------------------------------------------


def test_pointers_from_sizes_is_int64():
    sizes = np.full(5, 2**30, dtype=np.int32)  # 4 GiB per sequence of int32 tokens
    pointers = pointers_from_sizes(sizes, 4)
    assert pointers.dtype == np.int64
    assert pointers.tolist() == [0, 2**32, 2**33, 3 * 2**32, 2**34]
    assert pointers_from_sizes(np.zeros(0, np.int32), 2).tolist() == []


def _write_idx(path: Path, code: int, sizes, pointers, doc_idx) -> None:
    header = b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, code, len(sizes), len(doc_idx))
    path.write_bytes(
        header
        + np.asarray(sizes, "<i4").tobytes()
        + np.asarray(pointers, "<i8").tobytes()
        + np.asarray(doc_idx, "<i8").tobytes()
    )


def test_shard_past_4_gib_sparse(tmp_path):
    # Two sequences of 2**30 - 1 int32 tokens: the second pointer is past 2**32 bytes. The .bin
    # is sparse (truncate), so this costs no disk and no time, and nothing reads the tokens.
    n_tok = 2**30 - 1
    sizes = [n_tok, n_tok, 3]
    _write_idx(tmp_path / "big.idx", 4, sizes, pointers_from_sizes(np.array(sizes), 4), [0, 3])
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate((2 * n_tok + 3) * 4)
    with open_shard(tmp_path / "big") as shard:
        assert shard.offsets(1, 3).tolist() == [n_tok, 2 * n_tok, 2 * n_tok + 3]
        assert int(shard.tokens[-1]) == 0
    # An int32-wrapped pointer, the classic corruption, is caught.
    wrapped = pointers_from_sizes(np.array(sizes), 4).astype(np.int32).astype(np.int64)
    _write_idx(tmp_path / "big.idx", 4, sizes, wrapped, [0, 3])
    with pytest.raises(ShardError, match="pointers disagree with sizes from sequence 1"):
        open_shard(tmp_path / "big")


# -- corrupt shards ------------------------------------------------------------------------------


def _patch(path: Path, offset: int, data: bytes) -> None:
    blob = bytearray(path.read_bytes())
    blob[offset : offset + len(data)] = data
    path.write_bytes(bytes(blob))


N = 12  # sequences in the corrupted shards


def _good_megatron(tmp_path) -> Path:
    tokens, offsets = make_sequences(N, np.uint16, seed=5, max_len=10)
    offsets[1:] += np.arange(1, N + 1)  # no empty sequences: every pointer is distinct
    tokens = np.arange(offsets[-1], dtype=np.uint16)
    write(tmp_path / "bad", tokens, offsets, document_indices=[0, 4, 9, N])
    return tmp_path / "bad"


SIZES_AT, POINTERS_AT, DOCS_AT = 34, 34 + 4 * N, 34 + 12 * N


def _corrupt(prefix: Path, how: str) -> str:
    """Apply one corruption; return the file it should be reported against."""
    idx, bin_ = Path(f"{prefix}.idx"), Path(f"{prefix}.bin")
    if how == "magic":
        _patch(idx, 0, b"NOTMEGATR")
    elif how == "version":
        _patch(idx, 9, struct.pack("<Q", 2))
    elif how == "float":
        _patch(idx, 17, bytes([7]))
    elif how == "code":
        _patch(idx, 17, bytes([42]))
    elif how == "truncated_idx":
        idx.write_bytes(idx.read_bytes()[:-5])
    elif how == "truncated_header":
        idx.write_bytes(idx.read_bytes()[:20])
    elif how == "truncated_bin":
        bin_.write_bytes(bin_.read_bytes()[:-2])
        return str(bin_)
    elif how == "extra_bin":
        bin_.write_bytes(bin_.read_bytes() + b"\x00\x00\x00\x00")
        return str(bin_)
    elif how == "pointers":  # swap two pointers: out of order
        p = np.frombuffer(idx.read_bytes(), "<i8", N, POINTERS_AT).copy()
        p[[3, 4]] = p[[4, 3]]
        _patch(idx, POINTERS_AT, p.tobytes())
    elif how == "negative":
        _patch(idx, SIZES_AT + 4, struct.pack("<i", -1))
    elif how == "docs_end":
        _patch(idx, DOCS_AT + 3 * 8, struct.pack("<q", N - 1))
    elif how == "docs_start":
        _patch(idx, DOCS_AT, struct.pack("<q", 1))
    elif how == "docs_order":
        _patch(idx, DOCS_AT + 8, struct.pack("<q", 10))
    elif how == "bin_missing":
        bin_.unlink()
        return str(bin_)
    elif how == "idx_missing":
        idx.unlink()
    return str(idx)


MEGATRON_CASES = {
    "magic": "not a Megatron index: wrong magic",
    "version": "unsupported version 2",
    "float": "dtype code 7 (float32) is floating point",
    "code": "unknown dtype code 42",
    "truncated_idx": "truncated: ",
    "truncated_header": "truncated: 20 bytes, the header alone is 34",
    "truncated_bin": "truncated: ",
    "extra_bin": "4 extra bytes",
    "pointers": "pointers disagree with sizes from sequence 3",
    "negative": "negative size -1 of sequence 1",
    "docs_end": f"document_indices end at {N - 1}, not at the sequence count {N}",
    "docs_start": "document_indices start at 1, not 0",
    "docs_order": "document_indices decrease at position 2",
    "bin_missing": "missing",
    "idx_missing": "missing",
}


@pytest.mark.parametrize("how", sorted(MEGATRON_CASES))
def test_corrupt_megatron(tmp_path, how):
    prefix = _good_megatron(tmp_path)
    assert validate_shard(prefix) == []
    where = _corrupt(prefix, how)
    fragment = MEGATRON_CASES[how]
    with pytest.raises(ShardError) as info:
        open_shard(prefix)
    message = str(info.value)
    assert message.startswith(f"{where}: ") and fragment in message, message
    assert "\n" not in message
    problems = validate_shard(prefix)
    assert any(p.startswith(f"{where}: ") and fragment in p for p in problems), problems


def test_validate_reports_every_problem(tmp_path):
    prefix = _good_megatron(tmp_path)
    _corrupt(prefix, "extra_bin")
    _corrupt(prefix, "docs_end")
    problems = validate_shard(prefix)
    assert len(problems) == 2 and "extra bytes" in problems[0] and "document_indices end" in problems[1]


def test_uint32_code_9_is_read(tmp_path):
    prefix = _good_megatron(tmp_path)
    tokens, offsets = make_sequences(4, np.uint32)
    write(prefix, tokens, offsets)
    _patch(Path(f"{prefix}.idx"), 17, bytes([9]))
    with open_shard(prefix) as shard:
        assert shard.dtype == np.uint32 and MEGATRON_DTYPES[9] == np.uint32
        assert_same(shard, tokens, offsets)


def _good_datatrove(tmp_path) -> Path:
    tokens, offsets = make_sequences(N, np.uint16, seed=6)
    write(tmp_path / "dt", tokens, offsets, format="datatrove")
    return tmp_path / "dt"


DATATROVE_CASES = {
    "extra_ds": ("ds.index", "last document ends at token"),
    "truncated_ds": ("ds", "truncated: "),
    "odd_ds": ("ds", "not a whole number of 2-byte tokens"),
    "index_order": ("ds.index", "document end offsets decrease at document 2"),
    "index_partial": ("ds.index", "not a whole number of uint64 offsets"),
    "token_size": ("ds.metadata", "token size 3 is not 2 or 4"),
    "loss": ("ds.loss", "expected one per token"),
    "index_missing": ("ds.index", "missing"),
}


@pytest.mark.parametrize("how", sorted(DATATROVE_CASES))
def test_corrupt_datatrove(tmp_path, how):
    prefix = _good_datatrove(tmp_path)
    assert validate_shard(prefix) == []
    ds, index, meta = Path(f"{prefix}.ds"), Path(f"{prefix}.ds.index"), Path(f"{prefix}.ds.metadata")
    if how == "extra_ds":
        ds.write_bytes(ds.read_bytes() + b"\x01\x00")
    elif how == "truncated_ds":
        ds.write_bytes(ds.read_bytes()[:-4])
    elif how == "odd_ds":
        ds.write_bytes(ds.read_bytes() + b"\x01")
    elif how == "index_order":
        ends = np.frombuffer(index.read_bytes(), "<u8").copy()
        ends[1] = ends[2] + 1
        index.write_bytes(ends.tobytes())
    elif how == "index_partial":
        index.write_bytes(index.read_bytes()[:-3])
    elif how == "token_size":
        meta.write_text("gpt2|3\n0\n0 T")
    elif how == "loss":
        Path(f"{prefix}.ds.loss").write_bytes(b"\x01")
    elif how == "index_missing":
        index.unlink()
    suffix, fragment = DATATROVE_CASES[how]
    where = f"{prefix}.{suffix}"
    with pytest.raises(ShardError) as info:
        open_shard(prefix)
    assert str(info.value).startswith(f"{where}: ") and fragment in str(info.value), str(info.value)
    problems = validate_shard(prefix)
    assert any(p.startswith(f"{where}: ") and fragment in p for p in problems), problems


def test_missing_shard(tmp_path):
    with pytest.raises(ShardError, match="no shard here"):
        open_shard(tmp_path / "nothing")
    with pytest.raises(ShardError, match="no shard here"):
        validate_shard(tmp_path / "nothing")
    with pytest.raises(ShardError, match=r"nothing\.idx: missing"):
        open_shard(tmp_path / "nothing.idx")


# -- find_shards ---------------------------------------------------------------------------------


def test_find_shards(tmp_path):
    tokens, offsets = make_sequences(5, np.uint16)
    for name in ("b", "a", "c_mask"):
        write(tmp_path / name, tokens, offsets)
    write(tmp_path / "d", tokens, offsets, format="datatrove")
    (tmp_path / "a.link.json").write_text("{}")
    (tmp_path / ".e.bin.tmp-123").write_bytes(b"")  # someone's temporary
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "z", tokens, offsets)

    def p(*names):
        return [str(tmp_path / n) for n in names]

    assert find_shards([str(tmp_path)]) == p("a", "b", "c_mask", "d")
    assert find_shards([str(tmp_path / "*.idx")]) == p("a", "b", "c_mask")
    assert find_shards([str(tmp_path / "b.bin"), str(tmp_path / "a"), str(tmp_path / "b")]) == p("a", "b")
    assert find_shards([str(tmp_path / "d.ds"), str(tmp_path / "sub")]) == p("d", "sub/z")
    for prefix in find_shards([str(tmp_path)]):
        assert validate_shard(prefix) == []
    for bad in ("nope", "nope*", "sub/nothing", "nope.bin", "nope.ds.index"):
        with pytest.raises(ShardError, match="no shard"):
            find_shards([str(tmp_path / bad)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no shards in this directory"):
        find_shards([str(tmp_path / "empty")])


def test_token_dtypes():
    assert [np.dtype(d) for d in TOKEN_DTYPES] == [np.dtype(np.uint16), np.dtype(np.int32), np.dtype(np.uint32)]


# -- oracle: megatron-core -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def megatron():
    pytest.importorskip("torch")
    return pytest.importorskip("megatron.core.datasets.indexed_dataset")


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_megatron_core_reads_ours(tmp_path, megatron, dtype):
    tokens, offsets = make_sequences(300, dtype, seed=3, top=60_000)
    offsets[1:] += np.arange(1, 301)  # megatron-core cannot memory-map an all-empty .bin
    tokens = np.random.default_rng(0).integers(0, 60_000, offsets[-1]).astype(dtype)
    doc_idx = np.array([0, 1, 50, 50, 299, 300])
    write(tmp_path / "ours", tokens, offsets, document_indices=doc_idx)
    ds = megatron.IndexedDataset(str(tmp_path / "ours"))
    assert len(ds) == 300 and ds.index.dtype == dtype
    assert np.array_equal(ds.document_indices, doc_idx)
    assert np.array_equal(ds.sequence_lengths, np.diff(offsets))
    for i, want in enumerate(expected_sequences(tokens, offsets)):
        assert np.array_equal(ds[i], want)
    assert all(np.array_equal(a, b) for a, b in zip(ds[10:20], expected_sequences(tokens, offsets)[10:20]))


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_we_read_megatron_core(tmp_path, megatron, dtype):
    import torch

    tokens, offsets = make_sequences(300, dtype, seed=4)
    seqs = expected_sequences(tokens, offsets)
    builder = megatron.IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=dtype)
    doc_idx = [0]
    for i, seq in enumerate(seqs):
        builder.add_item(torch.from_numpy(seq.astype(np.int64)))
        if i % 7 == 6 or i == len(seqs) - 1:
            builder.end_document()
            doc_idx.append(i + 1)
    builder.finalize(str(tmp_path / "theirs.idx"))
    assert validate_shard(tmp_path / "theirs") == []
    with open_shard(tmp_path / "theirs") as shard:
        assert shard.dtype == dtype
        assert np.array_equal(shard.document_indices, doc_idx)
        assert_same(shard, tokens, offsets)
    # And our writer reproduces megatron-core's bytes exactly.
    write(tmp_path / "ours", tokens, offsets, document_indices=doc_idx)
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"theirs{ext}").read_bytes()


# -- oracle: datatrove ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datatrove():
    return pytest.importorskip("datatrove.pipeline.tokens.tokenizer")


@pytest.mark.parametrize("token_size", [2, 4])
def test_we_read_datatrove(tmp_path, datatrove, token_size):
    dtype = np.uint16 if token_size == 2 else np.uint32
    tokens, offsets = make_sequences(100, dtype, seed=7, top=60_000 if token_size == 2 else 2**31)
    out = datatrove.TokenizedFile(
        str(tmp_path), "theirs.ds", tokenizer_name_or_path="gpt2", save_final_metadata=True, token_size=token_size
    )
    for seq in expected_sequences(tokens, offsets):
        out.write(seq.tolist(), None)
    out.close()
    assert validate_shard(tmp_path / "theirs") == []
    with open_shard(tmp_path / "theirs.ds") as shard:
        assert shard.format == "datatrove" and shard.dtype == dtype and shard.tokenizer_name == "gpt2"
        assert_same(shard, tokens, offsets)
    # Our writer reproduces the data and index bytes; the metadata's first two lines too.
    write(tmp_path / "ours", tokens, offsets, format="datatrove", tokenizer_name="gpt2")
    for ext in (".ds", ".ds.index", ".ds.metadata"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"theirs{ext}").read_bytes(), ext


@pytest.mark.parametrize("token_size", [2, 4])
def test_datatrove_reads_ours(tmp_path, datatrove, token_size):
    pytest.importorskip("torch")
    from datatrove.pipeline.tokens.merger import load_doc_ends
    from datatrove.utils.dataset import DatatroveFileDataset

    dtype = np.uint16 if token_size == 2 else np.uint32
    tokens, offsets = make_sequences(100, dtype, seed=8)
    offsets[1:] += np.arange(1, 101)  # non-empty documents: datatrove's positions assume them
    tokens = np.random.default_rng(1).integers(1, 60_000, offsets[-1]).astype(dtype)
    write(tmp_path / "ours", tokens, offsets, format="datatrove")
    with open(tmp_path / "ours.ds.index", "rb") as f:
        assert np.array_equal(load_doc_ends(f), offsets[1:])
    n = int(offsets[-1])
    ds = DatatroveFileDataset(str(tmp_path / "ours.ds"), seq_len=n - 1, token_size=token_size, return_positions=True)
    item = ds[0]
    assert np.array_equal(item["input_ids"].numpy(), tokens.astype(np.int64))
    positions = np.arange(n) - np.repeat(offsets[:-1], np.diff(offsets))
    assert np.array_equal(item["positions"].numpy(), positions)


@pytest.mark.parametrize(
    "count, text",
    [(0, "0.00 T"), (5, "5.00 T"), (999, "999 T"), (1000, "1.00 kT"), (123_456, "123 kT"), (1_234_567, "1.23 MT")],
)
def test_datatrove_metadata_token_counts_read_like_humanize(count, text):
    from link_fast.shards.datatrove import humanize_tokens

    assert humanize_tokens(count) == text


def test_decreasing_datatrove_offsets_are_named_with_their_values(tmp_path):
    prefix = _good_datatrove(tmp_path)
    index = Path(f"{prefix}.ds.index")
    ends = np.frombuffer(index.read_bytes(), "<u8").copy()
    ends[3] = ends[4] + 1
    index.write_bytes(ends.tobytes())
    problems = validate_shard(prefix)
    want = f"document end offsets decrease at document 4 ({int(ends[3])} then {int(ends[4])})"
    assert any(want in str(p) for p in problems), problems
