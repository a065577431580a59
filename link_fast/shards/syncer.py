"""The background fsync of a file being written: data is flushed to disk as it accumulates, so
that the final fsync waits for the last stretch only, not for the whole file: the disk, not the
kernel, would otherwise bound a file-to-file rewrite."""

from __future__ import annotations

import concurrent.futures
import os
from typing import BinaryIO, cast

SYNC_EVERY_BYTES = 64 << 20  # a background fdatasync after this much new data


class BackgroundSync:
    """``fdatasync`` of ``file`` in a thread of its own, after every ``every`` new bytes."""

    def __init__(self, file: BinaryIO, every: int | None = None):
        self._file = file
        self._every = SYNC_EVERY_BYTES if every is None else every
        self._unsynced = 0
        self._syncing: concurrent.futures.Future | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def add(self, n_bytes: int) -> None:
        """Note ``n_bytes`` more written; start a sync when enough are and none is running.
        Raises the OSError of a failed earlier sync."""
        self._unsynced += n_bytes
        if self._unsynced < self._every or (self._syncing is not None and not self._syncing.done()):
            return
        if self._syncing is not None:
            self._syncing.result()
        else:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="link_fast-fdatasync")
        self._file.flush()
        self._unsynced = 0
        executor = cast(concurrent.futures.ThreadPoolExecutor, self._executor)  # made just above
        self._syncing = executor.submit(os.fdatasync, self._file.fileno())

    def finish(self, check: bool) -> None:
        """Wait for the running sync and stop the thread; ``check``: raise its OSError."""
        if self._syncing is None:
            return
        try:
            if check:
                self._syncing.result()
            else:
                concurrent.futures.wait([self._syncing])
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._syncing = None
