"""link_fast.training: LINK inside the data loader (docs/DESIGN.md §9, docs/TRAINING.md).

Real megatron-core GPTDatasets built on real shards (written by link_fast, read by
megatron-core's IndexedDataset): the bundled fables with the demo dictionaries for the
mechanics, the Python documentation with FreeDict for the precision check of
tests/test_real_data.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from link_fast import InputError
from link_fast.training import SampleTransform, piece_offsets, schedule

torch = pytest.importorskip("torch")
gpt = pytest.importorskip("megatron.core.datasets.gpt_dataset")
indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")

from link_fast.training import LinkDataset, LinkGPTDataset  # noqa: E402

EOD = 2  # Tekken's </s>
SEQ = 64


class MegatronTokenizer:
    """What GPTDatasetConfig reads of a tokenizer."""

    def __init__(self, vocab_size: int, eod: int):
        self.vocab_size = vocab_size
        self.eod = eod
        self.unique_identifiers = {"class": "MegatronTokenizer", "vocab_size": vocab_size, "eod": eod}


def write_shard(prefix, documents: list[list[int]]) -> str:
    from link_fast.shards import ShardWriter

    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in documents], out=offsets[1:])
    with ShardWriter(prefix, np.int32) as writer:
        writer.write(np.concatenate([np.asarray(d, dtype=np.int32) for d in documents]), offsets)
    return str(prefix)


def gpt_dataset(prefix: str, cache, seq: int = SEQ, num_samples=None, vocab_size: int = 131072, **options):
    config = {
        "reset_position_ids": False,
        "reset_attention_mask": False,
        "eod_mask_loss": False,
        "create_attention_mask": False,
        **options,
    }
    cfg = gpt.GPTDatasetConfig(
        random_seed=1,
        sequence_length=seq,
        tokenizer=MegatronTokenizer(vocab_size, EOD),
        path_to_cache=str(cache),
        **config,
    )
    low = indexed.IndexedDataset(prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.utils import Split

        return gpt.GPTDataset(low, prefix, np.arange(len(low), dtype=np.int32), num_samples, Split.train, cfg)


@pytest.fixture(scope="module")
def tekken_demo():
    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES, demo_tokenizer_path
    from link_fast.tokenizer import load_tokenizer

    tok = load_tokenizer(demo_tokenizer_path())
    return tok, compile_vocab(tok, DEMO_LANGUAGES)


@pytest.fixture(scope="module")
def fables_shard(tekken_demo, tmp_path_factory) -> str:
    from link_fast.demo import demo_documents

    tok, _ = tekken_demo
    out = tmp_path_factory.mktemp("fables")
    return write_shard(out / "fables", [tok.encode(d) + [EOD] for d in demo_documents()])


@pytest.fixture(scope="module")
def fables(fables_shard, tmp_path_factory):
    return gpt_dataset(fables_shard, tmp_path_factory.mktemp("cache"), num_samples=60)


def items_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------------------------------
# Shapes, labels, padding, cut words


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"create_attention_mask": True},
        {
            "eod_mask_loss": True,
            "reset_position_ids": True,
            "reset_attention_mask": True,
            "create_attention_mask": True,
        },
        {"add_extra_token_to_sequence": False, "eod_mask_loss": True, "reset_position_ids": True},
    ],
)
def test_ratio_zero_gives_the_gpt_dataset_samples(tekken_demo, fables_shard, tmp_path, options):
    """Nothing substituted: every key is GPTDataset's own, per sample and through collate_fn."""
    _, vocab = tekken_demo
    ds = gpt_dataset(fables_shard, tmp_path, num_samples=40, **options)
    link = LinkGPTDataset(ds, vocab, ratio=0.0)
    batched = LinkGPTDataset(ds, vocab, ratio=0.0, batched=True)
    for i in range(len(ds)):
        items_equal(link[i], ds[i])
    indices = list(range(0, len(ds), 3))
    expected = torch.utils.data.default_collate([ds[i] for i in indices])
    items_equal(batched.collate_fn([batched[i] for i in indices]), expected)
    items_equal(link[None], ds[None])


def test_shapes_labels_and_padding(tekken_demo, fables):
    _, vocab = tekken_demo
    link = LinkGPTDataset(fables, vocab, ratio=1.0, seed=3, link_mask=True)
    changed = shortened = 0
    for i in range(len(fables)):
        plain, item = fables[i], link[i]
        assert set(item) == set(plain) | {"link_mask"}
        for key in plain:
            assert item[key].shape == plain[key].shape and item[key].dtype == plain[key].dtype, key
        assert item["link_mask"].shape == item["tokens"].shape and item["link_mask"].dtype == torch.bool
        tokens, labels, loss = item["tokens"], item["labels"], item["loss_mask"]
        # labels are the next tokens: the same sample shifted by one
        assert torch.equal(labels[:-1], tokens[1:])
        padded = int((loss == 0).sum())
        if padded:
            # padding is a tail of pad ids 0 with loss_mask 0, never inside the sample
            assert torch.all(loss[: SEQ - padded] == 1) and torch.all(labels[SEQ - padded :] == 0)
            assert torch.all(tokens[SEQ - padded + 1 :] == 0) and not item["link_mask"][SEQ - padded + 1 :].any()
            shortened += 1
        else:
            assert torch.all(loss == 1)
        changed += not torch.equal(tokens, plain["tokens"])
        assert torch.equal(item["position_ids"], plain["position_ids"])
    assert changed > len(fables) // 2
    stats = link.stats
    assert stats["tokens_cut"] > 0 and stats["tokens_padded"] > 0 and shortened > 0
    assert stats["samples"] == len(fables) and stats["ratio"] == 1.0 and stats["total_substitutions"] > 0


def test_cut_words_are_never_candidates(tekken_demo):
    """A word cut by the sample's start or end stays; the same word whole is replaced."""
    tok, vocab = tekken_demo
    t = SampleTransform(vocab, eod_id=EOD, ratio=1.0)
    word = tok.encode("grapes")  # bare form: what a cut word's tokens look like at the start
    spaced = tok.encode(" grapes")
    rest = tok.encode(" were sour and a fox came by.")
    for name, text, kept in [
        ("start", word + rest, True),  # the sample may have started inside "...grapes"
        ("after eod", [EOD] + word + rest, False),
        ("end", rest + spaced, True),  # " grapes" may go on ("grapeseed") past the end
        ("end, closed", rest + spaced + tok.encode("."), False),
        ("end of document", rest + spaced + [EOD], False),
    ]:
        batch = t.apply(np.asarray(text + [0] * 20), 7, length=len(text))  # room: nothing cut
        out = batch.tokens[0, : batch.lengths[0]].tolist()
        grapes = word if name.startswith(("start", "after")) else spaced
        present = any(out[i : i + len(grapes)] == grapes for i in range(len(out)))
        assert present == kept, (name, tok.decode(out))


def test_piece_offsets():
    glue = np.array([True, False, False])  # id 0 glues left, 1 does not, 2 is the end of document
    row = np.array([0, 0, 1, 0, 2, 1, 2, 0, 1, 0, 0])
    # lead: first token that does not glue left (2); pieces end after each eod (5, 7);
    # tail: the last piece's last token that does not glue left (8)
    assert piece_offsets(row, glue, 2).tolist() == [2, 5, 7, 8]
    row[10] = 2
    assert piece_offsets(row, glue, 2).tolist() == [2, 5, 7, 11, 11]
    assert piece_offsets(np.zeros(3, dtype=np.int64), glue, 2).tolist() == [3, 3]
    long = np.zeros(1000, dtype=np.int64)
    long[[700, 900]] = 1  # beyond the first window from each edge
    assert piece_offsets(long, glue, 2).tolist() == [700, 900]


# ---------------------------------------------------------------------------------------------
# Determinism: (seed, epoch, index) -> the same sample anywhere; new epochs draw anew


def loader_samples(dataset, order, **loader_options) -> dict[int, dict]:
    sampler = list(order)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, collate_fn=dataset.collate_fn, **loader_options)
    seen: dict[int, dict] = {}
    position = 0
    for batch in loader:
        for row in range(len(batch["tokens"])):
            seen[sampler[position]] = {key: value[row] for key, value in batch.items()}
            position += 1
    return seen


def test_same_sample_on_every_worker_and_batching(tekken_demo, fables):
    _, vocab = tekken_demo
    options = {"ratio": 0.5, "seed": 11, "link_mask": True}
    one = loader_samples(LinkGPTDataset(fables, vocab, **options), range(len(fables)), batch_size=1)
    backwards = range(len(fables) - 1, -1, -1)
    two = loader_samples(LinkGPTDataset(fables, vocab, batched=True, **options), backwards, batch_size=7, num_workers=2)
    assert set(one) == set(two) == set(range(len(fables)))
    for i in one:
        items_equal(one[i], two[i])
    assert any(one[i]["link_mask"].any() for i in one)


def test_a_pickled_copy_makes_the_same_samples(tekken_demo, fables):
    """What DataLoader workers started by spawn or forkserver receive."""
    import pickle

    _, vocab = tekken_demo
    link = LinkGPTDataset(fables, vocab, ratio="linear:0.2:0.9:40", seed=4, epoch=1, link_mask=True)
    copy = pickle.loads(pickle.dumps(link))
    for i in range(0, len(fables), 5):
        items_equal(copy[i], link[i])


def test_new_epoch_new_draws(tekken_demo, fables):
    _, vocab = tekken_demo
    link = LinkGPTDataset(fables, vocab, ratio=0.5, seed=11)
    first = [link[i]["tokens"] for i in range(len(fables))]
    link.set_epoch(1)
    second = [link[i]["tokens"] for i in range(len(fables))]
    assert sum(not torch.equal(a, b) for a, b in zip(first, second)) > len(fables) // 2
    link.set_epoch(0)
    assert all(torch.equal(link[i]["tokens"], first[i]) for i in range(len(fables)))
    other_seed = LinkGPTDataset(fables, vocab, ratio=0.5, seed=12)
    assert any(not torch.equal(other_seed[i]["tokens"], first[i]) for i in range(len(fables)))


def test_persistent_workers_follow_set_epoch(tekken_demo, fables):
    """Persistent workers keep the copy of the dataset they started with: set_epoch reaches
    them all the same, each epoch's draws are that epoch's."""
    _, vocab = tekken_demo
    options = {"ratio": 0.5, "seed": 11, "link_mask": True}
    link = LinkGPTDataset(fables, vocab, batched=True, **options)
    order = list(range(12))
    loader = torch.utils.data.DataLoader(
        link, sampler=order, batch_size=4, num_workers=1, persistent_workers=True, collate_fn=link.collate_fn
    )
    alone = LinkGPTDataset(fables, vocab, **options)
    for epoch in (0, 1, 2):
        link.set_epoch(epoch)
        alone.set_epoch(epoch)
        rows = [batch["tokens"][row] for batch in loader for row in range(len(batch["tokens"]))]
        assert all(torch.equal(rows[i], alone[i]["tokens"]) for i in order), epoch
    alone.set_epoch(0)
    assert any(not torch.equal(rows[i], alone[i]["tokens"]) for i in order)


@pytest.mark.parametrize("batched", [False, True])
def test_an_empty_sample_is_refused(tekken_demo, batched):
    _, vocab = tekken_demo
    data = LinkDataset([np.zeros(0, dtype=np.int64), np.array([5])], vocab, eod_id=EOD, batched=batched)
    for index, size in ((0, 0), (1, 1)):
        with pytest.raises(InputError, match=rf"sample {index} holds {size} token ids: a sample needs at least 2"):
            data[index]


def test_generic_dataset(tekken_demo, fables):
    """Any dataset of id arrays: the same samples as the GPTDataset wrapper on the same ids."""
    _, vocab = tekken_demo
    arrays = [np.concatenate([fables[i]["tokens"].numpy(), fables[i]["labels"].numpy()[-1:]]) for i in range(10)]
    generic = LinkDataset(arrays, vocab, eod_id=EOD, ratio=0.7, seed=5)
    wrapped = LinkGPTDataset(fables, vocab, ratio="constant:0.7", seed=5)
    wrapped.transform.samples_per_epoch = len(arrays)  # the same schedule positions
    for i in range(10):
        mine, theirs = generic[i], wrapped[i]
        for key in ("tokens", "labels", "loss_mask"):
            assert torch.equal(mine[key], theirs[key]), key
    with pytest.raises(InputError, match="sample 1: token id 131072"):
        LinkDataset([arrays[0], np.full(SEQ + 1, 131072)], vocab, eod_id=EOD)[1]


# ---------------------------------------------------------------------------------------------
# Schedules


def test_schedule_values():
    assert schedule(0.25)(10**9) == 0.25 and schedule("0.25")(3) == 0.25 and schedule("constant:1")(0) == 1.0
    linear = schedule("linear:0.1:0.5:100000")
    assert linear(0) == pytest.approx(0.1) and linear(50000) == pytest.approx(0.3)
    assert linear(100000) == pytest.approx(0.5) and linear(10**7) == pytest.approx(0.5)
    cosine = schedule("cosine:0:1:100")
    assert (
        cosine(0) == 0
        and cosine(50) == pytest.approx(0.5)
        and cosine(25) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    )
    assert cosine(100) == 1 and cosine(1000) == 1
    steps = schedule("steps:0.1:10:0.2:20:0.3")
    assert [steps(p) for p in (0, 9, 10, 19, 20, 10**6)] == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    assert schedule(lambda p: 0.5 if p % 2 else 0.0)(3) == 0.5
    assert linear.describe() == "linear:0.1:0.5:100000" and schedule(linear.describe()) == linear
    for bad in ("linear:0.1:0.5", "linear:0.1:2:10", "cosine:a:b:1", "steps:0.1:20:0.2:10:0.3", "steps:0.1:5", "x"):
        with pytest.raises(InputError):
            schedule(bad)
    with pytest.raises(InputError, match=r"schedule value at 4 must be a number in \[0, 1\]"):
        schedule(lambda p: 1.5)(4)


def test_schedule_over_samples_and_epochs(tekken_demo, fables):
    """ratio steps:0:20:1: samples before position 20 are untouched, after it substituted; the
    position counts whole epochs; the stats report the current value."""
    _, vocab = tekken_demo
    link = LinkGPTDataset(fables, vocab, ratio="steps:0:20:1", seed=1)
    n = len(fables)
    assert all(torch.equal(link[i]["tokens"], fables[i]["tokens"]) for i in range(20))
    assert link.stats["ratio"] == 0.0
    later = [i for i in range(20, n) if not torch.equal(link[i]["tokens"], fables[i]["tokens"])]
    assert len(later) > (n - 20) // 2 and link.stats["ratio"] == 1.0
    link.set_epoch(1)  # positions n.. : all past the step
    assert sum(not torch.equal(link[i]["tokens"], fables[i]["tokens"]) for i in range(20)) > 10
    cosine = LinkGPTDataset(fables, vocab, ratio="cosine:0.1:0.5:60", portion="linear:1:0.5:60")
    cosine[30]
    assert cosine.stats["ratio"] == pytest.approx(0.3) and cosine.stats["portion"] == pytest.approx(0.75)


def test_a_batch_is_its_samples_one_by_one_across_a_schedule_step(tekken_demo, fables):
    """A batch makes one kernel call per run of samples that share the schedules' values;
    whatever the order of its indices and where the step falls, each row is the sample
    ``apply`` makes alone, and the counts are the same."""
    _, vocab = tekken_demo
    texts = np.stack(
        [np.concatenate([fables[i]["tokens"].numpy(), fables[i]["labels"].numpy()[-1:]]) for i in range(12)]
    )
    indices = [25, 14, 19, 20, 3, 22, 18, 21, 16, 24, 15, 23]  # the step is at 20
    lengths = [len(texts[0])] * 11 + [len(texts[0]) - 10]  # the last row padded
    options = dict(eod_id=EOD, ratio="steps:0.2:20:1", seed=3, link_mask=True)
    batched, alone = SampleTransform(vocab, **options), SampleTransform(vocab, **options)
    batch = batched.apply_batch(texts, indices, lengths)
    for b, i in enumerate(indices):
        one = alone.apply(texts[b], i, lengths[b])
        assert batch.lengths[b] == one.lengths[0]
        assert np.array_equal(batch.tokens[b], one.tokens[0]) and np.array_equal(batch.link_mask[b], one.link_mask[0])
    assert batched.stats.to_dict() == alone.stats.to_dict()
    assert batch.link_mask.any()


# ---------------------------------------------------------------------------------------------
# Refusals and the optional dependency


def test_bad_options_are_refused(tekken_demo):
    _, vocab = tekken_demo
    with pytest.raises(InputError, match="eod_id"):
        SampleTransform(vocab, eod_id=-1)
    with pytest.raises(InputError, match="ratio schedule 'linear:0:1'"):
        SampleTransform(vocab, eod_id=EOD, ratio="linear:0:1")
    t = SampleTransform(vocab, eod_id=EOD)
    with pytest.raises(InputError, match="sample indices"):
        t.apply_batch(np.zeros((2, 5), dtype=np.int64), [0, -1])
    with pytest.raises(InputError, match="2-D integer array"):
        t.apply_batch(np.zeros((2, 5), dtype=np.float32), [0, 1])
    with pytest.raises(InputError, match="epoch"):
        t.set_epoch(-1)


def test_importing_link_fast_does_not_import_torch():
    code = "import sys, link_fast, link_fast.training; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# Precision on real data: tests/test_real_data.py's check, on training samples


def test_every_change_is_a_dictionary_word_and_its_translation(request, tmp_path, capsys):
    """The Python documentation (one document per shard entry, each ended by </s>) in a
    GPTDataset of 512-token samples, FreeDict eng-deu + eng-fra for Tekken, ratio 1: every
    change traced back through the link mask is a whole dictionary word replaced by one of
    its translations in the same case form, and none touches a word the sample's edges cut."""
    import test_real_data as real_data

    real = real_data.get_real("tekken", request)
    vocab = real.vocab
    prefix = write_shard(tmp_path / "pydoc", [[*ids, EOD] for ids in real.ids])
    ds = gpt_dataset(prefix, tmp_path, seq=512)
    link = LinkGPTDataset(ds, vocab, ratio=1.0, seed=2, link_mask=True)
    wide = SampleTransform(vocab, eod_id=EOD, ratio=1.0, seed=2, link_mask=True)
    problems: list[str] = []
    n_pieces = 0
    for i in range(0, len(ds), max(1, len(ds) // 80)):
        plain = ds[i]
        a = np.concatenate([plain["tokens"].numpy(), plain["labels"].numpy()[-1:]])
        # the same sample with room for every substitution: the dataset's is its first 513 ids
        whole = wide.apply(np.concatenate([a, np.zeros(len(a), dtype=a.dtype)]), i, length=len(a))
        n = int(whole.lengths[0])
        b, m = whole.tokens[0, :n], whole.link_mask[0, :n]
        item = link[i]
        kept = min(n, len(a))
        assert item["tokens"][: kept - 1].tolist() == b[: kept - 1].tolist()
        assert item["link_mask"][: kept - 1].tolist() == m[: kept - 1].astype(bool).tolist()
        pieces = real.align(i, tuple(a.tolist()), tuple(b.tolist()), m.tolist())
        n_pieces += len(pieces)
        data, starts = real.decode_bytes(a), real.byte_offsets(a)
        for piece in pieces:
            problems += piece_problems(real_data, real, piece, a, b, data, starts)
    stats = wide.stats.to_dict()
    real_data.report(
        capsys,
        f"training samples: {n_pieces:,} substitutions in {stats['samples']} samples of 513 ids checked, "
        f"{len(problems)} problems",
    )
    assert n_pieces == stats["total_substitutions"] > 500
    assert not problems, f"{len(problems)} bad substitutions, e.g.:\n" + "\n".join(problems[:25])


def piece_problems(real_data, real, piece, a, b, data: bytes, starts) -> list[str]:
    """What is wrong with one substitution (test_real_data's criteria), plus the sample edges."""
    vocab, tok = real.vocab, real.tok
    span, run = tuple(a[piece.i0 : piece.i1].tolist()), tuple(b[piece.o0 : piece.o1].tolist())
    key_text = vocab.key_text(piece.key)
    where = f"sample {piece.doc} tokens {piece.i0}:{piece.i1}"
    spaced = key_text.startswith(" ")
    word = key_text[1:] if spaced else key_text
    if tok.decode(span) != key_text:
        return [f"{where}: span decodes to {tok.decode(span)!r}, its key is {key_text!r}"]
    if piece.i1 == len(a) or (piece.i0 == 0 and not spaced):
        return [f"{where}: {key_text!r} may be a word the sample's edge cut"]
    lo, hi = starts[piece.i0], starts[piece.i1]
    before = " " if spaced else data[max(0, lo - 4) : lo].decode("utf-8", "replace")[-1:]
    after = data[hi : hi + 4].decode("utf-8", "replace")[:1]
    if (before and real_data.is_word_char(before)) or (after and real_data.is_word_char(after)):
        return [f"{where}: {key_text!r} is part of a longer word"]
    lang = vocab.languages[piece.lang]
    entries = real.lexicons[lang].entries
    forms = real_data.case_forms(word, entries)
    out_text = tok.decode(run)
    if not forms or (run, out_text) not in list(vocab.translations(piece.key, piece.lang)):
        return [f"{where}: {key_text!r} -> {out_text!r} is no {lang} translation of a dictionary word"]
    allowed = {real_data.apply_case(t, case) for source, case in forms for t in entries[source]}
    if out_text.startswith(" ") != spaced or out_text.strip() not in allowed:
        return [f"{where}: {key_text!r} -> {out_text!r}: not in the same case and spacing"]
    return []


def test_without_torch_the_datasets_name_the_extra():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import link_fast.training as t\n"
        "assert t.schedule('linear:0:1:10')(5) == 0.5\n"
        "try:\n    t.LinkDataset\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "pip install 'link_fast[training]'" in out
