"""Worker processes that die or are interrupted (link_fast/pool.py), through real subprocesses:
a worker killed with SIGKILL (the OOM killer) or crashing fails the run within seconds, naming
the shard (or file) and the chunk, stops the other workers and leaves no temporary file;
--resume then finishes the job; Ctrl-C ends with status 130 and one line.

Faults are injected from outside: a kill from this test, or a wrapper script that the
spawned workers import as their ``__main__`` and that patches a function in them."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_runner import random_vocab, write_shard

from link_fast.errors import InputError
from link_fast.pool import Pool, WorkerDied
from link_fast.runner import chunk_bounds
from link_fast.shards import open_shard

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds workers through /proc")

EXIT_WITHIN = 15  # seconds from the fault to the parent's exit
APPLY = ["--ratio", "0.4", "--workers", "2", "--chunk-tokens", "5000", "-q"]


def _sleep_or_die(n: int, die_at: int) -> int:
    if n == die_at:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.02)
    return n


def _refuse_to_start():
    raise InputError("this worker cannot start")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_pool_names_the_task_of_a_dead_worker(context):
    """The compiler's pool forks, the others spawn: either way a dead worker fails the pool
    at once, with the task it held, and the other worker is stopped."""
    pool = Pool(2, context=context)
    futures = [pool.submit(i, _sleep_or_die, i, 5) for i in range(40)]
    started = time.monotonic()
    with pytest.raises(WorkerDied) as died:
        for future in futures:
            pool.result(future)
    assert time.monotonic() - started < EXIT_WITHIN
    assert died.value.task == 5 and died.value.how == "killed by SIGKILL, perhaps out of memory"
    assert str(died.value) == "a worker process died (killed by SIGKILL, perhaps out of memory)"
    pool.stop()  # done already by result(): does nothing


def _send_then_die(size: int, cut: int) -> bytes:
    """Runs in a worker: returns ``size`` bytes, and the worker dies by SIGKILL once ``cut``
    bytes of that result are in the pipe to the parent (0: its header only): a death mid-send,
    at a moment no timer decides. The message's header and payload are separate writes."""
    from multiprocessing.connection import Connection

    send = Connection._send

    def send_then_die(self, buf, *args):
        if len(buf) >= size:  # the payload that carries the result
            send(self, memoryview(buf)[:cut], *args)
            os.kill(os.getpid(), signal.SIGKILL)
        send(self, buf, *args)

    Connection._send = send_then_die
    return b"x" * size


@pytest.mark.parametrize("cut", [0, 1 << 20])
def test_pool_names_the_task_of_a_worker_killed_while_sending_its_result(cut):
    """A worker killed halfway through sending a large result (text mode's chunks are MBs)
    leaves the executor's reader waiting for the rest forever: the pool notices the death
    itself, within seconds, stops, and names the task whose result never came."""
    # the hang this guards against would hang the suite: end the process with a traceback instead
    faulthandler.dump_traceback_later(4 * EXIT_WITHIN, exit=True)
    try:
        pool = Pool(2)
        started = time.monotonic()
        with pytest.raises(WorkerDied) as died:
            pool.result(pool.submit(7, _send_then_die, 4 << 20, cut))
        assert died.value.how == "killed by SIGKILL, perhaps out of memory" and died.value.task == 7
        assert time.monotonic() - started < EXIT_WITHIN
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_pool_initializer_error_reaches_the_parent_whole():
    pool = Pool(2, initializer=_refuse_to_start, context="fork")
    try:
        with pytest.raises(InputError, match="this worker cannot start"):
            pool.result(pool.submit(0, _sleep_or_die, 0, -1))
    finally:
        pool.stop()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _workers(pid: int) -> list[int]:
    """The pool's workers among the children of ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_until(condition, proc, timeout=60.0, what="the run to start"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.returncode}, {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _published(out: Path, name: str) -> float:
    """The fraction of the shard's chunks whose sizes the workers have published (apply's
    shared sizes file), 0 before it exists."""
    for path in out.glob(f".{name}.sizes.tmp-*"):
        try:
            sizes = np.fromfile(path, dtype="<i8")
        except (OSError, ValueError):
            return 0.0
        return float(np.mean(sizes >= 0)) if len(sizes) else 0.0
    return 0.0


def _finish(proc, timeout=EXIT_WITHIN) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the parent did not exit within {timeout} s of the fault: it hangs")
    return proc.returncode, err


def _start(args, **kwargs):
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".")) if out.exists() else []


@pytest.fixture(scope="module")
def big_shard(tmp_path_factory):
    """A vocabulary and a shard of about 8M tokens: 1600 chunks of 5000, some seconds with 2 workers."""
    root = tmp_path_factory.mktemp("workers")
    vocab = random_vocab().save(root / "v.lfv")
    write_shard(root / "in" / "big", n_docs=40_000, seed=11)
    reference = subprocess.run(
        [
            sys.executable,
            "-m",
            "link_fast",
            "apply",
            "--vocab",
            str(vocab),
            str(root / "in"),
            "-o",
            str(root / "reference"),
            "--ratio",
            "0.4",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr
    return vocab, root / "in", root / "reference"


def test_sigkill_of_a_worker_fails_apply_quickly_then_resume_finishes(big_shard, tmp_path):
    vocab, inputs, reference = big_shard
    out = tmp_path / "out"
    command = ["-m", "link_fast", "apply", "--vocab", vocab, inputs, "-o", out, *APPLY]
    proc = _start(command)
    workers = _wait_until(lambda: len(_workers(proc.pid)) == 2 and _workers(proc.pid), proc)
    _wait_until(lambda: _published(out, "big") > 0.1, proc, what="a tenth of the chunks")
    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    code, err = _finish(proc)
    assert time.monotonic() - killed < EXIT_WITHIN
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("link-fast: error: ") and "big.bin: a worker process died (killed by SIGKILL" in err, err
    assert " while rewriting sequences " in err and " (chunk " in err, err
    assert not any(_alive(w) for w in workers), "a worker outlived the run"
    assert _hidden(out) == []  # no temporary file left
    assert not (out / "big.link.json").exists() and not (out / "big.bin").exists()
    resumed = subprocess.run(
        [sys.executable, *map(str, command), "--resume"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    for name in ("big.bin", "big.idx"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert _hidden(out) == []


CRASH_WRAPPER = """
import ctypes, multiprocessing, os, sys
from link_fast.runner.chunks import WorkerState

# Imported as __mp_main__ by every spawned worker too: there, chunks from sequence CRASH_AT on
# crash the process with SIGSEGV, as a bug in native code would.
CRASH_AT = int(os.environ["TEST_CRASH_AT_SEQUENCE"])
substitute = WorkerState.substitute

def crashing(self, prefix, start, stop, options):
    if multiprocessing.parent_process() is not None and start <= CRASH_AT < stop:
        ctypes.string_at(0)
    return substitute(self, prefix, start, stop, options)

WorkerState.substitute = crashing

if __name__ == "__main__":
    from link_fast.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def test_a_crashing_worker_fails_apply_naming_its_chunk(big_shard, tmp_path):
    vocab, inputs, _ = big_shard
    wrapper = tmp_path / "crash_wrapper.py"
    wrapper.write_text(CRASH_WRAPPER)
    out = tmp_path / "out"
    started = time.monotonic()
    proc = _start(
        [wrapper, "apply", "--vocab", vocab, inputs, "-o", out, *APPLY],
        env=dict(os.environ, TEST_CRASH_AT_SEQUENCE="5000"),
    )
    code, err = _finish(proc, timeout=60)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    # the chunk of sequence 5000, exactly: each worker notes the chunk it holds
    with open_shard(inputs / "big") as shard:
        bounds = chunk_bounds(np.asarray(shard.sizes), 5000)
    index = int(np.searchsorted(bounds, 5000, side="right")) - 1
    expected = (
        f"a worker process died (killed by SIGSEGV) while rewriting sequences {bounds[index]}.."
        f"{bounds[index + 1] - 1} (chunk {index + 1} of {len(bounds) - 1})"
    )
    assert expected in err, err
    assert _hidden(out) == [] and not (out / "big.link.json").exists()
    assert time.monotonic() - started < 60


def test_sigint_ends_apply_with_130_and_one_line(big_shard, tmp_path):
    vocab, inputs, _ = big_shard
    out = tmp_path / "out"
    proc = _start(["-m", "link_fast", "apply", "--vocab", vocab, inputs, "-o", out, *APPLY])
    workers = _wait_until(lambda: len(_workers(proc.pid)) == 2 and _workers(proc.pid), proc)
    _wait_until(lambda: _published(out, "big") > 0.1, proc, what="a tenth of the chunks")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    code, err = _finish(proc)
    assert code == 130 and err == "link-fast: interrupted\n", (code, err)
    assert not any(_alive(w) for w in workers)
    assert _hidden(out) == [] and not (out / "big.link.json").exists()


@pytest.fixture(scope="module")
def big_text(tmp_path_factory):
    from test_text import _jsonl, _records, synthetic_vocab

    root = tmp_path_factory.mktemp("text_workers")
    vocab = synthetic_vocab().save(root / "v.lfv")
    records = _records(2000)
    src = root / "corpus.jsonl"
    src.write_bytes(_jsonl(records * 60))  # 120,000 lines, 120 chunks
    return vocab, src


@pytest.mark.parametrize("fault", ["sigkill", "sigint"])
def test_text_workers_killed_or_interrupted(big_text, tmp_path, fault):
    vocab, src = big_text
    out = tmp_path / "out"
    proc = _start(["-m", "link_fast", "text", "--vocab", vocab, "--ratio", "0.5", "--workers", "2", src, "-o", out])
    workers = _wait_until(lambda: len(_workers(proc.pid)) == 2 and _workers(proc.pid), proc)
    # started: the output's temporary file holds some chunks
    _wait_until(
        lambda: any(p.stat().st_size > 0 for p in out.glob(".*.tmp-*")) if out.exists() else False,
        proc,
        what="the first chunks",
        timeout=120,
    )
    if fault == "sigkill":
        os.kill(workers[1], signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    code, err = _finish(proc)
    if fault == "sigkill":
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (code, err)
        assert f"{src}: a worker process died (killed by SIGKILL" in err and "while rewriting lines " in err, err
    else:
        assert code == 130 and err == "link-fast: interrupted\n", (code, err)
    assert not any(_alive(w) for w in workers)
    assert not out.exists() or list(out.iterdir()) == []


DATATROVE_RUN = """
import ctypes, multiprocessing, os, sys
from link_fast.runner.chunks import WorkerState

substitute = WorkerState.substitute

def crashing(self, prefix, start, stop, options):  # workers only, as in CRASH_WRAPPER
    if multiprocessing.parent_process() is not None and start <= 3000 < stop:
        ctypes.string_at(0)
    return substitute(self, prefix, start, stop, options)

WorkerState.substitute = crashing

if __name__ == "__main__":
    from datatrove.executor import LocalPipelineExecutor
    from link_fast.integrations.datatrove import LinkShards
    LocalPipelineExecutor([LinkShards({inputs!r}, {out!r}, {vocab!r}, ratio=0.4, workers=2, chunk_tokens=5000)],
                          tasks=1, workers=1, logging_dir={logs!r}).run()
"""


def test_datatrove_step_fails_when_a_worker_crashes(big_shard, tmp_path):
    pytest.importorskip("datatrove")
    vocab, inputs, _ = big_shard
    script = tmp_path / "dt_run.py"
    script.write_text(
        DATATROVE_RUN.format(
            inputs=str(inputs), out=str(tmp_path / "out"), vocab=str(vocab), logs=str(tmp_path / "logs")
        )
    )
    proc = _start([script])
    code, err = _finish(proc, timeout=60)
    assert code != 0 and "a worker process died (killed by SIGSEGV) while rewriting sequences" in err, err[-3000:]
    assert _hidden(tmp_path / "out") == [] and not (tmp_path / "out" / "big.link.json").exists()
