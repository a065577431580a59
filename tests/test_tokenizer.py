"""Tests of link_fast.tokenizer: boundary-flag rules, the real Mistral tokenizers, HF tokenizers
trained on the fly, .tiktoken rank files, fingerprints and bad input."""

from __future__ import annotations

import base64
import importlib.resources
import json
import os
import random
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from link_fast.errors import InputError, TokenizerError
from link_fast.tokenizer import (
    CL100K_PATTERN,
    FLAG_END_WORD,
    FLAG_FUSES_RIGHT,
    FLAG_GLUE_LEFT,
    FLAG_HAS_WORD,
    FLAG_SPECIAL,
    FLAG_WS_START,
    bytes_to_unicode,
    flags_for_bytes,
    load_tokenizer,
    token_flags,
)

WS, GLUE, END, SPECIAL, HAS = FLAG_WS_START, FLAG_GLUE_LEFT, FLAG_END_WORD, FLAG_SPECIAL, FLAG_HAS_WORD
FUSES = FLAG_FUSES_RIGHT
WORD = GLUE | HAS | END  # a token made of word characters only

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. It was 1999, and (nobody) cared!",
    "Über die Brücke: naïve café-goers said «bonjour» — twice.\nThen they left.\n\n  Indented line\twith tab.",
    "日本語のテキストと English mixed; emoji 🐈 and combining e\u0301 marks. <s> [INST] </s> are plain text here.",
    "def f(x):\n    return x ** 2  # comment\n",
]


# ---------------------------------------------------------------------------------------------
# flag rules on hand-made bytes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "b, flags",
    [
        (b"", 0),
        (b"cat", WORD),
        (b" cat", WS | HAS | END),
        (b"  cat", WS | HAS | END),
        (b"\ncat", WS | HAS | END),
        (b".", 0),
        (b" .", WS),
        (b"\n", WS),
        (b"   ", WS),
        (b"\t", WS),
        (b"(c", END),  # bracket first: neither glues nor starts a word, but ends in one
        (b" (c", WS | END),
        (b"at.", GLUE | HAS),
        (b"'s", END),  # apostrophe is punctuation
        (b"_", 0),  # underscore is Pc, not a word character
        (b"42", WORD),
        (b" 42", WS | HAS | END),
        ("é".encode(), WORD),
        (" été".encode(), WS | HAS | END),
        ("の".encode(), WORD),
        ("e\u0301".encode(), WORD),
        ("\u0301".encode(), WORD),  # combining mark glues left
        ("—".encode(), 0),
        ("“".encode(), 0),
        ("\u00a0x".encode(), WS | HAS | END),  # no-break space is whitespace
        ("🐈".encode(), 0),  # emoji are symbols (So)
    ],
)
def test_flags_for_bytes(b: bytes, flags: int) -> None:
    assert flags_for_bytes(b) == flags
    assert design_flags(b) == flags  # the restatement below agrees with the table


def _first_char(b: bytes) -> str | None:
    """The character ``b`` starts with; None when it starts inside or with an incomplete
    UTF-8 sequence. Found by trying prefixes: independent of flags_for_bytes' decoding."""
    for k in range(1, 5):
        try:
            return b[:k].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _last_char(b: bytes) -> str | None:
    for k in range(1, 5):
        try:
            return b[-k:].decode("utf-8")[-1]
        except UnicodeDecodeError:
            continue
    return None


def _is_word(ch: str | None) -> bool:
    # DESIGN §3: a letter, digit or combining mark; a partial character continues a word
    return ch is None or unicodedata.category(ch)[0] in "LNM"


def design_flags(b: bytes) -> int:
    """DESIGN §3's flag table restated from a token's bytes (FUSES_RIGHT aside)."""
    if not b:
        return 0
    first, flags, pos = _first_char(b), 0, 0
    if first is not None and first.isspace():
        flags |= WS
        while (ch := _first_char(b[pos:])) is not None and ch.isspace():
            pos += len(ch.encode())
        if pos < len(b) and _is_word(_first_char(b[pos:])):
            flags |= HAS
    elif _is_word(first):
        flags |= GLUE | HAS
    if _is_word(_last_char(b)):
        flags |= END
    return flags


@pytest.mark.parametrize(
    "b, flags",
    [
        (b"\xc3", WORD),  # lone lead byte: incomplete sequence at both ends
        (b"\xa9", WORD),  # lone continuation byte
        (b"\xe6\x97", WORD),  # 2 of 3 bytes
        (b"\x97\xa5", WORD),  # tail of a 3-byte char
        (b" \xc3", WS | HAS | END),
        (b" \xe6\x97\xa5\xe6", WS | HAS | END),  # complete char then a partial one
        (b"caf\xc3", WORD),
        (b"\xa9 ", GLUE | HAS),  # continues the previous word, ends in a space
        (b"\xa9.", GLUE | HAS),
        (b".\xc3", END),
        (b"\xa9s", WORD),
    ],
)
def test_flags_partial_utf8(b: bytes, flags: int) -> None:
    assert flags_for_bytes(b) == flags
    assert design_flags(b) == flags


def test_flags_surface_string_traps() -> None:
    # 'Ġ' (U+0120) is a letter and '▁' (U+2581) a symbol: flags computed from the surface
    # string would be wrong; from the decoded bytes they are right.
    assert flags_for_bytes("Ġthe".encode()) == WORD  # the trap
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    assert bytes(u2b[c] for c in "Ġthe") == b" the"
    assert flags_for_bytes(bytes(u2b[c] for c in "Ġthe")) == WS | HAS | END
    assert flags_for_bytes("▁cat".encode()) == END  # the trap
    assert flags_for_bytes(b" cat") == WS | HAS | END


def test_bytes_to_unicode_table() -> None:
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    assert table[0xC3] == "Ã"


# ---------------------------------------------------------------------------------------------
# real Mistral tokenizers
# ---------------------------------------------------------------------------------------------


def _mistral_data() -> Path:
    pytest.importorskip("mistral_common")
    return Path(str(importlib.resources.files("mistral_common") / "data"))


@pytest.fixture(scope="module")
def tekken_path() -> Path:
    pytest.importorskip("tiktoken")
    return _mistral_data() / "tekken_240911.json"


@pytest.fixture(scope="module")
def tekken(tekken_path: Path):
    return load_tokenizer(tekken_path)


@pytest.fixture(scope="module")
def tekken_flags(tekken):
    return token_flags(tekken)


@pytest.fixture(scope="module")
def sp_v1_path() -> Path:
    pytest.importorskip("sentencepiece")
    return _mistral_data() / "tokenizer.model.v1"


@pytest.fixture(scope="module")
def sp_v3_path() -> Path:
    pytest.importorskip("sentencepiece")
    return _mistral_data() / "mistral_instruct_tokenizer_240323.model.v3"


def test_tekken_basics(tekken, tekken_flags) -> None:
    assert tekken.kind == "tiktoken"
    assert tekken.name == "tekken_240911.json"
    assert tekken.vocab_size == 131072
    assert tekken.special_ids == frozenset(range(1000))
    assert tekken.token_bytes(1) == b""
    # the first 256 regular ranks are the single bytes
    assert all(tekken.token_bytes(1000 + i) == bytes([i]) for i in range(256))
    ids = tekken.encode(" cat")
    assert len(ids) == 1 and ids[0] >= 1000
    assert tekken.token_bytes(ids[0]) == b" cat"
    assert tekken_flags[ids[0]] == WS | END | HAS
    running = tekken.encode("running")
    assert tekken.decode(running) == "running"
    ing = tekken.encode("ing")
    assert len(ing) == 1 and tekken_flags[ing[0]] & GLUE
    assert tekken_flags.dtype == np.uint8 and tekken_flags.shape == (131072,)
    assert (tekken_flags[:1000] == SPECIAL).all()
    assert not (tekken_flags[1000:] & SPECIAL).any()


def test_tekken_matches_mistral_common(tekken, tekken_path) -> None:
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    ref = Tekkenizer.from_file(str(tekken_path))
    for text in PARAGRAPHS + ["a cat.", "a\ncat.", "\ncat", "(cat)", " Katze", ""]:
        ids = tekken.encode(text)
        assert ids == ref.encode(text, bos=False, eos=False), text
        assert tekken.decode(ids) == text
        assert b"".join(tekken.token_bytes(i) for i in ids) == text.encode()
    assert tekken.encode_batch(PARAGRAPHS) == [tekken.encode(t) for t in PARAGRAPHS]


def test_tekken_special_strings_are_text(tekken) -> None:
    ids = tekken.encode("<s>[INST]</s>")
    assert not set(ids) & tekken.special_ids
    assert tekken.decode(ids) == "<s>[INST]</s>"


def test_tekken_encode_batch_lone_surrogate(tekken) -> None:
    # tiktoken's core rejects lone surrogates; the batch path must fall back like encode does
    texts = [" cat", "a\ud800b"]
    assert tekken.encode_batch(texts) == [tekken.encode(t) for t in texts]


def test_token_flags_of_real_tokens(tekken, tekken_flags) -> None:
    # every non-special token's flags equal DESIGN §3's rules, restated in this file, applied
    # to its bytes (fusing aside); the special ids are SPECIAL alone
    rng = random.Random(0)
    for i in [*range(1000, 1256), *rng.sample(range(1256, tekken.vocab_size), 4000)]:
        assert int(tekken_flags[i]) & ~FUSES == design_flags(tekken.token_bytes(i)), (i, tekken.token_bytes(i))
    assert all(int(tekken_flags[i]) == SPECIAL for i in range(1000))
    # Tekken's pre-tokenizer glues one punctuation character to the next word: '(' + 'F' -> '(F'
    fusing = {tekken.token_bytes(i) for i in range(tekken.vocab_size) if tekken_flags[i] & FUSES}
    assert {b"(", b"-", b"'", b"/"} <= fusing and not {b" cat", b" (", b"(("} & fusing


@pytest.mark.parametrize("which", ["v1", "v3"])
def test_sentencepiece(which: str, sp_v1_path: Path, sp_v3_path: Path) -> None:
    import sentencepiece as spm

    path = sp_v1_path if which == "v1" else sp_v3_path
    tok = load_tokenizer(path)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert tok.kind == "sentencepiece"
    assert tok.vocab_size == (32000 if which == "v1" else 32768)
    assert {0, 1, 2} <= tok.special_ids  # <unk>, <s>, </s>
    if which == "v3":
        assert sp.id_to_piece(3) == "[INST]" and 3 in tok.special_ids
    else:
        assert tok.special_ids == frozenset({0, 1, 2})
    nl = sp.piece_to_id("<0x0A>")
    assert tok.token_bytes(nl) == b"\n"
    assert tok.token_bytes(sp.piece_to_id("▁cat")) == b" cat"

    flags = token_flags(tok)
    assert flags[sp.piece_to_id("▁cat")] == WS | HAS | END
    assert flags[sp.piece_to_id("▁")] == WS | FUSES  # a lone '▁' merges with a following word
    assert not flags[sp.piece_to_id("(")] & FUSES  # SentencePiece splits scripts: '(' never fuses
    assert flags[1] == SPECIAL
    for text in PARAGRAPHS + ["a cat.", "a\ncat.", "\ncat", "(cat)", " cat", "cat"]:
        ids = tok.encode(text)
        assert ids == sp.encode(text, out_type=int)
        assert not set(ids) & {1, 2}
        # the exact concatenation keeps the dummy-prefix space that sp.decode strips
        assert tok.decode(ids) == " " + sp.decode(ids)
        assert tok.decode(ids) == " " + text
    assert tok.encode_batch(PARAGRAPHS) == [tok.encode(t) for t in PARAGRAPHS]


def test_fingerprint(tmp_path: Path, sp_v1_path: Path, sp_v3_path: Path) -> None:
    v1 = load_tokenizer(sp_v1_path)
    copy = tmp_path / "renamed.bin"
    shutil.copy(sp_v1_path, copy)
    v1_copy = load_tokenizer(copy)
    v3 = load_tokenizer(sp_v3_path)
    assert len(v1.fingerprint) == 64 and int(v1.fingerprint, 16) >= 0
    assert v1.fingerprint == v1_copy.fingerprint
    assert v1.fingerprint != v3.fingerprint
    assert v1.fingerprint is v1.fingerprint  # cached


def test_token_id_range(sp_v1_path: Path) -> None:
    tok = load_tokenizer(sp_v1_path)
    with pytest.raises(InputError):
        tok.token_bytes(32000)
    with pytest.raises(InputError):
        tok.token_bytes(-1)
    with pytest.raises(InputError):
        tok.decode([5, -1])
    ids = tok.encode("a cat.")
    assert tok.decode(np.array(ids, dtype=np.uint16)) == " a cat."


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizers trained on the fly
# ---------------------------------------------------------------------------------------------

_WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "the",
    "dog",
    "ran",
    "to",
    "the",
    "house",
    "while",
    "people",
    "were",
    "running",
    "jumping",
    "thinking",
    "about",
    "naïve",
    "café",
    "Über",
    "straße",
    "日本",
    "語",
    "numbers",
    "1234",
    "56",
    "with",
    "(brackets)",
    "and",
    "punctuation,",
    "quotes",
    "“like",
    "this”",
    "—",
    "dashes;",
    "colons:",
    "tabs\tand\nnewlines",
]


def _corpus(n: int = 400) -> list[str]:
    rng = random.Random(42)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 15))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def hf_byte_level_path(tmp_path_factory) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_tokens(["hello world"])  # non-special added token, with a real space
    tok.add_special_tokens(["[X]"])
    path = tmp_path_factory.mktemp("hf") / "bytelevel.json"
    tok.save(str(path))
    return path


def test_hf_byte_level(hf_byte_level_path: Path) -> None:
    import tokenizers

    ref = tokenizers.Tokenizer.from_file(str(hf_byte_level_path))
    tok = load_tokenizer(hf_byte_level_path)
    assert tok.kind == "hf"
    assert tok.vocab_size == ref.get_vocab_size(with_added_tokens=True)
    specials = {ref.token_to_id(s) for s in ("<|endoftext|>", "<s>", "[X]")}
    assert tok.special_ids == frozenset(specials)
    assert all(tok.token_bytes(i) == b"" for i in specials)
    for text in _corpus(20) + PARAGRAPHS + ["hello world, the cat"]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert b"".join(tok.token_bytes(i) for i in ids) == text.encode()
        # specials in the text stay text
        assert not set(ids) & specials
    assert tok.token_bytes(ref.token_to_id("hello world")) == b"hello world"
    assert tok.encode_batch(PARAGRAPHS) == [tok.encode(t) for t in PARAGRAPHS]
    # every token's bytes agree with the native decoder wherever they are valid UTF-8
    for i in range(tok.vocab_size):
        if i in specials:
            continue
        b = tok.token_bytes(i)
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            continue
        assert ref.decode([i]) == s


def test_hf_byte_level_g_trap(hf_byte_level_path: Path) -> None:
    import tokenizers

    ref = tokenizers.Tokenizer.from_file(str(hf_byte_level_path))
    tok = load_tokenizer(hf_byte_level_path)
    the = ref.token_to_id("Ġthe")
    assert the is not None and tok.encode(" the") == [the]
    flags = token_flags(tok)
    assert tok.token_bytes(the) == b" the"
    assert flags[the] & WS and not flags[the] & GLUE
    assert flags[the] == WS | HAS | END
    assert flags[ref.token_to_id("[X]")] == SPECIAL


def test_hf_byte_level_prefix_space(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _corpus(), trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    path = tmp_path / "prefix.json"
    tok.save(str(path))
    ours = load_tokenizer(path)
    # the pre-tokenizer adds a space in front of the text; the exact bytes keep it
    assert ours.decode(ours.encode("the cat")) == " the cat"


def test_hf_metaspace_bpe(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"]))
    path = tmp_path / "metaspace.json"
    tok.save(str(path))
    ours = load_tokenizer(path)
    assert ours.special_ids == frozenset(tok.token_to_id(s) for s in ("<unk>", "<s>", "</s>"))
    cat = tok.token_to_id("▁cat")
    assert cat is not None and ours.token_bytes(cat) == b" cat"
    flags = token_flags(ours)
    assert flags[cat] == WS | HAS | END
    for text in _corpus(20):
        ids = ours.encode(text)
        assert ids == tok.encode(text, add_special_tokens=False).ids
        # the prepended "▁" is kept, the native decoder strips it
        assert ours.decode(ids) == " " + text == " " + tok.decode(ids)


def test_hf_unigram_byte_fallback(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers

    vocab = [("<unk>", 0.0)] + [(f"<0x{i:02X}>", -20.0) for i in range(256)]
    vocab += [("▁cat", -1.0), ("▁", -2.0), ("c", -3.0), ("a", -3.0), ("t", -3.0), ("▁the", -1.0)]
    tok = tokenizers.Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence(
        [decoders.Metaspace(replacement="▁", prepend_scheme="always"), decoders.ByteFallback()]
    )
    path = tmp_path / "unigram.json"
    tok.save(str(path))
    ours = load_tokenizer(path)
    assert ours.special_ids == frozenset({0})  # the unknown token is a boundary
    assert ours.token_bytes(tok.token_to_id("<0x0A>")) == b"\n"
    text = "the cat\ncaté"
    ids = ours.encode(text)
    assert ours.decode(ids) == " " + text
    flags = token_flags(ours)
    assert flags[tok.token_to_id("<0xC3>")] == WORD  # partial UTF-8
    assert flags[tok.token_to_id("<0x0A>")] == WS


def test_hf_llama2_style(tmp_path: Path) -> None:
    # Llama-2-style HF files: no pre-tokenizer; normalizer Prepend("▁") + Replace(" " -> "▁"),
    # decoder Replace("▁" -> " ") + ByteFallback + Fuse + Strip.
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, normalizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for i in range(256):
        vocab[f"<0x{i:02X}>"] = len(vocab)
    for t in ["▁", "t", "h", "e", "c", "a", "▁t", "he", "▁the", "ca", "cat", "▁cat"]:
        vocab[t] = len(vocab)
    merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("c", "a"), ("ca", "t"), ("▁", "cat")]
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    path = tmp_path / "llama2.json"
    tok.save(str(path))
    ours = load_tokenizer(path)
    assert ours.special_ids == frozenset({0, 1, 2})
    text = "the cat\nü"
    ids = ours.encode(text)
    assert [tok.id_to_token(i) for i in ids] == ["▁the", "▁cat", "<0x0A>", "<0xC3>", "<0xBC>"]
    assert [ours.token_bytes(i) for i in ids] == [b" the", b" cat", b"\n", b"\xc3", b"\xbc"]
    assert ours.decode(ids) == " " + text == " " + tok.decode(ids)


def test_hf_encode_batch_duplicates(hf_byte_level_path: Path) -> None:
    tok = load_tokenizer(hf_byte_level_path)
    texts = [" cat", "cat", " cat", "", " cat", "the cat"]
    out = tok.encode_batch(texts)
    assert out == [tok.encode(t) for t in texts]
    assert out[0] is not out[2]  # duplicates do not share a list
    out[0].append(-1)
    assert out[2] == tok.encode(" cat")


def test_hf_unsupported_models(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    wp = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.Whitespace()
    wp.train_from_iterator(_corpus(), trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    path = tmp_path / "wordpiece.json"
    wp.save(str(path))
    with pytest.raises(TokenizerError, match="unsupported HF model type WordPiece") as e:
        load_tokenizer(path)
    assert str(path) in str(e.value)

    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()  # spaces are lost: no way to get token bytes
    bpe.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=300))
    path = tmp_path / "whitespace_bpe.json"
    bpe.save(str(path))
    with pytest.raises(TokenizerError, match="ByteLevel or Metaspace"):
        load_tokenizer(path)


def test_model_directory(tmp_path: Path, hf_byte_level_path: Path) -> None:
    shutil.copy(hf_byte_level_path, tmp_path / "tokenizer.json")
    assert load_tokenizer(tmp_path).kind == "hf"
    assert load_tokenizer(tmp_path).name == "tokenizer.json"
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(TokenizerError, match="is a directory"):
        load_tokenizer(empty)


# ---------------------------------------------------------------------------------------------
# .tiktoken rank files
# ---------------------------------------------------------------------------------------------


def test_tiktoken_file(tmp_path: Path, tekken) -> None:
    import tiktoken

    # the first 5000 Tekken ranks make a valid (smaller) byte-level BPE
    ranks = {tekken.token_bytes(1000 + r): r for r in range(5000)}
    path = tmp_path / "small.tiktoken"
    path.write_text("".join(f"{base64.b64encode(b).decode()} {r}\n" for b, r in ranks.items()))
    tok = load_tokenizer(path)
    assert tok.kind == "tiktoken"
    assert tok.vocab_size == 5000 and tok.special_ids == frozenset()
    ref = tiktoken.Encoding("ref", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={})
    for text in PARAGRAPHS:
        ids = tok.encode(text)
        assert ids == ref.encode_ordinary(text)
        assert tok.decode(ids) == text
    assert tok.encode_batch(PARAGRAPHS) == [tok.encode(t) for t in PARAGRAPHS]
    assert tok.fingerprint != tekken.fingerprint

    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nIg== 1\nnot base64 at all\n")
    with pytest.raises(TokenizerError, match="line 3"):
        load_tokenizer(bad)
    bad.write_text("IQ== 0\nIg== -1\n")
    with pytest.raises(TokenizerError, match="line 2"):
        load_tokenizer(bad)
    bad.write_text("IQ== 0\nIg== 999999999\n")
    with pytest.raises(TokenizerError, match="large gaps"):
        load_tokenizer(bad)
    bad.write_text("IQ== 0\nIQ== 1\n")
    with pytest.raises(TokenizerError, match="duplicate"):
        load_tokenizer(bad)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def _raises_naming(path: Path, match: str | None = None) -> TokenizerError:
    with pytest.raises(TokenizerError, match=match) as e:
        load_tokenizer(path)
    assert str(e.value).startswith(f"{path}: ")
    return e.value


def test_missing_file(tmp_path: Path) -> None:
    _raises_naming(tmp_path / "nope.json", "no such file")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.json"
    p.write_bytes(b"")
    _raises_naming(p, "empty file")


def test_garbage_json(tmp_path: Path) -> None:
    p = tmp_path / "garbage.json"
    p.write_text('{"model": {"type": "BPE", ')
    _raises_naming(p, "not valid JSON")
    p.write_bytes(b'{"model": "\xff\xfe"}')
    _raises_naming(p, "not valid JSON")
    p.write_text("[" * 100000)
    _raises_naming(p, "not valid JSON")


@pytest.mark.parametrize("data", [{"a": 1}, [1, 2, 3], {"config": {}, "vocab": {}}, {"model": {}}])
def test_json_unknown_shape(tmp_path: Path, data) -> None:
    p = tmp_path / "unknown.json"
    p.write_text(json.dumps(data))
    _raises_naming(p, "unknown shape")


def test_malformed_tekken(tmp_path: Path) -> None:
    vocab = [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None} for i in range(256)]
    config = {"pattern": r"\S+|\s+", "default_vocab_size": 266, "default_num_special_tokens": 10}
    p = tmp_path / "tekken_small.json"
    p.write_text(json.dumps({"config": config, "vocab": vocab}))
    tok = load_tokenizer(p)  # the well-formed one loads
    assert tok.vocab_size == 266 and tok.special_ids == frozenset(range(10))
    assert tok.decode(tok.encode("ab c")) == "ab c"

    del vocab[5]["token_bytes"]
    p.write_text(json.dumps({"config": config, "vocab": vocab}))
    _raises_naming(p, "entry 5 is malformed")
    p.write_text(json.dumps({"config": dict(config, default_vocab_size=9999), "vocab": vocab}))
    _raises_naming(p, "does not fit")


def test_random_bytes(tmp_path: Path) -> None:
    rng = random.Random(7)
    for k in range(20):
        data = bytes(rng.randrange(256) for _ in range(500))
        if k == 0:
            data = b"\x0a" + data  # looks like a protobuf, goes through sentencepiece's parser
        p = tmp_path / f"random{k}.bin"
        p.write_bytes(data)
        _raises_naming(p)
    p = tmp_path / "random.model"
    p.write_bytes(os.urandom(300))
    _raises_naming(p)


def test_plain_text_file(tmp_path: Path) -> None:
    p = tmp_path / "text.txt"
    p.write_text("just some words\nin a text file\n")
    _raises_naming(p, "unknown tokenizer format")
