"""LinkMap for datasets.Dataset.map: equal to Substituter.apply on the same rows, num_proc 1 and 2."""

from __future__ import annotations

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """A real tokenized dataset: the bundled fables, Tekken ids, one row each."""
    pytest.importorskip("mistral_common")
    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES, demo_documents, demo_tokenizer_path
    from link_fast.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(demo_tokenizer_path())
    path = compile_vocab(tokenizer, DEMO_LANGUAGES).save(tmp_path_factory.mktemp("vocab") / "demo.lfv")
    texts = demo_documents() * 3
    rows = tokenizer.encode_batch(texts)
    return path, datasets.Dataset.from_dict({"text": texts, "input_ids": rows})


def expected(path, rows, **options):
    from link_fast import Substituter, Vocab

    substituter = Substituter(Vocab.load(path), **options)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    result = substituter.apply(np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]), offsets, mask=True)
    return (
        [result.tokens[a:b].tolist() for a, b in zip(result.offsets[:-1], result.offsets[1:])],
        [result.mask[a:b].tolist() for a, b in zip(result.offsets[:-1], result.offsets[1:])],
    )


@pytest.mark.parametrize("num_proc, batch_size", [(None, 1000), (None, 7), (2, 5)])
def test_map_equals_substituter_apply(tokenized, num_proc, batch_size):
    from link_fast.integrations.hf import LinkMap

    path, dataset = tokenized
    linked = dataset.map(
        LinkMap(path, ratio=0.5, seed=3, mask_column="link_mask"),
        batched=True,
        with_indices=True,
        batch_size=batch_size,
        num_proc=num_proc,
    )
    want_ids, want_mask = expected(path, dataset["input_ids"], ratio=0.5, seed=3)
    assert linked["input_ids"] == want_ids and linked["link_mask"] == want_mask
    assert linked["text"] == dataset["text"]
    assert sum(map(sum, want_mask)) > 0


def test_selected_rows_keep_their_own_indices(tokenized):
    from link_fast.integrations.hf import LinkMap

    path, dataset = tokenized
    rows = LinkMap(path, ratio=0.5, seed=3)(
        {"input_ids": dataset["input_ids"][4:6] + dataset["input_ids"][9:10]}, [4, 5, 9]
    )
    want, _ = expected(path, dataset["input_ids"], ratio=0.5, seed=3)
    assert rows["input_ids"] == [want[4], want[5], want[9]]


def test_missing_column_and_bad_ids_are_clear_errors(tokenized):
    from link_fast.errors import InputError
    from link_fast.integrations.hf import LinkMap

    path, _ = tokenized
    with pytest.raises(InputError, match="no column 'input_ids'"):
        LinkMap(path, ratio=0.5)({"ids": [[1]]}, [0])
    with pytest.raises(InputError, match="outside"):
        LinkMap(path, ratio=0.5)({"input_ids": [[-1, 2]]}, [0])
