"""Text mode's native path (link_fast/_text.pyx, link_fast/text/native.py): byte for byte the
Python reference path (``TextSubstituter(native=False)``), and its cache next to the vocabulary
(built once, reloaded, and rebuilt when stale or damaged)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_text import PIECES, synthetic_vocab

from link_fast import _text
from link_fast.cli import main as cli_main
from link_fast.errors import InputError
from link_fast.substituter import Stats
from link_fast.text import TextSubstituter, native
from link_fast.text import substituter as substituter_module
from link_fast.vocab import Vocab

# wider characters too: the output's kind (ASCII, Latin-1, UCS-2, UCS-4) follows what is kept;
# and what a JSON string escapes, for rewrite_json: every C0 control, alone and all together
NATIVE_PIECES = PIECES + ["Ω", "😀", "é", "\u00a0", "ice-cream", "'", '"', "\\", "\x7f", "\u2028"]
NATIVE_PIECES += ["\x00", "\b", "\t", "\n", "\f", "\r", "\x1f", "".join(map(chr, range(0x20)))]


@pytest.fixture(scope="module")
def vocab():
    return synthetic_vocab()


def _same(native_sub: TextSubstituter, python_sub: TextSubstituter, text: str, doc: int) -> None:
    got, want = native_sub.apply(text, doc), python_sub.apply(text, doc)
    assert got.text == want.text
    assert type(got.text) is str and got.text.encode("utf-8") == want.text.encode("utf-8")
    assert got.substitutions == want.substitutions
    assert got.stats.to_dict() == want.stats.to_dict()
    assert native_sub.matches(text) == python_sub.matches(text)
    # .jsonl outputs: the native path writes the JSON string's body itself (render_json)
    got_json, want_json = _json_body(native_sub, text, doc), _json_body(python_sub, text, doc)
    assert got_json == want_json == json.dumps(want.text, ensure_ascii=False)[1:-1].encode("utf-8")


def _json_body(sub: TextSubstituter, text: str, doc: int) -> bytes:
    stats = Stats.zero(sub.vocab.languages, unit="characters")
    pieces: list[bytes] = []
    if sub.rewrite_json(text, doc, stats, False, pieces.append) is None:
        assert pieces == []
        pieces = [substituter_module.json_string_body(text)]
    assert stats.size_out == len(sub.apply(text, doc).text)
    return b"".join(pieces)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(NATIVE_PIECES), max_size=60).map("".join),
    st.integers(0, 1000),
    st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    st.sampled_from([0.5, 1.0]),
    st.sampled_from(["candidates", "words"]),
    st.sampled_from(["word", "document"]),
    st.sampled_from([{"de": 1.0, "fr": 1.0}, {"de": 0.7, "fr": 0.3}, {"fr": 1.0}, {"de": 1.0}]),
    st.integers(0, 3),
    st.sampled_from([1 << 18, 5]),
)
def test_native_equals_the_python_path(vocab, text, doc, ratio, portion, basis, scope, languages, seed, emit_chars):
    options = dict(ratio=ratio, portion=portion, seed=seed, languages=languages, ratio_basis=basis, lang_scope=scope)
    saved = substituter_module.EMIT_CHARS
    substituter_module.EMIT_CHARS = emit_chars  # 5: a long document's output made in pieces
    try:
        _same(TextSubstituter(vocab, **options), TextSubstituter(vocab, native=False, **options), text, doc)
    finally:
        substituter_module.EMIT_CHARS = saved


def test_output_kind_is_canonical(vocab):
    """A substitution that removes the only wide character gives a narrower str, equal to the
    same text made any other way."""
    sub = TextSubstituter(vocab, ratio=1.0, languages={"de": 1.0})
    for text in ("café x", "x café", "über café 😀", "😀"):
        got = sub.apply(text).text
        want = TextSubstituter(vocab, ratio=1.0, languages={"de": 1.0}, native=False).apply(text).text
        assert got == want and hash(got) == hash(want) and got.isascii() == want.isascii()


# -- the cache -----------------------------------------------------------------------------------


@pytest.fixture
def vocab_file(vocab, tmp_path):
    path = tmp_path / "v.lfv"
    vocab.save(path)
    native.forget()
    return path


def _build(path, **options):
    native.forget()  # as a new process: nothing held in memory
    sub = TextSubstituter(Vocab.load(path), ratio=1.0, seed=3, **options)
    return sub, sub.index_info


def test_cache_is_built_once_then_loaded(vocab_file):
    text = "the cat and the ice cream, über alles"
    first, info = _build(vocab_file)
    assert info is not None and info.how == "built, cached"
    assert (vocab_file.parent / "v.lfv.textcache").is_file()
    second, info = _build(vocab_file)
    assert info is not None and info.how == "loaded"
    assert second.apply(text).text == first.apply(text).text


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty", "stale"])
def test_damaged_or_stale_cache_is_rebuilt(vocab_file, damage):
    text = "the cat and the ice cream, über alles"
    want = _build(vocab_file)[0].apply(text).text
    cache = vocab_file.parent / "v.lfv.textcache"
    data = bytearray(cache.read_bytes())
    if damage == "flip":
        data[-100] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "header":
        data[20:30] = b"{not json!"
    elif damage == "empty":
        data = bytearray()
    cache.write_bytes(bytes(data))
    if damage == "stale":  # another vocabulary in the same file: the cache names the old keys
        other = Vocab.from_entries(np.zeros(2000, dtype=np.uint8), list(synthetic_vocab().entries())[:5], ["de", "fr"])
        other.save(vocab_file)
    sub, info = _build(vocab_file)
    assert info is not None and info.how == "built, cached"
    if damage != "stale":
        assert sub.apply(text).text == want
    assert _build(vocab_file)[1].how == "loaded"  # type: ignore[union-attr]


def test_unwritable_directory_means_no_cache(vocab_file, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(native, "atomic_file", refuse)
    sub, info = _build(vocab_file)
    assert info is not None and info.how == "built"
    assert sub.apply("the cat").stats.candidates == 1


def test_index_refuses_arrays_out_of_range(vocab):
    arrays = native.build_arrays(vocab)
    good = {name: np.array(array) for name, array in arrays.items()}
    _text.TextIndex(good["nodes"], good["term_spaced"], good["term_bare"], good["root_child"], good["word_bits"], 30)
    for name, position, value in [
        ("nodes", 0, 10**6),  # the root's children past the end
        ("nodes", 1, -1),  # a negative child count
        ("nodes", 7, 10**6),  # a pattern that does not exist
        ("term_spaced", 0, 10**6),  # a key that does not exist
        ("root_child", ord("c"), 10**6),
    ]:
        bad = {k: v.copy() for k, v in good.items()}
        bad[name][position] = value
        with pytest.raises(ValueError):
            _text.TextIndex(bad["nodes"], bad["term_spaced"], bad["term_bare"], bad["root_child"], bad["word_bits"], 30)


def test_index_refuses_a_node_with_two_parents():
    # nodes 1 ("a") and 0 both claim node 2 ("b") as a child: ranges and order are valid, but
    # the word table's walk over it would meet node 2 twice (a corrupt cache could multiply walks)
    nodes = np.array([1, 2, 0, -1, 2, 1, ord("a"), -1, 0, 0, ord("b"), 0], dtype=np.int32)  # first, count, ch, term
    root_child = np.full(_text.ROOT_CHILDREN, -1, dtype=np.int32)
    root_child[ord("a")], root_child[ord("b")] = 1, 2
    keys = np.array([0], dtype=np.int32)
    with pytest.raises(ValueError, match="two parents"):
        _text.TextIndex(nodes, keys, keys, root_child, _text.word_bits(), 1)


def test_cli_summary_reports_the_index_apart(vocab_file, tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the cat", "ice cream"]))
    native.forget()
    assert (
        cli_main(["text", "--vocab", str(vocab_file), "--ratio", "1", str(src), "-o", str(tmp_path / "o.jsonl")]) == 0
    )
    err = capsys.readouterr().err
    assert "index built, cached in" in err and "vocabulary loaded in" in err and "substituting" in err
    record = json.loads((tmp_path / "o.jsonl.link.json").read_text())
    assert record["timing"]["index"] == "built, cached"


@pytest.mark.parametrize("bad", [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_render_json_refuses_a_translation_that_is_not_utf8(vocab, bad):
    """A translation's bytes are checked as Python's strict decoder would (invalid byte, encoded
    surrogate, overlong form, past U+10FFFF, cut short) before they are copied into an output."""
    t = vocab.tables
    offsets = np.asarray(t["trans_text_offsets"]).copy()
    blob = np.concatenate([np.asarray(t["trans_text"]), np.frombuffer(b"a" + bad, dtype=np.uint8)])
    offsets = np.append(offsets, len(blob))  # one more translation: "a" + bad
    last = len(offsets) - 2
    index, _ = native.text_index(vocab)
    sampler = _text.TextSampler(
        index, np.asarray(t["key_lang_mask"]), np.asarray(t["key_trans_start"]), np.asarray(t["key_trans"]),
        np.asarray(t["key_trans_cum"]), offsets, blob, [1] * len(vocab.languages),
        portion_threshold=0, ratio_threshold=0, ratio=0.0, words_basis=False, doc_scope=False, strict=False,
    )  # fmt: skip
    edit = (np.array([0], np.int64), np.array([1], np.int32), np.array([last], np.int32))
    with pytest.raises(InputError, match=f"translation {last} is not UTF-8"):
        sampler.render_json("x y", *edit, 0, 1, 0, 3)
    good = np.append(offsets[:-1], len(blob) - len(bad))  # "a" alone
    sampler = _text.TextSampler(
        index, np.asarray(t["key_lang_mask"]), np.asarray(t["key_trans_start"]), np.asarray(t["key_trans"]),
        np.asarray(t["key_trans_cum"]), good, blob, [1] * len(vocab.languages),
        portion_threshold=0, ratio_threshold=0, ratio=0.0, words_basis=False, doc_scope=False, strict=False,
    )  # fmt: skip
    assert sampler.render_json("x y", *edit, 0, 1, 0, 3) == (b"a y", 3)


def _sampler_with_translations(vocab, texts: list[bytes]) -> tuple[_text.TextSampler, int]:
    """A sampler over ``vocab``'s tables with one more translation for each of ``texts`` (its
    bytes as they are), and the index of the first of them."""
    t = vocab.tables
    first = len(t["trans_text_offsets"]) - 1
    blob = np.concatenate([np.asarray(t["trans_text"]), np.frombuffer(b"".join(texts), dtype=np.uint8)])
    ends = len(t["trans_text"]) + np.cumsum([len(text) for text in texts], dtype=np.int64)
    offsets = np.concatenate([np.asarray(t["trans_text_offsets"]), ends])
    index, _ = native.text_index(vocab)
    sampler = _text.TextSampler(
        index, np.asarray(t["key_lang_mask"]), np.asarray(t["key_trans_start"]), np.asarray(t["key_trans"]),
        np.asarray(t["key_trans_cum"]), offsets, blob, [1] * len(vocab.languages),
        portion_threshold=0, ratio_threshold=0, ratio=0.0, words_basis=False, doc_scope=False, strict=False,
    )  # fmt: skip
    return sampler, first


def _render_json_with(sampler: _text.TextSampler, translation: int) -> tuple[bytes, int]:
    """``"x y"`` with its ``x`` replaced by ``translation``, as render_json writes it."""
    edit = (np.array([0], np.int64), np.array([1], np.int32), np.array([translation], np.int32))
    return sampler.render_json("x y", *edit, 0, 1, 0, 3)


# Each class of bytes that is not UTF-8, at its boundaries (DESIGN §8: texts valid UTF-8, as
# Python's strict decoder takes them), and the valid sequences next to them.
NOT_UTF8 = {
    "continuation byte alone": [b"\x80", b"\xbf", b"a\x80b"],
    "overlong 2 bytes (C0, C1 leads)": [b"\xc0\x80", b"\xc0\xaf", b"\xc1\xbf"],
    "overlong 3 bytes (E0 80..9F)": [b"\xe0\x80\x80", b"\xe0\x9f\xbf"],
    "overlong 4 bytes (F0 80..8F)": [b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf"],
    "surrogate (ED A0..BF)": [b"\xed\xa0\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80", b"\xed\xbf\xbf"],
    "past U+10FFFF (F4 90..BF)": [b"\xf4\x90\x80\x80", b"\xf4\xbf\xbf\xbf"],
    "lead byte F5..FF": [b"\xf5\x80\x80\x80", b"\xf7\xbf\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff"],
    "second byte not a continuation": [b"\xc2\x7f", b"\xc2\xc0", b"\xe1\x7f\x80", b"\xe1\xc0\x80", b"\xf1\x7f\x80\x80"],
    "later byte not a continuation": [b"\xe1\x80\x7f", b"\xef\xbf\xc0", b"\xf1\x80\x7f\x80", b"\xf1\x80\x80\xc0"],
    "cut short at the end": [b"\xc2", b"\xdf", b"\xe0\xa0", b"\xe1", b"\xef\xbf", b"\xf0\x90\x80", b"\xf4\x8f\xbf"],
    "cut short before ASCII": [b"\xc2a", b"\xe2\x82a", b"\xf0\x9f\x98a"],
}
UTF8_EDGES = [
    "\x7f", "\x80", "\u07ff", "\u0800", "\u0fff", "\u1000", "\ud7ff", "\ue000", "\uffff",
    "\U00010000", "\U0003ffff", "\U00040000", "\U000fffff", "\U00100000", "\U0010ffff",
]  # fmt: skip


def test_render_json_refuses_every_class_of_translation_that_is_not_utf8_and_takes_the_edges(vocab):
    """The native check of a translation's bytes (render_json copies them into .jsonl outputs
    as they are) refuses every way of not being UTF-8, at each boundary, and accepts the first
    and last code point of every length and range next to them."""
    bad = [case for cases in NOT_UTF8.values() for case in cases]
    # each followed in the table by continuation bytes: a check that read past a translation's
    # end would take them for the rest of a sequence cut short
    texts = [text for case in bad for text in (b"a" + case, b"\xbf\xbf\xbf")]
    sampler, first = _sampler_with_translations(vocab, texts + [f"a{c}".encode() for c in UTF8_EDGES])
    for i, case in enumerate(bad):
        with pytest.raises(InputError, match=f"translation {first + 2 * i} is not UTF-8"):
            _render_json_with(sampler, first + 2 * i)
            pytest.fail(f"{case.hex(' ')} taken")
    for i, char in enumerate(UTF8_EDGES):
        want = json.dumps(f"a{char} y", ensure_ascii=False)[1:-1].encode("utf-8")
        assert _render_json_with(sampler, first + len(texts) + i) == (want, 4), f"U+{ord(char):04X}"


def test_render_json_checks_translations_as_python_decodes_them(vocab):
    """Every lead byte 80..FF, with every boundary of the second byte and the sequence complete
    or cut short: the native check accepts exactly what Python's strict decoder accepts."""
    cases = [
        bytes([lead, second]) + b"\x80" * more
        for lead in range(0x80, 0x100)
        for second in (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
        for more in range(3)
    ]
    sampler, first = _sampler_with_translations(vocab, cases)
    for i, case in enumerate(cases):
        try:
            want = json.dumps(case.decode("utf-8") + " y", ensure_ascii=False)[1:-1].encode("utf-8")
        except UnicodeDecodeError:
            with pytest.raises(InputError, match="is not UTF-8"):
                _render_json_with(sampler, first + i)
        else:
            assert _render_json_with(sampler, first + i)[0] == want, case.hex(" ")
