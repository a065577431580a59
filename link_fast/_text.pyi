# Types of text mode's native matcher (link_fast/_text.pyx). The arrays are made by build_trie
# and cached by link_fast/text/native.py.
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT_CHILDREN: int
BACKTICK: str
WORD_BITS_BYTES: int

def word_bits() -> npt.NDArray[np.uint8]: ...
def joiners() -> str: ...
def build_trie(patterns: list[str]) -> dict[str, npt.NDArray[Any]]: ...
def find_surrogate(text: str) -> int: ...

class TextIndex:
    n_nodes: int
    n_terms: int
    n_words: int
    def __init__(
        self,
        nodes: npt.NDArray[np.int32],
        term_spaced: npt.NDArray[np.int32],
        term_bare: npt.NDArray[np.int32],
        root_child: npt.NDArray[np.int32],
        word_bits: npt.NDArray[np.uint8],
        n_keys: int,
    ) -> None: ...

class TextSampler:
    def __init__(
        self,
        index: TextIndex,
        key_lang_mask: npt.NDArray[np.uint32],
        key_trans_start: npt.NDArray[np.int64],
        key_trans: npt.NDArray[np.int32],
        key_trans_cum: npt.NDArray[np.uint32],
        trans_text_offsets: npt.NDArray[np.int64],
        trans_text: npt.NDArray[np.uint8],
        weights: list[int],
        *,
        portion_threshold: int,
        ratio_threshold: int,
        ratio: float,
        words_basis: bool,
        doc_scope: bool,
        strict: bool,
        all_in_play: bool = False,
    ) -> None: ...
    def scan_text(
        self, text: str, drop: Any = None
    ) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
    def rewrite(
        self, text: str, doc: int, base: int, drop: Any = None
    ) -> tuple[
        int,
        int,
        bool,
        list[int],
        tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int8], npt.NDArray[np.int32]] | None,
    ]: ...
    def translation(self, t: int) -> str: ...
    def render(
        self,
        text: str,
        starts: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int32],
        chosen: npt.NDArray[np.int32],
        first: int,
        stop: int,
        lo: int,
        hi: int,
    ) -> str: ...
    def render_json(
        self,
        text: str,
        starts: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int32],
        chosen: npt.NDArray[np.int32],
        first: int,
        stop: int,
        lo: int,
        hi: int,
    ) -> tuple[bytes, int]: ...
