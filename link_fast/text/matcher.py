"""Finding dictionary words in text (docs/DESIGN.md §4, §7): an Aho-Corasick automaton over the
keys' surface texts, and the leftmost-longest, non-overlapping valid matches.

A match ``[i, j)`` is valid when the characters around it are not word characters, and it is
not joined to a word by joiner characters on either side (``words.joined``). After a
space (U+0020) it stands for the spaced key, anywhere else for the bare one; without a
tokenizer the other form stands in when only one was compiled. With the vocabulary's tokenizer
the boundaries are token mode's: no stand-in, and no bare form right after text of a token the
tokenizer fuses with a following word (Tekken: ``(``, ``-``, ``/``, quotes, ...).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

import numpy as np

from ..vocab import Vocab
from .words import joined

# Tunables of the long-document path (tests shrink them to run it on short texts).
SETTLE_AT = 4096  # unsettled match starts held while matching before the settled ones are taken
AUTOMATON_WINDOW = 1 << 20  # characters of a long text given to the automaton at once


class Matcher:
    """The automaton of ``keys`` (key ids of ``vocab``): pattern text -> (length, spaced key,
    bare key), -1 where that form is not among ``keys``."""

    def __init__(self, vocab: Vocab, keys: Sequence[int], tokenizer=None):
        import ahocorasick

        self.token_boundaries = tokenizer is not None
        self._fusing: tuple[str, ...] = ()
        if tokenizer is not None:
            self._fusing, self._fusing_ids = fusing_tokens(vocab, tokenizer)
            self._tokenizer = tokenizer
        forms = _forms(vocab, keys)
        automaton = ahocorasick.Automaton()
        for text, (spaced, bare) in forms.items():
            automaton.add_word(text, (len(text), spaced, bare))
        if len(automaton):
            automaton.make_automaton()
        self._automaton = automaton
        self.patterns = len(forms)
        self.longest = max(map(len, forms), default=0)  # pattern length, in code points

    def find(self, text: str, shape: str) -> tuple[array, array, array]:
        """Leftmost-longest non-overlapping valid matches as three arrays, (starts, ends, keys),
        in text order; ``shape`` is ``word_shape(text)``. Arrays take 12 bytes a match where a
        list of tuples costs about 130 (10-40x the text's size on a long document)."""
        offsets = "i" if len(text) < 1 << 31 else "q"
        selection = _Selection(array(offsets), array(offsets), array("i"), self.longest)
        if len(self._automaton) and text:
            for start, end, key in self._valid(text, shape):
                selection.add(start, end, key)
            selection.settle(len(text) + 1)
        return selection.starts, selection.ends, selection.keys

    def _valid(self, text: str, shape: str) -> Iterator[tuple[int, int, int]]:
        """(start, end, key) of every valid match, by increasing end."""
        strict, fusing = self.token_boundaries, self._fusing
        for start, end, spaced, bare in self._whole_words(text, shape):
            if joined(text, shape, start, end):
                continue
            if start > 0:
                if text[start - 1] == " ":
                    key = spaced if spaced >= 0 or strict else bare
                elif strict and fusing and text.endswith(fusing, 0, start) and not self._separate(text, start, end):
                    continue
                else:
                    key = bare if bare >= 0 or strict else spaced
            else:
                key = bare if bare >= 0 or strict else spaced
            if key >= 0:
                yield start, end, key

    def _whole_words(self, text: str, shape: str) -> Iterator[tuple[int, int, int, int]]:
        """(start, end, spaced key, bare key) of every occurrence of a pattern with no word
        character on either side, by increasing end. The automaton reads a long text a window
        at a time (it copies its input at 4 bytes a character)."""
        n, longest = len(text), self.longest
        # Windows [offset, stop) overlap by longest - 1 characters: an occurrence that ends past
        # the previous window's stop lies whole in the next one, those that end before are
        # already seen. (Not iter().set(next window), which corrupts memory in pyahocorasick
        # 2.3 when windows differ in string kind.)
        size = max(AUTOMATON_WINDOW, 2 * longest)
        offset, stop, seen = 0, min(n, size), 0
        while True:
            for last, (length, spaced, bare) in self._automaton.iter(
                text if stop == n and not offset else text[offset:stop]
            ):
                end = offset + last + 1
                if end <= seen:
                    continue
                start = end - length
                # the automaton reports every occurrence, most of them inside words: out first
                if (end < n and shape[end] == "a") or (start > 0 and shape[start - 1] == "a"):
                    continue
                yield start, end, spaced, bare
            if stop == n:
                return
            offset, seen = stop - longest + 1, stop
            stop = min(n, offset + size)

    def _separate(self, text: str, start: int, end: int) -> bool:
        return separate(self._tokenizer, self._fusing_ids, text, start, end)


def separate(tokenizer, fusing_ids: frozenset[int], text: str, start: int, end: int) -> bool:
    """Token boundaries: does the tokenizer start a token at ``start`` (before the word at
    [start, end)), after a token that does not fuse? Decided by encoding a few characters of
    context (from the last space or newline before it), the pre-tokenizer's reach (Tekken:
    ``x(word`` fuses, `` (word`` does not)."""
    # from the last whitespace before the word (pre-tokenizers cut there), at most 32 chars
    left = max(0, start - 32)
    cut = max(text.rfind(" ", left, start - 1), text.rfind("\n", left, start - 1))
    left = cut if cut >= 0 else left
    prefix = text[left:start].encode("utf-8")
    position = 0
    for t in tokenizer.encode(text[left:end]):
        position += len(tokenizer.token_bytes(t))
        if position == len(prefix):
            return t not in fusing_ids
        if position > len(prefix):
            return False
    return False


class _Selection:
    """Leftmost-longest selection among matches that come by increasing end, a part of the text
    at a time: ``best`` holds only the starts not yet settled, so it stays small whatever the
    length of the text; the settled matches go to the arrays."""

    def __init__(self, starts: array, ends: array, keys: array, longest: int):
        self.starts, self.ends, self.keys, self.longest = starts, ends, keys, longest
        self.best: dict[int, tuple[int, int]] = {}  # start -> (end, key), the longest valid match there
        self.settle_at = SETTLE_AT  # settle when best has that many starts
        self.position = 0  # end of the last match taken

    def add(self, start: int, end: int, key: int) -> None:
        best = self.best
        got = best.get(start)
        if got is None:
            best[start] = (end, key)
            if len(best) >= self.settle_at:
                # Matches come by increasing end, so every later one starts at or after
                # end - longest: the starts before that are settled.
                self.settle(end - self.longest)
                self.settle_at = max(SETTLE_AT, 2 * len(best))
        elif got[0] < end:
            best[start] = (end, key)

    def settle(self, bound: int) -> None:
        """Take the starts below ``bound`` out of ``best`` and append, in text order, those that
        do not overlap the matches taken before."""
        best, position = self.best, self.position
        for start in sorted([s for s in best if s < bound]):
            end, key = best.pop(start)
            if start >= position:
                self.starts.append(start)
                self.ends.append(end)
                self.keys.append(key)
                position = end
        self.position = position


def _forms(vocab: Vocab, keys: Sequence[int]) -> dict[str, list[int]]:
    """Pattern text (the key's surface text without its leading space) -> [spaced key, bare key]."""
    blob = bytes(np.asarray(vocab.tables["key_text"]))
    offsets = np.asarray(vocab.tables["key_text_offsets"]).tolist()
    forms: dict[str, list[int]] = {}
    for key in keys:
        text = blob[offsets[key] : offsets[key + 1]].decode("utf-8")
        spaced = text.startswith(" ")
        if spaced:
            text = text[1:]
        if not text:
            continue
        slot = forms.get(text)
        if slot is None:
            slot = forms[text] = [-1, -1]
        slot[0 if spaced else 1] = key
    return forms


def fusing_tokens(vocab: Vocab, tokenizer) -> tuple[tuple[str, ...], frozenset[int]]:
    """The texts and ids of the tokens the tokenizer fuses with a following word, after checking
    that ``tokenizer`` is the vocabulary's."""
    from ..tokenizer import FLAG_FUSES_RIGHT

    vocab.check_tokenizer(tokenizer.fingerprint, getattr(tokenizer, "name", "the tokenizer"))
    fusing = np.flatnonzero(np.asarray(vocab.tables["flags"]) & FLAG_FUSES_RIGHT).tolist()
    texts = {tokenizer.token_bytes(t).decode("utf-8", "replace") for t in fusing}
    return tuple(sorted(t for t in texts if t and t != " ")), frozenset(fusing)
