"""File helpers every part shares: temporary names, atomic writes, durable renames, zstd frames,
regular-file checks.

An output is always written under a temporary name in its own folder (``temporary_path``) and
renamed into place when complete, so a reader never sees half a file; a run that dies leaves
only temporaries. Output folders may be shared (job arrays on several hosts) and writable by
others, so a temporary is created exclusively, never through a link (``open_exclusive``), a
final name that is a link is refused (``refuse_link``), and a temporary's name carries its
owner (host, PID namespace, pid) so that cleanup removes only this machine's dead ones
(``remove_dead_temporaries``).
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import FileError

TEMPORARY_MARK = ".tmp-"
LINK_PROBLEM = "is a symbolic link: an output never replaces a link (remove it or write elsewhere)"
SPECIAL_PROBLEM = "not a regular file (a pipe, socket or device)"
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]")
_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def temporary_owner() -> str:
    """Who a temporary belongs to, as its name says: this host and PID namespace. Pids are only
    comparable within one (another host's, or another container's, pid 1234 is not ours)."""
    host = _NOT_IN_NAMES.sub("_", socket.gethostname())[:64] or "host"
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:  # no /proc (not Linux): the host alone
        namespace = "0"
    return f"{host}-{namespace}"


def temporary_path(path: str | os.PathLike, tag: str = "") -> Path:
    """Where to write ``path`` before renaming it: a hidden name beside it, with its owner and
    this process's pid (``tag`` distinguishes several temporaries of one output)."""
    path = Path(path)
    return path.with_name(f".{path.name}{tag}{TEMPORARY_MARK}{temporary_owner()}-{os.getpid()}")


def open_exclusive(temporary: str | os.PathLike) -> BinaryIO:
    """A new file at the temporary name ``temporary`` (``temporary_path``), open for writing.
    It is created exclusively and never through a link, so nothing planted at the name is
    written through. The name is this process's own: whatever is already there was left by a
    dead process that had this pid, or planted; it is removed (the link itself, never what it
    points to) and the file made anew. Raises OSError."""
    try:
        fd = os.open(temporary, _EXCLUSIVE, 0o666)
    except FileExistsError:
        os.unlink(temporary)
        fd = os.open(temporary, _EXCLUSIVE, 0o666)
    return open(fd, "wb")


def refuse_link(path: str | os.PathLike) -> None:
    """Refuse an output whose final name is a symbolic link: replacing it would surprise whoever
    made it, and in a folder others can write it may be planted. Raises FileError."""
    if os.path.islink(path):
        raise FileError(path, LINK_PROBLEM)


def replace_into(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a complete temporary to its final name, which must not be a link (FileError);
    raises OSError."""
    refuse_link(path)
    os.replace(temporary, path)


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
    refuse_link(path)  # before the work, not only at the rename
    temporary = temporary_path(path)
    try:
        with open_exclusive(temporary) as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        replace_into(temporary, path)
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
    """Delete temporaries of the output ``name`` (``.NAME.*`` and ``.NAME_mask.*``) left by
    processes of this host and PID namespace that are gone. Those of a live process (another
    run), of another host or container sharing the folder, and names of any other form stay."""
    owner = temporary_owner()
    for path in folder.glob(f".{glob.escape(name)}[._]*{TEMPORARY_MARK}*"):
        if not path.name.startswith((f".{name}.", f".{name}_mask.")):
            continue
        who, _, pid = path.name.rpartition(TEMPORARY_MARK)[2].rpartition("-")
        if who != owner or not pid.isdigit():
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


def read_files(paths: Iterable[str | os.PathLike | None]) -> dict[tuple[int, int], str]:
    """The files a command reads, by identity (device, inode), for ``overwritten``; paths that
    are None or do not exist are left out."""
    found = {}
    for path in paths:
        if path is None:
            continue
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            continue
        found[(info.st_dev, info.st_ino)] = os.fspath(path)
    return found


def overwritten(output: str | os.PathLike, read: dict[tuple[int, int], str]) -> str | None:
    """The file of ``read`` (``read_files``) that writing ``output`` would replace: the same
    path, a symbolic or a hard link to it; None when there is none."""
    try:
        info = os.stat(output)
    except (OSError, ValueError):
        return None
    return read.get((info.st_dev, info.st_ino))


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
    folders are left to the caller's own messages. For paths handed to a library that opens
    them itself; a reader that opens the file uses ``open_regular``."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise fail(SPECIAL_PROBLEM)


def open_regular(path: str | os.PathLike, fail: Callable[[str], Exception]) -> BinaryIO:
    """``path`` open for reading, once it is known to be a regular file. It is opened without
    waiting (O_NONBLOCK: a FIFO opens at once instead of waiting for a writer) and checked on the
    open descriptor, so a file swapped for a FIFO after a check cannot hang the reader either.
    ``fail(problem)`` builds the error for a FIFO, socket, device or folder; a missing or
    unreadable file raises OSError, for the caller's own message."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise fail("is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise fail(SPECIAL_PROBLEM)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")
