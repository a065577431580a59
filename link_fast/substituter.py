"""The Python surface of the kernel: ``Substituter.apply`` on a batch of documents."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._kernel import document_cuts, substitute
from .errors import InputError
from .kernel_tables import kernel_sampling, kernel_tables
from .sampling import Sampling
from .vocab import Vocab

TOKEN_DTYPES = (np.dtype(np.uint16), np.dtype(np.int32), np.dtype(np.uint32))
CUT_WINDOW = 1 << 22  # tokens of a long document that Substituter.cuts reads at a time


@dataclass
class Stats:
    """Counts for one batch, shard or run; ``+`` adds them up.

    ``size_in`` / ``size_out`` measure the input and output in ``unit``: tokens in token mode,
    characters in text mode; ``to_dict`` names them after the unit (``UNITS``).
    """

    languages: tuple[str, ...]
    documents: int = 0
    eligible_documents: int = 0
    words: int = 0
    candidates: int = 0
    eligible_candidates: int = 0
    size_in: int = 0
    size_out: int = 0
    substitutions: dict[str, int] = field(default_factory=dict)
    unit: Literal["tokens", "characters"] = "tokens"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")

    @classmethod
    def zero(cls, languages: Sequence[str], unit: Literal["tokens", "characters"] = "tokens") -> Stats:
        """Nothing counted yet, with a 0 for every language: the start of a sum."""
        return cls(tuple(languages), substitutions={lang: 0 for lang in languages}, unit=unit)

    # Token mode's names, kept; reading or setting them on statistics in characters is an error.
    @property
    def tokens_in(self) -> int:
        return self._size("tokens", self.size_in)

    @tokens_in.setter
    def tokens_in(self, value: int) -> None:
        self._size("tokens", value)
        self.size_in = value

    @property
    def tokens_out(self) -> int:
        return self._size("tokens", self.size_out)

    @tokens_out.setter
    def tokens_out(self, value: int) -> None:
        self._size("tokens", value)
        self.size_out = value

    def _size(self, unit: str, size: int) -> int:
        if self.unit != unit:
            raise AttributeError(f"these statistics count {self.unit}, not {unit}: use size_in / size_out")
        return size

    @property
    def total_substitutions(self) -> int:
        return sum(self.substitutions.values())

    def __add__(self, other: Stats) -> Stats:
        if self.languages != other.languages:
            raise ValueError("cannot add statistics of different language sets")
        if self.unit != other.unit:
            raise ValueError(f"cannot add statistics in {self.unit} to statistics in {other.unit}")
        return Stats(
            self.languages,
            self.documents + other.documents,
            self.eligible_documents + other.eligible_documents,
            self.words + other.words,
            self.candidates + other.candidates,
            self.eligible_candidates + other.eligible_candidates,
            self.size_in + other.size_in,
            self.size_out + other.size_out,
            {l: self.substitutions.get(l, 0) + other.substitutions.get(l, 0) for l in self.languages},
            self.unit,
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
            UNITS[self.unit][0]: self.size_in,
            UNITS[self.unit][1]: self.size_out,
        }


# The unit of Stats.size_in / size_out, and their names in to_dict (what run records hold).
UNITS = {"tokens": ("tokens_in", "tokens_out"), "characters": ("chars_in", "chars_out")}


@dataclass
class Result:
    """Rewritten documents: ``tokens[offsets[i]:offsets[i+1]]`` is document i; ``loss``: the
    loss flags of the output tokens, when the input's were given."""

    tokens: np.ndarray
    offsets: np.ndarray
    mask: np.ndarray | None
    stats: Stats
    loss: np.ndarray | None = None


class Substituter:
    """Samples and applies LINK substitutions with one compiled vocabulary and fixed options.

    Every random decision is a pure function of ``(seed, stream_key, document index, candidate
    index)``, so results do not depend on how documents are batched: pass each batch's global
    index of its first document as ``first_doc``.
    """

    def __init__(self, vocab: Vocab, sampling: Sampling | None = None, **options: Any):
        """``sampling``, or its options as keywords (``Sampling``'s fields); ``stream_key``
        None means ``""``."""
        self.vocab = vocab
        self.sampling = Sampling.from_options(sampling, **options).for_languages(vocab.languages)
        self._tables = kernel_tables(vocab, self.sampling)
        self._sampling = kernel_sampling(vocab.languages, self.sampling)

    def config(self) -> dict:
        """The options that determine the output (for statistics files and resume checks)."""
        return self.sampling.to_dict()

    def with_options(self, **changes: Any) -> Substituter:
        """This Substituter with some sampling options changed (``Sampling.replace``). The
        kernel tables depend only on the languages: they are shared unless those change, so a
        ratio schedule (link_fast.training) can change the ratio every sample cheaply."""
        other = copy.copy(self)
        other.sampling = self.sampling.replace(**changes).for_languages(self.vocab.languages)
        if other.sampling.languages != self.sampling.languages:
            other._tables = kernel_tables(self.vocab, other.sampling)
        other._sampling = kernel_sampling(self.vocab.languages, other.sampling)
        return other

    def apply(
        self,
        tokens,
        offsets,
        *,
        first_doc: int = 0,
        doc_indices=None,
        mask: bool = False,
        out_dtype=None,
        loss=None,
    ) -> Result:
        """Rewrite a batch of documents.

        ``tokens``: uint16, int32 or uint32 array; ``offsets``: int64, documents + 1 entries,
        non-decreasing, within ``tokens`` (``offsets[0]`` may be > 0 for a slice of a shard).
        Document d draws as document ``first_doc + d`` of the stream, or as
        ``doc_indices[d]`` when given (one non-negative integer per document, in place of
        ``first_doc``): documents from anywhere in a stream then share one call.
        ``out_dtype`` defaults to the input dtype; an emitted id that does not fit raises.
        ``loss``: a flag per token of ``tokens`` (datatrove's loss mask, 0: no loss), carried to
        the output as ``Result.loss``: a copied token keeps its flag, a translation's tokens are
        flagged when every token of the word it replaces was.
        """
        tokens = _token_array(tokens)
        offsets = np.asarray(offsets)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
            raise InputError("offsets must be a 1-D integer array with documents + 1 entries")
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets[0] < 0 or offsets[-1] > len(tokens) or (len(offsets) > 1 and np.any(np.diff(offsets) < 0)):
            raise InputError(f"offsets must be non-decreasing and within the {len(tokens)} tokens")
        if not isinstance(first_doc, (int, np.integer)) or first_doc < 0:
            raise InputError(f"first_doc must be a non-negative integer, got {first_doc!r}")
        if doc_indices is not None:
            doc_indices = _document_indices(doc_indices, len(offsets) - 1, first_doc)
        return self._substitute(tokens, offsets, int(first_doc), doc_indices, mask, out_dtype, loss=loss)

    def cuts(
        self, tokens, begin: int, end: int, every: int, *, release: Callable[[int, int], None] | None = None
    ) -> list[Piece]:
        """The document ``tokens[begin:end]`` cut into stretches of at least ``every`` tokens
        (the last may hold fewer) where no match crosses, for ``apply_piece``: a document too
        long to rewrite whole in memory gives, stretch by stretch, exactly what ``apply`` gives
        for it whole. Checks every id of the document, then scans it without sampling, a
        window of ``CUT_WINDOW`` tokens at a time; ``release(first, last)`` is called once
        tokens [first, last) are read (a shard drops its mapped pages)."""
        tokens = np.ascontiguousarray(_token_array(tokens))
        if not (isinstance(every, (int, np.integer)) and every >= 1 and 0 <= begin <= end <= len(tokens)):
            raise InputError(f"need 0 <= begin <= end <= {len(tokens)} and every >= 1")
        begin, end, every = int(begin), int(end), int(every)
        window = max(every, CUT_WINDOW)
        for first in range(begin, end, window):
            _check_ids(tokens, first, min(first + window, end), self.vocab.vocab_size)
            if release is not None:
                release(first, min(first + window, end))
        starts, firsts, position, words, candidates = [begin], [0], begin, 0, 0
        while position < end:
            cuts, before, reached, more_words, more_candidates = document_cuts(
                self._tables, self._sampling, tokens, begin, end, every, position, position + window
            )
            starts += cuts.tolist()
            firsts += (before + candidates).tolist()
            words, candidates = words + more_words, candidates + more_candidates
            if release is not None:
                release(position, reached)
            position = reached
        stops = [*starts[1:], end]
        return [
            Piece(begin, end, start, stop, first, words, candidates, part)
            for part, (start, stop, first) in enumerate(zip(starts, stops, firsts))
        ]

    def apply_piece(self, tokens, piece: Piece, *, doc: int, mask: bool = False, out_dtype=None, loss=None) -> Result:
        """Stretch ``piece`` (one of ``cuts``, on these ``tokens``) of document ``doc`` of the
        stream, rewritten as one document. Its statistics count the document, and whether it is
        eligible, in part 0 only: the pieces' add up to the document's. ``loss`` as for ``apply``."""
        tokens = _token_array(tokens)
        if not (isinstance(doc, (int, np.integer)) and doc >= 0):
            raise InputError(f"doc must be a non-negative integer, got {doc!r}")
        bounds = (piece.begin, piece.end, piece.first_candidate, piece.words, piece.candidates)
        offsets = np.array([piece.start, piece.stop], dtype=np.int64)
        result = self._substitute(tokens, offsets, int(doc), None, mask, out_dtype, bounds, loss)
        if piece.part:
            result.stats.documents = result.stats.eligible_documents = 0
        return result

    def _substitute(
        self, tokens, offsets, first_doc: int, doc_indices, mask, out_dtype, piece=None, loss=None
    ) -> Result:
        """The kernel's result on checked tokens and offsets, the output dtype and the loss flags checked."""
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
                raise InputError(
                    f"token id {int(tokens[position])} at position {position} does not fit {dtype}: "
                    f"choose a wider output dtype (--out-dtype int32)"
                )
        out_loss = None
        if loss is None:
            out, out_offsets, out_mask, counts = substitute(
                self._tables, self._sampling, tokens, offsets, first_doc, dtype, bool(mask), doc_indices, piece
            )
        else:
            out, out_offsets, out_mask, counts, out_loss = substitute(
                self._tables,
                self._sampling,
                tokens,
                offsets,
                first_doc,
                dtype,
                bool(mask),
                doc_indices,
                piece,
                loss=_loss_flags(loss, len(tokens)),
            )
        stats = Stats(
            self.vocab.languages,
            documents=len(offsets) - 1,
            eligible_documents=counts.eligible_documents,
            words=counts.words,
            candidates=counts.candidates,
            eligible_candidates=counts.eligible_candidates,
            size_in=counts.tokens_in,
            size_out=counts.tokens_out,
            substitutions=dict(zip(self.vocab.languages, counts.substitutions)),
        )
        return Result(out, out_offsets, out_mask, stats, out_loss)


@dataclass(frozen=True)
class Piece:
    """A stretch of a long document that ``Substituter.apply_piece`` rewrites on its own: tokens
    [start, stop) of the document tokens[begin:end], cut where no match crosses, with the
    document's candidates before it (its draws go on numbering them) and the document's words
    and candidates in all (``ratio_basis="words"``). ``part``: its place, 0 for the first."""

    begin: int
    end: int
    start: int
    stop: int
    first_candidate: int
    words: int
    candidates: int
    part: int


def _check_ids(tokens: np.ndarray, first: int, last: int, vocab_size: int) -> None:
    """Raise InputError, as the kernel does, for an id of tokens[first:last] outside the vocabulary."""
    span = tokens[first:last]
    if len(span) and (int(span.max()) >= vocab_size or int(span.min()) < 0):
        position = first + int(np.flatnonzero((span >= vocab_size) | (span < 0))[0])
        raise InputError(
            f"token id {int(tokens[position])} at position {position} is outside the vocabulary of {vocab_size} ids"
        )


def _loss_flags(loss, n_tokens: int) -> np.ndarray:
    """Loss flags as the kernel reads them: one uint8 per token (not copied when they are)."""
    loss = np.asarray(loss)
    if loss.shape != (n_tokens,) or loss.dtype.kind not in "biu":
        raise InputError(f"loss must hold one flag per token ({n_tokens}), got {loss.dtype} with shape {loss.shape}")
    if loss.dtype == np.uint8 or loss.dtype == np.bool_:
        return np.ascontiguousarray(loss).view(np.uint8)
    return (loss != 0).astype(np.uint8)


def _token_array(tokens) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.dtype not in TOKEN_DTYPES:
        raise InputError(
            f"tokens must be a 1-D uint16, int32 or uint32 array, got {tokens.dtype} with shape {tokens.shape}"
        )
    return tokens


def _document_indices(values, n_docs: int, first_doc) -> np.ndarray:
    """``doc_indices`` checked: one integer in [0, 2^63) per document, and no ``first_doc``."""
    if first_doc:
        raise InputError("give first_doc or doc_indices, not both")
    if not isinstance(values, np.ndarray):  # a list of Python ints: checked before numpy casts them
        values = list(values)
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in values):
            raise InputError(f"doc_indices must be {n_docs} integers, one per document")
        if any(not 0 <= i < 1 << 63 for i in values):
            raise InputError("doc_indices must be non-negative integers below 2^63")
        values = np.array(values, dtype=np.int64)
    if values.shape != (n_docs,) or (n_docs and values.dtype.kind not in "iu"):
        raise InputError(f"doc_indices must be {n_docs} integers, one per document, got shape {values.shape}")
    if n_docs and (values.min() < 0 or (values.dtype.kind == "u" and values.max() >= 1 << 63)):
        raise InputError("doc_indices must be non-negative integers below 2^63")
    return np.ascontiguousarray(values, dtype=np.int64)
