"""Files read through memory maps that shrink while they are read (truncated in place by someone
else): one error naming the file, never a silent death by SIGBUS.

A read of a mapped page past its file's end raises SIGBUS. While ``sigbus_caught`` is in force
(``apply`` in its process, every pool worker for its life) such a read gets zeros and is counted
(``link_fast/_mapped.pyx``); whoever reads maps checks ``MappedFiles`` before and after its work
and raises ``FileError`` for the file that is now shorter than when it was mapped, so what was
computed from the zeros is never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from . import _mapped
from .errors import FileError

_users = 0  # sigbus_caught blocks in force in this process


@contextmanager
def sigbus_caught() -> Iterator[None]:
    """While the block runs, a mapped file that shrank reads as zeros and counts a fault instead
    of ending the process. Nested blocks share the handler; the last one out puts back the one
    that was there before."""
    global _users
    if _users == 0:
        _mapped.install()
    _users += 1
    try:
        yield
    finally:
        _users -= 1
        if _users == 0:
            _mapped.uninstall()


def catch_sigbus_for_good() -> None:
    """``sigbus_caught`` for the rest of this process's life (a worker process of link_fast's)."""
    global _users
    _mapped.install()
    _users += 1


def fault_count() -> int:
    """Reads past the end of a mapped file so far in this process (see ``sigbus_caught``)."""
    return _mapped.fault_count()


def vocab_files(vocab) -> MappedFiles:
    """The file a ``Vocab`` maps, with its size when it was loaded (none for one in memory)."""
    if vocab.path is None or vocab.identity is None:
        return MappedFiles({})
    return MappedFiles({os.fspath(vocab.path): vocab.identity.size})


class MappedFiles:
    """Files a process maps, with the size each had when mapped: ``check`` names one that is
    shorter now."""

    def __init__(self, sizes: dict[str, int]):
        self.sizes = sizes

    @classmethod
    def of(cls, paths: Iterable[str | os.PathLike]) -> MappedFiles:
        """The files at ``paths`` as they are now (missing ones left out)."""
        sizes = {}
        for path in paths:
            try:
                sizes[os.fspath(path)] = os.stat(path).st_size
            except OSError:
                continue
        return cls(sizes)

    def __add__(self, other: MappedFiles) -> MappedFiles:
        return MappedFiles({**self.sizes, **other.sizes})

    def check(self, faults_before: int | None = None) -> None:
        """Raise ``FileError`` for the first file shorter than when it was mapped; with
        ``faults_before`` (``fault_count()`` when the work began), also when a read past a file's
        end happened since, though no file is found shorter now (then all are named)."""
        for path, size in self.sizes.items():
            try:
                now = os.stat(path).st_size
            except OSError:
                continue  # removed: its mapping stays whole
            if now < size:
                raise FileError(path, f"truncated while being read ({now:,} bytes, {size:,} when opened)")
        if faults_before is not None and fault_count() != faults_before:
            raise FileError(", ".join(self.sizes), "one of these files shrank while being read")
