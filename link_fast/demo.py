"""``link-fast demo``: the whole pipeline on a small bundled sample.

Mistral's Tekken tokenizer (from the ``mistral-common`` package), a hand-written en-de and
en-fr dictionary and a few of Aesop's fables (public domain): compile, tokenize, substitute,
then print a before/after excerpt and the statistics.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import cast

import numpy as np

from .errors import LinkFastError
from .highlight import mask_marks, pieces, terminal, use_color

DATA = Path(__file__).parent / "data"
DEMO_LANGUAGES = {"de": DATA / "demo_en_de.txt", "fr": DATA / "demo_en_fr.txt"}


def demo_tokenizer_path() -> Path:
    from .errors import TokenizerError
    from .tokenizer import resolve_tokenizer

    try:
        return resolve_tokenizer("tekken")
    except TokenizerError:
        raise LinkFastError("the demo uses Mistral's Tekken tokenizer: pip install 'link_fast[demo]'") from None


def demo_documents() -> list[str]:
    """The bundled fables, one document each ('#' lines are the header)."""
    text = (DATA / "demo_text.txt").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return [p.strip() for p in body.split("\n\n") if p.strip()]


def _highlight(tokenizer, tokens, mask, color: bool) -> str:
    """Decoded text with each run of substituted tokens marked."""
    document = pieces(lambda a, b: tokenizer.decode(tokens[a:b]), len(tokens), mask_marks(mask))
    return terminal(document, color)


def run_demo(ratio: float = 0.5, seed: int = 0, color: str = "auto", out=None) -> int:
    from .compiler import compile_vocab
    from .substituter import Substituter
    from .tokenizer import load_tokenizer

    out = out or sys.stdout
    colored = use_color(color, out)
    started = time.perf_counter()
    tokenizer = load_tokenizer(demo_tokenizer_path())
    vocab = compile_vocab(tokenizer, DEMO_LANGUAGES)
    compiled = time.perf_counter()

    documents = demo_documents()
    encoded = [np.asarray(tokenizer.encode(d), dtype=np.uint32) for d in documents]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    tokens = np.concatenate(encoded)
    substituter = Substituter(vocab, ratio=ratio, seed=seed, stream_key="demo")
    result = substituter.apply(tokens, offsets, mask=True)
    mask = cast(np.ndarray, result.mask)  # asked for with mask=True

    w = out.write
    w(
        f"link_fast demo: {len(documents)} fables from Aesop, tokenizer {tokenizer.name} "
        f"({tokenizer.vocab_size:,} ids), dictionaries en-de and en-fr ({vocab.n_keys:,} token-id keys), "
        f"ratio={ratio}, seed={seed}\n\n"
    )
    for d in range(min(2, len(documents))):
        before = tokens[offsets[d] : offsets[d + 1]]
        a, b = result.offsets[d], result.offsets[d + 1]
        w(f"--- before (document {d}, {len(before)} tokens)\n{tokenizer.decode(before)}\n")
        w(
            f"+++ after ({b - a} tokens; substitutions marked)\n"
            f"{_highlight(tokenizer, result.tokens[a:b], mask[a:b], colored)}\n\n"
        )
    s = result.stats
    w("statistics\n")
    w(f"  documents            {s.documents} ({s.eligible_documents} eligible)\n")
    w(f"  words                {s.words}\n")
    w(f"  candidates           {s.candidates} dictionary words found\n")
    shares = ", ".join(f"{lang} {n}" for lang, n in s.substitutions.items())
    w(
        f"  substitutions        {s.total_substitutions} ({shares}): "
        f"{s.total_substitutions / max(1, s.eligible_candidates):.1%} of candidates\n"
    )
    w(f"  tokens               {s.tokens_in} in, {s.tokens_out} out\n")
    w(f"  time                 compile {compiled - started:.2f} s, substitute {time.perf_counter() - compiled:.3f} s\n")
    return 0
