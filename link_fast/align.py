"""Which tokens of a rewritten document are substitutions, what they replaced, in which language.

The rewrite copies every token except the key spans it replaces by a translation (DESIGN §6),
so a document and its rewrite align exactly: a walk that copies equal tokens and, where they
differ, tries the keys of the vocabulary that start there (looked up in its trie) and the
translations that the output holds at that point. With the mask the positions of the
translations are known and the walk never backtracks; without it the walk backtracks only
over the few tokens before a difference (a translation can share its first tokens with its
key: " Python" -> " Python" "sch" "lange"), and where two substitutions explain the same
difference (" un" "packed" -> " un" "ge" "packt") it takes the leftmost and longest key, as
the rewrite's matching did (DESIGN §4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import InputError
from .vocab import Vocab


@dataclass(frozen=True)
class Span:
    """One substitution: input tokens [in_start, in_end) became output tokens [out_start, out_end)."""

    in_start: int
    in_end: int
    out_start: int
    out_end: int
    source: str  # the key's surface text, as the vocabulary holds it (" Python")
    translation: str
    languages: tuple[str, ...]  # every language whose translation of the key has these ids


class Keys:
    """The vocabulary's trie and translations, as the alignment looks them up."""

    def __init__(self, vocab: Vocab):
        t = vocab.tables
        self.vocab = vocab
        self.root = t["root_child"]
        self.node_key = t["node_key"]
        self.edge_start = t["node_edge_start"]
        self.edge_count = t["node_edge_count"]
        self.edge_token = t["edge_token"]
        self.edge_node = t["edge_node"]
        lengths = np.diff(t["key_offsets"])
        self.longest = int(lengths.max(initial=1))
        self.translations = lru_cache(maxsize=1 << 16)(self._translations)

    def at(self, tokens: list[int], i: int) -> list[tuple[int, int]]:
        """(length, key) of every key that ``tokens[i:]`` starts with, longest first."""
        token = tokens[i]
        if not 0 <= token < len(self.root):
            return []
        node, depth, found = int(self.root[token]), 1, []
        while node >= 0:
            key = int(self.node_key[node])
            if key >= 0:
                found.append((depth, key))
            start, count = int(self.edge_start[node]), int(self.edge_count[node])
            if i + depth >= len(tokens) or count == 0:
                break
            edges = self.edge_token[start : start + count]
            pos = int(np.searchsorted(edges, tokens[i + depth]))
            if pos == count or int(edges[pos]) != tokens[i + depth]:
                break
            node, depth = int(self.edge_node[start + pos]), depth + 1
        return found[::-1]

    def _translations(self, key: int) -> list[tuple[tuple[int, ...], str, tuple[str, ...]]]:
        """(ids, text, languages) of each distinct translation of ``key``."""
        by_ids: dict[tuple[int, ...], tuple[str, list[str]]] = {}
        for l, lang in enumerate(self.vocab.languages):
            for ids, text in self.vocab.translations(key, l):
                by_ids.setdefault(ids, (text, []))[1].append(lang)
        return [(ids, text, tuple(langs)) for ids, (text, langs) in by_ids.items()]


def _common_run(a: np.ndarray, b: np.ndarray, i: int, j: int) -> int:
    """How many tokens from a[i] and b[j] on are equal (vectorised, in growing blocks)."""
    n = min(len(a) - i, len(b) - j)
    k, step = 0, 64
    while k < n:
        m = min(step, n - k)
        differ = np.flatnonzero(a[i + k : i + k + m] != b[j + k : j + k + m])
        if len(differ):
            return k + int(differ[0])
        k, step = k + m, step * 4
    return n


class _Walk:
    """One document's alignment (``align``)."""

    def __init__(self, keys: Keys, before: np.ndarray, after: np.ndarray, mask: np.ndarray | None):
        self.keys = keys
        self.a, self.b = np.asarray(before, dtype=np.int64), np.asarray(after, dtype=np.int64)
        self.al, self.bl = self.a.tolist(), self.b.tolist()
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        self.marked = None if self.mask is None else np.flatnonzero(self.mask)

    def next_marked(self, j: int) -> int:
        """The first masked output position from ``j`` on (the output's length if none)."""
        marked = self.marked
        if marked is None:
            return len(self.bl)
        pos = int(np.searchsorted(marked, j))
        return int(marked[pos]) if pos < len(marked) else len(self.bl)

    def choices(self, i: int, j: int) -> Iterator[tuple[int, int, Span]]:
        """The substitutions that can come next from state (i, j), leftmost and longest first: (new
        i, new j, Span)."""
        k = _common_run(self.a, self.b, i, j)
        if self.mask is None:  # leftmost first, as the rewrite matched (" un|packed" is " unpacked")
            offsets = range(max(0, k - self.keys.longest), k + 1)
        else:
            d = self.next_marked(j) - j
            offsets = range(d, d - 1, -1) if d <= k else range(0)
        for d in offsets:
            p, q = i + d, j + d
            if p >= len(self.al) or q >= len(self.bl):
                continue
            for length, key in self.keys.at(self.al, p):
                for ids, text, langs in self.keys.translations(key):
                    end = q + len(ids)
                    if tuple(self.bl[q:end]) != ids or (self.mask is not None and not self.mask[q:end].all()):
                        continue
                    span = Span(p, p + length, q, end, self.keys.vocab.key_text(key), text, langs)
                    yield p + length, end, span

    def done(self, i: int, j: int) -> bool:
        rest = len(self.al) - i
        return (
            rest == len(self.bl) - j
            and self.next_marked(j) == len(self.bl)
            and _common_run(self.a, self.b, i, j) == rest
        )

    def run(self) -> list[Span] | None:
        """Depth first over the choices, never visiting a failed state twice."""
        failed: set[tuple[int, int]] = set()
        spans: list[Span] = []
        stack: list[tuple[int, int, Iterator[tuple[int, int, Span]]]] = []
        i = j = 0
        while True:
            if self.done(i, j):
                return spans
            stack.append((i, j, self.choices(i, j)))
            while True:
                if not stack:
                    return None
                si, sj, options = stack[-1]
                del spans[len(stack) - 1 :]
                nxt = next(options, None)
                if nxt is None:
                    failed.add((si, sj))
                    stack.pop()
                    continue
                i, j, span = nxt
                if (i, j) in failed:
                    continue
                spans.append(span)
                break


def align(keys: Keys, before, after, mask=None) -> list[Span]:
    """The substitutions that turn the document ``before`` into ``after`` (token ids), in
    order; ``mask`` (1 on translation tokens) when the run wrote one. Raises InputError when
    ``after`` is not ``before`` rewritten with this vocabulary."""
    spans = _Walk(keys, before, after, mask).run()
    if spans is None:
        raise InputError("the output is not this input rewritten with this vocabulary")
    return spans
