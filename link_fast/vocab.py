"""The compiled vocabulary: a token-id trie plus replacement table for one tokenizer.

A ``Vocab`` is a set of flat numpy arrays and a JSON header, saved as one file::

    b"LINKFAST" | <I format version | <I 0 | <Q header length | header JSON | arrays

Every array starts at a 64-byte aligned offset recorded in the header, so ``Vocab.load``
memory-maps the file and wraps each array without copying: loading is O(1) and N worker
processes share one copy in the page cache.

Tables (``K`` keys, ``L`` languages, ``T`` translations, root = node 0):

- ``flags[vocab_size]`` uint8: per-token boundary flags (``link_fast.tokenizer.FLAG_*``).
- ``root_child[vocab_size]`` int32: node reached from the root by each token, or -1. A dense
  table, because resolving the first token of a word is the hot path.
- ``node_key`` int32, ``node_edge_start`` / ``node_edge_count`` int32 per node: the key that
  ends at the node (or -1) and its children, a slice of ``edge_token`` (sorted) / ``edge_node``.
- ``key_lang_mask[K]`` uint32: bit ``l`` set when key has translations in language ``l``.
- ``key_trans_start[K * L + 1]`` int64: translations of key ``k`` in language ``l`` are
  ``key_trans[key_trans_start[k*L + l] : key_trans_start[k*L + l + 1]]``, indices into
- ``trans_offsets[T + 1]`` int64 / ``trans_tokens`` uint32: the token ids of each distinct
  translation form (stored once however many keys share it).
- ``key_offsets`` / ``key_tokens``, ``key_text_offsets`` / ``key_text``, ``trans_text_offsets`` /
  ``trans_text``: the keys' token ids and the surface strings, for inspection and text mode.
"""

from __future__ import annotations

import functools
import itertools
import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import VocabError

MAGIC = b"LINKFAST"
FORMAT_VERSION = 2
MAX_LANGUAGES = 32  # languages are bits of a uint32 mask
_PREFIX = struct.Struct("<8sIIQ")
_ALIGN = 64

# name -> dtype of every array a vocabulary file must hold
ARRAY_DTYPES: dict[str, np.dtype] = {
    "flags": np.dtype(np.uint8),
    "root_child": np.dtype(np.int32),
    "node_key": np.dtype(np.int32),
    "node_edge_start": np.dtype(np.int32),
    "node_edge_count": np.dtype(np.int32),
    "edge_token": np.dtype(np.uint32),
    "edge_node": np.dtype(np.int32),
    "key_lang_mask": np.dtype(np.uint32),
    "key_trans_start": np.dtype(np.int64),
    "key_trans": np.dtype(np.int32),
    "trans_offsets": np.dtype(np.int64),
    "trans_tokens": np.dtype(np.uint32),
    "key_offsets": np.dtype(np.int64),
    "key_tokens": np.dtype(np.uint32),
    "key_text_offsets": np.dtype(np.int64),
    "key_text": np.dtype(np.uint8),
    "trans_text_offsets": np.dtype(np.int64),
    "trans_text": np.dtype(np.uint8),
}


@dataclass(frozen=True)
class Entry:
    """One key of the trie: a token-id sequence and its translations per language index."""

    tokens: tuple[int, ...]
    text: str
    # translations[lang_index] = [(token ids, text), ...]
    translations: Mapping[int, Sequence[tuple[tuple[int, ...], str]]]


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
        seen = {}
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
) -> dict[str, np.ndarray]:
    """All tables from flat arrays (see the module docstring). Raises ValueError on bad input."""
    if not 1 <= n_languages <= MAX_LANGUAGES:
        raise ValueError(f"between 1 and {MAX_LANGUAGES} languages are supported, got {n_languages}")
    n_keys, n_trans = len(key_offsets) - 1, len(trans_offsets) - 1
    if len(key_trans_start) != n_keys * n_languages + 1 or key_trans_start[-1] != len(key_trans):
        raise ValueError("key_trans_start does not match the keys, languages and key_trans")
    if len(key_trans) and (key_trans.min() < 0 or key_trans.max() >= n_trans):
        raise ValueError("key_trans points outside the translations")
    if n_trans and np.diff(trans_offsets).min() < 1:
        raise ValueError("a translation has no tokens")
    if int(trans_tokens.max(initial=0)) >= len(flags):
        raise ValueError("a translation has a token id outside the vocabulary")
    per_lang = np.diff(key_trans_start).reshape(n_keys, n_languages) > 0 if n_keys else np.zeros((0, n_languages), bool)
    key_lang_mask = (per_lang.astype(np.uint32) << np.arange(n_languages, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    if n_keys and key_lang_mask.min() == 0:
        raise ValueError(f"key {key_texts[int(np.argmin(key_lang_mask))]!r} has no translation")
    tables = {
        "flags": np.ascontiguousarray(flags, dtype=np.uint8),
        "key_offsets": np.asarray(key_offsets, dtype=np.int64),
        "key_tokens": np.asarray(key_tokens, dtype=np.uint32),
        "key_lang_mask": np.ascontiguousarray(key_lang_mask, dtype=np.uint32),
        "key_trans_start": np.asarray(key_trans_start, dtype=np.int64),
        "key_trans": np.asarray(key_trans, dtype=np.int32),
        "trans_offsets": np.asarray(trans_offsets, dtype=np.int64),
        "trans_tokens": np.asarray(trans_tokens, dtype=np.uint32),
    }
    tables.update(_build_trie(len(flags), tables["key_offsets"], tables["key_tokens"], key_texts))
    tables["key_text_offsets"], tables["key_text"] = _offsets_and_blob([t.encode("utf-8") for t in key_texts], np.uint8)
    tables["trans_text_offsets"], tables["trans_text"] = _offsets_and_blob([t.encode("utf-8") for t in trans_texts], np.uint8)
    return tables


def build_tables(flags: np.ndarray, entries: Sequence[Entry], n_languages: int) -> dict[str, np.ndarray]:
    """All tables from unique keys given as ``Entry`` objects. Raises ValueError on bad entries."""
    trans_index: dict[tuple[tuple[int, ...], str], int] = {}
    starts, key_trans = [0], []
    for entry in entries:
        for lang in entry.translations:
            if not 0 <= lang < n_languages:
                raise ValueError(f"key {entry.text!r} has a translation in unknown language index {lang}")
        for lang in range(n_languages):
            for ids, text in entry.translations.get(lang, ()):
                key_trans.append(trans_index.setdefault((tuple(ids), text), len(trans_index)))
            starts.append(len(key_trans))
    key_offsets, key_tokens = _offsets_and_blob([e.tokens for e in entries], np.uint32)
    trans_offsets, trans_tokens = _offsets_and_blob([ids for ids, _ in trans_index], np.uint32)
    return tables_from_arrays(
        flags, n_languages, key_offsets, key_tokens, [e.text for e in entries],
        np.asarray(starts, dtype=np.int64), np.asarray(key_trans, dtype=np.int32),
        trans_offsets, trans_tokens, [text for _, text in trans_index],
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
        self._mmap = None

    @classmethod
    def from_entries(
        cls,
        flags: np.ndarray,
        entries: Sequence[Entry],
        languages: Sequence[str],
        *,
        tokenizer: Mapping | None = None,
        options: Mapping | None = None,
        report: Mapping | None = None,
    ) -> "Vocab":
        """Build a vocabulary in memory from unique keys (the compiler's last step, and tests')."""
        return cls.from_tables(build_tables(flags, entries, len(languages)), languages,
                               tokenizer=tokenizer, options=options, report=report)

    @classmethod
    def from_tables(
        cls,
        tables: Mapping[str, np.ndarray],
        languages: Sequence[str],
        *,
        tokenizer: Mapping | None = None,
        options: Mapping | None = None,
        report: Mapping | None = None,
    ) -> "Vocab":
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
            "counts": {
                "keys": int(len(tables["key_lang_mask"])),
                "nodes": int(len(tables["node_key"])),
                "edges": int(len(tables["edge_token"])),
                "translations": int(len(tables["key_trans"])),
                "distinct_translations": int(len(tables["trans_offsets"]) - 1),
                "max_key_tokens": int(np.diff(tables["key_offsets"]).max(initial=0)),
                "max_translation_tokens": int(np.diff(tables["trans_offsets"]).max(initial=0)),
                "max_translation_id": int(tables["trans_tokens"].max(initial=0)),
            },
        }
        return cls(tables, meta)

    # -- properties ---------------------------------------------------------------------------
    @functools.cached_property
    def edge_table(self) -> tuple[np.ndarray, int]:
        """The kernel's hash table of the trie's first two levels of edges
        (``_kernel.build_edge_table``), built on first use: about 0.15 s and 64 MB for FreeDict
        eng-deu."""
        from ._kernel import build_edge_table

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
        """Write the vocabulary to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        layout = {}
        offset = 0
        for name in ARRAY_DTYPES:
            array = np.ascontiguousarray(self.tables[name], dtype=ARRAY_DTYPES[name])
            layout[name] = {"offset": offset, "count": int(array.size)}
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        header = dict(self.meta, arrays=layout)
        header_bytes = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
        data_start = -(-(_PREFIX.size + len(header_bytes)) // _ALIGN) * _ALIGN
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes)))
                f.write(header_bytes)
                f.write(b"\0" * (data_start - _PREFIX.size - len(header_bytes)))
                for name in ARRAY_DTYPES:
                    array = np.ascontiguousarray(self.tables[name], dtype=ARRAY_DTYPES[name])
                    f.write(array.tobytes())
                    f.write(b"\0" * (-array.nbytes % _ALIGN))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path, *, tokenizer=None) -> "Vocab":
        """Memory-map a saved vocabulary. With ``tokenizer``, check it was compiled for that one."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < _PREFIX.size:
                    raise VocabError(path, "not a link_fast vocabulary (file too short)")
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise VocabError(path, "no such file") from None
        except IsADirectoryError:
            raise VocabError(path, "is a directory, not a vocabulary file") from None
        except PermissionError:
            raise VocabError(path, "permission denied") from None
        magic, version, _, header_length = _PREFIX.unpack_from(mm, 0)
        if magic != MAGIC:
            raise VocabError(path, "not a link_fast vocabulary (bad magic)")
        if version != FORMAT_VERSION:
            raise VocabError(
                path, f"vocabulary format version {version}, this link_fast reads version {FORMAT_VERSION}: recompile it"
            )
        if _PREFIX.size + header_length > size:
            raise VocabError(path, "truncated vocabulary (header runs past the end of the file)")
        try:
            meta = json.loads(bytes(mm[_PREFIX.size : _PREFIX.size + header_length]).decode("utf-8"))
            layout = meta.pop("arrays")
        except (ValueError, KeyError):
            raise VocabError(path, "corrupt vocabulary header") from None
        data_start = -(-(_PREFIX.size + header_length) // _ALIGN) * _ALIGN
        tables = {}
        for name, dtype in ARRAY_DTYPES.items():
            if name not in layout:
                raise VocabError(path, f"corrupt vocabulary: table {name!r} missing")
            start = data_start + int(layout[name]["offset"])
            count = int(layout[name]["count"])
            if start + count * dtype.itemsize > size:
                raise VocabError(path, f"truncated vocabulary (table {name!r} runs past the end of the file)")
            tables[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=start)
        vocab = cls(tables, meta, path)
        vocab._mmap = mm
        _check_consistent(vocab)
        if tokenizer is not None:
            vocab.check_tokenizer(tokenizer.fingerprint, getattr(tokenizer, "name", "the tokenizer"))
        return vocab


def _check_consistent(vocab: Vocab) -> None:
    """Cheap structural checks, so a damaged file fails here and not inside the kernel."""
    t = vocab.tables
    V, L = vocab.vocab_size, len(vocab.languages)
    K, N, E = len(t["key_lang_mask"]), len(t["node_key"]), len(t["edge_token"])
    T = len(t["trans_offsets"]) - 1
    problems = []
    if not 1 <= L <= MAX_LANGUAGES:
        problems.append(f"{L} languages")
    if len(t["flags"]) != V or len(t["root_child"]) != V:
        problems.append("per-token tables do not match vocab_size")
    if len(t["node_edge_start"]) != N or len(t["node_edge_count"]) != N or len(t["edge_node"]) != E:
        problems.append("trie tables disagree in length")
    if len(t["key_trans_start"]) != K * L + 1 or T < 0 or int(t["key_trans_start"][-1]) != len(t["key_trans"]):
        problems.append("translation tables disagree in length")
    if not problems:
        if N and (t["node_key"].max(initial=-1) >= K or t["root_child"].max(initial=-1) >= N or t["edge_node"].max(initial=-1) >= N):
            problems.append("trie points outside its tables")
        elif E and int((t["node_edge_start"].astype(np.int64) + t["node_edge_count"]).max()) > E:
            problems.append("trie edges out of range")
        elif int(t["trans_tokens"].max(initial=0)) >= V:
            problems.append("translation token ids outside the vocabulary")
        elif len(t["key_trans"]) and (int(t["key_trans"].min()) < 0 or int(t["key_trans"].max()) >= T):
            problems.append("translation indices out of range")
        elif int(t["trans_offsets"][-1]) != len(t["trans_tokens"]):
            problems.append("translation offsets out of range")
    if problems:
        raise VocabError(vocab.path or "<memory>", "corrupt vocabulary: " + "; ".join(problems))
