"""Text printed to a terminal: documents, words, names and messages come from files anyone may
have written, and a terminal acts on the control characters in them (an escape sequence can
set the window title, clear the screen, write the clipboard; a bidirectional control can make
a line read other than it is). ``printable`` is the one place they are escaped.
"""

from __future__ import annotations

import re

# C0 controls and DEL, C1 controls, the bidirectional controls (Unicode's Bidi_Control), and
# lone surrogates (bytes of a name that are not UTF-8, which a terminal cannot be sent).
_OTHERS = r"\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_ANY = re.compile(rf"[\x00-\x1f{_OTHERS}]")
_LINES = re.compile(rf"[\x00-\x08\x0b-\x1f{_OTHERS}]")  # all but tab and line feed


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with each control character written as its escape, ``\\u001b`` for ESC, which
    is also valid inside a JSON string. ``lines``: line breaks and tabs (a document's own)
    are kept."""
    pattern = _LINES if lines else _ANY
    if pattern.search(text) is None:  # the usual case: no copy
        return text
    return pattern.sub(_escape, text)


def _escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"
