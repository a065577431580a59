"""Text mode's native index (link_fast/_text.pyx): the character trie of every key's pattern,
built once per vocabulary and cached next to it as ``VOCAB.lfv.textcache``.

The trie holds every key (the languages in play are checked while matching), so one cache
serves every sampling. The cache is untrusted like every file: it is used only when its
header names this format, this Python's Unicode tables and the vocabulary's key texts (a
CRC of them), its payload's CRC matches, and ``TextIndex`` finds every index in range;
anything else is rebuilt and written again (atomically). A directory that cannot be written
just means no cache.
"""

from __future__ import annotations

import json
import mmap
import struct
import time
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import _text
from ..draws import probability_threshold
from ..errors import FileError, VocabError
from ..io import atomic_file, open_regular
from ..sampling import Sampling
from ..substituter import Stats
from ..vocab import Vocab
from .matcher import fusing_tokens, separate

if TYPE_CHECKING:
    from .substituter import Substitution

MAGIC = b"LFTEXTC1"
FORMAT = 2
SUFFIX = ".textcache"
_ALIGN = 64
_ARRAYS = {  # name -> dtype, in file order
    "nodes": np.int32,  # (first child, children, code point, pattern) per node
    "term_spaced": np.int32,
    "term_bare": np.int32,
    "root_child": np.int32,
    "word_bits": np.uint8,
}
_WORD_BITS: np.ndarray | None = None  # this process's, made once (half a second)
_LOADED: dict[tuple[str, str], _text.TextIndex] = {}
_DIGESTS: dict[
    object, str
] = {}  # vocabulary file identity -> source_digest  # (cache path, source digest) -> index, this process's


@dataclass
class IndexInfo:
    """How the index was had: ``how`` is "built", "built, cached", "loaded" or "reused"."""

    how: str
    seconds: float
    nodes: int
    patterns: int


def cache_path(vocab: Vocab) -> Path | None:
    return None if vocab.path is None else Path(f"{vocab.path}{SUFFIX}")


def source_digest(vocab: Vocab) -> str:
    """What the trie depends on: the keys' texts (and this format, and the Unicode tables).
    Computed once per vocabulary file in a process (its identity: device, inode, size, time)."""
    identity = vocab.identity
    got = _DIGESTS.get(identity) if identity is not None else None
    if got is None:
        got = _digest(vocab)
        if identity is not None:
            _DIGESTS[identity] = got
    return got


def _digest(vocab: Vocab) -> str:
    crc = _crc(vocab.tables["key_text"])
    crc = _crc(vocab.tables["key_text_offsets"], crc)
    return f"{FORMAT}:{unicodedata.unidata_version}:{vocab.n_keys}:{crc:08x}"


def text_index(vocab: Vocab, *, cache: bool = True) -> tuple[_text.TextIndex, IndexInfo]:
    """The vocabulary's index: reused in this process, loaded from its cache, or built (and
    cached when ``cache`` and the vocabulary has a file)."""
    started = time.perf_counter()
    path = cache_path(vocab) if cache else None
    digest = source_digest(vocab)
    memo = (str(path), digest)  # a vocabulary made in memory is memoised by its keys alone
    index = _LOADED.get(memo)
    how = "reused"
    if index is None and path is not None:
        index = _load(path, digest, vocab.n_keys)
        how = "loaded"
    if index is None:
        arrays = build_arrays(vocab)
        index = _index(arrays, vocab.n_keys)
        how = "built"
        if path is not None and _save(path, digest, arrays):
            how = "built, cached"
    _LOADED.clear()  # one vocabulary's index held at a time
    _LOADED[memo] = index
    info = IndexInfo(how, time.perf_counter() - started, index.n_nodes, index.n_terms)
    return index, info


def forget() -> None:
    """Drop this process's index (the next ``text_index`` loads the cache again)."""
    _LOADED.clear()


def build_arrays(vocab: Vocab) -> dict[str, np.ndarray]:
    """The trie's arrays for every key of ``vocab``: the pattern of a key is its surface text
    without its leading space; a pattern has a spaced and a bare key (-1 if none)."""
    global _WORD_BITS
    blob = bytes(np.asarray(vocab.tables["key_text"]))
    offsets = np.asarray(vocab.tables["key_text_offsets"]).tolist()
    forms: dict[str, list[int]] = {}
    try:
        for key in range(vocab.n_keys):
            text = blob[offsets[key] : offsets[key + 1]].decode("utf-8")
            spaced = text.startswith(" ")
            if spaced:
                text = text[1:]
            if text:
                forms.setdefault(text, [-1, -1])[0 if spaced else 1] = key
    except UnicodeDecodeError as exc:
        raise VocabError(vocab.path or "vocabulary", f"key {key}'s text is not UTF-8: {exc.reason}") from None
    patterns = sorted(forms)
    arrays = _text.build_trie(patterns)
    keys = np.array([forms[p] for p in patterns], dtype=np.int32).reshape(-1, 2)
    arrays["term_spaced"] = np.ascontiguousarray(keys[:, 0])
    arrays["term_bare"] = np.ascontiguousarray(keys[:, 1])
    if _WORD_BITS is None:
        _WORD_BITS = _text.word_bits()
    arrays["word_bits"] = _WORD_BITS
    return arrays


def _crc(array, crc: int = 0) -> int:
    """CRC-32 of an array's bytes, continuing ``crc``; no copy of the array."""
    return zlib.crc32(memoryview(cast(Any, np.ascontiguousarray(array))).cast("B"), crc)


def _index(arrays: dict[str, np.ndarray], n_keys: int) -> _text.TextIndex:
    a = arrays
    return _text.TextIndex(a["nodes"], a["term_spaced"], a["term_bare"], a["root_child"], a["word_bits"], n_keys)


def _save(path: Path, digest: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write the cache; False when it cannot be written (the index is used all the same)."""
    layout, offset = [], 0
    for name, dtype in _ARRAYS.items():
        array = np.ascontiguousarray(arrays[name], dtype=dtype)
        layout.append([name, len(array), offset])
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    crc = 0
    for name in _ARRAYS:
        crc = _crc(np.asarray(arrays[name], dtype=_ARRAYS[name]), crc)
    header = json.dumps({"source": digest, "arrays": layout, "crc": crc}).encode()
    head = MAGIC + struct.pack("<Q", len(header)) + header
    head += b"\0" * (-len(head) % _ALIGN)
    try:
        with atomic_file(path, sync=False) as f:
            f.write(head)
            for name, dtype in _ARRAYS.items():
                data = np.ascontiguousarray(arrays[name], dtype=dtype).tobytes()
                f.write(data + b"\0" * (-len(data) % _ALIGN))
    except (OSError, FileError):  # FileError: a link at the cache's name, left alone
        return False
    return True


def _load(path: Path, digest: str, n_keys: int) -> _text.TextIndex | None:
    """The cached index, or None when there is none or it is stale, damaged or inconsistent."""
    try:
        with open_regular(path, ValueError) as f:  # a FIFO in its place is no cache, not a wait
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        if mm[: len(MAGIC)] != MAGIC or len(mm) < len(MAGIC) + 8:
            return None
        (size,) = struct.unpack_from("<Q", mm, len(MAGIC))
        start = len(MAGIC) + 8
        if size > len(mm) - start:
            return None
        header = json.loads(bytes(mm[start : start + size]))
        if not isinstance(header, dict) or header.get("source") != digest:
            return None
        data_start = -(-(start + size) // _ALIGN) * _ALIGN
        arrays, crc = {}, 0
        for (name, count, offset), (expected, dtype) in zip(header["arrays"], _ARRAYS.items(), strict=True):
            if name != expected or not isinstance(count, int) or not isinstance(offset, int) or count < 0:
                return None
            begin = data_start + offset
            if offset < 0 or begin + count * np.dtype(dtype).itemsize > len(mm):
                return None
            arrays[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=begin)
            crc = _crc(arrays[name], crc)
        if crc != header["crc"]:
            return None
        return _index(arrays, n_keys)
    except (ValueError, TypeError, KeyError, struct.error):
        return None


def _mask(weights: list[int]) -> int:
    """The languages in play (weight > 0) as a bit mask."""
    return sum(1 << lang for lang, weight in enumerate(weights) if weight)


_IN_PLAY: dict[tuple[Any, int], bool] = {}


def all_in_play(vocab: Vocab, mask: int) -> bool:
    """Whether every key has a language of ``mask``: then no match needs the check. Kept per
    vocabulary file (its identity) and mask in this process: a pass over millions of keys
    costs milliseconds, and a run makes a sampler per file."""
    memo = (vocab.identity, mask)
    got = _IN_PLAY.get(memo) if vocab.identity is not None else None
    if got is None:
        got = bool(np.all(np.asarray(vocab.tables["key_lang_mask"]) & np.uint32(mask)))
        if vocab.identity is not None:
            if len(_IN_PLAY) > 64:
                _IN_PLAY.clear()
            _IN_PLAY[memo] = got
    return got


class NativeText:
    """``TextSubstituter``'s native path: the index, the sampler of one sampling, and a
    document's rewrite with the statistics of ``TextSubstituter.rewrite``."""

    def __init__(self, vocab: Vocab, sampling: Sampling, weights: list[int], tokenizer=None, *, cache: bool = True):
        self.index, self.info = text_index(vocab, cache=cache)
        self.strict = tokenizer is not None
        self._fusing: tuple[str, ...] = ()
        if tokenizer is not None:
            self._fusing, self._fusing_ids = fusing_tokens(vocab, tokenizer)
            self._tokenizer = tokenizer
        self.languages = vocab.languages
        t = vocab.tables
        words_basis = sampling.ratio_basis == "words"
        self.sampler = _text.TextSampler(
            self.index,
            np.asarray(t["key_lang_mask"]),
            np.asarray(t["key_trans_start"]),
            np.asarray(t["key_trans"]),
            np.asarray(t["key_trans_cum"]),
            np.asarray(t["trans_text_offsets"]),
            np.asarray(t["trans_text"]),
            weights,
            portion_threshold=probability_threshold(sampling.portion),
            ratio_threshold=probability_threshold(sampling.ratio),
            ratio=sampling.ratio,
            words_basis=words_basis,
            doc_scope=sampling.lang_scope == "document",
            strict=self.strict,
            all_in_play=all_in_play(vocab, _mask(weights)),
        )

    def drop(self, text: str) -> Callable[[int, int], bool] | None:
        """With token boundaries: whether a bare match at [start, end) of ``text`` follows text
        of a token that fuses with it (matcher.Matcher._valid's test)."""
        if not self._fusing:
            return None
        fusing, tokenizer, ids = self._fusing, self._tokenizer, self._fusing_ids

        def drop(start: int, end: int) -> bool:
            return text.endswith(fusing, 0, start) and not separate(tokenizer, ids, text, start, end)

        return drop

    def rewrite(
        self,
        text: str,
        doc: int,
        base: int,
        stats: Stats,
        substitutions: bool,
        emit: Callable[[Any], None],
        emit_chars: int,
        as_json: bool = False,
    ) -> list[Substitution] | None:
        """``TextSubstituter.rewrite`` (same contract), natively; a long output goes to ``emit``
        in pieces of about ``emit_chars`` input characters. ``as_json``: the pieces are
        ``TextSubstituter.rewrite_json``'s, bytes of a JSON string's body."""
        words, candidates, eligible, counts, edits = self.sampler.rewrite(text, doc, base, self.drop(text))
        stats.documents += 1
        stats.words += words
        stats.candidates += candidates
        stats.size_in += len(text)
        if eligible:
            stats.eligible_documents += 1
            stats.eligible_candidates += candidates
        for lang, count in enumerate(counts):
            if count:
                stats.substitutions[self.languages[lang]] += count
        if edits is None:
            stats.size_out += len(text)
            return None
        starts, lengths, langs, chosen = edits
        stats.size_out += self._emit(text, starts, lengths, chosen, emit, emit_chars, as_json)
        if not substitutions:
            return []
        return self._substitutions(text, starts, lengths, langs, chosen)

    def _emit(
        self, text: str, starts, lengths, chosen, emit: Callable[[Any], None], emit_chars: int, as_json: bool
    ) -> int:
        """The output to ``emit``, in pieces of about ``emit_chars`` input characters for a long
        text (a cut never falls inside an edit), as str or, ``as_json``, as a JSON string's
        body in UTF-8; returns its length in characters."""
        sampler, n = self.sampler, len(text)

        def render(*where: int) -> tuple[Any, int]:
            if as_json:
                return sampler.render_json(text, starts, lengths, chosen, *where)
            out = sampler.render(text, starts, lengths, chosen, *where)
            return out, len(out)

        if n <= emit_chars:
            out, length = render(0, len(starts), 0, n)
            emit(out)
            return length
        ends = starts + lengths
        length = lo = first = 0
        while lo < n:
            hi = min(n, lo + emit_chars)
            stop = int(np.searchsorted(starts, hi, "left"))
            if stop > first:
                hi = max(hi, int(ends[stop - 1]))
            piece, chars = render(first, stop, lo, hi)
            length += chars
            emit(piece)
            lo, first = hi, stop
        return length

    def _substitutions(self, text: str, starts, lengths, langs, chosen) -> list[Substitution]:
        """The edits as ``Substitution``s, offsets in the output text."""
        from .substituter import Substitution  # that module imports this one

        subs, shift = [], 0
        translation, languages = self.sampler.translation, self.languages
        for start, length, lang, t in zip(starts.tolist(), lengths.tolist(), langs.tolist(), chosen.tolist()):
            written = translation(t)
            at = start + shift
            subs.append(Substitution(at, at + len(written), text[start : start + length], written, languages[lang]))
            shift += len(written) - length
        return subs
