"""Text files (docs/DESIGN.md §8): formats and names, lines streamed with a length limit, and
outputs written under a temporary name.

``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst`` (one JSON object a line) and ``.txt`` / ``.txt.gz`` /
``.txt.zst`` (one document a line; the line break is not part of the document).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from ..errors import FileError
from ..io import open_exclusive, open_regular, refuse_link, replace_into, temporary_path, zstd_chunks

if TYPE_CHECKING:
    from zstandard import ZstdCompressionWriter

COMPRESSIONS = (".gz", ".zst")
FORMATS = (".jsonl", ".txt")
# A line (document) longer than this is an error, or skipped: far above real documents (a whole
# book is a few MB), low enough that rewriting one stays under about 640 MB per worker (a line
# costs about 5x its size in memory, up to 10x for text that Python holds at 4 bytes a
# character, i.e. with an emoji; more with substitutions_field).
DEFAULT_MAX_LINE_BYTES = 64 << 20
READ_SIZE = 1 << 20  # bytes read (decompressed) at a time


class TextError(FileError):
    """A text input is malformed: bad JSON, a missing field, a truncated compressed file."""


def split_name(path) -> tuple[str, str, str]:
    """(stem, format, compression) of a text file name: ``a.jsonl.zst`` -> (a, .jsonl, .zst)."""
    name = Path(path).name
    compression = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    rest = name[: len(name) - len(compression)]
    fmt = next((f for f in FORMATS if rest.endswith(f)), None)
    if fmt is None:
        raise TextError(path, "unknown text format: expected .jsonl, .jsonl.gz, .jsonl.zst, .txt, .txt.gz or .txt.zst")
    return rest[: len(rest) - len(fmt)], fmt, compression


def output_path_for(input_path, output, n_inputs: int) -> Path:
    """``output`` itself for one input when it has a text file extension, else output/NAME."""
    output = Path(output)
    if n_inputs == 1 and not output.is_dir():
        try:
            split_name(output)
            return output
        except TextError:
            pass
    return output / Path(input_path).name


class LongLine(NamedTuple):
    """What ``iter_lines`` gives, in place of its bytes, for a line over ``max_line_bytes``."""

    size: int  # bytes, without the line break
    limit: int

    @property
    def problem(self) -> str:
        return f"line of {self.size} bytes exceeds --max-line-bytes {self.limit}"


def iter_lines(path, max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes | LongLine]]:
    """(1-based line number, line without its line break) of a text file, streamed.

    A line of more than ``max_line_bytes`` bytes (None or 0: no limit) comes as a ``LongLine``
    instead: its bytes are counted as they stream past and dropped, never held."""
    path = str(path)
    _, _, compression = split_name(path)
    try:
        f = open_regular(path, lambda problem: TextError(path, problem))
    except OSError as exc:
        raise TextError(path, f"cannot read: {exc.strerror or exc}") from None
    with f:
        yield from _split_lines(_decompressed(path, f, compression), max_line_bytes or 0)


def _decompressed(path: str, f: BinaryIO, compression: str) -> Iterator[bytes]:
    """The file's content, decompressed, in chunks."""
    if compression == ".zst":
        yield from zstd_chunks(f, lambda problem: TextError(path, problem))
    elif compression == ".gz":
        g = gzip.GzipFile(fileobj=f)
        try:
            while chunk := g.read(READ_SIZE):
                yield chunk
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise TextError(path, f"damaged or truncated gzip file: {exc}") from None
    else:
        yield from iter(lambda: f.read(READ_SIZE), b"")


def _split_lines(chunks: Iterator[bytes], limit: int) -> Iterator[tuple[int, bytes | LongLine]]:
    """``iter_lines`` on the content's chunks. The line that goes on past the chunk read so far
    is kept as a list of pieces (joined once, when it ends: no copy of it per chunk) and only
    while it is within the limit."""
    pending: list[bytes]
    line: bytes | None
    number, pending, held = 0, [], 0  # held: bytes of the unfinished line so far
    for chunk in chunks:
        lines = chunk.split(b"\n")
        tail = lines.pop()
        for line in lines:
            number += 1
            if held:  # the end of a line begun in an earlier chunk
                size, held = held + len(line), 0
                if limit and size > limit:
                    pending = []
                    yield number, LongLine(size, limit)
                    continue
                pending.append(line)
                line = None
                yield number, _without_cr(_take_joined(pending))  # no reference kept here
                continue
            elif limit and len(line) > limit:
                yield number, LongLine(len(line), limit)
                continue
            yield number, line[:-1] if line.endswith(b"\r") else line
        if tail:
            held += len(tail)
            if limit and held > limit:
                pending = []  # still counted, no longer kept
            else:
                pending.append(tail)
    if held:
        number += 1
        if limit and held > limit:
            yield number, LongLine(held, limit)
        else:
            yield number, _without_cr(_take_joined(pending))


def _take_joined(parts: list[bytes]) -> bytes:
    """The parts joined, the list emptied: the caller then holds no reference to the line."""
    data = b"".join(parts)
    parts.clear()
    return data


def _without_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


class Writer:
    """Writes lines to ``path`` through a temporary file, compressed as its name says;
    ``commit`` renames, ``abort`` removes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        _, _, compression = split_name(self.path)
        refuse_link(self.path)
        self.tmp = temporary_path(self.path)
        self.raw = open_exclusive(self.tmp)
        self.f: ZstdCompressionWriter | gzip.GzipFile | None
        if compression == ".zst":
            import zstandard

            self.f = zstandard.ZstdCompressor(level=3).stream_writer(self.raw, closefd=False)
        elif compression == ".gz":
            self.f = gzip.GzipFile(fileobj=self.raw, mode="wb", mtime=0)
        else:
            self.f = None
        self.out = self.f if self.f is not None else self.raw
        self.buffer: list[bytes] = []
        self.size = 0

    def write(self, line: bytes) -> None:
        self.buffer.append(line)
        self.size += len(line)
        if self.size > 1 << 20:
            self.flush()

    def flush(self) -> None:
        try:
            self.out.write(b"".join(self.buffer))
        except OSError as exc:  # a full disk: no name in the OSError of a write
            raise TextError(self.path, f"cannot write: {exc.strerror or exc}") from None
        self.buffer, self.size = [], 0

    def prepare(self) -> None:
        """Everything but the rename: the output complete and synced under its temporary name."""
        if self.raw.closed:
            return
        self.flush()
        try:
            if self.f is not None:
                self.f.close()
            self.raw.flush()
            os.fsync(self.raw.fileno())
            self.raw.close()
        except OSError as exc:
            raise TextError(self.path, f"cannot write: {exc.strerror or exc}") from None

    def commit(self) -> None:
        self.prepare()
        try:
            replace_into(self.tmp, self.path)
        except OSError as exc:
            raise TextError(self.path, f"cannot write: {exc.strerror or exc}") from None

    def abort(self) -> None:
        try:
            self.raw.close()
        except OSError:
            pass  # a failing flush on close is the error already being cleaned up after
        finally:
            self.tmp.unlink(missing_ok=True)
