"""Hostile inputs that used to crash a run or exhaust its machine: names that are not UTF-8,
decompression bombs, documents longer than a chunk, many shards under a low descriptor limit,
files truncated while a run reads them. Each either works or is one line, status 2."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_runner import random_vocab, write_shard

import link_fast as link_fast_package
from link_fast import Sampling, Substituter, Vocab
from link_fast.draws import mix64, stream_base
from link_fast.errors import InputError
from link_fast.runner import apply_shards
from link_fast.shards import ShardWriter, load_record, open_shard


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return random_vocab().save(tmp_path_factory.mktemp("vocab") / "v.lfv")


# For children under a memory limit: BLAS libraries reserve address space per thread, per core.
ONE_THREAD = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def link_fast(*args, limits: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    """``link-fast ARGS`` in a child (arguments may be bytes: names that are not UTF-8), after
    ``limits``, Python run in the child before the CLI (resource limits)."""
    code = f"import sys, resource\n{limits}\nfrom link_fast.cli import main\nsys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *[a if isinstance(a, bytes) else str(a) for a in args]],
        capture_output=True,
        timeout=timeout,
        env=ONE_THREAD,
    )


def one_error_line(proc) -> str:
    err = proc.stderr.decode("utf-8", "backslashreplace")
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("link-fast: error: "), err
    return lines[0]


# -- names that are not UTF-8 ---------------------------------------------------------------------


def test_a_shard_named_in_bytes_that_are_not_utf8_is_rewritten(tmp_path, vocab_path):
    name = os.fsdecode(b"s\xff")  # the undecodable byte comes as the surrogate U+DCFF
    tokens, offsets = write_shard(tmp_path / "in" / name, n_docs=30)
    out = tmp_path / "out"
    for _ in range(2):  # the second run resumes: the record it wrote reads back
        proc = link_fast("apply", "--vocab", vocab_path, "--ratio", "0.5", "--resume", "-o", out, tmp_path / "in")
        assert proc.returncode == 0, proc.stderr.decode(errors="backslashreplace")
    assert sorted(os.listdir(os.fsencode(out))) == [b"s\xff.bin", b"s\xff.idx", b"s\xff.link.json"]
    record = load_record(out / f"{name}.link.json")
    assert record["config"]["stream_key"] == name and record["inputs"][0].endswith(name + ".bin")
    # the stream key is the name's own bytes
    assert stream_base(0, name) == mix64(
        mix64(int.from_bytes(hashlib.blake2b(b"s\xff", digest_size=8).digest(), "little"))
    )
    want = Substituter(Vocab.load(vocab_path), ratio=0.5, stream_key=name).apply(tokens, offsets)
    got = open_shard(out / name)
    assert np.array_equal(np.asarray(got.tokens), want.tokens)


def test_a_stream_key_in_bytes_that_are_not_utf8_is_used(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=30)
    proc = link_fast(
        "apply",
        "--vocab",
        vocab_path,
        "--ratio",
        "0.5",
        "--stream-key",
        b"k\xfe",
        "-o",
        tmp_path / "out",
        tmp_path / "in",
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="backslashreplace")
    assert load_record(tmp_path / "out" / "a.link.json")["config"]["stream_key"] == os.fsdecode(b"k\xfe")


def test_text_files_named_in_bytes_that_are_not_utf8_are_rewritten(tmp_path, vocab_path):
    source = os.fsencode(tmp_path / "t") + b"/d\xfe.jsonl"
    os.makedirs(tmp_path / "t")
    with open(source, "wb") as f:
        f.write(b'{"text": "1 2 3 4 5 6 7 8 9"}\n')
    for key in ([], ["--stream-key", b"k\xfe"]):
        out = tmp_path / f"out{len(key)}"
        proc = link_fast("text", "--vocab", vocab_path, "--ratio", "0.5", *key, "-o", out, source)
        assert proc.returncode == 0, proc.stderr.decode(errors="backslashreplace")
        assert sorted(os.listdir(os.fsencode(out))) == [b"d\xfe.jsonl", b"d\xfe.jsonl.link.json"]
        assert load_record(out / os.fsdecode(b"d\xfe.jsonl.link.json"))["input"] == os.fsdecode(b"../t/d\xfe.jsonl")


def test_a_stream_key_with_a_lone_surrogate_is_refused():
    with pytest.raises(InputError, match="stream_key .* lone surrogate"):
        Sampling(stream_key="a\ud800")


# -- decompression bombs --------------------------------------------------------------------------

GIB = 1 << 30
MEMORY_LIMIT = f"resource.setrlimit(resource.RLIMIT_AS, ({768 << 20}, {768 << 20}))"  # far below a GiB line


def zstd_rle_bomb(byte: bytes, size: int) -> bytes:
    """A zstd frame of ``size`` copies of ``byte`` (a multiple of 128 KiB) written as run-length
    blocks, 4 bytes per 128 KiB: a GiB in 32 KB."""
    block = 128 << 10
    header = b"\x28\xb5\x2f\xfd" + bytes([0x00, 0x38])  # magic; no size, no checksum; 128 KiB window
    blocks = [(1 << 1 | block << 3).to_bytes(3, "little") + byte] * (size // block)
    blocks[-1] = (1 | 1 << 1 | block << 3).to_bytes(3, "little") + byte  # the last block
    return header + b"".join(blocks)


def gzip_bomb(byte: bytes, size: int) -> bytes:
    """``size`` copies of ``byte`` as gzip members of 16 MiB each, concatenated."""
    import gzip

    member = 16 << 20
    return gzip.compress(byte * member, compresslevel=1, mtime=0) * (size // member)


@pytest.mark.parametrize("suffix", [".zst", ".gz"])
def test_a_bomb_of_one_long_line_is_one_line_under_a_memory_limit(tmp_path, vocab_path, suffix):
    bomb = tmp_path / f"bomb.txt{suffix}"
    bomb.write_bytes(zstd_rle_bomb(b"a", GIB) if suffix == ".zst" else gzip_bomb(b"a", GIB))
    proc = link_fast("text", "--vocab", vocab_path, "--ratio", "0.5", "-o", tmp_path / "out", bomb, limits=MEMORY_LIMIT)
    assert f"{bomb}:1: line of {GIB} bytes exceeds --max-line-bytes" in one_error_line(proc)
    assert not (tmp_path / "out" / bomb.name).exists()


def test_a_zstd_bomb_of_short_lines_is_read_in_bounded_chunks(tmp_path):
    bomb = tmp_path / "lines.txt.zst"
    bomb.write_bytes(zstd_rle_bomb(b"\n", GIB))
    count = f"""import resource
{MEMORY_LIMIT}
from link_fast.text.files import iter_lines
for number, line in iter_lines({str(bomb)!r}):
    if number == 100_000:
        break
print(number, line)
"""
    proc = subprocess.run([sys.executable, "-c", count], capture_output=True, text=True, timeout=120, env=ONE_THREAD)
    assert proc.returncode == 0 and proc.stdout == "100000 b''\n", proc.stderr


# -- many shards ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_many_shards_under_a_low_descriptor_limit(tmp_path, vocab_path, workers):
    n = 30  # 4 descriptors each if all were open at once: 120, almost four times the limit
    for i in range(n):
        write_shard(tmp_path / "in" / f"s{i:03d}", n_docs=3, seed=i)
    proc = link_fast(
        "apply",
        "--vocab",
        vocab_path,
        "--ratio",
        "0.5",
        "--workers",
        workers,
        "-q",
        "-o",
        tmp_path / "out",
        tmp_path / "in",
        limits="resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))",
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="backslashreplace")
    assert len(list((tmp_path / "out").glob("*.link.json"))) == n


# -- files truncated while a run reads them -------------------------------------------------------

# Run by every process of the run (the workers too): the first call of the kernel truncates the
# file, once its checks are passed and it is mapped, so the kernel reads past the file's end.
TRUNCATE_IN_THE_KERNEL = """
import os
from link_fast import substituter
apply, target = substituter.Substituter.apply, os.environ["TRUNCATE_IN_THE_KERNEL"]

def truncating(self, *args, **kwargs):
    if os.path.getsize(target) > 0:
        os.truncate(target, 0)
    return apply(self, *args, **kwargs)

substituter.Substituter.apply = truncating
"""


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("which", ["input", "vocabulary"])
def test_a_file_truncated_while_apply_reads_it_is_named(tmp_path, workers, which):
    vocab = random_vocab().save(tmp_path / "v.lfv")  # its own: it is truncated
    write_shard(tmp_path / "in" / "a", n_docs=3000)
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(TRUNCATE_IN_THE_KERNEL)
    target = tmp_path / "in" / "a.bin" if which == "input" else vocab
    package_root = str(Path(link_fast_package.__file__).parent.parent)  # the link_fast under test, for the hook
    python_path = os.pathsep.join(filter(None, [str(tmp_path / "hook"), package_root, os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "link_fast", "apply", "--vocab", vocab, "--ratio", "0.5", "--workers", str(workers)]
        + ["-o", tmp_path / "out", tmp_path / "in"],
        env=dict(os.environ, PYTHONPATH=python_path, TRUNCATE_IN_THE_KERNEL=str(target)),
        capture_output=True,
        timeout=120,
    )
    assert f"{target}: truncated while being read (0 bytes" in one_error_line(proc)
    assert not (tmp_path / "out").exists()


# -- documents longer than a chunk ----------------------------------------------------------------

RANDOM_VOCAB = random_vocab()
OPTIONS = st.fixed_dictionaries(
    {
        "ratio": st.floats(0, 1),
        "portion": st.sampled_from([0.5, 1.0]),
        "seed": st.integers(0, 2**64 - 1),
        "ratio_basis": st.sampled_from(["candidates", "words"]),
        "lang_scope": st.sampled_from(["word", "document"]),
    }
)


def substituted_in_stretches(substituter, tokens, begin, end, every, doc=7):
    """(tokens, mask, stats) of document tokens[begin:end] rewritten a stretch at a time."""
    pieces = substituter.cuts(tokens, begin, end, every)
    assert [p.start for p in pieces] == [begin] + [p.stop for p in pieces[:-1]] and pieces[-1].stop == end
    assert all(p.stop - p.start >= every for p in pieces[:-1])
    results = [substituter.apply_piece(tokens, p, doc=doc, mask=True) for p in pieces]
    stats = results[0].stats
    for result in results[1:]:
        stats = stats + result.stats
    return np.concatenate([r.tokens for r in results]), np.concatenate([r.mask for r in results]), stats, len(pieces)


@settings(max_examples=300, deadline=None)
@given(options=OPTIONS, data_seed=st.integers(0, 2**32 - 1), length=st.integers(0, 3000), every=st.integers(1, 400))
def test_a_document_cut_into_stretches_is_rewritten_as_it_is_whole(options, data_seed, length, every):
    tokens = np.random.default_rng(data_seed).integers(0, 1000, length + 10).astype(np.uint16)
    substituter = Substituter(RANDOM_VOCAB, **options)
    whole = substituter.apply(tokens, [5, 5 + length], first_doc=7, mask=True)
    got, mask, stats, _ = substituted_in_stretches(substituter, tokens, 5, 5 + length, every)
    assert np.array_equal(got, whole.tokens) and np.array_equal(mask, whole.mask)
    assert stats == whole.stats


def test_real_prose_cut_into_stretches_is_rewritten_as_it_is_whole(tekken, tekken_vocab, pydoc_documents):
    """Real text cut anywhere a stretch may end: inside phrases, joined words, code."""
    tokens = np.array(tekken.encode("\n\n".join(pydoc_documents[:60])), dtype=np.uint32)
    for options in ({"ratio": 0.5}, {"ratio": 0.3, "ratio_basis": "words", "lang_scope": "document", "seed": 3}):
        substituter = Substituter(tekken_vocab, **options)
        whole = substituter.apply(tokens, [0, len(tokens)], first_doc=7, mask=True)
        assert whole.stats.total_substitutions > 1000
        for every in (1, 2, 3, 17, 1000):
            got, mask, stats, n = substituted_in_stretches(substituter, tokens, 0, len(tokens), every)
            assert np.array_equal(got, whole.tokens) and np.array_equal(mask, whole.mask), every
            assert stats == whole.stats and n > len(tokens) // (every + 20)


@pytest.mark.parametrize("format", ["megatron", "datatrove"])
def test_long_documents_give_the_same_bytes_for_any_chunk_size_and_workers(tmp_path, vocab_path, format):
    rng = np.random.default_rng(3)
    lengths = np.array([100, 30_000, 5, 0, 12_000, 7, 26_000, 300])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with ShardWriter(tmp_path / "in" / "s", np.dtype(np.uint16), format=format) as writer:
        writer.write(rng.integers(0, 1000, int(offsets[-1])).astype(np.uint16), offsets)
    suffixes = (".bin", ".idx") if format == "megatron" else (".ds", ".ds.index")
    for basis in ("candidates", "words"):
        outputs = {}
        for workers, chunk_tokens in ((1, 10**9), (1, 5000), (2, 4096), (2, 7000)):
            out = tmp_path / f"out_{basis}_{workers}_{chunk_tokens}"
            record = apply_shards(
                vocab_path,
                [tmp_path / "in" / "s"],
                out,
                ratio=0.4,
                ratio_basis=basis,
                mask=True,
                workers=workers,
                chunk_tokens=chunk_tokens,
                progress=False,
            )["s"]
            files = [out / f"{name}{suffix}" for name in ("s", "s_mask") for suffix in suffixes]
            outputs[workers, chunk_tokens] = ([f.read_bytes() for f in files], record["stats"])
        assert all(got == outputs[1, 10**9] for got in outputs.values()), basis


def test_memory_follows_the_chunk_not_the_longest_document(tmp_path, vocab_path):
    n = 30_000_000  # one document; rewritten whole it needs over a GB
    tokens = np.random.default_rng(0).integers(0, 1000, n).astype(np.uint16)
    with ShardWriter(tmp_path / "in" / "long", np.dtype(np.uint16)) as writer:
        writer.write(tokens, np.array([0, n]))
    del tokens
    limits = f"resource.setrlimit(resource.RLIMIT_AS, ({640 << 20}, {640 << 20}))"
    args = ["apply", "--vocab", vocab_path, "--ratio", "0.3", "--mask", "--chunk-tokens", "1000000", "-q"]
    proc = link_fast(*args, "-o", tmp_path / "out", tmp_path / "in", limits=limits)
    assert proc.returncode == 0, proc.stderr.decode(errors="backslashreplace")
    assert open_shard(tmp_path / "out" / "long").sizes[0] >= n


def test_a_long_document_of_a_shard_that_is_not_cut_is_refused_by_name(tmp_path, vocab_path):
    rng = np.random.default_rng(1)
    write = ShardWriter(tmp_path / "in" / "wide", np.dtype(np.int64))
    write.write(rng.integers(0, 1000, 20_000).astype(np.int64), np.array([0, 10, 20_000]))
    write.commit()
    proc = link_fast(
        "apply",
        "--vocab",
        vocab_path,
        "--ratio",
        "0.5",
        "--chunk-tokens",
        "5000",
        "-o",
        tmp_path / "out",
        tmp_path / "in",
    )
    line = one_error_line(proc)
    assert f"{tmp_path / 'in' / 'wide.bin'}: sequence 1 holds 19,990 tokens" in line and "--chunk-tokens" in line
