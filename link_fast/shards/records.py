"""link-fast's own outputs: the run record ``NAME.link.json`` next to an output, the masks it
names, and ``validate_shard``, which checks a shard and its place among them."""

from __future__ import annotations

import json
import os
from typing import cast

import numpy as np

from .base import CHECK_BLOCK, Shard, ShardError
from .discovery import inspect_shard, split_prefix

LINK_RECORD_SUFFIX = ".link.json"  # NAME.link.json: the record of a finished `link-fast apply` output


def validate_shard(path) -> list[str]:
    """Every problem found in the shard (``"FILE: problem"``), [] if it is valid.

    Raises ShardError only if there is no shard at all under that name.
    """
    shard, problems = inspect_shard(path)
    if shard is not None:
        try:
            problems = _check_against_records(shard)
        finally:
            shard.close()
    return [str(p) for p in problems]


def read_link_record(prefix) -> dict | None:
    """The record ``PREFIX.link.json`` that ``link-fast apply`` writes next to an output, or None."""
    try:
        with open(os.fspath(prefix) + LINK_RECORD_SUFFIX, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def recorded_mask(record: dict, name: str) -> str | None:
    """The name of the mask shard that the record of output ``name`` describes; None: no mask."""
    if "mask_shard" in record:
        return record["mask_shard"] if isinstance(record["mask_shard"], str) else None
    # a record of an earlier link-fast, without "mask_shard": its mask is NAME_mask, among its outputs
    outputs = cast(list, record.get("outputs")) if isinstance(record.get("outputs"), list) else []
    if record.get("mask") is True and any(os.path.basename(str(p)).startswith(f"{name}_mask.") for p in outputs):
        return f"{name}_mask"
    return None


def mask_owner(prefix) -> str | None:
    """The prefix of the output whose record names the shard ``prefix`` as its mask, or None.
    ``X_mask`` is a mask written by link-fast when ``X.link.json`` next to it says so."""
    prefix = os.fspath(prefix)
    name = os.path.basename(prefix)
    if not name.endswith("_mask") or name == "_mask":
        return None
    owner = prefix[: -len("_mask")]
    record = read_link_record(owner)
    if record is None or recorded_mask(record, os.path.basename(owner)) != name:
        return None
    return owner


def _check_against_records(shard: Shard) -> list[ShardError]:
    """A valid shard's problems with the link-fast records next to it: a mask whose sequences
    are not its data shard's, a ``X_mask`` that ``X.link.json`` does not list (left over from an
    earlier run), a mask a record lists that is missing."""
    problems = []
    record = read_link_record(shard.prefix)
    if record is not None:
        mask = recorded_mask(record, shard.name)
        if mask is not None and split_prefix(os.path.join(os.path.dirname(shard.prefix), mask))[1] is None:
            problems.append(ShardError(shard.prefix + LINK_RECORD_SUFFIX, f"lists the mask {mask}, which is missing"))
    if not shard.name.endswith("_mask") or shard.name == "_mask":
        return problems
    owner = shard.prefix[: -len("_mask")]
    owner_name = os.path.basename(owner)
    owner_record = read_link_record(owner)
    if owner_record is None:
        return problems
    if recorded_mask(owner_record, owner_name) == shard.name:
        return problems + _compare_mask(shard, owner)
    if record is None:
        problems.append(
            ShardError(
                shard.paths[1],
                f"named as the mask of {owner_name}, but {owner_name}"
                f"{LINK_RECORD_SUFFIX} lists no such mask: "
                "left over from an earlier run?",
            )
        )
    return problems


def _compare_mask(mask: Shard, owner: str) -> list[ShardError]:
    """A mask must have its data shard's sequences: same count, same lengths, same documents."""
    where, owner_name = mask.paths[1], os.path.basename(owner)
    problems = []
    if mask.dtype != np.dtype(np.uint8):
        problems.append(ShardError(where, f"a mask of {mask.dtype}, not uint8"))
    try:
        data, data_problems = inspect_shard(owner)
    except ShardError:
        return problems + [ShardError(where, f"the mask of {owner_name}, which is missing")]
    if data is None:
        return problems + [ShardError(where, f"cannot be checked against its data shard: {data_problems[0]}")]
    try:
        if data.n_sequences != mask.n_sequences:
            return problems + [
                ShardError(where, f"{mask.n_sequences} sequences, its data shard {owner_name} has {data.n_sequences}")
            ]
        for a in range(0, mask.n_sequences, CHECK_BLOCK):
            got = np.asarray(mask.sizes[a : a + CHECK_BLOCK], dtype=np.int64)
            want = np.asarray(data.sizes[a : a + CHECK_BLOCK], dtype=np.int64)
            wrong = np.flatnonzero(got != want)
            if len(wrong):
                i = int(wrong[0])
                return problems + [
                    ShardError(
                        where,
                        f"sequence {a + i} has {int(got[i])} tokens, {int(want[i])} in its data shard {owner_name}",
                    )
                ]
        if not np.array_equal(mask.document_indices, data.document_indices):
            problems.append(ShardError(where, f"document_indices differ from its data shard {owner_name}'s"))
    finally:
        data.close()
    return problems
