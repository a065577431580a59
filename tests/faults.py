"""Crashes at known points of `link-fast apply`, injected from outside link_fast.

As a script: ``python tests/faults.py FAULT ARGS...`` runs ``link-fast ARGS...`` with the
process killed by SIGKILL at ``FAULT``:

- ``after-chunks=N``: once the parent has accounted N chunks (over all shards);
- ``commit=after-data``: inside the commit of an output, once its data files are in place;
- ``commit=before-record``: inside the commit, just before its record is put in place.

From other code (a datatrove pipeline run with ``python -c``): ``install("after-chunks=9")``.
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_chunks(n: int) -> None:
    from link_fast.runner import rewrite

    account_chunk, count = rewrite.account_chunk, [0]

    def accounting(*args, **kwargs):
        tokens = account_chunk(*args, **kwargs)
        count[0] += 1
        if count[0] >= n:
            _die()
        return tokens

    rewrite.account_chunk = accounting


def kill_in_commit(where: str) -> None:
    from link_fast.shards import LINK_RECORD_SUFFIX, ShardWriter

    if where == "after-data":  # the data writer commits first, then the mask's
        commit = ShardWriter.commit

        def committing(self):
            finals = commit(self)
            _die()
            return finals

        ShardWriter.commit = committing
    elif where == "before-record":
        replace = os.replace

        def replacing(src, dst, *args, **kwargs):
            if os.fspath(dst).endswith(LINK_RECORD_SUFFIX):
                _die()
            return replace(src, dst, *args, **kwargs)

        os.replace = replacing
    else:
        raise ValueError(f"unknown commit fault {where!r}")


def install(fault: str) -> None:
    kind, _, value = fault.partition("=")
    if kind == "after-chunks":
        kill_after_chunks(int(value))
    elif kind == "commit":
        kill_in_commit(value)
    else:
        raise ValueError(f"unknown fault {fault!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    from link_fast.cli import main

    sys.exit(main(sys.argv[2:]))
