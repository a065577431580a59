"""The Python surface of the kernel: ``Substituter.apply`` on a batch of documents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from ._kernel import KernelTables, substitute
from .errors import InputError
from .vocab import Vocab

MASK64 = (1 << 64) - 1
ALWAYS = 1 << 53  # a Bernoulli threshold that always succeeds (draws keep 53 bits)
WEIGHT_SCALE = 1 << 24  # language weights become integers up to this
TOKEN_DTYPES = (np.dtype(np.uint16), np.dtype(np.int32), np.dtype(np.uint32))


def mix64(z: int) -> int:
    """SplitMix64's finaliser, as ``lf_mix64`` in csrc/link_fast.h."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def stream_base(seed: int, stream_key: str) -> int:
    """The 64-bit base every draw of one stream starts from: seed and stream key mixed."""
    digest = hashlib.blake2b(stream_key.encode("utf-8"), digest_size=8).digest()
    return mix64((seed & MASK64) ^ mix64(int.from_bytes(digest, "little")))


def probability_threshold(p: float) -> int:
    """Bernoulli threshold on 53-bit draws for probability ``p`` (same arithmetic as the kernel)."""
    return ALWAYS if p >= 1.0 else int(p * 9007199254740992.0)


@dataclass
class Stats:
    """Counts for one batch, shard or run; ``+`` adds them up."""

    languages: tuple[str, ...]
    documents: int = 0
    eligible_documents: int = 0
    words: int = 0
    candidates: int = 0
    eligible_candidates: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    substitutions: dict[str, int] = field(default_factory=dict)

    @property
    def total_substitutions(self) -> int:
        return sum(self.substitutions.values())

    def __add__(self, other: "Stats") -> "Stats":
        if self.languages != other.languages:
            raise ValueError("cannot add statistics of different language sets")
        return Stats(
            self.languages,
            self.documents + other.documents,
            self.eligible_documents + other.eligible_documents,
            self.words + other.words,
            self.candidates + other.candidates,
            self.eligible_candidates + other.eligible_candidates,
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            {l: self.substitutions.get(l, 0) + other.substitutions.get(l, 0) for l in self.languages},
        )

    def to_dict(self) -> dict:
        return {
            "documents": self.documents,
            "eligible_documents": self.eligible_documents,
            "words": self.words,
            "candidates": self.candidates,
            "eligible_candidates": self.eligible_candidates,
            "substitutions": dict(self.substitutions),
            "total_substitutions": self.total_substitutions,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


@dataclass
class Result:
    """Rewritten documents: ``tokens[offsets[i]:offsets[i+1]]`` is document i."""

    tokens: np.ndarray
    offsets: np.ndarray
    mask: np.ndarray | None
    stats: Stats


class Substituter:
    """Samples and applies LINK substitutions with one compiled vocabulary and fixed options.

    Every random decision is a pure function of ``(seed, stream_key, document index, candidate
    index)``, so results do not depend on how documents are batched: pass each batch's global
    index of its first document as ``first_doc``.
    """

    def __init__(
        self,
        vocab: Vocab,
        *,
        ratio: float = 0.3,
        portion: float = 1.0,
        seed: int = 0,
        languages: Mapping[str, float] | None = None,
        ratio_basis: Literal["candidates", "words"] = "candidates",
        lang_scope: Literal["word", "document"] = "word",
        stream_key: str = "",
    ):
        config = checked_config(vocab.languages, ratio=ratio, portion=portion, seed=seed, languages=languages,
                                ratio_basis=ratio_basis, lang_scope=lang_scope, stream_key=stream_key)
        self.vocab = vocab
        self.ratio, self.portion, self.seed = config["ratio"], config["portion"], config["seed"]
        self.ratio_basis, self.lang_scope = config["ratio_basis"], config["lang_scope"]
        self.stream_key, self.languages = config["stream_key"], config["languages"]
        weights = np.asarray(integer_weights(vocab.languages, self.languages), dtype=np.uint32)
        self.sampling = {
            "base": stream_base(seed, self.stream_key),
            "portion_threshold": probability_threshold(self.portion),
            "ratio_threshold": probability_threshold(self.ratio),
            "ratio": self.ratio,
            "ratio_basis_words": ratio_basis == "words",
            "lang_scope_document": lang_scope == "document",
            "selected_mask": sum(1 << vocab.languages.index(lang) for lang in self.languages),
            "lang_weight": weights,
        }
        self._tables = KernelTables(vocab.tables, vocab.edge_table, len(vocab.languages), self.sampling["selected_mask"])

    def config(self) -> dict:
        """The options that determine the output (for statistics files and resume checks)."""
        return config_of(self)

    def apply(
        self,
        tokens,
        offsets,
        *,
        first_doc: int = 0,
        mask: bool = False,
        out_dtype=None,
    ) -> Result:
        """Rewrite a batch of documents.

        ``tokens``: uint16, int32 or uint32 array; ``offsets``: int64, documents + 1 entries,
        non-decreasing, within ``tokens`` (``offsets[0]`` may be > 0 for a slice of a shard).
        ``out_dtype`` defaults to the input dtype; an emitted id that does not fit raises.
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or tokens.dtype not in TOKEN_DTYPES:
            raise InputError(f"tokens must be a 1-D uint16, int32 or uint32 array, got {tokens.dtype} with shape {tokens.shape}")
        offsets = np.asarray(offsets)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
            raise InputError("offsets must be a 1-D integer array with documents + 1 entries")
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets[0] < 0 or offsets[-1] > len(tokens) or (len(offsets) > 1 and np.any(np.diff(offsets) < 0)):
            raise InputError(f"offsets must be non-decreasing and within the {len(tokens)} tokens")
        if not isinstance(first_doc, (int, np.integer)) or first_doc < 0:
            raise InputError(f"first_doc must be a non-negative integer, got {first_doc!r}")
        dtype = tokens.dtype if out_dtype is None else np.dtype(out_dtype)
        if dtype not in TOKEN_DTYPES:
            raise InputError(f"out_dtype must be uint16, int32 or uint32, got {dtype}")
        tokens = np.ascontiguousarray(tokens)
        limit = np.iinfo(dtype).max
        if self.vocab.vocab_size - 1 > limit and len(tokens):
            # Ids copied unchanged must fit a narrower output too (the kernel checks only the
            # translations it emits); this pass is only paid when the vocabulary is wider.
            span = tokens[offsets[0] : offsets[-1]]
            if len(span) and span.max() > limit:
                position = int(offsets[0] + np.argmax(span > limit))
                raise InputError(f"token id {int(tokens[position])} at position {position} does not fit {dtype}: "
                                 f"choose a wider output dtype (int32)")
        out, out_offsets, out_mask, counters = substitute(
            self._tables, tokens, offsets, int(first_doc), self.sampling, dtype, bool(mask)
        )
        if counters["bad_token_position"] >= 0:
            position = counters["bad_token_position"]
            raise InputError(
                f"token id {int(tokens[position])} at position {position} is outside the vocabulary "
                f"of {self.vocab.vocab_size} ids"
            )
        if counters["max_emitted_id"] > np.iinfo(dtype).max:
            raise InputError(
                f"a translation token id ({counters['max_emitted_id']}) does not fit {dtype}: "
                f"choose a wider output dtype (int32)"
            )
        languages = self.vocab.languages
        stats = Stats(
            languages,
            documents=len(offsets) - 1,
            eligible_documents=counters["eligible_documents"],
            words=counters["words"],
            candidates=counters["candidates"],
            eligible_candidates=counters["eligible_candidates"],
            tokens_in=counters["tokens_in"],
            tokens_out=counters["tokens_out"],
            substitutions=dict(zip(languages, counters["substitutions"])),
        )
        return Result(out, out_offsets, out_mask, stats)


def checked_config(available: Sequence[str], *, ratio, portion, seed, languages, ratio_basis, lang_scope,
                   stream_key="") -> dict:
    """The sampling options checked (InputError for a bad one) and normalised, languages
    resolved against ``available``: what determines the output, as statistics files record it.
    Token mode, text mode and the runners all go through here."""
    for name, value in (("ratio", ratio), ("portion", portion)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    if ratio_basis not in ("candidates", "words"):
        raise InputError(f"ratio_basis must be 'candidates' or 'words', got {ratio_basis!r}")
    if lang_scope not in ("word", "document"):
        raise InputError(f"lang_scope must be 'word' or 'document', got {lang_scope!r}")
    if not isinstance(seed, int) or not 0 <= seed <= MASK64:
        raise InputError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return {"ratio": float(ratio), "portion": float(portion), "seed": seed,
            "languages": resolve_languages(tuple(available), languages), "ratio_basis": ratio_basis,
            "lang_scope": lang_scope, "stream_key": str(stream_key)}


def config_of(substituter) -> dict:
    """``checked_config``'s dict of a Substituter or TextSubstituter."""
    return {"ratio": substituter.ratio, "portion": substituter.portion, "seed": substituter.seed,
            "languages": dict(substituter.languages), "ratio_basis": substituter.ratio_basis,
            "lang_scope": substituter.lang_scope, "stream_key": substituter.stream_key}


def integer_weights(available: Sequence[str], languages: Mapping[str, float]) -> list[int]:
    """Per language of ``available``: its weight as an integer up to WEIGHT_SCALE, 0 if not in
    play. Integers keep the kernel and the Python reference bit-identical."""
    top = max(languages.values())
    weights = [0] * len(available)
    for lang, weight in languages.items():
        weights[list(available).index(lang)] = max(1, round(weight / top * WEIGHT_SCALE))
    return weights


def resolve_languages(available: tuple[str, ...], languages: Mapping[str, float] | None) -> dict[str, float]:
    """Validate the language weights: None means every language of the vocabulary, equally."""
    if languages is None:
        return {lang: 1.0 for lang in available}
    if not isinstance(languages, Mapping) or not languages:
        raise InputError(f"languages must be a non-empty mapping of language to weight, got {languages!r}")
    resolved = {}
    for lang, weight in languages.items():
        if lang not in available:
            raise InputError(f"language {lang!r} is not in the vocabulary (it has {', '.join(available)})")
        if not isinstance(weight, (int, float)) or not weight >= 0 or weight == float("inf"):
            raise InputError(f"weight of language {lang!r} must be a finite number >= 0, got {weight!r}")
        if weight > 0:
            resolved[lang] = float(weight)
    if not resolved:
        raise InputError("at least one language needs a weight > 0")
    return resolved
