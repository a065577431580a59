"""PyTorch datasets that apply LINK as samples are read (docs/TRAINING.md).

``LinkDataset`` wraps any dataset of fixed-length token-id samples; ``LinkGPTDataset`` wraps
megatron-core's ``GPTDataset`` and returns its keys. With ``batched=True`` a wrapper returns
the samples as read and its ``collate_fn`` substitutes a whole batch at once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..sampling import Sampling
from ..vocab import Vocab
from .transform import Batch, SampleTransform

try:
    import torch
    from torch.utils.data import Dataset, default_collate
except ImportError as error:  # pragma: no cover - exercised only without torch
    raise ImportError("link_fast.training's datasets need PyTorch: pip install 'link_fast[training]'") from error


@dataclass(frozen=True)
class Fields:
    """Which keys a wrapper returns and how they are computed: megatron-core's GPTDataset
    options of the same names (``extra_token``: its ``add_extra_token_to_sequence``)."""

    eod_id: int
    extra_token: bool = True
    eod_mask_loss: bool = False
    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    create_attention_mask: bool = False
    position_ids: bool = False


def lm_fields(batch: Batch, fields: Fields) -> dict[str, torch.Tensor]:
    """Tokens, labels and masks of rewritten samples, each with a leading batch dimension.

    As megatron-core's GPTDataset makes them: ``labels`` are the next ids, ``loss_mask`` is 0
    where the label is padding (and on end-of-document tokens with ``eod_mask_loss``),
    positions and the causal attention mask restart after each end-of-document id when asked.
    """
    out = torch.from_numpy(batch.tokens)
    width = out.shape[1]
    seq = width - 1 if fields.extra_token else width
    tokens = out[:, :seq].contiguous()
    labels = out[:, 1:].contiguous() if fields.extra_token else torch.roll(out, shifts=-1, dims=1)
    if not fields.extra_token:
        labels[:, -1] = 0
    padded = bool((batch.lengths < width).any()) or not fields.extra_token
    if padded:
        # label k is id k + 1 of the sample: real only below the sample's length
        label_real = np.arange(1, seq + 1)[None, :] < batch.lengths[:, None]
        if not fields.extra_token:
            label_real[:, -1] = False
        labels[torch.from_numpy(~label_real)] = 0
        loss_mask = torch.from_numpy(label_real.astype(np.float32))
    else:
        loss_mask = torch.ones(len(out), seq, dtype=torch.float32)
    is_eod = tokens == fields.eod_id
    if fields.eod_mask_loss:
        loss_mask[is_eod] = 0.0
    result = {"tokens": tokens, "labels": labels, "loss_mask": loss_mask}
    if fields.create_attention_mask:
        result["attention_mask"] = _attention_mask(is_eod, fields.reset_attention_mask)
    if fields.position_ids:
        result["position_ids"] = _position_ids(is_eod, fields.reset_position_ids)
    if batch.link_mask is not None:
        result["link_mask"] = torch.from_numpy(batch.link_mask[:, :seq].astype(bool))
    return result


def _position_ids(is_eod: torch.Tensor, reset: bool) -> torch.Tensor:
    rows, seq = is_eod.shape
    positions = torch.arange(seq, dtype=torch.long).expand(rows, seq)
    if not reset:
        return positions.contiguous()
    # each position minus the start of its document: one after the latest end-of-document id
    after_eod = torch.zeros(rows, seq, dtype=torch.long)
    after_eod[:, 1:] = torch.where(is_eod[:, :-1], positions[:, 1:], 0)
    return positions - torch.cummax(after_eod, dim=1).values


@functools.lru_cache(maxsize=4)
def _future(seq: int) -> torch.Tensor:
    # 16 MB at 4096 positions: made once per length, as GPTDataset caches its own
    return torch.ones(seq, seq, dtype=torch.bool).triu(1)


def _attention_mask(is_eod: torch.Tensor, reset: bool) -> torch.Tensor:
    """(B, 1, S, S) booleans, True where attention is masked: the future, and with ``reset``
    the tokens of earlier documents."""
    rows, seq = is_eod.shape
    future = _future(seq)
    if not reset:
        return future.expand(rows, 1, seq, seq)
    eods = is_eod.long()
    document = torch.cumsum(eods, dim=1) - eods  # end-of-document ids before each position
    other = document[:, :, None] != document[:, None, :]
    return (future[None] | other)[:, None]


class LinkDataset(Dataset):
    """LINK on a dataset whose items are fixed-length samples of token ids.

    ``dataset[i]`` is an array, tensor or list of ``seq_length + 1`` ids (documents separated
    by ``eod_id``); the wrapper returns ``tokens``, ``labels``, ``loss_mask`` (and
    ``link_mask``), each ``seq_length`` long. Sample i is substituted with the draws of
    (seed, epoch, i): the same on every worker and rank. See ``SampleTransform`` for the
    sampling options; ``set_epoch`` before each epoch's iterator for new draws.
    """

    def __init__(
        self,
        dataset: Any,
        vocab: Vocab,
        sampling: Sampling | None = None,
        *,
        eod_id: int,
        pad_id: int = 0,
        epoch: int = 0,
        link_mask: bool = False,
        batched: bool = False,
        eod_mask_loss: bool = False,
        **options: Any,
    ):
        self.dataset = dataset
        self.batched = bool(batched)
        self.fields = self._fields(eod_id, eod_mask_loss)
        # The epoch in shared memory: data-loader workers hold a copy of this dataset, made when
        # they start, and persistent workers keep theirs across epochs; they read the epoch
        # set_epoch last wrote from here before each sample or batch.
        self._shared_epoch = torch.full((1,), epoch, dtype=torch.int64).share_memory_()
        self.transform = SampleTransform(
            vocab,
            sampling,
            eod_id=eod_id,
            pad_id=pad_id,
            epoch=epoch,
            samples_per_epoch=len(dataset),
            link_mask=link_mask,
            **options,
        )

    def _fields(self, eod_id: int, eod_mask_loss: bool) -> Fields:
        return Fields(eod_id=eod_id, eod_mask_loss=eod_mask_loss)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """New draws: call before each epoch's DataLoader iterator starts (persistent workers
        included: they follow)."""
        self.transform.set_epoch(epoch)
        self._shared_epoch[0] = self.transform.epoch

    def _follow_epoch(self) -> None:
        """Take the epoch the process that owns this dataset set last (a data-loader worker's copy)."""
        epoch = int(self._shared_epoch[0])
        if epoch != self.transform.epoch:
            self.transform.set_epoch(epoch)

    @property
    def stats(self) -> dict:
        """Counts of this process so far, with the current ratio and portion."""
        return self.transform.stats.to_dict()

    def read(self, index: int) -> tuple[np.ndarray, int]:
        """Sample ``index`` as read: its ids and how many are real (not padding)."""
        text = _ids(self.dataset[index], index)
        return text, len(text)

    def __getitem__(self, index: int) -> dict:
        text, length = self.read(index)
        shortest = 2 if self.fields.extra_token else 1  # a token, and with the extra token its label
        if len(text) < shortest:
            raise InputError(
                f"sample {index} holds {len(text)} token ids: a sample needs at least {shortest} "
                f"(seq_length{' + 1' if self.fields.extra_token else ''})"
            )
        if self.batched:
            # a copy: samples are often read-only views of a memory-mapped shard, which torch refuses to wrap
            return {"index": index, "text": torch.from_numpy(np.array(text)), "length": length}
        self._follow_epoch()
        batch = self.transform.apply(text, index, length)
        return {key: value[0] for key, value in lm_fields(batch, self.fields).items()}

    def collate_fn(self, items: Sequence[Mapping]) -> dict:
        """Stack a list of items into a batch; with ``batched=True``, substitute it too."""
        if not self.batched:
            return default_collate(list(items))
        if not items:
            raise InputError("an empty batch")
        widths = {len(item["text"]) for item in items}
        if len(widths) != 1:
            raise InputError(f"the samples of a batch must have one length, got {sorted(widths)}")
        texts = torch.stack([item["text"] for item in items]).numpy()
        self._follow_epoch()
        batch = self.transform.apply_batch(
            texts, [int(item["index"]) for item in items], [int(item["length"]) for item in items]
        )
        return lm_fields(batch, self.fields)


class LinkGPTDataset(LinkDataset):
    """LINK on megatron-core's ``GPTDataset``: the same keys (``tokens``, ``labels``,
    ``loss_mask``, ``position_ids``, and ``attention_mask`` when its config creates it), the
    same shapes, computed from the new tokens as GPTDataset computes them from its own.

    The end-of-document id is the config tokenizer's ``eod``; its padding (ids 0 with
    ``loss_mask`` 0) is kept as padding. ``dataset[None]`` (Megatron's batch padding) is
    returned unchanged.
    """

    def __init__(self, gpt_dataset: Any, vocab: Vocab, sampling: Sampling | None = None, **options: Any):
        config = gpt_dataset.config
        self.config = config
        if "eod_id" in options:
            raise InputError("LinkGPTDataset takes the end-of-document id from the dataset's tokenizer")
        super().__init__(gpt_dataset, vocab, sampling, eod_id=int(config.tokenizer.eod), **options)

    def _fields(self, eod_id: int, eod_mask_loss: bool) -> Fields:
        c = self.config
        return Fields(
            eod_id=eod_id,
            extra_token=bool(c.add_extra_token_to_sequence),
            eod_mask_loss=bool(c.eod_mask_loss),
            reset_position_ids=bool(c.reset_position_ids),
            reset_attention_mask=bool(c.reset_attention_mask),
            create_attention_mask=bool(c.create_attention_mask),
            position_ids=True,
        )

    def read(self, index: int) -> tuple[np.ndarray, int]:
        item = self.dataset[index]
        tokens = item["tokens"].numpy()
        if self.fields.extra_token:
            text = np.concatenate([tokens, item["labels"].numpy()[-1:]])
        else:
            text = tokens
        return text, _real_length(text, item["loss_mask"].numpy())

    def __getitem__(self, index: int | None) -> dict:
        if index is None:
            return self.dataset[None]
        return super().__getitem__(index)


def _real_length(text: np.ndarray, loss_mask: np.ndarray) -> int:
    """GPTDataset pads a short sample with ids 0 whose labels have ``loss_mask`` 0: the
    length without that tail (an id 0 with loss_mask 0 is padding or, harmlessly, an
    end-of-document id 0 that ends no word)."""
    n = len(text)
    while n > 1 and text[n - 1] == 0 and loss_mask[n - 2] == 0:
        n -= 1
    return n


def _ids(item: Any, index: int) -> np.ndarray:
    if isinstance(item, torch.Tensor):
        item = item.numpy()
    array = np.asarray(item)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise InputError(f"sample {index}: expected a 1-D array of token ids, got {array.dtype} {array.shape}")
    return array
