"""One chunk of lines of a text file rewritten: ``.txt`` lines and ``.jsonl`` records, bad
lines found and reported, long documents written out a piece at a time.

A bad line (not UTF-8, malformed or too deeply nested JSON, not an object, no string in the
field, a lone surrogate in it, longer than ``max_line_bytes``) raises ``BadLine``; the caller
fails the file or skips the line. A ``.jsonl`` line comes out as it came, byte for byte, but
for the text field's value, written as ``json.dumps(text, ensure_ascii=False)`` writes the new
text, and the substitutions field's value (replaced, or added after the last field): numbers,
escapes, spacing and repeated keys of the other fields are never decoded and encoded again.
Where a key is repeated, its last value is the field, as JSON readers take it.
"""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

from .._text import find_surrogate
from ..substituter import Stats
from .files import LongLine, TextError
from .substituter import TextSubstituter, json_string_body

LONG_TEXT = 1 << 20  # characters: a longer document is written out a piece at a time

Lines = list[tuple[int, "bytes | LongLine"]]  # a chunk of iter_lines: (1-based line number, line)


# The other fields are skipped over, not converted: numbers stay strings (no float overflow to
# Infinity, no limit on an integer's digits).
_SCAN: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder(parse_int=str, parse_float=str)).scan_once
# The top-level object is parsed by json's own parser of an object, given a scanner of values that
# notes where each begins and ends (json.decoder.JSONObject: not in the type stubs).
_OBJECT: Callable[..., tuple[list, int]] = cast(Any, json.decoder).JSONObject
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Where the new text's JSON string and the substitutions' JSON array go among a line's bytes.
_TEXT, _SUBSTITUTIONS = object(), object()


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
    every other field kept as it came; a blank line is skipped (it keeps its number)."""
    doc = lines[index][0] - 1
    parsed = _parse_record(take_line(lines, index), field, subs_field)
    if parsed is None:
        return
    text, parts = parsed
    del parsed
    out.extend(_rewritten_record(sub, parts, text, doc, stats, subs_field))
    out.append(b"\n")


def _parse_record(line: str, field: str, subs_field: str | None) -> tuple[str, list] | None:
    """The text in ``field`` of a line's JSON object, and the line's bytes cut around the values
    to replace: ``_TEXT`` where the text field's value was, ``_SUBSTITUTIONS`` where the
    substitutions field's was (or after the last field, with its key, where it was not). None
    for a blank line. The caller's ``line`` is its last reference: dropped once parsed."""
    start = _after_whitespace(line, 0)
    if start == len(line):
        return None
    members, spans, last_end = _members(line, start)
    at = _last(members, field)
    if at is None:
        raise BadLine(f"no text field {field!r}")
    if line[spans[at][0]] != '"':
        raise BadLine(f"field {field!r} is not a string")
    text = cast(str, members[at][1])
    # json reads "\ud800" as a lone surrogate, which no UTF-8 output can hold: not text.
    surrogate = find_surrogate(text)
    if surrogate >= 0:
        raise BadLine(f"field {field!r} holds a lone surrogate U+{ord(text[surrogate]):04X} (not valid Unicode)")
    edits = [(spans[at], [_TEXT])]
    if subs_field:
        subs_at = _last(members, subs_field)
        if subs_at is not None:
            edits.append((spans[subs_at], [_SUBSTITUTIONS]))
        else:
            key = json.dumps(subs_field, ensure_ascii=False).encode("utf-8")
            edits.append(((last_end, last_end), [b", " + key + b": ", _SUBSTITUTIONS]))
    del members
    parts: list = []
    done = 0
    for (begin, end), replacement in sorted(edits, key=lambda edit: edit[0]):
        parts.append(line[done:begin].encode("utf-8"))  # UTF-8 it came as: the same bytes
        parts.extend(replacement)
        done = end
    parts.append(line[done:].encode("utf-8"))
    del line  # the caller's last reference
    return text, parts


def _members(line: str, start: int) -> tuple[list[tuple[str, object]], list[tuple[int, int]], int]:
    """The members (key, value) of the JSON object at ``line[start]``, where each value begins
    and ends in ``line``, and the end of the last one. Parsed as ``json.loads`` parses (its
    errors, its strictness); the values as ``_SCAN`` reads them."""
    spans: list[tuple[int, int]] = []

    def scan(s: str, at: int):
        value, end = _SCAN(s, at)
        spans.append((at, end))
        return value, end

    try:
        if line[start] != "{":
            raise BadLine(f"malformed JSON: expected a JSON object, got {type(json.loads(line)).__name__}")
        members, end = _OBJECT((line, start + 1), True, scan, None, list)
        end = _after_whitespace(line, end)
        if end != len(line):
            raise json.JSONDecodeError("Extra data", line, end)
    except ValueError as exc:
        raise BadLine(f"malformed JSON: {exc}") from None
    except RecursionError:  # json recurses once per level of nesting
        raise BadLine("malformed JSON: nested too deeply (over the recursion limit)") from None
    return members, spans, spans[-1][1] if spans else start + 1


def _after_whitespace(line: str, at: int) -> int:
    match = _WHITESPACE.match(line, at)
    return match.end() if match is not None else at


def _last(members: list[tuple[str, object]], key: str) -> int | None:
    """The index of the last member named ``key`` (the one JSON readers keep), or None."""
    for i in range(len(members) - 1, -1, -1):
        if members[i][0] == key:
            return i
    return None


def _pieces(text: str, convert: Callable[[str], bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """``convert`` of consecutive slices of ``text``: no whole-text temporary."""
    for start in range(0, len(text), size):
        yield convert(text[start : start + size])


def _utf8(piece: str) -> bytes:
    return piece.encode("utf-8")


def _rewritten_record(
    sub: TextSubstituter, parts: list, text: str, doc: int, stats: Stats, subs_field: str | None
) -> list[bytes]:
    """The line's ``parts`` (``_parse_record``) with the substituted text and the substitutions
    in their places, as UTF-8 bytes in parts: the output text comes escaped and encoded from
    ``TextSubstituter.rewrite_json``, a piece at a time for a long text, so neither it nor the
    JSON line is ever one str (up to 4 bytes a character each), and the text is not escaped a
    second time."""
    body: list[bytes] = []
    subs = sub.rewrite_json(text, doc, stats, bool(subs_field), body.append)
    if subs is None:
        body.extend(_pieces(text, json_string_body))
        subs = []
    out: list[bytes] = []
    for part in parts:
        if part is _TEXT:
            out.append(b'"')
            out.extend(body)
            out.append(b'"')
        elif part is _SUBSTITUTIONS:
            out.extend(_substitutions_json(subs))
        else:
            out.append(part)
    return out


def _substitutions_json(subs: list) -> Iterator[bytes]:
    """The substitutions as a JSON array, in parts of 4,096 substitutions."""
    yield b"["
    for start in range(0, len(subs), 4096):
        block = ", ".join(json.dumps(s.to_dict(), ensure_ascii=False) for s in subs[start : start + 4096])
        yield (", " + block if start else block).encode("utf-8")
    yield b"]"
