"""LinkShards, the datatrove pipeline step: the same bytes as link-fast apply, rank by rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datatrove")

from test_runner import random_vocab, read_bytes, write_shard  # noqa: E402

from link_fast.runner import apply_shards  # noqa: E402
from link_fast.shards import ShardWriter  # noqa: E402

OPTIONS = dict(ratio=0.5, seed=7)


@pytest.fixture
def corpus(tmp_path):
    vocab = random_vocab().save(tmp_path / "v.lfv")
    for k in range(7):
        write_shard(tmp_path / "in" / f"shard{k}", n_docs=60, seed=k)
    expected = tmp_path / "expected"
    apply_shards(vocab, [tmp_path / "in"], expected, **OPTIONS, progress=False)
    return vocab, tmp_path / "in", expected


def pipeline(vocab, inputs, output, logs, tasks=4, workers=2, **extra):
    from datatrove.executor import LocalPipelineExecutor

    from link_fast.integrations.datatrove import LinkShards

    return LocalPipelineExecutor(
        [LinkShards(str(inputs), str(output), vocab, **OPTIONS, **extra)],
        tasks=tasks,
        workers=workers,
        logging_dir=str(logs),
    )


def outputs(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def test_local_executor_matches_apply_and_skips_completed_tasks(corpus, tmp_path):
    vocab, inputs, expected = corpus
    pipeline(vocab, inputs, tmp_path / "out", tmp_path / "logs").run()
    assert outputs(tmp_path / "out") == outputs(expected)
    for k in range(7):
        assert read_bytes(tmp_path / "out" / f"shard{k}") == read_bytes(expected / f"shard{k}")
    assert len(os.listdir(tmp_path / "logs" / "completions")) == 4
    logged = sum(
        json.loads(path.read_text())[0]["stats"]["substitutions"]["total"]
        for path in (tmp_path / "logs" / "stats").glob("*.json")
    )
    assert logged == sum(
        json.loads(p.read_text())["stats"]["total_substitutions"] for p in expected.glob("*.link.json")
    )
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    pipeline(vocab, inputs, tmp_path / "out", tmp_path / "logs").run()  # every task is done: nothing runs
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}


def test_step_pickles_without_opening_the_vocabulary(corpus, tmp_path):
    import pickle

    from link_fast.integrations.datatrove import LinkShards

    _, inputs, _ = corpus
    missing = tmp_path / "made-later.lfv"  # not there yet: only run() may open it
    step = LinkShards(str(inputs), str(tmp_path / "out"), missing, **OPTIONS)
    assert pickle.loads(pickle.dumps(step)).vocab_path == str(missing)
    assert [Path(p).name for p in step.shards_for_rank(1, 3)] == ["shard1", "shard4"]


def test_task_killed_midway_leaves_no_finished_output_and_reruns(corpus, tmp_path):
    vocab, inputs, expected = corpus
    code = (
        "import sys; sys.path.insert(0, {tests!r}); from test_datatrove_step import pipeline; import faults;"
        "faults.install({fault!r}) if {fault!r} else None;"
        "pipeline({vocab!r}, {inputs!r}, {out!r}, {logs!r}, tasks=1, workers=1, chunk_tokens=3000).run()"
    )
    paths = dict(
        tests=str(Path(__file__).parent),
        vocab=str(vocab),
        inputs=str(inputs),
        out=str(tmp_path / "out"),
        logs=str(tmp_path / "logs"),
    )
    killing = code.format(fault="after-chunks=9", **paths)  # SIGKILL after 9 chunks: inside shard 1 or 2
    rerunning = code.format(fault="", **paths)
    # No pipes: datatrove's Manager process outlives the killed task and would hold them open.
    # Its own session, so that orphan is killed with the group afterwards.
    with open(tmp_path / "killed.log", "w") as log:
        killed = subprocess.Popen([sys.executable, "-c", killing], stdout=log, stderr=log, start_new_session=True)
        try:
            assert killed.wait(timeout=300) == -9, (tmp_path / "killed.log").read_text()
        finally:
            try:
                os.killpg(killed.pid, 9)
            except ProcessLookupError:
                pass
    done = {p.name[: -len(".link.json")] for p in (tmp_path / "out").glob("*.link.json")}
    assert 0 < len(done) < 7 and not (tmp_path / "logs" / "completions").exists()
    for name in done:  # what looks finished is finished
        assert read_bytes(tmp_path / "out" / name) == read_bytes(expected / name)
    rerun = subprocess.run([sys.executable, "-c", rerunning], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for k in range(7):
        assert read_bytes(tmp_path / "out" / f"shard{k}") == read_bytes(expected / f"shard{k}")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_after_a_datatrove_tokenizer_each_task_takes_its_own_files(tmp_path):
    """rank_files=True: the *_RANK_*.ds files a DocumentTokenizer of the same task wrote."""
    vocab = random_vocab().save(tmp_path / "v.lfv")
    rng = np.random.default_rng(0)
    for rank in range(3):
        with ShardWriter(tmp_path / "tok" / f"00000_{rank:05d}_unshuffled", np.uint16, format="datatrove") as w:
            w.write(rng.integers(0, 1000, 500).astype(np.uint16), np.array([0, 200, 500]))
    from link_fast.integrations.datatrove import LinkShards

    step = LinkShards(str(tmp_path / "tok"), str(tmp_path / "out"), vocab, **OPTIONS, rank_files=True)
    assert [Path(p).name for p in step.shards_for_rank(2, 3)] == ["00000_00002_unshuffled"]
    for _ in step.run(None, rank=2, world_size=3):
        pass
    assert outputs(tmp_path / "out") == [
        "00000_00002_unshuffled.ds",
        "00000_00002_unshuffled.ds.index",
        "00000_00002_unshuffled.ds.metadata",
        "00000_00002_unshuffled.link.json",
    ]
    assert step.stats["documents"].total == 2


def test_documents_with_token_ids_are_rewritten_in_place(tmp_path):
    from datatrove.data import Document

    from link_fast import Substituter, Vocab
    from link_fast.integrations.datatrove import LinkShards

    vocab_path = random_vocab().save(tmp_path / "v.lfv")
    rng = np.random.default_rng(3)
    docs = [Document(text="", id=str(i), metadata={"input_ids": rng.integers(0, 1000, 50).tolist()}) for i in range(5)]
    originals = [list(d.metadata["input_ids"]) for d in docs]
    step = LinkShards(None, None, vocab_path, **OPTIONS)
    out = list(step.run(iter(docs), rank=3, world_size=4))
    substituter = Substituter(Vocab.load(vocab_path), **OPTIONS, stream_key="rank00003")  # as LinkText's
    for i, (doc, ids) in enumerate(zip(out, originals)):
        want = substituter.apply(np.array(ids, dtype=np.int32), np.array([0, len(ids)]), first_doc=i).tokens
        assert doc.metadata["input_ids"] == want.tolist()
    assert any(d.metadata["input_ids"] != ids for d, ids in zip(out, originals))


RAY_RUN = """
import sys
sys.path.insert(0, {tests!r})
import ray
# A cluster of this machine only: loopback, two CPUs, no dashboard; shut down at the end.
ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
try:
    from datatrove.executor import RayPipelineExecutor
    from link_fast.integrations.datatrove import LinkShards
    RayPipelineExecutor([LinkShards({inputs!r}, {out!r}, {vocab!r}, ratio={ratio}, seed={seed})],
                        tasks=3, workers=2, logging_dir={logs!r}).run()
finally:
    ray.shutdown()
"""


def test_ray_executor_on_a_local_cluster_matches_apply(corpus, tmp_path):
    pytest.importorskip("ray")
    vocab, inputs, expected = corpus
    code = RAY_RUN.format(
        tests=str(Path(__file__).parent),
        inputs=str(inputs),
        out=str(tmp_path / "out"),
        vocab=str(vocab),
        logs=str(tmp_path / "logs"),
        **OPTIONS,
    )
    with open(tmp_path / "ray.log", "w") as log:  # Ray's daemons may hold inherited pipes: a file
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log, start_new_session=True)
        try:
            assert proc.wait(timeout=240) == 0, (tmp_path / "ray.log").read_text()[-3000:]
        finally:
            try:
                os.killpg(proc.pid, 9)  # any daemon ray.shutdown() left behind
            except ProcessLookupError:
                pass
    assert outputs(tmp_path / "out") == outputs(expected)
    for k in range(7):
        assert read_bytes(tmp_path / "out" / f"shard{k}") == read_bytes(expected / f"shard{k}")


def test_remote_folders_go_through_a_local_working_directory(corpus, tmp_path):
    """fsspec folders (here memory://, as s3:// would be): shards are fetched, rewritten, uploaded."""
    import fsspec

    from link_fast.integrations.datatrove import LinkShards

    vocab, inputs, expected = corpus
    memory = fsspec.filesystem("memory")
    for path in inputs.iterdir():
        memory.pipe(f"/link_in/{path.name}", path.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    step = LinkShards("memory://link_in", "memory://link_out", vocab, **OPTIONS, local_working_dir=work)
    for rank in range(2):
        for _ in step.run(None, rank=rank, world_size=2):
            pass
    names = sorted(Path(p).name for p in memory.ls("/link_out", detail=False))
    assert names == outputs(expected)
    for k in range(7):
        for suffix in (".bin", ".idx"):
            assert memory.cat(f"/link_out/shard{k}{suffix}") == (expected / f"shard{k}{suffix}").read_bytes()
    assert not list(work.iterdir())  # the working directory is cleaned up
    memory.rm(["/link_in", "/link_out"], recursive=True)
