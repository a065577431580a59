"""Reading, checking and writing tokenized shards: Megatron ``.bin/.idx`` and datatrove ``.ds``
(docs/DESIGN.md §8).

Reading memory-maps the files: nothing proportional to the token count is loaded, and the
checks ``open_shard`` runs are vectorised passes over the index only, never over the tokens.
Every problem is a ``ShardError`` naming the file. Writing (``ShardWriter``) streams into
temporary files in the target directory and renames them into place only when complete.

- ``base``: ``ShardError``, the memory-mapped ``Shard``, checks both formats share;
- ``megatron``, ``datatrove``: each format's constants, reader and index bytes;
- ``discovery``: format detection, ``open_shard``, ``find_shards``;
- ``records``: link-fast's run records and masks, ``validate_shard``;
- ``writer`` (``ShardWriter``) and ``syncer`` (its background fsync).
"""

from .base import TOKEN_DTYPES, Shard, ShardError
from .datatrove import DATATROVE_DEFAULT_TOKENIZER, DATATROVE_SUFFIXES
from .discovery import SHARD_SUFFIXES, find_shards, open_shard
from .megatron import (
    HEADER_SIZE,
    MEGATRON_DTYPES,
    MEGATRON_MAGIC,
    MEGATRON_SUFFIXES,
    MEGATRON_VERSION,
    pointers_from_sizes,
)
from .records import LINK_RECORD_SUFFIX, load_record, mask_owner, read_link_record, recorded_mask, validate_shard
from .syncer import SYNC_EVERY_BYTES
from .writer import ShardWriter

__all__ = [
    "DATATROVE_DEFAULT_TOKENIZER",
    "DATATROVE_SUFFIXES",
    "HEADER_SIZE",
    "LINK_RECORD_SUFFIX",
    "MEGATRON_DTYPES",
    "MEGATRON_MAGIC",
    "MEGATRON_SUFFIXES",
    "MEGATRON_VERSION",
    "SHARD_SUFFIXES",
    "SYNC_EVERY_BYTES",
    "TOKEN_DTYPES",
    "Shard",
    "ShardError",
    "ShardWriter",
    "find_shards",
    "load_record",
    "mask_owner",
    "open_shard",
    "pointers_from_sizes",
    "read_link_record",
    "recorded_mask",
    "validate_shard",
]
