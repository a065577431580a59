"""What `link-fast apply` writes may never overwrite or shadow its input, and `--resume` trusts
only outputs it verified: the record must match the options, the vocabulary, the input as it is
now and the output files as they are now; data, mask and record are committed together."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_runner import random_vocab, read_bytes, run_cli, write_shard

from link_fast import Vocab
from link_fast.runner import apply_shards
from link_fast.runner.outputs import FINGERPRINT_SAMPLE
from link_fast.shards import ShardError, ShardWriter, mask_owner, open_shard, validate_shard


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return random_vocab().save(tmp_path_factory.mktemp("vocab") / "v.lfv")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def apply(vocab_path, inputs, out, **options):
    options = dict(dict(ratio=0.5, seed=3, progress=False), **options)
    return apply_shards(vocab_path, inputs if isinstance(inputs, list) else [inputs], out, **options)


def test_output_into_the_input_directory_is_refused_before_anything_is_written(tmp_path, vocab_path):
    data = tmp_path / "data"
    write_shard(data / "a", n_docs=50, seed=1)
    write_shard(data / "b", n_docs=50, seed=2)
    before = snapshot(data)
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    for out in (data, tmp_path / "link"):
        proc = run_cli("apply", "--vocab", vocab_path, data, "--ratio", "0.5", "-o", out, "-q")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "would overwrite" in proc.stderr and "a.bin" in proc.stderr, proc.stderr
        assert snapshot(data) == before  # no output, no record, no probe file, inputs untouched
    with pytest.raises(ShardError, match="would overwrite its input"):
        apply(vocab_path, data / "a", data, mask=True)


def test_an_output_file_that_is_an_input_file_is_refused(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=30)
    out = tmp_path / "out"
    out.mkdir()
    os.link(tmp_path / "in" / "a.idx", out / "a.idx")  # a hard link: same inode, other directory
    with pytest.raises(ShardError, match=r"would overwrite the input .*a\.idx"):
        apply(vocab_path, tmp_path / "in" / "a", out)
    os.unlink(out / "a.idx")
    (out / "a_mask.bin").symlink_to(tmp_path / "in" / "a.bin")  # the mask would replace it
    with pytest.raises(ShardError, match="would overwrite the input"):
        apply(vocab_path, tmp_path / "in" / "a", out, mask=True)
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.bin"]


def test_an_input_named_like_another_inputs_mask_is_refused_with_mask(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=10)
    write_shard(tmp_path / "in" / "a_mask", n_docs=10, dtype=np.int32)
    with pytest.raises(Exception, match="a_mask is an input and the mask of a"):
        apply(vocab_path, tmp_path / "in", tmp_path / "out", mask=True)
    done = apply(vocab_path, tmp_path / "in", tmp_path / "out")  # without --mask: two plain outputs
    assert set(done) == {"a", "a_mask"} and done["a_mask"]["mask_shard"] is None
    again = apply(vocab_path, tmp_path / "in" / "a", tmp_path / "out", seed=4)  # a alone: a_mask is not its stale mask
    assert again["a"]["config"]["seed"] == 4 and (tmp_path / "out" / "a_mask.bin").exists()


def test_masks_of_an_earlier_run_are_skipped_as_inputs_with_a_note(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=40, seed=1)
    write_shard(tmp_path / "in" / "b", n_docs=40, seed=2)
    first = tmp_path / "first"
    apply(vocab_path, tmp_path / "in", first, mask=True)
    record = json.loads((first / "a.link.json").read_text())
    assert record["mask_shard"] == "a_mask"
    assert sorted(record["output_files"]) == ["a.bin", "a.idx", "a_mask.bin", "a_mask.idx"]
    assert mask_owner(first / "a_mask") == str(first / "a") and mask_owner(first / "a") is None
    proc = run_cli("apply", "--vocab", vocab_path, first, "--ratio", "0.5", "--mask", "-o", tmp_path / "second")
    assert proc.returncode == 0, proc.stderr
    assert "a_mask: a mask written by link-fast" in proc.stderr and "b_mask: a mask" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == [
        "a.bin",
        "a.idx",
        "a.link.json",
        "a_mask.bin",
        "a_mask.idx",
        "b.bin",
        "b.idx",
        "b.link.json",
        "b_mask.bin",
        "b_mask.idx",
    ]
    # records of an earlier link-fast (no mask_shard) are recognised by their outputs
    del record["mask_shard"]
    (first / "a.link.json").write_text(json.dumps(record))
    assert mask_owner(first / "a_mask") == str(first / "a")


def test_a_rerun_without_mask_removes_the_stale_mask_and_validate_checks_masks(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=40)
    out = tmp_path / "out"
    apply(vocab_path, tmp_path / "in" / "a", out, mask=True)
    mask_files = {name: (out / name).read_bytes() for name in ("a_mask.bin", "a_mask.idx")}
    assert run_cli("validate", out).returncode == 0
    record = apply(vocab_path, tmp_path / "in" / "a", out)["a"]
    assert record["mask"] is False and record["mask_shard"] is None
    assert sorted(p.name for p in out.iterdir()) == ["a.bin", "a.idx", "a.link.json"]
    # a mask put back by hand (or left by an older link-fast) is reported, not called ok
    for name, blob in mask_files.items():
        (out / name).write_bytes(blob)
    proc = run_cli("validate", out)
    assert proc.returncode == 1 and "left over from an earlier run" in proc.stdout and f"{out / 'a'}: ok" in proc.stdout


@pytest.mark.parametrize(
    "damage, message",
    [
        ("lengths", "sequence 0 has"),
        ("count", "39 sequences, its data shard a has 40"),
        ("missing", "lists the mask a_mask, which is missing"),
    ],
)
def test_validate_fails_on_a_mask_that_does_not_fit_its_data(tmp_path, vocab_path, damage, message):
    write_shard(tmp_path / "in" / "a", n_docs=40, doc_len=(5, 50))
    out = tmp_path / "out"
    apply(vocab_path, tmp_path / "in" / "a", out, mask=True)
    for suffix in (".bin", ".idx"):
        (out / f"a_mask{suffix}").unlink()
    if damage != "missing":
        with open_shard(out / "a") as data:
            sizes = np.array(data.sizes, dtype=np.int64)
        if damage == "lengths":
            sizes[0] += 1
        else:
            sizes = sizes[:-1]
        with ShardWriter(out / "a_mask", np.uint8) as writer:
            writer.write(np.zeros(int(sizes.sum()), dtype=np.uint8), np.concatenate(([0], np.cumsum(sizes))))
    proc = run_cli("validate", out)
    assert proc.returncode == 1 and message in proc.stdout, proc.stdout
    problems = validate_shard(out / ("a" if damage == "missing" else "a_mask"))
    assert len(problems) == 1 and message in problems[0], problems


def test_resume_redoes_a_truncated_output_and_gives_the_bytes_of_a_fresh_run(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=200, seed=1)
    write_shard(tmp_path / "in" / "b", n_docs=200, seed=2)
    fresh = tmp_path / "fresh"
    apply(vocab_path, tmp_path / "in", fresh, mask=True)
    out = tmp_path / "out"
    apply(vocab_path, tmp_path / "in", out, mask=True)
    for name, cut in (("a.bin", 10), ("b_mask.bin", 1)):
        blob = (out / name).read_bytes()
        (out / name).write_bytes(blob[:-cut])
    notes = []
    apply(vocab_path, tmp_path / "in", out, mask=True, resume=True, log=notes.append)
    assert not [n for n in notes if "already done" in n], notes
    assert snapshot_data(out) == snapshot_data(fresh)
    notes.clear()
    apply(vocab_path, tmp_path / "in", out, mask=True, resume=True, log=notes.append)
    assert sorted(notes) == ["a: already done, skipped", "b: already done, skipped"]


def snapshot_data(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.endswith(".link.json")}


@pytest.mark.parametrize("keep_size_and_mtime", [False, True])
def test_resume_redoes_a_shard_whose_input_was_replaced(tmp_path, vocab_path, keep_size_and_mtime):
    prefix = tmp_path / "in" / "a"
    tokens, _ = write_shard(prefix, n_docs=100, seed=1)
    out = tmp_path / "out"
    apply(vocab_path, prefix, out)
    stat = os.stat(f"{prefix}.bin")
    if keep_size_and_mtime:  # same lengths (same .idx), other tokens, the old size and mtime
        replaced = np.random.default_rng(9).integers(0, 1000, len(tokens)).astype(np.uint16)
        Path(f"{prefix}.bin").write_bytes(replaced.tobytes())
        os.utime(f"{prefix}.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert os.stat(f"{prefix}.bin").st_size == stat.st_size
    else:
        for suffix in (".bin", ".idx"):
            os.unlink(f"{prefix}{suffix}")
        write_shard(prefix, n_docs=120, seed=5)
    notes = []
    record = apply(vocab_path, prefix, out, resume=True, log=notes.append)["a"]
    assert not [n for n in notes if "already done" in n], notes
    fresh = tmp_path / "fresh"
    assert apply(vocab_path, prefix, fresh)["a"]["input"] == record["input"]
    assert read_bytes(out / "a") == read_bytes(fresh / "a")


def test_resume_redoes_a_shard_whose_data_was_rewritten_in_place_in_the_middle(tmp_path, vocab_path):
    """The data file rewritten in place: the same size, the same index, the same first and last
    64 KiB (what the fingerprint hashes), other tokens between them; only its mtime tells.
    Resume redoes the shard (DESIGN §8 lists what resume compares)."""
    prefix = tmp_path / "in" / "a"
    tokens, _ = write_shard(prefix, n_docs=1000, seed=1)
    data = Path(f"{prefix}.bin")
    assert tokens.nbytes > 2 * FINGERPRINT_SAMPLE + 4096
    out = tmp_path / "out"
    apply(vocab_path, prefix, out)
    before, old_output = os.stat(data), read_bytes(out / "a")
    middle = len(tokens) // 2 - 1024  # 4 KiB of tokens, each changed
    with open(data, "r+b") as f:
        f.seek(middle * tokens.itemsize)
        f.write(((tokens[middle : middle + 2048] + 1) % 1000).astype(tokens.dtype).tobytes())
    # a later write's time, whatever the tick of the filesystem's clock
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert os.stat(data).st_size == before.st_size
    notes = []
    record = apply(vocab_path, prefix, out, resume=True, log=notes.append)["a"]
    assert not [n for n in notes if "already done" in n], notes
    fresh = tmp_path / "fresh"
    assert apply(vocab_path, prefix, fresh)["a"]["input"] == record["input"]
    assert read_bytes(out / "a") == read_bytes(fresh / "a") != old_output


@pytest.mark.parametrize(
    "change",
    [
        {"mask": True},
        {"out_dtype": "int32"},
        {"seed": 4},
        {"seed": 3 + 2**40},  # differs only above bit 32
        {"stream_key": "other"},
        {"ratio": 0.25},
        {"portion": 0.5},
        {"ratio_basis": "words"},
        {"lang_scope": "document"},
        {"languages": {"de": 1.0}},
        {"languages": {"de": 1.0, "fr": 3.0}},  # the same languages, other weights
        {"vocab": "other contents, same tokenizer fingerprint"},
    ],
)
def test_resume_redoes_on_any_option_that_changes_the_bytes(tmp_path, vocab_path, change):
    write_shard(tmp_path / "in" / "a", n_docs=100)
    out = tmp_path / "out"
    apply(vocab_path, tmp_path / "in" / "a", out)
    vocab = vocab_path
    options = dict(change)
    if "vocab" in options:  # the same keys, header and tokenizer fingerprint; other translations
        del options["vocab"]
        original = Vocab.load(vocab_path)
        tables = dict(original.tables)
        tables["trans_tokens"] = (1000 + (tables["trans_tokens"].astype(np.int64) - 999) % 2000).astype(np.uint32)
        other = Vocab.from_tables(tables, original.languages)
        assert other.fingerprint == original.fingerprint and other.n_keys == original.n_keys
        vocab = other.save(tmp_path / "other.lfv")
    notes = []
    record = apply(vocab, tmp_path / "in" / "a", out, resume=True, log=notes.append, **options)["a"]
    assert not [n for n in notes if "already done" in n], notes
    fresh = tmp_path / "fresh"
    apply(vocab, tmp_path / "in" / "a", fresh, **options)
    assert snapshot_data(out) == snapshot_data(fresh)
    assert record["mask"] == options.get("mask", False)
    notes.clear()
    apply(vocab, tmp_path / "in" / "a", out, resume=True, log=notes.append, **options)
    assert notes == ["a: already done, skipped"]
    # workers and chunk size do not change the bytes: resume keeps the output
    notes.clear()
    apply(vocab, tmp_path / "in" / "a", out, resume=True, log=notes.append, workers=2, chunk_tokens=1000, **options)
    assert notes == ["a: already done, skipped"]


@pytest.mark.parametrize("fault", ["after-data", "before-record"])
def test_a_crash_inside_the_commit_leaves_an_output_that_resume_redoes(tmp_path, vocab_path, fault):
    write_shard(tmp_path / "in" / "a", n_docs=200)
    common = ["apply", "--vocab", vocab_path, tmp_path / "in", "--ratio", "0.5", "--seed", "3", "-q"]
    fresh = tmp_path / "fresh"
    assert run_cli(*common, "--mask", "-o", fresh).returncode == 0
    out = tmp_path / "out"
    # an earlier finished run with other options: its record must not vouch for the new files
    assert run_cli(*common, "--seed", "9", "-o", out).returncode == 0
    killed = run_cli(*common, "--mask", "-o", out, fault=f"commit={fault}")
    assert killed.returncode == -9, killed.stderr
    assert not (out / "a.link.json").exists()  # the old record went first: nothing looks finished
    proc = run_cli(*common, "--mask", "-o", out, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert snapshot_data(out) == snapshot_data(fresh)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert run_cli("validate", out).returncode == 0


class FileCalls:
    """The fsyncs, renames and removals of a run, in order: ("fsync", (device, inode)) of the
    file or folder synced, ("replace", final name), ("unlink", name)."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple] = []
        fsync, replace, unlink = os.fsync, os.replace, os.unlink

        def recording_fsync(fd):
            info = os.fstat(fd)
            self.calls.append(("fsync", (info.st_dev, info.st_ino)))
            return fsync(fd)

        def recording_replace(src, dst, *args, **kwargs):
            self.calls.append(("replace", os.path.basename(dst)))
            return replace(src, dst, *args, **kwargs)

        def recording_unlink(path, *args, **kwargs):
            self.calls.append(("unlink", os.path.basename(path)))
            return unlink(path, *args, **kwargs)

        monkeypatch.setattr(os, "fsync", recording_fsync)
        monkeypatch.setattr(os, "replace", recording_replace)
        monkeypatch.setattr(os, "unlink", recording_unlink)

    def at(self, call: tuple) -> list[int]:
        return [i for i, c in enumerate(self.calls) if c == call]


def synced(path) -> tuple:
    info = os.stat(path)  # a rename keeps the inode: the file synced under its temporary name
    return ("fsync", (info.st_dev, info.st_ino))


def test_data_and_mask_are_on_disk_before_the_record_says_they_are_finished(tmp_path, vocab_path, monkeypatch):
    """A power cut cannot be simulated; the order of the calls that make the output durable
    can be checked. Every file of the data and the mask is fsync'd before the first of them
    is renamed into place; the folder is fsync'd after the last of those renames and before
    the record's, itself fsync'd before it; the folder again after it. An earlier record of
    the output is removed, and the removal made durable, before any file of the new output
    takes its final name."""
    write_shard(tmp_path / "in" / "a", n_docs=100)
    out = tmp_path / "out"
    outputs = ["a.bin", "a.idx", "a_mask.bin", "a_mask.idx"]
    for seed in (3, 4):  # the second run replaces the first's finished output
        calls = FileCalls(monkeypatch)
        apply(vocab_path, tmp_path / "in" / "a", out, mask=True, seed=seed)
        monkeypatch.undo()
        folder = synced(out)
        renamed = {name: calls.at(("replace", name)) for name in outputs}
        assert all(len(at) == 1 for at in renamed.values()), calls.calls
        first_rename, last_rename = min(renamed.values())[0], max(renamed.values())[0]
        for name in outputs:
            assert calls.at(synced(out / name)), f"{name} never fsync'd"
            assert calls.at(synced(out / name))[0] < first_rename, f"{name} fsync'd after the renames began"
        [record] = calls.at(("replace", "a.link.json"))
        assert calls.at(synced(out / "a.link.json"))[0] < record
        assert any(last_rename < at < record for at in calls.at(folder)), "the renames not durable before the record"
        assert any(at > record for at in calls.at(folder)), "the record's rename not made durable"
        if seed == 4:
            [removed] = calls.at(("unlink", "a.link.json"))
            assert any(removed < at < first_rename for at in calls.at(folder)), "the old record's removal not durable"
        assert json.loads((out / "a.link.json").read_text())["config"]["seed"] == seed


def test_the_datatrove_step_refuses_its_input_folder_as_output(tmp_path, vocab_path):
    pytest.importorskip("datatrove")
    from link_fast.integrations.datatrove import LinkShards

    write_shard(tmp_path / "in" / "a", n_docs=20)
    before = snapshot(tmp_path / "in")
    step = LinkShards(str(tmp_path / "in"), str(tmp_path / "in"), vocab_path, ratio=0.5)
    with pytest.raises(ShardError, match="would overwrite its input"):
        for _ in step.run(None, rank=0, world_size=1):
            pass
    assert snapshot(tmp_path / "in") == before


def test_a_resume_that_skips_everything_reports_no_throughput(tmp_path, vocab_path):
    write_shard(tmp_path / "in" / "a", n_docs=50)
    common = ["apply", "--vocab", vocab_path, tmp_path / "in", "--ratio", "0.5", "-o", tmp_path / "out"]
    first = run_cli(*common)
    assert first.returncode == 0 and "1 shard(s) rewritten" in first.stderr, first.stderr
    again = run_cli(*common, "--resume")
    assert again.returncode == 0, again.stderr
    summary = again.stderr.strip().splitlines()[-1]
    assert summary.startswith("0 shard(s) rewritten, 0 tokens") and "1 already done, skipped" in summary
    assert "tokens/s" not in summary
