"""One chunk of lines of a text file rewritten: ``.txt`` lines and ``.jsonl`` records, bad
lines found and reported, long documents written out a piece at a time.

A bad line (not UTF-8, malformed or too deeply nested JSON, not an object, no string in the
field, a lone surrogate in it, longer than ``max_line_bytes``) raises ``BadLine``; the caller
fails the file or skips the line. The output is byte-for-byte what ``json.dumps(record,
ensure_ascii=False)`` of the rewritten record gives, whatever the document's length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from .._text import find_surrogate
from ..substituter import Stats
from .files import LongLine, TextError
from .substituter import TextSubstituter, json_string_body

LONG_TEXT = 1 << 20  # characters: a longer document is written out a piece at a time

Lines = list[tuple[int, "bytes | LongLine"]]  # a chunk of iter_lines: (1-based line number, line)


class BadLine(Exception):
    """A line that is not a document: ``problem`` says why."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def rewrite_chunk(
    sub: TextSubstituter, path: str, fmt: str, field: str, subs_field: str | None, on_error: str, lines: Lines
) -> tuple[bytes, Stats, list[tuple[int, str]]]:
    """Rewrite one chunk of lines (taken out of ``lines`` one by one, so a long line is not held
    twice). Returns (output bytes, stats, skipped lines [(line, problem)]); with
    ``on_error="fail"`` a bad line raises ``TextError`` instead."""
    stats = Stats.zero(sub.vocab.languages, unit="characters")
    out: list[bytes] = []
    errors: list[tuple[int, str]] = []
    for index in range(len(lines)):
        number = lines[index][0]
        try:
            if fmt == ".txt":
                write_txt_line(sub, lines, index, stats, out)
            else:
                write_jsonl_line(sub, lines, index, stats, out, field, subs_field)
        except BadLine as exc:
            if on_error == "fail":
                raise TextError(path, exc.problem, number) from None
            errors.append((number, exc.problem))
    return b"".join(out), stats, errors


def take_line(lines: Lines, index: int) -> str:
    """Line ``index`` of the chunk, decoded, and its bytes dropped from the chunk."""
    raw: bytes | LongLine | None
    number, raw = lines[index]
    if isinstance(raw, LongLine):
        raise BadLine(raw.problem)
    lines[index] = (number, b"")  # no second copy of a long line held while it is rewritten
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8: {exc.reason} at byte {exc.start}"
    finally:
        raw = None
    raise BadLine(problem)


def write_txt_line(sub: TextSubstituter, lines: Lines, index: int, stats: Stats, out: list[bytes]) -> None:
    """A ``.txt`` line (document: its line number - 1) rewritten, appended to ``out``."""
    line = take_line(lines, index)
    doc = lines[index][0] - 1
    if len(line) >= LONG_TEXT:  # encoded a piece at a time, never whole as a str
        if sub.rewrite(line, doc, stats, False, lambda piece: out.append(_utf8(piece))) is None:
            out.extend(_pieces(line, _utf8))
        out.append(b"\n")
    else:
        out.append(sub.apply(line, doc, stats, substitutions=False).text.encode("utf-8") + b"\n")


def write_jsonl_line(
    sub: TextSubstituter, lines: Lines, index: int, stats: Stats, out: list[bytes], field: str, subs_field: str | None
) -> None:
    """A ``.jsonl`` line rewritten, appended to ``out``: the text in ``field`` substituted,
    every other field kept; a blank line is skipped (it keeps its number)."""
    doc = lines[index][0] - 1
    record = _parse_record(take_line(lines, index), field)
    if record is None:
        return
    text = record[field]
    try:
        out.extend(_rewritten_record(sub, record, text, doc, stats, field, subs_field))
    except RecursionError:
        raise BadLine("JSON nested too deeply to write back (over the recursion limit)") from None
    out.append(b"\n")


def _parse_record(line: str, field: str) -> dict | None:
    """The JSON object of a line (None for a blank line), checked to hold text in ``field``.
    The caller's ``line`` is its last reference: dropped once parsed."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise BadLine(f"malformed JSON: {exc}") from None
    except RecursionError:  # json recurses once per level of nesting
        raise BadLine("malformed JSON: nested too deeply (over the recursion limit)") from None
    finally:
        del line  # the caller's last reference
    if not isinstance(record, dict):
        raise BadLine(f"malformed JSON: expected a JSON object, got {type(record).__name__}")
    text = record.get(field)
    if not isinstance(text, str):
        raise BadLine(f"no text field {field!r}" if field not in record else f"field {field!r} is not a string")
    # json reads "\ud800" as a lone surrogate, which no UTF-8 output can hold: not text.
    surrogate = find_surrogate(text)
    if surrogate >= 0:
        raise BadLine(f"field {field!r} holds a lone surrogate U+{ord(text[surrogate]):04X} (not valid Unicode)")
    return record


def _pieces(text: str, convert: Callable[[str], bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """``convert`` of consecutive slices of ``text``: no whole-text temporary."""
    for start in range(0, len(text), size):
        yield convert(text[start : start + size])


def _utf8(piece: str) -> bytes:
    return piece.encode("utf-8")


def _rewritten_record(
    sub: TextSubstituter, record: dict, text: str, doc: int, stats: Stats, field: str, subs_field: str | None
) -> list[bytes]:
    """``json.dumps(record, ensure_ascii=False)`` after the substitutions, as UTF-8 bytes in
    parts: the output text comes escaped and encoded from ``TextSubstituter.rewrite_json``, a
    piece at a time for a long text, so neither it nor the JSON line is ever one str (up to 4
    bytes a character each), and the text is not escaped a second time. ``text`` is the
    caller's last reference to the input text besides ``record[field]``, dropped here."""
    record[field] = None  # keeps the field's place; the text goes when the caller lets it go
    if subs_field:
        record[subs_field] = None
    body: list[bytes] = []
    subs = sub.rewrite_json(text, doc, stats, bool(subs_field), body.append)
    if subs is None:
        body.extend(_pieces(text, json_string_body))
        subs = []
    try:
        return _record_parts(record, field, body, subs_field, subs)
    except UnicodeEncodeError:
        # a lone surrogate in another key or value: as the short path, the whole line escaped
        record[field] = json.loads(b'"' + b"".join(body) + b'"')
        if subs_field:
            record[subs_field] = [s.to_dict() for s in subs]
        return [json.dumps(record).encode("ascii")]


def _record_parts(record: dict, field: str, body: list[bytes], subs_field: str | None, subs: list) -> list[bytes]:
    """The JSON object's bytes in parts, ``body`` (escaped) as the value of ``field`` and the
    substitutions as that of ``subs_field``."""
    parts = [b"{"]
    for i, (key, value) in enumerate(record.items()):
        parts.append(b", " if i else b"")
        parts.append(json.dumps(key, ensure_ascii=False).encode("utf-8") + b": ")
        if subs_field and key == subs_field:
            parts.append(b"[")
            for start in range(0, len(subs), 4096):
                block = ", ".join(json.dumps(s.to_dict(), ensure_ascii=False) for s in subs[start : start + 4096])
                parts.append((", " + block if start else block).encode("utf-8"))
            parts.append(b"]")
        elif key == field:
            parts.append(b'"')
            parts.extend(body)
            parts.append(b'"')
        else:
            parts.append(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    parts.append(b"}")
    return parts
