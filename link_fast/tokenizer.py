"""Tokenizer adapter: one small interface over the tokenizer files pretraining corpora use.

Formats (detected from the file's content, not its name):

* Hugging Face ``tokenizers`` JSON (``tokenizer.json``) with a BPE or Unigram model and either a
  ByteLevel (GPT-2 / Llama-3 style) or a Metaspace (SentencePiece style, ``▁``) decoder.
* SentencePiece ``.model`` protobuf files.
* Mistral's Tekken JSON (tiktoken-style byte-level BPE: ``config`` + base64 ``vocab``), read
  directly and run by ``tiktoken``.
* Plain ``.tiktoken`` files (``base64 rank`` lines), run by ``tiktoken`` with the cl100k pattern
  unless another one is given.

Every adapter answers the same questions: vocabulary size, special-token ids, encode a string as
running text (no BOS/EOS, special-token strings in the text are treated as plain text), each
token's decoded bytes, and a fingerprint of the vocabulary. ``token_flags`` turns the decoded bytes
into the per-token word-boundary flags the vocabulary compiler and the kernel use, ``token_joiners``
into the joiner flags that keep matches out of code, URLs and paths (docs/DESIGN.md §3).

The optional libraries (``tokenizers``, ``sentencepiece``, ``tiktoken``) are imported only by the
loader of their format, so a user who only needs one of them installs only that one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from .errors import InputError, TokenizerError
from .io import refuse_special_file

__all__ = [
    "FLAG_WS_START",
    "FLAG_GLUE_LEFT",
    "FLAG_END_WORD",
    "FLAG_SPECIAL",
    "FLAG_HAS_WORD",
    "CL100K_PATTERN",
    "Tokenizer",
    "HFTokenizer",
    "SentencePieceTokenizer",
    "TiktokenTokenizer",
    "NAMED_TOKENIZERS",
    "load_tokenizer",
    "resolve_tokenizer",
    "token_flags",
    "flags_for_bytes",
    "JOINERS",
    "JOINER_ONLY",
    "JOINER_THEN_WORD",
    "WORD_THEN_JOINER",
    "BACKTICK",
    "JOINERS_THEN_BACKTICK",
    "BACKTICK_THEN_JOINERS",
    "token_joiners",
    "joiners_for_bytes",
    "bytes_to_unicode",
]

# ---------------------------------------------------------------------------------------------
# Boundary flags
# ---------------------------------------------------------------------------------------------

# The same bits as csrc/link_fast.h's LF_* (exported as link_fast._kernel.FLAG_*); tests/test_kernel.py
# pins the two equal.
FLAG_WS_START = 1  # decoded text starts with whitespace
FLAG_GLUE_LEFT = 2  # first character is a word character -> token continues the previous word
FLAG_END_WORD = 4  # last character is a word character
FLAG_SPECIAL = 8  # special/control token: never matched, always a boundary (no other flag set)
FLAG_HAS_WORD = 16  # after leading whitespace, the first character is a word character
FLAG_FUSES_RIGHT = 32  # no word character, and some token starts with this text plus a word character
# 64 is taken: the kernel marks the tokens that may start a match in its own copy (LF_KEY_START)

# Characters that join words into code, URLs, e-mail addresses, paths and contractions (the
# apostrophes): a word with one or more of them on a side and a word character past them is no
# candidate (docs/DESIGN.md §3). csrc/link_fast.h's lf_is_joiner is the same set; tests/test_kernel.py
# pins the two equal.
JOINERS = "_./:=(@\\'\u2019"
# Inline code's quote (Markdown, reST): a word next to it, or to joiners and then it, is no candidate.
BACKTICK = "`"
# Joiner flags of a token's text, the same bits as csrc/link_fast.h's LF_JOINER_* / LF_WORD_THEN_JOINER / LF_*BACKTICK*
JOINER_ONLY = 1  # every character is a joiner
JOINER_THEN_WORD = 2  # one or more joiners, then a word character
WORD_THEN_JOINER = 4  # a word character, then one or more joiners that end the text
JOINERS_THEN_BACKTICK = 8  # no joiner or some, then a backtick
BACKTICK_THEN_JOINERS = 16  # a backtick, then no joiner or some, ending the text

# Bytes that do not decode as UTF-8 come back from ``surrogateescape`` as U+DC80..U+DCFF.
_ESCAPE_LO = 0xDC80
_ESCAPE_HI = 0xDCFF


def _is_word_char(ch: str) -> bool:
    """Letter, number or combining mark; an undecodable byte counts as one too.

    Undecodable bytes are pieces of a multi-byte character split across tokens (byte-level BPE
    does that for rare characters). We cannot know which character they belong to, and most
    such characters are letters of non-Latin scripts, so we call them word characters: that
    blocks a match next to them rather than allowing a match in the middle of a word.
    """
    cp = ord(ch)
    if _ESCAPE_LO <= cp <= _ESCAPE_HI:
        return True
    return unicodedata.category(ch)[0] in "LNM"


def flags_for_bytes(b: bytes) -> int:
    """Boundary flags of a non-special token from its decoded bytes.

    Rules (docs/DESIGN.md §3): ``FLAG_WS_START`` if the text starts with whitespace; ``FLAG_GLUE_LEFT``
    if its first character is a word character (``unicodedata.category`` L*, N* or M*);
    ``FLAG_HAS_WORD`` if the first character after any leading whitespace is one;
    ``FLAG_END_WORD`` if the last character is one. A token that starts with a UTF-8 continuation
    byte or an incomplete lead sequence starts with a word character; one that ends inside a
    multi-byte sequence ends with one (any byte that does not decode counts as a word
    character, see ``_is_word_char``). Empty bytes have no flags.
    """
    if not b:
        return 0
    # surrogateescape keeps one placeholder per undecodable byte, so first/last characters
    # are exactly the token's first/last (possibly partial) characters.
    text = b.decode("utf-8", "surrogateescape")
    flags = 0
    first = text[0]
    if first.isspace():
        flags |= FLAG_WS_START
        rest = text.lstrip()
        if rest and _is_word_char(rest[0]):
            flags |= FLAG_HAS_WORD
    elif _is_word_char(first):
        flags |= FLAG_GLUE_LEFT | FLAG_HAS_WORD
    if _is_word_char(text[-1]):
        flags |= FLAG_END_WORD
    return flags


def joiners_for_bytes(b: bytes) -> int:
    """Joiner flags (``JOINER_*``, ``WORD_THEN_JOINER``, ``*_BACKTICK*``) of a non-special token
    from its decoded bytes: where its text has joiner characters next to word characters, or a
    backtick after or before its joiners (docs/DESIGN.md §3). A byte that does not decode is a
    word character, as in ``flags_for_bytes``."""
    text = b.decode("utf-8", "surrogateescape")
    head = len(text) - len(text.lstrip(JOINERS))
    if not text or head == len(text):
        return JOINER_ONLY if text else 0
    tail = len(text) - len(text.rstrip(JOINERS))
    first, last = text[head], text[-tail - 1]  # the characters past the joiners at each end
    flags = 0
    if head and _is_word_char(first):
        flags |= JOINER_THEN_WORD
    if first == BACKTICK:
        flags |= JOINERS_THEN_BACKTICK
    if tail and _is_word_char(last):
        flags |= WORD_THEN_JOINER
    if last == BACKTICK:
        flags |= BACKTICK_THEN_JOINERS
    return flags


def token_joiners(tok: Tokenizer) -> np.ndarray:
    """``uint8[vocab_size]`` joiner flags of every token id of ``tok``; special ids and holes get 0
    (a special token is a boundary: no joiner runs through it)."""
    out = np.fromiter(map(joiners_for_bytes, tok._all_token_bytes()), dtype=np.uint8, count=tok.vocab_size)
    out[list(tok.special_ids)] = 0
    return out


def token_flags(tok: Tokenizer) -> np.ndarray:
    """``uint8[vocab_size]`` boundary flags of every token id of ``tok``.

    Special ids get ``FLAG_SPECIAL`` alone; ids the vocabulary does not use (holes) get 0.
    A plain loop is fast enough (about 0.3 s for 131k tokens) because each token needs one
    decode and at most three ``unicodedata.category`` calls; the flags are computed once per
    compiled vocabulary.

    ``FLAG_FUSES_RIGHT`` marks tokens the tokenizer merges with the word that follows them:
    the vocabulary has a longer token made of this token's text plus a word character, and
    encoding that longer text (after a newline) really produces something other than this
    token first. Tekken's pre-tokenizer glues one punctuation character to the next word
    (``(F``, ``-De``), so ``(`` and ``-`` fuse while `` (`` does not (``' (s'`` is in its vocabulary
    but unreachable); SentencePiece's lone ``▁`` fuses. A word written right after a fusing
    token may be re-tokenized together with it, so the kernel does not start a form without
    a leading space there.
    """
    flag = flags_for_bytes
    all_bytes = tok._all_token_bytes()
    out = np.fromiter((flag(b) for b in all_bytes), dtype=np.uint8, count=tok.vocab_size)
    for i in tok.special_ids:
        out[i] = FLAG_SPECIAL
    for i in _fusing_tokens(tok, all_bytes):
        out[i] |= FLAG_FUSES_RIGHT
    return out


def _fusing_tokens(tok: Tokenizer, all_bytes: list[bytes], probes_per_prefix: int = 2000) -> list[int]:
    """Ids whose text the tokenizer merges with a following word (see ``token_flags``)."""
    texts = [b.decode("utf-8", "surrogateescape") for b in all_bytes]
    ids_of: dict[str, set[int]] = {}  # several ids can share a text (SentencePiece '▁' and <0x20>)
    for i, text in enumerate(texts):
        if text and i not in tok.special_ids:
            ids_of.setdefault(text, set()).add(i)
    extensions: dict[str, list[str]] = {}
    for text in texts:
        for k, ch in enumerate(text):
            if _is_word_char(ch):
                if k and text[:k] in ids_of:
                    extensions.setdefault(text[:k], []).append(text)
                break
    if not extensions:
        return []
    newline = tok.encode("\n")
    prefixes, probes = [], []
    for prefix, longer in sorted(extensions.items()):
        for text in sorted(longer)[:probes_per_prefix]:
            if not any(0xDC80 <= ord(c) <= 0xDCFF for c in text):  # undecodable: cannot be encoded
                prefixes.append(prefix)
                probes.append("\n" + text)
    fusing = set()
    for prefix, ids in zip(prefixes, tok.encode_batch(probes)):
        if prefix in fusing:
            continue
        n = len(newline)
        if ids[:n] != newline or len(ids) == n or ids[n] not in ids_of[prefix]:
            fusing.add(prefix)
    return sorted(i for p in fusing for i in ids_of[p])


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------


class Tokenizer:
    """Base class of the adapters; one subclass per format.

    Subclasses fill ``_bytes`` (one entry per id, ``b""`` for specials and unused ids) at load
    time, so ``token_bytes``/``decode``/``fingerprint`` are shared and cheap.
    """

    kind: str = ""

    def __init__(self, path: str | os.PathLike, token_bytes: list[bytes], special_ids: Iterable[int]):
        self.path: str = str(path)
        self._bytes: list[bytes] = token_bytes
        self.vocab_size: int = len(token_bytes)
        self.special_ids: frozenset[int] = frozenset(int(i) for i in special_ids)
        bad = [i for i in self.special_ids if not 0 <= i < self.vocab_size]
        if bad:
            raise TokenizerError(path, f"special token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})")
        for i in self.special_ids:
            # Specials contribute nothing to decoded text: they are markup, not document text.
            self._bytes[i] = b""
        self._fingerprint: str | None = None

    # -- encoding (format specific) --------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as running document text: no BOS/EOS, specials not parsed."""
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[self.encode(t) for t in texts]``, but fast (native batch paths)."""
        return [self.encode(t) for t in texts]

    # -- bytes / decoding --------------------------------------------------------------------

    def _all_token_bytes(self) -> list[bytes]:
        """Every token's bytes, indexed by id (do not modify)."""
        return self._bytes

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes ``token_id`` contributes to decoded text (``b""`` for specials)."""
        i = int(token_id)
        if i < 0 or i >= self.vocab_size:
            raise InputError(f"{self.name}: token id {token_id} out of range [0, {self.vocab_size})")
        return self._bytes[i]

    def decode(self, ids: Iterable[int]) -> str:
        """``b"".join(token_bytes(i) for i in ids)`` decoded as UTF-8 with ``errors="replace"``.

        This is the exact concatenation of the tokens' bytes: unlike the native decoders it
        keeps the leading space SentencePiece-style tokenizers add as a dummy prefix (for
        ``tokenizer.model.v1``, ``decode(encode("cat")) == " cat"`` while ``sp.decode`` gives
        ``"cat"``), and it drops specials.
        """
        if hasattr(ids, "tolist"):  # numpy arrays: one conversion instead of per-item int()
            ids = ids.tolist()
        ids = list(ids)
        if ids:
            lo, hi = min(ids), max(ids)
            if lo < 0 or hi >= self.vocab_size:
                bad = lo if lo < 0 else hi
                raise InputError(f"{self.name}: token id {bad} out of range [0, {self.vocab_size})")
        tb = self._bytes
        return b"".join([tb[i] for i in ids]).decode("utf-8", "replace")

    # -- identity ------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """sha256 hex of (vocab_size, sorted special ids, every token's bytes, length-prefixed).

        Depends on the vocabulary only, never on the file path or format, so a compiled
        vocabulary can check that it is used with the tokenizer it was compiled for.
        """
        if self._fingerprint is None:
            specials = sorted(self.special_ids)
            parts = [
                b"link_fast.tokenizer.v1",
                struct.pack("<QQ", self.vocab_size, len(specials)),
                struct.pack(f"<{len(specials)}Q", *specials),
            ]
            for b in self._bytes:
                parts.append(struct.pack("<I", len(b)))
                parts.append(b)
            self._fingerprint = hashlib.sha256(b"".join(parts)).hexdigest()
        return self._fingerprint

    @property
    def name(self) -> str:
        """The file name, e.g. ``"tekken_240911.json"``."""
        return Path(self.path).name

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} kind={self.kind!r} name={self.name!r} "
            f"vocab_size={self.vocab_size} specials={len(self.special_ids)}>"
        )


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizers
# ---------------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE vocabularies.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map, in order, to U+0100
    onwards (so the space 0x20 becomes ``Ġ`` U+0120 and ``\\n`` becomes ``Ċ`` U+010A).
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


_UNICODE_TO_BYTE: dict[str, int] = {c: b for b, c in bytes_to_unicode().items()}
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _flatten(node: Any, key: str) -> list[dict]:
    """The components of a (possibly nested ``Sequence``) normalizer/pre-tokenizer/decoder."""
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        out: list[dict] = []
        for child in node.get(key) or []:
            out.extend(_flatten(child, key))
        return out
    return [node]


def _byte_level_bytes(token: str) -> bytes:
    # Characters outside the table (e.g. a real space in a user-added token) pass through as
    # UTF-8, which is what the ByteLevel decoder of ``tokenizers`` does too.
    out = bytearray()
    for ch in token:
        b = _UNICODE_TO_BYTE.get(ch)
        if b is None:
            out += ch.encode("utf-8")
        else:
            out.append(b)
    return bytes(out)


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers`` JSON file (BPE or Unigram; ByteLevel or Metaspace)."""

    kind = "hf"

    def __init__(self, path: str | os.PathLike, data: dict, text: str):
        model = data.get("model")
        if not isinstance(model, dict):
            raise TokenizerError(path, 'HF tokenizer JSON has no "model" object')
        mtype = _hf_model_type(path, model)
        byte_level, replacement, byte_fallback = _hf_text_mapping(path, data, model)
        self._tok = _hf_load(path, text)
        vocab: dict[str, int] = self._tok.get_vocab(with_added_tokens=True)
        if not vocab:
            raise TokenizerError(path, "HF tokenizer has an empty vocabulary")
        size = max(vocab.values()) + 1
        pieces: list[str | None] = [None] * size
        piece: str | None
        for piece, i in vocab.items():
            pieces[i] = piece
        specials = _hf_specials(data, model, mtype, vocab, size)
        out: list[bytes] = [b""] * size
        for i, piece in enumerate(pieces):
            if piece is None or i in specials:
                continue
            if byte_level:
                out[i] = _byte_level_bytes(piece)
            else:
                replacement = cast(str, replacement)  # _hf_text_mapping raises when neither is known
                m = _BYTE_PIECE.fullmatch(piece) if byte_fallback else None
                if m is not None:
                    out[i] = bytes([int(m.group(1), 16)])
                else:
                    out[i] = piece.replace(replacement, " ").encode("utf-8")
        self.byte_level = byte_level
        super().__init__(path, out, specials)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        # HF costs ~5-10 us per short string (its pre-tokenizer regex dominates), several times
        # tiktoken/sentencepiece, so encode each distinct string once: compile-time inputs repeat
        # a lot (the same English forms for every target language). ``Encoding.ids`` builds a new
        # list on every access, so duplicates never share a list.
        unique = list(dict.fromkeys(texts))
        # encode_batch_fast skips offset tracking, which we never use.
        fn = getattr(self._tok, "encode_batch_fast", None) or self._tok.encode_batch
        encodings = dict(zip(unique, fn(unique, add_special_tokens=False)))
        return [encodings[t].ids for t in texts]


# ---------------------------------------------------------------------------------------------
# SentencePiece
# ---------------------------------------------------------------------------------------------


def _hf_model_type(path, model: dict) -> str:
    """BPE or Unigram; the other HF models are refused."""
    mtype = model.get("type")
    if mtype is None:  # old files leave the type out; tokenizers infers it from the fields
        mtype = "BPE" if "merges" in model else ("Unigram" if isinstance(model.get("vocab"), list) else None)
    if mtype not in ("BPE", "Unigram"):
        # WordPiece/WordLevel decoders insert spaces between tokens that are not in the
        # tokens themselves, so per-token bytes (and word boundaries) are not well defined.
        raise TokenizerError(path, f"unsupported HF model type {mtype} (supported: BPE, Unigram)")
    if mtype == "BPE" and (model.get("continuing_subword_prefix") or model.get("end_of_word_suffix")):
        raise TokenizerError(
            path, "unsupported HF BPE with continuing_subword_prefix/end_of_word_suffix (e.g. '</w>' vocabularies)"
        )
    return mtype


def _hf_text_mapping(path, data: dict, model: dict) -> tuple[bool, str | None, bool]:
    """How the file's tokens map to text: (byte-level, the character that stands for a space,
    byte fallback pieces)."""
    decoders = _flatten(data.get("decoder"), "decoders")
    pretoks = _flatten(data.get("pre_tokenizer"), "pretokenizers")
    normalizers = _flatten(data.get("normalizer"), "normalizers")
    dtypes = {d.get("type") for d in decoders}
    byte_level = "ByteLevel" in dtypes or "ByteLevel" in {p.get("type") for p in pretoks}
    replacement: str | None = None
    for comp in decoders + pretoks:
        if comp.get("type") == "Metaspace":
            replacement = comp.get("replacement") or "\u2581"
            break
    if replacement is None:
        # Llama-2-style HF files: normalizer Replace(" " -> "▁"), decoder Replace("▁" -> " ").
        for comp in decoders:
            pat = comp.get("pattern")
            if comp.get("type") == "Replace" and isinstance(pat, dict) and comp.get("content") == " ":
                replacement = pat.get("String") or None
                break
        for comp in normalizers:
            pat = comp.get("pattern")
            if (
                replacement is None
                and comp.get("type") == "Replace"
                and isinstance(pat, dict)
                and pat.get("String") == " "
                and comp.get("content")
            ):
                replacement = comp["content"]
    if not byte_level and replacement is None:
        raise TokenizerError(
            path,
            "unsupported HF tokenizer: cannot tell how its tokens map to text "
            "(needs a ByteLevel or Metaspace pre-tokenizer/decoder)",
        )
    return byte_level, replacement, bool(model.get("byte_fallback")) or "ByteFallback" in dtypes


def _hf_load(path, text: str):
    """The ``tokenizers`` object, set to encode documents as they were tokenized."""
    try:
        import tokenizers
    except ImportError:
        raise TokenizerError(
            path, "reading Hugging Face tokenizer files needs `tokenizers`: pip install link_fast[hf]"
        ) from None
    try:
        tok = tokenizers.Tokenizer.from_str(text)
    except Exception as e:  # tokenizers raises plain Exception on malformed files
        raise TokenizerError(path, f"tokenizers cannot load it: {e}") from None
    # Documents were tokenized as text: a literal "<s>" in a document is text, not a BOS.
    try:
        tok.encode_special_tokens = True
    except AttributeError:  # tokenizers < 0.19 has no switch; specials are then parsed
        pass
    # Truncation/padding settings saved in the file must not change document encodings.
    tok.no_truncation()
    tok.no_padding()
    return tok


def _hf_specials(data: dict, model: dict, mtype: str, vocab: dict[str, int], size: int) -> set[int]:
    """Special tokens, and the unknown token, which stands for text we cannot reproduce: both
    are boundaries, never matched."""
    specials: set[int] = set()
    for added in data.get("added_tokens") or []:
        if isinstance(added, dict) and added.get("special") and isinstance(added.get("id"), int):
            specials.add(added["id"])
    unk: int | None = None
    if mtype == "Unigram" and isinstance(model.get("unk_id"), int):
        unk = model["unk_id"]
    elif mtype == "BPE" and isinstance(model.get("unk_token"), str):
        unk = vocab.get(model["unk_token"])
    if unk is not None and 0 <= unk < size:
        specials.add(unk)
    return specials


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece ``.model`` file.

    ``encode`` applies the model's own normalisation, including its dummy prefix: with
    Mistral's models ``encode("cat")`` is ``["▁cat"]`` and ``encode("\\ncat")`` is
    ``["▁", "<0x0A>", "cat"]``. Documents in a corpus were tokenized that way, so we do not
    strip it. Token bytes: ``▁`` -> space, byte pieces ``<0xNN>`` -> that byte, control and
    unknown pieces -> ``b""`` (they are the special ids).
    """

    kind = "sentencepiece"

    def __init__(self, path: str | os.PathLike, sp: Any):
        self._sp = sp
        n = sp.get_piece_size()
        specials: set[int] = set()
        out: list[bytes] = [b""] * n
        for i in range(n):
            if sp.IsControl(i) or sp.IsUnknown(i):
                specials.add(i)
                continue
            piece = sp.IdToPiece(i)
            if sp.IsByte(i):
                m = _BYTE_PIECE.fullmatch(piece)
                if m is None:  # byte pieces are always <0xNN>; anything else is a corrupt model
                    raise TokenizerError(path, f"byte piece {i} has unexpected text {piece!r}")
                out[i] = bytes([int(m.group(1), 16)])
            else:
                out[i] = piece.replace("\u2581", " ").encode("utf-8")
        super().__init__(path, out, specials)

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text, out_type=int, add_bos=False, add_eos=False)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        # sentencepiece encodes a list natively (and in parallel).
        return self._sp.encode(list(texts), out_type=int, add_bos=False, add_eos=False)


# ---------------------------------------------------------------------------------------------
# tiktoken (Tekken JSON and .tiktoken files)
# ---------------------------------------------------------------------------------------------

# tiktoken's cl100k_base pre-tokenization regex (public; from tiktoken_ext/openai_public.py).
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


class TiktokenTokenizer(Tokenizer):
    """A tiktoken-style byte-level BPE: Mistral Tekken JSON or a ``.tiktoken`` rank file.

    Tekken puts ``num_special`` special ids first, and the regular token of rank ``r`` has id
    ``r + num_special``. We give tiktoken the ranks already shifted by ``num_special``: BPE only
    compares ranks, so shifting all of them keeps every merge the same, and tiktoken then returns
    our ids directly with no per-token Python work.
    """

    kind = "tiktoken"

    def __init__(
        self,
        path: str | os.PathLike,
        ranks: dict[bytes, int],
        pattern: str,
        vocab_size: int,
        special_ids: Iterable[int],
    ):
        try:
            import tiktoken
        except ImportError:
            raise TokenizerError(
                path, "reading tiktoken/Tekken files needs `tiktoken`: pip install link_fast[tiktoken]"
            ) from None
        try:
            self._enc = tiktoken.Encoding(
                name=Path(path).name, pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
            )
        except Exception as e:  # bad regex, etc.
            raise TokenizerError(path, f"tiktoken cannot build an encoding from it: {e}") from None
        # Encoding.encode_ordinary wraps the Rust core in a try/except for lone surrogates; the
        # core call alone is 2.5x faster on short strings, so batches use it when it exists.
        self._core = getattr(self._enc, "_core_bpe", None)
        out: list[bytes] = [b""] * vocab_size
        for b, r in ranks.items():
            out[r] = b
        super().__init__(path, out, special_ids)

    def encode(self, text: str) -> list[int]:
        # encode_ordinary never turns special-token text into special ids.
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        # Not Encoding.encode_ordinary_batch: it dispatches every string to a thread pool, which
        # costs ~40 us per short string (7 s for 200k); a plain loop does 200k in ~0.4 s.
        core = self._core
        if core is not None:
            enc = core.encode_ordinary
            try:
                return [enc(t) for t in texts]
            except UnicodeEncodeError:  # lone surrogates: redo with tiktoken's safe path
                pass
        enc = self._enc.encode_ordinary
        return [enc(t) for t in texts]


def _load_tekken(path: str | os.PathLike, data: dict) -> TiktokenTokenizer:
    config = data.get("config")
    vocab = data.get("vocab")
    if not isinstance(config, dict) or not isinstance(vocab, list):
        raise TokenizerError(path, 'Tekken JSON needs a "config" object and a "vocab" list')
    pattern = config.get("pattern")
    vocab_size = config.get("default_vocab_size")
    num_special = config.get("default_num_special_tokens")
    if not isinstance(pattern, str):
        raise TokenizerError(path, 'Tekken config has no "pattern" string')
    if not isinstance(vocab_size, int) or not isinstance(num_special, int) or num_special < 0:
        raise TokenizerError(path, 'Tekken config needs integer "default_vocab_size" and "default_num_special_tokens"')
    n_regular = vocab_size - num_special
    if n_regular <= 0 or n_regular > len(vocab):
        raise TokenizerError(
            path,
            f"Tekken default_vocab_size {vocab_size} minus {num_special} specials does not fit "
            f"the {len(vocab)} vocab entries",
        )
    b64 = base64.b64decode
    ranks: dict[bytes, int] = {}
    try:
        # The file's vocab is longer than the model's; only the first n_regular ranks are used.
        for i, item in enumerate(vocab[:n_regular]):
            if item["rank"] != i:
                raise TokenizerError(
                    path, f"Tekken vocab entry {i} has rank {item['rank']} (ranks must be 0, 1, 2, ...)"
                )
            ranks[b64(item["token_bytes"])] = i + num_special
    except (KeyError, TypeError, binascii.Error) as e:
        raise TokenizerError(path, f"Tekken vocab entry {len(ranks)} is malformed ({type(e).__name__}: {e})") from None
    if len(ranks) != n_regular:
        raise TokenizerError(path, "Tekken vocab has duplicate token_bytes")
    return TiktokenTokenizer(path, ranks, pattern, vocab_size, range(num_special))


_TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2}[ \t]+[0-9]+")


def _load_tiktoken_file(path: str | os.PathLike, raw: bytes, pattern: str | None) -> TiktokenTokenizer:
    ranks: dict[bytes, int] = {}
    seen: set[int] = set()
    for lineno, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            token = base64.b64decode(parts[0], validate=True)
            rank = int(parts[1])
            if rank < 0:
                raise ValueError
        except (ValueError, binascii.Error):
            raise TokenizerError(path, f"line {lineno}: expected 'base64 rank', got {line[:60]!r}") from None
        if token in ranks or rank in seen:
            raise TokenizerError(path, f"line {lineno}: duplicate token or rank {rank}")
        ranks[token] = rank
        seen.add(rank)
    if not ranks:
        raise TokenizerError(path, "tiktoken file has no tokens")
    vocab_size = max(seen) + 1
    # Ranks are token ids; a few unused ids are fine, but a stray huge rank would make us
    # allocate a table of that size.
    if vocab_size > 2 * len(ranks) + 1024:
        raise TokenizerError(path, f"ranks have large gaps ({len(ranks)} tokens, largest rank {vocab_size - 1})")
    return TiktokenTokenizer(path, ranks, pattern or CL100K_PATTERN, vocab_size, ())


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

_EXPECTED = "expected a Hugging Face tokenizer.json, a SentencePiece .model, a Mistral Tekken .json or a .tiktoken file"
_DIR_CANDIDATES = ("tokenizer.json", "tekken.json", "tokenizer.model")


def _load_sentencepiece(path: str | os.PathLike, raw: bytes, required: bool) -> SentencePieceTokenizer | None:
    """Load ``raw`` as a SentencePiece model; None if it is not one and ``required`` is False."""
    try:
        import sentencepiece as spm
    except ImportError:
        if required:
            raise TokenizerError(
                path, "reading SentencePiece .model files needs `sentencepiece`: pip install link_fast[sentencepiece]"
            ) from None
        return None
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(raw)
    except Exception as e:  # RuntimeError / OSError from the C++ parser
        if required:
            raise TokenizerError(path, f"not a valid SentencePiece model ({str(e).strip()})") from None
        return None
    if sp.get_piece_size() <= 0:
        if required:
            raise TokenizerError(path, "SentencePiece model has no pieces")
        return None
    return SentencePieceTokenizer(path, sp)


# Tokenizers installed with a package, by the name `--tokenizer` accepts: (package, file in it).
NAMED_TOKENIZERS = {
    "tekken": ("mistral_common", "data/tekken_240911.json"),
    "tekken-240718": ("mistral_common", "data/tekken_240718.json"),
    "mistral-v1": ("mistral_common", "data/tokenizer.model.v1"),
    "mistral-v3": ("mistral_common", "data/mistral_instruct_tokenizer_240323.model.v3"),
    "mistral-v7": ("mistral_common", "data/mistral_instruct_tokenizer_241114.model.v7"),
}
# A Hugging Face Hub repository id: owner/name, nothing else.
_HUB_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FILE_SUFFIXES = {".json", ".model", ".tiktoken", ".txt", ".v1", ".v3", ".v7"}


def _named_tokenizer(name: str) -> Path:
    package, file = NAMED_TOKENIZERS[name]
    try:
        from importlib import resources

        path = Path(str(resources.files(package) / file))
    except ModuleNotFoundError:
        raise TokenizerError(
            name, f"this named tokenizer ships with {package}: pip install 'link_fast[demo]'"
        ) from None
    if not path.is_file():
        raise TokenizerError(name, f"{package} is installed but has no {file}; upgrade it")
    return path


def _reach_hub(repo: str, endpoint: str) -> None:
    """Fail at once when the Hub's host does not resolve: the client would retry for half a minute."""
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(endpoint).hostname or endpoint
    try:
        socket.getaddrinfo(host, 443)
    except OSError as e:
        raise TokenizerError(
            repo, f"no such file, and the Hugging Face Hub ({host}) cannot be reached ({e.strerror or e}); offline?"
        ) from None


def _hub_tokenizer(repo: str) -> Path:
    """The tokenizer file of a Hugging Face Hub model repository, downloaded once into the HF cache."""
    try:
        import huggingface_hub
    except ImportError:
        raise TokenizerError(
            repo, "no such file; as a Hugging Face Hub repo id it needs huggingface_hub: pip install 'link_fast[hf]'"
        ) from None
    for file in _DIR_CANDIDATES:  # already in the cache: no network needed
        try:
            return Path(huggingface_hub.hf_hub_download(repo, file, local_files_only=True))
        except Exception:
            continue
    _reach_hub(repo, huggingface_hub.constants.ENDPOINT)
    try:
        files = set(huggingface_hub.list_repo_files(repo))
        wanted = next((file for file in _DIR_CANDIDATES if file in files), None)
        if wanted is None:
            raise TokenizerError(repo, f"the Hugging Face Hub repository has none of {', '.join(_DIR_CANDIDATES)}")
        return Path(huggingface_hub.hf_hub_download(repo, wanted))
    except TokenizerError:
        raise
    except Exception as e:  # offline, unknown or gated repository: the hub's own message says which
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TokenizerError(
            repo, f"no such file, and fetching it from the Hugging Face Hub failed: {reason}"
        ) from None


def resolve_tokenizer(name_or_path: str | os.PathLike) -> Path:
    """The file or folder a `--tokenizer` value names: a path, a name of ``NAMED_TOKENIZERS``, or
    a Hugging Face Hub repo id (``owner/name``, fetched through huggingface_hub), in that order."""
    path = Path(name_or_path)
    if path.exists() or os.path.islink(path):
        return path
    text = str(name_or_path)
    if text in NAMED_TOKENIZERS:
        return _named_tokenizer(text)
    # A missing local file is not sent to the Hub: its folder exists, or it has a file's suffix.
    looks_local = path.parent.exists() and str(path.parent) != "." or path.suffix in _FILE_SUFFIXES
    if _HUB_REPO.fullmatch(text) and not looks_local:
        return _hub_tokenizer(text)
    names = ", ".join(NAMED_TOKENIZERS)
    raise TokenizerError(text, f"no such file; not a named tokenizer ({names}) nor a Hub repo id (owner/name)")


def load_tokenizer(path: str | os.PathLike, *, pattern: str | None = None) -> Tokenizer:
    """Load a tokenizer, detecting its format from the file's content.

    ``path`` is a file, a model directory holding ``tokenizer.json``, ``tekken.json`` or
    ``tokenizer.model`` (first found wins), a name of ``NAMED_TOKENIZERS`` (``"tekken"``) or a
    Hugging Face Hub repo id (see ``resolve_tokenizer``). ``pattern`` overrides the
    pre-tokenization regex of a ``.tiktoken`` rank file, which does not store one (default:
    cl100k's); other formats ignore it. Raises ``TokenizerError`` naming the file for anything
    unreadable or unknown.
    """
    p = resolve_tokenizer(path)
    if p.is_dir():
        for cand in _DIR_CANDIDATES:
            if (p / cand).is_file():
                return load_tokenizer(p / cand, pattern=pattern)
        raise TokenizerError(path, f"is a directory without {', '.join(_DIR_CANDIDATES)}")
    path = p
    refuse_special_file(p, lambda problem: TokenizerError(path, problem))
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TokenizerError(path, "no such file") from None
    except OSError as e:
        raise TokenizerError(path, f"cannot read it ({e.strerror or e})") from None
    if not raw.strip():
        raise TokenizerError(path, f"empty file; {_EXPECTED}")

    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        try:
            text = raw.decode("utf-8-sig")
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise TokenizerError(path, f"not valid JSON ({e})") from None
        if isinstance(data, dict):
            if "model" in data and ("pre_tokenizer" in data or "normalizer" in data or "added_tokens" in data):
                return HFTokenizer(path, data, text)
            vocab = data.get("vocab")
            if (
                "config" in data
                and isinstance(vocab, list)
                and vocab
                and isinstance(vocab[0], dict)
                and "token_bytes" in vocab[0]
            ):
                return _load_tekken(path, data)
        raise TokenizerError(path, f"JSON of unknown shape; {_EXPECTED}")

    first_line = raw.lstrip().split(b"\n", 1)[0].strip()
    if _TIKTOKEN_LINE.fullmatch(first_line):
        return _load_tiktoken_file(path, raw, pattern)

    # SentencePiece models are protobuf: the first field is the repeated `pieces` (tag 0x0A).
    looks_like_sp = raw[:1] == b"\x0a" or p.suffix == ".model"
    sp = _load_sentencepiece(path, raw, required=looks_like_sp)
    if sp is not None:
        return sp
    raise TokenizerError(path, f"unknown tokenizer format ({_EXPECTED})")
