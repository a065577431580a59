"""File helpers every part shares: temporary names, atomic writes, durable renames, zstd frames.

An output is always written under a temporary name in its own folder (``temporary_path``) and
renamed into place when complete, so a reader never sees half a file; a run that dies leaves
only temporaries, which carry the writer's pid so that a later run can tell dead ones apart
(``remove_dead_temporaries``).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMPORARY_MARK = ".tmp-"


def temporary_path(path: str | os.PathLike, tag: str = "") -> Path:
    """Where to write ``path`` before renaming it: a hidden name beside it, with this process's
    pid (``tag`` distinguishes several temporaries of one output)."""
    path = Path(path)
    return path.with_name(f".{path.name}{tag}{TEMPORARY_MARK}{os.getpid()}")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the renames in a folder durable; some filesystems refuse to fsync a folder, which is
    harmless."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike, *, sync: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: it is written under a temporary name, synced,
    and renamed into place when the block ends, so the file is whole or absent. Raises
    OSError; the temporary is removed on any failure."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary name (``atomic_file``)."""
    with atomic_file(path, sync=sync) as f:
        f.write(data)


def json_bytes(data) -> bytes:
    """A record as link_fast writes it: indented UTF-8 JSON with a final newline. A file name
    that is not UTF-8 (undecodable bytes as surrogates) has no UTF-8: then the record is written
    in ASCII, with \\u escapes that read back as the same name."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(data, indent=2) + "\n").encode("ascii")


def write_json(path: str | os.PathLike, data, error: Callable[[Path, str], Exception]) -> None:
    """Write a record atomically; an OSError becomes ``error(path, problem)`` (a file error class)."""
    try:
        write_atomic(path, json_bytes(data))
    except OSError as exc:
        raise error(Path(path), f"cannot write: {exc.strerror or exc}") from None


def remove_dead_temporaries(folder: Path, name: str) -> None:
    """Delete temporaries of the output ``name`` (``.NAME*.tmp-PID``) left by processes that are
    gone; those of a live process (another run) stay."""
    for path in folder.glob(f".{name}*{TEMPORARY_MARK}*"):
        pid = path.name.rpartition(TEMPORARY_MARK)[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # alive, someone else's
            pass


ZSTD_CHUNK = 1 << 20  # decompressed bytes zstd_chunks gathers before it hands them on
# Compressed bytes fed to the decompressor at a time. A zstd block holds at most 128 KB and
# may take 4 bytes (a run of one byte), so whatever the data a slice decompresses to at most
# (ZSTD_SLICE / 4 + 1) x 128 KB, 4.2 MB: a decompression bomb is read like any file. Small
# slices cost little: the decompressor still runs at hundreds of MB/s.
ZSTD_SLICE = 128


def zstd_chunks(raw: BinaryIO, fail: Callable[[str], Exception]) -> Iterator[bytes]:
    """The decompressed data of every frame of a .zst stream, in chunks of about ``ZSTD_CHUNK``
    bytes and never more than ``ZSTD_CHUNK`` + 4.2 MB.

    zstandard's stream_reader reports a clean end of file on a truncated frame, so the frames
    are fed by hand, to notice one that never ends. ``fail(problem)`` builds the error to raise
    (it names the file)."""
    try:
        import zstandard
    except ImportError:
        raise fail("reading .zst files needs the 'zstandard' package") from None
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    inside_frame = False
    done: list[bytes] = []
    size = 0
    try:
        while data := raw.read(1 << 20):
            view = memoryview(data)
            for start in range(0, len(view), ZSTD_SLICE):
                piece: bytes | memoryview = view[start : start + ZSTD_SLICE]
                while piece:
                    out = dobj.decompress(piece)
                    inside_frame = True
                    done.append(out)
                    size += len(out)
                    if dobj.eof:
                        piece = dobj.unused_data
                        dobj = dctx.decompressobj()
                        inside_frame = False
                    else:
                        piece = b""
                if size >= ZSTD_CHUNK:
                    yield b"".join(done)
                    done, size = [], 0
    except zstandard.ZstdError as exc:
        raise fail(f"corrupt zstd data ({exc})") from None
    if size:
        yield b"".join(done)
    if inside_frame:
        raise fail("truncated zstd data (the last frame does not end)")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (the same path, a symbolic or a hard link); False when
    either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_special_file(path: str | os.PathLike, fail: Callable[[str], Exception]) -> None:
    """Refuse a path that exists but is neither a regular file nor a folder (a FIFO, a socket, a
    device) before it is opened: opening a FIFO waits for a writer forever. Missing paths and
    folders are left to the caller's own messages."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise fail("not a regular file (a pipe, socket or device)")
