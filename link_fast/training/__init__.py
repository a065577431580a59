"""LINK at training time: substitute inside the data loader (docs/TRAINING.md, DESIGN §9).

The transform and the schedules need only numpy; the datasets (``LinkDataset``,
``LinkGPTDataset``) need PyTorch (``pip install 'link_fast[training]'``) and import it on use.
"""

from .schedule import Schedule, schedule
from .transform import Batch, SampleTransform, TrainingStats, epoch_stream_key, piece_offsets

__all__ = [
    "Batch",
    "Fields",
    "LinkDataset",
    "LinkGPTDataset",
    "SampleTransform",
    "Schedule",
    "TrainingStats",
    "epoch_stream_key",
    "lm_fields",
    "piece_offsets",
    "schedule",
]

_TORCH_NAMES = ("Fields", "LinkDataset", "LinkGPTDataset", "lm_fields")


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from . import torch_data

        return getattr(torch_data, name)
    raise AttributeError(f"module 'link_fast.training' has no attribute {name!r}")
