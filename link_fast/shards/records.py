"""link-fast's own outputs: the run record ``NAME.link.json`` next to an output, the masks it
names, and ``validate_shard``, which checks a shard and its place among them.

A record is untrusted input like any file (anyone may edit it): ``load_record`` is the one way
every reader (inspect, report, resume, validate, apply over an earlier output) reads one, for
``apply`` and ``text`` records alike.

A record travels with its output folder: since version 2 (``record_version``) the paths it holds
are relative to its own folder, and ``folder`` is where it was written, so that a path is looked
for from where the record is now, then from where it was (``recorded_paths``): a folder moved
with its inputs, or moved alone, or read from anywhere, finds them. Records of version 1 (no
``record_version``: paths as the run named them, relative to the folder it ran in) are read in
version 2's layout (``_from_version_1``).
"""

from __future__ import annotations

import functools
import json
import math
import os
from typing import Any, NamedTuple, cast

import numpy as np

from ..errors import FileError
from ..io import open_regular
from .base import CHECK_BLOCK, Shard, ShardError
from .discovery import inspect_shard, split_prefix

LINK_RECORD_SUFFIX = ".link.json"  # NAME.link.json: the record of a finished `link-fast apply` output
# A record is a few KB (a text record lists at most 100 skipped lines) and nests 4 levels deep;
# anything far beyond is not a record, and deep nesting would overflow the readers' recursion.
MAX_RECORD_BYTES = 16 << 20
MAX_RECORD_DEPTH = 16
RECORD_VERSION = 2  # 2: paths relative to the record's folder, and "folder"
PATH_FIELDS = ("inputs", "outputs", "vocab_path", "input", "output")  # "input" of apply is the input's identity


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
    """The record ``PREFIX.link.json`` that ``link-fast apply`` writes next to an output, or None
    when there is none; a record that is there but is not one raises ``FileError``."""
    path = os.fspath(prefix) + LINK_RECORD_SUFFIX
    if not os.path.lexists(path):
        return None
    return load_record(path)


def load_record(path) -> dict:
    """A run record (``apply``'s or ``text``'s), read and checked: a JSON object of at most
    ``MAX_RECORD_BYTES`` and ``MAX_RECORD_DEPTH`` levels, numbers finite, every field a reader
    uses of its type (``check_record``). Anything else raises ``FileError`` naming the file."""
    try:
        with open_regular(path, lambda problem: FileError(path, problem)) as f:
            data = f.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        raise FileError(path, "no such file") from None
    except OSError as exc:
        raise FileError(path, f"cannot read the run record: {exc.strerror or exc}") from None
    if len(data) > MAX_RECORD_BYTES:
        raise FileError(path, f"not a valid link-fast run record: over {MAX_RECORD_BYTES >> 20} MB")
    try:
        record = json.loads(data.decode("utf-8"), parse_constant=_not_finite, parse_float=_finite_float)
    except RecursionError:
        raise FileError(path, "not a valid link-fast run record: JSON nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError included
        raise FileError(path, f"not a valid link-fast run record: {exc}") from None
    if _depth(record) > MAX_RECORD_DEPTH:
        raise FileError(path, f"not a valid link-fast run record: JSON nested over {MAX_RECORD_DEPTH} levels")
    problem = check_record(record)
    if problem is not None:
        raise FileError(path, f"not a valid link-fast run record: {problem}")
    version = record.get("record_version", 1)
    if version > RECORD_VERSION:
        raise FileError(path, f"a run record of version {version}, written by a newer link-fast: upgrade link-fast")
    return record if version == RECORD_VERSION else _from_version_1(record, path)


def relocatable(record: dict, record_path) -> dict:
    """``record``, whose paths name files as this process sees them, as it is written to
    ``record_path``: each path relative to the record's folder, and that folder in ``folder``."""
    folder = os.path.dirname(os.path.abspath(record_path))
    relative = _map_paths(record, lambda path: _relative(os.path.abspath(path), folder))
    return dict(record, **relative, record_version=RECORD_VERSION, folder=folder)


def recorded_paths(record_path, record: dict, value: str) -> list[str]:
    """Where a path that the record at ``record_path`` holds may be now, in the order to try:
    from the record's folder, then from the folder it was written in; an absolute path as it is.
    Never from the current working folder: the record's paths are not relative to it."""
    if os.path.isabs(value):
        return [value]
    folders = [os.path.dirname(os.path.abspath(record_path))]
    written_in = record.get("folder")
    if isinstance(written_in, str) and os.path.isabs(written_in):
        folders.append(written_in)
    return list(dict.fromkeys(os.path.normpath(os.path.join(folder, value)) for folder in folders))


def _relative(path: str, folder: str) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:  # another drive (Windows): no relative path
        return path


def _map_paths(record: dict, convert) -> dict:
    """The path fields of ``record``, each path converted."""
    changed: dict[str, Any] = {}
    for key in PATH_FIELDS:
        value = record.get(key)
        if isinstance(value, str):
            changed[key] = convert(value)
        elif isinstance(value, list):
            changed[key] = [convert(item) if isinstance(item, str) else item for item in value]
    return changed


def _from_version_1(record: dict, path) -> dict:
    """A record of version 1 in version 2's layout. Its relative paths are relative to the folder
    the run ran in: the folder that its own output's path, as recorded, names from where the
    record is now (``linked/x.bin`` for ``/w/linked/x.link.json``: ``/w``). When that cannot be
    told (the output's path was absolute, or does not match where the record is), the current
    working folder is the guess, and readers check that what they find there is the file the
    record means (an input's fingerprint or size, the vocabulary's fingerprint)."""
    here = os.path.dirname(os.path.abspath(path))
    named = _an_output(record)
    ran_in = _working_folder(named, here)
    written_in = os.path.dirname(os.path.normpath(os.path.join(ran_in, named))) if named is not None else here
    relative = _map_paths(record, lambda p: _relative(os.path.normpath(os.path.join(ran_in, p)), written_in))
    return dict(record, **relative, record_version=RECORD_VERSION, folder=written_in)


def _an_output(record: dict) -> str | None:
    """A path by which the record names one of its outputs (apply: ``outputs``; text: ``output``)."""
    outputs = record.get("outputs")
    named: list = cast(list, outputs) if isinstance(outputs, list) else [record.get("output")]
    return next((p for p in named if isinstance(p, str)), None)


def _working_folder(output: str | None, here: str) -> str:
    """The folder a version-1 run ran in, from the path it named its output by (relative to that
    folder) and the folder the record is in now; the current working folder when it cannot be told."""
    if output is None or os.path.isabs(output):
        return os.getcwd()
    parts = os.path.normpath(os.path.dirname(output)).split(os.sep)
    parts = [] if parts == ["."] else parts
    folder = here.split(os.sep)
    if ".." in parts or (parts and folder[-len(parts) :] != parts):
        return os.getcwd()
    return os.sep.join(folder[: len(folder) - len(parts)]) or os.sep


def _not_finite(name: str):
    raise ValueError(f"{name} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _depth(value) -> int:
    """How deeply JSON containers nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_RECORD_DEPTH:
                stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


# What each field a reader uses must be, when present (records of earlier versions lack some):
# a rule is (what it must be, test), a dict of the fields of an object, or Each(rule) for every
# item of a list or value of an object. ``type(v) is int`` because JSON's true is not a count.
Rule = Any


class Each(NamedTuple):
    container: type  # list, or dict for an object's values
    rule: Rule


COUNT = ("a count (an integer >= 0)", lambda v: type(v) is int and v >= 0)
STRING = ("a string", lambda v: type(v) is str)
STRING_OR_NULL = ("a string or null", lambda v: v is None or type(v) is str)
OBJECT = ("an object", lambda v: type(v) is dict)
RECORD_SCHEMA: dict[str, Rule] = {
    "stats": {
        **dict.fromkeys(
            (
                "documents",
                "eligible_documents",
                "words",
                "candidates",
                "eligible_candidates",
                "total_substitutions",
                "tokens_in",
                "tokens_out",
                "chars_in",
                "chars_out",
            ),
            COUNT,
        ),
        "substitutions": Each(dict, COUNT),
    },
    "config": OBJECT,
    "vocab": {
        "fingerprint": STRING,
        "languages": Each(list, STRING),
        "keys": COUNT,
        "format_version": COUNT,
        "contents": STRING,
    },
    "vocab_path": STRING_OR_NULL,
    "mask": ("true or false", lambda v: type(v) is bool),
    "mask_shard": STRING_OR_NULL,
    "out_dtype": STRING,
    "input": ("an object or a string", lambda v: type(v) in (dict, str)),  # apply: identity; text: file
    "inputs": Each(list, STRING),
    "output": STRING,
    "outputs": Each(list, STRING),
    "output_files": Each(dict, COUNT),
    "field": STRING,
    "substitutions_field": STRING_OR_NULL,
    "skipped_lines": COUNT,
    "skipped": Each(list, {"line": COUNT, "problem": STRING}),
    "input_bytes": COUNT,
    "seconds": ("a number >= 0", lambda v: type(v) in (int, float) and v >= 0),
    "memory_mb": OBJECT,
    "timing": OBJECT,
    "link_fast_version": STRING,
    "record_version": ("a version number (an integer >= 1)", lambda v: type(v) is int and v >= 1),
    "folder": STRING,
}


def check_record(record) -> str | None:
    """What is wrong with a parsed record (``stats.documents must be a count ..., not -3``), or
    None when every field ``RECORD_SCHEMA`` names is right."""
    if type(record) is not dict:
        return f"a JSON object, not {_shown(record)}"
    return _problem(record, RECORD_SCHEMA, "")


def _problem(value, rule: Rule, where: str) -> str | None:
    if isinstance(rule, dict):
        if type(value) is not dict:
            return f"{where} must be an object, not {_shown(value)}"
        for key, field_rule in rule.items():
            if key in value:
                problem = _problem(value[key], field_rule, f"{where}.{key}" if where else key)
                if problem is not None:
                    return problem
        return None
    if isinstance(rule, Each):
        if type(value) is not rule.container:
            return f"{where} must be {'a list' if rule.container is list else 'an object'}, not {_shown(value)}"
        items = value.items() if isinstance(value, dict) else enumerate(cast(list, value))
        return next(filter(None, (_problem(v, rule.rule, f"{where}[{json.dumps(k)}]") for k, v in items)), None)
    what, test = rule
    return None if test(value) else f"{where} must be {what}, not {_shown(value)}"


def _shown(value) -> str:
    text = json.dumps(value)  # ASCII: nothing a terminal would act on
    return text if len(text) <= 40 else text[:37] + "..."


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
        problems += _vocabulary_problems(record, shard.prefix + LINK_RECORD_SUFFIX)
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


def _vocabulary_problems(record: dict, record_path: str) -> list[ShardError]:
    """The vocabulary a record names must still hold what the run substituted with: the contents
    hash it recorded. One moved or removed since is not checked (an output does not need it);
    of the places the record's path may name (``recorded_paths``), one that holds it is enough."""
    vocab = record.get("vocab")
    path, contents = record.get("vocab_path"), vocab.get("contents") if isinstance(vocab, dict) else None
    if not isinstance(path, str) or contents is None:
        return []
    problems = []
    for place in (p for p in recorded_paths(record_path, record, path) if os.path.isfile(p)):
        try:
            now = _vocab_contents(place, os.stat(place).st_mtime_ns)
        except (FileError, OSError) as exc:
            problem = exc.problem if isinstance(exc, FileError) else exc.strerror
            problems.append(ShardError(record_path, f"names the vocabulary {place}, which cannot be read: {problem}"))
            continue
        if now == contents:
            return []
        problems.append(
            ShardError(
                record_path,
                f"made with the vocabulary {place} when it held {contents}; it holds {now} now (changed since the run)",
            )
        )
    return problems[:1]


@functools.lru_cache(maxsize=8)
def _vocab_contents(path: str, mtime_ns: int) -> str:
    """``Vocab.contents`` of the file at ``path`` (as of ``mtime_ns``): once for a folder of outputs."""
    from ..vocab import Vocab

    return Vocab.load(path).contents()


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
