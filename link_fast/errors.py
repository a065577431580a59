"""Exceptions raised by link_fast.

Every error a user can cause is a ``LinkFastError`` with a one-line message that names the
file (and line, where there is one) and the problem. They also subclass the closest builtin
(``ValueError``, ``OSError``) so generic handlers keep working.
"""

from __future__ import annotations


class LinkFastError(Exception):
    """Base class of every error link_fast raises on bad input."""

    def __reduce__(self):
        # Subclasses take (path, problem, ...) but keep only the message in args, so pickle's
        # default, cls(*args), fails: and a worker's error that cannot be unpickled kills the
        # pool's result thread and hangs the parent. Rebuild from the instance's state instead.
        return _rebuild_error, (type(self), self.args, self.__dict__)


def _rebuild_error(cls, args, state):
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class FileError(LinkFastError, ValueError):
    """A file is missing, malformed or cannot be written: the message is ``PATH[:LINE]: problem``."""

    def __init__(self, path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class DictionaryError(FileError):
    """A bilingual dictionary file is missing, malformed, or empty after cleaning."""


class TokenizerError(FileError):
    """A tokenizer file cannot be read, or is of an unknown format."""


class VocabError(FileError):
    """A compiled vocabulary file is corrupt, of another format version, or of another tokenizer."""


class InputError(LinkFastError, ValueError):
    """Token ids, offsets or options passed to the engine are invalid."""
