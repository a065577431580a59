"""compile_vocab on a real tokenizer (Tekken) with small dictionaries written by the tests."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from link_fast import Substituter, Vocab
from link_fast.compiler import apply_case, compile_vocab, source_cases
from link_fast.errors import DictionaryError, InputError, TokenizerError, VocabError
from link_fast.tokenizer import load_tokenizer

pytest.importorskip("mistral_common")
DATA = resources.files("mistral_common") / "data"


@pytest.fixture(scope="module")
def tekken():
    return load_tokenizer(DATA / "tekken_240911.json")


@pytest.fixture(scope="module")
def sentencepiece():
    return load_tokenizer(DATA / "tokenizer.model.v1")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def keys_by_text(vocab):
    return {vocab.key_text(k): k for k in range(vocab.n_keys)}


def test_source_cases_follow_the_source_spelling():
    assert source_cases("cat", ("lower", "title", "upper")) == [
        ("lower", "cat", True),
        ("title", "Cat", False),
        ("upper", "CAT", False),
    ]
    assert source_cases("Easter", ("lower", "title", "upper")) == [
        ("title", "Easter", True),
        ("upper", "EASTER", False),
    ]
    assert source_cases("US", ("lower", "title", "upper")) == [("exact", "US", True)]
    assert source_cases("ice cream", ("lower",)) == [("lower", "ice cream", True)]
    assert apply_case("chat noir", "title") == "Chat noir" and apply_case("straße", "upper") == "STRASSE"


def test_forms_cases_spacings_and_phrases(tmp_path, tekken):
    de = write(tmp_path, "de.txt", "cat\tKatze\nice cream\tEis\nus\tuns\nUS\tUSA\nEaster\tOstern\n")
    vocab = compile_vocab(tekken, {"de": de})
    keys = keys_by_text(vocab)
    expected = {
        " cat": " Katze",
        "cat": "Katze",
        " Cat": " Katze",
        " CAT": " KATZE",
        " ice cream": " Eis",
        "Ice cream": "Eis",
        " ICE CREAM": " EIS",
        " us": " uns",
        " Us": " Uns",
        " US": " USA",  # the source spelled US owns the form, not the UPPER of "us"
        " Easter": " Ostern",
        " EASTER": " OSTERN",
    }
    for form, translation in expected.items():
        assert form in keys, form
        assert [t for _, t in vocab.translations(keys[form], 0)] == [translation]
        assert vocab.key_tokens(keys[form]) == tuple(tekken.encode("a" + form)[1:]) if form.startswith(" ") else True
    assert " easter" not in keys  # a Title-case source has no lower-case form
    report = vocab.meta["report"]["languages"]["de"]
    assert report["sources"] == 5 and report["phrases"] >= 6 and report["keys"] == len(keys)
    assert vocab.meta["tokenizer"]["fingerprint"] == tekken.fingerprint


def test_compiled_vocab_substitutes_real_text(tmp_path, tekken):
    de = write(tmp_path, "de.txt", "cat\tKatze\nice cream\tEis\n")
    fr = write(tmp_path, "fr.txt", "cat\tchat\n")
    vocab = compile_vocab(tekken, {"de": de, "fr": fr})
    text = "The cat ate ice cream.\nCat food, CATS and a cat's toy; concatenate (cat)\n(cat"
    tokens = np.array(tekken.encode(text), dtype=np.uint32)
    res = Substituter(vocab, ratio=1.0, languages={"de": 1}).apply(tokens, np.array([0, len(tokens)]))
    assert (
        tekken.decode(res.tokens) == "The Katze ate Eis.\nKatze food, CATS and a Katze's toy; concatenate (Katze)\n(cat"
    )
    # ' (cat' is ' (' + 'cat', a bare form after a token that never fuses with a word;
    # '(cat' after a newline is '(c' + 'at': not the form, left alone


def test_sentencepiece_compiles_and_matches(tmp_path, sentencepiece):
    de = write(tmp_path, "de.txt", "cat\tKatze\nhouse\tHaus\n")
    vocab = compile_vocab(sentencepiece, {"de": de})
    text = "A cat in the house.\ncat"
    tokens = np.array(sentencepiece.encode(text), dtype=np.uint16)
    res = Substituter(vocab, ratio=1.0).apply(tokens, np.array([0, len(tokens)]))
    assert sentencepiece.decode(res.tokens) == " A Katze in the Haus.\nKatze"


def test_save_load_and_fingerprint_checks(tmp_path, tekken, sentencepiece):
    de = write(tmp_path, "de.txt", "cat\tKatze\n")
    path = compile_vocab(tekken, {"de": de}).save(tmp_path / "v.lfv")
    assert Vocab.load(path, tokenizer=tekken).n_keys > 0
    with pytest.raises(VocabError, match="compiled for tekken_240911.json .* not for tokenizer.model.v1"):
        Vocab.load(path, tokenizer=sentencepiece)
    raw = bytearray(path.read_bytes())
    raw[8:12] = (99).to_bytes(4, "little")
    (tmp_path / "version.lfv").write_bytes(raw)
    with pytest.raises(VocabError, match="version 99"):
        Vocab.load(tmp_path / "version.lfv")
    (tmp_path / "short.lfv").write_bytes(path.read_bytes()[:-200])
    with pytest.raises(VocabError, match="truncated"):
        Vocab.load(tmp_path / "short.lfv")
    (tmp_path / "junk.lfv").write_bytes(b"not a vocabulary at all, but long enough")
    with pytest.raises(VocabError, match="bad magic"):
        Vocab.load(tmp_path / "junk.lfv")
    with pytest.raises(VocabError, match="no such file"):
        Vocab.load(tmp_path / "missing.lfv")


def test_bad_inputs(tmp_path, tekken):
    with pytest.raises(TokenizerError, match="tok.json: JSON of unknown shape"):
        compile_vocab(write(tmp_path, "tok.json", '{"hello": 1}'), {"de": write(tmp_path, "de.txt", "cat\tKatze\n")})
    with pytest.raises(DictionaryError, match=r"bad\.txt:2: line has no translation"):
        compile_vocab(tekken, {"de": write(tmp_path, "bad.txt", "cat\tKatze\nlonely\n")})
    with pytest.raises(DictionaryError, match="no usable word pairs"):
        compile_vocab(tekken, {"de": write(tmp_path, "empty.txt", "# nothing\n\n")})
    with pytest.raises(InputError, match="cases"):
        compile_vocab(tekken, {"de": write(tmp_path, "de.txt", "cat\tKatze\n")}, cases=("sideways",))
    with pytest.raises(InputError, match="at least one dictionary"):
        compile_vocab(tekken, {})


def expected_table(tokenizer, lexicons, cases=("lower", "title", "upper"), spacings=("space", "bare")):
    """The compiled table restated in plain Python: {key ids: {lang: [(ids, text)]}}."""
    from link_fast.compiler import CONTEXTS

    def ids(spacing, surface):
        prefix, suffix = CONTEXTS[spacing]
        text = (" " if spacing == "space" else "") + surface
        before, after = tokenizer.encode(prefix), tokenizer.encode(prefix + suffix)[len(tokenizer.encode(prefix)) :]
        full = tokenizer.encode(prefix + text + suffix)
        if (
            full[: len(before)] != before
            or full[len(full) - len(after) :] != after
            or len(full) <= len(before) + len(after)
        ):
            return None
        return tuple(full[len(before) : len(full) - len(after)])

    claims = {}  # key -> list of (natural, lang, [(ids, text)])
    for lang, lexicon in enumerate(lexicons):
        for source, translations in lexicon.entries.items():
            for case, surface, natural in source_cases(source, cases):
                for spacing in spacings:
                    key = ids(spacing, surface)
                    pad = " " if spacing == "space" else ""
                    emitted = [(ids(spacing, apply_case(t, case)), pad + apply_case(t, case)) for t in translations]
                    emitted = [e for e in emitted if e[0] is not None]
                    if key is not None and emitted:
                        claims.setdefault(key, []).append((natural, lang, emitted))
    table = {}
    for key, found in claims.items():
        any_natural = any(n for n, _, _ in found)
        for natural, lang, emitted in found:
            if natural or not any_natural:
                merged = table.setdefault(key, {}).setdefault(lang, [])
                merged.extend(e for e in emitted if e not in merged)
    return table


@pytest.mark.parametrize("workers", [1, 2])
def test_compiled_table_equals_plain_python_restatement(tmp_path, tekken, workers, monkeypatch):
    from link_fast import compiler
    from link_fast.demo import DEMO_LANGUAGES
    from link_fast.lexicon import load_lexicon

    monkeypatch.setattr(compiler, "PARALLEL_MIN_FORMS", 10)  # exercise the forked encoders too
    extra = write(
        tmp_path,
        "extra.txt",
        "cat\tKatze\ncat\tMieze\ncat\tkatze\nkitty\tKatze\nus\tuns\nUS\tUSA\nus\twir\nGrapes\tTrauben\n",
    )
    lexicons = [
        load_lexicon(DEMO_LANGUAGES["de"], "de"),
        load_lexicon(DEMO_LANGUAGES["fr"], "fr"),
        load_lexicon(extra, "xx"),
    ]
    vocab = compile_vocab(tekken, {lex.lang: lex for lex in lexicons}, workers=workers)
    got = {
        vocab.key_tokens(k): {l: vocab.translations(k, l) for l in range(3) if vocab.translations(k, l)}
        for k in range(vocab.n_keys)
    }
    assert got == expected_table(tekken, lexicons)
