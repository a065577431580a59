"""Rewrite whole shards: ``apply_shards`` and ``link-fast apply``.

Each input shard is cut into chunks of whole sequences (about ``chunk_tokens`` tokens each).
Worker processes memory-map the shard and the vocabulary themselves, so a task is a few
integers. A worker writes its rewritten chunk into the output itself, at the offset the
chunks before it leave (it learns their sizes through a small shared file); the parent
accounts the chunks strictly in order through a bounded window, which keeps memory at about
``chunk_tokens x workers`` whatever the shard size, and writes the index. With one worker
everything runs in this process. A Megatron sequence is one document for sampling: its
index in the shard is the document index, and the shard's name is the default stream key, so
output bytes do not depend on the number of workers or the chunk size.

Outputs per input ``NAME``: ``NAME.bin/.idx`` (or ``.ds`` files for datatrove input),
optionally ``NAME_mask.*`` (uint8, same sequence lengths) and ``NAME.link.json`` (config,
vocabulary, the input's identity, the output files and their sizes, statistics, seconds). All
files are written under temporary names and put in place together (``commit_output``): the
old record goes first, ``NAME.link.json`` comes last and marks a finished output. ``resume=True``
skips an input only when that record matches the options, the vocabulary, the input as it is
now and the output files as they are now. No output path may be an input file, and masks
written by link-fast (their ``NAME.link.json`` lists them) are skipped as inputs.

- ``apply``: ``apply_shards``, its checks and the loop over shards;
- ``rewrite``: one shard into one output (the window of chunks, accounting, the record);
- ``chunks``: the worker side (``WorkerState``, ``init_worker``, ``run_chunk``, ``InProcess``);
- ``outputs``: output paths, resume, the input's and vocabulary's identity; ``commit``: the commit;
- ``memory``: the memory probe.
"""

from .apply import DEFAULT_CHUNK_TOKENS, OUT_DTYPES, apply_shards
from .chunks import chunk_bounds
from .memory import memory_mb

__all__ = ["DEFAULT_CHUNK_TOKENS", "OUT_DTYPES", "apply_shards", "chunk_bounds", "memory_mb"]
