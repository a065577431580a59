"""Text mode: LINK substitutions on raw text documents (docs/DESIGN.md §7), and ``link-fast text``.

``TextSubstituter`` applies the semantics of token mode to text: it is built from a compiled
``Vocab`` alone; the surface text of every key (``" cat"`` for a spaced form, ``"cat"`` for a
bare one) becomes, without its leading space, a pattern of an Aho-Corasick automaton, and the
translations' texts (leading space removed too) are what gets written. So text mode finds the
same words, in the same case variants and phrases, as token mode with that vocabulary, and
takes the same decisions for the same candidate numbers (the draws of ``link_fast.draws``).
Differences from token mode come only from tokenization: a tokenizer that fuses punctuation
with the next word (Tekken: ``(word``, ``-word``, ``/word``) has no bare form there, so token
mode skips words that text mode substitutes, and every later candidate number shifts; with the
vocabulary's tokenizer (``tokenizer=``) text mode follows token mode's boundaries instead.

Modules, by concern:

- ``words``: word characters, word shape, counting words.
- ``matcher``: the automaton and the leftmost-longest valid matches (windows for long texts):
  the Python reference path.
- ``native``: the native path's index (link_fast/_text.pyx), built once and cached next to the
  vocabulary, and a document's rewrite with it.
- ``substituter``: ``TextSubstituter``, sampling and rewriting one document.
- ``files``: formats and names, lines streamed with ``max_line_bytes``, atomic writers.
- ``records``: a chunk of ``.txt`` / ``.jsonl`` lines rewritten, bad lines reported.
- ``run``: ``substitute_files``, in this process or a pool of workers, with run records.
- ``bench``: text mode against the naive regex script (``link-fast bench``, ``benches/``).
"""

from ..draws import below, bernoulli, draw, draws, draws_at, pick  # noqa: F401 (the draws text mode makes)
from .files import (
    COMPRESSIONS,
    DEFAULT_MAX_LINE_BYTES,
    FORMATS,
    LongLine,
    TextError,
    iter_lines,
    output_path_for,
    split_name,
)
from .run import substitute_files
from .substituter import Substitution, TextResult, TextSubstituter
from .words import count_words, is_word_char, word_shape

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_MAX_LINE_BYTES",
    "FORMATS",
    "LongLine",
    "Substitution",
    "TextError",
    "TextResult",
    "TextSubstituter",
    "count_words",
    "is_word_char",
    "iter_lines",
    "output_path_for",
    "split_name",
    "substitute_files",
    "word_shape",
]
