"""The counter-based draws and their parameters, on the Python side (docs/DESIGN.md §5).

Every random decision is a pure function of (stream base, domain, document index, candidate
index). The draws themselves are the kernel's C (``lf_draw`` in csrc/link_fast.h), exported
vectorised, so token mode and text mode make the same decisions from one implementation;
tests/data/draws_kat.csv pins it, and tests/reference.py's independent one, to known answers.
This module adds what is computed in Python: the stream base, thresholds, integer weights, and
the scalar helpers text mode applies to single draws.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from . import _kernel
from ._kernel import draw, mix64  # noqa: F401 (draw and mix64 are part of this module's interface)

MASK64 = (1 << 64) - 1
DRAW_BITS = 53  # a Bernoulli test compares the draw's top 53 bits with its threshold
ALWAYS = 1 << DRAW_BITS  # a Bernoulli threshold that always succeeds
WEIGHT_SCALE = 1 << 24  # language weights become integers up to this

# Each kind of decision draws from its own domain, so adding one never shifts another's draws.
DOMAIN_DOCUMENT = 1  # is the document eligible (portion)
DOMAIN_DOC_LANG = 2  # the document's language (lang_scope="document")
DOMAIN_REPLACE = 3  # is the candidate replaced (ratio)
DOMAIN_LANG = 4  # the replaced word's language (lang_scope="word")
DOMAIN_TRANSLATE = 5  # which of the word's translations


def stream_key_bytes(stream_key: str) -> bytes:
    """The bytes a stream key is hashed from: its UTF-8, where a file name that is not UTF-8
    (Python gives its undecodable bytes as the surrogates U+DC80..U+DCFF) keeps its own bytes.
    Raises UnicodeEncodeError for any other surrogate: no bytes stand for it."""
    return stream_key.encode("utf-8", "surrogateescape")


def stream_base(seed: int, stream_key: str) -> int:
    """The 64-bit base every draw of one stream starts from: seed and stream key mixed."""
    digest = hashlib.blake2b(stream_key_bytes(stream_key), digest_size=8).digest()
    return mix64((seed & MASK64) ^ mix64(int.from_bytes(digest, "little")))


def probability_threshold(p: float) -> int:
    """Bernoulli threshold on 53-bit draws for probability ``p`` (same arithmetic as the kernel)."""
    return ALWAYS if p >= 1.0 else int(p * ALWAYS)


def integer_weights(available: Sequence[str], languages: Mapping[str, float]) -> list[int]:
    """Per language of ``available``: its weight as an integer up to WEIGHT_SCALE, 0 if not in
    play. Integers keep the kernel and the Python reference bit-identical."""
    top = max(languages.values())
    weights = [0] * len(available)
    for lang, weight in languages.items():
        weights[list(available).index(lang)] = max(1, round(weight / top * WEIGHT_SCALE))
    return weights


def draws(base: int, domain: int, doc: int, count: int, first: int = 0) -> np.ndarray:
    """``draw(base, domain, doc, c)`` for c in range(first, first + count), as uint64."""
    return _kernel.draws(base, domain, doc, count, first)


def draws_at(base: int, domain: int, doc: int, candidates: np.ndarray) -> np.ndarray:
    """``draw(base, domain, doc, c)`` for each c of ``candidates`` (an integer array), as uint64."""
    return _kernel.draws_at(base, domain, doc, np.ascontiguousarray(candidates, dtype=np.uint64))


def bernoulli(h: int, threshold: int) -> bool:
    """``lf_bernoulli``: true with probability threshold / 2**53."""
    return (h >> (64 - DRAW_BITS)) < threshold


def below(h: int, n: int) -> int:
    """``lf_below``: a uniform integer in [0, n) by multiply-shift."""
    return ((h >> 32) * n) >> 32


def pick(h: int, weights: Sequence[tuple[int, int]]) -> int:
    """The kernel's ``pick_language``: one of ``weights`` ((language index, integer weight > 0)
    in language order) with probability proportional to its weight."""
    r = below(h, sum(w for _, w in weights))
    for lang, w in weights:
        if r < w:
            return lang
        r -= w
    raise ValueError("pick needs at least one positive weight")
