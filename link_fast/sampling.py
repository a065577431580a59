"""The sampling options: one frozen object, checked once, passed everywhere (docs/DESIGN.md §5).

``Sampling`` holds the seven options that, with the vocabulary and the input, determine the
output. Every engine (``Substituter``, ``TextSubstituter``, the runners, the integrations, the
CLI) takes one; the outer API also accepts the options as keywords and forwards them here
(``Sampling.from_options``), so the options and their checks are written down once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .draws import stream_key_bytes
from .errors import InputError

SEED_LIMIT = 1 << 64  # seeds are 64-bit: draws mix them as unsigned 64-bit integers
RATIO_BASES = ("candidates", "words")
LANG_SCOPES = ("word", "document")
OPTION_NAMES = ("ratio", "portion", "seed", "languages", "ratio_basis", "lang_scope", "stream_key")


@dataclass(frozen=True)
class Sampling:
    """How LINK samples (docs/DESIGN.md §5).

    - ``ratio``: probability that a candidate word of an eligible document is replaced (with
      ``ratio_basis="words"``: the share of all its words).
    - ``portion``: probability that a document is eligible.
    - ``seed``: the random stream, an integer in [0, 2**64).
    - ``languages``: language → weight; None means every language of the vocabulary, equally.
      Languages of weight 0 are not in play.
    - ``lang_scope``: ``"word"`` draws a language per replaced word, ``"document"`` one per document.
    - ``stream_key``: separates streams that reuse document indices. None: the input's name in
      the runners (shard name, file stem), ``""`` for a ``Substituter`` on its own.
    """

    ratio: float = 0.3
    portion: float = 1.0
    seed: int = 0
    languages: Mapping[str, float] | None = None
    ratio_basis: Literal["candidates", "words"] = "candidates"
    lang_scope: Literal["word", "document"] = "word"
    stream_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("ratio", "portion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < SEED_LIMIT:
            raise InputError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")
        if self.ratio_basis not in RATIO_BASES:
            raise InputError(f"ratio_basis must be 'candidates' or 'words', got {self.ratio_basis!r}")
        if self.lang_scope not in LANG_SCOPES:
            raise InputError(f"lang_scope must be 'word' or 'document', got {self.lang_scope!r}")
        if self.stream_key is not None and not isinstance(self.stream_key, str):
            raise InputError(f"stream_key must be a string, got {self.stream_key!r}")
        if self.stream_key is not None:
            try:
                stream_key_bytes(self.stream_key)
            except UnicodeEncodeError as exc:
                raise InputError(f"stream_key {self.stream_key!r} holds a lone surrogate ({exc.reason})") from None
        if self.languages is not None:
            object.__setattr__(self, "languages", _checked_weights(self.languages))

    @classmethod
    def from_options(cls, sampling: Sampling | None = None, **options: Any) -> Sampling:
        """The outer API's convenience: a ``Sampling``, or its options as keywords, not both."""
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise InputError(f"unknown sampling option {unknown[0]!r} (options: {', '.join(OPTION_NAMES)})")
        if sampling is None:
            return cls(**options)
        if not isinstance(sampling, Sampling):
            raise InputError(f"sampling must be a link_fast.Sampling, got {type(sampling).__name__}")
        if options:
            raise InputError(f"pass either sampling= or the options ({', '.join(options)}), not both")
        return sampling

    def replace(self, **changes: Any) -> Sampling:
        """A copy with some options changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    def for_languages(self, available: Sequence[str], stream_key: str = "") -> Sampling:
        """This sampling resolved against a vocabulary's languages: ``languages`` spelt out
        (languages of weight 0 left out) and ``stream_key`` set (``stream_key`` where it was
        None). What the kernel and the records use."""
        return dataclasses.replace(
            self,
            languages=_resolved_languages(tuple(available), self.languages),
            stream_key=stream_key if self.stream_key is None else self.stream_key,
        )

    def to_dict(self) -> dict:
        """The options as a JSON object (the ``config`` of a run record)."""
        return {
            "ratio": self.ratio,
            "portion": self.portion,
            "seed": self.seed,
            "languages": None if self.languages is None else dict(self.languages),
            "ratio_basis": self.ratio_basis,
            "lang_scope": self.lang_scope,
            "stream_key": self.stream_key,
        }


def _checked_weights(languages: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(languages, Mapping) or not languages:
        raise InputError(f"languages must be a non-empty mapping of language to weight, got {languages!r}")
    weights = {}
    for lang, weight in languages.items():
        if not isinstance(lang, str):
            raise InputError(f"language names must be strings, got {lang!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise InputError(f"weight of language {lang!r} must be a finite number >= 0, got {weight!r}")
        weights[lang] = float(weight)
    if not any(weights.values()):
        raise InputError("at least one language needs a weight > 0")
    return weights


def _resolved_languages(available: tuple[str, ...], languages: Mapping[str, float] | None) -> dict[str, float]:
    if languages is None:
        return {lang: 1.0 for lang in available}
    for lang in languages:
        if lang not in available:
            raise InputError(f"language {lang!r} is not in the vocabulary (it has {', '.join(available)})")
    return {lang: weight for lang, weight in languages.items() if weight > 0}
