"""Documents with their substituted words marked: for a terminal (ANSI colour or [brackets]) and
for HTML. Shared by ``demo``, ``inspect`` and ``report``.

A document is cut into pieces (``pieces``): plain text, and marked spans (token or character
ranges) each with a label (the language) and a title (what it replaced). A marked span's
leading whitespace stays outside the mark, so that "[Hund]" reads as a word, not " Hund".
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from .terminal import printable

COLORS = ("\033[1;32m", "\033[1;36m", "\033[1;35m", "\033[1;33m", "\033[1;34m", "\033[1;31m")
RESET, DIM = "\033[0m", "\033[2m"


@dataclass(frozen=True)
class Mark:
    """A marked range [start, end) of a document (tokens or characters)."""

    start: int
    end: int
    label: str = ""  # shown after the word: the language
    title: str = ""  # shown on hover in HTML: what it replaced


@dataclass(frozen=True)
class Piece:
    text: str
    mark: Mark | None = None


def mask_marks(mask: np.ndarray) -> list[Mark]:
    """A mark for each run of 1s in a substitution mask."""
    runs = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(mask).astype(np.int8), [0]))))
    return [Mark(int(a), int(b)) for a, b in zip(runs[::2], runs[1::2])]


def pieces(cut: Callable[[int, int], str], length: int, marks: Iterable[Mark]) -> list[Piece]:
    """The document as pieces: ``cut(a, b)`` is the text of its range [a, b) (decoded tokens,
    or characters), ``marks`` are sorted and do not overlap."""
    out, at = [], 0
    for mark in marks:
        if mark.start > at:
            out.append(Piece(cut(at, mark.start)))
        text = cut(mark.start, mark.end)
        word = text.lstrip()
        if len(word) < len(text):
            out.append(Piece(text[: len(text) - len(word)]))
        out.append(Piece(word, mark))
        at = mark.end
    if at < length:
        out.append(Piece(cut(at, length)))
    return out


def use_color(choice: str, out: TextIO) -> bool:
    """--color auto|always|never: auto is colour on a terminal, unless NO_COLOR is set."""
    if choice == "always":
        return True
    return choice == "auto" and out.isatty() and not os.environ.get("NO_COLOR")


def terminal(document: Sequence[Piece], color: bool, labels: Sequence[str] = (), show_labels: bool = True) -> str:
    """The document for a terminal: each marked word in colour (one per label, in the order of
    ``labels``), or in [brackets] for a pipe; its label after it (``[Hund]de``). Control
    characters of the text and labels are escaped (``printable``); the colours are ours."""
    out = []
    for piece in document:
        mark = piece.mark
        label = printable(mark.label) if mark is not None and show_labels else ""
        text = printable(piece.text, lines=True)
        if mark is None:
            out.append(text)
        elif color:
            shade = COLORS[labels.index(mark.label) % len(COLORS)] if mark.label in labels else COLORS[0]
            out.append(f"{shade}{text}{RESET}" + (f"{DIM}{label}{RESET}" if label else ""))
        else:
            out.append(f"[{text}]{label}")
    return "".join(out)


def to_html(document: Sequence[Piece], labels: Sequence[str] = ()) -> str:
    """The document as HTML (escaped): each marked word a ``<mark>`` with the class of its label
    (``lang-0``, ``lang-1``... in the order of ``labels``) and its title."""
    out = []
    for piece in document:
        mark = piece.mark
        if mark is None:
            out.append(html.escape(piece.text))
            continue
        index = labels.index(mark.label) if mark.label in labels else 0
        title = f' title="{html.escape(mark.title)}"' if mark.title else ""
        label = f"<sub>{html.escape(mark.label)}</sub>" if mark.label else ""
        out.append(f'<mark class="lang-{index}"{title}>{html.escape(piece.text)}{label}</mark>')
    return "".join(out)
