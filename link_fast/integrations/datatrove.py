"""LINK as datatrove pipeline steps: ``LinkShards`` (token ids in shards), ``LinkText``
(``Document.text``, before a tokenizer; at the end of this module).

Each datatrove task (rank) rewrites its share of the shards of ``input_folder`` into
``output_folder`` with the runner of ``link-fast apply``: the same outputs, byte for byte, and
the same ``NAME.link.json`` markers, so a task that died is resumed shard by shard while
datatrove's own completion files skip the tasks that finished. Local folders and fsspec URLs
(``s3://``, ``hf://``, ...) both work; remote shards are copied to a local working directory
first, since the kernel memory-maps its input.

    from datatrove.executor import LocalPipelineExecutor
    from link_fast.integrations.datatrove import LinkShards

    LocalPipelineExecutor(
        [LinkShards("tokenized/", "linked/", "en-de.lfv", ratio=0.3)],
        tasks=64, workers=8, logging_dir="logs/link",
    ).run()

After a ``DocumentTokenizer`` in the same pipeline, pass ``rank_files=True`` (and its output
folder as ``input_folder``): each task then takes the ``*_RANK_*.ds`` files it just wrote.
Documents flowing through the step that carry token ids in ``metadata[ids_field]`` are
rewritten in place (document index: their order within the task; stream key: ``rank_stream_key``
of the task's rank, as ``LinkText``'s, unless ``stream_key`` is given).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep

from ..runner import DEFAULT_CHUNK_TOKENS, apply_shards
from ..sampling import Sampling
from ..shards import SHARD_SUFFIXES

_INDEX_SUFFIXES = (".idx", ".ds")  # one file that names each shard once


def rank_name(rank: int) -> str:
    """A task's rank as datatrove spells it in the files it names: five digits, ``00003``."""
    return f"{rank:05d}"


def rank_stream_key(rank: int) -> str:
    """The stream key of the documents a task rewrites when ``stream_key`` is not given:
    ``rank00003`` for rank 3. Every step here draws from it, so the steps on one rank draw one
    stream; the document index (order within the task) tells documents apart inside it."""
    return f"rank{rank_name(rank)}"


def _sampling_for_rank(sampling: Sampling, rank: int) -> Sampling:
    """``sampling`` with the rank's stream key, unless the user gave one."""
    return sampling if sampling.stream_key is not None else sampling.replace(stream_key=rank_stream_key(rank))


class LinkShards(PipelineStep):
    """Rewrite this task's shards with LINK substitutions (options as ``link-fast apply``)."""

    name = "🔗 LINK substitution"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        input_folder: DataFolderLike | None,
        output_folder: DataFolderLike | None,
        vocab: str | os.PathLike,
        sampling: Sampling | None = None,
        *,
        glob_pattern: str | None = None,
        rank_files: bool = False,
        workers: int = 1,
        mask: bool = False,
        out_dtype: Literal["auto", "uint16", "int32", "uint32"] = "auto",
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        ids_field: str = "input_ids",
        local_working_dir: str | os.PathLike | None = None,
        **options: Any,
    ):
        """``sampling``: a ``Sampling``, or its options as keywords (``ratio`` is required)."""
        super().__init__()
        if sampling is None and "ratio" not in options:
            raise TypeError("LinkShards needs sampling= or ratio=")
        if (input_folder is None) != (output_folder is None):
            raise ValueError("give both input_folder and output_folder, or neither (documents only)")
        # Only paths and options here: the step is pickled to every task, and the vocabulary
        # is opened inside run().
        self.input_folder = get_datafolder(input_folder) if input_folder is not None else None
        self.output_folder = get_datafolder(output_folder) if output_folder is not None else None
        self.vocab_path = os.fspath(vocab)
        self.sampling = Sampling.from_options(sampling, **options)
        self.glob_pattern = glob_pattern
        self.rank_files = rank_files
        self.workers = workers
        self.mask = mask
        self.out_dtype = out_dtype
        self.chunk_tokens = chunk_tokens
        self.ids_field = ids_field
        self.local_working_dir = local_working_dir

    # -- which shards --------------------------------------------------------------------------
    def shards_for_rank(self, rank: int, world_size: int) -> list[str]:
        """This task's shards, as paths relative to ``input_folder`` without their suffix."""
        if self.input_folder is None:
            raise ValueError("shards_for_rank needs an input_folder")
        files = self.input_folder.list_files(glob_pattern=self.glob_pattern)
        prefixes = sorted(
            {
                f[: -len(s)]
                for f in files
                for s in _INDEX_SUFFIXES
                if f.endswith(s) and not os.path.basename(f).startswith(".")
            }
        )
        if self.rank_files:  # the files a DocumentTokenizer of this rank wrote: NAME_RANK_*.ds
            name = rank_name(rank)
            return [
                p for p in prefixes if f"_{name}_" in os.path.basename(p) or os.path.basename(p).startswith(f"{name}_")
            ]
        return prefixes[rank::world_size]

    # -- run -----------------------------------------------------------------------------------
    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is not None:
            yield from self._rewrite_documents(data, rank)
        input_folder, output_folder = self.input_folder, self.output_folder
        if input_folder is None or output_folder is None:  # documents only: __init__ takes both or neither
            return
        prefixes = self.shards_for_rank(rank, world_size)
        if not prefixes:
            return
        with tempfile.TemporaryDirectory(prefix="link_fast_", dir=self.local_working_dir) as work:
            inputs = [self._local_input(input_folder, p, Path(work) / "in") for p in prefixes]
            output_dir = output_folder.path if output_folder.is_local() else os.path.join(work, "out")
            with self.track_time(unit="shard"):
                records = apply_shards(
                    self.vocab_path,
                    inputs,
                    output_dir,
                    self.sampling,
                    workers=self.workers,
                    mask=self.mask,
                    out_dtype=self.out_dtype,
                    chunk_tokens=self.chunk_tokens,
                    resume=True,
                    progress=False,
                )
            if not output_folder.is_local():
                self._upload(output_folder, Path(output_dir), records)
        for record in records.values():
            stats = record["stats"]
            self.stat_update("shards")
            self.stat_update("documents", value=stats["documents"], unit="shard")
            self.stat_update("candidates", value=stats["candidates"], unit="shard")
            self.stat_update("substitutions", value=stats["total_substitutions"], unit="shard")
            self.stat_update("tokens_in", value=stats["tokens_in"], unit="shard")
            self.stat_update("tokens_out", value=stats["tokens_out"], unit="shard")

    def _local_input(self, folder, prefix: str, into: Path) -> str:
        """A local path for the shard ``prefix`` of ``folder`` (copied there if remote)."""
        if folder.is_local():
            return os.path.join(folder.path, prefix)
        into.mkdir(parents=True, exist_ok=True)
        for suffix in SHARD_SUFFIXES:
            if folder.exists(prefix + suffix):
                local = str(into / (os.path.basename(prefix) + suffix))
                folder.get_file(prefix + suffix, local)
                # The copy gets the remote file's mtime, part of the input's identity that a
                # resumed task compares: a fresh copy's own would redo every shard.
                try:
                    stamp = folder.modified(prefix + suffix).timestamp()
                except (NotImplementedError, AttributeError, OSError, ValueError, TypeError):
                    continue  # a filesystem without modification times: resume redoes this shard
                os.utime(local, (stamp, stamp))
        return str(into / os.path.basename(prefix))

    def _upload(self, folder, local: Path, records: dict) -> None:
        """Copy the outputs to the remote ``folder``, each shard's marker (NAME.link.json) last."""
        for name, record in records.items():
            for path in record.get("outputs", []):  # relative to the record's folder, ``local``
                folder.put_file(str(local / path), os.path.basename(path))
            marker = local / f"{name}.link.json"
            if marker.exists():
                folder.put_file(str(marker), marker.name)

    def _rewrite_documents(self, data: DocumentsPipeline, rank: int) -> Iterator[Document]:
        import numpy as np

        substituter = None
        for index, document in enumerate(data):
            ids = document.metadata.get(self.ids_field)
            if ids is not None:
                if substituter is None:
                    substituter = self._substituter(rank)
                tokens = np.asarray(ids, dtype=np.int32)
                result = substituter.apply(tokens, np.array([0, len(tokens)]), first_doc=index)
                document.metadata[self.ids_field] = result.tokens.tolist()
                self.stat_update("documents")
                self.stat_update("candidates", value=result.stats.candidates)
                self.stat_update("substitutions", value=result.stats.total_substitutions)
            yield document

    def _substituter(self, rank: int):
        from ..substituter import Substituter
        from ..vocab import Vocab

        return Substituter(Vocab.load(self.vocab_path), _sampling_for_rank(self.sampling, rank))


class LinkText(PipelineStep):
    """LINK substitutions on ``Document.text`` (text mode, as ``link-fast text``), for the
    common pipeline ``JsonlReader -> LinkText -> DocumentTokenizer``.

        LocalPipelineExecutor(
            [JsonlReader("raw/"), LinkText("en-de.lfv", ratio=0.3), DocumentTokenizer("tokenized/", "tok.json")],
            tasks=64, logging_dir="logs/link",
        ).run()

    A document's index is its order within the task and its stream key ``rank_stream_key`` of
    the task's rank (``rank00003``) unless ``stream_key`` is given, the same as ``LinkShards``'s
    for documents with ids. ``tokenizer``: the vocabulary's, to match only where token mode would.
    ``substitutions_key``: also store the substitutions (offsets in the new text) in
    ``Document.metadata`` under this key. Statistics go to datatrove's stats: documents,
    candidates, substitutions (and per language), characters in and out.
    """

    name = "🔗 LINK text substitution"
    type = "🔨 - FORMAT"

    def __init__(
        self,
        vocab: str | os.PathLike,
        sampling: Sampling | None = None,
        *,
        tokenizer: str | os.PathLike | None = None,
        substitutions_key: str | None = None,
        **options: Any,
    ):
        super().__init__()
        if sampling is None and "ratio" not in options:
            raise TypeError("LinkText needs sampling= or ratio=")
        # Only paths and options here: the step is pickled to every task; run() opens them.
        self.vocab_path = os.fspath(vocab)
        self.sampling = Sampling.from_options(sampling, **options)
        self.tokenizer = None if tokenizer is None else os.fspath(tokenizer)
        self.substitutions_key = substitutions_key

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        substituter = None
        for index, document in enumerate(data):
            if substituter is None:
                substituter = self._substituter(rank)
            with self.track_time():
                result = substituter.apply(document.text, index, substitutions=self.substitutions_key is not None)
            document.text = result.text
            if self.substitutions_key is not None:
                document.metadata[self.substitutions_key] = [s.to_dict() for s in result.substitutions]
            stats = result.stats
            self.stat_update("documents")
            self.stat_update("candidates", value=stats.candidates)
            self.stat_update("substitutions", value=stats.total_substitutions)
            for language, count in stats.substitutions.items():
                if count:
                    self.stat_update(f"substitutions_{language}", value=count)
            self.stat_update("characters_in", value=stats.size_in)
            self.stat_update("characters_out", value=stats.size_out)
            yield document

    def _substituter(self, rank: int):
        from ..text import TextSubstituter
        from ..tokenizer import load_tokenizer
        from ..vocab import Vocab

        tokenizer = None if self.tokenizer is None else load_tokenizer(self.tokenizer)
        return TextSubstituter(
            Vocab.load(self.vocab_path), _sampling_for_rank(self.sampling, rank), tokenizer=tokenizer
        )
