"""What ``apply`` knows about outputs before it writes them: their paths, whether one is
finished (resume), the identity of an input and a vocabulary that records hold, and the
refusal to overwrite an input."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..shards import LINK_RECORD_SUFFIX, SHARD_SUFFIXES, ShardError, load_record
from ..vocab import Vocab

FINGERPRINT_SAMPLE = 1 << 16  # bytes at each end of a data file that the fingerprint covers


def output_paths(output_dir: Path, name: str, input_names: set[str]) -> dict:
    """The data, mask and record paths of input ``name``, and ``stale``: the files of the same
    names that committing this output removes when it does not write them (another input's data
    output named NAME_mask is not a stale mask of NAME)."""
    return {
        "data": output_dir / name,
        "mask": output_dir / f"{name}_mask",
        "stats": output_dir / f"{name}{LINK_RECORD_SUFFIX}",
        "stale": [
            output_dir / f"{stem}{suffix}"
            for suffix in SHARD_SUFFIXES
            for stem in (name, f"{name}_mask")
            if stem == name or stem not in input_names
        ],
    }


def finished(stats_path: Path, expected: dict) -> dict | None:
    """The record of a finished output, or None. Finished: the record exists, says the same
    as ``expected`` (options, vocabulary, mask, dtype, and the input's identity: its files'
    sizes and mtimes and a fingerprint), and every file it lists is there with its recorded size."""
    if not os.path.lexists(stats_path):
        return None
    done = load_record(stats_path)  # one that is not a record is refused: someone else wrote it
    if any(done.get(k) != v for k, v in expected.items()):
        return None
    files = done.get("output_files")
    if not isinstance(files, dict) or not files:  # a record of an earlier link-fast: nothing to verify with
        return None
    for name, size in files.items():
        try:
            if os.stat(stats_path.parent / name).st_size != size:
                return None
        except (OSError, TypeError, ValueError):
            return None
    return done


def input_identity(shard) -> dict:
    """What resume compares to tell that an input is the one an output was made from: each
    file's size and mtime, and a fingerprint: a hash of the whole index (.idx / .ds.index,
    small next to the data) and of the data file's first and last 64 KiB."""
    files, digest = {}, hashlib.sha256()
    index = shard.paths[1]  # Megatron: [.bin, .idx]; datatrove: [.ds, .ds.index, ...]
    path = index
    try:
        for path in shard.paths:
            stat = os.stat(path)
            files[os.path.basename(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        path = index
        with open(index, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        path = shard.paths[0]
        with open(path, "rb") as f:
            digest.update(f.read(FINGERPRINT_SAMPLE))
            size = os.fstat(f.fileno()).st_size
            if size > FINGERPRINT_SAMPLE:
                f.seek(max(FINGERPRINT_SAMPLE, size - FINGERPRINT_SAMPLE))
                digest.update(f.read(FINGERPRINT_SAMPLE))
    except OSError as exc:
        raise ShardError(path, f"cannot read: {exc.strerror or exc}") from None
    return {"files": files, "fingerprint": f"sha256:{digest.hexdigest()}"}


def vocab_record(vocab: Vocab) -> dict:
    """The vocabulary as records hold it; ``contents``: ``Vocab.contents``."""
    return {
        "fingerprint": vocab.fingerprint,
        "languages": list(vocab.languages),
        "format_version": vocab.meta["format_version"],
        "keys": vocab.n_keys,
        "contents": vocab.contents(),
    }


def _input_files(prefixes: Sequence[str]) -> dict[tuple[int, int], str]:
    inputs: dict[tuple[int, int], str] = {}
    for prefix in prefixes:
        for suffix in SHARD_SUFFIXES:
            try:
                stat = os.stat(prefix + suffix)
            except OSError:
                continue
            inputs[(stat.st_dev, stat.st_ino)] = prefix + suffix
    return inputs


def refuse_overwriting_inputs(prefixes: Sequence[str], output_dir: Path, mask: bool) -> None:
    """Raise before anything is written when an output path (data, mask, record, or a stale
    file of the same name that committing removes) is one of the input files: the same file
    (device and inode) through the same directory, a symbolic link or a hard link."""
    inputs = _input_files(prefixes)
    names = {os.path.basename(p) for p in prefixes}
    for prefix in prefixes:
        name = os.path.basename(prefix)
        if mask and f"{name}_mask" in names:
            raise InputError(f"{name}_mask is an input and the mask of {name}: their outputs would collide")
        for stem in (name, f"{name}_mask"):
            for suffix in SHARD_SUFFIXES + (LINK_RECORD_SUFFIX,):
                target = output_dir / f"{stem}{suffix}"
                try:
                    stat = os.stat(target)
                except OSError:
                    continue
                source = inputs.get((stat.st_dev, stat.st_ino))
                if source is not None:
                    same = os.path.abspath(target) == os.path.abspath(source)
                    raise ShardError(
                        target,
                        "the output would overwrite its input"
                        if same
                        else f"the output would overwrite the input {source} (the same file)",
                    )
