"""LinkText, the datatrove step of text mode: JsonlReader -> LinkText -> DocumentTokenizer on the
Local executor gives the tokens of TextSubstituter's output, with statistics in datatrove's."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datatrove")

from test_text import PIECES, synthetic_vocab  # noqa: E402
from trained_tokenizer import train_byte_level  # noqa: E402

from link_fast.text import TextSubstituter  # noqa: E402

OPTIONS = dict(ratio=0.7, seed=5, languages={"de": 1.0, "fr": 1.0})


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(30)) + " the cat" for _ in range(n)]


def test_jsonl_reader_link_text_document_tokenizer(tmp_path):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from tokenizers import Tokenizer

    from link_fast.integrations.datatrove import LinkText

    vocab = synthetic_vocab().save(tmp_path / "v.lfv")
    texts = _texts(40, 1)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "docs.jsonl").write_text(
        "".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    tokenizer = train_byte_level(tmp_path / "tok.json", texts + ["Katze Hund chat chien Eiscreme"] * 5, 400)
    LocalPipelineExecutor(
        [
            JsonlReader(str(tmp_path / "raw")),
            LinkText(vocab, **OPTIONS, substitutions_key="link"),
            DocumentTokenizer(str(tmp_path / "tokenized"), str(tokenizer), shuffle_documents=False),
        ],
        tasks=1,
        workers=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()

    # what the step should have written: text mode, document index = order in the task
    sub = TextSubstituter(synthetic_vocab(), **OPTIONS, stream_key="rank00000")
    results = [sub.apply(t, i) for i, t in enumerate(texts)]
    assert sum(r.stats.total_substitutions for r in results) > 0
    tok = Tokenizer.from_file(str(tokenizer))
    want = [t for r in results for t in tok.encode(r.text).ids]
    (ds,) = sorted((tmp_path / "tokenized").glob("*.ds"))
    got = np.fromfile(ds, dtype=np.uint16).tolist()
    assert got == want

    (stats_file,) = (tmp_path / "logs" / "stats").glob("*.json")
    step = next(s for s in json.loads(stats_file.read_text()) if "LINK" in s["name"])
    stats = step["stats"]
    assert stats["documents"] == len(texts)  # a plain count: datatrove keeps a total only
    assert stats["substitutions"]["total"] == sum(r.stats.total_substitutions for r in results)
    assert stats["candidates"]["total"] == sum(r.stats.candidates for r in results)
    per_language = sum(stats.get(f"substitutions_{lang}", {}).get("total", 0) for lang in ("de", "fr"))
    assert per_language == stats["substitutions"]["total"]
    assert stats["characters_out"]["total"] == sum(len(r.text) for r in results)


def test_step_needs_a_ratio_and_keeps_only_paths(tmp_path):
    from link_fast.integrations.datatrove import LinkText

    with pytest.raises(TypeError):
        LinkText(tmp_path / "v.lfv")
    step = LinkText(Path(tmp_path / "v.lfv"), ratio=0.3)
    assert step.vocab_path == str(tmp_path / "v.lfv")  # nothing opened until run(): pickles small
    assert list(step.run(None)) == []


def test_documents_of_a_rank_draw_that_ranks_stream(tmp_path):
    """The stream key of rank 3 is spelled rank00003, as LinkShards's for documents with ids."""
    from datatrove.data import Document

    from link_fast.integrations.datatrove import LinkText

    vocab = synthetic_vocab().save(tmp_path / "v.lfv")
    texts = _texts(6, 2)
    out = list(LinkText(vocab, **OPTIONS).run(iter(Document(text=t, id=str(i)) for i, t in enumerate(texts)), rank=3))
    sub = TextSubstituter(synthetic_vocab(), **OPTIONS, stream_key="rank00003")
    assert [d.text for d in out] == [sub.apply(t, i).text for i, t in enumerate(texts)]
    assert [d.text for d in out] != texts


@pytest.mark.parametrize("rank", [0, 3, 123456])
def test_every_step_on_a_rank_draws_one_stream(tmp_path, rank):
    """One stream-key rule for every datatrove step: LinkShards (documents with ids) and LinkText
    on the same rank take rank_stream_key's key, and a stream_key given is kept by both."""
    from link_fast.integrations.datatrove import LinkShards, LinkText, rank_stream_key

    vocab = synthetic_vocab().save(tmp_path / "v.lfv")
    steps = [LinkShards(None, None, vocab, **OPTIONS), LinkText(vocab, **OPTIONS)]
    assert {step._substituter(rank).sampling.stream_key for step in steps} == {rank_stream_key(rank)}
    assert rank_stream_key(rank) == "rank" + str(rank).zfill(5)
    given = [LinkShards(None, None, vocab, **OPTIONS, stream_key="mine"), LinkText(vocab, **OPTIONS, stream_key="mine")]
    assert {step._substituter(rank).sampling.stream_key for step in given} == {"mine"}
