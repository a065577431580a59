# Types of the compiled kernel (link_fast/_kernel.pyx). The arrays are prepared by
# link_fast/kernel_tables.py; see there for what each holds.
from typing import NamedTuple, overload

import numpy as np
import numpy.typing as npt

FLAG_WS_START: int
FLAG_GLUE_LEFT: int
FLAG_END_WORD: int
FLAG_SPECIAL: int
FLAG_HAS_WORD: int
FLAG_FUSES_RIGHT: int
FLAG_KEY_START: int
FLAG_MAY_JOIN: int
JOINER_ONLY: int
JOINER_THEN_WORD: int
WORD_THEN_JOINER: int
JOINERS_THEN_BACKTICK: int
BACKTICK_THEN_JOINERS: int
MAX_LANGUAGES: int
ALWAYS: int
DOMAINS: dict[str, int]
MAX_NODES: int

class Counts(NamedTuple):
    words: int
    candidates: int
    eligible_documents: int
    eligible_candidates: int
    tokens_in: int
    tokens_out: int
    substitutions: list[int]

class KernelTables:
    def __init__(
        self,
        *,
        scan_flags: npt.NDArray[np.uint8],
        joiner_flags: npt.NDArray[np.uint8],
        root: npt.NDArray[np.int32],
        node_key: npt.NDArray[np.int32],
        node_edge_start: npt.NDArray[np.int32],
        node_edge_count: npt.NDArray[np.int32],
        edge_token: npt.NDArray[np.uint32],
        edge_node: npt.NDArray[np.int32],
        edge_table: npt.NDArray[np.int32],
        edge_table_bits: int,
        key_lang_mask: npt.NDArray[np.uint32],
        key_trans_start: npt.NDArray[np.int64],
        key_trans: npt.NDArray[np.int32],
        key_trans_cum: npt.NDArray[np.uint32],
        trans_offsets: npt.NDArray[np.int64],
        trans_tokens: npt.NDArray[np.uint32],
        n_languages: int,
        all_keys_in_play: bool,
    ) -> None: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def n_languages(self) -> int: ...

class KernelSampling:
    def __init__(
        self,
        *,
        base: int,
        portion_threshold: int,
        ratio_threshold: int,
        ratio: float,
        ratio_basis_words: bool,
        lang_scope_document: bool,
        selected_mask: int,
        lang_weight: npt.NDArray[np.uint32],
    ) -> None: ...
    @property
    def base(self) -> int: ...
    @property
    def lang_weight(self) -> npt.NDArray[np.uint32]: ...

@overload
def substitute(
    tables: KernelTables,
    sampling: KernelSampling,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.int32] | npt.NDArray[np.uint32],
    offsets: npt.NDArray[np.int64],
    first_doc: int,
    out_dtype: npt.DTypeLike,
    want_mask: bool,
    doc_ids: npt.NDArray[np.int64] | None = None,
    piece: tuple[int, int, int, int, int] | None = None,
    loss: None = None,
) -> tuple[np.ndarray, npt.NDArray[np.int64], npt.NDArray[np.uint8] | None, Counts]: ...
@overload
def substitute(
    tables: KernelTables,
    sampling: KernelSampling,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.int32] | npt.NDArray[np.uint32],
    offsets: npt.NDArray[np.int64],
    first_doc: int,
    out_dtype: npt.DTypeLike,
    want_mask: bool,
    doc_ids: npt.NDArray[np.int64] | None = None,
    piece: tuple[int, int, int, int, int] | None = None,
    *,
    loss: npt.NDArray[np.uint8],
) -> tuple[np.ndarray, npt.NDArray[np.int64], npt.NDArray[np.uint8] | None, Counts, npt.NDArray[np.uint8]]: ...
def document_cuts(
    tables: KernelTables,
    sampling: KernelSampling,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.int32] | npt.NDArray[np.uint32],
    begin: int,
    end: int,
    every: int,
    start: int,
    stop: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, int, int]: ...
def build_edge_table(arrays: dict[str, np.ndarray]) -> tuple[npt.NDArray[np.int32], int]: ...
def draws(base: int, domain: int, doc: int, count: int, first: int = 0) -> npt.NDArray[np.uint64]: ...
def draws_at(base: int, domain: int, doc: int, candidates: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]: ...
def draw(base: int, domain: int, doc: int, cand: int) -> int: ...
def mix64(z: int) -> int: ...
