"""LINK on a Hugging Face ``datasets`` column of token ids: ``LinkMap`` for ``Dataset.map``.

    from link_fast.integrations.hf import LinkMap

    linked = dataset.map(LinkMap("en-de.lfv", ratio=0.3), batched=True, with_indices=True, num_proc=8)

Row ``i`` is document ``i`` of the stream ``stream_key``: the result is
``Substituter.apply`` on the whole column, whatever the batch size or ``num_proc``. The
vocabulary is opened on first use in each process, so the callable pickles small (dill).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..sampling import Sampling

if TYPE_CHECKING:
    from ..substituter import Substituter


class LinkMap:
    """A ``Dataset.map(batched=True, with_indices=True)`` function rewriting ``column``.

    ``sampling``, or its options as keywords (``Sampling``'s fields), checked here, before the
    map starts. ``mask_column``: also add a column of 0/1 per token, 1 where substituted.
    """

    def __init__(
        self,
        vocab: str | os.PathLike,
        sampling: Sampling | None = None,
        *,
        column: str = "input_ids",
        mask_column: str | None = None,
        **options: Any,
    ):
        self.vocab_path = os.fspath(vocab)
        self.sampling = Sampling.from_options(sampling, **options)
        self.column = column
        self.mask_column = mask_column
        self._substituter: Substituter | None = None

    def __getstate__(self):
        return dict(self.__dict__, _substituter=None)  # the vocabulary is reopened where it runs

    def _get_substituter(self):
        if self._substituter is None:
            from ..substituter import Substituter
            from ..vocab import Vocab

            self._substituter = Substituter(Vocab.load(self.vocab_path), self.sampling)
        return self._substituter

    def __call__(self, batch: Mapping[str, Sequence], indices: Sequence[int] | np.ndarray) -> dict:
        if self.column not in batch:
            raise InputError(f"the dataset has no column {self.column!r} (columns: {', '.join(batch)})")
        rows = batch[self.column]
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) != len(rows):
            raise InputError("LinkMap needs with_indices=True (and batched=True)")
        substituter = self._get_substituter()
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = (
            np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
            if len(rows) and offsets[-1]
            else np.zeros(0, dtype=np.int64)
        )
        if len(tokens) and (tokens.min() < 0 or tokens.max() > np.iinfo(np.int32).max):
            raise InputError(f"column {self.column!r} holds ids outside [0, 2**31)")
        tokens = tokens.astype(np.int32)
        out_rows: list = [None] * len(rows)
        out_masks: list = [None] * len(rows)
        # Rows of one map batch are consecutive indices; a run of them is one kernel call.
        breaks = np.flatnonzero(np.diff(indices) != 1) + 1
        for lo, hi in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [len(rows)]))):
            if lo == hi:
                continue
            result = substituter.apply(
                tokens, offsets[lo : hi + 1], first_doc=int(indices[lo]), mask=self.mask_column is not None
            )
            out = result.tokens.tolist()
            bounds = result.offsets.tolist()
            for k in range(hi - lo):
                out_rows[lo + k] = out[bounds[k] : bounds[k + 1]]
                if self.mask_column is not None:
                    out_masks[lo + k] = result.mask[bounds[k] : bounds[k + 1]].tolist()
        got = {self.column: out_rows}
        if self.mask_column is not None:
            got[self.mask_column] = out_masks
        return got
