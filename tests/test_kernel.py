"""The kernel against the plain-Python reference (tests/reference.py), on random vocabularies."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import Reference

from link_fast import Substituter, Vocab, draws
from link_fast.errors import InputError
from link_fast.tokenizer import (
    BACKTICK_THEN_JOINERS,
    FLAG_SPECIAL,
    JOINER_ONLY,
    JOINER_THEN_WORD,
    JOINERS_THEN_BACKTICK,
    WORD_THEN_JOINER,
)
from link_fast.vocab import Entry

FLAG_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23, 32, 33, FLAG_SPECIAL]
# Joiner flags as token texts give them: a token of joiners only has no other bit; its start is
# joiners then a word, or joiners or none then a backtick, or neither; its end the same mirrored.
# 0 most often.
JOINER_VALUES = [0] * 9 + [JOINER_ONLY] * 3
JOINER_VALUES += [
    head | tail
    for head in (0, JOINER_THEN_WORD, JOINERS_THEN_BACKTICK)
    for tail in (0, WORD_THEN_JOINER, BACKTICK_THEN_JOINERS)
    if head | tail
]


HIGH_IDS = 70_000  # some worlds spread their ids this far: past uint16, so dtypes matter


@st.composite
def worlds(draw, max_vocab=40, max_languages=3, max_docs=6, max_pieces=8):
    """A random vocabulary (flags and joiner flags), lexicon over its ids and documents full of
    its keys: (flags, lexicon, n_languages, docs, joiners).

    Half the worlds use ids 0..n-1, the others n ids spread up to HIGH_IDS (the flags table
    then has holes, flags 0), so that ids above uint16 reach the input and the translations."""
    vocab_size = draw(st.integers(3, max_vocab))
    small_flags = draw(st.lists(st.sampled_from(FLAG_VALUES), min_size=vocab_size, max_size=vocab_size))
    normal = [t for t in range(vocab_size) if not small_flags[t] & FLAG_SPECIAL] or [0]
    small_flags[normal[0]] &= ~FLAG_SPECIAL
    small_joiners = draw(st.lists(st.sampled_from(JOINER_VALUES), min_size=vocab_size, max_size=vocab_size))
    small_joiners = [0 if f & FLAG_SPECIAL else j for f, j in zip(small_flags, small_joiners)]
    n_languages = draw(st.integers(1, max_languages))
    token = st.sampled_from(normal)
    # Up to four tokens: the first two edges of a key come from the edge table, the rest from
    # the trie's binary search.
    keys = draw(st.lists(st.lists(token, min_size=1, max_size=4).map(tuple), min_size=1, max_size=12, unique=True))
    any_token = st.integers(0, vocab_size - 1)
    translation = st.lists(any_token, min_size=1, max_size=3).map(tuple)
    if draw(st.booleans()):  # weighted translations: (ids, weight)
        translation = st.tuples(translation, st.one_of(st.integers(1, 9), st.just(65535)))
    lexicon = {}
    for key in keys:
        langs = draw(st.lists(st.integers(0, n_languages - 1), min_size=1, max_size=n_languages, unique=True))
        lexicon[key] = {lang: draw(st.lists(translation, min_size=1, max_size=3)) for lang in langs}
    # Keys, keys cut short (a phrase walk that meets the document's end must stop there) and noise.
    piece = st.one_of(
        st.sampled_from(keys).map(list),
        st.tuples(st.sampled_from(keys), st.integers(1, 3)).map(lambda kn: list(kn[0][: kn[1]])),
        st.lists(st.integers(0, vocab_size - 1), max_size=3),
    )
    docs = draw(
        st.lists(
            st.lists(piece, max_size=max_pieces).map(lambda ps: [t for p in ps for t in p]),
            min_size=0,
            max_size=max_docs,
        )
    )
    if not draw(st.booleans()):
        return small_flags, lexicon, n_languages, docs, small_joiners
    ids = sorted(draw(st.lists(st.integers(0, HIGH_IDS - 1), min_size=vocab_size, max_size=vocab_size, unique=True)))
    flags, joiners = [0] * (ids[-1] + 1), [0] * (ids[-1] + 1)
    for i, (f, j) in enumerate(zip(small_flags, small_joiners)):
        flags[ids[i]], joiners[ids[i]] = f, j
    spread = lambda seq: tuple(ids[t] for t in seq)  # noqa: E731
    spread_translation = lambda tr: (spread(tr[0]), tr[1]) if tr and isinstance(tr[0], tuple) else spread(tr)  # noqa: E731
    lexicon = {
        spread(k): {l: [spread_translation(tr) for tr in trs] for l, trs in v.items()} for k, v in lexicon.items()
    }
    return flags, lexicon, n_languages, [list(spread(d)) for d in docs], joiners


def entry_translation(translation):
    """A lexicon's translation, plain ids or (ids, weight), as an Entry holds it."""
    if translation and isinstance(translation[0], tuple):
        ids, weight = translation
        return (ids, str(ids), weight)
    return (translation, str(translation))


def make_vocab(flags, lexicon, n_languages, joiners=None):
    entries = [
        Entry(
            key,
            " ".join(map(str, key)),
            {l: [entry_translation(t) for t in tr] for l, tr in per_lang.items()},
        )
        for key, per_lang in lexicon.items()
    ]
    return Vocab.from_entries(
        np.array(flags, dtype=np.uint8),
        entries,
        [f"l{i}" for i in range(n_languages)],
        joiner_flags=None if joiners is None else np.array(joiners, dtype=np.uint8),
    )


def flatten(docs, dtype=np.uint16):
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    tokens = np.array([t for d in docs for t in d], dtype=dtype)
    return tokens, offsets


def split(tokens, offsets):
    return [tokens[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


options = st.fixed_dictionaries(
    {
        "ratio": st.sampled_from([0.0, 0.3, 0.5, 1.0]) | st.floats(0, 1),
        "portion": st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1),
        "seed": st.integers(0, 2**64 - 1),
        "ratio_basis": st.sampled_from(["candidates", "words"]),
        "lang_scope": st.sampled_from(["word", "document"]),
        "stream_key": st.sampled_from(["", "shard_00001", "ü"]),
    }
)


@settings(max_examples=100, deadline=None)
@given(
    vocab_size=st.integers(2, 12),
    keys=st.lists(
        st.lists(st.integers(0, 11), min_size=1, max_size=4).map(tuple), min_size=1, max_size=120, unique=True
    ),
)
def test_edge_table_holds_the_edges_of_the_first_two_levels_and_nothing_else(vocab_size, keys):
    """The bucketed hash table against the trie's arrays, with many edges per bucket so that
    full buckets spill into the next ones."""
    from link_fast._kernel import build_edge_table

    keys = sorted({tuple(token % vocab_size for token in key) for key in keys})
    lexicon = {key: {0: [(0,)]} for key in keys}
    vocab = make_vocab([0] * vocab_size, lexicon, 1)
    tables = vocab.tables
    expected = {}
    level = [int(node) for node in tables["root_child"] if node >= 0]
    for _ in range(2):
        children = []
        for node in level:
            start = tables["node_edge_start"][node]
            for edge in range(start, start + tables["node_edge_count"][node]):
                child = int(tables["edge_node"][edge])
                has_edges = int(tables["node_edge_count"][child] > 0)
                expected[node, int(tables["edge_token"][edge])] = (
                    child << 1 | has_edges,
                    int(tables["node_key"][child]),
                )
                children.append(child)
        level = children
    assert len(expected) == len({key[:n] for key in keys for n in (2, 3) if len(key) >= n})
    table = build_edge_table(tables)
    queries = [(node, token) for node in range(len(tables["node_key"])) for token in range(vocab_size)]
    found = {query: lookup_edge(table, *query) for query in queries}
    assert {q: f for q, f in found.items() if f is not None} == expected


BUCKET_SLOTS = 4  # LF_BUCKET_SLOTS in csrc/link_fast.h


def lookup_edge(edge_table, node, token):
    """csrc/link_fast.h's lf_find_edge in Python: the (child, child_key) of edge (node, token),
    or None. The edge is in its home bucket or, when that is full, in the next bucket that was
    not full; a bucket whose last slot is empty ends the search."""
    slots, bits = edge_table
    buckets = slots.reshape(-1, BUCKET_SLOTS, 4)
    bucket = (((node << 32) | token) * 0x9E3779B97F4A7C15 & (1 << 64) - 1) >> (64 - bits)
    while True:
        rows = buckets[bucket]
        hit = np.flatnonzero((rows[:, 0].view(np.uint32) == node) & (rows[:, 1].view(np.uint32) == token))
        if len(hit):
            return int(rows[hit[0], 2]), int(rows[hit[0], 3])
        if rows[-1, 2] < 0:
            return None
        bucket = (bucket + 1) % len(buckets)


def names(n_languages):
    return [f"l{i}" for i in range(n_languages)]


def languages_mappings(n_languages):
    """``languages=`` as a user gives it: None, or some of the languages (each may be left
    out, or weigh 0) with weights in any order of the keys, so that a weight given to the
    wrong language shows."""
    weight = st.sampled_from([None, 0, 0.25, 0.5, 1, 3, 7])
    mapping = st.tuples(
        st.lists(weight, min_size=n_languages, max_size=n_languages), st.permutations(range(n_languages))
    )
    return st.none() | mapping.map(lambda wo: {f"l{l}": wo[0][l] for l in wo[1] if wo[0][l] is not None}).filter(
        lambda m: any(w > 0 for w in m.values())
    )


def check_against_reference(world, opts, data):
    """The kernel's output, mask and statistics equal the reference's, for a drawn input
    dtype, output dtype and ``languages=`` mapping; an output dtype too narrow for an id the
    reference emits (or copies) raises instead."""
    flags, lexicon, n_languages, docs, joiners = world
    vocab = make_vocab(flags, lexicon, n_languages, joiners)
    languages = data.draw(languages_mappings(n_languages))
    first_doc = data.draw(st.integers(0, 10**12))
    widest_in = max((t for d in docs for t in d), default=0)
    dtype = data.draw(st.sampled_from([np.uint16, np.int32, np.uint32]).filter(lambda t: widest_in <= np.iinfo(t).max))
    out_dtype = data.draw(st.sampled_from([None, np.uint16, np.int32, np.uint32]))
    sub = Substituter(vocab, languages=languages, **opts)

    ref = Reference(flags, lexicon, names(n_languages), languages=languages, joiners=joiners, **opts)
    want_docs, want_masks, want_stats = ref.apply(docs, first_doc)

    tokens, offsets = flatten(docs, dtype)
    want_dtype = np.dtype(dtype if out_dtype is None else out_dtype)
    if max((t for d in want_docs for t in d), default=0) > np.iinfo(want_dtype).max or (
        tokens.size and int(tokens.max()) > np.iinfo(want_dtype).max
    ):
        with pytest.raises(InputError, match=f"does not fit {want_dtype}"):
            sub.apply(tokens, offsets, first_doc=first_doc, mask=True, out_dtype=out_dtype)
        return
    res = sub.apply(tokens, offsets, first_doc=first_doc, mask=True, out_dtype=out_dtype)
    assert res.tokens.dtype == want_dtype
    assert split(res.tokens, res.offsets) == want_docs
    assert split(res.mask, res.offsets) == want_masks
    s = res.stats
    assert (s.words, s.candidates, s.eligible_documents, s.eligible_candidates) == (
        want_stats["words"],
        want_stats["candidates"],
        want_stats["eligible_documents"],
        want_stats["eligible_candidates"],
    )
    assert [s.substitutions[l] for l in vocab.languages] == want_stats["substitutions"]
    assert (s.documents, s.tokens_in, s.tokens_out) == (len(docs), len(tokens), len(res.tokens))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), opts=options, data=st.data())
def test_kernel_matches_reference(world, opts, data):
    check_against_reference(world, opts, data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds(max_docs=40, max_pieces=30), opts=options, data=st.data())
def test_kernel_matches_reference_on_batches_of_many_documents(world, opts, data):
    """Enough documents and candidates that the scan's look-ahead (24 start positions) and the
    edit passes' (16 edits) run in their steady state across document boundaries."""
    check_against_reference(world, opts, data)


@settings(max_examples=50, deadline=None)
@given(
    world=worlds(),
    bad=st.integers(0, 2**32 - 1) | st.integers(2**31, 2**32 - 1),
    where=st.integers(0, 200),
)
def test_uint32_ids_outside_the_vocabulary_are_named_exactly(world, bad, where):
    """Any uint32 id, up to 2**32 - 1, is either in the vocabulary or refused with its own
    value and position: ids past 2**31 are not read as negative numbers or wrapped."""
    flags, lexicon, n_languages, docs, joiners = world
    sub = Substituter(make_vocab(flags, lexicon, n_languages, joiners), ratio=1.0)
    tokens, offsets = flatten(docs + [[0]], np.uint32)
    where = where % len(tokens)
    tokens[where] = bad
    if bad < len(flags):
        assert sub.apply(tokens, offsets).stats.documents == len(docs) + 1
    else:
        with pytest.raises(InputError, match=f"token id {bad} at position {where} is outside the vocabulary"):
            sub.apply(tokens, offsets)


@settings(max_examples=150, deadline=None)
@given(world=worlds(), seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 6), max_size=4))
def test_any_batch_split_gives_the_same_output(world, seed, cuts):
    flags, lexicon, n_languages, docs, joiners = world
    sub = Substituter(make_vocab(flags, lexicon, n_languages, joiners), ratio=0.5, portion=0.7, seed=seed)
    tokens, offsets = flatten(docs, np.uint32)
    whole = sub.apply(tokens, offsets, mask=True)
    bounds = sorted({0, len(docs), *[min(c, len(docs)) for c in cuts]})
    pieces, masks = [], []
    for a, b in zip(bounds, bounds[1:]):
        # a batch is a slice of the same token array: offsets need not start at 0
        res = sub.apply(tokens, offsets[a : b + 1], first_doc=a, mask=True)
        pieces += split(res.tokens, res.offsets)
        masks += split(res.mask, res.offsets)
    assert pieces == split(whole.tokens, whole.offsets)
    assert masks == split(whole.mask, whole.offsets)


@settings(max_examples=100, deadline=None)
@given(world=worlds(), seed=st.integers(0, 1000), data=st.data())
def test_documents_drawn_by_their_own_indices(world, seed, data):
    """doc_indices: each document of one call draws as its own index, as if it were alone in
    a call at ``first_doc`` = that index; documents from anywhere in a stream share a call."""
    flags, lexicon, n_languages, docs, joiners = world
    sub = Substituter(make_vocab(flags, lexicon, n_languages, joiners), ratio=0.5, portion=0.7, seed=seed)
    tokens, offsets = flatten(docs, np.uint32)
    indices = data.draw(st.lists(st.integers(0, 1 << 40), min_size=len(docs), max_size=len(docs), unique=True))
    res = sub.apply(tokens, offsets, doc_indices=indices, mask=True)
    for d, index in enumerate(indices):
        alone = sub.apply(tokens, offsets[d : d + 2], first_doc=index, mask=True)
        assert split(res.tokens, res.offsets)[d] == alone.tokens.tolist()
        assert split(res.mask, res.offsets)[d] == alone.mask.tolist()


@pytest.mark.parametrize(
    ("doc_indices", "first_doc", "problem"),
    [
        ([0], 0, "must be 2 integers"),
        ([0, -1], 0, "non-negative integers below 2\\^63"),
        ([0, 1 << 63], 0, "non-negative integers below 2\\^63"),
        ([0.0, 1.0], 0, "must be 2 integers"),
        ([0, 1], 5, "give first_doc or doc_indices, not both"),
    ],
)
def test_bad_document_indices_are_refused(doc_indices, first_doc, problem):
    sub = Substituter(make_vocab([1, 1], {(0,): {0: [(1,)]}}, 1), ratio=1.0)
    with pytest.raises(InputError, match=problem):
        sub.apply(np.array([0, 0], np.uint32), np.array([0, 1, 2]), doc_indices=doc_indices, first_doc=first_doc)


@pytest.mark.parametrize("seed", [0, 1])
def test_long_documents_scanned_in_blocks_match_the_reference(seed):
    """Documents longer than the kernel's scan block (2**16 tokens), with phrases placed across
    the block boundaries: the pipeline's steady state, and matches that cross a block."""
    rng = np.random.default_rng(seed)
    vocab_size = 30
    flags = [int(f) for f in rng.choice([0, 1, 3, 5, 17, 19, 20, 21, 33], vocab_size)]
    # Across each boundary: a phrase whose middle token continues a word (so the word count
    # needs the token before the block), and whose last token is a key of its own (so a match
    # must still cover it in the next block).
    phrase = (0, 1, 2)
    flags[:3] = [21, 20, 21]
    # Keys of up to five tokens: the first two edges come from the edge table, the rest from
    # the trie's binary search, in the steady state and across a block.
    long_phrase = (4, 5, 6, 7, 8)
    flags[4:9] = [21] * 5
    keys = {tuple(int(t) for t in rng.integers(0, vocab_size, rng.integers(1, 6))) for _ in range(25)}
    keys = sorted(keys | {phrase, (2,), long_phrase})
    lexicon = {key: {0: [tuple(int(t) for t in rng.integers(0, vocab_size, rng.integers(1, 4)))]} for key in keys}
    long_doc = []
    while len(long_doc) < 140_000:
        long_doc += list(keys[rng.integers(len(keys))]) if rng.random() < 0.7 else [int(rng.integers(vocab_size))]
    flags[3] = 5  # a spaced token that is no word, around the phrase
    for boundary in (1 << 16, 2 << 16):
        long_doc[boundary - 2 : boundary + 3] = [3, *phrase, 3]
        long_doc[boundary + 100 - 3 : boundary + 100 + 4] = [3, *long_phrase, 3]
    docs = [long_doc, long_doc[:70_000], [], long_doc[5:40]]
    opts = {
        "ratio": 0.5,
        "portion": 1.0,
        "seed": seed,
        "ratio_basis": "candidates",
        "lang_scope": "word",
        "stream_key": "",
    }
    vocab = make_vocab(flags, lexicon, 1)
    want_docs, want_masks, want_stats = Reference(flags, lexicon, ["l0"], **opts).apply(docs, 0)
    tokens, offsets = flatten(docs)
    res = Substituter(vocab, **opts).apply(tokens, offsets, mask=True)
    assert split(res.tokens, res.offsets) == want_docs
    assert split(res.mask, res.offsets) == want_masks
    assert (res.stats.words, res.stats.candidates) == (want_stats["words"], want_stats["candidates"])
    assert res.stats.substitutions["l0"] == want_stats["substitutions"][0] > 1000


def test_a_phrase_cut_by_the_document_end_does_not_run_into_the_next_document():
    WS, END, WORD = 1, 4, 16
    flags = [WS | END | WORD] * 10
    lexicon = {(1, 2, 3): {0: [(9,)]}, (1, 2, 3, 4): {0: [(8,)]}, (3, 5): {0: [(7,)]}}
    vocab = make_vocab(flags, lexicon, 1)
    docs = [[1, 2], [3, 5], [1, 2, 3], [4], [0, 1, 2, 3, 4]]
    tokens, offsets = flatten(docs)
    res = Substituter(vocab, ratio=1.0).apply(tokens, offsets)
    assert split(res.tokens, res.offsets) == [[1, 2], [7], [9], [4], [0, 8]]


def test_hand_example_boundaries_phrases_and_specials():
    # ids: 0 ' ice'  1 ' cream'  2 'ing'  3 '.'  4 '<s>'  5 ' cat'  6 'cat'  7 '('  8 ' glace'  9 ' chat'  10 'chat'
    WS, GLUE, END, SPECIAL, WORD = 1, 2, 4, 8, 16
    flags = [
        WS | END | WORD,
        WS | END | WORD,
        GLUE | END | WORD,
        0,
        SPECIAL,
        WS | END | WORD,
        GLUE | END | WORD,
        0,
        WS | END | WORD,
        WS | END | WORD,
        GLUE | END | WORD,
    ]
    lexicon = {(0, 1): {0: [(8,)]}, (5,): {0: [(9,)]}, (6,): {0: [(10,)]}}
    vocab = make_vocab(flags, lexicon, 1)
    sub = Substituter(vocab, ratio=1.0)
    docs = [
        [0, 1, 3],  # ' ice cream.' -> phrase
        [5, 2],  # ' cat' + 'ing' glues left: no match
        [6, 3, 7, 6, 3],  # 'cat' at document start, 'cat' after '(' -> both
        [5, 6],  # ' cat' then 'cat' glued: neither (' cat' is followed by a gluing token; 'cat' follows a word end)
        [4, 6, 4],  # specials are boundaries on both sides
    ]
    tokens, offsets = flatten(docs)
    res = sub.apply(tokens, offsets, mask=True)
    assert split(res.tokens, res.offsets) == [[8, 3], [5, 2], [10, 3, 7, 10, 3], [5, 6], [4, 10, 4]]
    assert split(res.mask, res.offsets) == [[1, 0], [0, 0], [1, 0, 0, 1, 0], [0, 0], [0, 1, 0]]
    assert res.stats.candidates == 4 and res.stats.total_substitutions == 4


def test_different_seeds_differ_and_same_seed_repeats():
    flags = [1 | 4 | 16] * 50
    lexicon = {(t,): {0: [(t + 50,), (t + 100,)]} for t in range(50)}
    vocab = make_vocab(flags + [1 | 4 | 16] * 100, lexicon, 1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, 5000).astype(np.uint16)
    offsets = np.arange(0, 5001, 50, dtype=np.int64)
    a = Substituter(vocab, ratio=0.5, seed=1).apply(tokens, offsets)
    b = Substituter(vocab, ratio=0.5, seed=1).apply(tokens, offsets)
    c = Substituter(vocab, ratio=0.5, seed=2).apply(tokens, offsets)
    d = Substituter(vocab, ratio=0.5, seed=1, stream_key="other").apply(tokens, offsets)
    assert np.array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    assert not np.array_equal(a.tokens, d.tokens)


def test_saved_and_loaded_vocab_gives_identical_output(tmp_path):
    flags = [1 | 4 | 16] * 20
    lexicon = {(1,): {0: [(2, 3)], 1: [(4,)]}, (5, 6): {1: [(7,)]}}
    vocab = make_vocab(flags, lexicon, 2)
    loaded = Vocab.load(vocab.save(tmp_path / "v.lfv"))
    tokens = np.array([1, 5, 6, 1, 9, 5, 6] * 30, dtype=np.int32)
    offsets = np.array([0, 70, 140, 210], dtype=np.int64)
    for opts in ({"ratio": 1.0}, {"ratio": 0.4, "languages": {"l1": 1}}, {"ratio": 0.7, "lang_scope": "document"}):
        a = Substituter(vocab, **opts).apply(tokens, offsets, mask=True)
        b = Substituter(loaded, **opts).apply(tokens, offsets, mask=True)
        assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.mask, b.mask)
        assert a.stats == b.stats


def test_empty_inputs():
    vocab = make_vocab([1 | 4 | 16] * 4, {(1,): {0: [(2,)]}}, 1)
    sub = Substituter(vocab, ratio=1.0)
    res = sub.apply(np.zeros(0, dtype=np.uint16), np.zeros(1, dtype=np.int64), mask=True)
    assert len(res.tokens) == 0 and res.offsets.tolist() == [0] and res.stats.documents == 0
    res = sub.apply(np.zeros(0, dtype=np.uint16), np.zeros(4, dtype=np.int64))
    assert res.offsets.tolist() == [0, 0, 0, 0] and res.stats.documents == 3


def test_bad_inputs_raise_clear_errors():
    vocab = make_vocab([1 | 4 | 16] * 10, {(1,): {0: [(70000 % 10,)]}}, 1)
    sub = Substituter(vocab, ratio=1.0)
    with pytest.raises(InputError, match="token id 12 at position 2 is outside the vocabulary of 10 ids"):
        sub.apply(np.array([1, 2, 12], dtype=np.uint16), np.array([0, 3]))
    with pytest.raises(InputError, match="outside the vocabulary"):
        sub.apply(np.array([1, -1], dtype=np.int32), np.array([0, 2]))
    with pytest.raises(InputError, match="1-D uint16, int32 or uint32"):
        sub.apply(np.array([1, 2], dtype=np.int64), np.array([0, 2]))
    with pytest.raises(InputError, match="non-decreasing"):
        sub.apply(np.array([1, 2], dtype=np.uint16), np.array([0, 2, 1]))
    with pytest.raises(InputError, match="within the 2 tokens"):
        sub.apply(np.array([1, 2], dtype=np.uint16), np.array([0, 3]))
    for bad in (
        {"ratio": 1.5},
        {"portion": -0.1},
        {"ratio_basis": "tokens"},
        {"lang_scope": "sentence"},
        {"languages": {"xx": 1}},
        {"languages": {"l0": 0}},
        {"seed": -1},
    ):
        with pytest.raises(InputError):
            Substituter(vocab, **bad)


def test_translation_ids_that_do_not_fit_uint16_raise_unless_widened():
    flags = np.full(70000, 1 | 4 | 16, dtype=np.uint8)
    vocab = Vocab.from_entries(flags, [Entry((1,), "a", {0: [((69999,), "b")]})], ["de"])
    sub = Substituter(vocab, ratio=1.0)
    tokens, offsets = np.array([1, 2, 1], dtype=np.uint16), np.array([0, 3])
    with pytest.raises(InputError, match="69999.*does not fit uint16"):
        sub.apply(tokens, offsets)
    assert sub.apply(tokens, offsets, out_dtype=np.int32).tokens.tolist() == [69999, 2, 69999]
    # nothing emitted above the limit: uint16 is fine
    assert sub.apply(np.array([2, 2], dtype=np.uint16), np.array([0, 2])).tokens.dtype == np.uint16


# -- constants and draws defined in C, pinned to their Python twins ---------------------------

DATA = Path(__file__).parent / "data"


def known_answers(name):
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_draws_match_the_known_answers_in_the_kernel_and_the_reference():
    """As numpy.random pins its C generators: a table computed once, committed, and checked
    against both implementations (the kernel's C and tests/reference.py)."""
    rows = known_answers("draws_kat.csv")
    for row in rows:
        base, domain, doc, cand, want = (int(row[k]) for k in ("base", "domain", "doc", "cand", "draw"))
        assert draws.draw(base, domain, doc, cand) == want
        assert reference.draw(base, domain, doc, cand) == want
        assert draws.draws_at(base, domain, doc, np.array([cand], dtype=np.uint64))[0] == want
        if cand < 3:
            assert draws.draws(base, domain, doc, 3)[cand] == want
        assert draws.draws(base, domain, doc, 1, first=cand)[0] == want


def test_stream_bases_match_the_known_answers():
    for row in known_answers("stream_base_kat.csv"):
        seed, key, want = int(row["seed"]), row["stream_key"], int(row["base"])
        assert draws.stream_base(seed, key) == want
        assert reference.stream_base(seed, key) == want


def test_the_reference_imports_nothing_from_link_fast():
    """The oracle is independent: were it to import the implementation's helpers, a bug in
    them would be in both and no test would see it."""
    import ast

    tree = ast.parse(Path(reference.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "hashlib"}, imported


def test_constants_defined_in_c_equal_their_python_twins():
    from link_fast import _kernel, _text, tokenizer, vocab

    for name in ("WS_START", "GLUE_LEFT", "END_WORD", "SPECIAL", "HAS_WORD", "FUSES_RIGHT"):
        assert getattr(tokenizer, f"FLAG_{name}") == getattr(_kernel, f"FLAG_{name}"), name
        assert getattr(reference, f"FLAG_{name}") == getattr(tokenizer, f"FLAG_{name}"), name
    assert _kernel.FLAG_KEY_START & vocab.DEFINED_FLAGS == 0  # the kernel's own bits are free
    assert _kernel.FLAG_MAY_JOIN & (vocab.DEFINED_FLAGS | _kernel.FLAG_KEY_START) == 0
    for name in (
        "JOINER_ONLY",
        "JOINER_THEN_WORD",
        "WORD_THEN_JOINER",
        "JOINERS_THEN_BACKTICK",
        "BACKTICK_THEN_JOINERS",
    ):
        assert getattr(tokenizer, name) == getattr(_kernel, name) == getattr(reference, name), name
    assert sorted(_text.joiners()) == sorted(tokenizer.JOINERS)
    assert _text.BACKTICK == tokenizer.BACKTICK
    assert vocab.MAX_LANGUAGES == _kernel.MAX_LANGUAGES
    assert draws.ALWAYS == _kernel.ALWAYS == 2**53
    assert {name: getattr(draws, f"DOMAIN_{name.upper()}") for name in _kernel.DOMAINS} == _kernel.DOMAINS
    assert [draws.below(h, 7) for h in (0, 2**63, 2**64 - 1)] == [reference.below(h, 7) for h in (0, 2**63, 2**64 - 1)]


def test_the_kernel_rejects_sampling_and_tables_that_do_not_fit():
    vocab = make_vocab([1 | 4 | 16] * 4, {(1,): {0: [(2,)], 1: [(3,)]}}, 2)
    sub = Substituter(vocab, ratio=1.0)
    with pytest.raises(ValueError, match="weighs 1 languages"):
        _kernel_substitute(sub, lang_weight=np.array([1], dtype=np.uint32), selected_mask=1)
    with pytest.raises(ValueError, match="weight 0"):
        _kernel_substitute(sub, lang_weight=np.array([1, 0], dtype=np.uint32), selected_mask=3)


def _kernel_substitute(sub, **changes):
    from link_fast._kernel import KernelSampling, substitute

    params = dict(
        base=0,
        portion_threshold=draws.ALWAYS,
        ratio_threshold=draws.ALWAYS,
        ratio=1.0,
        ratio_basis_words=False,
        lang_scope_document=False,
        selected_mask=3,
        lang_weight=np.array([1, 1], dtype=np.uint32),
    )
    sampling = KernelSampling(**dict(params, **changes))
    tokens = np.array([1, 2], dtype=np.uint16)
    return substitute(sub._tables, sampling, tokens, np.array([0, 2], dtype=np.int64), 0, np.uint16, False)


def test_stats_sum_from_zero_and_name_their_unit():
    from link_fast.substituter import Stats

    vocab = make_vocab([1 | 4 | 16] * 4, {(1,): {0: [(2, 2)]}}, 1)
    res = Substituter(vocab, ratio=1.0).apply(np.array([1, 3, 1], dtype=np.uint16), np.array([0, 3]))
    total = Stats.zero(vocab.languages) + res.stats
    assert (total.tokens_in, total.tokens_out, total.substitutions) == (3, 5, {"l0": 2})
    assert total.to_dict()["tokens_in"] == 3 and "chars_in" not in total.to_dict()
    chars = Stats.zero(vocab.languages, unit="characters")
    chars.size_in += 10
    assert chars.to_dict()["chars_in"] == 10 and "tokens_in" not in chars.to_dict()
    with pytest.raises(AttributeError, match="count characters"):
        _ = chars.tokens_in
    with pytest.raises(ValueError, match="characters"):
        total + chars
