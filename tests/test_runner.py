"""apply_shards and `link-fast apply` on Megatron shards: determinism, round trip, masks,
statistics, resume after SIGKILL, bad input through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from link_fast import Substituter, Vocab
from link_fast.errors import InputError, VocabError
from link_fast.runner import apply_shards, chunk_bounds
from link_fast.shards import ShardWriter, open_shard
from link_fast.vocab import Entry

WORD = 1 | 4 | 16  # WS_START | END_WORD | HAS_WORD: every token is a word of its own


def random_vocab(vocab_size=3000, n_keys=400, seed=0, max_id=None):
    rng = np.random.default_rng(seed)
    flags = np.full(vocab_size, WORD, dtype=np.uint8)
    flags[rng.choice(vocab_size, vocab_size // 10, replace=False)] = 2 | 4 | 16  # some glue left
    keys = {tuple(int(t) for t in rng.integers(0, 1000, rng.integers(1, 3))) for _ in range(n_keys)}
    top = max_id or vocab_size
    entries = [
        Entry(
            k,
            str(k),
            {
                lang: [
                    (tuple(int(t) for t in rng.integers(1000, top, rng.integers(1, 3))), "t")
                    for _ in range(rng.integers(1, 3))
                ]
                for lang in range(2)
                if rng.random() < 0.8 or lang == 0
            },
        )
        for k in sorted(keys)
    ]
    return Vocab.from_entries(flags, entries, ["de", "fr"])


def write_shard(prefix, n_docs=300, dtype=np.uint16, seed=1, doc_len=(0, 400), document_indices=None):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(doc_len[0], doc_len[1], n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = rng.integers(0, 1000, int(offsets[-1])).astype(dtype)
    with ShardWriter(prefix, np.dtype(dtype), document_indices=document_indices) as writer:
        writer.write(tokens, offsets)
    return tokens, offsets


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return random_vocab().save(tmp_path_factory.mktemp("vocab") / "v.lfv")


def read_bytes(prefix):
    return Path(f"{prefix}.bin").read_bytes(), Path(f"{prefix}.idx").read_bytes()


def bounds_by_hand(sizes, chunk_tokens):
    """chunk_bounds restated: walk the sequences, and cut after the sequence in which the
    running token count reaches the next multiple of ``chunk_tokens`` (below the total)."""
    total, bounds, end = sum(sizes), [0], 0
    for j, size in enumerate(sizes):
        before, end = end, end + size
        next_multiple = (before // chunk_tokens + 1) * chunk_tokens
        if next_multiple <= end and next_multiple < total and j + 1 < len(sizes):
            bounds.append(j + 1)
    return bounds + [len(sizes)] if len(sizes) else bounds


def test_chunk_bounds_cover_every_sequence_once():
    sizes = np.array([5, 0, 7, 3, 10, 0, 0, 2])
    for chunk in (1, 4, 8, 100):
        b = chunk_bounds(sizes, chunk)
        assert b[0] == 0 and b[-1] == len(sizes) and np.all(np.diff(b) > 0)
    assert chunk_bounds(sizes, 1).tolist() == [0, 1, 3, 4, 5, 8]  # a cut after every sequence with tokens
    assert chunk_bounds(sizes, 8).tolist() == [0, 3, 5, 8]  # 5+0+7 reaches 8; +3+10 reaches 16 and 24
    assert chunk_bounds(sizes, 100).tolist() == [0, 8]
    assert chunk_bounds(np.zeros(0, dtype=np.int32), 10).tolist() == [0]
    assert chunk_bounds(np.zeros(3, dtype=np.int32), 10).tolist() == [0, 3]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=40), st.integers(1, 120))
def test_chunk_bounds_equal_the_restatement(sizes, chunk_tokens):
    """Every bound, not only the ends: chunks of about ``chunk_tokens`` tokens, each ending
    with the sequence that reaches a multiple of it, the int32 sizes of a real index."""
    got = chunk_bounds(np.array(sizes, dtype=np.int32), chunk_tokens)
    assert got.dtype == np.int64
    assert got.tolist() == bounds_by_hand(sizes, chunk_tokens)


def test_output_equals_the_kernel_and_is_identical_for_any_workers_and_chunks(tmp_path, vocab_path):
    tokens, offsets = write_shard(tmp_path / "in" / "shard_a", document_indices=np.array([0, 100, 250, 300]))
    vocab = Vocab.load(vocab_path)
    want = Substituter(vocab, ratio=0.5, seed=3, stream_key="shard_a").apply(tokens, offsets, mask=True)
    outputs = set()
    for workers, chunk in ((1, 10**9), (1, 500), (2, 1000), (3, 777)):
        out = tmp_path / f"out_{workers}_{chunk}"
        apply_shards(
            vocab_path,
            [tmp_path / "in" / "shard_a"],
            out,
            ratio=0.5,
            seed=3,
            workers=workers,
            chunk_tokens=chunk,
            mask=True,
            progress=False,
        )
        outputs.add(read_bytes(out / "shard_a") + read_bytes(out / "shard_a_mask"))
        with open_shard(out / "shard_a") as shard:
            got = np.asarray(shard.tokens[shard.offsets(0, shard.n_sequences)[0] :])
            assert np.array_equal(got, want.tokens)
            assert np.array_equal(shard.offsets(0, shard.n_sequences) - shard.offsets(0, 1)[0], want.offsets)
            assert shard.document_indices.tolist() == [0, 100, 250, 300]
        with open_shard(out / "shard_a_mask") as m:
            assert np.array_equal(np.asarray(m.tokens), want.mask) and np.array_equal(m.sizes, np.diff(want.offsets))
    assert len(outputs) == 1


def test_ratio_zero_round_trip_is_byte_identical(tmp_path, vocab_path):
    for dtype in (np.uint16, np.int32):
        prefix = tmp_path / "in" / f"s_{np.dtype(dtype).name}"
        write_shard(prefix, dtype=dtype)
        apply_shards(vocab_path, [prefix], tmp_path / "out", ratio=0.0, workers=2, chunk_tokens=5000, progress=False)
        assert read_bytes(tmp_path / "out" / prefix.name) == read_bytes(prefix)


def test_statistics_file_and_resume(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "s1", seed=1)
    write_shard(tmp_path / "in" / "s2", seed=2)
    out = tmp_path / "out"
    first = apply_shards(
        vocab_path, [tmp_path / "in"], out, ratio=0.3, portion=0.5, languages={"de": 0.7, "fr": 0.3}, progress=False
    )
    record = json.loads((out / "s1.link.json").read_text())
    assert record == first["s1"]
    assert record["config"]["ratio"] == 0.3 and record["config"]["stream_key"] == "s1"
    assert record["vocab"]["fingerprint"] == Vocab.load(vocab_path).fingerprint
    s = record["stats"]
    assert s["documents"] == 300 and s["tokens_out"] == open_shard(out / "s1").sizes.sum()
    assert s["total_substitutions"] == sum(s["substitutions"].values()) > 0
    mtime = (out / "s1.bin").stat().st_mtime_ns
    again = apply_shards(
        vocab_path,
        [tmp_path / "in"],
        out,
        ratio=0.3,
        portion=0.5,
        languages={"de": 0.7, "fr": 0.3},
        resume=True,
        progress=False,
    )
    assert all(record.pop("resumed") for record in again.values())  # marked as skipped, else the same record
    assert again == first and (out / "s1.bin").stat().st_mtime_ns == mtime
    changed = apply_shards(vocab_path, [tmp_path / "in"], out, ratio=0.4, resume=True, progress=False)
    assert changed["s1"]["config"]["ratio"] == 0.4 and (out / "s1.bin").stat().st_mtime_ns != mtime


def test_rank_and_world_size_split_the_sorted_inputs(tmp_path, vocab_path):
    for i in range(5):
        write_shard(tmp_path / "in" / f"part_{i}", n_docs=5, seed=i)
    done = [
        set(
            apply_shards(
                vocab_path, [tmp_path / "in"], tmp_path / "out", ratio=0.3, rank=r, world_size=2, progress=False
            )
        )
        for r in range(2)
    ]
    assert done == [{"part_0", "part_2", "part_4"}, {"part_1", "part_3"}]


FAULTS = Path(__file__).with_name("faults.py")


def run_cli(*args, env=None, cwd=None, fault=None):
    """``link-fast ARGS``; ``fault``: killed at that point (tests/faults.py)."""
    command = ["-m", "link_fast"] if fault is None else [str(FAULTS), fault]
    return subprocess.run(
        [sys.executable, *command, *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        cwd=cwd,
    )


def test_sigkill_then_resume_gives_identical_outputs(tmp_path, vocab_path):
    for name in ("a", "b"):
        write_shard(tmp_path / "in" / name, n_docs=2000, seed=ord(name))
    common = [
        "apply",
        "--vocab",
        vocab_path,
        tmp_path / "in",
        "--ratio",
        "0.4",
        "--workers",
        "2",
        "--chunk-tokens",
        "20000",
        "--mask",
        "-q",
    ]
    clean = run_cli(*common, "-o", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    killed = run_cli(*common, "-o", tmp_path / "crash", fault="after-chunks=30")
    assert killed.returncode == -9
    left = sorted(p.name for p in (tmp_path / "crash").iterdir())
    # shard a (about 20 chunks) finished; b was killed mid-way: nothing of it looks finished
    assert "a.link.json" in left and "b.link.json" not in left and "b.idx" not in left and "b.bin" not in left
    assert any(name.startswith(".b.bin.tmp-") for name in left)  # b was mid-write
    resumed = run_cli(*common, "-o", tmp_path / "crash", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("a.bin", "a.idx", "a_mask.bin", "a_mask.idx", "b.bin", "b.idx", "b_mask.bin", "b_mask.idx"):
        assert (tmp_path / "crash" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    # the killed run's temporaries (hidden, never under final names) are cleaned up by the resume
    assert not [p.name for p in (tmp_path / "crash").iterdir() if p.name.startswith(".")]


def test_bad_input_is_one_line_nonzero_and_leaves_no_output(tmp_path, vocab_path):
    vocab_big = random_vocab(vocab_size=70001, max_id=70001).save(tmp_path / "big.lfv")
    tokens, offsets = write_shard(tmp_path / "in" / "ok", n_docs=50)
    bad_ids = tmp_path / "bad_ids" / "bad"
    write_shard(bad_ids, n_docs=5)
    raw = bytearray(Path(f"{bad_ids}.bin").read_bytes())
    raw[10:12] = (5000).to_bytes(2, "little")  # beyond the 3000-id vocabulary
    Path(f"{bad_ids}.bin").write_bytes(raw)
    cases = [
        (["--vocab", vocab_path, bad_ids], "is outside the vocabulary"),
        (["--vocab", vocab_big, tmp_path / "in" / "ok"], "does not fit uint16"),
        (["--vocab", vocab_path, tmp_path / "missing"], "missing"),
        (["--vocab", tmp_path / "in" / "ok.bin", tmp_path / "in" / "ok"], "not a link_fast vocabulary"),
    ]
    wide_ids = tmp_path / "wide_ids" / "w"
    with ShardWriter(wide_ids, np.uint32) as writer:
        writer.write(np.array([5, 7, 70000, 9], dtype=np.uint32), np.array([0, 4]))
    cases.append((["--vocab", vocab_big, wide_ids, "--out-dtype", "uint16"], "70000 at position 2 does not fit uint16"))
    cases.append((["--vocab", vocab_path, bad_ids, "--workers", "2"], "is outside the vocabulary"))
    for args, message in cases:
        out = tmp_path / f"out_{len(message)}_{len(args)}"
        proc = run_cli("apply", *args, "--ratio", "1", "-o", out, "-q")
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".link_fast")]
    wide = run_cli(
        "apply",
        "--vocab",
        vocab_big,
        tmp_path / "in" / "ok",
        "--ratio",
        "1",
        "--out-dtype",
        "int32",
        "-o",
        tmp_path / "wide",
        "-q",
    )
    assert wide.returncode == 0, wide.stderr
    assert open_shard(tmp_path / "wide" / "ok").dtype == np.int32
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    if os.access(readonly, os.W_OK):  # root ignores permissions: use a path under a file instead
        readonly = tmp_path / "in" / "ok.bin" / "sub"
    proc = run_cli("apply", "--vocab", vocab_path, tmp_path / "in" / "ok", "--ratio", "1", "-o", readonly, "-q")
    assert proc.returncode != 0 and "cannot be written" in proc.stderr and "Traceback" not in proc.stderr


def test_a_failing_middle_chunk_fails_the_run_cleanly(tmp_path, vocab_path):
    """In a pool, a chunk waits for the sizes of the chunks before it to know where its bytes
    go: one that fails in the middle of a shard must fail the run cleanly, not hang it."""
    prefix = tmp_path / "in" / "mid"
    tokens, offsets = write_shard(prefix, n_docs=600)
    raw = bytearray(Path(f"{prefix}.bin").read_bytes())
    bad_at = int(offsets[300])  # a chunk in the middle of about 12
    raw[2 * bad_at : 2 * bad_at + 2] = (5000).to_bytes(2, "little")
    Path(f"{prefix}.bin").write_bytes(raw)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "link_fast",
            "apply",
            "--vocab",
            str(vocab_path),
            str(prefix),
            "-o",
            str(out),
            "--ratio",
            "0.5",
            "--workers",
            "2",
            "--chunk-tokens",
            "10000",
            "--mask",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "is outside the vocabulary" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not list(out.iterdir())


def test_validate_command(tmp_path):
    write_shard(tmp_path / "good", n_docs=20)
    write_shard(tmp_path / "bad", n_docs=20)
    Path(f"{tmp_path / 'bad'}.bin").write_bytes(Path(f"{tmp_path / 'bad'}.bin").read_bytes()[:-6])
    ok = run_cli("validate", tmp_path / "good")
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": ok")
    both = run_cli("validate", tmp_path)
    assert both.returncode == 1 and "bad" in both.stdout and "good: ok" in both.stdout


def rewrite_translations_in_place(vocab_path: Path, token: int) -> None:
    """Every translation id of the vocabulary file made ``token``, in place (same inode, same
    size); its mtime moved on a second, for file systems whose timestamps are coarse."""
    from test_vocab_safety import split_file

    header, data = split_file(vocab_path)
    table = header["arrays"]["trans_tokens"]
    start = vocab_path.stat().st_size - len(data) + table["offset"]
    before = vocab_path.stat()
    with open(vocab_path, "r+b") as f:
        f.seek(start)
        f.write(np.full(table["count"], token, dtype="<u4").tobytes())
    os.utime(vocab_path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize(("workers", "at"), [(1, "first"), (2, "last")])
def test_a_vocabulary_rewritten_during_the_run_commits_nothing(tmp_path, vocab_path, monkeypatch, workers, at):
    """The vocabulary's identity, checked at load, is checked again before an output is
    committed: rewritten in place once the first (or, every worker started, the last) chunk is
    done, the run fails naming it."""
    import link_fast.runner.rewrite as rewrite

    vocab = tmp_path / "v.lfv"
    vocab.write_bytes(Path(vocab_path).read_bytes())
    write_shard(tmp_path / "in" / "s", n_docs=300)
    n_chunks = len(chunk_bounds(np.asarray(open_shard(tmp_path / "in" / "s").sizes), 5000)) - 1
    account_chunk, done = rewrite.account_chunk, []

    def accounting(*args, **kwargs):
        tokens = account_chunk(*args, **kwargs)
        done.append(True)
        if len(done) == (1 if at == "first" else n_chunks):
            rewrite_translations_in_place(vocab, 2999)
        return tokens

    monkeypatch.setattr(rewrite, "account_chunk", accounting)
    out = tmp_path / "out"
    with pytest.raises(VocabError) as caught:
        apply_shards(vocab, [tmp_path / "in" / "s"], out, ratio=1.0, workers=workers, chunk_tokens=5000, progress=False)
    assert str(caught.value) == f"{vocab}: changed on disk while in use: rerun with the new file"
    assert len(done) == n_chunks > 3 and (not out.exists() or not list(out.iterdir()))


def test_a_datatrove_shards_tokenizer_name_is_kept_and_checked(tmp_path):
    """The output keeps the tokenizer name of the input's metadata (not "Unknown Tokenizer"),
    and a name that cannot be the vocabulary's tokenizer is one line, exit 2, nothing written."""
    plain = random_vocab()
    tokenizer = {"name": "tokenizer.json", "kind": "hf", "fingerprint": "f", "path": "/models/smollm2/tokenizer.json"}
    vocab = Vocab(plain.tables, dict(plain.meta, tokenizer=tokenizer)).save(tmp_path / "v.lfv")
    tokens, offsets = write_shard(tmp_path / "unused", n_docs=30)
    for name in ("smollm2/tokenizer.json", "gpt2"):
        with ShardWriter(
            tmp_path / name.replace("/", "_") / "s", np.uint16, format="datatrove", tokenizer_name=name
        ) as w:
            w.write(tokens, offsets)
    out = tmp_path / "out"
    apply_shards(vocab, [tmp_path / "smollm2_tokenizer.json" / "s"], out, ratio=1.0, progress=False)
    assert (out / "s.ds.metadata").read_text().splitlines()[0] == "smollm2/tokenizer.json|2"
    assert open_shard(out / "s").tokenizer_name == "smollm2/tokenizer.json"
    proc = run_cli("apply", "--vocab", vocab, tmp_path / "gpt2" / "s", "--ratio", "1", "-o", tmp_path / "out2", "-q")
    assert proc.returncode == 2 and proc.stderr == (
        f"link-fast: error: {tmp_path / 'gpt2' / 's'}.ds.metadata: tokenized with 'gpt2', but the vocabulary "
        f"{vocab} was compiled for /models/smollm2/tokenizer.json: compile one with --tokenizer gpt2\n"
    )
    assert not (tmp_path / "out2").exists()


def moved_loss(keys, before, after, mask, loss_in) -> np.ndarray:
    """The loss flags of a rewritten document, restated with link_fast.align's spans: a copied
    token keeps its flag; a translation's tokens are flagged when all of its word's were."""
    from link_fast.align import align

    out = np.empty(len(after), dtype=np.uint8)
    i = j = 0
    for span in align(keys, before, after, mask):
        out[j : span.out_start] = loss_in[i : span.in_start]
        out[span.out_start : span.out_end] = bool(loss_in[span.in_start : span.in_end].all())
        i, j = span.in_end, span.out_end
    out[j:] = loss_in[i:]
    return out


@pytest.mark.parametrize(("n_docs", "doc_len"), [(200, (0, 400)), (4, (9000, 12000))], ids=["short", "cut"])
def test_a_datatrove_loss_mask_moves_with_the_substitutions(tmp_path, vocab_path, n_docs, doc_len):
    """``NAME.ds.loss`` comes out beside the output, a flag per output token: copied tokens keep
    theirs, a translation is in the loss when its whole word was; the same for any workers, and
    for documents longer than a chunk, rewritten a stretch at a time."""
    from link_fast.align import Keys

    tokens, offsets = write_shard(tmp_path / "unused", n_docs=n_docs, doc_len=doc_len)
    prefix = tmp_path / "in" / "s"
    with ShardWriter(prefix, np.uint16, format="datatrove") as w:
        w.write(tokens, offsets)
    loss = (np.arange(len(tokens)) // 5 % 3 != 0).astype(np.uint8)  # runs that cut some words
    loss.tofile(f"{prefix}.ds.loss")
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        apply_shards(
            vocab_path, [prefix], out, ratio=0.8, mask=True, workers=workers, chunk_tokens=3000, progress=False
        )
        outputs.append({p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".json")})
    assert outputs[0] == outputs[1] and "s.ds.loss" in outputs[0]
    out, mask = open_shard(tmp_path / "out1" / "s"), open_shard(tmp_path / "out1" / "s_mask")
    got = np.frombuffer(outputs[0]["s.ds.loss"], dtype=np.uint8)
    assert len(got) == out.n_tokens
    keys, left_out = Keys(Vocab.load(vocab_path)), 0
    for d in range(n_docs):
        a, b = (int(x) for x in out.offsets(d, d + 1))
        before = tokens[offsets[d] : offsets[d + 1]]
        want = moved_loss(
            keys, before, np.asarray(out.tokens[a:b]), np.asarray(mask.tokens[a:b]), loss[offsets[d] : offsets[d + 1]]
        )
        assert np.array_equal(got[a:b], want), d
        left_out += int(np.sum(mask.tokens[a:b] & (want == 0)))  # translations out of the loss
    assert left_out > 0 and got.sum() > 0 and np.sum(np.asarray(mask.tokens)) > 1000


def test_validate_compares_the_vocabulary_contents(tmp_path, vocab_path):
    """The record holds the vocabulary's contents hash: validate names a record whose
    vocabulary holds other contents now (rewritten since the run), or whose hash was edited."""
    vocab = tmp_path / "v.lfv"
    vocab.write_bytes(Path(vocab_path).read_bytes())
    write_shard(tmp_path / "in" / "s", n_docs=20)
    out = tmp_path / "out"
    record = apply_shards(vocab, [tmp_path / "in" / "s"], out, ratio=1.0, progress=False)["s"]
    assert record["vocab"]["contents"] == Vocab.load(vocab).contents()
    assert run_cli("validate", out).stdout == f"{out / 's'}: ok\n"
    rewrite_translations_in_place(vocab, 2999)
    changed = Vocab.load(vocab).contents()
    proc = run_cli("validate", out)
    assert proc.returncode == 1 and proc.stdout == (
        f"{out / 's'}: {out / 's.link.json'}: made with the vocabulary {vocab} when it held "
        f"{record['vocab']['contents']}; it holds {changed} now (changed since the run)\n"
    )
    edited = dict(record, vocab=dict(record["vocab"], contents=changed))
    (out / "s.link.json").write_text(json.dumps(edited), encoding="utf-8")
    assert run_cli("validate", out).returncode == 0
    vocab.unlink()  # moved away: an output does not need it
    assert run_cli("validate", out).returncode == 0


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: Path(f"{p}.idx").write_bytes(b"NOTMAGIC!" + Path(f"{p}.idx").read_bytes()[9:]), "magic"),
        (lambda p: Path(f"{p}.bin").write_bytes(Path(f"{p}.bin").read_bytes()[:-10]), ".bin"),
        (lambda p: Path(f"{p}.idx").write_bytes(Path(f"{p}.idx").read_bytes()[:40]), ".idx"),
    ],
)
def test_corrupt_shards_fail_through_the_cli(tmp_path, vocab_path, damage, message):
    prefix = tmp_path / "in" / "s"
    write_shard(prefix, n_docs=30)
    damage(prefix)
    proc = run_cli("apply", "--vocab", vocab_path, prefix, "--ratio", "1", "-o", tmp_path / "out", "-q")
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("dtype", "bad"), [(np.int64, 1 << 40), (np.int8, -3)])
@pytest.mark.parametrize("workers", [1, 2])
def test_an_id_that_is_no_token_id_names_the_shard(tmp_path, vocab_path, dtype, bad, workers):
    """int64 and int8 shards are widened a chunk at a time: an id outside [0, 2**31) there is
    one line naming the file and the sequence, exit 2."""
    prefix = tmp_path / "in" / "s"
    tokens = np.arange(100, dtype=dtype) % 50
    tokens[70] = bad
    with ShardWriter(prefix, np.dtype(dtype)) as writer:
        writer.write(tokens, np.arange(0, 101, 10))
    proc = run_cli(
        "apply", "--vocab", vocab_path, prefix, "--ratio", "1", "-o", tmp_path / "out", "-q", "--workers", workers
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert (
        proc.stderr
        == f"link-fast: error: {prefix}.bin: token id {bad} ({np.dtype(dtype)}) in sequence 7 is not a token id\n"
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_fails_cleanly(tmp_path, vocab_path, workers):
    # With a pool, the workers write their chunks themselves and hit the full disk first: their
    # error must cross back to the parent (it once could not be unpickled, and the run hung).
    write_shard(tmp_path / "in" / "s", n_docs=2000)
    code = (
        "import resource, signal, sys; from link_fast.cli import main;"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000));"
        f"sys.exit(main(['apply', '--vocab', {str(vocab_path)!r}, {str(tmp_path / 'in' / 's')!r}, '--ratio', '0.5',"
        f" '-o', {str(tmp_path / 'out')!r}, '-q', '--chunk-tokens', '50000', '--workers', '{workers}']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()  # the folder the failed run made is gone, with nothing in it


def test_errors_cross_process_boundaries_intact():
    import pickle

    from link_fast.errors import DictionaryError, InputError, TokenizerError, VocabError
    from link_fast.shards import ShardError
    from link_fast.text import TextError

    for error in (
        ShardError("/s.bin", "bad"),
        DictionaryError("/d.txt", "no tab", 3),
        InputError("plain"),
        TokenizerError("/t.json", "unknown"),
        VocabError("/v.lfv", "old"),
        TextError("/x.jsonl", "bad", 7),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and copy.__dict__ == error.__dict__


def test_the_run_record_lists_what_it_promises(tmp_path, vocab_path):
    """DESIGN §8's run record, key by key: what `--resume`, `link-fast inspect` and people read."""
    write_shard(tmp_path / "in" / "s", n_docs=20)
    out = tmp_path / "not" / "yet" / "there"  # missing parents are created, like -o elsewhere
    record = apply_shards(vocab_path, [tmp_path / "in" / "s"], out, ratio=0.5, mask=True, progress=False)["s"]
    assert record == json.loads((out / "s.link.json").read_text())
    vocab = Vocab.load(vocab_path)
    assert record["vocab"]["fingerprint"] == vocab.fingerprint and record["vocab"]["languages"] == ["de", "fr"]
    assert record["vocab"]["format_version"] == vocab.meta["format_version"]
    assert record["inputs"] == ["../../../in/s.bin", "../../../in/s.idx"]  # relative to the record's folder
    assert record["record_version"] == 2 and record["folder"] == str(out)
    assert record["output_files"] == {p.name: p.stat().st_size for p in out.iterdir() if p.suffix in (".bin", ".idx")}
    assert record["mask_shard"] == "s_mask" and record["mask"] is True and record["out_dtype"] == "uint16"
    for side in ("main", "worker"):
        assert set(record["memory_mb"][side]) == {"peak_rss", "anon_rss"}
        assert record["memory_mb"][side]["peak_rss"] >= record["memory_mb"][side]["anon_rss"] > 0
    assert record["seconds"] >= 0 and set(record["input"]["files"]) == {"s.bin", "s.idx"}


def test_two_inputs_of_the_same_name_are_refused(tmp_path, vocab_path):
    write_shard(tmp_path / "a" / "s", n_docs=5)
    write_shard(tmp_path / "b" / "s", n_docs=5)
    with pytest.raises(InputError, match="two inputs have the same name, their outputs would collide: s"):
        apply_shards(vocab_path, [tmp_path / "a" / "s", tmp_path / "b" / "s"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
