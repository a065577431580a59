"""Finding shards: which format a path names, opening and checking it, and the shards that
files, directories and globs name."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from ..io import refuse_special_file
from .base import Shard, ShardError
from .datatrove import DATATROVE_SUFFIXES, inspect_datatrove
from .megatron import MEGATRON_SUFFIXES, inspect_megatron

SHARD_SUFFIXES = MEGATRON_SUFFIXES + DATATROVE_SUFFIXES  # every file a shard NAME may have


def split_prefix(path) -> tuple[str, str | None]:
    """(prefix, format) of a path naming a shard file or prefix; format None if undetectable."""
    p = os.fspath(path)
    if os.path.isfile(p):
        for suffix in DATATROVE_SUFFIXES:
            if p.endswith(suffix):
                return p[: -len(suffix)], "datatrove"
        for suffix in MEGATRON_SUFFIXES:
            if p.endswith(suffix):
                return p[: -len(suffix)], "megatron"
    megatron = any(os.path.exists(p + s) for s in MEGATRON_SUFFIXES)
    datatrove = any(os.path.exists(p + s) for s in (".ds", ".ds.index"))
    if megatron and datatrove:
        raise ShardError(p, "both a Megatron (.bin/.idx) and a datatrove (.ds) shard have this name; name the file")
    if megatron:
        return p, "megatron"
    if datatrove:
        return p, "datatrove"
    # A file name that does not exist yet: strip a known suffix so the error names the real file.
    for suffix in DATATROVE_SUFFIXES:
        if p.endswith(suffix):
            return p[: -len(suffix)], "datatrove"
    for suffix in MEGATRON_SUFFIXES:
        if p.endswith(suffix):
            return p[: -len(suffix)], "megatron"
    return p, None


def inspect_shard(path) -> tuple[Shard | None, list[ShardError]]:
    """Open and check a shard: (the shard, or None if unreadable; every problem found).

    Raises ShardError only when there is no shard at all under that name.
    """
    prefix, fmt = split_prefix(path)
    if fmt is None:
        raise ShardError(prefix, "no shard here: none of .bin/.idx/.ds/.ds.index exists")
    for file in (prefix + suffix for suffix in SHARD_SUFFIXES):
        refuse_special_file(file, lambda problem, file=file: ShardError(file, problem))  # type: ignore[misc]
    try:
        if fmt == "megatron":
            return inspect_megatron(prefix)
        return inspect_datatrove(prefix)
    except OSError as exc:  # unreadable (permissions, I/O error): a problem, not a crash of `validate`
        return None, [ShardError(exc.filename or prefix, f"cannot read: {exc.strerror or exc}")]


def open_shard(path) -> Shard:
    """Open a shard by prefix or by any of its files, detecting the format; checks it fully.

    Raises ShardError on the first problem (missing file, bad header, inconsistent index,
    data file of the wrong size, ...).
    """
    shard, problems = inspect_shard(path)
    if problems or shard is None:
        raise problems[0]
    return shard


def _prefixes_in(paths: Sequence[str]) -> list[str]:
    """Shard prefixes named by existing files (hidden files, e.g. our temporaries, skipped)."""
    found = []
    for p in paths:
        if os.path.basename(p).startswith(".") or not os.path.isfile(p):
            continue
        for suffix in DATATROVE_SUFFIXES + MEGATRON_SUFFIXES:
            if p.endswith(suffix):
                found.append(p[: -len(suffix)])
                break
    return found


def find_shards(inputs: Sequence[str]) -> list[str]:
    """Sorted unique shard prefixes named by ``inputs``.

    Each input is a prefix, a file of a shard, a directory (its shards, not recursive) or a glob.
    Raises ShardError for an input that names no shard.
    """
    found: set[str] = set()
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            names = sorted(os.listdir(item))
            got = _prefixes_in([os.path.join(item, name) for name in names])
            if not got:
                raise ShardError(item, "no shards in this directory (no .bin/.idx/.ds files)")
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
            got = _prefixes_in(matches)
            for m in matches:
                if os.path.isdir(m):
                    got += _prefixes_in([os.path.join(m, name) for name in sorted(os.listdir(m))])
            if not got:
                raise ShardError(item, "matches no shard files")
        else:
            prefix, fmt = split_prefix(item)
            if fmt is None or not any(os.path.exists(prefix + s) for s in DATATROVE_SUFFIXES + MEGATRON_SUFFIXES):
                raise ShardError(item, "no shard here: not a directory, and none of .bin/.idx/.ds/.ds.index exists")
            got = [prefix]
        found.update(got)
    return sorted(found)
