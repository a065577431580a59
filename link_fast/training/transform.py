"""LINK on fixed-length training samples (docs/DESIGN.md §9), in numpy: no torch needed.

A training sample is ``T`` token ids (``seq_length + 1`` for Megatron's GPTDataset):
documents packed one after another, each ended by the end-of-document id, and cut wherever
the sample starts and ends. ``SampleTransform`` rewrites such samples with the kernel and
returns them at the same length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import InputError
from ..sampling import Sampling
from ..substituter import Result, Stats, Substituter
from ..tokenizer import FLAG_GLUE_LEFT
from ..vocab import Vocab
from .schedule import Schedule, schedule

# Piece p of sample i is document i * 2**PIECE_BITS + p of the epoch's stream: a sample holds
# at most 2**24 pieces, and sample indices stay below 2**39 so that the kernel's int64 fits.
PIECE_BITS = 24
MAX_SAMPLE_TOKENS = (1 << PIECE_BITS) - 1
MAX_INDEX = 1 << (63 - PIECE_BITS)
FOLD_EVERY = 64
WINDOW = 32  # tokens looked at first for a word start at a sample's edge


def epoch_stream_key(stream_key: str | None, epoch: int) -> str:
    """The stream key of one epoch: the sampling's own (``""`` if None), ``#``, the epoch."""
    return f"{stream_key or ''}#{epoch}"


@dataclass
class TrainingStats:
    """What the transform did so far in this process, and the schedules' latest values."""

    counts: Stats
    samples: int = 0
    tokens_cut: int = 0  # tokens lost at the tail when substitutions lengthened a sample
    tokens_padded: int = 0  # pad ids added when substitutions shortened a sample
    ratio: float = 0.0  # the ratio and portion of the latest sample
    portion: float = 0.0
    epoch: int = 0

    def to_dict(self) -> dict:
        return {
            **self.counts.to_dict(),
            "samples": self.samples,
            "tokens_cut": self.tokens_cut,
            "tokens_padded": self.tokens_padded,
            "ratio": self.ratio,
            "portion": self.portion,
            "epoch": self.epoch,
        }


@dataclass
class Batch:
    """Rewritten samples: ``tokens[b, :lengths[b]]`` are sample b's ids, the rest is padding."""

    tokens: np.ndarray  # (B, T) int64
    lengths: np.ndarray  # (B,) int64
    link_mask: np.ndarray | None  # (B, T) uint8: 1 on the tokens of a translation


class SampleTransform:
    """Substitutes fixed-length samples, keyed on (seed, epoch, sample index, piece).

    ``ratio`` and ``portion`` may be schedules (``link_fast.training.schedule``): a number, a
    spec such as ``"linear:0.1:0.5:100000"``, or a callable of the sample's position
    ``epoch * samples_per_epoch + index``. The other sampling options come from ``sampling``
    or keywords, as for ``Substituter``.
    """

    def __init__(
        self,
        vocab: Vocab,
        sampling: Sampling | None = None,
        *,
        eod_id: int,
        pad_id: int = 0,
        epoch: int = 0,
        samples_per_epoch: int | None = None,
        link_mask: bool = False,
        ratio: Schedule | str | float | Any = None,
        portion: Schedule | str | float | Any = None,
        **options: Any,
    ):
        base = Sampling.from_options(sampling, **options)
        self.ratio = schedule(base.ratio if ratio is None else ratio, "ratio")
        self.portion = schedule(base.portion if portion is None else portion, "portion")
        self.eod_id = _id(eod_id, "eod_id", vocab.vocab_size)
        self.pad_id = _id(pad_id, "pad_id", 1 << 63)
        if samples_per_epoch is not None and (not _is_int(samples_per_epoch) or samples_per_epoch < 0):
            raise InputError(f"samples_per_epoch must be an integer >= 0, got {samples_per_epoch!r}")
        self.samples_per_epoch = samples_per_epoch
        self.link_mask = bool(link_mask)
        self.vocab = vocab
        self._key = base.stream_key
        self._sampling = base
        self._base = Substituter(vocab, base.replace(stream_key=epoch_stream_key(base.stream_key, 0)))
        self._substituter = self._base
        self._values = (base.ratio, base.portion)
        # Tokens that continue the word before them: where a cut word may go on (§9).
        self._glue = (np.asarray(vocab.tables["flags"]) & FLAG_GLUE_LEFT) != 0
        self._stats = TrainingStats(Stats.zero(vocab.languages))
        self._pending: list[Stats] = []
        self._stats.ratio, self._stats.portion = self.ratio(0), self.portion(0)
        self.epoch = -1
        self.set_epoch(epoch)

    def __getstate__(self) -> dict:
        # The kernel's objects do not pickle (DataLoader workers started by spawn or
        # forkserver get a pickled copy): rebuilt from the vocabulary and the options.
        state = self.__dict__.copy()
        del state["_base"], state["_substituter"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        key = epoch_stream_key(self._key, self.epoch)
        self._base = Substituter(self.vocab, self._sampling.replace(stream_key=key))
        self._substituter = self._base.with_options(ratio=self._values[0], portion=self._values[1])

    @property
    def stats(self) -> TrainingStats:
        """The counts of every sample this transform rewrote, and the schedules' latest values."""
        self._fold()
        return self._stats

    def _fold(self) -> None:
        # Adding Stats costs a few microseconds: done a batch of samples at a time.
        for counts in self._pending:
            self._stats.counts = self._stats.counts + counts
        self._pending.clear()

    def set_epoch(self, epoch: int) -> None:
        """Draw from ``epoch``'s stream from now on: each epoch makes new draws."""
        if not _is_int(epoch) or epoch < 0:
            raise InputError(f"epoch must be an integer >= 0, got {epoch!r}")
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._base = self._base.with_options(stream_key=epoch_stream_key(self._key, self.epoch))
            self._substituter = self._base.with_options(ratio=self._values[0], portion=self._values[1])
            self._stats.epoch = self.epoch

    def position(self, index: int) -> int:
        """The schedules' position of sample ``index`` in the current epoch."""
        return self.epoch * (self.samples_per_epoch or 0) + int(index)

    def apply(self, text, index: int, length: int | None = None) -> Batch:
        """One sample (a 1-D array of ids); ``length``: its real ids, the rest being padding."""
        text = np.asarray(text)
        if text.ndim != 1:
            raise InputError(f"a sample must be a 1-D array of token ids, got shape {text.shape}")
        return self.apply_batch(text[None, :], [index], None if length is None else [length])

    def apply_batch(self, texts, indices: Sequence[int], lengths: Sequence[int] | None = None) -> Batch:
        """Samples of one length ``T``, as a (B, T) integer array, and their global indices.

        ``lengths[b]`` (default ``T``) is how many of row b's ids are real: the rest is
        padding, neither substituted nor kept (the output pads again after its own end).
        """
        texts, index, length = self._checked(texts, indices, lengths)
        n_rows, width = texts.shape
        out = np.full((n_rows, width), self.pad_id, dtype=np.int64)
        out_lengths = np.zeros(n_rows, dtype=np.int64)
        mask = np.zeros((n_rows, width), dtype=np.uint8) if self.link_mask else None
        work = texts.astype(np.uint32 if self.vocab.vocab_size > 1 << 31 else np.int32)
        rows = [work[b, : int(length[b])] for b in range(n_rows)]
        pieces = [piece_offsets(row, self._glue, self.eod_id) for row in rows]
        for group in self._groups(index):
            result = self._substitute(group, rows, pieces, index)
            for b, middle, middle_mask in _split_rows(group, pieces, result):
                row_mask = None if mask is None else mask[b]
                out_lengths[b] = self._write_row(rows[b], pieces[b], middle, middle_mask, out[b], row_mask)
        return Batch(out, out_lengths, mask)

    def _groups(self, index: np.ndarray) -> list[list[int]]:
        """The rows in runs that share the schedules' values: each run is one kernel call."""
        groups: list[list[int]] = []
        previous = None
        for b in range(len(index)):
            values = (self.ratio(self.position(int(index[b]))), self.portion(self.position(int(index[b]))))
            if values != previous:
                groups.append([])
                previous = values
            groups[-1].append(b)
        return groups

    def _substitute(self, group: list[int], rows: list[np.ndarray], pieces: list[np.ndarray], index) -> Result:
        """One kernel call for the pieces of a run of rows: piece p of sample i draws as
        document ``i << PIECE_BITS | p``, wherever it sits in the call."""
        substituter = self._at(self.position(int(index[group[0]])))
        tokens = np.concatenate([rows[b][pieces[b][0] : pieces[b][-1]] for b in group])
        offsets = np.zeros(1 + sum(len(pieces[b]) - 1 for b in group), dtype=np.int64)
        doc_ids = np.empty(len(offsets) - 1, dtype=np.int64)
        at = d = 0
        for b in group:
            n_pieces = len(pieces[b]) - 1
            offsets[d + 1 : d + 1 + n_pieces] = pieces[b][1:] - pieces[b][0] + at
            doc_ids[d : d + n_pieces] = (int(index[b]) << PIECE_BITS) + np.arange(n_pieces)
            at, d = at + int(pieces[b][-1] - pieces[b][0]), d + n_pieces
        result = substituter.apply(tokens, offsets, doc_indices=doc_ids, mask=self.link_mask)
        self._pending.append(result.stats)
        if len(self._pending) >= FOLD_EVERY:
            self._fold()
        return result

    def _write_row(self, row: np.ndarray, offsets: np.ndarray, middle: np.ndarray, middle_mask, out, mask) -> int:
        """``row[:lead] + middle + row[tail:]`` into ``out`` (and ``middle_mask`` into the row's
        ``mask``), cut at its width; ``middle``: the row's pieces substituted. Returns how
        many ids were written."""
        lead, tail, width = int(offsets[0]), int(offsets[-1]), len(out)
        out[:lead] = row[:lead]
        kept = middle[: width - lead]
        out[lead : lead + len(kept)] = kept
        if mask is not None:
            mask[lead : lead + len(kept)] = middle_mask[: len(kept)]
        start = lead + len(kept)
        rest = row[tail : tail + max(0, width - start)]
        out[start : start + len(rest)] = rest
        size = lead + len(middle) + len(row) - tail
        self._stats.samples += 1
        self._stats.tokens_cut += max(0, size - width)
        self._stats.tokens_padded += max(0, width - size)
        return min(width, size)

    def _at(self, position: int) -> Substituter:
        """The Substituter for the schedules' values at ``position`` (kept while they stay)."""
        values = (self.ratio(position), self.portion(position))
        if values != self._values:
            self._substituter = self._base.with_options(ratio=values[0], portion=values[1])
            self._values = values
        self._stats.ratio, self._stats.portion = values
        return self._substituter

    def _checked(self, texts, indices, lengths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        texts = np.asarray(texts)
        if texts.ndim != 2 or texts.dtype.kind not in "iu":
            raise InputError(f"samples must be a 2-D integer array, got {texts.dtype} with shape {texts.shape}")
        n_rows, width = texts.shape
        if width > MAX_SAMPLE_TOKENS:
            raise InputError(f"samples of {width} tokens are longer than the {MAX_SAMPLE_TOKENS} supported")
        index = _integers(indices, "sample indices", n_rows, MAX_INDEX)
        length = (
            np.full(n_rows, width, np.int64) if lengths is None else _integers(lengths, "lengths", n_rows, width + 1)
        )
        if texts.size and (texts.min() < 0 or texts.max() >= self.vocab.vocab_size):
            # only the real ids must be in the vocabulary: padding may hold anything
            real = np.arange(width)[None, :] < length[:, None]
            bad = real & ((texts < 0) | (texts >= self.vocab.vocab_size))
            if bad.any():
                b, p = (int(x[0]) for x in np.nonzero(bad))
                raise InputError(
                    f"sample {int(index[b])}: token id {int(texts[b, p])} at position {p} is outside the "
                    f"vocabulary of {self.vocab.vocab_size} ids"
                )
        return texts, index, length


def _split_rows(
    group: list[int], pieces: list[np.ndarray], result: Result
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(row, its pieces' output ids, their mask) for each row of one call's ``group``, whose
    documents are the rows' pieces in order."""
    d = 0
    for b in group:
        begin, end = int(result.offsets[d]), int(result.offsets[d + len(pieces[b]) - 1])
        d += len(pieces[b]) - 1
        yield b, result.tokens[begin:end], None if result.mask is None else result.mask[begin:end]


def piece_offsets(row: np.ndarray, glue: np.ndarray, eod_id: int) -> np.ndarray:
    """The kernel's documents of one sample: its pieces, each with its end-of-document id.

    The first piece starts after the tokens that may continue a word the sample's start cut
    (the leading run of tokens that glue left: ``glue[id]``); the last, unless the sample ends
    with the end-of-document id, stops before its last word, which may go on past the
    sample's end (from its last token that does not glue left). Those tokens are copied,
    never candidates.
    """
    n = len(row)
    eods = np.flatnonzero(row == eod_id)
    lead = _word_start(row, glue, 0, n, forward=True)
    if len(eods):
        lead = min(lead, int(eods[0]))  # an end-of-document id that glues left still ends the piece
    last = int(eods[-1]) + 1 if len(eods) else lead
    tail = n
    if last < n:
        tail = _word_start(row, glue, last, n, forward=False)
    offsets = np.empty(len(eods) + 2, dtype=np.int64)
    offsets[0] = lead
    offsets[1:-1] = eods + 1
    offsets[-1] = max(tail, lead)
    return offsets


def _word_start(row: np.ndarray, glue: np.ndarray, begin: int, end: int, forward: bool) -> int:
    """The first (or last) token of ``row[begin:end]`` that does not glue left; ``end`` (or
    ``begin``) if none. Looked up a window at a time: the answer is nearly always a few
    tokens from the edge, and a lookup of the whole sample would cost more than the kernel's
    per-call overhead."""
    size = WINDOW
    while True:
        lo, hi = (begin, min(end, begin + size)) if forward else (max(begin, end - size), end)
        word = ~glue[row[lo:hi]]
        if word.any():
            return lo + int(word.argmax()) if forward else hi - 1 - int(word[::-1].argmax())
        if hi - lo == end - begin:
            return end if forward else begin
        size *= 8


def _integers(values, what: str, count: int, limit: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (count,) or (count and array.dtype.kind not in "iu"):
        raise InputError(f"{what} must be {count} integers, got {values!r}")
    array = array.astype(np.int64)
    if count and (array.min() < 0 or array.max() >= limit):
        raise InputError(f"{what} must be in [0, {limit}), got {values!r}")
    return array


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _id(value: object, name: str, limit: int) -> int:
    if not _is_int(value) or not 0 <= int(cast(int, value)) < limit:
        raise InputError(f"{name} must be a token id in [0, {limit}), got {value!r}")
    return int(cast(int, value))
