"""A real Hugging Face byte-level BPE tokenizer.json, trained in seconds, for tests that need one
offline (the README's first run uses a Hub model's tokenizer.json in its place)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def train_byte_level(path: Path, texts: Iterable[str], vocab_size: int) -> Path:
    """Train a GPT-2-style tokenizer (byte-level pre-tokenizer and decoder) on ``texts``, save it."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return path
