"""The compiled vocabulary: a token-id trie plus replacement table for one tokenizer.

A ``Vocab`` is a set of flat numpy arrays and a JSON header, saved as one file::

    b"LINKFAST" | <I format version | <I 0 | <Q header length | header JSON | arrays

Every array starts at a 64-byte aligned offset recorded in the header, so ``Vocab.load``
memory-maps the file and wraps each array without copying: loading is O(1) and N worker
processes share one copy in the page cache.

Tables (``K`` keys, ``L`` languages, ``T`` translations, root = node 0):

- ``flags[vocab_size]`` uint8: per-token boundary flags (``link_fast.tokenizer.FLAG_*``).
- ``joiner_flags[vocab_size]`` uint8: per-token joiner flags (``link_fast.tokenizer.JOINER_*``,
  ``WORD_THEN_JOINER``, ``*_BACKTICK*``): what keeps matches out of code, URLs, paths and
  contractions.
- ``root_child[vocab_size]`` int32: node reached from the root by each token, or -1. A dense
  table, because resolving the first token of a word is the hot path.
- ``node_key`` int32, ``node_edge_start`` / ``node_edge_count`` int32 per node: the key that
  ends at the node (or -1) and its children, a slice of ``edge_token`` (sorted) / ``edge_node``.
- ``key_lang_mask[K]`` uint32: bit ``l`` set when key has translations in language ``l``.
- ``key_trans_start[K * L + 1]`` int64: translations of key ``k`` in language ``l`` are
  ``key_trans[key_trans_start[k*L + l] : key_trans_start[k*L + l + 1]]``, indices into
  the translations below; ``key_trans_cum`` uint32, beside ``key_trans``: each range's
  weights, cumulated within the range (1, 2, 3, ... when translations are drawn uniformly).
- ``trans_offsets[T + 1]`` int64 / ``trans_tokens`` uint32: the token ids of each distinct
  translation form (stored once however many keys share it).
- ``key_offsets`` / ``key_tokens``, ``key_text_offsets`` / ``key_text``, ``trans_text_offsets`` /
  ``trans_text``: the keys' token ids and the surface strings (UTF-8), for inspection and text mode.

The trie is numbered depth by depth (``_build_trie``): the ``n`` nodes one token deep are
1..n in token order, edge ``e`` leads to node ``n + 1 + e``, and each node's edges are the next
slice of ``edge_token`` / ``edge_node``. A file is untrusted input: ``Vocab.load`` checks all of
this and every other invariant the kernel relies on (``_check_tables``) before anything runs.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import itertools
import json
import mmap
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import numpy as np

from ._kernel import MAX_NODES, build_edge_table
from .errors import VocabError
from .io import atomic_file, refuse_special_file
from .lexicon import CONTROL_CHARS
from .tokenizer import (
    BACKTICK_THEN_JOINERS,
    FLAG_END_WORD,
    FLAG_FUSES_RIGHT,
    FLAG_GLUE_LEFT,
    FLAG_HAS_WORD,
    FLAG_SPECIAL,
    FLAG_WS_START,
    JOINER_ONLY,
    JOINER_THEN_WORD,
    JOINERS_THEN_BACKTICK,
    WORD_THEN_JOINER,
)

MAGIC = b"LINKFAST"
FORMAT_VERSION = 5  # 3: key_trans_cum, the translations' weights; 4: joiner_flags; 5: apostrophes, backticks
MAX_LANGUAGES = 32  # languages are bits of a uint32 mask
# The flag bits a vocabulary may use; the kernel keeps the others for itself (LF_KEY_START).
DEFINED_FLAGS = FLAG_WS_START | FLAG_GLUE_LEFT | FLAG_END_WORD | FLAG_SPECIAL | FLAG_HAS_WORD | FLAG_FUSES_RIGHT
DEFINED_JOINER_FLAGS = JOINER_ONLY | JOINER_THEN_WORD | WORD_THEN_JOINER | JOINERS_THEN_BACKTICK | BACKTICK_THEN_JOINERS
_PREFIX = struct.Struct("<8sIIQ")
_ALIGN = 64
_UTF8_CHUNK = 1 << 20  # bytes of a string table decoded at a time by Vocab.load

# name -> dtype of every array a vocabulary file must hold
ARRAY_DTYPES: dict[str, np.dtype] = {
    "flags": np.dtype(np.uint8),
    "joiner_flags": np.dtype(np.uint8),
    "root_child": np.dtype(np.int32),
    "node_key": np.dtype(np.int32),
    "node_edge_start": np.dtype(np.int32),
    "node_edge_count": np.dtype(np.int32),
    "edge_token": np.dtype(np.uint32),
    "edge_node": np.dtype(np.int32),
    "key_lang_mask": np.dtype(np.uint32),
    "key_trans_start": np.dtype(np.int64),
    "key_trans": np.dtype(np.int32),
    "key_trans_cum": np.dtype(np.uint32),
    "trans_offsets": np.dtype(np.int64),
    "trans_tokens": np.dtype(np.uint32),
    "key_offsets": np.dtype(np.int64),
    "key_tokens": np.dtype(np.uint32),
    "key_text_offsets": np.dtype(np.int64),
    "key_text": np.dtype(np.uint8),
    "trans_text_offsets": np.dtype(np.int64),
    "trans_text": np.dtype(np.uint8),
}

# offset table -> (the table it slices, whether a slice may be empty); see the module docstring
OFFSET_TABLES: dict[str, tuple[str, bool]] = {
    "key_trans_start": ("key_trans", False),
    "trans_offsets": ("trans_tokens", True),
    "key_offsets": ("key_tokens", True),
    "key_text_offsets": ("key_text", False),
    "trans_text_offsets": ("trans_text", False),
}

# field -> type of every field of a saved header (``Vocab.from_tables`` and ``save`` write them)
HEADER_FIELDS: dict[str, type] = {
    "format_version": int,
    "languages": list,
    "vocab_size": int,
    "tokenizer": dict,
    "options": dict,
    "report": dict,
    "counts": dict,
    "arrays": dict,
}
HEADER_KIND_NAMES = {int: "an integer", list: "a list", dict: "an object"}
# The per-language counts of a compiled vocabulary's report that ``link-fast info`` prints.
REPORT_COUNTS = (
    "sources",
    "forms",
    "forms_kept",
    "forms_not_context_free",
    "forms_without_translation",
    "keys",
    "phrases",
)


@dataclass(frozen=True)
class Entry:
    """One key of the trie: a token-id sequence and its translations per language index."""

    tokens: tuple[int, ...]
    text: str
    # translations[lang_index] = [(token ids, text), ...], or (token ids, text, weight >= 1)
    # where the translations are not drawn uniformly
    translations: Mapping[int, Sequence[tuple]]


def _offsets_and_blob(parts: Sequence, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate byte strings or id tuples into (int64 offsets, flat array)."""
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if np.dtype(dtype) == np.uint8:
        blob = np.frombuffer(b"".join(parts), dtype=np.uint8).copy()
    else:
        blob = np.fromiter(itertools.chain.from_iterable(parts), dtype=dtype, count=int(offsets[-1]))
    return offsets, blob


def _build_trie(vocab_size: int, key_offsets: np.ndarray, key_tokens: np.ndarray, texts: Sequence[str]) -> dict:
    """Trie tables, built one depth at a time: a node is a unique (parent node, token) pair."""
    n_keys = len(key_offsets) - 1
    lengths = np.diff(key_offsets)
    if n_keys and lengths.min() < 1:
        raise ValueError(f"key {texts[int(np.argmin(lengths))]!r} has no tokens")
    if len(key_tokens) and int(key_tokens.max()) >= vocab_size:
        bad = int(np.searchsorted(key_offsets, int(np.argmax(key_tokens)), side="right")) - 1
        raise ValueError(f"key {texts[bad]!r} has a token id outside the vocabulary")
    node_of_key = np.zeros(n_keys, dtype=np.int64)
    parents, tokens, first_id = [], [], 1
    for depth in range(int(lengths.max(initial=0))):
        alive = np.flatnonzero(lengths > depth)
        pair = node_of_key[alive] * vocab_size + key_tokens[key_offsets[alive] + depth]
        unique, inverse = np.unique(pair, return_inverse=True)
        node_of_key[alive] = first_id + inverse
        parents.append(unique // vocab_size)
        tokens.append(unique % vocab_size)
        first_id += len(unique)
    n_nodes = first_id
    # np.unique sorts by (parent, token) and parents of one depth precede the next depth's,
    # so the concatenated edges are grouped by parent with tokens ascending: binary-searchable.
    edge_parent = np.concatenate(parents) if parents else np.zeros(0, dtype=np.int64)
    edge_token = np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int64)
    edge_child = np.arange(1, n_nodes, dtype=np.int64)
    node_key = np.full(n_nodes, -1, dtype=np.int32)
    node_key[node_of_key] = np.arange(n_keys, dtype=np.int32)
    if n_keys and len(np.unique(node_of_key)) != n_keys:
        seen: dict[int, int] = {}
        for key, node in enumerate(node_of_key.tolist()):
            if node in seen:
                raise ValueError(f"duplicate key {texts[key]!r} (same token ids as {texts[seen[node]]!r})")
            seen[node] = key
    root = edge_parent == 0
    root_child = np.full(vocab_size, -1, dtype=np.int32)
    root_child[edge_token[root]] = edge_child[root]
    inner = ~root
    node_ids = np.arange(n_nodes)
    starts = np.searchsorted(edge_parent[inner], node_ids, side="left")
    stops = np.searchsorted(edge_parent[inner], node_ids, side="right")
    counts = (stops - starts).astype(np.int32)
    counts[0] = 0  # the root's children live in root_child
    return {
        "root_child": root_child,
        "node_key": node_key,
        "node_edge_start": starts.astype(np.int32),
        "node_edge_count": counts,
        "edge_token": edge_token[inner].astype(np.uint32),
        "edge_node": edge_child[inner].astype(np.int32),
    }


def tables_from_arrays(
    flags: np.ndarray,
    n_languages: int,
    key_offsets: np.ndarray,
    key_tokens: np.ndarray,
    key_texts: Sequence[str],
    key_trans_start: np.ndarray,
    key_trans: np.ndarray,
    trans_offsets: np.ndarray,
    trans_tokens: np.ndarray,
    trans_texts: Sequence[str],
    key_trans_weight: np.ndarray | None = None,
    joiner_flags: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """All tables from flat arrays (see the module docstring). ``key_trans_weight``, beside
    ``key_trans``: each translation's weight (>= 1; default 1, uniform draws). ``joiner_flags``,
    beside ``flags``: default 0, no token has a joiner character. Raises ValueError on bad input."""
    if not 1 <= n_languages <= MAX_LANGUAGES:
        raise ValueError(f"between 1 and {MAX_LANGUAGES} languages are supported, got {n_languages}")
    n_keys, n_trans = len(key_offsets) - 1, len(trans_offsets) - 1
    if len(key_trans_start) != n_keys * n_languages + 1 or key_trans_start[-1] != len(key_trans):
        raise ValueError("key_trans_start does not match the keys, languages and key_trans")
    if len(key_trans) and (key_trans.min() < 0 or key_trans.max() >= n_trans):
        raise ValueError("key_trans points outside the translations")
    if n_trans and np.diff(trans_offsets).min() < 1:
        raise ValueError("a translation has no tokens")
    key_trans_cum = cumulated_weights(np.asarray(key_trans_start), key_trans_weight, len(key_trans))
    if int(trans_tokens.max(initial=0)) >= len(flags):
        raise ValueError("a translation has a token id outside the vocabulary")
    key_lang_mask = _lang_masks(np.asarray(key_trans_start), n_keys, n_languages)
    if n_keys and key_lang_mask.min() == 0:
        raise ValueError(f"key {key_texts[int(np.argmin(key_lang_mask))]!r} has no translation")
    tables: dict[str, np.ndarray] = {
        "flags": np.ascontiguousarray(flags, dtype=np.uint8),
        "joiner_flags": _joiner_flags(joiner_flags, len(flags)),
        "key_offsets": np.asarray(key_offsets, dtype=np.int64),
        "key_tokens": np.asarray(key_tokens, dtype=np.uint32),
        "key_lang_mask": np.ascontiguousarray(key_lang_mask, dtype=np.uint32),
        "key_trans_start": np.asarray(key_trans_start, dtype=np.int64),
        "key_trans": np.asarray(key_trans, dtype=np.int32),
        "key_trans_cum": key_trans_cum,
        "trans_offsets": np.asarray(trans_offsets, dtype=np.int64),
        "trans_tokens": np.asarray(trans_tokens, dtype=np.uint32),
    }
    tables.update(_build_trie(len(flags), tables["key_offsets"], tables["key_tokens"], key_texts))
    tables["key_text_offsets"], tables["key_text"] = _offsets_and_blob([t.encode("utf-8") for t in key_texts], np.uint8)
    tables["trans_text_offsets"], tables["trans_text"] = _offsets_and_blob(
        [t.encode("utf-8") for t in trans_texts], np.uint8
    )
    return tables


def _joiner_flags(joiner_flags: np.ndarray | None, vocab_size: int) -> np.ndarray:
    """The ``joiner_flags`` table: one entry per token id (all 0 when None)."""
    if joiner_flags is None:
        return np.zeros(vocab_size, dtype=np.uint8)
    if len(joiner_flags) != vocab_size:
        raise ValueError(f"joiner_flags has {len(joiner_flags)} entries, the flags {vocab_size}")
    return np.ascontiguousarray(joiner_flags, dtype=np.uint8)


def cumulated_weights(key_trans_start: np.ndarray, weights: np.ndarray | None, n: int) -> np.ndarray:
    """``key_trans_cum``: the weights cumulated within each key-language range of ``key_trans``."""
    w = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    if len(w) != n or (n and w.min() < 1):
        raise ValueError("translation weights must be one integer >= 1 per key_trans entry")
    cum = np.cumsum(w)
    starts = np.asarray(key_trans_start, dtype=np.int64)
    ranges = np.diff(starts)
    before = np.concatenate(([0], cum))[starts[:-1]]  # the running total where each range starts
    cum -= np.repeat(before, ranges)
    if n and np.maximum.reduceat(cum, starts[:-1][ranges > 0]).max() > np.iinfo(np.uint32).max:
        raise ValueError("a key's translation weights add up to 2^32 or more")
    return cum.astype(np.uint32)


def build_tables(
    flags: np.ndarray, entries: Sequence[Entry], n_languages: int, joiner_flags: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """All tables from unique keys given as ``Entry`` objects. Raises ValueError on bad entries."""
    trans_index: dict[tuple[tuple[int, ...], str], int] = {}
    starts, key_trans, weights = [0], [], []
    for entry in entries:
        for lang in entry.translations:
            if not 0 <= lang < n_languages:
                raise ValueError(f"key {entry.text!r} has a translation in unknown language index {lang}")
        for lang in range(n_languages):
            for ids, text, *weight in entry.translations.get(lang, ()):
                key_trans.append(trans_index.setdefault((tuple(ids), text), len(trans_index)))
                weights.append(weight[0] if weight else 1)
            starts.append(len(key_trans))
    key_offsets, key_tokens = _offsets_and_blob([e.tokens for e in entries], np.uint32)
    trans_offsets, trans_tokens = _offsets_and_blob([ids for ids, _ in trans_index], np.uint32)
    return tables_from_arrays(
        flags,
        n_languages,
        key_offsets,
        key_tokens,
        [e.text for e in entries],
        np.asarray(starts, dtype=np.int64),
        np.asarray(key_trans, dtype=np.int32),
        trans_offsets,
        trans_tokens,
        [text for _, text in trans_index],
        np.asarray(weights, dtype=np.int64),
        joiner_flags,
    )


class Vocab:
    """A compiled vocabulary: read-only tables plus metadata (see the module docstring)."""

    def __init__(self, tables: Mapping[str, np.ndarray], meta: Mapping, path: Path | None = None):
        missing = sorted(set(ARRAY_DTYPES) - set(tables))
        if missing:
            raise VocabError(path or "<memory>", f"missing tables: {', '.join(missing)}")
        self.tables = dict(tables)
        self.meta = dict(meta)
        self.path = path
        self.identity: FileIdentity | None = None  # of the file it was loaded from
        self._contents: str | None = None  # contents(), once computed
        self._mmap: mmap.mmap | None = None

    @classmethod
    def from_entries(
        cls,
        flags: np.ndarray,
        entries: Sequence[Entry],
        languages: Sequence[str],
        *,
        joiner_flags: np.ndarray | None = None,
        tokenizer: Mapping | None = None,
        options: Mapping | None = None,
        report: Mapping | None = None,
    ) -> Vocab:
        """Build a vocabulary in memory from unique keys (tests'). ``joiner_flags``: default 0."""
        tables = build_tables(flags, entries, len(languages), joiner_flags)
        return cls.from_tables(tables, languages, tokenizer=tokenizer, options=options, report=report)

    @classmethod
    def from_tables(
        cls,
        tables: Mapping[str, np.ndarray],
        languages: Sequence[str],
        *,
        tokenizer: Mapping | None = None,
        options: Mapping | None = None,
        report: Mapping | None = None,
    ) -> Vocab:
        """Wrap tables built by ``tables_from_arrays`` / ``build_tables`` with their metadata."""
        languages = list(languages)
        if len(set(languages)) != len(languages):
            raise ValueError(f"languages must be unique, got {languages}")
        meta = {
            "format_version": FORMAT_VERSION,
            "languages": languages,
            "vocab_size": int(len(tables["flags"])),
            "tokenizer": dict(tokenizer or {}),
            "options": dict(options or {}),
            "report": dict(report or {}),
            "counts": table_counts(tables),
        }
        return cls(tables, meta)

    # -- properties ---------------------------------------------------------------------------
    @functools.cached_property
    def edge_table(self) -> tuple[np.ndarray, int]:
        """The kernel's hash table of the trie's first two levels of edges
        (``_kernel.build_edge_table``), built on first use: about 0.15 s and 64 MB for FreeDict
        eng-deu."""
        return build_edge_table(self.tables)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.meta["languages"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def n_keys(self) -> int:
        return len(self.tables["key_lang_mask"])

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the tokenizer this vocabulary was compiled for ('' if none)."""
        return str(self.meta.get("tokenizer", {}).get("fingerprint", ""))

    def contents(self) -> str:
        """``sha256:HEX``, a hash of the tables: what the vocabulary substitutes, whatever its
        header says (the tokenizer fingerprint alone does not tell two vocabularies of one
        tokenizer apart). Run records hold it; ``link-fast validate`` compares it."""
        if self._contents is None:
            digest = hashlib.sha256()
            for name in sorted(self.tables):
                array = np.ascontiguousarray(self.tables[name])
                digest.update(f"{name}:{array.dtype.str}:{array.size};".encode())
                digest.update(array.data.cast("B"))
            self._contents = f"sha256:{digest.hexdigest()}"
        return self._contents

    def check_unchanged(self) -> None:
        """Raise VocabError if the file this vocabulary was loaded from is no longer the file it
        was (device, inode, size, mtime): rewritten in place or replaced while in use, what was
        read from it is not what was checked. A vocabulary built in memory passes."""
        if self.path is None or self.identity is None:
            return
        try:
            stat = os.stat(self.path)
        except OSError:
            raise VocabError(self.path, "removed while in use: rerun with the vocabulary in place") from None
        if FileIdentity(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) != self.identity:
            raise VocabError(self.path, "changed on disk while in use: rerun with the new file")

    def key_tokens(self, key: int) -> tuple[int, ...]:
        o = self.tables["key_offsets"]
        return tuple(int(t) for t in self.tables["key_tokens"][o[key] : o[key + 1]])

    def key_text(self, key: int) -> str:
        o = self.tables["key_text_offsets"]
        return bytes(self.tables["key_text"][o[key] : o[key + 1]]).decode("utf-8")

    def translations(self, key: int, lang: int) -> list[tuple[tuple[int, ...], str]]:
        """(token ids, text) of each translation of ``key`` in language index ``lang``."""
        L = len(self.languages)
        start, stop = self.tables["key_trans_start"][key * L + lang : key * L + lang + 2]
        o, to = self.tables["trans_offsets"], self.tables["trans_text_offsets"]
        out = []
        for t in self.tables["key_trans"][int(start) : int(stop)].tolist():
            ids = tuple(int(x) for x in self.tables["trans_tokens"][o[t] : o[t + 1]])
            text = bytes(self.tables["trans_text"][to[t] : to[t + 1]]).decode("utf-8")
            out.append((ids, text))
        return out

    def translation_weights(self, key: int, lang: int) -> list[int]:
        """The weight of each of ``translations(key, lang)``, in the same order."""
        L = len(self.languages)
        start, stop = (int(x) for x in self.tables["key_trans_start"][key * L + lang : key * L + lang + 2])
        cum = self.tables["key_trans_cum"][start:stop].astype(np.int64)
        return np.diff(cum, prepend=0).tolist()

    def entries(self) -> Iterable[Entry]:
        """Every key with its translations, in key order."""
        for key in range(self.n_keys):
            translations = {lang: self.translations(key, lang) for lang in range(len(self.languages))}
            yield Entry(self.key_tokens(key), self.key_text(key), {k: v for k, v in translations.items() if v})

    def check_tokenizer(self, fingerprint: str, name: str = "the tokenizer") -> None:
        """Raise VocabError unless this vocabulary was compiled for a tokenizer with ``fingerprint``."""
        if self.fingerprint != fingerprint:
            compiled_for = self.meta.get("tokenizer", {}).get("name", "another tokenizer")
            raise VocabError(
                self.path or "<memory>",
                f"compiled for {compiled_for} (fingerprint {self.fingerprint[:12]}), "
                f"not for {name} (fingerprint {fingerprint[:12]})",
            )

    # -- file format --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the vocabulary to ``path`` atomically (temporary file, then rename); a file that
        cannot be written (a full disk) is a VocabError naming it."""
        path = Path(path)
        try:
            self._write(path)
        except OSError as exc:
            raise VocabError(path, f"cannot write: {exc.strerror or exc}") from None
        return path

    def _write(self, path: Path) -> None:
        layout = {}
        offset = 0
        for name in ARRAY_DTYPES:
            array = np.ascontiguousarray(self.tables[name], dtype=ARRAY_DTYPES[name])
            layout[name] = {"offset": offset, "count": int(array.size)}
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        header = dict(self.meta, arrays=layout)
        header_bytes = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
        data_start = -(-(_PREFIX.size + len(header_bytes)) // _ALIGN) * _ALIGN
        with atomic_file(path) as f:
            f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes)))
            f.write(header_bytes)
            f.write(b"\0" * (data_start - _PREFIX.size - len(header_bytes)))
            for name in ARRAY_DTYPES:
                array = np.ascontiguousarray(self.tables[name], dtype=ARRAY_DTYPES[name])
                f.write(array.tobytes())
                f.write(b"\0" * (-array.nbytes % _ALIGN))

    @classmethod
    def load(cls, path, *, tokenizer=None, validated: FileIdentity | None = None) -> Vocab:
        """Memory-map a saved vocabulary. With ``tokenizer``, check it was compiled for that one.

        The file is untrusted input: every invariant the kernel and text mode rely on is
        checked here, in one vectorised pass over the tables (``_check_tables``), so that a
        damaged or crafted file is a VocabError naming the broken table, never a crash.
        ``validated``: the ``identity`` of this file when another load checked it (the parent
        of a worker process); while the file is still that one, the table checks are not
        repeated, and a file replaced or modified since is an error."""
        path = Path(path)
        mm, identity = _map_file(path)
        if validated is not None and identity != validated:
            mm.close()
            raise VocabError(path, "changed on disk while in use: rerun with the new file")
        try:
            meta, layout, data_start = _read_header(mm, identity.size)
            tables = _wrap_tables(mm, identity.size, data_start, layout)
            if validated is None:
                _check_tables(tables, meta)
                _release_pages(mm)
        except _Corrupt as exc:
            raise VocabError(path, str(exc)) from None
        vocab = cls(tables, meta, path)
        vocab._mmap = mm
        vocab.identity = identity
        if tokenizer is not None:
            vocab.check_tokenizer(tokenizer.fingerprint, getattr(tokenizer, "name", "the tokenizer"))
        return vocab


@dataclass(frozen=True)
class FileIdentity:
    """Which file a path named when it was opened, and its state: a replaced or rewritten file
    differs in one of these."""

    device: int
    inode: int
    size: int
    mtime_ns: int


def _release_pages(mm: mmap.mmap) -> None:
    """Drop the pages the checks read from this process's resident set: the kernel reads a
    small part of the file, and the rest would count as this process's memory until it ends.
    The page cache keeps them."""
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def table_counts(tables: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The header's ``counts``: sizes of the tables, for ``link-fast info``."""
    return {
        "keys": int(len(tables["key_lang_mask"])),
        "nodes": int(len(tables["node_key"])),
        "edges": int(len(tables["edge_token"])),
        "translations": int(len(tables["key_trans"])),
        "distinct_translations": int(len(tables["trans_offsets"]) - 1),
        "max_key_tokens": int(np.diff(tables["key_offsets"]).max(initial=0)),
        "max_translation_tokens": int(np.diff(tables["trans_offsets"]).max(initial=0)),
        "max_translation_id": int(tables["trans_tokens"].max(initial=0)),
    }


def language_bytes(tables: Mapping[str, np.ndarray], n_languages: int) -> tuple[list[int], int]:
    """The table bytes attributable to each language, and those shared by all (the tables of
    one entry per token id). A key's bytes (its ids, text, offsets, its share of the trie by
    its number of tokens) are split evenly among its languages; a translation's among the
    languages that use it; each language owns its slots of ``key_trans``, ``key_trans_cum`` and
    ``key_trans_start``."""
    t, L = tables, n_languages
    n_keys = len(t["key_lang_mask"])
    shared = int(t["flags"].nbytes + t["joiner_flags"].nbytes + t["root_child"].nbytes)
    key_len = np.diff(t["key_offsets"]).astype(np.float64)
    trie = sum(t[name].nbytes for name in ("node_key", "node_edge_start", "node_edge_count", "edge_token", "edge_node"))
    key_size = key_len * 4 + np.diff(t["key_text_offsets"]) + 8 + 8 + 4
    key_size += trie * key_len / max(key_len.sum(), 1.0)
    has = (t["key_trans_start"][1:] > t["key_trans_start"][:-1]).reshape(n_keys, L)
    per_lang = (has * (key_size / np.maximum(has.sum(axis=1), 1))[:, None]).sum(axis=0)
    entry_bytes = t["key_trans"].itemsize + t["key_trans_cum"].itemsize
    per_lang += 8 * n_keys + entry_bytes * np.diff(t["key_trans_start"]).reshape(n_keys, L).sum(axis=0)
    slot_lang = np.repeat(np.tile(np.arange(L), n_keys), np.diff(t["key_trans_start"]))
    pairs = np.unique(t["key_trans"].astype(np.int64) * L + slot_lang)
    trans, lang = pairs // L, pairs % L
    trans_size = np.diff(t["trans_offsets"]) * 4 + np.diff(t["trans_text_offsets"]) + 16
    users = np.bincount(trans, minlength=len(trans_size))
    per_lang += np.bincount(lang, weights=trans_size[trans] / users[trans], minlength=L)
    return [round(x) for x in per_lang.tolist()], shared


def _lang_masks(key_trans_start: np.ndarray, n_keys: int, n_languages: int) -> np.ndarray:
    """Per key, bit ``l`` set when it has translations in language ``l`` (``key_lang_mask``)."""
    has = (key_trans_start[1:] > key_trans_start[:-1]).reshape(n_keys, n_languages)
    return (has.astype(np.uint32) << np.arange(n_languages, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)


# -- loading: every check of an untrusted file ------------------------------------------------


class _Corrupt(Exception):
    """A broken file: the message says what is wrong (``Vocab.load`` adds the path)."""


def _require(ok, table: str, problem: str) -> None:
    if not ok:
        raise _Corrupt(f"corrupt vocabulary: table {table!r} {problem}")


def _require_header(ok, problem: str) -> None:
    if not ok:
        raise _Corrupt(f"corrupt vocabulary header: {problem}")


def _is_int(value) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no count


def _map_file(path: Path) -> tuple[mmap.mmap, FileIdentity]:
    """The whole file memory-mapped read-only, and its identity."""
    refuse_special_file(path, lambda problem: VocabError(path, problem))
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if stat.st_size < _PREFIX.size:
                raise VocabError(path, "not a link_fast vocabulary (file too short)")
            identity = FileIdentity(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), identity
    except FileNotFoundError:
        raise VocabError(path, "no such file") from None
    except IsADirectoryError:
        raise VocabError(path, "is a directory, not a vocabulary file") from None
    except PermissionError:
        raise VocabError(path, "permission denied") from None


def _read_header(mm: mmap.mmap, size: int) -> tuple[dict, dict, int]:
    """The checked header: (metadata without the layout, the layout, where the arrays start)."""
    magic, version, _, header_length = _PREFIX.unpack_from(mm, 0)
    if magic != MAGIC:
        raise _Corrupt("not a link_fast vocabulary (bad magic)")
    if version != FORMAT_VERSION:
        raise _Corrupt(
            f"vocabulary format version {version}, this link_fast reads version {FORMAT_VERSION}: recompile it"
        )
    if _PREFIX.size + header_length > size:
        raise _Corrupt("truncated vocabulary (header runs past the end of the file)")
    try:
        meta = json.loads(bytes(mm[_PREFIX.size : _PREFIX.size + header_length]).decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise _Corrupt("corrupt vocabulary header (not JSON)") from None
    _check_header(meta)
    layout = meta.pop("arrays")
    return meta, layout, -(-(_PREFIX.size + header_length) // _ALIGN) * _ALIGN


def _check_header(meta) -> None:
    """The header is an object with every field ``Vocab.from_tables`` and ``save`` write, of
    its type (``counts`` is checked against the tables, in ``_check_tables``)."""
    _require_header(isinstance(meta, dict), "not a JSON object")
    for field, kind in HEADER_FIELDS.items():
        _require_header(field in meta, f"no {field!r}")
        ok = _is_int(meta[field]) if kind is int else isinstance(meta[field], kind)
        _require_header(ok, f"{field!r} is not {HEADER_KIND_NAMES[kind]}")
    _require_header(meta["format_version"] == FORMAT_VERSION, f"'format_version' is not {FORMAT_VERSION}")
    languages = meta["languages"]
    _require_header(
        1 <= len(languages) <= MAX_LANGUAGES
        and all(isinstance(lang, str) and lang for lang in languages)
        and len(set(languages)) == len(languages),
        f"'languages' is not a list of 1 to {MAX_LANGUAGES} distinct names",
    )
    _require_header(meta["vocab_size"] >= 1, "'vocab_size' is not positive")
    for field in ("name", "kind", "fingerprint"):
        _require_header(isinstance(meta["tokenizer"].get(field, ""), str), f"'tokenizer.{field}' is not a string")
    _check_report(meta["report"], languages)
    _check_layout(meta["arrays"])


def _check_report(report: dict, languages: list) -> None:
    """The per-language counts ``link-fast info`` prints, where there are any."""
    per_language = report.get("languages", {})
    _require_header(
        isinstance(per_language, dict) and set(per_language) <= set(languages),
        "'report.languages' is not an object of the vocabulary's languages",
    )
    for lang, counts in per_language.items():
        _require_header(
            isinstance(counts, dict) and all(_is_int(counts.get(name)) for name in REPORT_COUNTS),
            f"'report.languages.{lang}' lacks integer counts {', '.join(REPORT_COUNTS)}",
        )


def _check_layout(layout: dict) -> None:
    """Every table has an aligned, non-negative offset and a non-negative count."""
    for name in ARRAY_DTYPES:
        entry = layout.get(name)
        if not isinstance(entry, dict):
            raise _Corrupt(f"corrupt vocabulary header: table {name!r} missing from 'arrays'")
        offset, count = entry.get("offset"), entry.get("count")
        _require_header(
            _is_int(offset) and offset >= 0 and offset % _ALIGN == 0,
            f"table {name!r} has no {_ALIGN}-byte aligned offset",
        )
        _require_header(_is_int(count) and count >= 0, f"table {name!r} has no count")


def _wrap_tables(mm: mmap.mmap, size: int, data_start: int, layout: dict) -> dict[str, np.ndarray]:
    """Each table as a read-only array over the mapping, without copying."""
    tables = {}
    for name, dtype in ARRAY_DTYPES.items():
        start, count = data_start + layout[name]["offset"], layout[name]["count"]
        if start + count * dtype.itemsize > size:
            raise _Corrupt(f"truncated vocabulary (table {name!r} runs past the end of the file)")
        tables[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=start)
    return tables


def _check_tables(tables: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Raise ``_Corrupt`` unless the tables hold every invariant the kernel, text mode and the
    inspection methods rely on: the module docstring's layout, and the trie exactly as
    ``_build_trie`` numbers it. ``meta`` is a header that passed ``_check_header``.

    Each step reads its tables once, vectorised (about 0.2 s for FreeDict eng-deu, 250 MB);
    an index is checked before anything is looked up with it."""
    _check_sizes(tables, meta)
    _require(not np.any(tables["flags"] & np.uint8(0xFF ^ DEFINED_FLAGS)), "flags", "uses undefined flag bits")
    _check_joiner_flags(tables)
    _check_offsets(tables)
    _check_indices(tables, meta["vocab_size"])
    n_first = _check_root_children(tables)
    _check_edges(tables, n_first)
    depths = _trie_depths(tables, n_first)
    _check_node_keys(tables, n_first, depths)
    masks = _lang_masks(tables["key_trans_start"], len(tables["key_lang_mask"]), len(meta["languages"]))
    _require(np.array_equal(tables["key_lang_mask"], masks), "key_lang_mask", "does not match key_trans_start")
    _require(np.all(masks != 0), "key_trans_start", "leaves a key without translations")
    _check_weights(tables)
    _check_utf8(tables, "key_text", "key_text_offsets")
    # Translations are written into text outputs as they are: a line break in one would add
    # lines to a .txt output, a control character would act on a terminal.
    _check_utf8(tables, "trans_text", "trans_text_offsets", refuse=CONTROL_CHARS)
    _require_header(
        meta["counts"] == table_counts(tables) and all(map(_is_int, meta["counts"].values())),
        "'counts' do not match the tables",
    )


def _check_sizes(t: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Table lengths agree with the header and with each other."""
    V, L = meta["vocab_size"], len(meta["languages"])
    K, N, E, T = len(t["key_lang_mask"]), len(t["node_key"]), len(t["edge_token"]), len(t["trans_offsets"]) - 1
    for name in ("flags", "joiner_flags", "root_child"):
        _require(len(t[name]) == V, name, f"has {len(t[name])} entries, not vocab_size {V}")
    _require(1 <= N < MAX_NODES, "node_key", f"has {N} nodes, not 1 to {MAX_NODES - 1}")
    for name, n in (
        ("node_edge_start", N),
        ("node_edge_count", N),
        ("edge_node", E),
        ("key_trans_start", K * L + 1),
        ("key_trans_cum", len(t["key_trans"])),
        ("trans_offsets", max(T, 0) + 1),
        ("trans_text_offsets", max(T, 0) + 1),
        ("key_offsets", K + 1),
        ("key_text_offsets", K + 1),
    ):
        _require(len(t[name]) == n, name, f"has {len(t[name])} entries, not {n}")


def _check_joiner_flags(t: Mapping[str, np.ndarray]) -> None:
    """Joiner flags use only their defined bits, a token of joiners only has no other, and none
    is set on a special token (a boundary, which no run of joiners crosses)."""
    joiner_flags = t["joiner_flags"]
    _require(not np.any(joiner_flags & np.uint8(0xFF ^ DEFINED_JOINER_FLAGS)), "joiner_flags", "uses undefined bits")
    only = (joiner_flags & JOINER_ONLY) != 0
    _require(np.all(joiner_flags[only] == JOINER_ONLY), "joiner_flags", "gives a token of joiners only another bit")
    _require(not np.any(joiner_flags[(t["flags"] & FLAG_SPECIAL) != 0]), "joiner_flags", "marks a special token")


def _check_offsets(t: Mapping[str, np.ndarray]) -> None:
    """Every offset table starts at 0, rises (strictly, where a slice may not be empty) and
    ends at the length of the table it slices: every slice lies inside it."""
    for name, (sliced, non_empty) in OFFSET_TABLES.items():
        o = t[name]
        _require(o[0] == 0, name, "does not start at 0")
        rising = o[1:] > o[:-1] if non_empty else o[1:] >= o[:-1]
        _require(np.all(rising), name, "is not strictly rising (an empty slice)" if non_empty else "decreases")
        _require(o[-1] == len(t[sliced]), name, f"does not end at the length of {sliced!r}")


def _check_indices(t: Mapping[str, np.ndarray], vocab_size: int) -> None:
    """Token ids are inside the vocabulary, translation and key indices inside their tables
    (node ids are checked with the trie's shape)."""
    for name in ("edge_token", "trans_tokens", "key_tokens"):
        _require(
            int(t[name].max(initial=0)) < vocab_size, name, f"has token ids outside the vocabulary of {vocab_size}"
        )
    n_trans = len(t["trans_offsets"]) - 1
    if len(t["key_trans"]):
        _require(
            t["key_trans"].min() >= 0 and t["key_trans"].max() < n_trans,
            "key_trans",
            f"points outside the {n_trans} translations",
        )
    n_keys = len(t["key_lang_mask"])
    _require(
        t["node_key"].min() >= -1 and t["node_key"].max() < n_keys, "node_key", f"points outside the {n_keys} keys"
    )


def _check_weights(t: Mapping[str, np.ndarray]) -> None:
    """Within each key-language range, the cumulated weights start at 1 or more and rise
    strictly: every translation can be drawn, and the kernel's scan stops inside the range."""
    cum = t["key_trans_cum"].astype(np.int64)
    if not len(cum):
        return
    step = np.diff(cum, prepend=0)
    firsts = t["key_trans_start"][:-1][np.diff(t["key_trans_start"]) > 0]  # of each non-empty range
    step[firsts] = cum[firsts]
    _require(bool(step.min() >= 1), "key_trans_cum", "does not rise within a key's translations")


def _check_root_children(t: Mapping[str, np.ndarray]) -> int:
    """The nodes one token deep are 1..n in token order, each reached by one token: returns n."""
    root_child = t["root_child"]
    first_tokens = np.flatnonzero(root_child >= 0)
    ok = root_child.min() >= -1 and np.array_equal(root_child[first_tokens], np.arange(1, len(first_tokens) + 1))
    _require(ok, "root_child", "does not number the nodes one token deep 1, 2, ... in token order")
    return len(first_tokens)


def _check_edges(t: Mapping[str, np.ndarray], n_first: int) -> None:
    """Each node's edges are the next slice of the edge tables, sorted by token, and edge e
    leads to node n_first + 1 + e: every node below the first depth has exactly one parent."""
    start, count, edge_node = t["node_edge_start"], t["node_edge_count"], t["edge_node"]
    n_nodes, n_edges = len(count), len(edge_node)
    _require(
        count.min() >= 0 and count[0] == 0,
        "node_edge_count",
        "is negative, or gives the root edges (its children are in root_child)",
    )
    ends = np.cumsum(count, dtype=np.int64)
    _require(ends[-1] == n_edges, "node_edge_count", f"does not add up to the {n_edges} edges")
    _require(
        start[0] == 0 and np.array_equal(start[1:], ends[:-1]),
        "node_edge_start",
        "is not where the previous node's edges end",
    )
    _require(
        n_edges == n_nodes - 1 - n_first and np.array_equal(edge_node, np.arange(n_first + 1, n_nodes, dtype=np.int32)),
        "edge_node",
        "does not number the nodes depth by depth, after root_child's",
    )
    slice_start = np.zeros(n_edges + 1, dtype=bool)
    slice_start[start] = True  # the first edge of a node may be smaller than the edge before it
    tokens = t["edge_token"]
    _require(
        np.all((tokens[1:] > tokens[:-1]) | slice_start[1:-1]), "edge_token", "is not sorted within a node's edges"
    )


def _trie_depths(t: Mapping[str, np.ndarray], n_first: int) -> list[int]:
    """Where each depth of the trie starts among the node ids, and where the last one ends.

    With the edges checked, the children of one depth's nodes are the next range of ids, so
    the trie is a tree reached from the root. Stops past the longest key's length: a crafted
    chain of nodes makes this fail, not slow."""
    start, count = t["node_edge_start"], t["node_edge_count"]
    max_depth = int(np.diff(t["key_offsets"]).max(initial=0))
    bounds = [0, 1]  # the root, alone at depth 0
    stop = 1 + n_first
    while stop > bounds[-1]:  # nodes [bounds[-1], stop) are the next depth
        _require(len(bounds) - 1 <= max_depth, "node_edge_count", "makes the trie deeper than its longest key")
        bounds.append(stop)
        stop = 1 + n_first + int(start[stop - 1]) + int(count[stop - 1])
    _require(bounds[-1] == len(count), "edge_node", "leaves nodes the root does not reach")
    return bounds


def _check_node_keys(t: Mapping[str, np.ndarray], n_first: int, depths: list[int]) -> None:
    """Each key ends at exactly one node, as deep as the key is long and reached by its last
    token; the root has no key and every leaf has one (nodes are prefixes of keys)."""
    node_key, count = t["node_key"], t["node_edge_count"]
    n_keys = len(t["key_lang_mask"])
    keyed = np.flatnonzero(node_key >= 0)
    key_node = np.full(n_keys, -1, dtype=np.int32)
    key_node[node_key[keyed]] = keyed
    _require(
        node_key[0] == -1 and len(keyed) == n_keys and np.all(key_node >= 0),
        "node_key",
        "does not give each key exactly one node",
    )
    _require(np.all((count[1:] > 0) | (node_key[1:] >= 0)), "node_key", "leaves a leaf without a key")
    offsets = t["key_offsets"]
    lengths = np.diff(offsets)
    first_of_depth = np.asarray(depths)
    _require(
        len(depths) - 2 == lengths.max(initial=0)
        and np.all((first_of_depth[lengths] <= key_node) & (key_node < first_of_depth[lengths + 1])),
        "key_offsets",
        "does not give each key the length of its node's depth in the trie (node_key)",
    )
    # the token that reaches each node: node i <= n_first from the root, node i > n_first by edge i - n_first - 1
    first_tokens = np.flatnonzero(t["root_child"] >= 0).astype(np.uint32)
    node_token = np.concatenate([np.zeros(1, dtype=np.uint32), first_tokens, t["edge_token"]])
    _require(
        np.array_equal(node_token[key_node], t["key_tokens"][offsets[1:] - 1]),
        "key_tokens",
        "does not end each key with the token that reaches its node (node_key, root_child, edge_token)",
    )


def _check_utf8(
    t: Mapping[str, np.ndarray], blob_name: str, offsets_name: str, refuse: re.Pattern | None = None
) -> None:
    """The strings decode: the blob is UTF-8 and no offset falls inside a character; with
    ``refuse``, no string holds a character it matches."""
    blob, data = t[blob_name], t[blob_name].data
    decoder = codecs.getincrementaldecoder("utf-8")()
    # In chunks: the text is dropped at once, and a chunk of ASCII stays one byte a character
    # (a single character above U+00FF would make a whole-blob string two or four).
    for begin in range(0, len(blob), _UTF8_CHUNK):
        start = begin - len(decoder.getstate()[0])  # where the text decoded now begins: held bytes first
        try:
            text = decoder.decode(data[begin : begin + _UTF8_CHUNK], final=begin + _UTF8_CHUNK >= len(blob))
        except UnicodeDecodeError as exc:
            raise _Corrupt(
                f"corrupt vocabulary: table {blob_name!r} is not UTF-8 (near byte {begin + exc.start})"
            ) from None
        found = refuse.search(text) if refuse is not None else None
        if found is not None:
            at = start + len(text[: found.start()].encode("utf-8"))
            index = int(np.searchsorted(t[offsets_name], at, side="right")) - 1
            raise _Corrupt(
                f"corrupt vocabulary: table {blob_name!r} holds the control character "
                f"U+{ord(found.group()):04X} (in string {index})"
            )
    offsets = t[offsets_name]
    inside = offsets[: np.searchsorted(offsets, len(blob))]  # rising: the ones at the end come last
    _require(not np.any((blob[inside] & 0xC0) == 0x80), offsets_name, "splits a UTF-8 character")
