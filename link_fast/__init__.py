"""link_fast: LINK lexical substitution on token ids (arXiv 2605.23885).

Compile a bilingual dictionary for one tokenizer into a token-id vocabulary, then rewrite
tokenized documents with ``Substituter.apply``; see README.md.
"""

from .errors import DictionaryError, InputError, LinkFastError, TokenizerError, VocabError
from .sampling import Sampling
from .substituter import Result, Stats, Substituter
from .vocab import Vocab

__version__ = "0.1.0"

__all__ = [
    "DictionaryError",
    "InputError",
    "LinkFastError",
    "Result",
    "Sampling",
    "Stats",
    "Substituter",
    "TokenizerError",
    "Vocab",
    "VocabError",
    "TextSubstituter",
    "apply_shards",
    "compile_vocab",
]


def __getattr__(name):
    # the compiler pulls in the tokenizer libraries, the runner multiprocessing: import on use
    if name == "compile_vocab":
        from .compiler import compile_vocab

        return compile_vocab
    if name == "TextSubstituter":
        from .text import TextSubstituter

        return TextSubstituter
    if name == "apply_shards":
        from .runner import apply_shards

        return apply_shards
    raise AttributeError(f"module 'link_fast' has no attribute {name!r}")
