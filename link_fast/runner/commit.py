"""Putting one output in place, all its files together (``commit_output``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import fsync_dir, json_bytes, open_exclusive, refuse_link, replace_into, temporary_path
from ..shards import LINK_RECORD_SUFFIX, ShardError


def commit_output(paths: dict, writers: list, record: dict) -> None:
    """Put one output in place, all its files together. Every file is complete and synced under
    a temporary name (``ShardWriter.prepare``) before the first final name changes; then:

    1. the new record is written, synced, under a temporary name;
    2. the old record is removed, durably: from here until 5. the output is not finished,
       whatever a crash or a full disk leaves, so resume redoes it;
    3. the data files, then the mask's, are renamed into place (each index last);
    4. files of the same name the new output does not have are removed (``NAME_mask`` of an
       earlier ``--mask`` run, the other format's files), so none is read as part of it;
    5. the record is renamed into place: only now does the output look finished.
    """
    record_path = paths["stats"]
    directory = str(record_path.parent)
    for final in [record_path, *(Path(p) for writer in writers for p in writer.finals)]:
        refuse_link(final)  # before the first final name changes
    temp = temporary_path(record_path)
    path = temp
    try:
        with open_exclusive(temp) as f:
            f.write(json_bytes(record))
            f.flush()
            os.fsync(f.fileno())
        path = record_path
        if os.path.lexists(record_path):
            os.unlink(record_path)
            fsync_dir(directory)
        for writer in writers:
            writer.commit()
        _remove_stale(paths, record)
        replace_into(temp, record_path)
        fsync_dir(directory)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ShardError(path, f"cannot write: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove_stale(paths: dict, record: dict) -> None:
    """Step 4: remove the files of this output's names that it does not write, except a mask
    another output's record owns."""
    record_path = paths["stats"]
    keep = {Path(p).name for p in record["outputs"]}
    mask_stem = paths["mask"].name
    mask_owned_elsewhere = (
        record["mask_shard"] is None and (record_path.parent / f"{mask_stem}{LINK_RECORD_SUFFIX}").exists()
    )
    for path in paths["stale"]:
        if path.name in keep or (mask_owned_elsewhere and path.name.startswith(f"{mask_stem}.")):
            continue
        try:
            if os.path.lexists(path):
                os.unlink(path)
        except OSError as exc:
            raise ShardError(path, f"cannot write: {exc.strerror or exc}") from None
