"""Worker processes that cannot hang a run: the pool of ``apply``, ``text`` and the compiler.

``multiprocessing.Pool`` replaces a worker that dies (the OOM killer's SIGKILL, a crash in
native code) without a word, and the task that worker held never completes: the parent waits
for it forever. ``Pool`` is a ``concurrent.futures.ProcessPoolExecutor`` instead: when a worker
dies, every pending task fails at once and the executor kills the other workers; ``result``
turns that into ``WorkerDied``, which says how the worker died and which task it held (each
worker notes its current task in a small shared array), for the caller to name the file and
the part of it. The caller then stops the pool (``stop``) and removes its temporary files.

Workers ignore SIGINT: a Ctrl-C, which the terminal sends to the whole foreground process
group, reaches only the parent, which stops them, instead of every worker printing a traceback.
A worker whose parent is gone (SIGKILL) exits within a second instead of waiting on its queue.

A spawned worker starts by running the main script again as ``__mp_main__`` (multiprocessing's
spawn and forkserver methods): a script that starts workers outside ``if __name__ ==
"__main__":`` would start them again in each worker, where multiprocessing refuses with a
traceback per worker. ``check_workers_can_start`` catches that in the worker, which leaves
with ``RERUN_MAIN_STATUS``, and the parent's pool turns it into ``WorkersCannotStart``: one line
that names the guard. A script read from standard input cannot be run again at all: refused
in the parent before any worker starts.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from types import FrameType
from typing import cast

from .errors import LinkFastError

_SIGINT = {signal.SIGINT}
WATCH_SECONDS = 1.0  # how often the parent, waiting for a result, checks that every worker lives
# A worker's slot holds its task while it runs, then SENDING - task until the next one starts
# (-1: none yet): a worker killed while sending a large result is named with that task.
SENDING = -2
STUCK_READER_SECONDS = 10.0  # the most stop() waits for the executor's thread once its pipe is closed
RERUN_MAIN_STATUS = 3  # a worker's exit status: it was running the main script again, which starts workers


class WorkerDied(LinkFastError):
    """A worker process ended abruptly. ``task``: the id of the task it was running (None: it
    held none, or it is not known); ``how``: e.g. 'killed by SIGKILL, perhaps out of memory'."""

    def __init__(self, how: str, task: int | None = None, problem: str | None = None):
        self.how = how
        self.task = task
        super().__init__(problem or f"a worker process died ({how})")


class WorkersCannotStart(LinkFastError):
    """Spawned worker processes cannot start from this main script: it starts workers at its top
    level, which each worker runs again, or it is not a file that they could run."""


def _main_script() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", None) or getattr(main, "__file__", None) or "the main script"


def _rerunning_main() -> bool:
    """Whether this process is running the main script again as a spawned worker starts (the
    script's top level, named ``__mp_main__``): the unguarded case, as a guard skips that code."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back
    return False


def check_workers_can_start(workers: int) -> None:
    """Call before anything else where ``workers`` spawned processes are about to be started.
    In a worker running an unguarded main script again, leave at once, quietly: the parent's
    pool says why (``WorkersCannotStart``), once. In the parent, refuse a main script that no
    worker could run again (read from standard input)."""
    if workers <= 1:
        return
    if _rerunning_main():
        os._exit(RERUN_MAIN_STATUS)
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is None and isinstance(path, str):
        import multiprocessing.process as mp_process

        # where multiprocessing looks for it: relative to the folder the program started in
        if not os.path.isfile(os.path.join(getattr(mp_process, "ORIGINAL_DIR", None) or "", path)):
            raise WorkersCannotStart(
                f"{path}: worker processes start by running the main script again, and this one is not "
                f"a file (read from standard input?): save it as a file, or use one worker"
            )


def _unguarded_main() -> WorkersCannotStart:
    return WorkersCannotStart(
        f"{_main_script()}: each worker process runs this script again as it starts, and its top level "
        f'starts workers: put the code that starts them under `if __name__ == "__main__":`'
    )


# -- worker side -----------------------------------------------------------------------------------

_STATE: dict = {}  # "slots": the shared array, "slot": this worker's index in it, "error": of the initializer


def _start(slots, lock, parent: int, initializer, initargs) -> None:
    # The parent spawned this process with SIGINT blocked (``Pool.submit``), so a Ctrl-C during
    # start-up is pending, not fatal; ignoring SIGINT discards it, then it can be unblocked.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)
    _STATE.clear()
    with lock:
        for i in range(0, len(slots), 2):
            if slots[i] == 0:
                slots[i], slots[i + 1] = os.getpid(), -1
                _STATE.update(slots=slots, slot=i)
                break
    threading.Thread(target=_watch_parent, args=(parent,), name="link_fast-parent-watch", daemon=True).start()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as exc:  # noqa: BLE001 - raised again by each task, to reach the parent whole
            # an exception escaping an executor's initializer is logged with its traceback and
            # the worker leaves, which reads as a death: keep it for the tasks to raise instead
            _STATE["error"] = exc


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:  # the parent died: nobody reads this worker's results
            os._exit(1)


def _call(task: int, fn, args: tuple):
    error = _STATE.get("error")
    if error is not None:
        raise error
    slots = _STATE.get("slots")
    if slots is not None:
        slots[_STATE["slot"] + 1] = task
    try:
        return fn(*args)
    finally:
        if slots is not None:  # done: its result is being sent (the parent tells whether it came)
            slots[_STATE["slot"] + 1] = SENDING - task


# -- parent side -----------------------------------------------------------------------------------


@contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread: a worker started meanwhile inherits the mask (``_start``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def _sigint_ignored():
    """No KeyboardInterrupt while the workers are being stopped: a second Ctrl-C must not leave
    them running. Only the main thread can change a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "for an unknown reason"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (", perhaps out of memory" if -exitcode == signal.SIGKILL else "")
    return f"exit status {exitcode}"


class Pool:
    """``workers`` processes (started with ``context``), each running ``initializer(*initargs)``
    once. ``submit(task, fn, *args)``, where ``task`` is an int naming the work for errors;
    ``result(future)`` waits and raises ``WorkerDied`` if a worker died; ``close()`` after the
    last result; ``stop()`` on any error or interrupt: it kills the workers and waits for them."""

    def __init__(self, workers: int, initializer=None, initargs: tuple = (), context: str = "spawn"):
        if context != "fork":  # spawn and forkserver workers run the main script again
            check_workers_can_start(workers)
        ctx = mp.get_context(context)
        self.workers = workers
        self._slots = ctx.RawArray("q", 2 * workers)  # per worker: pid (0: free), task (-1: none)
        self._processes: dict[int, mp.process.BaseProcess] = {}
        self._executor = concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=ctx,
            initializer=_start,
            initargs=(self._slots, ctx.Lock(), os.getpid(), initializer, initargs),
        )
        self._closed = False
        self._unclaimed: dict[concurrent.futures.Future, int] = {}  # future -> task, until its result is taken

    def submit(self, task: int, fn, *args) -> concurrent.futures.Future:
        with _sigint_blocked():  # a worker may be started here
            try:
                future = self._executor.submit(_call, task, fn, args)
            except BrokenProcessPool:
                raise self._death() from None
        self._unclaimed[future] = task
        if len(self._processes) < self.workers:  # kept: shutting the executor down forgets them
            self._processes.update(getattr(self._executor, "_processes", None) or {})
        return future

    def result(self, future: concurrent.futures.Future):
        while True:
            try:
                result = future.result(timeout=WATCH_SECONDS)
                self._unclaimed.pop(future, None)
                return result
            except BrokenProcessPool:
                raise self._death() from None
            except concurrent.futures.TimeoutError:
                # The executor misses a worker killed while it was sending a result: its
                # thread then waits for the rest of that message forever. Not this pool.
                if self._any_ended():
                    raise self._death() from None

    def _any_ended(self) -> bool:
        self._processes.update(getattr(self._executor, "_processes", None) or {})
        return any(process.exitcode is not None for process in self._processes.values())

    def _death(self) -> LinkFastError:
        """Why the pool broke: the executor has failed every task and is killing the other
        workers; once they are gone, the one that did not end by that SIGTERM is the culprit
        (``WorkersCannotStart`` where a worker left because the main script starts workers)."""
        self._processes.update(getattr(self._executor, "_processes", None) or {})
        self.stop()
        ended = [p for p in self._processes.values() if p.exitcode is not None]
        if any(p.exitcode == RERUN_MAIN_STATUS for p in ended):
            return _unguarded_main()
        culprits = [p for p in ended if p.exitcode != -signal.SIGTERM] or ended
        tasks = {int(self._slots[i]): self._held(int(self._slots[i + 1])) for i in range(0, len(self._slots), 2)}
        held = sorted((tasks.get(cast(int, p.pid), -1), p.exitcode) for p in culprits)  # ended: started, has a pid
        running = [(task, code) for task, code in held if task >= 0]
        if running:
            return WorkerDied(describe_exit(running[0][1]), running[0][0])
        return WorkerDied(describe_exit(held[0][1]) if held else "for an unknown reason")

    def _held(self, slot: int) -> int:
        """The task a worker's slot shows it held: the one it ran, or the one whose result it
        was sending if that result never came; -1 if none."""
        if slot > SENDING:
            return slot
        task = SENDING - slot
        future = next((f for f, t in self._unclaimed.items() if t == task), None)  # only when a worker died
        delivered = future is not None and future.done() and not future.cancelled() and future.exception() is None
        return -1 if future is None or delivered else task

    def close(self) -> None:
        """Let the workers finish and leave (every task's result has been taken)."""
        if not self._closed:
            self._closed = True
            with _sigint_ignored():
                self._executor.shutdown(wait=True)

    def stop(self) -> None:
        """Kill the workers and wait until they are gone: after it, no task writes anything."""
        if self._closed:
            return
        self._closed = True
        with _sigint_ignored():
            self._processes.update(getattr(self._executor, "_processes", None) or {})
            # shutdown(wait=False) forgets the executor's thread: join it here, as it also reaps
            # the workers (their exit codes are only all known once it is gone)
            manager = getattr(self._executor, "_executor_manager_thread", None)
            results = getattr(self._executor, "_result_queue", None)  # shutdown forgets it
            self._executor.shutdown(wait=False, cancel_futures=True)
            for process in self._processes.values():
                if process.exitcode is None:
                    try:
                        process.terminate()
                    except (OSError, ValueError):  # gone already, or closed
                        pass
            for process in self._processes.values():
                try:
                    process.join()
                except (AssertionError, ValueError):  # not started by us, or closed
                    pass
            if manager is not None:
                manager.join(timeout=WATCH_SECONDS)
                if manager.is_alive():
                    # It is reading a result that a killed worker left half-sent. The workers
                    # are gone: once this end of the pipe closes too, that read ends.
                    writer = getattr(results, "_writer", None)
                    if writer is not None:
                        writer.close()
                    manager.join(timeout=STUCK_READER_SECONDS)  # bounded, should Python's internals differ
            self._executor.shutdown(wait=True)
