"""What the kernel reads, prepared in numpy: a vocabulary's tables for the languages in play,
and the sampling options resolved to integers (docs/DESIGN.md §4, §5).

The kernel (link_fast/_kernel.pyx) takes these as typed arrays and integers; deciding which
languages play, and turning probabilities into thresholds, happens here, once per Substituter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._kernel import (
    FLAG_KEY_START,
    FLAG_MAY_JOIN,
    JOINER_ONLY,
    JOINER_THEN_WORD,
    JOINERS_THEN_BACKTICK,
    KernelSampling,
    KernelTables,
)
from .draws import integer_weights, probability_threshold, stream_base
from .sampling import Sampling
from .vocab import Vocab


def selected_mask(available: Sequence[str], languages: Mapping[str, float]) -> int:
    """The languages in play as bits of ``available``'s order."""
    return sum(1 << list(available).index(lang) for lang in languages)


def root_entries(tables: Mapping[str, np.ndarray], selected: int) -> np.ndarray:
    """Per token, the kernel's RootEntry (key, descend) as an int32 array of shape (vocab, 2):
    the single-token key it forms if that key is in play, else -1; its trie node if that node
    has children, else -1. Which keys are in play depends on the languages, so each
    Substituter has its own."""
    root = np.asarray(tables["root_child"])
    key_lang_mask = np.asarray(tables["key_lang_mask"])
    has_node = root >= 0
    node_of = np.where(has_node, root, 0)
    first_key = np.where(has_node, np.asarray(tables["node_key"])[node_of], -1)
    if len(key_lang_mask):
        in_play = (first_key >= 0) & ((key_lang_mask[np.maximum(first_key, 0)] & selected) != 0)
    else:
        in_play = np.zeros(len(root), dtype=bool)
    entries = np.empty((len(root), 2), dtype=np.int32)
    entries[:, 0] = np.where(in_play, first_key, -1)
    entries[:, 1] = np.where(has_node & (np.asarray(tables["node_edge_count"])[node_of] > 0), root, -1)
    return entries


def scan_flags(flags: np.ndarray, entries: np.ndarray, joiner_flags: np.ndarray) -> np.ndarray:
    """The kernel's own copy of the flags, with FLAG_KEY_START on the tokens that may start a
    match (a single-token key in play, or phrase children), so that the first pass of the scan
    reads one small table, and FLAG_MAY_JOIN on the tokens that may join a match before them to
    a following word or to code (they start with a joiner and are all joiners or go on with a
    word, or start with joiners or none and then a backtick), so that a match's end is settled
    by the flag it reads anyway. A vocabulary's own flags never use these bits: cleared anyway."""
    may_start = (entries[:, 0] >= 0) | (entries[:, 1] >= 0)
    may_join = (np.asarray(joiner_flags) & (JOINER_ONLY | JOINER_THEN_WORD | JOINERS_THEN_BACKTICK)) != 0
    cleared = np.asarray(flags, dtype=np.uint8) & np.uint8(0xFF ^ (FLAG_KEY_START | FLAG_MAY_JOIN))
    return (
        cleared
        | np.where(may_start, np.uint8(FLAG_KEY_START), np.uint8(0))
        | np.where(may_join, np.uint8(FLAG_MAY_JOIN), np.uint8(0))
    )


def all_keys_in_play(tables: Mapping[str, np.ndarray], selected: int) -> bool:
    """Whether every key has a language in play: the kernel then skips the check per phrase."""
    return bool(np.all(np.asarray(tables["key_lang_mask"]) & selected))


def resolved_languages(sampling: Sampling) -> Mapping[str, float]:
    """The languages in play of a resolved sampling (``Sampling.for_languages``)."""
    if sampling.languages is None or sampling.stream_key is None:
        raise ValueError("the kernel needs a Sampling resolved against the vocabulary (Sampling.for_languages)")
    return sampling.languages


def kernel_tables(vocab: Vocab, sampling: Sampling) -> KernelTables:
    """The kernel's tables of ``vocab`` for ``sampling``'s languages (resolved: see
    ``Sampling.for_languages``)."""
    tables = vocab.tables
    selected = selected_mask(vocab.languages, resolved_languages(sampling))
    entries = root_entries(tables, selected)
    edge_slots, edge_bits = vocab.edge_table
    return KernelTables(
        scan_flags=scan_flags(tables["flags"], entries, tables["joiner_flags"]),
        joiner_flags=tables["joiner_flags"],
        root=entries,
        node_key=tables["node_key"],
        node_edge_start=tables["node_edge_start"],
        node_edge_count=tables["node_edge_count"],
        edge_token=tables["edge_token"],
        edge_node=tables["edge_node"],
        edge_table=edge_slots,
        edge_table_bits=edge_bits,
        key_lang_mask=tables["key_lang_mask"],
        key_trans_start=tables["key_trans_start"],
        key_trans=tables["key_trans"],
        key_trans_cum=tables["key_trans_cum"],
        trans_offsets=tables["trans_offsets"],
        trans_tokens=tables["trans_tokens"],
        n_languages=len(vocab.languages),
        all_keys_in_play=all_keys_in_play(tables, selected),
    )


def kernel_sampling(available: Sequence[str], sampling: Sampling) -> KernelSampling:
    """``sampling`` (resolved against ``available``) as the kernel's integers: the stream base,
    Bernoulli thresholds, the mask of languages in play and their integer weights."""
    languages = resolved_languages(sampling)
    return KernelSampling(
        base=stream_base(sampling.seed, str(sampling.stream_key)),
        portion_threshold=probability_threshold(sampling.portion),
        ratio_threshold=probability_threshold(sampling.ratio),
        ratio=sampling.ratio,
        ratio_basis_words=sampling.ratio_basis == "words",
        lang_scope_document=sampling.lang_scope == "document",
        selected_mask=selected_mask(available, languages),
        lang_weight=np.asarray(integer_weights(available, languages), dtype=np.uint32),
    )
